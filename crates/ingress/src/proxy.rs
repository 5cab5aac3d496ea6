//! The reverse proxy: HTTP/1.1 and HTTP/2 (h2c with prior knowledge on the plain port, h2
//! by ALPN over TLS) on the node's ports, each request routed through the current
//! [`Table`] and forwarded to a backend endpoint over HTTP/1.1 on pooled keep-alive
//! connections ([`crate::pool`]).
//!
//! The table sits in an `ArcSwap`: a request reads the table current when it arrives, and
//! a new table (`TableHandle::replace`) applies to the next request, on every connection,
//! without closing any. Plain requests for hosts with a certificate are redirected to
//! HTTPS with 308, as ingress-nginx does by default. An `Upgrade` request (WebSocket) is
//! forwarded with its upgrade headers; on the backend's 101 both upgraded connections are
//! joined and bytes copied both ways until either side closes.
//!
//! Each listener's connections are dealt in turn to one thread per core, each with a
//! single-threaded runtime of its own, as nginx runs workers: a connection, its requests
//! and the pooled backend connections they use stay on one thread.
//!
//! HTTP/1.1 connections start on [`crate::fast`], which forwards the common requests with
//! their heads rewritten in place; it hands a connection over to hyper's server here, with
//! the bytes it read, at the first request it leaves to this general path (HTTP/2, HTTP/1.0,
//! upgrades, chunked requests, the proxy's own answers).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::IngressError;
use crate::fast::{self, Backends, Rewind};
use crate::pool::{Pool, Streamed};
use crate::routes::{Route, Table};
use crate::tls::SniResolver;

/// The body of a response: the backend's, streamed, or one the proxy makes.
pub type Body = Either<Streamed, Full<Bytes>>;

/// How long a client has for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers up to this size (by `Content-Length`) are read whole before they are sent on.
const BUFFERED_BODY: u64 = 64 * 1024;
/// How long an idle pooled connection to a backend is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// How often each worker closes the pooled connections idle longer than that.
const POOL_SWEEP: Duration = Duration::from_secs(15);
/// How long a backend may stay silent before its answer, and on the HTTP/1.1 path between
/// reads of it too (ingress-nginx's `proxy-read-timeout`).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client has to send a whole request head (and a kept-alive connection may
/// stay silent).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The current routing table, shared by the proxy (which reads it on every request and
/// handshake) and whoever builds new ones.
#[derive(Clone, Debug, Default)]
pub struct TableHandle(Arc<ArcSwap<Table>>);

impl TableHandle {
    /// A handle holding `table`.
    pub fn new(table: Table) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(table)))
    }

    /// Makes `table` the one the next request and handshake use.
    pub fn replace(&self, table: Table) {
        self.0.store(Arc::new(table));
    }

    /// The current table.
    pub fn load(&self) -> arc_swap::Guard<Arc<Table>> {
        self.0.load()
    }
}

/// The proxy: its table, its pool of backend connections, and its TLS configuration.
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Proxy(Arc<Inner>);

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("https_port", &self.0.https_port)
            .field("workers", &self.0.workers)
            .finish_non_exhaustive()
    }
}

struct Inner {
    table: TableHandle,
    server: auto::Builder<TokioExecutor>,
    tls: TlsAcceptor,
    /// The port plain requests for TLS hosts are redirected to; `None`: no redirects.
    https_port: Option<u16>,
    /// Threads serving each listener.
    workers: usize,
    /// How long a backend may stay silent before its answer (and, on the HTTP/1.1 path,
    /// between reads of it).
    answer_timeout: Duration,
}

/// One serving thread's share: its own pool of backend connections, used only by the
/// connections that thread accepted.
struct Worker {
    inner: Arc<Inner>,
    pool: Arc<Pool>,
    /// The HTTP/1.1 path's own backend connections.
    backends: Arc<Backends>,
}

/// What the forwarded headers say about one client connection, made once for all its
/// requests.
struct Peer {
    ip: HeaderValue,
    secure: bool,
}

impl Proxy {
    /// A proxy routing through `table`. `https_port` is where clients reach the HTTPS
    /// listener, for redirects (`None` when there is none: nothing is redirected).
    /// Backends get 60 s to answer, as ingress-nginx's `proxy-read-timeout`.
    pub fn new(table: TableHandle, https_port: Option<u16>) -> Result<Self, IngressError> {
        Self::with_answer_timeout(table, https_port, ANSWER_TIMEOUT)
    }

