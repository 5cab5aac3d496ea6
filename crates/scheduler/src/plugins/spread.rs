//! PodTopologySpread: `spec.topologySpreadConstraints`, as kube-scheduler
//! applies them. Each constraint names a node label (the domain: a zone, a
//! host), a selector of the pods to count, and how uneven the counts may
//! get (`maxSkew`): with `DoNotSchedule` a node whose domain would exceed
//! the least-loaded domain by more than that is filtered out; with
//! `ScheduleAnyway` fuller domains only score lower.
//!
//! Only constraints written on the pod apply; kube-scheduler's cluster-wide
//! default constraints (derived from the Services and ReplicaSets selecting
//! the pod) are not applied, since the scheduler watches neither.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::Pod;

use super::selector::Selector;
use super::{
    Cluster, Filter, NodeInfo, PodContext, Reason, Score, node_affinity_matches, untolerated_taint,
};

/// The label whose domains are single nodes; counted per node when scoring.
const HOSTNAME: &str = "kubernetes.io/hostname";

/// Reason for a node whose domain would be too full.
pub const SPREAD_REASON: &str = "node(s) didn't match pod topology spread constraints";
/// Reason for a node without a constraint's label.
pub const MISSING_LABEL_REASON: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// One constraint, compiled.
#[derive(Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: Selector,
    /// With fewer eligible domains than this, the global minimum counts as
    /// 0 (so pods go to new domains first).
    min_domains: i64,
    /// Whether nodes the pod's node affinity excludes are left out of the
    /// counts (`nodeAffinityPolicy: Honor`, the default).
    honor_affinity: bool,
    /// Whether nodes with taints the pod does not tolerate are left out
    /// (`nodeTaintsPolicy: Honor`; the default is Ignore).
    honor_taints: bool,
    /// Whether the incoming pod is itself selected (adds one to a domain).
    selects_self: bool,
}

impl Constraint {
    /// Whether a node's pods count for this constraint, by the node
    /// inclusion policies.
    fn includes(&self, pod: &Pod, node: &NodeInfo) -> bool {
        (!self.honor_affinity || node_affinity_matches(pod, node))
            && (!self.honor_taints || untolerated_taint(pod, node).is_none())
    }

    /// How many pods on a node this constraint counts: selected, in the
    /// pod's namespace, not being deleted.
    fn count_on(&self, namespace: &str, node: &NodeInfo) -> i64 {
        node.placed
            .iter()
            .filter(|p| !p.deleting && p.namespace == namespace && self.selector.matches(&p.labels))
            .count() as i64
    }
}

/// The pod's constraints and, for the `DoNotSchedule` ones, the counts per
/// domain taken before any node is looked at.
#[derive(Default)]
pub(crate) struct PodState {
    hard: Vec<Constraint>,
    soft: Vec<Constraint>,
    /// Per hard constraint: matching pods per domain (every eligible
    /// domain present, 0 when empty).
    counts: Vec<HashMap<String, i64>>,
    /// Per hard constraint: the smallest count over the domains.
    minimum: Vec<i64>,
}

impl PodState {
    pub(crate) fn new(
        pod: &Pod,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        cluster: &Cluster,
    ) -> Self {
        let mut state = Self::default();
        let constraints = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref());
        for c in constraints.into_iter().flatten() {
            let mut selector = Selector::new(c.label_selector.as_ref());
            // matchLabelKeys: the pod's own values for these keys join the
            // selector (a key the pod lacks is ignored).
            for key in c.match_label_keys.iter().flatten() {
                if let Some(value) = labels.get(key) {
                    selector.require(key, value);
                }
            }
            let compiled = Constraint {
                max_skew: i64::from(c.max_skew.max(1)),
                topology_key: c.topology_key.clone(),
                selects_self: selector.matches(labels),
                selector,
                min_domains: i64::from(c.min_domains.unwrap_or(1)),
                honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            };
            if c.when_unsatisfiable == "ScheduleAnyway" {
                state.soft.push(compiled);
            } else {
                state.hard.push(compiled);
            }
        }
        if state.hard.is_empty() {
            return state;
        }
        state.counts = vec![HashMap::new(); state.hard.len()];
        for node in cluster.nodes.values() {
            // A node lacking any constraint's label is in no domain.
            let Some(values) = domain_values(&state.hard, node) else {
                continue;
            };
            for ((c, counts), value) in state.hard.iter().zip(&mut state.counts).zip(values) {
                if c.includes(pod, node) {
                    *counts.entry(value.to_owned()).or_default() += c.count_on(namespace, node);
                }
            }
        }
        state.minimum = state
            .counts
            .iter()
            .map(|c| c.values().copied().min().unwrap_or(0))
            .collect();
        state
    }
}

