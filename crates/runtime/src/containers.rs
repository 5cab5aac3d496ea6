//! Containers: create (rootfs, bundle, shim, `runc create`), start, status, kill, remove.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::{IoContext, Result, RuntimeError};
use crate::files::{self, ExitFile, RecordFile, ShimConfig, StartedFile};
use crate::logs::{LogOptions, LogReader};
use crate::mounts::{mount_overlay, remove_unmounted_dir, unmount_all};
use crate::protocol::{self, Created, Reply, Request};
use crate::spec::{self, ContainerSpec, HostFacts, oci_config};
use crate::user::{read_in_root, resolve};
use crate::{Runtime, cgroups, lock, sandbox, shim, targets};

/// Where a container is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerStatus {
    /// `runc create` succeeded; the process waits for `start_container`.
    Created,
    /// The container's process runs.
    Running {
        /// Its pid on the host.
        pid: i32,
        /// When `runc start` returned.
        started_at: SystemTime,
    },
    /// The container's process ended; this is final.
    Exited {
        /// The exit code, or 128 + the signal that killed it.
        exit_code: i32,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// When it started, if it ever did.
        started_at: Option<SystemTime>,
        /// When the shim saw it end.
        finished_at: SystemTime,
        /// The kernel's OOM killer killed a process of the container.
        oom_killed: bool,
    },
    /// The shim is gone without recording an exit (killed, or the machine is in trouble).
    Unknown(String),
}

/// What `list_containers` reports of a container on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    /// The container's id.
    pub id: String,
    /// The labels given at creation.
    pub labels: BTreeMap<String, String>,
    /// When it was created.
    pub created_at: SystemTime,
    /// Its log file.
    pub log_path: PathBuf,
}

impl From<RecordFile> for ContainerRecord {
    fn from(r: RecordFile) -> Self {
        ContainerRecord {
            id: r.id,
            labels: r.labels,
            created_at: r.created_at.into(),
            log_path: r.log_path,
        }
    }
}

/// runc's rule for ids (`^[\w+-\.]+$`, not `.` or `..`), and short enough for paths.
pub(crate) fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.to_owned()))
    }
}

/// Every device node under `/dev`, for privileged containers (as containerd's
/// `WithHostDevices`); the pseudo-file systems runc mounts itself are skipped.
fn host_devices() -> Vec<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut devices = Vec::new();
    let mut dirs = vec![PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                let skip = ["/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd"];
                if !skip.iter().any(|s| path == Path::new(s))
                    && !entry.file_name().as_bytes().starts_with(b".")
                {
                    dirs.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            if path == Path::new("/dev/console") {
                continue;
            }
            let rdev = meta.rdev();
            let built = LinuxDeviceBuilder::default()
                .path(path)
                .typ(typ)
                .major(nix::sys::stat::major(rdev) as i64)
                .minor(nix::sys::stat::minor(rdev) as i64)
                .file_mode(meta.mode() & 0o7777)
                .uid(meta.uid())
                .gid(meta.gid())
                .build();
            if let Ok(d) = built {
                devices.push(d);
            }
        }
    }
    devices
}

/// This process's capability bounding set, from `/proc/self/status`.
fn bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// Parses runc's output (its JSON log lines or plain text) for its error message.
pub(crate) fn runc_message(text: &str) -> Option<String> {
    let mut message = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if matches!(v["level"].as_str(), Some("error" | "fatal")) => {
                message = v["msg"].as_str().map(str::to_owned);
            }
            Ok(_) => {}
            Err(_) if message.is_none() => message = Some(line.to_owned()),
            Err(_) => {}
        }
    }
    message
}

/// Connects to a unix socket in `dir`, going through `/proc/self/fd` when the full path is
/// longer than a socket address holds.
pub(crate) async fn connect(dir: &Path, name: &str) -> std::io::Result<UnixStream> {
    let path = dir.join(name);
    if path.as_os_str().len() < 100 {
        return UnixStream::connect(&path).await;
    }
    let dir_fd = std::fs::File::open(dir)?;
    let short = format!(
        "/proc/self/fd/{}/{name}",
        std::os::fd::AsRawFd::as_raw_fd(&dir_fd)
    );
    let stream = UnixStream::connect(&short).await;
    drop(dir_fd);
    stream
}

