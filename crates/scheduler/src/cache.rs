//! What the scheduler knows of the cluster: nodes and where pods are.
//!
//! Pods are placed on a node either because the API says so (`nodeName`
//! set, not finished) or because the scheduler has just bound them and the
//! watch has not caught up (*assumed*). Both count against the node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::SCHEDULER_NAME;
use crate::plugins::selector::{Selector, selects_everything};
use crate::plugins::{
    Claims, Cluster, Filter, NamespaceLabels, NodeInfo, Owners, PlacedPod, PodContext, Resources,
    Score, pod_requests, unschedulable_message,
};
use crate::queue::PodKey;

/// One pod's claim on a node.
#[derive(Clone, Debug)]
struct Placement {
    node: String,
    pod: Arc<PlacedPod>,
}

/// Nodes and placements.
#[derive(Default)]
pub(crate) struct Cache {
    nodes: BTreeMap<String, NodeInfo>,
    /// Placements by pod uid.
    placed: HashMap<String, Placement>,
    /// How many nodes have each image (normalised name), for ImageLocality.
    image_nodes: HashMap<String, usize>,
    /// How many placed pods have pod affinity or anti-affinity terms, so
    /// that inter-pod affinity costs nothing while there are none.
    with_affinity: usize,
    /// Where the next search for feasible nodes starts, so that searches
    /// that stop early still spread over all nodes.
    next_start: usize,
    /// Persistent volume claims and volumes, for the volume filters.
    pub(crate) claims: Claims,
    /// Namespaces' labels, for pod affinity terms that select namespaces.
    pub(crate) namespaces: NamespaceLabels,
    /// Services' and controllers' selectors, for default spreading.
    pub(crate) owners: Owners,
    /// PodDisruptionBudgets by namespace and name, for preemption.
    budgets: BTreeMap<(String, String), Budget>,
}

/// A PodDisruptionBudget as preemption weighs it.
struct Budget {
    /// `None` for a missing or empty selector: preemption counts such a
    /// budget as covering no pod, as kube-scheduler does.
    selector: Option<Selector>,
    /// `status.disruptionsAllowed`.
    allowed: i32,
    /// `status.disruptedPods`: pods the API server has already charged.
    disrupted: Vec<String>,
}

