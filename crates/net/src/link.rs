//! Links, addresses and routes through netlink: the bridge, the veth pairs, the pod side.
//!
//! A [`Netlink`] acts in the network namespace its socket was opened in, whichever thread
//! uses it afterwards.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAttribute, RouteHeader};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{
    LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};
use sha2::{Digest, Sha256};

use crate::NetError;

/// `ENODEV`: no such link.
const ENODEV: i32 = libc::ENODEV;
/// `EEXIST`: the address (or link) is already there.
const EEXIST: i32 = libc::EEXIST;
/// `EADDRNOTAVAIL`: the address to delete is gone.
const EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;

/// The MTU when none is configured and no default route names an interface.
pub(crate) const FALLBACK_MTU: u32 = 1500;

/// The host-side name of a pod's veth: `veth` and 8 hex digits of a SHA-256 of the pod's
/// uid, 12 characters (the kernel allows 15). The name alone finds the link again after a
/// restart; 2^32 values make a clash between two pods of one node unlikely.
pub fn host_veth_name(pod_uid: &str) -> String {
    let digest = Sha256::digest(pod_uid.as_bytes());
    format!("veth{}", hex::encode(&digest[..4]))
}

/// A locally administered, unicast MAC address derived from `seed`.
///
/// A bridge takes the smallest MAC of its ports unless its own was set, so without a fixed
/// address the gateway's MAC would change as pods come and go and pods would keep sending
/// to a stale one until their ARP entry expires.
pub(crate) fn stable_mac(seed: &str) -> [u8; 6] {
    let digest = Sha256::digest(seed.as_bytes());
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

/// The errno of a netlink error, if it is one the kernel sent.
pub(crate) fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(-message.raw_code()),
        _ => None,
    }
}

/// What the kernel says of one link.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// Its index in its namespace.
    pub index: u32,
    /// `bridge`, `veth`, ... (`None` for links without a kind, such as `lo`).
    pub kind: Option<InfoKind>,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// The bridge it is a port of.
    pub controller: Option<u32>,
    /// For a veth, its peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
}

