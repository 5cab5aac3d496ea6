//! The checkpoint: a redb database holding every version the in-memory state
//! holds, so the WAL can be trimmed and a restart does not replay history
//! from the beginning.
//!
//! The checkpointer thread receives what the writer made durable, in order,
//! and copies it into redb in one transaction per interval. Each transaction
//! records the last WAL frame it covers (`applied_lsn`); once it is committed,
//! the WAL may delete segments up to there. Copying is idempotent, so a
//! failed transaction is simply tried again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::mvcc::{Effect, Mvcc};
use crate::error::{Result, StoreError};
use crate::types::{LeaseId, Revision};

/// Every version, keyed by (revision, sub-revision).
const VERSIONS: TableDefinition<(i64, u32), &[u8]> = TableDefinition::new("versions");
/// Every live lease and its TTL.
const LEASES: TableDefinition<i64, i64> = TableDefinition::new("leases");
/// Format marker and positions.
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

/// Format of the tables above. Bump when they change incompatibly.
const FORMAT: i64 = 1;
const META_FORMAT: &str = "gantry-store-format";
const META_APPLIED_LSN: &str = "applied-lsn";
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// One stored version: a row of [`VERSIONS`].
#[derive(Serialize, Deserialize)]
struct StoredVersion {
    key: Bytes,
    /// `None` for a tombstone.
    value: Option<Bytes>,
    create_rev: Revision,
    version: i64,
    lease: LeaseId,
}

/// What the writer made durable in one WAL frame, for the checkpointer.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The WAL frame holding these effects.
    pub(crate) lsn: u64,
    /// The store's revision after them.
    pub(crate) revision: Revision,
    /// The effects, in order.
    pub(crate) effects: Arc<Vec<Effect>>,
    /// Versions a compaction in this frame removed, as (revision, sub).
    pub(crate) pruned: Vec<(Revision, u32)>,
}

/// The open checkpoint database.
pub(crate) struct Checkpoint {
    /// `None` after an I/O error: redb must be reopened before further use.
    db: Option<Database>,
    path: PathBuf,
}

/// What loading a checkpoint yields.
pub(crate) struct Loaded {
    pub(crate) checkpoint: Checkpoint,
    pub(crate) state: Mvcc,
    pub(crate) applied_lsn: u64,
}

