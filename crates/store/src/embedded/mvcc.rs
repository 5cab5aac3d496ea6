//! The embedded store's in-memory state: every key's history of versions, a
//! revision-ordered event log for watches, and the leases.
//!
//! Pure data and logic, no IO and no clocks. A write request is *executed*:
//! checked, evaluated against the state, and turned into [`Effect`]s, which are
//! applied at once so that the next request in the same batch sees them. The
//! writer then logs the effects; if that fails, [`Mvcc::undo`] takes them
//! back. Recovery replays logged effects through the same [`Mvcc::apply`], so
//! live and recovered states cannot diverge.
//!
//! Two revisions matter: `revision`, the newest applied (which may not be on
//! disk yet), and `visible`, the newest durable one. Readers outside the writer
//! read at `visible`, so they never see a write before it is durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::types::*;

/// One change to the state, as logged in the WAL and stored in checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Effect {
    /// A key written at (`rev`, `sub`): `sub` orders the writes of one
    /// transaction, which share a revision.
    Put {
        rev: Revision,
        sub: u32,
        key: Bytes,
        value: Bytes,
        create_rev: Revision,
        version: i64,
        lease: LeaseId,
    },
    /// A key removed at (`rev`, `sub`).
    Tombstone { rev: Revision, sub: u32, key: Bytes },
    /// A lease granted; it changes no revision.
    LeaseGrant { id: LeaseId, ttl: i64 },
    /// A lease revoked. Its keys' tombstones precede it in the same batch.
    /// `ttl` is kept so the revocation can be undone.
    LeaseRevoke { id: LeaseId, ttl: i64 },
    /// History before `rev` discarded.
    Compact { rev: Revision },
}

/// A write request as the writer receives it.
#[derive(Clone, Debug)]
pub(crate) enum WriteOp {
    Put(PutRequest),
    Delete(DeleteRequest),
    Txn(TxnRequest),
    Compact(Revision),
    /// `id` is never 0 here: the writer picks one before executing.
    LeaseGrant {
        ttl: i64,
        id: LeaseId,
    },
    LeaseRevoke {
        id: LeaseId,
    },
}

/// The answer to a [`WriteOp`].
#[derive(Clone, Debug)]
pub(crate) enum WriteResult {
    Put(PutResponse),
    Delete(DeleteResponse),
    Txn(TxnResponse),
    Compact(CompactResponse),
    LeaseGrant(LeaseGrant),
    LeaseRevoke(Revision),
}

/// What executing one request did.
#[derive(Debug)]
pub(crate) struct Executed {
    /// The answer for the caller.
    pub(crate) result: WriteResult,
    /// Effects already applied to the state, to be logged.
    pub(crate) effects: Vec<Effect>,
    /// A compaction to apply once the effects are durable (compaction cannot
    /// be undone, so it waits for the flush).
    pub(crate) compaction: Option<Revision>,
}

/// One version of a key; `value` is `None` for a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    rev: Revision,
    sub: u32,
    create_rev: Revision,
    version: i64,
    lease: LeaseId,
    value: Option<Bytes>,
}

impl Version {
    fn to_kv(&self, key: &Bytes) -> KeyValue {
        KeyValue {
            key: key.clone(),
            value: self.value.clone().unwrap_or_default(),
            create_revision: self.create_rev,
            mod_revision: self.rev,
            version: self.version,
            lease: self.lease,
        }
    }
}

/// A live lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lease {
    /// The TTL it was granted with, in seconds.
    pub(crate) ttl: i64,
    /// Keys whose newest version is attached to it.
    pub(crate) keys: BTreeSet<Bytes>,
}

/// The whole in-memory state.
#[derive(Debug, Default)]
pub(crate) struct Mvcc {
    keys: BTreeMap<Bytes, Vec<Version>>,
    log: BTreeMap<Revision, Vec<Event>>,
    leases: HashMap<LeaseId, Lease>,
    revision: Revision,
    visible: Revision,
    compacted: Revision,
}

impl Mvcc {
    /// An empty store at revision 1, as a fresh etcd starts.
    pub(crate) fn new() -> Self {
        Self {
            revision: 1,
            visible: 1,
            ..Self::default()
        }
    }

    /// The newest applied revision (possibly not yet durable).
    pub(crate) fn revision(&self) -> Revision {
        self.revision
    }

    /// The newest durable revision, the one readers see.
    pub(crate) fn visible(&self) -> Revision {
        self.visible
    }

    /// Marks everything applied so far as durable.
    pub(crate) fn make_visible(&mut self) {
        self.visible = self.revision;
    }

    /// The compaction point: reads below it fail.
    pub(crate) fn compacted(&self) -> Revision {
        self.compacted
    }

