//! The pod network on a node: bridge, veth pairs, address allocation, NAT.
//!
//! [`PodNetwork::setup`] makes the node side once: a Linux bridge holding the gateway
//! address of the node's pod range, IPv4 forwarding, and an nftables table that masquerades
//! pod traffic leaving the cluster. [`PodNetwork::attach`] then gives each pod sandbox an
//! address and a veth pair (the pod end `eth0` inside the sandbox's network namespace, the
//! host end a port of the bridge); [`PodNetwork::detach`] takes both back.
//!
//! Everything is found again from names and files, never from memory: the bridge by its
//! name, a pod's host veth by a name derived from the pod's uid ([`host_veth_name`]), its
//! address by a file under `state_dir/ipam/`. So every call is idempotent, and a new
//! `PodNetwork` over the same state directory (an agent restart) carries on where the last
//! one stopped.
//!
//! A `PodNetwork` acts in the network namespace of the thread that called `setup` (the
//! node's namespace; in tests, a namespace standing in for a host). Work inside a pod's
//! namespace runs on short-lived threads that entered it ([`run_in_netns`]).
//!
//! Modules: `link` (netlink: bridge, veth, addresses, routes), `ipam` (address files),
//! `nat` (the nftables table), `netns` (entering namespaces), `sysctl`; and `proxy`, the
//! Services of the node in an nftables table of their own ([`ServiceProxy`]); `announce`,
//! the load balancer addresses the node holds ([`Announcer`]); `policy`, NetworkPolicy in
//! a table of its own ([`PolicyTable`]).

mod announce;
mod error;
mod ipam;
mod link;
mod nat;
mod netns;
mod overlay;
mod policy;
mod proxy;
mod sysctl;

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::InfoKind;

pub use announce::Announcer;
pub use error::NetError;
pub use link::host_veth_name;
pub use netns::{connect_in_netns, run_in_netns};
pub use overlay::{DEFAULT_VXLAN_PORT, OverlayConfig, Peer, VXLAN_OVERHEAD, format_mac, parse_mac};
pub use policy::{PodPolicy, PolicyPeer, PolicyPort, PolicyRule, PolicyTable};
pub use proxy::{
    Endpoint, Protocol, ProxyConfig, ProxyError, ServicePort, ServiceProxy, SyncReport,
    TrafficPolicy,
};

use crate::ipam::Ipam;
use crate::link::{FALLBACK_MTU, Link, Netlink};
use crate::netns::{THREAD_NETNS, open_netns_named, run_async_in_netns, spawn_in_netns};

/// The name of the pod's end of its veth pair, inside the pod.
pub const POD_INTERFACE: &str = "eth0";

/// How the node's pod network is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The bridge's name, e.g. `gantry0` (at most 15 bytes).
    pub bridge: String,
    /// This node's pod range, e.g. `10.244.0.0/24`: its first address is the gateway, held
    /// by the bridge; pods get the others but the broadcast address. At most a /30.
    pub pod_cidr: Ipv4Net,
    /// The pod ranges of all nodes, e.g. `10.244.0.0/16`: traffic to it is not
    /// masqueraded. Must contain `pod_cidr`.
    pub cluster_cidr: Ipv4Net,
    /// The MTU of the bridge and of both ends of every veth (and of the VXLAN device). By
    /// default the MTU of the uplink (the interface holding the overlay's node address,
    /// else the one holding the IPv4 default route, else 1500), less the overlay's 50
    /// bytes when there is an overlay.
    pub mtu: Option<u32>,
    /// Where allocations are recorded (`DATA/net`): `ipam/<ip>` files naming the owner.
    pub state_dir: PathBuf,
    /// The nftables table (family `ip`), e.g. `gantry`.
    pub nft_table: String,
    /// The VXLAN overlay to the other nodes, if this node joins one.
    pub overlay: Option<OverlayConfig>,
}

