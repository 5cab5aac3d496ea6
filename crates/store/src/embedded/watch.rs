//! The watch hub: delivers every change, in revision order, to each watcher.
//!
//! A watcher is in one of two states:
//! - *synced*: it has everything up to the last published revision; the
//!   writer hands it new events directly, without waiting (`try_send`).
//! - *catching up*: it is behind (it started at an old revision, or its queue
//!   was full when the writer published). A task of its own reads the event
//!   log from the watcher's next revision and sends at the pace the watcher
//!   reads, then marks it synced again.
//!
//! So a slow watcher never blocks the writer and never misses an event: at
//! worst it falls behind the compaction point and gets `Compacted`, as in
//! etcd. A watcher never receives a revision twice: events below its next
//! revision are filtered out, which covers the moment when a catch-up task
//! has read a batch from the log that the writer has not published yet.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use super::mvcc::{Mvcc, event_for};
use crate::error::{Result, StoreError};
use crate::types::*;

/// Responses queued per watcher before it is considered lagging.
const QUEUE: usize = 64;
/// Events a catch-up task reads from the log at a time.
const CATCH_UP_BATCH: usize = 512;

struct Watcher {
    range: KeyRange,
    prev_kv: bool,
    /// The first revision this watcher has not been sent yet.
    next_rev: Revision,
    tx: mpsc::Sender<Result<WatchResponse>>,
    synced: bool,
}

struct HubInner {
    watchers: HashMap<u64, Watcher>,
    next_id: u64,
    /// The last revision the writer published.
    published: Revision,
    closed: bool,
}

/// All watchers of one embedded store.
pub(crate) struct WatchHub {
    state: Arc<RwLock<Mvcc>>,
    inner: Mutex<HubInner>,
    runtime: tokio::runtime::Handle,
}

impl WatchHub {
    /// A hub for a store whose state is already visible up to `published`.
    pub(crate) fn new(
        state: Arc<RwLock<Mvcc>>,
        published: Revision,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Self> {
        Arc::new(Self {
            state,
            inner: Mutex::new(HubInner {
                watchers: HashMap::new(),
                next_id: 0,
                published,
                closed: false,
            }),
            runtime,
        })
    }

    /// Registers a watcher and returns its stream.
    pub(crate) fn watch(self: &Arc<Self>, req: &WatchRequest) -> WatchStream {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut inner = self.inner.lock();
        if inner.closed {
            let _ = tx.try_send(Err(StoreError::Closed("store shut down".into())));
            return WatchStream::new(rx);
        }
        // "Now" is the visible revision, which the writer may not have
        // published yet (it answers callers first); events up to it are then
        // filtered out of that publication by the watcher's next revision.
        let (visible, compacted) = {
            let state = self.state.read();
            (state.visible(), state.compacted())
        };
        let start = if req.start_revision <= 0 {
            visible + 1
        } else {
            req.start_revision
        };
        if start < compacted {
            let _ = tx.try_send(Err(StoreError::Compacted {
                requested: start,
                compacted: Some(compacted),
            }));
            return WatchStream::new(rx);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let synced = start > inner.published;
        inner.watchers.insert(
            id,
            Watcher {
                range: req.range.clone(),
                prev_kv: req.prev_kv,
                next_rev: start,
                tx,
                synced,
            },
        );
        drop(inner);
        if !synced {
            self.spawn_catch_up(id);
        }
        WatchStream::new(rx)
    }

    /// Hands the events of a batch that just became visible (revisions up to
    /// `revision`, in order) to every synced watcher. Called by the writer;
    /// never blocks.
    pub(crate) fn publish(self: &Arc<Self>, events: &[Event], revision: Revision) {
        let mut inner = self.inner.lock();
        inner.published = revision;
        let mut lagging = Vec::new();
        let mut gone = Vec::new();
        for (id, w) in inner.watchers.iter_mut().filter(|(_, w)| w.synced) {
            let batch: Vec<Event> = events
                .iter()
                .filter(|e| e.kv.mod_revision >= w.next_rev && w.range.contains(&e.kv.key))
                .map(|e| event_for(e, w.prev_kv))
                .collect();
            if batch.is_empty() {
                if w.tx.is_closed() {
                    gone.push(*id);
                }
                w.next_rev = w.next_rev.max(revision + 1);
                continue;
            }
            match w.tx.try_send(Ok(WatchResponse {
                revision,
                events: batch,
            })) {
                Ok(()) => w.next_rev = w.next_rev.max(revision + 1),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    w.synced = false;
                    lagging.push(*id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        for id in gone {
            inner.watchers.remove(&id);
        }
        drop(inner);
        for id in lagging {
            self.spawn_catch_up(id);
        }
    }

    /// Ends every watch with an error saying the store shut down.
    pub(crate) fn close(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        for (_, w) in inner.watchers.drain() {
            let _ =
                w.tx.try_send(Err(StoreError::Closed("store shut down".into())));
        }
    }

    fn spawn_catch_up(self: &Arc<Self>, id: u64) {
        let hub = Arc::clone(self);
        self.runtime.spawn(async move { hub.catch_up(id).await });
    }

    /// Feeds a lagging watcher from the event log until it is synced.
    async fn catch_up(&self, id: u64) {
        loop {
            let (range, prev_kv, next, tx) = {
                let inner = self.inner.lock();
                let Some(w) = inner.watchers.get(&id) else {
                    return;
                };
                (w.range.clone(), w.prev_kv, w.next_rev, w.tx.clone())
            };
            let read = {
                let state = self.state.read();
                state
                    .events_since(next, &range, prev_kv, CATCH_UP_BATCH)
                    .map(|(events, last)| (events, last, state.visible()))
            };
            let last = match read {
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    self.inner.lock().watchers.remove(&id);
                    return;
                }
                Ok((events, last, visible)) => {
                    if !events.is_empty()
                        && tx
                            .send(Ok(WatchResponse {
                                revision: visible,
                                events,
                            }))
                            .await
                            .is_err()
                    {
                        self.inner.lock().watchers.remove(&id);
                        return;
                    }
                    last
                }
            };
            let mut inner = self.inner.lock();
            let published = inner.published;
            let Some(w) = inner.watchers.get_mut(&id) else {
                return;
            };
            w.next_rev = w.next_rev.max(last + 1);
            if w.next_rev > published {
                w.synced = true;
                return;
            }
        }
    }
}
