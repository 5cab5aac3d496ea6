//! `kubectl exec`, `attach` and `port-forward` (v1.32) against the crate,
//! over WebSocket (kubectl's default) and over SPDY (the fallback, forced
//! with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false and
//! KUBECTL_PORT_FORWARD_WEBSOCKETS=false).

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::server::TestServer;

/// Both transports of `kubectl exec`: the env value of
/// KUBECTL_REMOTE_COMMAND_WEBSOCKETS and the protocol expected.
const EXEC_TRANSPORTS: [(&str, &str); 2] = [
    ("true", "v5.channel.k8s.io"),
    ("false", "v4.channel.k8s.io"),
];

async fn exec(
    server: &TestServer,
    websockets: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Output {
    let mut cmd = server.kubectl(args);
    cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
        });
    }
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl did not finish in 60 s")
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_a_command_and_reports_success() {
    let server = TestServer::start().await;
    for (websockets, protocol) in EXEC_TRANSPORTS {
        let out = exec(
            &server,
            websockets,
            &["exec", "web", "--", "sh", "-c", "echo out; echo err >&2"],
            None,
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "out\n");
        assert_eq!(text(&out.stderr), "err\n");
        assert_eq!(
            server.protocols().last().map(String::as_str),
            Some(protocol)
        );
    }
    server.wait_idle(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_propagates_the_exit_code() {
    let server = TestServer::start().await;
    for (websockets, _) in EXEC_TRANSPORTS {
        let out = exec(
            &server,
            websockets,
            &["exec", "web", "--", "sh", "-c", "echo bye; exit 3"],
            None,
        )
        .await;
        assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "bye\n");
        assert!(
            text(&out.stderr).contains("command terminated with exit code 3"),
            "{}",
            text(&out.stderr)
        );
    }
    server.wait_idle(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_stdin_from_a_pipe() {
    let server = TestServer::start().await;
    for (websockets, _) in EXEC_TRANSPORTS {
        let out = exec(
            &server,
            websockets,
            &["exec", "-i", "web", "--", "sh", "-c", "cat; echo done"],
            Some(b"hello\nworld\n"),
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hello\nworld\ndone\n");
    }
    server.wait_idle(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_moves_megabytes_both_ways() {
    let server = TestServer::start().await;
    let input: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    for (websockets, _) in EXEC_TRANSPORTS {
        // In: 3 MiB through stdin, checksummed on the other side.
        let out = exec(
            &server,
            websockets,
            &["exec", "-i", "web", "--", "sh", "-c", "cksum"],
            Some(&input),
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
        let local = std::process::Command::new("sh")
            .args(["-c", "cksum"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(&input)?;
                c.wait_with_output()
            })
            .unwrap();
        assert_eq!(text(&out.stdout), text(&local.stdout));

        // Out: 10 MB written as fast as the command can, ending at once:
        // nothing may be lost when the session finishes right after.
        let out = exec(
            &server,
            websockets,
            &[
                "exec",
                "web",
                "--",
                "sh",
                "-c",
                "head -c 10000000 /dev/zero | tr '\\0' x; echo; exit 4",
            ],
            None,
        )
        .await;
        assert_eq!(out.status.code(), Some(4), "stderr: {}", text(&out.stderr));
        assert_eq!(out.stdout.len(), 10_000_001);
        assert!(out.stdout[..10_000_000].iter().all(|&b| b == b'x'));
    }
    server.wait_idle(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_of_a_missing_program_is_a_failure() {
    let server = TestServer::start().await;
    for (websockets, _) in EXEC_TRANSPORTS {
        let out = exec(
            &server,
            websockets,
            &["exec", "web", "--", "/no/such/program"],
            None,
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("cannot run [\"/no/such/program\"]"),
            "{}",
            text(&out.stderr)
        );
    }
    server.wait_idle(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_with_stdin() {
    let server = TestServer::start().await;
    for (websockets, _) in EXEC_TRANSPORTS {
        let out = exec(
            &server,
            websockets,
            &["attach", "-i", "web"],
            Some(b"hi there\n"),
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("attached: hi there"),
            "{}",
            text(&out.stdout)
        );
    }
    let requests = server.seen.requests.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.contains("/pods/web/attach?")),
        "{requests:?}"
    );
    server.wait_idle(Duration::from_secs(10)).await;
}

/// kubectl on a terminal of its own.
struct Terminal {
    master: std::fs::File,
    slave_path: std::path::PathBuf,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    child: std::process::Child,
}

impl Terminal {
    fn spawn(server: &TestServer, websockets: &str, args: &[&str], rows: u16, cols: u16) -> Self {
        use std::os::fd::AsRawFd;
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let slave_path =
            std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
        let tokio_cmd = server.kubectl(args);
        let std_cmd = tokio_cmd.as_std();
        let mut cmd = std::process::Command::new("setsid");
        cmd.arg("-c")
            .arg(std_cmd.get_program())
            .args(std_cmd.get_args());
        for (k, v) in std_cmd.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let stdio = || Stdio::from(pty.slave.try_clone().unwrap());
        let child = cmd
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
            .env("TERM", "dumb")
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .unwrap();
        drop(pty.slave);
        let master = std::fs::File::from(pty.master);
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let mut reader = master.try_clone().unwrap();
            let output = output.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        Self {
            master,
            slave_path,
            output,
            child,
        }
    }

    fn type_in(&mut self, s: &str) {
        use std::io::Write;
        self.master.write_all(s.as_bytes()).unwrap();
    }

    fn output(&self) -> String {
        text(&self.output.lock().unwrap())
    }

    async fn wait_for_output(&self, needle: &str) {
        let start = std::time::Instant::now();
        while !self.output().contains(needle) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no {needle:?} in the terminal: {:?}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resizes kubectl's terminal: the kernel sends it SIGWINCH.
    fn resize(&self, rows: u16, cols: u16) {
        let status = std::process::Command::new("stty")
            .arg("-F")
            .arg(&self.slave_path)
            .args(["rows", &rows.to_string(), "cols", &cols.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn wait(mut self) -> i32 {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("kubectl did not exit; terminal: {:?}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_resize(server: &TestServer, width: u16, height: u16) {
    let start = std::time::Instant::now();
    loop {
        let sizes = server.seen.resizes.lock().unwrap().clone();
        if sizes.iter().any(|s| s.width == width && s.height == height) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no resize to {width}x{height}; got {sizes:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_terminal_follows_its_size() {
    let server = TestServer::start().await;
    for (websockets, protocol) in EXEC_TRANSPORTS {
        server.seen.resizes.lock().unwrap().clear();
        let mut term = Terminal::spawn(
            &server,
            websockets,
            &["exec", "-it", "web", "--", "sh"],
            33,
            77,
        );
        // kubectl reports its terminal's size as the session starts.
        wait_for_resize(&server, 77, 33).await;
        term.type_in("stty size; echo typed-$((6*7))\r");
        term.wait_for_output("typed-42").await;
        assert!(term.output().contains("33 77"), "{:?}", term.output());

        term.resize(40, 100);
        wait_for_resize(&server, 100, 40).await;
        term.type_in("stty size\r");
        term.wait_for_output("40 100").await;

        term.type_in("exit 7\r");
        assert_eq!(term.wait().await, 7);
        assert_eq!(
            server.protocols().last().map(String::as_str),
            Some(protocol)
        );
    }
    server.wait_idle(Duration::from_secs(10)).await;
}

/// A stand-in for a pod's server: greets with its port, then echoes.
pub struct EchoServer {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = conn.write_all(format!("port {port}\n").as_bytes()).await;
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Self { port, task }
    }
}

/// One conversation through a forwarded local port: the greeting, an echo
/// of `payload`, and the end after we end ours.
pub async fn converse(local: u16, remote: u16, payload: &[u8]) {
    use tokio::io::AsyncReadExt;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .unwrap();
    let (mut r, mut w) = conn.split();
    let send = async {
        w.write_all(payload).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut got = Vec::new();
    let receive = r.read_to_end(&mut got);
    let (_, received) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(send, receive)
    })
    .await
    .expect("the forwarded conversation did not end");
    received.unwrap();
    let greeting = format!("port {remote}\n");
    assert!(
        got.starts_with(greeting.as_bytes()),
        "got {:?}",
        text(&got[..got.len().min(64)])
    );
    assert!(
        got[greeting.len()..] == *payload,
        "echo differs ({} bytes back)",
        got.len() - greeting.len()
    );
}

/// `kubectl port-forward` with local ports it picks; returns the child and
/// the local port for each remote one.
async fn port_forward(
    server: &TestServer,
    websockets: &str,
    remote: &[u16],
) -> (tokio::process::Child, Vec<u16>) {
    use tokio::io::AsyncBufReadExt;
    let mut args = vec!["port-forward".to_owned(), "pod/web".to_owned()];
    args.extend(remote.iter().map(|p| format!(":{p}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = server
        .kubectl(&args)
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut locals = vec![0u16; remote.len()];
    while locals.contains(&0) {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("kubectl port-forward did not start")
            .unwrap()
            .expect("kubectl port-forward ended");
        // "Forwarding from 127.0.0.1:41234 -> 8080"
        if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
            let (local, to) = rest.split_once(" -> ").unwrap();
            let i = remote.iter().position(|r| r.to_string() == to).unwrap();
            locals[i] = local.parse().unwrap();
        }
    }
    // Keep draining "Handling connection for ..." lines.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, locals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_two_ports_many_connections() {
    let server = TestServer::start().await;
    let (a, b) = (EchoServer::start().await, EchoServer::start().await);
    for (websockets, protocol) in [
        ("true", "SPDY/3.1+portforward.k8s.io"),
        ("false", "portforward.k8s.io"),
    ] {
        let before = server
            .seen
            .forwards
            .load(std::sync::atomic::Ordering::SeqCst);
        let (mut kubectl, locals) = port_forward(&server, websockets, &[a.port, b.port]).await;
        // One after another on each port...
        for i in 0..3 {
            converse(locals[0], a.port, format!("hello a{i}\n").as_bytes()).await;
            converse(locals[1], b.port, format!("hello b{i}\n").as_bytes()).await;
        }
        // ...several at once, one of them large.
        let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
        tokio::join!(
            converse(locals[0], a.port, b"one\n"),
            converse(locals[0], a.port, &big),
            converse(locals[1], b.port, b"three\n"),
            converse(locals[1], b.port, b"four\n"),
        );
        let after = server
            .seen
            .forwards
            .load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(after - before, 10, "one forward per connection");
        assert_eq!(
            server.protocols().last().map(String::as_str),
            Some(protocol)
        );
        kubectl.kill().await.unwrap();
        // The client is gone: the session and every forward end.
        server.wait_idle(Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reports_a_refused_port() {
    use tokio::io::AsyncReadExt;
    let server = TestServer::start().await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for websockets in ["true", "false"] {
        let (mut kubectl, locals) = port_forward(&server, websockets, &[closed]).await;
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", locals[0]))
            .await
            .unwrap();
        let mut got = vec![];
        let n = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut got))
            .await
            .expect("the local connection was not closed");
        assert!(n.is_err() || got.is_empty(), "{got:?}");
        // kubectl shows the server's message.
        let mut stderr = kubectl.stderr.take().unwrap();
        let mut errors = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 4096];
            while !errors.contains("error forwarding port") {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => errors.push_str(&text(&buf[..n])),
                }
            }
        })
        .await;
        assert!(
            errors.contains(&format!("error forwarding port {closed} to pod test")),
            "{errors}"
        );
        let _ = kubectl.kill().await;
        server.wait_idle(Duration::from_secs(10)).await;
    }
}
