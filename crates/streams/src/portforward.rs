//! The port-forward protocol of `kubectl port-forward`.
//!
//! Three transports, one model: each forwarded connection is a data stream
//! (bytes both ways) and an error stream (a message from the server if the
//! forward failed), tagged with the pod port.
//!
//! - SPDY/3.1 with `portforward.k8s.io`: per local connection the client
//!   opens an error stream and then a data stream, both with headers `port`
//!   and `requestid`; streams with the same request id make one forward.
//! - WebSocket with `v4.channel.k8s.io` (the Python client, kube-rs): the
//!   ports come from the query; port `i` gets data channel `2i` and error
//!   channel `2i+1`, and the server first sends the port (2 bytes, little
//!   endian) on both. One forward per port, for the connection's life.
//! - WebSocket with `SPDY/3.1+portforward.k8s.io` (kubectl's default since
//!   1.31): the first as SPDY frames inside binary WebSocket messages.
//!
//! Use: `negotiate`, answer with its response, `accept` the upgraded
//! connection, then take forwards from `Forwarder::next` (keep calling it:
//! streams the client opens wait for it) and copy each between its
//! `stream` and the pod's port.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http::request::Parts;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::StreamError;
use crate::io::{StreamReader, StreamWriter};
use crate::spdy::{ClosedFuture, RecvStream, SendStream, SpdyConn, frame::rst};
use crate::upgrade::{self, Requested};
use crate::ws::{self, ByteTunnel, ChannelConn, ChannelWriter, Codec};

/// How long the client has to open the second stream of a pair (the
/// kubelet's default stream creation timeout).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The SPDY protocol name.
const SPDY_PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocols spoken.
const WS_PROTOCOLS: &[(&str, Flavor)] = &[
    ("SPDY/3.1+portforward.k8s.io", Flavor::Tunnel),
    ("v4.channel.k8s.io", Flavor::WebSocket(Codec::Binary)),
    ("v4.base64.channel.k8s.io", Flavor::WebSocket(Codec::Base64)),
];
/// Ports one WebSocket connection can carry: two channels each, below 255.
const MAX_WS_PORTS: usize = 127;

/// The protocol agreed with the client, for `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    name: &'static str,
    flavor: Flavor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Spdy,
    Tunnel,
    WebSocket(Codec),
}

impl Negotiated {
    /// The protocol's name (`portforward.k8s.io`,
    /// `SPDY/3.1+portforward.k8s.io`, `v4.channel.k8s.io`, ...; "" for a
    /// WebSocket client that asked for none).
    pub fn protocol(&self) -> &'static str {
        self.name
    }

    /// Whether the ports come from the query (the WebSocket channel
    /// protocols) rather than from each stream (SPDY, also tunnelled).
    pub fn needs_query_ports(&self) -> bool {
        matches!(self.flavor, Flavor::WebSocket(_))
    }
}

/// Picks the transport and protocol from the request's upgrade headers.
/// Returns the 101 response to send before handing the connection to
/// `accept`, or the error response to send instead (see
/// `remotecommand::negotiate` for the statuses).
// The error is the response to send: a rare, one-off value, not worth a box.
#[allow(clippy::result_large_err)]
pub fn negotiate(parts: &Parts) -> Result<(Negotiated, Response<()>), Response<String>> {
    match upgrade::requested(parts)? {
        Requested::WebSocket { protocols, key } => {
            let chosen = if protocols.is_empty() {
                Some(("", Flavor::WebSocket(Codec::Binary)))
            } else {
                upgrade::pick(&protocols, WS_PROTOCOLS)
            };
            let Some((name, flavor)) = chosen else {
                let names: Vec<&str> = WS_PROTOCOLS.iter().map(|p| p.0).collect();
                return Err(upgrade::websocket_no_common_protocol(&protocols, &names));
            };
            Ok((
                Negotiated { name, flavor },
                upgrade::websocket_switching(&key, name),
            ))
        }
        Requested::Spdy { versions } => {
            let Some((name, ())) = upgrade::pick(&versions, &[(SPDY_PROTOCOL, ())]) else {
                return Err(upgrade::spdy_no_common_version(&versions, &[SPDY_PROTOCOL]));
            };
            Ok((
                Negotiated {
                    name,
                    flavor: Flavor::Spdy,
                },
                upgrade::spdy_switching(name),
            ))
        }
    }
}

