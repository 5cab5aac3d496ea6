//! Object semantics kubectl relies on: generateName, server-set metadata
//! (uid, resourceVersion, generation, managedFields), ownerReferences,
//! dry runs and `kubectl diff`.

use crate::harness::*;

#[test]
fn generate_name_gets_a_random_suffix() {
    let s = Server::shared();
    let ns = s.namespace("generate-name");
    let manifest =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: job-}\ndata: {a: '1'}\n";
    let mut names = Vec::new();
    for _ in 0..3 {
        let out = ns
            .kubectl(["create", "-f", "-", "-o", "name"])
            .stdin(manifest)
            .ok();
        let name = out
            .trim()
            .strip_prefix("configmap/job-")
            .unwrap_or_else(|| panic!("{out}"))
            .to_owned();
        assert_eq!(name.len(), 5, "{out}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{out}"
        );
        names.push(name);
    }
    names.dedup();
    assert_eq!(names.len(), 3, "{names:?}");
    let cm = ns.get(&format!("cm/job-{}", names[0]));
    assert_eq!(cm["metadata"]["generateName"], "job-");
    // apply needs a name.
    let err = ns.kubectl(["apply", "-f", "-"]).stdin(manifest).fails();
    assert!(err.contains("name"), "{err}");
}

#[test]
fn the_server_sets_uid_resource_version_and_generation() {
    let s = Server::shared();
    let ns = s.namespace("server-fields");
    let manifest = include_str!("fixtures/web.yaml")
        .split("---\n")
        .find(|d| d.contains("kind: Deployment"))
        .unwrap()
        .replace(
            "metadata: {name: web}",
            "metadata: {name: web, uid: 00000000-0000-0000-0000-000000000001, resourceVersion: '999999', generation: 42, creationTimestamp: '2001-01-01T00:00:00Z'}",
        );
    ns.kubectl(["create", "--validate=false", "-f", "-"])
        .stdin(manifest)
        .ok();
    let d = ns.get("deployment/web");
    let uid = d["metadata"]["uid"].as_str().unwrap().to_owned();
    assert_ne!(uid, "00000000-0000-0000-0000-000000000001");
    assert_eq!(d["metadata"]["generation"], 1);
    assert_ne!(d["metadata"]["creationTimestamp"], "2001-01-01T00:00:00Z");
    let rv = |d: &serde_json::Value| {
        d["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let rv1 = rv(&d);

    // A metadata change bumps the resourceVersion, not the generation.
    ns.kubectl(["label", "deployment", "web", "x=y"]).ok();
    let d = ns.get("deployment/web");
    assert!(rv(&d) > rv1);
    assert_eq!(d["metadata"]["generation"], 1);
    // A spec change bumps both.
    ns.kubectl(["scale", "deployment", "web", "--replicas=3"])
        .ok();
    let d = ns.get("deployment/web");
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(d["metadata"]["uid"], uid.as_str());

    // kubectl's writes are recorded under their field managers.
    let full = json(
        &ns.kubectl([
            "get",
            "deployment",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .ok(),
    );
    let managers: Vec<(&str, &str)> = full["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap(),
                m["operation"].as_str().unwrap(),
            )
        })
        .collect();
    // kubectl scale names no field manager: the server takes the user
    // agent's first word, and records the scale subresource.
    for expected in [
        ("kubectl-create", "Update"),
        ("kubectl-label", "Update"),
        ("kubectl", "Update"),
    ] {
        assert!(managers.contains(&expected), "{managers:?}");
    }
    let scale = full["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "kubectl")
        .unwrap();
    assert_eq!(scale["subresource"], "scale");
    assert!(
        scale["fieldsV1"]["f:spec"]["f:replicas"].is_object(),
        "{scale}"
    );
}

#[test]
fn owner_references_are_stored() {
    let s = Server::shared();
    let ns = s.namespace("owners");
    ns.apply(include_str!("fixtures/web.yaml"));
    let uid = ns.get("deployment/web")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let child = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: child\n  ownerReferences:\n  - {{apiVersion: apps/v1, kind: Deployment, name: web, uid: {uid}, controller: true, blockOwnerDeletion: true}}\n"
    );
    ns.apply(&child);
    let refs = &ns.get("cm/child")["metadata"]["ownerReferences"];
    assert_eq!(
        refs,
        &serde_json::json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid, "controller": true, "blockOwnerDeletion": true}])
    );
    // An owner reference without a uid is invalid.
    let err = ns
        .kubectl(["apply", "-f", "-"])
        .stdin(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: orphan\n  ownerReferences:\n  - {apiVersion: apps/v1, kind: Deployment, name: web, uid: ''}\n",
        )
        .fails();
    assert_eq!(
        err.trim(),
        r#"The ConfigMap "orphan" is invalid: metadata.ownerReferences.uid: Invalid value: "": uid must not be empty"#
    );
    // Two controllers are one too many.
    let err = ns
        .kubectl(["apply", "-f", "-"])
        .stdin(format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: twice\n  ownerReferences:\n  - {{apiVersion: apps/v1, kind: Deployment, name: a, uid: {uid}, controller: true}}\n  - {{apiVersion: apps/v1, kind: Deployment, name: b, uid: 1{}, controller: true}}\n",
            &uid[1..]
        ))
        .fails();
    assert!(
        err.contains(r#"Only one reference can have Controller set to true. Found "true" in references for Deployment/a and Deployment/b"#),
        "{err}"
    );
}

