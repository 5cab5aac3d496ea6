//! Unpacking a layer into a directory that overlayfs can use as a lower
//! layer.
//!
//! The `tar` crate parses the archive (headers, GNU long names, PAX
//! records); the files are made here, because a layer needs what a plain
//! extraction does not give: device nodes and FIFOs, xattrs on directories
//! and symlinks, directory times set after their contents, and OCI
//! whiteouts turned into overlayfs' own (`.wh.name` becomes a 0:0 character
//! device `name`, `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on
//! its directory). Every path is checked to stay inside the layer: `..` is
//! refused, and no entry may be written through a symbolic link.
//!
//! The whole decompressed stream is hashed on the way, so the caller can
//! check it against the config's `diff_id` for the layer.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
use nix::sys::time::TimeSpec;
use ruzstd::decoding::{FrameDecoder, StreamingDecoder};
use sha2::{Digest as _, Sha256};

use crate::ImageError;
use crate::blobs::allocated;

/// The xattr that makes an overlayfs directory hide the lower layers'
/// entries of the same directory.
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// The prefix OCI layers mark deletions with.
const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// The OCI whiteout that makes its directory opaque.
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";

/// Unpacks the layer in `blob` (a tar, plain or compressed with gzip or
/// zstd, told by its first bytes) into `dst`, an empty directory. Returns
/// the digest of the uncompressed tar, the layer's `diff_id`. `layer`
/// names the layer in errors.
pub(crate) fn unpack_layer(blob: impl Read, dst: &Path, layer: &str) -> Result<String, ImageError> {
    let fail = |e: io::Error| ImageError::invalid(layer, format!("cannot unpack the layer: {e}"));
    let tar = Hashing::new(decompress(BufReader::with_capacity(1 << 16, blob)).map_err(fail)?);
    let mut archive = tar::Archive::new(tar);
    let mut unpacker = Unpacker {
        root: dst.to_owned(),
        layer: layer.to_owned(),
        known_dirs: HashSet::new(),
        dir_times: Vec::new(),
    };
    unpacker.known_dirs.insert(dst.to_owned());
    for entry in archive.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        unpacker.entry(&mut entry)?;
    }
    unpacker.finish()?;
    // The digest covers the whole stream, including the zero blocks after
    // the end-of-archive marker that the tar reader stops at.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(fail)?;
    Ok(rest.digest())
}

/// Bytes `dir` takes on disk: allocated blocks of everything under it,
/// each inode counted once (hard links share one).
pub(crate) fn disk_usage(dir: &Path) -> Result<u64, ImageError> {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).map_err(ImageError::io("stat", &path))?;
        if seen.insert((metadata.dev(), metadata.ino())) {
            total += allocated(&metadata);
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(ImageError::io("list", &path))? {
                pending.push(entry.map_err(ImageError::io("list", &path))?.path());
            }
        }
    }
    Ok(total)
}

/// Wraps a tar stream in the decompressor its magic number calls for
/// (gzip, zstd, or none).
pub(crate) fn decompress<'a, R: Read + 'a>(
    mut reader: BufReader<R>,
) -> io::Result<Box<dyn Read + 'a>> {
    let head = reader.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        // Multi-member: some tools write a gzip stream per chunk.
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(ZstdFrames::new(reader)?))
    } else {
        Ok(Box::new(reader))
    }
}

/// A zstd stream of one or more frames (the streaming decoder reads one).
struct ZstdFrames<R: Read> {
    current: Option<StreamingDecoder<BufReader<R>, FrameDecoder>>,
}

