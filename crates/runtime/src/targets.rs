//! The mount points a container's mounts need, made once in a layer of their own.
//!
//! runc makes a mount's destination when the root file system lacks it: in a new overlay
//! that is a copy-up of every directory above it (`/etc` for `/etc/hosts`, `/var`, `/var/run`
//! ... for the service account token) onto the upper directory's disk, for every container.
//! The destinations depend only on the image and on the mounts, which most containers share,
//! so the missing ones are made once, as empty files and directories in a small layer under
//! the state directory, and that layer goes on top of the image's. The directories it shares
//! with the image carry the image's owner, mode and times, so the merged tree looks as the
//! image's does; anything the layer could not mirror faithfully (a symlink on the way, a
//! whiteout, an entry of another kind) is left to runc as before.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Mount as OciMount;

use crate::error::{IoContext, Result};

/// Where the layers are kept, under the state directory.
const DIR: &str = "targets";

/// What a destination must be for its mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    File,
    Dir,
}

/// The destinations runc would have to make: each mount's, unless another mount holds it
/// (`/dev/shm` is made in `/dev`'s tmpfs, not in the root file system). A bind mount of a
/// file needs a file; everything else a directory.
pub(crate) fn wanted(mounts: &[OciMount]) -> Vec<(PathBuf, Kind)> {
    let destinations: Vec<&Path> = mounts.iter().map(|m| m.destination().as_path()).collect();
    let mut out = Vec::new();
    for m in mounts {
        let destination = m.destination();
        let plain = destination.is_absolute()
            && destination
                .components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(_)));
        let covered = destinations
            .iter()
            .any(|d| *d != destination && destination.starts_with(d));
        if !plain || destination == Path::new("/") || covered {
            continue;
        }
        let file = m.typ().as_deref() == Some("bind")
            && m.source()
                .as_ref()
                .and_then(|s| std::fs::metadata(s).ok())
                .is_some_and(|meta| !meta.is_dir());
        out.push((
            destination.clone(),
            if file { Kind::File } else { Kind::Dir },
        ));
    }
    out.sort();
    out.dedup();
    out
}

/// One entry of the layer.
#[derive(Debug)]
enum Entry {
    /// A directory the image has: made with its owner, mode and times.
    Mirror(Metadata),
    /// A directory the image lacks (as runc makes them: root's, 0755).
    Dir,
    /// An empty file the image lacks.
    File,
}

/// What a path is in the image's merged tree, looked up through `visible`, the layers
/// (top first) through which its parent directory shows.
enum Found {
    Missing,
    /// A directory, with the layers through which its own entries show.
    Dir(Metadata, Vec<usize>),
    /// Something else than a directory (or a symlink, which may lead anywhere).
    Other,
}

fn lookup(layers: &[PathBuf], visible: &[usize], relative: &Path) -> Result<Found> {
    let mut top: Option<Metadata> = None;
    let mut below = Vec::new();
    for &i in visible {
        let path = layers[i].join(relative);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).context(|| format!("inspect {}", path.display())),
        };
        let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
        if !meta.is_dir() {
            // A whiteout hides the path and what lies below; another entry under a
            // directory found above is hidden the same way.
            return Ok(match top {
                Some(dir) => Found::Dir(dir, below),
                None if whiteout => Found::Missing,
                None => Found::Other,
            });
        }
        below.push(i);
        let opaque = is_opaque(&path);
        top.get_or_insert(meta);
        if opaque {
            break;
        }
    }
    Ok(match top {
        Some(dir) => Found::Dir(dir, below),
        None => Found::Missing,
    })
}

/// overlayfs' mark of a directory that hides the same directory of the layers below.
fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut value),
        Ok(1) if value[0] == b'y'
    )
}