impl Runtime {
    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.config.root.join(id)
    }

    pub(crate) fn existing_dir(&self, id: &str) -> Result<PathBuf> {
        check_id(id)?;
        let dir = self.container_dir(id);
        if dir.join(files::RECORD).exists() {
            Ok(dir)
        } else {
            Err(RuntimeError::NotFound(id.to_owned()))
        }
    }

    /// Creates a container: mounts its rootfs (an overlay of `spec.layers` over a new upper
    /// directory), writes config.json, starts its shim, which runs `runc create`. On success
    /// the container is `Created`; on failure nothing is left, and runc's refusal comes back
    /// as [`RuntimeError::Runc`] with its message (the agent's RunContainerError; errors
    /// before runc are its CreateContainerError).
    pub async fn create_container(&self, spec: ContainerSpec) -> Result<ContainerRecord> {
        self.prepare(spec, false).await?.start().await
    }

    /// Creates and starts a container in one runc process (`runc run --detach`): the
    /// same as `create_container` then `start_container`, one runc start-up (~10 ms)
    /// quicker. runc's error is returned as [`RuntimeError::Runc`] with op `run`, whether
    /// creating or starting failed (the agent's RunContainerError either way).
    pub async fn run_container(&self, spec: ContainerSpec) -> Result<ContainerRecord> {
        self.prepare_run(spec).await?.start().await
    }

    /// The first half of [`Runtime::run_container`]: the rootfs, the bundle and a shim
    /// waiting to run it. Nothing of the container runs until [`PreparedContainer::start`],
    /// so the caller may finish what the process must find (the pod's network, say) in the
    /// meantime. An error here comes before runc: nothing is left.
    pub async fn prepare_run(&self, spec: ContainerSpec) -> Result<PreparedContainer> {
        self.prepare(spec, true).await
    }

    async fn prepare(&self, spec: ContainerSpec, run: bool) -> Result<PreparedContainer> {
        check_id(&spec.id)?;
        sandbox::check_pod_uid(&spec.sandbox.pod_uid)?;
        if spec.log_path.as_os_str().is_empty() {
            return Err(RuntimeError::InvalidSpec {
                id: spec.id.clone(),
                message: "no log path".to_owned(),
            });
        }
        if spec.layers.is_empty() {
            return Err(RuntimeError::InvalidSpec {
                id: spec.id.clone(),
                message: "no image layers".to_owned(),
            });
        }
        let dir = self.container_dir(&spec.id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::AlreadyExists(spec.id.clone()));
            }
            Err(e) => return Err(e).context(|| format!("create {}", dir.display())),
        }
        // runc will move the container's process into its cgroup; the grace period that
        // move would wait for passes beside the shim and the bundle instead (see
        // `cgroups::prime_migration`).
        cgroups::prime_migration();
        let cgroup_path = format!(
            "/{}/pod{}/{}",
            self.config.cgroup_parent.trim_matches('/'),
            spec.sandbox.pod_uid,
            spec.id
        );
        let record = RecordFile {
            id: spec.id.clone(),
            labels: spec.labels.clone(),
            created_at: Utc::now(),
            log_path: spec.log_path.clone(),
            pod_uid: spec.sandbox.pod_uid.clone(),
            cgroup_path: cgroup_path.clone(),
        };
        // The record comes first: from here on the directory is a container that
        // `list_containers` reports and `remove_container` can clean up.
        let made = async {
            files::write_json_atomic(&dir.join(files::RECORD), &record)?;
            // The shim starts now and waits on its stdin while the bundle is prepared.
            // Spawning it blocks the spawning thread until the child has exec'd the
            // large binary (~1 ms), so a blocking thread does that beside the bundle.
            let spawning = {
                let (runtime, dir, id) = (self.clone(), dir.clone(), spec.id.clone());
                tokio::task::spawn_blocking(move || runtime.spawn_shim(&dir, &id))
            };
            let bundled = self.prepare_bundle(&dir, &spec, &cgroup_path, run);
            let spawned = spawning
                .await
                .map_err(|e| RuntimeError::Shim {
                    id: spec.id.clone(),
                    message: format!("start the shim: {e}"),
                })
                .and_then(|shim| shim);
            // The bundle's error comes first; a shim already started is dropped
            // with it: its stdin closes and it exits.
            bundled?;
            spawned
        }
        .await;
        match made {
            Ok(shim) => Ok(PreparedContainer {
                runtime: self.clone(),
                record: record.into(),
                shim,
                run,
            }),
            Err(e) => {
                self.discard(&spec.id).await;
                Err(e)
            }
        }
    }

    /// Removes what a failed or abandoned start left of container `id`.
    async fn discard(&self, id: &str) {
        if let Err(cleanup) = self.remove_container(id).await {
            tracing::warn!(%id, error = %cleanup, "cleaning up a failed container");
        }
    }

    fn prepare_bundle(
        &self,
        dir: &Path,
        spec: &ContainerSpec,
        cgroup_path: &str,
        run: bool,
    ) -> Result<()> {
        let (rootfs, upper, work) = (
            dir.join(files::ROOTFS),
            dir.join(files::UPPER),
            dir.join(files::WORK),
        );
        for d in [&rootfs, &upper, &work] {
            std::fs::create_dir(d).context(|| format!("create {}", d.display()))?;
        }
        let invalid = |message: String| RuntimeError::InvalidSpec {
            id: spec.id.clone(),
            message,
        };
        // The mounts' destinations the image lacks come in a layer of their own, made
        // once, rather than copied up by runc into every container's upper directory.
        let wanted = targets::wanted(&spec::mounts(spec).map_err(invalid)?);
        let layers = match targets::layer(&self.config.state_dir, &spec.layers, &wanted)? {
            Some(extra) => std::iter::once(extra)
                .chain(spec.layers.iter().cloned())
                .collect(),
            None => spec.layers.clone(),
        };
        mount_overlay(&layers, &upper, &work, &rootfs)?;
        let passwd = read_in_root(&rootfs, "/etc/passwd");
        let group = read_in_root(&rootfs, "/etc/group");
        let user = resolve(&spec.user, &passwd, &group).map_err(invalid)?;
        let hierarchies = cgroups::hierarchies()?;
        let memory = cgroups::memory_v1_hierarchy(hierarchies);
        let facts = HostFacts {
            user,
            cgroup_path: cgroup_path.to_owned(),
            host_devices: if spec.privileged {
                host_devices()
            } else {
                Vec::new()
            },
            swap_limit: memory
                .is_some_and(|h| h.mount_point.join("memory.memsw.limit_in_bytes").exists()),
            host_caps: bounding_set(),
            nofile: nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map(|(_, hard)| hard.min(1 << 20))
                .unwrap_or(1024),
        };
        let config = oci_config(spec, &facts).map_err(invalid)?;
        let json = serde_json::to_vec_pretty(&config).expect("the OCI spec serializes");
        files::write_atomic(&dir.join(files::CONFIG), &json)?;
        let shim = ShimConfig {
            id: spec.id.clone(),
            runc: self.config.runc.clone(),
            runc_root: self.runc_root(),
            tty: spec.tty,
            stdin: spec.stdin,
            stdin_once: spec.stdin_once,
            log_path: spec.log_path.clone(),
            log_max_bytes: spec.log_max_bytes,
            oom_file: cgroups::oom_file(hierarchies, cgroup_path),
            force_empty: cgroups::force_empty_file(hierarchies, cgroup_path),
            run,
        };
        files::write_json_atomic(&dir.join(files::SHIM_CONFIG), &shim)
    }

    pub(crate) fn runc_root(&self) -> PathBuf {
        let root = self.config.state_dir.join("runc");
        std::path::absolute(&root).unwrap_or(root)
    }

    /// Starts the container's shim, which detaches and then waits for [`PendingShim::go`]
    /// before it reads anything of the container's directory. Dropping the
    /// [`PendingShim`] instead closes its stdin, and the shim exits having done nothing.
    fn spawn_shim(&self, dir: &Path, id: &str) -> Result<PendingShim> {
        let (program, args) = self
            .config
            .shim
            .split_first()
            .expect("checked in Runtime::new");
        let log_path = dir.join(files::SHIM_LOG);
        let log = std::fs::File::create(&log_path)
            .context(|| format!("create {}", log_path.display()))?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .arg(std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()))
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        // No `pre_exec`: the shim detaches itself (`shim::detach`), so the standard
        // library spawns it with posix_spawn, without copying the agent's address space
        // (a fork of the agent costs ~1.5 ms of every container start).
        let mut child = command.spawn().map_err(|e| RuntimeError::Shim {
            id: id.to_owned(),
            message: format!("start {}: {e}", program.to_string_lossy()),
        })?;
        Ok(PendingShim {
            id: id.to_owned(),
            stdin: child.stdin.take().expect("stdin is piped"),
            stdout: child.stdout.take().expect("stdout is piped"),
            child,
            log_path,
        })
    }

    /// Sends one request to the container's shim and reads its reply.
    async fn shim_request(
        &self,
        id: &str,
        dir: &Path,
        request: &Request,
    ) -> Result<(UnixStream, Reply)> {
        let mut conn = connect(dir, files::ATTACH_SOCKET)
            .await
            .map_err(|_| RuntimeError::NotRunning(id.to_owned()))?;
        let mut line = serde_json::to_vec(request).expect("plain enum serializes");
        line.push(b'\n');
        let shim_err = |e: std::io::Error| RuntimeError::Shim {
            id: id.to_owned(),
            message: e.to_string(),
        };
        conn.write_all(&line).await.map_err(shim_err)?;
        let reply = protocol::read_line(&mut conn).await.map_err(shim_err)?;
        let reply: Reply = serde_json::from_str(&reply).map_err(|e| RuntimeError::Shim {
            id: id.to_owned(),
            message: format!("bad reply {reply:?}: {e}"),
        })?;
        Ok((conn, reply))
    }

    pub(crate) async fn connect_shim(
        &self,
        id: &str,
        request: &Request,
    ) -> Result<(UnixStream, Reply)> {
        let dir = self.existing_dir(id)?;
        self.shim_request(id, &dir, request).await
    }

    /// Starts a created container (`runc start`, through its shim); returns once the
    /// process runs. runc's error (e.g. the command cannot be executed) is returned as
    /// [`RuntimeError::Runc`] (the agent's RunContainerError).
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let dir = self.existing_dir(id)?;
        if dir.join(files::EXIT).exists() {
            return Err(RuntimeError::NotRunning(id.to_owned()));
        }
        let (_, reply) = self.shim_request(id, &dir, &Request::Start).await?;
        match reply.error {
            None => Ok(()),
            Some(message) => Err(RuntimeError::Runc {
                op: "start",
                id: id.to_owned(),
                message,
            }),
        }
    }

    /// The container's status, from its files and whether its shim lives.
    pub fn status(&self, id: &str) -> Result<ContainerStatus> {
        let dir = self.existing_dir(id)?;
        if let Some(exit) = files::read_json_opt::<ExitFile>(&dir.join(files::EXIT))? {
            return Ok(exited(exit));
        }
        if lock::holder(&dir.join(files::SHIM_LOCK)).is_some() {
            return Ok(
                match files::read_json_opt::<StartedFile>(&dir.join(files::STARTED))? {
                    Some(s) => ContainerStatus::Running {
                        pid: s.pid,
                        started_at: s.started_at.into(),
                    },
                    None => ContainerStatus::Created,
                },
            );
        }
        // The shim may have written exit.json and exited between the two looks.
        if let Some(exit) = files::read_json_opt::<ExitFile>(&dir.join(files::EXIT))? {
            return Ok(exited(exit));
        }
        Ok(ContainerStatus::Unknown(format!(
            "the shim of container {id} is gone without recording an exit"
        )))
    }

    /// Sends `signal` to the container's init process (`runc kill`). A container that has
    /// already exited is not an error.
    pub async fn kill(&self, id: &str, signal: Signal) -> Result<()> {
        let dir = self.existing_dir(id)?;
        if dir.join(files::EXIT).exists() {
            return Ok(());
        }
        let signum = (signal as i32).to_string();
        match self.runc(&["kill", id, &signum]).await {
            Ok(()) => Ok(()),
            Err(_) if dir.join(files::EXIT).exists() => Ok(()),
            Err(message) => Err(RuntimeError::Runc {
                op: "kill",
                id: id.to_owned(),
                message,
            }),
        }
    }

    /// Runs a runc command to its end; runc's message on failure.
    pub(crate) async fn runc(&self, args: &[&str]) -> std::result::Result<(), String> {
        let output = tokio::process::Command::new(&self.config.runc)
            .arg("--root")
            .arg(self.runc_root())
            .arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("run {}: {e}", self.config.runc.display()))?;
        if output.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&output.stderr);
        Err(runc_message(&text)
            .unwrap_or_else(|| format!("runc {} failed: {}", args[0], output.status)))
    }

    /// Removes a container and everything it made: kills its process (SIGKILL) if it
    /// runs and waits for the shim to record the exit, then deletes runc's state, the
    /// cgroup in every hierarchy, the rootfs mount and the directory. The log file is the
    /// agent's and stays. Removing a container that is not there is fine.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let dir = self.container_dir(id);
        let record = files::read_json_opt::<RecordFile>(&dir.join(files::RECORD))
            .ok()
            .flatten();
        let lock_file = dir.join(files::SHIM_LOCK);
        if lock::holder(&lock_file).is_some() {
            if !dir.join(files::EXIT).exists() {
                let _ = self.runc(&["kill", id, "KILL"]).await;
            }
            if !wait_for_shim(&lock_file, Duration::from_secs(10)).await {
                if let Some(pid) = lock::holder(&lock_file) {
                    tracing::warn!(
                        id,
                        pid,
                        "the shim did not exit after its container; killing it"
                    );
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
                wait_for_shim(&lock_file, Duration::from_secs(5)).await;
            }
        }
        // The shim empties the memory cgroup before its own `runc delete`; one that was
        // killed did not (see `cgroups::release_memory`).
        if let Some(file) = record
            .as_ref()
            .and_then(|r| cgroups::force_empty_file(cgroups::hierarchies().ok()?, &r.cgroup_path))
        {
            cgroups::release_memory(&file);
        }
        if let Err(message) = self.runc(&["delete", "--force", id]).await
            && !message.contains("not exist")
        {
            tracing::debug!(id, message, "runc delete");
        }
        if let Some(record) = &record {
            cgroups::remove_everywhere(&record.cgroup_path)?;
        }
        if !dir.exists() {
            return Ok(());
        }
        unmount_all(&dir.join(files::ROOTFS))?;
        remove_unmounted_dir(&dir)
    }

    /// Every container on disk, oldest first: what a restarted agent adopts.
    pub fn list_containers(&self) -> Result<Vec<ContainerRecord>> {
        let root = &self.config.root;
        let mut list = Vec::new();
        for entry in std::fs::read_dir(root)
            .context(|| format!("read {}", root.display()))?
            .flatten()
        {
            let path = entry.path().join(files::RECORD);
            match files::read_json_opt::<RecordFile>(&path) {
                Ok(Some(record)) => list.push(ContainerRecord::from(record)),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable container record"),
            }
        }
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(list)
    }

    /// Reads the container's log as `kubectl logs` shows it. With `follow`, the reader ends
    /// once the container has exited and its shim has written everything.
    pub fn logs(&self, id: &str, options: LogOptions) -> Result<LogReader> {
        let dir = self.existing_dir(id)?;
        let record: RecordFile = files::read_json(&dir.join(files::RECORD))?;
        // The shim holds its lock from before the container starts until it has written
        // the last of the output, so once the lock is free nothing more will come.
        let done =
            Box::new(move || !dir.exists() || lock::holder(&dir.join(files::SHIM_LOCK)).is_none());
        LogReader::open(&record.log_path, options, done)
            .context(|| format!("open log {}", record.log_path.display()))
    }
}

