//! Keep-alive HTTP/1.1 connections to backend endpoints, one pool per worker thread.
//!
//! A request takes an idle connection to its endpoint, or opens one. The connection goes
//! back to the pool only once its answer has been read to the end (an answer dropped
//! half-read closes it, as HTTP/1.1 cannot resume one). A request the backend never saw,
//! because a pooled connection turned out closed (the backend's keep-alive timeout
//! racing the request), is sent again on another connection; one the backend may have
//! seen is not. Connections idle longer than the idle limit are closed by a sweep.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long opening a connection to a backend may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per endpoint (nginx's `keepalive 64` is per upstream).
const IDLE_PER_ENDPOINT: usize = 64;

/// Why a request did not reach its backend or its answer did not come back.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// A connection that can wait for its next request in [`Idle`].
pub(crate) trait Keepable {
    /// Whether it can take a request now: its backend has not closed it.
    fn usable(&self) -> bool;
}

/// Idle connections by endpoint, for one worker: the hyper path's ([`Pool`]) and the
/// HTTP/1.1 path's (`fast::Backends`) are each one of these.
pub(crate) struct Idle<C> {
    idle: Mutex<HashMap<SocketAddr, Vec<(C, Instant)>>>,
    idle_for: Duration,
}

impl<C: Keepable> Idle<C> {
    /// None yet; connections are closed after `idle_for` unused.
    pub(crate) fn new(idle_for: Duration) -> Self {
        Self {
            idle: Mutex::default(),
            idle_for,
        }
    }

    /// The most recently used idle connection to `endpoint` that is still usable; those
    /// found closed on the way are dropped.
    pub(crate) fn checkout(&self, endpoint: SocketAddr) -> Option<C> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(&endpoint)?;
        while let Some((conn, _)) = list.pop() {
            if conn.usable() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn`, unless `endpoint` already has [`IDLE_PER_ENDPOINT`] waiting.
    pub(crate) fn put(&self, endpoint: SocketAddr, conn: C) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(endpoint).or_default();
        if list.len() < IDLE_PER_ENDPOINT {
            list.push((conn, Instant::now()));
        }
    }

    /// Closes connections idle longer than the limit or closed by their backend, and
    /// forgets endpoints with none left. Returns how many are kept.
    pub(crate) fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|_, list| {
            list.retain(|(conn, since)| {
                now.duration_since(*since) < self.idle_for && conn.usable()
            });
            !list.is_empty()
        });
        idle.values().map(Vec::len).sum()
    }
}

impl Keepable for http1::SendRequest<Incoming> {
    fn usable(&self) -> bool {
        self.is_ready()
    }
}

/// A worker's idle connections of the hyper path, by endpoint.
pub struct Pool {
    idle: Idle<http1::SendRequest<Incoming>>,
}

/// A connection lent to one request, returned to its pool by [`Lease::release`].
pub struct Lease {
    pool: Arc<Pool>,
    endpoint: SocketAddr,
    sender: http1::SendRequest<Incoming>,
}

impl Pool {
    /// An empty pool whose connections are closed after `idle_for` unused.
    pub fn new(idle_for: Duration) -> Arc<Self> {
        Arc::new(Self {
            idle: Idle::new(idle_for),
        })
    }

    /// Sends `req` (origin-form URI, `Host` set) to `endpoint`, and returns the answer
    /// with the connection it came on, to be released once the answer is read.
    pub async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut req: Request<Incoming>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        while let Some(mut sender) = self.idle.checkout(endpoint) {
            match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, self.lease(endpoint, sender))),
                Err(mut e) => match e.take_message() {
                    // Not written: the connection had closed. Try the next one.
                    Some(unsent) => req = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = connect(endpoint).await?;
        let response = sender.send_request(req).await?;
        Ok((response, self.lease(endpoint, sender)))
    }

    fn lease(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        sender: http1::SendRequest<Incoming>,
    ) -> Lease {
        Lease {
            pool: Arc::clone(self),
            endpoint,
            sender,
        }
    }

    /// Closes connections idle longer than the limit or closed by their backend. Returns
    /// how many are kept.
    pub fn sweep(&self) -> usize {
        self.idle.sweep()
    }
}

/// A TCP connection to a backend for either path, Nagle's algorithm off: what does not
/// connect within [`CONNECT_TIMEOUT`] fails as timed out.
pub(crate) async fn dial(endpoint: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("timed out after {CONNECT_TIMEOUT:?}"),
            )
        })??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A new connection to `endpoint`, its driver spawned on the current runtime.
async fn connect(endpoint: SocketAddr) -> Result<http1::SendRequest<Incoming>, SendError> {
    let stream = dial(endpoint).await.map_err(SendError::Connect)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(%endpoint, error = %e, "ingress: backend connection ended");
        }
    });
    Ok(sender)
}

impl Lease {
    /// Gives the connection back once it can take the next request: at once when it
    /// already can, else from a task that waits for it.
    pub fn release(self) {
        let Lease {
            pool,
            endpoint,
            mut sender,
        } = self;
        if sender.is_ready() {
            pool.idle.put(endpoint, sender);
            return;
        }
        if sender.is_closed() {
            return;
        }
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                pool.idle.put(endpoint, sender);
            }
        });
    }
}

/// A backend's answer streamed to the client; its connection goes back to the pool when
/// the last frame has been read, and closes if the body is dropped before.
pub struct Streamed {
    body: Incoming,
    lease: Option<Lease>,
}

impl Streamed {
    /// `body`, giving `lease` back at its end (`None`: a connection not to be reused).
    pub fn new(body: Incoming, lease: Option<Lease>) -> Self {
        let mut streamed = Self { body, lease };
        if streamed.body.is_end_stream() {
            streamed.finish();
        }
        streamed
    }

    fn finish(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.finish(),
            // An error: the connection is not reused.
            Poll::Ready(Some(Err(_))) => self.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
