//! Processes run in a running container with `runc exec`, for exec sessions and probes.
//!
//! runc stays in the foreground as the process's parent and exits with its status, so the
//! agent (which is no subreaper) can wait for it. Without a terminal runc copies between
//! its own stdio (our pipes) and the process. With one, runc wants a terminal of its own
//! to copy from: it gets the slave of a pty we open, puts it in raw mode and copies
//! between it and the container's terminal; a resize is set on our pty and announced to
//! runc with SIGWINCH, which makes runc copy the size over.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::Runtime;
use crate::error::{Result, RuntimeError};
use crate::fdio::{FdStream, set_window_size};
use crate::files;
use crate::shim::runc_error;

/// A process to run in a container. It runs as the container's user, with its
/// capabilities, working directory and environment (plus `env`).
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Variables added to the container's environment.
    pub env: Vec<(String, String)>,
    /// Run it on a terminal (one output stream; resize applies).
    pub tty: bool,
    /// Give it a stdin to write to.
    pub stdin: bool,
}

/// Writes to an exec'd process's stdin.
pub type ExecWriter = Pin<Box<dyn AsyncWrite + Send>>;
/// Reads an exec'd process's output.
pub type ExecReader = Pin<Box<dyn AsyncRead + Send>>;

/// A running exec'd process. Read its output to the end and `wait` for its exit code.
pub struct ExecProcess {
    /// Its stdin, if asked for; dropping it closes stdin (without a terminal).
    pub stdin: Option<ExecWriter>,
    /// Its stdout, or the terminal's output with a tty.
    pub stdout: Option<ExecReader>,
    /// Its stderr; `None` with a tty.
    pub stderr: Option<ExecReader>,
    id: String,
    child: tokio::process::Child,
    /// Our side of the pty given to runc, for resizes.
    pty: Option<OwnedFd>,
    pid_file: PathBuf,
    log_file: PathBuf,
    exit: Option<i32>,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

static EXEC_SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl ExecProcess {
    /// Sets the terminal's size (columns, rows); nothing without a tty.
    pub fn resize(&self, width: u16, height: u16) -> Result<()> {
        let Some(pty) = &self.pty else { return Ok(()) };
        set_window_size(std::os::fd::AsFd::as_fd(pty), width, height).map_err(|source| {
            RuntimeError::Io {
                context: format!("resize the exec terminal of container {}", self.id),
                source,
            }
        })?;
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGWINCH);
        }
        Ok(())
    }

    /// Kills the process (SIGKILL), or runc if the process has not started yet.
    pub fn kill(&mut self) {
        let pid = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        match pid {
            Some(pid) if self.exit.is_none() => {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            _ => {
                let _ = self.child.start_kill();
            }
        }
    }

    /// Waits for the process to end: its exit code (128 + signal if killed), or runc's
    /// error if it could not be run (say, the command does not exist).
    pub async fn wait(&mut self) -> Result<i32> {
        if let Some(code) = self.exit {
            return Ok(code);
        }
        let status = self.child.wait().await.map_err(|source| RuntimeError::Io {
            context: format!("wait for runc exec in container {}", self.id),
            source,
        })?;
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let error = runc_error(&self.log_file, 0);
        self.cleanup();
        if let Some(message) = error {
            return Err(RuntimeError::Runc {
                op: "exec",
                id: self.id.clone(),
                message,
            });
        }
        self.exit = Some(code);
        Ok(code)
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_file(&self.pid_file);
        let _ = std::fs::remove_file(&self.log_file);
    }
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        self.cleanup();
    }
}

