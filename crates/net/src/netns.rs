//! Doing work inside a network namespace.
//!
//! A network namespace is a property of a thread, and a socket belongs for its whole life to
//! the namespace of the thread that created it. So work for another namespace runs on a
//! fresh thread that `setns`'d into it and ends with it: no thread of a pool (tokio's or
//! anyone's) is ever moved, and sockets made there keep working from any thread afterwards.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};
use tokio::net::{TcpSocket, TcpStream};

use crate::NetError;

/// The path naming the calling thread's own network namespace.
pub(crate) const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Runs `f` on a new thread inside the network namespace at `netns` (a bind-mounted
/// namespace file such as `/run/gantry/pods/<uid>/net`, or `/proc/<pid>/ns/net`) and returns
/// its result.
///
/// The calling thread never changes namespace. Sockets `f` creates stay in `netns` and may
/// be returned and used anywhere. This blocks the caller until `f` returns, so from async
/// code keep `f` short (a panic in `f` is resumed in the caller).
pub fn run_in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let ns = File::open(netns)?;
    run_in_netns_fd(ns.as_fd(), f)
}

/// [`run_in_netns`] for an already opened namespace file.
pub(crate) fn run_in_netns_fd<T: Send>(
    ns: BorrowedFd<'_>,
    f: impl FnOnce() -> T + Send,
) -> io::Result<T> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("gantry-netns".into())
            .spawn_scoped(scope, move || {
                setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                Ok(f())
            })?;
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Opens a TCP connection to `addr` from inside the network namespace at `netns`, e.g. to
/// `127.0.0.1:<port>` of a pod for port-forwarding.
///
/// Only the socket is made inside the namespace (on a short-lived thread); the connect is
/// awaited on the caller's runtime, so it can be cancelled or timed out like any other.
pub async fn connect_in_netns(netns: &Path, addr: SocketAddr) -> io::Result<TcpStream> {
    let ns = open_netns(netns)?;
    let socket = spawn_in_netns(ns, move || match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    })
    .await??;
    socket.connect(addr).await
}

/// Opens a namespace file, keeping it as a descriptor for later `setns` calls.
pub(crate) fn open_netns(path: &Path) -> io::Result<OwnedFd> {
    File::open(path).map(OwnedFd::from)
}

/// Opens a namespace file, naming it in the error.
pub(crate) fn open_netns_named(path: &Path) -> Result<OwnedFd, NetError> {
    open_netns(path).map_err(|source| NetError::Netns {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs `f` on a new thread inside the namespace `ns` and awaits its result without blocking
/// the runtime. The thread ends when `f` returns.
pub(crate) async fn spawn_in_netns<T: Send + 'static>(
    ns: OwnedFd,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("gantry-netns".into())
        .spawn(move || {
            let result = setns(&ns, CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)
                .map(|()| f());
            // The receiver is gone only when the caller stopped waiting; nothing to tell.
            let _ = tx.send(result);
        })?;
    rx.await
        .map_err(|_| io::Error::other("work inside the network namespace panicked"))?
}

/// Runs async work inside the namespace `ns` on a new thread with a runtime of its own
/// (netlink sockets need a reactor), awaiting the result without blocking the caller's.
pub(crate) async fn run_async_in_netns<T, F, Fut>(
    path: &Path,
    ns: OwnedFd,
    work: F,
) -> Result<T, NetError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetError>>,
{
    let path_buf: PathBuf = path.to_path_buf();
    let result = spawn_in_netns(ns, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| NetError::Netns {
                path: path_buf,
                source,
            })?;
        runtime.block_on(work())
    })
    .await;
    result.map_err(|source| NetError::Netns {
        path: path.to_path_buf(),
        source,
    })?
}
