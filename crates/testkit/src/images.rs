//! Container images built offline from Debian's packages, named like the
//! public ones so that ordinary manifests run unchanged.
//!
//! - [`busybox`]: `docker.io/library/busybox:1.36` and `:latest`, from
//!   `busybox-static`: `/bin/busybox` with a symlink per applet, root and
//!   nobody in `/etc/passwd`, `CMD ["sh"]`.
//! - [`nginx`]: `docker.io/library/nginx:1.13.1` and `:latest`, from
//!   `nginx`: the binary, the libraries `ldd` names and the dynamic loader,
//!   a configuration serving `/usr/share/nginx/html/index.html` on port 80
//!   and logging to `/dev/stdout` and `/dev/stderr`, user `nginx`,
//!   `CMD ["nginx", "-g", "daemon off;"]`, `StopSignal` `SIGQUIT`. It is
//!   layered over busybox's layer (so `kubectl exec` finds a shell, and the
//!   two images share a layer, as real ones do).
//! - [`layered`]: `gantry.test/layered:1`, busybox plus two layers, the top
//!   one deleting a file and making a directory opaque, for whiteout tests.
//!
//! Output is deterministic (fixed times and owners, gzip without a time
//! stamp), so digests only change when the Debian packages do.
//! [`write_oci_archive`] and [`write_docker_archive`] write them as
//! archives `gantry image import` and the image store read;
//! [`crate::Registry`] pushes them.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// The busybox image's names.
pub const BUSYBOX_NAMES: [&str; 2] = [
    "docker.io/library/busybox:1.36",
    "docker.io/library/busybox:latest",
];

/// The nginx image's names.
pub const NGINX_NAMES: [&str; 2] = [
    "docker.io/library/nginx:1.13.1",
    "docker.io/library/nginx:latest",
];

/// The whiteout test image's name.
pub const LAYERED_NAME: &str = "gantry.test/layered:1";

/// Every file's modification time: 2017-07-14, around when nginx 1.13.1
/// and busybox images of that age were current.
const MTIME: u64 = 1_500_000_000;

/// The `created` time of the configs, the same instant.
const CREATED: &str = "2017-07-14T02:40:00Z";

/// Where Debian's busybox-static puts the binary.
const BUSYBOX_BINARY: &str = "/bin/busybox";

/// Where Debian's nginx puts the binary.
const NGINX_BINARY: &str = "/usr/sbin/nginx";

/// The PATH both images set, as the public ones do.
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// OCI media types.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 schema 2 manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A blob: bytes with their media type and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The media type a descriptor gives it.
    pub media_type: String,
    /// `sha256:<hex>` of `data`.
    pub digest: String,
    /// The content.
    pub data: Vec<u8>,
}

impl Blob {
    /// A blob of `data` with `media_type`.
    pub fn new(media_type: &str, data: Vec<u8>) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: digest_of(&data),
            data,
        }
    }

    /// Its OCI descriptor.
    pub fn descriptor(&self) -> serde_json::Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.data.len()})
    }
}

/// `sha256:<hex>` of `data`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A layer: its tar, and the tar compressed with gzip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The uncompressed tar; its digest is the layer's `diff_id`.
    pub tar: Vec<u8>,
    /// The gzip-compressed tar, as registries and OCI layouts hold it.
    pub gzip: Blob,
}

impl Layer {
    /// The digest of the uncompressed tar.
    pub fn diff_id(&self) -> String {
        digest_of(&self.tar)
    }
}

/// Builds a layer tar deterministically: everything owned by root (unless
/// said otherwise) with the same time, missing parents added before
/// children (a parent added as anything else, a symlink say, is left as it
/// is).
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
    paths: BTreeSet<PathBuf>,
}

