//! Tests for parts of issue 3 being built elsewhere, ignored until they
//! land: protobuf request bodies (kubectl's `create <generator>` commands),
//! CustomResourceDefinitions, SelfSubjectAccessReview (`auth can-i`) and
//! service account tokens (`create token`). Run them with
//! `cargo test -- --ignored` to see how far along they are.

use crate::harness::*;

#[test]
#[ignore = "needs protobuf request bodies"]
fn imperative_create_commands() {
    let s = Server::shared();
    let ns = s.namespace("imperative");
    let out = ns
        .kubectl([
            "create",
            "configmap",
            "lit",
            "--from-literal=a=1",
            "--from-literal=b=2",
        ])
        .ok();
    assert_eq!(out.trim(), "configmap/lit created");
    assert_eq!(
        ns.get("cm/lit")["data"],
        serde_json::json!({"a": "1", "b": "2"})
    );
    let out = ns
        .kubectl([
            "create",
            "secret",
            "generic",
            "sec",
            "--from-literal=password=hunter2",
        ])
        .ok();
    assert_eq!(out.trim(), "secret/sec created");
    assert_eq!(ns.get("secret/sec")["data"]["password"], "aHVudGVyMg==");
    let out = ns
        .kubectl([
            "create",
            "deployment",
            "web",
            "--image=nginx:1.25",
            "--replicas=2",
        ])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/web created");
    let d = ns.get("deployment/web");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    let out = ns
        .kubectl(["create", "service", "clusterip", "web", "--tcp=80:8080"])
        .ok();
    assert_eq!(out.trim(), "service/web created");
    let out = ns.kubectl(["create", "serviceaccount", "robot"]).ok();
    assert_eq!(out.trim(), "serviceaccount/robot created");
    let out = ns
        .kubectl([
            "create",
            "job",
            "once",
            "--image=busybox:1.36",
            "--",
            "true",
        ])
        .ok();
    assert_eq!(out.trim(), "job.batch/once created");
    let out = ns
        .kubectl([
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ])
        .ok();
    assert_eq!(out.trim(), "role.rbac.authorization.k8s.io/reader created");
    let out = s.kubectl(["create", "namespace", "made-imperatively"]).ok();
    assert_eq!(out.trim(), "namespace/made-imperatively created");
    // Errors still come back as Status objects kubectl prints.
    let err = ns
        .kubectl(["create", "configmap", "lit", "--from-literal=a=1"])
        .fails();
    assert_eq!(
        err.trim(),
        r#"error: failed to create configmap: configmaps "lit" already exists"#
    );
    // The typed clients of kubectl describe, expose and autoscale too.
    let out = ns
        .kubectl(["expose", "deployment", "web", "--name=web2", "--port=80"])
        .ok();
    assert_eq!(out.trim(), "service/web2 exposed");
    let out = ns
        .kubectl([
            "autoscale",
            "deployment",
            "web",
            "--min=1",
            "--max=3",
            "--cpu-percent=50",
        ])
        .ok();
    assert_eq!(
        out.trim(),
        "horizontalpodautoscaler.autoscaling/web autoscaled"
    );
}

const WIDGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wg], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, description: How big the widget is.}
              color: {type: string, default: blue}
          status:
            type: object
            properties:
              ready: {type: boolean}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
"#;

#[test]
#[ignore = "needs CustomResourceDefinitions"]
fn custom_resources_are_served_like_builtins() {
    let s = Server::shared();
    let ns = s.namespace("crd");
    let out = s.kubectl(["apply", "-f", "-"]).stdin(WIDGET_CRD).ok();
    assert_eq!(
        out.trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
    );
    s.kubectl([
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ])
    .ok();
    let t = Table::parse(&s.kubectl(["api-resources", "--api-group=example.com"]).ok());
    assert_eq!(
        t.rows,
        [["widgets", "wg", "example.com/v1", "true", "Widget"]]
    );

    let out = ns
        .apply("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n");
    assert_eq!(out.trim(), "widget.example.com/w1 created");
    let t = Table::parse(&ns.kubectl(["get", "widgets"]).ok());
    assert_eq!(t.columns, ["NAME", "SIZE", "COLOR", "AGE"]);
    assert_eq!(
        t.row("w1")[1..3],
        ["3", "blue"],
        "printer columns and defaults"
    );
    assert_eq!(
        ns.kubectl(["get", "wg", "-o", "name"]).ok(),
        "widget.example.com/w1\n"
    );
    // apply again with a change: a merge patch (no strategic merge for
    // custom resources).
    let out = ns
        .apply("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 5}\n");
    assert_eq!(out.trim(), "widget.example.com/w1 configured");
    assert_eq!(ns.get("widget/w1")["spec"]["size"], 5);
    // Validated against the schema.
    let err = ns
        .kubectl(["apply", "-f", "-"])
        .stdin("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 0}\n")
        .fails();
    assert!(
        err.contains(
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
        ),
        "{err}"
    );
    let err = ns
        .kubectl(["apply", "-f", "-"])
        .stdin("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {size: 1, extra: x}\n")
        .fails();
    assert!(err.contains(r#"unknown field "spec.extra""#), "{err}");
    // Explained from OpenAPI.
    let out = s.kubectl(["explain", "widgets.spec.size"]).ok();
    assert!(out.contains("How big the widget is."), "{out}");
    // Watched, patched, scaled through status.
    ns.kubectl([
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":true}}"#,
    ])
    .ok();
    assert_eq!(ns.get("widget/w1")["status"]["ready"], true);
    // Deleting the CRD deletes its objects.
    s.kubectl(["delete", "crd", "widgets.example.com"]).ok();
    let err = ns.kubectl(["get", "widgets"]).fails();
    assert!(
        err.contains(r#"the server doesn't have a resource type "widgets""#),
        "{err}"
    );
}

#[test]
#[ignore = "needs SelfSubjectAccessReview"]
fn auth_can_i() {
    let s = Server::shared();
    let out = s.kubectl(["auth", "can-i", "create", "pods"]).ok();
    assert_eq!(out.trim(), "yes");
    let out = s.kubectl(["auth", "can-i", "--list"]).ok();
    assert!(out.contains("*.*"), "{out}");
    let out = s
        .kubectl([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .ok();
    assert_eq!(out, "admin");
}

#[test]
#[ignore = "needs serviceaccount tokens"]
fn service_account_tokens_authenticate() {
    let s = Server::start();
    let ns = s.namespace("sa-token");
    ns.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot}\n");
    let token = ns
        .kubectl(["create", "token", "robot", "--duration=10m"])
        .ok();
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let r = s.request_as(
        &Auth::Bearer(token.to_owned()),
        Request::new("GET", "/api/v1/namespaces"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let whoami = s.request_as(
        &Auth::Bearer(token.to_owned()),
        Request::new("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews").body(
            "application/json",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#,
        ),
    );
    assert_eq!(
        whoami.json()["status"]["userInfo"]["username"],
        format!("system:serviceaccount:{}:robot", ns.name)
    );
}
