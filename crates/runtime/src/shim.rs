//! The shim: one process per container that outlives the agent.
//!
//! `Runtime::create_container` starts it with the container's directory as its only
//! argument, and it detaches itself first ([`detach`]: its own session, reparented away
//! from the agent, no descriptor of the agent's). The runtime starts it before the bundle
//! is ready, so that loading this binary overlaps that work: the shim then waits for
//! [`GO`] on its stdin, and exits doing nothing if stdin closes without it (the bundle
//! failed, or the agent died). It becomes a child subreaper, so the
//! container's init process becomes its child once `runc create` exits and its exit
//! status comes here. It then:
//! 1. runs `runc create` with the container's stdio: pipes it keeps the other ends of, or a
//!    pty whose master runc hands over on the console socket (for `Runtime::run_container`,
//!    `runc run --detach`, after which the process runs and `started.json` is written);
//! 2. prints a [`Created`] line on its stdout (the agent waits for it) and lets go of that
//!    stdout;
//! 3. serves `attach.sock`: `start` (runc start, then `started.json`) and `attach` (output
//!    fan-out, stdin, resize), while copying output into the CRI log;
//! 4. when init exits: reads the OOM kill count, drains the output (2 s at most), writes
//!    `exit.json`, ends the attach sessions, runs `runc delete` and exits, which releases
//!    `shim.lock`.
//!
//! Every child is reaped by one `waitpid(-1)` loop (children and orphans alike), so nothing
//! here may wait for a child any other way.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use nix::fcntl::OFlag;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cgroups::{self, oom_kill_count};
use crate::fdio::{FdStream, set_window_size};
use crate::files::{self, ExitFile, ShimConfig, StartedFile};
use crate::lock;
use crate::logs::{LineSplitter, LogWriter, Stream};
use crate::protocol::{self, Created, Reply, Request};

/// Runs the shim and exits. The agent's binary calls this for `gantry shim <args>`, with the
/// arguments that follow `shim` (the runtime appends the container's directory to
/// `RuntimeConfig::shim`). Call it first thing in `main`, before any runtime or thread is
/// started: the shim builds its own single-threaded runtime.
pub fn shim_main(args: Vec<OsString>) -> ! {
    if let Err(e) = detach() {
        eprintln!("shim: detach from the agent: {e}");
        std::process::exit(1);
    }
    match wait_for_go() {
        Ok(true) => {}
        // The runtime gave the container up before its bundle was ready.
        Ok(false) => std::process::exit(0),
        Err(e) => {
            eprintln!("shim: wait for the bundle: {e}");
            std::process::exit(1);
        }
    }
    let code = match run(args) {
        Ok(code) => code,
        Err(message) => {
            // Standard error is the container's `shim.log`.
            eprintln!("shim: {message}");
            report(&Created {
                pid: None,
                error: Some(message),
            });
            1
        }
    };
    std::process::exit(code)
}

/// Leaves the agent: a session of its own (no terminal's hangup reaches the shim, and it
/// is nobody's job), then a fork whose parent exits, so the shim is reparented to init or
/// a subreaper and the agent's death touches it not. Descriptors inherited without
/// close-on-exec (the agent's parent's, say) are closed, so the shim keeps nothing of
/// theirs open. Runs while the process has one thread and nothing of its own open.
#[allow(unsafe_code)]
fn detach() -> std::io::Result<()> {
    nix::unistd::setsid()?;
    // SAFETY: the process has a single thread (the shim runs first thing in `main`), so
    // the child may go on running any code; the parent only exits.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { .. } => {
            // SAFETY: `_exit` ends the process without running anything of the child's.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Child => {}
    }
    // SAFETY: a raw system call on descriptors this process does not use.
    let closed = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if closed < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The byte the runtime writes on the shim's stdin once the bundle is ready.
pub(crate) const GO: u8 = b'g';

