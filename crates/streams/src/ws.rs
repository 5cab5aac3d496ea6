//! Kubernetes' WebSocket channel protocols, server side, and WebSocket as a
//! plain byte stream for SPDY tunnelled in it.
//!
//! `channel.k8s.io` and its versions put the channel number in the first
//! byte of every binary message; the `base64.` variants send text messages
//! whose first character is the channel as a digit and whose rest is base64.
//! `v5.channel.k8s.io` adds channel 255: a message `[255, n]` says the
//! sender will write no more on channel `n` (kubectl uses it for the end of
//! stdin).
//!
//! As with SPDY (see `spdy::conn`), a reader task fills one `Pipe` per
//! readable channel and a writer task sends what the channel writers queue;
//! dropping the last handle closes gracefully: the queue, then a close frame
//! with 1000 (client-go treats any other close as an error), then waiting
//! for the client's close.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::close;
use crate::pipe::{Budget, End, Pipe};

/// The v5 channel that closes another.
pub(crate) const CLOSE_CHANNEL: u8 = 255;
/// The largest message we send.
const MAX_MESSAGE: usize = 32 * 1024;
/// A connection with no message for this long is closed (client-go pings
/// every 5 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);

/// How channel messages are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Binary messages, the channel in the first byte.
    Binary,
    /// Text messages, the channel as an ASCII digit, then base64.
    Base64,
}

/// Wraps an upgraded connection as a server-side WebSocket.
pub(crate) async fn server<IO>(io: IO) -> WebSocketStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default().max_message_size(Some(16 << 20));
    WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
}

/// A channel connection; its readers and writers keep it alive too.
pub(crate) struct ChannelConn {
    core: Arc<Core>,
}

struct Core {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.shared.start_closing();
    }
}

struct Shared {
    codec: Codec,
    /// Whether channel 255 closes channels (v5).
    close_channel: bool,
    inbound: HashMap<u8, Arc<Pipe>>,
    out: mpsc::UnboundedSender<(u8, Bytes)>,
    budget: Budget,
    closing: watch::Sender<Option<Instant>>,
    dead: watch::Sender<bool>,
}

impl Shared {
    fn start_closing(&self) {
        close::start(&self.closing);
    }

    fn mark_dead(&self, end: End) {
        for p in self.inbound.values() {
            p.finish(end);
        }
        self.budget.close();
        self.dead.send_replace(true);
        self.start_closing();
    }
}

impl ChannelConn {
    /// Starts the channel protocol on `ws`; `readable` are the channels
    /// whose messages are kept (the rest are dropped, as wsstream does).
    pub(crate) fn start<IO>(
        ws: WebSocketStream<IO>,
        codec: Codec,
        close_channel: bool,
        readable: &[u8],
    ) -> Self
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (out, out_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            codec,
            close_channel,
            inbound: readable
                .iter()
                .map(|&c| (c, Arc::new(Pipe::new())))
                .collect(),
            out,
            budget: Budget::new(),
            closing: watch::channel(None).0,
            dead: watch::channel(false).0,
        });
        let (sink, stream) = ws.split();
        let reader = tokio::spawn(read_loop(stream, shared.clone()));
        let writer = tokio::spawn(write_loop(sink, shared.clone(), out_rx));
        Self {
            core: Arc::new(Core {
                shared,
                tasks: Mutex::new(vec![reader, writer]),
            }),
        }
    }

    /// The reader of a channel given to `start` as readable.
    pub(crate) fn reader(&self, channel: u8) -> ChannelReader {
        ChannelReader {
            pipe: self.core.shared.inbound[&channel].clone(),
            core: self.core.clone(),
        }
    }

    /// A writer on `channel`.
    pub(crate) fn writer(&self, channel: u8) -> ChannelWriter {
        ChannelWriter {
            channel,
            core: self.core.clone(),
            closed: false,
        }
    }

    /// Sends one message on `channel` (may be empty), ahead of nothing.
    pub(crate) fn send(&self, channel: u8, data: Bytes) -> io::Result<()> {
        self.core
            .shared
            .out
            .send((channel, data))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
    }

    /// Drops whatever the client sends from now on.
    pub(crate) fn discard_input(&self) {
        for p in self.core.shared.inbound.values() {
            p.discard();
        }
    }

    /// Resolves once the connection can carry nothing more.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        closed(&self.core)
    }

    /// Closes gracefully and waits for the connection's tasks to end.
    pub(crate) async fn close(self) {
        self.core.shared.start_closing();
        let tasks = std::mem::take(&mut *self.core.tasks.lock().unwrap());
        for t in tasks {
            let _ = t.await;
        }
    }
}

