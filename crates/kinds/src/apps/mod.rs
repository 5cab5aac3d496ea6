//! apps/v1: Deployments, ReplicaSets, StatefulSets, DaemonSets and
//! ControllerRevisions.
//!
//! Pod templates are defaulted and validated by `core::podspec`, the one
//! implementation every kind with a pod spec shares; the kinds here add
//! only their own rules. The submodules hold what the other JSON-based
//! groups share: label selectors (`selector`), counts-or-percentages
//! (`intstr`), Kubernetes' message renderings (`messages`), JSON field
//! access (`fields`) and the generic strategy (`strategy`).

use std::sync::Arc;

use k8s_openapi::api::apps::v1 as apps;
use serde_json::{Value, json};

use crate::catalog::resource;
use crate::table::{self, age_column, column, name_column, wide};
use crate::{Column, FieldError, NameRule, ResourceDef};

pub(crate) mod fields;
pub(crate) mod intstr;
pub(crate) mod messages;
pub(crate) mod selector;
pub(crate) mod strategy;

use fields::{child, default_str, default_value, get, get_map, int_or_zero};
use intstr::{IntOrString, not_more_than_100_percent, validate_positive_int_or_percent};
use messages::{go_label_selector, go_string_map, nonnegative_at};
use selector::{Selector, format_label_selector, format_labels, has_no_terms, validate_selector};
use strategy::{KindStrategy, keep_labels};

use crate::core::field::{immutable, nonnegative, not_supported, supported_values};
use crate::core::podspec::{
    self, container_columns, default_template_json, template_cells, validate_long_running,
    validate_pod_template_spec,
};

/// Where the apps kinds keep their pod template.
const TEMPLATE: &str = "/spec/template";

/// The annotation apps/v1 keeps a DaemonSet's template generation in
/// (extensions/v1beta1 had it as `spec.templateGeneration`).
pub(crate) const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            Arc::new(deployment_strategy(true)),
        )
        .short_names(&["deploy"])
        .categories(&["all"])
        .status()
        .scale()
        .build(),
        resource(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            Arc::new(replica_set_strategy(true)),
        )
        .short_names(&["rs"])
        .categories(&["all"])
        .status()
        .scale()
        .build(),
        resource(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            Arc::new(stateful_set_strategy()),
        )
        .short_names(&["sts"])
        .categories(&["all"])
        .status()
        .scale()
        .build(),
        resource(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            Arc::new(daemon_set_strategy(true)),
        )
        .short_names(&["ds"])
        .categories(&["all"])
        .status()
        .build(),
        resource(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            Arc::new(controller_revision_strategy()),
        )
        .build(),
    ]
}

// ---------------------------------------------------------------------------
// Selectors shared by the workload kinds

/// Checks `spec.selector` of a workload the way Deployments, ReplicaSets
/// and StatefulSets do: required, well-formed, not empty; then the
/// template's labels must match it. `kind` names the kind in the
/// empty-selector message (Kubernetes says "deployment" for ReplicaSets
/// too).
fn validate_required_selector(spec: &Value, kind: &str, with_template: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let sel = get(spec, "/selector");
    match sel {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(s) => {
            errs.extend(validate_selector(Some(s), "spec.selector"));
            if has_no_terms(s) {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    go_label_selector(Some(s)),
                    format!("empty selector is invalid for {kind}"),
                ));
            }
        }
    }
    match Selector::parse(sel) {
        Ok(parsed) => {
            if with_template {
                errs.extend(template_matches(spec, &parsed));
            }
        }
        Err(_) => errs.push(FieldError::invalid(
            "spec.selector",
            go_label_selector(sel),
            "invalid label selector",
        )),
    }
    errs
}

/// `spec.template.metadata.labels: Invalid value: map[...]: `selector` does
/// not match template `labels`` unless the selector is empty.
fn template_matches(spec: &Value, selector: &Selector) -> Vec<FieldError> {
    let labels = get_map(spec, "/template/metadata/labels");
    if !selector.is_empty() && !selector.matches(labels) {
        vec![FieldError::invalid(
            "spec.template.metadata.labels",
            go_string_map(labels),
            "`selector` does not match template `labels`",
        )]
    } else {
        Vec::new()
    }
}

