//! The proxy on loopback in front of plain HTTP backends, with tables built from objects
//! made here: HTTP/1.1, h2c, h2 and HTTP/1.1 over TLS with the certificate picked by SNI,
//! the redirect to HTTPS, an upgraded connection passed through, 404 and 503, and a table
//! replaced under an open keep-alive connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingress::{Objects, Proxy, TableHandle};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend answering every request with its name and what it was asked, and
/// `Upgrade: echo` with 101 and an echo of the upgraded connection.
async fn backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                Ok::<_, Infallible>(answer(name, req))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    addr
}

fn answer(name: &str, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    if header("upgrade") == "echo" {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.unwrap());
            let mut buf = [0u8; 1024];
            loop {
                let n = io.read(&mut buf).await.unwrap_or(0);
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    let text = format!(
        "{name} {} {:?} host={} xff={} real={} proto={} fhost={} conn={}",
        req.method(),
        req.uri().path(),
        header("host"),
        header("x-forwarded-for"),
        header("x-real-ip"),
        header("x-forwarded-proto"),
        header("x-forwarded-host"),
        header("x-private"),
    );
    Response::new(Full::new(Bytes::from(text)))
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// A certificate and key for `host`, made here.
struct Cert {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn cert(host: &str) -> Cert {
    let made = rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap();
    Cert {
        der: made.cert.der().clone(),
        cert_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
    }
}

/// The objects of a cluster: Services `a` and `b` whose one endpoint each is a backend,
/// Service `none` with no endpoints, and an Ingress routing `plain.test` to `plain_to`,
/// `a.test` (TLS) to `a`, `b.test` (TLS) to `b`, and `/down` of `plain.test` to `none`.
struct World {
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    secrets: Vec<Secret>,
    class: IngressClass,
}

impl World {
    fn new(a: SocketAddr, b: SocketAddr, cert_a: &Cert, cert_b: &Cert) -> Self {
        let service = |name: &str| -> Service {
            from(json!({"metadata": {"namespace": "ns", "name": name},
                "spec": {"ports": [{"name": "http", "port": 80}]}}))
        };
        let slice = |name: &str, at: Option<SocketAddr>| -> EndpointSlice {
            let endpoints: Vec<Value> = at
                .iter()
                .map(|a| json!({"addresses": [a.ip().to_string()], "conditions": {"ready": true}}))
                .collect();
            from(json!({
                "metadata": {"namespace": "ns", "name": format!("{name}-1"),
                    "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": "http", "port": at.map_or(1, |a| a.port()), "protocol": "TCP"}]
            }))
        };
        let secret = |name: &str, c: &Cert| -> Secret {
            let mut s: Secret = from(json!({"metadata": {"namespace": "ns", "name": name},
                "type": "kubernetes.io/tls"}));
            s.data = Some(
                [
                    (
                        "tls.crt".to_owned(),
                        k8s_openapi::ByteString(c.cert_pem.clone().into_bytes()),
                    ),
                    (
                        "tls.key".to_owned(),
                        k8s_openapi::ByteString(c.key_pem.clone().into_bytes()),
                    ),
                ]
                .into(),
            );
            s
        };
        Self {
            services: vec![service("a"), service("b"), service("none")],
            slices: vec![
                slice("a", Some(a)),
                slice("b", Some(b)),
                slice("none", None),
            ],
            secrets: vec![secret("cert-a", cert_a), secret("cert-b", cert_b)],
            class: from(json!({"metadata": {"name": "gantry",
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                "spec": {"controller": "gantry.dev/ingress"}})),
        }
    }

    fn table(&self, plain_to: &str) -> ingress::Table {
        let route = |host: &str, service: &str| {
            json!({"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service, "port": {"name": "http"}}}},
                {"path": "/down", "pathType": "Prefix",
                 "backend": {"service": {"name": "none", "port": {"number": 80}}}}
            ]}})
        };
        let ingress: Ingress = from(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {
                "rules": [route("plain.test", plain_to), route("a.test", "a"), route("b.test", "b")],
                "tls": [{"hosts": ["a.test"], "secretName": "cert-a"},
                        {"hosts": ["b.test"], "secretName": "cert-b"}]
            }
        }));
        let built = ingress::routes::build(&Objects {
            ingresses: &[&ingress],
            classes: &[&self.class],
            services: &self.services.iter().collect::<Vec<_>>(),
            slices: &self.slices.iter().collect::<Vec<_>>(),
            secrets: &self.secrets.iter().collect::<Vec<_>>(),
        });
        assert!(built.warnings.is_empty(), "{:?}", built.warnings);
        built.table
    }
}

