//! Score plugins that look at one node at a time (normalised over the
//! candidates where kube-scheduler does): balanced allocation, preferred
//! node affinity, `PreferNoSchedule` taints, images already present.

use k8s_openapi::api::core::v1::Toleration;

use super::{Cluster, NodeInfo, PodContext, Score, normalized_image, term_matches, tolerated};

/// Prefers nodes whose cpu and memory would be used in equal shares after
/// the pod lands: 100 × (1 − |cpu share − memory share| / 2), shares capped
/// at 1. A pod that asks for neither is not scored (kube-scheduler skips
/// best-effort pods here).
pub struct BalancedAllocation;

impl Score for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn score(&self, pod: &PodContext, _: &Cluster, nodes: &[&NodeInfo], scores: &mut [i64]) {
        let req = pod.requests;
        if req.milli_cpu == 0 && req.memory == 0 {
            return;
        }
        for (node, score) in nodes.iter().zip(scores) {
            let (alloc, _) = node.allocatable();
            let share =
                |used: i64, cap: i64| (cap > 0).then(|| (used as f64 / cap as f64).min(1.0));
            let shares = [
                share(node.requested.milli_cpu + req.milli_cpu, alloc.milli_cpu),
                share(node.requested.memory + req.memory, alloc.memory),
            ];
            let std = match shares {
                [Some(c), Some(m)] => (c - m).abs() / 2.0,
                _ => 0.0,
            };
            *score = ((1.0 - std) * 100.0) as i64;
        }
    }
}

/// Preferred node affinity: the sum of the weights of the preferred terms
/// a node matches, as a share of the highest sum among the candidates.
pub struct NodeAffinityScore;

impl Score for NodeAffinityScore {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn weight(&self) -> i64 {
        2
    }

    fn score(&self, pod: &PodContext, _: &Cluster, nodes: &[&NodeInfo], scores: &mut [i64]) {
        let preferred = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default();
        if preferred.is_empty() {
            return;
        }
        for (node, score) in nodes.iter().zip(scores.iter_mut()) {
            *score = preferred
                .iter()
                .filter(|t| {
                    t.weight != 0 && term_matches(&t.preference, node.labels(), node.name())
                })
                .map(|t| i64::from(t.weight))
                .sum();
        }
        scale_to_highest(scores, false);
    }
}

/// kube-scheduler's default normalisation: each score as a share of the
/// highest (0..100), or, `reverse`, 100 less that share (fewer is better;
/// all 100 when every score is 0).
fn scale_to_highest(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = match (max, reverse) {
            (0, true) => 100,
            (0, false) => 0,
            (_, false) => 100 * *s / max,
            (_, true) => 100 - 100 * *s / max,
        };
    }
}

/// Prefers nodes with fewer `PreferNoSchedule` taints the pod does not
/// tolerate.
pub struct TaintTolerationScore;

impl Score for TaintTolerationScore {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn weight(&self) -> i64 {
        3
    }

    fn score(&self, pod: &PodContext, _: &Cluster, nodes: &[&NodeInfo], scores: &mut [i64]) {
        // Only tolerations that can apply to PreferNoSchedule count.
        let tolerations: Vec<Toleration> = super::tolerations(pod.pod)
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .cloned()
            .collect();
        for (node, score) in nodes.iter().zip(scores.iter_mut()) {
            let taints = node.node.spec.as_ref().and_then(|s| s.taints.as_ref());
            *score = taints
                .into_iter()
                .flatten()
                .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&tolerations, t))
                .count() as i64;
        }
        scale_to_highest(scores, true);
    }
}

/// Prefers nodes that already have the pod's images, by their size and by
/// how few nodes have them (so that pods do not all pile on the one node
/// that pulled an image): kube-scheduler's ImageLocality.
pub struct ImageLocality;

const MB: i64 = 1024 * 1024;
/// Below this much (scaled) image on the node, the score is 0.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container, this much or more scores 100.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