fn closed(core: &Arc<Core>) -> impl Future<Output = ()> + Send + 'static {
    let mut dead = core.shared.dead.subscribe();
    async move {
        let _ = dead.wait_for(|d| *d).await;
    }
}

/// What the client sends on one channel.
pub(crate) struct ChannelReader {
    pipe: Arc<Pipe>,
    core: Arc<Core>,
}

impl ChannelReader {
    /// Resolves once the connection can carry nothing more.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        closed(&self.core)
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.pipe.poll_read(cx, buf).map_ok(|_| ())
    }
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        self.pipe.discard();
    }
}

/// Writes messages on one channel. Shutting it down only stops further
/// writes: the channel protocols before v5 cannot say a channel ended, and
/// client-go ignores a server's v5 close.
pub(crate) struct ChannelWriter {
    channel: u8,
    core: Arc<Core>,
    closed: bool,
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let broken = |what: &str| {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                what.to_owned(),
            )))
        };
        if self.closed {
            return broken("write after the channel was closed");
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let shared = &self.core.shared;
        match shared.budget.poll_room(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(false) => return broken("connection closed"),
            Poll::Ready(true) => {}
        }
        let n = buf.len().min(MAX_MESSAGE);
        shared.budget.take(n);
        if shared
            .out
            .send((self.channel, Bytes::copy_from_slice(&buf[..n])))
            .is_err()
        {
            return broken("connection closed");
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

/// Splits a message into its channel and payload.
pub(crate) fn decode_message(codec: Codec, message: &[u8]) -> Result<Option<(u8, Bytes)>, String> {
    let Some((&first, rest)) = message.split_first() else {
        return Ok(None);
    };
    match codec {
        Codec::Binary => Ok(Some((first, Bytes::copy_from_slice(rest)))),
        Codec::Base64 => {
            let channel = first.wrapping_sub(b'0');
            let data = BASE64
                .decode(rest)
                .map_err(|e| format!("channel {channel}: invalid base64: {e}"))?;
            Ok(Some((channel, Bytes::from(data))))
        }
    }
}

/// Frames `data` for `channel`.
pub(crate) fn encode_message(codec: Codec, channel: u8, data: &[u8]) -> Message {
    match codec {
        Codec::Binary => {
            let mut m = Vec::with_capacity(1 + data.len());
            m.push(channel);
            m.extend_from_slice(data);
            Message::Binary(m.into())
        }
        Codec::Base64 => {
            let mut m = String::with_capacity(1 + data.len().div_ceil(3) * 4);
            m.push(char::from(b'0'.wrapping_add(channel)));
            BASE64.encode_string(data, &mut m);
            Message::Text(m.into())
        }
    }
}

async fn read_loop<S>(mut stream: S, shared: Arc<Shared>)
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let mut closing = shared.closing.subscribe();
    let end = loop {
        let next = tokio::time::timeout(IDLE_TIMEOUT, stream.next());
        let message = match close::before_deadline(&mut closing, next).await {
            None => break End::Eof,
            Some(Err(_)) => {
                tracing::debug!("websocket idle for {IDLE_TIMEOUT:?}, closing");
                break End::Aborted;
            }
            Some(Ok(None)) => break End::Eof,
            Some(Ok(Some(Err(e)))) => {
                tracing::debug!(error = %e, "websocket read failed");
                break match e {
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                        End::Eof
                    }
                    _ => End::Aborted,
                };
            }
            Some(Ok(Some(Ok(m)))) => m,
        };
        let payload: Bytes = match message {
            Message::Binary(b) => b,
            Message::Text(t) => Bytes::from(t),
            Message::Close(_) => {
                // The client is done sending; tungstenite answers the close
                // and ends the stream once that is written.
                for p in shared.inbound.values() {
                    p.finish(End::Eof);
                }
                continue;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        let (channel, data) = match decode_message(shared.codec, &payload) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "dropping an undecodable websocket message");
                continue;
            }
        };
        if channel == CLOSE_CHANNEL && shared.close_channel {
            if let Some(p) = data.first().and_then(|c| shared.inbound.get(c)) {
                p.finish(End::Eof);
            }
            continue;
        }
        let Some(pipe) = shared.inbound.get(&channel) else {
            tracing::debug!(channel, "dropping a message for a channel that is not read");
            continue;
        };
        let push = pipe.push(data);
        if close::before_deadline(&mut closing, push).await.is_none() {
            break End::Eof;
        }
    };
    shared.mark_dead(end);
}

