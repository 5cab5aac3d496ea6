//! The node agent (the kubelet's job): it registers the machine as a Node
//! and keeps its Lease, runs the pods bound to it as containers through the
//! `runtime` crate on images from the `images` crate, gives them addresses
//! on the `net` crate's bridge, and serves their logs, exec, attach and
//! port-forward to the API server.
//!
//! It knows the cluster only through the Kubernetes API (kube-rs), with a
//! certificate of its own, so it runs the same beside the server (`gantry
//! up`) or on another machine (`gantry agent`).

mod env;
mod gc;
mod ingress;
mod loadbalancer;
pub mod local;
mod node;
mod overlay;
mod pods;
mod policy;
mod probes;
mod proxy;
mod server;
mod time;
mod volumes;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use kube::runtime::events::{Recorder, Reporter};
use tokio::net::TcpListener;

/// The kubelet version the node reports (`kubectl get nodes` shows it).
pub const KUBELET_VERSION: &str = "v1.32.0-gantry";
/// The architecture the node reports, in Go's words.
pub const ARCH: &str = match std::env::consts::ARCH.as_bytes() {
    b"x86_64" => "amd64",
    b"aarch64" => "arm64",
    _ => std::env::consts::ARCH,
};

/// How to run the agent.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// Persistent state: `images/`, `containers/`, `pods/`, `net/`.
    pub data_dir: PathBuf,
    /// Volatile state (namespaces, runc's): `/run/gantry`.
    pub state_dir: PathBuf,
    /// Where the agent's API listens (the kubelet's port, 10250).
    pub listen: SocketAddr,
    /// The agent's serving certificate and key, and the cluster CA that
    /// signs the API server's client certificate.
    pub serving_cert_pem: String,
    /// See `serving_cert_pem`.
    pub serving_key_pem: String,
    /// See `serving_cert_pem`.
    pub ca_pem: String,
    /// This node's pod addresses; when unset, the range the cluster's
    /// allocator gives the Node (the agent waits for it).
    pub pod_cidr: Option<ipnet::Ipv4Net>,
    /// Every pod's addresses (not masqueraded between each other).
    pub cluster_cidr: ipnet::Ipv4Net,
    /// The Services' cluster IP range: new connections to it that no Service takes are
    /// refused (see `net::ProxyConfig::service_cidr`). `None`: not checked.
    pub service_cidr: Option<ipnet::Ipv4Net>,
    /// The bridge pods are attached to.
    pub bridge: String,
    /// The VXLAN network identifier of the pod network across hosts, the
    /// same on every node; `None`: pods reach only this node's pods.
    pub vxlan_vni: Option<u32>,
    /// The UDP port of the VXLAN overlay, the same on every node.
    pub vxlan_port: u16,
    /// The nftables table of the pod network.
    pub nft_table: String,
    /// How to start a container's shim (`[gantry, "shim"]`).
    pub shim: Vec<OsString>,
    /// The cgroup under which pods are placed.
    pub cgroup_parent: String,
    /// Pods the node takes (the kubelet's default, 110).
    pub max_pods: u32,
    /// Labels added to the Node.
    pub labels: BTreeMap<String, String>,
    /// Registries reached over HTTP or unverified HTTPS.
    pub insecure_registries: Vec<String>,
    /// The cluster DNS service address pods' resolv.conf names; when unset,
    /// the ClusterIP of the `kube-system/kube-dns` Service at start.
    pub cluster_dns: Option<IpAddr>,
    /// The node's address; found from the route to `server` when unset.
    pub address: Option<IpAddr>,
    /// The API server, to find the node's own address towards it.
    pub server: Option<SocketAddr>,
    /// Where the Ingress proxy serves plain HTTP; `None`: not at all.
    pub ingress_http: Option<SocketAddr>,
    /// Where the Ingress proxy serves HTTPS; `None`: not at all.
    pub ingress_https: Option<SocketAddr>,
}

impl AgentConfig {
    /// Defaults for a node named `node_name` with data in `data_dir`.
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            node_name: node_name.into(),
            data_dir: data_dir.into(),
            state_dir: PathBuf::from("/run/gantry"),
            listen: SocketAddr::from(([0, 0, 0, 0], 10250)),
            serving_cert_pem: String::new(),
            serving_key_pem: String::new(),
            ca_pem: String::new(),
            pod_cidr: None,
            cluster_cidr: "10.244.0.0/16".parse().expect("a CIDR"),
            service_cidr: None,
            bridge: "gantry0".into(),
            vxlan_vni: Some(1),
            vxlan_port: net::DEFAULT_VXLAN_PORT,
            nft_table: "gantry".into(),
            shim: Vec::new(),
            cgroup_parent: "/gantry".into(),
            max_pods: 110,
            labels: BTreeMap::new(),
            insecure_registries: Vec::new(),
            cluster_dns: None,
            address: None,
            server: None,
            ingress_http: None,
            ingress_https: None,
        }
    }
}

