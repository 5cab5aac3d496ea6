//! Server-side apply and update tracking, scenario by scenario. Expected
//! `fieldsV1` values are what a Kubernetes 1.32 API server writes for the
//! same requests.

use serde_json::{Value, json};

use super::*;
use crate::testing::{node, schemas};

const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
const T1: &str = "2024-05-01T10:00:00Z";
const T2: &str = "2024-05-01T10:00:05Z";
const T3: &str = "2024-05-01T10:00:09Z";

fn deployment(replicas: Option<i64>, containers: Value) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": containers}
        }
    });
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": spec
    })
}

fn nginx() -> Value {
    json!([{"name": "nginx", "image": "nginx:1.27"}])
}

/// The entries of an object as (manager, operation, apiVersion, fieldsV1).
fn entries(object: &Value) -> Vec<(String, String, String, Value)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_owned(),
                        e["operation"].as_str().unwrap().to_owned(),
                        e["apiVersion"].as_str().unwrap().to_owned(),
                        e["fieldsV1"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fields_of(object: &Value, manager: &str) -> Vec<String> {
    let list = object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let entry = list
        .iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or_else(|| panic!("no entry for {manager} in {list:?}"));
    FieldSet::from_fields_v1(&entry["fieldsV1"])
        .unwrap()
        .paths()
}

fn managers(object: &Value) -> Vec<String> {
    entries(object).into_iter().map(|e| e.0).collect()
}

fn conflicts(err: ApplyError) -> Vec<Conflict> {
    match err {
        ApplyError::Conflicts(c) => c,
        other => panic!("expected conflicts, got {other:?}"),
    }
}

fn strip(mut object: Value) -> Value {
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        meta.remove("managedFields");
    }
    object
}

#[test]
fn apply_creates_the_object_and_records_exactly_its_fields() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let config = deployment(Some(2), nginx());
    let out = apply(None, &config, "kubectl", "apps/v1", false, schema, T1).unwrap();
    assert_eq!(strip(out.clone()), config);
    let managed = &out["metadata"]["managedFields"];
    assert_eq!(
        managed,
        &json!([{
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                    }
                }
            }
        }])
    );
    // The wire form of the key is Kubernetes' exactly.
    let text = serde_json::to_string(&managed[0]["fieldsV1"]).unwrap();
    assert!(
        text.contains(r#""k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}"#),
        "{text}"
    );
}

#[test]
fn reapplying_without_a_field_removes_it() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let first = deployment(
        Some(2),
        json!([{"name": "nginx", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
               {"name": "sidecar", "image": "busybox"}]),
    );
    let live = apply(None, &first, "ci", "apps/v1", false, schema, T1).unwrap();
    let second = deployment(
        None,
        json!([{"name": "nginx", "image": "nginx:1.28", "env": [{"name": "B", "value": "2"}]}]),
    );
    let out = apply(Some(&live), &second, "ci", "apps/v1", false, schema, T2).unwrap();
    assert_eq!(strip(out.clone()), second);
    assert_eq!(out["metadata"]["managedFields"][0]["time"], T2);
    assert!(
        !fields_of(&out, "ci")
            .iter()
            .any(|f| f.contains("replicas") || f.contains("sidecar"))
    );
    // Applying the same configuration again changes nothing, not even the
    // entry's time.
    let again = apply(Some(&out), &second, "ci", "apps/v1", false, schema, T3).unwrap();
    assert_eq!(again, out);
}

#[test]
fn shared_fields_stay_until_every_owner_lets_go() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let live = apply(
        None,
        &deployment(Some(3), nginx()),
        "a",
        "apps/v1",
        false,
        schema,
        T1,
    )
    .unwrap();
    // Same value: no conflict, both own it.
    let partial = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let shared = apply(Some(&live), &partial, "b", "apps/v1", false, schema, T2).unwrap();
    assert_eq!(fields_of(&shared, "b"), [".spec.replicas"]);
    assert!(fields_of(&shared, "a").contains(&".spec.replicas".to_owned()));
    // a lets go: b still holds it, so the value stays.
    let a_without = deployment(None, nginx());
    let out = apply(Some(&shared), &a_without, "a", "apps/v1", false, schema, T3).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert!(!fields_of(&out, "a").contains(&".spec.replicas".to_owned()));
    // b lets go too: now it goes.
    let b_without =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let out = apply(Some(&out), &b_without, "b", "apps/v1", false, schema, T3).unwrap();
    assert!(out["spec"].get("replicas").is_none());
    assert_eq!(managers(&out), ["a"]);
}

