//! The store's record of what it holds, `refs.json`: references, unpacked
//! layers, last uses. Small, rewritten whole (temporary file, flush,
//! rename) after each change, so it is always either the old or the new
//! state.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ImageError;

/// The format written; a file with another is refused.
const VERSION: u32 = 1;

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RefRecord {
    /// The digest the reference resolved to in the registry or archive: an
    /// index or a manifest. It is the digest of the image's repo digest.
    pub target: String,
    /// The manifest for this platform (the target itself unless the target
    /// is an index).
    pub manifest: String,
}

/// An unpacked layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    /// The directory, `layers/<dir>`.
    pub dir: u64,
    /// Bytes it takes on disk.
    pub size: u64,
}

/// The persistent state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Persisted {
    /// Always [`VERSION`].
    pub version: u32,
    /// Normalized references (`name:tag` or `name@digest`) to what they
    /// point at.
    pub refs: BTreeMap<String, RefRecord>,
    /// Unpacked layers by `diff_id`.
    pub layers: BTreeMap<String, LayerRecord>,
    /// When each image (by id) was last used, in nanoseconds since the
    /// epoch.
    pub last_used: BTreeMap<String, u64>,
    /// The number the next unpacked layer's directory gets.
    pub next_layer: u64,
}

impl Default for Persisted {
    fn default() -> Self {
        Self {
            version: VERSION,
            refs: BTreeMap::new(),
            layers: BTreeMap::new(),
            last_used: BTreeMap::new(),
            next_layer: 1,
        }
    }
}

impl Persisted {
    /// Reads `path`; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(ImageError::io("read", path)(e)),
        };
        let damaged = |reason: String| ImageError::DamagedState {
            path: path.to_owned(),
            reason,
        };
        let state: Self = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
        if state.version != VERSION {
            return Err(damaged(format!(
                "format version {} is not {VERSION}, the one this program reads",
                state.version
            )));
        }
        Ok(state)
    }

    /// Writes the state to `path` atomically: a temporary file beside it,
    /// flushed, renamed over it, and the directory flushed.
    pub fn save(&self, path: &Path) -> Result<(), ImageError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| ImageError::Io {
            action: "encode",
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?;
        let mut file = tempfile::Builder::new()
            .prefix(".refs-")
            .tempfile_in(dir)
            .map_err(ImageError::io("create a temporary file in", dir))?;
        file.write_all(&bytes)
            .and_then(|()| file.as_file().sync_all())
            .map_err(ImageError::io("write", file.path().to_owned()))?;
        file.persist(path)
            .map_err(|e| ImageError::io("replace", path)(e.error))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(ImageError::io("flush", dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_a_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refs.json");
        assert!(Persisted::load(&path).unwrap().refs.is_empty());

        let mut state = Persisted::default();
        state.refs.insert(
            "docker.io/library/busybox:1.36".into(),
            RefRecord {
                target: "sha256:aa".into(),
                manifest: "sha256:bb".into(),
            },
        );
        state
            .layers
            .insert("sha256:cc".into(), LayerRecord { dir: 1, size: 4096 });
        state.save(&path).unwrap();
        let loaded = Persisted::load(&path).unwrap();
        assert_eq!(loaded.refs, state.refs);
        assert_eq!(loaded.layers, state.layers);

        std::fs::write(&path, b"{\"version\": 1, \"refs\": {").unwrap();
        let err = Persisted::load(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("damaged"), "{err}");

        std::fs::write(
            &path,
            br#"{"version": 9, "refs": {}, "layers": {}, "last_used": {}, "next_layer": 1}"#,
        )
        .unwrap();
        let err = Persisted::load(&path).unwrap_err().to_string();
        assert!(err.contains("version 9"), "{err}");
    }
}
