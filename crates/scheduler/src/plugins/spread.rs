//! PodTopologySpread: `spec.topologySpreadConstraints`, as kube-scheduler
//! applies them. Each constraint names a node label (the domain: a zone, a
//! host), a selector of the pods to count, and how uneven the counts may
//! get (`maxSkew`): with `DoNotSchedule` a node whose domain would exceed
//! the least-loaded domain by more than that is filtered out; with
//! `ScheduleAnyway` fuller domains only score lower.
//!
//! A pod that writes no constraints gets kube-scheduler's system defaults,
//! two `ScheduleAnyway` ones (at most 3 apart per host, 5 per zone) over the
//! pods its Services and controller select ([`Owners`]); a pod nothing
//! selects gets none.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::selector::Selector;
use super::{
    Cluster, Filter, NodeInfo, PlacedPod, PodContext, Reason, Score, node_affinity_matches,
    untolerated_taint,
};

/// The label whose domains are single nodes; counted per node when scoring.
const HOSTNAME: &str = "kubernetes.io/hostname";
/// The zone label the default constraints spread over.
const ZONE: &str = "topology.kubernetes.io/zone";

/// What kube-scheduler's default spreading counts a pod's siblings by (its
/// `DefaultSelector`): the selectors of the Services of the pod's namespace
/// that select it, and that of the ReplicaSet, StatefulSet or
/// ReplicationController that controls it.
#[derive(Default)]
pub struct Owners {
    /// Services' selectors by namespace and name (none kept when empty).
    services: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Controllers' selectors by kind, namespace and name.
    controllers: HashMap<(&'static str, String, String), LabelSelector>,
}

/// The controllers whose selectors count, by owner reference API version
/// and kind.
const CONTROLLERS: [(&str, &str); 3] = [
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "StatefulSet"),
    ("v1", "ReplicationController"),
];

impl Owners {
    /// Keeps (or, without a selector, forgets) a Service's selector.
    pub(crate) fn put_service(
        &mut self,
        namespace: String,
        name: String,
        selector: Option<BTreeMap<String, String>>,
    ) {
        match selector.filter(|s| !s.is_empty()) {
            Some(selector) => {
                self.services.insert((namespace, name), selector);
            }
            None => {
                self.services.remove(&(namespace, name));
            }
        }
    }

    pub(crate) fn remove_service(&mut self, namespace: String, name: String) {
        self.services.remove(&(namespace, name));
    }

    pub(crate) fn clear_services(&mut self) {
        self.services.clear();
    }

    /// Keeps a controller's selector; `kind` is one of ReplicaSet,
    /// StatefulSet and ReplicationController.
    pub(crate) fn put_controller(
        &mut self,
        kind: &'static str,
        namespace: String,
        name: String,
        selector: LabelSelector,
    ) {
        self.controllers.insert((kind, namespace, name), selector);
    }

    pub(crate) fn remove_controller(
        &mut self,
        kind: &'static str,
        namespace: String,
        name: String,
    ) {
        self.controllers.remove(&(kind, namespace, name));
    }

    pub(crate) fn clear_controllers(&mut self, kind: &'static str) {
        self.controllers.retain(|(k, _, _), _| *k != kind);
    }

