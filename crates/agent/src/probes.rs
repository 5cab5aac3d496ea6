//! Probes and lifecycle handlers, as the kubelet runs them: exec in the
//! container (exit 0 is success), HTTP GET against the pod's address
//! (200–399 is success; HTTPS without certificate checks), a TCP connect,
//! and for hooks a sleep.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// Failed, with the message an `Unhealthy` event carries.
    Failure(String),
}

/// Where and how to run a probe or handler of one container.
pub(crate) struct Target<'a> {
    pub(crate) runtime: &'a runtime::Runtime,
    pub(crate) container_id: &'a str,
    pub(crate) container: &'a Container,
    pub(crate) pod_ip: Option<IpAddr>,
}

/// The port a probe names: a number, or the name of a container port.
fn port(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port {name} in the container"))
        }
    }
}

/// Runs a command in the container.
pub(crate) async fn exec(t: &Target<'_>, action: &ExecAction, timeout: Duration) -> Outcome {
    let argv = action.command.clone().unwrap_or_default();
    match t.runtime.exec_output(t.container_id, argv, timeout).await {
        Ok((0, _)) => Outcome::Success,
        Ok((code, output)) => {
            let out = String::from_utf8_lossy(&output);
            let out = out.trim_end();
            if code == 137 && output.is_empty() {
                Outcome::Failure(format!("command timed out after {}s", timeout.as_secs()))
            } else if out.is_empty() {
                Outcome::Failure(format!("command failed with exit code {code}"))
            } else {
                Outcome::Failure(out.to_owned())
            }
        }
        Err(e) => Outcome::Failure(e.to_string()),
    }
}

/// Connects to a TCP port.
pub(crate) async fn tcp(t: &Target<'_>, action: &TCPSocketAction, timeout: Duration) -> Outcome {
    let port = match port(t.container, &action.port) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let host = match host(t, action.host.as_deref()) {
        Ok(h) => h,
        Err(e) => return Outcome::Failure(e),
    };
    let addr = SocketAddr::new(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {e}")),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

fn host(t: &Target<'_>, host: Option<&str>) -> Result<IpAddr, String> {
    match host.filter(|h| !h.is_empty()) {
        Some(h) => h
            .parse()
            .map_err(|_| format!("probe host {h:?} must be an IP address")),
        None => t
            .pod_ip
            .ok_or_else(|| "the pod has no IP address yet".to_owned()),
    }
}

/// Sends an HTTP GET.
pub(crate) async fn http(t: &Target<'_>, action: &HTTPGetAction, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, http_get(t, action)).await {
        Ok(Ok(status)) if (200..400).contains(&status) => Outcome::Success,
        Ok(Ok(status)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
        Ok(Err(e)) => Outcome::Failure(e),
        Err(_) => Outcome::Failure(format!(
            "Get \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            url(t, action).unwrap_or_default()
        )),
    }
}

fn url(t: &Target<'_>, action: &HTTPGetAction) -> Result<String, String> {
    let scheme = action
        .scheme
        .as_deref()
        .unwrap_or("HTTP")
        .to_ascii_lowercase();
    let host = host(t, action.host.as_deref())?;
    let port = port(t.container, &action.port)?;
    let path = action.path.as_deref().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok(format!("{scheme}://{}{path}", SocketAddr::new(host, port)))
}

async fn http_get(t: &Target<'_>, action: &HTTPGetAction) -> Result<u16, String> {
    let url = url(t, action)?;
    let host = host(t, action.host.as_deref())?;
    let port = port(t.container, &action.port)?;
    let addr = SocketAddr::new(host, port);
    let path = url
        .splitn(4, '/')
        .nth(3)
        .map_or("/".to_owned(), |p| format!("/{p}"));
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("Get \"{url}\": dial tcp {addr}: connect: {e}"))?;
    let mut req = http::Request::get(&path)
        .header(http::header::HOST, addr.to_string())
        .header(
            http::header::USER_AGENT,
            format!("kube-probe/{}", &crate::KUBELET_VERSION[1..5]),
        )
        .header(http::header::ACCEPT, "*/*");
    for h in action.http_headers.iter().flatten() {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    let req = req
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let status = if action.scheme.as_deref() == Some("HTTPS") {
        let tls = tokio_rustls::TlsConnector::from(Arc::new(insecure_tls()));
        let name = rustls::pki_types::ServerName::IpAddress(host.into());
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        send(stream, req).await
    } else {
        send(tcp, req).await
    };
    status.map_err(|e| format!("Get \"{url}\": {e}"))
}

async fn send<S>(stream: S, req: http::Request<Empty<bytes::Bytes>>) -> Result<u16, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string());
    let status = match resp {
        Ok(r) => {
            let code = r.status().as_u16();
            // Read (a bounded part of) the body, as the kubelet does.
            let _ = tokio::time::timeout(Duration::from_millis(100), r.into_body().collect()).await;
            Ok(code)
        }
        Err(e) => Err(e),
    };
    driver.abort();
    status
}

/// TLS that accepts any certificate: probes do not verify, as the kubelet's.
fn insecure_tls() -> rustls::ClientConfig {
    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
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
            cert: &rustls::pki_types::CertificateDer<'_>,
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
    rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports_come_from_the_container() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "web", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .unwrap();
        assert_eq!(port(&c, &IntOrString::String("http".into())), Ok(8080));
        assert_eq!(port(&c, &IntOrString::Int(81)), Ok(81));
        assert!(port(&c, &IntOrString::String("grpc".into())).is_err());
    }
}
