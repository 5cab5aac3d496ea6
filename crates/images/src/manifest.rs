//! Reading image manifests, indexes and configs, in their OCI and Docker
//! v2 schema 2 forms.
//!
//! The two families have the same shape and differ in media type strings,
//! and Docker's configs carry `null` for absent lists; so these are small
//! tolerant readers of the fields the store needs, one for both families,
//! rather than the strict `oci-spec` types.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::ImageConfig;

/// An OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// A Docker v2 schema 2 image manifest.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker v2 schema 2 manifest list.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// An OCI image config.
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed OCI layer.
pub(crate) const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// A gzip-compressed OCI layer.
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Every manifest media type a registry may answer with.
pub(crate) const MANIFEST_TYPES: [&str; 4] =
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Media types of layers the store can unpack (the compression itself is
/// read from the bytes, so a mislabelled layer still unpacks).
const LAYER_TYPES: [&str; 10] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// A content descriptor: what a manifest or index says about a blob.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    /// The blob's media type.
    #[serde(default)]
    pub media_type: String,
    /// The blob's digest.
    pub digest: String,
    /// The blob's length in bytes.
    pub size: u64,
    /// For index entries: the platform of the manifest.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations, such as an OCI layout's reference names.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Platform {
    /// `amd64`, `arm64`, ...
    #[serde(default)]
    pub architecture: String,
    /// `linux`, `windows`, ...
    #[serde(default)]
    pub os: String,
    /// `v7`, `v8`, ... for ARM.
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image manifest: a config and layers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index (or Docker manifest list): manifests by platform.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Index {
    /// The entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// A manifest or an index, told apart by media type or, when the document
/// has none (it is optional in OCI), by its fields.
#[derive(Debug, Clone)]
pub(crate) enum Document {
    /// A single image.
    Manifest(Manifest),
    /// A set of images, one per platform.
    Index(Index),
}

/// Only what tells the kinds apart.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

/// Parses a manifest or an index.
pub(crate) fn parse_document(bytes: &[u8]) -> Result<Document, String> {
    let head: Head =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
    if head.schema_version == Some(1) {
        return Err("Docker schema 1 manifests are not supported".to_owned());
    }
    let is_index = match head.media_type.as_deref() {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(other) if head.config.is_none() && head.manifests.is_none() => {
            return Err(format!("unsupported manifest media type {other}"));
        }
        _ => head.manifests.is_some() && head.config.is_none(),
    };
    if is_index {
        serde_json::from_slice(bytes)
            .map(Document::Index)
            .map_err(|e| format!("malformed image index: {e}"))
    } else {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("malformed manifest: {e}"))?;
        for layer in &manifest.layers {
            if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
                return Err(format!(
                    "layer {} has media type {:?}, not a container image layer",
                    layer.digest, layer.media_type
                ));
            }
        }
        Ok(Document::Manifest(manifest))
    }
}

/// The OCI architecture name of the machine this runs on.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Picks the manifest for `os`/`architecture` from an index: the first
/// entry whose platform matches. An index whose single entry names no
/// platform (as OCI layouts written by hand do) yields that entry.
pub(crate) fn select_platform<'a>(
    index: &'a Index,
    os: &str,
    architecture: &str,
) -> Result<&'a Descriptor, String> {
    if let Some(entry) = index.manifests.iter().find(|entry| {
        entry
            .platform
            .as_ref()
            .is_some_and(|p| p.os == os && p.architecture == architecture)
    }) {
        return Ok(entry);
    }
    if let [only] = index.manifests.as_slice()
        && only.platform.is_none()
    {
        return Ok(only);
    }
    let offered: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|e| e.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    Err(format!(
        "no manifest for {os}/{architecture} in the image index (it has {})",
        if offered.is_empty() {
            "no platforms".to_owned()
        } else {
            offered.join(", ")
        }
    ))
}

