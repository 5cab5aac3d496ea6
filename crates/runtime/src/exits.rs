//! Exits as they happen, so that nobody polls for them.
//!
//! One inotify instance watches the directories of the containers someone follows. A
//! container's end shows there in one of two ways: its shim renames `exit.json` into place,
//! or its shim goes (however it goes) and the kernel closes its `shim.lock`, which the shim
//! alone opened for writing. Either wakes the [`Notify`] given for the container; the
//! follower then reads the container's status as usual. Reads of the directory (the
//! follower's own status checks) raise no event that is listened for, so a wake never
//! causes the next.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use crate::error::{IoContext, Result};
use crate::{Runtime, files, lock};

/// The inotify descriptor, as tokio needs it.
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

struct Shared {
    fd: AsyncFd<InotifyFd>,
    /// Whom to wake, by the watch of a container's directory. A watch goes when its
    /// directory is removed (the kernel says so with `IN_IGNORED`).
    wakes: Mutex<HashMap<WatchDescriptor, Arc<Notify>>>,
}

/// Wakes followers of containers when their containers end (see the module's text).
/// Made inside a tokio runtime; its reading task ends when it is dropped.
pub struct ExitWatcher {
    root: PathBuf,
    shared: Arc<Shared>,
    reader: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ExitWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExitWatcher")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A watcher of this runtime's containers' exits.
    pub fn exit_watcher(&self) -> Result<ExitWatcher> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(io::Error::from)
            .context(|| "inotify_init1".to_owned())?;
        let fd = register(inotify).context(|| "register inotify".to_owned())?;
        let shared = Arc::new(Shared {
            fd,
            wakes: Mutex::new(HashMap::new()),
        });
        let reader = tokio::spawn(read_events(Arc::clone(&shared)));
        Ok(ExitWatcher {
            root: self.config.root.clone(),
            shared,
            reader,
        })
    }
}

impl ExitWatcher {
    /// Wakes `wake` when container `id` ends, or at once if it has already ended (its
    /// exit is recorded, or its shim is gone). Watching again replaces the earlier wake.
    pub fn watch(&self, id: &str, wake: &Arc<Notify>) -> Result<()> {
        crate::containers::check_id(id)?;
        let dir = self.root.join(id);
        {
            // Held from adding the watch to recording it: an event of the new watch is
            // read only once its wake is known.
            let mut wakes = self.shared.wakes.lock().expect("never poisoned");
            let wd = self
                .shared
                .fd
                .get_ref()
                .0
                .add_watch(
                    &dir,
                    AddWatchFlags::IN_MOVED_TO
                        | AddWatchFlags::IN_CLOSE_WRITE
                        | AddWatchFlags::IN_ONLYDIR,
                )
                .map_err(io::Error::from)
                .context(|| format!("watch {}", dir.display()))?;
            wakes.insert(wd, Arc::clone(wake));
        }
        // An end before the watch raised no event.
        if dir.join(files::EXIT).exists() || lock::holder(&dir.join(files::SHIM_LOCK)).is_none() {
            wake.notify_one();
        }
        Ok(())
    }

    /// How many container directories are watched (for tests).
    pub fn watched(&self) -> usize {
        self.shared.wakes.lock().expect("never poisoned").len()
    }
}

impl Drop for ExitWatcher {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Registers the inotify descriptor with tokio's reactor.
#[allow(unsafe_code)]
fn register(inotify: Inotify) -> io::Result<AsyncFd<InotifyFd>> {
    // SAFETY: the `Inotify` owns its descriptor, which stays open, naming the same file
    // description, until the `AsyncFd` that owns the `Inotify` drops it.
    unsafe { AsyncFd::register(InotifyFd(inotify)) }.map_err(io::Error::from)
}

async fn read_events(shared: Arc<Shared>) {
    loop {
        let mut guard = match shared.fd.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                tracing::error!(error = %e, "waiting on inotify: container exits are seen by polling only");
                return;
            }
        };
        let events = match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(io::Error::from))
        {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading inotify: container exits are seen by polling only");
                return;
            }
            Err(_would_block) => continue,
        };
        let mut wakes = shared.wakes.lock().expect("never poisoned");
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                // Events were lost: everyone looks.
                for wake in wakes.values() {
                    wake.notify_one();
                }
            } else if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                wakes.remove(&event.wd);
            } else if let Some(wake) = wakes.get(&event.wd) {
                let name = event.name.as_deref();
                let ended = (event.mask.contains(AddWatchFlags::IN_MOVED_TO)
                    && name == Some(OsStr::new(files::EXIT)))
                    || (event.mask.contains(AddWatchFlags::IN_CLOSE_WRITE)
                        && name == Some(OsStr::new(files::SHIM_LOCK)));
                if ended {
                    wake.notify_one();
                }
            }
        }
    }
}
