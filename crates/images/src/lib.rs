//! The node's image store: OCI blobs, unpacked layers, import and pull.
//!
//! [`ImageStore`] keeps images under one directory (`DATA/images`):
//!
//! - `blobs/sha256/<hex>`: manifests, indexes, configs and compressed
//!   layers, each verified against its digest as it is written;
//! - `layers/<n>/`: each layer unpacked once, named by a short number so
//!   that overlayfs' `lowerdir` option stays short, with OCI whiteouts
//!   turned into overlayfs' own;
//! - `refs.json`: normalized references (`docker.io/library/busybox:1.36`)
//!   to the digests they resolved to, the unpacked layers, and when each
//!   image was last used; rewritten whole and renamed into place;
//! - `tmp/`: work in progress, cleared at open.
//!
//! Images come from archives ([`ImageStore::import`]) or registries
//! ([`ImageStore::pull`]); a container's root file system is an overlay of
//! [`ImageStore::layers`]; [`ImageStore::collect_garbage`] frees space.

mod auth;
mod blobs;
mod error;
mod import;
mod manifest;
mod pull;
mod reference;
mod state;
mod store;
mod unpack;

use std::collections::BTreeMap;

pub use auth::{Credential, credentials_from_docker_config};
pub use error::ImageError;
pub use pull::PullOptions;
pub use reference::normalize;
pub use store::ImageStore;

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image id: the digest of its config, `sha256:<hex>`.
    pub id: String,
    /// Its normalized tag references, `docker.io/library/busybox:1.36`,
    /// sorted.
    pub names: Vec<String>,
    /// Its references by the digest the registry or archive gave it,
    /// `docker.io/library/busybox@sha256:<manifest or index>`, sorted: what
    /// a pod's `imageID` shows.
    pub repo_digests: Vec<String>,
    /// Bytes of its blobs plus its unpacked layers, counting layers shared
    /// with other images in full.
    pub size: u64,
    /// The process defaults from its config.
    pub config: ImageConfig,
}

/// The process defaults an image's config gives (its `config` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir`, empty for `/`.
    pub working_dir: String,
    /// `User`, as `user`, `uid`, `user:group` or `uid:gid`; empty for root.
    pub user: String,
    /// `ExposedPorts`, as `80/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    /// `StopSignal`, as `SIGQUIT` or a number.
    pub stop_signal: Option<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Ids of the images removed, in the order they were.
    pub removed: Vec<String>,
    /// Bytes freed on disk (by images removed and by content no image
    /// used).
    pub bytes_freed: u64,
}