#[test]
fn conflicting_apply_fails_until_forced() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let live = apply(
        None,
        &deployment(Some(3), nginx()),
        "a",
        "apps/v1",
        false,
        schema,
        T1,
    )
    .unwrap();
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                        "spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}});
    let err = apply(Some(&live), &config, "b", "apps/v1", false, schema, T2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
    let found = conflicts(err);
    assert_eq!(found[0].cause_message(), "conflict with \"a\"");
    assert_eq!(found[0].field, ".spec.replicas");

    let out = apply(Some(&live), &config, "b", "apps/v1", true, schema, T2).unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    let a = fields_of(&out, "a");
    assert!(!a.contains(&".spec.replicas".to_owned()));
    assert!(a.contains(&".spec.template.spec.containers[name=\"nginx\"].name".to_owned()));
    assert_eq!(
        fields_of(&out, "b"),
        [
            ".spec.replicas",
            ".spec.template.spec.containers[name=\"nginx\"]",
            ".spec.template.spec.containers[name=\"nginx\"].image",
            ".spec.template.spec.containers[name=\"nginx\"].name",
        ]
    );
}

#[test]
fn a_null_in_the_configuration_claims_and_unsets_the_field() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let live = apply(
        None,
        &deployment(Some(3), nginx()),
        "a",
        "apps/v1",
        false,
        schema,
        T1,
    )
    .unwrap();
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": null}});
    let err = apply(Some(&live), &config, "b", "apps/v1", false, schema, T2).unwrap_err();
    assert_eq!(conflicts(err)[0].field, ".spec.replicas");
    let out = apply(Some(&live), &config, "b", "apps/v1", true, schema, T2).unwrap();
    assert!(out["spec"].get("replicas").is_none());
    assert_eq!(fields_of(&out, "b"), [".spec.replicas"]);
    assert!(!fields_of(&out, "a").contains(&".spec.replicas".to_owned()));
}

#[test]
fn apply_after_a_client_side_create_conflicts_with_the_update_entry() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let mut created = deployment(Some(1), nginx());
    created["metadata"]["uid"] = json!("u-1");
    let live = track_update(
        None,
        &created,
        "kubectl-client-side-apply",
        "apps/v1",
        None,
        schema,
        T1,
    );
    assert_eq!(entries(&live)[0].1, "Update");
    assert_eq!(
        serde_json::to_string(&entries(&live)[0].3).unwrap(),
        concat!(
            r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"#,
            r#""f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"#,
            r#""f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
        )
    );
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}});
    let err = apply(Some(&live), &config, "helm", "apps/v1", false, schema, T2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        conflicts(err)[0].cause_message(),
        "conflict with \"kubectl-client-side-apply\" using apps/v1"
    );
    // Forced, the applier takes the field.
    let out = apply(Some(&live), &config, "helm", "apps/v1", true, schema, T2).unwrap();
    assert_eq!(out["spec"]["replicas"], 4);
    assert!(!fields_of(&out, "kubectl-client-side-apply").contains(&".spec.replicas".to_owned()));
    // Apply entries sort before update entries.
    assert_eq!(managers(&out), ["helm", "kubectl-client-side-apply"]);
}

#[test]
fn kubectl_takes_over_fields_it_applied_client_side() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let mut created = deployment(Some(1), nginx());
    let last = created.clone();
    created["metadata"]["annotations"] =
        json!({LAST_APPLIED: serde_json::to_string(&last).unwrap()});
    let live = track_update(
        None,
        &created,
        "kubectl-client-side-apply",
        "apps/v1",
        None,
        schema,
        T1,
    );
    // kubectl apply --server-side with a new replica count: the conflict is
    // forgiven because replicas still holds the last-applied value.
    let config = deployment(Some(5), nginx());
    let out = apply(
        Some(&live),
        &config,
        "kubectl",
        "apps/v1",
        false,
        schema,
        T2,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    let annotation: Value = serde_json::from_str(
        out["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(annotation, config);
    // Another manager changes the image; kubectl's next apply with the old
    // image conflicts, since the live value no longer matches.
    let edited = {
        let mut e = out.clone();
        e["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:edited");
        track_update(Some(&out), &e, "kubectl-edit", "apps/v1", None, schema, T3)
    };
    let err = apply(
        Some(&edited),
        &config,
        "kubectl",
        "apps/v1",
        false,
        schema,
        T3,
    )
    .unwrap_err();
    assert_eq!(
        conflicts(err)[0].field,
        ".spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn list_map_elements_belong_to_whoever_applied_them() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let live = apply(
        None,
        &deployment(None, nginx()),
        "a",
        "apps/v1",
        false,
        schema,
        T1,
    )
    .unwrap();
    let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "log", "image": "fluentbit", "ports": [{"containerPort": 2020}]}]}}}});
    let both = apply(Some(&live), &sidecar, "b", "apps/v1", false, schema, T2).unwrap();
    let names: Vec<&str> = both["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", "log"]);
    // The port's key takes the schema's default protocol.
    assert!(fields_of(&both, "b").contains(
        &".spec.template.spec.containers[name=\"log\"].ports[containerPort=2020,protocol=\"TCP\"].containerPort".to_owned()
    ));
    // a drops its container: b's stays.
    let a_config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}}}});
    let out = apply(Some(&both), &a_config, "a", "apps/v1", false, schema, T3).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "log", "image": "fluentbit", "ports": [{"containerPort": 2020}]}])
    );
}

