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
//!
//! An exec handler on hyper, in outline (`tests/clients/server.rs` has the
//! whole of it, wired to real processes):
//!
//! ```ignore
//! let on_upgrade = hyper::upgrade::on(&mut req);
//! let (parts, _) = req.into_parts();
//! let query = parts.uri.query().unwrap_or("");
//! let opts = remotecommand::Options::from_query(query)?; // -> 400
//! let argv = remotecommand::command_from_query(query);
//! match remotecommand::negotiate(&parts) {
//!     Err(refusal) => refusal.map(Full::from),
//!     Ok((negotiated, switching)) => {
//!         tokio::spawn(async move {
//!             let io = TokioIo::new(on_upgrade.await?);
//!             let mut session = remotecommand::accept(negotiated, opts, io).await?;
//!             // copy session.stdin / stdout / stderr to and from the
//!             // process, apply session.resize, stop the process if
//!             // session.closed() resolves first, then:
//!             session.finish(Outcome::NonZeroExitCode(code)).await
//!         });
//!         switching.map(|()| Full::default())
//!     }
//! }
//! ```
//!
//! Port-forward is the same with `portforward::negotiate` and `accept`
//! (ports from `portforward::ports_from_query` when
//! `Negotiated::needs_query_ports`), then one task per `Forwarder::next`
//! copying `Forward::stream` to the pod's port, or `Forward::error.report`
//! when the port cannot be reached.

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