impl Budget {
    fn of(pdb: &PodDisruptionBudget) -> ((String, String), Self) {
        let key = (
            pdb.metadata.namespace.clone().unwrap_or_default(),
            pdb.metadata.name.clone().unwrap_or_default(),
        );
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
        let empty = selector.is_none_or(selects_everything);
        let status = pdb.status.as_ref();
        let budget = Self {
            selector: (!empty).then(|| Selector::new(selector)),
            allowed: status.map_or(0, |s| s.disruptions_allowed),
            disrupted: status
                .and_then(|s| s.disrupted_pods.as_ref())
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default(),
        };
        (key, budget)
    }
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
                info.add(Arc::clone(&p.pod));
            }
        }
        self.image_nodes.clear();
        for info in fresh.values() {
            count_images(&mut self.image_nodes, info, true);
        }
        self.nodes = fresh;
    }

    pub(crate) fn put_node(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.nodes.get_mut(&name) {
            Some(info) => {
                count_images(&mut self.image_nodes, info, false);
                info.set_node(node);
                count_images(&mut self.image_nodes, info, true);
            }
            None => {
                let mut info = NodeInfo::new(node);
                for p in self.placed.values().filter(|p| p.node == name) {
                    info.add(Arc::clone(&p.pod));
                }
                count_images(&mut self.image_nodes, &info, true);
                self.nodes.insert(name, info);
            }
        }
    }

    pub(crate) fn replace_budgets(&mut self, all: Vec<PodDisruptionBudget>) {
        self.budgets = all.iter().map(Budget::of).collect();
    }

    pub(crate) fn put_budget(&mut self, pdb: &PodDisruptionBudget) {
        let (key, budget) = Budget::of(pdb);
        self.budgets.insert(key, budget);
    }

    pub(crate) fn remove_budget(&mut self, pdb: &PodDisruptionBudget) {
        self.budgets.remove(&Budget::of(pdb).0);
    }

    /// Splits would-be victims (most important first) into those whose
    /// eviction would take some budget below zero and the others, charging
    /// the budgets in that order, as kube-scheduler's preemption does.
    fn split_by_budgets(
        &self,
        pods: Vec<Arc<PlacedPod>>,
    ) -> (Vec<Arc<PlacedPod>>, Vec<Arc<PlacedPod>>) {
        let mut allowed: Vec<i32> = self.budgets.values().map(|b| b.allowed).collect();
        let (mut violating, mut fine) = (Vec::new(), Vec::new());
        for p in pods {
            let mut violates = false;
            for (((ns, _), b), left) in self.budgets.iter().zip(allowed.iter_mut()) {
                let covers = *ns == p.namespace
                    && !p.labels.is_empty()
                    && b.selector.as_ref().is_some_and(|s| s.matches(&p.labels))
                    && !b.disrupted.contains(&p.name);
                if covers {
                    *left -= 1;
                    violates |= *left < 0;
                }
            }
            if violates {
                violating.push(p);
            } else {
                fine.push(p);
            }
        }
        (violating, fine)
    }

    pub(crate) fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.remove(name) {
            count_images(&mut self.image_nodes, &info, false);
        }
    }

    /// Replaces every placement from a fresh list; answers the pods that
    /// wait for a node. Assumed placements the list does not show yet stay.
    pub(crate) fn replace_pods(&mut self, pods: &[Pod]) -> Vec<(PodKey, Pod)> {
        for info in self.nodes.values_mut() {
            info.clear_pods();
        }
        let assumed = std::mem::take(&mut self.placed);
        self.with_affinity = 0;
        let mut pending = Vec::new();
        for pod in pods {
            if let Some(key) = self.put_pod(pod) {
                pending.push((key, pod.clone()));
            }
        }
        for (uid, p) in assumed {
            if !self.placed.contains_key(&uid) && pending.iter().all(|(k, _)| k.uid != uid) {
                self.place(uid, p);
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
                let placed = PlacedPod::of(pod, pod_requests(spec));
                self.place(
                    uid,
                    Placement {
                        node,
                        pod: Arc::new(placed),
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
        self.place(
            pod.metadata.uid.clone().unwrap_or_default(),
            Placement {
                node: node.to_owned(),
                pod: Arc::new(PlacedPod::of(pod, requests)),
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
            info.add(Arc::clone(&p.pod));
        }
        if p.pod.terms.is_some() {
            self.with_affinity += 1;
        }
        self.placed.insert(uid, p);
    }

    fn unplace(&mut self, uid: &str) {
        if let Some(old) = self.placed.remove(uid) {
            if old.pod.terms.is_some() {
                self.with_affinity -= 1;
            }
            if let Some(info) = self.nodes.get_mut(&old.node) {
                info.remove(uid);
            }
        }
    }

    /// The best node for a pod, or why none fits. Like kube-scheduler, the
    /// search stops once [`nodes_to_find`] nodes have passed the filters,
    /// and the next search starts where this one stopped; the nodes found
    /// are then scored by every score plugin and its weight.
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
        let cluster = Cluster {
            nodes: &self.nodes,
            image_nodes: &self.image_nodes,
            with_affinity: self.with_affinity,
            claims: &self.claims,
            namespaces: &self.namespaces,
            owners: &self.owners,
        };
        let ctx = PodContext::new(pod, requests, &cluster);
        let mut reasons = Vec::new();
        let mut feasible: Vec<&NodeInfo> = Vec::new();
        let mut visited = 0;
        let order = self
            .nodes
            .values()
            .skip(start)
            .chain(self.nodes.values().take(start));
        for info in order {
            if feasible.len() == wanted {
                break;
            }
            visited += 1;
            let mut why = Vec::new();
            for f in filters {
                if let Err(r) = f.filter(&ctx, info) {
                    why.extend(r);
                    break;
                }
            }
            if why.is_empty() {
                feasible.push(info);
            } else {
                reasons.push(why);
            }
        }
        let chosen = match feasible.len() {
            0 => Err(unschedulable_message(total, &reasons)),
            // One candidate needs no ranking.
            1 => Ok(feasible[0].name().to_owned()),
            n => {
                let mut totals = vec![0i64; n];
                let mut each = vec![0i64; n];
                for s in scores {
                    each.fill(0);
                    s.score(&ctx, &cluster, &feasible, &mut each);
                    for (t, e) in totals.iter_mut().zip(&each) {
                        *t += s.weight() * e;
                    }
                }
                // The first of the best, in search order.
                let mut best = 0;
                for (i, t) in totals.iter().enumerate() {
                    if *t > totals[best] {
                        best = i;
                    }
                }
                Ok(feasible[best].name().to_owned())
            }
        };
        if total > 0 {
            self.next_start = (start + visited) % total;
        }
        chosen
    }

    /// Where a pod that fits nowhere could go by evicting pods of lower
    /// priority, and which ones: kube-scheduler's DefaultPreemption, pure.
    /// On each node every lower-priority pod is taken away; if the pod then
    /// passes the filters, the would-be victims are given back one by one,
    /// highest priority first, while it still does: first those a
    /// PodDisruptionBudget protects (whose eviction would take its
    /// `disruptionsAllowed` below zero), then the others. The node with the
    /// fewest victims that break a budget wins, then the one whose victims
    /// have the lowest highest priority, then the lowest priority sum, then
    /// the fewest. Budgets are a preference, not a bar: when every choice
    /// breaks one, the pod still preempts. Pods already being deleted are
    /// counted as gone but never chosen again, so a retry while victims
    /// terminate evicts no more; the room they free is kept for the pod
    /// nominated to that node. `None` when the pod may not preempt
    /// (`preemptionPolicy: Never`) or no node would do.
    ///
    /// What inter-pod affinity and topology spreading counted before the
    /// nodes were looked at is recounted as pods are taken away and given
    /// back, so a pod kept off a node by another's presence can preempt it.
    pub(crate) fn preempt(
        &self,
        pod: &Pod,
        requests: Resources,
        filters: &[Box<dyn Filter>],
    ) -> Option<Preemption> {
        let spec = pod.spec.as_ref()?;
        if spec.preemption_policy.as_deref() == Some("Never") {
            return None;
        }
        let priority = spec.priority.unwrap_or(0);
        let nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref());
        let cluster = Cluster {
            nodes: &self.nodes,
            image_nodes: &self.image_nodes,
            with_affinity: self.with_affinity,
            claims: &self.claims,
            namespaces: &self.namespaces,
            owners: &self.owners,
        };
        let mut ctx = PodContext::new(pod, requests, &cluster);
        let mut best: Option<((usize, i32, i64, usize), Preemption)> = None;
        for info in self.nodes.values() {
            let lower: Vec<Arc<PlacedPod>> = info
                .placed
                .iter()
                .filter(|p| p.priority < priority)
                .cloned()
                .collect();
            if lower.is_empty() {
                continue;
            }
            let Some((victims, violations)) =
                self.victims_on(info, lower, &mut ctx, &cluster, filters)
            else {
                continue;
            };
            // Room freed only by pods already going was claimed by the pod
            // that evicted them: it is this pod's only if nominated here.
            if victims.is_empty() && nominated != Some(info.name()) {
                continue;
            }
            let rank = (
                violations,
                victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN),
                victims.iter().map(|v| i64::from(v.priority)).sum(),
                victims.len(),
            );
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                let victims = victims
                    .iter()
                    .map(|v| PodKey {
                        namespace: v.namespace.clone(),
                        name: v.name.clone(),
                        uid: v.uid.clone(),
                    })
                    .collect();
                best = Some((
                    rank,
                    Preemption {
                        node: info.name().to_owned(),
                        victims,
                    },
                ));
            }
        }
        best.map(|(_, p)| p)
    }

    /// The pods of lower priority (`lower`) whose eviction from a node lets
    /// the pod pass the filters there, with how many of them break a
    /// budget; `None` when even all of them would not do. Each pod taken
    /// away or given back is also counted out of or into the pod's
    /// affinity and spreading state, which is as it was on return.
    fn victims_on(
        &self,
        info: &NodeInfo,
        lower: Vec<Arc<PlacedPod>>,
        ctx: &mut PodContext,
        cluster: &Cluster,
        filters: &[Box<dyn Filter>],
    ) -> Option<(Vec<Arc<PlacedPod>>, usize)> {
        let fits =
            |ctx: &PodContext, node: &NodeInfo| filters.iter().all(|f| f.filter(ctx, node).is_ok());
        let mut reduced = info.clone();
        for p in &lower {
            reduced.remove(&p.uid);
            ctx.account(p, info, -1, cluster);
        }
        let mut victims = Vec::new();
        let mut violations = 0;
        let (going, candidates): (Vec<_>, Vec<_>) = lower.into_iter().partition(|p| p.deleting);
        let found = fits(ctx, &reduced);
        if found {
            let mut candidates = candidates;
            candidates.sort_by_key(|p| std::cmp::Reverse(p.priority));
            // Pods a budget protects are given back first, then the others,
            // each time the most important first, while the pod still fits.
            let (violating, fine) = self.split_by_budgets(candidates);
            for (group, violate) in [(violating, true), (fine, false)] {
                for p in group {
                    reduced.add(Arc::clone(&p));
                    ctx.account(&p, info, 1, cluster);
                    if !fits(ctx, &reduced) {
                        reduced.remove(&p.uid);
                        ctx.account(&p, info, -1, cluster);
                        victims.push(p);
                        violations += usize::from(violate);
                    }
                }
            }
        } else {
            victims = candidates;
        }
        // Everything still taken away is given back to the state.
        for p in going.iter().chain(&victims) {
            ctx.account(p, info, 1, cluster);
        }
        found.then_some((victims, violations))
    }
}

