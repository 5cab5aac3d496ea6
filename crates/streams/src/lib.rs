//! The stream protocols of `kubectl exec`, `attach` and `port-forward`,
//! server side, over a connection that was already upgraded.
//!
//! The agent's HTTP handler calls `remotecommand::negotiate` or
//! `portforward::negotiate` with the request's head, sends the 101 response
//! it returns (or the error response), and hands the upgraded connection
//! (`hyper::upgrade::Upgraded` through `hyper_util::rt::TokioIo`) to the
//! module's `accept`. What comes back are plain byte streams and terminal
//! sizes; this crate knows nothing of containers.
//!
//! Transports: SPDY/3.1 (`spdy`, written here: no Rust crate speaks it), the
//! WebSocket channel protocols (`ws`, over `tokio-tungstenite`), and SPDY
//! tunnelled in WebSocket binary messages.

mod close;
mod error;
mod io;
mod pipe;
pub mod portforward;
pub mod remotecommand;
mod spdy;
mod upgrade;
mod ws;

pub use error::StreamError;
pub use io::{StreamReader, StreamWriter};
pub use spdy::FrameError;

#[cfg(test)]
mod leaks;
