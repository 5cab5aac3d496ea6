//! InterPodAffinity: pods that must (or would rather) share a topology
//! domain with other pods, or keep away from them, as kube-scheduler does.
//!
//! A term selects pods by labels in some namespaces, and names a node label
//! (`topologyKey`) whose value is the domain: `kubernetes.io/hostname` for
//! "the same node", a zone label for "the same zone". Before any node is
//! looked at, the pods already placed are counted per domain (the filter's
//! state in [`PodState`]); each node is then judged by its label value.
//!
//! Namespaces: a term applies to the namespaces it lists together with the
//! ones its `namespaceSelector` selects by their labels (an empty selector
//! selects all); with neither, to its own pod's namespace. The selector is
//! matched against the namespaces' labels when a pod is judged, not when
//! its terms are compiled, so a placed pod's terms follow relabelled
//! namespaces.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};

use super::selector::{Selector, selects_everything};
use super::{Cluster, Filter, NamespaceLabels, NodeInfo, PlacedPod, PodContext, Reason, Score};

/// Counts of pods per topology domain: key, then value.
type Counts = HashMap<String, HashMap<String, i64>>;

/// Adds `by` to the node's domain; a domain that drops to 0 is removed, so
/// that what is present is what holds pods (the filter asks for presence).
fn bump(counts: &mut Counts, node: &NodeInfo, key: &str, by: i64) {
    let Some(value) = node.labels().get(key) else {
        return;
    };
    let values = counts.entry(key.to_owned()).or_default();
    let n = values.entry(value.clone()).or_default();
    *n += by;
    if *n == 0 {
        values.remove(value);
        if values.is_empty() {
            counts.remove(key);
        }
    }
}

fn count(counts: &Counts, node: &NodeInfo, key: &str) -> i64 {
    node.labels()
        .get(key)
        .and_then(|v| counts.get(key)?.get(v))
        .copied()
        .unwrap_or(0)
}

/// Which namespaces a term looks in.
#[derive(Debug)]
enum Namespaces {
    All,
    /// The listed ones, and those whose labels the selector matches (a
    /// missing selector matches none).
    Some {
        listed: Vec<String>,
        selector: Selector,
    },
}

/// One pod affinity term, compiled.
#[derive(Debug)]
pub(crate) struct Term {
    selector: Selector,
    namespaces: Namespaces,
    topology_key: String,
    /// The preference's weight (1 for a required term).
    weight: i64,
}

impl Term {
    fn new(t: &PodAffinityTerm, own_namespace: &str, weight: i64) -> Self {
        let listed = t.namespaces.clone().unwrap_or_default();
        let namespaces = match &t.namespace_selector {
            Some(sel) if selects_everything(sel) => Namespaces::All,
            None if listed.is_empty() => Namespaces::Some {
                listed: vec![own_namespace.to_owned()],
                selector: Selector::new(None),
            },
            sel => Namespaces::Some {
                listed,
                selector: Selector::new(sel.as_ref()),
            },
        };
        Self {
            selector: Selector::new(t.label_selector.as_ref()),
            namespaces,
            topology_key: t.topology_key.clone(),
            weight,
        }
    }

    /// Whether the term selects a pod of that namespace and those labels.
    /// A namespace the scheduler has not seen has no labels to select.
    fn matches(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        namespaces: &NamespaceLabels,
    ) -> bool {
        let ns_ok = match &self.namespaces {
            Namespaces::All => true,
            Namespaces::Some { listed, selector } => {
                listed.iter().any(|n| n == namespace)
                    || namespaces
                        .get(namespace)
                        .is_some_and(|l| selector.matches(l))
            }
        };
        ns_ok && self.selector.matches(labels)
    }
}

/// A pod's pod affinity and anti-affinity terms, compiled.
#[derive(Debug, Default)]
pub(crate) struct PodTerms {
    required_affinity: Vec<Term>,
    required_anti: Vec<Term>,
    preferred_affinity: Vec<Term>,
    preferred_anti: Vec<Term>,
}

