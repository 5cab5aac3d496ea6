//! A pod's volumes on the node, under `DATA/pods/<uid>/volumes/<name>`.
//!
//! emptyDir is a directory (a tmpfs for `medium: Memory`, sized by
//! `sizeLimit`); hostPath is checked against its `type`; configMap, secret,
//! downwardAPI and projected volumes are files the agent writes, the way the
//! kubelet's atomic writer does: each version in a directory of its own
//! (`..2026_12_03_14_00_00.123`), `..data` a symlink to the current one,
//! and every visible name a symlink through `..data`, so a container sees
//! an update all at once and never half of one. Secrets and projected
//! volumes live on a tmpfs, never on disk. `refresh` rewrites the file
//! volumes when their sources changed, so updates appear in place.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod,
    Secret, ServiceAccount, Volume, VolumeProjection,
};
use kinds::storage::{LOCAL_PATH_PROVISIONER, PROVISIONED_BY, claim_volume_name};
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::env::{PodFacts, field, resource_field};

/// A volume that could not be set up: the pod waits, with this message in
/// a `FailedMount` event.
#[derive(Debug, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
pub(crate) struct VolumeError {
    pub(crate) volume: String,
    pub(crate) message: String,
}

/// Where each volume of a pod is on the host.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodVolumes {
    /// Volume name → directory (or file, for hostPath files).
    pub(crate) paths: HashMap<String, PathBuf>,
    /// Volumes the containers must see read-only whatever the mount says.
    pub(crate) read_only: Vec<String>,
    /// The projected service account tokens, by volume and path, kept until they are due
    /// for renewal: the periodic refresh rewrites a volume only when a source changed.
    pub(crate) tokens: Tokens,
}

impl PodVolumes {
    /// When the first projected service account token is due for renewal.
    pub(crate) fn renew_at(&self) -> Option<std::time::Instant> {
        self.tokens.values().map(|t| t.renew).min()
    }
}

/// Projected service account tokens by (volume name, path in the volume).
pub(crate) type Tokens = HashMap<(String, String), Token>;

/// A service account token and when to ask for a new one.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) token: String,
    pub(crate) renew: std::time::Instant,
}

/// The pod's volume directory.
pub(crate) fn pod_dir(pods_root: &Path, uid: &str) -> PathBuf {
    pods_root.join(uid).join("volumes")
}

fn err(volume: &str, message: impl Into<String>) -> VolumeError {
    VolumeError {
        volume: volume.to_owned(),
        message: message.into(),
    }
}

/// Sets up (or brings up to date) every volume of the pod; `tokens` are those of the last
/// setup, reused until they are due for renewal.
pub(crate) async fn setup(
    client: &kube::Client,
    pods_root: &Path,
    pod: &Pod,
    facts: &PodFacts,
    tokens: &Tokens,
) -> Result<PodVolumes, VolumeError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let root = pod_dir(pods_root, uid);
    std::fs::create_dir_all(&root).map_err(|e| err("", format!("{}: {e}", root.display())))?;
    let mut out = PodVolumes::default();
    let fs_group = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group);
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let dir = root.join(&v.name);
        let path = setup_one(client, pod, v, &dir, facts, tokens, &mut out).await?;
        if let Some(gid) = fs_group
            && (v.empty_dir.is_some()
                || v.config_map.is_some()
                || v.secret.is_some()
                || v.projected.is_some())
        {
            chown_group(&path, gid).map_err(|e| err(&v.name, e.to_string()))?;
        }
        out.paths.insert(v.name.clone(), path);
    }
    Ok(out)
}