/// A shim started and waiting for its bundle (see [`Runtime::spawn_shim`]).
struct PendingShim {
    id: String,
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
    log_path: PathBuf,
}

impl PendingShim {
    /// Tells the shim its bundle is ready and waits for its word on `runc create` (or
    /// `runc run`).
    async fn go(mut self, run: bool) -> Result<()> {
        let shim_err = |message: String| RuntimeError::Shim {
            id: self.id.clone(),
            message,
        };
        // A shim that died early shows in its log, read below; the write's own error
        // says less.
        let _ = self.stdin.write_all(&[shim::GO]).await;
        drop(self.stdin);
        let mut out = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(120), self.stdout.read_to_end(&mut out)).await;
        // The process started exits right after forking the shim.
        let _ = self.child.wait().await;
        if read.is_err() {
            return Err(shim_err("no answer from the shim within 120s".to_owned()));
        }
        let line = out.split(|b| *b == b'\n').next().unwrap_or_default();
        let created: Created = serde_json::from_slice(line).map_err(|_| {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            shim_err(format!("exited without reporting: {}", log.trim()))
        })?;
        match (created.pid, created.error) {
            (Some(_), None) => Ok(()),
            (_, Some(message)) => Err(RuntimeError::Runc {
                op: if run { "run" } else { "create" },
                id: self.id.clone(),
                message,
            }),
            (None, None) => Err(shim_err("empty report".to_owned())),
        }
    }
}