impl std::fmt::Debug for LayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerBuilder").finish_non_exhaustive()
    }
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        Self {
            tar,
            paths: BTreeSet::new(),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(MTIME);
        header.set_size(0);
        header
    }

    /// Adds the missing parent directories of `path` (mode 0755).
    fn parents(&mut self, path: &Path) -> anyhow::Result<()> {
        let mut missing = Vec::new();
        let mut parent = path.parent();
        while let Some(dir) = parent {
            if dir.as_os_str().is_empty() || self.paths.contains(dir) {
                break;
            }
            missing.push(dir.to_owned());
            parent = dir.parent();
        }
        for dir in missing.into_iter().rev() {
            self.dir(&dir, 0o755)?;
        }
        Ok(())
    }

    /// A directory.
    pub fn dir(&mut self, path: impl AsRef<Path>, mode: u32) -> anyhow::Result<&mut Self> {
        let path = path.as_ref();
        self.parents(path)?;
        let mut header = Self::header(tar::EntryType::Directory, mode, 0, 0);
        self.tar
            .append_data(&mut header, path, std::io::empty())
            .with_context(|| format!("cannot add directory {}", path.display()))?;
        self.paths.insert(path.to_owned());
        Ok(self)
    }

    /// A regular file owned by root.
    pub fn file(
        &mut self,
        path: impl AsRef<Path>,
        mode: u32,
        data: &[u8],
    ) -> anyhow::Result<&mut Self> {
        self.file_owned(path, mode, 0, 0, data)
    }

    /// A regular file with an owner.
    pub fn file_owned(
        &mut self,
        path: impl AsRef<Path>,
        mode: u32,
        uid: u64,
        gid: u64,
        data: &[u8],
    ) -> anyhow::Result<&mut Self> {
        let path = path.as_ref();
        self.parents(path)?;
        let mut header = Self::header(tar::EntryType::Regular, mode, uid, gid);
        header.set_size(data.len() as u64);
        self.tar
            .append_data(&mut header, path, data)
            .with_context(|| format!("cannot add file {}", path.display()))?;
        self.paths.insert(path.to_owned());
        Ok(self)
    }

    /// A symbolic link to `target`.
    pub fn symlink(
        &mut self,
        path: impl AsRef<Path>,
        target: impl AsRef<Path>,
    ) -> anyhow::Result<&mut Self> {
        let path = path.as_ref();
        self.parents(path)?;
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.tar
            .append_link(&mut header, path, target)
            .with_context(|| format!("cannot add symlink {}", path.display()))?;
        self.paths.insert(path.to_owned());
        Ok(self)
    }

    /// A hard link to `target`, a path earlier in the layer.
    pub fn hard_link(
        &mut self,
        path: impl AsRef<Path>,
        target: impl AsRef<Path>,
    ) -> anyhow::Result<&mut Self> {
        let path = path.as_ref();
        self.parents(path)?;
        let mut header = Self::header(tar::EntryType::Link, 0o644, 0, 0);
        self.tar
            .append_link(&mut header, path, target)
            .with_context(|| format!("cannot add hard link {}", path.display()))?;
        Ok(self)
    }

    /// A device node (`tar::EntryType::Char` or `Block`) or a FIFO.
    pub fn node(
        &mut self,
        path: impl AsRef<Path>,
        kind: tar::EntryType,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> anyhow::Result<&mut Self> {
        let path = path.as_ref();
        self.parents(path)?;
        let mut header = Self::header(kind, mode, 0, 0);
        header.set_device_major(major)?;
        header.set_device_minor(minor)?;
        self.tar
            .append_data(&mut header, path, std::io::empty())
            .with_context(|| format!("cannot add node {}", path.display()))?;
        Ok(self)
    }

    /// PAX records (`key`, `value`) applying to the next entry, such as
    /// `SCHILY.xattr.user.note` for an xattr.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> anyhow::Result<&mut Self> {
        let mut data = Vec::new();
        for (key, value) in records {
            // The length counts the whole record, its own digits included.
            let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            write!(data, "{len} {key}=")?;
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let mut header = Self::header(tar::EntryType::XHeader, 0o644, 0, 0);
        header.set_size(data.len() as u64);
        self.tar
            .append_data(&mut header, "PaxHeaders/entry", data.as_slice())
            .context("cannot add PAX records")?;
        Ok(self)
    }

    /// An OCI whiteout deleting `path` of the layers below.
    pub fn whiteout(&mut self, path: impl AsRef<Path>) -> anyhow::Result<&mut Self> {
        let path = path.as_ref();
        let name = path.file_name().context("a whiteout needs a file name")?;
        let mut marker = path.with_file_name(".wh.");
        marker.as_mut_os_string().push(name);
        self.file(marker, 0o644, b"")
    }

    /// The OCI whiteout hiding everything the layers below have in `dir`.
    pub fn opaque(&mut self, dir: impl AsRef<Path>) -> anyhow::Result<&mut Self> {
        self.file(dir.as_ref().join(".wh..wh..opq"), 0o644, b"")
    }

    /// Finishes the tar and compresses it.
    pub fn finish(self) -> anyhow::Result<Layer> {
        let tar = self.tar.into_inner().context("cannot finish a layer tar")?;
        let gzip = gzip(&tar)?;
        Ok(Layer {
            tar,
            gzip: Blob::new(OCI_LAYER_GZIP, gzip),
        })
    }
}