/// Reads the runtime's go-ahead from stdin: true for [`GO`], false when stdin closes
/// without it. Stdin is then /dev/null, so no child inherits the runtime's pipe. A stdin
/// that is not a pipe (a shim started by an older agent, or by hand) means go at once.
fn wait_for_go() -> std::io::Result<bool> {
    use std::io::Read;
    let stat = nix::sys::stat::fstat(std::io::stdin())?;
    if nix::sys::stat::SFlag::from_bits_truncate(stat.st_mode) & nix::sys::stat::SFlag::S_IFMT
        != nix::sys::stat::SFlag::S_IFIFO
    {
        return Ok(true);
    }
    let mut byte = [0u8; 1];
    let n = loop {
        match std::io::stdin().lock().read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    let null = std::fs::File::open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    Ok(n == 1 && byte[0] == GO)
}

fn run(args: Vec<OsString>) -> Result<i32, String> {
    let dir = PathBuf::from(args.first().ok_or("usage: shim <container directory>")?);
    std::env::set_current_dir(&dir).map_err(|e| format!("enter {}: {e}", dir.display()))?;
    let config: ShimConfig =
        files::read_json(Path::new(files::SHIM_CONFIG)).map_err(|e| e.to_string())?;
    let lock = lock::acquire(Path::new(files::SHIM_LOCK))
        .map_err(|e| format!("another shim runs for {}: {e}", config.id))?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("become a child subreaper: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start the shim's runtime: {e}"))?;
    let code = runtime.block_on(serve(config))?;
    drop(lock);
    Ok(code)
}

/// Prints the result of `runc create` for the agent, then points stdout at /dev/null so the
/// agent's pipe closes (the agent reads to its end).
fn report(created: &Created) {
    let mut line = serde_json::to_vec(created).expect("plain struct serializes");
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&line).and_then(|()| out.flush());
    if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
}

/// Reaps every child and hands exit statuses to whoever waits for that pid.
#[derive(Clone)]
struct Reaper {
    state: Arc<Mutex<ReaperState>>,
}

#[derive(Default)]
struct ReaperState {
    waiters: HashMap<i32, oneshot::Sender<WaitStatus>>,
    /// Statuses nobody waited for yet, newest last (the container's init may exit before
    /// its pid is known).
    unclaimed: VecDeque<(i32, WaitStatus)>,
}

