//! The crate's one error type.

use std::time::Duration;

/// Everything that can go wrong running containers.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A system call or file operation failed; `context` names the object or path.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path or object.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The id is not one runc accepts.
    #[error("invalid container id {0:?}")]
    InvalidId(String),
    /// `create_container` was given an id that is already on disk.
    #[error("container {0} already exists")]
    AlreadyExists(String),
    /// No container with this id is on disk.
    #[error("container {0} not found")]
    NotFound(String),
    /// The operation needs a running container (attach, exec) and this one is not.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The container spec cannot be turned into a bundle (unknown user, capability, ...).
    #[error("invalid spec for container {id}: {message}")]
    InvalidSpec {
        /// The container.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// runc refused; `message` is runc's own error text, for the agent to report.
    #[error("runc {op} {id}: {message}")]
    Runc {
        /// The runc command (`create`, `start`, `exec`, ...).
        op: &'static str,
        /// The container.
        id: String,
        /// runc's message.
        message: String,
    },
    /// The container's shim failed or answered something unexpected.
    #[error("shim of container {id}: {message}")]
    Shim {
        /// The container.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// An `exec_output` command ran longer than its timeout and was killed.
    #[error("exec in container {id} timed out after {timeout:?}")]
    ExecTimeout {
        /// The container.
        id: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// A pod sandbox could not be made or removed.
    #[error("sandbox of pod {pod_uid}: {message}")]
    Sandbox {
        /// The pod.
        pod_uid: String,
        /// What went wrong.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Attaches a context to I/O errors (and nix errnos) as they become [`RuntimeError::Io`].
pub(crate) trait IoContext<T> {
    fn context<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|source| RuntimeError::Io {
            context: f(),
            source,
        })
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|errno| RuntimeError::Io {
            context: f(),
            source: std::io::Error::from(errno),
        })
    }
}