/// The entries that make `targets` exist over `layers`, by path relative to the root (the
/// root itself the empty path); targets that need nothing, or that the layer could not make
/// faithfully, add none.
fn plan(layers: &[PathBuf], targets: &[(PathBuf, Kind)]) -> Result<BTreeMap<PathBuf, Entry>> {
    let mut entries = BTreeMap::new();
    'targets: for (target, kind) in targets {
        let relative = target.strip_prefix("/").unwrap_or(target);
        let names: Vec<&std::ffi::OsStr> = relative.iter().collect();
        let mut visible: Vec<usize> = (0..layers.len()).collect();
        let mut made = Vec::new();
        let mut path = PathBuf::new();
        let mut missing = false;
        for (n, name) in names.iter().enumerate() {
            path.push(name);
            let last = n + 1 == names.len();
            if !missing {
                match lookup(layers, &visible, &path)? {
                    Found::Missing => missing = true,
                    Found::Dir(meta, below) => {
                        if last {
                            // Already there: fine for a directory, runc's refusal for a
                            // file, as before.
                            continue 'targets;
                        }
                        made.push((path.clone(), Entry::Mirror(meta)));
                        visible = below;
                        continue;
                    }
                    // A file where one is wanted needs nothing; a symlink, or a file where
                    // a directory is wanted, stays runc's to follow or refuse.
                    Found::Other => continue 'targets,
                }
            }
            let entry = match (last, kind) {
                (true, Kind::File) => Entry::File,
                _ => Entry::Dir,
            };
            made.push((path.clone(), entry));
        }
        entries.extend(made);
    }
    if !entries.is_empty() {
        // The merged root is the top layer's: this layer's, mirroring the image's.
        let top = layers.first().map(std::fs::metadata).transpose();
        if let Some(meta) = top.context(|| "inspect the top layer".to_owned())? {
            entries.insert(PathBuf::new(), Entry::Mirror(meta));
        }
    }
    Ok(entries)
}

/// The layer holding what `targets` need over `layers` (top first), made if it is not
/// there yet; `None` when they need nothing. Its name digests the layers (their paths and
/// inodes) and the targets, so containers of one image and the same mounts share it.
pub(crate) fn layer(
    state_dir: &Path,
    layers: &[PathBuf],
    targets: &[(PathBuf, Kind)],
) -> Result<Option<PathBuf>> {
    use sha2::Digest;

    let entries = plan(layers, targets)?;
    if entries.is_empty() {
        return Ok(None);
    }
    let mut digest = sha2::Sha256::new();
    for l in layers {
        // The directory itself, not only its name: a layer unpacked anew under the same
        // path gets a layer of its own.
        let meta = std::fs::metadata(l).context(|| format!("inspect {}", l.display()))?;
        digest.update(l.as_os_str().as_encoded_bytes());
        digest.update([0]);
        for n in [
            meta.dev(),
            meta.ino(),
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
        ] {
            digest.update(n.to_le_bytes());
        }
    }
    for (path, entry) in &entries {
        digest.update(path.as_os_str().as_encoded_bytes());
        digest.update(match entry {
            Entry::Mirror(_) => [1],
            Entry::Dir => [2],
            Entry::File => [3],
        });
    }
    let name = hex::encode(&digest.finalize()[..16]);
    let parent = state_dir.join(DIR);
    let done = parent.join(&name);
    if done.is_dir() {
        return Ok(Some(done));
    }
    std::fs::create_dir_all(&parent).context(|| format!("create {}", parent.display()))?;
    // Made aside and renamed into place: a layer under its name is whole.
    let partial = tempdir_in(&parent, &name)?;
    let made = build(&partial, &entries);
    let placed = made.and_then(|()| {
        match std::fs::rename(&partial, &done) {
            Ok(()) => Ok(()),
            // Another container made the same one meanwhile.
            Err(_) if done.is_dir() => Ok(()),
            Err(e) => Err(e).context(|| format!("rename to {}", done.display())),
        }
    });
    if partial.exists() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    placed.map(|()| Some(done))
}

