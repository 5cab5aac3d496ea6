//! The remote-command protocol of `kubectl exec` and `kubectl attach`.
//!
//! Five streams: stdin (client → server), stdout and stderr (server →
//! client), error (server → client: how the command ended) and resize
//! (client → server: terminal sizes as JSON, `{"Width":80,"Height":24}`,
//! one after another). Over SPDY the client opens each as a stream with a
//! `streamtype` header; over WebSocket they are channels 0 to 4.
//!
//! Versions: `channel.k8s.io` (v1) and v2 differ in how stdin ends; v3 adds
//! resize; v4 writes the error stream as a JSON `Status` with the exit code;
//! v5 (WebSocket only; kubectl's default since 1.31) adds channel 255 to end
//! a channel, which kubectl sends for the end of stdin.
//!
//! Use: `negotiate` the request's upgrade headers, answer with the response
//! it returns, hand the upgraded connection to `accept`, copy between the
//! `Session`'s streams and the process, then `finish` with how it ended.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::StreamError;
use crate::io::{StreamReader, StreamWriter};
use crate::spdy::{SendStream, SpdyConn, frame::rst};
use crate::upgrade::{self, Requested};
use crate::ws::{self, ChannelConn, Codec};

/// How long the client has to open its SPDY streams (the kubelet's default
/// stream creation timeout).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a WebSocket session waits after the handshake before it sends
/// anything. client-go (kubectl 1.30+) starts reading the connection in one
/// goroutine while another registers its streams, and drops messages that
/// arrive for a stream not yet registered ("Unknown stream id"); the client
/// never says when it is ready. A kubelet behind the API server's stream
/// translator is naturally tens of milliseconds late; an agent that answers
/// at once loses a fast command's output when kubectl is slow to be scheduled.
const WS_SETTLE: Duration = Duration::from_millis(100);

/// WebSocket channels.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

/// The SPDY stream protocol versions spoken, newest first.
const SPDY_VERSIONS: &[(&str, u8)] = &[
    ("v4.channel.k8s.io", 4),
    ("v3.channel.k8s.io", 3),
    ("v2.channel.k8s.io", 2),
    ("channel.k8s.io", 1),
];

/// The WebSocket subprotocols spoken: name, version, framing. "" is a
/// client that asked for no subprotocol (binary, v1).
const WS_PROTOCOLS: &[(&str, (u8, Codec))] = &[
    ("v5.channel.k8s.io", (5, Codec::Binary)),
    ("v4.channel.k8s.io", (4, Codec::Binary)),
    ("v4.base64.channel.k8s.io", (4, Codec::Base64)),
    ("v3.channel.k8s.io", (3, Codec::Binary)),
    ("v2.channel.k8s.io", (2, Codec::Binary)),
    ("channel.k8s.io", (1, Codec::Binary)),
    ("base64.channel.k8s.io", (1, Codec::Base64)),
];

/// Which streams the client asked for, from the request's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// The client sends stdin.
    pub stdin: bool,
    /// The client wants stdout.
    pub stdout: bool,
    /// The client wants stderr (never with a tty: it is merged into stdout).
    pub stderr: bool,
    /// The command runs on a terminal; the client sends its sizes.
    pub tty: bool,
}

impl Options {
    /// Reads `stdin`, `stdout`, `stderr` and `tty` from a query string
    /// (`1`, `true`, `True`, ... as Go's `ParseBool`; absent is false), as the
    /// kubelet does: stderr is dropped with a tty, and at least one of
    /// stdin, stdout and stderr is required.
    pub fn from_query(query: &str) -> Result<Self, StreamError> {
        let flag = |name: &'static str| -> Result<bool, StreamError> {
            match upgrade::query_values(query, name).first() {
                None => Ok(false),
                Some(v) => upgrade::parse_bool(v).ok_or_else(|| StreamError::Query {
                    name,
                    detail: format!("{v:?} is not a boolean"),
                }),
            }
        };
        let tty = flag("tty")?;
        let o = Self {
            stdin: flag("stdin")?,
            stdout: flag("stdout")?,
            stderr: flag("stderr")? && !tty,
            tty,
        };
        if !o.stdin && !o.stdout && !o.stderr {
            return Err(StreamError::Query {
                name: "stdin",
                detail: "you must specify at least 1 of stdin, stdout, stderr".into(),
            });
        }
        Ok(o)
    }
}

