//! No task outlives its session: whatever way a session ends, the runtime's
//! count of live tasks returns to what it was.

use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::portforward;
use crate::remotecommand::{self, Options, Outcome};
use crate::spdy::frame::Frame;
use crate::spdy::test_client::TestClient;

/// Waits for the live tasks to drop back to none (the test itself is not a
/// task), failing after five seconds.
async fn no_tasks_left() {
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..500 {
        if metrics.num_alive_tasks() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} tasks still alive", metrics.num_alive_tasks());
}

fn upgrade_request(headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().method("GET").uri("/x");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn spdy_request(version: &str) -> http::request::Parts {
    upgrade_request(&[
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", version),
    ])
}

fn websocket_request(protocol: &str) -> http::request::Parts {
    upgrade_request(&[
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Protocol", protocol),
    ])
}

const OUT: Options = Options {
    stdin: true,
    stdout: true,
    stderr: false,
    tty: false,
};

async fn open(client: &mut TestClient, id: u32, headers: &[(&str, &str)]) {
    client.open(id, headers).await;
    assert!(matches!(client.recv().await, Some(Frame::SynReply { .. })));
}

#[tokio::test]
async fn a_finished_spdy_session_leaves_nothing() {
    let (n, _) = remotecommand::negotiate(&spdy_request("v4.channel.k8s.io")).unwrap();
    let (mut client, io) = TestClient::pair();
    let accepting = tokio::spawn(remotecommand::accept(n, OUT, io));
    open(&mut client, 1, &[("streamtype", "error")]).await;
    open(&mut client, 3, &[("streamtype", "stdin")]).await;
    open(&mut client, 5, &[("streamtype", "stdout")]).await;
    let mut session = accepting.await.unwrap().unwrap();
    let mut out = session.stdout.take().unwrap();
    out.write_all(b"bye").await.unwrap();
    let finishing = tokio::spawn(session.finish(Outcome::Success));
    while client.recv().await.is_some() {}
    client.shutdown().await;
    finishing.await.unwrap().unwrap();
    // A writer kept past `finish` fails and holds nothing up.
    assert!(out.write_all(b"late").await.is_err());
    drop(out);
    no_tasks_left().await;
}

#[tokio::test]
async fn a_spdy_client_that_vanishes_leaves_nothing() {
    let (n, _) = remotecommand::negotiate(&spdy_request("v4.channel.k8s.io")).unwrap();
    let (mut client, io) = TestClient::pair();
    let accepting = tokio::spawn(remotecommand::accept(n, OUT, io));
    open(&mut client, 1, &[("streamtype", "error")]).await;
    open(&mut client, 3, &[("streamtype", "stdin")]).await;
    open(&mut client, 5, &[("streamtype", "stdout")]).await;
    let mut session = accepting.await.unwrap().unwrap();
    let gone = session.closed();
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .unwrap();
    let mut rest = vec![];
    session
        .stdin
        .take()
        .unwrap()
        .read_to_end(&mut rest)
        .await
        .unwrap();
    assert!(matches!(
        session.finish(Outcome::Success).await,
        Err(crate::StreamError::Closed)
    ));
    no_tasks_left().await;
}

#[tokio::test]
async fn a_websocket_client_that_closes_leaves_nothing() {
    let (n, _) = remotecommand::negotiate(&websocket_request("v5.channel.k8s.io")).unwrap();
    let (client_io, io) = tokio::io::duplex(1 << 16);
    let session = remotecommand::accept(n, OUT, io).await.unwrap();
    let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    client.next().await.unwrap().unwrap();
    client.close(None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .unwrap();
    drop(session);
    drop(client);
    no_tasks_left().await;
}

#[tokio::test]
async fn a_dropped_websocket_session_closes_and_leaves_nothing() {
    let (n, _) = remotecommand::negotiate(&websocket_request("v4.channel.k8s.io")).unwrap();
    let (client_io, io) = tokio::io::duplex(1 << 16);
    let session = remotecommand::accept(n, OUT, io).await.unwrap();
    let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    client.next().await.unwrap().unwrap();
    drop(session);
    // The server says goodbye properly; the client answers; all ends.
    match client.next().await.unwrap().unwrap() {
        Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("expected a close, got {other:?}"),
    }
    assert!(client.next().await.is_none());
    no_tasks_left().await;
}

#[tokio::test]
async fn port_forwards_leave_nothing_when_the_client_goes() {
    let (n, _) = portforward::negotiate(&spdy_request("portforward.k8s.io")).unwrap();
    let (mut client, io) = TestClient::pair();
    let mut forwarder = portforward::accept(n, vec![], io).await.unwrap();
    open(
        &mut client,
        1,
        &[("streamtype", "error"), ("port", "80"), ("requestid", "0")],
    )
    .await;
    open(
        &mut client,
        3,
        &[("streamtype", "data"), ("port", "80"), ("requestid", "0")],
    )
    .await;
    let mut forward = forwarder.next().await.unwrap();
    // A half pair, pending when the client goes.
    open(
        &mut client,
        5,
        &[("streamtype", "error"), ("port", "80"), ("requestid", "1")],
    )
    .await;
    client.data(3, b"abc", false).await;
    let mut buf = [0u8; 3];
    forward.stream.read_exact(&mut buf).await.unwrap();
    drop(client);
    assert!(forwarder.next().await.is_none());
    let mut rest = vec![];
    forward.stream.read_to_end(&mut rest).await.unwrap();
    assert!(forward.stream.write_all(b"x").await.is_err());
    drop((forward, forwarder));
    no_tasks_left().await;
}

#[tokio::test]
async fn websocket_port_forwards_leave_nothing() {
    let (n, _) = portforward::negotiate(&websocket_request("v4.channel.k8s.io")).unwrap();
    let (client_io, io) = tokio::io::duplex(1 << 16);
    let mut forwarder = portforward::accept(n, vec![80], io).await.unwrap();
    let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    let forward = forwarder.next().await.unwrap();
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), forward.closed())
        .await
        .unwrap();
    drop((forward, forwarder));
    no_tasks_left().await;
}

