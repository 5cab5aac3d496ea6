//! The VXLAN overlay between nodes, after flannel's VXLAN backend: one VXLAN device per
//! node, no learning and no multicast; every peer is written into the kernel by hand.
//!
//! The device holds the network address of this node's pod range as a /32 and has a MAC
//! derived from the device name and range, so it survives restarts unchanged. For each
//! peer node (its pod range, its address on the network between nodes, its device's MAC):
//! - a route to the peer's range via the peer's network address, on-link through the
//!   device, so the kernel needs no ARP for a next hop it cannot reach by broadcast;
//! - a permanent neighbour entry: the peer's network address has the peer's MAC;
//! - a permanent FDB entry: frames for that MAC go in UDP to the peer's node address.
//!
//! [`Overlay::sync`] takes the whole list of peers and also removes what is no longer in
//! it, so it can be called again whenever the list may have changed.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::{LinkVxlan, RouteMessageBuilder};

use crate::NetError;
use crate::link::{self, Netlink, errno};

/// Bytes VXLAN adds to every frame over IPv4: outer IP (20), UDP (8), VXLAN (8) and the
/// inner Ethernet header (14). Pod links get the uplink's MTU less this, so that an
/// encapsulated packet still fits the uplink.
pub const VXLAN_OVERHEAD: u32 = 50;

/// The UDP port of the overlay by default: the one Linux and flannel use.
pub const DEFAULT_VXLAN_PORT: u16 = 8472;

/// How this node joins the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayConfig {
    /// The VXLAN device's name, e.g. `gantry0.vx` (at most 15 bytes).
    pub device: String,
    /// The VXLAN network identifier, 1 to 16777215. Two devices of one network namespace
    /// cannot share an identifier on the same port.
    pub vni: u32,
    /// The UDP port, on every node alike.
    pub port: u16,
    /// This node's address on the network between the nodes (its InternalIP): the source
    /// of encapsulated packets and where peers send theirs.
    pub local: Ipv4Addr,
}

/// Another node as the overlay sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    /// The node's pod range.
    pub pod_cidr: Ipv4Net,
    /// The node's address on the network between the nodes.
    pub underlay: Ipv4Addr,
    /// The MAC of the node's VXLAN device.
    pub mac: [u8; 6],
}

/// `aa:bb:cc:dd:ee:ff`, as peers publish their device's MAC.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads a MAC written as six hex pairs separated by colons.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The VXLAN device of this node, as made by [`Overlay::setup`].
#[derive(Debug, Clone)]
pub(crate) struct Overlay {
    device: String,
    index: u32,
    mac: [u8; 6],
    /// This node's pod range: never a peer's.
    own: Ipv4Net,
}

/// Checks `config` before anything is made.
fn validate(config: &OverlayConfig) -> Result<(), NetError> {
    let invalid = |message: String| Err(NetError::InvalidConfig(message));
    if config.device.is_empty() || config.device.len() > 15 || config.device.contains('/') {
        return invalid(format!(
            "VXLAN device name {:?} must have 1 to 15 bytes and no '/'",
            config.device
        ));
    }
    if !(1..=0xff_ffff).contains(&config.vni) {
        return invalid(format!("VXLAN id {} is outside 1..=16777215", config.vni));
    }
    if config.port == 0 {
        return invalid("VXLAN port 0 is not a port".into());
    }
    if config.local.is_unspecified() || config.local.is_loopback() {
        return invalid(format!(
            "the node address {} cannot carry the overlay: give the address other nodes reach this one at",
            config.local
        ));
    }
    Ok(())
}

/// Whether the VXLAN device described by `infos` is the one `config` asks for.
fn same_device(infos: &[InfoVxlan], config: &OverlayConfig) -> bool {
    let mut id = None;
    let mut local = None;
    let mut port = None;
    let mut learning = None;
    for info in infos {
        match info {
            InfoVxlan::Id(v) => id = Some(*v),
            InfoVxlan::Local(v) => local = Some(*v),
            InfoVxlan::Port(v) => port = Some(*v),
            InfoVxlan::Learning(v) => learning = Some(*v),
            _ => {}
        }
    }
    id == Some(config.vni)
        && local == Some(config.local)
        && port == Some(config.port)
        && learning != Some(true)
}