impl Reaper {
    fn start() -> std::io::Result<Reaper> {
        // The handler is installed before the first child exists, so no SIGCHLD is lost.
        let mut sigchld = signal(SignalKind::child())?;
        let reaper = Reaper {
            state: Arc::default(),
        };
        let state = reaper.state.clone();
        tokio::spawn(async move {
            loop {
                reap(&state);
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(reaper)
    }

    /// Spawns `command` and returns where its exit status will arrive.
    fn spawn(&self, command: &mut Command) -> std::io::Result<oneshot::Receiver<WaitStatus>> {
        // Holding the lock across spawn: a child that exits at once is dispatched only
        // after its waiter is in place.
        let mut state = self.state.lock().expect("reaper lock");
        let child = command.spawn()?;
        let (tx, rx) = oneshot::channel();
        state.waiters.insert(child.id() as i32, tx);
        Ok(rx)
    }

    /// Waits for `pid`, which became our child by reparenting.
    fn watch(&self, pid: i32) -> oneshot::Receiver<WaitStatus> {
        let mut state = self.state.lock().expect("reaper lock");
        let (tx, rx) = oneshot::channel();
        if let Some(i) = state.unclaimed.iter().position(|(p, _)| *p == pid) {
            let (_, status) = state.unclaimed.remove(i).expect("index found");
            let _ = tx.send(status);
        } else {
            state.waiters.insert(pid, tx);
        }
        rx
    }
}

fn reap(state: &Mutex<ReaperState>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => break,
            Ok(status) => {
                let Some(pid) = status.pid() else { continue };
                let mut state = state.lock().expect("reaper lock");
                match state.waiters.remove(&pid.as_raw()) {
                    Some(tx) => {
                        let _ = tx.send(status);
                    }
                    None => {
                        state.unclaimed.push_back((pid.as_raw(), status));
                        if state.unclaimed.len() > 256 {
                            state.unclaimed.pop_front();
                        }
                    }
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
}

/// `(exit code, signal)` as Kubernetes reports them: 128 + the signal for a killed process.
fn exit_code(status: &WaitStatus) -> (i32, Option<i32>) {
    match status {
        WaitStatus::Exited(_, code) => (*code, None),
        WaitStatus::Signaled(_, signal, _) => (128 + *signal as i32, Some(*signal as i32)),
        _ => (255, None),
    }
}

/// runc commands, with their errors read back from runc's JSON log.
#[derive(Clone)]
struct Runc {
    config: Arc<ShimConfig>,
    reaper: Reaper,
}

impl Runc {
    fn command(&self, args: &[&OsStr]) -> Command {
        let mut command = Command::new(&self.config.runc);
        command
            .arg("--root")
            .arg(&self.config.runc_root)
            .arg("--log")
            .arg(files::RUNC_LOG)
            .arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
    }

    /// Runs `command` (made by [`Runc::command`]) to its end; on failure, runc's message.
    async fn run(&self, op: &str, mut command: Command) -> Result<(), String> {
        let log_start = std::fs::metadata(files::RUNC_LOG)
            .map(|m| m.len())
            .unwrap_or(0);
        let status = self
            .reaper
            .spawn(&mut command)
            .map_err(|e| format!("run runc {op}: {e}"))?;
        // The command holds our copies of the child's stdio; they must close now.
        drop(command);
        let status = status
            .await
            .map_err(|_| format!("runc {op}: lost its exit status"))?;
        match exit_code(&status) {
            (0, _) => Ok(()),
            (code, _) => Err(runc_error(Path::new(files::RUNC_LOG), log_start)
                .unwrap_or_else(|| format!("runc {op} exited with status {code}"))),
        }
    }
}

/// The last error runc logged after `offset` in its JSON log.
pub(crate) fn runc_error(log: &Path, offset: u64) -> Option<String> {
    let bytes = std::fs::read(log).ok()?;
    crate::containers::runc_message(&String::from_utf8_lossy(bytes.get(offset as usize..)?))
}

/// Copies output to the log and to every attached client.
struct Hub {
    log: LogWriter,
    splitters: [LineSplitter; 2],
    clients: Vec<mpsc::Sender<(u8, Vec<u8>)>>,
}

impl Hub {
    fn output(&mut self, stream: Stream, data: &[u8]) {
        let now = Utc::now();
        let index = stream as usize;
        for (partial, content) in self.splitters[index].push(data) {
            if let Err(e) = self.log.write(now, stream, partial, &content) {
                eprintln!("shim: write log: {e}");
            }
        }
        let kind = match stream {
            Stream::Stdout => protocol::FRAME_STDOUT,
            Stream::Stderr => protocol::FRAME_STDERR,
        };
        // A client too slow to keep up is dropped rather than holding up the container.
        self.clients
            .retain(|c| c.try_send((kind, data.to_vec())).is_ok());
    }

    fn end(&mut self, stream: Stream) {
        if let Some(rest) = self.splitters[stream as usize].finish()
            && let Err(e) = self.log.write(Utc::now(), stream, true, &rest)
        {
            eprintln!("shim: write log: {e}");
        }
    }
}

/// What the connection handlers share.
struct Shared {
    config: Arc<ShimConfig>,
    runc: Runc,
    init_pid: i32,
    hub: Mutex<Hub>,
    /// Where stdin goes: the pipe's write end, or a duplicate of the pty master.
    stdin: tokio::sync::Mutex<Option<FdStream>>,
    /// The pty master, for resizes.
    pty: Option<OwnedFd>,
    /// Held while starting, so the exit handler records a start that is under way.
    start: tokio::sync::Mutex<Option<chrono::DateTime<Utc>>>,
    /// Writer tasks of attach sessions, finished before the shim exits.
    sessions: Mutex<Vec<JoinHandle<()>>>,
}

async fn serve(config: ShimConfig) -> Result<i32, String> {
    let config = Arc::new(config);
    let reaper = Reaper::start().map_err(|e| format!("watch SIGCHLD: {e}"))?;
    let runc = Runc {
        config: config.clone(),
        reaper: reaper.clone(),
    };
    let _ = std::fs::remove_file(files::CONSOLE_SOCKET);
    let _ = std::fs::remove_file(files::ATTACH_SOCKET);

    let op = if config.run { "run" } else { "create" };
    let mut create = runc.command(&[
        OsStr::new(op),
        OsStr::new("--bundle"),
        OsStr::new("."),
        OsStr::new("--pid-file"),
        OsStr::new(files::INIT_PID),
    ]);
    let mut outputs: Vec<(Stream, FdStream)> = Vec::new();
    let mut stdin = None;
    let mut console = None;
    if config.tty {
        let listener = UnixListener::bind(files::CONSOLE_SOCKET)
            .map_err(|e| format!("listen on {}: {e}", files::CONSOLE_SOCKET))?;
        console = Some(tokio::spawn(async move { receive_console(listener).await }));
        create.args(["--console-socket", files::CONSOLE_SOCKET]);
        create.stderr(shim_stderr());
    } else {
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("make a pipe: {e}"));
        if config.stdin {
            let (read, write) = pipe()?;
            create.stdin(Stdio::from(read));
            stdin = Some(FdStream::new(write, false).map_err(|e| e.to_string())?);
        }
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        create
            .stdout(Stdio::from(out_write))
            .stderr(Stdio::from(err_write));
        outputs.push((
            Stream::Stdout,
            FdStream::new(out_read, false).map_err(|e| e.to_string())?,
        ));
        outputs.push((
            Stream::Stderr,
            FdStream::new(err_read, false).map_err(|e| e.to_string())?,
        ));
    }
    if config.run {
        create.arg("--detach");
    }
    create.arg(&config.id);
    if let Err(message) = runc.run(op, create).await {
        report(&Created {
            pid: None,
            error: Some(message),
        });
        return Ok(1);
    }
    let init_pid: i32 = std::fs::read_to_string(files::INIT_PID)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("runc create left no pid in {}", files::INIT_PID))?;
    let exited = reaper.watch(init_pid);

    let mut pty = None;
    if let Some(console) = console {
        let master = tokio::time::timeout(Duration::from_secs(10), console)
            .await
            .map_err(|_| "runc did not send the terminal".to_owned())?
            .map_err(|e| format!("receive the terminal: {e}"))??;
        let _ = std::fs::remove_file(files::CONSOLE_SOCKET);
        let reader = master
            .try_clone()
            .map_err(|e| format!("duplicate the terminal: {e}"))?;
        outputs.push((
            Stream::Stdout,
            FdStream::new(reader, true).map_err(|e| e.to_string())?,
        ));
        if config.stdin {
            let writer = master
                .try_clone()
                .map_err(|e| format!("duplicate the terminal: {e}"))?;
            stdin = Some(FdStream::new(writer, true).map_err(|e| e.to_string())?);
        }
        pty = Some(master);
    }

    let log = LogWriter::open(&config.log_path, config.log_max_bytes)
        .map_err(|e| format!("open log {}: {e}", config.log_path.display()))?;
    let listener = UnixListener::bind(files::ATTACH_SOCKET)
        .map_err(|e| format!("listen on {}: {e}", files::ATTACH_SOCKET))?;
    let shared = Arc::new(Shared {
        config: config.clone(),
        runc,
        init_pid,
        hub: Mutex::new(Hub {
            log,
            splitters: Default::default(),
            clients: Vec::new(),
        }),
        stdin: tokio::sync::Mutex::new(stdin),
        pty,
        start: tokio::sync::Mutex::new(None),
        sessions: Mutex::new(Vec::new()),
    });
    if config.run {
        // `runc run` started the process: recorded as `start` records it.
        let now = Utc::now();
        *shared.start.lock().await = Some(now);
        files::write_json_atomic(
            Path::new(files::STARTED),
            &StartedFile {
                pid: init_pid,
                started_at: now,
            },
        )
        .map_err(|e| e.to_string())?;
    }
    report(&Created {
        pid: Some(init_pid),
        error: None,
    });

    let pumps: Vec<JoinHandle<()>> = outputs
        .into_iter()
        .map(|(stream, fd)| {
            let shared = shared.clone();
            tokio::spawn(async move { pump(shared, stream, fd).await })
        })
        .collect();
    let accept = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move { handle(shared, conn).await });
            }
        })
    };

    let status = exited
        .await
        .map_err(|_| "lost the container's exit status".to_owned())?;
    finish(&shared, status, pumps, accept).await;
    Ok(0)
}