/// `spec.selector: Invalid value: v1.LabelSelector{...}: field is immutable`.
fn selector_immutable(obj: &Value, old: &Value) -> Vec<FieldError> {
    if fields::changed(obj, old, "/spec/selector") {
        vec![immutable(
            "spec.selector",
            go_label_selector(get(obj, "/spec/selector")),
        )]
    } else {
        Vec::new()
    }
}

fn spec_of(obj: &Value) -> Value {
    obj.get("spec").cloned().unwrap_or(Value::Null)
}

/// The wide `Selector` cell: the selector's text, `<none>` when empty.
fn selector_cell(obj: &Value) -> Value {
    Value::String(format_label_selector(get(obj, "/spec/selector")))
}

/// Status counters that may not be negative, then those that may not
/// exceed `status.replicas` (and `availableReplicas` not `readyReplicas`).
fn validate_replica_status(
    obj: &Value,
    counters: &[&str],
    bounded: &[&str],
    available_msg: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for c in counters {
        errs.extend(nonnegative_at(
            obj,
            &format!("/status/{c}"),
            &format!("status.{c}"),
        ));
    }
    let replicas = int_or_zero(obj, "/status/replicas");
    for c in bounded {
        let v = int_or_zero(obj, &format!("/status/{c}"));
        if v > replicas {
            errs.push(FieldError::invalid(
                format!("status.{c}"),
                v.to_string(),
                "cannot be greater than status.replicas",
            ));
        }
    }
    let available = int_or_zero(obj, "/status/availableReplicas");
    if available > int_or_zero(obj, "/status/readyReplicas") {
        errs.push(FieldError::invalid(
            "status.availableReplicas",
            available.to_string(),
            available_msg,
        ));
    }
    errs
}