    /// The selector of a pod's siblings, or `None` when nothing selects it.
    fn default_selector(
        &self,
        pod: &Pod,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<Selector> {
        let mut match_labels = BTreeMap::new();
        let start = (namespace.to_owned(), String::new());
        for ((ns, _), selector) in self.services.range(start..) {
            if ns != namespace {
                break;
            }
            if selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                match_labels.extend(selector.clone());
            }
        }
        let mut expressions = Vec::new();
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        let kind = owner.and_then(|o| {
            CONTROLLERS
                .iter()
                .find(|(v, k)| o.api_version == *v && o.kind == *k)
                .map(|(_, k)| *k)
        });
        if let (Some(owner), Some(kind)) = (owner, kind)
            && let Some(selector) =
                self.controllers
                    .get(&(kind, namespace.to_owned(), owner.name.clone()))
        {
            for (key, value) in selector.match_labels.iter().flatten() {
                expressions.push(LabelSelectorRequirement {
                    key: key.clone(),
                    operator: "In".into(),
                    values: Some(vec![value.clone()]),
                });
            }
            expressions.extend(selector.match_expressions.iter().flatten().cloned());
        }
        if match_labels.is_empty() && expressions.is_empty() {
            return None;
        }
        Some(Selector::new(Some(&LabelSelector {
            match_labels: Some(match_labels),
            match_expressions: Some(expressions),
        })))
    }
}

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
    /// Whether `soft` holds the system defaults: then a node without a
    /// constraint's label is scored on the others instead of left out.
    system_default: bool,
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
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .filter(|c| !c.is_empty());
        if constraints.is_none() {
            if let Some(selector) = cluster.owners.default_selector(pod, namespace, labels) {
                state.system_default = true;
                for (key, max_skew) in [(HOSTNAME, 3), (ZONE, 5)] {
                    state.soft.push(Constraint {
                        max_skew,
                        topology_key: key.to_owned(),
                        selects_self: selector.matches(labels),
                        selector: selector.clone(),
                        min_domains: 1,
                        honor_affinity: true,
                        honor_taints: false,
                    });
                }
            }
            return state;
        }
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
        state.set_minimum();
        state
    }

    fn set_minimum(&mut self) {
        self.minimum = self
            .counts
            .iter()
            .map(|c| c.values().copied().min().unwrap_or(0))
            .collect();
    }

    /// Counts a placed pod on a node into (`by` 1) or out of (`by` -1) the
    /// `DoNotSchedule` constraints' domains, as `new` counted it.
    pub(crate) fn account(
        &mut self,
        pod: &Pod,
        placed: &PlacedPod,
        node: &NodeInfo,
        by: i64,
        namespace: &str,
    ) {
        let Some(values) = domain_values(&self.hard, node) else {
            return;
        };
        if placed.deleting || placed.namespace != namespace {
            return;
        }
        for ((c, counts), value) in self.hard.iter().zip(&mut self.counts).zip(values) {
            if c.includes(pod, node) && c.selector.matches(&placed.labels) {
                *counts.entry(value.to_owned()).or_default() += by;
            }
        }
        self.set_minimum();
    }
}

