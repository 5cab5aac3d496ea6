//! Deletion: finalizers and `deletionTimestamp`, graceful deletion of pods
//! (`--grace-period`, `--now`, `--force`), propagation policies, dry runs,
//! selectors, and namespace termination.

use crate::harness::*;

#[test]
fn finalizers_hold_an_object_until_removed() {
    let s = Server::shared();
    let ns = s.namespace("finalizers");
    ns.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n",
    );
    let out = ns.kubectl(["delete", "cm", "held", "--wait=false"]).ok();
    assert_eq!(out.trim(), r#"configmap "held" deleted"#);
    let cm = ns.get("cm/held");
    assert!(cm["metadata"]["deletionTimestamp"].is_string(), "{cm}");
    assert_eq!(cm["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(
        cm["metadata"]["finalizers"],
        serde_json::json!(["example.com/hold"])
    );
    // A marked object takes no new finalizers, but can still be changed.
    ns.kubectl(["label", "cm", "held", "still=here"]).ok();
    let err = ns
        .kubectl([
            "patch",
            "cm",
            "held",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/more"}]"#,
        ])
        .fails();
    assert!(
        err.contains("no new finalizers can be added if the object is being deleted"),
        "{err}"
    );

    // kubectl delete (waiting) returns once the finalizer is gone.
    let mut deleting = ns.kubectl(["delete", "cm", "held", "-v=6"]).spawn();
    deleting.expect_err_line(WAIT, |l| l.contains("watch=true") && l.contains(" 200 OK"));
    ns.kubectl([
        "patch",
        "cm",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .ok();
    let (status, _) = deleting.wait(WAIT);
    assert!(status.success());
    assert!(!ns.exists("cm/held"));
}

#[test]
fn pods_on_a_node_are_deleted_gracefully() {
    let s = Server::shared();
    let ns = s.namespace("grace");
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bound}\nspec: {nodeName: node-1, containers: [{name: c, image: x}]}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: unbound}\nspec: {containers: [{name: c, image: x}]}\n",
    );
    // A pod no node runs goes at once.
    ns.kubectl(["delete", "pod", "unbound", "--wait=false"])
        .ok();
    assert!(!ns.exists("pod/unbound"));

    // A pod on a node waits for its kubelet within the grace period.
    ns.kubectl([
        "delete",
        "pod",
        "bound",
        "--grace-period=45",
        "--wait=false",
    ])
    .ok();
    let pod = ns.get("pod/bound");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 45);
    assert!(pod["metadata"]["deletionTimestamp"].is_string());
    let t = Table::parse(&ns.kubectl(["get", "pods"]).ok());
    assert_eq!(t.cell("bound", "STATUS"), "Terminating");
    // --now shortens the grace period to one second.
    ns.kubectl(["delete", "pod", "bound", "--now", "--wait=false"])
        .ok();
    assert_eq!(
        ns.get("pod/bound")["metadata"]["deletionGracePeriodSeconds"],
        1
    );
    // --force with a grace period of zero removes it.
    let out = ns
        .kubectl(["delete", "pod", "bound", "--grace-period=0", "--force"])
        .run();
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains(r#"pod "bound" force deleted"#), "{out}");
    assert!(
        out.stderr.contains("Immediate deletion does not wait"),
        "{out}"
    );
    assert!(!ns.exists("pod/bound"));
}

#[test]
fn propagation_policies_add_their_finalizers() {
    let s = Server::shared();
    let ns = s.namespace("propagation");
    ns.apply(include_str!("fixtures/web.yaml"));
    ns.kubectl([
        "delete",
        "deployment",
        "web",
        "--cascade=foreground",
        "--wait=false",
    ])
    .ok();
    let d = ns.get("deployment/web");
    assert_eq!(
        d["metadata"]["finalizers"],
        serde_json::json!(["foregroundDeletion"])
    );
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    ns.kubectl([
        "delete",
        "cm",
        "web-config",
        "--cascade=orphan",
        "--wait=false",
    ])
    .ok();
    let cm = ns.get("cm/web-config");
    assert_eq!(cm["metadata"]["finalizers"], serde_json::json!(["orphan"]));
}