async fn setup_one(
    client: &kube::Client,
    pod: &Pod,
    v: &Volume,
    dir: &Path,
    facts: &PodFacts,
    tokens: &Tokens,
    out: &mut PodVolumes,
) -> Result<PathBuf, VolumeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let io = |e: std::io::Error| err(&v.name, format!("{}: {e}", dir.display()));
    if let Some(e) = &v.empty_dir {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        }
        if e.medium.as_deref() == Some("Memory") {
            let size = e
                .size_limit
                .as_ref()
                .and_then(|q| kinds::parse_quantity(&q.0))
                .map(|q| (q.milli_value() / 1000) as u64);
            mount_tmpfs(dir, size, 0o777).map_err(io)?;
        }
        return Ok(dir.to_owned());
    }
    if let Some(h) = &v.host_path {
        return host_path(&v.name, &h.path, h.type_.as_deref().unwrap_or_default());
    }
    if let Some(c) = &v.persistent_volume_claim {
        if c.read_only == Some(true) {
            out.read_only.push(v.name.clone());
        }
        return claimed_volume(client, ns, &v.name, &c.claim_name).await;
    }
    if let Some(c) = &v.config_map {
        out.read_only.push(v.name.clone());
        let files = match named::<ConfigMap>(client, ns, &c.name, c.optional)
            .await
            .map_err(|m| err(&v.name, m))?
        {
            Some(cm) => config_map_files(&cm, c.items.as_deref(), c.default_mode.unwrap_or(0o644))
                .map_err(|m| err(&v.name, m))?,
            None => BTreeMap::new(),
        };
        write_atomic(dir, &files).map_err(io)?;
        return Ok(dir.to_owned());
    }
    if let Some(s) = &v.secret {
        out.read_only.push(v.name.clone());
        let name = s.secret_name.clone().unwrap_or_default();
        let files = match named::<Secret>(client, ns, &name, s.optional)
            .await
            .map_err(|m| err(&v.name, m))?
        {
            Some(secret) => {
                secret_files(&secret, s.items.as_deref(), s.default_mode.unwrap_or(0o644))
                    .map_err(|m| err(&v.name, m))?
            }
            None => BTreeMap::new(),
        };
        ensure_tmpfs(dir).map_err(io)?;
        write_atomic(dir, &files).map_err(io)?;
        return Ok(dir.to_owned());
    }
    if let Some(d) = &v.downward_api {
        out.read_only.push(v.name.clone());
        let files = downward_files(
            pod,
            d.items.as_deref().unwrap_or_default(),
            d.default_mode.unwrap_or(0o644),
            facts,
        )
        .map_err(|m| err(&v.name, m))?;
        write_atomic(dir, &files).map_err(io)?;
        return Ok(dir.to_owned());
    }
    if let Some(p) = &v.projected {
        out.read_only.push(v.name.clone());
        let mode = p.default_mode.unwrap_or(0o644);
        // The sources that ask the API server (the token, config maps, secrets) are
        // fetched at once; their files are laid down in the sources' order.
        let fetched = futures::future::join_all(p.sources.iter().flatten().map(|source| {
            let cached = source
                .service_account_token
                .as_ref()
                .and_then(|t| tokens.get(&(v.name.clone(), t.path.clone())))
                .filter(|t| std::time::Instant::now() < t.renew);
            projected_source(client, pod, facts, source, mode, cached)
        }))
        .await;
        let mut files = BTreeMap::new();
        for source in fetched {
            let (more, token) = source.map_err(|m| err(&v.name, m))?;
            files.extend(more);
            if let Some((path, token)) = token {
                out.tokens.insert((v.name.clone(), path), token);
            }
        }
        ensure_tmpfs(dir).map_err(io)?;
        write_atomic(dir, &files).map_err(io)?;
        return Ok(dir.to_owned());
    }
    let kind = serde_json::to_value(v)
        .ok()
        .and_then(|j| {
            j.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "unknown".into());
    Err(err(
        &v.name,
        format!("volumes of type {kind} are not supported on this node"),
    ))
}

/// The config map or secret a volume names: `None` when it is missing and `optional`, an
/// error naming it when it is missing otherwise.
async fn named<K>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<K>, String>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api
        .get_opt(name)
        .await
        .map_err(|e| crate::api_message(&e))?
    {
        Some(object) => Ok(Some(object)),
        None if optional == Some(true) => Ok(None),
        None => Err(format!(
            "{} \"{name}\" not found",
            K::kind(&()).to_lowercase()
        )),
    }
}

