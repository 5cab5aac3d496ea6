//! Tests of the apps kinds: defaults, Kubernetes' rejections word for word,
//! and table cells.

use serde_json::{Value, json};

use super::*;
use crate::Strategy;
use crate::table::parse_time;

/// The messages of the errors, as `kubectl` prints each cause.
pub(crate) fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

/// A strategy's create path: types, defaults, prepare, validate.
pub(crate) fn create(s: &dyn Strategy, mut obj: Value) -> (Value, Vec<String>) {
    s.check_types(&obj).expect("types check");
    s.default(&mut obj);
    s.prepare_create(&mut obj);
    let errs = messages(&s.validate(&obj, None));
    (obj, errs)
}

/// A strategy's update path.
pub(crate) fn update(s: &dyn Strategy, old: &Value, mut obj: Value) -> (Value, Vec<String>) {
    s.check_types(&obj).expect("types check");
    s.default(&mut obj);
    s.prepare_update(&mut obj, old);
    let errs = messages(&s.validate(&obj, Some(old)));
    (obj, errs)
}

fn nginx_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

#[test]
fn deployment_defaults() {
    let (d, errs) = create(&deployment_strategy(true), nginx_deployment());
    assert!(errs.is_empty(), "{errs:?}");
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
        "TCP"
    );
}

#[test]
fn deployment_recreate_gets_no_rolling_update() {
    let mut d = nginx_deployment();
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    let (d, errs) = create(&deployment_strategy(true), d);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn deployment_rejections_read_like_kubernetes() {
    let s = deployment_strategy(true);
    let mut d = nginx_deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    let (_, errs) = create(&s, d);
    assert_eq!(
        errs,
        [
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ]
    );

    let mut d = nginx_deployment();
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    d["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
    let (_, errs) = create(&s, d);
    assert_eq!(
        errs,
        [
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
        ]
    );

    let mut d = nginx_deployment();
    d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
    let (_, errs) = create(&s, d);
    assert_eq!(
        errs,
        [
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0"
        ]
    );

    let mut d = nginx_deployment();
    d["spec"]["selector"] = json!({});
    let (_, errs) = create(&s, d);
    assert_eq!(
        errs,
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        ]
    );
}

#[test]
fn deployment_templates_are_checked_as_pods_are() {
    let s = deployment_strategy(true);
    // The template goes through the same checks as a Pod's spec: mounts
    // must name a volume, and quantities must parse while decoding.
    let mut d = nginx_deployment();
    d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(30);
    let (_, errs) = create(&s, d);
    assert_eq!(
        errs,
        [
            "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
        ]
    );
    let mut d = nginx_deployment();
    d["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": "lots"}});
    let err = s.check_types(&d).unwrap_err();
    assert_eq!(
        err.field,
        "spec.template.spec.containers[0].resources.limits.cpu"
    );
    // A Deployment without a template still gets a defaulted one (Go
    // embeds it), so only its containers are reported.
    let mut d = nginx_deployment();
    d["spec"]["selector"] = json!({"matchLabels": {}, "matchExpressions": [
        {"key": "app", "operator": "DoesNotExist"}]});
    d["spec"].as_object_mut().unwrap().remove("template");
    let (d, errs) = create(&s, d);
    assert_eq!(errs, ["spec.template.spec.containers: Required value"]);
    assert_eq!(
        d["spec"]["template"]["metadata"],
        json!({"creationTimestamp": null})
    );
}

