//! What a `gantry up` node makes on the machine, kept apart from every
//! other Gantry running at the same time, and swept away after.
//!
//! Each node server claims a slot number (a lock file naming the test's
//! pid, taken over when that process is gone) that names its bridge and
//! nftables table, its pod range and its cgroup parent. After the server
//! is killed, [`sweep`] removes whatever its pods left: container
//! processes, runc state, mounts, cgroups, the bridge and the table.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where slot locks live.
const LOCKS: &str = "/tmp";
/// The cluster range of every test node (slots are /24s inside it).
pub const CLUSTER_CIDR: &str = "10.201.0.0/16";

/// One node's share of the machine.
#[derive(Debug)]
pub struct Slot {
    pub n: u8,
    lock: PathBuf,
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Slot {
    /// Claims a free slot.
    pub fn claim() -> Self {
        let me = std::process::id();
        let start = (me % 250) as u8;
        for i in 0..250u16 {
            let n = ((u16::from(start) + i) % 250) as u8;
            let lock = Path::new(LOCKS).join(format!("gantry-e2e-node-{n}.lock"));
            // A lock whose process is gone is stale.
            if let Ok(text) = std::fs::read_to_string(&lock)
                && text.trim().parse::<i32>().is_ok_and(|pid| !alive(pid))
            {
                let _ = std::fs::remove_file(&lock);
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&lock);
            if let Ok(mut f) = file {
                let _ = writeln!(f, "{me}");
                return Self { n, lock };
            }
        }
        panic!("no free node slot under {LOCKS}");
    }

    /// The bridge, which also names the nftables table.
    pub fn bridge(&self) -> String {
        format!("ge2e{}", self.n)
    }

    /// This node's pod range.
    pub fn pod_cidr(&self) -> String {
        format!("10.201.{}.0/24", self.n)
    }

    /// Its cluster's Service addresses: clusters of one machine share its
    /// network namespace, so each needs its own (kube-dns's among them).
    pub fn service_cidr(&self) -> String {
        format!("10.202.{}.0/24", self.n)
    }

    /// Its cluster's load balancer addresses, which the node holds on loopback.
    pub fn load_balancer_pool(&self) -> String {
        format!("10.203.{}.0/28", self.n)
    }

    /// The ports its Ingress proxy serves HTTP and HTTPS on (clusters of one
    /// machine cannot all have 80 and 443).
    pub fn ingress_ports(&self) -> (u16, u16) {
        (20080 + u16::from(self.n), 20443 + u16::from(self.n))
    }

    /// The cgroup its pods go under.
    pub fn cgroup_parent(&self) -> String {
        format!("/gantry-e2e-{}", self.n)
    }
}

impl Slot {
    /// Frees the slot for other test processes: removes its lock.
    pub fn release(&self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Cgroup directories of `parent` in every hierarchy, deepest first.
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return dirs;
    };
    for h in hierarchies.flatten() {
        let root = h.path().join(parent.trim_start_matches('/'));
        collect_dirs(&root, &mut dirs);
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
    out.push(dir.to_owned());
}

fn mounts_under(prefixes: &[&Path]) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| prefixes.iter().any(|p| Path::new(m).starts_with(p)))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found.dedup();
    found
}

/// Removes everything a node left behind: its containers' processes and
/// shims, runc's state, mounts under its directories, its cgroups, its
/// bridge and its nftables table.
pub fn sweep(slot: &Slot, dirs: &[&Path], state_dir: &Path) {
    // Container processes: everything in the node's cgroups.
    for dir in cgroup_dirs(&slot.cgroup_parent()) {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    // Shims: processes whose command line names one of the directories.
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("shim")
                && dirs.iter().any(|d| cmdline.contains(&*d.to_string_lossy()))
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let runc_root = state_dir.join("runc");
    if runc_root.exists()
        && let Ok(out) = std::process::Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["list", "-q"])
            .output()
    {
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = std::process::Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["delete", "--force", id])
                .output();
        }
    }
    let mut prefixes: Vec<&Path> = dirs.to_vec();
    prefixes.push(state_dir);
    for m in mounts_under(&prefixes) {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    for dir in cgroup_dirs(&slot.cgroup_parent()) {
        let _ = std::fs::remove_dir(&dir);
    }
    for link in [slot.bridge(), format!("{}.vx", slot.bridge())] {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &link])
            .output();
    }
    // The load balancer addresses the node announced.
    let _ = std::process::Command::new("ip")
        .args(["-4", "addr", "flush", "dev", "lo", "label"])
        .arg(format!("lo:{}", agent::announcer_tag(&slot.bridge())))
        .output();
    // The pod network's table, and the Service proxy's and NetworkPolicy's beside it.
    for table in [
        slot.bridge(),
        format!("{}-svc", slot.bridge()),
        format!("{}-pol", slot.bridge()),
    ] {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &table])
            .output();
    }
    let _ = std::fs::remove_dir_all(state_dir);
}

/// What is left of a node on the machine: for tests that check a clean
/// deletion. Each line names a leftover.
pub fn leftovers(slot: &Slot, dirs: &[&Path], state_dir: &Path, pod_uid: &str) -> Vec<String> {
    let mut out = Vec::new();
    for dir in cgroup_dirs(&slot.cgroup_parent()) {
        if dir.to_string_lossy().contains(pod_uid) {
            out.push(format!("cgroup {}", dir.display()));
        }
    }
    let mut prefixes: Vec<&Path> = dirs.to_vec();
    prefixes.push(state_dir);
    for m in mounts_under(&prefixes) {
        if m.contains(pod_uid) {
            out.push(format!("mount {m}"));
        }
    }
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(pod_uid) {
                out.push(format!("process {}", p.file_name().to_string_lossy()));
            }
        }
    }
    if state_dir.join("pods").join(pod_uid).exists() {
        out.push(format!(
            "sandbox {}",
            state_dir.join("pods").join(pod_uid).display()
        ));
    }
    let veth = net::host_veth_name(pod_uid);
    let link = std::process::Command::new("ip")
        .args(["link", "show", &veth])
        .output();
    if link.is_ok_and(|l| l.status.success()) {
        out.push(format!("veth {veth}"));
    }
    out
}
