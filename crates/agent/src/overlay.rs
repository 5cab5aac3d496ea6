//! The node's side of the pod network across hosts (Flannel's VXLAN backend): the agent
//! publishes its VXLAN endpoint on its Node (annotations [`VTEP_MAC`] and [`VTEP_IP`]) and
//! watches the other Nodes, so that every node with a pod range and an endpoint becomes a
//! peer of this node's overlay (`net::PodNetwork::sync_peers`). A node deleted, or one that
//! loses its annotations, is forgotten. Every few minutes the peers are written again, to
//! mend entries removed behind the agent's back.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector};
use kube::{Resource, ResourceExt};
use net::{Peer, format_mac, parse_mac};
use serde_json::json;

/// The annotation with the MAC address of a node's VXLAN device.
pub(crate) const VTEP_MAC: &str = "gantry.dev/vtep-mac";
/// The annotation with the address a node's VXLAN packets go to.
pub(crate) const VTEP_IP: &str = "gantry.dev/vtep-ip";
/// How often peers are written again though nothing changed.
const RESYNC: Duration = Duration::from_secs(120);
/// The first and the longest wait before retrying a failed sync.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Writes this node's VXLAN endpoint (`mac` at `underlay`) on its Node.
pub(crate) async fn publish(
    client: &kube::Client,
    node_name: &str,
    mac: [u8; 6],
    underlay: Ipv4Addr,
) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {
        VTEP_MAC: format_mac(mac),
        VTEP_IP: underlay.to_string(),
    }}});
    Api::<Node>::all(client.clone())
        .patch(node_name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(drop)
}

/// The overlay peer `node` stands for, if it has a pod range and a VXLAN endpoint.
pub(crate) fn peer_of(node: &Node) -> Option<Peer> {
    if node.meta().deletion_timestamp.is_some() {
        return None;
    }
    let annotations = node.meta().annotations.as_ref()?;
    Some(Peer {
        pod_cidr: node.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()?,
        underlay: annotations.get(VTEP_IP)?.parse().ok()?,
        mac: parse_mac(annotations.get(VTEP_MAC)?)?,
    })
}

/// Runs until the watch ends (never, in practice): keeps the pod network's overlay peers those
/// of the Nodes other than `node_name`; `ctx.network` must have an overlay.
pub(crate) async fn run(client: kube::Client, node_name: String, ctx: Arc<crate::pods::Context>) {
    let (nodes, writer) = reflector::store::<Node>();
    let mut events = reflector::reflector(
        writer,
        watcher::watcher(Api::<Node>::all(client), watcher::Config::default()).default_backoff(),
    )
    .boxed();
    let mut listed = false;
    let mut written: Option<Vec<Peer>> = None;
    let mut retry = RETRY_FIRST;
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    loop {
        let mut force = false;
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::InitDone)) => listed = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "watching nodes for overlay peers"),
                None => return,
            },
            _ = resync.tick() => force = true,
        }
        if !listed {
            continue;
        }
        let mut peers: Vec<Peer> = nodes
            .state()
            .iter()
            .filter(|n| n.name_any() != node_name)
            .filter_map(|n| peer_of(n))
            .collect();
        peers.sort();
        if !force && written.as_ref() == Some(&peers) {
            continue;
        }
        match ctx.network.sync_peers(&peers).await {
            Ok(()) => {
                tracing::info!(peers = peers.len(), "overlay peers synced");
                written = Some(peers);
                retry = RETRY_FIRST;
            }
            Err(e) => {
                tracing::warn!(error = %e, "syncing overlay peers; retrying");
                written = None;
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>, annotations: &[(&str, &str)]) -> Node {
        let annotations: std::collections::BTreeMap<_, _> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"podCIDR": cidr},
        }))
        .unwrap()
    }

    #[test]
    fn a_node_is_a_peer_with_a_range_and_an_endpoint() {
        let full = [(VTEP_MAC, "02:aa:bb:cc:dd:ee"), (VTEP_IP, "192.0.2.2")];
        let peer = peer_of(&node("b", Some("10.244.1.0/24"), &full)).unwrap();
        assert_eq!(peer.pod_cidr, "10.244.1.0/24".parse().unwrap());
        assert_eq!(peer.underlay, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(peer.mac, [2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
        // Without a range, an endpoint, or with a bad one: not (yet) a peer.
        assert!(peer_of(&node("b", None, &full)).is_none());
        assert!(peer_of(&node("b", Some("10.244.1.0/24"), &full[..1])).is_none());
        let bad = [(VTEP_MAC, "not a mac"), (VTEP_IP, "192.0.2.2")];
        assert!(peer_of(&node("b", Some("10.244.1.0/24"), &bad)).is_none());
    }
}