/// The ports of a query string: every `port` (the kubelet's name) and
/// `ports` (the API's) value, each a comma-separated list. An empty list,
/// 0 or anything that is no port is an error.
pub fn ports_from_query(query: &str) -> Result<Vec<u16>, StreamError> {
    let mut ports = Vec::new();
    for name in ["port", "ports"] {
        for value in upgrade::query_values(query, name) {
            for p in value.split(',') {
                match p.trim().parse::<u16>() {
                    Ok(port) if port > 0 => ports.push(port),
                    _ => {
                        return Err(StreamError::Query {
                            name: "port",
                            detail: format!("{p:?} is not a port"),
                        });
                    }
                }
            }
        }
    }
    if ports.is_empty() {
        return Err(StreamError::Query {
            name: "port",
            detail: "at least one port is required".into(),
        });
    }
    Ok(ports)
}

/// Takes over the upgraded connection `io` (after the 101 from `negotiate`
/// was sent). `ports` are the query's (see `ports_from_query`); only the
/// WebSocket channel protocols use them, and they need at least one.
pub async fn accept<IO>(n: Negotiated, ports: Vec<u16>, io: IO) -> Result<Forwarder, StreamError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let inner = match n.flavor {
        Flavor::Spdy => Inner::Spdy(SpdyForwarder::new(SpdyConn::start(io))),
        Flavor::Tunnel => {
            let socket = ws::server(io).await;
            Inner::Spdy(SpdyForwarder::new(SpdyConn::start(ByteTunnel::new(socket))))
        }
        Flavor::WebSocket(codec) => {
            if ports.is_empty() || ports.len() > MAX_WS_PORTS {
                return Err(StreamError::Query {
                    name: "port",
                    detail: format!(
                        "{} ports given, 1 to {MAX_WS_PORTS} are possible",
                        ports.len()
                    ),
                });
            }
            let socket = ws::server(io).await;
            let data_channels: Vec<u8> = (0..ports.len()).map(|i| (2 * i) as u8).collect();
            let conn = ChannelConn::start(socket, codec, false, &data_channels);
            let mut forwards = VecDeque::with_capacity(ports.len());
            for (i, &port) in ports.iter().enumerate() {
                let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
                // Each channel starts with its port, so the client can match
                // channels to ports.
                let prefix = Bytes::copy_from_slice(&port.to_le_bytes());
                conn.send(data, prefix.clone())?;
                conn.send(error, prefix)?;
                forwards.push_back(Forward {
                    port,
                    stream: ForwardStream {
                        reader: StreamReader::ws(conn.reader(data)),
                        writer: StreamWriter::ws(conn.writer(data)),
                    },
                    error: ErrorReporter(Reporter::Ws(conn.writer(error))),
                });
            }
            Inner::Ws { conn, forwards }
        }
    };
    Ok(Forwarder {
        negotiated: n,
        inner,
    })
}

/// Hands out the forwards the client asks for.
pub struct Forwarder {
    negotiated: Negotiated,
    inner: Inner,
}

enum Inner {
    Spdy(SpdyForwarder),
    Ws {
        conn: ChannelConn,
        forwards: VecDeque<Forward>,
    },
}

impl Forwarder {
    /// The protocol agreed with the client.
    pub fn protocol(&self) -> &'static str {
        self.negotiated.protocol()
    }

    /// The next forward. Over SPDY, one per connection the client forwards,
    /// as it opens them, until the client goes away (`None`); over the
    /// WebSocket channel protocols, one per port, then `None`. Keep
    /// calling it: SPDY streams wait for it to be answered.
    pub async fn next(&mut self) -> Option<Forward> {
        match &mut self.inner {
            Inner::Spdy(f) => f.next().await,
            Inner::Ws { forwards, .. } => forwards.pop_front(),
        }
    }

    /// Resolves once the client is gone.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        match &self.inner {
            Inner::Spdy(f) => futures::future::Either::Left(f.closed()),
            Inner::Ws { conn, .. } => futures::future::Either::Right(conn.closed()),
        }
    }
}

