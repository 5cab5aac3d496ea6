//! Containers through runc: pod sandboxes, OCI bundles, shims, exec, logs.
//!
//! A [`Runtime`] runs containers for the node agent, knowing nothing of Kubernetes objects:
//! plain structs in ([`ContainerSpec`]), plain results out ([`ContainerStatus`]). Its state is
//! on disk and in the kernel only, named by ids: a pod's [`Sandbox`] under
//! `<state_dir>/pods/<uid>/`, a container under `<root>/<id>/` with its runc state under
//! `<state_dir>/runc/` and its cgroup at `<cgroup_parent>/pod<uid>/<id>`. So a new `Runtime`
//! over the same directories (the agent restarted) finds everything again, and each
//! container's shim keeps it running in the meantime.

mod attach;
mod cgroups;
mod containers;
mod error;
mod exec;
mod exits;
mod fdio;
mod files;
mod lock;
pub mod logs;
mod mounts;
mod protocol;
mod sandbox;
mod shim;
mod spec;
mod targets;
mod user;

use std::ffi::OsString;
use std::path::PathBuf;

pub use attach::{AttachInput, AttachOutput, AttachStream};
pub use containers::{ContainerRecord, ContainerStatus, PreparedContainer};
pub use error::{Result, RuntimeError};
pub use exec::{ExecProcess, ExecReader, ExecSpec, ExecWriter};
pub use exits::ExitWatcher;
pub use mounts::{is_mount_point, mount_points_under};
pub use sandbox::Sandbox;
pub use shim::shim_main;
pub use spec::{ContainerSpec, Mount, MountSource, Propagation, Resources};
pub use user::UserSpec;

use error::IoContext;

/// Where a [`Runtime`] keeps things and how it runs runc and shims.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Persistent container directories: `<root>/<id>/` holds the bundle, the rootfs mount
    /// point, `record.json` and `exit.json` (e.g. `DATA/containers`).
    pub root: PathBuf,
    /// Volatile state (e.g. `/run/gantry`): runc's `--root` is `<state_dir>/runc`, sandboxes
    /// are `<state_dir>/pods/<uid>/`.
    pub state_dir: PathBuf,
    /// The runc binary; a bare name is looked up on `PATH`.
    pub runc: PathBuf,
    /// How to start a shim: a program and its first arguments (e.g. `[gantry, "shim"]`);
    /// the container's directory is appended. The program must call [`shim_main`].
    pub shim: Vec<OsString>,
    /// The cgroup under which pods go: a container's cgroup is
    /// `<cgroup_parent>/pod<uid>/<id>` in every hierarchy.
    pub cgroup_parent: String,
}

impl RuntimeConfig {
    /// The defaults: `runc` from `PATH`, this executable's `shim` subcommand as the shim,
    /// and `/gantry` as the cgroup parent.
    pub fn new(root: PathBuf, state_dir: PathBuf) -> RuntimeConfig {
        let exe = std::env::current_exe()
            .map(PathBuf::into_os_string)
            .unwrap_or_else(|_| "gantry".into());
        RuntimeConfig {
            root,
            state_dir,
            runc: PathBuf::from("runc"),
            shim: vec![exe, OsString::from("shim")],
            cgroup_parent: "/gantry".to_owned(),
        }
    }
}

/// Runs pod sandboxes and containers. Cheap to clone-by-config: it holds no state beyond
/// its configuration, so several may exist over the same directories.
#[derive(Debug, Clone)]
pub struct Runtime {
    config: RuntimeConfig,
}

impl Runtime {
    /// Makes the runtime's directories if they are missing.
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        if config.shim.is_empty() {
            return Err(RuntimeError::Io {
                context: "runtime configuration".to_owned(),
                source: std::io::Error::other("no shim command configured"),
            });
        }
        for dir in [
            config.root.clone(),
            config.state_dir.join("runc"),
            config.state_dir.join("pods"),
        ] {
            std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
        }
        Ok(Runtime { config })
    }

    /// The configuration this runtime was made with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.config.state_dir.join("pods").join(pod_uid)
    }

    fn pod_cgroup(&self, pod_uid: &str) -> String {
        format!(
            "/{}/pod{pod_uid}",
            self.config.cgroup_parent.trim_matches('/')
        )
    }

    /// Makes the pod's sandbox: new IPC and UTS namespaces (the latter named `hostname`)
    /// and, unless `host_network`, a new network namespace, pinned so they need no process
    /// and outlive the agent; plus the pod's `/dev/shm`. Returns the existing sandbox if
    /// there is one. For a host-network pod pass the node's hostname.
    pub fn create_sandbox(
        &self,
        pod_uid: &str,
        hostname: &str,
        host_network: bool,
    ) -> Result<Sandbox> {
        sandbox::check_pod_uid(pod_uid)?;
        let dir = self.pod_dir(pod_uid);
        if let Some(existing) = sandbox::load(pod_uid, &dir)? {
            return Ok(existing);
        }
        // A new sandbox means a container's start follows: the grace period runc's move
        // of its process waits for may pass now (see `cgroups::prime_migration`).
        cgroups::prime_migration();
        // A sandbox half made (the agent died while making it) is made again from scratch.
        sandbox::remove(&dir)?;
        match sandbox::create(pod_uid, &dir, hostname, host_network) {
            Ok(made) => Ok(made),
            Err(e) => {
                let _ = sandbox::remove(&dir);
                Err(e)
            }
        }
    }

    /// The pod's sandbox, if it exists whole.
    pub fn sandbox(&self, pod_uid: &str) -> Option<Sandbox> {
        sandbox::check_pod_uid(pod_uid).ok()?;
        sandbox::load(pod_uid, &self.pod_dir(pod_uid))
            .ok()
            .flatten()
    }

    /// Every whole sandbox on this node (for adoption after a restart).
    pub fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        let pods = self.config.state_dir.join("pods");
        let mut list = Vec::new();
        let entries = std::fs::read_dir(&pods).context(|| format!("read {}", pods.display()))?;
        for entry in entries.flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if let Some(s) = self.sandbox(&uid) {
                list.push(s);
            }
        }
        list.sort_by(|a, b| a.pod_uid.cmp(&b.pod_uid));
        Ok(list)
    }

    /// Removes the pod's sandbox: unpins its namespaces (they go once no process is in
    /// them), removes its `/dev/shm` and the pod's cgroup in every hierarchy. Remove the
    /// pod's containers first. Removing a sandbox that is not there is fine.
    pub fn remove_sandbox(&self, pod_uid: &str) -> Result<()> {
        sandbox::check_pod_uid(pod_uid)?;
        sandbox::remove(&self.pod_dir(pod_uid))?;
        cgroups::remove_everywhere(&self.pod_cgroup(pod_uid))
    }
}
