//! Changing objects: `edit`, `label`, `annotate`, `patch` (strategic,
//! merge, JSON), `set`, `scale`, `rollout undo|pause|resume|restart`, and
//! `replace` with optimistic concurrency.

use serde_json::Value;

use crate::harness::*;

fn container_names(d: &Value) -> Vec<String> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn edit_with_an_editor_script() {
    let s = Server::shared();
    let ns = s.namespace("edit");
    ns.apply(include_str!("fixtures/app-v1.yaml"));
    let out = ns
        .kubectl(["edit", "deployment", "app"])
        .env(
            "KUBE_EDITOR",
            "sed -i -e 's/replicas: 2/replicas: 7/' -e 's/image: nginx:1.25/image: nginx:1.27/'",
        )
        .ok();
    assert_eq!(out.trim(), "deployment.apps/app edited");
    let d = ns.get("deployment/app");
    assert_eq!(d["spec"]["replicas"], 7);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(container_names(&d), ["main", "sidecar"]);

    let out = ns
        .kubectl(["edit", "deployment", "app"])
        .env("KUBE_EDITOR", "true")
        .run();
    assert!(out.success(), "{out}");
    assert_eq!(out.stderr.trim(), "Edit cancelled, no changes made.");

    // An invalid edit is refused and nothing changes.
    let out = ns
        .kubectl(["edit", "deployment", "app"])
        .env("KUBE_EDITOR", "sed -i -e 's/replicas: 7/replicas: -3/'")
        .run();
    assert!(!out.success(), "{out}");
    // kubectl reopens the editor with the server's causes in comments
    // (here the editor is sed, once), then gives up.
    assert!(
        out.stderr.starts_with(
            "error: deployments.apps \"app\" is invalid\nA copy of your changes has been stored to"
        ),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("error: Edit cancelled, no valid changes were saved."),
        "{out}"
    );
    assert!(
        out.stderr.contains(&s.tmp_dir().display().to_string()),
        "the copy stays in the server's directory: {out}"
    );
    assert_eq!(ns.get("deployment/app")["spec"]["replicas"], 7);
}