    /// The same, with backends given `answer_timeout` to answer (tests shorten it).
    pub fn with_answer_timeout(
        table: TableHandle,
        https_port: Option<u16>,
        answer_timeout: Duration,
    ) -> Result<Self, IngressError> {
        let fallback = crate::tls::fake_certificate().map_err(IngressError::Certificate)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| IngressError::Certificate(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SniResolver {
                table: table.clone(),
                fallback: Arc::new(fallback),
            }));
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let mut server = auto::Builder::new(TokioExecutor::new());
        server
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT);
        server.http2().timer(TokioTimer::new());
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self(Arc::new(Inner {
            table,
            server,
            tls: TlsAcceptor::from(Arc::new(tls)),
            https_port,
            workers,
            answer_timeout,
        })))
    }

    /// Serves plain HTTP (1.1, and 2 with prior knowledge) on `listener` until the future
    /// is dropped.
    pub async fn serve_http(self, listener: TcpListener) {
        self.serve(listener, false).await;
    }

    /// Serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN) on `listener`, the certificate picked
    /// by SNI, until the future is dropped.
    pub async fn serve_https(self, listener: TcpListener) {
        self.serve(listener, true).await;
    }

    /// Serves `listener` from one thread per core, each with a single-threaded runtime of
    /// its own (as nginx's workers): a connection, its requests and its backend
    /// connections stay on the thread it was dealt to, so no request waits for a wake-up
    /// from another core. Dropping the future stops the threads and their connections.
    async fn serve(self, listener: TcpListener, secure: bool) {
        // Connections are accepted here and dealt to the workers in turn, so each gets
        // its share however the kernel wakes them.
        let mut workers = Vec::with_capacity(self.0.workers);
        for i in 0..self.0.workers {
            let (deal, mut dealt) =
                tokio::sync::mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
            let inner = Arc::clone(&self.0);
            let started = std::thread::Builder::new()
                .name(format!("ingress-{i}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::error!(error = %e, "ingress: starting a worker");
                            return;
                        }
                    };
                    // Until the dealer goes (this future dropped); the runtime's drop
                    // then ends the worker's connections.
                    runtime.block_on(async move {
                        let worker = Arc::new(Worker {
                            inner,
                            pool: Pool::new(POOL_IDLE),
                            backends: Arc::new(Backends::new(POOL_IDLE)),
                        });
                        let pool = Arc::clone(&worker.pool);
                        let backends = Arc::clone(&worker.backends);
                        tokio::spawn(async move {
                            let mut tick = tokio::time::interval(POOL_SWEEP);
                            loop {
                                tick.tick().await;
                                pool.sweep();
                                backends.sweep();
                            }
                        });
                        while let Some((stream, peer)) = dealt.recv().await {
                            match TcpStream::from_std(stream) {
                                Ok(stream) => worker.start(stream, peer, secure),
                                Err(e) => {
                                    tracing::warn!(error = %e, "ingress: taking a connection")
                                }
                            }
                        }
                    });
                });
            match started {
                Ok(_) => workers.push(deal),
                Err(e) => tracing::error!(error = %e, "ingress: starting a worker thread"),
            }
        }
        if workers.is_empty() {
            return;
        }
        let mut next = 0;
        loop {
            let Some((stream, peer)) = accept(&listener).await else {
                continue;
            };
            match stream.into_std() {
                Ok(stream) => {
                    let _ = workers[next % workers.len()].send((stream, peer));
                    next = next.wrapping_add(1);
                }
                Err(e) => tracing::warn!(error = %e, "ingress: handing a connection over"),
            }
        }
    }
}

/// The next connection, or `None` after an error (reported, and briefly waited out when
/// the process is out of descriptors).
async fn accept(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(e) => {
            tracing::warn!(error = %e, "ingress: accepting a connection");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

impl Worker {
    /// Serves a connection this worker was dealt, in a task of its own.
    fn start(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr, secure: bool) {
        let worker = Arc::clone(self);
        if !secure {
            tokio::spawn(async move { worker.serve(stream, peer, false).await });
            return;
        }
        tokio::spawn(async move {
            let handshake = worker.inner.tls.accept(stream);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                    worker
                        .serve_general(Rewind::new(stream, Bytes::new()), peer, true)
                        .await
                }
                Ok(Ok(stream)) => worker.serve(stream, peer, true).await,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "ingress tls handshake failed")
                }
                Err(_) => tracing::debug!(%peer, "ingress tls handshake timed out"),
            }
        });
    }
}