    /// Sets the revision and compaction point after loading a checkpoint, in
    /// which the versions that carried them may have been compacted away.
    pub(crate) fn restore_marks(&mut self, revision: Revision, compacted: Revision) {
        self.revision = self.revision.max(revision);
        self.visible = self.revision;
        self.compacted = self.compacted.max(compacted);
        self.prune_log();
    }

    /// Whether a lease exists.
    pub(crate) fn has_lease(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    /// Every lease with its TTL.
    pub(crate) fn leases(&self) -> impl Iterator<Item = (LeaseId, i64)> + '_ {
        self.leases.iter().map(|(id, l)| (*id, l.ttl))
    }

    /// A lease's TTL and the keys attached to it as of the visible revision.
    pub(crate) fn lease(&self, id: LeaseId) -> Option<(i64, Vec<Bytes>)> {
        let lease = self.leases.get(&id)?;
        let keys = lease
            .keys
            .iter()
            .filter(|k| {
                self.keys
                    .get(*k)
                    .and_then(|h| version_at(h, self.visible))
                    .is_some_and(|v| v.lease == id)
            })
            .cloned()
            .collect();
        Some((lease.ttl, keys))
    }

    /// Serves a read at the visible revision.
    pub(crate) fn read(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.range_at(req, self.visible)
    }

