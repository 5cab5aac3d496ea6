//! The agent's HTTPS API, on the kubelet's paths, for the API server:
//! `/containerLogs/{ns}/{pod}/{container}`, `/exec/...`, `/attach/...`,
//! `/portForward/{ns}/{pod}`, `/healthz`. Only clients with a certificate
//! from the cluster CA are served. The API server passes kubectl's upgrade
//! requests through unchanged, so `exec`, `attach` and `port-forward` speak
//! the client's own protocol here (see the `streams` crate).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use http::StatusCode;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::pods::{Context, RegistryEntry};

/// Builds the TLS configuration: the serving certificate, and client
/// certificates required, verified against the cluster CA.
pub(crate) fn tls_config(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("serving certificate: {e}"))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| format!("serving key: {e}"))?
        .ok_or("serving key: no key in the PEM")?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| format!("cluster CA: {e}"))?)
            .map_err(|e| format!("cluster CA: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .map_err(|e| format!("client verifier: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("serving certificate: {e}"))?;
    // Upgrades (exec, attach, port-forward) need HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, tls: rustls::ServerConfig, ctx: Arc<Context>) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let app = router(ctx);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "agent server: accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "agent server: TLS handshake");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        tower::ServiceExt::oneshot(app, req.map(Body::new))
                            .await
                            .unwrap_or_else(|e| match e {}),
                    )
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "agent server: connection");
            }
        });
    }
}

fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/containerLogs/{ns}/{pod}/{container}", get(logs))
        .route("/exec/{ns}/{pod}/{container}", any(exec))
        .route("/attach/{ns}/{pod}/{container}", any(attach))
        .route("/portForward/{ns}/{pod}", any(port_forward))
        .with_state(ctx)
}

fn status(code: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    let reason = match code {
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::BAD_REQUEST => "BadRequest",
        _ => "InternalError",
    };
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A refusal, turned into a `Status` response where it is answered.
type Refusal = (StatusCode, String);

fn refused((code, message): Refusal) -> Response {
    status(code, message)
}

/// How long a request waits for a pod the agent is still adopting after
/// a restart.
const ADOPTION_PATIENCE: Duration = Duration::from_secs(10);

async fn find(ctx: &Context, ns: &str, pod: &str) -> Result<RegistryEntry, Refusal> {
    ctx.registry
        .wait(ns, pod, ADOPTION_PATIENCE)
        .await
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("pod {ns}/{pod} not found on this node"),
            )
        })
}

fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn flag(query: &str, name: &str) -> bool {
    query_value(query, name)
        .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// `GET /containerLogs/{ns}/{pod}/{container}`: follow, tailLines,
/// sinceSeconds, sinceTime, timestamps, previous, limitBytes.
async fn logs(
    State(ctx): State<Arc<Context>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let entry = match find(&ctx, &ns, &pod).await {
        Ok(e) => e,
        Err(r) => return refused(r),
    };
    let Some(c) = entry.containers.get(&container) else {
        return status(
            StatusCode::BAD_REQUEST,
            format!("container {container} is not valid for pod {pod}"),
        );
    };
    let q = req.uri().query().unwrap_or_default().to_owned();
    let previous = flag(&q, "previous");
    let attempt = if previous {
        c.restart_count - 1
    } else {
        c.restart_count
    };
    let path = entry.logs.join(&container).join(format!("{attempt}.log"));
    if attempt < 0 || !path.exists() {
        let message = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            )
        };
        return status(StatusCode::BAD_REQUEST, message);
    }
    let since = query_value(&q, "sinceSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| SystemTime::now() - Duration::from_secs(s))
        .or_else(|| query_value(&q, "sinceTime").and_then(|t| crate::time::parse(&t)));
    let options = runtime::logs::LogOptions {
        follow: flag(&q, "follow") && !previous,
        tail_lines: query_value(&q, "tailLines").and_then(|t| t.parse().ok()),
        since,
        timestamps: flag(&q, "timestamps"),
        limit_bytes: query_value(&q, "limitBytes").and_then(|t| t.parse().ok()),
    };
    // Following ends when the container is no longer the running one.
    let done: runtime::logs::DoneCheck = {
        let ctx = Arc::clone(&ctx);
        let (ns, pod, container) = (ns.clone(), pod.clone(), container.clone());
        let id = c.id.clone();
        Box::new(move || {
            let now = ctx
                .registry
                .get(&ns, &pod)
                .and_then(|e| e.containers.get(&container).and_then(|c| c.id.clone()));
            id.is_none() || now != id
        })
    };
    let mut reader = match runtime::logs::LogReader::open(&path, options, done) {
        Ok(r) => r,
        Err(e) => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {e}", path.display()),
            );
        }
    };
    let body = async_stream(move |tx| async move {
        loop {
            match reader.next().await {
                Ok(Some(chunk)) => {
                    if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    (
        [(http::header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(body),
    )
        .into_response()
}

/// A stream fed by a task, ending when the task does.
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send
where
    F: FnOnce(tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Answers the 101 and hands the upgraded connection to `then`.
fn upgrade<F, Fut>(req: Request, response: http::Response<()>, then: F) -> Response
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => then(TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, "agent server: upgrade failed"),
        }
    });
    let (parts, ()) = response.into_parts();
    Response::from_parts(parts, Body::empty())
}

async fn running_container(
    ctx: &Context,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<String, Refusal> {
    let entry = find(ctx, ns, pod).await?;
    let c = entry.containers.get(container).ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            format!("container {container} is not valid for pod {pod}"),
        )
    })?;
    c.id.clone().ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            format!("container {container} is not running in pod {pod}"),
        )
    })
}

