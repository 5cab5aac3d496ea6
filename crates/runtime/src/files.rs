//! The files of a container directory and how they are written.
//!
//! Everything the runtime knows about a container is in `DATA/containers/<id>/`, so that a
//! new `Runtime` (after an agent restart) finds it again with no memory of its own. Files
//! that another process reads while they change are written whole to a temporary name and
//! renamed into place, so a reader sees either the old or the new version, never half.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{IoContext, Result};

/// The OCI bundle's configuration, read by runc.
pub(crate) const CONFIG: &str = "config.json";
/// Mount point of the container's root file system (the overlay).
pub(crate) const ROOTFS: &str = "rootfs";
/// The overlay's upper and work directories.
pub(crate) const UPPER: &str = "upper";
pub(crate) const WORK: &str = "work";
/// What the agent asked for: labels, times, paths ([`RecordFile`]).
pub(crate) const RECORD: &str = "record.json";
/// What the shim needs to know ([`ShimConfig`]).
pub(crate) const SHIM_CONFIG: &str = "shim.json";
/// Locked by the shim for as long as it lives; see `lock.rs`.
pub(crate) const SHIM_LOCK: &str = "shim.lock";
/// The shim's own standard error, for diagnosing a shim that failed.
pub(crate) const SHIM_LOG: &str = "shim.log";
/// runc's log (`--log`, JSON lines); its last error is the message surfaced on failure.
pub(crate) const RUNC_LOG: &str = "runc.log";
/// The container's init process id, written by `runc create --pid-file`.
pub(crate) const INIT_PID: &str = "init.pid";
/// Written by the shim once `runc start` succeeded ([`StartedFile`]).
pub(crate) const STARTED: &str = "started.json";
/// Written by the shim when the container's init process exited ([`ExitFile`]).
pub(crate) const EXIT: &str = "exit.json";
/// The shim's socket: start, attach.
pub(crate) const ATTACH_SOCKET: &str = "attach.sock";
/// The socket runc hands a tty's master to (`--console-socket`).
pub(crate) const CONSOLE_SOCKET: &str = "console.sock";

/// `record.json`: what the agent stored about a container when it made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecordFile {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub log_path: PathBuf,
    pub pod_uid: String,
    /// The cgroup path relative to every hierarchy's root (`/<parent>/pod<uid>/<id>`).
    pub cgroup_path: String,
}

/// `shim.json`: the shim's instructions, written before it starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShimConfig {
    pub id: String,
    pub runc: PathBuf,
    pub runc_root: PathBuf,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub log_path: PathBuf,
    pub log_max_bytes: u64,
    /// Where the OOM kill count is read when the container exits: the memory cgroup's
    /// `memory.oom_control` (v1) or `memory.events` (v2); `None` without a memory cgroup.
    pub oom_file: Option<PathBuf>,
    /// The v1 memory cgroup's `memory.force_empty`, written before `runc delete` removes the
    /// cgroup (see `cgroups::release_memory`); `None` without a v1 memory cgroup.
    #[serde(default)]
    pub force_empty: Option<PathBuf>,
    /// Start the process at once (`runc run --detach`) instead of waiting for a `start`
    /// request after `runc create`.
    #[serde(default)]
    pub run: bool,
}

/// `started.json`: the container's process is running since `started_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StartedFile {
    pub pid: i32,
    pub started_at: DateTime<Utc>,
}

/// `exit.json`: how the container's init process ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExitFile {
    /// The exit code, or 128 + the signal that killed it (as Kubernetes reports).
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub oom_killed: bool,
}

/// Reads and parses a JSON file.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| crate::RuntimeError::Io {
        context: format!("parse {}", path.display()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// Reads a JSON file that may not exist yet.
pub(crate) fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::metadata(path) {
        Ok(_) => read_json(path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("stat {}", path.display())),
    }
}

/// Writes `value` as JSON to `path` atomically: a temporary file in the same directory,
/// renamed over `path`, so a reader (or a process killed midway) sees the old file or the
/// new one, never a part. Nothing is flushed to disk: these records describe processes,
/// and a crash of the machine that could lose them ends those processes too.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("plain structs serialize");
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically (see [`write_json_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = File::create(&tmp).context(|| format!("create {}", tmp.display()))?;
    file.write_all(bytes)
        .context(|| format!("write {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path)
        .context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