struct Running {
    http: SocketAddr,
    https: SocketAddr,
    world: World,
    table: TableHandle,
    cert_a: Cert,
    cert_b: Cert,
}

async fn start() -> Running {
    start_to(backend("backend-a").await, backend("backend-b").await).await
}

/// The proxy with `plain.test` and `a.test` routed to `a`, `b.test` to `b`.
async fn start_to(a: SocketAddr, b: SocketAddr) -> Running {
    start_with(a, b, None).await
}

/// The same, backends given `answer_timeout` to answer when it is `Some`.
async fn start_with(a: SocketAddr, b: SocketAddr, answer_timeout: Option<Duration>) -> Running {
    let (cert_a, cert_b) = (cert("a.test"), cert("b.test"));
    let world = World::new(a, b, &cert_a, &cert_b);
    let table = TableHandle::new(world.table("a"));
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, https_addr) = (http.local_addr().unwrap(), https.local_addr().unwrap());
    let proxy = match answer_timeout {
        Some(timeout) => {
            Proxy::with_answer_timeout(table.clone(), Some(https_addr.port()), timeout)
        }
        None => Proxy::new(table.clone(), Some(https_addr.port())),
    }
    .unwrap();
    tokio::spawn(proxy.clone().serve_http(http));
    tokio::spawn(proxy.serve_https(https));
    Running {
        http: http_addr,
        https: https_addr,
        world,
        table,
        cert_a,
        cert_b,
    }
}

/// An HTTP/1.1 connection's sender.
async fn http1<S>(io: S) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    sender
}

async fn http2<S>(io: S) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

fn get(uri: &str, host: &str) -> Request<Empty<Bytes>> {
    Request::get(uri)
        .header("host", host)
        .body(Empty::new())
        .unwrap()
}

async fn text(response: Response<Incoming>) -> (StatusCode, String) {
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A TLS client that accepts any certificate (the test compares what it got) and offers
/// `alpn`.
fn tls_client(alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    #[derive(Debug)]
    struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls(
    at: SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(at).await.unwrap();
    tls_client(alpn)
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
        .unwrap()
}

fn peer_certificate(
    stream: &tokio_rustls::client::TlsStream<TcpStream>,
) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn http1_routes_by_host_and_path_and_forwards_who_asked() {
    let r = start().await;
    let mut c = http1(TcpStream::connect(r.http).await.unwrap()).await;
    let mut req = get("/x/y?z=1", "plain.test");
    req.headers_mut()
        .insert("connection", "x-private".parse().unwrap());
    req.headers_mut()
        .insert("x-private", "secret".parse().unwrap());
    let (status, body) = text(c.send_request(req).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "backend-a GET \"/x/y\" host=plain.test xff=127.0.0.1 real=127.0.0.1 proto=http fhost=plain.test conn=-"
    );
    // A path of the same host to a Service without endpoints: 503; no rule: 404.
    let (status, _) = text(c.send_request(get("/down/x", "plain.test")).await.unwrap()).await;
    assert_eq!(status, 503);
    let (status, body) = text(c.send_request(get("/", "nobody.test")).await.unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "default backend - 404\n")
    );
    // A host with a certificate: to HTTPS, path and query kept.
    let response = c.send_request(get("/p?q=1", "a.test")).await.unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("https://a.test:{}/p?q=1", r.https.port()).as_str()
    );
}

