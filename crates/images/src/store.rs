//! [`ImageStore`]: references, manifests and layers under one directory.
//!
//! Concurrency. One mutex guards the state (references, layer records, pins)
//! and is held only for bookkeeping and quick file operations (an unlink, a
//! rename), never for a download or an unpack. Work that may take long is
//! ordered by keyed locks instead: one per reference for pulls (a second
//! pull of the same reference waits and then finds everything present), one
//! per layer `diff_id` for unpacking (two images sharing a layer unpack it
//! once). Content an operation is working with is *pinned* before the
//! operation checks whether it exists, and garbage collection never removes
//! pinned content, so a collection running beside a pull cannot delete a
//! blob or layer the pull has just found or written but not yet referenced.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use parking_lot::Mutex;

use crate::blobs::BlobStore;
use crate::manifest::{Document, parse_config, parse_document};
use crate::reference::{ImageRef, as_image_id, is_tag_reference, repository_of};
use crate::state::{LayerRecord, Persisted, RefRecord};
use crate::unpack::{disk_usage, unpack_layer};
use crate::{GcReport, Image, ImageConfig, ImageError};

/// The node's image store, under one directory (`DATA/images`).
///
/// Cheap to clone (clones share the store) and safe to use from many tasks
/// and threads at once. One process at a time may open a directory.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

/// The shared part of an [`ImageStore`].
pub(crate) struct Inner {
    /// The store's directory.
    pub root: PathBuf,
    /// `blobs/sha256/`.
    pub blobs: BlobStore,
    /// Everything the mutex guards.
    state: Mutex<State>,
    /// One lock per reference being pulled.
    pub pull_locks: KeyedLocks<tokio::sync::Mutex<()>>,
    /// One lock per layer being unpacked.
    layer_locks: KeyedLocks<Mutex<()>>,
    /// The exclusive lock on `lock`, held while the store is open.
    _lock: Flock<File>,
}

/// The state in memory.
struct State {
    /// What `refs.json` holds.
    saved: Persisted,
    /// The manifests references point at, parsed, by manifest digest.
    manifests: HashMap<String, Manifested>,
    /// Content in use by running operations (blob digests and layer
    /// `diff_id`s), with a count per key.
    pins: HashMap<String, usize>,
}

/// What the store knows of a manifest and its config.
#[derive(Debug, Clone)]
pub(crate) struct Manifested {
    /// The config digest: the image id.
    pub id: String,
    /// The config's process defaults.
    pub config: ImageConfig,
    /// The layer blobs, bottom first.
    pub layer_blobs: Vec<String>,
    /// The layers' `diff_id`s, bottom first.
    pub diff_ids: Vec<String>,
    /// Bytes of the manifest, config and layer blobs.
    pub blob_bytes: u64,
}

/// Reads and checks the manifest `digest` and its config from the blobs.
pub(crate) fn load_manifest(blobs: &BlobStore, digest: &str) -> Result<Manifested, ImageError> {
    let bytes = blobs.read(digest)?;
    let manifest = match parse_document(&bytes).map_err(|r| ImageError::invalid(digest, r))? {
        Document::Manifest(manifest) => manifest,
        Document::Index(_) => {
            return Err(ImageError::invalid(
                digest,
                "is an image index, not a manifest",
            ));
        }
    };
    let config_bytes = blobs.read(&manifest.config.digest)?;
    let config =
        parse_config(&config_bytes).map_err(|r| ImageError::invalid(&manifest.config.digest, r))?;
    if !config.os.is_empty() && config.os != "linux" {
        return Err(ImageError::invalid(
            digest,
            format!("the image is for {}, not linux", config.os),
        ));
    }
    if config.diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::invalid(
            digest,
            format!(
                "the manifest has {} layers but its config lists {} diff_ids",
                manifest.layers.len(),
                config.diff_ids.len()
            ),
        ));
    }
    Ok(Manifested {
        id: manifest.config.digest.clone(),
        config: config.config,
        layer_blobs: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        diff_ids: config.diff_ids,
        blob_bytes: bytes.len() as u64
            + manifest.config.size
            + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
    })
}