/// The node's value for each constraint's label, or `None` if it lacks one.
fn domain_values<'n>(constraints: &[Constraint], node: &'n NodeInfo) -> Option<Vec<&'n str>> {
    constraints
        .iter()
        .map(|c| node.labels().get(&c.topology_key).map(String::as_str))
        .collect()
}

/// Topology spread constraints: `DoNotSchedule` ones filter, `ScheduleAnyway`
/// ones score.
pub struct PodTopologySpread;

impl Filter for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn filter(&self, pod: &PodContext, node: &NodeInfo) -> Result<(), Vec<Reason>> {
        let state = &pod.spread;
        for (i, c) in state.hard.iter().enumerate() {
            let Some(value) = node.labels().get(&c.topology_key) else {
                return Err(vec![MISSING_LABEL_REASON.into()]);
            };
            let counts = &state.counts[i];
            let minimum = if (counts.len() as i64) < c.min_domains {
                0
            } else {
                state.minimum[i]
            };
            let here = counts.get(value).copied().unwrap_or(0);
            if here + i64::from(c.selects_self) - minimum > c.max_skew {
                return Err(vec![SPREAD_REASON.into()]);
            }
        }
        Ok(())
    }
}

impl Score for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn weight(&self) -> i64 {
        2
    }

    /// kube-scheduler's spreading score: per constraint, the matching pods
    /// in the node's domain, weighted by the log of the number of domains
    /// among the candidate nodes, plus `maxSkew - 1`; then fewer is better,
    /// scaled to 0..100. Candidates lacking a label score 0.
    fn score(&self, pod: &PodContext, cluster: &Cluster, nodes: &[&NodeInfo], scores: &mut [i64]) {
        let soft = &pod.spread.soft;
        if soft.is_empty() {
            return;
        }
        // Domains are those of the candidate nodes; pods are counted in
        // them over every node.
        let mut counts: Vec<HashMap<&str, i64>> = vec![HashMap::new(); soft.len()];
        let mut ignored = HashSet::new();
        for (i, node) in nodes.iter().enumerate() {
            match domain_values(soft, node) {
                None => {
                    ignored.insert(i);
                }
                Some(values) => {
                    for ((c, counts), value) in soft.iter().zip(&mut counts).zip(values) {
                        if c.topology_key != HOSTNAME {
                            counts.entry(value).or_insert(0);
                        }
                    }
                }
            }
        }
        let weights: Vec<f64> = soft
            .iter()
            .zip(&counts)
            .map(|(c, counts)| {
                let size = if c.topology_key == HOSTNAME {
                    nodes.len() - ignored.len()
                } else {
                    counts.len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        for node in cluster.nodes.values() {
            let Some(values) = domain_values(soft, node) else {
                continue;
            };
            for ((c, counts), value) in soft.iter().zip(&mut counts).zip(values) {
                if c.topology_key == HOSTNAME || !c.includes(pod.pod, node) {
                    continue;
                }
                if let Some(n) = counts.get_mut(value) {
                    *n += c.count_on(pod.namespace, node);
                }
            }
        }
        for (i, (node, score)) in nodes.iter().zip(scores.iter_mut()).enumerate() {
            if ignored.contains(&i) {
                continue;
            }
            let mut raw = 0.0;
            for ((c, counts), weight) in soft.iter().zip(&counts).zip(&weights) {
                let value = node
                    .labels()
                    .get(&c.topology_key)
                    .map_or("", String::as_str);
                let n = if c.topology_key == HOSTNAME {
                    c.count_on(pod.namespace, node)
                } else {
                    counts.get(value).copied().unwrap_or(0)
                };
                raw += n as f64 * weight + (c.max_skew - 1) as f64;
            }
            *score = raw.round() as i64;
        }
        let counted = || {
            scores
                .iter()
                .enumerate()
                .filter(|(i, _)| !ignored.contains(i))
                .map(|(_, s)| *s)
        };
        let min = counted().min().unwrap_or(0);
        let max = counted().max().unwrap_or(0);
        for (i, s) in scores.iter_mut().enumerate() {
            *s = if ignored.contains(&i) {
                0
            } else if max == 0 {
                100
            } else {
                100 * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{bare, cluster_of, context, node, placed_pod, pod};
    use super::*;
    use serde_json::json;

    /// Zone a has nodes a1 and a2, zone b has b1; node x has no zone.
    fn nodes() -> BTreeMap<String, NodeInfo> {
        let mut nodes: Vec<NodeInfo> = ["a1", "a2", "b1"]
            .iter()
            .map(|n| {
                node(json!({"metadata": {"name": n, "labels": {
                    "kubernetes.io/hostname": n, "zone": &n[..1]}}}))
            })
            .collect();
        nodes.push(node(
            json!({"metadata": {"name": "x", "labels": {"kubernetes.io/hostname": "x"}}}),
        ));
        cluster_of(nodes)
    }

    fn web(name: &str, when: &str, extra: serde_json::Value) -> Pod {
        let mut constraint = json!({"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}});
        constraint
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        pod(
            json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [], "topologySpreadConstraints": [constraint]}}),
        )
    }

    fn filter_all(
        incoming: &Pod,
        nodes: &BTreeMap<String, NodeInfo>,
    ) -> Vec<Result<(), Vec<Reason>>> {
        let cluster = bare(nodes);
        let ctx = context(incoming, &cluster);
        nodes
            .values()
            .map(|n| PodTopologySpread.filter(&ctx, n))
            .collect()
    }

    #[test]
    fn do_not_schedule_keeps_the_skew_within_max_skew() {
        let mut nodes = nodes();
        let incoming = web("w", "DoNotSchedule", json!({}));
        // Nothing placed yet: any zoned node will do; x has no zone.
        let ok = Ok(());
        let missing = Err(vec![MISSING_LABEL_REASON.to_owned()]);
        let skewed = Err(vec![SPREAD_REASON.to_owned()]);
        assert_eq!(
            filter_all(&incoming, &nodes),
            [ok.clone(), ok.clone(), ok.clone(), missing.clone()]
        );
        // One web pod in zone a: a would have 2 against b's 0.
        nodes
            .get_mut("a1")
            .unwrap()
            .add(placed_pod(&web("w0", "DoNotSchedule", json!({}))));
        assert_eq!(
            filter_all(&incoming, &nodes),
            [skewed.clone(), skewed.clone(), ok.clone(), missing.clone()]
        );
        // Pods of another app, or another namespace, do not count.
        let other = pod(json!({"metadata": {"name": "o", "namespace": "default",
            "labels": {"app": "db"}}, "spec": {"containers": []}}));
        nodes.get_mut("b1").unwrap().add(placed_pod(&other));
        assert_eq!(filter_all(&incoming, &nodes)[2], ok);
        // One in b as well: both zones have 1, so either may take a second.
        nodes
            .get_mut("b1")
            .unwrap()
            .add(placed_pod(&web("w1", "DoNotSchedule", json!({}))));
        assert_eq!(
            filter_all(&incoming, &nodes),
            [ok.clone(), ok.clone(), ok.clone(), missing]
        );
    }

    #[test]
    fn min_domains_counts_missing_domains_as_empty() {
        let mut nodes = nodes();
        nodes
            .get_mut("a1")
            .unwrap()
            .add(placed_pod(&web("w0", "DoNotSchedule", json!({}))));
        nodes
            .get_mut("b1")
            .unwrap()
            .add(placed_pod(&web("w1", "DoNotSchedule", json!({}))));
        // Two zones exist, three are wanted: the minimum is taken as 0, so a
        // domain already holding one pod may not take another.
        let incoming = web("w", "DoNotSchedule", json!({"minDomains": 3}));
        let got = filter_all(&incoming, &nodes);
        assert!(
            got[..3]
                .iter()
                .all(|r| r == &Err(vec![SPREAD_REASON.to_owned()])),
            "{got:?}"
        );
    }

    #[test]
    fn schedule_anyway_scores_emptier_domains_higher() {
        let mut nodes = nodes();
        let w = |n: &str| placed_pod(&web(n, "ScheduleAnyway", json!({})));
        nodes.get_mut("a1").unwrap().add(w("w0"));
        nodes.get_mut("a2").unwrap().add(w("w1"));
        nodes.get_mut("b1").unwrap().add(w("w2"));
        let incoming = web("w", "ScheduleAnyway", json!({}));
        let cluster = bare(&nodes);
        let ctx = context(&incoming, &cluster);
        let feasible: Vec<&NodeInfo> = nodes.values().collect();
        let mut scores = vec![0; 4];
        PodTopologySpread.score(&ctx, &cluster, &feasible, &mut scores);
        // Two zones among the candidates: weight ln(4). Zone a holds 2 pods
        // (raw round(2 ln 4) = 3), zone b 1 (round(ln 4) = 1); x is ignored.
        // Normalised: 100 * (3 + 1 - raw) / 3.
        assert_eq!(scores, [33, 33, 100, 0]);
        // Filtering is not affected by ScheduleAnyway constraints.
        assert!(filter_all(&incoming, &nodes).iter().all(Result::is_ok));
    }
}
