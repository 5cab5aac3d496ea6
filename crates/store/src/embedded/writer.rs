//! The single writer thread and its group commit.
//!
//! Each turn of the loop takes every request waiting (up to a limit), so
//! callers that arrive while a flush is under way share the next one: with
//! one caller each write costs one flush of the WAL; with 64, one serves
//! dozens of writes. A turn:
//! 1. executes the requests in arrival order against the state; each sees the
//!    effects of the ones before it, but readers do not (they read at the
//!    visible revision);
//! 2. writes all their effects as one WAL frame and flushes it;
//! 3. makes the new revisions visible, hands the events to the watch hub and
//!    the frame to the checkpointer, applies any compaction, answers callers.
//!
//! If step 2 fails, the effects are undone and every caller of the turn gets
//! the error; nothing half-written is ever visible.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::RwLock;
use tokio::sync::oneshot;

use super::checkpoint::Applied;
use super::lessor::Lessor;
use super::mvcc::{Effect, Mvcc, WriteOp, WriteResult};
use super::wal::Wal;
use super::watch::WatchHub;
use crate::error::Result;
use crate::types::*;

/// How long the writer polls for the next request before it sleeps. Waking
/// a sleeping thread costs ~50 µs on these VMs, a quarter of a durable
/// write, and a caller that writes in a loop sends its next request within a
/// few tens of µs of its answer; so the writer stays awake that long.
const SPIN_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(100);

/// Most requests one turn takes.
const MAX_BATCH_OPS: usize = 1024;
/// Most request bytes one turn takes (one request may exceed it alone).
const MAX_BATCH_BYTES: usize = 8 << 20;

/// What the writer thread receives.
pub(crate) enum WriterMsg {
    /// A write to execute and answer.
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Result<WriteResult>>,
    },
    /// The lessor found this lease expired: revoke it unless it was renewed.
    Expire(LeaseId),
    /// Finish the current turn and stop.
    Shutdown,
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) inbox: crossbeam_channel::Receiver<WriterMsg>,
    pub(crate) state: Arc<RwLock<Mvcc>>,
    pub(crate) wal: Wal,
    pub(crate) hub: Arc<WatchHub>,
    pub(crate) lessor: Arc<Lessor>,
    pub(crate) checkpoints: crossbeam_channel::Sender<Applied>,
    /// The last WAL frame the checkpointer has made durable in redb.
    pub(crate) released: Arc<AtomicU64>,
    pub(crate) next_lease_id: LeaseId,
}

/// One request of a turn, and where its answer goes.
struct Pending {
    reply: Option<oneshot::Sender<Result<WriteResult>>>,
    outcome: Option<Result<WriteResult>>,
}

