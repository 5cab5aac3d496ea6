//! Requests, responses and events, shaped after the etcd v3 API.
//!
//! Revisions follow etcd: a fresh store is at revision 1 and every change
//! (a put, a delete that removed something, a transaction with writes) makes
//! one new revision. Each key carries its create revision, its last
//! modification revision and a version counting the puts since it was
//! created. `0` as a request revision means "the current revision".

use bytes::Bytes;

/// A global store revision. Signed like etcd's, so that `0` and negative
/// values can carry their etcd meanings in requests.
pub type Revision = i64;

/// A lease identifier, as etcd hands them out. `0` means "no lease".
pub type LeaseId = i64;

/// Largest request etcd accepts by default (`--max-request-bytes`); the
/// embedded backend enforces the same limit so both answer alike.
pub const MAX_REQUEST_BYTES: usize = 1_572_864;

/// Most operations etcd accepts in one transaction branch (`--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// Shortest lease TTL a single-member etcd with default timings grants;
/// shorter requests are raised to it.
pub const MIN_LEASE_TTL: i64 = 2;

/// One stored key with its value and bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value; empty in delete events.
    pub value: Bytes,
    /// Revision at which the key was last created (0 in delete events).
    pub create_revision: Revision,
    /// Revision of the last change to the key.
    pub mod_revision: Revision,
    /// Number of puts since the key was created (0 in delete events).
    pub version: i64,
    /// Lease the key is attached to, or 0.
    pub lease: LeaseId,
}

/// Which keys an operation covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// First key (inclusive).
    pub start: Bytes,
    /// Where the range ends.
    pub end: RangeEnd,
}

/// The end of a [`KeyRange`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeEnd {
    /// Only the start key itself.
    Single,
    /// Every key from the start up to, not including, this one.
    Before(Bytes),
    /// Every key from the start on.
    Unbounded,
}

impl KeyRange {
    /// Exactly one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        Self {
            start: key.into(),
            end: RangeEnd::Single,
        }
    }

    /// Every key that starts with `prefix`; an empty prefix means every key.
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let start: Bytes = prefix.into();
        let end = match prefix_end(&start) {
            Some(end) => RangeEnd::Before(end),
            None => RangeEnd::Unbounded,
        };
        Self { start, end }
    }

    /// Keys in `[start, end)`.
    pub fn span(start: impl Into<Bytes>, end: impl Into<Bytes>) -> Self {
        Self {
            start: start.into(),
            end: RangeEnd::Before(end.into()),
        }
    }

    /// Every key at or after `start`.
    pub fn from_key(start: impl Into<Bytes>) -> Self {
        Self {
            start: start.into(),
            end: RangeEnd::Unbounded,
        }
    }

    /// Whether `key` falls inside this range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            RangeEnd::Single => key == &self.start[..],
            RangeEnd::Before(end) => key >= &self.start[..] && key < &end[..],
            RangeEnd::Unbounded => key >= &self.start[..],
        }
    }

    /// Whether the range names a single key.
    pub fn is_single(&self) -> bool {
        matches!(self.end, RangeEnd::Single)
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// when no such key exists (empty prefix, or all bytes 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Bytes> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(Bytes::from(end));
        }
    }
    None
}

/// A read of one key or a range of keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRequest {
    /// The keys to read.
    pub range: KeyRange,
    /// Read as of this revision; 0 reads the current one.
    pub revision: Revision,
    /// Return at most this many keys (0: no limit); `count` still counts all.
    pub limit: i64,
    /// Return only the count, no keys.
    pub count_only: bool,
    /// Return keys without values.
    pub keys_only: bool,
}

impl RangeRequest {
    /// Reads keys in `range` at the current revision.
    pub fn new(range: KeyRange) -> Self {
        Self {
            range,
            revision: 0,
            limit: 0,
            count_only: false,
            keys_only: false,
        }
    }

