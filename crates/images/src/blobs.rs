//! Content-addressed blobs: `blobs/sha256/<hex>`.
//!
//! Every blob is written to a temporary file beside the store, hashed as it
//! is written, checked against the digest it is supposed to have, flushed,
//! and only then renamed into place; so a blob under its digest's name is
//! always whole and always that content, and two writers of the same blob
//! race harmlessly (the second rename replaces identical bytes).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::ImageError;

/// The hex part of a `sha256:<64 hex>` digest, if `digest` is one.
pub(crate) fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

/// The digest of `bytes`, `sha256:<hex>`.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Bytes a file takes on disk (allocated blocks, not its length).
pub(crate) fn allocated(metadata: &std::fs::Metadata) -> u64 {
    metadata.blocks() * 512
}

/// The blob directory of a store.
#[derive(Debug, Clone)]
pub(crate) struct BlobStore {
    /// `ROOT/blobs/sha256`.
    dir: PathBuf,
    /// `ROOT/tmp`, on the same file system, for blobs being written.
    tmp: PathBuf,
}

impl BlobStore {
    /// The blobs of the store at `root`; [`BlobStore::create_dirs`] makes
    /// the directories.
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("blobs").join("sha256"),
            tmp: root.join("tmp"),
        }
    }

    /// Creates the blob directory if missing.
    pub fn create_dirs(&self) -> Result<(), ImageError> {
        std::fs::create_dir_all(&self.dir).map_err(ImageError::io("create", &self.dir))
    }

    /// Where the blob `digest` lives.
    pub fn path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(digest).ok_or_else(|| {
            ImageError::invalid(digest, "not a sha256 digest (sha256:<64 lowercase hex>)")
        })?;
        Ok(self.dir.join(hex))
    }

    /// Whether the blob `digest` is present.
    pub fn exists(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    /// Opens the blob `digest` for reading.
    pub fn open(&self, digest: &str) -> Result<File, ImageError> {
        let path = self.path(digest)?;
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::invalid(digest, format!("blob {} is missing", path.display()))
            } else {
                ImageError::io("open", &path)(e)
            }
        })
    }

    /// Reads a small blob (a manifest, an index, a config) whole, checking
    /// its digest again so that damage on disk is reported, not parsed.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.path(digest)?;
        let mut bytes = Vec::new();
        self.open(digest)?
            .read_to_end(&mut bytes)
            .map_err(ImageError::io("read", &path))?;
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(ImageError::invalid(
                digest,
                format!(
                    "blob {} is damaged: its content is {actual}",
                    path.display()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Starts writing a blob.
    pub fn writer(&self) -> Result<BlobWriter, ImageError> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.tmp)
            .map_err(ImageError::io("create a temporary file in", &self.tmp))?;
        Ok(BlobWriter {
            file,
            hasher: Sha256::new(),
            size: 0,
            dir: self.dir.clone(),
        })
    }

    /// Writes a blob held in memory (verifying it against `expected` when
    /// given); returns its digest.
    pub fn write_bytes(
        &self,
        bytes: &[u8],
        expected: Option<&str>,
        pin: impl FnOnce(&str),
    ) -> Result<String, ImageError> {
        let mut writer = self.writer()?;
        writer
            .write_all(bytes)
            .map_err(ImageError::io("write", writer.file.path()))?;
        writer.finish(expected, Some(bytes.len() as u64), pin)
    }

    /// Every blob present, with the bytes it takes on disk.
    pub fn list(&self) -> Result<Vec<(String, u64)>, ImageError> {
        let mut blobs = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(ImageError::io("list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(ImageError::io("list", &self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let digest = format!("sha256:{name}");
            if digest_hex(&digest).is_none() {
                continue;
            }
            let metadata = entry
                .metadata()
                .map_err(ImageError::io("stat", entry.path()))?;
            blobs.push((digest, allocated(&metadata)));
        }
        Ok(blobs)
    }

    /// Removes the blob `digest`; returns the bytes it took (0 if it was
    /// not there).
    pub fn remove(&self, digest: &str) -> Result<u64, ImageError> {
        let path = self.path(digest)?;
        let size = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => allocated(&metadata),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(ImageError::io("stat", &path)(e)),
        };
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(ImageError::io("remove", &path)(e)),
        }
    }
}

