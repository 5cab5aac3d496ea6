//! Reading the mount table and mounting the container's root file system.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::{IoContext, Result, RuntimeError};

/// One line of `/proc/self/mountinfo`, the parts we use.
#[derive(Debug, Clone)]
pub(crate) struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 {
            continue;
        }
        entries.push(MountEntry {
            mount_point: PathBuf::from(unescape(left[4])),
            fs_type: right[0].to_owned(),
            super_options: right[2].to_owned(),
        });
    }
    entries
}

/// The current mount table of this process's mount namespace.
pub(crate) fn mount_table() -> Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context(|| "read /proc/self/mountinfo".to_owned())?;
    Ok(parse_mountinfo(&text))
}

/// Whether something is mounted exactly at `path` (a symbolic link is not followed). The
/// mount's id from statx (Linux 5.8) is compared with the parent directory's, instead of
/// reading the mount table: that holds several mounts of every pod, so on a full node each
/// read costs ~0.4 ms, and pods are made and removed with many such checks. A path that
/// does not exist is not a mount point.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    let parent = match path.parent() {
        None => return Ok(true),
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
    };
    // `None` where the kernel gives no mount id.
    let mount_id = |p: &Path| -> std::io::Result<Option<u64>> {
        let st = statx(CWD, p, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID)?;
        Ok(StatxFlags::from_bits_retain(st.stx_mask)
            .contains(StatxFlags::MNT_ID)
            .then_some(st.stx_mnt_id))
    };
    let here = match mount_id(path) {
        Ok(id) => id,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).context(|| format!("stat {}", path.display())),
    };
    let above = mount_id(parent).context(|| format!("stat {}", parent.display()))?;
    match (here, above) {
        (Some(here), Some(above)) => Ok(here != above),
        _ => Ok(mount_table()?.iter().any(|m| m.mount_point == path)),
    }
}

/// Every mount point at or below `dir`, from the mount table.
pub fn mount_points_under(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(mount_table()?
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|m| m.starts_with(dir))
        .collect())
}

/// Removes `dir` and everything in it, never through a mount: only once nothing is mounted
/// at or below it. A missing directory is fine.
pub(crate) fn remove_unmounted_dir(dir: &Path) -> Result<()> {
    if let Some(m) = mount_points_under(dir)?.first() {
        return Err(RuntimeError::Io {
            context: format!("remove {}", dir.display()),
            source: std::io::Error::other(format!("{} is still mounted", m.display())),
        });
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context(|| format!("remove {}", dir.display())),
    }
}

/// Unmounts everything mounted at `path` (several mounts may be stacked there); a path
/// with nothing mounted is fine. A busy mount is detached, so it goes once unused.
pub(crate) fn unmount_all(path: &Path) -> Result<()> {
    while is_mount_point(path)? {
        if let Err(e) = umount2(path, MntFlags::empty()) {
            if e == nix::errno::Errno::EBUSY {
                umount2(path, MntFlags::MNT_DETACH)
                    .context(|| format!("unmount {}", path.display()))?;
            } else if e != nix::errno::Errno::EINVAL {
                return Err(e).context(|| format!("unmount {}", path.display()));
            } else {
                break;
            }
        }
    }
    Ok(())
}

/// Mounts an overlay of `layers` (top first, as overlayfs' `lowerdir` lists them) with the
/// given upper and work directories at `target`.
pub(crate) fn mount_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<()> {
    let lower: Vec<String> = layers.iter().map(|l| escape_overlay(l)).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        escape_overlay(upper),
        escape_overlay(work)
    );
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .context(|| format!("mount overlay at {} ({options})", target.display()))
}

/// overlayfs splits its options at commas and `lowerdir` at colons; both are escaped.
fn escape_overlay(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
                    40 27 0:35 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory\n\
                    41 27 0:36 / /tmp/a\\040b rw - overlay overlay rw,lowerdir=/x\n";
        let entries = parse_mountinfo(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(entries[1].fs_type, "cgroup");
        assert_eq!(entries[1].super_options, "rw,memory");
        assert_eq!(entries[2].mount_point, Path::new("/tmp/a b"));
    }

    #[test]
    fn mount_points_are_told_from_the_mount_id() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        /// Unmounts what the test mounted, even when an assertion failed first.
        struct Mounted(Vec<PathBuf>);
        impl Drop for Mounted {
            fn drop(&mut self) {
                for m in self.0.iter().rev() {
                    let _ = umount2(m, MntFlags::MNT_DETACH);
                }
            }
        }
        let scratch = tempfile::tempdir().unwrap();
        let (tmpfs, plain, file, link) = (
            scratch.path().join("tmpfs"),
            scratch.path().join("plain"),
            scratch.path().join("file"),
            scratch.path().join("link"),
        );
        std::fs::create_dir(&tmpfs).unwrap();
        std::fs::create_dir(&plain).unwrap();
        std::fs::write(&file, "").unwrap();
        std::os::unix::fs::symlink(&tmpfs, &link).unwrap();
        let mut mounted = Mounted(Vec::new());
        mount(
            Some("tmpfs"),
            &tmpfs,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        mounted.0.push(tmpfs.clone());
        // A file bound over another, as a sandbox pins its namespaces.
        mount(
            Some("/proc/self/ns/uts"),
            &file,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        mounted.0.push(file.clone());

        for (path, expected) in [
            (&tmpfs, true),
            (&file, true),
            (&plain, false),
            (&link, false),
            (&scratch.path().join("missing"), false),
        ] {
            assert_eq!(
                is_mount_point(path).unwrap(),
                expected,
                "{}",
                path.display()
            );
            // The mount table agrees.
            let listed = mount_table()
                .unwrap()
                .iter()
                .any(|m| &m.mount_point == path);
            assert_eq!(listed, expected, "{} in the mount table", path.display());
        }
        assert!(is_mount_point(Path::new("/")).unwrap());
        let under = mount_points_under(scratch.path()).unwrap();
        assert_eq!(under.len(), 2, "{under:?}");

        unmount_all(&tmpfs).unwrap();
        unmount_all(&file).unwrap();
        assert!(!is_mount_point(&tmpfs).unwrap());
        assert!(!is_mount_point(&file).unwrap());
        assert!(mount_points_under(scratch.path()).unwrap().is_empty());
    }
}
