//! Services on a node, the job of kube-proxy's nftables mode: traffic to a Service's
//! virtual addresses is spread over its endpoints by DNAT, in an nftables table of its own.
//!
//! The caller describes every Service port it wants ([`ServicePort`], plain data the agent
//! builds from Services and EndpointSlices); [`ServiceProxy::sync`] compiles the description
//! into rules (`rules`, pure), compares them with what it applied last and sends only the
//! difference (`batch`) to `nft` as one transaction: chains and map elements of Service ports
//! that did not change are left alone, so their rule handles, affinity entries and counters
//! stay. The first sync (and the first after a failure) does not trust its memory: it lists
//! the table and rewrites all of it, still in one transaction, keeping the affinity sets that
//! are still wanted. Connections already set up keep their endpoint either way: conntrack
//! translates every packet after a connection's first, and the rules only see first packets.
//!
//! The layout, after kube-proxy's:
//! - `nat-prerouting` and `nat-output` (nat, dstnat) jump to `services`, which looks the
//!   packet up in the verdict maps `service-ips` (`ip daddr . meta l4proto . th dport`:
//!   cluster IPs, external IPs and load balancer IPs) and `service-nodeports`
//!   (`meta l4proto . th dport` on the node's own addresses but 127.0.0.0/8).
//! - A cluster IP leads to `service-<port>`, which picks an endpoint with
//!   `numgen random mod n`; an `endpoint-<port>__<ip>/<port>` chain DNATs to it. External
//!   traffic (node ports, external and load balancer IPs) goes through `external-<port>`
//!   first: masqueraded with `externalTrafficPolicy: Cluster`; with `Local` kept as it is
//!   and sent to `local-<port>` (this node's endpoints only), or dropped when there is none.
//! - A pod reaching itself through its Service (hairpin) and off-cluster clients of a cluster
//!   IP are marked; `nat-postrouting` (srcnat) masquerades marked packets.
//! - `sessionAffinity: ClientIP` keeps a set per endpoint (`affinity-...`, with the
//!   Service's timeout) that the endpoint chain updates with the client's address and the
//!   service chain looks up first.
//! - A Service port without usable endpoints is rejected at once (ICMP port unreachable,
//!   which a TCP client sees as a refused connection) from `filter-prerouting` and
//!   `filter-output` (filter, dstnat - 10) through the maps `no-endpoint-services` and
//!   `no-endpoint-nodeports`, for new connections only.
//!
//! UDP has no connection to end, so when an endpoint of a UDP port goes away its conntrack
//! entries are deleted (Debian's `conntrack` tool), else clients would keep sending to it.

mod batch;
mod conntrack;
mod rules;

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::Path;

use ipnet::Ipv4Net;
use nftables::helper::NftablesError;

use crate::NetError;
use crate::netns::{THREAD_NETNS, open_netns_named, spawn_in_netns};

/// What went wrong while programming Services.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The description cannot be turned into rules; nothing was applied.
    #[error("service {service}: {reason}")]
    InvalidService {
        /// The Service port at fault (`namespace/name:port`).
        service: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration is unusable.
    #[error("invalid proxy config: {0}")]
    InvalidConfig(String),
    /// Entering the node's namespace or running `nft` failed.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// Where the rules live and what is inside the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The nftables table (family `ip`), e.g. `gantry-svc`. The proxy owns all of it.
    pub table: String,
    /// The pod ranges of all nodes. Clients outside it reaching a cluster IP are
    /// masqueraded (so that replies come back through this node), and pods reaching an
    /// external address of a `Local` Service are balanced over every endpoint, as
    /// kube-proxy does. `None`: neither.
    pub cluster_cidr: Option<Ipv4Net>,
    /// The Services' cluster IP range. A new connection to it that no Service took (an
    /// address not allocated, or not yet known here, or a port the Service lacks) is refused
    /// rather than routed on: with no route of its own, the range would otherwise leave by
    /// the default route, and a connection made that way keeps its untranslated conntrack
    /// entry. `None`: no such check.
    pub service_cidr: Option<Ipv4Net>,
}

