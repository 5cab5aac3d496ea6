//! The node lifecycle controller: notices nodes whose kubelet stopped
//! reporting, and keeps every node's taints in line with its conditions.
//!
//! A node is alive while its Lease in `kube-node-lease` is renewed or its
//! Ready condition's heartbeat moves. Both are compared with what this
//! controller saw last, on its own clock, so clocks that differ between
//! machines do not matter: a node that shows no sign of life for the grace
//! period gets its conditions set to Unknown, its pods marked not ready, and
//! (through the taints) no new pods; the taint eviction controller then
//! deletes its pods once their tolerations run out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio::time::Instant;

use crate::events::Events;
use crate::informers::Informers;

/// The taint a node gets while its Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint a node gets while its Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The taints this controller owns: derived from a condition (or
/// `spec.unschedulable`), added and removed here only.
const CONDITION_TAINTS: [&str; 7] = [
    NOT_READY,
    UNREACHABLE,
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/network-unavailable",
    "node.kubernetes.io/unschedulable",
];

/// The conditions set to Unknown when the kubelet goes quiet.
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// How long a node that has never reported gets (kube-controller-manager's
/// `--node-startup-grace-period`).
const STARTUP_GRACE: Duration = Duration::from_secs(60);

/// How this controller judges nodes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a node may show no sign of life before it is Unknown
    /// (`--node-monitor-grace-period`, 50 s in Kubernetes 1.32).
    pub grace_period: Duration,
    /// How often every node is looked at (`--node-monitor-period`, 5 s).
    pub monitor_period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(50),
            monitor_period: Duration::from_secs(5),
        }
    }
}

/// What was last seen of a node's signs of life, and when.
struct Health {
    heartbeat: Option<Time>,
    renewed: Option<String>,
    probed: Instant,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers, settings: Settings) -> anyhow::Result<()> {
    let client = informers.client();
    let nodes = informers.get::<Node>().await;
    let leases = informers.get::<Lease>().await;
    let pods = informers.get::<Pod>().await;
    let c = Controller {
        nodes_api: Api::all(client.clone()),
        events: Events::new(client.clone(), "node-controller"),
        client,
        nodes: nodes.store(),
        leases: leases.store(),
        pods: pods.store(),
        settings,
        health: HashMap::new(),
    };
    c.run(nodes.stream()).await
}

struct Controller {
    client: kube::Client,
    nodes_api: Api<Node>,
    events: Events,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    settings: Settings,
    health: HashMap<String, Health>,
}