impl Overlay {
    /// Makes (or checks) the VXLAN device: created if missing, made anew if it exists with
    /// other settings (another id, port or node address), then given `mtu`, brought up, and
    /// given the network address of `pod_cidr` as its only address.
    pub(crate) async fn setup(
        netlink: &Netlink,
        config: &OverlayConfig,
        pod_cidr: Ipv4Net,
        mtu: u32,
    ) -> Result<Self, NetError> {
        validate(config)?;
        let name = &config.device;
        let mac = link::stable_mac(&format!("{name}/{pod_cidr}"));
        let existing = vxlan_infos(netlink, name).await?;
        let keep = matches!(&existing, Some(Some(infos)) if same_device(infos, config));
        if existing.is_some() && !keep {
            tracing::info!(device = %name, "replacing a VXLAN device made with other settings");
            netlink.delete_link(name).await?;
        }
        if !keep {
            let message = LinkVxlan::new(name, config.vni)
                .port(config.port)
                .local(config.local)
                .learning(false)
                .mtu(mtu)
                .address(mac.to_vec())
                .up()
                .build();
            if let Err(e) = netlink.handle().link().add(message).execute().await {
                let why = if errno(&e) == Some(libc::EEXIST) {
                    format!(
                        "creating VXLAN device {name}: another device of this network namespace has id {} on port {}; give this node another id",
                        config.vni, config.port
                    )
                } else {
                    format!("creating VXLAN device {name}")
                };
                return Err(NetError::netlink(why, e));
            }
        }
        let index = netlink
            .link(name)
            .await?
            .filter(|l| l.kind == Some(InfoKind::Vxlan))
            .ok_or_else(|| NetError::WrongLinkKind {
                name: name.clone(),
                expected: "vxlan",
            })?
            .index;
        netlink
            .set_up(index, Some(mtu), None)
            .await
            .map_err(|e| NetError::netlink(format!("bringing up {name}"), e))?;
        netlink
            .ensure_address(name, index, pod_cidr.network(), 32, true)
            .await?;
        Ok(Overlay {
            device: name.clone(),
            index,
            mac,
            own: pod_cidr,
        })
    }

    /// The device's MAC, for peers to reach this node by.
    pub(crate) fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Makes the kernel's routes, neighbours and FDB entries of the device those of
    /// exactly `peers`: each one's entries written (replacing what was there), and every
    /// entry of a node no longer listed removed. A peer whose range overlaps this node's
    /// is left out, with a warning: routing it would cut this node's own pods off.
    pub(crate) async fn sync(&self, netlink: &Netlink, peers: &[Peer]) -> Result<(), NetError> {
        let peers: BTreeSet<Peer> = peers
            .iter()
            .filter(|p| {
                let clash = p.pod_cidr.contains(&self.own.network())
                    || self.own.contains(&p.pod_cidr.network());
                if clash {
                    tracing::warn!(
                        peer = %p.underlay, range = %p.pod_cidr, own = %self.own,
                        "a node's pod range overlaps this node's; not routed"
                    );
                }
                !clash
            })
            .copied()
            .collect();
        let handle = netlink.handle();
        for peer in &peers {
            let next_hop = peer.pod_cidr.network();
            let what = || format!("overlay entries of {} ({})", peer.pod_cidr, peer.underlay);
            handle
                .neighbours()
                .add_bridge(self.index, &peer.mac)
                .flags(NeighbourFlags::Own)
                .destination(IpAddr::V4(peer.underlay))
                .replace()
                .execute()
                .await
                .map_err(|e| NetError::netlink(what(), e))?;
            handle
                .neighbours()
                .add(self.index, IpAddr::V4(next_hop))
                .link_layer_address(&peer.mac)
                .state(NeighbourState::Permanent)
                .replace()
                .execute()
                .await
                .map_err(|e| NetError::netlink(what(), e))?;
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(peer.pod_cidr.network(), peer.pod_cidr.prefix_len())
                .gateway(next_hop)
                .output_interface(self.index)
                .onlink()
                .build();
            handle
                .route()
                .add(route)
                .replace()
                .execute()
                .await
                .map_err(|e| NetError::netlink(what(), e))?;
        }
        self.remove_stale(netlink, &peers).await
    }

