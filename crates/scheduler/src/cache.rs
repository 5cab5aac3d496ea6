//! What the scheduler knows of the cluster: nodes and where pods are.
//!
//! Pods are placed on a node either because the API says so (`nodeName`
//! set, not finished) or because the scheduler has just bound them and the
//! watch has not caught up (*assumed*). Both count against the node.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::SCHEDULER_NAME;
use crate::plugins::{
    Filter, NodeInfo, Resources, Score, host_ports, pod_requests, unschedulable_message,
};
use crate::queue::PodKey;

/// One pod's claim on a node.
#[derive(Clone, Debug)]
struct Placement {
    node: String,
    requests: Resources,
    ports: Vec<(String, String, i32)>,
}

/// Nodes and placements.
#[derive(Default)]
pub(crate) struct Cache {
    nodes: BTreeMap<String, NodeInfo>,
    /// Placements by pod uid.
    placed: HashMap<String, Placement>,
    /// Where the next search for feasible nodes starts, so that searches
    /// that stop early still spread over all nodes.
    next_start: usize,
}

/// How many feasible nodes to find before scoring, as kube-scheduler's
/// adaptive `percentageOfNodesToScore`: all of them up to 100 nodes, then a
/// share falling from 50% by one point per 125 nodes, never below 5%, and
/// never fewer than 100 nodes.
pub(crate) fn nodes_to_find(nodes: usize) -> usize {
    const MIN: usize = 100;
    if nodes <= MIN {
        return nodes;
    }
    let percent = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percent / 100).max(MIN)
}

/// Whether a pod has finished and so holds no resources.
pub(crate) fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether a pod is this scheduler's to place now.
fn is_pending(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.node_name.as_deref().unwrap_or_default().is_empty()
        && spec
            .scheduler_name
            .as_deref()
            .is_none_or(|n| n == SCHEDULER_NAME)
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminal(pod)
}

impl Cache {
    pub(crate) fn replace_nodes(&mut self, nodes: Vec<Node>) {
        let mut fresh: BTreeMap<String, NodeInfo> = nodes
            .into_iter()
            .map(|n| {
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    NodeInfo::new(n),
                )
            })
            .collect();
        for p in self.placed.values() {
            if let Some(info) = fresh.get_mut(&p.node) {
                add(info, p);
            }
        }
        std::mem::swap(&mut self.nodes, &mut fresh);
    }

    pub(crate) fn put_node(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.nodes.get_mut(&name) {
            Some(info) => info.node = node,
            None => {
                let mut info = NodeInfo::new(node);
                for p in self.placed.values().filter(|p| p.node == name) {
                    add(&mut info, p);
                }
                self.nodes.insert(name, info);
            }
        }
    }

    pub(crate) fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// Replaces every placement from a fresh list; answers the pods that
    /// wait for a node. Assumed placements the list does not show yet stay.
    pub(crate) fn replace_pods(&mut self, pods: &[Pod]) -> Vec<(PodKey, Pod)> {
        for info in self.nodes.values_mut() {
            info.requested = Resources::default();
            info.pods = 0;
            info.host_ports.clear();
        }
        let assumed = std::mem::take(&mut self.placed);
        let mut pending = Vec::new();
        for pod in pods {
            if let Some(key) = self.put_pod(pod) {
                pending.push((key, pod.clone()));
            }
        }
        for (uid, p) in assumed {
            if !self.placed.contains_key(&uid) && pending.iter().all(|(k, _)| k.uid != uid) {
                if let Some(info) = self.nodes.get_mut(&p.node) {
                    add(info, &p);
                }
                self.placed.insert(uid, p);
            }
        }
        pending
    }

    /// Records a pod as the API shows it; answers its key when it waits
    /// for a node.
    pub(crate) fn put_pod(&mut self, pod: &Pod) -> Option<PodKey> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        match node {
            Some(node) if !is_terminal(pod) => {
                let spec = pod.spec.as_ref().expect("a pod with a node has a spec");
                self.place(
                    uid,
                    Placement {
                        node,
                        requests: pod_requests(spec),
                        ports: host_ports(spec),
                    },
                );
                None
            }
            _ => {
                self.unplace(&uid);
                is_pending(pod).then(|| PodKey::of(pod))
            }
        }
    }

    pub(crate) fn remove_pod(&mut self, pod: &Pod) {
        self.unplace(pod.metadata.uid.as_deref().unwrap_or_default());
    }

    /// Counts a pod on a node before the API confirms the binding.
    pub(crate) fn assume(&mut self, pod: &Pod, node: &str, requests: Resources) {
        let spec = pod.spec.as_ref();
        self.place(
            pod.metadata.uid.clone().unwrap_or_default(),
            Placement {
                node: node.to_owned(),
                requests,
                ports: spec.map(host_ports).unwrap_or_default(),
            },
        );
    }

    /// Drops an assumption whose binding failed.
    pub(crate) fn forget_assumed(&mut self, uid: &str) {
        self.unplace(uid);
    }

    fn place(&mut self, uid: String, p: Placement) {
        self.unplace(&uid);
        if let Some(info) = self.nodes.get_mut(&p.node) {
            add(info, &p);
        }
        self.placed.insert(uid, p);
    }

    fn unplace(&mut self, uid: &str) {
        if let Some(old) = self.placed.remove(uid)
            && let Some(info) = self.nodes.get_mut(&old.node)
        {
            info.requested = info.requested.minus(old.requests);
            info.pods = info.pods.saturating_sub(1);
            for port in &old.ports {
                if let Some(i) = info.host_ports.iter().position(|p| p == port) {
                    info.host_ports.swap_remove(i);
                }
            }
        }
    }

    /// The best node for a pod, or why none fits. Like kube-scheduler, the
    /// search stops once [`nodes_to_find`] nodes have passed the filters,
    /// and the next search starts where this one stopped.
    pub(crate) fn choose(
        &mut self,
        pod: &Pod,
        requests: Resources,
        filters: &[Box<dyn Filter>],
        scores: &[Box<dyn Score>],
    ) -> Result<String, String> {
        let total = self.nodes.len();
        let wanted = nodes_to_find(total);
        let start = if total == 0 {
            0
        } else {
            self.next_start % total
        };
        let mut best: Option<(i64, &str)> = None;
        let mut reasons = Vec::new();
        let mut feasible = 0;
        let mut visited = 0;
        let order = self
            .nodes
            .values()
            .skip(start)
            .chain(self.nodes.values().take(start));
        for info in order {
            if feasible == wanted {
                break;
            }
            visited += 1;
            let mut why = Vec::new();
            for f in filters {
                if let Err(r) = f.filter(pod, requests, info) {
                    why.extend(r);
                    break;
                }
            }
            if !why.is_empty() {
                reasons.push(why);
                continue;
            }
            feasible += 1;
            let score: i64 = scores.iter().map(|s| s.score(pod, requests, info)).sum();
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, info.name()));
            }
        }
        let chosen = match best {
            Some((_, name)) => Ok(name.to_owned()),
            None => Err(unschedulable_message(total, &reasons)),
        };
        if total > 0 {
            self.next_start = (start + visited) % total;
        }
        chosen
    }
}