/// A container made up to its process (see [`Runtime::prepare_run`]): its bundle is
/// written and its shim waits for the word to run it.
pub struct PreparedContainer {
    runtime: Runtime,
    record: ContainerRecord,
    shim: PendingShim,
    run: bool,
}

impl PreparedContainer {
    /// The container's id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Lets the shim run runc, and waits for its word: the container is `Running` (or
    /// `Created` for [`Runtime::create_container`]). On failure nothing is left; runc's
    /// refusal is [`RuntimeError::Runc`].
    pub async fn start(self) -> Result<ContainerRecord> {
        let PreparedContainer {
            runtime,
            record,
            shim,
            run,
        } = self;
        if let Err(e) = shim.go(run).await {
            runtime.discard(&record.id).await;
            return Err(e);
        }
        Ok(record)
    }

    /// Gives the container up before it ran: the shim exits having run nothing, and the
    /// rootfs and directory are removed.
    pub async fn abandon(self) {
        let PreparedContainer {
            runtime,
            record,
            shim,
            ..
        } = self;
        drop(shim);
        runtime.discard(&record.id).await;
    }
}

fn exited(exit: ExitFile) -> ContainerStatus {
    ContainerStatus::Exited {
        exit_code: exit.exit_code,
        signal: exit.signal,
        started_at: exit.started_at.map(Into::into),
        finished_at: exit.finished_at.into(),
        oom_killed: exit.oom_killed,
    }
}

/// Waits until nobody holds the shim's lock; false on timeout.
async fn wait_for_shim(lock_file: &Path, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while lock::holder(lock_file).is_some() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc() {
        assert!(check_id("pod-1_c.2+x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn runc_messages_come_from_json_or_text() {
        let text = "{\"level\":\"warning\",\"msg\":\"w\",\"time\":\"t\"}\n{\"level\":\"error\",\"msg\":\"container not running\",\"time\":\"t\"}\ncontainer not running\n";
        assert_eq!(runc_message(text).as_deref(), Some("container not running"));
        assert_eq!(
            runc_message("plain failure\n").as_deref(),
            Some("plain failure")
        );
        assert_eq!(runc_message(""), None);
    }
}
