//! The Ingress controller, ingress-nginx's role: networking.k8s.io/v1 Ingresses of the
//! IngressClasses whose controller is `gantry.dev/ingress`, served by a reverse proxy on
//! every node.
//!
//! `routes` builds an immutable routing table from the cluster's objects (pure);
//! `proxy` serves HTTP and HTTPS through the current table, which `watch` replaces after
//! every change, reporting bad Ingresses as Events and writing the node's address into
//! the Ingresses' status; `tls` holds the certificates and their choice by SNI; `fast` is
//! the HTTP/1.1 path most requests take, heads parsed and rewritten in place.

mod fast;
mod pool;
mod proxy;
pub mod routes;
mod tls;
mod watch;

pub use pool::Streamed;
pub use proxy::{Body, Proxy, TableHandle};
pub use routes::{Built, CONTROLLER, DEFAULT_CLASS_ANNOTATION, Objects, Route, Table, Warning};
pub use watch::{FollowConfig, follow};

/// The name of the IngressClass every cluster starts with.
pub const CLASS_NAME: &str = "gantry";

/// What went wrong in the Ingress controller.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// The proxy's own certificate or TLS configuration could not be made.
    #[error("ingress tls: {0}")]
    Certificate(String),
}
