//! The node's Ingress proxy (the `ingress` crate), started beside the Service proxy: its
//! ports bound on the node's address, the table followed from the cluster.
//!
//! A port that cannot be bound (another server holds it) is an error in the log and a
//! Warning Event on the Node; the proxy serves whatever else it could bind, and the agent
//! runs on either way.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::runtime::events::{Event, EventType};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the proxy needs from the agent.
pub(crate) struct Settings<'a> {
    pub(crate) http: Option<SocketAddr>,
    pub(crate) https: Option<SocketAddr>,
    pub(crate) node: &'a Node,
    pub(crate) address: std::net::IpAddr,
    pub(crate) events: &'a tokio::sync::mpsc::UnboundedSender<(ObjectReference, Event)>,
}

/// Binds the ports and starts the proxy and its watches; no tasks when both ports are off
/// or neither could be bound.
pub(crate) async fn start(client: &kube::Client, s: Settings<'_>) -> Vec<JoinHandle<()>> {
    let node_name = s.node.metadata.name.clone().unwrap_or_default();
    let (node, events) = (s.node, s.events);
    let bind = |addr: Option<SocketAddr>, what: &'static str| async move {
        let addr = addr?;
        match TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                let message =
                    format!("ingress {what} port {addr}: {e}; not serving Ingresses on it");
                tracing::error!("{message}");
                let reference = ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: node.metadata.name.clone(),
                    uid: node.metadata.uid.clone(),
                    ..ObjectReference::default()
                };
                let event = Event {
                    type_: EventType::Warning,
                    reason: "IngressPortUnavailable".into(),
                    note: Some(message),
                    action: "Listen".into(),
                    secondary: None,
                };
                let _ = events.send((reference, event));
                None
            }
        }
    };
    let http = bind(s.http, "http").await;
    let https = bind(s.https, "https").await;
    if http.is_none() && https.is_none() {
        return Vec::new();
    }
    let table = ingress::TableHandle::default();
    let https_port = https
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port());
    let proxy = match ingress::Proxy::new(table.clone(), https_port) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "ingress proxy not started");
            return Vec::new();
        }
    };
    let mut tasks = vec![tokio::spawn(ingress::follow(
        client.clone(),
        ingress::FollowConfig {
            table,
            node_name,
            address: Some(s.address),
        },
    ))];
    if let Some(l) = http {
        tracing::info!(listen = ?l.local_addr().ok(), "ingress proxy serving http");
        tasks.push(tokio::spawn(proxy.clone().serve_http(l)));
    }
    if let Some(l) = https {
        tracing::info!(listen = ?l.local_addr().ok(), "ingress proxy serving https");
        tasks.push(tokio::spawn(proxy.serve_https(l)));
    }
    tasks
}
