//! The `kube-system/kube-dns` EndpointSlice that says where a DNS server
//! listens. The Service has no selector (the server is not a pod), so, as
//! for `default/kubernetes`, the server itself keeps its endpoint written;
//! the Service proxy then sends the ClusterIP's port 53 there.

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
/// How often the slice is checked, and written again if someone removed or
/// changed it.
const REFRESH: Duration = Duration::from_secs(5);

/// One DNS server's endpoint of the `kube-dns` Service.
#[derive(Clone, Debug)]
pub struct KubeDnsSlice {
    /// The slice's name (one per server, e.g. `kube-dns-<node>`).
    pub name: String,
    /// Where the server listens (reachable from the node's pods).
    pub address: IpAddr,
    /// Its port, UDP and TCP.
    pub port: u16,
    /// The node it runs on, if any.
    pub node_name: Option<String>,
}

impl KubeDnsSlice {
    /// The EndpointSlice object: ports `dns` (UDP) and `dns-tcp` (TCP),
    /// the names the Service's ports have.
    pub fn object(&self) -> EndpointSlice {
        let labels = BTreeMap::from([
            ("kubernetes.io/service-name".to_owned(), SERVICE.to_owned()),
            (
                "endpointslice.kubernetes.io/managed-by".to_owned(),
                "gantry".to_owned(),
            ),
        ]);
        let port = |name: &str, protocol: &str| EndpointPort {
            name: Some(name.into()),
            port: Some(i32::from(self.port)),
            protocol: Some(protocol.into()),
            app_protocol: None,
        };
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(NAMESPACE.into()),
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
            ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
        }
    }

    /// Writes the slice (server-side apply, so it is made or corrected).
    pub async fn apply(&self, client: &Client) -> Result<(), DnsError> {
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
        let mut obj = serde_json::to_value(self.object())
            .map_err(|e| DnsError::Api(self.name.clone(), Box::new(kube::Error::SerdeError(e))))?;
        obj["apiVersion"] = "discovery.k8s.io/v1".into();
        obj["kind"] = "EndpointSlice".into();
        api.patch(
            &self.name,
            &PatchParams::apply("gantry-dns").force(),
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
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
        loop {
            let current = match api.get_opt(&self.name).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the kube-dns endpoint slice");
                    None
                }
            };
            if !current.is_some_and(|c| self.matches(&c))
                && let Err(e) = self.apply(&client).await
            {
                tracing::warn!(error = %e, "could not write the kube-dns endpoint slice");
            }
            tokio::time::sleep(REFRESH).await;
        }
    }
}

/// Deletes a server's slice (when it stops), if it is there.
pub async fn remove_slice(client: &Client, name: &str) -> Result<(), DnsError> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(DnsError::Api(name.into(), Box::new(e))),
    }
}
