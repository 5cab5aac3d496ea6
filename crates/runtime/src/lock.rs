//! Whether a container's shim is alive, told by a lock it holds.
//!
//! The shim takes a POSIX write lock on `shim.lock` and never lets it go; the kernel drops
//! it when the shim exits, however it exits. Anyone else asks with `F_GETLK`, which also
//! names the holder's pid. Unlike a pid file this cannot be fooled by a reused pid.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{FcntlArg, fcntl};

use crate::error::{IoContext, Result};

fn whole_file(kind: libc::c_int) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// Takes the lock for the calling process; fails if another process holds it. The lock
/// lasts as long as the returned file stays open (it is close-on-exec, so children of the
/// shim never hold it).
pub(crate) fn acquire(path: &Path) -> Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .context(|| format!("open {}", path.display()))?;
    fcntl(&file, FcntlArg::F_SETLK(&whole_file(libc::F_WRLCK)))
        .context(|| format!("lock {}", path.display()))?;
    Ok(file)
}

/// The pid of the process holding the lock, or `None` if nobody does (or no file).
pub(crate) fn holder(path: &Path) -> Option<i32> {
    let file = File::open(path).ok()?;
    let mut probe = whole_file(libc::F_WRLCK);
    fcntl(&file, FcntlArg::F_GETLK(&mut probe)).ok()?;
    (probe.l_type != libc::F_UNLCK as libc::c_short).then_some(probe.l_pid)
}