/// Compresses `data` with gzip, without a time stamp or file name, so the
/// same input always gives the same bytes.
pub fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// An image: config, layers and manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestImage {
    /// Its normalized names.
    pub names: Vec<String>,
    /// The config blob; its digest is the image id.
    pub config: Blob,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
    /// The OCI manifest.
    pub manifest: Blob,
}

impl TestImage {
    /// Assembles an image from its layers and the `config` object of its
    /// config (`Cmd`, `Env`, ...).
    pub fn new(
        names: &[&str],
        layers: Vec<Layer>,
        config: serde_json::Value,
    ) -> anyhow::Result<Self> {
        let diff_ids: Vec<String> = layers.iter().map(Layer::diff_id).collect();
        let history: Vec<serde_json::Value> = layers
            .iter()
            .map(|_| json!({"created": CREATED, "created_by": "gantry testkit"}))
            .collect();
        let config = Blob::new(
            OCI_CONFIG,
            serde_json::to_vec(&json!({
                "architecture": host_architecture(),
                "os": "linux",
                "created": CREATED,
                "config": config,
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": history,
            }))?,
        );
        let manifest = Blob::new(
            OCI_MANIFEST,
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": layers.iter().map(|l| l.gzip.descriptor()).collect::<Vec<_>>(),
            }))?,
        );
        Ok(Self {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            config,
            layers,
            manifest,
        })
    }

    /// The image id: the digest of its config.
    pub fn id(&self) -> &str {
        &self.config.digest
    }

    /// The layers' `diff_id`s, bottom first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(Layer::diff_id).collect()
    }

    /// The same image under Docker v2 schema 2 media types: the same
    /// config and layer bytes (so the same id), another manifest.
    pub fn docker_manifest(&self) -> anyhow::Result<Blob> {
        let layers: Vec<serde_json::Value> = self
            .layers
            .iter()
            .map(|l| json!({"mediaType": DOCKER_LAYER_GZIP, "digest": l.gzip.digest, "size": l.gzip.data.len()}))
            .collect();
        Ok(Blob::new(
            DOCKER_MANIFEST,
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "digest": self.config.digest, "size": self.config.data.len()},
                "layers": layers,
            }))?,
        ))
    }

    /// The config and layer blobs (what a manifest refers to).
    pub fn blobs(&self) -> Vec<&Blob> {
        std::iter::once(&self.config)
            .chain(self.layers.iter().map(|l| &l.gzip))
            .collect()
    }
}

/// An image index (OCI media types) over `entries`: a manifest with the
/// OS and architecture it is for.
pub fn image_index(entries: &[(&Blob, &str, &str)]) -> anyhow::Result<Blob> {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(manifest, os, arch)| {
            let mut descriptor = manifest.descriptor();
            descriptor["platform"] = json!({"os": os, "architecture": arch});
            descriptor
        })
        .collect();
    Ok(Blob::new(
        OCI_INDEX,
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))?,
    ))
}

