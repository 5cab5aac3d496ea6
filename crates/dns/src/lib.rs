//! Cluster DNS, the role CoreDNS's `kubernetes` and `forward` plugins play:
//! the cluster's Services and EndpointSlices as records under the cluster
//! domain (`records`, pure), served over UDP and TCP with other names
//! forwarded to the host's resolvers (`server`, `forward`), kept true to
//! the cluster through watches (`watch`), and the `kube-system/kube-dns`
//! EndpointSlice that says where the server listens (`endpoints`).

mod endpoints;
mod forward;
pub mod records;
mod server;
mod watch;

use std::net::SocketAddr;

pub use endpoints::{ServerSlice, SlicePort, remove_slice};
pub use forward::nameservers;
pub use records::{Answer, Objects, Records};
pub use server::{RecordsHandle, Server, ServerConfig, bind_pair};
pub use watch::follow;

/// What went wrong in the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The cluster domain is not a domain name.
    #[error("cluster domain {0:?}: {1}")]
    Domain(String, String),
    /// The server was given no address to listen on.
    #[error("no address to listen on")]
    NoListen,
    /// A listen address could not be bound.
    #[error("binding dns listener {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// No upstream resolver answered a forwarded query.
    #[error("forwarding: {0}")]
    Upstream(String),
    /// The API refused or failed a request about the DNS server's objects.
    #[error("kube-dns endpoint slice {0}: {1}")]
    Api(String, #[source] Box<kube::Error>),
}
