//! Child processes that die with the test process.
//!
//! A test that starts a server must not leave it running when the test
//! fails, panics or is killed. Dropping the owner kills the child in the
//! first two cases; for the third, children are started with a parent-death
//! signal (`PR_SET_PDEATHSIG`), so the kernel kills them when their parent
//! goes away.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::Context;
use nix::sys::signal::Signal;

/// A thread that forks children for a long-lived owner.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
/// not the process. Tests may start or restart a server from short-lived
/// threads (a blocking-pool thread, a test's own thread), which would kill
/// the server under a live owner; forking from a thread that lives as long
/// as the owner avoids that, while a killed test process still takes the
/// child with it.
pub struct Launcher {
    /// Sends commands to spawn; closed on drop so the thread ends.
    requests: Option<mpsc::Sender<(Command, mpsc::Sender<std::io::Result<Child>>)>>,
    /// The forking thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launcher").finish_non_exhaustive()
    }
}

impl Launcher {
    /// Starts the forking thread, named `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let (requests, incoming) =
            mpsc::channel::<(Command, mpsc::Sender<std::io::Result<Child>>)>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .with_context(|| format!("cannot start the {name} thread"))?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Spawns `command` on the forking thread, with a parent-death signal.
    pub fn spawn(&self, mut command: Command) -> anyhow::Result<Child> {
        set_parent_death_signal(&mut command);
        let (reply, answer) = mpsc::channel();
        self.requests
            .as_ref()
            .context("launcher is shut down")?
            .send((command, reply))
            .ok()
            .context("launcher thread has exited")?;
        Ok(answer.recv().context("launcher thread has exited")??)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Arranges for the child to get SIGKILL when the thread that forked it
/// exits, so no child outlives a killed test run.
#[allow(unsafe_code)]
pub fn set_parent_death_signal(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed. It makes a single prctl(2) system
    // call through `set_pdeathsig`, which neither allocates nor takes locks.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}
