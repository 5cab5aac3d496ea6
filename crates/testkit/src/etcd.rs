//! A real single-member etcd on loopback, for tests and benchmarks.
//!
//! Each [`EtcdServer`] owns a fresh directory under `/var/tmp` (a real disk
//! rather than tmpfs, because the store benchmark compares fsync costs) and
//! an etcd process listening on two free loopback ports. The process is
//! killed and the directory removed when the server is dropped, so a failing
//! test cleans up after itself.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::process::Launcher;

/// Where Debian's `etcd-server` package installs the binary.
const ETCD_BINARY: &str = "/usr/bin/etcd";

/// How long etcd may take to report itself healthy after it is started.
const HEALTHY_WITHIN: Duration = Duration::from_secs(10);

/// How long etcd may take to exit after SIGTERM before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// How often the health endpoint and the process are polled while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How many times to pick new ports when another process took one of ours.
const PORT_ATTEMPTS: usize = 3;

/// The member name; one member per server, so it never needs to vary.
const MEMBER_NAME: &str = "gantry-test";

/// Lines of etcd's log quoted in errors about a failed start.
const LOG_TAIL_LINES: usize = 40;

/// A single-member etcd running on loopback in a temporary directory.
///
/// Dropping it kills etcd (SIGKILL), reaps it and removes the directory.
/// etcd is also started with a parent-death signal, so it dies with the test
/// process even when that process is killed before it can drop anything.
pub struct EtcdServer {
    /// The running etcd, or `None` after [`EtcdServer::kill`] or
    /// [`EtcdServer::stop`].
    child: Option<Child>,
    /// The port etcd serves clients (gRPC and `/health`) on.
    client_port: u16,
    /// The port etcd's raft peer listener uses; nobody connects to it, but
    /// etcd insists on listening.
    peer_port: u16,
    /// The temporary directory holding `data/` and `etcd.log`.
    dir: tempfile::TempDir,
    /// The thread that forks etcd; see [`Launcher`].
    launcher: Launcher,
}