/// What a pod got from [`PodNetwork::attach`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInterface {
    /// The pod's address, on its `eth0`.
    pub ip: Ipv4Addr,
    /// The prefix length of the pod range (the pod's on-link network).
    pub prefix_len: u8,
    /// The pod's default gateway: the bridge's address.
    pub gateway: Ipv4Addr,
    /// The name of the host end of the pod's veth.
    pub host_veth: String,
}

/// The pod network of this node: see the crate documentation.
pub struct PodNetwork {
    config: NetworkConfig,
    /// The pod range with its host bits cleared.
    pod_cidr: Ipv4Net,
    gateway: Ipv4Addr,
    mtu: u32,
    /// The node's network namespace (the one `setup` ran in), for `nft` and sysctls, which
    /// act in the namespace of the thread running them.
    home: OwnedFd,
    netlink: Netlink,
    ipam: Ipam,
    overlay: Option<overlay::Overlay>,
}

impl std::fmt::Debug for PodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodNetwork")
            .field("config", &self.config)
            .field("gateway", &self.gateway)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

/// Checks `config` and returns the pod range (host bits cleared) and gateway.
fn validate(config: &NetworkConfig) -> Result<(Ipv4Net, Ipv4Addr), NetError> {
    let invalid = |message: String| Err(NetError::InvalidConfig(message));
    if config.bridge.is_empty() || config.bridge.len() > 15 || config.bridge.contains('/') {
        return invalid(format!(
            "bridge name {:?} must have 1 to 15 bytes and no '/'",
            config.bridge
        ));
    }
    let table_ok = !config.nft_table.is_empty()
        && config
            .nft_table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !table_ok {
        return invalid(format!(
            "nftables table name {:?} must be letters, digits, '_' or '-'",
            config.nft_table
        ));
    }
    let pod_cidr = config.pod_cidr.trunc();
    if pod_cidr.prefix_len() > 30 {
        return invalid(format!(
            "pod range {pod_cidr} is too small: a gateway and a pod need at least a /30"
        ));
    }
    if !config.cluster_cidr.contains(&pod_cidr) {
        return invalid(format!(
            "pod range {pod_cidr} is not inside cluster range {}",
            config.cluster_cidr
        ));
    }
    if let Some(mtu) = config.mtu
        && !(68..=65535).contains(&mtu)
    {
        return invalid(format!("mtu {mtu} is outside 68..=65535"));
    }
    let gateway = Ipv4Addr::from(u32::from(pod_cidr.network()) + 1);
    Ok((pod_cidr, gateway))
}

impl PodNetwork {
    /// Makes the node side of the pod network, in the calling thread's network namespace:
    /// the bridge (created if missing, MTU set, up) with the gateway address, IPv4
    /// forwarding on, and the nftables table (masquerade for the pod range leaving the
    /// cluster range, forward accept for the bridge). Idempotent: running it again, or
    /// over what an earlier process made, changes nothing that is already right.
    ///
    /// Must be called inside a tokio runtime: the netlink connection's driver is spawned
    /// on it and the returned value is usable while that runtime runs.
    pub async fn setup(config: NetworkConfig) -> Result<Self, NetError> {
        let (pod_cidr, gateway) = validate(&config)?;
        let home = open_netns_named(Path::new(THREAD_NETNS))?;
        let netlink = Netlink::open()?;
        let mtu = match config.mtu {
            Some(mtu) => mtu,
            None => {
                let by_address = match &config.overlay {
                    Some(o) => netlink.mtu_of_address(o.local).await?,
                    None => None,
                };
                let uplink = match by_address {
                    Some(mtu) => mtu,
                    None => netlink.default_route_mtu().await?.unwrap_or(FALLBACK_MTU),
                };
                if config.overlay.is_some() {
                    uplink.saturating_sub(VXLAN_OVERHEAD).max(68)
                } else {
                    uplink
                }
            }
        };
        let ipam = Ipam::open(config.state_dir.join("ipam"), pod_cidr)?;

        let seed = format!("{}/{}", config.bridge, pod_cidr);
        let bridge = netlink
            .ensure_bridge(&config.bridge, mtu, link::stable_mac(&seed))
            .await?;
        netlink
            .ensure_address(
                &config.bridge,
                bridge,
                gateway,
                pod_cidr.prefix_len(),
                false,
            )
            .await?;

        let overlay = match &config.overlay {
            Some(o) => Some(overlay::Overlay::setup(&netlink, o, pod_cidr, mtu).await?),
            None => None,
        };

        let table = config.nft_table.clone();
        let rules = nat::ruleset(&nat::NatConfig {
            table: &config.nft_table,
            bridge: &config.bridge,
            pod_cidr,
            cluster_cidr: config.cluster_cidr,
        });
        in_home(&home, move || {
            sysctl::enable_ip_forward()?;
            nat::apply(&table, &rules)
        })
        .await?;

        tracing::info!(
            bridge = %config.bridge, %pod_cidr, %gateway, mtu,
            "pod network ready"
        );
        Ok(PodNetwork {
            config,
            pod_cidr,
            gateway,
            mtu,
            home,
            netlink,
            ipam,
            overlay,
        })
    }