/// The files of one source of a projected volume, and its token with its path if it is one:
/// `cached` if given (not yet due for renewal), else a new one.
async fn projected_source(
    client: &kube::Client,
    pod: &Pod,
    facts: &PodFacts,
    source: &VolumeProjection,
    mode: i32,
    cached: Option<&Token>,
) -> Result<(Files, Option<(String, Token)>), String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut files = Files::new();
    let mut token_used = None;
    if let Some(c) = &source.config_map
        && let Some(cm) = named::<ConfigMap>(client, ns, &c.name, c.optional).await?
    {
        files.extend(config_map_files(&cm, c.items.as_deref(), mode)?);
    }
    if let Some(s) = &source.secret
        && let Some(secret) = named::<Secret>(client, ns, &s.name, s.optional).await?
    {
        files.extend(secret_files(&secret, s.items.as_deref(), mode)?);
    }
    if let Some(d) = &source.downward_api {
        files.extend(downward_files(
            pod,
            d.items.as_deref().unwrap_or_default(),
            mode,
            facts,
        )?);
    }
    if let Some(t) = &source.service_account_token {
        let token = match cached {
            Some(token) => token.clone(),
            None => {
                let (token, ttl) =
                    request_token(client, pod, t.audience.as_deref(), t.expiration_seconds).await?;
                // Renewed at 80% of its life, as the kubelet does.
                let renew = std::time::Instant::now() + ttl.mul_f64(0.8);
                Token { token, renew }
            }
        };
        files.insert(
            PathBuf::from(&t.path),
            (token.token.clone().into_bytes(), mode),
        );
        token_used = Some((t.path.clone(), token));
    }
    if source.cluster_trust_bundle.is_some() {
        return Err("clusterTrustBundle projections are not supported".to_owned());
    }
    Ok((files, token_used))
}

/// The directory of a claim's volume: the claim must be bound, and its volume a hostPath
/// or local one (the kinds a node serves without a storage driver).
async fn claimed_volume(
    client: &kube::Client,
    ns: &str,
    volume: &str,
    claim_name: &str,
) -> Result<PathBuf, VolumeError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let claim = claims
        .get_opt(claim_name)
        .await
        .map_err(|e| err(volume, crate::api_message(&e)))?
        .ok_or_else(|| {
            err(
                volume,
                format!("persistentvolumeclaim \"{claim_name}\" not found"),
            )
        })?;
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    let Some(name) = claim_volume_name(&claim).filter(|_| phase == Some("Bound")) else {
        return Err(err(volume, format!("PVC {ns}/{claim_name} is not bound")));
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes
        .get_opt(name)
        .await
        .map_err(|e| err(volume, crate::api_message(&e)))?
        .ok_or_else(|| err(volume, format!("persistentvolume \"{name}\" not found")))?;
    let provisioned = pv
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROVISIONED_BY))
        .is_some_and(|p| p == LOCAL_PATH_PROVISIONER);
    let spec = pv.spec.unwrap_or_default();
    if let Some(h) = &spec.host_path {
        let new = !Path::new(&h.path).exists();
        let dir = host_path(volume, &h.path, h.type_.as_deref().unwrap_or_default())?;
        if new && provisioned {
            // As local-path provisioners do: any user of the pod may write there.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| err(volume, format!("{}: {e}", dir.display())))?;
        }
        return Ok(dir);
    }
    if let Some(l) = &spec.local {
        // A local volume is made ahead of time; it must be there.
        if !Path::new(&l.path).exists() {
            return Err(err(volume, format!("path \"{}\" does not exist", l.path)));
        }
        return Ok(PathBuf::from(&l.path));
    }
    Err(err(
        volume,
        format!(
            "persistentvolume \"{name}\" is not a hostPath or local volume, the only \
             kinds this node can mount"
        ),
    ))
}

