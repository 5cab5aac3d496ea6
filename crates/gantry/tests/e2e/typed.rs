//! kubectl's typed commands, which send protobuf request bodies
//! (`create <generator>`, `expose`, `autoscale`, `auth can-i`, `auth
//! whoami`, `create token`). The APIs behind the last three are also tested
//! with JSON in `access.rs`.

use crate::harness::*;

#[test]
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

#[test]
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