#[tokio::test]
async fn garbage_instead_of_spdy_leaves_nothing() {
    let (n, _) = remotecommand::negotiate(&spdy_request("v4.channel.k8s.io")).unwrap();
    let (mut client, io) = TestClient::pair();
    let accepting = tokio::spawn(remotecommand::accept(n, OUT, io));
    // "GET " reads as a data frame header announcing 2 MB that never come.
    client.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    client.shutdown().await;
    let result = tokio::time::timeout(Duration::from_secs(5), accepting)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(crate::StreamError::Closed)),
        "{:?}",
        result.err()
    );
    while client.recv().await.is_some() {}
    no_tasks_left().await;
}

#[tokio::test]
async fn a_malformed_frame_during_setup_leaves_nothing() {
    let (n, _) = remotecommand::negotiate(&spdy_request("v4.channel.k8s.io")).unwrap();
    let (mut client, io) = TestClient::pair();
    let accepting = tokio::spawn(remotecommand::accept(n, OUT, io));
    open(&mut client, 1, &[("streamtype", "error")]).await;
    // A WINDOW_UPDATE of 4 bytes instead of 8.
    client
        .send_raw(b"\x80\x03\x00\x09\x00\x00\x00\x04\x00\x00\x00\x01")
        .await;
    assert!(matches!(
        client.recv().await,
        Some(Frame::GoAway {
            last_good_stream_id: 1,
            status: crate::spdy::frame::goaway::PROTOCOL_ERROR
        })
    ));
    // Reading to the end and closing lets `accept` finish its graceful close.
    while client.recv().await.is_some() {}
    client.shutdown().await;
    let result = tokio::time::timeout(Duration::from_secs(5), accepting)
        .await
        .unwrap()
        .unwrap();
    let err = result.err().unwrap();
    assert_eq!(
        err.to_string(),
        "spdy protocol error: WINDOW_UPDATE frame with a 4-byte payload"
    );
    no_tasks_left().await;
}
