//! Reading an upgrade request and writing the answer: which transport the
//! client asks for, with which subprotocols, and the 101 or error response.

use http::header::{
    CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The header a SPDY client lists its protocol versions in.
pub(crate) const STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// The header a refusal lists the server's versions in.
const ACCEPTED_STREAM_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";
/// The `Upgrade` token of SPDY.
const SPDY_31: &str = "SPDY/3.1";

/// What the client asked to upgrade to.
pub(crate) enum Requested {
    /// WebSocket, offering these subprotocols in the client's order (empty
    /// if it offered none).
    WebSocket { protocols: Vec<String>, key: String },
    /// SPDY/3.1, offering these stream protocol versions.
    Spdy { versions: Vec<String> },
}

/// Splits the comma-separated values of every `name` header.
fn list(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads the upgrade headers of `parts`.
// The error is the response to send, as the public `negotiate` functions
// return it; a rare, one-off value, not worth a box.
#[allow(clippy::result_large_err)]
pub(crate) fn requested(parts: &Parts) -> Result<Requested, Response<String>> {
    let h = &parts.headers;
    let connection_upgrade = list(h, CONNECTION)
        .iter()
        .any(|t| t.eq_ignore_ascii_case("upgrade"));
    let upgrade = h.get(UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !connection_upgrade || upgrade.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request".into(),
        ));
    }
    if upgrade.eq_ignore_ascii_case("websocket") {
        if parts.method != Method::GET {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!(
                    "unable to upgrade: a websocket upgrade must be a GET, not {}",
                    parts.method
                ),
            ));
        }
        if h.get(SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()) != Some("13") {
            let mut r = error(
                StatusCode::UPGRADE_REQUIRED,
                "unable to upgrade: only websocket version 13 is supported".into(),
            );
            r.headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return Err(r);
        }
        let Some(key) = h.get(SEC_WEBSOCKET_KEY).and_then(|v| v.to_str().ok()) else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: Sec-WebSocket-Key is missing".into(),
            ));
        };
        return Ok(Requested::WebSocket {
            protocols: list(h, SEC_WEBSOCKET_PROTOCOL),
            key: key.to_owned(),
        });
    }
    if upgrade.eq_ignore_ascii_case(SPDY_31) {
        return Ok(Requested::Spdy {
            versions: list(h, STREAM_PROTOCOL_VERSION),
        });
    }
    Err(error(
        StatusCode::BAD_REQUEST,
        format!(
            "unable to upgrade: unsupported upgrade {upgrade:?}; supports websocket and SPDY/3.1"
        ),
    ))
}

/// Picks the first of the client's protocols the server supports, as
/// Kubernetes does (the client's order wins).
pub(crate) fn pick<'a, T: Copy>(
    client: &[String],
    server: &'a [(&'a str, T)],
) -> Option<(&'a str, T)> {
    client
        .iter()
        .find_map(|c| server.iter().find(|(name, _)| name == c).copied())
}

/// The refusal of a SPDY client whose versions the server has none of.
pub(crate) fn spdy_no_common_version(client: &[String], server: &[&str]) -> Response<String> {
    if client.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required".into(),
        );
    }
    let mut r = error(
        StatusCode::FORBIDDEN,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports {client:?}, server accepts {server:?}"
        ),
    );
    for s in server {
        r.headers_mut().append(
            ACCEPTED_STREAM_PROTOCOL_VERSIONS,
            HeaderValue::from_str(s).expect("protocol names are header-safe"),
        );
    }
    r
}

/// The refusal of a WebSocket client whose subprotocols the server has none
/// of.
pub(crate) fn websocket_no_common_protocol(client: &[String], server: &[&str]) -> Response<String> {
    error(
        StatusCode::BAD_REQUEST,
        format!(
            "unable to upgrade: requested protocol(s) are not supported: {client:?}; supports {server:?}"
        ),
    )
}

/// 101 Switching Protocols for SPDY/3.1 with the chosen `version`.
pub(crate) fn spdy_switching(version: &str) -> Response<()> {
    let mut r = Response::new(());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static(SPDY_31));
    h.insert(
        STREAM_PROTOCOL_VERSION,
        HeaderValue::from_str(version).expect("protocol names are header-safe"),
    );
    r
}

/// 101 Switching Protocols for WebSocket, answering `key`, with the chosen
/// subprotocol (none when the client offered none).
pub(crate) fn websocket_switching(key: &str, protocol: &str) -> Response<()> {
    let mut r = Response::new(());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&derive_accept_key(key.as_bytes())).expect("base64 is header-safe"),
    );
    if !protocol.is_empty() {
        h.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(protocol).expect("protocol names are header-safe"),
        );
    }
    r
}

