//! The queue of pods waiting for a node: an active part, taken in arrival
//! order, and a back-off part for pods that fit nowhere last time (1 s,
//! doubling to 10 s, as kube-scheduler's defaults), which a change in the
//! cluster flushes back to active at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A pod, by namespace, name and uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PodKey {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
}

impl PodKey {
    pub(crate) fn of(pod: &Pod) -> Self {
        let m = &pod.metadata;
        Self {
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where a waiting pod is.
enum Slot {
    /// In `active`, to be tried next.
    Active,
    /// Waiting out a back-off until the instant.
    BackingOff(Instant),
    /// Being scheduled now (popped).
    InFlight,
}

struct Entry {
    pod: Pod,
    slot: Slot,
    attempts: u32,
}

/// The queue's parts. `active` may hold keys of pods forgotten since (they
/// are skipped when popped), so forgetting a pod is not a search of it;
/// `backing_off` names the entries in back-off, so popping is not a scan of
/// every waiting pod.
#[derive(Default)]
struct State {
    active: VecDeque<PodKey>,
    entries: HashMap<PodKey, Entry>,
    backing_off: HashSet<PodKey>,
}

/// The scheduling queue.
pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Notify,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for Queue {
    fn default() -> Self {
        Self::with_backoff(INITIAL_BACKOFF, MAX_BACKOFF)
    }
}

impl Queue {
    /// A queue whose back-off starts at `initial` and doubles up to `max`.
    pub(crate) fn with_backoff(initial: Duration, max: Duration) -> Self {
        Self {
            state: Mutex::default(),
            ready: Notify::new(),
            initial_backoff: initial,
            max_backoff: max,
        }
    }

    /// Adds a pod or updates the copy of one already waiting.
    pub(crate) fn add(&self, key: PodKey, pod: Pod) {
        let mut s = self.state.lock();
        match s.entries.get_mut(&key) {
            Some(e) => e.pod = pod,
            None => {
                s.entries.insert(
                    key.clone(),
                    Entry {
                        pod,
                        slot: Slot::Active,
                        attempts: 0,
                    },
                );
                s.active.push_back(key);
                drop(s);
                self.ready.notify_one();
            }
        }
    }

    /// Replaces the waiting set after a relist.
    pub(crate) fn replace(&self, pods: Vec<(PodKey, Pod)>) {
        {
            let mut s = self.state.lock();
            let keep: HashSet<&PodKey> = pods.iter().map(|(k, _)| k).collect();
            s.entries.retain(|k, _| keep.contains(k));
            let State {
                active,
                entries,
                backing_off,
            } = &mut *s;
            active.retain(|k| entries.contains_key(k));
            backing_off.retain(|k| entries.contains_key(k));
        }
        for (k, p) in pods {
            self.add(k, p);
        }
    }

    /// Drops a pod that no longer waits (bound, deleted, finished).
    pub(crate) fn forget(&self, key: &PodKey) {
        let mut s = self.state.lock();
        if s.entries.remove(key).is_some() {
            s.backing_off.remove(key);
        }
    }

    /// Puts a pod that did not fit into back-off; answers its attempts.
    pub(crate) fn back_off(&self, key: PodKey, pod: Pod) -> u32 {
        let mut s = self.state.lock();
        s.backing_off.insert(key.clone());
        let e = s.entries.entry(key).or_insert(Entry {
            pod: pod.clone(),
            slot: Slot::InFlight,
            attempts: 0,
        });
        e.pod = pod;
        e.attempts += 1;
        let delay = self
            .initial_backoff
            .saturating_mul(1 << (e.attempts - 1).min(4))
            .min(self.max_backoff);
        e.slot = Slot::BackingOff(Instant::now() + delay);
        let attempts = e.attempts;
        drop(s);
        // The popper sleeps until the earliest back-off ends.
        self.ready.notify_one();
        attempts
    }

    /// Moves every backing-off pod to active: something changed that may
    /// let them fit.
    pub(crate) fn flush_backoff(&self) {
        let mut s = self.state.lock();
        let State {
            active,
            entries,
            backing_off,
        } = &mut *s;
        let mut moved = false;
        for k in backing_off.drain() {
            if let Some(e) = entries.get_mut(&k) {
                e.slot = Slot::Active;
                active.push_back(k);
                moved = true;
            }
        }
        drop(s);
        if moved {
            self.ready.notify_one();
        }
    }

    /// The next pod to schedule, waiting for one if none is ready.
    pub(crate) async fn pop(&self) -> (PodKey, Pod) {
        loop {
            let wake_at = {
                let mut s = self.state.lock();
                let now = Instant::now();
                let State {
                    active,
                    entries,
                    backing_off,
                } = &mut *s;
                // Back-offs that ended rejoin the active queue.
                backing_off.retain(|k| match entries.get_mut(k) {
                    Some(e) => match e.slot {
                        Slot::BackingOff(until) if until <= now => {
                            e.slot = Slot::Active;
                            active.push_back(k.clone());
                            false
                        }
                        Slot::BackingOff(_) => true,
                        _ => false,
                    },
                    None => false,
                });
                while let Some(k) = active.pop_front() {
                    if let Some(e) = entries.get_mut(&k)
                        && matches!(e.slot, Slot::Active)
                    {
                        e.slot = Slot::InFlight;
                        return (k, e.pod.clone());
                    }
                }
                backing_off
                    .iter()
                    .filter_map(|k| entries.get(k))
                    .filter_map(|e| match e.slot {
                        Slot::BackingOff(t) => Some(t),
                        _ => None,
                    })
                    .min()
            };
            let notified = self.ready.notified();
            match wake_at {
                Some(t) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(t) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> (PodKey, Pod) {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": name}
        }))
        .unwrap();
        (PodKey::of(&p), p)
    }

    const MS: Duration = Duration::from_millis(1);

    /// At least the back-off, and not the next one (the machine may be
    /// slow, but not by a whole back-off step).
    fn near(elapsed: Duration, want: Duration) -> bool {
        elapsed >= want && elapsed < 2 * want
    }

    #[tokio::test]
    async fn pods_come_out_in_order_and_back_off_doubles() {
        let q = Queue::with_backoff(200 * MS, 2000 * MS);
        let (a, pa) = pod("a");
        let (b, pb) = pod("b");
        q.add(a.clone(), pa.clone());
        q.add(b.clone(), pb);
        assert_eq!(q.pop().await.0, a);
        q.back_off(a.clone(), pa.clone());
        assert_eq!(q.pop().await.0, b);
        let t0 = Instant::now();
        assert_eq!(q.pop().await.0, a);
        assert!(near(t0.elapsed(), 200 * MS), "{:?}", t0.elapsed());
        q.back_off(a.clone(), pa.clone());
        let t1 = Instant::now();
        assert_eq!(q.pop().await.0, a);
        assert!(near(t1.elapsed(), 400 * MS), "{:?}", t1.elapsed());
    }

    #[tokio::test]
    async fn a_flush_ends_back_off_and_forget_drops() {
        let q = Queue::default();
        let (a, pa) = pod("a");
        q.add(a.clone(), pa.clone());
        q.pop().await;
        for _ in 0..6 {
            q.back_off(a.clone(), pa.clone());
        }
        let t0 = Instant::now();
        q.flush_backoff();
        assert_eq!(q.pop().await.0, a);
        // Six failures mean a 10 s back-off; the flush ends it at once.
        assert!(t0.elapsed() < 1000 * MS);
        q.forget(&a);
        let (b, pb) = pod("b");
        q.add(b.clone(), pb);
        assert_eq!(q.pop().await.0, b);
    }
}