    /// Events with revisions in `[from, visible]` whose keys fall in `range`,
    /// oldest first, stopping after the revision at which `max` events were
    /// gathered. Returns the events and the last revision examined.
    pub(crate) fn events_since(
        &self,
        from: Revision,
        range: &KeyRange,
        prev_kv: bool,
        max: usize,
    ) -> Result<(Vec<Event>, Revision)> {
        if from < self.compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compacted: Some(self.compacted),
            });
        }
        let mut out = Vec::new();
        if from > self.visible {
            return Ok((out, from - 1));
        }
        for (rev, events) in self.log.range(from..=self.visible) {
            out.extend(
                events
                    .iter()
                    .filter(|e| range.contains(&e.kv.key))
                    .map(|e| event_for(e, prev_kv)),
            );
            if out.len() >= max {
                return Ok((out, *rev));
            }
        }
        Ok((out, self.visible.max(from - 1)))
    }

    /// Executes one write request: validates it, applies its effects, and
    /// says what to log.
    pub(crate) fn execute(&mut self, op: &WriteOp) -> Result<Executed> {
        match op {
            WriteOp::Put(req) => {
                check_put(req)?;
                check_size(put_size(req))?;
                self.check_lease(req.lease)?;
                let rev = self.revision + 1;
                let mut effects = Vec::with_capacity(1);
                let resp = self.put(req, rev, 0, &mut effects);
                Ok(self.executed(WriteResult::Put(resp), effects))
            }
            WriteOp::Delete(req) => {
                check_range_key(&req.range)?;
                let rev = self.revision + 1;
                let mut effects = Vec::new();
                let mut sub = 0;
                let resp = self.delete(req, rev, &mut sub, &mut effects);
                Ok(self.executed(WriteResult::Delete(resp), effects))
            }
            WriteOp::Txn(req) => {
                let mut effects = Vec::new();
                let resp = self.txn(req, &mut effects)?;
                Ok(self.executed(WriteResult::Txn(resp), effects))
            }
            WriteOp::Compact(rev) => {
                if *rev <= self.compacted {
                    return Err(StoreError::Compacted {
                        requested: *rev,
                        compacted: Some(self.compacted),
                    });
                }
                if *rev > self.revision {
                    return Err(StoreError::FutureRevision { requested: *rev });
                }
                Ok(Executed {
                    result: WriteResult::Compact(CompactResponse {
                        revision: self.revision,
                    }),
                    effects: vec![Effect::Compact { rev: *rev }],
                    compaction: Some(*rev),
                })
            }
            WriteOp::LeaseGrant { ttl, id } => {
                if self.leases.contains_key(id) {
                    return Err(StoreError::LeaseExists(*id));
                }
                if *ttl > MAX_LEASE_TTL {
                    return Err(StoreError::Invalid("too large lease TTL".into()));
                }
                let ttl = (*ttl).max(MIN_LEASE_TTL);
                let effect = Effect::LeaseGrant { id: *id, ttl };
                self.apply(&effect);
                Ok(self.executed(
                    WriteResult::LeaseGrant(LeaseGrant { id: *id, ttl }),
                    vec![effect],
                ))
            }
            WriteOp::LeaseRevoke { id } => {
                let Some(lease) = self.leases.get(id) else {
                    return Err(StoreError::LeaseNotFound(*id));
                };
                let ttl = lease.ttl;
                // Attached keys are deleted in key order in one revision, as
                // etcd's lessor does.
                let keys: Vec<Bytes> = lease.keys.iter().cloned().collect();
                let rev = self.revision + 1;
                let mut effects = Vec::with_capacity(keys.len() + 1);
                for (sub, key) in keys.into_iter().enumerate() {
                    let effect = Effect::Tombstone {
                        rev,
                        sub: sub as u32,
                        key,
                    };
                    self.apply(&effect);
                    effects.push(effect);
                }
                let effect = Effect::LeaseRevoke { id: *id, ttl };
                self.apply(&effect);
                effects.push(effect);
                Ok(self.executed(WriteResult::LeaseRevoke(self.revision), effects))
            }
        }
    }

    fn executed(&self, result: WriteResult, effects: Vec<Effect>) -> Executed {
        Executed {
            result,
            effects,
            compaction: None,
        }
    }

    /// Applies one effect to the state. Used live (right after execution)
    /// and at recovery (replaying the WAL and loading checkpoints).
    pub(crate) fn apply(&mut self, effect: &Effect) {
        match effect {
            Effect::Put {
                rev,
                sub,
                key,
                value,
                create_rev,
                version,
                lease,
            } => {
                let new = Version {
                    rev: *rev,
                    sub: *sub,
                    create_rev: *create_rev,
                    version: *version,
                    lease: *lease,
                    value: Some(value.clone()),
                };
                self.push_version(key, new);
            }
            Effect::Tombstone { rev, sub, key } => {
                let new = Version {
                    rev: *rev,
                    sub: *sub,
                    create_rev: 0,
                    version: 0,
                    lease: 0,
                    value: None,
                };
                self.push_version(key, new);
            }
            Effect::LeaseGrant { id, ttl } => {
                self.leases.insert(
                    *id,
                    Lease {
                        ttl: *ttl,
                        keys: BTreeSet::new(),
                    },
                );
            }
            Effect::LeaseRevoke { id, .. } => {
                self.leases.remove(id);
            }
            Effect::Compact { rev } => {
                self.compact(*rev);
            }
        }
    }

    /// Appends a version to a key's history, keeping lease attachments and
    /// the event log in step.
    fn push_version(&mut self, key: &Bytes, new: Version) {
        let history = self.keys.entry(key.clone()).or_default();
        let prev = history.last().filter(|v| v.value.is_some()).cloned();
        // etcd's rule for an event's previous value: none for a creation,
        // otherwise the key as of the revision before. It differs from `prev`
        // only when one transaction writes a key twice (delete, then create).
        let creation = new.value.is_some() && new.create_rev == new.rev;
        let before = history
            .iter()
            .rev()
            .find(|v| v.rev < new.rev)
            .filter(|v| v.value.is_some() && !creation)
            .map(|v| v.to_kv(key));
        if let Some(prev) = &prev
            && prev.lease != 0
            && let Some(lease) = self.leases.get_mut(&prev.lease)
        {
            lease.keys.remove(key);
        }
        if new.value.is_some()
            && new.lease != 0
            && let Some(lease) = self.leases.get_mut(&new.lease)
        {
            lease.keys.insert(key.clone());
        }
        let event = Event {
            kind: if new.value.is_some() {
                EventKind::Put
            } else {
                EventKind::Delete
            },
            kv: if new.value.is_some() {
                new.to_kv(key)
            } else {
                KeyValue {
                    key: key.clone(),
                    mod_revision: new.rev,
                    ..KeyValue::default()
                }
            },
            prev_kv: before,
        };
        self.revision = self.revision.max(new.rev);
        history.push(new);
        self.log
            .entry(event.kv.mod_revision)
            .or_default()
            .push(event);
    }

    /// Takes back effects that were applied but never made durable, newest
    /// first, and returns the revision to what it was before them.
    pub(crate) fn undo(&mut self, effects: &[Effect], revision_before: Revision) {
        for effect in effects.iter().rev() {
            match effect {
                Effect::Put { rev, key, .. } | Effect::Tombstone { rev, key, .. } => {
                    let Some(history) = self.keys.get_mut(key) else {
                        continue;
                    };
                    if history.last().is_none_or(|v| v.rev != *rev) {
                        continue;
                    }
                    let undone = history.pop().expect("history has a last version");
                    if undone.value.is_some()
                        && undone.lease != 0
                        && let Some(lease) = self.leases.get_mut(&undone.lease)
                    {
                        lease.keys.remove(key);
                    }
                    if let Some(prev) = history.last().filter(|v| v.value.is_some())
                        && prev.lease != 0
                        && let Some(lease) = self.leases.get_mut(&prev.lease)
                    {
                        lease.keys.insert(key.clone());
                    }
                    if history.is_empty() {
                        self.keys.remove(key);
                    }
                    if let Some(events) = self.log.get_mut(rev) {
                        events.pop();
                        if events.is_empty() {
                            self.log.remove(rev);
                        }
                    }
                }
                Effect::LeaseGrant { id, .. } => {
                    self.leases.remove(id);
                }
                Effect::LeaseRevoke { id, ttl } => {
                    // The revoke's tombstones come before it, so they are
                    // undone after this and re-attach their keys.
                    self.leases.insert(
                        *id,
                        Lease {
                            ttl: *ttl,
                            keys: BTreeSet::new(),
                        },
                    );
                }
                // Compactions are applied only once durable; nothing to undo.
                Effect::Compact { .. } => {}
            }
        }
        self.revision = revision_before;
    }

    /// Discards history before `rev`, keeping for each key its newest version
    /// at or below `rev` unless that is a tombstone (etcd's rule). Returns the
    /// (revision, sub) of every version removed, for the checkpoint.
    pub(crate) fn compact(&mut self, rev: Revision) -> Vec<(Revision, u32)> {
        if rev <= self.compacted {
            return Vec::new();
        }
        let mut removed = Vec::new();
        self.keys.retain(|_, history| {
            let upto = history.partition_point(|v| v.rev <= rev);
            if upto == 0 {
                return true;
            }
            let keep_from = if history[upto - 1].value.is_some() {
                upto - 1
            } else {
                upto
            };
            removed.extend(history.drain(..keep_from).map(|v| (v.rev, v.sub)));
            !history.is_empty()
        });
        self.compacted = rev;
        self.prune_log();
        removed
    }

    /// Drops watch events no watcher may ask for any more: those below the
    /// compaction point, and deletions at it (their tombstones are gone).
    fn prune_log(&mut self) {
        let compacted = self.compacted;
        self.log = self.log.split_off(&compacted);
        if let Some(events) = self.log.get_mut(&compacted) {
            events.retain(|e| e.kind == EventKind::Put);
            if events.is_empty() {
                self.log.remove(&compacted);
            }
        }
    }

    fn check_lease(&self, lease: LeaseId) -> Result<()> {
        if lease != 0 && !self.leases.contains_key(&lease) {
            return Err(StoreError::LeaseNotFound(lease));
        }
        Ok(())
    }

    fn live(&self, key: &[u8], at: Revision) -> Option<KeyValue> {
        let (key, history) = self.keys.get_key_value(key)?;
        version_at(history, at).map(|v| v.to_kv(key))
    }

    fn put(
        &mut self,
        req: &PutRequest,
        rev: Revision,
        sub: u32,
        effects: &mut Vec<Effect>,
    ) -> PutResponse {
        let prev = self.live(&req.key, self.revision);
        let effect = Effect::Put {
            rev,
            sub,
            key: req.key.clone(),
            value: req.value.clone(),
            create_rev: prev.as_ref().map_or(rev, |p| p.create_revision),
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease: req.lease,
        };
        self.apply(&effect);
        effects.push(effect);
        PutResponse {
            revision: rev,
            prev_kv: if req.prev_kv { prev } else { None },
        }
    }

    fn delete(
        &mut self,
        req: &DeleteRequest,
        rev: Revision,
        sub: &mut u32,
        effects: &mut Vec<Effect>,
    ) -> DeleteResponse {
        let at = self.revision;
        let doomed: Vec<KeyValue> = self
            .keys_in(&req.range)
            .filter_map(|(k, h)| version_at(h, at).map(|v| v.to_kv(k)))
            .collect();
        for kv in &doomed {
            let effect = Effect::Tombstone {
                rev,
                sub: *sub,
                key: kv.key.clone(),
            };
            *sub += 1;
            self.apply(&effect);
            effects.push(effect);
        }
        DeleteResponse {
            revision: self.revision,
            deleted: doomed.len() as i64,
            prev_kvs: if req.prev_kv { doomed } else { Vec::new() },
        }
    }

    fn txn(&mut self, req: &TxnRequest, effects: &mut Vec<Effect>) -> Result<TxnResponse> {
        check_txn(req)?;
        let succeeded = req
            .compare
            .iter()
            .all(|c| c.evaluate(self.live(&c.key, self.revision).as_ref()));
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        // Like etcd, refuse the whole branch before running any of it, and in
        // etcd's order: every put's lease first, then every read's revision.
        for op in ops {
            if let TxnOp::Put(p) = op {
                self.check_lease(p.lease)?;
            }
        }
        for op in ops {
            if let TxnOp::Range(r) = op {
                self.check_read_revision(r.revision, self.revision)?;
            }
        }
        let rev = self.revision + 1;
        let mut sub = 0u32;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                TxnOp::Range(r) => TxnOpResponse::Range(self.range_at(r, self.revision)?),
                TxnOp::Put(p) => {
                    let resp = self.put(p, rev, sub, effects);
                    sub += 1;
                    TxnOpResponse::Put(resp)
                }
                TxnOp::Delete(d) => TxnOpResponse::Delete(self.delete(d, rev, &mut sub, effects)),
            });
        }
        Ok(TxnResponse {
            succeeded,
            revision: self.revision,
            responses,
        })
    }

    fn check_read_revision(&self, requested: Revision, current: Revision) -> Result<Revision> {
        let at = if requested <= 0 { current } else { requested };
        if at > current {
            return Err(StoreError::FutureRevision { requested: at });
        }
        if at < self.compacted {
            return Err(StoreError::Compacted {
                requested: at,
                compacted: Some(self.compacted),
            });
        }
        Ok(at)
    }

    fn range_at(&self, req: &RangeRequest, current: Revision) -> Result<RangeResponse> {
        check_range_key(&req.range)?;
        let at = self.check_read_revision(req.revision, current)?;
        let limit = usize::try_from(req.limit).unwrap_or(0);
        let mut kvs = Vec::new();
        let mut count = 0i64;
        for (key, history) in self.keys_in(&req.range) {
            let Some(v) = version_at(history, at) else {
                continue;
            };
            count += 1;
            if !req.count_only && (limit == 0 || kvs.len() < limit) {
                let mut kv = v.to_kv(key);
                if req.keys_only {
                    kv.value = Bytes::new();
                }
                kvs.push(kv);
            }
        }
        Ok(RangeResponse {
            revision: current,
            more: !req.count_only && count > kvs.len() as i64,
            kvs,
            count,
        })
    }

    fn keys_in<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> Box<dyn Iterator<Item = (&'a Bytes, &'a Vec<Version>)> + 'a> {
        let start = &range.start[..];
        match &range.end {
            RangeEnd::Single => Box::new(self.keys.get_key_value(start).into_iter()),
            RangeEnd::Before(end) if &end[..] <= start => Box::new(std::iter::empty()),
            RangeEnd::Before(end) => Box::new(
                self.keys
                    .range::<[u8], _>((Bound::Included(start), Bound::Excluded(&end[..]))),
            ),
            RangeEnd::Unbounded => Box::new(
                self.keys
                    .range::<[u8], _>((Bound::Included(start), Bound::Unbounded)),
            ),
        }
    }

    /// Checks the structural invariants; for tests.
    #[cfg(test)]
    pub(crate) fn assert_consistent(&self) {
        for (key, history) in &self.keys {
            assert!(!history.is_empty(), "empty history for {key:?}");
            for pair in history.windows(2) {
                assert!(
                    (pair[0].rev, pair[0].sub) < (pair[1].rev, pair[1].sub),
                    "history of {key:?} out of order"
                );
            }
            if let Some(v) = history.last().filter(|v| v.value.is_some() && v.lease != 0) {
                let lease = self.leases.get(&v.lease);
                assert!(
                    lease.is_some_and(|l| l.keys.contains(key)),
                    "{key:?} not attached to its lease {}",
                    v.lease
                );
            }
        }
        for (id, lease) in &self.leases {
            for key in &lease.keys {
                let last = self.keys.get(key).and_then(|h| h.last());
                assert!(
                    last.is_some_and(|v| v.value.is_some() && v.lease == *id),
                    "lease {id} holds {key:?}, which is not attached"
                );
            }
        }
        assert!(self.visible <= self.revision);
        assert!(self.compacted <= self.revision);
    }
}