/// The `command` values of an exec query string, in order: the argv.
pub fn command_from_query(query: &str) -> Vec<String> {
    upgrade::query_values(query, "command")
}

/// The protocol agreed with the client, for `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    name: &'static str,
    flavor: Flavor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Spdy { version: u8 },
    WebSocket { version: u8, codec: Codec },
}

impl Negotiated {
    /// The protocol's name (`v5.channel.k8s.io`, ...; "" for a WebSocket
    /// client that asked for none).
    pub fn protocol(&self) -> &'static str {
        self.name
    }

    /// Whether the session runs over WebSocket (otherwise SPDY/3.1).
    pub fn is_websocket(&self) -> bool {
        matches!(self.flavor, Flavor::WebSocket { .. })
    }

    fn version(&self) -> u8 {
        match self.flavor {
            Flavor::Spdy { version } | Flavor::WebSocket { version, .. } => version,
        }
    }
}

/// Picks the transport and protocol version from the request's `Upgrade`,
/// `Sec-WebSocket-Protocol` or `X-Stream-Protocol-Version` headers. Returns
/// the 101 response to send before handing the connection to `accept`, or
/// the error response to send instead (400 for a request that is no upgrade
/// or names no version, 403 with `X-Accepted-Stream-Protocol-Versions` for
/// SPDY versions none of which is spoken, 400 for such WebSocket
/// subprotocols, 426 for a WebSocket version other than 13).
// The error is the response to send: a rare, one-off value, not worth a box.
#[allow(clippy::result_large_err)]
pub fn negotiate(parts: &Parts) -> Result<(Negotiated, Response<()>), Response<String>> {
    match upgrade::requested(parts)? {
        Requested::WebSocket { protocols, key } => {
            let chosen = if protocols.is_empty() {
                Some(("", (1, Codec::Binary)))
            } else {
                upgrade::pick(&protocols, WS_PROTOCOLS)
            };
            let Some((name, (version, codec))) = chosen else {
                let names: Vec<&str> = WS_PROTOCOLS.iter().map(|p| p.0).collect();
                return Err(upgrade::websocket_no_common_protocol(&protocols, &names));
            };
            Ok((
                Negotiated {
                    name,
                    flavor: Flavor::WebSocket { version, codec },
                },
                upgrade::websocket_switching(&key, name),
            ))
        }
        Requested::Spdy { versions } => {
            let Some((name, version)) = upgrade::pick(&versions, SPDY_VERSIONS) else {
                let names: Vec<&str> = SPDY_VERSIONS.iter().map(|p| p.0).collect();
                return Err(upgrade::spdy_no_common_version(&versions, &names));
            };
            Ok((
                Negotiated {
                    name,
                    flavor: Flavor::Spdy { version },
                },
                upgrade::spdy_switching(name),
            ))
        }
    }
}

/// A terminal size the client reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width", alias = "width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height", alias = "height")]
    pub height: u16,
}

/// The terminal sizes the client sends, in order: the first right after the
/// session starts, then one per resize of the client's terminal.
pub struct ResizeEvents {
    reader: StreamReader,
    buf: Vec<u8>,
    done: bool,
}