/// The OCI name of this machine's architecture.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The busybox layer: `/bin/busybox`, a symlink per applet, the usual
/// directories, root and nobody.
pub fn busybox_layer() -> anyhow::Result<Layer> {
    let binary = std::fs::read(BUSYBOX_BINARY).with_context(|| {
        format!("cannot read {BUSYBOX_BINARY}; ./dev installs Debian's busybox-static")
    })?;
    let list = Command::new(BUSYBOX_BINARY)
        .arg("--list")
        .output()
        .with_context(|| format!("cannot run {BUSYBOX_BINARY} --list"))?;
    if !list.status.success() {
        bail!("{BUSYBOX_BINARY} --list failed: {}", list.status);
    }
    let applets: BTreeSet<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_owned)
        .collect();

    let mut layer = LayerBuilder::new();
    for dir in [
        "bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "usr/sbin", "var",
    ] {
        layer.dir(dir, 0o755)?;
    }
    layer.dir("root", 0o700)?;
    layer.dir("tmp", 0o1777)?;
    layer.dir("var/www", 0o755)?;
    layer.file("bin/busybox", 0o755, &binary)?;
    for applet in &applets {
        layer.symlink(format!("bin/{applet}"), "busybox")?;
    }
    layer.file("etc/passwd", 0o644, PASSWD_BASE.as_bytes())?;
    layer.file("etc/group", 0o644, GROUP_BASE.as_bytes())?;
    layer.finish()
}

/// The users every image has.
const PASSWD_BASE: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n";

/// The groups every image has.
const GROUP_BASE: &str = "root:x:0:\nnobody:x:65534:\n";

/// `docker.io/library/busybox:1.36` (and `:latest`).
pub fn busybox() -> anyhow::Result<TestImage> {
    TestImage::new(
        &BUSYBOX_NAMES,
        vec![busybox_layer()?],
        json!({"Env": [PATH_ENV], "Cmd": ["sh"]}),
    )
}

/// The shared libraries `binary` loads, and its dynamic loader, as `ldd`
/// lists them: (path the loader looks for, path of the real file).
fn shared_libraries(binary: &str) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd")?;
    if !output.status.success() {
        bail!(
            "ldd {binary} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut libraries = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim().split(' ').next().unwrap_or(""),
            None => line.split(' ').next().unwrap_or(""),
        };
        if path.starts_with('/') {
            let real = std::fs::canonicalize(path)
                .with_context(|| format!("cannot resolve {path}, which {binary} needs"))?;
            libraries.push((PathBuf::from(path), real));
        } else if line.contains("not found") {
            bail!("{binary} needs a library that is missing: {line}");
        }
    }
    if libraries.is_empty() {
        bail!("ldd found no libraries for {binary}; is it static?");
    }
    Ok(libraries)
}

/// The nginx configuration: the public image's, in short.
const NGINX_CONF: &str = "\
user  nginx;
worker_processes  1;

error_log  /var/log/nginx/error.log notice;
pid        /run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] \"$request\" '
                      '$status $body_bytes_sent \"$http_referer\" '
                      '\"$http_user_agent\" \"$http_x_forwarded_for\"';
    access_log  /var/log/nginx/access.log  main;

    sendfile        on;
    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
";

/// The default server: port 80, the welcome page.
const NGINX_DEFAULT_SERVER: &str = "\
server {
    listen       80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
";

/// The welcome page.
const NGINX_INDEX: &str = "<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. This is Gantry's offline test image, built from Debian's nginx.</p>
</body>
</html>
";

/// The error page.
const NGINX_50X: &str = "<!DOCTYPE html>
<html>
<head>
<title>Error</title>
</head>
<body>
<h1>An error occurred.</h1>
</body>
</html>
";