#[test]
fn sets_merge_by_value() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let with = |fin: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": fin}});
    let live = apply(
        None,
        &with(json!(["x.io/a"])),
        "a",
        "apps/v1",
        false,
        schema,
        T1,
    )
    .unwrap();
    assert_eq!(
        entries(&live)[0].3,
        json!({"f:metadata": {"f:finalizers": {"v:\"x.io/a\"": {}}}})
    );
    let live = apply(
        Some(&live),
        &with(json!(["x.io/b"])),
        "b",
        "apps/v1",
        false,
        schema,
        T2,
    )
    .unwrap();
    assert_eq!(live["metadata"]["finalizers"], json!(["x.io/a", "x.io/b"]));
    let out = apply(
        Some(&live),
        &with(json!([])),
        "a",
        "apps/v1",
        false,
        schema,
        T3,
    )
    .unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["x.io/b"]));
}

#[test]
fn atomic_lists_and_maps_are_one_field() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let with_args = |args: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "nginx", "args": args}]}}}})
    };
    let live = apply(
        None,
        &with_args(json!(["-a", "-b"])),
        "a",
        "apps/v1",
        false,
        schema,
        T1,
    )
    .unwrap();
    assert!(
        fields_of(&live, "a")
            .contains(&".spec.template.spec.containers[name=\"nginx\"].args".to_owned())
    );
    let err = apply(
        Some(&live),
        &with_args(json!(["-c"])),
        "b",
        "apps/v1",
        false,
        schema,
        T2,
    )
    .unwrap_err();
    assert_eq!(
        conflicts(err)[0].field,
        ".spec.template.spec.containers[name=\"nginx\"].args"
    );
    let out = apply(
        Some(&live),
        &with_args(json!(["-c"])),
        "b",
        "apps/v1",
        true,
        schema,
        T2,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["-c"])
    );
    // The selector is an atomic map: a different selector conflicts as one
    // field, not per label.
    let live = apply(
        None,
        &deployment(None, nginx()),
        "a",
        "apps/v1",
        false,
        schema,
        T1,
    )
    .unwrap();
    let selector = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"tier": "x"}}}});
    let err = apply(Some(&live), &selector, "b", "apps/v1", false, schema, T2).unwrap_err();
    assert_eq!(conflicts(err)[0].field, ".spec.selector");
}

#[test]
fn updates_move_ownership() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let live = apply(
        None,
        &deployment(Some(3), nginx()),
        "a",
        "apps/v1",
        false,
        schema,
        T1,
    )
    .unwrap();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(7);
    scaled["metadata"]["labels"] = json!({});
    let out = track_update(
        Some(&live),
        &scaled,
        "kubectl-edit",
        "apps/v1",
        None,
        schema,
        T2,
    );
    assert_eq!(fields_of(&out, "kubectl-edit"), [".spec.replicas"]);
    let a = fields_of(&out, "a");
    assert!(!a.contains(&".spec.replicas".to_owned()));
    assert!(!a.contains(&".metadata.labels.app".to_owned()), "{a:?}");
    // An update that changes nothing leaves the entries alone.
    let same = track_update(
        Some(&out),
        &strip(out.clone()),
        "kubectl-edit",
        "apps/v1",
        None,
        schema,
        T3,
    );
    assert_eq!(
        same["metadata"]["managedFields"],
        out["metadata"]["managedFields"]
    );
    // A status write is its own entry.
    let mut status = out.clone();
    status["status"] = json!({"replicas": 7, "readyReplicas": 7});
    let out = track_update(
        Some(&out),
        &status,
        "kube-controller-manager",
        "apps/v1",
        Some("status"),
        schema,
        T3,
    );
    let entry = out["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kube-controller-manager")
        .unwrap()
        .clone();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {".": {}, "f:readyReplicas": {}, "f:replicas": {}}})
    );
    // Applying over the status manager's field names it with its
    // subresource.
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "status": {"replicas": 1}});
    let err = apply(Some(&out), &config, "x", "apps/v1", false, schema, T3).unwrap_err();
    assert_eq!(
        conflicts(err)[0].cause_message(),
        "conflict with \"kube-controller-manager\" with subresource \"status\" using apps/v1"
    );
}