/// A plain-text error response.
pub(crate) fn error(status: StatusCode, message: String) -> Response<String> {
    let mut r = Response::new(message);
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Reads a boolean query value the way Go's `strconv.ParseBool` does.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Every value of `name` in a query string.
pub(crate) fn query_values(query: &str, name: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder()
            .method(method)
            .uri("/exec/ns/pod/c");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn websocket_requests_are_recognised() {
        let p = parts(
            "GET",
            &[
                ("Connection", "keep-alive, Upgrade"),
                ("Upgrade", "WebSocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                (
                    "Sec-WebSocket-Protocol",
                    "v5.channel.k8s.io, v4.channel.k8s.io",
                ),
                ("Sec-WebSocket-Protocol", "channel.k8s.io"),
            ],
        );
        let Ok(Requested::WebSocket { protocols, key }) = requested(&p) else {
            panic!("not a websocket request");
        };
        assert_eq!(
            protocols,
            ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"]
        );
        // RFC 6455's example key and answer.
        let r = websocket_switching(&key, "v4.channel.k8s.io");
        assert_eq!(r.status(), 101);
        assert_eq!(
            r.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(r.headers()["sec-websocket-protocol"], "v4.channel.k8s.io");
        assert!(
            websocket_switching(&key, "")
                .headers()
                .get("sec-websocket-protocol")
                .is_none()
        );
    }

    #[test]
    fn spdy_requests_are_recognised() {
        let p = parts(
            "POST",
            &[
                ("Connection", "Upgrade"),
                ("Upgrade", "SPDY/3.1"),
                ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
                ("X-Stream-Protocol-Version", "v3.channel.k8s.io"),
            ],
        );
        let Ok(Requested::Spdy { versions }) = requested(&p) else {
            panic!("not a spdy request");
        };
        assert_eq!(versions, ["v4.channel.k8s.io", "v3.channel.k8s.io"]);
        let r = spdy_switching("v4.channel.k8s.io");
        assert_eq!(r.headers()["upgrade"], "SPDY/3.1");
        assert_eq!(
            r.headers()["x-stream-protocol-version"],
            "v4.channel.k8s.io"
        );
    }

    #[test]
    fn requests_that_are_no_upgrade_are_refused() {
        for p in [
            parts("POST", &[]),
            parts("POST", &[("Upgrade", "SPDY/3.1")]),
            parts("POST", &[("Connection", "Upgrade"), ("Upgrade", "h2c")]),
            parts(
                "POST",
                &[
                    ("Connection", "Upgrade"),
                    ("Upgrade", "websocket"),
                    ("Sec-WebSocket-Version", "13"),
                    ("Sec-WebSocket-Key", "x"),
                ],
            ),
            parts(
                "GET",
                &[
                    ("Connection", "Upgrade"),
                    ("Upgrade", "websocket"),
                    ("Sec-WebSocket-Version", "13"),
                ],
            ),
        ] {
            let Err(r) = requested(&p) else {
                panic!("accepted {:?}", p.headers);
            };
            assert_eq!(r.status(), 400, "{}", r.body());
            assert!(r.body().starts_with("unable to upgrade"));
        }
        let p = parts(
            "GET",
            &[
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "8"),
            ],
        );
        assert_eq!(requested(&p).err().unwrap().status(), 426);
    }

    #[test]
    fn the_clients_order_wins() {
        let server = [("a", 1), ("b", 2), ("c", 3)];
        let client = vec!["x".to_owned(), "c".to_owned(), "a".to_owned()];
        assert_eq!(pick(&client, &server), Some(("c", 3)));
        assert_eq!(pick(&["x".to_owned()], &server), None);
    }

    #[test]
    fn spdy_refusals_list_what_the_server_takes() {
        let r = spdy_no_common_version(
            &["v9".to_owned()],
            &["v4.channel.k8s.io", "v3.channel.k8s.io"],
        );
        assert_eq!(r.status(), 403);
        let accepted: Vec<_> = r
            .headers()
            .get_all("x-accepted-stream-protocol-versions")
            .iter()
            .collect();
        assert_eq!(accepted, ["v4.channel.k8s.io", "v3.channel.k8s.io"]);
        assert_eq!(spdy_no_common_version(&[], &["a"]).status(), 400);
    }

    #[test]
    fn query_helpers() {
        let q = "command=sh&command=-c&command=echo+%22hi%22&stdin=True&tty=1&port=80,8080";
        assert_eq!(query_values(q, "command"), ["sh", "-c", "echo \"hi\""]);
        assert_eq!(query_values(q, "missing"), Vec::<String>::new());
        for (v, want) in [
            ("True", Some(true)),
            ("1", Some(true)),
            ("f", Some(false)),
            ("yes", None),
        ] {
            assert_eq!(parse_bool(v), want);
        }
    }
}