impl<R: Read> ZstdFrames<R> {
    fn new(reader: BufReader<R>) -> io::Result<Self> {
        let decoder = StreamingDecoder::new(reader).map_err(io::Error::other)?;
        Ok(Self {
            current: Some(decoder),
        })
    }
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This frame is done; another may follow.
            let Some(finished) = self.current.take() else {
                return Ok(0);
            };
            let (mut source, frame) = finished.into_parts();
            if source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            let next =
                StreamingDecoder::new_with_decoder(source, frame).map_err(io::Error::other)?;
            self.current = Some(next);
        }
    }
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// `sha256:<hex>` of everything read so far.
    fn digest(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// An entry's metadata: the header's fields, overridden by PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    /// `SCHILY.xattr.*` records, minus overlayfs' own.
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Meta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Self> {
        let header = entry.header();
        let mut meta = Meta {
            mode: header.mode()? & 0o7777,
            uid: u32::try_from(header.uid()?).map_err(io::Error::other)?,
            gid: u32::try_from(header.gid()?).map_err(io::Error::other)?,
            mtime: TimeSpec::new(i64::try_from(header.mtime()?).unwrap_or(0), 0),
            xattrs: Vec::new(),
        };
        if let Some(extensions) = entry.pax_extensions()? {
            for extension in extensions {
                let extension = extension?;
                let Ok(key) = extension.key() else { continue };
                let value = extension.value_bytes();
                let text = std::str::from_utf8(value).unwrap_or("");
                match key {
                    "uid" => meta.uid = text.parse().map_err(io::Error::other)?,
                    "gid" => meta.gid = text.parse().map_err(io::Error::other)?,
                    "mtime" => meta.mtime = parse_pax_time(text).unwrap_or(meta.mtime),
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            // A layer must not be able to steer overlayfs
                            // (redirects, metacopy, its own opaque marks
                            // other than through whiteouts).
                            if !name.starts_with("trusted.overlay.") {
                                meta.xattrs.push((name.into(), value.to_vec()));
                            }
                        }
                    }
                }
            }
        }
        Ok(meta)
    }
}

/// Parses a PAX time, `seconds[.fraction]`.
fn parse_pax_time(text: &str) -> Option<TimeSpec> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    for (i, digit) in frac.bytes().take(9).enumerate() {
        if !digit.is_ascii_digit() {
            return None;
        }
        nanos += i64::from(digit - b'0') * 10i64.pow(8 - i as u32);
    }
    Some(TimeSpec::new(secs, nanos))
}

/// The state of one layer being unpacked.
struct Unpacker {
    /// The layer's directory.
    root: PathBuf,
    /// The layer's name, for errors.
    layer: String,
    /// Directories known to exist as real directories (not symlinks), so
    /// parents are checked once rather than per entry.
    known_dirs: HashSet<PathBuf>,
    /// Directory times, applied at the end: creating entries inside a
    /// directory changes its mtime.
    dir_times: Vec<(PathBuf, TimeSpec)>,
}

impl Unpacker {
    fn invalid(&self, reason: String) -> ImageError {
        ImageError::invalid(&self.layer, reason)
    }

    fn io(&self, action: &str, path: &Path, e: impl std::fmt::Display) -> ImageError {
        let shown = path.strip_prefix(&self.root).unwrap_or(path);
        self.invalid(format!("cannot {action} /{}: {e}", shown.display()))
    }

    /// Applies one tar entry.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ImageError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw_path = entry
            .path()
            .map_err(|e| self.invalid(format!("entry with an unreadable path: {e}")))?
            .into_owned();
        let parts = self.components(&raw_path)?;
        let meta = Meta::read(entry).map_err(|e| {
            self.invalid(format!(
                "entry {} has unreadable metadata: {e}",
                raw_path.display()
            ))
        })?;

        let Some((name, parents)) = parts.split_last() else {
            // The layer's root, "./": only its metadata applies.
            if kind.is_dir() {
                let root = self.root.clone();
                self.set_metadata(&root, &meta, false)?;
                self.dir_times.push((root, meta.mtime));
            }
            return Ok(());
        };
        let parent = self.parent_dir(parents)?;

        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE_WHITEOUT {
            return xattr::set(&parent, OPAQUE_XATTR, b"y")
                .map_err(|e| self.io("mark opaque", &parent, e));
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.starts_with(WHITEOUT_PREFIX) || hidden.is_empty() {
                // Other AUFS metadata (.wh..wh.plnk and the like): not
                // content.
                return Ok(());
            }
            let target = parent.join(OsStr::from_bytes(hidden));
            self.clear(&target, false)?;
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                .map_err(|e| self.io("make the whiteout", &target, e))?;
            return std::os::unix::fs::lchown(&target, Some(meta.uid), Some(meta.gid))
                .map_err(|e| self.io("chown", &target, e));
        }