#[test]
fn label_and_annotate() {
    let s = Server::shared();
    let ns = s.namespace("label");
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, labels: {tier: web}}\n");
    let out = ns.kubectl(["label", "cm", "cfg", "team=blue"]).ok();
    assert_eq!(out.trim(), "configmap/cfg labeled");
    let err = ns.kubectl(["label", "cm", "cfg", "tier=db"]).fails();
    assert!(
        err.contains("'tier' already has a value (web), and --overwrite is false"),
        "{err}"
    );
    ns.kubectl(["label", "cm", "cfg", "tier=db", "--overwrite"])
        .ok();
    let out = ns.kubectl(["label", "cm", "cfg", "team-"]).ok();
    assert_eq!(out.trim(), "configmap/cfg unlabeled");
    assert_eq!(
        ns.get("cm/cfg")["metadata"]["labels"],
        serde_json::json!({"tier": "db"})
    );
    // An invalid key reaches the server, which refuses it; kubectl checks
    // values itself.
    let err = ns.kubectl(["label", "cm", "cfg", "bad key=x"]).fails();
    assert!(
        err.starts_with(
            r#"The ConfigMap "cfg" is invalid: metadata.labels: Invalid value: "bad key""#
        ),
        "{err}"
    );
    let err = ns.kubectl(["label", "cm", "cfg", "v=not valid!"]).fails();
    assert!(
        err.starts_with(r#"error: invalid label value: "v=not valid!""#),
        "{err}"
    );

    let out = ns
        .kubectl([
            "annotate",
            "cm",
            "cfg",
            "note=hello world",
            "url=https://example.test/x",
        ])
        .ok();
    assert_eq!(out.trim(), "configmap/cfg annotated");
    ns.kubectl(["annotate", "cm", "cfg", "note-"]).ok();
    let ann = &ns.get("cm/cfg")["metadata"]["annotations"];
    assert!(ann.get("note").is_none(), "{ann}");
    assert_eq!(ann["url"], "https://example.test/x");

    // A stale --resource-version is a conflict.
    let err = ns
        .kubectl(["label", "cm", "cfg", "late=yes", "--resource-version=1"])
        .fails();
    assert!(err.contains("Error from server (Conflict)"), "{err}");

    // Many objects at once, by selector.
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, labels: {tier: db}}\n");
    let out = ns
        .kubectl(["label", "cm", "-l", "tier=db", "picked=yes"])
        .ok();
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn patch_strategic_merge_and_json() {
    let s = Server::shared();
    let ns = s.namespace("patch");
    ns.apply(include_str!("fixtures/app-v1.yaml"));

    // Strategic (the default): containers merge by name.
    let out = ns
        .kubectl([
            "patch",
            "deployment",
            "app",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.37"}]}}}}"#,
        ])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/app patched");
    let d = ns.get("deployment/app");
    assert_eq!(container_names(&d), ["main", "sidecar"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["image"],
        "busybox:1.37"
    );

    // A strategic `$patch: delete` removes one entry by key.
    ns.kubectl([
        "patch",
        "deployment",
        "app",
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
    ])
    .ok();
    assert_eq!(container_names(&ns.get("deployment/app")), ["main"]);

    // Merge patch: a list is replaced whole; null removes a key.
    ns.kubectl([
        "patch",
        "deployment",
        "app",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"remove-me":null}},"spec":{"template":{"spec":{"containers":[{"name":"solo","image":"nginx:1.25"}]}}}}"#,
    ])
    .ok();
    let d = ns.get("deployment/app");
    assert_eq!(container_names(&d), ["solo"]);
    assert!(d["metadata"]["labels"].get("remove-me").is_none());
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent",
        "a patched-in container gets defaults"
    );

    // JSON patch.
    ns.kubectl([
        "patch",
        "deployment",
        "app",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":6},{"op":"add","path":"/metadata/labels/added","value":"yes"}]"#,
    ])
    .ok();
    let d = ns.get("deployment/app");
    assert_eq!(d["spec"]["replicas"], 6);
    assert_eq!(d["metadata"]["labels"]["added"], "yes");

    // A JSON patch whose test fails changes nothing.
    let err = ns
        .kubectl([
            "patch",
            "deployment",
            "app",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":1},{"op":"replace","path":"/spec/replicas","value":9}]"#,
        ])
        .fails();
    assert!(
        err.starts_with(
            "The request is invalid: the server rejected our request due to an error in our request"
        ),
        "{err}"
    );
    assert_eq!(ns.get("deployment/app")["spec"]["replicas"], 6);

    // A patch producing an invalid object is refused with the field.
    let err = ns
        .kubectl([
            "patch",
            "deployment",
            "app",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":-1}}"#,
        ])
        .fails();
    assert!(
        err.contains(r#"The Deployment "app" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#),
        "{err}"
    );
    // A malformed patch is a bad request.
    let err = ns
        .kubectl([
            "patch",
            "deployment",
            "app",
            "--type=merge",
            "-p",
            "{not json",
        ])
        .fails();
    assert!(err.contains("error"), "{err}");
    // Patching what does not exist.
    let err = ns.kubectl(["patch", "cm", "nosuch", "-p", "{}"]).fails();
    assert!(
        err.contains(r#"Error from server (NotFound): configmaps "nosuch" not found"#),
        "{err}"
    );
}

#[test]
fn patch_status_through_the_subresource_only() {
    let s = Server::shared();
    let ns = s.namespace("patch-status");
    ns.apply(include_str!("fixtures/web.yaml"));
    // Status in an ordinary patch is ignored ...
    ns.kubectl([
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":5}}"#,
    ])
    .ok();
    assert!(ns.get("deployment/web")["status"].get("replicas").is_none());
    // ... and through /status it is the only thing that changes.
    ns.kubectl([
        "patch",
        "deployment",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":9},"status":{"replicas":5}}"#,
    ])
    .ok();
    let d = ns.get("deployment/web");
    assert_eq!(d["status"]["replicas"], 5);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["metadata"]["generation"], 1);
}

#[test]
fn set_image_and_env_use_strategic_patches() {
    let s = Server::shared();
    let ns = s.namespace("set");
    ns.apply(include_str!("fixtures/app-v1.yaml"));
    let out = ns
        .kubectl(["set", "image", "deployment/app", "sidecar=busybox:1.99"])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/app image updated");
    ns.kubectl(["set", "env", "deployment/app", "-c", "main", "C=3", "A-"])
        .ok();
    let d = ns.get("deployment/app");
    let c = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(c[1]["image"], "busybox:1.99");
    assert_eq!(c[0]["image"], "nginx:1.25");
    let env: Vec<&str> = c[0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["B", "C"]);
}

