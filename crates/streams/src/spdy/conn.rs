//! One SPDY/3.1 connection, server side.
//!
//! Two tasks own the socket: the reader decodes frames and routes them (new
//! streams to whoever accepts them, data into each stream's `Pipe`, pings
//! back out), the writer encodes frames in the order they were queued.
//! Header compression follows wire order, so the writer compresses as it
//! writes and the reader decompresses every block it reads.
//!
//! Flow control: SPDY/3.1 gives every stream and the session a 64 KiB send
//! window that the receiver reopens with WINDOW_UPDATE. kubectl's SPDY
//! (moby/spdystream) neither sends WINDOW_UPDATE nor honours it, so the send
//! side only holds to windows once the client has shown it keeps them (sent
//! a WINDOW_UPDATE or an initial window in SETTINGS), and the receive side
//! never refuses data past a window; it reopens windows as data is read, for
//! clients that wait for that, and otherwise relies on TCP: a stream nobody
//! reads stops the reader task.
//!
//! Shutdown: dropping the last handle (or `close`) starts a graceful close
//! with a deadline. The writer sends what is queued, then GOAWAY, then shuts
//! its half of the socket; the reader keeps reading until the client closes
//! its half, so the kernel never resets a socket with unread bytes and
//! throws away output the client has not read yet. Both tasks end at the
//! deadline at the latest.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::frame::{
    self, Frame, FrameError, FrameHead, HEAD_LEN, SETTINGS_INITIAL_WINDOW_SIZE, goaway, rst,
};
use super::headers::{HeaderDeflater, HeaderInflater, Headers};
use crate::close;
use crate::pipe::{Budget, End, Pipe, Pushed};

/// SPDY/3.1's initial window, for streams and for the session.
const INITIAL_WINDOW: i64 = 64 * 1024;
/// Reopen a receive window once this much has been read.
const WINDOW_UPDATE_AT: u32 = 32 * 1024;
/// The largest data frame we send.
const MAX_DATA_FRAME: usize = 16 * 1024;
/// A connection with no frame for this long is closed (the kubelet's
/// streaming idle timeout; kubectl pings every few seconds).
const IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);
/// Streams the client may open before one is taken from `SpdyConn`.
const INCOMING_QUEUE: usize = 16;

/// A stream the client opened, waiting to be replied to or refused.
pub(crate) struct IncomingStream {
    /// The stream id (odd: the client's).
    pub(crate) id: u32,
    /// The SYN_STREAM's headers.
    pub(crate) headers: Headers,
    pipe: Arc<Pipe>,
}

/// The handle on a connection; streams keep the connection alive too.
pub(crate) struct SpdyConn {
    core: Arc<Core>,
    incoming: mpsc::Receiver<IncomingStream>,
}

/// What the handles share. Dropping the last one starts the graceful close.
struct Core {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.shared.start_closing();
    }
}

/// State shared by the tasks and the handles.
struct Shared {
    table: Mutex<Table>,
    /// Frames in send order (data, replies, resets, GOAWAY).
    out: mpsc::UnboundedSender<Frame>,
    /// Frames that may overtake the queue: ping replies, window updates.
    urgent: mpsc::UnboundedSender<Frame>,
    budget: Budget,
    /// The deadline of the graceful close, once it started.
    closing: watch::Sender<Option<Instant>>,
    /// True once the connection can carry nothing more.
    dead: watch::Sender<bool>,
    /// The protocol error that ended the connection, if one did.
    failure: Mutex<Option<FrameError>>,
}

struct Table {
    streams: HashMap<u32, StreamState>,
    /// The highest stream id the client opened.
    last_peer_id: u32,
    /// New streams are handed out; otherwise they are refused.
    accepting: bool,
    dead: bool,
    /// The client has shown it keeps to flow-control windows.
    peer_flow_control: bool,
    initial_send_window: i64,
    session_send_window: i64,
    /// Bytes read but not yet given back to the client's session window.
    session_unacked: u32,
    /// Writers waiting for a window to open.
    window_waiters: Vec<Waker>,
}

struct StreamState {
    inbound: Arc<Pipe>,
    send_window: i64,
    recv_unacked: u32,
    /// We sent FIN.
    local_fin: bool,
    /// The client sent FIN.
    remote_fin: bool,
}

impl Table {
    fn wake_writers(&mut self) {
        for w in self.window_waiters.drain(..) {
            w.wake();
        }
    }