fn tempdir_in(parent: &Path, name: &str) -> Result<PathBuf> {
    for n in 0u32.. {
        let dir = parent.join(format!(".{name}.{}.{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).context(|| format!("create {}", dir.display())),
        }
    }
    unreachable!("u32 runs out before the directory names do")
}

fn build(root: &Path, entries: &BTreeMap<PathBuf, Entry>) -> Result<()> {
    // In path order, parents before children.
    for (relative, entry) in entries {
        let path = root.join(relative);
        let ctx = || format!("make {}", path.display());
        match entry {
            Entry::Mirror(meta) => {
                if !relative.as_os_str().is_empty() {
                    std::fs::create_dir(&path).context(ctx)?;
                }
                std::os::unix::fs::lchown(&path, Some(meta.uid()), Some(meta.gid()))
                    .context(ctx)?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(meta.mode()))
                    .context(ctx)?;
            }
            Entry::Dir => {
                std::fs::create_dir(&path).context(ctx)?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .context(ctx)?;
            }
            Entry::File => {
                std::fs::File::create(&path).context(ctx)?;
            }
        }
    }
    // Times last, children first: making an entry touches its parent's.
    for (relative, entry) in entries.iter().rev() {
        if let Entry::Mirror(meta) = entry {
            let path = root.join(relative);
            let times = std::fs::FileTimes::new()
                .set_accessed(meta.accessed().context(|| "atime".to_owned())?)
                .set_modified(meta.modified().context(|| "mtime".to_owned())?);
            std::fs::File::open(&path)
                .and_then(|f| f.set_times(times))
                .context(|| format!("set the times of {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::mount::{MntFlags, umount2};
    use oci_spec::runtime::MountBuilder;
    use std::os::unix::fs::symlink;

    fn oci(destination: &str, typ: &str, source: &Path) -> OciMount {
        MountBuilder::default()
            .destination(destination)
            .typ(typ)
            .source(source)
            .build()
            .unwrap()
    }

    #[test]
    fn destinations_held_by_other_mounts_are_not_wanted() {
        let scratch = tempfile::tempdir().unwrap();
        let (file, dir) = (scratch.path().join("hosts"), scratch.path().join("sa"));
        std::fs::write(&file, "").unwrap();
        std::fs::create_dir(&dir).unwrap();
        let mounts = vec![
            oci("/proc", "proc", Path::new("proc")),
            oci("/dev", "tmpfs", Path::new("tmpfs")),
            oci("/dev/shm", "bind", &dir),
            oci("/etc/hosts", "bind", &file),
            oci(
                "/var/run/secrets/kubernetes.io/serviceaccount",
                "bind",
                &dir,
            ),
            oci("/cache", "tmpfs", Path::new("tmpfs")),
            oci("/cache/inner", "bind", &file),
            oci("relative", "bind", &dir),
            oci("/a/../b", "bind", &dir),
        ];
        let want = |p: &str, k: Kind| (PathBuf::from(p), k);
        assert_eq!(
            wanted(&mounts),
            vec![
                want("/cache", Kind::Dir),
                want("/dev", Kind::Dir),
                want("/etc/hosts", Kind::File),
                want("/proc", Kind::Dir),
                want("/var/run/secrets/kubernetes.io/serviceaccount", Kind::Dir),
            ]
        );
    }

    /// Two image layers (top first) and what the layer makes over them, then the overlay
    /// of all three: the image's tree as it was, with the targets in it.
    #[test]
    fn the_layer_adds_what_is_missing_and_keeps_the_image_as_it_was() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root for owners, whiteouts and the overlay");
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let at = |p: &str| scratch.path().join(p);
        let (top, bottom, state) = (at("top"), at("bottom"), at("state"));
        for d in [
            "bottom/etc",
            "bottom/run",
            "bottom/old",
            "bottom/opaque",
            "top/etc",
        ] {
            std::fs::create_dir_all(at(d)).unwrap();
        }
        std::fs::create_dir(top.join("opaque")).unwrap();
        std::fs::write(bottom.join("etc/resolv.conf"), "nameserver 192.0.2.9\n").unwrap();
        std::fs::write(bottom.join("opaque/hostname"), "hidden\n").unwrap();
        // The top layer's /etc: another owner and mode, and an old time.
        std::os::unix::fs::lchown(top.join("etc"), Some(1234), Some(4321)).unwrap();
        std::fs::set_permissions(top.join("etc"), std::fs::Permissions::from_mode(0o750)).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::open(top.join("etc"))
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_modified(old))
            .unwrap();
        // /var is a symlink to /run (as in Debian), /old is whited out, /opaque hides the
        // bottom layer's entries.
        symlink("run", top.join("var")).unwrap();
        nix::sys::stat::mknod(
            &top.join("old"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        rustix::fs::lsetxattr(
            top.join("opaque"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let layers = vec![top.clone(), bottom.clone()];
        let targets = vec![
            (PathBuf::from("/etc/hosts"), Kind::File),
            (PathBuf::from("/etc/resolv.conf"), Kind::File),
            (PathBuf::from("/var/run/secrets"), Kind::Dir),
            (PathBuf::from("/old/x"), Kind::Dir),
            (PathBuf::from("/opaque/hostname"), Kind::File),
            (PathBuf::from("/new/deep"), Kind::Dir),
        ];

        let layer = super::layer(&state, &layers, &targets).unwrap().unwrap();
        assert!(layer.starts_with(state.join(DIR)), "{}", layer.display());
        let mut made: Vec<String> = Vec::new();
        let mut stack = vec![layer.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                made.push(path.strip_prefix(&layer).unwrap().display().to_string());
                if path.is_dir() {
                    stack.push(path);
                }
            }
        }
        made.sort();
        // Not /etc/resolv.conf (the image has it), nothing through the symlink.
        assert_eq!(
            made,
            [
                "etc",
                "etc/hosts",
                "new",
                "new/deep",
                "old",
                "old/x",
                "opaque",
                "opaque/hostname"
            ]
        );
        let etc = std::fs::metadata(layer.join("etc")).unwrap();
        assert_eq!(
            (etc.uid(), etc.gid(), etc.mode() & 0o7777),
            (1234, 4321, 0o750)
        );
        assert_eq!(etc.modified().unwrap(), old);
        assert_eq!(
            std::fs::metadata(layer.join("new")).unwrap().mode() & 0o7777,
            0o755
        );
        // The same image and targets: the same layer, not made again.
        assert_eq!(
            super::layer(&state, &layers, &targets).unwrap(),
            Some(layer.clone())
        );
        let entries = std::fs::read_dir(state.join(DIR)).unwrap().count();
        assert_eq!(entries, 1, "no partial layer left");
        // Nothing to make: no layer.
        let present = vec![(PathBuf::from("/etc/resolv.conf"), Kind::File)];
        assert_eq!(super::layer(&state, &layers, &present).unwrap(), None);

        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = umount2(&self.0, MntFlags::MNT_DETACH);
            }
        }
        for d in ["upper", "work", "merged"] {
            std::fs::create_dir(at(d)).unwrap();
        }
        crate::mounts::mount_overlay(
            &[layer.clone(), top.clone(), bottom.clone()],
            &at("upper"),
            &at("work"),
            &at("merged"),
        )
        .unwrap();
        let _mounted = Unmount(at("merged"));
        let merged = at("merged");
        let etc = std::fs::metadata(merged.join("etc")).unwrap();
        assert_eq!(
            (etc.uid(), etc.gid(), etc.mode() & 0o7777),
            (1234, 4321, 0o750)
        );
        assert_eq!(etc.modified().unwrap(), old);
        assert_eq!(
            std::fs::read_to_string(merged.join("etc/resolv.conf")).unwrap(),
            "nameserver 192.0.2.9\n"
        );
        assert!(merged.join("etc/hosts").is_file());
        assert_eq!(
            std::fs::read_link(merged.join("var")).unwrap(),
            Path::new("run")
        );
        assert!(!merged.join("run/secrets").exists());
        assert!(merged.join("old/x").is_dir());
        assert_eq!(std::fs::read(merged.join("opaque/hostname")).unwrap(), b"");
        let root = std::fs::metadata(&merged).unwrap();
        assert_eq!(
            root.mode() & 0o7777,
            std::fs::metadata(&top).unwrap().mode() & 0o7777
        );
        // Nothing was copied up.
        assert_eq!(std::fs::read_dir(at("upper")).unwrap().count(), 0);
    }
}