/// Records the exit and winds down: the remaining output first, so that a reader who sees
/// `exit.json` finds the container's whole log (as a CRI runtime reports an exit only after
/// its output is copied), then exit.json, the attach sessions, and runc's state.
async fn finish(
    shared: &Arc<Shared>,
    status: WaitStatus,
    pumps: Vec<JoinHandle<()>>,
    accept: JoinHandle<()>,
) {
    let started = *shared.start.lock().await;
    let (exit_code, signal) = exit_code(&status);
    let oom_killed = shared
        .config
        .oom_file
        .as_deref()
        .is_some_and(|f| oom_kill_count(f) > 0);
    let exit = ExitFile {
        exit_code,
        signal,
        started_at: started,
        finished_at: Utc::now(),
        oom_killed,
    };
    accept.abort();
    let _ = std::fs::remove_file(files::ATTACH_SOCKET);

    // With its own PID namespace, the container's other processes die with init, so the
    // pipes close promptly; a descriptor leaked elsewhere must not keep the shim (or the
    // exit's report) waiting for more than a moment.
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        for pump in pumps {
            let _ = pump.await;
        }
    })
    .await;
    {
        let mut hub = shared.hub.lock().expect("hub lock");
        if drained.is_err() {
            hub.end(Stream::Stdout);
            hub.end(Stream::Stderr);
        }
        hub.clients.clear();
    }
    if let Err(e) = files::write_json_atomic(Path::new(files::EXIT), &exit) {
        eprintln!("shim: {e}");
    }
    let sessions: Vec<JoinHandle<()>> =
        std::mem::take(&mut *shared.sessions.lock().expect("sessions lock"));
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        for s in sessions {
            let _ = s.await;
        }
    })
    .await;
    // The processes are gone: what they left cached goes before runc removes the cgroup,
    // so that the kernel can free it.
    if let Some(file) = &shared.config.force_empty {
        cgroups::release_memory(file);
    }
    let delete = shared.runc.command(&[
        OsStr::new("delete"),
        OsStr::new("--force"),
        OsStr::new(&shared.config.id),
    ]);
    let mut delete = delete;
    delete.stderr(shim_stderr());
    if let Err(e) = shared.runc.run("delete", delete).await {
        eprintln!("shim: {e}");
    }
}