    /// Reads one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        Self::new(KeyRange::key(key))
    }

    /// Reads every key under `prefix`.
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        Self::new(KeyRange::prefix(prefix))
    }

    /// Reads as of `revision`.
    pub fn at_revision(mut self, revision: Revision) -> Self {
        self.revision = revision;
        self
    }

    /// Returns at most `limit` keys.
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    /// Returns only the count.
    pub fn count_only(mut self) -> Self {
        self.count_only = true;
        self
    }

    /// Returns keys without values.
    pub fn keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }
}

/// The answer to a [`RangeRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeResponse {
    /// The store's current revision when the read was served.
    pub revision: Revision,
    /// The keys found, in key order.
    pub kvs: Vec<KeyValue>,
    /// Whether more keys matched than were returned.
    pub more: bool,
    /// How many keys matched in all.
    pub count: i64,
}

/// A write of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutRequest {
    /// The key to write.
    pub key: Bytes,
    /// The new value.
    pub value: Bytes,
    /// Lease to attach the key to, or 0 for none.
    pub lease: LeaseId,
    /// Return the previous key-value, if any.
    pub prev_kv: bool,
}

impl PutRequest {
    /// Writes `value` at `key`.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            lease: 0,
            prev_kv: false,
        }
    }

    /// Attaches the key to `lease`.
    pub fn with_lease(mut self, lease: LeaseId) -> Self {
        self.lease = lease;
        self
    }

    /// Asks for the previous key-value.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}

/// The answer to a [`PutRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PutResponse {
    /// The revision the put created.
    pub revision: Revision,
    /// The key-value before the put, when asked for and present.
    pub prev_kv: Option<KeyValue>,
}

/// A removal of one key or a range of keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRequest {
    /// The keys to remove.
    pub range: KeyRange,
    /// Return the removed key-values.
    pub prev_kv: bool,
}

impl DeleteRequest {
    /// Removes the keys in `range`.
    pub fn new(range: KeyRange) -> Self {
        Self {
            range,
            prev_kv: false,
        }
    }

    /// Removes one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        Self::new(KeyRange::key(key))
    }

    /// Removes every key under `prefix`.
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        Self::new(KeyRange::prefix(prefix))
    }

    /// Asks for the removed key-values.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}

/// The answer to a [`DeleteRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteResponse {
    /// The store's revision after the delete (unchanged if nothing matched).
    pub revision: Revision,
    /// How many keys were removed.
    pub deleted: i64,
    /// The removed key-values, when asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// What a [`Compare`] looks at, with the operand to compare against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's version (0 if absent).
    Version(i64),
    /// The key's create revision (0 if absent).
    CreateRevision(Revision),
    /// The key's modification revision (0 if absent).
    ModRevision(Revision),
    /// The key's value (a compare on an absent key's value is always false).
    Value(Bytes),
    /// The key's lease (0 if absent or unleased).
    Lease(LeaseId),
}

/// How a [`Compare`] relates the key's field to its operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// Field equals operand.
    Equal,
    /// Field differs from operand.
    NotEqual,
    /// Field is less than operand.
    Less,
    /// Field is greater than operand.
    Greater,
}

/// One condition of a transaction, on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key compared.
    pub key: Bytes,
    /// The field and operand.
    pub target: CompareTarget,
    /// The relation.
    pub op: CompareOp,
}

impl Compare {
    /// Compares the key's modification revision; `0` with `Equal` means
    /// "the key does not exist".
    pub fn mod_revision(key: impl Into<Bytes>, op: CompareOp, revision: Revision) -> Self {
        Self {
            key: key.into(),
            target: CompareTarget::ModRevision(revision),
            op,
        }
    }

    /// Compares the key's create revision.
    pub fn create_revision(key: impl Into<Bytes>, op: CompareOp, revision: Revision) -> Self {
        Self {
            key: key.into(),
            target: CompareTarget::CreateRevision(revision),
            op,
        }
    }

    /// Compares the key's version.
    pub fn version(key: impl Into<Bytes>, op: CompareOp, version: i64) -> Self {
        Self {
            key: key.into(),
            target: CompareTarget::Version(version),
            op,
        }
    }

