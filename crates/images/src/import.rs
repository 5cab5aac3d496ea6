//! Reading image archives: OCI image layouts and `docker save` archives,
//! as tar files, plain or compressed.
//!
//! The archive is read once, front to back. Blobs go straight into the blob
//! store as they pass (an OCI layout's `blobs/sha256/<hex>` checked against
//! its name; other large files, such as a docker archive's `layer.tar`,
//! stored under the digest they turn out to have), while the small JSON
//! files that describe the images are kept in memory. Which format it was
//! is decided at the end, from the files seen.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path};

use serde::Deserialize;

use crate::ImageError;
use crate::blobs::{BlobStore, digest_hex, digest_of};
use crate::manifest::{
    Document, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_MANIFEST, host_architecture,
    parse_document, select_platform,
};
use crate::reference::ImageRef;
use crate::unpack::decompress;

/// Files larger than this are never descriptions, always content.
const MAX_METADATA_FILE: u64 = 4 << 20;

/// How deep image indexes may nest before the archive is refused.
const MAX_INDEX_DEPTH: usize = 4;

/// The annotation containerd (and Docker 25+) give an OCI layout's index
/// entries: the full image name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// The OCI annotation for a reference name (often only a tag).
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image found in an archive, with its blobs in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Its normalized names (may be empty).
    pub refs: Vec<String>,
    /// The digest the archive names it by (an index or a manifest).
    pub target: String,
    /// Its manifest for this platform.
    pub manifest: String,
}

/// What reading the tar left: small files by path, and blobs ingested.
struct Contents {
    /// Small files (descriptions), by normalized path.
    files: HashMap<String, Vec<u8>>,
    /// Files stored as blobs, by normalized path.
    blobs: HashMap<String, String>,
    /// Symbolic and hard links, by normalized path, to the normalized path
    /// they point at.
    links: HashMap<String, String>,
}

impl Contents {
    /// The digest of the file at `path` (following links), storing it as a
    /// blob if it was kept in memory.
    fn blob(
        &self,
        path: &str,
        store: &BlobStore,
        pin: &dyn Fn(&str),
        archive: &str,
    ) -> Result<String, ImageError> {
        let mut path = path.to_owned();
        for _ in 0..16 {
            if let Some(digest) = self.blobs.get(&path) {
                return Ok(digest.clone());
            }
            if let Some(bytes) = self.files.get(&path) {
                let digest = digest_of(bytes);
                pin(&digest);
                if !store.exists(&digest) {
                    store.write_bytes(bytes, Some(&digest), |_| {})?;
                }
                return Ok(digest);
            }
            match self.links.get(&path) {
                Some(next) => path = next.clone(),
                None => break,
            }
        }
        Err(ImageError::invalid(
            archive,
            format!("the archive lacks {path}"),
        ))
    }
}

/// Normalizes a path inside the archive: no `./`, no leading `/`.
fn normalize_path(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}

/// Reads the archive at `path` into the blob store and returns the images
/// it holds. `pin` is called with each blob's digest before it is stored.
pub(crate) fn read_archive(
    path: &Path,
    store: &BlobStore,
    pin: &dyn Fn(&str),
) -> Result<Vec<Found>, ImageError> {
    let archive = path.display().to_string();
    let file = std::fs::File::open(path).map_err(ImageError::io("open", path))?;
    let decompressed = decompress(BufReader::with_capacity(1 << 16, file))
        .map_err(|e| ImageError::invalid(&archive, format!("cannot decompress: {e}")))?;
    let contents = read_tar(decompressed, store, pin, &archive)?;
    let has = |name: &str| contents.files.contains_key(name);
    if has("oci-layout") && has("index.json") {
        oci_layout(&contents, store, pin, &archive)
    } else if has("manifest.json") {
        docker_archive(&contents, store, pin, &archive)
    } else {
        Err(ImageError::invalid(
            &archive,
            "neither an OCI image layout (oci-layout, index.json) nor a docker archive (manifest.json)",
        ))
    }
}

/// One pass over the tar: blobs into the store, descriptions into memory.
fn read_tar(
    reader: impl Read,
    store: &BlobStore,
    pin: &dyn Fn(&str),
    archive: &str,
) -> Result<Contents, ImageError> {
    let bad = |e: io::Error| ImageError::invalid(archive, format!("unreadable tar: {e}"));
    let mut contents = Contents {
        files: HashMap::new(),
        blobs: HashMap::new(),
        links: HashMap::new(),
    };
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let Some(name) = normalize_path(&entry.path().map_err(bad)?) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = entry.link_name().map_err(bad)? else {
                continue;
            };
            // Symlinks are relative to their directory, hard links to the
            // archive's root.
            let base = if kind.is_symlink() {
                Path::new(&name)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(&target)
            } else {
                target.into_owned()
            };
            if let Some(target) = normalize_path(&base) {
                contents.links.insert(name, target);
            }
            continue;
        }
        if !kind.is_file() && kind != tar::EntryType::Continuous {
            continue;
        }
        let size = entry.header().size().map_err(bad)?;
        // `blobs/sha256/<hex>`: the name is the digest, and is checked.
        let named_digest = name
            .strip_prefix("blobs/")
            .map(|rest| rest.replacen('/', ":", 1))
            .filter(|d| digest_hex(d).is_some());
        let small_description = size <= MAX_METADATA_FILE
            && (name.ends_with(".json") || name == "oci-layout" || name == "repositories");
        if named_digest.is_none() && small_description {
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes).map_err(bad)?;
            contents.files.insert(name, bytes);
            continue;
        }
        if let Some(digest) = &named_digest {
            pin(digest);
            if store.exists(digest) {
                contents.blobs.insert(name, digest.clone());
                continue;
            }
        }
        let mut writer = store.writer()?;
        io::copy(&mut entry, &mut writer).map_err(bad)?;
        let digest = writer.finish(named_digest.as_deref(), Some(size), pin)?;
        contents.blobs.insert(name, digest);
    }
    Ok(contents)
}