impl ResizeEvents {
    fn new(reader: StreamReader) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next size; `None` once the client closed the stream, went away
    /// or sent something that is no size (which ends the events).
    pub async fn next(&mut self) -> Option<TerminalSize> {
        loop {
            if !self.buf.is_empty() {
                let mut sizes =
                    serde_json::Deserializer::from_slice(&self.buf).into_iter::<TerminalSize>();
                match sizes.next() {
                    Some(Ok(size)) => {
                        let used = sizes.byte_offset();
                        self.buf.drain(..used);
                        return Some(size);
                    }
                    Some(Err(e)) if e.is_eof() => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "invalid terminal size from the client");
                        self.done = true;
                        self.buf.clear();
                    }
                    None => self.buf.clear(),
                }
            }
            if self.done || self.buf.len() > 64 * 1024 {
                return None;
            }
            let mut chunk = [0u8; 1024];
            match self.reader.read(&mut chunk).await {
                Ok(0) | Err(_) => self.done = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// How the command ended, for the error stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with 0.
    Success,
    /// It exited with this code; kubectl exits with it too. Clients read the
    /// code as 1 to 255: others are reported as 255.
    NonZeroExitCode(i32),
    /// It could not run (no such container, the runtime failed); the
    /// message is shown to the user.
    Failure(String),
}

impl Outcome {
    /// The v4/v5 error stream: a `metav1.Status` as the kubelet writes it.
    fn status_json(&self) -> Vec<u8> {
        let status = match self {
            Outcome::Success => json!({"metadata": {}, "status": "Success"}),
            Outcome::NonZeroExitCode(code) => {
                let code = u8::try_from(*code).ok().filter(|c| *c != 0).unwrap_or(255);
                json!({
                    "metadata": {},
                    "status": "Failure",
                    "message": format!("command terminated with non-zero exit code: exit status {code}"),
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
                })
            }
            Outcome::Failure(message) => json!({
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "InternalError",
                "details": {"causes": [{"message": message}]},
                "code": 500,
            }),
        };
        serde_json::to_vec(&status).expect("a status serializes")
    }

    /// The v1–v3 error stream: nothing on success, else the message.
    fn status_text(&self) -> Option<Vec<u8>> {
        match self {
            Outcome::Success => None,
            Outcome::NonZeroExitCode(code) => Some(
                format!("command terminated with non-zero exit code: exit status {code}")
                    .into_bytes(),
            ),
            Outcome::Failure(message) => Some(message.clone().into_bytes()),
        }
    }

    fn render(&self, version: u8) -> Option<Vec<u8>> {
        if version >= 4 {
            Some(self.status_json())
        } else {
            self.status_text()
        }
    }
}

/// A running exec or attach session: the streams the client asked for. Take
/// them (`Option::take`) to copy to and from the process, then call
/// `finish`. Dropping the session without `finish` closes the connection
/// without telling the client how the command ended.
pub struct Session {
    /// What the client types, when it asked to send stdin.
    pub stdin: Option<StreamReader>,
    /// The command's stdout (with a tty, also its stderr).
    pub stdout: Option<StreamWriter>,
    /// The command's stderr, when asked for and there is no tty.
    pub stderr: Option<StreamWriter>,
    /// Terminal sizes, with a tty.
    pub resize: Option<ResizeEvents>,
    negotiated: Negotiated,
    transport: Transport,
}

enum Transport {
    Spdy {
        conn: SpdyConn,
        error: SendStream,
        /// The server halves of the client's input streams; kept until the
        /// end, when `finish_streams` closes them.
        _inputs: Vec<SendStream>,
    },
    Ws {
        conn: ChannelConn,
    },
}

impl Session {
    /// The protocol agreed with the client.
    pub fn protocol(&self) -> &'static str {
        self.negotiated.protocol()
    }

