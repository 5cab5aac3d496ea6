//! The HTTP/1.1 path: a request head parsed where it lies in the connection's buffer and
//! written out again for the backend, and the backend's answer passed back the same way,
//! as nginx proxies (no request or response objects, no header maps).
//!
//! Only requests it can pass on unchanged but for their hop-by-hop and forwarded headers
//! take this path: HTTP/1.1 in origin form, one `Host`, a body framed by one
//! `Content-Length` or none, no `Upgrade`, `Expect` or `Transfer-Encoding`, no
//! `Connection` option but `keep-alive` and `close`, and a route to a ready endpoint
//! without a redirect. For anything else (HTTP/1.0, HTTP/2 with prior knowledge, an
//! upgrade, a chunked request, a 404, 503 or redirect, a head that does not parse) the
//! connection is handed, with the bytes read of it, to the general path ([`crate::proxy`],
//! hyper's server), which serves it from that request on.
//!
//! Answers are passed on framed as they came: by `Content-Length`, chunked (the chunks
//! forwarded as they are and followed to the end), or until the backend closes (then the
//! client's connection is closed after it). A backend connection is kept for the next
//! request only when its answer was read exactly to its end.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::pool::{Idle, Keepable, dial};
use crate::proxy::{HOP_BY_HOP, connection_options};
use crate::routes::{Route, Table};

/// The largest request or response head read; a longer request goes to the general path
/// (which refuses it), a longer answer is a bad gateway.
const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in a head this path parses.
const MAX_HEADERS: usize = 100;
/// What is read at a time.
const READ_SIZE: usize = 16 * 1024;

/// The proxy's own answer when a backend fails.
const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 12\r\n\r\nbad gateway\n";
/// The same, closing the connection (the request's body was not read to its end).
const BAD_GATEWAY_CLOSE: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 12\r\nconnection: close\r\n\r\nbad gateway\n";
/// The proxy's answer when a backend says nothing for [`Settings::answer_timeout`].
const GATEWAY_TIMEOUT: &[u8] = b"HTTP/1.1 504 Gateway Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\n\r\ngateway timeout\n";

/// Request headers the proxy writes itself (besides `X-Forwarded-For`, which it extends).
const FORWARDED: [&str; 3] = ["x-real-ip", "x-forwarded-host", "x-forwarded-proto"];

/// Whether `name` is a hop-by-hop header (`Upgrade` among them).
fn hop_by_hop(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"upgrade")
        || HOP_BY_HOP
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
}

/// Who the client is, as the forwarded headers say it.
pub(crate) struct Client<'a> {
    pub ip: &'a [u8],
    pub secure: bool,
}

/// What a worker's fast path reads the routing from.
pub(crate) struct Settings<'a> {
    pub table: &'a crate::proxy::TableHandle,
    /// Where plain requests for TLS hosts are redirected (`None`: no redirects).
    pub https_port: Option<u16>,
    pub backends: &'a Arc<Backends>,
    /// How long a backend may stay silent: before its answer's head, and between reads of
    /// its body (nginx's `proxy_read_timeout`).
    pub answer_timeout: Duration,
}

/// How a connection left the fast path.
pub(crate) enum Outcome<S> {
    /// It is finished: closed by either side, or failed.
    Done,
    /// Its next request is for the general path, which gets the stream with what was read
    /// of it.
    HandOver(Rewind<S>),
}

/// What to do with one parsed request.
#[derive(Debug, PartialEq)]
enum Plan {
    /// Send it to `endpoint`: the backend's head is written, `body` bytes follow.
    Forward {
        endpoint: SocketAddr,
        body: u64,
        /// The client asked to close after this answer.
        close: bool,
        /// A HEAD request: the answer has no body whatever its headers say.
        head: bool,
        /// The request may be sent again when a kept connection turned out closed.
        idempotent: bool,
    },
    /// Leave it to the general path.
    HandOver,
}