/// One forwarded connection.
pub struct Forward {
    /// The pod port to connect to.
    pub port: u16,
    /// The client's bytes in, the pod's bytes out; copy it to and from a
    /// connection to the port (`tokio::io::copy_bidirectional`). Shutting it
    /// down ends the forward's output; the client ending its side reads as
    /// the end of the stream.
    pub stream: ForwardStream,
    /// Reports why the forward failed, if it did.
    pub error: ErrorReporter,
}

impl Forward {
    /// Resolves once the client is gone.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.stream.reader.closed()
    }
}

/// A forward's byte stream.
pub struct ForwardStream {
    reader: StreamReader,
    writer: StreamWriter,
}

impl AsyncRead for ForwardStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for ForwardStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

/// The error stream of a forward. Dropping it ends the stream (SPDY: FIN),
/// which the client waits for before it considers the forward done.
pub struct ErrorReporter(Reporter);

enum Reporter {
    Spdy(SendStream),
    Ws(ChannelWriter),
}

impl ErrorReporter {
    /// Sends `message` (the kubelet's form is "error forwarding port
    /// <port> to pod <pod>, uid <uid>: <cause>") and ends the stream. kubectl
    /// prints it and, from 1.31, closes the whole port-forward session.
    pub async fn report(self, message: &str) -> Result<(), StreamError> {
        let written = match self.0 {
            Reporter::Spdy(mut s) => s.write_all(message.as_bytes()).await,
            Reporter::Ws(mut w) => w.write_all(message.as_bytes()).await,
        };
        written.map_err(|_| StreamError::Closed)
    }
}

/// A forward missing one of its two streams.
struct Pending {
    deadline: Instant,
    data: Option<(u16, RecvStream, SendStream)>,
    error: Option<SendStream>,
}

/// SPDY forwards come from a task that answers each stream the moment it
/// arrives (the client waits for that reply before it opens the next one)
/// and pairs them, whether or not the caller is in `next` just then.
struct SpdyForwarder {
    forwards: mpsc::UnboundedReceiver<Forward>,
    closed: Box<dyn Fn() -> ClosedFuture + Send + Sync>,
    pairing: JoinHandle<()>,
}

impl Drop for SpdyForwarder {
    fn drop(&mut self) {
        // No one takes new forwards: stop answering streams. Forwards
        // already handed out keep the connection up until they are done.
        self.pairing.abort();
    }
}

impl SpdyForwarder {
    fn new(conn: SpdyConn) -> Self {
        let (tx, forwards) = mpsc::unbounded_channel();
        let closed = Box::new(conn.closed_fn());
        let pairing = tokio::spawn(
            Pairing {
                conn,
                pending: HashMap::new(),
            }
            .run(tx),
        );
        Self {
            forwards,
            closed,
            pairing,
        }
    }

    async fn next(&mut self) -> Option<Forward> {
        self.forwards.recv().await
    }

    fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        (self.closed)()
    }
}

struct Pairing {
    conn: SpdyConn,
    pending: HashMap<String, Pending>,
}

impl Pairing {
    /// Pairs streams until the client can open no more.
    async fn run(mut self, forwards: mpsc::UnboundedSender<Forward>) {
        loop {
            let earliest = self.pending.values().map(|p| p.deadline).min();
            let stream = tokio::select! {
                s = self.conn.next_stream() => s,
                _ = sleep_until(earliest) => {
                    self.expire().await;
                    continue;
                }
            };
            let Some(stream) = stream else {
                return;
            };
            if let Some(forward) = self.add(stream)
                && forwards.send(forward).is_err()
            {
                return;
            }
        }
    }

