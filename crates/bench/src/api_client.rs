//! A minimal Kubernetes API client for the API benchmark: HTTP/2 over TLS
//! with the admin's client certificate, as client-go talks to a server.
//!
//! Each [`Connection`] is one TLS connection; requests on it are multiplexed
//! (clones share the connection). A benchmark "client" is one connection, so
//! 32 clients are 32 connections, as 32 separate programs would be.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long a connection attempt (TCP and TLS handshake) may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// What it takes to reach one server: its address and the admin's TLS
/// identity, read from the data directory the server wrote.
#[derive(Clone)]
pub struct Credentials {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

impl Credentials {
    /// Reads `pki/ca.crt`, `pki/admin.crt` and `pki/admin.key` from a
    /// server's data directory. Fails while the server has not written them
    /// all yet (or is half-way through writing one).
    pub fn load(data_dir: &Path, addr: SocketAddr) -> anyhow::Result<Self> {
        let pki = data_dir.join("pki");
        let read = |name: &str| {
            let path = pki.join(name);
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
        };
        let ca = read("ca.crt")?;
        let cert = read("admin.crt")?;
        let key = read("admin.key")?;

        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut &ca[..]) {
            roots.add(c.context("parsing pki/ca.crt")?)?;
        }
        let chain = rustls_pemfile::certs(&mut &cert[..])
            .collect::<Result<Vec<_>, _>>()
            .context("parsing pki/admin.crt")?;
        let key = rustls_pemfile::private_key(&mut &key[..])
            .context("parsing pki/admin.key")?
            .context("no private key in pki/admin.key")?;
        if roots.is_empty() || chain.is_empty() {
            bail!("pki/ca.crt or pki/admin.crt holds no certificate yet");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        tls.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            addr,
            tls: Arc::new(tls),
        })
    }

    /// Opens a new connection.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let handshake = async {
            let tcp = TcpStream::connect(self.addr).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::from(self.addr.ip());
            let tls = TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await?;
            let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            anyhow::Ok(sender)
        };
        let sender = tokio::time::timeout(CONNECT_WITHIN, handshake)
            .await
            .with_context(|| format!("connecting to {} timed out", self.addr))?
            .with_context(|| format!("connecting to {}", self.addr))?;
        Ok(Connection {
            sender,
            authority: self.addr.to_string(),
        })
    }
}

/// One HTTP/2 connection to the API server.
#[derive(Clone)]
pub struct Connection {
    sender: http2::SendRequest<Full<Bytes>>,
    authority: String,
}

/// A response read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, or an error quoting the request and the reply
    /// unless the status is the one expected.
    pub fn expect(self, what: &str, status: StatusCode) -> anyhow::Result<Value> {
        if self.status != status {
            bail!(
                "{what}: expected {status}, got {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(2000)])
            );
        }
        serde_json::from_slice(&self.body).with_context(|| format!("{what}: reply is not JSON"))
    }
}

impl Connection {
    fn request(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.authority))
            .header(header::ACCEPT, accept);
        if !body.is_empty() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        req.body(Full::new(body)).expect("request parts are valid")
    }

    /// Sends a request and reads the whole response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        let what = format!("{method} {path}");
        let req = self.request(method, path, accept, body);
        let resp = self
            .sender
            .clone()
            .send_request(req)
            .await
            .with_context(|| format!("{what}: no response"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{what}: reading the body"))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// GET with `Accept: application/json`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, "application/json", Bytes::new())
            .await
    }

    /// POST of a JSON object.
    pub async fn post(&self, path: &str, object: &Value) -> anyhow::Result<Reply> {
        self.send(Method::POST, path, "application/json", json_bytes(object))
            .await
    }

    /// PUT of a JSON object.
    pub async fn put(&self, path: &str, object: &Value) -> anyhow::Result<Reply> {
        self.send(Method::PUT, path, "application/json", json_bytes(object))
            .await
    }

    /// Starts a GET whose body is a stream (a watch); returns once the
    /// response headers arrived.
    pub async fn stream(&self, path: &str) -> anyhow::Result<Incoming> {
        let req = self.request(Method::GET, path, "application/json", Bytes::new());
        let resp = self
            .sender
            .clone()
            .send_request(req)
            .await
            .with_context(|| format!("GET {path}: no response"))?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            bail!(
                "GET {path}: expected 200, got {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(resp.into_body())
    }
}

fn json_bytes(object: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(object).expect("a Value always serializes"))
}