#[test]
fn deployment_selector_is_immutable_in_apps_v1_only() {
    let (old, _) = create(&deployment_strategy(true), nginx_deployment());
    let mut d = nginx_deployment();
    d["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "fe"}});
    d["spec"]["template"]["metadata"]["labels"]["tier"] = json!("fe");
    let (_, errs) = update(&deployment_strategy(true), &old, d.clone());
    assert_eq!(
        errs,
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"fe\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        ]
    );
    let (_, errs) = update(&deployment_strategy(false), &old, d);
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn status_is_cleared_on_create_and_kept_on_update() {
    let s = deployment_strategy(true);
    let mut d = nginx_deployment();
    d["status"] = json!({"replicas": 5});
    let (created, _) = create(&s, d);
    assert!(created.get("status").is_none());
    let mut old = created.clone();
    old["status"] = json!({"replicas": 1});
    let mut new = created.clone();
    new["status"] = json!({"replicas": 9});
    let (updated, _) = update(&s, &old, new);
    assert_eq!(updated["status"], json!({"replicas": 1}));

    let mut status_write = old.clone();
    status_write["spec"]["replicas"] = json!(7);
    status_write["status"] = json!({"replicas": 2});
    status_write["metadata"]["labels"] = json!({"x": "y"});
    s.prepare_status_update(&mut status_write, &old);
    assert_eq!(status_write["spec"]["replicas"], 1);
    assert_eq!(status_write["status"]["replicas"], 2);
    assert!(status_write["metadata"].get("labels").is_none());
    let mut bad = status_write.clone();
    bad["status"] = json!({"replicas": 1, "readyReplicas": 2});
    assert_eq!(
        messages(&s.validate_status(&bad, &old)),
        ["status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas"]
    );
}

#[test]
fn deployment_table() {
    let s = deployment_strategy(true);
    let (mut d, _) = create(&s, nginx_deployment());
    d["spec"]["replicas"] = json!(3);
    d["status"] = json!({"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2});
    let names: Vec<String> = s.columns().iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let wide: Vec<i32> = s.columns().iter().map(|c| c.priority).collect();
    assert_eq!(wide, [0, 0, 0, 0, 0, 1, 1, 1]);
    let now = parse_time("2026-01-01T00:05:00Z").unwrap();
    assert_eq!(
        s.row(&d, now),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("5m"),
            json!("nginx"),
            json!("nginx:1.25"),
            json!("app=web")
        ]
    );
}

fn replica_set() -> Value {
    let mut rs = nginx_deployment();
    rs["kind"] = json!("ReplicaSet");
    rs
}

#[test]
fn replica_sets() {
    let s = replica_set_strategy(true);
    let (mut rs, errs) = create(&s, replica_set());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(rs["spec"]["replicas"], 1);
    assert!(rs["spec"].get("strategy").is_none());
    rs["status"] = json!({"replicas": 1, "readyReplicas": 1});
    assert_eq!(
        s.selectable_fields(&rs),
        [("status.replicas".to_string(), "1".to_string())]
    );
    let now = parse_time("2026-01-03T00:00:00Z").unwrap();
    assert_eq!(
        s.row(&rs, now),
        vec![
            json!("web"),
            json!(1),
            json!(1),
            json!(1),
            json!("2d"),
            json!("nginx"),
            json!("nginx:1.25"),
            json!("app=web")
        ]
    );
    let mut bad = replica_set();
    bad["spec"]["selector"] = json!({});
    let (_, errs) = create(&s, bad);
    assert_eq!(
        errs,
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        ]
    );
}

fn stateful_set() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                         "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    })
}

#[test]
fn stateful_set_defaults_and_forbidden_updates() {
    let s = stateful_set_strategy();
    assert_eq!(s.name_rule(), NameRule::DnsLabel);
    let (sts, errs) = create(&s, stateful_set());
    assert!(errs.is_empty(), "{errs:?}");
    let spec = &sts["spec"];
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        spec["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    let claim = &spec["volumeClaimTemplates"][0];
    assert_eq!(claim["kind"], "PersistentVolumeClaim");
    assert_eq!(claim["spec"]["volumeMode"], "Filesystem");
    assert_eq!(claim["status"]["phase"], "Pending");

    let mut scaled = sts.clone();
    scaled["spec"]["replicas"] = json!(3);
    assert!(update(&s, &sts, scaled).1.is_empty());
    let mut renamed = sts.clone();
    renamed["spec"]["serviceName"] = json!("other");
    assert_eq!(
        update(&s, &sts, renamed).1,
        [
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        ]
    );
    // Only the template's metadata and restart rule are checked: mounts
    // may name the claim templates, which are not volumes.
    let mut claims = stateful_set();
    claims["spec"]["template"]["metadata"]["annotations"] = json!({"bad key": "x"});
    claims["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/var/lib/postgresql"}]);
    claims["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    let errs = create(&s, claims).1;
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("spec.template.annotations: Invalid value: \"bad key\""));
    assert_eq!(
        errs[1],
        "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
    );

    let mut rs = sts.clone();
    rs["status"] = json!({"readyReplicas": 1, "replicas": 3});
    let now = parse_time("2026-01-01T00:00:00Z").unwrap();
    assert_eq!(s.row(&rs, now)[1], json!("1/1"));
}

fn daemon_set() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                  "containers": [{"name": "a", "image": "agent:1"}]}}
        }
    })
}

#[test]
fn daemon_sets_count_template_generations() {
    let s = daemon_set_strategy(true);
    let (ds, errs) = create(&s, daemon_set());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
    let mut changed = ds.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
    let (changed, errs) = update(&s, &ds, changed);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(changed["metadata"]["annotations"][TEMPLATE_GENERATION], "2");
    let mut same = changed.clone();
    same["metadata"]["annotations"][TEMPLATE_GENERATION] = json!("9");
    let (same, _) = update(&s, &changed, same);
    assert_eq!(same["metadata"]["annotations"][TEMPLATE_GENERATION], "2");

    let now = parse_time("2026-01-01T00:00:00Z").unwrap();
    let row = s.row(&ds, now);
    assert_eq!(row[6], json!("kubernetes.io/os=linux"));
    assert_eq!(row[10], json!("app=agent"));
    assert_eq!(s.columns()[6].name, "Node Selector");

    let mut both = daemon_set();
    both["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}});
    assert_eq!(
        create(&s, both).1,
        [
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}: may not be set when maxUnavailable is non-zero"
        ]
    );
}

#[test]
fn controller_revisions() {
    let s = controller_revision_strategy();
    let cr = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": "web-7d4b9", "namespace": "default",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": true}]},
        "data": {"spec": {}}, "revision": 2
    });
    let (cr, errs) = create(&s, cr);
    assert!(errs.is_empty(), "{errs:?}");
    let now = parse_time("2026-01-01T00:00:00Z").unwrap();
    assert_eq!(
        s.row(&cr, now)[1..3],
        [json!("statefulset.apps/web"), json!(2)]
    );
    let mut changed = cr.clone();
    changed["data"] = json!({"spec": {"x": 1}});
    assert_eq!(
        update(&s, &cr, changed).1,
        ["data: Invalid value: {\"spec\":{\"x\":1}}: field is immutable"]
    );
    let (_, errs) = create(&s, json!({"metadata": {"name": "x"}, "revision": 1}));
    assert_eq!(errs, ["data: Required value: data is mandatory"]);
}