/// A transport protocol a Service port can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The name nftables (and Kubernetes, in lower case) uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// `externalTrafficPolicy` or `internalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    /// Every usable endpoint of the cluster.
    #[default]
    Cluster,
    /// Only this node's endpoints; the client's address is kept.
    Local,
}

/// One port of one Service, with the endpoints serving it: what the rules are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name; empty for the one unnamed port a Service may have.
    pub port_name: String,
    /// The port's protocol.
    pub protocol: Protocol,
    /// The Service's cluster IP; `None` for a Service without one (only node ports or
    /// external addresses then).
    pub cluster_ip: Option<Ipv4Addr>,
    /// The Service port, on the cluster IP and the external addresses.
    pub port: u16,
    /// The node port, on every address of the node but loopback.
    pub node_port: Option<u16>,
    /// `spec.externalIPs`: external traffic.
    pub external_ips: Vec<Ipv4Addr>,
    /// The `status.loadBalancer.ingress[].ip` addresses: external traffic too, from the
    /// clients `source_ranges` allows.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `spec.loadBalancerSourceRanges`: when not empty, packets to the load balancer
    /// addresses from any other source are dropped.
    pub source_ranges: Vec<ipnet::Ipv4Net>,
    /// `spec.externalTrafficPolicy`: for node ports and external addresses.
    pub external_policy: TrafficPolicy,
    /// `spec.internalTrafficPolicy`: for the cluster IP.
    pub internal_policy: TrafficPolicy,
    /// `sessionAffinity: ClientIP`, with its timeout in seconds; `None` for no affinity.
    pub affinity_timeout: Option<u32>,
    /// The endpoints of this port, from every node, usable or not: the rules pick.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/name:port`, naming the port in errors and logs.
    pub fn id(&self) -> String {
        let port = if self.port_name.is_empty() {
            self.port.to_string()
        } else {
            self.port_name.clone()
        };
        format!("{}/{}:{port}", self.namespace, self.name)
    }
}

/// An endpoint of a Service port, with its EndpointSlice conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The endpoint's address (a pod's).
    pub ip: Ipv4Addr,
    /// The port traffic is sent to (the resolved target port).
    pub port: u16,
    /// `conditions.ready`: new connections go to ready endpoints.
    pub ready: bool,
    /// `conditions.serving`: a terminating endpoint that still serves is used when no
    /// endpoint is ready.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// On this node (`nodeName` is this node's): the only ones `Local` policies use.
    pub local: bool,
}

/// What a [`ServiceProxy::sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The whole table was rewritten (first sync, or after a failure).
    pub full: bool,
    /// Chains created or rewritten.
    pub chains_written: usize,
    /// Chains removed.
    pub chains_deleted: usize,
    /// Map elements added or removed.
    pub elements_changed: usize,
    /// UDP conntrack entries of removed endpoints that were deleted.
    pub conntrack_deleted: usize,
}

impl SyncReport {
    /// Nothing was sent to the kernel.
    pub fn is_noop(&self) -> bool {
        !self.full
            && self.chains_written == 0
            && self.chains_deleted == 0
            && self.elements_changed == 0
    }
}

/// The Services of this node in nftables: see the module documentation.
pub struct ServiceProxy {
    config: ProxyConfig,
    /// The node's network namespace (the one `new` ran in), where `nft` and `conntrack` run.
    home: OwnedFd,
    /// The rules the kernel holds, as last applied; `None` when unknown (nothing applied
    /// yet, or the last attempt failed), which makes the next sync a full one.
    applied: Option<rules::Ruleset>,
}

impl std::fmt::Debug for ServiceProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProxy")
            .field("config", &self.config)
            .field("synced", &self.applied.is_some())
            .finish_non_exhaustive()
    }
}

