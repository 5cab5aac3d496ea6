//! Wiring of the node side: the agent and scheduler `gantry up` runs beside
//! the API server, each a client of it in the same process with an identity
//! of its own.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::Context;

/// A kube client of `server`, in this process, for `user` in `groups`:
/// its requests go straight to the server's router (no TLS, no socket),
/// retried on 429, 503 and 504 as a client from a kubeconfig would be.
pub(crate) fn local_client(
    server: &apiserver::ApiServer,
    (user, groups): (&str, &[&str]),
) -> kube::Client {
    let service = tower::ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(
            kube::client::retry::RetryPolicy::server_retry(),
        ))
        .map_err(|never: std::convert::Infallible| -> tower::BoxError { match never {} })
        .service(server.local_service(user, groups));
    kube::Client::new(service, "default")
}

/// A kube client from a kubeconfig file.
pub(crate) async fn client_from(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .with_context(|| format!("loading {}", path.display()))?;
    kube::Client::try_from(config).context("making an API client")
}

/// The machine's host name, the default node name.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The address this machine reaches `target` from (nothing is sent), else
/// loopback.
pub(crate) fn local_address(target: Option<SocketAddr>) -> IpAddr {
    let probe = |to: SocketAddr| {
        let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
        socket.connect(to).ok()?;
        socket
            .local_addr()
            .ok()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
    };
    target
        .filter(|t| !t.ip().is_loopback() && !t.ip().is_unspecified())
        .and_then(probe)
        .or_else(|| probe(SocketAddr::from(([192, 0, 2, 1], 9))))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// What the agent needs besides its client: a serving certificate for the
/// node's names and address, and the CA.
pub(crate) fn agent_config(
    ca: &pki::Ca,
    data_dir: &Path,
    node_name: &str,
    address: IpAddr,
    listen: SocketAddr,
) -> anyhow::Result<agent::AgentConfig> {
    let ips = vec![address, IpAddr::from([127, 0, 0, 1])];
    let serving = ca
        .server_cert("agent", &[node_name.to_owned(), "localhost".into()], &ips)
        .context("issuing the agent's serving certificate")?;
    agent_config_with(serving, ca.cert_pem(), data_dir, node_name, address, listen)
}

/// The agent's configuration with a serving certificate (chain) and key
/// already at hand, and the cluster CA (PEM).
pub(crate) fn agent_config_with(
    serving: pki::Issued,
    ca_pem: &str,
    data_dir: &Path,
    node_name: &str,
    address: IpAddr,
    listen: SocketAddr,
) -> anyhow::Result<agent::AgentConfig> {
    let mut config = agent::AgentConfig::new(node_name, data_dir);
    config.listen = listen;
    config.serving_cert_pem = serving.cert_pem;
    config.serving_key_pem = serving.key_pem;
    config.ca_pem = ca_pem.to_owned();
    config.address = Some(address);
    config.shim = vec![
        std::env::current_exe()
            .context("finding the gantry binary")?
            .into_os_string(),
        "shim".into(),
    ];
    Ok(config)
}

impl crate::NodeFlags {
    /// Puts the node flags that shape the pod network, the runtime, image
    /// pulls and the Ingress proxy (its ports bound on `ingress_ip`) into
    /// `config`.
    pub(crate) fn apply(
        self,
        config: &mut agent::AgentConfig,
        cluster_cidr: ipnet::Ipv4Net,
        ingress_ip: IpAddr,
    ) -> anyhow::Result<()> {
        let port = |p: u16| (p != 0).then(|| SocketAddr::new(ingress_ip, p));
        config.ingress_http = port(self.ingress_http_port);
        config.ingress_https = port(self.ingress_https_port);
        config.pod_cidr = match self.pod_cidr {
            Some(text) => {
                let range: ipnet::Ipv4Net = text.parse().context("--pod-cidr")?;
                if !cluster_cidr.contains(&range) {
                    anyhow::bail!("--pod-cidr {range} is outside the cluster CIDR {cluster_cidr}");
                }
                Some(range)
            }
            None => None,
        };
        config.cluster_cidr = cluster_cidr;
        config.vxlan_vni = (self.vxlan_vni != 0).then_some(self.vxlan_vni);
        if self.vxlan_vni > 0xff_ffff {
            anyhow::bail!("--vxlan-vni {} is above 16777215", self.vxlan_vni);
        }
        config.vxlan_port = self.vxlan_port;
        config.nft_table = self.bridge.clone();
        config.bridge = self.bridge;
        config.state_dir = self.state_dir;
        config.cgroup_parent = self.cgroup_parent;
        config.insecure_registries = self.insecure_registries;
        Ok(())
    }
}