impl Score for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn score(&self, pod: &PodContext, cluster: &Cluster, nodes: &[&NodeInfo], scores: &mut [i64]) {
        let Some(spec) = pod.pod.spec.as_ref() else {
            return;
        };
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        let total = cluster.nodes.len().max(1) as f64;
        // Each image once per container with the share of nodes having it;
        // images no node has are dropped here, not looked up per node.
        let images: Vec<(String, f64)> = containers
            .clone()
            .filter_map(|c| {
                let name = normalized_image(c.image.as_deref()?);
                let having = *cluster.image_nodes.get(&name)?;
                Some((name, having as f64 / total))
            })
            .collect();
        if images.is_empty() {
            return;
        }
        let max = MAX_CONTAINER_THRESHOLD * containers.count() as i64;
        for (node, score) in nodes.iter().zip(scores.iter_mut()) {
            let sum: i64 = images
                .iter()
                .filter_map(|(name, spread)| {
                    let size = node.images.get(name)?;
                    Some((*size as f64 * spread) as i64)
                })
                .sum();
            let sum = sum.clamp(MIN_THRESHOLD, max.max(MIN_THRESHOLD + 1));
            *score = 100 * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{bare, cluster_of, context, node};
    use super::*;
    use crate::plugins::{Resources, pod_requests};
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;
    use std::collections::HashMap;

    fn run(
        score: &dyn Score,
        pod: &Pod,
        nodes: Vec<NodeInfo>,
        images: &HashMap<String, usize>,
    ) -> Vec<i64> {
        let nodes = cluster_of(nodes);
        let cluster = Cluster {
            image_nodes: images,
            ..bare(&nodes)
        };
        let mut ctx = context(pod, &cluster);
        ctx.requests = pod_requests(pod.spec.as_ref().unwrap());
        let feasible: Vec<&NodeInfo> = nodes.values().collect();
        let mut scores = vec![0; feasible.len()];
        score.score(&ctx, &cluster, &feasible, &mut scores);
        scores
    }

    fn sized(name: &str, cpu: &str, memory: &str) -> NodeInfo {
        node(json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}}}))
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn balanced_allocation_prefers_equal_shares() {
        // 1 cpu and 1 GiB asked: on a (4 cpu, 4 GiB) both shares are 1/4,
        // score 100; on b (2 cpu, 8 GiB) shares 1/2 and 1/8, 100 × (1 − 3/16).
        let p = pod(json!({"spec": {"containers": [{"name": "c",
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}));
        let got = run(
            &BalancedAllocation,
            &p,
            vec![sized("a", "4", "4Gi"), sized("b", "2", "8Gi")],
            &HashMap::new(),
        );
        assert_eq!(got, [100, 81]);
        // Already-placed requests count too: b with 1 cpu used is at 1, 1/8.
        let mut b = sized("b", "2", "8Gi");
        b.requested = Resources {
            milli_cpu: 1000,
            memory: 0,
            ephemeral_storage: 0,
        };
        assert_eq!(run(&BalancedAllocation, &p, vec![b], &HashMap::new()), [56]);
        // A pod asking for nothing is not scored.
        let empty = pod(json!({"spec": {"containers": [{"name": "c"}]}}));
        assert_eq!(
            run(
                &BalancedAllocation,
                &empty,
                vec![sized("a", "4", "4Gi")],
                &HashMap::new()
            ),
            [0]
        );
    }

    #[test]
    fn preferred_node_affinity_is_a_share_of_the_best_weight() {
        let labelled = |name: &str, labels: serde_json::Value| {
            node(json!({"metadata": {"name": name, "labels": labels}}))
        };
        let p = pod(
            json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 60, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
                {"weight": 20, "preference": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}}
            ]}}}}),
        );
        let got = run(
            &NodeAffinityScore,
            &p,
            vec![
                labelled("a", json!({"disk": "ssd", "gpu": "1"})),
                labelled("b", json!({"disk": "ssd"})),
                labelled("c", json!({"gpu": "1"})),
                labelled("d", json!({})),
            ],
            &HashMap::new(),
        );
        // 80, 60, 20, 0 out of 80.
        assert_eq!(got, [100, 75, 25, 0]);
    }

    #[test]
    fn fewer_untolerated_prefer_no_schedule_taints_score_higher() {
        let tainted = |name: &str, taints: serde_json::Value| {
            node(json!({"metadata": {"name": name}, "spec": {"taints": taints}}))
        };
        let p = pod(json!({"spec": {"containers": [], "tolerations": [
            {"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]}}));
        let got = run(
            &TaintTolerationScore,
            &p,
            vec![
                tainted("a", json!([])),
                tainted("b", json!([{"key": "old", "effect": "PreferNoSchedule"}])),
                tainted(
                    "c",
                    json!([{"key": "old", "effect": "PreferNoSchedule"},
                    {"key": "slow", "effect": "PreferNoSchedule"}]),
                ),
                // Tolerated, and a NoSchedule taint is not this plugin's.
                tainted(
                    "d",
                    json!([{"key": "spot", "effect": "PreferNoSchedule"},
                    {"key": "x", "effect": "NoSchedule"}]),
                ),
            ],
            &HashMap::new(),
        );
        assert_eq!(got, [100, 50, 0, 100]);
    }

    #[test]
    fn image_locality_weighs_size_by_how_many_nodes_have_it() {
        let with_image = |name: &str, image: &str, mb: i64| {
            node(json!({"metadata": {"name": name}, "status": {"images": [
                {"names": [image], "sizeBytes": mb * MB}]}}))
        };
        let p = pod(json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}}));
        let nodes = vec![
            with_image("a", "docker.io/library/nginx:latest", 500),
            with_image("b", "docker.io/library/redis:latest", 500),
        ];
        let mut images = HashMap::new();
        images.insert("docker.io/library/nginx:latest".to_owned(), 1);
        images.insert("docker.io/library/redis:latest".to_owned(), 1);
        // nginx on 1 of 2 nodes: 500 MB × 1/2 = 250 MB, scaled between 23 MB
        // and 1000 MB: 100 × 227 / 977 = 23.
        assert_eq!(run(&ImageLocality, &p, nodes, &images), [23, 0]);
    }

    #[test]
    fn image_names_are_normalised() {
        assert_eq!(normalized_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalized_image("me/app:1"), "docker.io/me/app:1");
        assert_eq!(
            normalized_image("registry.local:5000/app"),
            "registry.local:5000/app:latest"
        );
        assert_eq!(
            normalized_image("quay.io/x/y@sha256:ab"),
            "quay.io/x/y@sha256:ab"
        );
    }
}
