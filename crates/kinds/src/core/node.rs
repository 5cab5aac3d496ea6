//! Nodes: allocatable defaulting to capacity, taints, the fields that may
//! only be set once (pod CIDRs, provider ID), and `kubectl get nodes` cells.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, NodeStatus, Taint};
use serde_json::Value;

use super::cell;
use super::field;
use super::quantity;
use crate::table::{self, column, wide};
use crate::validation::{self, quote};
use crate::{Column, FieldError, Strategy, typed};

/// What the server does to Nodes.
pub(crate) struct NodeStrategy;

/// Status defaults: allocatable is the capacity unless reported, and
/// quantities are canonical.
fn default_status(status: &mut NodeStatus) {
    if status.allocatable.is_none() && status.capacity.is_some() {
        status.allocatable.clone_from(&status.capacity);
    }
    quantity::default_resource_list(&mut status.capacity);
    quantity::default_resource_list(&mut status.allocatable);
}

/// A taint as Go prints it in a duplicate-taint error.
fn go_taint(t: &Taint) -> String {
    format!(
        "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:(*v1.Time)(nil)}}",
        quote(&t.key),
        quote(t.value.as_deref().unwrap_or_default()),
        quote(&t.effect)
    )
}

/// Errors for a node's taints. Kubernetes reports them under `metadata`.
fn validate_taints(taints: &[Taint]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, t) in taints.iter().enumerate() {
        let p = format!("metadata.taints[{i}]");
        errs.extend(field::qualified_name(&format!("{p}.key"), &t.key));
        let value = t.value.as_deref().unwrap_or_default();
        let problems = validation::label_value(value);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                format!("{p}.value"),
                quote(value),
                problems.join(";"),
            ));
        }
        errs.extend(field::required_one_of(
            &format!("{p}.effect"),
            t.effect.as_str(),
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
        if !seen.insert((t.effect.clone(), t.key.clone())) {
            let mut e = FieldError::duplicate(&p, go_taint(t));
            e.detail = "taints must be unique by key and effect pair".into();
            errs.push(e);
        }
    }
    errs
}

/// Errors for a node's capacity and allocatable resources.
fn validate_resources(node: &Node) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let status = node.status.clone().unwrap_or_default();
    for (list, items) in [
        ("capacity", &status.capacity),
        ("allocatable", &status.allocatable),
    ] {
        for (name, raw) in items.iter().flatten() {
            let p = format!("status.{list}.{name}");
            match field::parse_quantity(&p, raw) {
                Ok(q) => errs.extend(field::resource_quantity(&p, name, q)),
                Err(e) => errs.push(e),
            }
        }
    }
    errs
}