/// An image config, as far as the store reads it.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    /// The process defaults.
    pub config: ImageConfig,
    /// The digests of the uncompressed layers, bottom first.
    pub diff_ids: Vec<String>,
    /// The operating system the image is for.
    pub os: String,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    config: Option<RawContainerConfig>,
    rootfs: RawRootFs,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawContainerConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    stop_signal: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawRootFs {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// Parses an image config.
pub(crate) fn parse_config(bytes: &[u8]) -> Result<ConfigFile, String> {
    let raw: RawConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("malformed image config: {e}"))?;
    if raw.rootfs.kind != "layers" {
        return Err(format!(
            "image config has rootfs type {:?}, not \"layers\"",
            raw.rootfs.kind
        ));
    }
    let c = raw.config.unwrap_or_default();
    Ok(ConfigFile {
        config: ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
            stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
            labels: c.labels.unwrap_or_default(),
        },
        diff_ids: raw.rootfs.diff_ids,
        os: raw.os,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn tells_manifests_from_indexes() {
        let manifest = format!(
            r#"{{"schemaVersion": 2, "mediaType": "{DOCKER_MANIFEST}",
                "config": {{"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "{D1}", "size": 10}},
                "layers": [{{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": "{D2}", "size": 20}}]}}"#
        );
        let Document::Manifest(m) = parse_document(manifest.as_bytes()).unwrap() else {
            panic!("not a manifest");
        };
        assert_eq!(m.config.digest, D1);
        assert_eq!(m.layers[0].size, 20);

        // No media type at all: an OCI index told by its fields.
        let index = format!(
            r#"{{"schemaVersion": 2, "manifests": [
                {{"mediaType": "{OCI_MANIFEST}", "digest": "{D1}", "size": 1, "platform": {{"os": "linux", "architecture": "arm64", "variant": "v8"}}}},
                {{"mediaType": "{OCI_MANIFEST}", "digest": "{D2}", "size": 1, "platform": {{"os": "linux", "architecture": "amd64"}}}}]}}"#
        );
        let Document::Index(i) = parse_document(index.as_bytes()).unwrap() else {
            panic!("not an index");
        };
        assert_eq!(select_platform(&i, "linux", "amd64").unwrap().digest, D2);
        let err = select_platform(&i, "linux", "s390x").unwrap_err();
        assert!(err.contains("linux/arm64/v8, linux/amd64"), "{err}");
    }

    #[test]
    fn rejects_schema1_and_foreign_artifacts() {
        let schema1 = r#"{"schemaVersion": 1, "name": "x", "fsLayers": []}"#;
        assert!(
            parse_document(schema1.as_bytes())
                .unwrap_err()
                .contains("schema 1")
        );
        let helm = format!(
            r#"{{"schemaVersion": 2, "config": {{"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": "{D1}", "size": 1}},
                "layers": [{{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": "{D2}", "size": 1}}]}}"#
        );
        let err = parse_document(helm.as_bytes()).unwrap_err();
        assert!(err.contains("not a container image layer"), "{err}");
    }

    #[test]
    fn reads_docker_configs_with_nulls() {
        let config = format!(
            r#"{{"architecture": "amd64", "os": "linux",
                "config": {{"Env": ["PATH=/bin"], "Cmd": ["nginx", "-g", "daemon off;"], "Entrypoint": null,
                    "WorkingDir": "", "User": "", "ExposedPorts": {{"80/tcp": {{}}, "443/tcp": {{}}}},
                    "StopSignal": "SIGQUIT", "Labels": null, "Volumes": null, "OnBuild": null}},
                "rootfs": {{"type": "layers", "diff_ids": ["{D1}"]}}, "history": []}}"#
        );
        let parsed = parse_config(config.as_bytes()).unwrap();
        assert_eq!(parsed.config.cmd, ["nginx", "-g", "daemon off;"]);
        assert!(parsed.config.entrypoint.is_empty());
        assert_eq!(parsed.config.exposed_ports, ["443/tcp", "80/tcp"]);
        assert_eq!(parsed.config.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(parsed.diff_ids, [D1]);
        assert_eq!(parsed.os, "linux");
        assert!(parse_config(br#"{"rootfs": {"type": "x"}}"#).is_err());
    }
}
