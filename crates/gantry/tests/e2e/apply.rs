//! `kubectl apply` (client-side, three-way strategic merge), `create -f`,
//! and server-side apply with field managers and conflicts.

use serde_json::Value;

use crate::harness::*;

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|i| i["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn apply_twice_drops_removed_fields_and_merges_lists_by_key() {
    let s = Server::shared();
    let ns = s.namespace("apply-twice");
    let out = ns.apply(include_str!("fixtures/app-v1.yaml"));
    assert_eq!(out.trim(), "deployment.apps/app created");

    // Others change the live object between the two applies: a scale, a
    // patched-in environment variable and an annotation; none of them is
    // in the manifest, so apply must leave those it does not own alone.
    ns.kubectl(["scale", "deployment/app", "--replicas=5"]).ok();
    ns.kubectl([
        "patch",
        "deployment",
        "app",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","env":[{"name":"LIVE","value":"x"}]}]}}}}"#,
    ])
    .ok();
    ns.kubectl(["annotate", "deployment", "app", "owner=ops"])
        .ok();

    let out = ns.apply(include_str!("fixtures/app-v2.yaml"));
    assert_eq!(out.trim(), "deployment.apps/app configured");
    let d = ns.get("deployment/app");
    let labels = &d["metadata"]["labels"];
    assert_eq!(labels["tier"], "web");
    assert!(
        labels.get("remove-me").is_none(),
        "label dropped from the manifest: {labels}"
    );
    assert_eq!(
        d["metadata"]["annotations"]["owner"], "ops",
        "live annotation kept"
    );
    assert_eq!(
        d["spec"]["replicas"], 3,
        "manifest value wins over the scale"
    );
    let containers = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["main", "sidecar"]);
    let main = &containers[0];
    assert_eq!(main["image"], "nginx:1.26");
    // Ports merge by containerPort: 9090 was dropped, 8443 added.
    let ports: Vec<i64> = main["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [80, 8443]);
    assert_eq!(main["ports"][0]["protocol"], "TCP", "defaults kept");
    // env merges by name: A dropped, B changed, LIVE (never applied) kept
    // where strategic merge puts it.
    assert_eq!(names(&main["env"]), ["LIVE", "B"]);
    assert_eq!(main["env"][1]["value"], "3");
    assert_eq!(containers[1]["image"], "busybox:1.36");
    let last = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("last-applied annotation");
    assert!(json(last)["spec"]["replicas"] == 3, "{last}");

    // Applying the same manifest again changes nothing. (kubectl still
    // sends a patch, a `$setElementOrder` for env, because the live list
    // has an entry the manifest does not; the server writes nothing.)
    let rv = d["metadata"]["resourceVersion"].clone();
    ns.apply(include_str!("fixtures/app-v2.yaml"));
    assert_eq!(ns.get("deployment/app")["metadata"]["resourceVersion"], rv);
}

#[test]
fn apply_reports_each_object_of_a_multi_document_file() {
    let s = Server::shared();
    let ns = s.namespace("apply-multi");
    let out = ns.apply(include_str!("fixtures/web.yaml"));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "pod/web-0 created",
            "service/web created",
            "deployment.apps/web created",
            "configmap/web-config created"
        ]
    );
    let out = ns.apply(include_str!("fixtures/web.yaml"));
    assert!(out.lines().all(|l| l.ends_with(" unchanged")), "{out}");
}

#[test]
fn apply_takes_a_directory_of_manifests() {
    let s = Server::shared();
    let ns = s.namespace("apply-dir");
    s.file(
        "apply-dir/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: '1'}\n",
    );
    s.file(
        "apply-dir/b.json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"},"stringData":{"k":"v"}}"#,
    );
    let dir = s.files_dir().join("apply-dir");
    let out = ns.kubectl(["apply", "-f", dir.to_str().unwrap()]).ok();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["configmap/a created", "secret/b created"]
    );
    let secret = ns.get("secret/b");
    assert_eq!(
        secret["data"]["k"], "dg==",
        "stringData is folded into data"
    );
    assert!(secret.get("stringData").is_none());
    assert_eq!(secret["type"], "Opaque");
}