fn shim_stderr() -> Stdio {
    std::fs::File::options()
        .append(true)
        .open(files::SHIM_LOG)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// Copies one output stream into the hub until it ends.
async fn pump(shared: Arc<Shared>, stream: Stream, fd: FdStream) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match fd.read_some(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => shared
                .hub
                .lock()
                .expect("hub lock")
                .output(stream, &buf[..n]),
        }
    }
    shared.hub.lock().expect("hub lock").end(stream);
}

/// Accepts runc's connection on the console socket and takes the pty master it sends.
async fn receive_console(listener: UnixListener) -> Result<OwnedFd, String> {
    let (conn, _) = listener
        .accept()
        .await
        .map_err(|e| format!("accept on the console socket: {e}"))?;
    loop {
        conn.readable().await.map_err(|e| e.to_string())?;
        match conn.try_io(tokio::io::Interest::READABLE, || receive_fd(&conn)) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(format!("receive the terminal from runc: {e}")),
        }
    }
}

/// One `recvmsg` carrying a descriptor in `SCM_RIGHTS` (runc sends the pty's name with it).
#[allow(unsafe_code)]
fn receive_fd(conn: &UnixStream) -> std::io::Result<OwnedFd> {
    let mut name = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor in our table for us
            // (SCM_RIGHTS); nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "no descriptor in the console message",
    ))
}