    /// The MAC of this node's VXLAN device, which peers need; `None` without an overlay.
    pub fn overlay_mac(&self) -> Option<[u8; 6]> {
        self.overlay.as_ref().map(overlay::Overlay::mac)
    }

    /// Makes the overlay's routes, neighbours and forwarding entries those of exactly
    /// `peers` (see [`OverlayConfig`]): a peer's pods become reachable, a node no longer
    /// listed is forgotten. Fails if this network has no overlay.
    pub async fn sync_peers(&self, peers: &[Peer]) -> Result<(), NetError> {
        match &self.overlay {
            Some(overlay) => overlay.sync(&self.netlink, peers).await,
            None => Err(NetError::InvalidConfig(
                "this node's pod network has no overlay to add peers to".into(),
            )),
        }
    }

    /// The address of the pod `pod_uid`: the one it has, or one allocated now. `attach`
    /// wires that same address, so a caller may write it into the pod's files while the
    /// interface is still being made; `detach` releases it.
    pub fn address(&self, pod_uid: &str) -> Result<Ipv4Addr, NetError> {
        if pod_uid.is_empty() {
            return Err(NetError::EmptyPodUid);
        }
        Ok(self.ipam.allocate(pod_uid)?.0)
    }

    /// Connects the pod `pod_uid`, whose sandbox network namespace is the file `netns`:
    /// allocates its address (or finds the one it has), makes its veth pair (host end on
    /// the bridge and up; pod end `eth0` with the address, up, and the default route via
    /// the gateway) and brings `lo` up in the pod.
    ///
    /// Idempotent: a second call returns the same interface and repairs what is missing
    /// (a pair whose pod end is not in `netns` is made anew). If a first attach fails, the
    /// address it allocated is released again (one reserved by `address` stays reserved).
    pub async fn attach(&self, pod_uid: &str, netns: &Path) -> Result<PodInterface, NetError> {
        if pod_uid.is_empty() {
            return Err(NetError::EmptyPodUid);
        }
        let (ip, new) = self.ipam.allocate(pod_uid)?;
        let interface = PodInterface {
            ip,
            prefix_len: self.pod_cidr.prefix_len(),
            gateway: self.gateway,
            host_veth: host_veth_name(pod_uid),
        };
        let wired = patient(
            || format!("attaching pod {pod_uid}"),
            self.wire(&interface, netns),
        );
        match wired.await {
            Ok(()) => {
                tracing::debug!(pod = pod_uid, %ip, veth = %interface.host_veth, "pod attached");
                Ok(interface)
            }
            Err(error) => {
                if new {
                    // Best effort: the error being returned is the one worth reporting.
                    let unwire = self.netlink.delete_link(&interface.host_veth);
                    let _ = patient(|| format!("detaching pod {pod_uid}"), unwire).await;
                    let _ = self.ipam.release(pod_uid);
                }
                Err(error)
            }
        }
    }

