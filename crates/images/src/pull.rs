//! Pulling images from registries through the distribution API, with
//! `oci-client` for the protocol (authentication challenges, bearer tokens,
//! blob streams).
//!
//! A pull resolves the reference to a manifest (choosing this machine's
//! platform from an index), downloads the config and the layers the store
//! lacks into verified blobs, and hands over to the store to unpack and
//! record them. Transport: HTTPS with verified certificates, except for
//! registries named insecure and loopback ones (`localhost`, 127.0.0.0/8,
//! `::1`), which, as Docker does, are tried over HTTPS without verifying
//! the certificate and then over plain HTTP.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use crate::auth::{Credential, select_credential};
use crate::manifest::{
    Descriptor, Document, MANIFEST_TYPES, host_architecture, parse_document, select_platform,
};
use crate::reference::ImageRef;
use crate::store::Pins;
use crate::{Image, ImageError, ImageStore};

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a registry may leave a read waiting.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Layers downloaded at once.
const PARALLEL_DOWNLOADS: usize = 3;

/// How a pull authenticates and which registries it may reach without
/// verified TLS.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Credentials to choose from (the pod's image pull secrets, in order);
    /// the one matching the image's registry most closely is used, and
    /// none means an anonymous pull.
    pub credentials: Vec<Credential>,
    /// Registries (`host:port`, `host`, or a CIDR such as `10.0.0.0/8`)
    /// reached over HTTPS without certificate checks, or plain HTTP.
    /// Loopback registries always are.
    pub insecure_registries: Vec<String>,
}

/// Whether `registry` (`host[:port]`) may be reached without verified TLS.
pub(crate) fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    let host = host_of(registry);
    let ip: Option<IpAddr> = host.parse().ok();
    if host.eq_ignore_ascii_case("localhost") || ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    insecure.iter().any(|entry| {
        let entry = entry.trim();
        if entry == registry || entry == host {
            return true;
        }
        match (entry.parse::<ipnet::IpNet>(), ip) {
            (Ok(net), Some(ip)) => net.contains(&ip),
            _ => false,
        }
    })
}

/// The host of `host[:port]`, without brackets around an IPv6 address.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    }
}

/// A way of talking to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// HTTPS; `verify` says whether the certificate is checked.
    Https { verify: bool },
    /// Plain HTTP.
    Http,
}

/// The transports to try for `registry`, in order.
fn transports(registry: &str, insecure: &[String]) -> Vec<Transport> {
    if is_insecure(registry, insecure) {
        vec![Transport::Https { verify: false }, Transport::Http]
    } else {
        vec![Transport::Https { verify: true }]
    }
}

/// An authenticated conversation with one registry about one reference.
struct Session {
    client: Client,
    auth: RegistryAuth,
    reference: oci_client::Reference,
    /// The normalized reference, for messages.
    key: String,
    /// The registry, for messages.
    registry: String,
    /// The user whose credentials are used, if any, for messages.
    user: Option<String>,
}

impl Session {
    /// Finds a transport that reaches the registry and authenticates (for
    /// token registries, fetches a pull token).
    async fn connect(image: &ImageRef, options: &PullOptions) -> Result<Self, ImageError> {
        let credential =
            select_credential(&options.credentials, &image.registry, &image.repository);
        let auth = match credential {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let candidates = transports(&image.registry, &options.insecure_registries);
        let reference = image.to_oci();
        let mut last_error = None;
        for transport in candidates {
            let client =
                Client::try_from(client_config(transport)).map_err(|e| ImageError::Registry {
                    reference: image.key(),
                    registry: image.registry.clone(),
                    detail: format!("cannot set up an HTTP client: {}", chain(&e)),
                })?;
            let session = Self {
                client,
                auth: auth.clone(),
                reference: reference.clone(),
                key: image.key(),
                registry: image.registry.clone(),
                user: credential.map(|c| c.username.clone()),
            };
            match session
                .client
                .auth(&reference, &auth, RegistryOperation::Pull)
                .await
            {
                Ok(_) => return Ok(session),
                Err(e) if is_transport_error(&e) => {
                    tracing::debug!(registry = %image.registry, ?transport, "registry not reachable this way: {}", chain(&e));
                    last_error = Some(session.classify(e));
                }
                Err(e) => return Err(session.classify(e)),
            }
        }
        Err(last_error.unwrap_or_else(|| ImageError::Unreachable {
            reference: image.key(),
            registry: image.registry.clone(),
            detail: "no way to reach it".to_owned(),
        }))
    }

    /// Fetches the manifest or index `reference` names; returns its bytes
    /// and digest (checked by `oci-client` against the registry's
    /// `Docker-Content-Digest` and any digest in the reference).
    async fn manifest(
        &self,
        reference: &oci_client::Reference,
    ) -> Result<(Vec<u8>, String), ImageError> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(reference, &self.auth, &MANIFEST_TYPES)
            .await
            .map_err(|e| self.classify(e))?;
        Ok((bytes.to_vec(), digest))
    }

