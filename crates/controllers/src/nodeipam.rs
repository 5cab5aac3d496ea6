//! The node IPAM controller (kube-controller-manager's range allocator): every Node without
//! a pod range gets the lowest free range of the cluster CIDR, of a fixed size (/24: 254
//! pods), written to `spec.podCIDR` and `spec.podCIDRs`. The API server refuses to change a
//! range once set, so a node keeps its range for its life; a deleted node's range is free
//! again. A range some agent chose itself (`--pod-cidr`) is respected and counted as taken;
//! one that overlaps another node's, or lies outside the cluster CIDR, gets a Warning event
//! on the node. When every range is taken, the node gets a `CIDRNotAvailable` event and
//! waits for one to be freed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::sync::Mutex;

use crate::events::Events;
use crate::informers::Informers;

/// What the allocator hands out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Every pod's addresses; `None` turns the allocator off.
    pub cluster_cidr: Option<Ipv4Net>,
    /// The prefix length of one node's range (kube-controller-manager's
    /// `--node-cidr-mask-size`).
    pub node_mask: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster_cidr: Some("10.244.0.0/16".parse().expect("a CIDR")),
            node_mask: 24,
        }
    }
}

impl Settings {
    /// Checks that ranges of `node_mask` fit in the cluster CIDR and leave room for pods.
    pub fn validate(&self) -> Result<(), String> {
        let Some(cluster) = self.cluster_cidr else {
            return Ok(());
        };
        if self.node_mask < cluster.prefix_len() || self.node_mask > 30 {
            return Err(format!(
                "a node's pod range of /{} does not fit in the cluster CIDR {cluster} \
                 (it must be /{} to /30)",
                self.node_mask,
                cluster.prefix_len()
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct Ctx {
    client: kube::Client,
    nodes: Store<Node>,
    cluster: Ipv4Net,
    mask: u8,
    events: Events,
    /// Ranges written but maybe not in the cache yet, by node name; allocation holds this
    /// lock, so two nodes are never given one range.
    in_flight: Mutex<BTreeMap<String, Ipv4Net>>,
    /// Problems already reported, so a node's heartbeats do not repeat its event.
    reported: std::sync::Mutex<BTreeSet<(String, String)>>,
}

/// Runs the allocator until the task is dropped (at once, when it is turned off).
pub async fn run(informers: Informers, settings: Settings) -> anyhow::Result<()> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let Some(cluster) = settings.cluster_cidr else {
        return std::future::pending().await;
    };
    let nodes = informers.get::<Node>().await;
    let client = informers.client();
    let ctx = Arc::new(Ctx {
        events: Events::new(client.clone(), "node-ipam-controller"),
        client,
        nodes: nodes.store(),
        cluster: cluster.trunc(),
        mask: settings.node_mask,
        in_flight: Mutex::default(),
        reported: Default::default(),
    });
    Controller::for_stream(nodes.stream(), nodes.store())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "node ipam reconcile");
            }
            std::future::ready(())
        })
        .await;
    anyhow::bail!("the node ipam controller ended")
}

