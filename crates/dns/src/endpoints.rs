//! The EndpointSlice a server process keeps for a Service without a
//! selector whose endpoint it is itself: `kube-system/kube-dns` says where a
//! DNS server listens (the Service proxy then sends the ClusterIP's port 53
//! there), and gantry keeps `default/kubernetes` the same way for the API
//! server. The server is not a pod, so no controller could write these.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};

use crate::DnsError;

/// The namespace of the DNS Service.
const NAMESPACE: &str = "kube-system";
/// The DNS Service's name, kube-dns's and CoreDNS's as kubeadm installs it.
const SERVICE: &str = "kube-dns";
/// The field manager of the slices' writes.
const MANAGER: &str = "gantry";
/// How often the slice is checked, and written again if someone removed or
/// changed it.
const REFRESH: Duration = Duration::from_secs(5);

/// One port of a server's endpoint: the Service port's name, the protocol,
/// the port the server listens on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePort {
    pub name: String,
    pub protocol: &'static str,
    pub port: u16,
}

/// One server's endpoint of a Service without a selector.
#[derive(Clone, Debug)]
pub struct ServerSlice {
    /// The Service's namespace and name.
    pub namespace: String,
    pub service: String,
    /// The slice's name (one per server, e.g. `kube-dns-<node>`).
    pub name: String,
    /// Where the server listens (reachable from the node's pods).
    pub address: IpAddr,
    /// Its ports, named as the Service's ports are.
    pub ports: Vec<SlicePort>,
    /// The node it runs on, if any.
    pub node_name: Option<String>,
}

impl ServerSlice {
    /// A DNS server's endpoint of `kube-system/kube-dns`: ports `dns` (UDP)
    /// and `dns-tcp` (TCP), the names the Service's ports have.
    pub fn kube_dns(name: String, address: IpAddr, port: u16, node_name: Option<String>) -> Self {
        let port = |name: &str, protocol| SlicePort {
            name: name.into(),
            protocol,
            port,
        };
        ServerSlice {
            namespace: NAMESPACE.into(),
            service: SERVICE.into(),
            name,
            address,
            ports: vec![port("dns", "UDP"), port("dns-tcp", "TCP")],
            node_name,
        }
    }

    /// The EndpointSlice object.
    pub fn object(&self) -> EndpointSlice {
        let labels = BTreeMap::from([
            (
                "kubernetes.io/service-name".to_owned(),
                self.service.clone(),
            ),
            (
                "endpointslice.kubernetes.io/managed-by".to_owned(),
                MANAGER.to_owned(),
            ),
        ]);
        let port = |p: &SlicePort| EndpointPort {
            name: Some(p.name.clone()),
            port: Some(i32::from(p.port)),
            protocol: Some(p.protocol.into()),
            app_protocol: None,
        };
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            address_type: if self.address.is_ipv4() {
                "IPv4"
            } else {
                "IPv6"
            }
            .into(),
            endpoints: vec![Endpoint {
                addresses: vec![self.address.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                node_name: self.node_name.clone(),
                ..Default::default()
            }],
            ports: Some(self.ports.iter().map(port).collect()),
        }
    }

    /// Writes the slice (server-side apply, so it is made or corrected).
    pub async fn apply(&self, client: &Client) -> Result<(), DnsError> {
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &self.namespace);
        let mut obj = serde_json::to_value(self.object())
            .map_err(|e| DnsError::Api(self.name.clone(), Box::new(kube::Error::SerdeError(e))))?;
        obj["apiVersion"] = "discovery.k8s.io/v1".into();
        obj["kind"] = "EndpointSlice".into();
        api.patch(
            &self.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map_err(|e| DnsError::Api(self.name.clone(), Box::new(e)))?;
        Ok(())
    }

    /// Whether `existing` already says what this slice says (fields the
    /// API server fills in aside).
    pub fn matches(&self, existing: &EndpointSlice) -> bool {
        let want = self.object();
        let labels_kept = want
            .metadata
            .labels
            .iter()
            .flatten()
            .all(|(k, v)| existing.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v));
        let endpoint = |e: &Endpoint| {
            (
                e.addresses.clone(),
                e.conditions.as_ref().and_then(|c| c.ready),
                e.node_name.clone(),
            )
        };
        let port = |p: &EndpointPort| (p.name.clone(), p.port, p.protocol.clone());
        labels_kept
            && existing.address_type == want.address_type
            && existing
                .endpoints
                .iter()
                .map(endpoint)
                .eq(want.endpoints.iter().map(endpoint))
            && existing
                .ports
                .iter()
                .flatten()
                .map(port)
                .eq(want.ports.iter().flatten().map(port))
    }

    /// Keeps the slice written until the future is dropped: it is read
    /// every few seconds and written only when missing or changed, so an
    /// unchanged server causes no writes (and no events for its watchers).
    pub async fn keep(self, client: Client) {
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &self.namespace);
        loop {
            let current = match api.get_opt(&self.name).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, service = %self.service, "could not read the endpoint slice");
                    None
                }
            };
            if !current.is_some_and(|c| self.matches(&c))
                && let Err(e) = self.apply(&client).await
            {
                tracing::warn!(error = %e, service = %self.service, "could not write the endpoint slice");
            }
            tokio::time::sleep(REFRESH).await;
        }
    }
}

/// Deletes a server's slice (when it stops), if it is there.
pub async fn remove_slice(client: &Client, namespace: &str, name: &str) -> Result<(), DnsError> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(DnsError::Api(name.into(), Box::new(e))),
    }
}
