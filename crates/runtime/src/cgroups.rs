//! The cgroups runc makes for containers, found again by path in every hierarchy.
//!
//! runc's cgroupfs driver puts a container at the same path (`/<parent>/pod<uid>/<id>`) in
//! each mounted hierarchy: on this host's hybrid layout one per v1 controller plus the
//! unified (v2) one. Cleaning up therefore means removing that path everywhere.

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::mounts::mount_table;

/// A mounted cgroup hierarchy.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    pub mount_point: PathBuf,
    /// True for the unified (cgroup2) hierarchy.
    pub unified: bool,
    /// The v1 controllers bound to it (`memory`, `cpu`, ...), from the mount options.
    pub controllers: Vec<String>,
}

/// Every cgroup hierarchy mounted in this mount namespace, read from the mount table once
/// per process: the hierarchies are mounted at boot, and the table, which also holds
/// several mounts of every pod, costs ~0.4 ms a read on a full node.
pub(crate) fn hierarchies() -> Result<&'static [Hierarchy]> {
    static FOUND: std::sync::OnceLock<Vec<Hierarchy>> = std::sync::OnceLock::new();
    if let Some(found) = FOUND.get() {
        return Ok(found);
    }
    let found = mount_table()?
        .into_iter()
        .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
        .map(|m| Hierarchy {
            unified: m.fs_type == "cgroup2",
            controllers: m
                .super_options
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                .map(str::to_owned)
                .collect(),
            mount_point: m.mount_point,
        })
        .collect();
    Ok(FOUND.get_or_init(|| found))
}

/// Joins a cgroup path (absolute, as in config.json) onto a hierarchy's mount point.
pub(crate) fn join(mount_point: &Path, cgroup_path: &str) -> PathBuf {
    mount_point.join(cgroup_path.trim_start_matches('/'))
}

/// The hierarchy of the v1 memory controller, where memory is a v1 controller.
pub(crate) fn memory_v1_hierarchy(all: &[Hierarchy]) -> Option<&Hierarchy> {
    all.iter()
        .find(|h| !h.unified && h.controllers.iter().any(|c| c == "memory"))
}

/// The v1 memory controller's directory for `cgroup_path`, where memory is a v1 controller.
fn memory_v1(all: &[Hierarchy], cgroup_path: &str) -> Option<PathBuf> {
    memory_v1_hierarchy(all).map(|h| join(&h.mount_point, cgroup_path))
}

/// The file the OOM kill count is read from for a cgroup: the v1 memory controller's
/// `memory.oom_control`, or `memory.events` on a unified hierarchy where the memory
/// controller lives there.
pub(crate) fn oom_file(all: &[Hierarchy], cgroup_path: &str) -> Option<PathBuf> {
    if let Some(dir) = memory_v1(all, cgroup_path) {
        return Some(dir.join("memory.oom_control"));
    }
    for h in all.iter().filter(|h| h.unified) {
        let controllers =
            std::fs::read_to_string(h.mount_point.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            return Some(join(&h.mount_point, cgroup_path).join("memory.events"));
        }
    }
    None
}

/// The v1 memory cgroup's `memory.force_empty` for `cgroup_path` (see [`release_memory`]).
pub(crate) fn force_empty_file(all: &[Hierarchy], cgroup_path: &str) -> Option<PathBuf> {
    memory_v1(all, cgroup_path).map(|dir| dir.join("memory.force_empty"))
}

/// The `oom_kill` count in a `memory.oom_control` or `memory.events` file (0 if absent).
pub(crate) fn oom_kill_count(file: &Path) -> u64 {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    parse_oom_kill(&text)
}

fn parse_oom_kill(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == "oom_kill")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Empties a v1 memory cgroup of the page cache charged to it by writing its
/// `memory.force_empty` (`file`), as the kernel's cgroup-v1 memory documentation advises
/// before a removal: a memory cgroup removed while still charged with cached pages stays
/// allocated, offline, until memory pressure reclaims them. A container's start leaves
/// ~0.7 MiB of clean cached pages, so every container removed left one behind: 3,477 on a
/// test machine that had 11, each holding kernel memory and one of the 65,535 ids the
/// kernel numbers memory cgroups with. Dirty pages stay until written back. Best effort: a
/// cgroup already gone or a write refused only costs that one lingering.
pub(crate) fn release_memory(file: &Path) {
    match std::fs::write(file, "0") {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::debug!(file = %file.display(), error = %e, "emptying a memory cgroup"),
    }
}