/// Largest TTL etcd grants, in seconds.
const MAX_LEASE_TTL: i64 = 9_000_000_000;

fn version_at(history: &[Version], at: Revision) -> Option<&Version> {
    let upto = history.partition_point(|v| v.rev <= at);
    history[..upto].last().filter(|v| v.value.is_some())
}

/// The part of a watch event a watcher asked for.
pub(crate) fn event_for(event: &Event, prev_kv: bool) -> Event {
    Event {
        kind: event.kind,
        kv: event.kv.clone(),
        prev_kv: if prev_kv { event.prev_kv.clone() } else { None },
    }
}

fn check_put(req: &PutRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    Ok(())
}

fn check_range_key(range: &KeyRange) -> Result<()> {
    // etcd treats an empty key with an unbounded end as "every key"; any
    // other empty key is a mistake.
    if range.start.is_empty() && range.end != RangeEnd::Unbounded {
        return Err(StoreError::EmptyKey);
    }
    Ok(())
}

/// Approximate encoded size of a put, as etcd measures requests.
fn put_size(req: &PutRequest) -> usize {
    req.key.len() + req.value.len() + 32
}

fn check_size(size: usize) -> Result<()> {
    if size > MAX_REQUEST_BYTES {
        return Err(StoreError::RequestTooLarge {
            size,
            limit: MAX_REQUEST_BYTES,
        });
    }
    Ok(())
}