#[test]
fn dry_run_server_for_every_write() {
    let s = Server::shared();
    let ns = s.namespace("dry-run");
    let out = ns
        .kubectl(["create", "--dry-run=server", "-f", "-", "-o", "json"])
        .stdin(
            "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{port: 80}]}\n",
        )
        .ok();
    let svc = json(&out);
    // The answer is what would be stored: defaulted, an IP allocated.
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{svc}"
    );
    assert!(!ns.exists("svc/svc"));

    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n");
    let out = ns
        .kubectl([
            "patch",
            "cm",
            "cfg",
            "--dry-run=server",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ])
        .ok();
    // (kubectl 1.32's patch does not say "(server dry run)"; it does send
    // dryRun=All.)
    assert_eq!(out.trim(), "configmap/cfg patched");
    let out = ns
        .kubectl(["label", "cm", "cfg", "x=y", "--dry-run=server"])
        .ok();
    assert_eq!(out.trim(), "configmap/cfg labeled (server dry run)");
    let out = ns
        .kubectl(["apply", "--server-side", "--dry-run=server", "-f", "-"])
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '3'}\n")
        .ok();
    assert_eq!(
        out.trim(),
        "configmap/cfg serverside-applied (server dry run)"
    );
    let cm = ns.get("cm/cfg");
    assert_eq!(cm["data"]["a"], "1");
    assert!(cm["metadata"].get("labels").is_none());
}

#[test]
fn diff_shows_what_apply_would_change() {
    let s = Server::shared();
    let ns = s.namespace("diff");
    ns.apply(include_str!("fixtures/app-v1.yaml"));
    let out = ns
        .kubectl(["diff", "-f", "-"])
        .stdin(include_str!("fixtures/app-v1.yaml"))
        .run();
    assert!(out.success(), "no difference exits 0:\n{out}");
    assert_eq!(out.stdout, "");
    let out = ns
        .kubectl(["diff", "-f", "-"])
        .stdin(include_str!("fixtures/app-v2.yaml"))
        .run();
    assert_eq!(out.status.code(), Some(1), "differences exit 1:\n{out}");
    for line in [
        "-  replicas: 2",
        "+  replicas: 3",
        "-        image: nginx:1.25",
        "+        image: nginx:1.26",
        "-    remove-me: \"yes\"",
        "-        - containerPort: 9090",
        "+        - containerPort: 8443",
        // The dry run reports what the server would store.
        "+  generation: 2",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == line),
            "no `{line}` in:\n{out}"
        );
    }
    // diff changed nothing.
    assert_eq!(ns.get("deployment/app")["spec"]["replicas"], 2);
}

#[test]
fn resource_version_preconditions_on_raw_writes() {
    let s = Server::shared();
    let ns = s.namespace("preconditions");
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n");
    let cm = ns.get("cm/cfg");
    let rv = cm["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/namespaces/{}/configmaps/cfg", ns.name);
    // A merge patch carrying a stale resourceVersion is a precondition.
    let patch = |rv: &str, v: &str| {
        s.request(Request::new("PATCH", &path).body(
            "application/merge-patch+json",
            format!(r#"{{"metadata":{{"resourceVersion":"{rv}"}},"data":{{"a":"{v}"}}}}"#),
        ))
    };
    assert_eq!(patch(&rv, "2").status, 200);
    let r = patch(&rv, "3");
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["reason"], "Conflict");
    // A delete with a stale precondition also conflicts.
    let r = s.request(Request::new("DELETE", &path).body(
        "application/json",
        format!(r#"{{"preconditions":{{"resourceVersion":"{rv}"}}}}"#),
    ));
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(ns.get("cm/cfg")["data"]["a"], "2");
    // A list at resourceVersion 0 may be served from any point; one at an
    // exact future version is refused.
    let list = s.get_json(&format!(
        "/api/v1/namespaces/{}/configmaps?resourceVersion=0",
        ns.name
    ));
    // cfg and the namespace's kube-root-ca.crt.
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let r = s.request(Request::new(
        "GET",
        &format!(
            "/api/v1/namespaces/{}/configmaps?resourceVersion=99999999&resourceVersionMatch=Exact",
            ns.name
        ),
    ));
    assert!(
        r.status == 504 || r.status == 410 || r.status == 400,
        "{} {}",
        r.status,
        r.text()
    );
}