    /// Makes (or checks) the veth pair of `interface` and configures the pod's side.
    async fn wire(&self, interface: &PodInterface, netns: &Path) -> Result<(), NetError> {
        let bridge = self
            .netlink
            .link(&self.config.bridge)
            .await?
            .ok_or_else(|| NetError::BridgeMissing(self.config.bridge.clone()))?;
        let pod_ns = open_netns_named(netns)?;
        let host = self
            .netlink
            .link(&interface.host_veth)
            .await?
            .filter(|link| link.kind == Some(InfoKind::Veth));

        // No host end: no pair of ours exists (deleting either end removes both), so a
        // new sandbox's pair is made at once. Only an `eth0` already in the namespace
        // makes that fail, and then `repair_pair` looks inside.
        let made = match host {
            None => match self
                .netlink
                .create_veth(
                    &interface.host_veth,
                    bridge.index,
                    self.mtu,
                    POD_INTERFACE,
                    pod_ns.as_fd(),
                )
                .await
            {
                Ok(()) => true,
                Err(e) if link::errno(&e) == Some(libc::EEXIST) => false,
                Err(e) => return Err(creating_veth(&interface.host_veth, e)),
            },
            Some(_) => false,
        };
        if !made {
            self.repair_pair(interface, netns, &pod_ns, host, bridge.index)
                .await?;
        }

        // A pod reaching itself through a Service: br_netfilter DNATs the frame on the
        // bridge, which sends it back out the port it came in by, and a bridge does that
        // only for a port in hairpin mode (the kubelet's `hairpin-veth`).
        let host_link = self
            .netlink
            .link(&interface.host_veth)
            .await?
            .ok_or_else(|| NetError::LinkMissing {
                name: interface.host_veth.clone(),
                netns: THREAD_NETNS.into(),
            })?;
        self.netlink
            .set_hairpin(host_link.index)
            .await
            .map_err(|e| {
                NetError::netlink(
                    format!("setting hairpin mode on {}", interface.host_veth),
                    e,
                )
            })?;

        let (ip, prefix_len, gateway, mtu) = (
            interface.ip,
            interface.prefix_len,
            interface.gateway,
            self.mtu,
        );
        let path = netns.to_path_buf();
        run_async_in_netns(netns, pod_ns, move || async move {
            let netlink = Netlink::open()?;
            let eth0 = netlink
                .link(POD_INTERFACE)
                .await?
                .ok_or_else(|| NetError::LinkMissing {
                    name: POD_INTERFACE.into(),
                    netns: path,
                })?;
            // Up before the address and route: the route's gateway must be on a live link.
            netlink
                .set_up(eth0.index, Some(mtu), None)
                .await
                .map_err(|e| NetError::netlink("bringing up eth0", e))?;
            netlink
                .ensure_address(POD_INTERFACE, eth0.index, ip, prefix_len, true)
                .await?;
            if let Some(lo) = netlink.link("lo").await? {
                netlink
                    .set_up(lo.index, None, None)
                    .await
                    .map_err(|e| NetError::netlink("bringing up lo", e))?;
            }
            netlink.replace_default_route(gateway, eth0.index).await
        })
        .await
    }

