//! Image references and their normalized form.
//!
//! References are parsed with the distribution grammar (through
//! `oci_client::Reference`, a port of Docker's own parser) and written back
//! the way containerd and the kubelet show them: `busybox` is
//! `docker.io/library/busybox:latest`. The normalized form is the key of the
//! store's references, so `busybox`, `library/busybox` and
//! `docker.io/library/busybox:latest` find the same image.

use crate::ImageError;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRef {
    /// The registry host and port, `docker.io` for Docker Hub.
    pub registry: String,
    /// The repository path inside the registry, `library/busybox`.
    pub repository: String,
    /// The tag, unless the reference names a digest.
    pub tag: Option<String>,
    /// The digest, `sha256:<hex>`, when the reference pins one.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses `reference`, adding Docker Hub's defaults (registry,
    /// `library/`, tag `latest`). A reference with both a tag and a digest
    /// keeps only the digest, which alone decides the content.
    pub fn parse(reference: &str) -> Result<Self, ImageError> {
        let invalid = |reason: String| ImageError::InvalidReference {
            reference: reference.to_owned(),
            reason,
        };
        let trimmed = reference.trim();
        let parsed =
            oci_client::Reference::try_from(trimmed).map_err(|e| invalid(e.to_string()))?;
        if let Some(digest) = parsed.digest()
            && !digest.starts_with("sha256:")
        {
            return Err(invalid(format!(
                "digest {digest} is not sha256, the only algorithm supported"
            )));
        }
        let digest = parsed.digest().map(str::to_owned);
        Ok(Self {
            registry: parsed.registry().to_owned(),
            repository: parsed.repository().to_owned(),
            tag: if digest.is_some() {
                None
            } else {
                parsed.tag().map(str::to_owned)
            },
            digest,
        })
    }

    /// The repository with its registry, `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The normalized reference: `name:tag` or `name@digest`.
    pub fn key(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => format!("{}@{digest}", self.name()),
            (None, Some(tag)) => format!("{}:{tag}", self.name()),
            (None, None) => format!("{}:latest", self.name()),
        }
    }

    /// This reference for `oci_client`.
    pub fn to_oci(&self) -> oci_client::Reference {
        match &self.digest {
            Some(digest) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                digest.clone(),
            ),
            None => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                self.tag.clone().unwrap_or_else(|| "latest".to_owned()),
            ),
        }
    }
}

/// Normalizes an image reference the way the kubelet and containerd show
/// it: `busybox` becomes `docker.io/library/busybox:latest`,
/// `localhost:5000/x` becomes `localhost:5000/x:latest`, and a digest
/// reference keeps its digest (dropping any tag beside it).
pub fn normalize(reference: &str) -> Result<String, ImageError> {
    Ok(ImageRef::parse(reference)?.key())
}

/// The repository part of a normalized reference (`name:tag` or
/// `name@digest`), `docker.io/library/busybox`.
pub(crate) fn repository_of(key: &str) -> &str {
    if let Some((name, _)) = key.split_once('@') {
        return name;
    }
    // A tag follows the last ':' after the last '/'; a ':' before it is a
    // registry port.
    let slash = key.rfind('/').map_or(0, |i| i + 1);
    match key[slash..].rfind(':') {
        Some(colon) => &key[..slash + colon],
        None => key,
    }
}

/// Whether `key`, a normalized reference, names a tag (rather than a
/// digest).
pub(crate) fn is_tag_reference(key: &str) -> bool {
    !key.contains('@')
}

/// The image id `s` spells, if it is one: `sha256:<64 hex>` or the bare
/// 64 hex digits.
pub(crate) fn as_image_id(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            (
                "docker.io/library/busybox:1.36",
                "docker.io/library/busybox:1.36",
            ),
            (
                "index.docker.io/library/nginx",
                "docker.io/library/nginx:latest",
            ),
            ("bitnami/nginx:1.2", "docker.io/bitnami/nginx:1.2"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("  nginx  ", "docker.io/library/nginx:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn digests_are_kept_and_win_over_tags() {
        assert_eq!(
            normalize(&format!("busybox@{DIGEST}")).unwrap(),
            format!("docker.io/library/busybox@{DIGEST}")
        );
        assert_eq!(
            normalize(&format!("busybox:1.36@{DIGEST}")).unwrap(),
            format!("docker.io/library/busybox@{DIGEST}")
        );
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "a//b",
            "busybox@sha256:1234",
            "-busybox",
        ] {
            let err = normalize(bad).unwrap_err();
            assert!(
                matches!(err, ImageError::InvalidReference { .. }),
                "{bad}: {err}"
            );
        }
        let md5 = format!("busybox@md5:{}", "0".repeat(32));
        assert!(normalize(&md5).is_err());
    }

    #[test]
    fn splits_repositories_from_tags_and_digests() {
        assert_eq!(
            repository_of("docker.io/library/busybox:1.36"),
            "docker.io/library/busybox"
        );
        assert_eq!(repository_of("localhost:5000/x:latest"), "localhost:5000/x");
        assert_eq!(repository_of("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(
            repository_of(&format!("localhost:5000/x@{DIGEST}")),
            "localhost:5000/x"
        );
        assert!(is_tag_reference("localhost:5000/x:1"));
        assert!(!is_tag_reference(&format!("localhost:5000/x@{DIGEST}")));
    }

    #[test]
    fn recognizes_image_ids() {
        let hex = &DIGEST[7..];
        assert_eq!(as_image_id(DIGEST).as_deref(), Some(DIGEST));
        assert_eq!(as_image_id(hex).as_deref(), Some(DIGEST));
        assert_eq!(as_image_id("busybox"), None);
        assert_eq!(as_image_id(&DIGEST.to_uppercase()), None);
    }
}