    /// Removes the routes, neighbours and FDB entries of the device that belong to no peer.
    async fn remove_stale(
        &self,
        netlink: &Netlink,
        peers: &BTreeSet<Peer>,
    ) -> Result<(), NetError> {
        let handle = netlink.handle();
        let ranges: BTreeSet<Ipv4Net> = peers.iter().map(|p| p.pod_cidr.trunc()).collect();
        let hops: BTreeSet<Ipv4Addr> = peers.iter().map(|p| p.pod_cidr.network()).collect();
        let macs: BTreeSet<[u8; 6]> = peers.iter().map(|p| p.mac).collect();
        let listing = |what: &str| format!("listing {what} of {}", self.device);

        let routes: Vec<RouteMessage> = handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::netlink(listing("routes"), e))?;
        for route in routes {
            if route.header.table != RouteHeader::RT_TABLE_MAIN
                || !route
                    .attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == self.index))
            {
                continue;
            }
            let destination = route.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(
                    rtnetlink::packet_route::route::RouteAddress::Inet(ip),
                ) => Some(*ip),
                _ => None,
            });
            let range = destination
                .and_then(|ip| Ipv4Net::new(ip, route.header.destination_prefix_length).ok());
            if range.is_some_and(|r| ranges.contains(&r)) {
                continue;
            }
            match handle.route().del(route).execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(libc::ESRCH) => {}
                Err(e) => {
                    return Err(NetError::netlink(
                        format!("removing a stale route of {}", self.device),
                        e,
                    ));
                }
            }
        }

        let neighbours: Vec<NeighbourMessage> = handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::netlink(listing("neighbours"), e))?;
        for neighbour in neighbours {
            if neighbour.header.ifindex != self.index {
                continue;
            }
            let ip = neighbour.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
                _ => None,
            });
            if ip.is_some_and(|ip| hops.contains(&ip)) {
                continue;
            }
            delete_neighbour(netlink, neighbour, &self.device).await?;
        }

        let fdb: Vec<NeighbourMessage> = handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::netlink(listing("forwarding entries"), e))?;
        for entry in fdb {
            if entry.header.ifindex != self.index {
                continue;
            }
            // Only entries that send somewhere: the kernel's own have no destination.
            let remote = entry
                .attributes
                .iter()
                .any(|a| matches!(a, NeighbourAttribute::Destination(_)));
            let mac = entry.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(mac) => <[u8; 6]>::try_from(&mac[..]).ok(),
                _ => None,
            });
            if !remote || mac.is_some_and(|m| macs.contains(&m)) {
                continue;
            }
            delete_neighbour(netlink, entry, &self.device).await?;
        }
        Ok(())
    }
}

/// Deletes one neighbour or FDB entry; one already gone is no error.
async fn delete_neighbour(
    netlink: &Netlink,
    message: NeighbourMessage,
    device: &str,
) -> Result<(), NetError> {
    match netlink.handle().neighbours().del(message).execute().await {
        Ok(()) => Ok(()),
        Err(e) if matches!(errno(&e), Some(libc::ENOENT) | Some(libc::ESRCH)) => Ok(()),
        Err(e) => Err(NetError::netlink(
            format!("removing a stale entry of {device}"),
            e,
        )),
    }
}

/// The VXLAN settings of link `name`: `None` if there is no such link, `Some(None)` if it
/// is not a VXLAN device.
async fn vxlan_infos(
    netlink: &Netlink,
    name: &str,
) -> Result<Option<Option<Vec<InfoVxlan>>>, NetError> {
    let Some(message) = netlink.link_message(name).await? else {
        return Ok(None);
    };
    let infos = message.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Vxlan(v)) => Some(v.clone()),
            _ => None,
        }),
        _ => None,
    });
    Ok(Some(infos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_bad_ones_are_refused() {
        let mac = [0x02, 0xab, 0x00, 0x10, 0xff, 0x7e];
        assert_eq!(format_mac(mac), "02:ab:00:10:ff:7e");
        assert_eq!(parse_mac("02:ab:00:10:ff:7e"), Some(mac));
        assert_eq!(parse_mac("02:AB:00:10:FF:7E"), Some(mac));
        for bad in [
            "",
            "02:ab:00:10:ff",
            "02:ab:00:10:ff:7e:01",
            "2:ab:00:10:ff:7e",
            "zz:ab:00:10:ff:7e",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_refused_before_anything_is_made() {
        let good = OverlayConfig {
            device: "gantry0.vx".into(),
            vni: 1,
            port: DEFAULT_VXLAN_PORT,
            local: Ipv4Addr::new(192, 0, 2, 10),
        };
        assert!(validate(&good).is_ok());
        for bad in [
            OverlayConfig {
                device: "a-name-too-long-x".into(),
                ..good.clone()
            },
            OverlayConfig {
                vni: 0,
                ..good.clone()
            },
            OverlayConfig {
                vni: 1 << 24,
                ..good.clone()
            },
            OverlayConfig {
                port: 0,
                ..good.clone()
            },
            OverlayConfig {
                local: Ipv4Addr::LOCALHOST,
                ..good.clone()
            },
            OverlayConfig {
                local: Ipv4Addr::UNSPECIFIED,
                ..good.clone()
            },
        ] {
            assert!(
                matches!(validate(&bad), Err(NetError::InvalidConfig(_))),
                "{bad:?}"
            );
        }
    }
}
