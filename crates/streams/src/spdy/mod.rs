//! SPDY/3.1, server side: frames (`frame`), header blocks compressed with
//! SPDY's dictionary (`headers`, `dictionary`) and a connection that turns
//! the client's streams into byte streams (`conn`).
//!
//! Only what Kubernetes' clients use is here: the client opens every
//! stream, the server answers with SYN_REPLY, both sides send data and FIN,
//! either may reset; pings are echoed; GOAWAY ends the session. Server push
//! and priorities are not.

mod conn;
mod dictionary;
pub(crate) mod frame;
mod headers;
#[cfg(test)]
pub(crate) mod test_client;

pub(crate) use conn::{ClosedFuture, IncomingStream, RecvStream, SendStream, SpdyConn};
pub use frame::FrameError;