    /// Takes a new stream; returns the forward it completes.
    fn add(&mut self, stream: crate::spdy::IncomingStream) -> Option<Forward> {
        let h = &stream.headers;
        let port = match h.get("port").map(str::parse::<u16>) {
            Some(Ok(p)) if p > 0 => p,
            other => {
                tracing::warn!(stream = stream.id, port = ?other, "port-forward stream without a valid port header");
                self.conn.refuse(stream, rst::PROTOCOL_ERROR);
                return None;
            }
        };
        let kind = h.get("streamtype").unwrap_or("");
        if kind != "data" && kind != "error" {
            tracing::warn!(
                stream = stream.id,
                stream_type = kind,
                "port-forward stream of an unknown type"
            );
            self.conn.refuse(stream, rst::PROTOCOL_ERROR);
            return None;
        }
        let is_error = kind == "error";
        // Clients before requestid sent a pair as consecutive streams,
        // error first: the kubelet pairs them by id, and so do we.
        let request = match h.get("requestid") {
            Some(r) => r.to_owned(),
            None if is_error => stream.id.to_string(),
            None => stream.id.saturating_sub(2).to_string(),
        };
        let (recv, send) = self.conn.reply(stream);
        let pair = self
            .pending
            .entry(request.clone())
            .or_insert_with(|| Pending {
                deadline: Instant::now() + STREAM_CREATION_TIMEOUT,
                data: None,
                error: None,
            });
        if is_error {
            if pair.error.is_some() {
                tracing::warn!(request, "second error stream for one port-forward request");
                return None;
            }
            // The client never writes on the error stream.
            drop(recv);
            pair.error = Some(send);
        } else {
            if pair.data.is_some() {
                tracing::warn!(request, "second data stream for one port-forward request");
                return None;
            }
            pair.data = Some((port, recv, send));
        }
        if pair.data.is_none() || pair.error.is_none() {
            return None;
        }
        let pair = self.pending.remove(&request).expect("found above");
        let (port, recv, send) = pair.data.expect("checked above");
        Some(Forward {
            port,
            stream: ForwardStream {
                reader: StreamReader::spdy(recv),
                writer: StreamWriter::spdy(send),
            },
            error: ErrorReporter(Reporter::Spdy(pair.error.expect("checked above"))),
        })
    }