/// The entries of an OCI layout's `index.json`.
#[derive(Deserialize)]
struct LayoutIndex {
    #[serde(default)]
    manifests: Vec<crate::manifest::Descriptor>,
}

/// Images of an OCI image layout: one per `index.json` entry, named by
/// its annotations.
fn oci_layout(
    contents: &Contents,
    store: &BlobStore,
    pin: &dyn Fn(&str),
    archive: &str,
) -> Result<Vec<Found>, ImageError> {
    let index: LayoutIndex = serde_json::from_slice(&contents.files["index.json"])
        .map_err(|e| ImageError::invalid(archive, format!("malformed index.json: {e}")))?;
    let mut found: Vec<Found> = Vec::new();
    for entry in &index.manifests {
        let name = entry.annotations.as_ref().and_then(|a| {
            a.get(CONTAINERD_NAME).or_else(|| {
                // A bare tag ("1.36") names no repository; only a full
                // reference can name the image.
                a.get(OCI_REF_NAME)
                    .filter(|n| n.contains('/') || n.contains(':'))
            })
        });
        let refs = match name {
            Some(name) => vec![ImageRef::parse(name)?.key()],
            None => Vec::new(),
        };
        pin(&entry.digest);
        let manifest = resolve_manifest(store, &entry.digest, archive)?;
        match found
            .iter_mut()
            .find(|f| f.target == entry.digest && f.manifest == manifest)
        {
            Some(existing) => existing.refs.extend(refs),
            None => found.push(Found {
                refs,
                target: entry.digest.clone(),
                manifest,
            }),
        }
    }
    if found.is_empty() {
        return Err(ImageError::invalid(archive, "index.json lists no images"));
    }
    Ok(found)
}

/// Follows image indexes from `digest` to the manifest for this machine.
fn resolve_manifest(store: &BlobStore, digest: &str, archive: &str) -> Result<String, ImageError> {
    let mut digest = digest.to_owned();
    for _ in 0..MAX_INDEX_DEPTH {
        let bytes = store.read(&digest).map_err(|e| match e {
            ImageError::Invalid { reason, .. } => ImageError::invalid(archive, reason),
            other => other,
        })?;
        match parse_document(&bytes).map_err(|r| ImageError::invalid(&digest, r))? {
            Document::Manifest(_) => return Ok(digest),
            Document::Index(index) => {
                digest = select_platform(&index, "linux", host_architecture())
                    .map_err(|r| ImageError::invalid(archive, r))?
                    .digest
                    .clone();
            }
        }
    }
    Err(ImageError::invalid(
        archive,
        format!("image indexes nest deeper than {MAX_INDEX_DEPTH}"),
    ))
}

/// One entry of a docker archive's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// Images of a docker archive. Such archives have no manifests, so one is
/// made for each image (OCI, pointing at the config and layer files as
/// they are), as containerd does on import.
fn docker_archive(
    contents: &Contents,
    store: &BlobStore,
    pin: &dyn Fn(&str),
    archive: &str,
) -> Result<Vec<Found>, ImageError> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(&contents.files["manifest.json"])
        .map_err(|e| ImageError::invalid(archive, format!("malformed manifest.json: {e}")))?;
    if entries.is_empty() {
        return Err(ImageError::invalid(
            archive,
            "manifest.json lists no images",
        ));
    }
    let mut found = Vec::new();
    for entry in entries {
        let config_path = normalize_path(Path::new(&entry.config)).unwrap_or_default();
        let config = contents.blob(&config_path, store, pin, archive)?;
        let config_size = std::fs::metadata(store.path(&config)?)
            .map_err(ImageError::io("stat", store.path(&config)?))?
            .len();
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let layer_path = normalize_path(Path::new(layer)).unwrap_or_default();
            let digest = contents.blob(&layer_path, store, pin, archive)?;
            let path = store.path(&digest)?;
            let size = std::fs::metadata(&path)
                .map_err(ImageError::io("stat", &path))?
                .len();
            let mut magic = [0u8; 2];
            let compressed = std::fs::File::open(&path)
                .and_then(|mut f| f.read_exact(&mut magic))
                .is_ok()
                && magic == [0x1f, 0x8b];
            layers.push(serde_json::json!({
                "mediaType": if compressed { OCI_LAYER_GZIP } else { OCI_LAYER_TAR },
                "digest": digest,
                "size": size,
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config, "size": config_size},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::invalid(archive, format!("cannot encode a manifest: {e}")))?;
        let digest = digest_of(&bytes);
        pin(&digest);
        store.write_bytes(&bytes, Some(&digest), |_| {})?;
        let refs = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|tag| ImageRef::parse(tag).map(|r| r.key()))
            .collect::<Result<Vec<_>, _>>()?;
        found.push(Found {
            refs,
            target: digest.clone(),
            manifest: digest,
        });
    }
    Ok(found)
}