async fn write_loop<S>(
    mut sink: S,
    shared: Arc<Shared>,
    mut out: mpsc::UnboundedReceiver<(u8, Bytes)>,
) where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let mut closing = shared.closing.subscribe();
    let mut deadline_watch = shared.closing.subscribe();
    let codec = shared.codec;
    let work = async {
        loop {
            let (channel, data) = tokio::select! {
                biased;
                Some(m) = out.recv() => m,
                _ = closing.wait_for(Option::is_some) => break,
            };
            let len = data.len();
            let sent = sink.feed(encode_message(codec, channel, &data)).await;
            shared.budget.give_back(len);
            sent?;
            if out.is_empty() {
                sink.flush().await?;
            }
        }
        while let Ok((channel, data)) = out.try_recv() {
            sink.feed(encode_message(codec, channel, &data)).await?;
        }
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        sink.send(Message::Close(Some(close))).await
    };
    match close::before_deadline(&mut deadline_watch, work).await {
        Some(Ok(())) | None => {}
        Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {}
        Some(Err(e)) => {
            tracing::debug!(error = %e, "websocket write failed");
            shared.mark_dead(End::Aborted);
        }
    }
    shared.budget.close();
}

/// A WebSocket seen as a byte stream: binary messages in, binary messages
/// out, a normal close as the end (what client-go's tunnelling connection
/// expects under `SPDY/3.1+portforward.k8s.io`).
pub(crate) struct ByteTunnel<IO> {
    ws: WebSocketStream<IO>,
    pending: Bytes,
    read_closed: bool,
    close_sent: bool,
}

impl<IO> ByteTunnel<IO> {
    pub(crate) fn new(ws: WebSocketStream<IO>) -> Self {
        Self {
            ws,
            pending: Bytes::new(),
            read_closed: false,
            close_sent: false,
        }
    }
}

fn ws_io_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed")
        }
        e => io::Error::other(e),
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for ByteTunnel<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                let chunk = self.pending.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            if self.read_closed {
                return Poll::Ready(Ok(()));
            }
            match futures::ready!(self.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(b))) => self.pending = b,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message in a spdy tunnel",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => self.read_closed = true,
                Some(Ok(_)) => {}
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => {
                    self.read_closed = true;
                }
                Some(Err(e)) => return Poll::Ready(Err(ws_io_error(e))),
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ByteTunnel<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.close_sent {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "websocket closed",
            )));
        }
        futures::ready!(self.ws.poll_ready_unpin(cx)).map_err(ws_io_error)?;
        let n = buf.len().min(1 << 20);
        self.ws
            .start_send_unpin(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
            .map_err(ws_io_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.poll_flush_unpin(cx).map_err(ws_io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.close_sent {
            futures::ready!(self.ws.poll_ready_unpin(cx)).map_err(ws_io_error)?;
            let close = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            self.ws
                .start_send_unpin(Message::Close(Some(close)))
                .map_err(ws_io_error)?;
            self.close_sent = true;
        }
        match futures::ready!(self.ws.poll_flush_unpin(cx)) {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(ws_io_error(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_messages_carry_the_channel_in_the_first_byte() {
        let m = encode_message(Codec::Binary, 1, b"hi");
        assert_eq!(m, Message::Binary(Bytes::from_static(b"\x01hi")));
        assert_eq!(
            decode_message(Codec::Binary, b"\x00foo\n").unwrap(),
            Some((0, Bytes::from_static(b"foo\n")))
        );
        assert_eq!(decode_message(Codec::Binary, b"").unwrap(), None);
        assert_eq!(
            decode_message(Codec::Binary, b"\x03").unwrap(),
            Some((3, Bytes::new()))
        );
    }

    #[test]
    fn base64_messages_follow_wsstreams_examples() {
        // "foo\n" on stdin ('0'), "\n" on stdout ('1').
        assert_eq!(
            decode_message(Codec::Base64, b"0Zm9vCg==").unwrap(),
            Some((0, Bytes::from_static(b"foo\n")))
        );
        assert_eq!(
            encode_message(Codec::Base64, 1, b"\n"),
            Message::Text("1Cg==".into())
        );
        assert!(decode_message(Codec::Base64, b"0not base64!").is_err());
    }
}