    /// Gives up on pairs whose second stream never came.
    async fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(r, _)| r.clone())
            .collect();
        for request in expired {
            let pair = self.pending.remove(&request).expect("listed above");
            tracing::warn!(
                request,
                "port-forward request timed out waiting for its streams"
            );
            if let Some(mut error) = pair.error {
                let message = format!("timed out waiting for the data stream of request {request}");
                let _ = error.write_all(message.as_bytes()).await;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures::{SinkExt, StreamExt};
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use crate::spdy::frame::Frame;
    use crate::spdy::test_client::TestClient;

    const SPDY: Negotiated = Negotiated {
        name: SPDY_PROTOCOL,
        flavor: Flavor::Spdy,
    };

    async fn replied(client: &mut TestClient, id: u32) {
        match client.recv().await {
            Some(Frame::SynReply { stream_id, .. }) if stream_id == id => {}
            other => panic!("no reply to {id}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn spdy_pairs_streams_by_request_id() {
        let (mut client, io) = TestClient::pair();
        let mut forwarder = accept(SPDY, vec![], io).await.unwrap();
        let next = tokio::spawn(async move {
            let f = forwarder.next().await;
            (forwarder, f)
        });
        // Two requests interleaved: error 0, error 1, data 1, data 0.
        client
            .open(
                1,
                &[("streamtype", "error"), ("port", "80"), ("requestid", "0")],
            )
            .await;
        replied(&mut client, 1).await;
        client
            .open(
                3,
                &[("streamtype", "error"), ("port", "443"), ("requestid", "1")],
            )
            .await;
        replied(&mut client, 3).await;
        client
            .open(
                5,
                &[("streamtype", "data"), ("port", "443"), ("requestid", "1")],
            )
            .await;
        replied(&mut client, 5).await;
        let (mut forwarder, first) = next.await.unwrap();
        let mut first = first.unwrap();
        assert_eq!(first.port, 443);
        client
            .open(
                7,
                &[("streamtype", "data"), ("port", "80"), ("requestid", "0")],
            )
            .await;
        replied(&mut client, 7).await;
        let second = forwarder.next().await.unwrap();
        assert_eq!(second.port, 80);

        client.data(5, b"GET /", true).await;
        let mut got = String::new();
        first.stream.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "GET /");
        first.stream.write_all(b"200").await.unwrap();
        drop(first.stream);
        assert_eq!(
            client.recv().await,
            Some(Frame::Data {
                stream_id: 5,
                fin: false,
                data: Bytes::from_static(b"200")
            })
        );
        assert!(matches!(
            client.recv().await,
            Some(Frame::Data {
                stream_id: 5,
                fin: true,
                ..
            })
        ));
        second.error.report("connection refused").await.unwrap();
        assert_eq!(
            client.recv().await,
            Some(Frame::Data {
                stream_id: 1,
                fin: false,
                data: Bytes::from_static(b"connection refused")
            })
        );
        assert!(matches!(
            client.recv().await,
            Some(Frame::Data {
                stream_id: 1,
                fin: true,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn old_clients_without_request_ids_pair_by_stream_id() {
        let (mut client, io) = TestClient::pair();
        let mut forwarder = accept(SPDY, vec![], io).await.unwrap();
        client
            .open(1, &[("streamtype", "error"), ("port", "8080")])
            .await;
        client
            .open(3, &[("streamtype", "data"), ("port", "8080")])
            .await;
        let f = forwarder.next().await.unwrap();
        assert_eq!(f.port, 8080);
    }

    #[tokio::test]
    async fn bad_streams_are_reset_and_the_rest_goes_on() {
        let (mut client, io) = TestClient::pair();
        let mut forwarder = accept(SPDY, vec![], io).await.unwrap();
        let next = tokio::spawn(async move { forwarder.next().await.map(|f| f.port) });
        client
            .open(
                1,
                &[("streamtype", "data"), ("port", "0"), ("requestid", "0")],
            )
            .await;
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream_id: 1,
                status: rst::PROTOCOL_ERROR
            })
        );
        client
            .open(3, &[("streamtype", "data"), ("requestid", "0")])
            .await;
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream_id: 3,
                status: rst::PROTOCOL_ERROR
            })
        );
        client
            .open(
                5,
                &[("streamtype", "stdin"), ("port", "80"), ("requestid", "0")],
            )
            .await;
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream_id: 5,
                status: rst::PROTOCOL_ERROR
            })
        );
        client
            .open(
                7,
                &[("streamtype", "error"), ("port", "80"), ("requestid", "1")],
            )
            .await;
        replied(&mut client, 7).await;
        client
            .open(
                9,
                &[("streamtype", "data"), ("port", "80"), ("requestid", "1")],
            )
            .await;
        replied(&mut client, 9).await;
        assert_eq!(next.await.unwrap(), Some(80));
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_pair_times_out_with_a_message() {
        let (mut client, io) = TestClient::pair();
        let mut forwarder = accept(SPDY, vec![], io).await.unwrap();
        let next = tokio::spawn(async move {
            let f = forwarder.next().await.map(|f| f.port);
            (forwarder, f)
        });
        client
            .open(
                1,
                &[("streamtype", "error"), ("port", "80"), ("requestid", "0")],
            )
            .await;
        replied(&mut client, 1).await;
        match client.recv().await {
            Some(Frame::Data {
                stream_id: 1, data, ..
            }) => {
                assert!(
                    String::from_utf8_lossy(&data).contains("timed out"),
                    "{data:?}"
                );
            }
            other => panic!("expected the timeout message, got {other:?}"),
        }
        assert!(matches!(
            client.recv().await,
            Some(Frame::Data {
                stream_id: 1,
                fin: true,
                ..
            })
        ));
        client.shutdown().await;
        let (_forwarder, f) = next.await.unwrap();
        assert_eq!(f, None, "the client left");
    }

    #[tokio::test]
    async fn websocket_channels_start_with_their_port() {
        let (client_io, io) = tokio::io::duplex(1 << 16);
        let n = Negotiated {
            name: "v4.channel.k8s.io",
            flavor: Flavor::WebSocket(Codec::Binary),
        };
        let mut forwarder = accept(n, vec![80, 8443], io).await.unwrap();
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        for want in [[0u8, 80, 0], [1, 80, 0], [2, 0xfb, 0x20], [3, 0xfb, 0x20]] {
            assert_eq!(
                client.next().await.unwrap().unwrap(),
                Message::binary(want.to_vec())
            );
        }
        let mut web = forwarder.next().await.unwrap();
        let tls = forwarder.next().await.unwrap();
        assert!(forwarder.next().await.is_none());
        assert_eq!((web.port, tls.port), (80, 8443));
        client
            .send(Message::binary(b"\x00GET".to_vec()))
            .await
            .unwrap();
        let mut buf = [0u8; 3];
        web.stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"GET");
        web.stream.write_all(b"200").await.unwrap();
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::binary(b"\x00200".to_vec())
        );
        tls.error.report("refused").await.unwrap();
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::binary(b"\x03refused".to_vec())
        );
        // When every forward is done the connection closes normally.
        drop((web, tls.stream, forwarder));
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1000),
            other => panic!("expected a close, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn websocket_forwards_need_ports() {
        let (_client_io, io) = tokio::io::duplex(1024);
        let n = Negotiated {
            name: "v4.channel.k8s.io",
            flavor: Flavor::WebSocket(Codec::Binary),
        };
        assert!(matches!(
            accept(n, vec![], io).await,
            Err(StreamError::Query { .. })
        ));
    }

    #[tokio::test]
    async fn spdy_tunnelled_in_websocket() {
        let (client_io, io) = tokio::io::duplex(1 << 16);
        let n = Negotiated {
            name: "SPDY/3.1+portforward.k8s.io",
            flavor: Flavor::Tunnel,
        };
        let mut forwarder = accept(n, vec![], io).await.unwrap();
        let ws = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let mut client = TestClient::over(ByteTunnel::new(ws));
        client
            .open(
                1,
                &[
                    ("streamtype", "error"),
                    ("port", "5432"),
                    ("requestid", "0"),
                ],
            )
            .await;
        replied(&mut client, 1).await;
        client
            .open(
                3,
                &[("streamtype", "data"), ("port", "5432"), ("requestid", "0")],
            )
            .await;
        replied(&mut client, 3).await;
        let mut f = forwarder.next().await.unwrap();
        assert_eq!(f.port, 5432);
        client.data(3, b"select 1", false).await;
        let mut buf = [0u8; 8];
        f.stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"select 1");
        f.stream.write_all(b"1").await.unwrap();
        assert_eq!(
            client.recv().await,
            Some(Frame::Data {
                stream_id: 3,
                fin: false,
                data: Bytes::from_static(b"1")
            })
        );
        client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(client.recv().await, Some(Frame::Ping { id: 1 }));
    }

    #[test]
    fn ports_come_from_port_or_ports() {
        assert_eq!(
            ports_from_query("port=80&port=8080,9090").unwrap(),
            [80, 8080, 9090]
        );
        assert_eq!(ports_from_query("ports=5000").unwrap(), [5000]);
        for bad in ["", "port=", "port=0", "port=70000", "ports=a", "port=80,"] {
            assert!(ports_from_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn negotiation_knows_the_three_transports() {
        let req = |headers: &[(&str, &str)]| {
            let mut b = http::Request::builder()
                .method("GET")
                .uri("/portForward/a/b");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        let ws = |p: &str| {
            req(&[
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Protocol", p),
            ])
        };
        let (n, _) = negotiate(&ws("SPDY/3.1+portforward.k8s.io")).unwrap();
        assert_eq!(n.flavor, Flavor::Tunnel);
        assert!(!n.needs_query_ports());
        let (n, _) = negotiate(&ws("v4.channel.k8s.io")).unwrap();
        assert_eq!(n.flavor, Flavor::WebSocket(Codec::Binary));
        assert!(n.needs_query_ports());
        assert_eq!(
            negotiate(&ws("v5.channel.k8s.io")).unwrap_err().status(),
            400
        );
        let spdy = req(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "portforward.k8s.io"),
        ]);
        let (n, r) = negotiate(&spdy).unwrap();
        assert_eq!(n.protocol(), "portforward.k8s.io");
        assert_eq!(
            r.headers()["x-stream-protocol-version"],
            "portforward.k8s.io"
        );
    }
}