impl Worker {
    /// Serves a connection from the HTTP/1.1 path, then, if it hands the connection over,
    /// from the general one.
    async fn serve<S>(self: Arc<Self>, stream: S, peer: SocketAddr, secure: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let ip = peer.ip().to_string();
        let client = fast::Client {
            ip: ip.as_bytes(),
            secure,
        };
        let settings = fast::Settings {
            table: &self.inner.table,
            https_port: self.inner.https_port,
            backends: &self.backends,
            answer_timeout: self.inner.answer_timeout,
        };
        match fast::serve(stream, &client, &settings, HEAD_TIMEOUT).await {
            fast::Outcome::Done => {}
            fast::Outcome::HandOver(stream) => self.serve_general(stream, peer, secure).await,
        }
    }

    /// Serves a connection with hyper's server, from the bytes `stream` gives back on.
    async fn serve_general<S>(self: Arc<Self>, stream: Rewind<S>, peer: SocketAddr, secure: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let worker = Arc::clone(&self);
        let client = Arc::new(Peer {
            ip: HeaderValue::try_from(peer.ip().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            secure,
        });
        let service = hyper::service::service_fn(move |req| {
            let worker = Arc::clone(&worker);
            let client = Arc::clone(&client);
            async move { Ok::<_, Infallible>(worker.handle(req, &client).await) }
        });
        if let Err(e) = self
            .inner
            .server
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .await
        {
            tracing::debug!(%peer, error = %e, "ingress connection ended with an error");
        }
    }

    async fn handle(&self, mut req: Request<Incoming>, peer: &Peer) -> Response<Body> {
        let secure = peer.secure;
        let host = match request_host(&req) {
            Some(h) => h.to_owned(),
            None => return plain(StatusCode::BAD_REQUEST, "no host in the request\n"),
        };
        let table = self.inner.table.load();
        if !secure
            && let Some(port) = self.inner.https_port
            && table.redirects_to_https(&host)
        {
            return redirect(&host, port, req.uri());
        }
        let backend = match table.route(&host, req.uri().path()) {
            Route::Backend(b) => Arc::clone(b),
            Route::NotFound => return plain(StatusCode::NOT_FOUND, "default backend - 404\n"),
        };
        drop(table);
        let Some(endpoint) = backend.pick() else {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "no ready endpoints\n");
        };

        let upgrade = req.version() == Version::HTTP_11 && wants_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        // Origin-form for the backend: an HTTP/2 request's URI carries scheme and
        // authority, an HTTP/1.1 one's normally does not.
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = match Uri::try_from(path) {
                Ok(uri) => uri,
                Err(_) => return plain(StatusCode::BAD_REQUEST, "bad request path\n"),
            };
        }
        parts.version = Version::HTTP_11;
        let upgrade_to = parts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        if let (true, Some(protocol)) = (upgrade, upgrade_to) {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol);
        }
        forwarded_headers(&mut parts.headers, &host, peer);

        let sent = tokio::time::timeout(
            self.inner.answer_timeout,
            self.pool.send(endpoint, Request::from_parts(parts, body)),
        )
        .await;
        let (mut response, lease) = match sent {
            Ok(Ok(r)) => r,
            Err(_) => {
                tracing::debug!(backend = %backend.name, %endpoint, "ingress: backend silent too long");
                return plain(StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n");
            }
            Ok(Err(e)) => {
                tracing::debug!(backend = %backend.name, %endpoint, error = %e, "ingress: backend failed");
                return plain(StatusCode::BAD_GATEWAY, "bad gateway\n");
            }
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // The connection now belongs to the upgraded stream: it is not pooled.
            drop(lease);
            if let Some(client_upgrade) = client_upgrade {
                let backend_upgrade = hyper::upgrade::on(&mut response);
                tokio::spawn(async move {
                    match tokio::try_join!(client_upgrade, backend_upgrade) {
                        Ok((client, backend)) => {
                            let _ = tokio::io::copy_bidirectional(
                                &mut TokioIo::new(client),
                                &mut TokioIo::new(backend),
                            )
                            .await;
                        }
                        Err(e) => tracing::debug!(error = %e, "ingress: upgrade failed"),
                    }
                });
                return response.map(|body| Either::Left(Streamed::new(body, None)));
            }
            // A 101 nobody asked for cannot be passed on.
            return plain(StatusCode::BAD_GATEWAY, "unexpected protocol switch\n");
        }
        strip_hop_by_hop(response.headers_mut());
        // A small body is read whole first (nginx's proxy buffering), so that the answer
        // leaves in one write with its head rather than the head alone and the body after.
        let small = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n <= BUFFERED_BODY);
        if !small {
            return response.map(|body| Either::Left(Streamed::new(body, Some(lease))));
        }
        let (parts, body) = response.into_parts();
        match body.collect().await {
            Ok(collected) => {
                lease.release();
                Response::from_parts(parts, Either::Right(Full::new(collected.to_bytes())))
            }
            Err(e) => {
                tracing::debug!(backend = %backend.name, %endpoint, error = %e, "ingress: reading a backend's answer");
                plain(StatusCode::BAD_GATEWAY, "bad gateway\n")
            }
        }
    }
}