#[test]
fn delete_dry_run_selectors_and_all() {
    let s = Server::shared();
    let ns = s.namespace("delete-many");
    let manifest: String = (1..=4)
        .map(|i| {
            let tier = if i <= 2 { "a" } else { "b" };
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, labels: {{tier: {tier}}}}}\n---\n")
        })
        .collect();
    ns.apply(&manifest);
    let out = ns.kubectl(["delete", "cm", "c1", "--dry-run=server"]).ok();
    assert_eq!(out.trim(), r#"configmap "c1" deleted (server dry run)"#);
    assert!(ns.exists("cm/c1"));
    let out = ns.kubectl(["delete", "cm", "-l", "tier=a"]).ok();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [r#"configmap "c1" deleted"#, r#"configmap "c2" deleted"#]
    );
    let out = ns.kubectl(["delete", "cm", "c3", "c4"]).ok();
    assert_eq!(out.lines().count(), 2);
    ns.apply(&manifest);
    ns.kubectl(["delete", "cm", "--all"]).ok();
    assert_eq!(
        without_root_ca(&ns.kubectl(["get", "cm", "-o", "name"]).ok()),
        ""
    );
    let err = ns.kubectl(["delete", "cm", "nosuch"]).fails();
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): configmaps "nosuch" not found"#
    );
    let out = ns
        .kubectl(["delete", "cm", "nosuch", "--ignore-not-found"])
        .ok();
    assert_eq!(out, "");
    // A collection delete in one request (DELETE on the list).
    ns.apply(&manifest);
    let r = s.request(Request::new(
        "DELETE",
        &format!(
            "/api/v1/namespaces/{}/configmaps?labelSelector=tier%3Db",
            ns.name
        ),
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        ns.kubectl(["get", "cm", "-o", "name"]).ok(),
        "configmap/c1\nconfigmap/c2\n"
    );
}

#[test]
fn deleting_a_namespace_empties_it_then_removes_it() {
    let s = Server::shared();
    let ns = s.namespace("doomed");
    ns.apply(include_str!("fixtures/web.yaml"));
    ns.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n",
    );

    let out = s
        .kubectl(["delete", "namespace", &ns.name, "--wait=false"])
        .ok();
    assert_eq!(out.trim(), format!(r#"namespace "{}" deleted"#, ns.name));
    // The finalizer keeps the namespace Terminating; everything else goes.
    let t = Table::parse(&s.kubectl(["get", "namespace", &ns.name]).ok());
    assert_eq!(t.cell(&ns.name, "STATUS"), "Terminating");
    ns.kubectl([
        "wait",
        "--for=delete",
        "deployment/web",
        "pod/web-0",
        "cm/web-config",
        "--timeout=20s",
    ])
    .ok();
    assert!(ns.exists("cm/held"), "the object with a finalizer stays");
    let ns_obj = json(&s.kubectl(["get", "namespace", &ns.name, "-o", "json"]).ok());
    assert_eq!(ns_obj["status"]["phase"], "Terminating");

    // Nothing new may be created in a terminating namespace.
    let err = ns
        .kubectl(["create", "-f", "-"])
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\n")
        .fails();
    assert!(
        err.contains(&format!(
            "unable to create new content in namespace {} because it is being terminated",
            ns.name
        )),
        "{err}"
    );
    assert!(err.contains("Error from server (Forbidden)"), "{err}");

    // Releasing the last object lets the namespace go.
    ns.kubectl([
        "patch",
        "cm",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .ok();
    // (kubectl prints nothing when the namespace is gone before it looks.)
    s.kubectl([
        "wait",
        "--for=delete",
        &format!("namespace/{}", ns.name),
        "--timeout=20s",
    ])
    .ok();
    let err = s.kubectl(["get", "namespace", &ns.name]).fails();
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn deleting_an_empty_namespace_with_kubectl_waits_until_it_is_gone() {
    let s = Server::shared();
    let ns = s.namespace("short-lived");
    let out = s.kubectl(["delete", "namespace", &ns.name]).ok();
    assert_eq!(out.trim(), format!(r#"namespace "{}" deleted"#, ns.name));
    assert!(
        s.kubectl(["get", "namespace", &ns.name])
            .fails()
            .contains("NotFound")
    );
    // The system namespaces cannot be deleted.
    let err = s
        .kubectl(["delete", "namespace", "kube-system", "--wait=false"])
        .fails();
    assert!(err.contains("Forbidden"), "{err}");
}
