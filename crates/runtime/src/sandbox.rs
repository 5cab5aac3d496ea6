//! Pod sandboxes: the network, IPC and UTS namespaces a pod's containers share.
//!
//! A namespace lives as long as something refers to it. Instead of a pause process, the
//! sandbox pins its namespaces with bind mounts of `/proc/thread-self/ns/{net,ipc,uts}` made
//! by a short-lived thread that unshared them: no process to supervise, and the pins
//! outlive the agent. The pod's `/dev/shm` is a tmpfs beside them, bind-mounted into each
//! container, because POSIX shared memory is files there, not part of the IPC namespace.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, RuntimeError};
use crate::mounts::{is_mount_point, remove_unmounted_dir, unmount_all};

/// The size of a pod's `/dev/shm`, as Kubernetes gives it by default.
const SHM_SIZE: u64 = 64 << 20;

/// A pod's shared namespaces, pinned under `<state_dir>/pods/<uid>/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// The pod's uid, which names the sandbox's directory and the pod's cgroup.
    pub pod_uid: String,
    /// The pinned network namespace; `None` for a pod on the host's network.
    pub netns: Option<PathBuf>,
    /// The pinned IPC namespace.
    pub ipcns: PathBuf,
    /// The pinned UTS namespace, whose hostname is the pod's.
    pub utsns: PathBuf,
    /// The sandbox's directory; it also holds the pod's `/dev/shm` as `shm/`.
    pub dir: PathBuf,
}

impl Sandbox {
    /// The pod's `/dev/shm` (a tmpfs), shared by its containers.
    pub fn shm(&self) -> PathBuf {
        self.dir.join("shm")
    }
}

/// Checks that a pod uid can name a directory and a cgroup.
pub(crate) fn check_pod_uid(pod_uid: &str) -> Result<()> {
    let ok = !pod_uid.is_empty()
        && pod_uid.len() <= 128
        && pod_uid != "."
        && pod_uid != ".."
        && pod_uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Sandbox {
            pod_uid: pod_uid.to_owned(),
            message: "the pod uid must be letters, digits, '-', '_' or '.'".to_owned(),
        })
    }
}

/// The sandbox in `dir` if all its namespaces are pinned.
pub(crate) fn load(pod_uid: &str, dir: &Path) -> Result<Option<Sandbox>> {
    let (net, ipc, uts, shm) = (
        dir.join("net"),
        dir.join("ipc"),
        dir.join("uts"),
        dir.join("shm"),
    );
    if !(is_mount_point(&ipc)? && is_mount_point(&uts)? && is_mount_point(&shm)?) {
        return Ok(None);
    }
    // A host-network sandbox has no `net` file at all; one with the file unpinned is broken.
    let netns = match (net.exists(), is_mount_point(&net)?) {
        (false, _) => None,
        (true, true) => Some(net),
        (true, false) => return Ok(None),
    };
    Ok(Some(Sandbox {
        pod_uid: pod_uid.to_owned(),
        netns,
        ipcns: ipc,
        utsns: uts,
        dir: dir.to_owned(),
    }))
}

/// Makes the sandbox in `dir`; the caller has checked it does not exist yet.
pub(crate) fn create(
    pod_uid: &str,
    dir: &Path,
    hostname: &str,
    host_network: bool,
) -> Result<Sandbox> {
    let fail = |message: String| RuntimeError::Sandbox {
        pod_uid: pod_uid.to_owned(),
        message,
    };
    std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
    let mut kinds = vec!["ipc", "uts"];
    let mut flags = CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if !host_network {
        kinds.push("net");
        flags |= CloneFlags::CLONE_NEWNET;
    }
    for kind in &kinds {
        let file = dir.join(kind);
        std::fs::File::create(&file).context(|| format!("create {}", file.display()))?;
    }
    let shm = dir.join("shm");
    std::fs::create_dir_all(&shm).context(|| format!("create {}", shm.display()))?;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,size={SHM_SIZE}").as_str()),
    )
    .context(|| format!("mount tmpfs at {}", shm.display()))?;

    // The namespaces are made by a thread of their own: unshare(2) of these three kinds
    // affects only the calling thread, which then exits, leaving the bind mounts as the
    // namespaces' only references.
    let hostname = hostname.to_owned();
    let targets: Vec<(String, PathBuf)> =
        kinds.iter().map(|k| (k.to_string(), dir.join(k))).collect();
    let made = std::thread::Builder::new()
        .name("sandbox-ns".to_owned())
        .spawn(move || -> std::result::Result<(), String> {
            unshare(flags).map_err(|e| format!("unshare namespaces: {e}"))?;
            nix::unistd::sethostname(&hostname)
                .map_err(|e| format!("set hostname {hostname:?}: {e}"))?;
            for (kind, target) in &targets {
                let source = format!("/proc/thread-self/ns/{kind}");
                mount(
                    Some(source.as_str()),
                    target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| format!("bind {source} to {}: {e}", target.display()))?;
            }
            Ok(())
        })
        .context(|| "start the sandbox thread".to_owned())?
        .join()
        .map_err(|_| fail("the sandbox thread panicked".to_owned()))?;
    made.map_err(fail)?;
    load(pod_uid, dir)?.ok_or_else(|| fail("namespaces are not pinned after creation".to_owned()))
}

/// Unpins the sandbox's namespaces and removes its directory; a missing one is fine.
pub(crate) fn remove(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for name in ["net", "ipc", "uts", "shm"] {
        unmount_all(&dir.join(name))?;
    }
    remove_unmounted_dir(dir)
}