#[tokio::test]
async fn h2c_with_prior_knowledge() {
    let r = start().await;
    let mut c = http2(TcpStream::connect(r.http).await.unwrap()).await;
    let req = Request::get("http://plain.test/h2c")
        .body(Empty::new())
        .unwrap();
    let response = c.send_request(req).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let (status, body) = text(response).await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("backend-a GET \"/h2c\" host=plain.test "),
        "{body}"
    );
}

#[tokio::test]
async fn tls_picks_the_certificate_by_sni_for_h2_and_http1() {
    let r = start().await;
    for (host, cert, name) in [
        ("a.test", &r.cert_a, "backend-a"),
        ("b.test", &r.cert_b, "backend-b"),
    ] {
        let stream = tls(r.https, host, &[b"h2", b"http/1.1"]).await;
        assert_eq!(peer_certificate(&stream), cert.der, "{host}");
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let mut c = http2(stream).await;
        let req = Request::get(format!("https://{host}/s"))
            .body(Empty::new())
            .unwrap();
        let (status, body) = text(c.send_request(req).await.unwrap()).await;
        assert_eq!(status, 200);
        assert!(
            body.starts_with(&format!("{name} GET \"/s\" host={host} ")),
            "{body}"
        );
        assert!(body.contains("proto=https"), "{body}");

        let stream = tls(r.https, host, &[b"http/1.1"]).await;
        assert_eq!(peer_certificate(&stream), cert.der, "{host}");
        let mut c = http1(stream).await;
        let (status, body) = text(c.send_request(get("/s1", host)).await.unwrap()).await;
        assert_eq!(status, 200);
        assert!(
            body.starts_with(&format!("{name} GET \"/s1\" host={host} ")),
            "{body}"
        );
    }
    // A name no Ingress has a certificate for: the fake certificate, and routing as usual.
    let stream = tls(r.https, "plain.test", &[]).await;
    let fake = peer_certificate(&stream);
    assert_ne!(fake, r.cert_a.der);
    assert_ne!(fake, r.cert_b.der);
    let mut c = http1(stream).await;
    let (status, body) = text(c.send_request(get("/", "plain.test")).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_upgraded_connection_passes_through() {
    let r = start().await;
    let mut c = http1(TcpStream::connect(r.http).await.unwrap()).await;
    let req = Request::get("/ws")
        .header("host", "plain.test")
        .header("connection", "Upgrade")
        .header("upgrade", "echo")
        .body(Empty::new())
        .unwrap();
    let response = c.send_request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["upgrade"], "echo");
    let mut io = TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    for message in ["hello", "and again"] {
        io.write_all(message.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; message.len()];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, message.as_bytes());
    }
}

#[tokio::test]
async fn a_new_table_applies_to_the_next_request_on_an_open_connection() {
    let r = start().await;
    let mut c = http1(TcpStream::connect(r.http).await.unwrap()).await;
    let (_, body) = text(c.send_request(get("/", "plain.test")).await.unwrap()).await;
    assert!(body.starts_with("backend-a "), "{body}");
    r.table.replace(r.world.table("b"));
    // The same connection (the sender would fail on a closed one) now reaches b.
    assert!(!c.is_closed());
    for _ in 0..3 {
        let (status, body) = text(c.send_request(get("/", "plain.test")).await.unwrap()).await;
        assert_eq!(status, 200);
        assert!(body.starts_with("backend-b "), "{body}");
    }
    // An empty table: the open connection stays up and answers 404.
    r.table.replace(ingress::Table::default());
    let (status, _) = text(c.send_request(get("/", "plain.test")).await.unwrap()).await;
    assert_eq!(status, 404);
}

/// A listener that counts the connections it accepts and gives each to `serve` in a task
/// of its own.
async fn counting_listener<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream));
        }
    });
    (addr, accepted)
}