/// The nginx layer (to go over busybox's).
pub fn nginx_layer() -> anyhow::Result<Layer> {
    let binary = std::fs::read(NGINX_BINARY)
        .with_context(|| format!("cannot read {NGINX_BINARY}; ./dev installs Debian's nginx"))?;
    let mime_types = std::fs::read("/etc/nginx/mime.types")
        .context("cannot read /etc/nginx/mime.types; ./dev installs Debian's nginx")?;
    let mut layer = LayerBuilder::new();
    // busybox's directories again, so the builder does not add them with
    // other modes.
    for dir in ["etc", "usr", "usr/sbin", "var"] {
        layer.dir(dir, 0o755)?;
    }
    layer.file("usr/sbin/nginx", 0o755, &binary)?;
    for (path, real) in shared_libraries(NGINX_BINARY)? {
        let bytes =
            std::fs::read(&real).with_context(|| format!("cannot read {}", real.display()))?;
        let relative = path.strip_prefix("/").unwrap_or(&path);
        layer.file(relative, 0o755, &bytes)?;
    }
    layer.file("etc/nginx/nginx.conf", 0o644, NGINX_CONF.as_bytes())?;
    layer.file(
        "etc/nginx/conf.d/default.conf",
        0o644,
        NGINX_DEFAULT_SERVER.as_bytes(),
    )?;
    layer.file("etc/nginx/mime.types", 0o644, &mime_types)?;
    layer.file(
        "usr/share/nginx/html/index.html",
        0o644,
        NGINX_INDEX.as_bytes(),
    )?;
    layer.file("usr/share/nginx/html/50x.html", 0o644, NGINX_50X.as_bytes())?;
    // Logs go to the container's output, as in the public image.
    layer.dir("var/log/nginx", 0o755)?;
    layer.symlink("var/log/nginx/access.log", "/dev/stdout")?;
    layer.symlink("var/log/nginx/error.log", "/dev/stderr")?;
    // Debian's build keeps temporary files under /var/lib/nginx.
    layer.dir("var/lib/nginx", 0o755)?;
    layer.dir("var/cache/nginx", 0o755)?;
    layer.dir("run", 0o755)?;
    layer.file(
        "etc/passwd",
        0o644,
        format!("{PASSWD_BASE}nginx:x:101:101:nginx:/nonexistent:/bin/false\n").as_bytes(),
    )?;
    layer.file(
        "etc/group",
        0o644,
        format!("{GROUP_BASE}nginx:x:101:\n").as_bytes(),
    )?;
    layer.finish()
}

/// `docker.io/library/nginx:1.13.1` (and `:latest`).
pub fn nginx() -> anyhow::Result<TestImage> {
    TestImage::new(
        &NGINX_NAMES,
        vec![busybox_layer()?, nginx_layer()?],
        json!({
            "Env": [PATH_ENV, "NGINX_VERSION=1.13.1"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGQUIT",
            "Labels": {"maintainer": "Gantry test images"},
        }),
    )
}

/// `gantry.test/layered:1`: busybox, a layer with `/data/keep`,
/// `/data/gone` and `/opq/{lower-a,sub/lower-b}`, and a top layer that
/// deletes `/data/gone`, makes `/opq` opaque, and adds `/opq/upper-c` and
/// `/data/added`.
pub fn layered() -> anyhow::Result<TestImage> {
    let mut lower = LayerBuilder::new();
    lower
        .file("data/keep", 0o644, b"kept\n")?
        .file("data/gone", 0o644, b"deleted above\n")?
        .file("opq/lower-a", 0o644, b"hidden above\n")?
        .file("opq/sub/lower-b", 0o644, b"hidden above\n")?;
    let mut upper = LayerBuilder::new();
    upper
        .dir("data", 0o755)?
        .whiteout("data/gone")?
        .file("data/added", 0o644, b"added\n")?
        .dir("opq", 0o755)?
        .opaque("opq")?
        .file("opq/upper-c", 0o644, b"upper\n")?;
    TestImage::new(
        &[LAYERED_NAME],
        vec![busybox_layer()?, lower.finish()?, upper.finish()?],
        json!({"Env": [PATH_ENV], "Cmd": ["sh"]}),
    )
}

/// How an archive is compressed as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// A tar compressed with gzip.
    Gzip,
}

/// Builds an archive from (path, bytes) files, with the same time and
/// owner everywhere.
fn archive(files: &[(String, Vec<u8>)], compression: Compression) -> anyhow::Result<Vec<u8>> {
    let mut layer = LayerBuilder::new();
    for (path, data) in files {
        layer.file(path, 0o644, data)?;
    }
    let tar = layer.tar.into_inner().context("cannot finish an archive")?;
    match compression {
        Compression::None => Ok(tar),
        Compression::Gzip => gzip(&tar),
    }
}

