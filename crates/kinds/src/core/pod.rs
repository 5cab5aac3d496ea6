//! Pods: defaults (including what the ServiceAccount and Priority admission
//! plugins fill in), the status a new pod starts with, the update rules
//! that make a pod's spec nearly immutable, and `kubectl get pods` cells.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::podspec::{self, SpecOwner};
use crate::table::{self, column, wide};
use crate::validation::quote;
use crate::{Column, FieldError, Strategy, typed};

/// What the server does to Pods.
pub(crate) struct PodStrategy;

/// The fields of a pod spec an update may change, as Kubernetes lists them.
const UPDATABLE: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,\
`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),\
`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The condition a pod with scheduling gates starts with.
fn scheduling_gated_condition() -> PodCondition {
    PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("SchedulingGated".into()),
        message: Some("Scheduling is blocked due to non-empty scheduling gates".into()),
        ..Default::default()
    }
}

impl Strategy for PodStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        let pod = typed::decode::<Pod>(obj)?;
        podspec::check_spec_quantities(&pod.spec.unwrap_or_default(), "spec")
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |pod: &mut Pod| {
            let spec = pod.spec.get_or_insert_with(PodSpec::default);
            podspec::default_pod_only(spec);
            podspec::default_pod_spec(spec);
        });
    }

    fn prepare_create(&self, obj: &mut Value) {
        typed::modify(obj, |pod: &mut Pod| {
            let spec = pod.spec.get_or_insert_with(PodSpec::default);
            podspec::admit_priority(spec);
            let gated = spec
                .scheduling_gates
                .as_ref()
                .is_some_and(|g| !g.is_empty());
            pod.status = Some(PodStatus {
                phase: Some("Pending".into()),
                qos_class: Some(podspec::qos_class(spec).into()),
                conditions: gated.then(|| vec![scheduling_gated_condition()]),
                ..Default::default()
            });
        });
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        typed::keep_status(new, old);
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
        // The QoS class is fixed at creation; kubelets that drop it do not
        // erase it.
        if typed::str_at(new, "status.qosClass")
            .unwrap_or_default()
            .is_empty()
            && let (Some(class), Some(status)) = (
                typed::at(old, "status.qosClass").cloned(),
                new.get_mut("status").and_then(Value::as_object_mut),
            )
        {
            status.insert("qosClass".into(), class);
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let pod = match typed::decode::<Pod>(obj) {
            Ok(p) => p,
            Err(e) => return vec![e],
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let mut errs = podspec::validate_pod_spec(&spec, "spec", SpecOwner::Pod);
        match old.map(typed::decode::<Pod>) {
            None => {
                if spec
                    .ephemeral_containers
                    .as_ref()
                    .is_some_and(|e| !e.is_empty())
                {
                    errs.push(FieldError::forbidden(
                        "spec.ephemeralContainers",
                        "cannot be set on create",
                    ));
                }
                let gated = spec
                    .scheduling_gates
                    .as_ref()
                    .is_some_and(|g| !g.is_empty());
                if gated && !spec.node_name.as_deref().unwrap_or_default().is_empty() {
                    errs.push(FieldError::forbidden(
                        "spec.nodeName",
                        "cannot be set until all schedulingGates have been cleared",
                    ));
                }
            }
            Some(Ok(old)) => {
                errs.extend(validate_spec_update(&spec, &old.spec.unwrap_or_default()))
            }
            Some(Err(e)) => errs.push(e),
        }
        errs
    }

    fn validate_status(&self, obj: &Value, _old: &Value) -> Vec<FieldError> {
        let pod = match typed::decode::<Pod>(obj) {
            Ok(p) => p,
            Err(e) => return vec![e],
        };
        let status = pod.status.unwrap_or_default();
        let mut errs = Vec::new();
        for (i, ip) in status.pod_ips.iter().flatten().enumerate() {
            errs.extend(super::field::ip(&format!("status.podIPs[{i}]"), &ip.ip));
        }
        if let Some(first) = status.host_ips.as_ref().and_then(|h| h.first())
            && status.host_ip.as_deref().unwrap_or_default() != first.ip
        {
            errs.push(FieldError::invalid(
                "status.hostIPs[0].ip",
                quote(&first.ip),
                "must be equal to `hostIP`",
            ));
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        // Kubernetes 1.32 does not set metadata.generation on pods.
        false
    }

    fn has_status_subresource(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column(
                "Status",
                "string",
                "The aggregate status of the containers in this pod.",
            ),
            column(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when the \
                 last container in this pod has restarted.",
            ),
            table::age_column(),
            wide(
                "IP",
                "string",
                "podIP address allocated to the pod. Routable at least within the cluster. Empty \
                 if not yet allocated.",
            ),
            wide(
                "Node",
                "string",
                "NodeName indicates in which node this pod is scheduled.",
            ),
            wide(
                "Nominated Node",
                "string",
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            wide(
                "Readiness Gates",
                "string",
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let pod = typed::decode::<Pod>(&row_view(obj)).unwrap_or_default();
        let cells = pod_cells(&pod, now);
        vec![
            table::name(obj),
            json!(cells.ready),
            json!(cells.status),
            json!(cells.restarts),
            table::age(obj, now),
            json!(cells.ip),
            json!(cells.node),
            json!(cells.nominated_node),
            json!(cells.readiness_gates),
        ]
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        let s = |path: &str| typed::str_at(obj, path).unwrap_or_default().to_owned();
        let host_network = typed::at(obj, "spec.hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let pod_ip = obj
            .pointer("/status/podIPs/0/ip")
            .and_then(Value::as_str)
            .unwrap_or_default();
        vec![
            ("spec.nodeName".into(), s("spec.nodeName")),
            ("spec.restartPolicy".into(), s("spec.restartPolicy")),
            ("spec.schedulerName".into(), s("spec.schedulerName")),
            (
                "spec.serviceAccountName".into(),
                s("spec.serviceAccountName"),
            ),
            ("spec.hostNetwork".into(), host_network.to_string()),
            ("status.phase".into(), s("status.phase")),
            ("status.podIP".into(), pod_ip.to_owned()),
            // Kubernetes accepts this label but keeps no value for it, so it
            // only ever matches the empty string.
            ("status.podIPs".into(), String::new()),
            (
                "status.nominatedNodeName".into(),
                s("status.nominatedNodeName"),
            ),
        ]
    }
}

/// Update checks of a pod spec (`ValidatePodUpdate`): containers may not be
/// added or removed, and nothing but images, a shorter deadline, added
/// tolerations and removed scheduling gates may change.
fn validate_spec_update(new: &PodSpec, old: &PodSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (list, new_c, old_c) in [
        ("containers", new.containers.clone(), old.containers.clone()),
        (
            "initContainers",
            new.init_containers.clone().unwrap_or_default(),
            old.init_containers.clone().unwrap_or_default(),
        ),
    ] {
        if new_c.len() != old_c.len() {
            errs.push(FieldError::forbidden(
                format!("spec.{list}"),
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
        for (i, c) in new_c.iter().enumerate() {
            let image = c.image.as_deref().unwrap_or_default();
            if image.is_empty() {
                errs.push(FieldError::required(format!("spec.{list}[{i}].image"), ""));
            }
        }
    }
    if let Some(deadline) = new.active_deadline_seconds {
        if !(0..=i64::from(i32::MAX)).contains(&deadline) {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                deadline.to_string(),
                super::field::range_error(0, i64::from(i32::MAX)),
            ));
            return errs;
        }
        if old
            .active_deadline_seconds
            .is_some_and(|old| old < deadline)
        {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                deadline.to_string(),
                "must be less than or equal to previous value",
            ));
            return errs;
        }
    } else if old.active_deadline_seconds.is_some() {
        errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            "null",
            "must not update from a positive integer to nil value",
        ));
    }
    // Existing tolerations stay, except for their tolerationSeconds.
    let new_tolerations = new.tolerations.clone().unwrap_or_default();
    for old_t in old.tolerations.iter().flatten() {
        let kept = new_tolerations.iter().any(|n| {
            let mut o = old_t.clone();
            o.toleration_seconds = n.toleration_seconds;
            o == *n
        });
        if !kept {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    // Scheduling gates may only be removed.
    let old_gates: Vec<&str> = old
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, gate) in new.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(&gate.name.as_str()) {
            errs.push(FieldError::forbidden(
                format!("spec.schedulingGates[{i}].name"),
                format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    gate.name
                ),
            ));
        }
    }
    // Everything else must be unchanged: blank out what may change and compare.
    let mut munged = new.clone();
    for (c, o) in munged.containers.iter_mut().zip(&old.containers) {
        c.image.clone_from(&o.image);
    }
    if let (Some(new_init), Some(old_init)) =
        (munged.init_containers.as_mut(), &old.init_containers)
    {
        for (c, o) in new_init.iter_mut().zip(old_init) {
            c.image.clone_from(&o.image);
        }
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    munged.scheduling_gates.clone_from(&old.scheduling_gates);
    munged.tolerations.clone_from(&old.tolerations);
    if old.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    // Gated pods may gain node selectors and node affinity.
    if !old_gates.is_empty() {
        munged.node_selector.clone_from(&old.node_selector);
        let old_node_affinity = old.affinity.as_ref().and_then(|a| a.node_affinity.clone());
        if let Some(affinity) = munged.affinity.as_mut() {
            affinity.node_affinity = old_node_affinity;
        }
    }
    if typed::encode(&munged) != typed::encode(old) {
        errs.push(FieldError::forbidden(
            "spec",
            format!("pod updates may not change fields other than {UPDATABLE}"),
        ));
    }
    errs
}

/// The cells of a pod's row, computed as `kubectl get pods` shows them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PodCells {
    /// `1/2`: ready containers of all (regular and sidecar) containers.
    pub(crate) ready: String,
    /// `Running`, `CrashLoopBackOff`, `Init:0/1`, `Terminating`, ...
    pub(crate) status: String,
    /// `3 (5m ago)` or `0`.
    pub(crate) restarts: String,
    /// The first pod IP, or `<none>`.
    pub(crate) ip: String,
    /// The node, or `<none>`.
    pub(crate) node: String,
    /// The nominated node, or `<none>`.
    pub(crate) nominated_node: String,
    /// `1/2` of readiness gates whose condition is true, or `<none>`.
    pub(crate) readiness_gates: String,
}

/// When a container last terminated, in seconds since the epoch.
fn last_terminated(status: &ContainerStatus) -> Option<i64> {
    status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
        .map(|t: &Time| t.0.as_second())
}

/// Computes a pod's cells the way Kubernetes' printer does.
/// The parts of a pod its row reads: the status, and of the spec only
/// what names containers and gates. Decoding a whole pod (every env var,
/// volume and probe) into typed form is most of the cost of a row, and
/// `kubectl get pods` builds thousands of rows.
fn row_view(obj: &Value) -> Value {
    let spec = obj.get("spec");
    let pick = |key: &str, fields: &[&str]| -> Value {
        let items = spec
            .and_then(|s| s.get(key))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|c| {
                        let mut out = serde_json::Map::new();
                        for f in fields {
                            if let Some(v) = c.get(*f) {
                                out.insert((*f).to_owned(), v.clone());
                            }
                        }
                        Value::Object(out)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Value::Array(items)
    };
    let mut view = json!({
        "spec": {
            "containers": pick("containers", &["name"]),
            "initContainers": pick("initContainers", &["name", "restartPolicy"]),
        }
    });
    for key in ["nodeName", "readinessGates"] {
        if let Some(v) = spec.and_then(|s| s.get(key)) {
            view["spec"][key] = v.clone();
        }
    }
    for key in ["metadata", "status"] {
        if let Some(v) = obj.get(key) {
            view[key] = v.clone();
        }
    }
    view
}

pub(crate) fn pod_cells(pod: &Pod, now: i64) -> PodCells {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| phase.clone());
    let conditions = status.conditions.clone().unwrap_or_default();
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".into();
    }

    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
    };
    let total = spec.containers.len()
        + init_specs
            .iter()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .count();
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<i64> = None;
    let mut last_sidecar_restart: Option<i64> = None;

    let mut initializing = false;
    for (i, c) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += i64::from(c.restart_count);
        if let Some(t) = last_terminated(c) {
            last_restart = last_restart.max(Some(t));
        }
        let sidecar = is_sidecar(&c.name);
        if sidecar {
            sidecar_restarts += i64::from(c.restart_count);
            if let Some(t) = last_terminated(c) {
                last_sidecar_restart = last_sidecar_restart.max(Some(t));
            }
        }
        let state = c.state.clone().unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = &state.terminated {
            reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal.filter(|s| *s != 0) {
                    Some(signal) => format!("Init:Signal:{signal}"),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
            };
        } else if let Some(waiting) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{waiting}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            restarts += i64::from(c.restart_count);
            if let Some(t) = last_terminated(c) {
                last_restart = last_restart.max(Some(t));
            }
            let state = c.state.clone().unwrap_or_default();
            let waiting = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty());
            if let Some(w) = waiting {
                reason = w;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.clone().filter(|r| !r.is_empty()) {
                    Some(r) => r,
                    None => match t.signal.filter(|s| *s != 0) {
                        Some(signal) => format!("Signal:{signal}"),
                        None => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if c.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed while another still runs is
        // shown as running (or not ready).
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }

    let deleting = pod.metadata.deletion_timestamp.is_some();
    if deleting && status.reason.as_deref() == Some("NodeLost") {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts = match last_restart {
        Some(at) if restarts != 0 => {
            format!("{restarts} ({} ago)", table::human_duration(now - at))
        }
        _ => restarts.to_string(),
    };
    let or_none = |s: Option<String>| {
        s.filter(|s| !s.is_empty())
            .unwrap_or_else(|| "<none>".into())
    };
    let gates = spec.readiness_gates.clone().unwrap_or_default();
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| c.type_ == g.condition_type)
                    .is_some_and(|c| c.status == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    PodCells {
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts,
        ip: or_none(
            status
                .pod_ips
                .as_ref()
                .and_then(|ips| ips.first())
                .map(|ip| ip.ip.clone()),
        ),
        node: or_none(spec.node_name.clone()),
        nominated_node: or_none(status.nominated_node_name.clone()),
        readiness_gates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::parse_time;

    fn now() -> i64 {
        parse_time("2026-11-23T10:00:00Z").unwrap()
    }

    fn pod(value: Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn cells(value: Value) -> (String, String, String) {
        let c = pod_cells(&pod(value), now());
        (c.ready, c.status, c.restarts)
    }

    #[test]
    fn rows_read_like_kubectl() {
        let cases = [
            (
                "running",
                json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
                    "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0,
                        "image": "x", "imageID": "", "state": {"running": {}}}]}}),
                ("1/1", "Running", "0"),
            ),
            (
                "crash loop with restarts",
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "status": {"phase": "Running",
                    "containerStatuses": [
                        {"name": "a", "ready": false, "restartCount": 3, "image": "x", "imageID": "",
                         "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                         "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-23T09:55:00Z"}}},
                        {"name": "b", "ready": true, "restartCount": 0, "image": "x", "imageID": "",
                         "state": {"running": {}}}]}}),
                ("1/2", "CrashLoopBackOff", "3 (5m ago)"),
            ),
            (
                "completed",
                json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Succeeded",
                    "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0,
                        "image": "x", "imageID": "",
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}),
                ("0/1", "Completed", "0"),
            ),
            (
                "waiting on an init container",
                json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
                    "status": {"phase": "Pending",
                    "initContainerStatuses": [{"name": "i", "ready": false, "restartCount": 0,
                        "image": "x", "imageID": "", "state": {"running": {}}}],
                    "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0,
                        "image": "x", "imageID": "", "state": {"waiting": {"reason": "PodInitializing"}}}]}}),
                ("0/1", "Init:0/1", "0"),
            ),
            (
                "failed init container",
                json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
                    "status": {"phase": "Pending",
                    "initContainerStatuses": [{"name": "i", "ready": false, "restartCount": 2,
                        "image": "x", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
                ("0/1", "Init:CrashLoopBackOff", "2"),
            ),
            (
                "terminating",
                json!({"metadata": {"deletionTimestamp": "2026-11-23T09:59:00Z"},
                    "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
                    "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0,
                        "image": "x", "imageID": "", "state": {"running": {}}}]}}),
                ("1/1", "Terminating", "0"),
            ),
            (
                "pending, not scheduled",
                json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}}),
                ("0/1", "Pending", "0"),
            ),
            (
                "scheduling gated",
                json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}),
                ("0/1", "SchedulingGated", "0"),
            ),
            (
                "sidecar counts as a container",
                json!({"spec": {"initContainers": [{"name": "s", "restartPolicy": "Always"}],
                    "containers": [{"name": "a"}]}, "status": {"phase": "Running",
                    "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [{"name": "s", "ready": true, "started": true,
                        "restartCount": 1, "image": "x", "imageID": "", "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-23T08:00:00Z"}}}],
                    "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0,
                        "image": "x", "imageID": "", "state": {"running": {}}}]}}),
                ("2/2", "Running", "1 (120m ago)"),
            ),
        ];
        for (name, value, (ready, status, restarts)) in cases {
            assert_eq!(
                cells(value),
                (ready.to_owned(), status.to_owned(), restarts.to_owned()),
                "{name}"
            );
        }
    }

    #[test]
    fn wide_cells() {
        let p = pod(
            json!({"spec": {"containers": [{"name": "a"}], "nodeName": "n1",
            "readinessGates": [{"conditionType": "example.com/ready"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.5"}],
            "conditions": [{"type": "example.com/ready", "status": "True"}]}}),
        );
        let c = pod_cells(&p, now());
        assert_eq!(c.ip, "10.1.0.5");
        assert_eq!(c.node, "n1");
        assert_eq!(c.nominated_node, "<none>");
        assert_eq!(c.readiness_gates, "1/1");
    }

    fn created(input: Value) -> Value {
        let mut obj = input;
        PodStrategy.default(&mut obj);
        PodStrategy.prepare_create(&mut obj);
        obj
    }

    #[test]
    fn defaults_and_create() {
        let obj = created(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "web", "image": "nginx",
                "ports": [{"containerPort": 80}],
                "livenessProbe": {"httpGet": {"port": 80}},
                "resources": {"limits": {"cpu": "0.5", "memory": "128Mi"}}}],
                "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "tmp"}]}}));
        let spec = &obj["spec"];
        assert_eq!(obj["kind"], "Pod");
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["resources"]["limits"]["cpu"], "500m");
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu": "500m", "memory": "128Mi"})
        );
        assert_eq!(
            c["livenessProbe"],
            json!({"failureThreshold": 3, "httpGet": {"path": "/", "port": 80, "scheme": "HTTP"},
                   "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1})
        );
        assert_eq!(spec["volumes"][0]["configMap"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][1]["emptyDir"], json!({}));
        assert_eq!(
            obj["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
        assert!(PodStrategy.validate(&obj, None).is_empty());
    }

    #[test]
    fn updates_may_only_change_images() {
        let old = created(json!({"metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}));
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert!(PodStrategy.validate(&image, Some(&old)).is_empty());

        let mut port = old.clone();
        port["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
        let errs = PodStrategy.validate(&port, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            format!("spec: Forbidden: pod updates may not change fields other than {UPDATABLE}")
        );

        let mut added = old.clone();
        added["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "b", "image": "x"}));
        PodStrategy.default(&mut added);
        let errs = PodStrategy.validate(&added, Some(&old));
        assert!(errs.iter().any(|e| e.to_string()
            == "spec.containers: Forbidden: pod updates may not add or remove containers"));
    }

    #[test]
    fn status_writes_keep_spec_and_qos() {
        let old = created(json!({"metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}}));
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!("sneaky");
        new["status"] = json!({"phase": "Running"});
        PodStrategy.prepare_status_update(&mut new, &old);
        assert!(new["spec"].get("nodeName").is_none());
        assert_eq!(new["status"]["qosClass"], "BestEffort");
        assert_eq!(new["status"]["phase"], "Running");
    }

    #[test]
    fn field_selectors() {
        let obj = created(json!({"metadata": {"name": "web"},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "nginx"}]}}));
        let fields = PodStrategy.selectable_fields(&obj);
        assert!(fields.contains(&("spec.nodeName".into(), "n1".into())));
        assert!(fields.contains(&("status.phase".into(), "Pending".into())));
        assert!(fields.contains(&("spec.hostNetwork".into(), "false".into())));
        assert!(fields.contains(&("spec.serviceAccountName".into(), "default".into())));
    }
}