/// A backend counting the connections it accepts; `/big` answers 200 KiB (streamed by
/// the proxy, not buffered), anything else a short text.
async fn counting_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    counting_listener(|stream| async move {
        let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
            let body = if req.uri().path() == "/big" {
                Bytes::from(vec![b'x'; 200 * 1024])
            } else {
                Bytes::from_static(b"small")
            };
            Ok::<_, Infallible>(Response::new(Full::new(body)))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
    .await
}

#[tokio::test]
async fn backend_connections_are_kept_for_the_next_request_small_or_streamed() {
    let (a, accepted) = counting_backend().await;
    let r = start_to(a, backend("backend-b").await).await;
    let mut c = http1(TcpStream::connect(r.http).await.unwrap()).await;
    for i in 0..20 {
        let path = if i % 4 == 3 { "/big" } else { "/small" };
        let (status, body) = text(c.send_request(get(path, "plain.test")).await.unwrap()).await;
        assert_eq!(status, 200, "{path}");
        let want = if path == "/big" { 200 * 1024 } else { 5 };
        assert_eq!(body.len(), want, "{path}");
    }
    // One client connection is served by one worker, which kept one backend connection.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_backend_closed_while_idle_is_not_used_again() {
    // Each connection answers one request without `Connection: close`, and is closed
    // by the backend 20 ms later, as a backend's keep-alive timeout does.
    let (a, accepted) = counting_listener(|mut stream| async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    })
    .await;
    let r = start_to(a, backend("backend-b").await).await;
    let mut c = http1(TcpStream::connect(r.http).await.unwrap()).await;
    for _ in 0..5 {
        let (status, body) = text(c.send_request(get("/", "plain.test")).await.unwrap()).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

/// A backend written by hand, answering by path: `/chunked` in chunks with a trailer,
/// `/len` 1000 bytes (to HEAD only its head), `/early` a 103 before its 200, `/echo` the
/// length of the body it was sent, `/close` an HTTP/1.0 answer that ends when the
/// connection does, `/garbage` something that is not HTTP.
async fn scripted_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    counting_listener(|mut stream| async move {
        let mut buf = Vec::new();
        loop {
            let end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            buf.drain(..end);
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse().unwrap());
            while buf.len() < length {
                let mut chunk = [0u8; 65536];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.drain(..length);
            let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
            let answer: Vec<u8> = match path.as_str() {
                "/chunked" => b"HTTP/1.1 200 OK\r\ntrailer: x-sum\r\ntransfer-encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n".to_vec(),
                "/len" => {
                    let mut a = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_vec();
                    if head.starts_with("get ") {
                        a.extend(std::iter::repeat_n(b'y', 1000));
                    }
                    a
                }
                "/early" => b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                "/echo" => {
                    let text = format!("got {length}");
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}", text.len()).into_bytes()
                }
                "/close" => {
                    let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil").await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = stream.write_all(b" close").await;
                    return;
                }
                _ => {
                    let _ = stream.write_all(b"SSH-2.0-nothing\r\n\r\n").await;
                    return;
                }
            };
            if stream.write_all(&answer).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test]
async fn http1_answers_pass_on_framed_as_they_came() {
    let (a, accepted) = scripted_backend().await;
    let r = start_to(a, backend("backend-b").await).await;
    let mut c = http1(TcpStream::connect(r.http).await.unwrap()).await;

    let response = c.send_request(get("/chunked", "plain.test")).await.unwrap();
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-sum"], "11");
    assert_eq!(collected.to_bytes(), "hello world");

    let head = Request::head("/len")
        .header("host", "plain.test")
        .body(Empty::new())
        .unwrap();
    let response = c.send_request(head).await.unwrap();
    assert_eq!(response.headers()["content-length"], "1000");
    assert_eq!(text(response).await, (StatusCode::OK, String::new()));
    let (status, body) = text(c.send_request(get("/len", "plain.test")).await.unwrap()).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 1000));

    // hyper's client passes over the 103 itself; what matters is the 200 after it.
    let (status, body) = text(c.send_request(get("/early", "plain.test")).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    // All on the one backend connection.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // A body larger than one read, sent on.
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(
        TcpStream::connect(r.http).await.unwrap(),
    ))
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut poster: hyper::client::conn::http1::SendRequest<Full<Bytes>> = sender;
    for size in [0, 10, 300 * 1024] {
        let post = Request::post("/echo")
            .header("host", "plain.test")
            .body(Full::new(Bytes::from(vec![b'p'; size])))
            .unwrap();
        let (status, body) = text(poster.send_request(post).await.unwrap()).await;
        assert_eq!((status, body), (StatusCode::OK, format!("got {size}")));
    }

    // An answer that ends when the backend closes: passed on whole, and the client's
    // connection closed after it.
    let response = c.send_request(get("/close", "plain.test")).await.unwrap();
    assert_eq!(response.headers()["connection"], "close");
    assert_eq!(
        text(response).await,
        (StatusCode::OK, "until close".to_owned())
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(c.is_closed());
}

#[tokio::test]
async fn a_backend_that_fails_is_a_bad_gateway_and_the_client_can_go_on() {
    let (a, _) = scripted_backend().await;
    // Nothing listens at `dead`.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = start_to(a, dead).await;
    r.table.replace(r.world.table("b"));
    let mut c = http1(TcpStream::connect(r.http).await.unwrap()).await;
    for _ in 0..2 {
        let (status, body) = text(c.send_request(get("/", "plain.test")).await.unwrap()).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_GATEWAY, "bad gateway\n")
        );
    }
    // Not HTTP at all from the backend: also a 502, on the same client connection.
    r.table.replace(r.world.table("a"));
    let (status, _) = text(c.send_request(get("/garbage", "plain.test")).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, body) = text(c.send_request(get("/echo", "plain.test")).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "got 0"));
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_turn_and_forwarded_headers_rewritten() {
    let r = start().await;
    let mut s = TcpStream::connect(r.http).await.unwrap();
    s.write_all(
        b"GET /one HTTP/1.1\r\nhost: plain.test\r\nx-forwarded-for: 192.0.2.1\r\nx-real-ip: 6.6.6.6\r\nx-forwarded-proto: https\r\nkeep-alive: 5\r\n\r\n\
          GET /two HTTP/1.1\r\nHost: plain.test\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answers = Vec::new();
    s.read_to_end(&mut answers).await.unwrap();
    let answers = String::from_utf8(answers).unwrap();
    let one = answers.find("backend-a GET \"/one\" host=plain.test xff=192.0.2.1, 127.0.0.1 real=127.0.0.1 proto=http fhost=plain.test");
    let two = answers.find("backend-a GET \"/two\" host=plain.test xff=127.0.0.1 ");
    assert!(
        matches!((one, two), (Some(a), Some(b)) if a < b),
        "{answers}"
    );
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
}

#[tokio::test]
async fn a_connection_goes_on_through_the_general_path_from_a_request_it_needs() {
    let r = start().await;
    let mut c = http1(TcpStream::connect(r.http).await.unwrap()).await;
    let (status, body) = text(c.send_request(get("/first", "plain.test")).await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("backend-a GET \"/first\""), "{body}");
    // A 404 is the general path's: the connection is handed over and stays open.
    let (status, _) = text(c.send_request(get("/", "nobody.test")).await.unwrap()).await;
    assert_eq!(status, 404);
    let (status, body) = text(c.send_request(get("/after", "plain.test")).await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("backend-a GET \"/after\""), "{body}");
    // And an upgrade on it, later still.
    let req = Request::get("/ws")
        .header("host", "plain.test")
        .header("connection", "Upgrade")
        .header("upgrade", "echo")
        .body(Empty::new())
        .unwrap();
    let response = c.send_request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn a_backend_that_never_answers_is_a_gateway_timeout_on_both_paths() {
    // Takes every request and says nothing.
    let (silent, _) = counting_listener(|mut stream| async move {
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    let r = start_with(silent, silent, Some(Duration::from_millis(200))).await;
    // HTTP/1.1 (the fast path): a 504, and the connection goes on.
    let mut c = http1(TcpStream::connect(r.http).await.unwrap()).await;
    for _ in 0..2 {
        let (status, body) = text(c.send_request(get("/", "plain.test")).await.unwrap()).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n")
        );
    }
    // HTTP/2 (hyper's path): the same.
    let mut c = http2(TcpStream::connect(r.http).await.unwrap()).await;
    let req = Request::get("http://plain.test/")
        .body(Empty::new())
        .unwrap();
    let (status, body) = text(c.send_request(req).await.unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n")
    );
}