impl Controller {
    async fn run(
        mut self,
        changes: impl futures::Stream<Item = Result<Node, kube::runtime::watcher::Error>> + Send,
    ) -> anyhow::Result<()> {
        let mut changes = std::pin::pin!(changes);
        let mut tick = tokio::time::interval(self.settings.monitor_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = changes.next() => {
                    let Some(Ok(node)) = change else {
                        anyhow::bail!("the node lifecycle controller's node stream ended");
                    };
                    // A change of conditions or of `unschedulable` shows in
                    // the taints at once, not at the next tick.
                    if let Some(node) = self.nodes.get(&ObjectRef::from_obj(&node)) {
                        self.taint(&node).await;
                    }
                }
                _ = tick.tick() => self.monitor().await,
            }
        }
    }

    /// Looks at every node: its signs of life, then its taints.
    async fn monitor(&mut self) {
        let now = Instant::now();
        let nodes = self.nodes.state();
        self.health
            .retain(|name, _| nodes.iter().any(|n| n.name_any() == *name));
        for node in nodes {
            let name = node.name_any();
            let heartbeat = condition(&node, "Ready").and_then(|c| c.last_heartbeat_time.clone());
            let renewed = self
                .leases
                .get(&ObjectRef::new(&name).within("kube-node-lease"))
                .and_then(|l| {
                    l.spec
                        .as_ref()?
                        .renew_time
                        .as_ref()
                        .map(|t| t.0.to_string())
                });
            let health = self.health.entry(name.clone()).or_insert(Health {
                heartbeat: heartbeat.clone(),
                renewed: renewed.clone(),
                probed: now,
            });
            if health.heartbeat != heartbeat || health.renewed != renewed {
                health.heartbeat = heartbeat;
                health.renewed = renewed;
                health.probed = now;
            }
            let never_reported = condition(&node, "Ready").is_none();
            let grace = if never_reported {
                STARTUP_GRACE.max(self.settings.grace_period)
            } else {
                self.settings.grace_period
            };
            let quiet = now.duration_since(health.probed) > grace;
            let node = if quiet {
                match self.mark_unknown(&node).await {
                    Some(updated) => Arc::new(updated),
                    None => node,
                }
            } else {
                node
            };
            self.taint(&node).await;
        }
    }

    /// Sets the kubelet's conditions of a node that went quiet to Unknown;
    /// returns the node as written, if anything changed.
    async fn mark_unknown(&self, node: &Node) -> Option<Node> {
        let name = node.name_any();
        let now = Time(Timestamp::now());
        let mut updated = node.clone();
        let status = updated.status.get_or_insert_with(Default::default);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        let was_ready = conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.clone());
        let mut changed = false;
        for type_ in KUBELET_CONDITIONS {
            match conditions.iter_mut().find(|c| c.type_ == type_) {
                Some(c) if c.status == "Unknown" => {}
                Some(c) => {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(now.clone());
                    changed = true;
                }
                None => {
                    conditions.push(NodeCondition {
                        type_: type_.into(),
                        status: "Unknown".into(),
                        reason: Some("NodeStatusNeverUpdated".into()),
                        message: Some("Kubelet never posted node status.".into()),
                        last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                        last_transition_time: Some(now.clone()),
                    });
                    changed = true;
                }
            }
        }
        if !changed {
            return None;
        }
        // Replaced at the version read: a kubelet that spoke meanwhile wins.
        let written = match self
            .nodes_api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(node = %name, error = %e, "marking a node Unknown");
                return None;
            }
        };
        tracing::info!(node = %name, "the node stopped reporting; its status is now Unknown");
        self.events
            .publish(
                node,
                EventType::Normal,
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            )
            .await;
        if was_ready.as_deref() != Some("Unknown") {
            self.mark_pods_not_ready(&name).await;
        }
        Some(written)
    }

    /// Sets the Ready condition of every pod on a node to False, as the
    /// kubelet would if it could.
    async fn mark_pods_not_ready(&self, node: &str) {
        let now = Time(Timestamp::now());
        for pod in self.pods.state() {
            let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
            if !on_node || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let mut updated = Pod::clone(&pod);
            let Some(ready) = updated
                .status
                .as_mut()
                .and_then(|s| s.conditions.as_mut())
                .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "Ready"))
            else {
                continue;
            };
            if ready.status == "False" {
                continue;
            }
            ready.status = "False".into();
            ready.last_transition_time = Some(now.clone());
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            match api
                .replace_status(&pod.name_any(), &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {
                    self.events
                        .publish(
                            &*pod,
                            EventType::Warning,
                            "NodeNotReady",
                            "Node is not ready".into(),
                        )
                        .await
                }
                Err(e) => {
                    tracing::debug!(pod = %pod.name_any(), error = %e, "marking a pod not ready")
                }
            }
        }
    }

    /// Brings the node's condition taints in line with its conditions.
    async fn taint(&self, node: &Node) {
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let want = wanted_taints(node);
        let Some(taints) = reconcile_taints(&current, &want) else {
            return;
        };
        let name = node.name_any();
        // At the version read, so a concurrent change of taints is not lost.
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": taints},
        });
        if let Err(e) = self
            .nodes_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            tracing::debug!(node = %name, error = %e, "updating a node's taints");
        }
    }
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The condition taints a node should have: (key, effect) pairs.
pub fn wanted_taints(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut want = Vec::new();
    let status = |t: &str| condition(node, t).map(|c| c.status.as_str());
    match status("Ready") {
        Some("False") => want.extend([(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]),
        Some("Unknown") => want.extend([(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]),
        _ => {}
    }
    for (cond, key) in [
        ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
        ("DiskPressure", "node.kubernetes.io/disk-pressure"),
        ("PIDPressure", "node.kubernetes.io/pid-pressure"),
        (
            "NetworkUnavailable",
            "node.kubernetes.io/network-unavailable",
        ),
    ] {
        if status(cond) == Some("True") {
            want.push((key, "NoSchedule"));
        }
    }
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        want.push(("node.kubernetes.io/unschedulable", "NoSchedule"));
    }
    want
}

/// The node's taints with its condition taints made `want`: others kept as
/// they are, wanted ones already there kept with their `timeAdded`, missing
/// ones added now. `None` when nothing changes.
fn reconcile_taints(current: &[Taint], want: &[(&str, &str)]) -> Option<Vec<Taint>> {
    let owned = |t: &Taint| CONDITION_TAINTS.contains(&t.key.as_str());
    let wanted = |t: &Taint| {
        want.iter().any(|(k, e)| {
            t.key == *k && t.effect == *e && t.value.as_deref().unwrap_or("").is_empty()
        })
    };
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !owned(t) || wanted(t))
        .cloned()
        .collect();
    let now = Time(Timestamp::now());
    let missing: Vec<Taint> = want
        .iter()
        .filter(|(k, e)| !taints.iter().any(|t| t.key == *k && t.effect == *e))
        .map(|(k, e)| Taint {
            key: (*k).into(),
            effect: (*e).into(),
            value: None,
            time_added: Some(now.clone()),
        })
        .collect();
    taints.extend(missing);
    (taints.len() != current.len() || taints.iter().zip(current).any(|(a, b)| a != b))
        .then_some(taints)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: Option<&str>, unschedulable: bool, taints: serde_json::Value) -> Node {
        let conditions: Vec<serde_json::Value> = ready
            .map(|s| json!({"type": "Ready", "status": s}))
            .into_iter()
            .chain([json!({"type": "MemoryPressure", "status": "True"})])
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": unschedulable, "taints": taints},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn taints_follow_conditions_and_keep_the_others() {
        let n = node(
            Some("Unknown"),
            true,
            json!([
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                {"key": NOT_READY, "effect": "NoExecute", "timeAdded": "2020-01-01T00:00:00Z"},
            ]),
        );
        let want = wanted_taints(&n);
        assert_eq!(
            want,
            vec![
                (UNREACHABLE, "NoSchedule"),
                (UNREACHABLE, "NoExecute"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ]
        );
        let current = n.spec.as_ref().unwrap().taints.clone().unwrap();
        let got = reconcile_taints(&current, &want).expect("a change");
        let keys: Vec<(&str, &str)> = got
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("dedicated", "NoSchedule"),
                (UNREACHABLE, "NoSchedule"),
                (UNREACHABLE, "NoExecute"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ]
        );
        assert!(
            got.iter()
                .all(|t| t.key == "dedicated" || t.time_added.is_some())
        );
        // Applied again: nothing to do, and the times stay.
        assert_eq!(reconcile_taints(&got, &want), None);
    }

    #[test]
    fn a_ready_node_loses_the_condition_taints() {
        let n = node(
            Some("True"),
            false,
            json!([{"key": UNREACHABLE, "effect": "NoExecute"}]),
        );
        let want = wanted_taints(&n);
        let current = n.spec.as_ref().unwrap().taints.clone().unwrap();
        let got = reconcile_taints(&current, &want).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].key, "node.kubernetes.io/memory-pressure");
        // A node that never reported Ready gets no Ready taint yet.
        assert!(
            !wanted_taints(&node(None, false, json!([])))
                .iter()
                .any(|(k, _)| *k == UNREACHABLE || *k == NOT_READY)
        );
    }
}