/// Removes the directory of each local-path volume of this node whose PersistentVolume is
/// deleted (the controllers delete a released one whose class says `Delete`), as
/// local-path provisioners do. A deletion while the agent is down leaves the directory.
pub(crate) async fn remove_deleted_local_volumes(client: kube::Client, node: String) {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let api: Api<PersistentVolume> = Api::all(client);
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Delete(pv)) => {
                let Some(dir) = provisioned_here(&pv, &node) else {
                    continue;
                };
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {
                        tracing::info!(volume = %dir.display(), "removed a deleted local volume")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(volume = %dir.display(), error = %e, "removing a deleted local volume")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "watching persistent volumes");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// The directory of a volume the local-path provisioner made on `node`: only a hostPath
/// named after the volume, so nothing else is ever removed.
fn provisioned_here(pv: &PersistentVolume, node: &str) -> Option<PathBuf> {
    let annotations = pv.metadata.annotations.as_ref()?;
    if annotations.get(PROVISIONED_BY)? != LOCAL_PATH_PROVISIONER {
        return None;
    }
    let spec = pv.spec.as_ref()?;
    let on_node = spec
        .node_affinity
        .as_ref()
        .and_then(|a| a.required.as_ref())
        .is_some_and(|r| {
            r.node_selector_terms.iter().any(|t| {
                t.match_expressions.iter().flatten().any(|e| {
                    e.key == "kubernetes.io/hostname"
                        && e.operator == "In"
                        && e.values.iter().flatten().any(|v| v == node)
                })
            })
        });
    let path = PathBuf::from(&spec.host_path.as_ref()?.path);
    let named = path.file_name()? == pv.metadata.name.as_deref()?;
    (on_node && named && path.is_absolute()).then_some(path)
}

/// Checks (or makes) a hostPath volume by its type.
fn host_path(volume: &str, path: &str, kind: &str) -> Result<PathBuf, VolumeError> {
    use std::os::unix::fs::FileTypeExt;
    let p = PathBuf::from(path);
    let meta = std::fs::metadata(&p);
    let wrong = |what: &str| {
        Err(err(
            volume,
            format!("hostPath type check failed: {path} is not a {what}"),
        ))
    };
    match kind {
        "" => {}
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(&p).map_err(|e| err(volume, format!("{path}: {e}")))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| err(volume, format!("{path}: {e}")))?;
            } else if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                return wrong("directory");
            }
        }
        "Directory" => {
            if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                return wrong("directory");
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| err(volume, format!("{path}: {e}")))?;
                }
                std::fs::File::create(&p).map_err(|e| err(volume, format!("{path}: {e}")))?;
            } else if !meta.as_ref().is_ok_and(|m| m.is_file()) {
                return wrong("file");
            }
        }
        "File" => {
            if !meta.as_ref().is_ok_and(|m| m.is_file()) {
                return wrong("file");
            }
        }
        "Socket" if !meta.as_ref().is_ok_and(|m| m.file_type().is_socket()) => {
            return wrong("socket");
        }
        "CharDevice" if !meta.as_ref().is_ok_and(|m| m.file_type().is_char_device()) => {
            return wrong("character device");
        }
        "BlockDevice" if !meta.as_ref().is_ok_and(|m| m.file_type().is_block_device()) => {
            return wrong("block device");
        }
        "Socket" | "CharDevice" | "BlockDevice" => {}
        other => return Err(err(volume, format!("unknown hostPath type {other:?}"))),
    }
    Ok(p)
}

type Files = BTreeMap<PathBuf, (Vec<u8>, i32)>;