impl Writer {
    /// Runs until shut down or until every sender is gone.
    pub(crate) fn run(mut self) {
        let mut released_upto = 0;
        let mut stop = false;
        while !stop {
            let Some(first) = self.next_msg() else {
                break;
            };
            let mut batch = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    WriterMsg::Shutdown => {
                        stop = true;
                        break;
                    }
                    other => {
                        bytes += msg_size(&other);
                        batch.push(other);
                    }
                }
                if batch.len() < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES {
                    next = self.inbox.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.turn(batch);
            }
            let released = self.released.load(Ordering::Acquire);
            if released > released_upto {
                if let Err(e) = self.wal.release_through(released) {
                    tracing::warn!(error = %e, "could not delete old WAL segments");
                }
                released_upto = released;
            }
        }
        self.hub.close();
    }

    /// The next message: polled for a short while, then waited for.
    fn next_msg(&self) -> Option<WriterMsg> {
        let started = Instant::now();
        loop {
            match self.inbox.try_recv() {
                Ok(msg) => return Some(msg),
                Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
            if started.elapsed() >= SPIN_BEFORE_SLEEP {
                return self.inbox.recv().ok();
            }
            std::hint::spin_loop();
        }
    }

    fn turn(&mut self, batch: Vec<WriterMsg>) {
        let now = Instant::now();
        let mut pending = Vec::with_capacity(batch.len());
        let mut effects: Vec<Effect> = Vec::new();
        let mut compactions = Vec::new();
        let revision_before;
        {
            let state_lock = Arc::clone(&self.state);
            let mut state = state_lock.write();
            revision_before = state.revision();
            for msg in batch {
                let (op, reply) = match msg {
                    WriterMsg::Write { mut op, reply } => {
                        if let WriteOp::LeaseGrant { id, .. } = &mut op
                            && *id == 0
                        {
                            *id = self.new_lease_id(&state);
                        }
                        (op, Some(reply))
                    }
                    // A keep-alive may have come in since the lessor looked.
                    WriterMsg::Expire(id) if self.lessor.is_expired(id, now) => {
                        (WriteOp::LeaseRevoke { id }, None)
                    }
                    WriterMsg::Expire(_) | WriterMsg::Shutdown => continue,
                };
                let outcome = match state.execute(&op) {
                    Ok(done) => {
                        effects.extend(done.effects);
                        compactions.extend(done.compaction);
                        Ok(done.result)
                    }
                    Err(e) => Err(e),
                };
                pending.push(Pending {
                    reply,
                    outcome: Some(outcome),
                });
            }
        }

        if effects.is_empty() {
            answer(&mut pending);
            return;
        }
        let payload = postcard::to_stdvec(&effects).expect("encoding to a vec cannot fail");
        let lsn = match self.wal.append(&payload) {
            Ok(lsn) => lsn,
            Err(e) => {
                tracing::error!(error = %e, "WAL append failed; undoing the batch");
                self.state.write().undo(&effects, revision_before);
                for p in &mut pending {
                    p.outcome = Some(Err(e.duplicate()));
                }
                answer(&mut pending);
                return;
            }
        };

        // Durable: make it visible, collect its events before a compaction in
        // the same batch could prune them, then compact.
        let (events, pruned, revision) = {
            let mut state = self.state.write();
            state.make_visible();
            let revision = state.revision();
            let (events, _) = state
                .events_since(revision_before + 1, &KeyRange::prefix(""), true, usize::MAX)
                .unwrap_or_default();
            let pruned: Vec<(Revision, u32)> = compactions
                .iter()
                .flat_map(|rev| state.compact(*rev))
                .collect();
            (events, pruned, revision)
        };
        // Lease clocks start before callers hear of their grants, so a
        // keep-alive sent right after a grant finds its lease.
        for effect in &effects {
            match effect {
                Effect::LeaseGrant { id, ttl } => self.lessor.granted(*id, *ttl, now),
                Effect::LeaseRevoke { id, .. } => self.lessor.revoked(*id),
                _ => {}
            }
        }
        // Callers first: their writes are durable and visible, and the rest
        // of the turn does not change what they are told.
        answer(&mut pending);
        self.hub.publish(&events, revision);
        // A send fails only if the checkpointer is gone (shutting down); the
        // WAL still holds the frame, so nothing is lost.
        let _ = self.checkpoints.send(Applied {
            lsn,
            revision,
            effects: Arc::new(effects),
            pruned,
        });
    }

    /// A lease identifier no live lease has, positive like etcd's.
    fn new_lease_id(&mut self, state: &Mvcc) -> LeaseId {
        loop {
            self.next_lease_id = self.next_lease_id.wrapping_add(1) & i64::MAX;
            if self.next_lease_id != 0 && !state.has_lease(self.next_lease_id) {
                return self.next_lease_id;
            }
        }
    }
}

fn answer(pending: &mut [Pending]) {
    for p in pending {
        if let (Some(reply), Some(outcome)) = (p.reply.take(), p.outcome.take()) {
            // The caller may have given up waiting; its write stands anyway.
            let _ = reply.send(outcome);
        }
    }
}

/// Rough size of a request, to bound a turn's frame.
fn msg_size(msg: &WriterMsg) -> usize {
    let WriterMsg::Write { op, .. } = msg else {
        return 16;
    };
    let put = |p: &PutRequest| p.key.len() + p.value.len() + 32;
    match op {
        WriteOp::Put(p) => put(p),
        WriteOp::Txn(t) => t
            .success
            .iter()
            .chain(&t.failure)
            .map(|op| match op {
                TxnOp::Put(p) => put(p),
                _ => 32,
            })
            .sum(),
        _ => 32,
    }
}
