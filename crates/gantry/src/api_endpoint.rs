//! The API server's endpoint of the `default/kubernetes` Service: pods reach
//! the server at the Service's address (10.96.0.1:443, the
//! `kubernetes.default.svc` of in-cluster clients), which the Service proxy
//! sends to the address and port this EndpointSlice gives, kept by every
//! server for itself as kube-apiserver's endpoint reconciler does.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// The namespace and name of the Service.
const NAMESPACE: &str = "default";
const SERVICE: &str = "kubernetes";

/// The task keeping this server's slice written.
pub(crate) struct ApiEndpoint {
    client: kube::Client,
    slice: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ApiEndpoint {
    /// Stops keeping the slice and removes it, so the Service no longer
    /// sends pods here.
    pub(crate) async fn stop(self) {
        let Some(task) = self.task else { return };
        task.abort();
        if let Err(e) = dns::remove_slice(&self.client, NAMESPACE, &self.slice).await {
            tracing::warn!(error = %e, "could not remove the kubernetes endpoint slice");
        }
    }
}

/// The address pods reach the server at: `advertise` if given, else the
/// address it listens on, or this machine's address (the one its main route
/// leaves from) when it listens on all of them.
pub(crate) fn advertised(advertise: Option<IpAddr>, listen: SocketAddr) -> IpAddr {
    advertise.unwrap_or_else(|| match listen.ip() {
        ip if ip.is_unspecified() => crate::node::local_address(None),
        ip => ip,
    })
}

/// Starts keeping the slice that points the `kubernetes` Service at
/// `address` and the server's port; a loopback address cannot be reached
/// from pods, so then there is none (with a warning).
pub(crate) async fn start(
    api: &apiserver::ApiServer,
    data_dir: &Path,
    address: IpAddr,
    node_name: Option<String>,
    say: &impl Fn(String),
) -> anyhow::Result<ApiEndpoint> {
    let server_addr = api.local_addr();
    let client = crate::node::local_client(api, ("system:apiserver", &["system:masters"]));
    let slice = dns::ServerSlice {
        namespace: NAMESPACE.into(),
        service: SERVICE.into(),
        name: crate::cluster_dns::slice_name(SERVICE, data_dir),
        address,
        ports: vec![dns::SlicePort {
            name: "https".into(),
            protocol: "TCP",
            port: server_addr.port(),
        }],
        node_name,
    };
    let name = slice.name.clone();
    let task = if address.is_loopback() {
        tracing::warn!(%address, "the API server's address is loopback: pods cannot reach it through the kubernetes Service");
        say(format!(
            "pods cannot reach the API server at {address} (loopback): set --advertise-address"
        ));
        None
    } else {
        Some(tokio::spawn(slice.keep(client.clone())))
    };
    Ok(ApiEndpoint {
        client,
        slice: name,
        task,
    })
}