/// A node a pod can have by evicting pods from it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Preemption {
    /// The node, to be written as the pod's `status.nominatedNodeName`.
    pub(crate) node: String,
    /// The pods to delete (none when earlier victims are still going).
    pub(crate) victims: Vec<PodKey>,
}

/// Adds (or takes away) a node's images to the count of nodes having each.
fn count_images(counts: &mut HashMap<String, usize>, info: &NodeInfo, add: bool) {
    for (name, _) in info.images() {
        if add {
            *counts.entry(name.to_owned()).or_default() += 1;
        } else if let Some(n) = counts.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                counts.remove(name);
            }
        }
    }
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

    fn prioritised(uid: &str, cpu: &str, node: Option<&str>, priority: i32) -> Pod {
        let mut p = pod(uid, cpu, node);
        p.spec.as_mut().unwrap().priority = Some(priority);
        p
    }

    #[test]
    fn preemption_evicts_the_fewest_lowest_priority_pods() {
        let mut c = Cache::default();
        c.replace_nodes(vec![node("a", "2"), node("b", "2")]);
        // a: two 1-cpu pods at priority 10 and 1; b: one 2-cpu pod at 5.
        c.put_pod(&prioritised("a10", "1", Some("a"), 10));
        c.put_pod(&prioritised("a1", "1", Some("a"), 1));
        c.put_pod(&prioritised("b5", "2", Some("b"), 5));
        let f = default_filters();
        let wants = |c: &Cache, cpu: &str, priority: i32| {
            let p = prioritised("new", cpu, None, priority);
            let req = pod_requests(p.spec.as_ref().unwrap());
            c.preempt(&p, req, &f).map(|p| {
                (
                    p.node,
                    p.victims.into_iter().map(|v| v.uid).collect::<Vec<_>>(),
                )
            })
        };
        // 1 cpu at priority 20: evicting a1 (priority 1) beats evicting b5.
        assert_eq!(wants(&c, "1", 20), Some(("a".into(), vec!["a1".into()])));
        // 2 cpu at priority 20: a would lose 10 and 1, b only 5.
        assert_eq!(wants(&c, "2", 20), Some(("b".into(), vec!["b5".into()])));
        // At priority 5 only a1 is lower; it frees 1 cpu, enough for 1.
        assert_eq!(wants(&c, "1", 5), Some(("a".into(), vec!["a1".into()])));
        assert_eq!(wants(&c, "2", 5), None);
        // Priority 0 preempts nobody; nor does preemptionPolicy Never.
        assert_eq!(wants(&c, "1", 0), None);
        let mut never = prioritised("new", "1", None, 20);
        never.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        let req = pod_requests(never.spec.as_ref().unwrap());
        assert_eq!(c.preempt(&never, req, &f), None);

        // a1 is being deleted (an earlier preemption): its room belongs to
        // the pod nominated to a, which evicts no more; any other pod has
        // to find its own victims.
        let mut going = prioritised("a1", "1", Some("a"), 1);
        going.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap());
        c.put_pod(&going);
        assert_eq!(wants(&c, "1", 20), Some(("b".into(), vec!["b5".into()])));
        let mut nominated = prioritised("new", "1", None, 20);
        nominated.status = Some(serde_json::from_value(json!({"nominatedNodeName": "a"})).unwrap());
        let req = pod_requests(nominated.spec.as_ref().unwrap());
        assert_eq!(
            c.preempt(&nominated, req, &f),
            Some(Preemption {
                node: "a".into(),
                victims: vec![]
            })
        );
    }

    #[test]
    fn preemption_spares_pods_a_budget_protects_when_it_can() {
        let labelled = |uid: &str, cpu: &str, node: &str, priority: i32, app: &str| {
            let mut p = prioritised(uid, cpu, Some(node), priority);
            p.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
            p
        };
        let budget = |allowed: i32, disrupted: serde_json::Value| -> PodDisruptionBudget {
            serde_json::from_value(json!({
                "metadata": {"name": "db", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "db"}}},
                "status": {"disruptionsAllowed": allowed, "disruptedPods": disrupted,
                           "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1,
                           "observedGeneration": 1}
            }))
            .unwrap()
        };
        let mut c = Cache::default();
        c.replace_nodes(vec![node("a", "2"), node("b", "2")]);
        // a: a database (priority 1) and a web pod (2), 1 cpu each; b: a
        // 2-cpu cache (5).
        c.put_pod(&labelled("a1", "1", "a", 1, "db"));
        c.put_pod(&labelled("a2", "1", "a", 2, "web"));
        c.put_pod(&labelled("b5", "2", "b", 5, "cache"));
        let f = default_filters();
        let wants = |c: &Cache, cpu: &str| {
            let p = prioritised("new", cpu, None, 20);
            let req = pod_requests(p.spec.as_ref().unwrap());
            c.preempt(&p, req, &f).map(|p| {
                let victims: Vec<String> = p.victims.into_iter().map(|v| v.uid).collect();
                (p.node, victims)
            })
        };
        let a = |victims: &[&str]| {
            Some((
                "a".to_owned(),
                victims.iter().map(|v| (*v).to_owned()).collect(),
            ))
        };
        let b5 = Some(("b".to_owned(), vec!["b5".to_owned()]));
        // No budget: the lowest priorities go.
        assert_eq!(wants(&c, "1"), a(&["a1"]));
        assert_eq!(wants(&c, "2"), a(&["a2", "a1"]));
        // The database may not be disrupted: for 1 cpu the web pod goes
        // instead; for 2 cpu, a would break the budget, so b it is, though
        // its pod's priority is higher.
        c.put_budget(&budget(0, json!({})));
        assert_eq!(wants(&c, "1"), a(&["a2"]));
        assert_eq!(wants(&c, "2"), b5);
        // A budget that allows one disruption, or that already counts the
        // database as disrupted, protects nothing here.
        c.put_budget(&budget(1, json!({})));
        assert_eq!(wants(&c, "2"), a(&["a2", "a1"]));
        c.put_budget(&budget(0, json!({"a1": "2026-01-01T00:00:00Z"})));
        assert_eq!(wants(&c, "2"), a(&["a2", "a1"]));
        // A preference, not a bar: with b gone, a is chosen, budget or not.
        c.put_budget(&budget(0, json!({})));
        c.remove_node("b");
        assert_eq!(wants(&c, "2"), a(&["a1", "a2"]));
        c.remove_budget(&budget(0, json!({})));
        assert_eq!(wants(&c, "2"), a(&["a2", "a1"]));
    }

    #[test]
    fn preemption_frees_a_node_of_a_pod_its_anti_affinity_refuses() {
        let mut c = Cache::default();
        let hosts: Vec<Node> = ["a", "b"]
            .iter()
            .map(|n| {
                serde_json::from_value(json!({"metadata": {"name": n,
                    "labels": {"kubernetes.io/hostname": n}},
                    "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
                .unwrap()
            })
            .collect();
        c.replace_nodes(hosts);
        // A web pod on each node: at priority 1 on a, 5 on b.
        for (uid, node, priority) in [("w1", "a", 1), ("w5", "b", 5)] {
            let mut p = prioritised(uid, "100m", Some(node), priority);
            p.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
            c.put_pod(&p);
        }
        // Room for it everywhere, but it must not share a host with a web pod.
        let mut lonely = prioritised("new", "100m", None, 20);
        lonely.spec.as_mut().unwrap().affinity = Some(
            serde_json::from_value(json!({"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname"}]}}))
            .unwrap(),
        );
        let f = default_filters();
        let req = pod_requests(lonely.spec.as_ref().unwrap());
        assert!(c.choose(&lonely, req, &f, &default_scores()).is_err());
        let got = c.preempt(&lonely, req, &f).unwrap();
        assert_eq!((got.node.as_str(), got.victims.len()), ("a", 1));
        assert_eq!(got.victims[0].uid, "w1");
        // The state is given back whole: asking again gives the same.
        assert_eq!(c.preempt(&lonely, req, &f), Some(got));
    }
}