/// Moves this process into the cgroup it is already in, so that the next container's start
/// does not wait for the kernel's grace period. Moving any process between cgroups takes
/// the kernel's threadgroup lock (`cgroup_threadgroup_rwsem`, one for every hierarchy) for
/// writing, and the first writer after a quiet spell waits for a whole RCU grace period
/// before it has it (~11 ms on the 2-core test machine, a third of a bare `runc run`); a
/// writer that comes before a grace period has passed since the last one left does not.
/// runc moves every container's first process into its cgroup; calling this as a
/// container's start begins puts that wait beside the start's other work (bundle,
/// network), and the move itself changes nothing. The move waits on a thread of its own,
/// and nothing waits for it. Best effort: on a host where it is refused (a read-only
/// cgroup file system, say) runc simply waits as before.
pub(crate) fn prime_migration() {
    let spawned = std::thread::Builder::new()
        .name("cgroup-prime".to_owned())
        .spawn(move_into_own_cgroup);
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "starting a thread to prime cgroup migrations");
    }
}

/// The move [`prime_migration`] makes; it blocks for the grace period.
fn move_into_own_cgroup() {
    let Ok(all) = hierarchies() else {
        return;
    };
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    let Some(procs) = own_procs_file(all, &own) else {
        return;
    };
    // "0" is the writing process, moved whole: only a whole process's move takes the
    // threadgroup lock (a thread's, through `tasks` or `cgroup.threads`, does not).
    if let Err(e) = std::fs::write(&procs, "0") {
        tracing::debug!(file = %procs.display(), error = %e, "moving the agent into its own cgroup");
    }
}

/// The `cgroup.procs` of this process's own cgroup in one hierarchy, from the text of
/// `/proc/self/cgroup` (`<id>:<controllers>:<path>` lines, `0::<path>` for the unified
/// hierarchy): the unified one where mounted (it has no controllers on a hybrid host, so
/// the move touches none), else the first v1 hierarchy whose controllers are exactly those
/// a line names. A named hierarchy (`name=systemd`, no controllers) is never matched: a
/// wrong match would be a real move, into another cgroup.
fn own_procs_file(all: &[Hierarchy], proc_self_cgroup: &str) -> Option<PathBuf> {
    let lines: Vec<(&str, &str)> = proc_self_cgroup
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(':')?;
            rest.split_once(':')
        })
        .collect();
    let unified = all.iter().find(|h| h.unified).and_then(|h| {
        let (_, path) = lines
            .iter()
            .find(|(controllers, _)| controllers.is_empty())?;
        Some(join(&h.mount_point, path))
    });
    let dir = unified.or_else(|| {
        all.iter().filter(|h| !h.unified).find_map(|h| {
            if h.controllers.is_empty() {
                return None;
            }
            let (_, path) = lines.iter().find(|(controllers, _)| {
                let mut named: Vec<&str> = controllers.split(',').collect();
                let mut mounted: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
                named.sort_unstable();
                mounted.sort_unstable();
                named == mounted
            })?;
            Some(join(&h.mount_point, path))
        })
    })?;
    Some(dir.join("cgroup.procs"))
}