impl Strategy for NodeStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        let node = typed::decode::<Node>(obj)?;
        let status = node.status.unwrap_or_default();
        field::check_quantities("status.capacity", status.capacity.as_ref())?;
        field::check_quantities("status.allocatable", status.allocatable.as_ref())
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |node: &mut Node| {
            if let Some(status) = node.status.as_mut() {
                default_status(status);
            }
        });
    }

    fn prepare_create(&self, _obj: &mut Value) {
        // The kubelet registers its node with a status; it is kept.
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        typed::keep_status(new, old);
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
        // Status writes skip the defaulting pass, but kubelets rely on it.
        typed::modify(new, |node: &mut Node| {
            if let Some(status) = node.status.as_mut() {
                default_status(status);
            }
        });
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let node = match typed::decode::<Node>(obj) {
            Ok(n) => n,
            Err(e) => return vec![e],
        };
        let spec = node.spec.clone().unwrap_or_default();
        let mut errs = validate_taints(spec.taints.as_deref().unwrap_or_default());
        errs.extend(validate_resources(&node));
        let cidrs = spec.pod_cidrs.clone().unwrap_or_default();
        for (i, cidr) in cidrs.iter().enumerate() {
            errs.extend(cidr_errors(&format!("spec.podCIDRs[{i}]"), cidr));
        }
        let Some(old) = old else {
            return errs;
        };
        let old = match typed::decode::<Node>(old) {
            Ok(n) => n,
            Err(e) => return vec![e],
        };
        let old_spec = old.spec.unwrap_or_default();
        let old_cidrs = old_spec.pod_cidrs.unwrap_or_default();
        if !old_cidrs.is_empty() && old_cidrs != cidrs {
            errs.push(FieldError::forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        let old_provider = old_spec.provider_id.unwrap_or_default();
        if !old_provider.is_empty() && Some(&old_provider) != spec.provider_id.as_ref() {
            errs.push(FieldError::forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        if old_spec.external_id != spec.external_id {
            errs.push(FieldError::forbidden(
                "spec.externalID",
                "may not be updated",
            ));
        }
        errs
    }

    fn validate_status(&self, obj: &Value, _old: &Value) -> Vec<FieldError> {
        match typed::decode::<Node>(obj) {
            Ok(node) => validate_resources(&node),
            Err(e) => vec![e],
        }
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn has_status_subresource(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column("Status", "string", "The status of the node"),
            column("Roles", "string", "The roles of the node"),
            table::age_column(),
            column("Version", "string", "Kubelet Version reported by the node."),
            wide(
                "Internal-IP",
                "string",
                "List of addresses reachable to the node.",
            ),
            wide(
                "External-IP",
                "string",
                "List of addresses reachable to the node.",
            ),
            wide(
                "OS-Image",
                "string",
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            wide(
                "Kernel-Version",
                "string",
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            wide(
                "Container-Runtime",
                "string",
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let node = typed::decode::<Node>(obj).unwrap_or_default();
        let status = node.status.clone().unwrap_or_default();
        let mut states: Vec<String> = status
            .conditions
            .iter()
            .flatten()
            .rfind(|c| c.type_ == "Ready")
            .map(|c| {
                if c.status == "True" {
                    "Ready".to_owned()
                } else {
                    "NotReady".to_owned()
                }
            })
            .into_iter()
            .collect();
        if states.is_empty() {
            states.push("Unknown".into());
        }
        if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            states.push("SchedulingDisabled".into());
        }
        let roles: BTreeSet<String> = node
            .metadata
            .labels
            .iter()
            .flatten()
            .filter_map(|(k, v)| {
                if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                    (!role.is_empty()).then(|| role.to_owned())
                } else if k == "kubernetes.io/role" && !v.is_empty() {
                    Some(v.clone())
                } else {
                    None
                }
            })
            .collect();
        let address = |ty: &str| {
            status
                .addresses
                .iter()
                .flatten()
                .find(|a| a.type_ == ty)
                .map_or_else(|| "<none>".to_owned(), |a| a.address.clone())
        };
        let info = status.node_info.clone().unwrap_or_default();
        let or_unknown = |s: String| {
            if s.is_empty() {
                "<unknown>".to_owned()
            } else {
                s
            }
        };
        vec![
            table::name(obj),
            cell(states.join(",")),
            cell(table::join_or_none(roles)),
            table::age(obj, now),
            cell(info.kubelet_version.clone()),
            cell(address("InternalIP")),
            cell(address("ExternalIP")),
            cell(or_unknown(info.os_image)),
            cell(or_unknown(info.kernel_version)),
            cell(or_unknown(info.container_runtime_version)),
        ]
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        let unschedulable = typed::at(obj, "spec.unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        vec![("spec.unschedulable".into(), unschedulable.to_string())]
    }
}

/// Errors for a CIDR such as `10.244.0.0/24`.
pub(crate) fn cidr_errors(field: &str, value: &str) -> Vec<FieldError> {
    let valid = value.split_once('/').is_some_and(|(ip, bits)| {
        let max = if ip.contains(':') { 128 } else { 32 };
        field::parse_ip(ip).is_some() && bits.parse::<u8>().is_ok_and(|b| b <= max)
    });
    if valid {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            field,
            quote(value),
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> Value {
        json!({"metadata": {"name": "n1", "creationTimestamp": "2026-11-20T10:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"}},
            "spec": {"unschedulable": true, "podCIDRs": ["10.244.0.0/24"]},
            "status": {"capacity": {"cpu": "4", "memory": "8000Mi"},
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12",
                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "gantry://0.1.0",
                    "architecture": "amd64", "bootID": "", "kubeProxyVersion": "", "machineID": "",
                    "operatingSystem": "linux", "systemUUID": ""}}})
    }

    #[test]
    fn defaults_and_rows() {
        let mut obj = node();
        NodeStrategy.default(&mut obj);
        assert_eq!(
            obj["status"]["allocatable"],
            json!({"cpu": "4", "memory": "8000Mi"})
        );
        let now = table::parse_time("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(
            NodeStrategy.row(&obj, now),
            [
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,edge"),
                json!("3d"),
                json!("v1.32.0"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("6.1.0"),
                json!("gantry://0.1.0"),
            ]
        );
        assert_eq!(
            NodeStrategy.selectable_fields(&obj),
            [("spec.unschedulable".into(), "true".into())]
        );
        let bare = json!({"metadata": {"name": "n2"}});
        assert_eq!(
            NodeStrategy.row(&bare, now)[1..3],
            [json!("Unknown"), json!("<none>")]
        );
    }

    #[test]
    fn validation() {
        let old = node();
        assert!(NodeStrategy.validate(&old, None).is_empty());
        let mut new = old.clone();
        new["spec"]["podCIDRs"] = json!(["10.244.1.0/24"]);
        new["spec"]["taints"] = json!([
            {"key": "a", "effect": "NoSchedule"},
            {"key": "a", "effect": "NoSchedule"},
            {"key": "b", "effect": "Sometimes"}]);
        let got: Vec<String> = NodeStrategy
            .validate(&new, Some(&old))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "metadata.taints[1]: Duplicate value: core.Taint{Key:\"a\", Value:\"\", Effect:\"NoSchedule\", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair",
                "metadata.taints[2].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid",
            ]
        );
    }
}