    /// Forgets a stream both sides have finished.
    fn retire_if_done(&mut self, id: u32) {
        if self
            .streams
            .get(&id)
            .is_some_and(|s| s.local_fin && s.remote_fin)
        {
            self.streams.remove(&id);
        }
    }
}

impl Shared {
    fn start_closing(&self) {
        close::start(&self.closing);
    }

    /// The connection is over: readers see `end`, writers fail.
    fn mark_dead(&self, end: End) {
        let mut t = self.table.lock().unwrap();
        if !t.dead {
            t.dead = true;
            for s in t.streams.values() {
                s.inbound.finish(end);
            }
            t.wake_writers();
        }
        drop(t);
        self.budget.close();
        self.dead.send_replace(true);
        self.start_closing();
    }

    /// Gives `n` read bytes back to the client's windows.
    fn credit(&self, id: u32, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let mut t = self.table.lock().unwrap();
        if t.dead {
            return;
        }
        t.session_unacked = t.session_unacked.saturating_add(n);
        if t.session_unacked >= WINDOW_UPDATE_AT {
            let delta = std::mem::take(&mut t.session_unacked);
            let _ = self.urgent.send(Frame::WindowUpdate {
                stream_id: 0,
                delta,
            });
        }
        if let Some(s) = t.streams.get_mut(&id)
            && !s.remote_fin
        {
            s.recv_unacked = s.recv_unacked.saturating_add(n);
            if s.recv_unacked >= WINDOW_UPDATE_AT {
                let delta = std::mem::take(&mut s.recv_unacked);
                let _ = self.urgent.send(Frame::WindowUpdate {
                    stream_id: id,
                    delta,
                });
            }
        }
    }

    fn send_reset(&self, stream_id: u32, status: u32) {
        let _ = self.out.send(Frame::RstStream { stream_id, status });
    }
}

impl SpdyConn {
    /// Starts serving SPDY on `io`, an upgraded connection.
    pub(crate) fn start<IO>(io: IO) -> Self
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (out, out_rx) = mpsc::unbounded_channel();
        let (urgent, urgent_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let shared = Arc::new(Shared {
            table: Mutex::new(Table {
                streams: HashMap::new(),
                last_peer_id: 0,
                accepting: true,
                dead: false,
                peer_flow_control: false,
                initial_send_window: INITIAL_WINDOW,
                session_send_window: INITIAL_WINDOW,
                session_unacked: 0,
                window_waiters: Vec::new(),
            }),
            out,
            urgent,
            budget: Budget::new(),
            closing: watch::channel(None).0,
            dead: watch::channel(false).0,
            failure: Mutex::new(None),
        });
        let (read, write) = tokio::io::split(io);
        let reader = tokio::spawn(read_loop(read, shared.clone(), incoming_tx));
        let writer = tokio::spawn(write_loop(write, shared.clone(), out_rx, urgent_rx));
        Self {
            core: Arc::new(Core {
                shared,
                tasks: Mutex::new(vec![reader, writer]),
            }),
            incoming,
        }
    }

    /// The next stream the client opens; `None` once it can open no more
    /// (GOAWAY, or the connection ended).
    pub(crate) async fn next_stream(&mut self) -> Option<IncomingStream> {
        self.incoming.recv().await
    }

    /// Accepts `stream`: replies with SYN_REPLY and returns its halves.
    pub(crate) fn reply(&self, stream: IncomingStream) -> (RecvStream, SendStream) {
        let _ = self.core.shared.out.send(Frame::SynReply {
            stream_id: stream.id,
            fin: false,
            headers: Headers::new(),
        });
        (
            RecvStream {
                id: stream.id,
                pipe: stream.pipe,
                core: self.core.clone(),
            },
            SendStream {
                id: stream.id,
                core: self.core.clone(),
                fin_sent: false,
            },
        )
    }

    /// Refuses `stream` with RST_STREAM `status`.
    pub(crate) fn refuse(&self, stream: IncomingStream, status: u32) {
        self.core
            .shared
            .table
            .lock()
            .unwrap()
            .streams
            .remove(&stream.id);
        stream.pipe.discard();
        self.core.shared.send_reset(stream.id, status);
    }

    /// Refuses every stream the client opens from now on.
    pub(crate) fn stop_accepting(&mut self) {
        self.core.shared.table.lock().unwrap().accepting = false;
        // Streams already queued are refused too.
        while let Ok(s) = self.incoming.try_recv() {
            self.refuse(s, rst::REFUSED_STREAM);
        }
    }