/// `status.collisionCount: Invalid value: n: cannot be decremented`.
fn collision_count_kept(obj: &Value, old: &Value) -> Vec<FieldError> {
    let new = fields::get_i64(obj, "/status/collisionCount");
    match (new, fields::get_i64(old, "/status/collisionCount")) {
        (n, Some(o)) if n.unwrap_or(0) < o => vec![FieldError::invalid(
            "status.collisionCount",
            n.unwrap_or(0).to_string(),
            "cannot be decremented",
        )],
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Deployments

/// The Deployment strategy; `selector_immutable` is false for the versions
/// that allowed changing the selector (apps/v1beta1, extensions/v1beta1).
pub(crate) fn deployment_strategy(selector_immutable: bool) -> KindStrategy<apps::Deployment> {
    KindStrategy {
        status: true,
        generation: true,
        default: default_deployment,
        prepare_status: keep_labels,
        validate: if selector_immutable {
            validate_deployment
        } else {
            validate_deployment_mutable_selector
        },
        validate_status: validate_deployment_status,
        template: Some(TEMPLATE),
        ..KindStrategy::new(deployment_columns, deployment_row)
    }
}

/// apps/v1 `SetDefaults_Deployment` and the template's defaults.
pub(crate) fn default_deployment(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if strategy["type"] == "RollingUpdate"
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            default_value(ru, "maxUnavailable", json!("25%"));
            default_value(ru, "maxSurge", json!("25%"));
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_value(spec, "progressDeadlineSeconds", json!(600));
    if let Some(template) = child(spec, "template") {
        default_template_json(template);
    }
}

fn validate_deployment(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = validate_deployment_mutable_selector(obj, old);
    if let Some(old) = old {
        errs.extend(selector_immutable(obj, old));
    }
    errs
}

fn validate_deployment_mutable_selector(obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let mut errs = nonnegative("spec.replicas", int_or_zero(&spec, "/replicas"));
    errs.extend(validate_required_selector(&spec, "deployment", true));
    if Selector::parse(get(&spec, "/selector")).is_ok() {
        errs.extend(validate_replica_set_template(obj));
    }
    errs.extend(validate_deployment_strategy(&spec));
    let min_ready = int_or_zero(&spec, "/minReadySeconds");
    errs.extend(nonnegative("spec.minReadySeconds", min_ready));
    errs.extend(nonnegative_at(
        &spec,
        "/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
    ));
    if let Some(deadline) = fields::get_i64(&spec, "/progressDeadlineSeconds") {
        errs.extend(nonnegative("spec.progressDeadlineSeconds", deadline));
        if deadline <= min_ready {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                deadline.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

fn validate_deployment_strategy(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ru = get(spec, "/strategy/rollingUpdate");
    match fields::str_or_empty(spec, "/strategy/type") {
        "Recreate" => {
            if ru.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match ru {
            None => errs.push(FieldError::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let path = "spec.strategy.rollingUpdate";
                let unavailable = IntOrString::from_json(get(ru, "/maxUnavailable"));
                let surge = IntOrString::from_json(get(ru, "/maxSurge"));
                errs.extend(validate_positive_int_or_percent(
                    &unavailable,
                    &format!("{path}.maxUnavailable"),
                ));
                errs.extend(validate_positive_int_or_percent(
                    &surge,
                    &format!("{path}.maxSurge"),
                ));
                if unavailable.value() == 0 && surge.value() == 0 {
                    errs.push(FieldError::invalid(
                        format!("{path}.maxUnavailable"),
                        unavailable.go(),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                errs.extend(not_more_than_100_percent(
                    &unavailable,
                    &format!("{path}.maxUnavailable"),
                ));
            }
        },
        other => errs.push(FieldError::not_supported(
            "spec.strategy",
            strategy_rendering(other, ru),
            supported_values(&["Recreate", "RollingUpdate"]),
        )),
    }
    errs
}

/// A `DeploymentStrategy` struct as `%#v` prints it in messages.
fn strategy_rendering(kind: &str, ru: Option<&Value>) -> String {
    format!(
        "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{}}}",
        crate::validation::quote(kind),
        if ru.is_some() {
            "(*apps.RollingUpdateDeployment)(...)"
        } else {
            "(*apps.RollingUpdateDeployment)(nil)"
        }
    )
}

fn validate_deployment_status(obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_replica_status(
        obj,
        &[
            "observedGeneration",
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "collisionCount",
        ],
        &["updatedReplicas", "readyReplicas", "availableReplicas"],
        "cannot be greater than readyReplicas",
    );
    errs.extend(collision_count_kept(obj, old));
    errs
}

fn deployment_columns() -> Vec<Column> {
    let [containers, images] = container_columns();
    vec![
        name_column(),
        column(
            "Ready",
            "string",
            "Pods that are ready, out of the desired number.",
        ),
        column("Up-to-date", "string", "Pods running the newest template."),
        column(
            "Available",
            "string",
            "Pods available to serve for at least minReadySeconds.",
        ),
        age_column(),
        containers,
        images,
        wide(
            "Selector",
            "string",
            "Label query over the pods the deployment manages.",
        ),
    ]
}

fn deployment_row(obj: &Value, now: i64) -> Vec<Value> {
    let (names, images) = template_cells(obj, TEMPLATE);
    // Kubernetes prints the selector here without the `<none>` stand-in.
    let selector = match Selector::parse(get(obj, "/spec/selector")) {
        Ok(s) => s.to_string(),
        Err(_) => "<invalid>".into(),
    };
    vec![
        table::name(obj),
        json!(format!(
            "{}/{}",
            int_or_zero(obj, "/status/readyReplicas"),
            int_or_zero(obj, "/spec/replicas")
        )),
        json!(int_or_zero(obj, "/status/updatedReplicas")),
        json!(int_or_zero(obj, "/status/availableReplicas")),
        table::age(obj, now),
        json!(names),
        json!(images),
        json!(selector),
    ]
}

// ---------------------------------------------------------------------------
// ReplicaSets

/// The ReplicaSet strategy; `selector_immutable` is false for
/// extensions/v1beta1.
pub(crate) fn replica_set_strategy(selector_immutable: bool) -> KindStrategy<apps::ReplicaSet> {
    KindStrategy {
        status: true,
        generation: true,
        default: default_replica_set,
        prepare_status: keep_labels,
        validate: if selector_immutable {
            validate_replica_set
        } else {
            validate_replica_set_mutable_selector
        },
        validate_status: validate_replica_set_status,
        selectable: |obj| {
            vec![(
                "status.replicas".into(),
                int_or_zero(obj, "/status/replicas").to_string(),
            )]
        },
        template: Some(TEMPLATE),
        ..KindStrategy::new(replica_set_columns, replica_set_row)
    }
}

fn default_replica_set(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    if let Some(template) = child(spec, "template") {
        default_template_json(template);
    }
}

fn validate_replica_set(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = validate_replica_set_mutable_selector(obj, old);
    if let Some(old) = old {
        errs.extend(selector_immutable(obj, old));
    }
    errs
}

fn validate_replica_set_mutable_selector(obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let mut errs = nonnegative("spec.replicas", int_or_zero(&spec, "/replicas"));
    errs.extend(nonnegative(
        "spec.minReadySeconds",
        int_or_zero(&spec, "/minReadySeconds"),
    ));
    errs.extend(validate_required_selector(&spec, "deployment", true));
    if Selector::parse(get(&spec, "/selector")).is_ok() {
        errs.extend(validate_replica_set_template(obj));
    }
    errs
}

/// Kubernetes' `ValidatePodTemplateSpecForReplicaSet` past the selector,
/// which Deployments share: the template, and pods that run until replaced
/// (Kubernetes names ReplicaSets in the message for both kinds).
fn validate_replica_set_template(obj: &Value) -> Vec<FieldError> {
    let template = podspec::template_at(obj, TEMPLATE);
    let mut errs = validate_pod_template_spec(&template, "spec.template");
    errs.extend(validate_long_running(
        &template,
        "spec.template",
        "ReplicaSet",
    ));
    errs
}

fn validate_replica_set_status(obj: &Value, _old: &Value) -> Vec<FieldError> {
    validate_replica_status(
        obj,
        &[
            "replicas",
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
            "observedGeneration",
        ],
        &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
        "cannot be greater than readyReplicas",
    )
}

fn replica_set_columns() -> Vec<Column> {
    let [containers, images] = container_columns();
    vec![
        name_column(),
        column(
            "Desired",
            "integer",
            "Number of pods the replica set should run.",
        ),
        column(
            "Current",
            "integer",
            "Number of pods the replica set runs now.",
        ),
        column("Ready", "integer", "Number of those pods that are ready."),
        age_column(),
        containers,
        images,
        wide(
            "Selector",
            "string",
            "Label query over the pods the replica set manages.",
        ),
    ]
}

fn replica_set_row(obj: &Value, now: i64) -> Vec<Value> {
    let (names, images) = template_cells(obj, TEMPLATE);
    vec![
        table::name(obj),
        json!(int_or_zero(obj, "/spec/replicas")),
        json!(int_or_zero(obj, "/status/replicas")),
        json!(int_or_zero(obj, "/status/readyReplicas")),
        table::age(obj, now),
        json!(names),
        json!(images),
        selector_cell(obj),
    ]
}

// ---------------------------------------------------------------------------
// StatefulSets

/// The StatefulSet strategy (names are DNS labels: they become hostnames).
pub(crate) fn stateful_set_strategy() -> KindStrategy<apps::StatefulSet> {
    KindStrategy {
        status: true,
        generation: true,
        names: NameRule::DnsLabel,
        default: default_stateful_set,
        prepare_status: keep_labels,
        validate: validate_stateful_set,
        validate_status: validate_stateful_set_status,
        template: Some(TEMPLATE),
        ..KindStrategy::new(stateful_set_columns, stateful_set_row)
    }
}

/// apps/v1 `SetDefaults_StatefulSet` and the template's defaults.
pub(crate) fn default_stateful_set(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(us) = child(spec, "updateStrategy") {
        if us.get("type").is_none_or(|t| t.is_null() || t == "") {
            fields::set(us, "type", json!("RollingUpdate"));
            default_value(us, "rollingUpdate", json!({}));
        }
        if us["type"] == "RollingUpdate"
            && let Some(ru) = fields::child_if(us, "rollingUpdate")
        {
            default_value(ru, "partition", json!(0));
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        default_str(policy, "whenDeleted", "Retain");
        default_str(policy, "whenScaled", "Retain");
    }
    default_value(spec, "replicas", json!(1));
    default_value(spec, "revisionHistoryLimit", json!(10));
    if let Some(template) = child(spec, "template") {
        default_template_json(template);
    }
    for claim in fields::each_mut(spec, "volumeClaimTemplates") {
        // apps/v1 writes claim templates as full PersistentVolumeClaims,
        // with the claim defaults Kubernetes gives them.
        default_value(claim, "apiVersion", json!("v1"));
        default_value(claim, "kind", json!("PersistentVolumeClaim"));
        podspec::null_template_timestamp(claim, "");
        if let Some(claim_spec) = child(claim, "spec") {
            default_str(claim_spec, "volumeMode", "Filesystem");
        }
        if let Some(status) = child(claim, "status") {
            default_str(status, "phase", "Pending");
        }
    }
}

fn validate_stateful_set(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let mut errs = Vec::new();
    match fields::str_or_empty(&spec, "/podManagementPolicy") {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            crate::validation::quote(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let ru = get(&spec, "/updateStrategy/rollingUpdate");
    match fields::str_or_empty(&spec, "/updateStrategy/type") {
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if let Some(ru) = ru {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    messages::render(Some(ru)),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = ru {
                let path = "spec.updateStrategy.rollingUpdate";
                errs.extend(nonnegative(
                    &format!("{path}.partition"),
                    int_or_zero(ru, "/partition"),
                ));
                if let Some(max) = get(ru, "/maxUnavailable") {
                    let max = IntOrString::from_json(Some(max));
                    let field = format!("{path}.maxUnavailable");
                    errs.extend(validate_positive_int_or_percent(&max, &field));
                    if max.value() == 0 {
                        errs.push(FieldError::invalid(field.clone(), max.go(), "cannot be 0"));
                    }
                    errs.extend(not_more_than_100_percent(&max, &field));
                }
            }
        }
        _ => errs.push(FieldError::invalid(
            "spec.updateStrategy",
            messages::render(get(&spec, "/updateStrategy")),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    for key in ["whenDeleted", "whenScaled"] {
        if get(&spec, "/persistentVolumeClaimRetentionPolicy").is_some() {
            let value = fields::str_or_empty(
                &spec,
                &format!("/persistentVolumeClaimRetentionPolicy/{key}"),
            );
            if value != "Retain" && value != "Delete" {
                errs.push(not_supported(
                    format!("spec.persistentVolumeClaimRetentionPolicy.{key}"),
                    value,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    errs.extend(nonnegative(
        "spec.replicas",
        int_or_zero(&spec, "/replicas"),
    ));
    errs.extend(nonnegative(
        "spec.minReadySeconds",
        int_or_zero(&spec, "/minReadySeconds"),
    ));
    if get(&spec, "/ordinals").is_some() {
        errs.extend(nonnegative(
            "spec.ordinals.start",
            int_or_zero(&spec, "/ordinals/start"),
        ));
    }
    // StatefulSets check the selector like Deployments but the template
    // only for labels and annotations (Kubernetes leaves its PodSpec
    // unchecked because volume claims complete the volumes).
    errs.extend(validate_required_selector(&spec, "statefulset", true));
    let template = podspec::template_at(obj, TEMPLATE);
    errs.extend(podspec::validate_template_metadata(
        &template,
        "spec.template",
    ));
    errs.extend(validate_long_running(
        &template,
        "spec.template",
        "StatefulSet",
    ));

    if let Some(old) = old {
        let mut a = spec.clone();
        let mut b = spec_of(old);
        for key in [
            "replicas",
            "template",
            "updateStrategy",
            "minReadySeconds",
            "ordinals",
            "persistentVolumeClaimRetentionPolicy",
        ] {
            fields::remove(&mut a, key);
            fields::remove(&mut b, key);
        }
        if !fields::same(Some(&a), Some(&b)) {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
                 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
    errs
}

fn validate_stateful_set_status(obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_replica_status(
        obj,
        &[
            "replicas",
            "readyReplicas",
            "currentReplicas",
            "updatedReplicas",
            "availableReplicas",
            "observedGeneration",
            "collisionCount",
        ],
        &[
            "readyReplicas",
            "currentReplicas",
            "updatedReplicas",
            "availableReplicas",
        ],
        "cannot be greater than status.readyReplicas",
    );
    errs.extend(collision_count_kept(obj, old));
    errs
}

fn stateful_set_columns() -> Vec<Column> {
    let [containers, images] = container_columns();
    vec![
        name_column(),
        column(
            "Ready",
            "string",
            "Pods that are ready, out of the desired number.",
        ),
        age_column(),
        containers,
        images,
    ]
}

fn stateful_set_row(obj: &Value, now: i64) -> Vec<Value> {
    let (names, images) = template_cells(obj, TEMPLATE);
    vec![
        table::name(obj),
        json!(format!(
            "{}/{}",
            int_or_zero(obj, "/status/readyReplicas"),
            int_or_zero(obj, "/spec/replicas")
        )),
        table::age(obj, now),
        json!(names),
        json!(images),
    ]
}

// ---------------------------------------------------------------------------
// DaemonSets

/// The DaemonSet strategy; `selector_immutable` is false for
/// extensions/v1beta1.
pub(crate) fn daemon_set_strategy(selector_immutable: bool) -> KindStrategy<apps::DaemonSet> {
    KindStrategy {
        status: true,
        generation: true,
        default: default_daemon_set,
        prepare_create: prepare_daemon_set_create,
        prepare_update: prepare_daemon_set_update,
        prepare_status: keep_labels,
        validate: if selector_immutable {
            validate_daemon_set
        } else {
            validate_daemon_set_mutable_selector
        },
        validate_status: validate_daemon_set_status,
        template: Some(TEMPLATE),
        ..KindStrategy::new(daemon_set_columns, daemon_set_row)
    }
}

/// apps/v1 `SetDefaults_DaemonSet` and the template's defaults.
pub(crate) fn default_daemon_set(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if let Some(us) = child(spec, "updateStrategy") {
        default_str(us, "type", "RollingUpdate");
        if us["type"] == "RollingUpdate"
            && let Some(ru) = child(us, "rollingUpdate")
        {
            default_value(ru, "maxUnavailable", json!(1));
            default_value(ru, "maxSurge", json!(0));
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    if let Some(template) = child(spec, "template") {
        default_template_json(template);
    }
}

fn template_generation(obj: &Value) -> i64 {
    fields::annotation(obj, TEMPLATE_GENERATION)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// A new DaemonSet starts at template generation 1, kept (as apps/v1 keeps
/// it) in an annotation.
fn prepare_daemon_set_create(obj: &mut Value) {
    let generation = template_generation(obj).max(1);
    fields::set_annotation(obj, TEMPLATE_GENERATION, &generation.to_string());
}

/// Clients may not set the template generation; it goes up by one when the
/// template changes.
fn prepare_daemon_set_update(new: &mut Value, old: &Value) {
    let mut generation = template_generation(old);
    if fields::changed(new, old, "/spec/template") {
        generation += 1;
    }
    fields::set_annotation(new, TEMPLATE_GENERATION, &generation.to_string());
}

fn validate_daemon_set(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = validate_daemon_set_mutable_selector(obj, old);
    if let Some(old) = old {
        errs.extend(selector_immutable(obj, old));
    }
    errs
}

fn validate_daemon_set_mutable_selector(obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let sel = get(&spec, "/selector");
    let mut errs = validate_selector(sel, "spec.selector");
    if let Ok(parsed) = Selector::parse(sel)
        && !parsed.matches(get_map(&spec, "/template/metadata/labels"))
    {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            go_string_map(get_map(&spec, "/template/metadata/labels")),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(s) = sel
        && has_no_terms(s)
    {
        errs.push(FieldError::invalid(
            "spec.selector",
            go_label_selector(Some(s)),
            "empty selector is invalid for daemonset",
        ));
    }
    let template = podspec::template_at(obj, TEMPLATE);
    errs.extend(validate_pod_template_spec(&template, "spec.template"));
    errs.extend(validate_long_running(
        &template,
        "spec.template",
        "DaemonSet",
    ));
    errs.extend(nonnegative(
        "spec.minReadySeconds",
        int_or_zero(&spec, "/minReadySeconds"),
    ));
    let ru = get(&spec, "/updateStrategy/rollingUpdate");
    match fields::str_or_empty(&spec, "/updateStrategy/type") {
        "OnDelete" => {}
        "RollingUpdate" => match ru {
            None => errs.push(FieldError::required(
                "spec.updateStrategy.rollingUpdate",
                "",
            )),
            Some(ru) => {
                let path = "spec.updateStrategy.rollingUpdate";
                let unavailable = IntOrString::from_json(get(ru, "/maxUnavailable"));
                let surge = IntOrString::from_json(get(ru, "/maxSurge"));
                errs.extend(validate_positive_int_or_percent(
                    &unavailable,
                    &format!("{path}.maxUnavailable"),
                ));
                errs.extend(validate_positive_int_or_percent(
                    &surge,
                    &format!("{path}.maxSurge"),
                ));
                errs.extend(not_more_than_100_percent(
                    &unavailable,
                    &format!("{path}.maxUnavailable"),
                ));
                errs.extend(not_more_than_100_percent(
                    &surge,
                    &format!("{path}.maxSurge"),
                ));
                match (unavailable.value() != 0, surge.value() != 0) {
                    (true, true) => errs.push(FieldError::invalid(
                        format!("{path}.maxSurge"),
                        surge.go(),
                        "may not be set when maxUnavailable is non-zero",
                    )),
                    (false, false) => errs.push(FieldError::required(
                        format!("{path}.maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    )),
                    _ => {}
                }
            }
        },
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy",
            format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:{}}}",
                crate::validation::quote(other),
                if ru.is_some() {
                    "(*apps.RollingUpdateDaemonSet)(...)"
                } else {
                    "(*apps.RollingUpdateDaemonSet)(nil)"
                }
            ),
            supported_values(&["RollingUpdate", "OnDelete"]),
        )),
    }
    errs.extend(nonnegative_at(
        &spec,
        "/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
    ));
    errs
}

fn validate_daemon_set_status(obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for c in [
        "currentNumberScheduled",
        "numberMisscheduled",
        "desiredNumberScheduled",
        "numberReady",
        "observedGeneration",
        "updatedNumberScheduled",
        "numberAvailable",
        "numberUnavailable",
        "collisionCount",
    ] {
        errs.extend(nonnegative_at(
            obj,
            &format!("/status/{c}"),
            &format!("status.{c}"),
        ));
    }
    errs.extend(collision_count_kept(obj, old));
    errs
}

fn daemon_set_columns() -> Vec<Column> {
    let [containers, images] = container_columns();
    vec![
        name_column(),
        column(
            "Desired",
            "integer",
            "Number of nodes that should run the daemon pod.",
        ),
        column(
            "Current",
            "integer",
            "Number of nodes running at least one daemon pod.",
        ),
        column(
            "Ready",
            "integer",
            "Number of nodes whose daemon pod is ready.",
        ),
        column(
            "Up-to-date",
            "integer",
            "Number of nodes running the newest template.",
        ),
        column(
            "Available",
            "integer",
            "Number of nodes whose daemon pod is available.",
        ),
        column(
            "Node Selector",
            "string",
            "Labels a node must have to run the daemon pod.",
        ),
        age_column(),
        containers,
        images,
        wide(
            "Selector",
            "string",
            "Label query over the pods the daemon set manages.",
        ),
    ]
}

fn daemon_set_row(obj: &Value, now: i64) -> Vec<Value> {
    let (names, images) = template_cells(obj, TEMPLATE);
    vec![
        table::name(obj),
        json!(int_or_zero(obj, "/status/desiredNumberScheduled")),
        json!(int_or_zero(obj, "/status/currentNumberScheduled")),
        json!(int_or_zero(obj, "/status/numberReady")),
        json!(int_or_zero(obj, "/status/updatedNumberScheduled")),
        json!(int_or_zero(obj, "/status/numberAvailable")),
        json!(format_labels(get_map(
            obj,
            "/spec/template/spec/nodeSelector"
        ))),
        table::age(obj, now),
        json!(names),
        json!(images),
        selector_cell(obj),
    ]
}

// ---------------------------------------------------------------------------
// ControllerRevisions

pub(crate) fn controller_revision_strategy() -> KindStrategy<apps::ControllerRevision> {
    KindStrategy {
        validate: validate_controller_revision,
        ..KindStrategy::new(controller_revision_columns, controller_revision_row)
    }
}

fn validate_controller_revision(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if get(obj, "/data").is_none() {
        errs.push(FieldError::required("data", "data is mandatory"));
    }
    errs.extend(nonnegative("revision", int_or_zero(obj, "/revision")));
    if let Some(old) = old
        && fields::changed(obj, old, "/data")
    {
        errs.push(immutable("data", messages::render(get(obj, "/data"))));
    }
    errs
}

fn controller_revision_columns() -> Vec<Column> {
    vec![
        name_column(),
        column(
            "Controller",
            "string",
            "The object that owns this revision.",
        ),
        column("Revision", "string", "The revision number."),
        age_column(),
    ]
}

fn controller_revision_row(obj: &Value, now: i64) -> Vec<Value> {
    let controller = fields::items(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            let api_version = fields::str_or_empty(r, "/apiVersion");
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let kind = fields::str_or_empty(r, "/kind");
            let name = fields::str_or_empty(r, "/name");
            let group_kind = if group.is_empty() {
                kind.to_owned()
            } else {
                format!("{kind}.{group}")
            };
            if group_kind.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", group_kind.to_lowercase())
            }
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        table::name(obj),
        json!(controller),
        json!(int_or_zero(obj, "/revision")),
        table::age(obj, now),
    ]
}

#[cfg(test)]
pub(crate) mod tests;