/// The node's value for a constraint's label, "" when it has none.
fn label_or_empty<'n>(node: &'n NodeInfo, c: &Constraint) -> &'n str {
    node.labels()
        .get(&c.topology_key)
        .map_or("", String::as_str)
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
        // them over every node. Under written constraints a node without
        // all their labels is left out; under the defaults its missing
        // label counts as the value "".
        let system = pod.spread.system_default;
        let counted = |node: &NodeInfo| system || domain_values(soft, node).is_some();
        let mut counts: Vec<HashMap<&str, i64>> = vec![HashMap::new(); soft.len()];
        let mut ignored = HashSet::new();
        for (i, node) in nodes.iter().enumerate() {
            if !counted(node) {
                ignored.insert(i);
                continue;
            }
            for (c, counts) in soft.iter().zip(&mut counts) {
                if c.topology_key != HOSTNAME {
                    counts.entry(label_or_empty(node, c)).or_insert(0);
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
            if !counted(node) {
                continue;
            }
            for (c, counts) in soft.iter().zip(&mut counts) {
                if c.topology_key == HOSTNAME || !c.includes(pod.pod, node) {
                    continue;
                }
                if let Some(n) = counts.get_mut(label_or_empty(node, c)) {
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
                // Only under the defaults can a label be missing here; that
                // constraint then adds nothing.
                let Some(value) = node.labels().get(&c.topology_key).map(String::as_str) else {
                    continue;
                };
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

    /// A pod of ReplicaSet `web` (selector app=web), labelled app=web and
    /// tier=front.
    fn sibling(name: &str) -> Pod {
        pod(json!({"metadata": {"name": name, "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web", "uid": "u", "controller": true}]},
            "spec": {"containers": []}}))
    }

    fn owners() -> Owners {
        let mut owners = Owners::default();
        let selector = serde_json::from_value(json!({"matchLabels": {"app": "web"}})).unwrap();
        owners.put_controller("ReplicaSet", "default".into(), "web".into(), selector);
        owners
    }

    #[test]
    fn the_default_selector_comes_from_services_and_the_controller() {
        let mut owners = owners();
        let labels = |p: &Pod| p.metadata.labels.clone().unwrap();
        let web = sibling("w");
        let front = pod(json!({"metadata": {"name": "f", "namespace": "default",
            "labels": {"app": "api", "tier": "front"}}, "spec": {"containers": []}}));
        let selector = owners
            .default_selector(&web, "default", &labels(&web))
            .unwrap();
        assert!(selector.matches(&labels(&web)));
        assert!(!selector.matches(&labels(&front)));
        // Nothing selects the other pod: no defaults for it.
        assert!(
            owners
                .default_selector(&front, "default", &labels(&front))
                .is_none()
        );
        // A Service selecting tier=front adds its labels to the web pod's
        // selector, and gives the other pod one.
        let tier: BTreeMap<String, String> = [("tier".to_owned(), "front".to_owned())].into();
        owners.put_service("default".into(), "front".into(), Some(tier.clone()));
        let both = owners
            .default_selector(&web, "default", &labels(&web))
            .unwrap();
        let mut app_only = labels(&web);
        app_only.remove("tier");
        assert!(both.matches(&labels(&web)) && !both.matches(&app_only));
        let by_service = owners
            .default_selector(&front, "default", &labels(&front))
            .unwrap();
        assert!(by_service.matches(&labels(&front)));
        // Another namespace's Service or controller does not count.
        assert!(
            owners
                .default_selector(&front, "other", &labels(&front))
                .is_none()
        );
        owners.remove_service("default".into(), "front".into());
        assert!(
            owners
                .default_selector(&front, "default", &labels(&front))
                .is_none()
        );
        // A pod that writes its own constraints keeps them only.
        let written = web_owned_with_constraint();
        let cluster_nodes = nodes();
        let cluster = Cluster {
            owners: &owners,
            ..bare(&cluster_nodes)
        };
        let ctx = context(&written, &cluster);
        assert_eq!(ctx.spread.soft.len(), 0);
        assert_eq!(ctx.spread.hard.len(), 1);
    }

    fn web_owned_with_constraint() -> Pod {
        let mut p = web("w", "DoNotSchedule", json!({}));
        p.metadata.owner_references = sibling("w").metadata.owner_references;
        p
    }

    #[test]
    fn default_constraints_spread_siblings_over_hosts() {
        // Three hosts, no zones: the zone constraint adds nothing.
        let mut nodes = cluster_of(
            ["n1", "n2", "n3"]
                .iter()
                .map(|n| {
                    node(json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}}))
                })
                .collect(),
        );
        nodes.get_mut("n1").unwrap().add(placed_pod(&sibling("w0")));
        nodes.get_mut("n1").unwrap().add(placed_pod(&sibling("w1")));
        nodes.get_mut("n3").unwrap().add(placed_pod(&sibling("w2")));
        let owners = owners();
        let cluster = Cluster {
            owners: &owners,
            ..bare(&nodes)
        };
        let incoming = sibling("w3");
        let ctx = context(&incoming, &cluster);
        let feasible: Vec<&NodeInfo> = nodes.values().collect();
        let mut scores = vec![0; 3];
        PodTopologySpread.score(&ctx, &cluster, &feasible, &mut scores);
        // Per host: ln(3 + 2) per sibling plus maxSkew - 1 = 2, so raw
        // round(2 ln 5 + 2) = 5, 2, round(ln 5 + 2) = 4; normalised
        // 100 * (5 + 2 - raw) / 5.
        assert_eq!(scores, [40, 100, 60]);
        // Without an owner nothing is spread.
        let bare_cluster = bare(&nodes);
        let ctx = context(&incoming, &bare_cluster);
        let mut scores = vec![0; 3];
        PodTopologySpread.score(&ctx, &bare_cluster, &feasible, &mut scores);
        assert_eq!(scores, [0, 0, 0]);
    }
}
