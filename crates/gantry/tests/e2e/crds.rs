//! CustomResourceDefinitions: custom kinds in discovery and OpenAPI,
//! validated against their schema, printed with their columns, served like
//! built-ins, and gone with their definition.

use crate::harness::*;

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
    // With printer columns given, Kubernetes adds no Age column.
    assert_eq!(t.columns, ["NAME", "SIZE", "COLOR"]);
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
    // Deleting the CRD takes the kind out of discovery (api-resources
    // always refetches; other commands keep kubectl's cached discovery,
    // as against any cluster) and its objects with it.
    s.kubectl(["delete", "crd", "widgets.example.com"]).ok();
    let out = s
        .kubectl(["api-resources", "--api-group=example.com", "-o", "name"])
        .ok();
    assert_eq!(out, "");
    let r = s.request(Request::new(
        "GET",
        &format!("/apis/example.com/v1/namespaces/{}/widgets", ns.name),
    ));
    assert_eq!(r.status, 404, "{}", r.text());
    s.kubectl(["apply", "-f", "-"]).stdin(WIDGET_CRD).ok();
    s.kubectl([
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ])
    .ok();
    let list = s.get_json(&format!(
        "/apis/example.com/v1/namespaces/{}/widgets",
        ns.name
    ));
    assert_eq!(
        list["items"],
        serde_json::json!([]),
        "the old widgets went with their CRD"
    );
    s.kubectl(["delete", "crd", "widgets.example.com"]).ok();
}

#[test]
fn python_custom_objects() {
    let s = Server::shared();
    let ns = s.namespace("py-crd");
    let group = format!("{}.example.com", ns.name);
    let crd = format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: gadgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer, minimum: 1}}
              color: {{type: string, default: blue}}
"#
    );
    s.kubectl(["apply", "-f", "-"]).stdin(crd).ok();
    s.kubectl([
        "wait",
        "--for=condition=Established",
        &format!("crd/gadgets.{group}"),
        "--timeout=20s",
    ])
    .ok();
    let out = s.python("custom_objects.py").args([&ns.name, &group]).ok();
    assert_eq!(out.lines().last(), Some("ok"), "{out}");
}