impl PodTerms {
    /// The pod's terms, or `None` when it has none.
    pub(crate) fn of(pod: &Pod) -> Option<Self> {
        let affinity = pod.spec.as_ref()?.affinity.as_ref()?;
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<Term> {
            terms
                .into_iter()
                .flatten()
                .map(|t| Term::new(t, ns, 1))
                .collect()
        };
        let preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| -> Vec<Term> {
            terms
                .into_iter()
                .flatten()
                .map(|t| Term::new(&t.pod_affinity_term, ns, i64::from(t.weight)))
                .collect()
        };
        let a = affinity.pod_affinity.as_ref();
        let anti = affinity.pod_anti_affinity.as_ref();
        let terms = Self {
            required_affinity: required(a.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti: required(anti.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(a.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti: preferred(anti.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
        };
        let empty = terms.required_affinity.is_empty()
            && terms.required_anti.is_empty()
            && terms.preferred_affinity.is_empty()
            && terms.preferred_anti.is_empty();
        (!empty).then_some(terms)
    }

    fn has_required(&self) -> bool {
        !self.required_affinity.is_empty() || !self.required_anti.is_empty()
    }

    fn has_preferred(&self) -> bool {
        !self.preferred_affinity.is_empty() || !self.preferred_anti.is_empty()
    }
}

/// What the filter knows before it looks at nodes (kube-scheduler's
/// PreFilter state).
#[derive(Default)]
pub(crate) struct PodState {
    /// The incoming pod's own terms.
    terms: Option<PodTerms>,
    /// Domains holding a placed pod whose required anti-affinity selects
    /// the incoming pod.
    existing_anti: Counts,
    /// Domains holding pods that match every required affinity term.
    affinity: Counts,
    /// Domains holding pods that a required anti-affinity term selects.
    anti: Counts,
    /// Whether the incoming pod matches its own required affinity terms
    /// (so the first of a group that wants to be together can start it).
    matches_own_affinity: bool,
}

impl PodState {
    pub(crate) fn new(
        pod: &Pod,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        cluster: &Cluster,
    ) -> Self {
        let mut state = Self {
            terms: PodTerms::of(pod),
            ..Self::default()
        };
        let required = state.terms.as_ref().is_some_and(PodTerms::has_required);
        // A pod without terms, in a cluster where no placed pod has any,
        // has nothing to count: the common case costs nothing.
        if !required && cluster.with_affinity == 0 {
            return state;
        }
        for node in cluster.nodes.values() {
            for placed in &node.placed {
                state.account(placed, node, 1, namespace, labels, cluster);
            }
        }
        let empty = PodTerms::default();
        let own = state.terms.as_ref().unwrap_or(&empty);
        state.matches_own_affinity = own
            .required_affinity
            .iter()
            .all(|t| t.matches(namespace, labels, cluster.namespaces));
        state
    }

    /// Counts a placed pod on a node into (`by` 1) or out of (`by` -1) the
    /// domains: placed pods' anti-affinity that selects the incoming pod,
    /// and the pods the incoming pod's own required terms select.
    pub(crate) fn account(
        &mut self,
        placed: &PlacedPod,
        node: &NodeInfo,
        by: i64,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        cluster: &Cluster,
    ) {
        let ns = cluster.namespaces;
        if let Some(theirs) = placed.terms.as_deref() {
            for t in &theirs.required_anti {
                if t.matches(namespace, labels, ns) {
                    bump(&mut self.existing_anti, node, &t.topology_key, by);
                }
            }
        }
        let Some(own) = self.terms.as_ref().filter(|t| t.has_required()) else {
            return;
        };
        if !own.required_affinity.is_empty()
            && own
                .required_affinity
                .iter()
                .all(|t| t.matches(&placed.namespace, &placed.labels, ns))
        {
            for t in &own.required_affinity {
                bump(&mut self.affinity, node, &t.topology_key, by);
            }
        }
        for t in &own.required_anti {
            if t.matches(&placed.namespace, &placed.labels, ns) {
                bump(&mut self.anti, node, &t.topology_key, by);
            }
        }
    }
}

/// Required pod affinity and anti-affinity (a filter), preferred ones (a
/// score), both ways: the incoming pod's terms and placed pods' terms that
/// select the incoming pod.
pub struct InterPodAffinity;

/// Reason for a node outside every domain the pod's affinity asks for.
pub const AFFINITY_REASON: &str = "node(s) didn't match pod affinity rules";
/// Reason for a node in a domain the pod's anti-affinity excludes.
pub const ANTI_AFFINITY_REASON: &str = "node(s) didn't match pod anti-affinity rules";
/// Reason for a node in a domain a placed pod's anti-affinity excludes.
pub const EXISTING_ANTI_AFFINITY_REASON: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

impl Filter for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn filter(&self, pod: &PodContext, node: &NodeInfo) -> Result<(), Vec<Reason>> {
        let state = &pod.inter_pod;
        if let Some(terms) = &state.terms {
            if !satisfies_affinity(state, terms, node) {
                return Err(vec![AFFINITY_REASON.into()]);
            }
            if terms
                .required_anti
                .iter()
                .any(|t| count(&state.anti, node, &t.topology_key) > 0)
            {
                return Err(vec![ANTI_AFFINITY_REASON.into()]);
            }
        }
        let excluded = state.existing_anti.iter().any(|(key, values)| {
            node.labels()
                .get(key)
                .is_some_and(|v| values.contains_key(v))
        });
        if excluded {
            return Err(vec![EXISTING_ANTI_AFFINITY_REASON.into()]);
        }
        Ok(())
    }
}

/// Every required affinity term needs its topology label on the node and a
/// matching pod in the node's domain; but when no pod anywhere matches and
/// the pod matches its own terms, it may go to any node with the labels.
fn satisfies_affinity(state: &PodState, terms: &PodTerms, node: &NodeInfo) -> bool {
    let mut found = true;
    for t in &terms.required_affinity {
        if !node.labels().contains_key(&t.topology_key) {
            return false;
        }
        if count(&state.affinity, node, &t.topology_key) <= 0 {
            found = false;
        }
    }
    found || (state.affinity.is_empty() && state.matches_own_affinity)
}

impl Score for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn weight(&self) -> i64 {
        2
    }

    /// Sums, per domain, the weights of the preferences that placed pods
    /// satisfy (the incoming pod's preferred terms selecting them, and
    /// their terms selecting the incoming pod; anti-affinity subtracts,
    /// a placed pod's required affinity adds 1), then scales the nodes'
    /// sums from the lowest (0) to the highest (100).
    fn score(&self, pod: &PodContext, cluster: &Cluster, nodes: &[&NodeInfo], scores: &mut [i64]) {
        let own = pod.inter_pod.terms.as_ref().filter(|t| t.has_preferred());
        if own.is_none() && cluster.with_affinity == 0 {
            return;
        }
        let mut sums = Counts::new();
        for node in cluster.nodes.values() {
            if own.is_none() && node.with_affinity == 0 {
                continue;
            }
            for placed in &node.placed {
                if let Some(own) = own {
                    for t in &own.preferred_affinity {
                        if t.matches(&placed.namespace, &placed.labels, cluster.namespaces) {
                            bump(&mut sums, node, &t.topology_key, t.weight);
                        }
                    }
                    for t in &own.preferred_anti {
                        if t.matches(&placed.namespace, &placed.labels, cluster.namespaces) {
                            bump(&mut sums, node, &t.topology_key, -t.weight);
                        }
                    }
                }
                let Some(theirs) = placed.terms.as_deref() else {
                    continue;
                };
                let selects = |t: &&Term| t.matches(pod.namespace, pod.labels, cluster.namespaces);
                for t in theirs.required_affinity.iter().filter(selects) {
                    bump(&mut sums, node, &t.topology_key, 1);
                }
                for t in theirs.preferred_affinity.iter().filter(selects) {
                    bump(&mut sums, node, &t.topology_key, t.weight);
                }
                for t in theirs.preferred_anti.iter().filter(selects) {
                    bump(&mut sums, node, &t.topology_key, -t.weight);
                }
            }
        }
        if sums.is_empty() {
            return;
        }
        for (node, score) in nodes.iter().zip(scores.iter_mut()) {
            *score = sums.keys().map(|key| count(&sums, node, key)).sum();
        }
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if max > min {
                100 * (*s - min) / (max - min)
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{bare, cluster_of, context, node, placed_pod, pod};
    use super::*;
    use serde_json::json;

    fn zone_nodes() -> Vec<NodeInfo> {
        ["a1", "a2", "b1"]
            .iter()
            .map(|n| {
                node(json!({"metadata": {"name": n, "labels": {
                    "kubernetes.io/hostname": n,
                    "zone": &n[..1],
                }}}))
            })
            .collect()
    }

    fn reasons(
        incoming: &Pod,
        nodes: &std::collections::BTreeMap<String, NodeInfo>,
        with_affinity: usize,
    ) -> Vec<(String, Result<(), Vec<Reason>>)> {
        reasons_in(incoming, nodes, with_affinity, &NamespaceLabels::new())
    }

    fn reasons_in(
        incoming: &Pod,
        nodes: &std::collections::BTreeMap<String, NodeInfo>,
        with_affinity: usize,
        namespaces: &NamespaceLabels,
    ) -> Vec<(String, Result<(), Vec<Reason>>)> {
        let cluster = Cluster {
            with_affinity,
            namespaces,
            ..bare(nodes)
        };
        let ctx = context(incoming, &cluster);
        nodes
            .values()
            .map(|n| (n.name().to_owned(), InterPodAffinity.filter(&ctx, n)))
            .collect()
    }

    fn anti_pod(name: &str, key: &str) -> Pod {
        pod(
            json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [], "affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": key}]}}}}),
        )
    }

    #[test]
    fn anti_affinity_keeps_away_from_matching_pods_in_the_domain() {
        let mut nodes = cluster_of(zone_nodes());
        let web = anti_pod("w0", "zone");
        nodes.get_mut("a1").unwrap().add(placed_pod(&web));
        // A second pod of the group: zone a is taken (by a1's pod), b is free.
        let got = reasons(&anti_pod("w1", "zone"), &nodes, 1);
        let anti = Err(vec![ANTI_AFFINITY_REASON.to_owned()]);
        assert_eq!(got[0], ("a1".to_owned(), anti.clone()));
        assert_eq!(got[1], ("a2".to_owned(), anti));
        assert_eq!(got[2], ("b1".to_owned(), Ok(())));
    }

    #[test]
    fn placed_pods_anti_affinity_keeps_the_incoming_pod_away() {
        let mut nodes = cluster_of(zone_nodes());
        nodes
            .get_mut("a2")
            .unwrap()
            .add(placed_pod(&anti_pod("w0", "kubernetes.io/hostname")));
        // The incoming pod has no terms of its own, but is labelled app=web.
        let plain = pod(json!({"metadata": {"name": "p", "namespace": "default",
            "labels": {"app": "web"}}, "spec": {"containers": []}}));
        let got = reasons(&plain, &nodes, 1);
        assert_eq!(got[0].1, Ok(()));
        assert_eq!(
            got[1].1,
            Err(vec![EXISTING_ANTI_AFFINITY_REASON.to_owned()])
        );
        assert_eq!(got[2].1, Ok(()));
        // Another namespace is not selected by the placed pod's term.
        let other = pod(json!({"metadata": {"name": "p", "namespace": "other",
            "labels": {"app": "web"}}, "spec": {"containers": []}}));
        assert!(reasons(&other, &nodes, 1).iter().all(|(_, r)| r.is_ok()));
    }

    #[test]
    fn a_namespace_selector_picks_namespaces_by_their_labels() {
        let labelled = |pairs: &[(&str, &str)]| -> NamespaceLabels {
            pairs
                .iter()
                .map(|(ns, team)| {
                    let labels = [("team".to_owned(), (*team).to_owned())].into();
                    ((*ns).to_owned(), labels)
                })
                .collect()
        };
        let web = |name: &str, ns: &str| {
            pod(
                json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}},
                "spec": {"containers": []}}),
            )
        };
        let mut nodes = cluster_of(zone_nodes());
        nodes
            .get_mut("a1")
            .unwrap()
            .add(placed_pod(&web("w0", "shop")));
        nodes
            .get_mut("a2")
            .unwrap()
            .add(placed_pod(&web("w1", "blog")));
        // Away from web pods of team x's namespaces, whatever its own.
        let term = |selector: serde_json::Value, listed: serde_json::Value| {
            pod(json!({"metadata": {"name": "p", "namespace": "default"},
                "spec": {"containers": [], "affinity": {"podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"app": "web"}},
                        "namespaceSelector": selector,
                        "namespaces": listed,
                        "topologyKey": "kubernetes.io/hostname"}]}}}}))
        };
        let anti = Err(vec![ANTI_AFFINITY_REASON.to_owned()]);
        let team_x = term(json!({"matchLabels": {"team": "x"}}), json!([]));
        let got = reasons_in(
            &team_x,
            &nodes,
            0,
            &labelled(&[("shop", "x"), ("blog", "y")]),
        );
        assert_eq!(got[0].1, anti, "shop is team x's");
        assert_eq!(got[1].1, Ok(()), "blog is not");
        assert_eq!(got[2].1, Ok(()));
        // Relabelled: the same term now selects blog and not shop.
        let got = reasons_in(
            &team_x,
            &nodes,
            0,
            &labelled(&[("shop", "y"), ("blog", "x")]),
        );
        assert_eq!((&got[0].1, &got[1].1), (&Ok(()), &anti));
        // The listed namespaces are added to the selected ones.
        let both = term(json!({"matchLabels": {"team": "x"}}), json!(["blog"]));
        let got = reasons_in(&both, &nodes, 0, &labelled(&[("shop", "x"), ("blog", "y")]));
        assert_eq!((&got[0].1, &got[1].1), (&anti, &anti));
        // An empty selector selects every namespace, listed ones or not.
        let all = term(json!({}), json!(["elsewhere"]));
        let got = reasons_in(&all, &nodes, 0, &NamespaceLabels::new());
        assert_eq!((&got[0].1, &got[1].1, &got[2].1), (&anti, &anti, &Ok(())));
        // A namespace the scheduler has not seen has no labels to match.
        let got = reasons_in(&team_x, &nodes, 0, &NamespaceLabels::new());
        assert!(got.iter().all(|(_, r)| r.is_ok()));
        // A placed pod's term is judged against the incoming pod's namespace
        // as labelled now.
        let mut nodes = cluster_of(zone_nodes());
        nodes.get_mut("b1").unwrap().add(placed_pod(&pod(json!({
            "metadata": {"name": "guard", "namespace": "default"},
            "spec": {"containers": [], "affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "namespaceSelector": {"matchExpressions": [
                        {"key": "team", "operator": "In", "values": ["x"]}]},
                    "topologyKey": "zone"}]}}}}))));
        let existing = Err(vec![EXISTING_ANTI_AFFINITY_REASON.to_owned()]);
        let got = reasons_in(&web("w2", "shop"), &nodes, 1, &labelled(&[("shop", "x")]));
        assert_eq!((&got[0].1, &got[2].1), (&Ok(()), &existing));
        let got = reasons_in(&web("w2", "shop"), &nodes, 1, &labelled(&[("shop", "y")]));
        assert!(got.iter().all(|(_, r)| r.is_ok()));
    }

    #[test]
    fn affinity_needs_a_matching_pod_in_the_domain_unless_none_exists() {
        let affine = |labels: serde_json::Value| {
            pod(
                json!({"metadata": {"name": "c", "namespace": "default", "labels": labels},
                "spec": {"containers": [], "affinity": {"podAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"app": "cache"}},
                        "topologyKey": "zone"}]}}}}),
            )
        };
        let mut nodes = cluster_of(zone_nodes());
        // No cache pod anywhere: a pod that is itself a cache may start the
        // group anywhere; one that is not fits nowhere.
        assert!(
            reasons(&affine(json!({"app": "cache"})), &nodes, 0)
                .iter()
                .all(|(_, r)| r.is_ok())
        );
        assert!(
            reasons(&affine(json!({})), &nodes, 0)
                .iter()
                .all(|(_, r)| r == &Err(vec![AFFINITY_REASON.to_owned()]))
        );
        let cache = pod(json!({"metadata": {"name": "c0", "namespace": "default",
            "labels": {"app": "cache"}}, "spec": {"containers": []}}));
        nodes.get_mut("b1").unwrap().add(placed_pod(&cache));
        let got = reasons(&affine(json!({})), &nodes, 0);
        assert_eq!(got[0].1, Err(vec![AFFINITY_REASON.to_owned()]));
        assert_eq!(got[1].1, Err(vec![AFFINITY_REASON.to_owned()]));
        assert_eq!(got[2].1, Ok(()));
    }

    #[test]
    fn preferences_score_from_lowest_to_highest() {
        let mut nodes = cluster_of(zone_nodes());
        let db = pod(json!({"metadata": {"name": "db", "namespace": "default",
            "labels": {"app": "db"}}, "spec": {"containers": []}}));
        let web = pod(json!({"metadata": {"name": "w", "namespace": "default",
            "labels": {"app": "web"}}, "spec": {"containers": []}}));
        nodes.get_mut("a1").unwrap().add(placed_pod(&db));
        nodes.get_mut("b1").unwrap().add(placed_pod(&web));
        // Near db (weight 80), away from web (weight 20), by zone: zone a
        // sums 80, zone b -20.
        let incoming = pod(json!({"metadata": {"name": "x", "namespace": "default"},
            "spec": {"containers": [], "affinity": {
                "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 80, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}]},
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 20, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}}]}}}}));
        let cluster = bare(&nodes);
        let ctx = context(&incoming, &cluster);
        let feasible: Vec<&NodeInfo> = nodes.values().collect();
        let mut scores = vec![0; 3];
        InterPodAffinity.score(&ctx, &cluster, &feasible, &mut scores);
        assert_eq!(scores, [100, 100, 0]);
    }
}