/// Writes `images` as an OCI image layout in a tar file: each name is an
/// `index.json` entry annotated with the full name
/// (`io.containerd.image.name`) and the tag
/// (`org.opencontainers.image.ref.name`), as containerd writes them.
pub fn write_oci_archive(
    images: &[&TestImage],
    path: &Path,
    compression: Compression,
) -> anyhow::Result<()> {
    let mut manifests = Vec::new();
    let mut blobs: Vec<&Blob> = Vec::new();
    for image in images {
        for name in &image.names {
            let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
            let mut descriptor = image.manifest.descriptor();
            descriptor["annotations"] = json!({
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            });
            manifests.push(descriptor);
        }
        blobs.push(&image.manifest);
        blobs.extend(image.blobs());
    }
    let mut files = vec![
        (
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (
            "index.json".to_owned(),
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": manifests,
            }))?,
        ),
    ];
    let mut seen = BTreeSet::new();
    for blob in blobs {
        if seen.insert(&blob.digest) {
            let hex = blob.digest.trim_start_matches("sha256:");
            files.push((format!("blobs/sha256/{hex}"), blob.data.clone()));
        }
    }
    let bytes = archive(&files, compression)?;
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `images` as `docker save` does: `manifest.json` with familiar
/// `RepoTags` (`busybox:1.36`), the config as `<id>.json`, each layer
/// uncompressed as `<diff_id>/layer.tar`.
pub fn write_docker_archive(images: &[&TestImage], path: &Path) -> anyhow::Result<()> {
    let mut entries = Vec::new();
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    for image in images {
        let config_name = format!("{}.json", image.id().trim_start_matches("sha256:"));
        let mut layer_names = Vec::new();
        for layer in &image.layers {
            let name = format!(
                "{}/layer.tar",
                layer.diff_id().trim_start_matches("sha256:")
            );
            if seen.insert(name.clone()) {
                files.push((name.clone(), layer.tar.clone()));
            }
            layer_names.push(name);
        }
        if seen.insert(config_name.clone()) {
            files.push((config_name.clone(), image.config.data.clone()));
        }
        let tags: Vec<String> = image
            .names
            .iter()
            .map(|n| n.trim_start_matches("docker.io/library/").to_owned())
            .collect();
        entries.push(json!({"Config": config_name, "RepoTags": tags, "Layers": layer_names}));
    }
    files.insert(
        0,
        ("manifest.json".to_owned(), serde_json::to_vec(&entries)?),
    );
    let bytes = archive(&files, Compression::None)?;
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `busybox.tar` and `nginx.tar` (OCI layouts) into `dir`; returns
/// their paths.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let busybox_path = dir.join("busybox.tar");
    write_oci_archive(&[&busybox()?], &busybox_path, Compression::None)?;
    let nginx_path = dir.join("nginx.tar");
    write_oci_archive(&[&nginx()?], &nginx_path, Compression::None)?;
    Ok(vec![busybox_path, nginx_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_deterministic() {
        let first = busybox().unwrap();
        let second = busybox().unwrap();
        assert_eq!(first.manifest.digest, second.manifest.digest);
        let nginx = nginx().unwrap();
        // nginx shares busybox's layer.
        assert_eq!(nginx.layers[0].gzip.digest, first.layers[0].gzip.digest);
        assert_eq!(nginx.diff_ids().len(), 2);
    }

    #[test]
    fn busybox_has_its_applets_and_users() {
        let image = busybox().unwrap();
        let mut archive = tar::Archive::new(image.layers[0].tar.as_slice());
        let mut paths = BTreeSet::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            paths.insert(entry.path().unwrap().display().to_string());
        }
        for path in [
            "bin/busybox",
            "bin/sh",
            "bin/wget",
            "bin/httpd",
            "bin/nc",
            "etc/passwd",
            "tmp",
            "var/www",
        ] {
            assert!(paths.contains(path), "{path} missing from {paths:?}");
        }
        let config: serde_json::Value = serde_json::from_slice(&image.config.data).unwrap();
        assert_eq!(config["config"]["Cmd"], json!(["sh"]));
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut layer = LayerBuilder::new();
        layer
            .pax(&[("SCHILY.xattr.user.note", b"hello")])
            .unwrap()
            .file("f", 0o644, b"x")
            .unwrap();
        let layer = layer.finish().unwrap();
        let mut archive = tar::Archive::new(layer.tar.as_slice());
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        let records: Vec<(String, Vec<u8>)> = entry
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.key().unwrap().to_owned(), e.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(
            records,
            vec![("SCHILY.xattr.user.note".to_owned(), b"hello".to_vec())]
        );
    }
}