/// Serves `stream`'s requests until it closes or a request needs the general path.
pub(crate) async fn serve<S>(
    mut stream: S,
    client: &Client<'_>,
    settings: &Settings<'_>,
    head_timeout: Duration,
) -> Outcome<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out = Vec::with_capacity(1024);
    loop {
        // The request head, whole, in time.
        let deadline = tokio::time::Instant::now() + head_timeout;
        let (plan, head_len) = loop {
            out.clear();
            let parsed = if buf.is_empty() {
                None
            } else {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let table = settings.table.load();
                        Some((plan(&req, &table, client, settings.https_port, &mut out), n))
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => None,
                    // Not for this path: the general one answers it.
                    _ => Some((Plan::HandOver, 0)),
                }
            };
            if let Some(planned) = parsed {
                break planned;
            }
            buf.reserve(READ_SIZE);
            match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                // Closed, failed, or silent too long.
                _ => return Outcome::Done,
            }
        };
        let Plan::Forward {
            endpoint,
            body,
            close,
            head,
            idempotent,
        } = plan
        else {
            return Outcome::HandOver(Rewind::new(stream, buf.freeze()));
        };
        buf.advance(head_len);
        let exchange = Exchange {
            endpoint,
            body,
            head,
            idempotent,
            close,
            silence: settings.answer_timeout,
        };
        match exchange
            .run(&mut stream, &mut buf, &mut out, settings.backends)
            .await
        {
            Ok(true) if !close => {}
            _ => {
                let _ = stream.shutdown().await;
                return Outcome::Done;
            }
        }
    }
}