/// A blob being written: a temporary file and the running hash of what
/// went into it. Dropping it without [`BlobWriter::finish`] removes the
/// file.
pub(crate) struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
    dir: PathBuf,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Checks the content against `expected` (digest and size, when
    /// given), flushes it, calls `pin` with the digest (so the caller can
    /// protect the blob from garbage collection before it becomes
    /// visible), and renames it into place. Returns the digest.
    pub fn finish(
        self,
        expected: Option<&str>,
        expected_size: Option<u64>,
        pin: impl FnOnce(&str),
    ) -> Result<String, ImageError> {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if let Some(expected) = expected {
            if digest_hex(expected).is_none() {
                return Err(ImageError::invalid(
                    expected,
                    "not a sha256 digest (sha256:<64 lowercase hex>)",
                ));
            }
            if digest != expected {
                return Err(ImageError::invalid(
                    expected,
                    format!("content does not match its digest (it is {digest})"),
                ));
            }
        }
        if let Some(size) = expected_size
            && size != self.size
        {
            return Err(ImageError::invalid(
                &digest,
                format!("blob is {} bytes, its descriptor says {size}", self.size),
            ));
        }
        let temp_path = self.file.path().to_owned();
        self.file
            .as_file()
            .sync_all()
            .map_err(ImageError::io("flush", &temp_path))?;
        let hex = digest_hex(&digest).unwrap_or_default().to_owned();
        let target = self.dir.join(hex);
        pin(&digest);
        let file = self
            .file
            .persist(&target)
            .map_err(|e| ImageError::io("rename into place", &target)(e.error))?;
        // Blobs are content: readable by all, writable by none.
        let _ = file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o444));
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let blobs = BlobStore::new(dir.path());
        blobs.create_dirs().unwrap();
        (dir, blobs)
    }

    #[test]
    fn writes_verified_blobs_and_rejects_mismatches() {
        let (dir, blobs) = store();
        let digest = digest_of(b"hello");
        let mut pinned = None;
        let written = blobs
            .write_bytes(b"hello", Some(&digest), |d| pinned = Some(d.to_owned()))
            .unwrap();
        assert_eq!(written, digest);
        assert_eq!(pinned.as_deref(), Some(digest.as_str()));
        assert_eq!(blobs.read(&digest).unwrap(), b"hello");
        assert!(blobs.exists(&digest));

        let wrong = digest_of(b"other");
        let err = blobs
            .write_bytes(b"hello!", Some(&wrong), |_| {})
            .unwrap_err();
        assert!(
            err.to_string().contains("does not match its digest"),
            "{err}"
        );
        assert!(!blobs.exists(&wrong));
        // Nothing is left behind in tmp/ by the failed write.
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        let listed: Vec<String> = blobs.list().unwrap().into_iter().map(|(d, _)| d).collect();
        assert_eq!(listed, vec![digest.clone()]);
        assert!(blobs.remove(&digest).unwrap() > 0);
        assert_eq!(blobs.remove(&digest).unwrap(), 0);
    }

    #[test]
    fn reports_damage_on_read() {
        let (_dir, blobs) = store();
        let digest = blobs.write_bytes(b"{}", None, |_| {}).unwrap();
        let path = blobs.path(&digest).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        std::fs::write(&path, b"{ }").unwrap();
        let err = blobs.read(&digest).unwrap_err();
        assert!(err.to_string().contains("is damaged"), "{err}");
        assert!(blobs.path("sha256:xyz").is_err());
    }
}