/// `/exec/{ns}/{pod}/{container}?command=...&stdin=&stdout=&stderr=&tty=`.
async fn exec(
    State(ctx): State<Arc<Context>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let id = match running_container(&ctx, &ns, &pod, &container).await {
        Ok(id) => id,
        Err(r) => return refused(r),
    };
    let q = req.uri().query().unwrap_or_default().to_owned();
    let argv = streams::remotecommand::command_from_query(&q);
    if argv.is_empty() {
        return status(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    let opts = match streams::remotecommand::Options::from_query(&q) {
        Ok(o) => o,
        Err(e) => return status(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (parts, body) = req.into_parts();
    let (negotiated, response) = match streams::remotecommand::negotiate(&parts) {
        Ok(x) => x,
        Err(r) => return r.map(Body::from),
    };
    let req = Request::from_parts(parts, body);
    upgrade(req, response, move |io| async move {
        let session = match streams::remotecommand::accept(negotiated, opts, io).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "exec: stream setup");
                return;
            }
        };
        let spec = runtime::ExecSpec {
            argv,
            env: Vec::new(),
            tty: opts.tty,
            stdin: opts.stdin,
        };
        let process = ctx.runtime.exec(&id, spec).await;
        run_exec(session, process).await;
    })
}

async fn run_exec(
    mut session: streams::remotecommand::Session,
    process: runtime::Result<runtime::ExecProcess>,
) {
    use streams::remotecommand::Outcome;
    let mut process = match process {
        Ok(p) => p,
        Err(e) => {
            let _ = session.finish(Outcome::Failure(e.to_string())).await;
            return;
        }
    };
    let mut tasks = Vec::new();
    if let (Some(mut from), Some(mut to)) = (session.stdin.take(), process.stdin.take()) {
        tasks.push(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.shutdown().await;
        }));
    }
    let outputs: Vec<_> = [
        (process.stdout.take(), session.stdout.take()),
        (process.stderr.take(), session.stderr.take()),
    ]
    .into_iter()
    .filter_map(|(from, sink)| from.map(|from| forward_output(from, sink)))
    .collect();
    let mut resize = session.resize.take();
    let closed = session.closed();
    tokio::pin!(closed);
    let code = loop {
        tokio::select! {
            code = process.wait() => break Some(code),
            size = async {
                match &mut resize {
                    Some(r) => r.next().await,
                    None => std::future::pending().await,
                }
            } => match size {
                Some(size) => {
                    let _ = process.resize(size.width, size.height);
                }
                None => resize = None,
            },
            () = &mut closed => break None,
        }
    };
    let Some(code) = code else {
        // The client left: the command does not outlive it.
        process.kill();
        let _ = process.wait().await;
        for t in tasks {
            t.abort();
        }
        return;
    };
    // Output written before the exit reaches the client before the status.
    for o in outputs {
        if let Ok(Some(mut sink)) = o.await {
            let _ = sink.flush().await;
        }
    }
    for t in tasks {
        t.abort();
    }
    let outcome = match code {
        Ok(0) => Outcome::Success,
        Ok(n) => Outcome::NonZeroExitCode(n),
        Err(e) => Outcome::Failure(e.to_string()),
    };
    let _ = session.finish(outcome).await;
}

/// Copies one output of an exec'd process to the client's stream, or drops
/// it when the client did not ask for that stream, and hands the stream
/// back so that it can be flushed before the exit status is sent.
fn forward_output(
    mut from: runtime::ExecReader,
    mut sink: Option<streams::StreamWriter>,
) -> tokio::task::JoinHandle<Option<streams::StreamWriter>> {
    tokio::spawn(async move {
        let _ = match &mut sink {
            Some(s) => tokio::io::copy(&mut from, s).await,
            None => tokio::io::copy(&mut from, &mut tokio::io::sink()).await,
        };
        sink
    })
}

