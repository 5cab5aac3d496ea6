//! A small HTTPS server that looks enough like the API server for kubectl
//! and the Python client: it serves one running pod and hands the exec,
//! attach and port-forward upgrades to the `streams` crate, wired to real
//! local processes and real local TCP ports.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use streams::portforward::{self, Forward, Forwarder};
use streams::remotecommand::{self, Options, Outcome, Session, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

/// The bearer token kubeconfigs carry.
pub const TOKEN: &str = "streams-test-token";

/// What the server saw, for assertions.
#[derive(Default)]
pub struct Seen {
    /// Request lines (`GET /api/v1/...`), in order.
    pub requests: Mutex<Vec<String>>,
    /// Negotiated protocols, in order.
    pub protocols: Mutex<Vec<String>>,
    /// Terminal sizes received, in order.
    pub resizes: Mutex<Vec<TerminalSize>>,
    /// Sessions (exec, attach, port-forward) not yet over: their tasks
    /// still run.
    pub active: AtomicUsize,
    /// Forwards started.
    pub forwards: AtomicUsize,
}

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The CA that signed the serving certificate.
    pub ca: CertificateDer<'static>,
    pub dir: tempfile::TempDir,
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts a server on a free loopback port with a fresh CA.
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("streams-test-")
            .tempdir()
            .unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: OpenSSL takes a leaf named like its issuer for a
        // self-signed certificate.
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "streams-test-ca");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "streams-test-server");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), CertificateDer::from(ca.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = service_fn(move |req| handle(req, seen.clone()));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .with_upgrades()
                            .await;
                    });
                }
            })
        };
        let server = Self {
            addr,
            ca: CertificateDer::from(ca.der().to_vec()),
            dir,
            seen,
            task,
        };
        server.write_kubeconfig();
        server
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn write_kubeconfig(&self) {
        let ca = std::fs::read(self.dir.path().join("ca.crt")).unwrap();
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(ca);
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: https://{addr}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {TOKEN}\ncontexts:\n\
             - name: test\n  context:\n    cluster: test\n    user: admin\n    namespace: default\n\
             current-context: test\n",
            addr = self.addr
        );
        std::fs::write(self.kubeconfig(), config).unwrap();
    }

    /// kubectl with this server's kubeconfig and a cache of its own.
    pub fn kubectl(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        c
    }

    /// Waits until every session has ended, failing after `limit`.
    pub async fn wait_idle(&self, limit: Duration) {
        let start = std::time::Instant::now();
        while self.seen.active.load(Ordering::SeqCst) != 0 {
            assert!(
                start.elapsed() < limit,
                "{} sessions still running after {limit:?}",
                self.seen.active.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn protocols(&self) -> Vec<String> {
        self.seen.protocols.lock().unwrap().clone()
    }
}

type Body = Full<Bytes>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

fn json(body: serde_json::Value) -> Response<Body> {
    respond(StatusCode::OK, "application/json", body.to_string())
}

fn pod(namespace: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": "6c1f9a6e-0000-4000-8000-000000000001",
                     "resourceVersion": "1", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "main", "image": "busybox", "stdin": true}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "main", "ready": true, "restartCount": 0, "image": "busybox",
                                   "imageID": "", "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}],
        },
    })
}