    /// Turns an `oci-client` error into one a user can act on.
    fn classify(&self, error: OciDistributionError) -> ImageError {
        let not_found = |detail: String| ImageError::NotFound {
            reference: self.key.clone(),
            detail,
        };
        let unauthorized = |detail: String| ImageError::Unauthorized {
            reference: self.key.clone(),
            registry: self.registry.clone(),
            detail,
        };
        let refused = || match &self.user {
            Some(user) => format!("the credentials of user {user:?} were refused"),
            None => "the registry requires credentials and no pull secret matches it".to_owned(),
        };
        match error {
            OciDistributionError::RequestError(ref e) if e.is_connect() || e.is_timeout() => {
                ImageError::Unreachable {
                    reference: self.key.clone(),
                    registry: self.registry.clone(),
                    detail: chain(&error),
                }
            }
            OciDistributionError::UnauthorizedError { .. } => unauthorized(refused()),
            OciDistributionError::AuthenticationFailure(reason) => {
                let reason = reason.trim();
                unauthorized(format!("{} (token server: {reason})", refused()))
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let detail = envelope
                    .errors
                    .iter()
                    .map(|e| {
                        if e.message.is_empty() {
                            format!("{:?}", e.code)
                        } else {
                            e.message.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    not_found(detail)
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    unauthorized(format!("{} ({detail})", refused()))
                } else {
                    self.registry_error(detail)
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                404 => not_found(message),
                401 | 403 => unauthorized(refused()),
                _ => self.registry_error(format!("HTTP {code}: {}", message.trim())),
            },
            OciDistributionError::ImageManifestNotFoundError(message) => not_found(message),
            OciDistributionError::DigestError(e) => ImageError::invalid(&self.key, e.to_string()),
            other => self.registry_error(chain(&other)),
        }
    }

    fn registry_error(&self, detail: String) -> ImageError {
        ImageError::Registry {
            reference: self.key.clone(),
            registry: self.registry.clone(),
            detail,
        }
    }
}

/// The client configuration for `transport`.
fn client_config(transport: Transport) -> ClientConfig {
    ClientConfig {
        protocol: match transport {
            Transport::Http => ClientProtocol::Http,
            Transport::Https { .. } => ClientProtocol::Https,
        },
        accept_invalid_certificates: matches!(transport, Transport::Https { verify: false }),
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        // Platforms are chosen here, from the raw index.
        platform_resolver: None,
        ..ClientConfig::default()
    }
}

/// Whether `error` means the registry was not reached (rather than that it
/// answered with an error).
fn is_transport_error(error: &OciDistributionError) -> bool {
    matches!(error, OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() || e.is_request())
}

/// An error and its causes, `a: b: c`, skipping causes already quoted.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl ImageStore {
    /// Pulls `reference` from its registry (unless the store already has
    /// every blob it needs, in which case only the manifest is fetched) and
    /// records it under its normalized name. Two pulls of the same
    /// reference at once run one after the other, and the second finds the
    /// content the first fetched.
    pub async fn pull(&self, reference: &str, options: &PullOptions) -> Result<Image, ImageError> {
        let image = ImageRef::parse(reference)?;
        let key = image.key();
        let lock = self.inner.pull_locks.get(&key);
        let _pulling = lock.lock().await;
        let pins = Arc::new(Pins::new(self.inner.clone()));

        let session = Session::connect(&image, options).await?;
        let (top, top_digest) = session.manifest(&session.reference).await?;
        self.write_blob_async(top.clone(), top_digest.clone(), pins.clone())
            .await?;
        let (manifest_digest, manifest_bytes) =
            match parse_document(&top).map_err(|r| ImageError::invalid(&key, r))? {
                Document::Manifest(_) => (top_digest.clone(), top),
                Document::Index(index) => {
                    let entry = select_platform(&index, "linux", host_architecture()).map_err(
                        |detail| ImageError::NotFound {
                            reference: key.clone(),
                            detail,
                        },
                    )?;
                    let by_digest = session.reference.clone_with_digest(entry.digest.clone());
                    let (bytes, digest) = session.manifest(&by_digest).await?;
                    self.write_blob_async(bytes.clone(), digest.clone(), pins.clone())
                        .await?;
                    (digest, bytes)
                }
            };
        let manifest = match parse_document(&manifest_bytes)
            .map_err(|r| ImageError::invalid(&manifest_digest, r))?
        {
            Document::Manifest(manifest) => manifest,
            Document::Index(_) => {
                return Err(ImageError::invalid(
                    &manifest_digest,
                    "an image index where a manifest was expected",
                ));
            }
        };

        let blobs: Vec<Descriptor> = std::iter::once(manifest.config.clone())
            .chain(manifest.layers.iter().cloned())
            .collect();
        // The downloads are made before they are streamed, so the pull's
        // future holds no closure over borrowed descriptors: callers that
        // spawn it can prove it Send.
        type Download<'a> = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), ImageError>> + Send + 'a>,
        >;
        let downloads: Vec<Download<'_>> = blobs
            .iter()
            .map(|d| Box::pin(self.download(&session, d, &pins)) as Download<'_>)
            .collect();
        futures::stream::iter(downloads)
            .buffer_unordered(PARALLEL_DOWNLOADS)
            .try_collect::<Vec<()>>()
            .await?;

        let store = self.clone();
        let refs = vec![key.clone()];
        let committed = tokio::task::spawn_blocking(move || {
            store.commit(&refs, &top_digest, &manifest_digest, &pins)
        })
        .await
        .map_err(|e| ImageError::invalid(&key, format!("recording the image failed: {e}")))??;
        tracing::info!(reference = %key, id = %committed.id, "pulled an image");
        Ok(committed)
    }

    /// Writes a small blob on a blocking thread.
    async fn write_blob_async(
        &self,
        bytes: Vec<u8>,
        digest: String,
        pins: Arc<Pins>,
    ) -> Result<(), ImageError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blob(&bytes, &digest, &pins))
            .await
            .map_err(|e| ImageError::invalid("blob", format!("writing failed: {e}")))?
    }

    /// Downloads the blob `descriptor` describes unless it is present,
    /// checking its size and digest.
    async fn download(
        &self,
        session: &Session,
        descriptor: &Descriptor,
        pins: &Pins,
    ) -> Result<(), ImageError> {
        pins.pin(&descriptor.digest);
        if self.inner.blobs.exists(&descriptor.digest) {
            return Ok(());
        }
        let wanted = OciDescriptor {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest.clone(),
            size: i64::try_from(descriptor.size).unwrap_or(i64::MAX),
            ..OciDescriptor::default()
        };
        let mut stream = session
            .client
            .pull_blob_stream(&session.reference, &wanted)
            .await
            .map_err(|e| session.classify(e))?;
        let mut writer = self.inner.blobs.writer()?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                session.registry_error(format!("download of {} failed: {e}", descriptor.digest))
            })?;
            if writer.size() + chunk.len() as u64 > descriptor.size {
                return Err(ImageError::invalid(
                    &descriptor.digest,
                    format!(
                        "the registry sent more than the {} bytes the manifest gives",
                        descriptor.size
                    ),
                ));
            }
            // Writes go to the page cache; the flush at the end runs on a
            // blocking thread.
            writer.write_all(&chunk).map_err(|e| {
                ImageError::invalid(&descriptor.digest, format!("cannot store: {e}"))
            })?;
        }
        let expected = descriptor.digest.clone();
        let size = descriptor.size;
        tokio::task::spawn_blocking(move || writer.finish(Some(&expected), Some(size), |_| {}))
            .await
            .map_err(|e| {
                ImageError::invalid(&descriptor.digest, format!("storing failed: {e}"))
            })??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        let listed = vec![
            "registry.internal:5000".to_owned(),
            "plain.example.com".to_owned(),
            "10.0.0.0/8".to_owned(),
        ];
        for insecure in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.4.5.6",
            "[::1]:5000",
            "registry.internal:5000",
            "plain.example.com:443",
            "10.1.2.3:5000",
        ] {
            assert!(is_insecure(insecure, &listed), "{insecure}");
            assert_eq!(
                transports(insecure, &listed),
                [Transport::Https { verify: false }, Transport::Http]
            );
        }
        for secure in [
            "docker.io",
            "registry.internal:5001",
            "11.0.0.1",
            "registry.k8s.io",
        ] {
            assert!(!is_insecure(secure, &listed), "{secure}");
            assert_eq!(
                transports(secure, &listed),
                [Transport::Https { verify: true }]
            );
        }
    }
}
