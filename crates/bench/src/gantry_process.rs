//! The real `gantry server` as a child process, in a temporary data
//! directory, for the API benchmark.
//!
//! Dropping a [`GantryServer`] kills the process (SIGKILL), reaps it and
//! removes the data directory, so a failing or panicking benchmark leaves
//! nothing behind; `gantry-bench` also turns Ctrl-C into an orderly return,
//! which drops it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::api_client::{Credentials, Reply};

/// How long a server may take to answer `/readyz` after it is spawned.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// How often readiness is polled. Small, because the wait is the figure.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// How long one readiness probe may take.
const PROBE_WITHIN: Duration = Duration::from_secs(2);

/// How many times to pick a new port when another process took ours.
const PORT_ATTEMPTS: usize = 3;

/// Lines of the server's stderr kept to quote in errors.
const LOG_TAIL_LINES: usize = 40;

/// A running `gantry server` and its data directory.
pub struct GantryServer {
    /// The process; `None` once killed.
    child: Option<Child>,
    /// The address it serves on.
    addr: SocketAddr,
    /// The last lines of its stderr, filled by a thread.
    log: Arc<Mutex<VecDeque<String>>>,
    /// `--data-dir`, removed on drop after the process is gone.
    data_dir: tempfile::TempDir,
}

impl GantryServer {
    /// Starts `gantry server` on a free loopback port with a new data
    /// directory under `parent`, on the embedded store or on `store` (an
    /// `etcd://` spec), and waits until `/readyz` answers. Returns the
    /// server, credentials for it, and the time from spawn to that answer.
    pub async fn start(
        binary: &Path,
        parent: &Path,
        store: Option<&str>,
    ) -> anyhow::Result<(Self, Credentials, Duration)> {
        // The free port is found by binding port 0 and letting go, so
        // another process may take it first; then try another one.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(binary, parent, store).await {
                Err(e) if attempt < PORT_ATTEMPTS && format!("{e:#}").contains("in use") => {}
                result => return result,
            }
        }
    }

    async fn start_once(
        binary: &Path,
        parent: &Path,
        store: Option<&str>,
    ) -> anyhow::Result<(Self, Credentials, Duration)> {
        let data_dir = tempfile::Builder::new()
            .prefix("gantry-bench-api-")
            .tempdir_in(parent)
            .with_context(|| format!("creating a data directory in {}", parent.display()))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let mut command = Command::new(binary);
        command
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--listen")
            .arg(addr.to_string());
        if let Some(spec) = store {
            command.arg("--store").arg(spec);
        }
        // The server logs at its default level, as a user runs it.
        command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("running {}", binary.display()))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            std::thread::Builder::new()
                .name("gantry-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        let mut log = log.lock().expect("log lock");
                        if log.len() == LOG_TAIL_LINES {
                            log.pop_front();
                        }
                        log.push_back(line);
                    }
                })
                .context("starting the thread that reads gantry's stderr")?;
        }
        let mut server = Self {
            child: Some(child),
            addr,
            log,
            data_dir,
        };
        let creds = server.wait_ready(spawned).await?;
        Ok((server, creds, spawned.elapsed()))
    }

    /// Polls until the credentials are on disk and `GET /readyz` answers
    /// 200, failing if the process exits first.
    async fn wait_ready(&mut self, spawned: Instant) -> anyhow::Result<Credentials> {
        let mut creds = None;
        let mut last_error = String::from("no attempt yet");
        while spawned.elapsed() < READY_WITHIN {
            self.check_running()?;
            if creds.is_none() {
                match Credentials::load(self.data_dir.path(), self.addr) {
                    Ok(c) => creds = Some(c),
                    Err(e) => last_error = format!("{e:#}"),
                }
            }
            if let Some(c) = &creds {
                match tokio::time::timeout(PROBE_WITHIN, probe(c)).await {
                    Ok(Ok(())) => return Ok(c.clone()),
                    Ok(Err(e)) => last_error = format!("{e:#}"),
                    Err(_) => last_error = "readiness probe timed out".into(),
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        bail!(
            "gantry server on {} was not ready within {READY_WITHIN:?} (last: {last_error}); its stderr:\n{}",
            self.addr,
            self.log_tail()
        )
    }

    /// The server's `--data-dir` (its `admin.kubeconfig` and `pki/`).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Fails, quoting the server's stderr, if the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait().context("waiting for gantry")?
        {
            bail!(
                "gantry server on {} exited with {status}; its stderr:\n{}",
                self.addr,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The process's resident set size in bytes (VmRSS).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let pid = self.child.as_ref().context("gantry is not running")?.id();
        rss_bytes(pid)
    }

    /// The last lines the server wrote to stderr.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().expect("log lock");
        if log.is_empty() {
            "(nothing)".into()
        } else {
            log.iter().cloned().collect::<Vec<_>>().join("\n")
        }
    }
}

impl Drop for GantryServer {
    fn drop(&mut self) {
        // Reap the server before its data directory goes (the `TempDir`
        // field removes it after this).
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One readiness probe on a fresh connection.
async fn probe(creds: &Credentials) -> anyhow::Result<()> {
    let conn = creds.connect().await?;
    let Reply { status, body } = conn.get("/readyz").await?;
    if !status.is_success() {
        bail!(
            "/readyz answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// VmRSS of a process, in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(kib * 1024)
}

/// The pid of the etcd whose data directory is `data_dir`, found in /proc
/// (`testkit::EtcdServer` does not expose it).
pub fn etcd_pid(data_dir: &Path) -> Option<u32> {
    let needle = data_dir.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let is_etcd = cmdline.split(|b| *b == 0).next()?.ends_with(b"etcd");
        let ours = cmdline.split(|b| *b == 0).any(|arg| arg == needle);
        (is_etcd && ours).then_some(pid)
    })
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("binding a loopback port to find a free one")?;
    Ok(listener.local_addr()?.port())
}
