//! The taint eviction controller: deletes pods from nodes with `NoExecute`
//! taints the pods do not tolerate, at once, or once the shortest
//! `tolerationSeconds` of the tolerations that let them stay has passed
//! since the taint was added.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;
use serde_json::json;

use crate::events::Events;
use crate::informers::Informers;

/// How often pending evictions are looked at without a change.
const TICK: Duration = Duration::from_secs(1);

/// What to do with a pod on a tainted node.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// It tolerates every NoExecute taint for ever.
    Stay,
    /// It must go now.
    Evict,
    /// It may stay until this moment.
    Until(Timestamp),
}

/// The verdict for a pod with `tolerations` on a node with `taints` (only
/// the NoExecute ones count).
pub fn verdict(pod: &Pod, taints: &[Taint], now: Timestamp) -> Verdict {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    // As Kubernetes: every NoExecute taint must be tolerated; the shortest
    // `tolerationSeconds` of the tolerations that match one decides, counted
    // from the first of the taints; none with seconds means for ever.
    let mut seconds: Option<i64> = None;
    let mut since: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let mut matched = false;
        for t in tolerations
            .iter()
            .filter(|t| scheduler::plugins::tolerates(t, taint))
        {
            matched = true;
            if let Some(s) = t.toleration_seconds {
                seconds = Some(seconds.map_or(s, |m| m.min(s)));
            }
        }
        if !matched {
            return Verdict::Evict;
        }
        let added = taint.time_added.as_ref().map_or(now, |t| t.0);
        since = Some(since.map_or(added, |s| s.min(added)));
    }
    let (Some(seconds), Some(since)) = (seconds, since) else {
        return Verdict::Stay;
    };
    let end = Timestamp::from_second(since.as_second().saturating_add(seconds.max(0)))
        .unwrap_or(Timestamp::MAX);
    if end <= now {
        Verdict::Evict
    } else {
        Verdict::Until(end)
    }
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let client = informers.client();
    let nodes = informers.get::<Node>().await;
    let pods = informers.get::<Pod>().await;
    let events = Events::new(client.clone(), "taint-eviction-controller");
    let (node_store, pod_store) = (nodes.store(), pods.store());
    // Any change of a node or a pod may start or cancel an eviction; the
    // tick carries out the timed ones.
    let mut changes = futures::stream::select(
        nodes.stream().map(|_| ()).boxed(),
        pods.stream().map(|_| ()).boxed(),
    );
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Pods asked to go, so a slow cache does not make us ask twice.
    let mut evicted: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            change = changes.next() => {
                if change.is_none() {
                    anyhow::bail!("the taint eviction controller's streams ended");
                }
            }
            _ = tick.tick() => {}
        }
        pass(&client, &events, &node_store, &pod_store, &mut evicted).await;
    }
}

/// Evicts every pod whose time on its tainted node is up.
async fn pass(
    client: &kube::Client,
    events: &Events,
    nodes: &Store<Node>,
    pods: &Store<Pod>,
    evicted: &mut HashSet<String>,
) {
    let tainted: HashMap<String, Vec<Taint>> = nodes
        .state()
        .iter()
        .filter_map(|n| {
            let taints = n.spec.as_ref()?.taints.as_ref()?;
            taints
                .iter()
                .any(|t| t.effect == "NoExecute")
                .then(|| (n.name_any(), taints.clone()))
        })
        .collect();
    let pods = pods.state();
    evicted.retain(|uid| pods.iter().any(|p| p.uid().as_deref() == Some(uid)));
    if tainted.is_empty() {
        return;
    }
    let now = Timestamp::now();
    for pod in pods {
        let Some(taints) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .and_then(|n| tainted.get(n))
        else {
            continue;
        };
        let uid = pod.uid().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() || evicted.contains(&uid) {
            continue;
        }
        if verdict(&pod, taints, now) != Verdict::Evict {
            continue;
        }
        evicted.insert(uid);
        evict(client, events, &pod).await;
    }
}

/// Marks the pod as disrupted and deletes it with its grace period.
async fn evict(client: &kube::Client, events: &Events, pod: &Pod) {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    events
        .publish(
            pod,
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{name}"),
        )
        .await;
    let condition = json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": Time(Timestamp::now()),
    }]}});
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(condition))
        .await
    {
        tracing::debug!(pod = %name, error = %e, "marking a pod for eviction");
    }
    // Only this pod, as we saw it: a pod of the same name made since stays.
    let params = DeleteParams {
        preconditions: pod.uid().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), "evicted for a NoExecute taint"),
        Err(e) => tracing::debug!(pod = %name, error = %e, "evicting a pod"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "tolerations": tolerations},
        }))
        .unwrap()
    }

    fn taint(key: &str, effect: &str, added: Option<&str>) -> Taint {
        serde_json::from_value(json!({"key": key, "effect": effect, "timeAdded": added})).unwrap()
    }

    #[test]
    fn verdicts_follow_tolerations() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let unreachable = taint(
            "node.kubernetes.io/unreachable",
            "NoExecute",
            Some("2026-01-01T00:00:00Z"),
        );
        let taints = [unreachable.clone(), taint("x", "NoSchedule", None)];
        // No toleration: now. NoSchedule taints do not evict.
        assert_eq!(verdict(&pod(json!([])), &taints, now), Verdict::Evict);
        // Tolerated for ever.
        let forever = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]);
        assert_eq!(verdict(&pod(forever), &taints, now), Verdict::Stay);
        // 300 s from when the taint was added.
        let five_min = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 300}]);
        assert_eq!(
            verdict(&pod(five_min), &taints, now),
            Verdict::Until("2026-01-01T00:05:00Z".parse().unwrap())
        );
        // 30 s have passed since 00:00:00.
        let short = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "tolerationSeconds": 30}]);
        assert_eq!(verdict(&pod(short), &taints, now), Verdict::Evict);
        // Tolerating everything tolerates it for ever.
        let all = json!([{"operator": "Exists"}]);
        assert_eq!(verdict(&pod(all), &taints, now), Verdict::Stay);
        // A second NoExecute taint it does not tolerate: now.
        let two = [unreachable, taint("dedicated", "NoExecute", None)];
        let tolerates_one =
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]);
        assert_eq!(verdict(&pod(tolerates_one), &two, now), Verdict::Evict);
        // No NoExecute taint at all.
        assert_eq!(
            verdict(&pod(json!([])), &[taint("x", "NoSchedule", None)], now),
            Verdict::Stay
        );
    }
}
