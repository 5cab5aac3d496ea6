//! The crate's error type.

use std::time::Duration;

use crate::spdy::FrameError;

/// What can go wrong while setting up or running a stream session.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading or writing the upgraded connection failed.
    #[error("stream connection i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The client sent SPDY the protocol does not allow.
    #[error("spdy protocol error: {0}")]
    Spdy(#[from] FrameError),
    /// The WebSocket layer failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The client opened a stream whose `streamtype` header is missing or
    /// names no stream this protocol has.
    #[error("unknown stream type {0:?}")]
    UnknownStreamType(String),
    /// The client opened a second stream of a type it already opened.
    #[error("duplicate {0} stream")]
    DuplicateStream(&'static str),
    /// A stream the session needs was not opened in time.
    #[error("timed out after {0:?} waiting for the client to open its streams")]
    StreamTimeout(Duration),
    /// The client went away before the session was set up.
    #[error("connection closed by the client")]
    Closed,
    /// A query parameter of the request is missing or invalid.
    #[error("query parameter {name}: {detail}")]
    Query {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}