/// What stopped the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data directory could not be made.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The container runtime could not be set up.
    #[error("container runtime: {0}")]
    Runtime(#[from] runtime::RuntimeError),
    /// The image store could not be opened.
    #[error("image store: {0}")]
    Images(#[from] images::ImageError),
    /// The pod network could not be set up.
    #[error("pod network: {0}")]
    Network(#[from] net::NetError),
    /// The Service proxy could not be made.
    #[error("service proxy: {0}")]
    Proxy(#[from] net::ProxyError),
    /// The Node could not be registered.
    #[error("registering node {node}: {source}")]
    Register {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The agent's API could not be served.
    #[error("agent API on {addr}: {message}")]
    Serve {
        /// Where.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}

/// The ClusterIP of the `kube-system/kube-dns` Service, if the cluster
/// has one (without it pods get the host's resolvers).
async fn kube_dns_address(client: &kube::Client) -> Option<IpAddr> {
    let api: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(client.clone(), "kube-system");
    match api.get_opt("kube-dns").await {
        Ok(found) => found
            .and_then(|s| s.spec?.cluster_ip)
            .and_then(|ip| ip.parse().ok()),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the kube-dns Service; pods get the host's resolvers");
            None
        }
    }
}

/// A running agent.
pub struct Agent {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    local_addr: SocketAddr,
    images: images::ImageStore,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("listen", &self.local_addr)
            .finish()
    }
}

impl Agent {
    /// Sets up the runtime, the images and the network, registers the
    /// node, and starts the pod workers, the heartbeat and the API.
    pub async fn start(config: AgentConfig, client: kube::Client) -> Result<Self, AgentError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| AgentError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        let mut rt_config = runtime::RuntimeConfig::new(
            config.data_dir.join("containers"),
            config.state_dir.clone(),
        );
        if !config.shim.is_empty() {
            rt_config.shim = config.shim.clone();
        }
        rt_config.cgroup_parent = config.cgroup_parent.clone();
        let runtime = runtime::Runtime::new(rt_config)?;
        let exits = runtime.exit_watcher()?;
        let images = images::ImageStore::open(&config.data_dir.join("images"))?;
        // In the node's namespace, like the pod network: the proxy acts where it was made.
        let service_proxy = net::ServiceProxy::new(net::ProxyConfig {
            table: format!("{}-svc", config.nft_table),
            cluster_cidr: Some(config.cluster_cidr),
            service_cidr: config.service_cidr,
        })?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| AgentError::Serve {
                addr: config.listen,
                message: e.to_string(),
            })?;
        let local_addr = listener.local_addr().map_err(|e| AgentError::Serve {
            addr: config.listen,
            message: e.to_string(),
        })?;
        let tls = server::tls_config(
            &config.serving_cert_pem,
            &config.serving_key_pem,
            &config.ca_pem,
        )
        .map_err(|message| AgentError::Serve {
            addr: local_addr,
            message,
        })?;

        let address = config
            .address
            .unwrap_or_else(|| node_address(config.server));
        let runc_version = runc_version();
        let data_dir = config.data_dir.clone();
        let facts = node::Facts::gather(&data_dir, address, &runc_version);
        let settings = node::NodeSettings {
            name: config.node_name.clone(),
            labels: config.labels.clone(),
            pod_cidr: config.pod_cidr.map(|c| c.to_string()),
            max_pods: config.max_pods,
            port: local_addr.port(),
        };
        let node = node::register(&client, &settings, &facts)
            .await
            .map_err(|source| AgentError::Register {
                node: config.node_name.clone(),
                source,
            })?;
        let pod_cidr = match config.pod_cidr {
            Some(cidr) => cidr,
            None => node::assigned_range(&client, &config.node_name)
                .await
                .map_err(|source| AgentError::Register {
                    node: config.node_name.clone(),
                    source,
                })?,
        };
        let overlay = match (config.vxlan_vni, address) {
            (None, _) => None,
            // No other node reaches this one there, so it has no peers: a one-machine
            // cluster on loopback.
            (Some(_), ip) if ip.is_loopback() => {
                tracing::info!(%address, "the node is reached on loopback: no VXLAN overlay");
                None
            }
            (Some(vni), IpAddr::V4(local)) => Some(net::OverlayConfig {
                device: overlay_device(&config.bridge),
                vni,
                port: config.vxlan_port,
                local,
            }),
            (Some(_), IpAddr::V6(_)) => {
                tracing::warn!(%address, "no VXLAN overlay over IPv6: pods reach only this node's pods");
                None
            }
        };
        let network = net::PodNetwork::setup(net::NetworkConfig {
            bridge: config.bridge.clone(),
            pod_cidr,
            cluster_cidr: config.cluster_cidr,
            mtu: None,
            state_dir: config.data_dir.join("net"),
            nft_table: config.nft_table.clone(),
            overlay: overlay.clone(),
        })
        .await?;
        if let (Some(mac), Some(overlay)) = (network.overlay_mac(), &overlay) {
            overlay::publish(&client, &config.node_name, mac, overlay.local)
                .await
                .map_err(|source| AgentError::Register {
                    node: config.node_name.clone(),
                    source,
                })?;
        }
        let (_, allocatable) = node::resources(&facts, config.max_pods);
        let (events, event_queue) = tokio::sync::mpsc::unbounded_channel();
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "kubelet".into(),
                instance: Some(config.node_name.clone()),
            },
        );
        // One cache of every Service: the proxy's watch keeps it, containers'
        // variables read it.
        let (services, service_writer) = env::Services::new();
        let ctx = Arc::new(pods::Context {
            client: client.clone(),
            node_name: config.node_name.clone(),
            host_ip: address,
            facts_hostname: facts.hostname.clone(),
            runtime,
            exits,
            images: images.clone(),
            network,
            pods_root: config.data_dir.join("pods"),
            memory_capacity: facts.memory_total,
            allocatable,
            insecure_registries: config.insecure_registries.clone(),
            cluster_dns: match config.cluster_dns {
                Some(ip) => Some(ip),
                None => kube_dns_address(&client).await,
            },
            cluster_domain: "cluster.local".into(),
            services: services.clone(),
            events,
            registry: pods::Registry::default(),
            stop_signals: Default::default(),
        });
        let ingress_tasks = ingress::start(
            &client,
            ingress::Settings {
                http: config.ingress_http,
                https: config.ingress_https,
                node: &node,
                address,
                events: &ctx.events,
            },
        )
        .await;
        let gather = move || node::Facts::gather(&data_dir, address, &runc_version);
        let local = local::serve(&config.data_dir, images.clone())
            .await
            .map_err(|source| AgentError::Io {
                path: config.data_dir.join(local::SOCKET),
                source,
            })?;
        // Load balancer addresses are announced where the node's own addresses live.
        let announcer = match net::Announcer::new(&announcer_tag(&config.bridge)) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "load balancer addresses will not be announced");
                None
            }
        };
        let client_for_overlay = client.clone();
        let mut tasks = vec![
            local,
            tokio::spawn(node::heartbeat(client.clone(), node)),
            tokio::spawn(proxy::run(
                client.clone(),
                config.node_name.clone(),
                (services, service_writer),
                service_proxy,
                announcer,
            )),
            tokio::spawn(policy::run(
                client.clone(),
                config.node_name.clone(),
                net::PolicyTable::new(&format!("{}-pol", config.nft_table)),
            )),
            tokio::spawn(volumes::remove_deleted_local_volumes(
                client.clone(),
                config.node_name.clone(),
            )),
            tokio::spawn(node::report_status(client, settings, gather)),
            tokio::spawn(pods::publish_events(recorder, event_queue)),
            tokio::spawn(pods::run(Arc::clone(&ctx))),
            tokio::spawn(gc::run(Arc::clone(&ctx), config.data_dir.join("images"))),
            tokio::spawn(server::serve(listener, tls, Arc::clone(&ctx))),
        ];
        tasks.extend(ingress_tasks);
        if overlay.is_some() {
            tasks.push(tokio::spawn(overlay::run(
                client_for_overlay,
                config.node_name.clone(),
                ctx,
            )));
        }
        tracing::info!(node = %config.node_name, %local_addr, "agent running");
        Ok(Self {
            tasks,
            local_addr,
            images,
        })
    }

    /// Where the agent's API listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node's image store.
    pub fn images(&self) -> &images::ImageStore {
        &self.images
    }

    /// Stops the agent's tasks. Containers keep running: a new agent over
    /// the same directories adopts them.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The address this machine reaches `server` from (the kernel picks it for