    /// Makes the pair of `interface` whole when its host end exists or the namespace
    /// already has an `eth0`: the pair is whole when the pod's `eth0` is the peer of our
    /// host end. Anything else (no pod end, or an `eth0` of another pair, say of an older
    /// sandbox) is removed and the pair made anew.
    async fn repair_pair(
        &self,
        interface: &PodInterface,
        netns: &Path,
        pod_ns: &OwnedFd,
        host: Option<Link>,
        bridge: u32,
    ) -> Result<(), NetError> {
        let host_index = host.as_ref().map(|link| link.index);
        let paired = run_async_in_netns(netns, dup(pod_ns, netns)?, move || async move {
            let netlink = Netlink::open()?;
            match netlink.link(POD_INTERFACE).await? {
                Some(eth0) if host_index.is_some() && eth0.peer_index == host_index => Ok(true),
                Some(_) => {
                    netlink.delete_link(POD_INTERFACE).await?;
                    Ok(false)
                }
                None => Ok(false),
            }
        })
        .await?;
        match host {
            Some(host) if paired => self
                .netlink
                .set_up(host.index, Some(self.mtu), Some(bridge))
                .await
                .map_err(|e| {
                    NetError::netlink(format!("bringing up veth {}", interface.host_veth), e)
                }),
            _ => {
                self.netlink.delete_link(&interface.host_veth).await?;
                self.netlink
                    .create_veth(
                        &interface.host_veth,
                        bridge,
                        self.mtu,
                        POD_INTERFACE,
                        pod_ns.as_fd(),
                    )
                    .await
                    .map_err(|e| creating_veth(&interface.host_veth, e))
            }
        }
    }

    /// Disconnects the pod `pod_uid`: removes its veth pair (the host end by name, else the
    /// pod's `eth0` if `netns` is given and still exists) and releases its address.
    /// Idempotent; the namespace may already be gone (its end of the pair went with it).
    pub async fn detach(&self, pod_uid: &str, netns: Option<&Path>) -> Result<(), NetError> {
        if pod_uid.is_empty() {
            return Err(NetError::EmptyPodUid);
        }
        patient(
            || format!("detaching pod {pod_uid}"),
            self.unwire(pod_uid, netns),
        )
        .await?;
        let released = self.ipam.release(pod_uid)?;
        tracing::debug!(pod = pod_uid, ?released, "pod detached");
        Ok(())
    }