#[test]
fn scale_through_the_scale_subresource() {
    let s = Server::shared();
    let ns = s.namespace("scale");
    let kinds = include_str!("fixtures/kinds.yaml")
        .replace("namespace: t1", &format!("namespace: {}", ns.name));
    ns.apply(&kinds);
    for (what, printed) in [
        ("deployment/web", "deployment.apps/web scaled"),
        ("replicaset/web-rs", "replicaset.apps/web-rs scaled"),
        ("statefulset/db", "statefulset.apps/db scaled"),
        (
            "replicationcontroller/old",
            "replicationcontroller/old scaled",
        ),
    ] {
        let out = ns.kubectl(["scale", what, "--replicas=4"]).ok();
        assert_eq!(out.trim(), printed);
        assert_eq!(ns.get(what)["spec"]["replicas"], 4, "{what}");
    }
    // The precondition form: GET the scale, then PUT it with its
    // resourceVersion and no Content-Type.
    let err = ns
        .kubectl([
            "scale",
            "deployment/web",
            "--current-replicas=2",
            "--replicas=5",
        ])
        .fails();
    assert!(err.contains("Expected replicas to be 2, was 4"), "{err}");
    let out = ns
        .kubectl([
            "scale",
            "deployment/web",
            "--current-replicas=4",
            "--replicas=5",
        ])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    assert_eq!(ns.get("deployment/web")["spec"]["replicas"], 5);

    let scale = s.get_json(&format!(
        "/apis/apps/v1/namespaces/{}/deployments/web/scale",
        ns.name
    ));
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=web");
    let err = ns
        .kubectl(["scale", "deployment/web", "--replicas=-1"])
        .fails();
    assert!(
        err.contains("--replicas=COUNT") || err.contains("must be"),
        "{err}"
    );
    let err = ns.kubectl(["scale", "configmap/x", "--replicas=1"]).fails();
    assert!(err.contains("error"), "{err}");
}

/// A ReplicaSet a deployment controller would have made for one revision.
fn owned_replicaset(deploy: &Value, name: &str, revision: u32, image: &str) -> String {
    let uid = deploy["metadata"]["uid"].as_str().unwrap();
    format!(
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}
  labels: {{app: web, pod-template-hash: {name}}}
  annotations:
    deployment.kubernetes.io/revision: "{revision}"
    kubernetes.io/change-cause: "image {image}"
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: web
    uid: {uid}
    controller: true
    blockOwnerDeletion: true
spec:
  replicas: 0
  selector: {{matchLabels: {{app: web, pod-template-hash: {name}}}}}
  template:
    metadata: {{labels: {{app: web, pod-template-hash: {name}}}}}
    spec: {{containers: [{{name: c, image: "{image}"}}]}}
"#
    )
}

#[test]
fn rollout_history_undo_pause_resume_restart() {
    let s = Server::shared();
    let ns = s.namespace("rollout");
    ns.apply(include_str!("fixtures/web.yaml"));
    ns.kubectl(["set", "image", "deployment/web", "c=nginx:1.26"])
        .ok();
    let d = ns.get("deployment/web");
    // The ReplicaSets of revisions 1 and 2, as the controller would keep
    // them; kubectl finds them by selector and controller reference.
    ns.kubectl(["create", "-f", "-"])
        .stdin(owned_replicaset(&d, "web-1111", 1, "nginx:1.25"))
        .ok();
    ns.kubectl(["create", "-f", "-"])
        .stdin(owned_replicaset(&d, "web-2222", 2, "nginx:1.26"))
        .ok();
    ns.kubectl([
        "annotate",
        "deployment",
        "web",
        "deployment.kubernetes.io/revision=2",
    ])
    .ok();

    let t = Table::parse(
        ns.kubectl(["rollout", "history", "deployment/web"])
            .ok()
            .split_once('\n')
            .map(|(_, rest)| rest)
            .unwrap_or(""),
    );
    assert_eq!(t.columns, ["REVISION", "CHANGE-CAUSE"]);
    assert_eq!(
        t.rows,
        [["1", "image nginx:1.25"], ["2", "image nginx:1.26"]]
    );

    // undo sends a JSON patch replacing the template and annotations.
    let out = ns
        .kubectl(["rollout", "undo", "deployment/web", "--to-revision=1"])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    let d = ns.get("deployment/web");
    let template = &d["spec"]["template"];
    assert_eq!(template["spec"]["containers"][0]["image"], "nginx:1.25");
    assert!(
        template["metadata"]["labels"]
            .get("pod-template-hash")
            .is_none(),
        "{template}"
    );
    assert_eq!(
        d["metadata"]["annotations"]["kubernetes.io/change-cause"],
        "image nginx:1.25"
    );

    let out = ns.kubectl(["rollout", "pause", "deployment/web"]).ok();
    assert_eq!(out.trim(), "deployment.apps/web paused");
    assert_eq!(ns.get("deployment/web")["spec"]["paused"], true);
    let err = ns
        .kubectl(["rollout", "undo", "deployment/web", "--to-revision=2"])
        .fails();
    assert!(
        err.contains("you cannot rollback a paused deployment"),
        "{err}"
    );
    let out = ns.kubectl(["rollout", "resume", "deployment/web"]).ok();
    assert_eq!(out.trim(), "deployment.apps/web resumed");
    assert!(ns.get("deployment/web")["spec"].get("paused").is_none());

    let out = ns.kubectl(["rollout", "restart", "deployment/web"]).ok();
    assert_eq!(out.trim(), "deployment.apps/web restarted");
    let d = ns.get("deployment/web");
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{d}"
    );
}