fn error_policy(node: Arc<Node>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(node = %node.name_any(), %error, "assigning a pod range failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// A node's pod range as written, if any (`None` for an unparsable one too: the API server
/// validates it, so that is not expected).
fn range_of(node: &Node) -> Option<Ipv4Net> {
    node.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()
}

/// Whether two ranges share an address.
fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The lowest range of `/mask` in `cluster` that overlaps none of `taken`.
pub fn lowest_free(cluster: Ipv4Net, mask: u8, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    cluster
        .subnets(mask)
        .ok()?
        .find(|candidate| !taken.iter().any(|t| overlaps(candidate, t)))
}

impl Ctx {
    /// Publishes a Warning about `node` once per (node, reason and subject).
    async fn warn_once(&self, node: &Node, reason: &str, note: String) {
        let key = (
            format!("{}/{}", node.name_any(), node.uid().unwrap_or_default()),
            note.clone(),
        );
        if !self.reported.lock().expect("not poisoned").insert(key) {
            return;
        }
        tracing::warn!(node = %node.name_any(), reason, "{note}");
        self.events
            .publish(node, EventType::Warning, reason, note)
            .await;
    }
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = node.name_any();
    let others: Vec<Arc<Node>> = ctx
        .nodes
        .state()
        .into_iter()
        .filter(|n| n.name_any() != name)
        .collect();
    if let Some(mine) = range_of(&node) {
        ctx.in_flight.lock().await.remove(&name);
        if !ctx.cluster.contains(&mine) {
            let note = format!(
                "the node's pod range {mine} is outside the cluster CIDR {}",
                ctx.cluster
            );
            ctx.warn_once(&node, "CIDRNotInCluster", note).await;
        }
        for other in &others {
            if let Some(theirs) = range_of(other)
                && overlaps(&mine, &theirs)
            {
                let note = format!(
                    "the node's pod range {mine} overlaps node {}'s {theirs}: pods on one \
                     of them may be unreachable",
                    other.name_any()
                );
                ctx.warn_once(&node, "PodCIDROverlap", note).await;
            }
        }
        return Ok(Action::await_change());
    }
    if node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }

    let mut in_flight = ctx.in_flight.lock().await;
    // Forget writes the cache has caught up with, and nodes that are gone.
    in_flight.retain(|n, _| {
        n == &name
            || others
                .iter()
                .any(|o| &o.name_any() == n && range_of(o).is_none())
    });
    let mut taken: Vec<Ipv4Net> = others.iter().filter_map(|n| range_of(n)).collect();
    taken.extend(
        in_flight
            .iter()
            .filter(|(n, _)| *n != &name)
            .map(|(_, r)| *r),
    );
    let Some(range) = in_flight
        .get(&name)
        .copied()
        .or_else(|| lowest_free(ctx.cluster, ctx.mask, &taken))
    else {
        let note = format!(
            "no pod range of /{} is free in the cluster CIDR {}",
            ctx.mask, ctx.cluster
        );
        ctx.warn_once(&node, "CIDRNotAvailable", note).await;
        return Ok(Action::requeue(Duration::from_secs(10)));
    };
    // The cache's resourceVersion: a node changed meanwhile (perhaps given a range by
    // someone else) makes this a conflict, and the next round looks again.
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "spec": {"podCIDR": range.to_string(), "podCIDRs": [range.to_string()]},
    });
    let api: Api<Node> = Api::all(ctx.client.clone());
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {
            in_flight.insert(name.clone(), range);
            tracing::info!(node = %name, %range, "assigned a pod range");
            ctx.events
                .publish(
                    node.as_ref(),
                    EventType::Normal,
                    "CIDRAssigned",
                    format!("Assigned pod range {range}"),
                )
                .await;
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn the_lowest_free_range_is_chosen_around_taken_ones() {
        let cluster = net("10.244.0.0/16");
        assert_eq!(lowest_free(cluster, 24, &[]), Some(net("10.244.0.0/24")));
        let taken = [net("10.244.0.0/24"), net("10.244.2.0/24")];
        assert_eq!(lowest_free(cluster, 24, &taken), Some(net("10.244.1.0/24")));
        // A bigger range someone chose covers several.
        let taken = [net("10.244.0.0/23"), net("10.244.2.128/25")];
        assert_eq!(lowest_free(cluster, 24, &taken), Some(net("10.244.3.0/24")));
        // A range outside the cluster does not matter.
        assert_eq!(
            lowest_free(cluster, 24, &[net("10.1.0.0/24")]),
            Some(net("10.244.0.0/24"))
        );
    }

    #[test]
    fn a_full_cluster_cidr_has_no_free_range() {
        let cluster = net("10.244.0.0/23");
        let taken = [net("10.244.0.0/24"), net("10.244.1.0/24")];
        assert_eq!(lowest_free(cluster, 24, &taken), None);
        assert_eq!(lowest_free(cluster, 24, &[net("10.0.0.0/8")]), None);
    }

    #[test]
    fn ranges_must_fit_the_cluster_cidr() {
        let settings = |cidr: &str, mask| Settings {
            cluster_cidr: Some(net(cidr)),
            node_mask: mask,
        };
        assert!(settings("10.244.0.0/16", 24).validate().is_ok());
        assert!(settings("10.244.0.0/16", 16).validate().is_ok());
        assert!(settings("10.244.0.0/16", 8).validate().is_err());
        assert!(settings("10.244.0.0/16", 31).validate().is_err());
    }
}
