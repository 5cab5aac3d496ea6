//! A real OCI registry on loopback (Debian's `docker-registry`, the
//! reference implementation of the distribution API), for tests that pull.
//!
//! Each [`Registry`] owns a temporary directory (configuration, storage,
//! log) and a registry process on a free loopback port, killed and removed
//! on drop. It can require basic authentication (an htpasswd file with
//! bcrypt entries) or bearer tokens (a small token server in the test
//! process issues ES256 JWTs, signed with a key whose certificate the
//! registry trusts), and can serve TLS with a certificate of its own.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;

use crate::images::{Blob, TestImage};
use crate::process::Launcher;

/// Where Debian's `docker-registry` package installs the binary.
const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// How long the registry may take to listen after it is started.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How many times to pick a new port when another process took ours.
const PORT_ATTEMPTS: usize = 3;

/// The `service` the registry and the token server agree on.
const TOKEN_SERVICE: &str = "gantry-test-registry";

/// The token issuer the registry trusts.
const TOKEN_ISSUER: &str = "gantry-test-token-issuer";

/// How the registry authenticates clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RegistryAuth {
    /// Anyone may pull and push.
    #[default]
    Anonymous,
    /// HTTP basic authentication against these (user, password) pairs.
    Basic(Vec<(String, String)>),
    /// Bearer tokens from a token server that authenticates these (user,
    /// password) pairs and refuses anonymous requests.
    Token(Vec<(String, String)>),
}

/// How to start a [`Registry`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Who may use it.
    pub auth: RegistryAuth,
    /// Whether it serves HTTPS (a self-signed certificate for 127.0.0.1
    /// and localhost) rather than HTTP.
    pub tls: bool,
}

/// How a pushed image's manifest is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI media types.
    Oci,
    /// Docker v2 schema 2 media types.
    Docker,
}

