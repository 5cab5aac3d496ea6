//! Reading the mount table and mounting the container's root file system.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::{IoContext, Result};

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

/// Whether something is mounted exactly at `path`.
pub(crate) fn is_mount_point(path: &Path) -> Result<bool> {
    Ok(mount_table()?.iter().any(|m| m.mount_point == path))
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
}
