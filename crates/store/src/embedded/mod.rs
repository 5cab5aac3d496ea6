//! The embedded backend: one directory, no other process.
//!
//! Layout of the directory:
//! - `LOCK`: held (flock) while a process has the store open;
//! - `state.redb`: the checkpoint (see `checkpoint.rs`);
//! - `wal/`: the write-ahead log (see `wal.rs`).
//!
//! Opening loads the checkpoint into memory, replays the WAL frames written
//! after it, and starts three workers: the writer thread (the only mutator),
//! the checkpointer thread, and the lease expiry task.

mod checkpoint;
mod lessor;
mod mvcc;
mod wal;
mod watch;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tokio::sync::oneshot;

use self::checkpoint::{Applied, Checkpoint};
use self::lessor::Lessor;
use self::mvcc::{Effect, Mvcc, WriteOp, WriteResult};
use self::wal::{Wal, WalOptions};
use self::watch::WatchHub;
use self::writer::{Writer, WriterMsg};
use crate::Store;
use crate::error::{Result, StoreError};
use crate::types::*;

/// Tunables of the embedded store; the defaults suit production.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Size of each preallocated WAL segment.
    pub wal_segment_size: u64,
    /// How often the checkpointer copies new frames into `state.redb` (it
    /// also does when many are waiting). Each checkpoint flushes redb, which
    /// slows the WAL's flushes while it runs, so this is not frequent.
    pub checkpoint_interval: Duration,
    /// How often lease deadlines are checked.
    pub lease_check_interval: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            wal_segment_size: WalOptions::default().segment_size,
            checkpoint_interval: Duration::from_secs(10),
            lease_check_interval: Duration::from_millis(100),
        }
    }
}

/// The embedded store. Dropping it finishes the writes under way, writes a
/// last checkpoint and releases the directory.
pub struct EmbeddedStore {
    dir: PathBuf,
    state: Arc<RwLock<Mvcc>>,
    hub: Arc<WatchHub>,
    lessor: Arc<Lessor>,
    inbox: crossbeam_channel::Sender<WriterMsg>,
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    expiry: tokio::task::JoinHandle<()>,
    /// Held for the store's lifetime; the flock goes with it.
    _lock: File,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.dir)
            .finish()
    }
}

impl EmbeddedStore {
    /// Opens the store in `dir`, creating it if the directory is new or empty.
    pub async fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let runtime = tokio::runtime::Handle::current();
        let opened = {
            let dir = dir.clone();
            let options = options.clone();
            tokio::task::spawn_blocking(move || open_files(&dir, &options))
                .await
                .map_err(|e| StoreError::Closed(format!("opening the store panicked: {e}")))??
        };
        let Opened {
            lock,
            checkpoint,
            state,
            wal,
            replayed,
        } = opened;

        let now = Instant::now();
        let lessor = Arc::new(Lessor::default());
        for (id, ttl) in state.leases() {
            lessor.granted(id, ttl, now);
        }
        let visible = state.visible();
        let state = Arc::new(RwLock::new(state));
        let hub = WatchHub::new(Arc::clone(&state), visible, runtime.clone());

        let released = Arc::new(AtomicU64::new(0));
        let (frames_tx, frames_rx) = crossbeam_channel::unbounded();
        // Frames replayed from the WAL go to the checkpointer first, so the
        // WAL can shrink once they are in redb.
        for frame in replayed {
            let _ = frames_tx.send(frame);
        }
        let checkpointer = {
            let released = Arc::clone(&released);
            let interval = options.checkpoint_interval;
            std::thread::Builder::new()
                .name("store-checkpoint".into())
                .spawn(move || {
                    checkpoint::run_checkpointer(checkpoint, frames_rx, released, interval)
                })
                .map_err(|e| StoreError::io(&dir, e))?
        };

        let (inbox, inbox_rx) = crossbeam_channel::unbounded();
        let writer = Writer {
            inbox: inbox_rx,
            state: Arc::clone(&state),
            wal,
            hub: Arc::clone(&hub),
            lessor: Arc::clone(&lessor),
            checkpoints: frames_tx,
            released,
            next_lease_id: lease_id_seed(),
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::io(&dir, e))?;

        let expiry = runtime.spawn(expire_leases(
            Arc::clone(&lessor),
            inbox.clone(),
            options.lease_check_interval,
        ));