/// Locks by key, made on demand and dropped when unused.
pub(crate) struct KeyedLocks<T> {
    locks: Mutex<HashMap<String, Weak<T>>>,
}

impl<T: Default> KeyedLocks<T> {
    fn new() -> Self {
        Self {
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The lock for `key`; all callers holding an `Arc` for the same key
    /// share one lock.
    pub fn get(&self, key: &str) -> Arc<T> {
        let mut locks = self.locks.lock();
        if let Some(lock) = locks.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(T::default());
        locks.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

/// Content pinned for one operation, unpinned when dropped.
pub(crate) struct Pins {
    inner: Arc<Inner>,
    keys: Mutex<Vec<String>>,
}

impl Pins {
    pub fn new(inner: Arc<Inner>) -> Self {
        Self {
            inner,
            keys: Mutex::new(Vec::new()),
        }
    }

    /// Protects `key` (a blob digest or a layer `diff_id`) from garbage
    /// collection until this is dropped.
    pub fn pin(&self, key: &str) {
        *self
            .inner
            .state
            .lock()
            .pins
            .entry(key.to_owned())
            .or_default() += 1;
        self.keys.lock().push(key.to_owned());
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let mut state = self.inner.state.lock();
        for key in self.keys.get_mut().drain(..) {
            if let Some(count) = state.pins.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    state.pins.remove(&key);
                }
            }
        }
    }
}

/// Nanoseconds since the epoch: uses in quick succession still order.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl ImageStore {
    /// Opens (creating if needed) the store in `root`: `blobs/sha256/`,
    /// `layers/`, `tmp/` and `refs.json`. Leftovers of operations a crash
    /// interrupted are removed; references whose content is missing or
    /// damaged are dropped with a warning, so the node can start and pull
    /// them again. A `refs.json` that cannot be parsed is an error naming
    /// it.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let blobs = BlobStore::new(root);
        for dir in [root.to_owned(), root.join("layers"), root.join("tmp")] {
            std::fs::create_dir_all(&dir).map_err(ImageError::io("create", &dir))?;
        }
        blobs.create_dirs()?;
        let lock_path = root.join("lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(ImageError::io("open", &lock_path))?;
        let lock =
            Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                if errno == nix::errno::Errno::EWOULDBLOCK {
                    ImageError::Locked {
                        path: root.to_owned(),
                    }
                } else {
                    ImageError::io("lock", &lock_path)(errno.into())
                }
            })?;

        // Nobody else has the store open, so whatever is in tmp/ is left
        // from a crash.
        let tmp = root.join("tmp");
        for entry in std::fs::read_dir(&tmp).map_err(ImageError::io("list", &tmp))? {
            let path = entry.map_err(ImageError::io("list", &tmp))?.path();
            let removed = if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(ImageError::io("remove", &path))?;
        }

        let state_path = root.join("refs.json");
        let mut saved = Persisted::load(&state_path)?;
        let mut changed = false;
        let layers_dir = root.join("layers");
        saved.layers.retain(|diff_id, record| {
            let present = layers_dir.join(record.dir.to_string()).is_dir();
            if !present {
                tracing::warn!(%diff_id, dir = record.dir, "unpacked layer is missing; forgetting it");
                changed = true;
            }
            present
        });
        // Layer directories nobody recorded: unpacked, renamed, and then a
        // crash before the record was written.
        let recorded: HashSet<String> = saved.layers.values().map(|r| r.dir.to_string()).collect();
        for entry in std::fs::read_dir(&layers_dir).map_err(ImageError::io("list", &layers_dir))? {
            let entry = entry.map_err(ImageError::io("list", &layers_dir))?;
            if !recorded.contains(entry.file_name().to_string_lossy().as_ref()) {
                let path = entry.path();
                tracing::warn!(path = %path.display(), "removing an unrecorded layer directory");
                std::fs::remove_dir_all(&path).map_err(ImageError::io("remove", &path))?;
            }
        }

