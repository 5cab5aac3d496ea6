//! The HTTPS listener.
//!
//! TLS (rustls) asks for a client certificate but does not require one, so
//! clients can present either a certificate signed by the cluster CA or a
//! bearer token. The user is worked out once per connection (certificate)
//! or per request (token) and attached to each request. A client speaking
//! plain HTTP to the port gets Kubernetes' 400 answer instead of a silently
//! closed connection.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::{self, User};

/// The user a connection's client certificate stands for, if any; put into
/// every request's extensions.
#[derive(Clone, Debug)]
pub(crate) struct CertUser(pub(crate) Option<User>);

/// Builds the TLS configuration: serve `chain`/`key`, and verify client
/// certificates against `ca_pem` when one is offered.
pub fn tls_config(
    chain_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile_certs(chain_pem)?;
    let key = rustls_pemfile_key(key_pem)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile_certs(ca_pem)? {
        roots.add(ca).map_err(|e| format!("cluster CA: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| format!("client verifier: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("serving certificate: {e}"))?;
    // HTTP/2 for ordinary requests; HTTP/1.1 for upgrades (exec, watch by
    // old clients), which client-go dials with HTTP/1.1 only.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn rustls_pemfile_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut reader = pem.as_bytes();
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut reader).collect();
    let certs = certs.map_err(|e| format!("reading certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in PEM".into());
    }
    Ok(certs)
}

fn rustls_pemfile_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    let mut reader = pem.as_bytes();
    rustls_pemfile::private_key(&mut reader)
        .map_err(|e| format!("reading key: {e}"))?
        .ok_or_else(|| "no private key in PEM".to_owned())
}

/// Accepts connections until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, peer, acceptor, router).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    // A TLS connection starts with a handshake record (0x16); anything else
    // is a client that forgot the `s` in https.
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 1 && first[0] != 0x16 {
        let mut stream = stream;
        let body = "Client sent an HTTP request to an HTTPS server.\n";
        let reply = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(reply.as_bytes()).await?;
        return stream.shutdown().await;
    }
    let tls = acceptor.accept(stream).await?;
    let cert_user = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|leaf| auth::user_from_certificate(leaf.as_ref()));
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(CertUser(cert_user.clone()));
        req.extensions_mut().insert(peer);
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await
        .map_err(std::io::Error::other)
}