#[test]
fn replace_with_a_stale_resource_version_conflicts() {
    let s = Server::shared();
    let ns = s.namespace("replace");
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n");
    let mut stale = ns.get("cm/cfg");
    ns.kubectl(["patch", "cm", "cfg", "-p", r#"{"data":{"a":"2"}}"#])
        .ok();
    stale["data"]["a"] = "3".into();
    let err = ns
        .kubectl(["replace", "-f", "-"])
        .stdin(stale.to_string())
        .fails();
    assert_eq!(
        err.trim(),
        r#"Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on configmaps "cfg": the object has been modified; please apply your changes to the latest version and try again"#
    );
    assert_eq!(ns.get("cm/cfg")["data"]["a"], "2");

    // With the current resourceVersion it goes through, and so does a
    // manifest without one (an unconditional update).
    let mut fresh = ns.get("cm/cfg");
    fresh["data"]["a"] = "4".into();
    let out = ns
        .kubectl(["replace", "-f", "-"])
        .stdin(fresh.to_string())
        .ok();
    assert_eq!(out.trim(), "configmap/cfg replaced");
    let out = ns
        .kubectl(["replace", "-f", "-"])
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {b: '5'}\n")
        .ok();
    assert_eq!(out.trim(), "configmap/cfg replaced");
    assert_eq!(ns.get("cm/cfg")["data"], serde_json::json!({"b": "5"}));
    // replace --force deletes and re-creates: a new uid.
    let uid = ns.get("cm/cfg")["metadata"]["uid"].clone();
    let out = ns
        .kubectl(["replace", "--force", "-f", "-"])
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {c: '6'}\n")
        .ok();
    assert!(out.contains("configmap/cfg replaced"), "{out}");
    assert_ne!(ns.get("cm/cfg")["metadata"]["uid"], uid);
    // Replacing something that does not exist.
    let err = ns
        .kubectl(["replace", "-f", "-"])
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nosuch}\n")
        .fails();
    assert!(err.contains(r#"configmaps "nosuch" not found"#), "{err}");
}

#[test]
fn rollout_undo_of_a_statefulset_applies_its_controller_revision() {
    let s = Server::shared();
    let ns = s.namespace("rollout-sts");
    ns.apply(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n  \
         selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    \
         spec: {containers: [{name: c, image: 'pg:16'}, {name: side, image: 's:1'}]}\n",
    );
    let uid = ns.get("sts/db")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    // Revision 1 as the controller would have recorded it: a strategic
    // merge patch replacing the whole template.
    ns.kubectl(["create", "-f", "-"])
        .stdin(format!(
            "apiVersion: apps/v1\nkind: ControllerRevision\nmetadata:\n  name: db-1\n  labels: {{app: db}}\n  \
             ownerReferences: [{{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: {uid}, controller: true}}]\n\
             revision: 1\ndata:\n  spec:\n    template:\n      $patch: replace\n      \
             metadata: {{labels: {{app: db}}}}\n      spec: {{containers: [{{name: c, image: 'pg:15'}}]}}\n"
        ))
        .ok();
    let out = ns.kubectl(["rollout", "history", "sts/db"]).ok();
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "<none>"]),
        "{out}"
    );
    let out = ns
        .kubectl(["rollout", "undo", "sts/db", "--to-revision=1"])
        .ok();
    assert_eq!(out.trim(), "statefulset.apps/db rolled back");
    let sts = ns.get("sts/db");
    assert_eq!(
        container_names(&sts),
        ["c"],
        "$patch: replace dropped the sidecar"
    );
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "pg:15"
    );
}