    /// Compares the key's value.
    pub fn value(key: impl Into<Bytes>, op: CompareOp, value: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            target: CompareTarget::Value(value.into()),
            op,
        }
    }

    /// Compares the key's lease.
    pub fn lease(key: impl Into<Bytes>, op: CompareOp, lease: LeaseId) -> Self {
        Self {
            key: key.into(),
            target: CompareTarget::Lease(lease),
            op,
        }
    }

    /// Evaluates the compare against the key's current state (`None` when the
    /// key does not exist), with etcd's rules for absent keys.
    pub fn evaluate(&self, kv: Option<&KeyValue>) -> bool {
        use std::cmp::Ordering;
        let ordering = match (&self.target, kv) {
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(v), Some(kv)) => kv.value[..].cmp(&v[..]),
            (CompareTarget::Version(v), kv) => kv.map_or(0, |kv| kv.version).cmp(v),
            (CompareTarget::CreateRevision(r), kv) => kv.map_or(0, |kv| kv.create_revision).cmp(r),
            (CompareTarget::ModRevision(r), kv) => kv.map_or(0, |kv| kv.mod_revision).cmp(r),
            (CompareTarget::Lease(l), kv) => kv.map_or(0, |kv| kv.lease).cmp(l),
        };
        match self.op {
            CompareOp::Equal => ordering == Ordering::Equal,
            CompareOp::NotEqual => ordering != Ordering::Equal,
            CompareOp::Less => ordering == Ordering::Less,
            CompareOp::Greater => ordering == Ordering::Greater,
        }
    }
}

/// One operation inside a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    /// A read; it sees the writes made earlier in the same branch.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    Delete(DeleteRequest),
}

/// The answer to one [`TxnOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOpResponse {
    /// Answer to a read.
    Range(RangeResponse),
    /// Answer to a put.
    Put(PutResponse),
    /// Answer to a delete.
    Delete(DeleteResponse),
}

/// An atomic transaction: if every compare holds, run `success`, else
/// `failure`. All writes of the branch share one new revision.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnRequest {
    /// Conditions, all of which must hold for `success` to run.
    pub compare: Vec<Compare>,
    /// Operations run when every compare holds.
    pub success: Vec<TxnOp>,
    /// Operations run otherwise.
    pub failure: Vec<TxnOp>,
}

impl TxnRequest {
    /// A transaction with these conditions and no operations yet.
    pub fn when(compare: Vec<Compare>) -> Self {
        Self {
            compare,
            success: Vec::new(),
            failure: Vec::new(),
        }
    }

    /// Sets the operations run when the conditions hold.
    pub fn and_then(mut self, ops: Vec<TxnOp>) -> Self {
        self.success = ops;
        self
    }

    /// Sets the operations run when a condition fails.
    pub fn or_else(mut self, ops: Vec<TxnOp>) -> Self {
        self.failure = ops;
        self
    }
}

/// The answer to a [`TxnRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnResponse {
    /// Whether the compares held (so `success` ran).
    pub succeeded: bool,
    /// The store's revision after the transaction.
    pub revision: Revision,
    /// One answer per operation of the branch that ran.
    pub responses: Vec<TxnOpResponse>,
}

/// The answer to a compaction.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactResponse {
    /// The store's current revision.
    pub revision: Revision,
}

/// A granted lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The lease's identifier.
    pub id: LeaseId,
    /// The TTL granted, in seconds (at least [`MIN_LEASE_TTL`]).
    pub ttl: i64,
}

/// What is known of a live lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease's identifier.
    pub id: LeaseId,
    /// Seconds left before it expires.
    pub remaining_ttl: i64,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// Keys attached to it, in key order.
    pub keys: Vec<Bytes>,
}

/// A request to watch a key or range from a revision on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchRequest {
    /// The keys to watch.
    pub range: KeyRange,
    /// First revision to deliver; 0 means "changes after the current one".
    pub start_revision: Revision,
    /// Include each key's previous value in events.
    pub prev_kv: bool,
}