#[test]
fn updates_honour_sent_and_reset_managed_fields() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let mut created = deployment(Some(1), nginx());
    created["metadata"]["uid"] = json!("u-1");
    let live = track_update(
        None,
        &created,
        "kubectl-create",
        "apps/v1",
        None,
        schema,
        T1,
    );
    // `managedFields: []` clears them, and the object stays untracked.
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([]);
    reset["spec"]["replicas"] = json!(2);
    let out = track_update(
        Some(&live),
        &reset,
        "kubectl-edit",
        "apps/v1",
        None,
        schema,
        T2,
    );
    assert!(out["metadata"].get("managedFields").is_none());
    let again = track_update(
        Some(&out),
        &strip(live.clone()),
        "kubectl-edit",
        "apps/v1",
        None,
        schema,
        T2,
    );
    assert!(again["metadata"].get("managedFields").is_none());
    // A first apply on the untracked object hands existing fields to
    // before-first-apply, which the apply then conflicts with.
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 9}});
    let err = apply(Some(&out), &config, "mgr", "apps/v1", false, schema, T3).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn update_entries_are_capped_at_ten() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let mut live = track_update(
        None,
        &deployment(Some(0), nginx()),
        "m0",
        "apps/v1",
        None,
        schema,
        "2024-01-01T00:00:00Z",
    );
    for i in 1..=11 {
        let mut next = live.clone();
        next["spec"]["replicas"] = json!(i);
        next["metadata"]["labels"][format!("l{i}")] = json!("x");
        let time = format!("2024-01-01T00:00:{i:02}Z");
        live = track_update(
            Some(&live),
            &next,
            &format!("m{i}"),
            "apps/v1",
            None,
            schema,
            &time,
        );
    }
    let names = managers(&live);
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(names.contains(&ANCIENT_CHANGES.to_owned()), "{names:?}");
    assert!(names.contains(&"m11".to_owned()));
}

#[test]
fn invalid_configurations_are_rejected() {
    let set = schemas();
    let schema = node(&set, DEPLOYMENT);
    let dup = deployment(None, json!([{"name": "a"}, {"name": "a", "image": "x"}]));
    assert_eq!(
        apply(None, &dup, "m", "apps/v1", false, schema, T1)
            .unwrap_err()
            .to_string(),
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name=\"a\"]"
    );
    // A container without a name takes the key's default (""), as in
    // Kubernetes; a condition without a type has no default to take.
    let keyless = deployment(None, json!([{"image": "x"}]));
    assert!(apply(None, &keyless, "m", "apps/v1", false, schema, T1).is_ok());
    let pod = node(&set, "io.k8s.api.core.v1.Pod");
    let conditions = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"conditions": [{"status": "True"}]}});
    assert_eq!(
        apply(None, &conditions, "m", "v1", false, pod, T1)
            .unwrap_err()
            .to_string(),
        "failed to create typed patch object (/p; /v1, Kind=Pod): .status.conditions: element 0: associative list with keys has an element that omits all key fields [\"type\"] (and doesn't have default values for any key fields)"
    );
    let mut with_managed = deployment(None, nginx());
    with_managed["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(None, &with_managed, "m", "apps/v1", false, schema, T1).unwrap_err(),
        ApplyError::Invalid("metadata.managedFields must be nil".into())
    );
}

#[test]
fn conflict_messages_group_by_manager() {
    let conflict = |manager: &str, version: &str, field: &str| Conflict {
        manager: manager.into(),
        api_version: version.into(),
        subresource: String::new(),
        field: field.into(),
    };
    let list = [
        conflict("zeta", "", ".spec.a"),
        conflict("alpha", "v1", ".spec.b"),
        conflict("zeta", "", ".spec.c"),
    ];
    assert_eq!(
        conflict_message(&list),
        "Apply failed with 3 conflicts: conflicts with \"alpha\" using v1:\n- .spec.b\nconflicts with \"zeta\":\n- .spec.a\n- .spec.c"
    );
}

#[test]
fn unknown_fields_of_custom_resources_are_granular() {
    let set = schemas();
    let schema = node(&set, "example.com.v1.Widget");
    let config = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"size": 1, "tags": ["a"], "parts": [{"id": "p"}], "extra": {"deep": {"x": 1}}, "options": {"k": "v"}}});
    let out = apply(None, &config, "m", "example.com/v1", false, schema, T1).unwrap();
    assert_eq!(
        entries(&out)[0].3,
        json!({"f:spec": {
            "f:extra": {"f:deep": {".": {}, "f:x": {}}},
            "f:options": {},
            "f:parts": {},
            "f:size": {},
            "f:tags": {"v:\"a\"": {}}
        }})
    );
}
