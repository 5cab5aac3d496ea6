//! Wiring of the cluster DNS server that `gantry up` and `gantry server`
//! run beside the API server: a client of it with a certificate of its own,
//! the `dns` crate's server following Services and EndpointSlices, and the
//! `kube-system/kube-dns` EndpointSlice saying where it listens.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

/// The cluster DNS server and the tasks that keep it true.
pub(crate) struct ClusterDns {
    server: dns::Server,
    client: kube::Client,
    slice: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ClusterDns {
    /// Stops serving and removes this server's endpoint, so the Service
    /// no longer sends queries here.
    pub(crate) async fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
        if let Err(e) = dns::remove_slice(&self.client, "kube-system", &self.slice).await {
            tracing::warn!(error = %e, "could not remove the kube-dns endpoint slice");
        }
        self.server.shutdown().await;
    }
}

/// Starts the DNS server on `listen`, or, when it is not given, on the
/// machine's address (the one its main route leaves from) at port 53 if
/// that can be bound, else at a free port of that address: the Service
/// reaches it through the EndpointSlice whatever the port.
pub(crate) async fn start(
    api: &apiserver::ApiServer,
    data_dir: &Path,
    listen: Option<SocketAddr>,
    node_name: Option<String>,
    say: &impl Fn(String),
) -> anyhow::Result<ClusterDns> {
    let client = crate::node::local_client(api, ("system:kube-dns", &[]));
    let server = match listen {
        Some(addr) => dns::Server::start(dns::ServerConfig::new(addr))
            .await
            .with_context(|| format!("starting the cluster DNS server on {addr}"))?,
        None => {
            let ip = crate::node::local_address(None);
            match dns::Server::start(dns::ServerConfig::new(SocketAddr::new(ip, 53))).await {
                Ok(s) => s,
                Err(e) => {
                    let s = dns::Server::start(dns::ServerConfig::new(SocketAddr::new(ip, 0)))
                        .await
                        .with_context(|| format!("starting the cluster DNS server on {ip}"))?;
                    let port = s.local_addrs()[0].port();
                    tracing::warn!(error = %e, port, "port 53 taken: cluster DNS listens on a free port");
                    say(format!(
                        "{e}; cluster DNS listens on port {port} instead (the kube-dns Service finds it there)"
                    ));
                    s
                }
            }
        }
    };
    let local = server.local_addrs()[0];
    // A server listening on every address is reached at the machine's.
    let address = match local.ip() {
        ip if ip.is_unspecified() => crate::node::local_address(None),
        ip => ip,
    };
    say(format!(
        "starting cluster DNS on {} (forwarding to {:?})",
        SocketAddr::new(address, local.port()),
        server.upstreams()
    ));
    let slice = dns::ServerSlice::kube_dns(
        slice_name("kube-dns", data_dir),
        address,
        local.port(),
        node_name,
    );
    let name = slice.name.clone();
    let mut tasks = vec![tokio::spawn(dns::follow(client.clone(), server.records()))];
    // Kubernetes refuses loopback endpoints (pods could not reach them).
    if address.is_loopback() {
        tracing::warn!(%address, "cluster DNS on loopback: the kube-dns Service cannot lead to it");
    } else {
        tasks.push(tokio::spawn(slice.keep(client.clone())));
    }
    Ok(ClusterDns {
        server,
        client,
        slice: name,
        tasks,
    })
}

/// One slice per server, `<prefix>-<host>-<hash>`, the same at every start
/// of it (the host and data directory), so a restarted server rewrites its
/// own.
pub(crate) fn slice_name(prefix: &str, data_dir: &Path) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::canonicalize(data_dir)
        .unwrap_or_else(|_| data_dir.to_path_buf())
        .hash(&mut h);
    let host: String = crate::node::hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!(
        "{prefix}-{}-{:08x}",
        host.trim_matches('-'),
        h.finish() as u32
    )
}