/// Decides what to do with `req` and, to forward it, writes the backend's head into `out`.
fn plan(
    req: &httparse::Request<'_, '_>,
    table: &Table,
    client: &Client<'_>,
    https_port: Option<u16>,
    out: &mut Vec<u8>,
) -> Plan {
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Plan::HandOver;
    };
    if method == "CONNECT" || !path.starts_with('/') {
        return Plan::HandOver;
    }
    let mut host = None;
    let mut length = None;
    let mut close = false;
    let mut forwarded_for: Option<&[u8]> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Plan::HandOver;
            }
            match std::str::from_utf8(h.value) {
                Ok(v) if !v.is_empty() => host = Some(v),
                _ => return Plan::HandOver,
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Plan::HandOver;
            }
            match parse_length(h.value) {
                Some(n) => length = Some(n),
                None => return Plan::HandOver,
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for option in connection_options(h.value) {
                if option.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !option.eq_ignore_ascii_case(b"keep-alive") {
                    // It names headers to drop, or asks for an upgrade.
                    return Plan::HandOver;
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Plan::HandOver;
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            if forwarded_for.is_some() {
                return Plan::HandOver;
            }
            forwarded_for = Some(h.value);
        }
    }
    let Some(host) = host else {
        return Plan::HandOver;
    };
    if !client.secure && https_port.is_some() && table.redirects_to_https(host) {
        return Plan::HandOver;
    }
    let route_path = path.split_once('?').map_or(path, |(p, _)| p);
    let Route::Backend(backend) = table.route(host, route_path) else {
        return Plan::HandOver;
    };
    let Some(endpoint) = backend.pick() else {
        return Plan::HandOver;
    };

    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        let name = h.name;
        if hop_by_hop(name.as_bytes())
            || name.eq_ignore_ascii_case("x-forwarded-for")
            || FORWARDED.iter().any(|d| name.eq_ignore_ascii_case(d))
        {
            continue;
        }
        header(out, name.as_bytes(), h.value);
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if let Some(earlier) = forwarded_for {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client.ip);
    out.extend_from_slice(b"\r\n");
    header(out, b"x-real-ip", client.ip);
    header(out, b"x-forwarded-host", host.as_bytes());
    header(
        out,
        b"x-forwarded-proto",
        if client.secure { b"https" } else { b"http" },
    );
    out.extend_from_slice(b"\r\n");
    Plan::Forward {
        endpoint,
        body: length.unwrap_or(0),
        close,
        head: method == "HEAD",
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
    }
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A `Content-Length` value: digits only.
fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// One request forwarded and its answer passed back.
struct Exchange {
    endpoint: SocketAddr,
    body: u64,
    head: bool,
    idempotent: bool,
    close: bool,
    /// How long the backend may stay silent.
    silence: Duration,
}

/// Why an exchange ended early.
enum Failed {
    /// Before the client was sent any of the answer: it can be told with a 502. The flag
    /// says whether the request's body was read whole from the client.
    Backend(io::Error, bool),
    /// The client went, or the answer broke off after part of it was passed on.
    Midway,
}

impl From<io::Error> for Failed {
    fn from(_: io::Error) -> Self {
        Failed::Midway
    }
}

impl Exchange {
    /// Forwards the request whose head is in `out` and whose body follows in `buf` and
    /// on `client`, and passes back the answer. `Ok(true)`: the client's connection can
    /// take its next request.
    async fn run<S>(
        &self,
        client: &mut S,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
        backends: &Arc<Backends>,
    ) -> Result<bool, ()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // The part of the body already read goes with the head.
        let have = buf
            .len()
            .min(usize::try_from(self.body).unwrap_or(usize::MAX));
        out.extend_from_slice(&buf[..have]);
        buf.advance(have);
        let rest = self.body - have as u64;

        let mut kept = backends.checkout(self.endpoint);
        loop {
            let (mut conn, reused) = match kept.take() {
                Some(conn) => (conn, true),
                None => match connect(self.endpoint).await {
                    Ok(conn) => (conn, false),
                    Err(e) => {
                        tracing::debug!(endpoint = %self.endpoint, error = %e, "ingress: backend failed");
                        return self.bad_gateway(client, rest == 0).await;
                    }
                },
            };
            match self.once(&mut conn, client, buf, out, rest).await {
                Ok(answered) => {
                    if answered.reusable {
                        backends.put(self.endpoint, conn);
                    }
                    return Ok(answered.client_open);
                }
                // A kept connection the backend had closed, and nothing of the request
                // lost: again on a new connection.
                Err(Failed::Backend(e, _))
                    if reused && rest == 0 && self.idempotent && closed_early(&e) =>
                {
                    kept = backends.checkout(self.endpoint);
                }
                Err(Failed::Backend(e, _)) if e.kind() == io::ErrorKind::TimedOut => {
                    tracing::debug!(endpoint = %self.endpoint, "ingress: backend silent too long");
                    return self.gateway_timeout(client).await;
                }
                Err(Failed::Backend(e, body_read)) => {
                    tracing::debug!(endpoint = %self.endpoint, error = %e, "ingress: backend failed");
                    return self.bad_gateway(client, body_read).await;
                }
                Err(Failed::Midway) => return Err(()),
            }
        }
    }

    /// Tells the client the backend failed; the connection stays open only if the
    /// request's body was read to its end.
    async fn bad_gateway<S>(&self, client: &mut S, body_read: bool) -> Result<bool, ()>
    where
        S: AsyncWrite + Unpin,
    {
        let open = body_read && !self.close;
        let answer = if open { BAD_GATEWAY } else { BAD_GATEWAY_CLOSE };
        client.write_all(answer).await.map_err(|_| ())?;
        Ok(open)
    }

    /// Tells the client the backend said nothing in time.
    async fn gateway_timeout<S>(&self, client: &mut S) -> Result<bool, ()>
    where
        S: AsyncWrite + Unpin,
    {
        client.write_all(GATEWAY_TIMEOUT).await.map_err(|_| ())?;
        Ok(!self.close)
    }

    /// One attempt on `conn`.
    async fn once<S>(
        &self,
        conn: &mut Conn,
        client: &mut S,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
        mut rest: u64,
    ) -> Result<Answered, Failed>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let whole = rest == 0;
        conn.stream
            .write_all(out)
            .await
            .map_err(|e| Failed::Backend(e, whole))?;
        while rest > 0 {
            if buf.is_empty() {
                buf.reserve(READ_SIZE);
                if client.read_buf(buf).await? == 0 {
                    return Err(Failed::Midway);
                }
            }
            let take = buf.len().min(usize::try_from(rest).unwrap_or(usize::MAX));
            conn.stream
                .write_all(&buf[..take])
                .await
                .map_err(|e| Failed::Backend(io::Error::other(e), false))?;
            buf.advance(take);
            rest -= take as u64;
        }

        conn.buf.clear();
        let mut first = true;
        loop {
            let parsed =
                tokio::time::timeout(self.silence, read_answer_head(conn, out, self.head, first))
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                    .map_err(|e| Failed::Backend(e, true))?;
            first = false;
            match parsed {
                Head::Informational(head_len) => {
                    conn.buf.advance(head_len);
                    client.write_all(out).await?;
                }
                Head::Final(framing, head_len, backend_open) => {
                    conn.buf.advance(head_len);
                    return self
                        .pass_body(conn, client, out, framing, backend_open)
                        .await;
                }
            }
        }
    }

    /// Sends the client the head in `out` and the body after it in `conn.buf` and on the
    /// backend's connection.
    async fn pass_body<S>(
        &self,
        conn: &mut Conn,
        client: &mut S,
        out: &mut Vec<u8>,
        framing: Framing,
        backend_open: bool,
    ) -> Result<Answered, Failed>
    where
        S: AsyncWrite + Unpin,
    {
        let mut reusable = backend_open;
        match framing {
            Framing::Empty => client.write_all(out).await?,
            Framing::Length(n) => {
                let mut rest = n;
                let mut head_sent = false;
                loop {
                    if !head_sent && rest > 0 && conn.buf.is_empty() {
                        // The head came alone (nginx writes it, then sendfile()s the
                        // body): wait for the body's first bytes, so that the client gets
                        // head and body in one write, one segment. Nothing has been sent
                        // yet, so a backend that ends here is answered for with a 502 or
                        // 504 (never retried: it did answer).
                        conn.fill(self.silence).await.map_err(|e| {
                            let e = if e.kind() == io::ErrorKind::TimedOut {
                                e
                            } else {
                                io::Error::other(e)
                            };
                            Failed::Backend(e, true)
                        })?;
                    }
                    let take = conn
                        .buf
                        .len()
                        .min(usize::try_from(rest).unwrap_or(usize::MAX));
                    pass(client, out, &mut head_sent, &conn.buf[..take]).await?;
                    conn.buf.advance(take);
                    rest -= take as u64;
                    if rest == 0 {
                        break;
                    }
                    conn.fill(self.silence).await?;
                }
            }
            Framing::Chunked => {
                let mut chunks = Chunks::default();
                let mut head_sent = false;
                loop {
                    let end = chunks.scan(&conn.buf).map_err(|e| {
                        tracing::debug!(endpoint = %self.endpoint, error = %e, "ingress: a backend's chunked answer");
                        Failed::Midway
                    })?;
                    let take = end.unwrap_or(conn.buf.len());
                    pass(client, out, &mut head_sent, &conn.buf[..take]).await?;
                    conn.buf.advance(take);
                    if end.is_some() {
                        break;
                    }
                    conn.fill(self.silence).await?;
                }
            }
            Framing::UntilClose => {
                out.extend_from_slice(&conn.buf);
                client.write_all(out).await?;
                conn.buf.clear();
                loop {
                    conn.buf.reserve(READ_SIZE);
                    let read =
                        tokio::time::timeout(self.silence, conn.stream.read_buf(&mut conn.buf));
                    if read.await.map_err(|_| Failed::Midway)?? == 0 {
                        break;
                    }
                    client.write_all(&conn.buf).await?;
                    conn.buf.clear();
                }
                return Ok(Answered {
                    reusable: false,
                    client_open: false,
                });
            }
        }
        // Bytes past the answer's end: the backend cannot be trusted with another.
        if !conn.buf.is_empty() {
            reusable = false;
        }
        Ok(Answered {
            reusable,
            client_open: true,
        })
    }
}