        tracing::info!(dir = %dir.display(), revision = visible, "embedded store open");
        Ok(Self {
            dir,
            state,
            hub,
            lessor,
            inbox,
            writer: Some(writer),
            checkpointer: Some(checkpointer),
            expiry,
            _lock: lock,
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn write(&self, op: WriteOp) -> Result<WriteResult> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(WriterMsg::Write { op, reply })
            .map_err(|_| StoreError::Closed("store shut down".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Closed("store shut down".into()))?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.expiry.abort();
        let _ = self.inbox.send(WriterMsg::Shutdown);
        // The writer drops its checkpoint sender when it ends, which lets the
        // checkpointer write its last frames and end too.
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        if let Some(checkpointer) = self.checkpointer.take() {
            let _ = checkpointer.join();
        }
        self.hub.close();
    }
}

/// Everything opening the files yields.
struct Opened {
    lock: File,
    checkpoint: Checkpoint,
    state: Mvcc,
    wal: Wal,
    replayed: Vec<Applied>,
}

fn open_files(dir: &Path, options: &EmbeddedOptions) -> Result<Opened> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let lock_path = dir.join("LOCK");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::io(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StoreError::Locked { path: lock_path });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&lock_path, e)),
    }

    let db_path = dir.join("state.redb");
    let wal_dir = dir.join("wal");
    let db_exists = db_path.exists();
    if !db_exists && wal_has_segments(&wal_dir)? {
        return Err(StoreError::Corrupt {
            path: db_path,
            detail: format!(
                "missing, but {} holds log segments; refusing to start from a partial store",
                wal_dir.display()
            ),
        });
    }
    let loaded = Checkpoint::load(&db_path, !db_exists)?;
    let mut state = loaded.state;
    let (wal, frames) = Wal::open(
        &wal_dir,
        loaded.applied_lsn,
        WalOptions {
            segment_size: options.wal_segment_size,
            ..WalOptions::default()
        },
    )?;

    // Replay through the same code the writer uses, so recovered and live
    // states cannot differ.
    let mut replayed = Vec::with_capacity(frames.len());
    for frame in frames {
        let effects: Vec<Effect> =
            postcard::from_bytes(&frame.payload).map_err(|e| StoreError::Corrupt {
                path: wal_dir.clone(),
                detail: format!("frame {} is undecodable: {e}", frame.lsn),
            })?;
        let mut pruned = Vec::new();
        for effect in &effects {
            match effect {
                Effect::Compact { rev } => pruned.extend(state.compact(*rev)),
                other => state.apply(other),
            }
        }
        replayed.push(Applied {
            lsn: frame.lsn,
            revision: state.revision(),
            effects: Arc::new(effects),
            pruned,
        });
    }
    state.make_visible();
    if !replayed.is_empty() {
        tracing::info!(frames = replayed.len(), "replayed write-ahead log");
    }
    Ok(Opened {
        lock,
        checkpoint: loaded.checkpoint,
        state,
        wal,
        replayed,
    })
}

fn wal_has_segments(wal_dir: &Path) -> Result<bool> {
    match std::fs::read_dir(wal_dir) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".wal"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io(wal_dir, e)),
    }
}

/// Lease identifiers start from the clock so that a store recreated in the
/// same directory does not hand out the identifiers of an earlier life.
fn lease_id_seed() -> LeaseId {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    ((nanos >> 8) as i64) & 0x3fff_ffff_ffff_ffff
}

/// Asks the writer to revoke leases past their deadline.
async fn expire_leases(
    lessor: Arc<Lessor>,
    inbox: crossbeam_channel::Sender<WriterMsg>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for id in lessor.due(Instant::now()) {
            if inbox.send(WriterMsg::Expire(id)).is_err() {
                return;
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.state.read().read(&req)
    }

    async fn put(&self, req: PutRequest) -> Result<PutResponse> {
        match self.write(WriteOp::Put(req)).await? {
            WriteResult::Put(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        match self.write(WriteOp::Delete(req)).await? {
            WriteResult::Delete(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        match self.write(WriteOp::Txn(req)).await? {
            WriteResult::Txn(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn watch(&self, req: WatchRequest) -> Result<WatchStream> {
        Ok(self.hub.watch(&req))
    }

    async fn compact(&self, revision: Revision) -> Result<CompactResponse> {
        match self.write(WriteOp::Compact(revision)).await? {
            WriteResult::Compact(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_grant(&self, ttl: i64, id: LeaseId) -> Result<LeaseGrant> {
        match self.write(WriteOp::LeaseGrant { ttl, id }).await? {
            WriteResult::LeaseGrant(grant) => Ok(grant),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<Revision> {
        match self.write(WriteOp::LeaseRevoke { id }).await? {
            WriteResult::LeaseRevoke(revision) => Ok(revision),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<i64> {
        let ttl = self
            .state
            .read()
            .lease(id)
            .map(|(ttl, _)| ttl)
            .ok_or(StoreError::LeaseNotFound(id))?;
        if !self.lessor.renew(id, ttl, Instant::now()) {
            return Err(StoreError::LeaseNotFound(id));
        }
        Ok(ttl)
    }

    async fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseInfo> {
        let (granted_ttl, keys) = self
            .state
            .read()
            .lease(id)
            .ok_or(StoreError::LeaseNotFound(id))?;
        let remaining = self
            .lessor
            .remaining(id, Instant::now())
            .ok_or(StoreError::LeaseNotFound(id))?;
        Ok(LeaseInfo {
            id,
            // Rounded up, as etcd reports it.
            remaining_ttl: remaining.as_secs() as i64 + i64::from(remaining.subsec_nanos() > 0),
            granted_ttl,
            keys,
        })
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.state.read().visible())
    }

    fn describe(&self) -> String {
        format!("embedded store at {}", self.dir.display())
    }
}

fn unexpected(result: WriteResult) -> StoreError {
    StoreError::Closed(format!(
        "writer answered with the wrong kind of result: {result:?}"
    ))
}