    /// Removes the pod's veth pair, from the node's end or else the pod's.
    async fn unwire(&self, pod_uid: &str, netns: Option<&Path>) -> Result<(), NetError> {
        let host = host_veth_name(pod_uid);
        let removed = self.netlink.delete_link(&host).await?;
        if !removed && let Some(netns) = netns {
            // Deleting either end of a veth removes both, so the pod side only needs a
            // look when the host end was not found.
            match netns::open_netns(netns) {
                Ok(pod_ns) => {
                    run_async_in_netns(netns, pod_ns, || async {
                        let netlink = Netlink::open()?;
                        if let Some(eth0) = netlink.link(POD_INTERFACE).await?
                            && eth0.kind == Some(InfoKind::Veth)
                        {
                            netlink.delete_link(POD_INTERFACE).await?;
                        }
                        Ok(())
                    })
                    .await?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(NetError::Netns {
                        path: netns.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every recorded allocation as (pod uid, address), in address order. The agent
    /// detaches those whose pods are gone.
    pub fn allocations(&self) -> Result<Vec<(String, Ipv4Addr)>, NetError> {
        self.ipam.allocations()
    }

    /// The gateway: the first address of the pod range, held by the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The MTU in use (configured, or found from the default route at setup).
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Removes what `setup` and `attach` made in the node's namespace: the host ends of the
    /// pods' veths (ports of the bridge), the bridge, the VXLAN device and the nftables
    /// table. The state directory is left as it is. For tests and `gantry` cleanup.
    pub async fn teardown(self) -> Result<(), NetError> {
        if let Some(bridge) = self.netlink.link(&self.config.bridge).await? {
            for (name, _) in self.netlink.ports(bridge.index).await? {
                self.netlink.delete_link(&name).await?;
            }
            self.netlink.delete_link(&self.config.bridge).await?;
        }
        if let Some(overlay) = &self.config.overlay {
            self.netlink.delete_link(&overlay.device).await?;
        }
        let table = self.config.nft_table.clone();
        let rules = nat::delete_table(&table);
        in_home(&self.home, move || nat::apply(&table, &rules)).await?;
        tracing::info!(bridge = %self.config.bridge, "pod network torn down");
        Ok(())
    }
}

/// Runs blocking `work` in the node's namespace `home`.
async fn in_home<T: Send + 'static>(
    home: &OwnedFd,
    work: impl FnOnce() -> Result<T, NetError> + Send + 'static,
) -> Result<T, NetError> {
    let home = dup(home, Path::new(THREAD_NETNS))?;
    spawn_in_netns(home, work)
        .await
        .map_err(|source| NetError::Netns {
            path: THREAD_NETNS.into(),
            source,
        })?
}

/// A second descriptor of a namespace file, for a worker thread to own.
fn dup(ns: &OwnedFd, path: &Path) -> Result<OwnedFd, NetError> {
    ns.try_clone().map_err(|source| NetError::Netns {
        path: path.to_path_buf(),
        source,
    })
}

/// How long wiring or unwiring a pod may wait on the kernel's answers.
const NETLINK_PATIENCE: Duration = Duration::from_secs(30);

/// Runs `work`, an error if it takes longer than [`NETLINK_PATIENCE`]: a netlink
/// reply the kernel dropped would otherwise leave it waiting for good.
async fn patient<T>(
    op: impl FnOnce() -> String,
    work: impl Future<Output = Result<T, NetError>>,
) -> Result<T, NetError> {
    tokio::time::timeout(NETLINK_PATIENCE, work)
        .await
        .unwrap_or_else(|_| {
            Err(NetError::NetlinkTimeout {
                op: op(),
                waited: NETLINK_PATIENCE,
            })
        })
}

/// The error of a failed veth pair creation.
fn creating_veth(host: &str, e: rtnetlink::Error) -> NetError {
    NetError::netlink(format!("creating veth pair {host}/{POD_INTERFACE}"), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NetworkConfig {
        NetworkConfig {
            bridge: "gantry0".into(),
            pod_cidr: "10.244.1.0/24".parse().unwrap(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            mtu: None,
            state_dir: "/nonexistent".into(),
            nft_table: "gantry".into(),
            overlay: None,
        }
    }

    fn invalid(change: impl FnOnce(&mut NetworkConfig)) -> String {
        let mut config = config();
        change(&mut config);
        validate(&config).unwrap_err().to_string()
    }

    #[test]
    fn gateway_is_the_first_address() {
        let mut c = config();
        assert_eq!(validate(&c).unwrap().1, Ipv4Addr::new(10, 244, 1, 1));
        // Host bits in the configured range are ignored.
        c.pod_cidr = "10.244.1.77/24".parse().unwrap();
        let (range, gateway) = validate(&c).unwrap();
        assert_eq!(range.to_string(), "10.244.1.0/24");
        assert_eq!(gateway, Ipv4Addr::new(10, 244, 1, 1));
    }

    /// The agent runs these on a multi-threaded runtime, one task per pod, with the
    /// network shared: they must be `Send` (and the network `Sync`). Only type-checked.
    #[test]
    fn futures_are_send_and_the_network_is_sync() {
        fn send<T: Send>(_: T) {}
        fn sync<T: Send + Sync>(_: &T) {}
        let _check = |network: &PodNetwork, path: &Path| {
            sync(network);
            send(PodNetwork::setup(config()));
            send(network.attach("uid", path));
            send(network.detach("uid", Some(path)));
            send(connect_in_netns(path, "127.0.0.1:80".parse().unwrap()));
        };
    }

    #[test]
    fn bad_configs_are_refused() {
        assert_eq!(
            invalid(|c| c.pod_cidr = "10.244.1.0/31".parse().unwrap()),
            "invalid network config: pod range 10.244.1.0/31 is too small: a gateway and a pod need at least a /30"
        );
        assert_eq!(
            invalid(|c| c.pod_cidr = "10.245.0.0/24".parse().unwrap()),
            "invalid network config: pod range 10.245.0.0/24 is not inside cluster range 10.244.0.0/16"
        );
        assert!(invalid(|c| c.bridge = "a-very-long-bridge".into()).contains("1 to 15 bytes"));
        assert!(invalid(|c| c.nft_table = "bad table".into()).contains("nftables table name"));
        assert!(invalid(|c| c.mtu = Some(40)).contains("mtu 40"));
    }
}
