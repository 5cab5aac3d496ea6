//! Compaction of the store's history, as kube-apiserver does it: every
//! interval (five minutes), the history older than the previous tick goes,
//! so watches and lists may resume from anything up to one to two
//! intervals old, and older ones get 410 Gone.
//!
//! With several servers, one compaction per interval: each tick is claimed
//! by bumping the version of one key under a compare on the version last
//! seen (the scheme kube-apiserver uses); the server whose claim succeeds
//! compacts to the revision of its previous successful claim.

use std::sync::Arc;
use std::time::Duration;

use store::{
    Compare, CompareOp, PutRequest, RangeRequest, Revision, Store, TxnOp, TxnOpResponse, TxnRequest,
};

const KEY: &str = "/gantry/compact";

/// One tick: answers the version now seen and the revision to compact to
/// at the next successful claim.
async fn tick(
    store: &dyn Store,
    seen_version: i64,
    pending: Revision,
) -> store::Result<(i64, Revision)> {
    let claim = TxnRequest::when(vec![Compare::version(KEY, CompareOp::Equal, seen_version)])
        .and_then(vec![TxnOp::Put(PutRequest::new(KEY, Vec::new()))])
        .or_else(vec![TxnOp::Range(RangeRequest::key(KEY))]);
    let resp = store.txn(claim).await?;
    if !resp.succeeded {
        let version = match resp.responses.first() {
            Some(TxnOpResponse::Range(r)) => r.kvs.first().map_or(0, |kv| kv.version),
            _ => 0,
        };
        // Another server claimed this interval; start over from its count.
        return Ok((version, 0));
    }
    if pending > 0 {
        match store.compact(pending).await {
            Ok(_) | Err(store::StoreError::Compacted { .. }) => {
                tracing::debug!(revision = pending, "store history compacted");
            }
            Err(e) => return Err(e),
        }
    }
    Ok((seen_version + 1, resp.revision))
}

/// Compacts every `interval` until the store closes.
pub(crate) async fn run(store: Arc<dyn Store>, interval: Duration) {
    let mut seen = 0;
    let mut pending = 0;
    loop {
        tokio::time::sleep(interval).await;
        match tick(store.as_ref(), seen, pending).await {
            Ok((v, rev)) => (seen, pending) = (v, rev),
            Err(store::StoreError::Closed(_)) => return,
            Err(e) => tracing::warn!(error = %e, "store compaction failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn compacts_to_the_previous_tick_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = store::open(&store::StoreSpec::Embedded(dir.path().into()))
            .await
            .unwrap();
        store.put(PutRequest::new("/a", "1")).await.unwrap();
        // First tick: claims, nothing to compact yet.
        let (v1, r1) = tick(store.as_ref(), 0, 0).await.unwrap();
        assert_eq!(v1, 1);
        store.put(PutRequest::new("/a", "2")).await.unwrap();
        // A second server with a stale count loses the claim and learns it.
        assert_eq!(tick(store.as_ref(), 0, 0).await.unwrap(), (1, 0));
        // Second tick: compacts to the first tick's revision.
        let (v2, _) = tick(store.as_ref(), v1, r1).await.unwrap();
        assert_eq!(v2, 2);
        let old = store
            .range(RangeRequest::key("/a").at_revision(r1 - 1))
            .await;
        assert!(matches!(old, Err(store::StoreError::Compacted { .. })));
        assert!(
            store
                .range(RangeRequest::key("/a").at_revision(r1))
                .await
                .is_ok()
        );
    }
}
