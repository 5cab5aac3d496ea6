//! The one error type of the image store.
//!
//! The agent shows these messages to users as a pod's `ErrImagePull` reason,
//! so each names the image (or file) and says what went wrong in words a user
//! can act on.

use std::path::PathBuf;

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference is not a valid image reference.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The image (or the manifest for this platform) does not exist, in the
    /// store or in the registry.
    #[error("image {reference} not found: {detail}")]
    NotFound {
        /// The normalized reference, or the id, that was looked for.
        reference: String,
        /// Where it was looked for, or what the registry said.
        detail: String,
    },

    /// The registry refused access: no credentials, wrong ones, or ones
    /// without pull rights on the repository.
    #[error("pull access to {reference} denied by registry {registry}: {detail}")]
    Unauthorized {
        /// The normalized reference being pulled.
        reference: String,
        /// The registry host (and port).
        registry: String,
        /// What the registry or its token server said.
        detail: String,
    },

    /// The registry could not be reached at all (nothing listening, DNS,
    /// TLS handshake, timeout).
    #[error("cannot reach registry {registry} to pull {reference}: {detail}")]
    Unreachable {
        /// The normalized reference being pulled.
        reference: String,
        /// The registry host (and port).
        registry: String,
        /// The transport error.
        detail: String,
    },

    /// The registry answered, but with an error that is none of the above
    /// (a server error, a malformed answer).
    #[error("registry {registry} failed to serve {reference}: {detail}")]
    Registry {
        /// The normalized reference being pulled.
        reference: String,
        /// The registry host (and port).
        registry: String,
        /// What went wrong.
        detail: String,
    },

    /// The image's content is not acceptable: a digest that does not match
    /// the bytes, a malformed manifest or config, a layer that cannot be
    /// unpacked, an archive in no known format.
    #[error("invalid image {image}: {reason}")]
    Invalid {
        /// The image, blob or archive concerned.
        image: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The store's state file cannot be read as one.
    #[error(
        "image store state {path} is damaged: {reason}; move it away to start with an empty store"
    )]
    DamagedState {
        /// The state file, `refs.json`.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },

    /// Another process has the store open.
    #[error("image store {path} is in use by another process")]
    Locked {
        /// The store's directory.
        path: PathBuf,
    },

    /// A file system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, as a verb phrase ("create", "read").
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// An [`ImageError::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    /// An [`ImageError::Invalid`] about `image`.
    pub(crate) fn invalid(image: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            image: image.into(),
            reason: reason.into(),
        }
    }
}