        let mut manifests = HashMap::new();
        let mut broken = Vec::new();
        for (key, record) in &saved.refs {
            if manifests.contains_key(&record.manifest) {
                continue;
            }
            match load_manifest(&blobs, &record.manifest) {
                Ok(manifested) => {
                    manifests.insert(record.manifest.clone(), manifested);
                }
                Err(e) => {
                    tracing::warn!(reference = %key, "dropping an image whose content is damaged: {e}");
                    broken.push(record.manifest.clone());
                }
            }
        }
        if !broken.is_empty() {
            saved.refs.retain(|_, r| !broken.contains(&r.manifest));
            changed = true;
        }
        if changed {
            saved.save(&state_path)?;
        }

        let store = Self {
            inner: Arc::new(Inner {
                root: root.to_owned(),
                blobs,
                state: Mutex::new(State {
                    saved,
                    manifests,
                    pins: HashMap::new(),
                }),
                pull_locks: KeyedLocks::new(),
                layer_locks: KeyedLocks::new(),
                _lock: lock,
            }),
        };
        store.restore_layers()?;
        Ok(store)
    }

    /// Unpacks again, from their blobs, the layers of recorded images whose
    /// directories have gone missing; an image whose layer cannot be
    /// restored is dropped with a warning.
    fn restore_layers(&self) -> Result<(), ImageError> {
        let missing: Vec<(String, Vec<(String, String)>)> = {
            let state = self.inner.state.lock();
            state
                .manifests
                .iter()
                .filter(|(_, m)| {
                    m.diff_ids
                        .iter()
                        .any(|d| !state.saved.layers.contains_key(d))
                })
                .map(|(digest, m)| {
                    let layers = m
                        .layer_blobs
                        .iter()
                        .cloned()
                        .zip(m.diff_ids.iter().cloned());
                    (digest.clone(), layers.collect())
                })
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let pins = Pins::new(self.inner.clone());
        let mut broken = Vec::new();
        for (manifest, layers) in missing {
            for (blob, diff_id) in layers {
                if let Err(e) = self.ensure_layer(&blob, &diff_id, &pins) {
                    tracing::warn!(%manifest, "dropping an image whose layer cannot be restored: {e}");
                    broken.push(manifest);
                    break;
                }
            }
        }
        if !broken.is_empty() {
            let mut state = self.inner.state.lock();
            state
                .saved
                .refs
                .retain(|_, r| !broken.contains(&r.manifest));
            state.manifests.retain(|digest, _| !broken.contains(digest));
            self.save(&state)?;
        }
        Ok(())
    }

    /// Imports the images in an archive: an OCI image layout or a
    /// `docker save` archive (told apart by their files), as a tar file,
    /// plain or compressed with gzip or zstd. Images are named by the
    /// archive (`io.containerd.image.name` or a full
    /// `org.opencontainers.image.ref.name` annotation; `RepoTags`); an image
    /// without a name is kept under its id. Returns the images, each once.
    pub async fn import(&self, tarball: &Path) -> Result<Vec<Image>, ImageError> {
        let store = self.clone();
        let path = tarball.to_owned();
        tokio::task::spawn_blocking(move || store.import_blocking(&path))
            .await
            .map_err(|e| {
                ImageError::invalid(
                    tarball.display().to_string(),
                    format!("the import failed: {e}"),
                )
            })?
    }

    /// [`ImageStore::import`], on a blocking thread.
    fn import_blocking(&self, tarball: &Path) -> Result<Vec<Image>, ImageError> {
        let pins = Pins::new(self.inner.clone());
        let found = crate::import::read_archive(tarball, &self.inner.blobs, &|d| pins.pin(d))?;
        let mut images: Vec<Image> = Vec::new();
        for image in found {
            let committed = self.commit(&image.refs, &image.target, &image.manifest, &pins)?;
            images.retain(|i| i.id != committed.id);
            images.push(committed);
        }
        tracing::info!(archive = %tarball.display(), count = images.len(), "imported images");
        Ok(images)
    }

    /// The image a reference (normalized or not, by tag or by digest) or an
    /// image id (`sha256:<hex>` or the bare hex) names, if present.
    pub fn get(&self, reference_or_id: &str) -> Option<Image> {
        let state = self.inner.state.lock();
        let id = state.resolve(reference_or_id)?;
        self.image(&state, &id)
    }

    /// Every image, ordered by id.
    pub fn list(&self) -> Vec<Image> {
        let state = self.inner.state.lock();
        let ids: BTreeSet<String> = state
            .saved
            .refs
            .values()
            .filter_map(|r| state.manifests.get(&r.manifest))
            .map(|m| m.id.clone())
            .collect();
        ids.iter().filter_map(|id| self.image(&state, id)).collect()
    }

    /// The image's unpacked layer directories, top layer first: the order
    /// overlayfs' `lowerdir` takes them in.
    pub fn layers(&self, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
        let state = self.inner.state.lock();
        let manifested = state
            .manifested(&image.id)
            .ok_or_else(|| ImageError::NotFound {
                reference: image.id.clone(),
                detail: "not in the image store".to_owned(),
            })?;
        manifested
            .diff_ids
            .iter()
            .rev()
            .map(|diff_id| {
                let record = state.saved.layers.get(diff_id).ok_or_else(|| {
                    ImageError::invalid(
                        &image.id,
                        format!(
                            "layer {diff_id} is not unpacked; remove the image and pull it again"
                        ),
                    )
                })?;
                Ok(self.layer_dir(record.dir))
            })
            .collect()
    }

    /// Removes an image. A tag reference (`busybox:1.36`) removes only that
    /// name, and the image with it if it was its last; an image id removes
    /// the image with all its names; a digest reference removes the
    /// references to that digest. Content no remaining image uses is
    /// deleted. The caller must not remove an image a container uses.
    pub fn remove(&self, reference_or_id: &str) -> Result<(), ImageError> {
        let mut trash = Vec::new();
        {
            let mut state = self.inner.state.lock();
            let keys = state.keys_to_remove(reference_or_id);
            if keys.is_empty() {
                return Err(ImageError::NotFound {
                    reference: normalized_or_raw(reference_or_id),
                    detail: "not in the image store".to_owned(),
                });
            }
            for key in &keys {
                state.saved.refs.remove(key);
            }
            self.prune(&mut state, &mut trash)?;
            self.save(&state)?;
        }
        self.empty_trash(trash);
        Ok(())
    }

    /// Records a use of the image (by id or reference) now, for the order
    /// in which garbage collection removes images. Failing to record it is
    /// logged, not returned: it only affects that order.
    pub fn touch(&self, id: &str) {
        let mut state = self.inner.state.lock();
        let Some(id) = state.resolve(id) else {
            tracing::debug!(image = %id, "touch of an image not in the store");
            return;
        };
        state.saved.last_used.insert(id, now());
        if let Err(e) = self.save(&state) {
            tracing::warn!("cannot record an image use: {e}");
        }
    }

    /// Bytes the store takes on disk: blobs plus unpacked layers.
    pub fn usage(&self) -> Result<u64, ImageError> {
        let layers: u64 = {
            let state = self.inner.state.lock();
            state.saved.layers.values().map(|l| l.size).sum()
        };
        let blobs: u64 = self.inner.blobs.list()?.iter().map(|(_, size)| size).sum();
        Ok(layers + blobs)
    }

    /// Frees at least `bytes_to_free` bytes if it can: first content no
    /// image uses (left by interrupted or replaced pulls), then whole
    /// images, least recently used first, never one named in `in_use` (by
    /// id, name or digest reference) nor one stored or used less than
    /// `min_age` ago (the kubelet's `imageMinimumGCAge`: an image just
    /// pulled or imported is there for a pod about to start). Layers and
    /// blobs shared with images that stay are kept. Stops as soon as enough
    /// is freed.
    pub fn collect_garbage(
        &self,
        in_use: &HashSet<String>,
        bytes_to_free: u64,
        min_age: Duration,
    ) -> Result<GcReport, ImageError> {
        let newest = now().saturating_sub(u64::try_from(min_age.as_nanos()).unwrap_or(u64::MAX));
        let mut report = GcReport::default();
        let mut trash = Vec::new();
        {
            let mut state = self.inner.state.lock();
            report.bytes_freed += self.prune(&mut state, &mut trash)?;
            let protected: HashSet<String> =
                in_use.iter().filter_map(|r| state.resolve(r)).collect();
            let mut candidates: Vec<(u64, String)> = state
                .image_ids()
                .into_iter()
                .filter(|id| !protected.contains(id))
                .map(|id| (state.saved.last_used.get(&id).copied().unwrap_or(0), id))
                .filter(|(used, _)| *used <= newest)
                .collect();
            candidates.sort();
            for (_, id) in candidates {
                if report.bytes_freed >= bytes_to_free {
                    break;
                }
                let keys = state.keys_of(&id);
                for key in &keys {
                    state.saved.refs.remove(key);
                }
                report.bytes_freed += self.prune(&mut state, &mut trash)?;
                tracing::info!(image = %id, "garbage collection removed an image");
                report.removed.push(id);
            }
            self.save(&state)?;
        }
        self.empty_trash(trash);
        Ok(report)
    }

    /// The directory of unpacked layer `n`.
    fn layer_dir(&self, n: u64) -> PathBuf {
        self.inner.root.join("layers").join(n.to_string())
    }

    /// Writes the state to `refs.json`.
    fn save(&self, state: &State) -> Result<(), ImageError> {
        state.saved.save(&self.inner.root.join("refs.json"))
    }

    /// Builds the [`Image`] with id `id` from the state.
    fn image(&self, state: &State, id: &str) -> Option<Image> {
        let mut names = BTreeSet::new();
        let mut repo_digests = BTreeSet::new();
        let mut manifested = None;
        for (key, record) in &state.saved.refs {
            let Some(m) = state.manifests.get(&record.manifest) else {
                continue;
            };
            if m.id != id {
                continue;
            }
            manifested = Some(m);
            if as_image_id(key).is_some() {
                // A nameless image's own entry.
                continue;
            }
            if is_tag_reference(key) {
                names.insert(key.clone());
            }
            repo_digests.insert(format!("{}@{}", repository_of(key), record.target));
        }
        let manifested = manifested?;
        let layer_bytes: u64 = manifested
            .diff_ids
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|d| state.saved.layers.get(d))
            .map(|l| l.size)
            .sum();
        Some(Image {
            id: id.to_owned(),
            names: names.into_iter().collect(),
            repo_digests: repo_digests.into_iter().collect(),
            size: manifested.blob_bytes + layer_bytes,
            config: manifested.config.clone(),
        })
    }

    /// Deletes the content no reference reaches and nothing pins: blobs
    /// right away, layer directories renamed into `tmp/` and listed in
    /// `trash` for [`ImageStore::empty_trash`] to delete once the lock is
    /// released. Returns the bytes freed.
    fn prune(&self, state: &mut State, trash: &mut Vec<PathBuf>) -> Result<u64, ImageError> {
        let mut live_blobs = HashSet::new();
        let mut live_layers = HashSet::new();
        let mut live_manifests = HashSet::new();
        for record in state.saved.refs.values() {
            live_blobs.insert(record.target.clone());
            live_blobs.insert(record.manifest.clone());
            live_manifests.insert(record.manifest.clone());
            if let Some(m) = state.manifests.get(&record.manifest) {
                live_blobs.insert(m.id.clone());
                live_blobs.extend(m.layer_blobs.iter().cloned());
                live_layers.extend(m.diff_ids.iter().cloned());
            }
        }
        state
            .manifests
            .retain(|digest, _| live_manifests.contains(digest));
        let ids: HashSet<String> = state.manifests.values().map(|m| m.id.clone()).collect();
        state.saved.last_used.retain(|id, _| ids.contains(id));

        let mut freed = 0;
        for (digest, _) in self.inner.blobs.list()? {
            if !live_blobs.contains(&digest) && !state.pins.contains_key(&digest) {
                freed += self.inner.blobs.remove(&digest)?;
            }
        }
        let dead: Vec<String> = state
            .saved
            .layers
            .keys()
            .filter(|d| !live_layers.contains(*d) && !state.pins.contains_key(*d))
            .cloned()
            .collect();
        for diff_id in dead {
            let Some(record) = state.saved.layers.remove(&diff_id) else {
                continue;
            };
            let dir = self.layer_dir(record.dir);
            let doomed = self.inner.root.join("tmp").join(format!(
                "trash-{}-{}",
                record.dir,
                std::process::id()
            ));
            std::fs::rename(&dir, &doomed).map_err(ImageError::io("move away", &dir))?;
            trash.push(doomed);
            freed += record.size;
        }
        Ok(freed)
    }

    /// Deletes layer directories [`ImageStore::prune`] moved away.
    fn empty_trash(&self, trash: Vec<PathBuf>) {
        for dir in trash {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                // open() clears tmp/ at the next start.
                tracing::warn!(path = %dir.display(), "cannot delete a removed layer: {e}");
            }
        }
    }

    /// Makes sure the layer `diff_id`, stored as `blob`, is unpacked.
    /// Runs on a blocking thread.
    pub(crate) fn ensure_layer(
        &self,
        blob: &str,
        diff_id: &str,
        pins: &Pins,
    ) -> Result<(), ImageError> {
        pins.pin(diff_id);
        let lock = self.inner.layer_locks.get(diff_id);
        let _unpacking = lock.lock();
        if self.inner.state.lock().saved.layers.contains_key(diff_id) {
            return Ok(());
        }
        let tmp = self.inner.root.join("tmp");
        let dir = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(&tmp)
            .map_err(ImageError::io("create a directory in", &tmp))?;
        let started = std::time::Instant::now();
        let unpacked = unpack_layer(self.inner.blobs.open(blob)?, dir.path(), blob)?;
        if unpacked != diff_id {
            return Err(ImageError::invalid(
                blob,
                format!(
                    "the layer unpacks to content {unpacked}, but the image config says {diff_id}"
                ),
            ));
        }
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(ImageError::io("chmod", dir.path()))?;
        let size = disk_usage(dir.path())?;
        tracing::debug!(%blob, %diff_id, size, elapsed = ?started.elapsed(), "unpacked a layer");

        let mut state = self.inner.state.lock();
        let n = state.saved.next_layer;
        let target = self.layer_dir(n);
        let kept = dir.keep();
        if let Err(e) = std::fs::rename(&kept, &target) {
            let _ = std::fs::remove_dir_all(&kept);
            return Err(ImageError::io("rename into place", &target)(e));
        }
        state.saved.next_layer = n + 1;
        state
            .saved
            .layers
            .insert(diff_id.to_owned(), LayerRecord { dir: n, size });
        self.save(&state)
    }

    /// Records an image whose blobs are all present: unpacks its layers,
    /// points `refs` at it (the image keeps an entry of its own if it has
    /// no names), and returns it. A reference moved off another image
    /// leaves that image nameless rather than gone, since containers may
    /// still run it. Runs on a blocking thread.
    pub(crate) fn commit(
        &self,
        refs: &[String],
        target: &str,
        manifest_digest: &str,
        pins: &Pins,
    ) -> Result<Image, ImageError> {
        let manifested = load_manifest(&self.inner.blobs, manifest_digest)?;
        for (blob, diff_id) in manifested.layer_blobs.iter().zip(&manifested.diff_ids) {
            self.ensure_layer(blob, diff_id, pins)?;
        }
        let id = manifested.id.clone();
        let mut state = self.inner.state.lock();
        state
            .manifests
            .insert(manifest_digest.to_owned(), manifested);
        let record = RefRecord {
            target: target.to_owned(),
            manifest: manifest_digest.to_owned(),
        };
        for key in refs {
            let previous = state.saved.refs.insert(key.clone(), record.clone());
            let Some(previous) = previous else { continue };
            let Some(old_id) = state
                .manifests
                .get(&previous.manifest)
                .map(|m| m.id.clone())
            else {
                continue;
            };
            if old_id != id && state.keys_of(&old_id).is_empty() {
                state.saved.refs.insert(old_id, previous);
            }
        }
        if state.keys_of(&id).is_empty() {
            state.saved.refs.insert(id.clone(), record);
        } else if !refs.is_empty() {
            // Named now: its nameless entry goes.
            state.saved.refs.remove(&id);
        }
        state.saved.last_used.insert(id.clone(), now());
        self.save(&state)?;
        self.image(&state, &id)
            .ok_or_else(|| ImageError::invalid(&id, "vanished while being recorded"))
    }

    /// Writes a small blob (a manifest, an index) held in memory.
    pub(crate) fn write_blob(
        &self,
        bytes: &[u8],
        expected: &str,
        pins: &Pins,
    ) -> Result<(), ImageError> {
        pins.pin(expected);
        if self.inner.blobs.exists(expected) {
            return Ok(());
        }
        self.inner
            .blobs
            .write_bytes(bytes, Some(expected), |_| {})?;
        Ok(())
    }
}