fn add(info: &mut NodeInfo, p: &Placement) {
    info.requested = info.requested.plus(p.requests);
    info.pods += 1;
    info.host_ports.extend(p.ports.iter().cloned());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{default_filters, default_scores};
    use serde_json::json;

    fn node(name: &str, cpu: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"}}}))
        .unwrap()
    }

    fn pod(uid: &str, cpu: &str, node: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": uid, "namespace": "default", "uid": uid},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn large_clusters_score_a_share_of_their_nodes() {
        assert_eq!(nodes_to_find(3), 3);
        assert_eq!(nodes_to_find(100), 100);
        assert_eq!(nodes_to_find(150), 100);
        assert_eq!(nodes_to_find(1_000), 420);
        assert_eq!(nodes_to_find(5_000), 500);
        assert_eq!(nodes_to_find(100_000), 5_000);
    }

    #[test]
    fn searches_that_stop_early_rotate_over_the_nodes() {
        let mut c = Cache::default();
        let nodes: Vec<Node> = (0..300).map(|i| node(&format!("n{i:03}"), "1")).collect();
        c.replace_nodes(nodes);
        let (f, s) = (default_filters(), default_scores());
        // Every node is equally empty, so each search picks the first node
        // it looks at: 144 nodes on (48% of 300), each time.
        let mut chosen = Vec::new();
        for i in 0..3 {
            let p = pod(&format!("p{i}"), "10m", None);
            let req = pod_requests(p.spec.as_ref().unwrap());
            chosen.push(c.choose(&p, req, &f, &s).unwrap());
        }
        assert_eq!(chosen, ["n000", "n144", "n288"]);
    }

    #[test]
    fn assumed_and_bound_pods_use_up_a_node() {
        let mut c = Cache::default();
        c.replace_nodes(vec![node("a", "1"), node("b", "2")]);
        let (f, s) = (default_filters(), default_scores());
        let p1 = pod("p1", "1500m", None);
        let req = pod_requests(p1.spec.as_ref().unwrap());
        assert_eq!(c.choose(&p1, req, &f, &s).unwrap(), "b");
        c.assume(&p1, "b", req);
        // b has 500m left, a 1 core: a 900m pod goes to a.
        let p2 = pod("p2", "900m", None);
        let req2 = pod_requests(p2.spec.as_ref().unwrap());
        assert_eq!(c.choose(&p2, req2, &f, &s).unwrap(), "a");
        c.assume(&p2, "a", req2);
        let p3 = pod("p3", "600m", None);
        let err = c
            .choose(&p3, pod_requests(p3.spec.as_ref().unwrap()), &f, &s)
            .unwrap_err();
        assert!(
            err.starts_with("0/2 nodes are available: 2 Insufficient cpu."),
            "{err}"
        );
        // The watch confirms p1 on b, then p1 finishes: b has room again.
        assert_eq!(c.put_pod(&pod("p1", "1500m", Some("b"))), None);
        let mut done = pod("p1", "1500m", Some("b"));
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        c.put_pod(&done);
        assert_eq!(
            c.choose(&p3, pod_requests(p3.spec.as_ref().unwrap()), &f, &s)
                .unwrap(),
            "b"
        );
    }

    #[test]
    fn a_relist_keeps_assumptions_the_list_has_not_seen() {
        let mut c = Cache::default();
        c.replace_nodes(vec![node("a", "1")]);
        let p1 = pod("p1", "1", None);
        c.assume(&p1, "a", pod_requests(p1.spec.as_ref().unwrap()));
        let pending = c.replace_pods(&[pod("p2", "100m", None)]);
        assert_eq!(pending.len(), 1);
        let p2 = &pending[0].1;
        let err = c
            .choose(
                p2,
                pod_requests(p2.spec.as_ref().unwrap()),
                &default_filters(),
                &default_scores(),
            )
            .unwrap_err();
        assert!(err.contains("Insufficient cpu"), "{err}");
    }
}