/// `/attach/{ns}/{pod}/{container}?stdin=&stdout=&stderr=&tty=`.
async fn attach(
    State(ctx): State<Arc<Context>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let id = match running_container(&ctx, &ns, &pod, &container).await {
        Ok(id) => id,
        Err(r) => return refused(r),
    };
    let q = req.uri().query().unwrap_or_default().to_owned();
    let opts = match streams::remotecommand::Options::from_query(&q) {
        Ok(o) => o,
        Err(e) => return status(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (parts, body) = req.into_parts();
    let (negotiated, response) = match streams::remotecommand::negotiate(&parts) {
        Ok(x) => x,
        Err(r) => return r.map(Body::from),
    };
    let req = Request::from_parts(parts, body);
    upgrade(req, response, move |io| async move {
        use streams::remotecommand::Outcome;
        let mut session = match streams::remotecommand::accept(negotiated, opts, io).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "attach: stream setup");
                return;
            }
        };
        let stream = match ctx.runtime.attach(&id, opts.stdin).await {
            Ok(s) => s,
            Err(e) => {
                let _ = session.finish(Outcome::Failure(e.to_string())).await;
                return;
            }
        };
        let (mut output, mut input) = stream.split();
        let stdin = session.stdin.take();
        let resize = session.resize.take();
        let feeder = tokio::spawn(async move {
            let mut stdin = stdin;
            let mut resize = resize;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                tokio::select! {
                    n = async { match &mut stdin { Some(s) => s.read(&mut buf).await, None => std::future::pending().await } } => {
                        match n {
                            Ok(0) | Err(_) => {
                                let _ = input.close_stdin().await;
                                stdin = None;
                            }
                            Ok(n) => {
                                if input.write_stdin(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    size = async { match &mut resize { Some(r) => r.next().await, None => std::future::pending().await } } => {
                        match size {
                            Some(s) => { let _ = input.resize(s.width, s.height).await; }
                            None => resize = None,
                        }
                    }
                }
            }
        });
        let mut stdout = session.stdout.take();
        let mut stderr = session.stderr.take();
        let closed = session.closed();
        let pump = async {
            while let Ok(Some((which, data))) = output.next().await {
                let sink = match which {
                    runtime::logs::Stream::Stderr if stderr.is_some() => stderr.as_mut(),
                    _ => stdout.as_mut(),
                };
                if let Some(s) = sink
                    && s.write_all(&data).await.is_err()
                {
                    break;
                }
            }
        };
        let ended = tokio::select! {
            () = pump => true,
            () = closed => false,
        };
        feeder.abort();
        if ended {
            drop((stdout, stderr));
            let _ = session.finish(Outcome::Success).await;
        }
    })
}

/// `/portForward/{ns}/{pod}?port=...`: each forwarded connection goes to
/// the port on the pod's loopback, inside its network namespace.
async fn port_forward(
    State(ctx): State<Arc<Context>>,
    Path((ns, pod)): Path<(String, String)>,
    req: Request,
) -> Response {
    let entry = match find(&ctx, &ns, &pod).await {
        Ok(e) => e,
        Err(r) => return refused(r),
    };
    let q = req.uri().query().unwrap_or_default().to_owned();
    let (parts, body) = req.into_parts();
    let (negotiated, response) = match streams::portforward::negotiate(&parts) {
        Ok(x) => x,
        Err(r) => return r.map(Body::from),
    };
    let ports = match streams::portforward::ports_from_query(&q) {
        Ok(p) => p,
        Err(e) if negotiated.needs_query_ports() => {
            return status(StatusCode::BAD_REQUEST, e.to_string());
        }
        Err(_) => Vec::new(),
    };
    let req = Request::from_parts(parts, body);
    upgrade(req, response, move |io| async move {
        let mut forwarder = match streams::portforward::accept(negotiated, ports, io).await {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "port-forward: stream setup");
                return;
            }
        };
        while let Some(fwd) = forwarder.next().await {
            let netns = entry.netns.clone();
            let (pod, uid) = (pod.clone(), entry.uid.clone());
            tokio::spawn(async move {
                let streams::portforward::Forward {
                    port,
                    stream,
                    error,
                } = fwd;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let conn = match &netns {
                    Some(ns) => net::connect_in_netns(ns, addr).await,
                    None => tokio::net::TcpStream::connect(addr).await,
                };
                match conn {
                    Ok(tcp) => {
                        drop(error);
                        forward(stream, tcp).await;
                    }
                    Err(e) => {
                        let message = format!(
                            "error forwarding port {port} to pod {pod}, uid {uid}: failed to connect to localhost:{port} inside namespace \"{pod}\": {e}"
                        );
                        let _ = error.report(&message).await;
                    }
                }
            });
        }
    })
}

/// Copies one forwarded connection both ways. The pod closing its side
/// ends the forward (the WebSocket flavour has no half-close, and clients
/// wait for the end to see the response complete); the client closing its
/// side only half-closes the pod's, whose answer still comes back.
async fn forward(stream: streams::portforward::ForwardStream, tcp: tokio::net::TcpStream) {
    let (mut from_client, mut to_client) = tokio::io::split(stream);
    let (mut from_pod, mut to_pod) = tcp.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut from_client, &mut to_pod).await;
        let _ = to_pod.shutdown().await;
        // Keep waiting: the pod's answer decides the end.
        std::future::pending::<()>().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut from_pod, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