/// etcd's checks on a transaction, in etcd's order: operation count, empty
/// keys, request size, then keys written twice in a branch.
fn check_txn(req: &TxnRequest) -> Result<()> {
    let ops = req
        .compare
        .len()
        .max(req.success.len())
        .max(req.failure.len());
    if ops > MAX_TXN_OPS {
        return Err(StoreError::TooManyOps {
            ops,
            limit: MAX_TXN_OPS,
        });
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(StoreError::EmptyKey);
    }
    let mut size = 0;
    for op in req.success.iter().chain(&req.failure) {
        match op {
            TxnOp::Put(p) => {
                check_put(p)?;
                size += put_size(p);
            }
            TxnOp::Range(r) => check_range_key(&r.range)?,
            TxnOp::Delete(d) => check_range_key(&d.range)?,
        }
    }
    check_size(size)?;
    check_branch_overlaps(&req.success)?;
    check_branch_overlaps(&req.failure)
}

/// A branch may not put one key twice, nor put a key it also deletes.
///
/// etcd checks deletes as `[key, range_end)` intervals, so a delete to the
/// end of the keyspace (range end `"\0"`) is an empty interval there and
/// never conflicts; this check keeps that quirk to answer alike.
fn check_branch_overlaps(ops: &[TxnOp]) -> Result<()> {
    let mut puts = BTreeSet::new();
    for op in ops {
        if let TxnOp::Put(p) = op
            && !puts.insert(&p.key[..])
        {
            return Err(StoreError::DuplicateKey);
        }
    }
    for op in ops {
        if let TxnOp::Delete(d) = op
            && d.range.end != RangeEnd::Unbounded
            && puts.iter().any(|k| d.range.contains(k))
        {
            return Err(StoreError::DuplicateKey);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(m: &mut Mvcc, op: WriteOp) -> Executed {
        let out = m.execute(&op).expect("execute");
        if let Some(rev) = out.compaction {
            m.compact(rev);
        }
        m.make_visible();
        out
    }

    fn put(m: &mut Mvcc, k: &str, v: &str) -> PutResponse {
        match exec(m, WriteOp::Put(PutRequest::new(k.to_owned(), v.to_owned()))).result {
            WriteResult::Put(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn get(m: &Mvcc, k: &str, rev: Revision) -> Result<Option<KeyValue>> {
        Ok(m.read(&RangeRequest::key(k.to_owned()).at_revision(rev))?
            .kvs
            .pop())
    }

    #[test]
    fn revisions_versions_and_history() {
        let mut m = Mvcc::new();
        assert_eq!(put(&mut m, "a", "1").revision, 2);
        assert_eq!(put(&mut m, "a", "2").revision, 3);
        let kv = get(&m, "a", 0).unwrap().unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
        assert_eq!(get(&m, "a", 2).unwrap().unwrap().value, "1");
        assert_eq!(get(&m, "a", 1).unwrap(), None);
        assert!(matches!(
            get(&m, "a", 4),
            Err(StoreError::FutureRevision { requested: 4 })
        ));
        let del = exec(&mut m, WriteOp::Delete(DeleteRequest::key("a")));
        assert!(matches!(
            del.result,
            WriteResult::Delete(DeleteResponse {
                revision: 4,
                deleted: 1,
                ..
            })
        ));
        // A delete that matches nothing makes no revision and no effect.
        let none = exec(&mut m, WriteOp::Delete(DeleteRequest::key("a")));
        assert!(none.effects.is_empty());
        assert_eq!(m.revision(), 4);
        // Re-creating starts a new generation.
        put(&mut m, "a", "3");
        let kv = get(&m, "a", 0).unwrap().unwrap();
        assert_eq!((kv.create_revision, kv.version), (5, 1));
        m.assert_consistent();
    }

    #[test]
    fn readers_see_only_the_visible_revision() {
        let mut m = Mvcc::new();
        put(&mut m, "a", "1");
        m.execute(&WriteOp::Put(PutRequest::new("a", "2"))).unwrap();
        assert_eq!(m.read(&RangeRequest::key("a")).unwrap().kvs[0].value, "1");
        assert_eq!(m.read(&RangeRequest::key("a")).unwrap().revision, 2);
        m.make_visible();
        assert_eq!(m.read(&RangeRequest::key("a")).unwrap().kvs[0].value, "2");
    }

    #[test]
    fn undo_restores_the_exact_state() {
        let mut m = Mvcc::new();
        let lease = exec(&mut m, WriteOp::LeaseGrant { ttl: 10, id: 7 });
        assert!(matches!(
            lease.result,
            WriteResult::LeaseGrant(LeaseGrant { id: 7, ttl: 10 })
        ));
        put(&mut m, "a", "1");
        exec(
            &mut m,
            WriteOp::Put(PutRequest::new("b", "1").with_lease(7)),
        );
        let before = format!("{m:?}");
        let rev = m.revision();
        let mut effects = Vec::new();
        for op in [
            WriteOp::Put(PutRequest::new("a", "2")),
            WriteOp::Put(PutRequest::new("c", "1").with_lease(7)),
            WriteOp::Delete(DeleteRequest::prefix("")),
            WriteOp::LeaseGrant { ttl: 5, id: 9 },
            WriteOp::LeaseRevoke { id: 7 },
        ] {
            effects.extend(m.execute(&op).unwrap().effects);
        }
        m.undo(&effects, rev);
        assert_eq!(format!("{m:?}"), before);
        m.assert_consistent();
    }

    #[test]
    fn lease_revoke_deletes_attached_keys_in_one_revision() {
        let mut m = Mvcc::new();
        exec(&mut m, WriteOp::LeaseGrant { ttl: 1, id: 1 });
        assert_eq!(m.lease(1).unwrap().0, MIN_LEASE_TTL);
        exec(
            &mut m,
            WriteOp::Put(PutRequest::new("x", "1").with_lease(1)),
        );
        exec(
            &mut m,
            WriteOp::Put(PutRequest::new("y", "1").with_lease(1)),
        );
        // Re-putting without the lease detaches the key.
        exec(&mut m, WriteOp::Put(PutRequest::new("y", "2")));
        assert_eq!(m.lease(1).unwrap().1, vec![Bytes::from("x")]);
        let out = exec(&mut m, WriteOp::LeaseRevoke { id: 1 });
        assert!(matches!(out.result, WriteResult::LeaseRevoke(5)));
        assert_eq!(get(&m, "x", 0).unwrap(), None);
        assert!(get(&m, "y", 0).unwrap().is_some());
        assert!(matches!(
            m.execute(&WriteOp::Put(PutRequest::new("z", "1").with_lease(1))),
            Err(StoreError::LeaseNotFound(1))
        ));
        m.assert_consistent();
    }

    #[test]
    fn compaction_keeps_latest_live_versions() {
        let mut m = Mvcc::new();
        put(&mut m, "a", "1"); // 2
        put(&mut m, "a", "2"); // 3
        put(&mut m, "b", "1"); // 4
        exec(&mut m, WriteOp::Delete(DeleteRequest::key("b"))); // 5
        put(&mut m, "c", "1"); // 6
        let out = m.execute(&WriteOp::Compact(5)).unwrap();
        assert_eq!(out.compaction, Some(5));
        let removed = m.compact(5);
        assert_eq!(removed, vec![(2, 0), (4, 0), (5, 0)]);
        assert_eq!(get(&m, "a", 5).unwrap().unwrap().value, "2");
        assert_eq!(get(&m, "b", 5).unwrap(), None);
        assert!(matches!(get(&m, "a", 4), Err(StoreError::Compacted { .. })));
        assert!(matches!(
            m.execute(&WriteOp::Compact(5)),
            Err(StoreError::Compacted { .. })
        ));
        assert!(matches!(
            m.execute(&WriteOp::Compact(7)),
            Err(StoreError::FutureRevision { .. })
        ));
        assert!(m.events_since(4, &KeyRange::prefix(""), false, 10).is_err());
        let (events, last) = m.events_since(5, &KeyRange::prefix(""), false, 10).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(last, 6);
        m.assert_consistent();
    }

    #[test]
    fn txn_reads_its_own_writes_and_shares_a_revision() {
        let mut m = Mvcc::new();
        put(&mut m, "a", "1");
        let txn =
            TxnRequest::when(vec![Compare::mod_revision("a", CompareOp::Equal, 2)]).and_then(vec![
                TxnOp::Put(PutRequest::new("a", "2")),
                TxnOp::Put(PutRequest::new("b", "2")),
                TxnOp::Range(RangeRequest::prefix("")),
            ]);
        let out = exec(&mut m, WriteOp::Txn(txn.clone()));
        let WriteResult::Txn(resp) = out.result else {
            panic!()
        };
        assert!(resp.succeeded);
        assert_eq!(resp.revision, 3);
        let TxnOpResponse::Range(r) = &resp.responses[2] else {
            panic!()
        };
        assert_eq!(r.count, 2);
        assert!(r.kvs.iter().all(|kv| kv.mod_revision == 3));
        // The same compare now fails; the failure branch is empty.
        let WriteResult::Txn(again) = exec(&mut m, WriteOp::Txn(txn)).result else {
            panic!()
        };
        assert!(!again.succeeded);
        assert_eq!(again.revision, 3);
        assert_eq!(
            m.events_since(3, &KeyRange::prefix(""), false, 10)
                .unwrap()
                .0
                .len(),
            2
        );
    }

    #[test]
    fn txn_checks_follow_etcd() {
        let mut m = Mvcc::new();
        let dup = TxnRequest::default().and_then(vec![
            TxnOp::Put(PutRequest::new("a", "1")),
            TxnOp::Put(PutRequest::new("a", "2")),
        ]);
        assert!(matches!(
            m.execute(&WriteOp::Txn(dup)),
            Err(StoreError::DuplicateKey)
        ));
        let overlap = TxnRequest::default().and_then(vec![
            TxnOp::Put(PutRequest::new("a/1", "1")),
            TxnOp::Delete(DeleteRequest::prefix("a/")),
        ]);
        assert!(matches!(
            m.execute(&WriteOp::Txn(overlap)),
            Err(StoreError::DuplicateKey)
        ));
        let many = TxnRequest::default().and_then(
            (0..129)
                .map(|i| TxnOp::Put(PutRequest::new(format!("k{i}"), "v")))
                .collect(),
        );
        assert!(matches!(
            m.execute(&WriteOp::Txn(many)),
            Err(StoreError::TooManyOps { .. })
        ));
        let unleased = TxnRequest::default()
            .and_then(vec![TxnOp::Put(PutRequest::new("a", "1").with_lease(5))]);
        assert!(matches!(
            m.execute(&WriteOp::Txn(unleased)),
            Err(StoreError::LeaseNotFound(5))
        ));
        assert_eq!(m.revision(), 1);
    }

    #[test]
    fn events_follow_etcds_prev_kv_rule() {
        let mut m = Mvcc::new();
        put(&mut m, "a", "1"); // 2
        // One transaction deletes "a" (a from-key delete may overlap a put
        // in etcd) and creates it again: the creation has no previous value,
        // the deletion has the value before the transaction.
        let txn = TxnRequest::default().and_then(vec![
            TxnOp::Delete(DeleteRequest::new(KeyRange::from_key("a"))),
            TxnOp::Put(PutRequest::new("a", "2")),
        ]);
        exec(&mut m, WriteOp::Txn(txn));
        let (events, _) = m.events_since(3, &KeyRange::prefix(""), true, 10).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, EventKind::Delete);
        assert_eq!(events[0].prev_kv.as_ref().unwrap().mod_revision, 2);
        assert_eq!(events[1].kind, EventKind::Put);
        assert_eq!(events[1].prev_kv, None);
        // An update's previous value is the one before it.
        put(&mut m, "a", "3");
        let (events, _) = m.events_since(4, &KeyRange::prefix(""), true, 10).unwrap();
        assert_eq!(events[0].prev_kv.as_ref().unwrap().value, "2");
    }

    #[test]
    fn txn_checks_leases_before_read_revisions() {
        let mut m = Mvcc::new();
        let txn = TxnRequest::default().and_then(vec![
            TxnOp::Range(RangeRequest::key("a").at_revision(50)),
            TxnOp::Put(PutRequest::new("a", "1").with_lease(9)),
        ]);
        assert!(matches!(
            m.execute(&WriteOp::Txn(txn)),
            Err(StoreError::LeaseNotFound(9))
        ));
    }

    #[test]
    fn ranges_limit_count_and_bounds() {
        let mut m = Mvcc::new();
        for k in ["a", "b", "c", "d"] {
            put(&mut m, k, "v");
        }
        let r = m.read(&RangeRequest::prefix("").with_limit(2)).unwrap();
        assert_eq!((r.kvs.len(), r.count, r.more), (2, 4, true));
        let r = m.read(&RangeRequest::prefix("").count_only()).unwrap();
        assert_eq!((r.kvs.len(), r.count, r.more), (0, 4, false));
        let r = m
            .read(&RangeRequest::new(KeyRange::span("b", "d")))
            .unwrap();
        assert_eq!(r.count, 2);
        let r = m
            .read(&RangeRequest::new(KeyRange::span("d", "b")))
            .unwrap();
        assert_eq!(r.count, 0);
        let r = m
            .read(&RangeRequest::new(KeyRange::from_key("c")).keys_only())
            .unwrap();
        assert_eq!(r.count, 2);
        assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
        assert!(matches!(
            m.read(&RangeRequest::key("")),
            Err(StoreError::EmptyKey)
        ));
    }

    #[test]
    fn replaying_effects_rebuilds_the_same_state() {
        let mut live = Mvcc::new();
        let mut logged = Vec::new();
        exec(&mut live, WriteOp::LeaseGrant { ttl: 10, id: 3 });
        logged.push(Effect::LeaseGrant { id: 3, ttl: 10 });
        for op in [
            WriteOp::Put(PutRequest::new("a", "1")),
            WriteOp::Put(PutRequest::new("b", "1").with_lease(3)),
            WriteOp::Put(PutRequest::new("a", "2")),
            WriteOp::Delete(DeleteRequest::key("a")),
            WriteOp::Compact(4),
            WriteOp::Put(PutRequest::new("c", "1")),
        ] {
            logged.extend(exec(&mut live, op).effects);
        }
        let mut replayed = Mvcc::new();
        for e in &logged {
            replayed.apply(e);
        }
        replayed.make_visible();
        assert_eq!(format!("{live:?}"), format!("{replayed:?}"));
    }
}