/// One client connection on `attach.sock`.
async fn handle(shared: Arc<Shared>, conn: UnixStream) {
    let (mut read, mut write) = conn.into_split();
    let Ok(line) = protocol::read_line(&mut read).await else {
        return;
    };
    let request: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            let _ = send_reply(
                &mut write,
                Reply {
                    error: Some(format!("bad request: {e}")),
                    tty: false,
                },
            )
            .await;
            return;
        }
    };
    let tty = shared.config.tty;
    match request {
        Request::Start => {
            let error = start(&shared).await.err();
            let _ = send_reply(&mut write, Reply { error, tty }).await;
        }
        Request::Attach { stdin } => {
            let (tx, mut rx) = mpsc::channel::<(u8, Vec<u8>)>(1024);
            if send_reply(&mut write, Reply { error: None, tty })
                .await
                .is_err()
            {
                return;
            }
            shared.hub.lock().expect("hub lock").clients.push(tx);
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                while let Some((kind, data)) = rx.recv().await {
                    if protocol::write_frame(&mut write, kind, &data)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                let _ = write.shutdown().await;
            });
            shared.sessions.lock().expect("sessions lock").push(writer);
            let takes_stdin = stdin && shared.config.stdin;
            loop {
                match protocol::read_frame(&mut read).await {
                    Ok(Some((protocol::FRAME_STDIN, data))) if takes_stdin => {
                        let guard = shared.stdin.lock().await;
                        if let Some(stdin) = guard.as_ref()
                            && stdin.write_all_bytes(&data).await.is_err()
                        {
                            break;
                        }
                    }
                    Ok(Some((protocol::FRAME_CLOSE_STDIN, _))) => break,
                    Ok(Some((protocol::FRAME_RESIZE, data))) if data.len() == 4 => {
                        if let Some(pty) = &shared.pty {
                            let width = u16::from_be_bytes([data[0], data[1]]);
                            let height = u16::from_be_bytes([data[2], data[3]]);
                            let _ = set_window_size(std::os::fd::AsFd::as_fd(pty), width, height);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            // The session's stdin ended (closed or disconnected). With stdin_once that is
            // the container's stdin too; a terminal stays open (closing it would hang up
            // the output as well).
            if takes_stdin && shared.config.stdin_once && !tty {
                shared.stdin.lock().await.take();
            }
        }
    }
}

async fn send_reply<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    reply: Reply,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut line = serde_json::to_vec(&reply).expect("plain struct serializes");
    line.push(b'\n');
    w.write_all(&line).await
}

/// `runc start`, then `started.json`.
async fn start(shared: &Shared) -> Result<(), String> {
    let mut started = shared.start.lock().await;
    if started.is_some() {
        return Ok(());
    }
    let mut command = shared
        .runc
        .command(&[OsStr::new("start"), OsStr::new(&shared.config.id)]);
    command.stderr(shim_stderr());
    shared.runc.run("start", command).await?;
    let now = Utc::now();
    *started = Some(now);
    files::write_json_atomic(
        Path::new(files::STARTED),
        &StartedFile {
            pid: shared.init_pid,
            started_at: now,
        },
    )
    .map_err(|e| e.to_string())
}