    /// Ends the session because the client broke the protocol.
    pub(crate) fn protocol_error(&self) {
        let last = self.core.shared.table.lock().unwrap().last_peer_id;
        let _ = self.core.shared.out.send(Frame::GoAway {
            last_good_stream_id: last,
            status: goaway::PROTOCOL_ERROR,
        });
        self.core.shared.start_closing();
    }

    /// Sends FIN on every stream still open on our side and drops what
    /// the client sends from now on: the session is over.
    pub(crate) fn finish_streams(&self) {
        let shared = &self.core.shared;
        let mut t = shared.table.lock().unwrap();
        let ids: Vec<u32> = t.streams.keys().copied().collect();
        for id in ids {
            let s = t.streams.get_mut(&id).expect("listed above");
            s.inbound.discard();
            if !s.local_fin {
                s.local_fin = true;
                let _ = shared.out.send(Frame::Data {
                    stream_id: id,
                    fin: true,
                    data: Bytes::new(),
                });
            }
            t.retire_if_done(id);
        }
        t.wake_writers();
    }

    /// Resolves once the connection can carry nothing more.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        closed(&self.core)
    }

    /// The protocol error the client made, if that ended the connection.
    pub(crate) fn failure(&self) -> Option<FrameError> {
        self.core.shared.failure.lock().unwrap().clone()
    }

    /// Makes `closed` futures without holding the connection open.
    pub(crate) fn closed_fn(&self) -> impl Fn() -> ClosedFuture + Send + Sync + 'static {
        let dead = self.core.shared.dead.subscribe();
        move || {
            let mut dead = dead.clone();
            Box::pin(async move {
                let _ = dead.wait_for(|d| *d).await;
            })
        }
    }

    /// Closes gracefully (queued frames, GOAWAY, then waits for the client
    /// to close its side) and waits for the connection's tasks to end.
    pub(crate) async fn close(self) {
        self.core.shared.start_closing();
        let tasks = std::mem::take(&mut *self.core.tasks.lock().unwrap());
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// What `SpdyConn::closed_fn` makes.
pub(crate) type ClosedFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

fn closed(core: &Arc<Core>) -> impl Future<Output = ()> + Send + 'static {
    let mut dead = core.shared.dead.subscribe();
    async move {
        let _ = dead.wait_for(|d| *d).await;
    }
}

/// The bytes the client sends on one stream. A reset stream or a closed
/// connection reads as the end of the stream.
pub(crate) struct RecvStream {
    id: u32,
    pipe: Arc<Pipe>,
    core: Arc<Core>,
}

impl RecvStream {
    /// Resolves once the connection can carry nothing more.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        closed(&self.core)
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.pipe.poll_read(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.core.shared.credit(self.id, n);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        let dropped = self.pipe.discard();
        if dropped > 0 {
            self.core.shared.credit(self.id, dropped);
        }
    }
}

/// The bytes we send on one stream. Shutting it down, or dropping it,
/// sends FIN.
pub(crate) struct SendStream {
    id: u32,
    core: Arc<Core>,
    fin_sent: bool,
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, what.to_owned())
}