/// A registry running on loopback in a temporary directory.
pub struct Registry {
    child: Option<Child>,
    port: u16,
    options: RegistryOptions,
    /// The registry certificate's PEM, when serving TLS.
    ca_pem: Option<String>,
    token_server: Option<TokenServer>,
    dir: tempfile::TempDir,
    launcher: Launcher,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host())
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Registry {
    /// Starts an anonymous HTTP registry.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(RegistryOptions::default())
    }

    /// Starts a registry as `options` say and waits until it listens.
    pub fn start_with(options: RegistryOptions) -> anyhow::Result<Self> {
        if !Path::new(REGISTRY_BINARY).exists() {
            bail!(
                "the registry is not installed ({REGISTRY_BINARY} not found); \
                 ./dev installs Debian's docker-registry package"
            );
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut registry = Self::prepare(options.clone())?;
            match registry.launch() {
                Ok(()) => return Ok(registry),
                Err(e)
                    if attempt < PORT_ATTEMPTS
                        && format!("{e:#}").contains("address already in use") =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the configuration (and htpasswd file, certificates, token
    /// server) without starting the registry.
    fn prepare(options: RegistryOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("gantry-registry-")
            .tempdir()
            .context("cannot create a temporary directory for the registry")?;
        let port = free_port()?;
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             health:\n  storagedriver:\n    enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: gantry-test-secret\n",
            storage = dir.path().join("storage").display(),
        );
        let mut ca_pem = None;
        if options.tls {
            let key = rcgen::KeyPair::generate().context("cannot generate a TLS key")?;
            let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
            let cert = params
                .self_signed(&key)
                .context("cannot sign a TLS certificate")?;
            let cert_path = dir.path().join("tls.crt");
            let key_path = dir.path().join("tls.key");
            std::fs::write(&cert_path, cert.pem())?;
            std::fs::write(&key_path, key.serialize_pem())?;
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert_path.display(),
                key_path.display()
            ));
            ca_pem = Some(cert.pem());
        }
        let mut token_server = None;
        match &options.auth {
            RegistryAuth::Anonymous => {}
            RegistryAuth::Basic(users) => {
                let path = dir.path().join("htpasswd");
                let mut lines = String::new();
                for (user, password) in users {
                    // The cheapest cost bcrypt allows: tests check logins,
                    // not the hash's strength.
                    let hash = bcrypt::hash(password, 4).context("cannot hash a password")?;
                    lines.push_str(&format!("{user}:{hash}\n"));
                }
                std::fs::write(&path, lines)?;
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: gantry-test\n    path: {}\n",
                    path.display()
                ));
            }
            RegistryAuth::Token(users) => {
                let server = TokenServer::start(users.clone())?;
                let bundle = dir.path().join("token-signer.pem");
                std::fs::write(&bundle, &server.cert_pem)?;
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    server.port,
                    bundle.display()
                ));
                token_server = Some(server);
            }
        }
        std::fs::write(dir.path().join("config.yml"), config)?;
        Ok(Self {
            child: None,
            port,
            options,
            ca_pem,
            token_server,
            dir,
            launcher: Launcher::new("registry-launcher")?,
        })
    }

    /// `127.0.0.1:PORT`: the registry part of references to its images.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `host/repo_tag`, a reference to an image in this registry.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    /// The certificate the registry serves, when it serves TLS.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// How many tokens the token server has issued (0 without one).
    pub fn tokens_issued(&self) -> u64 {
        self.token_server
            .as_ref()
            .map_or(0, |s| s.issued.load(Ordering::SeqCst))
    }

    /// The registry's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Kills the registry (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait().context("cannot reap the registry")?;
        }
        Ok(())
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("cannot open {}", self.log_path().display()))?;
        let log_err = log.try_clone()?;
        let mut command = Command::new(REGISTRY_BINARY);
        command
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // The registry reads REGISTRY_* variables as configuration.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(name);
            }
        }
        self.child = Some(
            self.launcher
                .spawn(command)
                .with_context(|| format!("cannot run {REGISTRY_BINARY}"))?,
        );
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "the registry exited with {status} before listening; end of {}:\n{}",
                    self.log_path().display(),
                    log_tail(&self.log_path())
                );
            }
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.kill();
                bail!(
                    "the registry did not listen within {READY_WITHIN:?}; end of {}:\n{}",
                    self.log_path().display(),
                    log_tail(&self.log_path())
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// A client for this registry and the credentials of its first user.
    async fn client(
        &self,
        reference: &oci_client::Reference,
    ) -> anyhow::Result<(oci_client::Client, oci_client::secrets::RegistryAuth)> {
        let mut config = oci_client::client::ClientConfig {
            protocol: if self.options.tls {
                oci_client::client::ClientProtocol::Https
            } else {
                oci_client::client::ClientProtocol::Http
            },
            ..Default::default()
        };
        if let Some(pem) = &self.ca_pem {
            config
                .extra_root_certificates
                .push(oci_client::client::Certificate {
                    encoding: oci_client::client::CertificateEncoding::Pem,
                    data: pem.as_bytes().to_vec(),
                });
        }
        let client =
            oci_client::Client::try_from(config).context("cannot make a registry client")?;
        let auth = match &self.options.auth {
            RegistryAuth::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
            RegistryAuth::Basic(users) | RegistryAuth::Token(users) => {
                let (user, password) = users.first().context("the registry has no users")?;
                oci_client::secrets::RegistryAuth::Basic(user.clone(), password.clone())
            }
        };
        client
            .auth(reference, &auth, oci_client::RegistryOperation::Push)
            .await
            .context("cannot authenticate to push")?;
        Ok((client, auth))
    }

    /// Uploads `blobs` into `repository` (`library/busybox`).
    pub async fn push_blobs(&self, repository: &str, blobs: &[&Blob]) -> anyhow::Result<()> {
        let reference = oci_client::Reference::with_tag(
            self.host(),
            repository.to_owned(),
            "latest".to_owned(),
        );
        let (client, _) = self.client(&reference).await?;
        for blob in blobs {
            if client
                .blob_exists(&reference, &blob.digest)
                .await
                .unwrap_or(false)
            {
                continue;
            }
            client
                .push_blob(&reference, blob.data.clone(), &blob.digest)
                .await
                .with_context(|| format!("cannot push blob {} to {repository}", blob.digest))?;
        }
        Ok(())
    }

    /// Puts `manifest` (a manifest or an index, whose blobs or manifests
    /// are already pushed) under `repo_ref` (`library/busybox:1.36` or
    /// `library/busybox@sha256:...`). Returns the URL the registry gave it.
    pub async fn push_manifest(&self, repo_ref: &str, manifest: &Blob) -> anyhow::Result<String> {
        let reference: oci_client::Reference = self
            .reference(repo_ref)
            .parse()
            .with_context(|| format!("bad reference {repo_ref}"))?;
        let (client, _) = self.client(&reference).await?;
        let content_type = http::HeaderValue::from_str(&manifest.media_type)?;
        client
            .push_manifest_raw(&reference, manifest.data.clone(), content_type)
            .await
            .with_context(|| format!("cannot push the manifest of {repo_ref}"))
    }

    /// Pushes `image` (its blobs, then its manifest in `format`) as
    /// `repo_tag` (`library/busybox:1.36`). Returns the manifest pushed.
    pub async fn push_image(
        &self,
        image: &TestImage,
        repo_tag: &str,
        format: ManifestFormat,
    ) -> anyhow::Result<Blob> {
        let repository = repo_tag.rsplit_once(':').map_or(repo_tag, |(r, _)| r);
        self.push_blobs(repository, &image.blobs()).await?;
        let manifest = match format {
            ManifestFormat::Oci => image.manifest.clone(),
            ManifestFormat::Docker => image.docker_manifest()?,
        };
        self.push_manifest(repo_tag, &manifest).await?;
        Ok(manifest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A minimal token server: `GET /token?service=...&scope=...` with basic
/// credentials answers a JWT granting what was asked for.
struct TokenServer {
    port: u16,
    cert_pem: String,
    stop: Arc<AtomicBool>,
    issued: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    fn start(users: Vec<(String, String)>) -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate().context("cannot generate a token signing key")?;
        let params = rcgen::CertificateParams::new(vec!["gantry-test-token-signer".to_owned()])?;
        let cert = params
            .self_signed(&key)
            .context("cannot sign the token certificate")?;
        let signer = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes())
            .context("cannot load the token signing key")?;
        let cert_der = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind the token server")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = stop.clone();
            let issued = issued.clone();
            std::thread::Builder::new()
                .name("token-server".to_owned())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let _ = serve_token(stream, &users, &signer, &cert_der, &issued);
                    }
                })?
        };
        Ok(Self {
            port,
            cert_pem: cert.pem(),
            stop,
            issued,
            thread: Some(thread),
        })
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one token request.
fn serve_token(
    stream: TcpStream,
    users: &[(String, String)],
    signer: &jsonwebtoken::EncodingKey,
    cert_der: &str,
    issued: &AtomicU64,
) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let user = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|d| {
            let (user, password) = d.split_once(':')?;
            users
                .iter()
                .any(|(u, p)| u == user && p == password)
                .then(|| user.to_owned())
        });
    let mut stream = stream;
    let Some(user) = user else {
        let body =
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid or missing credentials"}]}"#;
        write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    };
    let mut access = Vec::new();
    for (key, value) in query.split('&').filter_map(|p| p.split_once('=')) {
        if key != "scope" {
            continue;
        }
        // repository:library/busybox:pull,push
        let scope = percent_decode(value);
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        access.push(serde_json::json!({
            "type": kind,
            "name": name,
            "actions": actions.split(',').collect::<Vec<_>>(),
        }));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let serial = issued.fetch_add(1, Ordering::SeqCst);
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": user,
        "aud": TOKEN_SERVICE,
        "exp": now + 300,
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": format!("gantry-test-{serial}"),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![cert_der.to_owned()]);
    let token = jsonwebtoken::encode(&header, &claims, signer)?;
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

/// Decodes `%XX` escapes and `+` in a query value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot bind a loopback port to find a free one")?;
    Ok(listener.local_addr()?.port())
}

/// The last lines of a log file.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    match File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_scopes() {
        assert_eq!(
            percent_decode("repository%3Alibrary%2Fbusybox%3Apull%2Cpush"),
            "repository:library/busybox:pull,push"
        );
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }

    #[test]
    fn starts_and_cleans_up() {
        let mut registry = Registry::start().unwrap();
        let dir = registry.dir.path().to_owned();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, registry.port));
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        registry.kill().unwrap();
        assert!(TcpStream::connect(addr).is_err());
        drop(registry);
        assert!(!dir.exists());
    }
}
