//! Test environments: a busybox image layer, a runtime over temporary directories with a
//! cgroup parent of its own, and cleanup of everything the test made, even on failure.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runtime::logs::LogOptions;
use runtime::{ContainerSpec, ContainerStatus, Runtime, RuntimeConfig, Sandbox};

/// Builds a one-layer busybox root file system from Debian's busybox-static.
pub fn busybox_layer(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy /bin/busybox (busybox-static)");
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        let path = dir.join(applet);
        if path.exists() || path.symlink_metadata().is_ok() {
            continue;
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/bin/busybox", &path).unwrap();
    }
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("group"),
        "root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
    for d in ["tmp", "root", "home/app", "proc", "sys", "dev", "etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
}

static SEQUENCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One test's world. Dropping it removes every container, sandbox, mount, cgroup and
/// process it made, then the directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub runtime: Runtime,
    pub layer: PathBuf,
    pub cgroup_parent: String,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("gantry-rt-")
            .tempdir()
            .unwrap();
        let layer = dir.path().join("layer");
        busybox_layer(&layer);
        let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let cgroup_parent = format!("/gantry-rt-test-{}-{n}", std::process::id());
        let runtime = Runtime::new(config(dir.path(), &cgroup_parent)).unwrap();
        Env {
            dir,
            runtime,
            layer,
            cgroup_parent,
        }
    }

    /// A container spec over the busybox layer, logging to `logs/<id>.log`.
    pub fn spec(&self, id: &str, sandbox: &Sandbox, argv: &[&str]) -> ContainerSpec {
        ContainerSpec {
            id: id.to_owned(),
            labels: BTreeMap::from([("test".to_owned(), id.to_owned())]),
            sandbox: sandbox.clone(),
            layers: vec![self.layer.clone()],
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![(
                "PATH".to_owned(),
                "/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            )],
            cwd: "/".to_owned(),
            log_path: self.dir.path().join("logs").join(format!("{id}.log")),
            ..Default::default()
        }
    }

    /// Creates and starts a container in one go, as the agent does
    /// (`runc run`; tests of `create_container` then `start_container` make
    /// their own).
    pub async fn run(&self, spec: ContainerSpec) -> String {
        let id = spec.id.clone();
        self.runtime.run_container(spec).await.unwrap();
        id
    }

    /// The cgroup path of a container, relative to each hierarchy.
    pub fn cgroup(&self, pod_uid: &str, id: &str) -> String {
        format!("{}/pod{pod_uid}/{id}", self.cgroup_parent)
    }

    pub fn runc_root(&self) -> PathBuf {
        self.dir.path().join("state/runc")
    }
}

pub fn config(dir: &Path, cgroup_parent: &str) -> RuntimeConfig {
    RuntimeConfig {
        root: dir.join("containers"),
        state_dir: dir.join("state"),
        runc: PathBuf::from("runc"),
        shim: vec![
            std::env::current_exe().unwrap().into_os_string(),
            OsString::from("shim"),
        ],
        cgroup_parent: cgroup_parent.to_owned(),
    }
}

/// Waits until the container has exited.
pub async fn wait_exit(rt: &Runtime, id: &str, timeout: Duration) -> ContainerStatus {
    let deadline = Instant::now() + timeout;
    loop {
        let status = rt.status(id).unwrap();
        if matches!(status, ContainerStatus::Exited { .. }) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} still {status:?} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The container's log as `kubectl logs` prints it.
pub async fn logs(rt: &Runtime, id: &str, options: LogOptions) -> String {
    let mut reader = rt.logs(id, options).unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = reader.next().await.unwrap() {
        out.extend(chunk);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until the container's log contains `text`.
pub async fn wait_log(rt: &Runtime, id: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = logs(rt, id, LogOptions::default()).await;
        if log.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "log of {id} never had {text:?}: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Mount points at or under `path`.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = path.to_string_lossy().into_owned();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(str::to_owned)
        .collect()
}

/// The mount points of every cgroup hierarchy.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .collect()
}

/// Directories of `cgroup` that exist in any hierarchy.
pub fn cgroup_dirs(cgroup: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join(cgroup.trim_start_matches('/')))
        .filter(|p| p.exists())
        .collect()
}

/// The ids `runc list` shows under a runc root.
pub fn runc_list(root: &Path) -> Vec<String> {
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

impl Drop for Env {
    fn drop(&mut self) {
        let runtime = self.runtime.clone();
        let dir = self.dir.path().to_owned();
        let parent = self.cgroup_parent.clone();
        let runc_root = self.runc_root();
        // A thread of its own: the test's runtime may still be current here.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for c in runtime.list_containers().unwrap_or_default() {
                    if let Err(e) = runtime.remove_container(&c.id).await {
                        eprintln!("cleanup: remove container {}: {e}", c.id);
                    }
                }
            });
            for id in runc_list(&runc_root) {
                let _ = std::process::Command::new("runc")
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["delete", "--force", &id])
                    .status();
            }
            if let Ok(entries) = std::fs::read_dir(dir.join("state/pods")) {
                for e in entries.flatten() {
                    let uid = e.file_name().to_string_lossy().into_owned();
                    if let Err(err) = runtime.remove_sandbox(&uid) {
                        eprintln!("cleanup: remove sandbox {uid}: {err}");
                    }
                }
            }
            // Whatever is left in our cgroups is killed, then the cgroups go.
            for mount in cgroup_mounts() {
                let top = mount.join(parent.trim_start_matches('/'));
                if top.exists() {
                    kill_and_remove(&top);
                }
            }
            let mut leftover = mounts_under(&dir);
            leftover.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in leftover {
                eprintln!("cleanup: unmounting leftover {m}");
                let _ = nix::mount::umount2(Path::new(&m), nix::mount::MntFlags::MNT_DETACH);
            }
        });
        let _ = cleanup.join();
    }
}

fn kill_and_remove(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                kill_and_remove(&e.path());
            }
        }
    }
    for _ in 0..100 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("cleanup: could not remove cgroup {}", dir.display());
}

/// The pid of the shim of the container in `dir`: the process whose command line names the
/// container's directory.
pub fn shim_pid(dir: &Path) -> i32 {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    c.split(|b| *b == 0)
                        .any(|a| a == dir.as_os_str().as_encoded_bytes())
                })
                .unwrap_or(false)
        })
        .expect("the shim runs")
}