    /// Resolves once the client is gone (or the connection otherwise can
    /// carry nothing more): time to stop the command, if it should not
    /// outlive its client.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        match &self.transport {
            Transport::Spdy { conn, .. } => futures::future::Either::Left(conn.closed()),
            Transport::Ws { conn } => futures::future::Either::Right(conn.closed()),
        }
    }

    /// Tells the client how the command ended and closes the connection:
    /// output written before this call is sent first, then the status on
    /// the error stream, then the end of every stream (SPDY FIN and GOAWAY,
    /// or a WebSocket close), after which it waits (up to two minutes) for
    /// the client to close its side. Writers taken out of the session fail
    /// from then on. Returns `Closed` if the client was already gone.
    pub async fn finish(self, outcome: Outcome) -> Result<(), StreamError> {
        let Session {
            stdin,
            stdout,
            stderr,
            resize,
            negotiated,
            transport,
        } = self;
        drop((stdin, stdout, stderr, resize));
        let status = outcome.render(negotiated.version());
        match transport {
            Transport::Spdy {
                conn,
                mut error,
                _inputs,
            } => {
                let written = match &status {
                    Some(s) => error.write_all(s).await,
                    None => Ok(()),
                };
                conn.finish_streams();
                drop((error, _inputs));
                conn.close().await;
                written.map_err(|_| StreamError::Closed)
            }
            Transport::Ws { conn } => {
                conn.discard_input();
                let written = match status {
                    Some(s) => conn.send(ERROR, Bytes::from(s)),
                    None => Ok(()),
                };
                conn.close().await;
                written.map_err(|_| StreamError::Closed)
            }
        }
    }
}

/// Takes over the upgraded connection `io` (after the 101 from `negotiate`
/// was sent) and sets up the streams `opts` asks for. Over SPDY this waits
/// (up to 30 s) for the client to open them; a stream of an unknown type,
/// a duplicate, the timeout or the client going away end the connection
/// with an error.
pub async fn accept<IO>(n: Negotiated, opts: Options, io: IO) -> Result<Session, StreamError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match n.flavor {
        Flavor::Spdy { version } => accept_spdy(n, version, opts, io).await,
        Flavor::WebSocket { version, codec } => Ok(accept_ws(n, version, codec, opts, io).await),
    }
}

/// The SPDY streams, by type, as the client opens them.
#[derive(Default)]
struct SpdyStreams {
    error: Option<(crate::spdy::RecvStream, SendStream)>,
    stdin: Option<(crate::spdy::RecvStream, SendStream)>,
    stdout: Option<(crate::spdy::RecvStream, SendStream)>,
    stderr: Option<(crate::spdy::RecvStream, SendStream)>,
    resize: Option<(crate::spdy::RecvStream, SendStream)>,
}

async fn accept_spdy<IO>(
    n: Negotiated,
    version: u8,
    opts: Options,
    io: IO,
) -> Result<Session, StreamError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = SpdyConn::start(io);
    let wants_resize = opts.tty && version >= 3;
    let mut got = SpdyStreams::default();
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    let complete = |g: &SpdyStreams| {
        g.error.is_some()
            && (!opts.stdin || g.stdin.is_some())
            && (!opts.stdout || g.stdout.is_some())
            && (!opts.stderr || g.stderr.is_some())
            && (!wants_resize || g.resize.is_some())
    };
    while !complete(&got) {
        let stream = match tokio::time::timeout_at(deadline, conn.next_stream()).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                let failure = conn.failure();
                conn.close().await;
                return Err(failure.map_or(StreamError::Closed, StreamError::Spdy));
            }
            Err(_) => {
                tracing::warn!(
                    "client did not open its exec streams in {STREAM_CREATION_TIMEOUT:?}"
                );
                conn.protocol_error();
                conn.close().await;
                return Err(StreamError::StreamTimeout(STREAM_CREATION_TIMEOUT));
            }
        };
        let kind = stream.headers.get("streamtype").unwrap_or("").to_owned();
        let (slot, name) = match kind.as_str() {
            "error" => (&mut got.error, "error"),
            "stdin" => (&mut got.stdin, "stdin"),
            "stdout" => (&mut got.stdout, "stdout"),
            "stderr" => (&mut got.stderr, "stderr"),
            "resize" => (&mut got.resize, "resize"),
            _ => {
                tracing::warn!(
                    stream_type = kind,
                    "client opened a stream of an unknown type"
                );
                conn.refuse(stream, rst::PROTOCOL_ERROR);
                conn.protocol_error();
                conn.close().await;
                return Err(StreamError::UnknownStreamType(kind));
            }
        };
        if slot.is_some() {
            conn.refuse(stream, rst::PROTOCOL_ERROR);
            conn.protocol_error();
            conn.close().await;
            return Err(StreamError::DuplicateStream(name));
        }
        // Reply at once: the client waits for each reply before opening
        // the next stream.
        *slot = Some(conn.reply(stream));
    }
    conn.stop_accepting();
    let mut inputs = Vec::new();
    let stdin = got.stdin.filter(|_| opts.stdin).map(|(r, w)| {
        inputs.push(w);
        StreamReader::spdy(r)
    });
    let resize = got.resize.filter(|_| wants_resize).map(|(r, w)| {
        inputs.push(w);
        ResizeEvents::new(StreamReader::spdy(r))
    });
    let stdout = got
        .stdout
        .filter(|_| opts.stdout)
        .map(|(_, w)| StreamWriter::spdy(w));
    let stderr = got
        .stderr
        .filter(|_| opts.stderr)
        .map(|(_, w)| StreamWriter::spdy(w));
    let (_, error) = got.error.expect("complete means the error stream is there");
    Ok(Session {
        stdin,
        stdout,
        stderr,
        resize,
        negotiated: n,
        transport: Transport::Spdy {
            conn,
            error,
            _inputs: inputs,
        },
    })
}