impl Link {
    fn from_message(message: &LinkMessage) -> Self {
        let mut link = Link {
            index: message.header.index,
            kind: None,
            mtu: None,
            controller: None,
            peer_index: None,
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::Mtu(mtu) => link.mtu = Some(*mtu),
                LinkAttribute::Controller(index) => link.controller = Some(*index),
                LinkAttribute::Link(index) => link.peer_index = Some(*index),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// The receive buffer a netlink connection asks for. The kernel drops a reply
/// that does not fit (the reader sees ENOBUFS) and the request waiting for it
/// never ends; the default (`net.core.rmem_default`, 208 KiB) was overrun when
/// 110 pods were deleted at once on two busy cores.
const RECEIVE_BUFFER: usize = 8 << 20;

/// Sets the socket's receive buffer to [`RECEIVE_BUFFER`], past
/// `net.core.rmem_max` where allowed (`SO_RCVBUFFORCE` needs CAP_NET_ADMIN,
/// which the agent has), else as far as that limit.
fn grow_receive_buffer(socket: &impl AsFd) {
    use nix::sys::socket::{setsockopt, sockopt};
    let size = RECEIVE_BUFFER;
    if setsockopt(socket, sockopt::RcvBufForce, &size).is_err()
        && setsockopt(socket, sockopt::RcvBuf, &size).is_err()
    {
        tracing::debug!("could not grow a netlink socket's receive buffer");
    }
}

/// A netlink connection, bound to the network namespace it was opened in.
#[derive(Clone)]
pub(crate) struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Opens a connection in the calling thread's network namespace; its driver runs as a
    /// task of the current tokio runtime and ends when the last clone is dropped.
    pub(crate) fn open() -> Result<Self, NetError> {
        let (mut connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetError::Netns {
                path: crate::netns::THREAD_NETNS.into(),
                source,
            })?;
        grow_receive_buffer(connection.socket_mut().socket_mut());
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// The connection's handle, for requests this module has no method for.
    pub(crate) fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// The link called `name`, if there is one.
    pub(crate) async fn link(&self, name: &str) -> Result<Option<Link>, NetError> {
        Ok(self
            .link_message(name)
            .await?
            .as_ref()
            .map(Link::from_message))
    }

    /// All the kernel says of the link called `name`, if there is one.
    pub(crate) async fn link_message(&self, name: &str) -> Result<Option<LinkMessage>, NetError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(message) => Ok(message),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(NetError::netlink(format!("looking up link {name}"), e)),
        }
    }

    /// The MTU of the link holding the IPv4 address `ip`, if one does.
    pub(crate) async fn mtu_of_address(&self, ip: Ipv4Addr) -> Result<Option<u32>, NetError> {
        let addresses: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::netlink("listing addresses", e))?;
        let index = addresses.iter().find_map(|m| {
            m.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Local(IpAddr::V4(v)) if *v == ip))
                .then_some(m.header.index)
        });
        match index {
            Some(index) => Ok(self.link_by_index(index).await?.and_then(|l| l.mtu)),
            None => Ok(None),
        }
    }

    /// The link with index `index`, if there is one.
    pub(crate) async fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetError> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(message) => Ok(message.as_ref().map(Link::from_message)),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(NetError::netlink(format!("looking up link {index}"), e)),
        }
    }

    /// Every link that is a port of the bridge with index `bridge`, by name.
    pub(crate) async fn ports(&self, bridge: u32) -> Result<Vec<(String, u32)>, NetError> {
        let mut links = self.handle.link().get().execute();
        let mut ports = Vec::new();
        while let Some(message) = links
            .try_next()
            .await
            .map_err(|e| NetError::netlink("listing links", e))?
        {
            if Link::from_message(&message).controller == Some(bridge) {
                let name = message.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(name) => Some(name.clone()),
                    _ => None,
                });
                ports.push((name.unwrap_or_default(), message.header.index));
            }
        }
        Ok(ports)
    }

    /// Creates the bridge `name` if it is missing (with MAC `mac`), and sets its MTU and
    /// brings it up either way. Returns its index.
    pub(crate) async fn ensure_bridge(
        &self,
        name: &str,
        mtu: u32,
        mac: [u8; 6],
    ) -> Result<u32, NetError> {
        let link = match self.link(name).await? {
            Some(link) => link,
            None => {
                let message = LinkBridge::new(name).mtu(mtu).address(mac.to_vec()).build();
                match self.handle.link().add(message).execute().await {
                    Ok(()) => {}
                    // Another setup made it in the meantime; it is checked below.
                    Err(e) if errno(&e) == Some(EEXIST) => {}
                    Err(e) => {
                        return Err(NetError::netlink(format!("creating bridge {name}"), e));
                    }
                }
                self.link(name)
                    .await?
                    .ok_or_else(|| NetError::WrongLinkKind {
                        name: name.to_string(),
                        expected: "bridge",
                    })?
            }
        };
        if link.kind != Some(InfoKind::Bridge) {
            return Err(NetError::WrongLinkKind {
                name: name.to_string(),
                expected: "bridge",
            });
        }
        self.set_up(link.index, Some(mtu), None)
            .await
            .map_err(|e| NetError::netlink(format!("bringing up bridge {name}"), e))?;
        Ok(link.index)
    }

    /// Brings link `index` up, optionally setting its MTU and making it a port of a bridge.
    pub(crate) async fn set_up(
        &self,
        index: u32,
        mtu: Option<u32>,
        controller: Option<u32>,
    ) -> Result<(), rtnetlink::Error> {
        let mut message = LinkUnspec::new_with_index(index).up();
        if let Some(mtu) = mtu {
            message = message.mtu(mtu);
        }
        if let Some(controller) = controller {
            message = message.controller(controller);
        }
        self.handle.link().change(message.build()).execute().await
    }

    /// Creates a veth pair: `host` here, a port of bridge `bridge` and up; its peer inside
    /// the namespace `peer_ns` straight away as `peer`, so no second name is ever taken
    /// here and the pod never sees a half-made link. Both ends get `mtu`, and one transmit
    /// and one receive queue: left to itself the kernel makes a queue per CPU, then cuts
    /// the count in use back to one on each end, each cut waiting for an expedited RCU
    /// grace period under the netlink lock (~0.5 ms apiece here).
    pub(crate) async fn create_veth(
        &self,
        host: &str,
        bridge: u32,
        mtu: u32,
        peer: &str,
        peer_ns: BorrowedFd<'_>,
    ) -> Result<(), rtnetlink::Error> {
        let peer_message = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer)
            .mtu(mtu)
            .setns_by_fd(peer_ns.as_raw_fd())
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .build();
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host)
            .mtu(mtu)
            .controller(bridge)
            .up()
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
            .build();
        self.handle.link().add(message).execute().await
    }

    /// Puts the bridge port `index` in hairpin mode: frames may leave through the port they
    /// came in by.
    pub(crate) async fn set_hairpin(&self, index: u32) -> Result<(), rtnetlink::Error> {
        let message = LinkBridgePort::new(index).hairpin(true).build();
        self.handle.link().change(message).execute().await
    }

    /// Deletes link `name` if it exists (for a veth, both ends go). Returns whether it did.
    pub(crate) async fn delete_link(&self, name: &str) -> Result<bool, NetError> {
        let Some(link) = self.link(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(link.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(false),
            Err(e) => Err(NetError::netlink(format!("deleting link {name}"), e)),
        }
    }

    /// Makes `ip/prefix_len` an address of link `index`; with `exclusive`, other IPv4
    /// addresses of the link are removed (a pod's `eth0` has exactly one).
    pub(crate) async fn ensure_address(
        &self,
        name: &str,
        index: u32,
        ip: Ipv4Addr,
        prefix_len: u8,
        exclusive: bool,
    ) -> Result<(), NetError> {
        let mut present = false;
        for message in self.ipv4_addresses(index).await? {
            let address = message.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            if address == Some(ip) && message.header.prefix_len == prefix_len {
                present = true;
            } else if exclusive {
                match self.handle.address().del(message).execute().await {
                    Ok(()) => {}
                    Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => {}
                    Err(e) => {
                        return Err(NetError::netlink(
                            format!("removing a stale address of {name}"),
                            e,
                        ));
                    }
                }
            }
        }
        if present {
            return Ok(());
        }
        match self
            .handle
            .address()
            .add(index, IpAddr::V4(ip), prefix_len)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(NetError::netlink(
                format!("adding address {ip}/{prefix_len} to {name}"),
                e,
            )),
        }
    }

    /// The IPv4 addresses of link `index`.
    async fn ipv4_addresses(&self, index: u32) -> Result<Vec<AddressMessage>, NetError> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_filter(|m| {
                std::future::ready(
                    m.header.family == AddressFamily::Inet && m.header.index == index,
                )
            })
            .try_collect()
            .await
            .map_err(|e| NetError::netlink(format!("listing addresses of link {index}"), e))
    }

    /// Sets (or replaces) the default route: via `gateway` through link `index`.
    pub(crate) async fn replace_default_route(
        &self,
        gateway: Ipv4Addr,
        index: u32,
    ) -> Result<(), NetError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        self.handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(|e| NetError::netlink(format!("setting the default route via {gateway}"), e))
    }

    /// The MTU of the interface holding the IPv4 default route of the main table, if any.
    pub(crate) async fn default_route_mtu(&self) -> Result<Option<u32>, NetError> {
        let routes: Vec<_> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::netlink("listing routes", e))?;
        let oif = routes
            .iter()
            .filter(|r| {
                r.header.destination_prefix_length == 0
                    && r.header.table == RouteHeader::RT_TABLE_MAIN
            })
            .find_map(|r| {
                r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(index) => Some(*index),
                    RouteAttribute::MultiPath(hops) => hops.first().map(|hop| hop.interface_index),
                    _ => None,
                })
            });
        match oif {
            Some(index) => Ok(self.link_by_index(index).await?.and_then(|link| link.mtu)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_short_stable_and_distinct() {
        let a = host_veth_name("0f1e2d3c-aaaa-bbbb-cccc-000000000001");
        assert_eq!(a, host_veth_name("0f1e2d3c-aaaa-bbbb-cccc-000000000001"));
        assert_ne!(a, host_veth_name("0f1e2d3c-aaaa-bbbb-cccc-000000000002"));
        assert!(a.len() <= 15 && a.starts_with("veth"), "{a}");
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }

    /// Needs CAP_NET_ADMIN (root), as the agent runs.
    #[tokio::test]
    async fn netlink_sockets_get_a_large_receive_buffer() {
        let (mut connection, _, _) = rtnetlink::new_connection().unwrap();
        let socket = connection.socket_mut().socket_mut();
        let before = socket.get_rx_buf_sz().unwrap();
        grow_receive_buffer(socket);
        // The kernel reports twice what was asked (its bookkeeping included).
        let after = socket.get_rx_buf_sz().unwrap();
        assert!(after >= RECEIVE_BUFFER, "{before} -> {after}");
    }

    #[test]
    fn stable_mac_is_local_unicast() {
        let mac = stable_mac("gantry0");
        assert_eq!(mac, stable_mac("gantry0"));
        assert_eq!(mac[0] & 0x01, 0, "unicast");
        assert_eq!(mac[0] & 0x02, 0x02, "locally administered");
    }
}
