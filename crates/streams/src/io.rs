//! The byte streams handed to callers, whatever the transport below.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::spdy::{RecvStream, SendStream};
use crate::ws::{ChannelReader, ChannelWriter};

/// Bytes the client sends on one stream (stdin, the client's side of a
/// forwarded connection). Reads end (0 bytes) when the client closes the
/// stream, resets it, or goes away.
pub struct StreamReader(Reader);

enum Reader {
    Spdy(RecvStream),
    Ws(ChannelReader),
}

impl StreamReader {
    pub(crate) fn spdy(s: RecvStream) -> Self {
        Self(Reader::Spdy(s))
    }

    pub(crate) fn ws(s: ChannelReader) -> Self {
        Self(Reader::Ws(s))
    }

    /// Resolves once the connection below can carry nothing more.
    pub(crate) fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        match &self.0 {
            Reader::Spdy(s) => futures::future::Either::Left(s.closed()),
            Reader::Ws(s) => futures::future::Either::Right(s.closed()),
        }
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Reader::Spdy(s) => Pin::new(s).poll_read(cx, buf),
            Reader::Ws(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

/// Bytes for the client on one stream (stdout, stderr, the pod's side of a
/// forwarded connection). Writes fail with `BrokenPipe` once the client
/// reset the stream or went away. Shutting the writer down (or dropping it)
/// ends the stream: SPDY sends FIN; the WebSocket protocols have no way to
/// say so and only refuse further writes.
pub struct StreamWriter(Writer);

enum Writer {
    Spdy(SendStream),
    Ws(ChannelWriter),
}

impl StreamWriter {
    pub(crate) fn spdy(s: SendStream) -> Self {
        Self(Writer::Spdy(s))
    }

    pub(crate) fn ws(s: ChannelWriter) -> Self {
        Self(Writer::Ws(s))
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Writer::Spdy(s) => Pin::new(s).poll_write(cx, buf),
            Writer::Ws(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Writer::Spdy(s) => Pin::new(s).poll_flush(cx),
            Writer::Ws(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Writer::Spdy(s) => Pin::new(s).poll_shutdown(cx),
            Writer::Ws(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