impl Checkpoint {
    /// Opens (or, if `create`, creates) the database at `path` and loads it.
    /// A file that redb cannot read, that fails redb's integrity check, or that
    /// is not a Gantry store fails with [`StoreError::Corrupt`] naming it.
    pub(crate) fn load(path: &Path, create: bool) -> Result<Loaded> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.to_owned(),
            detail,
        };
        let mut builder = Database::builder();
        // The whole file is read at start anyway; checking it first turns a
        // damaged file into a clear error instead of a crash or silent loss.
        builder.set_check_integrity_on_open(true);
        let db = if create {
            builder.create(path)
        } else {
            builder.open(path)
        }
        .map_err(|e| match e {
            // redb says "not a redb database" as an InvalidData I/O error.
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() == std::io::ErrorKind::InvalidData =>
            {
                corrupt(format!("not a readable store database: {io}"))
            }
            redb::DatabaseError::Storage(redb::StorageError::Io(io)) => StoreError::io(path, io),
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                path: path.to_owned(),
            },
            other => corrupt(format!("not a readable store database: {other}")),
        })?;
        let mut checkpoint = Checkpoint {
            db: Some(db),
            path: path.to_owned(),
        };
        if create {
            checkpoint.initialize()?;
        }
        let (state, applied_lsn) = checkpoint.read_state()?;
        Ok(Loaded {
            checkpoint,
            state,
            applied_lsn,
        })
    }

    /// The database, reopened first if an earlier error closed it.
    fn db(&mut self) -> Result<&Database> {
        if self.db.is_none() {
            let db = Database::builder().open(&self.path).map_err(|e| match e {
                redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
                    StoreError::io(&self.path, io)
                }
                other => StoreError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(other.to_string()),
                },
            })?;
            self.db = Some(db);
        }
        Ok(self.db.as_ref().expect("opened above"))
    }

    fn initialize(&mut self) -> Result<()> {
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(META_FORMAT, FORMAT).map_err(|e| self.err(e))?;
            meta.insert(META_APPLIED_LSN, 0).map_err(|e| self.err(e))?;
            meta.insert(META_REVISION, 1).map_err(|e| self.err(e))?;
            meta.insert(META_COMPACTED, 0).map_err(|e| self.err(e))?;
            tx.open_table(VERSIONS).map_err(|e| self.err(e))?;
            tx.open_table(LEASES).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Rebuilds the in-memory state from the database.
    fn read_state(&mut self) -> Result<(Mvcc, u64)> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let corrupt = |detail: String| StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        };
        let meta = tx
            .open_table(META)
            .map_err(|_| corrupt("not a gantry store: it has no format marker".into()))?;
        let get = |name: &str| -> Result<i64> {
            meta.get(name)
                .map_err(|e| self.err(e))?
                .map(|v| v.value())
                .ok_or_else(|| corrupt(format!("not a gantry store: {name} is missing")))
        };
        let format = get(META_FORMAT)?;
        if format != FORMAT {
            return Err(corrupt(format!(
                "store format {format} is not the format {FORMAT} this gantry reads"
            )));
        }
        let applied_lsn = get(META_APPLIED_LSN)?;
        let revision = get(META_REVISION)?;
        let compacted = get(META_COMPACTED)?;

        let mut state = Mvcc::new();
        let leases = tx.open_table(LEASES).map_err(|e| self.err(e))?;
        for row in leases.iter().map_err(|e| self.err(e))? {
            let (id, ttl) = row.map_err(|e| self.err(e))?;
            state.apply(&Effect::LeaseGrant {
                id: id.value(),
                ttl: ttl.value(),
            });
        }
        let versions = tx.open_table(VERSIONS).map_err(|e| self.err(e))?;
        for row in versions.iter().map_err(|e| self.err(e))? {
            let (at, bytes) = row.map_err(|e| self.err(e))?;
            let (rev, sub) = at.value();
            let stored: StoredVersion = postcard::from_bytes(bytes.value()).map_err(|e| {
                corrupt(format!(
                    "version at revision {rev}.{sub} is undecodable: {e}"
                ))
            })?;
            state.apply(&match stored.value {
                Some(value) => Effect::Put {
                    rev,
                    sub,
                    key: stored.key,
                    value,
                    create_rev: stored.create_rev,
                    version: stored.version,
                    lease: stored.lease,
                },
                None => Effect::Tombstone {
                    rev,
                    sub,
                    key: stored.key,
                },
            });
        }
        state.restore_marks(revision, compacted);
        Ok((state, applied_lsn as u64))
    }

    /// Copies a run of durable frames into the database in one durable
    /// transaction.
    pub(crate) fn write(&mut self, frames: &[Applied]) -> Result<()> {
        let Some(last) = frames.last() else {
            return Ok(());
        };
        let mut tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        // Checkpoints are rare, so the safer two-phase commit costs nothing
        // that matters, and quick repair keeps reopening after a crash fast.
        tx.set_two_phase_commit(true);
        tx.set_quick_repair(true);
        {
            let mut versions = tx.open_table(VERSIONS).map_err(|e| self.err(e))?;
            let mut leases = tx.open_table(LEASES).map_err(|e| self.err(e))?;
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            for frame in frames {
                for effect in frame.effects.iter() {
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
                            let row = encode(&StoredVersion {
                                key: key.clone(),
                                value: Some(value.clone()),
                                create_rev: *create_rev,
                                version: *version,
                                lease: *lease,
                            });
                            versions
                                .insert((*rev, *sub), &row[..])
                                .map_err(|e| self.err(e))?;
                        }
                        Effect::Tombstone { rev, sub, key } => {
                            let row = encode(&StoredVersion {
                                key: key.clone(),
                                value: None,
                                create_rev: 0,
                                version: 0,
                                lease: 0,
                            });
                            versions
                                .insert((*rev, *sub), &row[..])
                                .map_err(|e| self.err(e))?;
                        }
                        Effect::LeaseGrant { id, ttl } => {
                            leases.insert(*id, *ttl).map_err(|e| self.err(e))?;
                        }
                        Effect::LeaseRevoke { id, .. } => {
                            leases.remove(*id).map_err(|e| self.err(e))?;
                        }
                        Effect::Compact { rev } => {
                            meta.insert(META_COMPACTED, *rev).map_err(|e| self.err(e))?;
                        }
                    }
                }
                // Pruned versions may have been inserted by this very frame,
                // so they are removed after its effects.
                for at in &frame.pruned {
                    versions.remove(*at).map_err(|e| self.err(e))?;
                }
            }
            meta.insert(META_APPLIED_LSN, last.lsn as i64)
                .map_err(|e| self.err(e))?;
            meta.insert(META_REVISION, last.revision)
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Wraps any redb error with the database's path.
    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        match e.into() {
            redb::Error::Io(io) => StoreError::io(&self.path, io),
            redb::Error::Corrupted(detail) => StoreError::Corrupt {
                path: self.path.clone(),
                detail,
            },
            other => StoreError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

fn encode(v: &StoredVersion) -> Vec<u8> {
    postcard::to_stdvec(v).expect("encoding to a vec cannot fail")
}

/// Effects pending in memory that trigger a checkpoint before the interval
/// is up, bounding both the checkpointer's memory and the replay at start.
const MAX_PENDING_EFFECTS: usize = 65_536;

/// Runs the checkpointer thread until the writer drops its sender: collects
/// frames for `interval` (or until [`MAX_PENDING_EFFECTS`] are waiting),
/// writes them, publishes the covered LSN through `released`. A failed write is retried (reopening the database, which redb
/// requires after an I/O error) without losing frames, since the WAL still
/// holds them.
pub(crate) fn run_checkpointer(
    mut checkpoint: Checkpoint,
    frames: crossbeam_channel::Receiver<Applied>,
    released: Arc<AtomicU64>,
    interval: Duration,
) {
    let mut pending: Vec<Applied> = Vec::new();
    let mut pending_effects = 0;
    let mut open = true;
    // When to write what is pending: an interval after the first frame of
    // the run arrived, or a second after a failed attempt.
    let mut due: Option<Instant> = None;
    while open || !pending.is_empty() {
        while open && pending_effects < MAX_PENDING_EFFECTS {
            let got = match due {
                // Nothing pending: sleep until the writer sends something.
                None => frames
                    .recv()
                    .map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
                Some(at) => frames.recv_deadline(at),
            };
            match got {
                Ok(frame) => {
                    pending_effects += frame.effects.len();
                    pending.push(frame);
                    due.get_or_insert_with(|| Instant::now() + interval);
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => break,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => open = false,
            }
        }
        if pending.is_empty() {
            continue;
        }
        match checkpoint.write(&pending) {
            Ok(()) => {
                let lsn = pending.last().map_or(0, |f| f.lsn);
                released.store(lsn, Ordering::Release);
                pending.clear();
                pending_effects = 0;
                due = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpoint failed; the WAL keeps the data, retrying in 1s");
                if !open {
                    // Shutting down: the WAL replays these frames at the next start.
                    return;
                }
                // After an I/O error redb must be reopened; dropping the
                // handle makes the next attempt do that. Frames keep queueing
                // in the channel meanwhile.
                checkpoint.db = None;
                std::thread::sleep(Duration::from_secs(1));
                due = Some(Instant::now());
            }
        }
    }
}