/// Sends the client the next `bytes` of an answer's body, the first time after its head in
/// `out` and in the same write.
async fn pass<S: AsyncWrite + Unpin>(
    client: &mut S,
    out: &mut Vec<u8>,
    head_sent: &mut bool,
    bytes: &[u8],
) -> io::Result<()> {
    if *head_sent {
        return client.write_all(bytes).await;
    }
    *head_sent = true;
    out.extend_from_slice(bytes);
    client.write_all(out).await
}

/// How an answer ended.
struct Answered {
    /// Its backend connection can take another request.
    reusable: bool,
    /// The client's connection can take another request.
    client_open: bool,
}

/// Whether an error says the backend closed a kept connection before answering at all.
fn closed_early(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// How an answer's body is framed.
#[derive(Debug, PartialEq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// An answer head read and rewritten for the client into `out`.
enum Head {
    /// A 1xx answer, passed on before the final one, and its length.
    Informational(usize),
    /// The final answer: its body's framing, the head's length in the connection's
    /// buffer, and whether the backend keeps the connection open.
    Final(Framing, usize, bool),
}

/// Reads an answer head from `conn` and writes the client's into `out` (cleared first).
/// For the `first` head, nothing read at all is an error of kind `UnexpectedEof` (a kept
/// connection the backend closed); every other failure is of kind `Other`.
async fn read_answer_head(
    conn: &mut Conn,
    out: &mut Vec<u8>,
    head: bool,
    mut first: bool,
) -> io::Result<Head> {
    loop {
        if !conn.buf.is_empty() {
            out.clear();
            match answer_head(&conn.buf, out, head) {
                Ok(Some(parsed)) => return Ok(parsed),
                Ok(None) if conn.buf.len() < MAX_HEAD => {}
                Ok(None) => return Err(io::Error::other("the answer's head is too long")),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        conn.buf.reserve(READ_SIZE);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if first && conn.buf.is_empty() => {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            Ok(0) => {
                return Err(io::Error::other(
                    "the backend closed in the middle of its answer's head",
                ));
            }
            Ok(_) => first = false,
            Err(e) if first => return Err(e),
            Err(e) => return Err(io::Error::other(e)),
        }
    }
}

/// Parses an answer head at the start of `buf` and writes the client's into `out`:
/// `None` while it is not whole.
fn answer_head(buf: &[u8], out: &mut Vec<u8>, head: bool) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut headers);
    let len = match answer.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("the answer's head does not parse: {e}")),
    };
    let (Some(code), Some(version)) = (answer.code, answer.version) else {
        return Err("the answer's head does not parse".to_owned());
    };
    if code == 101 {
        return Err("a protocol switch nobody asked for".to_owned());
    }
    let mut open = version == 1;
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut named: Vec<&[u8]> = Vec::new();
    for h in answer.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for option in connection_options(h.value) {
                if option.eq_ignore_ascii_case(b"close") {
                    open = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    open = true;
                } else {
                    named.push(option);
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or("a bad Content-Length")?;
            if length.is_some_and(|m| m != n) {
                return Err("two Content-Lengths".to_owned());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only if it is the last coding applied.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    // (An HTTP/1.0 backend keeps the connection only when it says `keep-alive`.)
    let framing = if (100..200).contains(&code) || head || code == 204 || code == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    let reason = answer.reason.unwrap_or("");
    let _ = write!(out, "HTTP/1.1 {code} {reason}\r\n");
    for h in answer.headers.iter() {
        let name = h.name.as_bytes();
        if hop_by_hop(name)
            || named.iter().any(|n| name.eq_ignore_ascii_case(n))
            || (chunked.is_some() && name.eq_ignore_ascii_case(b"content-length"))
        {
            continue;
        }
        header(out, name, h.value);
    }
    match framing {
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::UntilClose => out.extend_from_slice(b"connection: close\r\n"),
        Framing::Empty | Framing::Length(_) => {}
    }
    out.extend_from_slice(b"\r\n");
    if (100..200).contains(&code) {
        return Ok(Some(Head::Informational(len)));
    }
    Ok(Some(Head::Final(framing, len, open)))
}

/// Follows a chunked body (RFC 9112 7.1) to find where it ends.
#[derive(Debug, Default)]
struct Chunks {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    /// In a chunk's size: the digits so far, and their value.
    #[default]
    Size,
    SizeDigits(u64),
    /// After the size: extensions up to the line's end.
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk, at a line's start in the trailer section.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
}

impl Chunks {
    /// Reads `bytes`, the body's next ones: the offset just past its end when it ends
    /// among them, else `None`.
    fn scan(&mut self, bytes: &[u8]) -> Result<Option<usize>, &'static str> {
        use ChunkState::*;
        let mut i = 0;
        while i < bytes.len() {
            if let Data(n) = self.state {
                let take = (bytes.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
                i += take;
                let left = n - take as u64;
                self.state = if left == 0 { DataCr } else { Data(left) };
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match (self.state, b) {
                (Size, b) => SizeDigits(u64::from(hex(b).ok_or("a chunk size is not hex")?)),
                (SizeDigits(n), b) if hex(b).is_some() => {
                    let digit = u64::from(hex(b).unwrap_or_default());
                    if n >> 60 != 0 {
                        return Err("a chunk size too large");
                    }
                    SizeDigits(n << 4 | digit)
                }
                (SizeDigits(n), b';' | b' ' | b'\t') => Extension(n),
                (SizeDigits(n) | Extension(n), b'\r') => SizeLf(n),
                (Extension(_), b'\n') => return Err("a bare line feed"),
                (Extension(n), _) => Extension(n),
                (SizeLf(0), b'\n') => TrailerStart,
                (SizeLf(n), b'\n') => Data(n),
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => Size,
                (TrailerStart, b'\r') => EndLf,
                (TrailerStart | TrailerLine, b'\n') => return Err("a bare line feed"),
                (TrailerLine, b'\r') => TrailerLf,
                (TrailerStart | TrailerLine, _) => TrailerLine,
                (TrailerLf, b'\n') => TrailerStart,
                (EndLf, b'\n') => return Ok(Some(i)),
                _ => return Err("a chunk's framing is broken"),
            };
        }
        Ok(None)
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A kept-alive connection to a backend, with what was read of it.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Reads more of the answer into the (emptied) buffer; the backend closing, or
    /// saying nothing for `silence`, is an error, since the answer is not at its end.
    async fn fill(&mut self, silence: Duration) -> io::Result<()> {
        self.buf.clear();
        self.buf.reserve(READ_SIZE);
        let read = tokio::time::timeout(silence, self.stream.read_buf(&mut self.buf));
        if read
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??
            == 0
        {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

impl Keepable for Conn {
    /// Usable unless the backend has closed (or written out of turn on) this idle
    /// connection: only looked into when the socket says it has something to read.
    fn usable(&self) -> bool {
        match self.stream.readable().now_or_never() {
            None => true,
            Some(Err(_)) => false,
            Some(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

async fn connect(endpoint: SocketAddr) -> io::Result<Conn> {
    let stream = dial(endpoint).await?;
    Ok(Conn {
        stream,
        buf: BytesMut::with_capacity(READ_SIZE),
    })
}

/// A worker's idle backend connections for this path, by endpoint.
pub(crate) type Backends = Idle<Conn>;

/// A stream that gives back bytes already read of it before reading more.
pub(crate) struct Rewind<S> {
    read: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(inner: S, read: Bytes) -> Self {
        Self { read, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const CHUNKED: &[u8] =
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 1\r\nx-more: 2\r\n\r\n";

    #[test]
    fn a_chunked_body_ends_after_its_trailers_however_it_is_split() {
        let mut whole = CHUNKED.to_vec();
        whole.extend_from_slice(b"NEXT");
        assert_eq!(Chunks::default().scan(&whole), Ok(Some(CHUNKED.len())));
        // Split at every place: the end is found at the same byte.
        for at in 0..whole.len() {
            let mut chunks = Chunks::default();
            let end = match chunks.scan(&whole[..at]).unwrap() {
                Some(end) => end,
                None => at + chunks.scan(&whole[at..]).unwrap().expect("an end"),
            };
            assert_eq!(end, CHUNKED.len(), "split at {at}");
        }
        // Byte by byte.
        let mut chunks = Chunks::default();
        let end = (0..whole.len()).find(|&i| chunks.scan(&whole[i..=i]).unwrap().is_some());
        assert_eq!(end, Some(CHUNKED.len() - 1));
        // No trailers, and a size in capitals.
        let plain = b"A\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(Chunks::default().scan(plain), Ok(Some(plain.len())));
    }

    #[test]
    fn a_broken_chunked_body_is_an_error() {
        for broken in [
            &b"x\r\n"[..],
            b"5\r\nhelloX",
            b"5\nhello",
            b"0\r\nx-sum: 1\n",
            b"\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            assert!(
                Chunks::default().scan(broken).is_err(),
                "{:?}",
                String::from_utf8_lossy(broken)
            );
        }
        assert_eq!(Chunks::default().scan(b"5\r\nhel"), Ok(None));
    }

    fn rewrite(answer: &[u8], head: bool) -> (String, Option<(Framing, usize, bool)>) {
        let mut out = Vec::new();
        let parsed = answer_head(answer, &mut out, head).unwrap();
        let summary = match parsed {
            Some(Head::Final(framing, len, open)) => Some((framing, len, open)),
            Some(Head::Informational(len)) => Some((Framing::Empty, len, true)),
            None => None,
        };
        (String::from_utf8(out).unwrap(), summary)
    }

    #[test]
    fn answer_heads_lose_their_connection_headers_and_keep_their_framing() {
        let answer = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nx-hop: 1\r\nKeep-Alive: timeout=5\r\ncontent-length: 4\r\nx-kept: 2\r\n\r\nbody";
        let (head, parsed) = rewrite(answer, false);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\ncontent-length: 4\r\nx-kept: 2\r\n\r\n"
        );
        assert_eq!(parsed, Some((Framing::Length(4), answer.len() - 4, true)));

        // Chunked wins over a length, which is dropped.
        let (head, parsed) = rewrite(
            b"HTTP/1.1 201 Created\r\ncontent-length: 9\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
        );
        assert_eq!(
            head,
            "HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(parsed.unwrap().0, Framing::Chunked);

        // HTTP/1.0 without keep-alive, no length: until the backend closes.
        let (head, parsed) = rewrite(b"HTTP/1.0 200 OK\r\nx-a: b\r\n\r\n", false);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nx-a: b\r\nconnection: close\r\n\r\n"
        );
        let (framing, _, open) = parsed.unwrap();
        assert_eq!((framing, open), (Framing::UntilClose, false));
        let (_, parsed) = rewrite(
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            false,
        );
        assert!(parsed.unwrap().2);
        let (_, parsed) = rewrite(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            false,
        );
        assert!(!parsed.unwrap().2);

        // No body for HEAD, 204 and 304, whatever the headers say.
        let (head, parsed) = rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n", true);
        assert_eq!(head, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n");
        assert_eq!(parsed.unwrap().0, Framing::Empty);
        let (_, parsed) = rewrite(b"HTTP/1.1 304 Not Modified\r\n\r\n", false);
        assert_eq!(parsed.unwrap().0, Framing::Empty);

        // Not whole yet; not an answer at all; a switch nobody asked for; two lengths.
        assert_eq!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-le", false).1, None);
        let mut out = Vec::new();
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        ] {
            assert!(answer_head(bad, &mut out, false).is_err());
        }
    }

    #[test]
    fn content_lengths_are_digits_only() {
        assert_eq!(parse_length(b"612"), Some(612));
        assert_eq!(parse_length(b" 0 "), Some(0));
        for bad in [&b""[..], b"+1", b"1,1", b"0x10", b"99999999999999999999999"] {
            assert_eq!(parse_length(bad), None);
        }
    }

    /// The exchange of a bodiless GET to `endpoint`.
    fn get(endpoint: SocketAddr, silence: Duration) -> Exchange {
        Exchange {
            endpoint,
            body: 0,
            head: false,
            idempotent: true,
            close: false,
            silence,
        }
    }

    #[tokio::test]
    async fn a_backend_silent_too_long_is_a_gateway_timeout() {
        // A backend that takes the request and never answers; one that answers only its
        // head.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = silent.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = silent.accept().await {
                let mut head = [0u8; 1024];
                let _ = stream.read(&mut head).await;
                if held.len() == 1 {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
                        .await;
                }
                held.push(stream);
            }
        });
        let backends = Arc::new(Backends::new(Duration::from_secs(60)));
        let exchange = get(at, Duration::from_millis(100));
        let (mut client, mut proxy_side) = tokio::io::duplex(4096);
        let mut buf = BytesMut::new();
        let mut out = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n".to_vec();
        let started = Instant::now();
        let open = exchange
            .run(&mut proxy_side, &mut buf, &mut out.clone(), &backends)
            .await;
        assert_eq!(open, Ok(true));
        assert!(started.elapsed() >= Duration::from_millis(100));
        let mut got = vec![0u8; GATEWAY_TIMEOUT.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, GATEWAY_TIMEOUT);
        // The second connection's answer stops halfway: what came is passed on, then the
        // client's connection is given up.
        let open = exchange
            .run(&mut proxy_side, &mut buf, &mut out, &backends)
            .await;
        assert_eq!(open, Err(()));
        drop(proxy_side);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf");
        // Neither backend connection is kept.
        assert_eq!(backends.sweep(), 0);
    }

    /// What a backend does after writing a head of a 5-byte body on its own.
    enum Then {
        /// Writes the body 50 ms later (as nginx does with sendfile).
        Body,
        Close,
        /// Stays silent longer than the exchange waits (300 ms).
        Silence,
    }

    /// One exchange with such a backend: its outcome, and what the client's first read got
    /// (within a second).
    async fn head_alone_then(then: Then) -> (Result<bool, ()>, String) {
        let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = backend.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = backend.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head).await;
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
                .await
                .unwrap();
            match then {
                Then::Body => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    stream.write_all(b"hello").await.unwrap();
                    let _ = stream.read(&mut head).await;
                }
                Then::Close => {}
                Then::Silence => tokio::time::sleep(Duration::from_secs(5)).await,
            }
        });
        let backends = Arc::new(Backends::new(Duration::from_secs(60)));
        let exchange = get(at, Duration::from_millis(300));
        let (mut client, mut proxy_side) = tokio::io::duplex(4096);
        let mut buf = BytesMut::new();
        let mut out = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n".to_vec();
        let mut first = vec![0u8; 4096];
        let (open, read) = tokio::join!(
            async {
                let open = exchange
                    .run(&mut proxy_side, &mut buf, &mut out, &backends)
                    .await;
                drop(proxy_side);
                open
            },
            tokio::time::timeout(Duration::from_secs(1), client.read(&mut first))
        );
        let n = read.map(Result::unwrap).unwrap_or(0);
        (open, String::from_utf8_lossy(&first[..n]).into_owned())
    }

    #[tokio::test]
    async fn a_head_that_came_alone_goes_out_with_its_body() {
        // The client's first read gets both, written at once.
        let (open, first) = head_alone_then(Then::Body).await;
        assert_eq!(open, Ok(true));
        assert_eq!(first, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
    }

    #[tokio::test]
    async fn a_backend_gone_between_head_and_body_is_answered_for() {
        // Nothing of the answer reached the client: it is told, as nginx tells it, and
        // its connection stays usable.
        let (open, answer) = head_alone_then(Then::Close).await;
        assert_eq!(open, Ok(true));
        assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
        let (open, answer) = head_alone_then(Then::Silence).await;
        assert_eq!(open, Ok(true));
        assert!(answer.starts_with("HTTP/1.1 504 "), "{answer}");
    }

    #[test]
    fn requests_the_fast_path_leaves_to_the_general_one() {
        let table = Table::default();
        let client = Client {
            ip: b"127.0.0.1",
            secure: false,
        };
        for request in [
            &b"GET / HTTP/1.0\r\nhost: a\r\n\r\n"[..],
            b"GET http://a/ HTTP/1.1\r\nhost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\nconnection: x-private\r\n\r\n",
            b"PUT / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\n\r\n",
            // Nothing routed: the general path answers 404.
            b"GET / HTTP/1.1\r\nhost: a\r\n\r\n",
        ] {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            assert!(req.parse(request).unwrap().is_complete());
            let mut out = Vec::new();
            assert_eq!(
                plan(&req, &table, &client, None, &mut out),
                Plan::HandOver,
                "{}",
                String::from_utf8_lossy(request)
            );
        }
    }
}