impl SendStream {
    fn send_fin(&mut self) {
        if std::mem::replace(&mut self.fin_sent, true) {
            return;
        }
        let shared = &self.core.shared;
        let mut t = shared.table.lock().unwrap();
        if t.dead {
            return;
        }
        if let Some(s) = t.streams.get_mut(&self.id)
            && !s.local_fin
        {
            s.local_fin = true;
            let _ = shared.out.send(Frame::Data {
                stream_id: self.id,
                fin: true,
                data: Bytes::new(),
            });
            t.retire_if_done(self.id);
        }
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.fin_sent {
            return Poll::Ready(Err(broken("write after the stream was closed")));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let shared = &self.core.shared;
        let allowed = {
            let mut t = shared.table.lock().unwrap();
            if t.dead {
                return Poll::Ready(Err(broken("connection closed")));
            }
            let flow = t.peer_flow_control;
            let session = t.session_send_window;
            let Some(s) = t.streams.get(&self.id).filter(|s| !s.local_fin) else {
                return Poll::Ready(Err(broken("stream reset or closed")));
            };
            if flow {
                let window = s.send_window.min(session);
                if window <= 0 {
                    t.window_waiters.push(cx.waker().clone());
                    return Poll::Pending;
                }
                window as usize
            } else {
                usize::MAX
            }
        };
        match shared.budget.poll_room(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(false) => return Poll::Ready(Err(broken("connection closed"))),
            Poll::Ready(true) => {}
        }
        let n = buf.len().min(allowed).min(MAX_DATA_FRAME);
        {
            let mut t = shared.table.lock().unwrap();
            t.session_send_window -= n as i64;
            if let Some(s) = t.streams.get_mut(&self.id) {
                s.send_window -= n as i64;
            }
        }
        shared.budget.take(n);
        let frame = Frame::Data {
            stream_id: self.id,
            fin: false,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        if shared.out.send(frame).is_err() {
            return Poll::Ready(Err(broken("connection closed")));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer task flushes whenever its queue runs empty.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.send_fin();
        Poll::Ready(Ok(()))
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        self.send_fin();
    }
}

enum ReadError {
    Io(io::Error),
    Frame(FrameError),
}

/// Reads one frame; `Ok(None)` at a clean end of the connection.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    inflater: &mut HeaderInflater,
) -> Result<Option<Frame>, ReadError> {
    let mut head = [0u8; HEAD_LEN];
    let mut got = 0;
    while got < HEAD_LEN {
        match r.read(&mut head[got..]).await {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    let head = FrameHead::parse(&head);
    let mut payload = BytesMut::zeroed(head.length());
    r.read_exact(&mut payload).await.map_err(ReadError::Io)?;
    frame::decode(head, payload.freeze(), inflater)
        .map(Some)
        .map_err(ReadError::Frame)
}

async fn read_loop<R>(read: R, shared: Arc<Shared>, incoming: mpsc::Sender<IncomingStream>)
where
    R: AsyncRead + Send + Unpin,
{
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, read);
    let mut inflater = HeaderInflater::new();
    let mut incoming = Some(incoming);
    let mut closing = shared.closing.subscribe();
    let end = loop {
        let next = tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut reader, &mut inflater));
        let frame = match close::before_deadline(&mut closing, next).await {
            None => break End::Eof,
            Some(Err(_)) => {
                tracing::debug!("spdy connection idle for {IDLE_TIMEOUT:?}, closing");
                break End::Aborted;
            }
            Some(Ok(Ok(Some(frame)))) => frame,
            Some(Ok(Ok(None))) => break End::Eof,
            Some(Ok(Err(ReadError::Io(e)))) => {
                tracing::debug!(error = %e, "spdy connection read failed");
                break End::Aborted;
            }
            Some(Ok(Err(ReadError::Frame(e)))) => {
                tracing::warn!(error = %e, "spdy protocol error, closing the connection");
                *shared.failure.lock().unwrap() = Some(e);
                let last = shared.table.lock().unwrap().last_peer_id;
                let _ = shared.out.send(Frame::GoAway {
                    last_good_stream_id: last,
                    status: goaway::PROTOCOL_ERROR,
                });
                break End::Aborted;
            }
        };
        let handled = handle_frame(&shared, &mut incoming, frame);
        if close::before_deadline(&mut closing, handled)
            .await
            .is_none()
        {
            break End::Eof;
        }
    };
    shared.mark_dead(end);
}

/// Acts on one frame from the client.
async fn handle_frame(
    shared: &Shared,
    incoming: &mut Option<mpsc::Sender<IncomingStream>>,
    frame: Frame,
) {
    match frame {
        Frame::SynStream {
            stream_id,
            fin,
            unidirectional,
            headers,
            ..
        } => {
            let pipe = Arc::new(Pipe::new());
            {
                let mut t = shared.table.lock().unwrap();
                // Client streams are odd and increase; like spdystream,
                // refuse the stream rather than the connection.
                if stream_id % 2 == 0 || stream_id <= t.last_peer_id {
                    drop(t);
                    tracing::debug!(stream_id, "stream id out of order, resetting");
                    shared.send_reset(stream_id, rst::PROTOCOL_ERROR);
                    return;
                }
                t.last_peer_id = stream_id;
                if !t.accepting || incoming.is_none() {
                    drop(t);
                    shared.send_reset(stream_id, rst::REFUSED_STREAM);
                    return;
                }
                if fin {
                    pipe.finish(End::Eof);
                }
                let send_window = t.initial_send_window;
                t.streams.insert(
                    stream_id,
                    StreamState {
                        inbound: pipe.clone(),
                        send_window,
                        recv_unacked: 0,
                        local_fin: unidirectional,
                        remote_fin: fin,
                    },
                );
            }
            let stream = IncomingStream {
                id: stream_id,
                headers,
                pipe,
            };
            let sent = match incoming {
                Some(tx) => tx.send(stream).await.is_ok(),
                None => false,
            };
            if !sent {
                shared.table.lock().unwrap().streams.remove(&stream_id);
                shared.send_reset(stream_id, rst::REFUSED_STREAM);
            }
        }
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            let len = data.len();
            let pipe = {
                let mut t = shared.table.lock().unwrap();
                match t.streams.get_mut(&stream_id) {
                    Some(s) if !s.remote_fin => {
                        s.remote_fin |= fin;
                        Some(s.inbound.clone())
                    }
                    Some(_) => {
                        drop(t);
                        shared.send_reset(stream_id, rst::INVALID_STREAM);
                        None
                    }
                    None => {
                        // Data for a stream we already forgot is late, not
                        // wrong; data for one never opened is an error.
                        if stream_id % 2 == 0 || stream_id > t.last_peer_id {
                            drop(t);
                            shared.send_reset(stream_id, rst::INVALID_STREAM);
                        }
                        None
                    }
                }
            };
            let Some(pipe) = pipe else {
                shared.credit(0, len);
                return;
            };
            if len > 0
                && let Pushed::Discarded(n) = pipe.push(data).await
            {
                shared.credit(stream_id, n);
            }
            if fin {
                pipe.finish(End::Eof);
                shared.table.lock().unwrap().retire_if_done(stream_id);
            }
        }
        Frame::Headers { stream_id, fin, .. } => {
            if fin {
                let mut t = shared.table.lock().unwrap();
                if let Some(s) = t.streams.get_mut(&stream_id) {
                    s.remote_fin = true;
                    s.inbound.finish(End::Eof);
                    t.retire_if_done(stream_id);
                }
            }
        }
        Frame::RstStream { stream_id, status } => {
            tracing::debug!(stream_id, status, "client reset a stream");
            let mut t = shared.table.lock().unwrap();
            if let Some(s) = t.streams.remove(&stream_id) {
                s.inbound.finish(End::Eof);
            }
            t.wake_writers();
        }
        Frame::Settings { entries, .. } => {
            let mut t = shared.table.lock().unwrap();
            for e in entries {
                if e.id == SETTINGS_INITIAL_WINDOW_SIZE {
                    let new = i64::from(e.value & 0x7fff_ffff);
                    let delta = new - t.initial_send_window;
                    t.initial_send_window = new;
                    for s in t.streams.values_mut() {
                        s.send_window += delta;
                    }
                    t.peer_flow_control = true;
                }
            }
            t.wake_writers();
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut t = shared.table.lock().unwrap();
            t.peer_flow_control = true;
            if stream_id == 0 {
                t.session_send_window += i64::from(delta);
            } else if let Some(s) = t.streams.get_mut(&stream_id) {
                s.send_window += i64::from(delta);
            }
            t.wake_writers();
        }
        Frame::Ping { id } => {
            // Odd ids are the client's pings; even ones would answer ours,
            // and we send none.
            if id % 2 == 1 {
                let _ = shared.urgent.send(Frame::Ping { id });
            }
        }
        Frame::GoAway { status, .. } => {
            tracing::debug!(status, "client sent GOAWAY");
            *incoming = None;
        }
        Frame::SynReply { .. } | Frame::Unknown { .. } => {}
    }
}