/// The normalized form of a reference for messages, or the input as given.
fn normalized_or_raw(reference: &str) -> String {
    ImageRef::parse(reference).map_or_else(|_| reference.to_owned(), |r| r.key())
}

impl State {
    /// The image id a reference or id names, if the store has it.
    fn resolve(&self, reference_or_id: &str) -> Option<String> {
        if let Some(id) = as_image_id(reference_or_id)
            && self.manifested(&id).is_some()
        {
            return Some(id);
        }
        let parsed = ImageRef::parse(reference_or_id).ok()?;
        if let Some(record) = self.saved.refs.get(&parsed.key()) {
            return self.manifests.get(&record.manifest).map(|m| m.id.clone());
        }
        // A digest the store knows under another reference of the same
        // repository (pulled by tag, asked for by digest).
        let digest = parsed.digest.as_deref()?;
        let name = parsed.name();
        self.saved
            .refs
            .iter()
            .find(|(key, r)| {
                as_image_id(key).is_none()
                    && repository_of(key) == name
                    && (r.target == digest || r.manifest == digest)
            })
            .and_then(|(_, r)| self.manifests.get(&r.manifest))
            .map(|m| m.id.clone())
    }

    /// The references (keys) a removal of `reference_or_id` takes away.
    fn keys_to_remove(&self, reference_or_id: &str) -> Vec<String> {
        if let Some(id) = as_image_id(reference_or_id)
            && self.manifested(&id).is_some()
        {
            return self.keys_of(&id);
        }
        let Ok(parsed) = ImageRef::parse(reference_or_id) else {
            return Vec::new();
        };
        let key = parsed.key();
        if self.saved.refs.contains_key(&key) {
            return vec![key];
        }
        let Some(digest) = parsed.digest.as_deref() else {
            return Vec::new();
        };
        let name = parsed.name();
        self.saved
            .refs
            .iter()
            .filter(|(key, r)| {
                as_image_id(key).is_none()
                    && repository_of(key) == name
                    && (r.target == digest || r.manifest == digest)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Every reference key of image `id`.
    fn keys_of(&self, id: &str) -> Vec<String> {
        self.saved
            .refs
            .iter()
            .filter(|(_, r)| self.manifests.get(&r.manifest).is_some_and(|m| m.id == id))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The ids of all images.
    fn image_ids(&self) -> BTreeSet<String> {
        self.saved
            .refs
            .values()
            .filter_map(|r| self.manifests.get(&r.manifest))
            .map(|m| m.id.clone())
            .collect()
    }

    /// A manifest of image `id` that a reference points at.
    fn manifested(&self, id: &str) -> Option<&Manifested> {
        self.saved
            .refs
            .values()
            .filter_map(|r| self.manifests.get(&r.manifest))
            .find(|m| m.id == id)
    }
}
