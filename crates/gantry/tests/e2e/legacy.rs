//! Manifests written for older Kubernetes: apps/v1beta1, apps/v1beta2 and
//! extensions/v1beta1 workloads without `spec.selector`, and
//! extensions/v1beta1 Ingresses, applied as written and stored as today's
//! versions with the defaults their own version had.

use crate::harness::*;

#[test]
fn old_workload_manifests_apply_and_are_converted() {
    let s = Server::shared();
    let ns = s.namespace("legacy");
    let out = ns.apply(include_str!("fixtures/old-manifests.yaml"));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "deployment.extensions/ext-deploy created",
            "deployment.apps/b1-deploy created",
            "daemonset.apps/b2-ds created",
            "daemonset.extensions/ext-ds created",
            "replicaset.apps/b2-rs created",
            "replicaset.extensions/ext-rs created",
            "ingress.extensions/ext-ing created",
            "statefulset.apps/b1-sts created",
        ]
    );
    // Read back through apps/v1: the selector comes from the template
    // labels, as the old versions defaulted it.
    for (what, app) in [
        ("deployment.v1.apps/ext-deploy", "ext"),
        ("deployment.v1.apps/b1-deploy", "b1"),
        ("daemonset.v1.apps/b2-ds", "b2ds"),
        ("daemonset.v1.apps/ext-ds", "extds"),
        ("replicaset.v1.apps/b2-rs", "b2rs"),
        ("replicaset.v1.apps/ext-rs", "extrs"),
        ("statefulset.v1.apps/b1-sts", "b1sts"),
    ] {
        let obj = ns.get(what);
        assert_eq!(obj["apiVersion"], "apps/v1", "{what}");
        assert_eq!(
            obj["spec"]["selector"],
            serde_json::json!({"matchLabels": {"app": app}}),
            "{what}"
        );
    }
    // Each old version's own defaults.
    let ext = ns.get("deployment.v1.apps/ext-deploy");
    assert_eq!(ext["spec"]["revisionHistoryLimit"], 2147483647);
    assert_eq!(ext["spec"]["progressDeadlineSeconds"], 2147483647);
    assert_eq!(ext["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 1);
    let b1 = ns.get("deployment.v1.apps/b1-deploy");
    assert_eq!(b1["spec"]["revisionHistoryLimit"], 2);
    assert_eq!(b1["spec"]["replicas"], 1);
    assert_eq!(b1["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(
        ns.get("daemonset.v1.apps/ext-ds")["spec"]["updateStrategy"]["type"],
        "OnDelete"
    );
    assert_eq!(
        ns.get("daemonset.v1.apps/b2-ds")["spec"]["updateStrategy"]["type"],
        "RollingUpdate"
    );
    assert_eq!(
        ns.get("statefulset.v1.apps/b1-sts")["spec"]["updateStrategy"]["type"],
        "OnDelete"
    );

    // The old versions still read back in their own shape.
    let old = ns.get("deployments.v1beta1.extensions/ext-deploy");
    assert_eq!(old["apiVersion"], "extensions/v1beta1");
    assert_eq!(old["kind"], "Deployment");

    // Tables list them with everything else.
    let t = Table::parse(&ns.kubectl(["get", "deployments"]).ok());
    assert_eq!(t.cell("ext-deploy", "READY"), "0/2");
    assert_eq!(t.cell("b1-deploy", "READY"), "0/1");

    // A second apply of the old manifest, changed, goes through the old
    // version's endpoint as a strategic merge patch.
    let changed = include_str!("fixtures/old-manifests.yaml")
        .replace("replicas: 2", "replicas: 4")
        .replace(
            "image: nginx:1.13.1}]}\n---\napiVersion: apps/v1beta1",
            "image: nginx:1.14.2}]}\n---\napiVersion: apps/v1beta1",
        );
    let out = ns.apply(&changed);
    assert!(
        out.contains("deployment.extensions/ext-deploy configured"),
        "{out}"
    );
    assert!(out.contains("daemonset.apps/b2-ds unchanged"), "{out}");
    let ext = ns.get("deployment.v1.apps/ext-deploy");
    assert_eq!(ext["spec"]["replicas"], 4);
    assert_eq!(
        ext["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.14.2"
    );
    assert_eq!(ext["metadata"]["generation"], 2);
}

#[test]
fn old_ingresses_become_networking_v1() {
    let s = Server::shared();
    let ns = s.namespace("legacy-ingress");
    let manifest = include_str!("fixtures/old-manifests.yaml")
        .split("---\n")
        .find(|d| d.contains("kind: Ingress"))
        .unwrap()
        .to_owned();
    let out = ns.apply(&manifest);
    assert_eq!(out.trim(), "ingress.extensions/ext-ing created");
    let ing = ns.get("ingresses.v1.networking.k8s.io/ext-ing");
    assert_eq!(ing["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        ing["spec"]["defaultBackend"],
        serde_json::json!({"service": {"name": "default-svc", "port": {"number": 80}}})
    );
    let path = &ing["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(
        path["backend"],
        serde_json::json!({"service": {"name": "api", "port": {"name": "http"}}})
    );
    assert_eq!(path["pathType"], "ImplementationSpecific");
    let t = Table::parse(&ns.kubectl(["get", "ingress"]).ok());
    assert_eq!(t.cell("ext-ing", "HOSTS"), "old.example.test");
    assert_eq!(t.cell("ext-ing", "PORTS"), "80");
    // Served back in the old shape.
    let old = ns.get("ingresses.v1beta1.extensions/ext-ing");
    assert_eq!(old["spec"]["backend"]["serviceName"], "default-svc");
}

#[test]
fn old_manifests_still_get_validated() {
    let s = Server::shared();
    let ns = s.namespace("legacy-invalid");
    let err = ns
        .kubectl(["apply", "-f", "-"])
        .stdin(
            "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  replicas: -2\n  \
             template: {metadata: {labels: {app: x}}, spec: {containers: [{name: c, image: x}]}}\n",
        )
        .fails();
    assert!(err.contains(r#"The Deployment "bad" is invalid"#), "{err}");
    assert!(err.contains("spec.replicas: Invalid value: -2"), "{err}");
    // No template labels to derive a selector from.
    let err = ns
        .kubectl(["apply", "-f", "-"])
        .stdin(
            "apiVersion: apps/v1beta2\nkind: ReplicaSet\nmetadata: {name: nolabels}\nspec:\n  \
             template: {spec: {containers: [{name: c, image: x}]}}\n",
        )
        .fails();
    assert!(err.contains("is invalid"), "{err}");
    assert_eq!(ns.kubectl(["get", "deploy,rs", "-o", "name"]).ok(), "");
}