        let target = parent.join(name);
        match kind {
            tar::EntryType::Directory => {
                self.clear(&target, true)?;
                if !target.is_dir() {
                    std::fs::create_dir(&target).map_err(|e| self.io("create", &target, e))?;
                }
                self.known_dirs.insert(target.clone());
                self.set_metadata(&target, &meta, false)?;
                self.dir_times.push((target, meta.mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.clear(&target, false)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .map_err(|e| self.io("create", &target, e))?;
                io::copy(entry, &mut file).map_err(|e| self.io("write", &target, e))?;
                drop(file);
                self.set_metadata(&target, &meta, false)?;
                self.set_time(&target, meta.mtime)?;
            }
            tar::EntryType::Symlink => {
                let link = self.link_name(entry, &raw_path)?;
                self.clear(&target, false)?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| self.io("make the symlink", &target, e))?;
                self.set_metadata(&target, &meta, true)?;
                self.set_time(&target, meta.mtime)?;
            }
            tar::EntryType::Link => {
                let link = self.link_name(entry, &raw_path)?;
                let source = self.existing(&link)?;
                self.clear(&target, false)?;
                std::fs::hard_link(&source, &target)
                    .map_err(|e| self.io("hard link", &target, e))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (flag, dev) = match kind {
                    tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        let header = entry.header();
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let flag = if kind == tar::EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (flag, makedev(u64::from(major), u64::from(minor)))
                    }
                };
                self.clear(&target, false)?;
                mknod(&target, flag, Mode::from_bits_truncate(meta.mode), dev)
                    .map_err(|e| self.io("make the device node", &target, e))?;
                self.set_metadata(&target, &meta, false)?;
                self.set_time(&target, meta.mtime)?;
            }
            other => {
                tracing::debug!(layer = %self.layer, path = %raw_path.display(), ?other, "skipping a tar entry of unknown type");
            }
        }
        Ok(())
    }

    /// Undoes the effect of all entries on directory times and such; runs
    /// after the last entry.
    fn finish(&mut self) -> Result<(), ImageError> {
        // Children before parents: setting a child's time does not change
        // its parent's, but creating it did.
        for (dir, mtime) in std::mem::take(&mut self.dir_times).into_iter().rev() {
            self.set_time(&dir, mtime)?;
        }
        Ok(())
    }

    /// The normal components of an entry path; `..` is refused rather than
    /// skipped, since no honest layer has one.
    fn components(&self, path: &Path) -> Result<Vec<OsString>, ImageError> {
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_owned()),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    return Err(self.invalid(format!(
                        "entry {} climbs out of the layer with ..",
                        path.display()
                    )));
                }
            }
        }
        Ok(parts)
    }

    /// The directory `parts` names under the root, made (mode 0755, owned
    /// by root) where missing. Fails if any part is a symlink or not a
    /// directory, so nothing is ever written outside the layer.
    fn parent_dir(&mut self, parts: &[OsString]) -> Result<PathBuf, ImageError> {
        let mut path = self.root.clone();
        for part in parts {
            path.push(part);
            if self.known_dirs.contains(&path) {
                continue;
            }
            match std::fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(metadata) if metadata.file_type().is_symlink() => {
                    return Err(self.io("write under", &path, "it is a symbolic link"));
                }
                Ok(_) => return Err(self.io("write under", &path, "it is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&path).map_err(|e| self.io("create", &path, e))?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| self.io("chmod", &path, e))?;
                }
                Err(e) => return Err(self.io("stat", &path, e)),
            }
            self.known_dirs.insert(path.clone());
        }
        Ok(path)
    }

    /// An existing entry of the layer, for a hard link's source: inside the
    /// root, reached through real directories only, and not a directory.
    fn existing(&mut self, link: &Path) -> Result<PathBuf, ImageError> {
        let parts = self.components(link)?;
        let Some((name, parents)) = parts.split_last() else {
            return Err(self.invalid(format!("hard link to the layer root {}", link.display())));
        };
        let mut path = self.root.clone();
        for part in parents {
            path.push(part);
            if self.known_dirs.contains(&path) {
                continue;
            }
            match std::fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_dir() => {
                    self.known_dirs.insert(path.clone());
                }
                _ => {
                    return Err(self.invalid(format!(
                        "hard link source {} is not inside the layer",
                        link.display()
                    )));
                }
            }
        }
        path.push(name);
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if !metadata.is_dir() => Ok(path),
            _ => Err(self.invalid(format!(
                "hard link source {} is not a file earlier in the layer",
                link.display()
            ))),
        }
    }

    /// The link target of a symlink or hard link entry.
    fn link_name<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        path: &Path,
    ) -> Result<PathBuf, ImageError> {
        match entry.link_name() {
            Ok(Some(link)) if !link.as_os_str().is_empty() => Ok(link.into_owned()),
            Ok(_) => Err(self.invalid(format!("link {} has no target", path.display()))),
            Err(e) => Err(self.invalid(format!(
                "link {} has an unreadable target: {e}",
                path.display()
            ))),
        }
    }

    /// Makes room for a new entry at `path`: an existing non-directory is
    /// removed, and an existing directory too unless `keep_dir` (a
    /// directory entry over a directory only updates its metadata).
    fn clear(&mut self, path: &Path, keep_dir: bool) -> Result<(), ImageError> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("stat", path, e)),
            Ok(metadata) if metadata.is_dir() => {
                if keep_dir {
                    return Ok(());
                }
                std::fs::remove_dir_all(path).map_err(|e| self.io("replace", path, e))?;
                // Directories under it are gone; forget what was known.
                self.known_dirs.retain(|known| !known.starts_with(path));
                Ok(())
            }
            Ok(_) => std::fs::remove_file(path).map_err(|e| self.io("replace", path, e)),
        }
    }

    /// Owner, mode (not for symlinks, whose mode means nothing) and xattrs.
    fn set_metadata(&self, path: &Path, meta: &Meta, symlink: bool) -> Result<(), ImageError> {
        // Ownership first: chown clears set-user-ID and set-group-ID bits.
        std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))
            .map_err(|e| self.io("chown", path, e))?;
        if !symlink {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode))
                .map_err(|e| self.io("chmod", path, e))?;
        }
        for (name, value) in &meta.xattrs {
            if let Err(e) = xattr::set(path, name, value) {
                // user.* xattrs cannot live on symlinks, and some file
                // systems take no xattrs at all: neither makes the layer
                // unusable.
                let unsupported = e.raw_os_error() == Some(libc_enotsup())
                    || (symlink && e.kind() == io::ErrorKind::PermissionDenied);
                if unsupported {
                    tracing::warn!(layer = %self.layer, path = %path.display(), xattr = ?name, "cannot keep an xattr: {e}");
                } else {
                    return Err(self.io(
                        &format!("set xattr {} on", name.to_string_lossy()),
                        path,
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sets the modification (and access) time, never following symlinks.
    fn set_time(&self, path: &Path, mtime: TimeSpec) -> Result<(), ImageError> {
        utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &mtime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.io("set the time of", path, e))
    }
}

/// `ENOTSUP` (also `EOPNOTSUPP` on Linux).
fn libc_enotsup() -> i32 {
    nix::errno::Errno::ENOTSUP as i32
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use testkit::images::LayerBuilder;

    use super::*;

    /// The time testkit gives every entry.
    const MTIME: i64 = 1_500_000_000;

    fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<String, ImageError>) {
        let dir = tempfile::tempdir().unwrap();
        let result = unpack_layer(bytes, dir.path(), "test-layer");
        (dir, result)
    }

    #[test]
    fn keeps_owners_modes_xattrs_links_devices_and_times() {
        let long_name = format!("deep/{}/file", "d".repeat(120));
        let mut layer = LayerBuilder::new();
        layer
            .dir("etc", 0o750)
            .unwrap()
            .file_owned("etc/owned", 0o4755, 1234, 5678, b"setuid")
            .unwrap()
            .pax(&[
                ("SCHILY.xattr.user.note", b"kept"),
                ("SCHILY.xattr.trusted.overlay.redirect", b"/x"),
            ])
            .unwrap()
            .file("etc/noted", 0o600, b"with xattr")
            .unwrap()
            .symlink("etc/link", "owned")
            .unwrap()
            .hard_link("etc/hard", "etc/owned")
            .unwrap()
            .node("dev/null", tar::EntryType::Char, 0o666, 1, 3)
            .unwrap()
            .node("dev/loop9", tar::EntryType::Block, 0o660, 7, 9)
            .unwrap()
            .node("run/fifo", tar::EntryType::Fifo, 0o620, 0, 0)
            .unwrap()
            .file(&long_name, 0o644, b"long")
            .unwrap();
        let layer = layer.finish().unwrap();
        let (dir, result) = unpack(&layer.gzip.data);
        assert_eq!(result.unwrap(), layer.diff_id());
        let root = dir.path();
        let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();

        let owned = meta("etc/owned");
        assert_eq!((owned.uid(), owned.gid()), (1234, 5678));
        assert_eq!(
            owned.mode() & 0o7777,
            0o4755,
            "set-user-ID survives the chown"
        );
        assert_eq!(owned.mtime(), MTIME);
        assert_eq!(meta("etc").mode() & 0o7777, 0o750);
        assert_eq!(meta("etc").mtime(), MTIME, "directory times are set last");
        assert_eq!(meta("etc/hard").ino(), owned.ino());
        assert_eq!(
            std::fs::read_link(root.join("etc/link")).unwrap(),
            Path::new("owned")
        );
        assert_eq!(meta("etc/link").mtime(), MTIME);
        assert_eq!(
            xattr::get(root.join("etc/noted"), "user.note")
                .unwrap()
                .as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(
            xattr::get(root.join("etc/noted"), "trusted.overlay.redirect").unwrap(),
            None,
            "a layer may not set overlayfs' own xattrs"
        );
        let null = meta("dev/null");
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), makedev(1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);
        let block = meta("dev/loop9");
        assert!(block.file_type().is_block_device());
        assert_eq!(block.rdev(), makedev(7, 9));
        assert!(meta("run/fifo").file_type().is_fifo());
        assert_eq!(std::fs::read(root.join(&long_name)).unwrap(), b"long");
    }

    #[test]
    fn turns_whiteouts_into_overlayfs_ones() {
        let mut layer = LayerBuilder::new();
        layer
            .dir("data", 0o755)
            .unwrap()
            .whiteout("data/gone")
            .unwrap()
            .opaque("opq")
            .unwrap()
            .file("opq/new", 0o644, b"new")
            .unwrap()
            .file("data/.wh..wh.plnk", 0o644, b"")
            .unwrap();
        let layer = layer.finish().unwrap();
        let (dir, result) = unpack(&layer.tar);
        assert_eq!(result.unwrap(), layer.diff_id());
        let gone = std::fs::symlink_metadata(dir.path().join("data/gone")).unwrap();
        assert!(gone.file_type().is_char_device());
        assert_eq!(gone.rdev(), 0);
        assert!(!dir.path().join("data/.wh.gone").exists());
        assert!(!dir.path().join("data/.wh..wh.plnk").exists());
        assert_eq!(
            xattr::get(dir.path().join("opq"), OPAQUE_XATTR)
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        assert!(!dir.path().join("opq/.wh..wh..opq").exists());
        assert!(dir.path().join("opq/new").is_file());
    }

    #[test]
    fn reads_zstd_with_several_frames() {
        let mut layer = LayerBuilder::new();
        layer.file("a", 0o644, &[7u8; 100_000]).unwrap();
        let layer = layer.finish().unwrap();
        let (first, second) = layer.tar.split_at(layer.tar.len() / 2);
        let mut zstd =
            ruzstd::encoding::compress_to_vec(first, ruzstd::encoding::CompressionLevel::Fastest);
        zstd.extend(ruzstd::encoding::compress_to_vec(
            second,
            ruzstd::encoding::CompressionLevel::Fastest,
        ));
        let (dir, result) = unpack(&zstd);
        assert_eq!(result.unwrap(), layer.diff_id());
        assert_eq!(
            std::fs::read(dir.path().join("a")).unwrap(),
            vec![7u8; 100_000]
        );
    }

    #[test]
    fn refuses_to_write_outside_the_layer() {
        // Through a symlink the layer itself made.
        let mut layer = LayerBuilder::new();
        layer
            .symlink("escape", "/tmp")
            .unwrap()
            .file("escape/planted", 0o644, b"x")
            .unwrap();
        let (dir, result) = unpack(&layer.finish().unwrap().tar);
        let err = result.unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!Path::new("/tmp/planted").exists());
        drop(dir);

        // With "..", written into the header by hand (the tar crate's
        // builder refuses it).
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..10].copy_from_slice(b"../planted");
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(0);
        header.set_mode(0o644);
        header.set_cksum();
        let mut tar = header.as_bytes().to_vec();
        tar.extend([0u8; 1024]);
        let (_dir, result) = unpack(&tar);
        let err = result.unwrap_err().to_string();
        assert!(err.contains("climbs out"), "{err}");

        // A hard link to a file that is not in the layer.
        let mut layer = LayerBuilder::new();
        layer.hard_link("passwd", "etc/passwd").unwrap();
        let (_dir, result) = unpack(&layer.finish().unwrap().tar);
        let err = result.unwrap_err().to_string();
        assert!(err.contains("hard link source"), "{err}");
    }

    #[test]
    fn reports_truncated_layers() {
        let mut layer = LayerBuilder::new();
        layer.file("big", 0o644, &[1u8; 10_000]).unwrap();
        let layer = layer.finish().unwrap();
        let (_dir, result) = unpack(&layer.gzip.data[..layer.gzip.data.len() / 2]);
        let err = result.unwrap_err().to_string();
        assert!(err.contains("test-layer"), "{err}");
    }

    #[test]
    fn measures_disk_usage_once_per_inode() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 64 * 1024]).unwrap();
        let single = disk_usage(dir.path()).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        assert_eq!(disk_usage(dir.path()).unwrap(), single);
        assert!(single >= 64 * 1024);
    }
}
