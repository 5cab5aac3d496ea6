//! The pod garbage collector: force-deletes pods no kubelet will ever finish
//! deleting, and keeps the number of finished pods bounded.
//!
//! - pods bound to a node that no longer exists (seen missing on two passes
//!   in a row and confirmed by asking the API server, not just the cache);
//! - terminating pods that were never scheduled;
//! - terminating pods on a node that is not Ready and carries the
//!   `node.kubernetes.io/out-of-service` taint (the admin's word that the
//!   node is gone for good);
//! - the oldest finished (Succeeded or Failed) pods beyond 12,500
//!   (`--terminated-pod-gc-threshold`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use serde_json::json;

use crate::informers::Informers;

/// How often the collector looks (kube-controller-manager: 20 s).
const PERIOD: Duration = Duration::from_secs(10);
/// Finished pods kept before the oldest are deleted.
const TERMINATED_THRESHOLD: usize = 12_500;
/// The taint an admin puts on a node that is gone for good.
const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// Runs the collector until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let client = informers.client();
    let nodes = informers.get::<Node>().await.store();
    let pods = informers.get::<Pod>().await.store();
    let mut suspects: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        pass(&client, &nodes, &pods, &mut suspects).await;
    }
}

/// What one pass deletes, and why.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Pods whose node is gone: (namespace, name, node).
    pub orphaned: Vec<(String, String, String)>,
    /// Terminating pods to remove at once: (namespace, name).
    pub terminating: Vec<(String, String)>,
    /// Finished pods beyond the threshold, oldest first: (namespace, name).
    pub finished: Vec<(String, String)>,
}

/// Decides what to delete from what the caches hold.
pub fn plan(nodes: &[Node], pods: &[Pod], threshold: usize) -> Plan {
    let by_name: HashMap<String, &Node> = nodes.iter().map(|n| (n.name_any(), n)).collect();
    let mut plan = Plan::default();
    let mut finished: Vec<&Pod> = Vec::new();
    for pod in pods {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let id = (pod.namespace().unwrap_or_default(), pod.name_any());
        let terminating = pod.metadata.deletion_timestamp.is_some();
        match node {
            None if terminating => plan.terminating.push(id),
            None => {}
            Some(n) => match by_name.get(&n) {
                None => plan.orphaned.push((id.0, id.1, n)),
                Some(node) if terminating && out_of_service(node) => plan.terminating.push(id),
                Some(_) => {}
            },
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if !terminating && matches!(phase, Some("Succeeded" | "Failed")) {
            finished.push(pod);
        }
    }
    if finished.len() > threshold {
        finished.sort_by_key(|p| p.metadata.creation_timestamp.clone());
        let excess = finished.len() - threshold;
        plan.finished = finished[..excess]
            .iter()
            .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
            .collect();
    }
    plan
}

fn out_of_service(node: &Node) -> bool {
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key == OUT_OF_SERVICE && t.effect == "NoExecute")
        });
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    tainted && !ready
}

async fn pass(
    client: &kube::Client,
    nodes: &Store<Node>,
    pods: &Store<Pod>,
    suspects: &mut HashSet<String>,
) {
    let nodes: Vec<Node> = nodes.state().iter().map(|n| Node::clone(n)).collect();
    let pods: Vec<Pod> = pods.state().iter().map(|p| Pod::clone(p)).collect();
    let plan = plan(&nodes, &pods, TERMINATED_THRESHOLD);
    let nodes_api: Api<Node> = Api::all(client.clone());
    let mut orphans = HashSet::new();
    for (ns, name, node) in plan.orphaned {
        let key = format!("{ns}/{name}");
        orphans.insert(key.clone());
        // Missing on the last pass too, and the server agrees it is gone.
        if !suspects.contains(&key) {
            continue;
        }
        if !matches!(nodes_api.get_opt(&node).await, Ok(None)) {
            continue;
        }
        force_delete(
            client,
            &ns,
            &name,
            "DeletionByPodGC",
            "PodGC: node no longer exists",
        )
        .await;
    }
    *suspects = orphans;
    for (ns, name) in plan.terminating {
        force_delete(client, &ns, &name, "", "").await;
    }
    for (ns, name) in plan.finished {
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
            tracing::debug!(pod = %format!("{ns}/{name}"), error = %e, "deleting a finished pod");
        }
    }
}

/// Deletes a pod at once (grace period 0), first marking why when `reason`
/// is given.
async fn force_delete(client: &kube::Client, ns: &str, name: &str, reason: &str, message: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    if !reason.is_empty() {
        let condition = json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": Time(Timestamp::now()),
        }]}});
        let _ = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(condition))
            .await;
    }
    match api
        .delete(name, &DeleteParams::default().grace_period(0))
        .await
    {
        Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), "force-deleted by the pod GC"),
        Err(e) => {
            tracing::debug!(pod = %format!("{ns}/{name}"), error = %e, "force-deleting a pod")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>, phase: &str, deleting: bool, created: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "namespace": "ns", "creationTimestamp": created,
                "deletionTimestamp": deleting.then_some("2026-01-01T00:00:00Z"),
            },
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn node(name: &str, ready: &str, out_of_service: bool) -> Node {
        let taints: Vec<serde_json::Value> = if out_of_service {
            vec![json!({"key": OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"})]
        } else {
            vec![]
        };
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }))
        .unwrap()
    }

    #[test]
    fn plans_what_no_kubelet_will_finish() {
        let t = "2026-01-01T00:00:00Z";
        let nodes = [
            node("up", "True", false),
            node("gone-for-good", "Unknown", true),
        ];
        let pods = [
            pod("fine", Some("up"), "Running", false, t),
            pod("stuck-terminating", Some("up"), "Running", true, t),
            pod("orphan", Some("deleted-node"), "Running", false, t),
            pod("never-scheduled", None, "Pending", true, t),
            pod("pending", None, "Pending", false, t),
            pod("on-dead-node", Some("gone-for-good"), "Running", true, t),
            pod(
                "old-done",
                Some("up"),
                "Succeeded",
                false,
                "2025-01-01T00:00:00Z",
            ),
            pod(
                "new-done",
                Some("up"),
                "Failed",
                false,
                "2026-06-01T00:00:00Z",
            ),
        ];
        let plan = plan(&nodes, &pods, 1);
        assert_eq!(
            plan.orphaned,
            vec![("ns".into(), "orphan".into(), "deleted-node".into())]
        );
        assert_eq!(
            plan.terminating,
            vec![
                ("ns".into(), "never-scheduled".into()),
                ("ns".into(), "on-dead-node".into())
            ]
        );
        assert_eq!(plan.finished, vec![("ns".into(), "old-done".into())]);
    }
}