async fn handle(mut req: Request<Incoming>, seen: Arc<Seen>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    seen.requests
        .lock()
        .unwrap()
        .push(format!("{} {}", req.method(), req.uri()));
    let authorized = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v == format!("Bearer {TOKEN}").as_str());
    if !authorized {
        return Ok(respond(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "unauthorized",
        ));
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    let response = match segments.as_slice() {
        ["api"] => json(serde_json::json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        })),
        ["apis"] => {
            json(serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
        }
        ["api", "v1"] => json(serde_json::json!({
            "kind": "APIResourceList", "groupVersion": "v1",
            "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                 "verbs": ["get", "list"], "shortNames": ["po"]},
                {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]},
                {"name": "pods/attach", "singularName": "", "namespaced": true, "kind": "PodAttachOptions", "verbs": ["create", "get"]},
                {"name": "pods/portforward", "singularName": "", "namespaced": true, "kind": "PodPortForwardOptions", "verbs": ["create", "get"]},
            ],
        })),
        ["api", "v1", "namespaces", ns, "pods", name] => json(pod(ns, name)),
        [
            "api",
            "v1",
            "namespaces",
            _,
            "pods",
            _,
            kind @ ("exec" | "attach"),
        ] => {
            let attach = *kind == "attach";
            match remotecommand::negotiate(&parts) {
                Err(r) => r.map(|b| Full::new(Bytes::from(b))),
                Ok((n, ok)) => {
                    seen.protocols.lock().unwrap().push(n.protocol().to_owned());
                    let opts = match Options::from_query(&query) {
                        Ok(o) => o,
                        Err(e) => {
                            return Ok(respond(
                                StatusCode::BAD_REQUEST,
                                "text/plain",
                                e.to_string(),
                            ));
                        }
                    };
                    let argv = if attach {
                        // Attach joins "the container's process"; here a
                        // fresh shell that greets whoever attached.
                        vec![
                            "sh".into(),
                            "-c".into(),
                            "read line; echo attached: $line".into(),
                        ]
                    } else {
                        remotecommand::command_from_query(&query)
                    };
                    seen.active.fetch_add(1, Ordering::SeqCst);
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        if let Ok(up) = on_upgrade.await {
                            match remotecommand::accept(n, opts, TokioIo::new(up)).await {
                                Ok(session) if opts.tty => run_tty(session, argv, &seen).await,
                                Ok(session) => run_pipes(session, argv).await,
                                Err(e) => eprintln!("exec session not set up: {e}"),
                            }
                        }
                        seen.active.fetch_sub(1, Ordering::SeqCst);
                    });
                    ok.map(|()| Full::new(Bytes::new()))
                }
            }
        }
        ["api", "v1", "namespaces", _, "pods", _, "portforward"] => {
            match portforward::negotiate(&parts) {
                Err(r) => r.map(|b| Full::new(Bytes::from(b))),
                Ok((n, ok)) => {
                    seen.protocols.lock().unwrap().push(n.protocol().to_owned());
                    let ports = if n.needs_query_ports() {
                        match portforward::ports_from_query(&query) {
                            Ok(p) => p,
                            Err(e) => {
                                return Ok(respond(
                                    StatusCode::BAD_REQUEST,
                                    "text/plain",
                                    e.to_string(),
                                ));
                            }
                        }
                    } else {
                        vec![]
                    };
                    seen.active.fetch_add(1, Ordering::SeqCst);
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        if let Ok(up) = on_upgrade.await {
                            match portforward::accept(n, ports, TokioIo::new(up)).await {
                                Ok(f) => run_forwarder(f, &seen).await,
                                Err(e) => eprintln!("port-forward not set up: {e}"),
                            }
                        }
                        seen.active.fetch_sub(1, Ordering::SeqCst);
                    });
                    ok.map(|()| Full::new(Bytes::new()))
                }
            }
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no route for {path}"),
        ),
    };
    Ok(response)
}

/// Runs `argv` with pipes for stdin, stdout and stderr.
async fn run_pipes(mut session: Session, argv: Vec<String>) {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(if session.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = session
                .finish(Outcome::Failure(format!("cannot run {argv:?}: {e}")))
                .await;
            return;
        }
    };
    let stdin = match (session.stdin.take(), child.stdin.take()) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        })),
        _ => None,
    };
    let mut child_out = child.stdout.take().unwrap();
    let mut child_err = child.stderr.take().unwrap();
    let mut out = session.stdout.take();
    let mut err = session.stderr.take();
    let copy_out = async {
        match &mut out {
            Some(w) => drop(tokio::io::copy(&mut child_out, w).await),
            None => drop(tokio::io::copy(&mut child_out, &mut tokio::io::sink()).await),
        }
    };
    let copy_err = async {
        match &mut err {
            Some(w) => drop(tokio::io::copy(&mut child_err, w).await),
            None => drop(tokio::io::copy(&mut child_err, &mut tokio::io::sink()).await),
        }
    };
    let gone = session.closed();
    let status = tokio::select! {
        (_, _, status) = async { tokio::join!(copy_out, copy_err, child.wait()) } => status,
        _ = gone => {
            // The client left: the command does not outlive it.
            let _ = child.kill().await;
            if let Some(t) = stdin {
                t.abort();
            }
            return;
        }
    };
    if let Some(t) = stdin {
        t.abort();
    }
    drop((out, err));
    let outcome = match status.ok().and_then(|s| s.code()) {
        Some(0) => Outcome::Success,
        Some(code) => Outcome::NonZeroExitCode(code),
        None => Outcome::Failure("the command was killed".into()),
    };
    let _ = session.finish(outcome).await;
}