/// Removes `cgroup_path` and everything below it in every hierarchy, deepest first. A
/// cgroup that still has processes cannot be removed; that is an error naming it.
pub(crate) fn remove_everywhere(cgroup_path: &str) -> Result<()> {
    for h in hierarchies()? {
        remove_tree(&join(&h.mount_point, cgroup_path))?;
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).context(|| format!("read {}", dir.display())),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    // A cgroup just emptied of processes may take a moment to be removable.
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e).context(|| format!("remove cgroup {}", dir.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oom_kill_counts() {
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"),
            1
        );
        assert_eq!(parse_oom_kill("oom_kill_disable 0\n"), 0);
    }

    #[test]
    fn finds_its_own_cgroup_in_one_hierarchy() {
        let hybrid = [
            Hierarchy {
                mount_point: "/sys/fs/cgroup/systemd".into(),
                unified: false,
                controllers: vec![],
            },
            Hierarchy {
                mount_point: "/sys/fs/cgroup/memory".into(),
                unified: false,
                controllers: vec!["memory".into()],
            },
            Hierarchy {
                mount_point: "/sys/fs/cgroup/cpu,cpuacct".into(),
                unified: false,
                controllers: vec!["cpu".into(), "cpuacct".into()],
            },
            Hierarchy {
                mount_point: "/sys/fs/cgroup/unified".into(),
                unified: true,
                controllers: vec![],
            },
        ];
        let own = "9:name=systemd:/elsewhere\n5:cpu,cpuacct:/user.slice\n4:memory:/agent/x\n0::/system.slice/gantry.service\n";
        assert_eq!(
            own_procs_file(&hybrid, own),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/gantry.service/cgroup.procs"
            ))
        );
        // Without the unified hierarchy: the first v1 one with controllers, at the path
        // of the line naming exactly its controllers.
        assert_eq!(
            own_procs_file(&hybrid[..3], own),
            Some(PathBuf::from("/sys/fs/cgroup/memory/agent/x/cgroup.procs"))
        );
        assert_eq!(
            own_procs_file(&hybrid[2..3], "5:cpu,cpuacct:/\n"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/cgroup.procs"))
        );
        assert_eq!(
            own_procs_file(&hybrid[2..3], "5:cpuacct,cpu:/a\n"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a/cgroup.procs"))
        );
        // Nothing matches (a named hierarchy alone, a line naming only part of a
        // hierarchy's controllers): nothing to write.
        assert_eq!(own_procs_file(&hybrid[..1], own), None);
        assert_eq!(own_procs_file(&hybrid[2..3], "5:cpu:/\n"), None);
        assert_eq!(own_procs_file(&hybrid[1..2], "5:cpu,cpuacct:/\n"), None);
        assert_eq!(own_procs_file(&hybrid, ""), None);
    }

    /// The move changes nothing: the process is in the same cgroups afterwards.
    #[test]
    fn priming_leaves_the_process_where_it_was() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root to write cgroup.procs");
            return;
        }
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let procs = own_procs_file(hierarchies().unwrap(), &before).expect("a hierarchy");
        let started = std::time::Instant::now();
        move_into_own_cgroup();
        let waited = started.elapsed();
        assert_eq!(
            std::fs::read_to_string("/proc/self/cgroup").unwrap(),
            before
        );
        // Right after a move, another does not wait for a grace period of its own.
        let again = std::time::Instant::now();
        std::fs::write(&procs, "0").unwrap();
        eprintln!("first move {:?}, the next {:?}", waited, again.elapsed());
    }

    fn cached_bytes(dir: &Path) -> u64 {
        std::fs::read_to_string(dir.join("memory.stat"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("cache "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }

    /// What a process of the cgroup left in the page cache is uncharged, so the cgroup can
    /// go for good once removed.
    #[test]
    fn release_memory_empties_the_page_cache_of_a_memory_cgroup() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root for cgroups");
            return;
        }
        let all = hierarchies().unwrap();
        let cgroup_path = format!("/gantry-cgroups-unit-{}", std::process::id());
        let Some(force_empty) = force_empty_file(all, &cgroup_path) else {
            eprintln!("skipped: no v1 memory controller here");
            return;
        };
        /// Removes the test's cgroup, even when an assertion failed first.
        struct Made(PathBuf);
        impl Drop for Made {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        let dir = force_empty.parent().unwrap().to_owned();
        std::fs::create_dir(&dir).unwrap();
        let made = Made(dir.clone());
        let scratch = tempfile::tempdir().unwrap();
        let file = scratch.path().join("written");
        // The shell joins the cgroup, then writes 4 MiB and flushes them: their page cache,
        // clean, is charged there. (Dirty pages are not dropped until written back.)
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && dd if=/dev/zero of={} bs=1M count=4 conv=fsync 2>/dev/null",
                dir.display(),
                file.display()
            ))
            .status()
            .unwrap();
        assert!(status.success());
        let before = cached_bytes(&dir);
        release_memory(&force_empty);
        let after = cached_bytes(&dir);
        assert!(before >= 4 << 20, "{before} bytes cached before");
        assert_eq!(after, 0, "{after} bytes still cached");
        drop(made);
        assert!(!dir.exists(), "the emptied cgroup could not be removed");
        // Gone already: nothing to do, and no panic.
        release_memory(&force_empty);
    }
}
