//! The store's one error type, shared by both backends so callers (and the
//! conformance suite) see the same error for the same mistake.

use std::path::PathBuf;

use crate::types::{LeaseId, Revision};

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The revision asked for has been compacted away.
    #[error("required revision {requested} has been compacted{}", compacted_suffix(*.compacted))]
    Compacted {
        /// The revision the caller asked for.
        requested: Revision,
        /// The compaction point, when the backend reports it.
        compacted: Option<Revision>,
    },

    /// The revision asked for is newer than the store's current one.
    #[error("required revision {requested} is a future revision")]
    FutureRevision {
        /// The revision the caller asked for.
        requested: Revision,
    },

    /// The lease does not exist (never granted, revoked, or expired).
    #[error("lease {0:x} not found")]
    LeaseNotFound(LeaseId),

    /// A lease with this identifier already exists.
    #[error("lease {0:x} already exists")]
    LeaseExists(LeaseId),

    /// A request named no key.
    #[error("key is not provided")]
    EmptyKey,

    /// A request is larger than the store accepts.
    #[error("request of {size} bytes is too large (limit {limit})")]
    RequestTooLarge {
        /// Size of the request.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A transaction branch has too many operations.
    #[error("too many operations in transaction ({ops}, limit {limit})")]
    TooManyOps {
        /// Operations in the largest branch.
        ops: usize,
        /// The limit.
        limit: usize,
    },

    /// A transaction branch writes the same key twice.
    #[error("duplicate key given in transaction")]
    DuplicateKey,

    /// The backend cannot be reached (etcd down, connection refused, timeout).
    #[error("store unavailable: {backend}: {reason}")]
    Unavailable {
        /// Which backend, with its address.
        backend: String,
        /// What went wrong, as the transport reported it.
        reason: String,
    },

    /// The disk holding the embedded store is full; nothing was written.
    #[error("no space left on device for {path}")]
    NoSpace {
        /// The file that could not grow.
        path: PathBuf,
    },

    /// An I/O error on one of the embedded store's files.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// A store file is damaged, foreign, or of an unknown format.
    #[error("{path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// The data directory is already open in another process.
    #[error("store at {path} is in use by another process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// The store has been shut down, or stopped accepting writes after an
    /// I/O error it cannot recover from without a restart.
    #[error("store is closed: {0}")]
    Closed(String),

    /// A request the backend rejected for another reason.
    #[error("invalid request: {0}")]
    Invalid(String),
}

fn compacted_suffix(compacted: Option<Revision>) -> String {
    match compacted {
        Some(rev) => format!(" (compacted at {rev})"),
        None => String::new(),
    }
}

impl StoreError {
    /// Builds an [`StoreError::Io`], or [`StoreError::NoSpace`] for ENOSPC and
    /// EDQUOT so callers can tell a full disk from a failing one.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if is_no_space(&source) {
            StoreError::NoSpace { path }
        } else {
            StoreError::Io { path, source }
        }
    }

    /// A copy of an error that stopped a whole batch, for each of its
    /// callers (`io::Error` is not `Clone`).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            StoreError::Io { path, source } => StoreError::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StoreError::NoSpace { path } => StoreError::NoSpace { path: path.clone() },
            StoreError::Corrupt { path, detail } => StoreError::Corrupt {
                path: path.clone(),
                detail: detail.clone(),
            },
            StoreError::Closed(why) => StoreError::Closed(why.clone()),
            other => StoreError::Closed(other.to_string()),
        }
    }

    /// A short stable name for the kind of error, for comparing backends and
    /// for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Compacted { .. } => "compacted",
            StoreError::FutureRevision { .. } => "future-revision",
            StoreError::LeaseNotFound(_) => "lease-not-found",
            StoreError::LeaseExists(_) => "lease-exists",
            StoreError::EmptyKey => "empty-key",
            StoreError::RequestTooLarge { .. } => "request-too-large",
            StoreError::TooManyOps { .. } => "too-many-ops",
            StoreError::DuplicateKey => "duplicate-key",
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::NoSpace { .. } => "no-space",
            StoreError::Io { .. } => "io",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Locked { .. } => "locked",
            StoreError::Closed(_) => "closed",
            StoreError::Invalid(_) => "invalid",
        }
    }
}

pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(libc::ENOSPC)
        || e.raw_os_error() == Some(libc::EDQUOT)
}

/// Shorthand for results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