impl ServiceProxy {
    /// A proxy acting in the calling thread's network namespace (the node's). Touches
    /// nothing yet: the first [`ServiceProxy::sync`] makes the table.
    pub fn new(config: ProxyConfig) -> Result<Self, ProxyError> {
        let name_ok = !config.table.is_empty()
            && config.table.len() <= 64
            && config
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(ProxyError::InvalidConfig(format!(
                "nftables table name {:?} must be 1 to 64 letters, digits, '_' or '-'",
                config.table
            )));
        }
        let home = open_netns_named(Path::new(THREAD_NETNS))?;
        Ok(ServiceProxy {
            config,
            home,
            applied: None,
        })
    }

    /// The table the rules live in.
    pub fn table(&self) -> &str {
        &self.config.table
    }

    /// Makes the table say what `services` describes, in one `nft` transaction: only what
    /// changed since the last sync, or everything when that is unknown. An invalid
    /// description is refused before anything is sent. Then, for UDP ports, the conntrack
    /// entries of endpoints that are gone are deleted.
    pub async fn sync(&mut self, services: &[ServicePort]) -> Result<SyncReport, ProxyError> {
        let desired = rules::compile(&self.config, services)?;
        let table = self.config.table.clone();
        let previous = self.applied.take();
        let home = dup(&self.home)?;
        let work = move || -> Result<(rules::Ruleset, SyncReport), NetError> {
            let (commands, mut report) = match &previous {
                Some(previous) => batch::incremental(&table, previous, &desired),
                None => {
                    let existing = batch::Existing::list(&table)?;
                    batch::full(&table, &desired, &existing)
                }
            };
            if !commands.is_empty() {
                apply(&table, &commands)?;
            }
            if let Some(previous) = &previous {
                report.conntrack_deleted = conntrack::delete_stale(previous, &desired);
            }
            Ok((desired, report))
        };
        let outcome = spawn_in_netns(home, work)
            .await
            .map_err(|source| NetError::Netns {
                path: THREAD_NETNS.into(),
                source,
            })?;
        let (applied, report) = outcome?;
        self.applied = Some(applied);
        if !report.is_noop() {
            tracing::debug!(table = %self.config.table, ?report, "services synced");
        }
        Ok(report)
    }

    /// Forgets what was applied, so that the next sync lists the table and rewrites all of
    /// it (one transaction, connections kept): to mend changes made behind the proxy's back,
    /// which an incremental sync would not see.
    pub fn forget(&mut self) {
        self.applied = None;
    }

    /// Removes the table and everything in it. Connections already set up keep working
    /// (conntrack holds their translation); new ones are no longer proxied.
    pub async fn teardown(self) -> Result<(), ProxyError> {
        let table = self.config.table.clone();
        let home = dup(&self.home)?;
        let outcome = spawn_in_netns(home, move || apply(&table, &batch::delete_table(&table)))
            .await
            .map_err(|source| NetError::Netns {
                path: THREAD_NETNS.into(),
                source,
            })?;
        outcome?;
        Ok(())
    }
}

/// A second descriptor of the node's namespace, for a worker thread to own.
fn dup(home: &OwnedFd) -> Result<OwnedFd, NetError> {
    home.try_clone().map_err(|source| NetError::Netns {
        path: THREAD_NETNS.into(),
        source,
    })
}

/// Sends `commands` to `nft -j -f -` as one batch, which the kernel applies as one
/// transaction: all of it or nothing. (Run here rather than through the crate's helper,
/// which leaves `nft`'s complaints on the process's stderr instead of in the error.)
fn apply(table: &str, commands: &[serde_json::Value]) -> Result<(), NetError> {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let payload = serde_json::json!({ "nftables": commands }).to_string();
    let failed = |detail: String| NetError::Nftables {
        table: table.to_string(),
        detail,
    };
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("running nft: {e}")))?;
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(payload.as_bytes());
    let output = child
        .wait_with_output()
        .map_err(|e| failed(format!("waiting for nft: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!("nft failed: {}", stderr.trim())));
    }
    written.map_err(|e| failed(format!("writing to nft: {e}")))
}

/// An `nft` failure with what `nft` itself said.
fn nft_error(table: &str, error: NftablesError) -> NetError {
    let detail = match error {
        NftablesError::NftFailed { stderr, hint, .. } => {
            format!("nft failed while {hint}: {}", stderr.trim())
        }
        other => other.to_string(),
    };
    NetError::Nftables {
        table: table.to_string(),
        detail,
    }
}
