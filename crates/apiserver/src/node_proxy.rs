//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: the
//! request goes on to the agent of the pod's node, over TLS with the
//! cluster CA on both sides (the server presents its kubelet-client
//! certificate; the agent's serving certificate is checked), on the
//! kubelet's paths. Upgrade requests (exec, attach, port-forward) pass
//! through unchanged: after the agent's 101 the two connections are joined
//! byte for byte, so the client speaks its own protocol (SPDY or a
//! WebSocket flavour) with the agent.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::Api;
use crate::request::ResourcePath;
use crate::rest::{Target, read};
use crate::status::{ApiError, ApiResult};

/// The subresources that reach into a node.
pub(crate) fn handles(path: &ResourcePath) -> bool {
    path.group.is_empty()
        && path.resource == "pods"
        && matches!(
            path.subresource.as_deref(),
            Some("log" | "exec" | "attach" | "portforward")
        )
}

/// What the server presents to agents, and trusts in them.
pub(crate) struct KubeletClient {
    tls: tokio_rustls::TlsConnector,
}

impl KubeletClient {
    pub(crate) fn new(ca_pem: &str, identity: &pki::Issued) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let certs: Vec<_> = rustls_pemfile::certs(&mut identity.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let key = rustls_pemfile::private_key(&mut identity.key_pem.as_bytes())
            .map_err(|e| e.to_string())?
            .ok_or("no key in the kubelet client PEM")?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }
}