/// Runs `argv` on a fresh terminal, applying the client's sizes to it.
async fn run_tty(mut session: Session, argv: Vec<String>, seen: &Seen) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave_path =
        std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
    let stdio = || Stdio::from(pty.slave.try_clone().unwrap());
    // `setsid -c` makes the terminal the command's controlling terminal.
    let mut child = Command::new("setsid")
        .arg("-c")
        .args(&argv)
        .stdin(stdio())
        .stdout(stdio())
        .stderr(stdio())
        .env("PS1", "$ ")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    drop(pty.slave);
    let master = std::fs::File::from(pty.master);
    let mut master_in = tokio::fs::File::from_std(master.try_clone().unwrap());
    let mut master_out = tokio::fs::File::from_std(master);

    let mut resize = session.resize.take().unwrap();
    let sizes = async {
        while let Some(size) = resize.next().await {
            set_size(&slave_path, size).await;
            seen.resizes.lock().unwrap().push(size);
        }
        std::future::pending::<()>().await
    };
    let mut stdin = session.stdin.take();
    let typing = async {
        if let Some(r) = &mut stdin {
            let _ = tokio::io::copy(r, &mut master_in).await;
        }
        std::future::pending::<()>().await
    };
    let mut out = session.stdout.take().unwrap();
    let output = async {
        let mut buf = vec![0u8; 16 * 1024];
        // The master reads EIO once the command and its children are gone.
        while let Ok(n) = master_out.read(&mut buf).await {
            if n == 0 || out.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let gone = session.closed();
    let status = tokio::select! {
        (_, status) = async { tokio::join!(output, child.wait()) } => status,
        _ = sizes => unreachable!(),
        _ = typing => unreachable!(),
        _ = gone => {
            let _ = child.kill().await;
            return;
        }
    };
    drop((out, stdin, resize));
    let outcome = match status.ok().and_then(|s| s.code()) {
        Some(0) => Outcome::Success,
        Some(code) => Outcome::NonZeroExitCode(code),
        None => Outcome::Failure("killed".into()),
    };
    let _ = session.finish(outcome).await;
}

async fn set_size(tty: &Path, size: TerminalSize) {
    let _ = Command::new("stty")
        .arg("-F")
        .arg(tty)
        .args([
            "rows",
            &size.height.to_string(),
            "cols",
            &size.width.to_string(),
        ])
        .status()
        .await;
}

async fn run_forwarder(mut forwarder: Forwarder, seen: &Arc<Seen>) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            f = forwarder.next() => match f {
                Some(f) => {
                    seen.forwards.fetch_add(1, Ordering::SeqCst);
                    tasks.spawn(forward(f));
                }
                None => break,
            },
            Some(_) = tasks.join_next() => {}
        }
    }
    drop(forwarder);
    while tasks.join_next().await.is_some() {}
}

/// Connects a forward to the local port it names: the "pod" is this host.
async fn forward(f: Forward) {
    let gone = f.closed();
    let Forward {
        port,
        mut stream,
        error,
    } = f;
    match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(mut tcp) => {
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut stream, &mut tcp) => {}
                _ = gone => {}
            }
            drop(error);
        }
        Err(e) => {
            let _ = error
                .report(&format!("error forwarding port {port} to pod test: {e}"))
                .await;
        }
    }
}