#[test]
fn apply_dry_run_server_changes_nothing() {
    let s = Server::shared();
    let ns = s.namespace("apply-dry-run");
    let out = ns
        .kubectl(["apply", "--dry-run=server", "-f", "-"])
        .stdin(include_str!("fixtures/app-v1.yaml"))
        .ok();
    assert_eq!(out.trim(), "deployment.apps/app created (server dry run)");
    assert!(!ns.exists("deployment/app"));
    ns.apply(include_str!("fixtures/app-v1.yaml"));
    let out = ns
        .kubectl(["apply", "--dry-run=server", "-f", "-"])
        .stdin(include_str!("fixtures/app-v2.yaml"))
        .ok();
    assert_eq!(
        out.trim(),
        "deployment.apps/app configured (server dry run)"
    );
    assert_eq!(ns.get("deployment/app")["spec"]["replicas"], 2);
}

#[test]
fn create_from_file_then_already_exists() {
    let s = Server::shared();
    let ns = s.namespace("create-f");
    let path = s.file(
        "create-f.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n",
    );
    let path = path.to_str().unwrap();
    let out = ns.kubectl(["create", "-f", path]).ok();
    assert_eq!(out.trim(), "configmap/cfg created");
    let cm = ns.get("cm/cfg");
    assert!(
        cm["metadata"]
            .get("annotations")
            .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
            .is_none(),
        "create does not record last-applied"
    );
    assert!(
        cm["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(cm["metadata"]["creationTimestamp"].is_string());
    let err = ns.kubectl(["create", "-f", path]).fails();
    assert_eq!(
        err.trim(),
        format!(
            r#"Error from server (AlreadyExists): error when creating "{path}": configmaps "cfg" already exists"#
        )
    );
}

#[test]
fn create_accepts_a_list() {
    let s = Server::shared();
    let ns = s.namespace("create-list");
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"one"}},
        {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"two"}}]}"#;
    let out = ns.kubectl(["create", "-f", "-"]).stdin(list).ok();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["configmap/one created", "configmap/two created"]
    );
}

