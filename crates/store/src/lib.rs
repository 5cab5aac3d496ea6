//! Gantry's ground truth: a versioned key-value store with etcd v3 semantics.
//!
//! One global revision counts every change; each key keeps its create
//! revision, modification revision and version; reads can go back to any
//! revision not yet compacted; transactions compare and then write; watches
//! deliver every change from a revision on, in order; leases make keys
//! expire.
//!
//! Two backends implement [`Store`]:
//! - `embedded` (the default): one directory, no other process. A write is on
//!   disk before it is acknowledged, and concurrent writers share the flush.
//! - `etcd`: a real etcd v3 cluster, for several API servers over one store.
//!
//! [`open`] picks one from a [`StoreSpec`], the form users type on the
//! command line.

mod embedded;
mod error;
mod etcd;
mod types;

use std::path::PathBuf;
use std::sync::Arc;

pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use error::{Result, StoreError};
pub use etcd::EtcdStore;
pub use types::*;

/// The operations both backends provide, with etcd v3's meaning.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads a key or a range of keys, now or at a past revision.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    /// Writes one key.
    async fn put(&self, req: PutRequest) -> Result<PutResponse>;

    /// Removes a key or a range of keys.
    async fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse>;

    /// Runs a transaction atomically.
    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse>;

    /// Starts a watch. Errors about the request itself (such as a compacted
    /// start revision) arrive as the stream's first item.
    async fn watch(&self, req: WatchRequest) -> Result<WatchStream>;

    /// Discards history before `revision`; reads and watches below it then
    /// fail with [`StoreError::Compacted`].
    async fn compact(&self, revision: Revision) -> Result<CompactResponse>;

    /// Grants a lease of `ttl` seconds, with the given identifier or (0) a
    /// new one.
    async fn lease_grant(&self, ttl: i64, id: LeaseId) -> Result<LeaseGrant>;

    /// Revokes a lease, deleting every key attached to it.
    async fn lease_revoke(&self, id: LeaseId) -> Result<Revision>;

    /// Renews a lease for its full TTL; returns that TTL.
    async fn lease_keep_alive(&self, id: LeaseId) -> Result<i64>;

    /// Tells how long a lease has left and which keys it holds.
    async fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseInfo>;

    /// The store's current revision.
    async fn current_revision(&self) -> Result<Revision> {
        Ok(self
            .range(RangeRequest::key("\0").count_only())
            .await?
            .revision)
    }

    /// Says what this store is, for logs and errors ("embedded store at
    /// /var/lib/gantry/store").
    fn describe(&self) -> String;
}

/// Which backend to open, as written on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// The embedded store in this directory.
    Embedded(PathBuf),
    /// An etcd cluster at these client endpoints (`http://host:port`).
    Etcd(Vec<String>),
}

impl StoreSpec {
    /// Parses `etcd://h1:2379,h2:2379` (or `etcd+http://`), or a directory
    /// path for the embedded store (also accepted as `embedded:PATH`).
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(hosts) = s
            .strip_prefix("etcd://")
            .or_else(|| s.strip_prefix("etcd+http://"))
        {
            let endpoints: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| format!("http://{h}"))
                .collect();
            if endpoints.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "store {s:?} names no etcd endpoint; expected etcd://host:port[,host:port...]"
                )));
            }
            for e in &endpoints {
                let hostport = &e["http://".len()..];
                if hostport.contains('/') || !hostport.contains(':') {
                    return Err(StoreError::Invalid(format!(
                        "etcd endpoint {hostport:?} in {s:?} is not host:port"
                    )));
                }
            }
            return Ok(StoreSpec::Etcd(endpoints));
        }
        if s.contains("://") {
            return Err(StoreError::Invalid(format!(
                "unknown store {s:?}; expected etcd://host:port[,...] or a directory"
            )));
        }
        let path = s.strip_prefix("embedded:").unwrap_or(s);
        if path.is_empty() {
            return Err(StoreError::Invalid("empty store path".into()));
        }
        Ok(StoreSpec::Embedded(PathBuf::from(path)))
    }
}

/// Opens the store `spec` names, with default options.
pub async fn open(spec: &StoreSpec) -> Result<Arc<dyn Store>> {
    match spec {
        StoreSpec::Embedded(dir) => {
            let store = EmbeddedStore::open(dir, EmbeddedOptions::default()).await?;
            Ok(Arc::new(store))
        }
        StoreSpec::Etcd(endpoints) => Ok(Arc::new(EtcdStore::connect(endpoints.clone()).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_specs() {
        assert_eq!(
            StoreSpec::parse("etcd://h1:2379,h2:2379").unwrap(),
            StoreSpec::Etcd(vec!["http://h1:2379".into(), "http://h2:2379".into()])
        );
        assert_eq!(
            StoreSpec::parse("/var/lib/gantry/store").unwrap(),
            StoreSpec::Embedded("/var/lib/gantry/store".into())
        );
        assert_eq!(
            StoreSpec::parse("embedded:data").unwrap(),
            StoreSpec::Embedded("data".into())
        );
        assert!(StoreSpec::parse("etcd://").is_err());
        assert!(StoreSpec::parse("etcd://h1").is_err());
        assert!(StoreSpec::parse("redis://x:1").is_err());
    }
}