impl std::fmt::Debug for EtcdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdServer")
            .field("endpoint", &self.endpoint())
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl EtcdServer {
    /// Starts etcd on free loopback ports in a new directory under
    /// `/var/tmp` and waits until it reports itself healthy.
    pub fn start() -> anyhow::Result<Self> {
        if !Path::new(ETCD_BINARY).exists() {
            bail!(
                "etcd is not installed ({ETCD_BINARY} not found); \
                 ./dev installs Debian's etcd-server package"
            );
        }
        // Free ports are found by binding port 0 and letting go, so another
        // process can take one before etcd binds it; then try fresh ports.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut server = Self::prepare()?;
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(e)
                    if attempt < PORT_ATTEMPTS
                        && format!("{e:#}").contains("address already in use") =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates the directory and picks the ports, without starting etcd.
    fn prepare() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("gantry-etcd-")
            .tempdir_in("/var/tmp")
            .context("cannot create a temporary directory for etcd under /var/tmp")?;
        let client_port = free_port()?;
        let mut peer_port = free_port()?;
        // Both listeners were closed before the second bind, so the kernel
        // may hand out the same port twice.
        while peer_port == client_port {
            peer_port = free_port()?;
        }
        Ok(Self {
            child: None,
            client_port,
            peer_port,
            dir,
            launcher: Launcher::new("etcd-launcher")?,
        })
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The store spec that selects this server, `etcd://127.0.0.1:PORT`.
    pub fn spec(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.client_port)
    }

    /// etcd's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file etcd's stdout and stderr go to; restarts append to it.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Whether etcd is running (started and not yet killed or stopped).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills etcd with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // `kill` fails only when the process has already been reaped,
            // which cannot happen while we hold the `Child`; an etcd that
            // exited on its own is still reaped by `wait`.
            let _ = child.kill();
            child
                .wait()
                .with_context(|| format!("cannot reap etcd (pid {})", child.id()))?;
        }
        Ok(())
    }

    /// Stops etcd with SIGTERM, as an operator would, and waits for it to
    /// exit. An etcd that does not exit in time is killed, and that is an
    /// error.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        let raw_pid = i32::try_from(pid).context("etcd's pid does not fit a pid_t")?;
        // ESRCH means it already exited; `try_wait` below reaps it.
        let _ = kill(Pid::from_raw(raw_pid), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            if child
                .try_wait()
                .with_context(|| format!("cannot wait for etcd (pid {pid})"))?
                .is_some()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("etcd (pid {pid}) did not exit within {STOP_WITHIN:?} of SIGTERM; killed it");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts etcd again on the same ports and data directory (stopping it
    /// first if it is still running) and waits until it is healthy.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.launch()
    }

    /// Spawns etcd and waits for it to become healthy; on failure etcd is
    /// killed and the error quotes the end of its log.
    fn launch(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("cannot open {}", self.log_path().display()))?;
        let log_err = log
            .try_clone()
            .with_context(|| format!("cannot duplicate {}", self.log_path().display()))?;

        let client_url = format!("http://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(ETCD_BINARY);
        command
            .arg("--name")
            .arg(MEMBER_NAME)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("{MEMBER_NAME}={peer_url}"))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // etcd reads its flags from ETCD_* variables too; one left in the
        // environment (say by a shell that sourced /etc/default/etcd) would
        // change the server under test.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(name);
            }
        }

        let child = self
            .launcher
            .spawn(command)
            .with_context(|| format!("cannot run {ETCD_BINARY}"))?;
        self.child = Some(child);
        if let Err(e) = self.wait_healthy() {
            let _ = self.kill();
            return Err(e.context(format!(
                "etcd at {} did not start; end of {}:\n{}",
                self.endpoint(),
                self.log_path().display(),
                log_tail(&self.log_path())
            )));
        }
        Ok(())
    }

    /// Polls `/health` until etcd says it is healthy, it exits, or the time
    /// runs out.
    fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("cannot wait for etcd")?
            {
                bail!("etcd exited with {status} before becoming healthy");
            }
            if is_healthy(self.client_port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("etcd was not healthy within {HEALTHY_WITHIN:?}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // Reap etcd before the directory goes, so it never writes into a
        // directory being removed; the `TempDir` field then removes it.
        let _ = self.kill();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot bind a loopback port to find a free one")?;
    Ok(listener
        .local_addr()
        .context("cannot read the address of a loopback listener")?
        .port())
}

/// Asks etcd's `/health` endpoint over plain HTTP/1.1 whether it is healthy
/// (it has a leader and serves requests).
fn is_healthy(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(1));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).is_err() {
        return false;
    }
    response.starts_with("HTTP/1.1 200") && response.contains(r#""health":"true""#)
}

/// The last lines of a log file, or a note saying why there are none.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    match File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            lines[start..].join("\n")
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_stops_restarts_and_cleans_up() {
        let mut server = EtcdServer::start().unwrap();
        let dir = server.dir.path().to_path_buf();
        assert!(server.data_dir().starts_with("/var/tmp"));
        assert!(server.endpoint().starts_with("http://127.0.0.1:"));
        assert!(server.spec().starts_with("etcd://127.0.0.1:"));
        assert!(is_healthy(server.client_port));

        server.stop().unwrap();
        assert!(!server.is_running());
        assert!(!is_healthy(server.client_port));

        server.restart().unwrap();
        assert!(is_healthy(server.client_port));

        server.kill().unwrap();
        assert!(!is_healthy(server.client_port));
        server.restart().unwrap();
        assert!(server.is_running());

        drop(server);
        assert!(!dir.exists(), "{} should be removed", dir.display());
    }

    #[test]
    fn etcd_survives_the_thread_that_started_it() {
        // The server is started on a thread that then exits; the launcher
        // thread, not that one, is etcd's parent for the death signal.
        let mut server = std::thread::spawn(|| EtcdServer::start().unwrap())
            .join()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(server.is_running());
        assert!(is_healthy(server.client_port));
    }
}