#[test]
fn server_side_apply_conflicts_and_force() {
    let s = Server::shared();
    let ns = s.namespace("ssa");
    let mine = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1', b: '2'}\n";
    let theirs = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '9'}\n";
    let out = ns
        .kubectl(["apply", "--server-side", "-f", "-"])
        .stdin(mine)
        .ok();
    assert_eq!(out.trim(), "configmap/cfg serverside-applied");
    let out = ns
        .kubectl(["apply", "--server-side", "-f", "-"])
        .stdin(mine)
        .ok();
    assert_eq!(out.trim(), "configmap/cfg serverside-applied");

    // Another manager wants a field kubectl owns: a conflict, nothing
    // written.
    let err = ns
        .kubectl(["apply", "--server-side", "--field-manager=other", "-f", "-"])
        .stdin(theirs)
        .fails();
    assert!(
        err.starts_with(r#"error: Apply failed with 1 conflict: conflict with "kubectl": .data.a"#),
        "{err}"
    );
    assert!(err.contains("--force-conflicts"), "{err}");
    assert_eq!(ns.get("cm/cfg")["data"]["a"], "1");

    // With --force-conflicts the field changes hands.
    let out = ns
        .kubectl([
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ])
        .stdin(theirs)
        .ok();
    assert_eq!(out.trim(), "configmap/cfg serverside-applied");
    let cm = json(
        &ns.kubectl(["get", "cm", "cfg", "-o", "json", "--show-managed-fields"])
            .ok(),
    );
    assert_eq!(cm["data"], serde_json::json!({"a": "9", "b": "2"}));
    let managed = cm["metadata"]["managedFields"].as_array().unwrap();
    let owner = |field: &str| {
        managed
            .iter()
            .filter(|m| m["fieldsV1"]["f:data"].get(field).is_some())
            .map(|m| {
                (
                    m["manager"].as_str().unwrap(),
                    m["operation"].as_str().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(owner("f:a"), [("other", "Apply")]);
    assert_eq!(owner("f:b"), [("kubectl", "Apply")]);

    // kubectl applies again without b (and without a, which it lost):
    // b goes, a stays with its new owner.
    let out = ns
        .kubectl(["apply", "--server-side", "-f", "-"])
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {}\n")
        .ok();
    assert_eq!(out.trim(), "configmap/cfg serverside-applied");
    assert_eq!(ns.get("cm/cfg")["data"], serde_json::json!({"a": "9"}));
}

#[test]
fn server_side_apply_takes_over_from_client_side_apply() {
    let s = Server::shared();
    let ns = s.namespace("ssa-migrate");
    ns.apply(include_str!("fixtures/app-v1.yaml"));
    let out = ns
        .kubectl(["apply", "--server-side", "-f", "-"])
        .stdin(include_str!("fixtures/app-v2.yaml"))
        .ok();
    assert_eq!(out.trim(), "deployment.apps/app serverside-applied");
    let d = ns.get("deployment/app");
    assert_eq!(d["spec"]["replicas"], 3);
    let main = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        names(&main["env"]),
        ["B"],
        "fields only v1 applied are gone"
    );
    assert!(d["metadata"]["labels"].get("remove-me").is_none());
    // A second SSA with a manager that never touched anything conflicts on
    // replicas, which kubectl now owns.
    let err = ns
        .kubectl(["apply", "--server-side", "--field-manager=hpa", "-f", "-"])
        .stdin(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec: {replicas: 9}\n",
        )
        .fails();
    assert!(err.contains("Apply failed with 1 conflict"), "{err}");
    assert!(err.contains(".spec.replicas"), "{err}");
}

#[test]
fn server_side_apply_creates_with_201() {
    let s = Server::shared();
    let ns = s.namespace("ssa-raw");
    let path = format!(
        "/api/v1/namespaces/{}/configmaps/raw?fieldManager=me",
        ns.name
    );
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raw"},"data":{"a":"1"}}"#;
    let r = s.request(Request::new("PATCH", &path).body("application/apply-patch+yaml", body));
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.request(Request::new("PATCH", &path).body("application/apply-patch+yaml", body));
    assert_eq!(r.status, 200, "{}", r.text());
    let managed = &r.json()["metadata"]["managedFields"][0];
    assert_eq!(managed["manager"], "me");
    assert_eq!(managed["operation"], "Apply");
    assert_eq!(managed["fieldsV1"]["f:data"]["f:a"], serde_json::json!({}));
}

#[test]
fn apply_changes_strategy_type_through_retain_keys() {
    let s = Server::shared();
    let ns = s.namespace("retain-keys");
    let rolling = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  \
        strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 2}}\n  selector: {matchLabels: {a: b}}\n  \
        template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: 'img:1'}]}}\n";
    ns.apply(rolling);
    // Recreate forbids rollingUpdate: kubectl's patch carries
    // `$retainKeys` so the server drops it.
    let out = ns.apply(&rolling.replace(
        "strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 2}}",
        "strategy: {type: Recreate}",
    ));
    assert_eq!(out.trim(), "deployment.apps/d configured");
    assert_eq!(
        ns.get("deployment/d")["spec"]["strategy"],
        serde_json::json!({"type": "Recreate"})
    );
}

#[test]
fn immutable_fields_refuse_apply_unless_forced() {
    let s = Server::shared();
    let ns = s.namespace("immutable");
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  \
        selector: {matchLabels: {a: b}}\n  \
        template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: 'img:1'}]}}\n";
    ns.apply(deploy);
    let err = ns
        .kubectl(["apply", "-f", "-"])
        .stdin(deploy.replace("{a: b}", "{a: c}"))
        .fails();
    assert_eq!(
        err.trim(),
        r#"The Deployment "d" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"a":"c"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#
    );
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  \
        template: {spec: {restartPolicy: Never, containers: [{name: c, image: 'img:1'}]}}\n";
    ns.apply(job);
    let uid = ns.get("job/j")["metadata"]["uid"].clone();
    let changed = job.replace("img:1", "img:2");
    let err = ns
        .kubectl(["apply", "-f", "-"])
        .stdin(changed.clone())
        .fails();
    assert!(
        err.contains(r#"The Job "j" is invalid: spec.template: Invalid value"#),
        "{err}"
    );
    assert!(err.trim().ends_with("field is immutable"), "{err}");
    // --force deletes and re-creates.
    let out = ns
        .kubectl(["apply", "--force", "-f", "-"])
        .stdin(changed)
        .ok();
    assert!(out.contains("job.batch/j"), "{out}");
    let j = ns.get("job/j");
    assert_ne!(j["metadata"]["uid"], uid);
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:2"
    );
}