/// Proxies one request; errors come back as a `Status`.
pub(crate) async fn proxy(api: Arc<Api>, path: ResourcePath, parts: Parts, body: Body) -> Response {
    match forward(api, path, parts, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn forward(
    api: Arc<Api>,
    path: ResourcePath,
    parts: Parts,
    body: Body,
) -> ApiResult<Response> {
    let sub = path.subresource.clone().unwrap_or_default();
    let allowed = match sub.as_str() {
        "log" => parts.method == Method::GET,
        _ => parts.method == Method::GET || parts.method == Method::POST,
    };
    if !allowed {
        let verb = if parts.method == Method::POST {
            "create"
        } else {
            parts.method.as_str()
        };
        return Err(ApiError::method_not_allowed(
            &verb.to_lowercase(),
            "",
            &format!("pods/{sub}"),
        ));
    }
    let ns = path.namespace.clone().unwrap_or_default();
    let name = path.name.clone().unwrap_or_default();
    let t = Target::internal(&api, "", "v1", "pods", Some(&ns), Some(&name))
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let Some((pod, _)) = read::read_object(&t, &t.key()).await? else {
        return Err(ApiError::not_found("", "pods", &name));
    };
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let agent_path = match sub.as_str() {
        "portforward" => format!("/portForward/{ns}/{name}"),
        other => {
            let container = pick_container(&pod, &name, &query)?;
            let prefix = match other {
                "log" => "containerLogs",
                "exec" => "exec",
                _ => "attach",
            };
            format!("/{prefix}/{ns}/{name}/{container}")
        }
    };
    let Some(node) = node else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let addr = agent_address(&api, &node).await?;
    let uri = if query.is_empty() {
        agent_path
    } else {
        format!("{agent_path}?{query}")
    };
    send(&api, addr, &node, parts, body, &uri).await
}

/// The container a request names, or the pod's only one; errors as the
/// API server words them.
fn pick_container(pod: &Value, pod_name: &str, query: &str) -> ApiResult<String> {
    let names = |key: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let containers = names("containers");
    let inits = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    let asked = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty());
    match asked {
        Some(c) => {
            if containers.contains(&c) || inits.contains(&c) || ephemeral.contains(&c) {
                Ok(c)
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {pod_name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !inits.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// The agent's address: the node's InternalIP (else another address) and
/// its kubelet endpoint port.
async fn agent_address(api: &Arc<Api>, node: &str) -> ApiResult<SocketAddr> {
    let t = Target::internal(api, "", "v1", "nodes", None, Some(node))
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let Some((obj, _)) = read::read_object(&t, &t.key()).await? else {
        return Err(ApiError::not_found("", "nodes", node));
    };
    let addresses = obj
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ip = ["InternalIP", "ExternalIP"]
        .iter()
        .find_map(|kind| {
            addresses
                .iter()
                .filter(|a| a["type"] == *kind)
                .find_map(|a| a["address"].as_str().and_then(|s| s.parse::<IpAddr>().ok()))
        })
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "node {node} reports no address to reach its agent at"
            ))
        })?;
    let port = obj
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(10250);
    Ok(SocketAddr::new(ip, port))
}

/// Headers that belong to this hop only (kept: Upgrade and Connection,
/// which an upgrade needs end to end).
fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        let name = k.as_str();
        if matches!(
            name,
            "host"
                | "authorization"
                | "proxy-authorization"
                | "keep-alive"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "content-length"
        ) {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    out
}

async fn send(
    api: &Arc<Api>,
    addr: SocketAddr,
    node: &str,
    mut parts: Parts,
    body: Body,
    uri: &str,
) -> ApiResult<Response> {
    let unreachable = |e: String| {
        ApiError::unavailable(format!(
            "error dialing backend: dial tcp {addr}: {e} (node {node})"
        ))
    };
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| unreachable("i/o timeout".into()))?
    .map_err(|e| unreachable(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let server_name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = api
        .kubelet
        .tls
        .connect(server_name, tcp)
        .await
        .map_err(|e| unreachable(format!("tls: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "agent connection");
        }
    });
    let mut builder = http::Request::builder()
        .method(parts.method.clone())
        .uri(uri);
    // Every value of every header: kubectl offers its SPDY protocol
    // versions as repeated X-Stream-Protocol-Version headers.
    for (k, v) in forwardable(&parts.headers).iter() {
        builder = builder.header(k, v);
    }
    builder = builder.header(http::header::HOST, addr.to_string());
    let agent_req = builder
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = sender
        .send_request(agent_req)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (p, b) = resp.into_parts();
        return Ok(Response::from_parts(p, Body::new(b)));
    }
    // Join the client's upgraded connection to the agent's.
    let agent_upgrade = hyper::upgrade::on(&mut resp);
    let on_client = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::bad_request("the connection cannot be upgraded (HTTP/2?)"))?;
    let websocket = resp
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    tokio::spawn(async move {
        let (agent, client) = match tokio::join!(agent_upgrade, on_client) {
            (Ok(a), Ok(c)) => (a, c),
            (a, c) => {
                tracing::debug!(agent = ?a.err(), client = ?c.err(), "joining upgraded connections");
                return;
            }
        };
        let agent = TokioIo::new(agent);
        let client = TokioIo::new(client);
        if websocket {
            join_websocket(client, agent).await;
        } else {
            let (mut agent, mut client) = (agent, client);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
        }
    });
    let (p, _) = resp.into_parts();
    Ok(Response::from_parts(p, Body::empty()))
}

/// Joins a client's WebSocket to the agent's, passing the agent's frames
/// on one at a time, each written (and so encrypted) on its own. The
/// agent's TLS may hand over several frames in one read; written together
/// they would share a TLS record, and clients that poll the socket before
/// each frame (the Python client) never see the ones after the first.
/// Go's proxy keeps records apart by copying one record per read; this
/// keeps frames apart.
async fn join_websocket<C, A>(client: C, agent: A)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut agent_read, mut agent_write) = tokio::io::split(agent);
    let up = async {
        let _ = tokio::io::copy(&mut client_read, &mut agent_write).await;
        let _ = agent_write.shutdown().await;
    };
    let down = async {
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            while let Some(len) = frame_len(&buf) {
                if client_write.write_all(&buf[..len]).await.is_err()
                    || client_write.flush().await.is_err()
                {
                    return;
                }
                buf.drain(..len);
            }
            match agent_read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        // Whatever is left (not a whole frame) goes as it is.
        let _ = client_write.write_all(&buf).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// The length of the WebSocket frame at the start of `buf`, once all of
/// it is there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let [_, second, rest @ ..] = buf else {
        return None;
    };
    let masked = second & 0x80 != 0;
    let (payload, header) = match second & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = rest.get(..8)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        n => (u64::from(n), 2),
    };
    let total = header + if masked { 4 } else { 0 } + usize::try_from(payload).ok()?;
    (buf.len() >= total).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::frame_len;

    #[test]
    fn frames_are_measured_once_whole() {
        assert_eq!(frame_len(&[0x82]), None);
        assert_eq!(frame_len(&[0x82, 0x01]), None);
        assert_eq!(frame_len(&[0x82, 0x01, 0x03, 0xff]), Some(3));
        let mut medium = vec![0x82, 126, 0x01, 0x00];
        medium.extend(vec![0; 256]);
        assert_eq!(frame_len(&medium[..100]), None);
        assert_eq!(frame_len(&medium), Some(260));
        let mut big = vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        big.extend(vec![0; 65536]);
        assert_eq!(frame_len(&big), Some(65546));
        // A masked frame carries four more bytes of key.
        assert_eq!(frame_len(&[0x82, 0x81, 1, 2, 3, 4, 9]), Some(7));
    }
}