/// a connected UDP socket; nothing is sent), else its first non-loopback.
fn node_address(server: Option<SocketAddr>) -> IpAddr {
    let probe = |target: SocketAddr| {
        let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
        socket.connect(target).ok()?;
        socket.local_addr().ok().map(|a| a.ip())
    };
    server
        .filter(|s| !s.ip().is_loopback() && !s.ip().is_unspecified())
        .and_then(probe)
        // A route to anywhere names the main interface's address.
        .or_else(|| probe(SocketAddr::from(([192, 0, 2, 1], 9))))
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// What a failed API call says, in the API's own words when it answered
/// (the `Status` message), for pod events and conditions.
pub(crate) fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// The tag of the load balancer addresses this node holds (`lo:<tag>`): its bridge's
/// name, which is the node's own on a machine, cut to what a label allows.
pub fn announcer_tag(bridge: &str) -> String {
    bridge
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(11)
        .collect()
}

/// The VXLAN device beside `bridge`: its name and `.vx`, within the 15
/// bytes a link name may have.
fn overlay_device(bridge: &str) -> String {
    let mut end = bridge.len().min(12);
    while !bridge.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}.vx", &bridge[..end])
}

fn runc_version() -> String {
    std::process::Command::new("runc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.trim_start_matches("runc version ").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}