#[test]
fn apply_keeps_allocated_service_fields_and_merges_ports_by_port() {
    let s = Server::shared();
    let ns = s.namespace("service-apply");
    ns.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec:\n  selector: {app: a}\n  \
         ports: [{name: http, port: 80, targetPort: 8080}, {name: https, port: 443}]\n",
    );
    let ip = ns.get("svc/svc")["spec"]["clusterIP"].clone();
    ns.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec:\n  type: NodePort\n  selector: {app: a}\n  \
         ports: [{name: http, port: 80, targetPort: 9090}]\n",
    );
    let svc = ns.get("svc/svc");
    assert_eq!(svc["spec"]["clusterIP"], ip, "the allocated address stays");
    let ports = svc["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0]["targetPort"], 9090);
    let node_port = ports[0]["nodePort"]
        .as_i64()
        .expect("a node port is allocated");
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    let t = Table::parse(&ns.kubectl(["get", "svc", "svc"]).ok());
    assert_eq!(t.cell("svc", "PORT(S)"), format!("80:{node_port}/TCP"));
    // The address cannot be changed.
    let err = ns
        .kubectl(["apply", "-f", "-"])
        .stdin(
            "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec:\n  clusterIP: 10.96.99.99\n  type: NodePort\n  \
             selector: {app: a}\n  ports: [{name: http, port: 80, targetPort: 9090}]\n",
        )
        .fails();
    assert!(err.contains("may not change once set"), "{err}");
}

#[test]
fn server_side_apply_merges_list_entries_by_key_between_managers() {
    let s = Server::shared();
    let ns = s.namespace("ssa-lists");
    let mine = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  \
        selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    \
        spec: {containers: [{name: main, image: 'img:1'}]}\n";
    let theirs = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    \
        spec: {containers: [{name: sidecar, image: 'side:1'}]}\n";
    let ssa = |manager: &str, manifest: &str| {
        ns.kubectl([
            "apply",
            "--server-side",
            &format!("--field-manager={manager}"),
            "-f",
            "-",
        ])
        .stdin(manifest.to_owned())
        .ok()
    };
    ssa("team-a", mine);
    ssa("team-b", theirs);
    assert_eq!(
        container_names(&ns.get("deployment/d")),
        ["main", "sidecar"]
    );
    // team-b withdraws its container; team-a's stays.
    ssa(
        "team-b",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec: {containers: []}\n",
    );
    assert_eq!(container_names(&ns.get("deployment/d")), ["main"]);
}

fn container_names(d: &Value) -> Vec<String> {
    names(&d["spec"]["template"]["spec"]["containers"])
}

#[test]
fn apply_deletes_from_primitive_lists_and_prunes() {
    let s = Server::shared();
    let ns = s.namespace("apply-primitive");
    // finalizers merge as a set of strings: the dropped one goes through
    // `$deleteFromPrimitiveList`, a live addition stays.
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fl, finalizers: [example.com/a, example.com/b]}\n");
    ns.kubectl([
        "patch",
        "cm",
        "fl",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/live"}]"#,
    ])
    .ok();
    ns.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fl, finalizers: [example.com/b]}\n",
    );
    assert_eq!(
        ns.get("cm/fl")["metadata"]["finalizers"],
        serde_json::json!(["example.com/b", "example.com/live"])
    );
    ns.kubectl([
        "patch",
        "cm",
        "fl",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .ok();

    // --prune deletes what was applied before and is no longer listed.
    ns.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p1, labels: {app: pr}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p2, labels: {app: pr}}\n",
    );
    let out = ns
        .kubectl([
            "apply",
            "--prune",
            "-l",
            "app=pr",
            "--prune-allowlist=core/v1/ConfigMap",
            "-f",
            "-",
        ])
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p1, labels: {app: pr}}\n")
        .ok();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["configmap/p1 unchanged", "configmap/p2 pruned"]
    );
    assert_eq!(
        ns.kubectl(["get", "cm", "-l", "app=pr", "-o", "name"]).ok(),
        "configmap/p1\n"
    );
}
