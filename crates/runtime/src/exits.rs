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
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The events can no longer be read: nobody is woken from now on.
    broken: AtomicBool,
}

impl Shared {
    /// Gives up reading events after `error`: every follower is woken once, to look for
    /// itself and learn (from [`ExitWatcher::working`]) that it must keep polling.
    fn give_up(&self, what: &str, error: &io::Error) {
        tracing::error!(%error, "{what}: container exits are seen by polling only");
        self.broken.store(true, Ordering::SeqCst);
        let mut wakes = self.wakes.lock().expect("never poisoned");
        for (_, wake) in wakes.drain() {
            wake.notify_one();
        }
    }
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
        Ok(ExitWatcher::new(self.config.root.clone(), fd))
    }
}

impl ExitWatcher {
    fn new(root: PathBuf, fd: AsyncFd<InotifyFd>) -> Self {
        let shared = Arc::new(Shared {
            fd,
            wakes: Mutex::new(HashMap::new()),
            broken: AtomicBool::new(false),
        });
        let reader = tokio::spawn(read_events(Arc::clone(&shared)));
        ExitWatcher {
            root,
            shared,
            reader,
        }
    }

    /// Whether ends are still seen. Once not (reading the events failed, which is
    /// logged), every follower has been woken once and [`ExitWatcher::watch`] refuses:
    /// followers must look for ends themselves.
    pub fn working(&self) -> bool {
        !self.shared.broken.load(Ordering::SeqCst)
    }

    /// Wakes `wake` when container `id` ends, or at once if it has already ended (its
    /// exit is recorded, or its shim is gone). Watching again replaces the earlier wake.
    /// Refused once the watcher no longer works.
    pub fn watch(&self, id: &str, wake: &Arc<Notify>) -> Result<()> {
        crate::containers::check_id(id)?;
        let dir = self.root.join(id);
        {
            // Held from adding the watch to recording it: an event of the new watch is
            // read only once its wake is known; and a watch is never recorded after the
            // reader gave up (which it does holding this lock).
            let mut wakes = self.shared.wakes.lock().expect("never poisoned");
            if !self.working() {
                return Err(io::Error::other("container exits are no longer watched"))
                    .context(|| format!("watch {}", dir.display()));
            }
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
            Err(e) => return shared.give_up("waiting on inotify", &e),
        };
        let events = match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(io::Error::from))
        {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => return shared.give_up("reading inotify", &e),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watcher_that_gave_up_wakes_everyone_and_refuses() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("a")).unwrap();
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
        let watcher = ExitWatcher::new(root.path().to_owned(), register(inotify).unwrap());
        let wake = Arc::new(Notify::new());
        watcher.watch("a", &wake).unwrap();
        // No shim holds the lock: woken at once, as for a lost shim.
        wake.notified().await;
        assert!(watcher.working());

        watcher
            .shared
            .give_up("test", &io::Error::other("lost events"));
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified());
        assert!(woken.await.is_ok(), "a follower was not told");
        assert!(!watcher.working());
        assert_eq!(watcher.watched(), 0);
        assert!(watcher.watch("a", &wake).is_err());
        assert_eq!(watcher.watched(), 0);
    }
}