impl WatchRequest {
    /// Watches `range` for changes after the current revision.
    pub fn new(range: KeyRange) -> Self {
        Self {
            range,
            start_revision: 0,
            prev_kv: false,
        }
    }

    /// Starts at `revision` (inclusive).
    pub fn from_revision(mut self, revision: Revision) -> Self {
        self.start_revision = revision;
        self
    }

    /// Asks for previous values in events.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}

/// Whether an event wrote or removed its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was removed (deleted, or its lease expired).
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for deletes, only `key` and `mod_revision`
    /// are set, as in etcd.
    pub kv: KeyValue,
    /// The key before the change, when asked for and present.
    pub prev_kv: Option<KeyValue>,
}

/// A batch of events delivered to a watcher, in revision order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchResponse {
    /// The store's revision when the batch was sent.
    pub revision: Revision,
    /// The events, oldest first; never empty.
    pub events: Vec<Event>,
}

/// The receiving end of a watch. Dropping it cancels the watch.
///
/// Yields batches of events in revision order with nothing skipped. An error
/// (for example [`crate::StoreError::Compacted`] when the start revision or a
/// lagging watcher fell below the compaction point) ends the stream.
pub struct WatchStream {
    rx: tokio::sync::mpsc::Receiver<crate::Result<WatchResponse>>,
    done: bool,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("done", &self.done)
            .finish()
    }
}

impl WatchStream {
    /// Wraps the channel a backend feeds.
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<crate::Result<WatchResponse>>) -> Self {
        Self { rx, done: false }
    }

    /// The next batch of events; `None` once the watch has ended.
    pub async fn next(&mut self) -> Option<crate::Result<WatchResponse>> {
        if self.done {
            return None;
        }
        let item = self.rx.recv().await;
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

impl futures::Stream for WatchStream {
    type Item = crate::Result<WatchResponse>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.done {
            return std::task::Poll::Ready(None);
        }
        let polled = self.rx.poll_recv(cx);
        if let std::task::Poll::Ready(item) = &polled
            && !matches!(item, Some(Ok(_)))
        {
            self.done = true;
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte_below_ff() {
        assert_eq!(
            prefix_end(b"/registry/pods/"),
            Some(Bytes::from_static(b"/registry/pods0"))
        );
        assert_eq!(prefix_end(b"a\xff\xff"), Some(Bytes::from_static(b"b")));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn ranges_contain_what_they_name() {
        let p = KeyRange::prefix("a/");
        assert!(p.contains(b"a/"));
        assert!(p.contains(b"a/zzz"));
        assert!(!p.contains(b"a0"));
        assert!(!p.contains(b"a"));
        assert!(KeyRange::prefix("").contains(b""));
        assert!(KeyRange::prefix("").contains(b"\xff\xff"));
        let k = KeyRange::key("x");
        assert!(k.contains(b"x") && !k.contains(b"x1"));
        let s = KeyRange::span("b", "d");
        assert!(s.contains(b"b") && s.contains(b"c\xff") && !s.contains(b"d"));
    }

    #[test]
    fn compares_follow_etcd_rules_for_absent_keys() {
        let absent_created = Compare::mod_revision("k", CompareOp::Equal, 0);
        assert!(absent_created.evaluate(None));
        assert!(!Compare::value("k", CompareOp::Equal, "").evaluate(None));
        assert!(!Compare::value("k", CompareOp::NotEqual, "x").evaluate(None));
        let kv = KeyValue {
            key: "k".into(),
            value: "v".into(),
            create_revision: 3,
            mod_revision: 5,
            version: 2,
            lease: 0,
        };
        assert!(!absent_created.evaluate(Some(&kv)));
        assert!(Compare::mod_revision("k", CompareOp::Equal, 5).evaluate(Some(&kv)));
        assert!(Compare::mod_revision("k", CompareOp::Less, 6).evaluate(Some(&kv)));
        assert!(Compare::version("k", CompareOp::Greater, 1).evaluate(Some(&kv)));
        assert!(Compare::value("k", CompareOp::Greater, "a").evaluate(Some(&kv)));
    }
}