impl Runtime {
    /// Runs a process in a running container (`runc exec`), with pipes or a terminal.
    pub async fn exec(&self, id: &str, spec: ExecSpec) -> Result<ExecProcess> {
        let dir = self.existing_dir(id)?;
        if dir.join(files::EXIT).exists() || dir.join(files::STARTED).metadata().is_err() {
            return Err(RuntimeError::NotRunning(id.to_owned()));
        }
        if spec.argv.is_empty() {
            return Err(RuntimeError::InvalidSpec {
                id: id.to_owned(),
                message: "exec without a command".to_owned(),
            });
        }
        let n = EXEC_SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let tag = format!("exec-{}-{n}", std::process::id());
        let pid_file = dir.join(format!("{tag}.pid"));
        let log_file = dir.join(format!("{tag}.log"));
        let io = |context: &str| {
            let context = format!("{context} for exec in container {id}");
            move |source: std::io::Error| RuntimeError::Io { context, source }
        };

        let mut command = tokio::process::Command::new(&self.config.runc);
        command
            .arg("--root")
            .arg(self.runc_root())
            .arg("--log")
            .arg(&log_file)
            .arg("--log-format")
            .arg("json")
            .arg("exec")
            .arg("--pid-file")
            .arg(&pid_file);
        for (k, v) in &spec.env {
            command.arg("--env").arg(format!("{k}={v}"));
        }
        if spec.tty {
            command.arg("--tty");
        }
        command.arg(id).args(&spec.argv).kill_on_drop(false);

        let (child, stdin, stdout, stderr, pty): (
            _,
            Option<ExecWriter>,
            Option<ExecReader>,
            Option<ExecReader>,
            _,
        ) = if spec.tty {
            let pty = nix::pty::openpty(None, None).map_err(|e| io("open a terminal")(e.into()))?;
            // Raw from the start, so nothing written before runc sets it up is echoed.
            let mut attrs =
                tcgetattr(&pty.slave).map_err(|e| io("read terminal modes")(e.into()))?;
            cfmakeraw(&mut attrs);
            tcsetattr(&pty.slave, SetArg::TCSANOW, &attrs)
                .map_err(|e| io("set terminal modes")(e.into()))?;
            set_window_size(std::os::fd::AsFd::as_fd(&pty.master), 80, 24)
                .map_err(io("resize the terminal"))?;
            let slave = pty.slave;
            command
                .stdin(Stdio::from(
                    slave.try_clone().map_err(io("duplicate the terminal"))?,
                ))
                .stdout(Stdio::from(
                    slave.try_clone().map_err(io("duplicate the terminal"))?,
                ))
                .stderr(Stdio::from(slave));
            let child = command.spawn().map_err(io("start runc"))?;
            // The command held our copies of the slave; runc keeps its own.
            drop(command);
            let dup = || pty.master.try_clone().map_err(io("duplicate the terminal"));
            let reader = FdStream::new(dup()?, true).map_err(io("watch the terminal"))?;
            let writer = match spec.stdin {
                true => Some(Box::pin(
                    FdStream::new(dup()?, true).map_err(io("watch the terminal"))?,
                ) as ExecWriter),
                false => None,
            };
            (
                child,
                writer,
                Some(Box::pin(reader) as ExecReader),
                None,
                Some(pty.master),
            )
        } else {
            command
                .stdin(if spec.stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = command.spawn().map_err(io("start runc"))?;
            let stdin = child.stdin.take().map(|w| Box::pin(w) as ExecWriter);
            let stdout = child.stdout.take().map(|r| Box::pin(r) as ExecReader);
            let stderr = child.stderr.take().map(|r| Box::pin(r) as ExecReader);
            (child, stdin, stdout, stderr, None)
        };
        Ok(ExecProcess {
            stdin,
            stdout,
            stderr,
            id: id.to_owned(),
            child,
            pty,
            pid_file,
            log_file,
            exit: None,
        })
    }

    /// Runs a command to its end without input, for exec probes and lifecycle hooks: its
    /// exit code and its stdout and stderr together (the first MiB). Past `timeout` the
    /// process is killed and [`RuntimeError::ExecTimeout`] returned.
    pub async fn exec_output(
        &self,
        id: &str,
        argv: Vec<String>,
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>)> {
        let mut process = self
            .exec(
                id,
                ExecSpec {
                    argv,
                    ..Default::default()
                },
            )
            .await?;
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let collect = |reader: Option<ExecReader>| {
            let output = output.clone();
            async move {
                let Some(mut reader) = reader else { return };
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = reader.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut out = output.lock().expect("output lock");
                    let room = (1usize << 20).saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        };
        let (stdout, stderr) = (process.stdout.take(), process.stderr.take());
        let run = async {
            tokio::join!(collect(stdout), collect(stderr));
            process.wait().await
        };
        let result = tokio::time::timeout(timeout, run).await;
        match result {
            Ok(code) => {
                let code = code?;
                let out = std::mem::take(&mut *output.lock().expect("output lock"));
                Ok((code, out))
            }
            Err(_) => {
                process.kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), process.wait()).await;
                Err(RuntimeError::ExecTimeout {
                    id: id.to_owned(),
                    timeout,
                })
            }
        }
    }
}