/// The host a request is for: its URI's authority (HTTP/2, absolute-form) or `Host`.
fn request_host<B>(req: &Request<B>) -> Option<&str> {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
        .filter(|h| !h.is_empty())
}

/// Whether an HTTP/1.1 request asks to switch protocols (`Connection: upgrade` and
/// `Upgrade`).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| connection_options(v.as_bytes()))
            .any(|option| option.eq_ignore_ascii_case(b"upgrade"))
}

/// The options a `Connection` header's value lists (RFC 9110 7.6.1), trimmed, empty ones
/// left out.
pub(crate) fn connection_options(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|option| !option.is_empty())
}

/// Headers that describe one connection, not the message (RFC 9110 7.6.1).
pub(crate) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Removes the hop-by-hop headers, those `Connection` names among them, and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| connection_options(v.as_bytes()))
            .filter_map(|n| HeaderName::from_bytes(n).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Tells the backend who asked, for what host, over what: `X-Forwarded-For` (the client
/// appended to what it sent), `X-Real-IP`, `X-Forwarded-Host`, `X-Forwarded-Proto`; and
/// gives an HTTP/2 request the `Host` an HTTP/1.1 backend needs.
fn forwarded_headers(headers: &mut HeaderMap, host: &str, peer: &Peer) {
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(earlier) => {
            let mut joined = Vec::with_capacity(earlier.len() + 2 + peer.ip.len());
            joined.extend_from_slice(earlier);
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer.ip.as_bytes());
            HeaderValue::from_bytes(&joined).ok()
        }
        None => Some(peer.ip.clone()),
    };
    if let Some(v) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_REAL_IP.clone(), peer.ip.clone());
    let host_value = match headers.get(header::HOST) {
        Some(v) if v.as_bytes() == host.as_bytes() => Some(v.clone()),
        _ => HeaderValue::from_str(host).ok(),
    };
    if let Some(v) = host_value {
        if !headers.contains_key(header::HOST) {
            headers.insert(header::HOST, v.clone());
        }
        headers.insert(X_FORWARDED_HOST.clone(), v);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if peer.secure { "https" } else { "http" }),
    );
}

/// A short plain-text answer of the proxy's own.
fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// 308 to the same URL over HTTPS.
fn redirect(host: &str, https_port: u16, uri: &Uri) -> Response<Body> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = if https_port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{https_port}{path}")
    };
    let mut response = plain(StatusCode::PERMANENT_REDIRECT, "308 permanent redirect\n");
    if let Ok(v) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn upgrades_need_both_headers() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(!wants_upgrade(&h));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(wants_upgrade(&h));
    }

    #[test]
    fn forwarded_headers_append_the_client() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        let peer = Peer {
            ip: HeaderValue::from_static("198.51.100.7"),
            secure: true,
        };
        forwarded_headers(&mut h, "a.test:8080", &peer);
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 198.51.100.7");
        assert_eq!(h["x-real-ip"], "198.51.100.7");
        assert_eq!(h["x-forwarded-host"], "a.test:8080");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["host"], "a.test:8080");
    }

    #[test]
    fn redirects_keep_the_path_and_name_the_https_port() {
        let uri: Uri = "/a/b?c=d".parse().unwrap();
        let r = redirect("a.test:80", 443, &uri);
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()["location"], "https://a.test/a/b?c=d");
        let r = redirect("a.test", 8443, &uri);
        assert_eq!(r.headers()["location"], "https://a.test:8443/a/b?c=d");
    }
}