async fn accept_ws<IO>(n: Negotiated, version: u8, codec: Codec, opts: Options, io: IO) -> Session
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let socket = ws::server(io).await;
    let mut readable = vec![];
    if opts.stdin {
        readable.push(STDIN);
    }
    if opts.tty {
        readable.push(RESIZE);
    }
    let conn = ChannelConn::start(socket, codec, version >= 5, &readable);
    tokio::time::sleep(WS_SETTLE).await;
    // An empty message on the lowest channel the client reads tells it the
    // streams are ready (the kubelet does this; some clients wait for it).
    let first = if opts.stdout {
        STDOUT
    } else if opts.stderr {
        STDERR
    } else {
        ERROR
    };
    let _ = conn.send(first, Bytes::new());
    Session {
        stdin: opts.stdin.then(|| StreamReader::ws(conn.reader(STDIN))),
        stdout: opts.stdout.then(|| StreamWriter::ws(conn.writer(STDOUT))),
        stderr: opts.stderr.then(|| StreamWriter::ws(conn.writer(STDERR))),
        resize: opts
            .tty
            .then(|| ResizeEvents::new(StreamReader::ws(conn.reader(RESIZE)))),
        negotiated: n,
        transport: Transport::Ws { conn },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_the_kubelet() {
        let o =
            Options::from_query("command=sh&stdin=true&stdout=1&stderr=True&tty=false").unwrap();
        assert_eq!(
            o,
            Options {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false
            }
        );
        let o = Options::from_query("stdin=1&stdout=1&stderr=1&tty=1").unwrap();
        assert!(o.tty && !o.stderr, "no stderr with a tty");
        assert!(Options::from_query("tty=1").is_err(), "no stream at all");
        assert!(Options::from_query("stdout=maybe").is_err());
        assert_eq!(
            command_from_query("command=ls&command=-l&stdout=1"),
            ["ls", "-l"]
        );
    }

    #[test]
    fn status_json_matches_what_client_go_decodes() {
        let s: serde_json::Value =
            serde_json::from_slice(&Outcome::NonZeroExitCode(3).status_json()).unwrap();
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            String::from_utf8(Outcome::Success.status_json()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let s: serde_json::Value =
            serde_json::from_slice(&Outcome::NonZeroExitCode(300).status_json()).unwrap();
        assert_eq!(s["details"]["causes"][0]["message"], "255");
        let s: serde_json::Value =
            serde_json::from_slice(&Outcome::Failure("no such container".into()).status_json())
                .unwrap();
        assert_eq!(s["message"], "no such container");
        assert_eq!(s["code"], 500);
    }

    #[test]
    fn old_versions_get_text_only_on_failure() {
        assert_eq!(Outcome::Success.render(3), None);
        assert_eq!(
            Outcome::NonZeroExitCode(2).render(2).unwrap(),
            b"command terminated with non-zero exit code: exit status 2"
        );
        assert!(Outcome::Success.render(4).is_some());
    }

    #[test]
    fn negotiation_prefers_the_clients_order() {
        let req = |headers: &[(&str, &str)]| {
            let mut b = http::Request::builder().method("GET").uri("/exec/a/b/c");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        let ws = |protocols: &str| {
            req(&[
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Protocol", protocols),
            ])
        };
        let (n, r) = negotiate(&ws("v5.channel.k8s.io")).unwrap();
        assert_eq!(n.protocol(), "v5.channel.k8s.io");
        assert!(n.is_websocket());
        assert_eq!(r.headers()["sec-websocket-protocol"], "v5.channel.k8s.io");
        let (n, _) = negotiate(&ws("v4.base64.channel.k8s.io, v4.channel.k8s.io")).unwrap();
        assert_eq!(
            n.flavor,
            Flavor::WebSocket {
                version: 4,
                codec: Codec::Base64
            }
        );
        let r = negotiate(&ws("v9.channel.k8s.io")).unwrap_err();
        assert_eq!(r.status(), 400);
        assert!(r.body().contains("not supported"), "{}", r.body());

        let spdy = req(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
            ("X-Stream-Protocol-Version", "v3.channel.k8s.io"),
        ]);
        let (n, r) = negotiate(&spdy).unwrap();
        assert_eq!(n.protocol(), "v4.channel.k8s.io");
        assert!(!n.is_websocket());
        assert_eq!(r.status(), 101);
        let spdy = req(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "portforward.k8s.io"),
        ]);
        assert_eq!(negotiate(&spdy).unwrap_err().status(), 403);
    }

    use std::time::Duration;

    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use crate::spdy::frame::{Frame, goaway};
    use crate::spdy::test_client::TestClient;

    fn spdy(version: u8) -> Negotiated {
        Negotiated {
            name: "v4.channel.k8s.io",
            flavor: Flavor::Spdy { version },
        }
    }

    const ALL: Options = Options {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };

    /// Opens streams of these types as 1, 3, 5, ..., each after the reply
    /// to the one before, as client-go does.
    async fn open_streams(client: &mut TestClient, kinds: &[&str]) {
        for (i, kind) in kinds.iter().enumerate() {
            let id = 2 * i as u32 + 1;
            client.open(id, &[("streamtype", kind)]).await;
            match client.recv().await {
                Some(Frame::SynReply { stream_id, .. }) if stream_id == id => {}
                other => panic!("no reply to stream {id}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_spdy_session_from_start_to_finish() {
        let (mut client, io) = TestClient::pair();
        let accepting = tokio::spawn(accept(spdy(4), ALL, io));
        open_streams(&mut client, &["error", "stdin", "stdout", "stderr"]).await;
        let mut session = accepting.await.unwrap().unwrap();
        client.data(3, b"typed", true).await;
        let mut typed = String::new();
        session
            .stdin
            .take()
            .unwrap()
            .read_to_string(&mut typed)
            .await
            .unwrap();
        assert_eq!(typed, "typed");
        session
            .stdout
            .as_mut()
            .unwrap()
            .write_all(b"out")
            .await
            .unwrap();
        session
            .stderr
            .as_mut()
            .unwrap()
            .write_all(b"err")
            .await
            .unwrap();
        let finishing = tokio::spawn(session.finish(Outcome::NonZeroExitCode(2)));

        let mut data: std::collections::HashMap<u32, Vec<u8>> = Default::default();
        let mut fins = vec![];
        loop {
            match client.recv_skipping_updates().await {
                Some(Frame::Data {
                    stream_id,
                    fin,
                    data: d,
                }) => {
                    assert!(!fins.contains(&stream_id), "data after FIN on {stream_id}");
                    data.entry(stream_id).or_default().extend_from_slice(&d);
                    if fin {
                        fins.push(stream_id);
                    }
                }
                Some(Frame::GoAway {
                    last_good_stream_id,
                    status,
                }) => {
                    assert_eq!((last_good_stream_id, status), (7, goaway::OK));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        fins.sort();
        assert_eq!(fins, [1, 3, 5, 7], "every stream ends before GOAWAY");
        assert_eq!(data[&5], b"out");
        assert_eq!(data[&7], b"err");
        let status: serde_json::Value = serde_json::from_slice(&data[&1]).unwrap();
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "2");
        assert_eq!(client.recv().await, None);
        client.shutdown().await;
        tokio::time::timeout(Duration::from_secs(5), finishing)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn v3_writes_text_and_nothing_on_success() {
        for (outcome, want) in [
            (Outcome::Success, None),
            (Outcome::Failure("it broke".into()), Some(&b"it broke"[..])),
        ] {
            let (mut client, io) = TestClient::pair();
            let opts = Options {
                stdout: true,
                ..Options::default()
            };
            let accepting = tokio::spawn(accept(spdy(3), opts, io));
            open_streams(&mut client, &["error", "stdout"]).await;
            let session = accepting.await.unwrap().unwrap();
            let finishing = tokio::spawn(session.finish(outcome));
            let mut error = vec![];
            while let Some(f) = client.recv_skipping_updates().await {
                if let Frame::Data {
                    stream_id: 1, data, ..
                } = f
                {
                    error.extend_from_slice(&data);
                }
            }
            assert_eq!(error, want.unwrap_or_default());
            client.shutdown().await;
            finishing.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn an_unknown_stream_type_ends_the_session() {
        let (mut client, io) = TestClient::pair();
        let accepting = tokio::spawn(accept(spdy(4), ALL, io));
        open_streams(&mut client, &["error"]).await;
        client.open(3, &[("streamtype", "bogus")]).await;
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream_id: 3,
                status: rst::PROTOCOL_ERROR
            })
        );
        assert!(matches!(
            client.recv().await,
            Some(Frame::GoAway {
                status: goaway::PROTOCOL_ERROR,
                ..
            })
        ));
        client.shutdown().await;
        let err = accepting.await.unwrap().err().unwrap();
        assert!(
            matches!(&err, StreamError::UnknownStreamType(t) if t == "bogus"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_duplicate_stream_ends_the_session() {
        let (mut client, io) = TestClient::pair();
        let accepting = tokio::spawn(accept(spdy(4), ALL, io));
        open_streams(&mut client, &["error"]).await;
        client.open(3, &[("streamtype", "error")]).await;
        client.shutdown().await;
        let err = accepting.await.unwrap().err().unwrap();
        assert!(
            matches!(err, StreamError::DuplicateStream("error")),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn streams_that_never_come_time_out() {
        let (mut client, io) = TestClient::pair();
        let accepting = tokio::spawn(accept(spdy(4), ALL, io));
        open_streams(&mut client, &["error", "stdin"]).await;
        let err = accepting.await.unwrap().err().unwrap();
        assert!(matches!(err, StreamError::StreamTimeout(_)), "{err}");
    }

    #[tokio::test]
    async fn a_client_that_leaves_early_is_an_error_not_a_hang() {
        let (client, io) = TestClient::pair();
        let accepting = tokio::spawn(accept(spdy(4), ALL, io));
        drop(client);
        let err = tokio::time::timeout(Duration::from_secs(5), accepting)
            .await
            .unwrap()
            .unwrap()
            .err()
            .unwrap();
        assert!(matches!(err, StreamError::Closed), "{err}");
    }

    async fn ws_client(io: tokio::io::DuplexStream) -> WebSocketStream<tokio::io::DuplexStream> {
        WebSocketStream::from_raw_socket(io, Role::Client, None).await
    }

    #[tokio::test]
    async fn a_v5_websocket_session() {
        let (client_io, io) = tokio::io::duplex(1 << 16);
        let n = Negotiated {
            name: "v5.channel.k8s.io",
            flavor: Flavor::WebSocket {
                version: 5,
                codec: Codec::Binary,
            },
        };
        let mut session = accept(n, ALL, io).await.unwrap();
        let mut client = ws_client(client_io).await;
        // The empty message that says the streams are ready.
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::binary(vec![STDOUT])
        );
        client
            .send(Message::binary(b"\x00hello".to_vec()))
            .await
            .unwrap();
        client
            .send(Message::binary(vec![CLOSE, STDIN]))
            .await
            .unwrap();
        let mut typed = String::new();
        session
            .stdin
            .take()
            .unwrap()
            .read_to_string(&mut typed)
            .await
            .unwrap();
        assert_eq!(typed, "hello");
        session
            .stdout
            .as_mut()
            .unwrap()
            .write_all(b"out")
            .await
            .unwrap();
        session
            .stderr
            .as_mut()
            .unwrap()
            .write_all(b"err")
            .await
            .unwrap();
        let finishing = tokio::spawn(session.finish(Outcome::Success));
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::binary(b"\x01out".to_vec())
        );
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::binary(b"\x02err".to_vec())
        );
        let status = client.next().await.unwrap().unwrap().into_data();
        assert_eq!(status[0], ERROR);
        assert_eq!(&status[1..], br#"{"metadata":{},"status":"Success"}"#);
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1000),
            other => panic!("expected a normal close, got {other:?}"),
        }
        // The client answers the close; then both sides are done.
        assert!(client.next().await.is_none());
        tokio::time::timeout(Duration::from_secs(5), finishing)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    const CLOSE: u8 = crate::ws::CLOSE_CHANNEL;

    #[tokio::test]
    async fn base64_with_a_terminal() {
        let (client_io, io) = tokio::io::duplex(1 << 16);
        let n = Negotiated {
            name: "v4.base64.channel.k8s.io",
            flavor: Flavor::WebSocket {
                version: 4,
                codec: Codec::Base64,
            },
        };
        let opts = Options {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        };
        let mut session = accept(n, opts, io).await.unwrap();
        let mut client = ws_client(client_io).await;
        assert_eq!(client.next().await.unwrap().unwrap(), Message::text("1"));
        // {"Width":10,"Height":20} on channel 4, base64.
        client
            .send(Message::text("4eyJXaWR0aCI6MTAsIkhlaWdodCI6MjB9"))
            .await
            .unwrap();
        let size = session.resize.as_mut().unwrap().next().await.unwrap();
        assert_eq!(
            size,
            TerminalSize {
                width: 10,
                height: 20
            }
        );
        // Invalid base64 is dropped, the connection lives on.
        client.send(Message::text("0!!!")).await.unwrap();
        client.send(Message::text("0aGk=")).await.unwrap();
        let mut buf = [0u8; 2];
        session
            .stdin
            .as_mut()
            .unwrap()
            .read_exact(&mut buf)
            .await
            .unwrap();
        assert_eq!(&buf, b"hi");
        session
            .stdout
            .as_mut()
            .unwrap()
            .write_all(b"x")
            .await
            .unwrap();
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::text("1eA==")
        );
    }

    #[test]
    fn sizes_parse_back_to_back_as_go_writes_them() {
        let mut buf = br#"{"Width":80,"Height":24}
{"width":100, "height":40}{"Width":1,"Hei"#
            .to_vec();
        let mut sizes = vec![];
        loop {
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<TerminalSize>();
            match it.next() {
                Some(Ok(s)) => {
                    let used = it.byte_offset();
                    sizes.push(s);
                    buf.drain(..used);
                }
                Some(Err(e)) => {
                    assert!(e.is_eof());
                    break;
                }
                None => break,
            }
        }
        assert_eq!(
            sizes,
            [
                TerminalSize {
                    width: 80,
                    height: 24
                },
                TerminalSize {
                    width: 100,
                    height: 40
                }
            ]
        );
    }
}
