//! Informers shared by the controllers: one watch per kind for the whole
//! controller manager, a cache every controller reads, and a stream of changed
//! objects every controller can subscribe to.
//!
//! kube-runtime's own shared streams do not pass deletions on, and a
//! ReplicaSet must hear that one of its pods was deleted, so each informer
//! broadcasts every applied *and* deleted object (the last state it had). A
//! subscriber that falls behind the broadcast gets the whole cache again
//! instead of the events it missed: the controllers are level-triggered, so
//! seeing every object once is as good as seeing every change.
//!
//! An informer is handed out only once its first list is in the cache, so
//! no controller waits on kube-runtime's `Store::wait_until_ready`: that
//! wakes only the last of several tasks waiting on one store at once, and
//! the others would wait forever (the reconcilers of seven controllers share
//! the pod cache).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

/// How many changed objects a subscriber may be behind before it is given
/// the whole cache instead.
const BACKLOG: usize = 4096;

/// The kinds an informer can cache.
pub trait Kind:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K> Kind for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// One kind's cache and change stream, kept current by one watch.
pub struct Informer<K: Kind> {
    store: Store<K>,
    changes: broadcast::Sender<Arc<K>>,
    /// Becomes true when the first list is in the cache.
    listed: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl<K: Kind> Drop for Informer<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K: Kind> Informer<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn start(api: Api<K>) -> Self {
        let (store, writer) = reflector::store::<K>();
        let (changes, _) = broadcast::channel(BACKLOG);
        let (listed_tx, listed) = watch::channel(false);
        let tx = changes.clone();
        let reader = store.clone();
        let task = tokio::spawn(async move {
            reflector::reflector(writer, watcher(api, watcher::Config::default()))
                .default_backoff()
                .for_each(|event| {
                    match event {
                        Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                            let _ = tx.send(Arc::new(o));
                        }
                        // A (re)list: everything it found may have changed.
                        Ok(watcher::Event::InitDone) => {
                            listed_tx.send_replace(true);
                            for o in reader.state() {
                                let _ = tx.send(o);
                            }
                        }
                        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                        Err(e) => tracing::debug!(
                            kind = %K::kind(&()),
                            error = %e,
                            "informer watch failed; retrying"
                        ),
                    }
                    std::future::ready(())
                })
                .await;
        });
        Self {
            store,
            changes,
            listed,
            task,
        }
    }

    /// Waits until the first list is in the cache; any number of tasks may
    /// wait at once.
    async fn wait_listed(&self) {
        let mut listed = self.listed.clone();
        // The sender lives as long as the task, which lives as long as self.
        let _ = listed.wait_for(|done| *done).await;
    }

    /// The cache, holding at least the first list.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Every object now in the cache, then every object that changes or is
    /// deleted from here on, in the shape kube-runtime's `Controller` takes.
    pub fn stream(&self) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
        let rx = self.changes.subscribe();
        let store = self.store.clone();
        let now = futures::stream::iter(self.store.state());
        let later = futures::stream::unfold((rx, store), |(mut rx, store)| async move {
            let next = match rx.recv().await {
                Ok(o) => vec![o],
                Err(broadcast::error::RecvError::Lagged(_)) => store.state(),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((next, (rx, store)))
        })
        .flat_map(futures::stream::iter);
        now.chain(later).map(|o| Ok(K::clone(&o)))
    }
}

/// The informers of one controller manager, made on first use.
#[derive(Clone)]
pub struct Informers {
    client: kube::Client,
    kinds: Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
}

impl Informers {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            kinds: Arc::default(),
        }
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The informer of kind `K` across all namespaces, started if it is the
    /// first time `K` is asked for; returns once its cache holds the first
    /// list.
    pub async fn get<K: Kind>(&self) -> Arc<Informer<K>> {
        let informer = {
            let mut kinds = self.kinds.lock().expect("informer map poisoned");
            let any = kinds
                .entry(TypeId::of::<K>())
                .or_insert_with(|| Arc::new(Informer::<K>::start(Api::all(self.client.clone()))))
                .clone();
            any.downcast::<Informer<K>>()
                .expect("informers are keyed by their type")
        };
        informer.wait_listed().await;
        informer
    }
}