async fn write_loop<W>(
    write: W,
    shared: Arc<Shared>,
    mut out: mpsc::UnboundedReceiver<Frame>,
    mut urgent: mpsc::UnboundedReceiver<Frame>,
) where
    W: AsyncWrite + Send + Unpin,
{
    let mut closing = shared.closing.subscribe();
    let mut deadline_watch = shared.closing.subscribe();
    let work = async {
        let mut writer = FrameWriter {
            io: BufWriter::with_capacity(64 * 1024, write),
            deflater: HeaderDeflater::new(),
            buf: BytesMut::with_capacity(64 * 1024),
            goaway_sent: false,
            shared: &shared,
        };
        loop {
            let frame = tokio::select! {
                biased;
                Some(f) = urgent.recv() => f,
                Some(f) = out.recv() => f,
                _ = closing.wait_for(Option::is_some) => break,
            };
            writer.write(frame).await?;
            if urgent.is_empty() && out.is_empty() {
                writer.io.flush().await?;
            }
        }
        // Everything queued before the close began goes out, then GOAWAY.
        while let Ok(f) = out.try_recv() {
            writer.write(f).await?;
        }
        if !writer.goaway_sent {
            let last = shared.table.lock().unwrap().last_peer_id;
            writer
                .write(Frame::GoAway {
                    last_good_stream_id: last,
                    status: goaway::OK,
                })
                .await?;
        }
        writer.io.flush().await?;
        writer.io.shutdown().await
    };
    match close::before_deadline(&mut deadline_watch, work).await {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            tracing::debug!(error = %e, "spdy connection write failed");
            shared.mark_dead(End::Aborted);
        }
        None => tracing::debug!("spdy connection not drained before its close deadline"),
    }
    shared.budget.close();
}