/// Items select and rename keys; without items every key is a file.
fn project<'a>(
    data: impl Iterator<Item = (&'a String, Vec<u8>)>,
    items: Option<&[KeyToPath]>,
    mode: i32,
    kind: &str,
) -> Result<Files, String> {
    let data: BTreeMap<&String, Vec<u8>> = data.collect();
    let mut out = Files::new();
    match items {
        None => {
            for (k, v) in data {
                out.insert(PathBuf::from(k), (v, mode));
            }
        }
        Some(items) => {
            for item in items {
                let Some(v) = data.get(&item.key) else {
                    return Err(match kind {
                        "secret" => format!("references non-existent secret key: {}", item.key),
                        _ => format!("configmap references non-existent config key: {}", item.key),
                    });
                };
                out.insert(
                    PathBuf::from(&item.path),
                    (v.clone(), item.mode.unwrap_or(mode)),
                );
            }
        }
    }
    Ok(out)
}

fn config_map_files(
    cm: &ConfigMap,
    items: Option<&[KeyToPath]>,
    mode: i32,
) -> Result<Files, String> {
    let text = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k, v.clone().into_bytes()));
    let binary = cm
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k, v.0.clone()));
    project(text.chain(binary), items, mode, "config")
}

fn secret_files(s: &Secret, items: Option<&[KeyToPath]>, mode: i32) -> Result<Files, String> {
    let data = s.data.iter().flatten().map(|(k, v)| (k, v.0.clone()));
    project(data, items, mode, "secret")
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    mode: i32,
    facts: &PodFacts,
) -> Result<Files, String> {
    let mut out = Files::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            field(pod, &f.field_path, facts)?
        } else if let Some(r) = &item.resource_field_ref {
            let spec = pod.spec.as_ref().ok_or("pod has no spec")?;
            let name = r.container_name.as_deref().unwrap_or_default();
            let c = spec
                .containers
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| format!("container {name} not found in the pod"))?;
            resource_field(c, &r.resource, r.divisor.as_ref(), facts)?
        } else {
            String::new()
        };
        out.insert(
            PathBuf::from(&item.path),
            (value.into_bytes(), item.mode.unwrap_or(mode)),
        );
    }
    Ok(out)
}

/// A token for the pod's service account, bound to the pod.
async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    audience: Option<&str>,
    expiration: Option<i64>,
) -> Result<(String, std::time::Duration), String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let mut spec = json!({
        "expirationSeconds": expiration.unwrap_or(3607),
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                           "name": pod.metadata.name, "uid": pod.metadata.uid},
    });
    if let Some(a) = audience.filter(|a| !a.is_empty()) {
        spec["audiences"] = json!([a]);
    }
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec
    }))
    .map_err(|e| e.to_string())?;
    let resp: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("failed to fetch token: {}", crate::api_message(&e)))?;
    let status = resp
        .status
        .ok_or("the token request came back without a token")?;
    let ttl = resp.spec.expiration_seconds.map_or(3600, |s| s.max(60)) as u64;
    Ok((status.token, std::time::Duration::from_secs(ttl)))
}

/// Writes `files` into `dir` the atomic-writer way, unless they are what
/// is there already. Answers whether anything changed.
pub(crate) fn write_atomic(dir: &Path, files: &Files) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let data = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data)
        && same_content(&dir.join(&current), files)
    {
        return Ok(false);
    }
    let stamp = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let version = dir.join(&stamp);
    std::fs::create_dir(&version)?;
    std::fs::set_permissions(&version, std::fs::Permissions::from_mode(0o755))?;
    for (path, (bytes, mode)) in files {
        let target = version.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes)?;
        std::fs::set_permissions(
            &target,
            std::fs::Permissions::from_mode(*mode as u32 & 0o7777),
        )?;
    }
    let old = std::fs::read_link(&data).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &data)?;
    // Visible names: one symlink per top-level entry, through ..data.
    let top: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !top.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != stamp.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

