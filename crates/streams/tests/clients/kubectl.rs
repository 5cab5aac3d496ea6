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