struct FrameWriter<'a, W> {
    io: BufWriter<W>,
    deflater: HeaderDeflater,
    buf: BytesMut,
    goaway_sent: bool,
    shared: &'a Shared,
}

impl<W: AsyncWrite + Unpin> FrameWriter<'_, W> {
    async fn write(&mut self, f: Frame) -> io::Result<()> {
        let data_len = match &f {
            Frame::Data { data, .. } => data.len(),
            _ => 0,
        };
        self.goaway_sent |= matches!(f, Frame::GoAway { .. });
        self.buf.clear();
        frame::encode(&f, &mut self.deflater, &mut self.buf).map_err(io::Error::other)?;
        let result = self.io.write_all(&self.buf).await;
        self.shared.budget.give_back(data_len);
        result
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::frame::Setting;
    use super::super::test_client::TestClient;
    use super::*;

    /// A connection with stream 1 opened by the client and accepted.
    async fn one_stream() -> (TestClient, SpdyConn, RecvStream, SendStream) {
        let (mut client, io) = TestClient::pair();
        let mut conn = SpdyConn::start(io);
        client.open(1, &[("streamtype", "data")]).await;
        let s = conn.next_stream().await.unwrap();
        let (r, w) = conn.reply(s);
        assert!(matches!(
            client.recv().await,
            Some(Frame::SynReply { stream_id: 1, .. })
        ));
        (client, conn, r, w)
    }

    /// Data frames on `id` until `total` bytes came, skipping window
    /// updates; returns the bytes.
    async fn receive(client: &mut TestClient, id: u32, total: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < total {
            match client.recv_skipping_updates().await {
                Some(Frame::Data {
                    stream_id, data, ..
                }) if stream_id == id => got.extend_from_slice(&data),
                other => panic!("expected data on {id}, got {other:?}"),
            }
        }
        got
    }

    #[tokio::test]
    async fn streams_are_replied_and_carry_bytes_both_ways() {
        let (mut client, _conn, mut r, mut w) = one_stream().await;
        client.data(1, b"ping", true).await;
        let mut got = String::new();
        r.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "ping");
        w.write_all(b"pong").await.unwrap();
        w.shutdown().await.unwrap();
        assert_eq!(receive(&mut client, 1, 4).await, b"pong");
        assert_eq!(
            client.recv().await,
            Some(Frame::Data {
                stream_id: 1,
                fin: true,
                data: Bytes::new()
            })
        );
        assert!(w.write_all(b"more").await.is_err(), "no writes after FIN");
    }

    #[tokio::test]
    async fn client_pings_are_echoed_and_others_ignored() {
        let (mut client, _conn, _r, _w) = one_stream().await;
        client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(client.recv().await, Some(Frame::Ping { id: 1 }));
        client.send(Frame::Ping { id: 2 }).await;
        client.send(Frame::Ping { id: 3 }).await;
        assert_eq!(client.recv().await, Some(Frame::Ping { id: 3 }));
    }

    #[tokio::test]
    async fn windows_hold_once_the_client_shows_it_keeps_them() {
        let (mut client, io) = TestClient::pair();
        let mut conn = SpdyConn::start(io);
        client
            .send(Frame::Settings {
                clear: false,
                entries: vec![Setting {
                    flags: 0,
                    id: SETTINGS_INITIAL_WINDOW_SIZE,
                    value: 1000,
                }],
            })
            .await;
        client.open(1, &[]).await;
        let s = conn.next_stream().await.unwrap();
        let (_r, mut w) = conn.reply(s);
        assert!(matches!(client.recv().await, Some(Frame::SynReply { .. })));
        let writer = tokio::spawn(async move {
            w.write_all(&[7u8; 5000]).await.unwrap();
            w
        });
        assert_eq!(receive(&mut client, 1, 1000).await.len(), 1000);
        assert!(
            client.quiet_for(Duration::from_millis(200)).await,
            "sent past the window"
        );
        client
            .send(Frame::WindowUpdate {
                stream_id: 1,
                delta: 3000,
            })
            .await;
        assert_eq!(receive(&mut client, 1, 3000).await.len(), 3000);
        assert!(
            client.quiet_for(Duration::from_millis(200)).await,
            "sent past the window"
        );
        assert!(!writer.is_finished());
        client
            .send(Frame::WindowUpdate {
                stream_id: 1,
                delta: 5000,
            })
            .await;
        assert_eq!(receive(&mut client, 1, 1000).await.len(), 1000);
        let _w = writer.await.unwrap();
    }

    #[tokio::test]
    async fn the_session_window_holds_too() {
        let (mut client, _conn, _r, mut w) = one_stream().await;
        // A WINDOW_UPDATE shows the client keeps windows; the session's is
        // the default 64 KiB, the stream's now much larger.
        client
            .send(Frame::WindowUpdate {
                stream_id: 1,
                delta: 1 << 20,
            })
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let writer = tokio::spawn(async move { w.write_all(&vec![1u8; 100_000]).await.map(|_| w) });
        assert_eq!(receive(&mut client, 1, 65536).await.len(), 65536);
        assert!(
            client.quiet_for(Duration::from_millis(200)).await,
            "sent past the session window"
        );
        client
            .send(Frame::WindowUpdate {
                stream_id: 0,
                delta: 40_000,
            })
            .await;
        assert_eq!(
            receive(&mut client, 1, 100_000 - 65536).await.len(),
            100_000 - 65536
        );
        writer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn kubectls_spdy_gets_data_without_window_updates() {
        // spdystream never sends WINDOW_UPDATE: the server must not wait.
        let (mut client, _conn, _r, mut w) = one_stream().await;
        let writer = tokio::spawn(async move { w.write_all(&vec![3u8; 300_000]).await.map(|_| w) });
        assert_eq!(receive(&mut client, 1, 300_000).await.len(), 300_000);
        writer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn reading_reopens_the_clients_windows() {
        let (mut client, _conn, mut r, _w) = one_stream().await;
        client.data(1, &[5u8; 40_000], false).await;
        let mut buf = vec![0u8; 40_000];
        r.read_exact(&mut buf).await.unwrap();
        let mut updates = vec![];
        while updates.len() < 2 {
            match client.recv().await {
                Some(Frame::WindowUpdate { stream_id, delta }) => updates.push((stream_id, delta)),
                other => panic!("expected window updates, got {other:?}"),
            }
        }
        updates.sort();
        assert_eq!(updates, [(0, 40_000), (1, 40_000)]);
    }

    #[tokio::test]
    async fn a_reset_ends_reads_and_fails_writes() {
        let (mut client, _conn, mut r, mut w) = one_stream().await;
        client.data(1, b"partial", false).await;
        client
            .send(Frame::RstStream {
                stream_id: 1,
                status: rst::CANCEL,
            })
            .await;
        let mut got = vec![];
        r.read_to_end(&mut got).await.unwrap();
        let e = w.write_all(b"x").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn bad_stream_ids_are_reset_not_fatal() {
        let (mut client, io) = TestClient::pair();
        let mut conn = SpdyConn::start(io);
        client.open(3, &[]).await;
        let s = conn.next_stream().await.unwrap();
        let (_r, _w) = conn.reply(s);
        assert!(matches!(
            client.recv().await,
            Some(Frame::SynReply { stream_id: 3, .. })
        ));
        // Backwards, even (a server's id), data for a stream never opened.
        client.open(1, &[]).await;
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream_id: 1,
                status: rst::PROTOCOL_ERROR
            })
        );
        client.open(4, &[]).await;
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream_id: 4,
                status: rst::PROTOCOL_ERROR
            })
        );
        client.data(7, b"?", false).await;
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream_id: 7,
                status: rst::INVALID_STREAM
            })
        );
        // The connection still works.
        client.open(5, &[]).await;
        assert_eq!(conn.next_stream().await.unwrap().id, 5);
    }

    #[tokio::test]
    async fn refused_and_late_streams_are_reset() {
        let (mut client, io) = TestClient::pair();
        let mut conn = SpdyConn::start(io);
        client.open(1, &[("streamtype", "nonsense")]).await;
        let s = conn.next_stream().await.unwrap();
        conn.refuse(s, rst::PROTOCOL_ERROR);
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream_id: 1,
                status: rst::PROTOCOL_ERROR
            })
        );
        conn.stop_accepting();
        client.open(3, &[]).await;
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream_id: 3,
                status: rst::REFUSED_STREAM
            })
        );
    }

    #[tokio::test]
    async fn a_malformed_frame_ends_the_connection() {
        for bad in [
            // PING with a 3-byte payload.
            &b"\x80\x03\x00\x06\x00\x00\x00\x03\x00\x00\x01"[..],
            // SPDY/2.
            b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01",
            // SYN_STREAM whose header block is not zlib.
            b"\x80\x03\x00\x01\x00\x00\x00\x0e\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00junk",
        ] {
            let (mut client, io) = TestClient::pair();
            let mut conn = SpdyConn::start(io);
            client.send_raw(bad).await;
            assert_eq!(
                client.recv().await,
                Some(Frame::GoAway {
                    last_good_stream_id: 0,
                    status: goaway::PROTOCOL_ERROR
                })
            );
            assert_eq!(client.recv().await, None, "the server closes its side");
            assert!(conn.next_stream().await.is_none());
            tokio::time::timeout(Duration::from_secs(5), conn.closed())
                .await
                .unwrap();
            // The reader ended; the writer ends once the client closes.
            client.shutdown().await;
            tokio::time::timeout(Duration::from_secs(5), conn.close())
                .await
                .expect("the connection's tasks did not end");
        }
    }

    #[tokio::test]
    async fn graceful_close_sends_everything_then_goaway_then_waits() {
        let (mut client, conn, _r, mut w) = one_stream().await;
        w.write_all(&[9u8; 100_000]).await.unwrap();
        drop(w);
        let closing = tokio::spawn(conn.close());
        assert_eq!(receive(&mut client, 1, 100_000).await.len(), 100_000);
        assert!(matches!(
            client.recv_skipping_updates().await,
            Some(Frame::Data {
                stream_id: 1,
                fin: true,
                ..
            })
        ));
        assert_eq!(
            client.recv().await,
            Some(Frame::GoAway {
                last_good_stream_id: 1,
                status: goaway::OK
            })
        );
        assert_eq!(client.recv().await, None, "the server shut its side");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !closing.is_finished(),
            "the server waits for the client to close"
        );
        client.shutdown().await;
        tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .expect("close did not finish")
            .unwrap();
    }

    #[tokio::test]
    async fn a_vanished_client_ends_everything() {
        let (client, conn, mut r, mut w) = one_stream().await;
        let gone = conn.closed();
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), gone)
            .await
            .unwrap();
        let mut buf = vec![];
        r.read_to_end(&mut buf).await.unwrap();
        assert!(w.write_all(b"x").await.is_err());
        tokio::time::timeout(Duration::from_secs(5), conn.close())
            .await
            .expect("the connection's tasks did not end");
    }

    #[tokio::test]
    async fn dropping_every_handle_closes_the_connection() {
        let (mut client, conn, r, w) = one_stream().await;
        drop((conn, r, w));
        assert!(matches!(
            client.recv().await,
            Some(Frame::Data { fin: true, .. })
        ));
        assert!(matches!(
            client.recv().await,
            Some(Frame::GoAway {
                status: goaway::OK,
                ..
            })
        ));
        assert_eq!(client.recv().await, None);
    }

    #[tokio::test]
    async fn an_unread_stream_holds_the_connection_not_memory() {
        let (mut client, _conn, mut r, _w) = one_stream().await;
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let sent = data.clone();
        let sender = tokio::spawn(async move {
            for chunk in sent.chunks(16 * 1024) {
                client.data(1, chunk, false).await;
            }
            client.data(1, b"", true).await;
            client
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!sender.is_finished(), "3 MB cannot all be buffered");
        let mut got = vec![];
        r.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "bytes lost or reordered");
        sender.await.unwrap();
    }
}