fn same_content(version: &Path, files: &Files) -> bool {
    let mut count = 0;
    for (path, (bytes, mode)) in files {
        let p = version.join(path);
        match (std::fs::read(&p), std::fs::metadata(&p)) {
            (Ok(have), Ok(meta))
                if have == *bytes
                    && meta.permissions().mode() & 0o7777 == *mode as u32 & 0o7777 =>
            {
                count += 1;
            }
            _ => return false,
        }
    }
    // Nothing extra at the top either.
    let listed = walk_count(version);
    listed == count
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        walk_count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn mount_tmpfs(dir: &Path, size: Option<u64>, mode: u32) -> std::io::Result<()> {
    if runtime::is_mount_point(dir).map_err(std::io::Error::other)? {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let mut data = format!("mode={mode:o}");
    if let Some(size) = size.filter(|s| *s > 0) {
        data.push_str(&format!(",size={size}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(std::io::Error::from)
}

fn ensure_tmpfs(dir: &Path) -> std::io::Result<()> {
    mount_tmpfs(dir, None, 0o755)
}

fn chown_group(path: &Path, gid: i64) -> std::io::Result<()> {
    let gid = nix::unistd::Gid::from_raw(gid as u32);
    let walk = |p: &Path| -> std::io::Result<()> {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            p,
            None,
            Some(gid),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)
    };
    walk(path)?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                chown_group(&entry.path(), gid.as_raw() as i64)?;
            } else {
                walk(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// Unmounts every tmpfs under the pod's volumes and removes them.
pub(crate) fn teardown(pods_root: &Path, uid: &str) -> std::io::Result<()> {
    let root = pod_dir(pods_root, uid);
    if !root.exists() {
        return Ok(());
    }
    let mut mounts = runtime::mount_points_under(&root).map_err(std::io::Error::other)?;
    // Deepest first.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in mounts {
        nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH).map_err(std::io::Error::from)?;
    }
    std::fs::remove_dir_all(&root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(k, v)| (PathBuf::from(k), (v.as_bytes().to_vec(), 0o644)))
            .collect()
    }

    #[test]
    fn the_atomic_writer_swaps_versions_and_keeps_names_stable() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("vol");
        assert!(write_atomic(&v, &files(&[("a", "1"), ("b", "2")])).unwrap());
        assert_eq!(std::fs::read_to_string(v.join("a")).unwrap(), "1");
        assert_eq!(
            std::fs::read_link(v.join("a")).unwrap(),
            Path::new("..data/a")
        );
        // The same content writes nothing.
        assert!(!write_atomic(&v, &files(&[("a", "1"), ("b", "2")])).unwrap());
        // An update replaces a, drops b, adds c; one version dir remains.
        assert!(write_atomic(&v, &files(&[("a", "3"), ("c", "4")])).unwrap());
        assert_eq!(std::fs::read_to_string(v.join("a")).unwrap(), "3");
        assert!(std::fs::symlink_metadata(v.join("b")).is_err());
        assert_eq!(std::fs::read_to_string(v.join("c")).unwrap(), "4");
        let versions = std::fs::read_dir(&v)
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("..") && n != "..data"
            })
            .count();
        assert_eq!(versions, 1);
    }

    #[test]
    fn items_select_keys_and_missing_keys_are_errors() {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}
        }))
        .unwrap();
        let items: Vec<KeyToPath> = serde_json::from_value(serde_json::json!([
            {"key": "a", "path": "sub/renamed", "mode": 0o600}
        ]))
        .unwrap();
        let f = config_map_files(&cm, Some(&items), 0o644).unwrap();
        assert_eq!(f[Path::new("sub/renamed")], (b"1".to_vec(), 0o600));
        assert_eq!(f.len(), 1);
        let bad: Vec<KeyToPath> =
            serde_json::from_value(serde_json::json!([{"key": "zz", "path": "x"}])).unwrap();
        assert!(
            config_map_files(&cm, Some(&bad), 0o644)
                .unwrap_err()
                .contains("zz")
        );
    }

    #[test]
    fn host_path_types_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made");
        assert!(host_path("v", made.to_str().unwrap(), "DirectoryOrCreate").is_ok());
        assert!(made.is_dir());
        assert!(host_path("v", made.to_str().unwrap(), "File").is_err());
        let e = host_path("v", "/nonexistent/x", "Directory").unwrap_err();
        assert!(e.to_string().contains("hostPath type check failed"), "{e}");
    }
}
