//! Requests no real client sends: upgrades to protocols nobody speaks, no
//! upgrade at all, and garbage after a good upgrade. Each gets a clear
//! answer, and nothing keeps running afterwards.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::server::{TOKEN, TestServer};

async fn connect(server: &TestServer) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends a request head; returns the response head (lowercased) and body.
async fn request(
    conn: &mut TlsStream<TcpStream>,
    method: &str,
    path: &str,
    headers: &[&str],
) -> String {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut byte))
            .await
            .expect("no response")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.push(byte[0]);
    }
    let head = String::from_utf8(got).unwrap().to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |n| n.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}

const EXEC: &str = "/api/v1/namespaces/default/pods/web/exec?command=true&stdout=1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_spdy_versions_are_forbidden_with_the_list() {
    let server = TestServer::start().await;
    let mut conn = connect(&server).await;
    let head = request(
        &mut conn,
        "POST",
        EXEC,
        &[
            "Connection: Upgrade",
            "Upgrade: SPDY/3.1",
            "X-Stream-Protocol-Version: v9.channel.k8s.io",
        ],
    )
    .await;
    assert!(head.starts_with("http/1.1 403"), "{head}");
    assert!(head.contains("unable to negotiate protocol"), "{head}");
    for v in [
        "v4.channel.k8s.io",
        "v3.channel.k8s.io",
        "v2.channel.k8s.io",
        "channel.k8s.io",
    ] {
        assert!(
            head.contains(&format!("x-accepted-stream-protocol-versions: {v}\r\n")),
            "{head}"
        );
    }
    let head = request(
        &mut conn,
        "POST",
        EXEC,
        &["Connection: Upgrade", "Upgrade: SPDY/3.1"],
    )
    .await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert_eq!(
        server.seen.active.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_websocket_protocols_and_plain_requests_are_refused() {
    let server = TestServer::start().await;
    let mut conn = connect(&server).await;
    let websocket = |protocol: &'static str| {
        [
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            protocol,
        ]
    };
    let head = request(
        &mut conn,
        "GET",
        EXEC,
        &websocket("Sec-WebSocket-Protocol: v9.channel.k8s.io"),
    )
    .await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    let head = request(
        &mut conn,
        "GET",
        "/api/v1/namespaces/default/pods/web/portforward?ports=80",
        &websocket("Sec-WebSocket-Protocol: v5.channel.k8s.io"),
    )
    .await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    let head = request(&mut conn, "POST", EXEC, &[]).await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(head.contains("missing upgrade headers"), "{head}");
    assert_eq!(
        server.seen.active.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_upgrade_closes_the_connection() {
    let server = TestServer::start().await;
    let mut conn = connect(&server).await;
    let head = request(
        &mut conn,
        "POST",
        EXEC,
        &[
            "Connection: Upgrade",
            "Upgrade: SPDY/3.1",
            "X-Stream-Protocol-Version: v4.channel.k8s.io",
        ],
    )
    .await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    // A SYN_STREAM claiming SPDY/2.
    conn.write_all(b"\x80\x02\x00\x01\x00\x00\x00\x0a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest))
        .await
        .expect("the server kept the connection open");
    // GOAWAY with PROTOCOL_ERROR, then the end of the connection.
    assert!(read.is_ok() || !rest.is_empty(), "{read:?}");
    assert_eq!(&rest[..4], b"\x80\x03\x00\x07", "{rest:x?}");
    assert_eq!(&rest[12..16], b"\x00\x00\x00\x01", "{rest:x?}");
    drop(conn);
    server.wait_idle(Duration::from_secs(10)).await;
}
