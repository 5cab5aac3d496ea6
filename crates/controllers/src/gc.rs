//! The garbage collector: deletes objects whose owners are gone, and carries
//! out the `foregroundDeletion` and `orphan` finalizers the API server puts
//! on owners deleted with those propagation policies (Kubernetes' "Garbage
//! Collection" and "Owners and Dependents").
//!
//! It watches the metadata of every kind the server serves that can be
//! listed, watched and deleted (found by discovery, looked for again every
//! few seconds so that custom resources are covered) and keeps a [`Graph`] of
//! uid → object and its `ownerReferences`. Changes put uids on a
//! [`WorkQueue`]; workers look at each:
//!
//! - A dependent whose owners are all gone is deleted (in the background, or
//!   as its own `orphan`/`foregroundDeletion` finalizer asks); if some owners
//!   remain, the references to the gone ones are removed instead.
//! - An owner being deleted in the foreground has its dependents deleted
//!   (in the foreground those that own objects themselves, their own
//!   references made non-blocking first if that could close a cycle); once
//!   none with `blockOwnerDeletion` is left, its finalizer is removed.
//! - An owner being deleted with `orphan` has its reference removed from
//!   every dependent, then its finalizer.
//!
//! An owner counts as gone only when the server says so: one absent from the
//! graph is fetched before anything is deleted, and a reference names a uid,
//! so an object of the same name with another uid is a different owner. A
//! namespaced owner is looked for in its dependent's namespace only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::Notify;

/// The finalizer of an owner deleted in the foreground.
const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an owner deleted with its dependents orphaned.
const ORPHAN: &str = "orphan";
/// How often the served kinds are looked for again (sooner when an owner
/// reference names a kind not known yet).
const REDISCOVER: Duration = Duration::from_secs(5);
/// How often every object with owners or a collector's finalizer is looked
/// at again, in case a change was missed (an owner of a kind not watched
/// yet, say).
const RESYNC: Duration = Duration::from_secs(30);
/// How long the workers wait at startup for every kind's first list before
/// they start anyway (correctness does not depend on it: absent owners are
/// fetched, and orphaning and foreground deletion wait for the lists), and
/// how long a kind may fail to list before those stop waiting for it.
const INITIAL_SYNC: Duration = Duration::from_secs(30);
/// How many objects are looked at concurrently.
const WORKERS: usize = 4;
/// How many owners known to be gone are remembered (then forgotten at once).
const ABSENT_CACHE: usize = 8192;
/// Kinds never collected: events churn and are owned by nobody.
const IGNORED: [(&str, &str); 2] = [("", "events"), ("events.k8s.io", "events")];

/// Why an object could not be dealt with yet (it is looked at again later).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A request failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// An owner reference names a kind discovery has not found (yet).
    #[error("owner reference to {kind} in {api_version}, which the server does not serve")]
    UnknownKind { api_version: String, kind: String },
    /// Foreground deletion and orphaning wait for every kind's first list.
    #[error("not every kind has been listed yet")]
    NotSynced,
}

/// A kind the collector knows: how to reach it and whether it is namespaced.
#[derive(Debug)]
struct Kind {
    resource: ApiResource,
    namespaced: bool,
}

impl Kind {
    fn api(&self, client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if self.namespaced => Api::namespaced_with(client.clone(), ns, &self.resource),
            _ => Api::all_with(client.clone(), &self.resource),
        }
    }

    fn same_as(&self, other: &Kind) -> bool {
        self.resource.group == other.resource.group && self.resource.kind == other.resource.kind
    }
}

/// What the collector knows of one object.
#[derive(Clone, Debug)]
struct Node {
    kind: Arc<Kind>,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

impl Node {
    fn from_meta(kind: Arc<Kind>, meta: &ObjectMeta) -> Option<(String, Node)> {
        Some((
            meta.uid.clone()?,
            Node {
                kind,
                namespace: meta.namespace.clone(),
                name: meta.name.clone()?,
                owners: meta.owner_references.clone().unwrap_or_default(),
                deleting: meta.deletion_timestamp.is_some(),
                finalizers: meta.finalizers.clone().unwrap_or_default(),
            },
        ))
    }

    /// Deleted in the foreground: waiting for its dependents to go.
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == FOREGROUND)
    }

    /// Deleted with `orphan`: waiting for its dependents to be let go.
    fn orphaning(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == ORPHAN)
    }

    /// Whether the collector has anything to decide about it.
    fn concerns_collector(&self) -> bool {
        !self.owners.is_empty() || self.deleting_dependents() || self.orphaning()
    }
}

/// The objects and who owns whom. Owners may be absent: a uid can have
/// dependents without a node of its own.
#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    /// Owner uid → the uids of the objects that name it.
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// Records an object as it is now; returns the uids to look at because
    /// of the change: the object, its dependents if it is deleted in the
    /// foreground, and its owners (old and new) that wait for dependents.
    fn upsert(&mut self, uid: String, node: Node) -> Vec<String> {
        let old = self.nodes.remove(&uid);
        let mut owners: Vec<String> = node.owners.iter().map(|r| r.uid.clone()).collect();
        if let Some(old) = &old {
            for r in &old.owners {
                if let Some(d) = self.dependents.get_mut(&r.uid) {
                    d.remove(&uid);
                    if d.is_empty() {
                        self.dependents.remove(&r.uid);
                    }
                }
                owners.push(r.uid.clone());
            }
        }
        for r in &node.owners {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        let mut touched = Vec::new();
        if node.concerns_collector() {
            touched.push(uid.clone());
        }
        if node.deleting_dependents() {
            touched.extend(self.dependents_of(&uid));
        }
        touched.extend(owners.into_iter().filter(|o| self.waits(o)));
        self.nodes.insert(uid, node);
        touched
    }

    /// Forgets a deleted object; returns its dependents (their owner may be
    /// gone now) and its owners that wait for dependents.
    fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        for r in &node.owners {
            if let Some(d) = self.dependents.get_mut(&r.uid) {
                d.remove(uid);
                if d.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
        }
        let mut touched = self.dependents_of(uid);
        touched.extend(
            node.owners
                .iter()
                .map(|r| r.uid.clone())
                .filter(|o| self.waits(o)),
        );
        touched
    }

    /// Whether `uid` is an owner being deleted in the foreground or orphaning.
    fn waits(&self, uid: &str) -> bool {
        self.nodes
            .get(uid)
            .is_some_and(|n| n.deleting_dependents() || n.orphaning())
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The dependents of `uid` whose reference to it blocks its deletion.
    fn blocking_dependents(&self, uid: &str) -> Vec<String> {
        self.dependents_of(uid)
            .into_iter()
            .filter(|d| {
                self.nodes.get(d).is_some_and(|n| {
                    n.owners
                        .iter()
                        .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
                })
            })
            .collect()
    }

    fn has_dependents(&self, uid: &str) -> bool {
        self.dependents.contains_key(uid)
    }
}

/// What a dependent's owner is, as far as collecting the dependent goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OwnerState {
    /// It exists and is not being deleted in the foreground.
    Solid,
    /// It exists and is being deleted in the foreground: it waits for this
    /// dependent to go.
    Waiting,
    /// No object with its uid exists where it would be.
    Dangling,
}

/// What to do with a dependent.
#[derive(Clone, Debug, PartialEq)]
enum Verdict {
    /// Leave it: an owner exists and no reference is dangling.
    Keep,
    /// Some owner exists: remove the references to these uids (owners gone
    /// or waiting for it), so that it no longer holds them up.
    Unlink(Vec<String>),
    /// No owner exists but ones waiting for it: delete it.
    Delete(PropagationPolicy),
}

/// Kubernetes' rule for a dependent with owners in these states.
/// `has_dependents`: it owns objects itself, so an owner waiting on it must
/// wait for those too (it is deleted in the foreground).
fn verdict(
    owners: &[(String, OwnerState)],
    has_dependents: bool,
    finalizers: &[String],
) -> Verdict {
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    let unlink: Vec<String> = owners
        .iter()
        .filter(|(_, s)| *s != OwnerState::Solid)
        .map(|(uid, _)| uid.clone())
        .collect();
    let waiting = owners.iter().any(|(_, s)| *s == OwnerState::Waiting);
    if owners.is_empty() || (solid && unlink.is_empty()) {
        Verdict::Keep
    } else if solid {
        Verdict::Unlink(unlink)
    } else if waiting && has_dependents {
        Verdict::Delete(PropagationPolicy::Foreground)
    } else if finalizers.iter().any(|f| f == ORPHAN) {
        Verdict::Delete(PropagationPolicy::Orphan)
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        Verdict::Delete(PropagationPolicy::Foreground)
    } else {
        Verdict::Delete(PropagationPolicy::Background)
    }
}

/// uids to look at, each at most once at a time: one added while it is being
/// looked at is looked at again after (client-go's workqueue).
#[derive(Default)]
struct WorkQueue {
    state: Mutex<QueueState>,
    ready: Notify,
}

#[derive(Default)]
struct QueueState {
    order: VecDeque<String>,
    queued: HashSet<String>,
    running: HashSet<String>,
    again: HashSet<String>,
}

impl WorkQueue {
    fn add(&self, uid: String) {
        let mut s = self.state.lock().expect("work queue poisoned");
        if s.running.contains(&uid) {
            s.again.insert(uid);
        } else if s.queued.insert(uid.clone()) {
            s.order.push_back(uid);
            self.ready.notify_one();
        }
    }

    async fn next(&self) -> String {
        loop {
            {
                let mut s = self.state.lock().expect("work queue poisoned");
                if let Some(uid) = s.order.pop_front() {
                    s.queued.remove(&uid);
                    s.running.insert(uid.clone());
                    if !s.order.is_empty() {
                        self.ready.notify_one();
                    }
                    return uid;
                }
            }
            self.ready.notified().await;
        }
    }

    fn done(&self, uid: &str) {
        let again = {
            let mut s = self.state.lock().expect("work queue poisoned");
            s.running.remove(uid);
            s.again.remove(uid)
        };
        if again {
            self.add(uid.to_owned());
        }
    }
}

/// The served kinds, by every version and by group and kind.
#[derive(Default)]
struct Catalog {
    by_gvk: HashMap<(String, String, String), Arc<Kind>>,
    by_gk: HashMap<(String, String), Arc<Kind>>,
}

impl Catalog {
    /// The kind an owner reference names: at its version, or failing that
    /// at the version the collector watches (the uid decides identity).
    fn resolve(&self, api_version: &str, kind: &str) -> Option<Arc<Kind>> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.by_gvk
            .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))
            .or_else(|| self.by_gk.get(&(group.to_owned(), kind.to_owned())))
            .cloned()
    }
}

/// A running watch of one kind.
struct Watch {
    kind: Arc<Kind>,
    synced: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An owner found gone: group, kind, namespace, name, uid.
type AbsentKey = (String, String, Option<String>, String, String);

struct Collector {
    client: kube::Client,
    graph: Mutex<Graph>,
    catalog: RwLock<Catalog>,
    /// Watches by (group, plural).
    watches: Mutex<HashMap<(String, String), Watch>>,
    queue: WorkQueue,
    absent: Mutex<HashSet<AbsentKey>>,
    /// Asks for discovery now (an owner reference named an unknown kind).
    rediscover: Notify,
    /// Retry delays of uids whose last attempt failed.
    backoff: Mutex<HashMap<String, Duration>>,
}

/// Runs the garbage collector until the task is dropped.
pub async fn run(client: kube::Client) -> anyhow::Result<()> {
    let c = Arc::new(Collector {
        client,
        graph: Mutex::default(),
        catalog: RwLock::default(),
        watches: Mutex::default(),
        queue: WorkQueue::default(),
        absent: Mutex::default(),
        rediscover: Notify::new(),
        backoff: Mutex::default(),
    });
    // The first discovery must succeed before anything else makes sense.
    loop {
        match c.discover().await {
            Ok(()) => break,
            Err(e) => {
                tracing::debug!(error = %e, "garbage collector discovery failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let deadline = tokio::time::Instant::now() + INITIAL_SYNC;
    while !c.synced() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.resync();
    let discovery = {
        let c = Arc::clone(&c);
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(REDISCOVER) => {}
                    _ = c.rediscover.notified() => {}
                }
                if let Err(e) = c.discover().await {
                    tracing::debug!(error = %e, "garbage collector discovery failed");
                }
                // At most one discovery a second, however often asked.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let resync = {
        let c = Arc::clone(&c);
        async move {
            loop {
                tokio::time::sleep(RESYNC).await;
                c.resync();
            }
        }
    };
    let workers = futures::future::join_all((0..WORKERS).map(|_| Arc::clone(&c).work()));
    tokio::select! {
        _ = discovery => {}
        _ = resync => {}
        _ = workers => {}
    }
    anyhow::bail!("the garbage collector ended")
}

impl Collector {
    /// Learns the served kinds; starts watching new ones, stops watching
    /// those no longer served.
    async fn discover(self: &Arc<Self>) -> Result<(), kube::Error> {
        let discovery = match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(d) => d,
            Err(_) => Discovery::new(self.client.clone()).run().await?,
        };
        let mut catalog = Catalog::default();
        let mut watchable = Vec::new();
        for group in discovery.groups() {
            for version in group.versions() {
                for (ar, caps) in group.versioned_resources(version) {
                    let kind = Arc::new(Kind {
                        namespaced: caps.scope == Scope::Namespaced,
                        resource: ar.clone(),
                    });
                    catalog.by_gvk.insert(
                        (ar.group.clone(), ar.version.clone(), ar.kind.clone()),
                        Arc::clone(&kind),
                    );
                }
            }
            for (ar, caps) in group.recommended_resources() {
                let kind = Arc::new(Kind {
                    namespaced: caps.scope == Scope::Namespaced,
                    resource: ar.clone(),
                });
                catalog
                    .by_gk
                    .insert((ar.group.clone(), ar.kind.clone()), Arc::clone(&kind));
                let ignored = IGNORED.contains(&(ar.group.as_str(), ar.plural.as_str()));
                if !ignored
                    && [verbs::LIST, verbs::WATCH, verbs::DELETE]
                        .iter()
                        .all(|v| caps.supports_operation(v))
                {
                    watchable.push(kind);
                }
            }
        }
        *self.catalog.write().expect("catalog poisoned") = catalog;

        let mut watches = self.watches.lock().expect("watches poisoned");
        let wanted: HashSet<(String, String)> = watchable
            .iter()
            .map(|k| (k.resource.group.clone(), k.resource.plural.clone()))
            .collect();
        let gone: Vec<(String, String)> = watches
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(w) = watches.remove(&key) {
                tracing::debug!(resource = %w.kind.resource.plural, "no longer served; forgetting it");
                self.forget_kind(&w.kind, &HashSet::new());
            }
        }
        for kind in watchable {
            let key = (kind.resource.group.clone(), kind.resource.plural.clone());
            if watches.contains_key(&key) {
                continue;
            }
            let synced = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(Arc::clone(self).watch(Arc::clone(&kind), Arc::clone(&synced)));
            watches.insert(key, Watch { kind, synced, task });
        }
        Ok(())
    }

    /// Whether every watched kind has been listed at least once.
    fn synced(&self) -> bool {
        self.watches
            .lock()
            .expect("watches poisoned")
            .values()
            .all(|w| w.synced.load(Ordering::Acquire))
    }

    /// Keeps the graph's objects of one kind current.
    async fn watch(self: Arc<Self>, kind: Arc<Kind>, synced: Arc<AtomicBool>) {
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &kind.resource);
        let mut listed: HashSet<String> = HashSet::new();
        let started = tokio::time::Instant::now();
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(o)) => {
                    if let Some(uid) = &o.metadata.uid {
                        listed.insert(uid.clone());
                    }
                    self.observe(&kind, &o.metadata);
                }
                Ok(watcher::Event::InitDone) => {
                    // Whatever was not listed again was deleted meanwhile.
                    self.forget_kind(&kind, &listed);
                    listed.clear();
                    synced.store(true, Ordering::Release);
                    self.resync();
                }
                Ok(watcher::Event::Apply(o)) => self.observe(&kind, &o.metadata),
                Ok(watcher::Event::Delete(o)) => {
                    if let Some(uid) = &o.metadata.uid {
                        let touched = self.graph.lock().expect("graph poisoned").remove(uid);
                        self.enqueue(touched);
                    }
                }
                Err(e) => {
                    tracing::debug!(
                        resource = %kind.resource.plural,
                        error = %e,
                        "garbage collector watch failed; retrying"
                    );
                    // A kind that cannot be listed has nothing in the graph
                    // to wait for: after a while, stop holding up foreground
                    // deletion and orphaning for it.
                    if started.elapsed() > INITIAL_SYNC && !synced.swap(true, Ordering::AcqRel) {
                        tracing::warn!(
                            resource = %kind.resource.plural,
                            error = %e,
                            "garbage collector cannot list this kind; going on without it"
                        );
                    }
                }
            }
        }
    }

    fn observe(&self, kind: &Arc<Kind>, meta: &ObjectMeta) {
        let Some((uid, node)) = Node::from_meta(Arc::clone(kind), meta) else {
            return;
        };
        let touched = self.graph.lock().expect("graph poisoned").upsert(uid, node);
        self.enqueue(touched);
    }

    /// Forgets the objects of `kind` not in `keep`.
    fn forget_kind(&self, kind: &Kind, keep: &HashSet<String>) {
        let touched = {
            let mut graph = self.graph.lock().expect("graph poisoned");
            let stale: Vec<String> = graph
                .nodes
                .iter()
                .filter(|(uid, n)| n.kind.same_as(kind) && !keep.contains(*uid))
                .map(|(uid, _)| uid.clone())
                .collect();
            stale
                .iter()
                .flat_map(|uid| graph.remove(uid))
                .collect::<Vec<_>>()
        };
        self.enqueue(touched);
    }

    fn enqueue(&self, uids: impl IntoIterator<Item = String>) {
        for uid in uids {
            self.queue.add(uid);
        }
    }

    /// Puts every object the collector has something to decide about on
    /// the queue.
    fn resync(&self) {
        let uids: Vec<String> = self
            .graph
            .lock()
            .expect("graph poisoned")
            .nodes
            .iter()
            .filter(|(_, n)| n.concerns_collector())
            .map(|(uid, _)| uid.clone())
            .collect();
        self.enqueue(uids);
    }

    async fn work(self: Arc<Self>) {
        loop {
            let uid = self.queue.next().await;
            let result = self.attempt(&uid).await;
            self.queue.done(&uid);
            match result {
                Ok(()) => {
                    self.backoff.lock().expect("backoff poisoned").remove(&uid);
                }
                Err(e) => {
                    if matches!(e, Error::UnknownKind { .. }) {
                        self.rediscover.notify_one();
                    }
                    let delay = {
                        let mut backoff = self.backoff.lock().expect("backoff poisoned");
                        let d = backoff
                            .entry(uid.clone())
                            .or_insert(Duration::from_millis(125));
                        *d = (*d * 2).min(Duration::from_secs(10));
                        *d
                    };
                    tracing::debug!(%uid, error = %e, ?delay, "garbage collection failed; retrying");
                    let c = Arc::clone(&self);
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        c.queue.add(uid);
                    });
                }
            }
        }
    }

    /// Looks at one object.
    async fn attempt(&self, uid: &str) -> Result<(), Error> {
        let Some(node) = self
            .graph
            .lock()
            .expect("graph poisoned")
            .nodes
            .get(uid)
            .cloned()
        else {
            return Ok(());
        };
        if node.deleting_dependents() {
            self.finish_foreground(uid, &node).await
        } else if node.orphaning() {
            self.orphan_dependents(uid, &node).await
        } else if node.deleting || node.owners.is_empty() {
            Ok(())
        } else {
            self.collect_dependent(uid, &node).await
        }
    }

    /// Deletes the dependent, or removes its dangling references, if its
    /// owners say so; first from the graph, then confirmed with the object
    /// as the server has it now.
    async fn collect_dependent(&self, uid: &str, node: &Node) -> Result<(), Error> {
        let has_dependents = self
            .graph
            .lock()
            .expect("graph poisoned")
            .has_dependents(uid);
        let Some(states) = self.owner_states(node, &node.owners).await? else {
            return Ok(());
        };
        if verdict(&states, has_dependents, &node.finalizers) == Verdict::Keep {
            return Ok(());
        }
        let Some(live) = self
            .fetch(&node.kind, node.namespace.as_deref(), &node.name)
            .await?
        else {
            return Ok(());
        };
        let meta = live.metadata;
        if meta.uid.as_deref() != Some(uid) || meta.deletion_timestamp.is_some() {
            return Ok(());
        }
        let owners = meta.owner_references.clone().unwrap_or_default();
        let Some(states) = self.owner_states(node, &owners).await? else {
            return Ok(());
        };
        let finalizers = meta.finalizers.clone().unwrap_or_default();
        let api = node.kind.api(&self.client, node.namespace.as_deref());
        match verdict(&states, has_dependents, &finalizers) {
            Verdict::Keep => Ok(()),
            Verdict::Unlink(gone) => {
                tracing::info!(
                    kind = %node.kind.resource.kind,
                    namespace = node.namespace.as_deref().unwrap_or(""),
                    name = %node.name,
                    owners = ?gone,
                    "removing references to owners that are gone or waiting"
                );
                let kept: Vec<&OwnerReference> =
                    owners.iter().filter(|r| !gone.contains(&r.uid)).collect();
                patch_metadata(
                    &api,
                    &node.name,
                    json!({"ownerReferences": kept, "resourceVersion": meta.resource_version}),
                )
                .await
            }
            Verdict::Delete(policy) => {
                // Deleted in the foreground because an owner waits for it,
                // while one of its own dependents waits for it too: that
                // may be a cycle of blocking references, which nothing
                // would ever break. Its references stop blocking first, as
                // in Kubernetes.
                let cycle = policy == PropagationPolicy::Foreground && {
                    let graph = self.graph.lock().expect("graph poisoned");
                    graph
                        .dependents_of(uid)
                        .iter()
                        .any(|d| graph.nodes.get(d).is_some_and(Node::deleting_dependents))
                };
                if cycle && owners.iter().any(|r| r.block_owner_deletion == Some(true)) {
                    let unblocked: Vec<OwnerReference> = owners
                        .iter()
                        .cloned()
                        .map(|r| OwnerReference {
                            block_owner_deletion: Some(false),
                            ..r
                        })
                        .collect();
                    patch_metadata(
                        &api,
                        &node.name,
                        json!({"ownerReferences": unblocked, "resourceVersion": meta.resource_version}),
                    )
                    .await?;
                }
                tracing::info!(
                    kind = %node.kind.resource.kind,
                    namespace = node.namespace.as_deref().unwrap_or(""),
                    name = %node.name,
                    ?policy,
                    "deleting an object whose owners are gone"
                );
                let dp = DeleteParams {
                    propagation_policy: Some(policy),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.to_owned()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&node.name, &dp).await {
                    Ok(_) => Ok(()),
                    // Gone already, or another object by now.
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The state of each owner `references` of `dependent` name; `None` if a
    /// reference can never be valid (a cluster-scoped object owned by a
    /// namespaced one), in which case the dependent is left alone.
    async fn owner_states(
        &self,
        dependent: &Node,
        references: &[OwnerReference],
    ) -> Result<Option<Vec<(String, OwnerState)>>, Error> {
        let mut states = Vec::new();
        for r in references {
            let kind = self
                .catalog
                .read()
                .expect("catalog poisoned")
                .resolve(&r.api_version, &r.kind)
                .ok_or_else(|| Error::UnknownKind {
                    api_version: r.api_version.clone(),
                    kind: r.kind.clone(),
                })?;
            if kind.namespaced && dependent.namespace.is_none() {
                return Ok(None);
            }
            let namespace = if kind.namespaced {
                dependent.namespace.clone()
            } else {
                None
            };
            let known = {
                let graph = self.graph.lock().expect("graph poisoned");
                graph
                    .nodes
                    .get(&r.uid)
                    .filter(|o| o.kind.same_as(&kind) && o.namespace == namespace)
                    .map(|o| {
                        if o.deleting_dependents() {
                            OwnerState::Waiting
                        } else {
                            OwnerState::Solid
                        }
                    })
            };
            let state = match known {
                Some(state) => state,
                None => self.fetch_owner(&kind, namespace, r).await?,
            };
            states.push((r.uid.clone(), state));
        }
        Ok(Some(states))
    }

    /// Asks the server about an owner the graph does not have.
    async fn fetch_owner(
        &self,
        kind: &Kind,
        namespace: Option<String>,
        r: &OwnerReference,
    ) -> Result<OwnerState, Error> {
        let key: AbsentKey = (
            kind.resource.group.clone(),
            kind.resource.kind.clone(),
            namespace.clone(),
            r.name.clone(),
            r.uid.clone(),
        );
        if self.absent.lock().expect("absent poisoned").contains(&key) {
            return Ok(OwnerState::Dangling);
        }
        let owner = self.fetch(kind, namespace.as_deref(), &r.name).await?;
        match owner {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let waiting = o.metadata.deletion_timestamp.is_some()
                    && o.metadata
                        .finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == FOREGROUND);
                Ok(if waiting {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                })
            }
            _ => {
                let mut absent = self.absent.lock().expect("absent poisoned");
                if absent.len() >= ABSENT_CACHE {
                    absent.clear();
                }
                absent.insert(key);
                Ok(OwnerState::Dangling)
            }
        }
    }

    /// The metadata of an object as the server has it now.
    async fn fetch(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<PartialObjectMeta<DynamicObject>>, Error> {
        Ok(kind
            .api(&self.client, namespace)
            .get_metadata_opt(name)
            .await?)
    }

    /// An owner deleted in the foreground: its dependents are deleted; when
    /// none that blocks it is left, its finalizer is removed.
    async fn finish_foreground(&self, uid: &str, node: &Node) -> Result<(), Error> {
        // A dependent not listed yet would be missed.
        if !self.synced() {
            return Err(Error::NotSynced);
        }
        let (blocking, dependents) = {
            let graph = self.graph.lock().expect("graph poisoned");
            let dependents: Vec<String> = graph
                .dependents_of(uid)
                .into_iter()
                .filter(|d| graph.nodes.get(d).is_some_and(|n| !n.deleting))
                .collect();
            (graph.blocking_dependents(uid), dependents)
        };
        if blocking.is_empty() {
            return self.remove_finalizer(uid, node, FOREGROUND).await;
        }
        // Their removal from the graph brings the owner back here.
        self.enqueue(dependents);
        Ok(())
    }

    /// An owner deleted with `orphan`: its reference is removed from every
    /// dependent, then its finalizer.
    async fn orphan_dependents(&self, uid: &str, node: &Node) -> Result<(), Error> {
        if !self.synced() {
            return Err(Error::NotSynced);
        }
        let dependents: Vec<Node> = {
            let graph = self.graph.lock().expect("graph poisoned");
            graph
                .dependents_of(uid)
                .iter()
                .filter_map(|d| graph.nodes.get(d).cloned())
                .collect()
        };
        futures::stream::iter(dependents)
            .map(|d| async move { self.remove_reference(&d, uid).await })
            .buffer_unordered(WORKERS)
            .try_collect::<Vec<()>>()
            .await?;
        self.remove_finalizer(uid, node, ORPHAN).await
    }

    /// Removes the reference to `owner` from one dependent.
    async fn remove_reference(&self, dependent: &Node, owner: &str) -> Result<(), Error> {
        let Some(live) = self
            .fetch(
                &dependent.kind,
                dependent.namespace.as_deref(),
                &dependent.name,
            )
            .await?
        else {
            return Ok(());
        };
        let owners = live.metadata.owner_references.unwrap_or_default();
        if !owners.iter().any(|r| r.uid == owner) {
            return Ok(());
        }
        tracing::info!(
            kind = %dependent.kind.resource.kind,
            namespace = dependent.namespace.as_deref().unwrap_or(""),
            name = %dependent.name,
            %owner,
            "orphaning"
        );
        let kept: Vec<&OwnerReference> = owners.iter().filter(|r| r.uid != owner).collect();
        let api = dependent
            .kind
            .api(&self.client, dependent.namespace.as_deref());
        patch_metadata(
            &api,
            &dependent.name,
            json!({"ownerReferences": kept, "resourceVersion": live.metadata.resource_version}),
        )
        .await
    }

    /// Removes one finalizer from an object being deleted.
    async fn remove_finalizer(&self, uid: &str, node: &Node, finalizer: &str) -> Result<(), Error> {
        let Some(live) = self
            .fetch(&node.kind, node.namespace.as_deref(), &node.name)
            .await?
        else {
            return Ok(());
        };
        let meta = live.metadata;
        let finalizers = meta.finalizers.unwrap_or_default();
        if meta.uid.as_deref() != Some(uid) || !finalizers.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        tracing::info!(
            kind = %node.kind.resource.kind,
            namespace = node.namespace.as_deref().unwrap_or(""),
            name = %node.name,
            %finalizer,
            "removing the finalizer"
        );
        let kept: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
        let api = node.kind.api(&self.client, node.namespace.as_deref());
        patch_metadata(
            &api,
            &node.name,
            json!({"finalizers": kept, "resourceVersion": meta.resource_version}),
        )
        .await
    }
}

/// Merge-patches `metadata`, which carries the resourceVersion it was read
/// at (a conflict is an error, retried with a fresh read); a vanished object
/// needs nothing more.
async fn patch_metadata(
    api: &Api<DynamicObject>,
    name: &str,
    metadata: serde_json::Value,
) -> Result<(), Error> {
    let patch = Patch::Merge(json!({ "metadata": metadata }));
    match api.patch(name, &PatchParams::default(), &patch).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind() -> Arc<Kind> {
        Arc::new(Kind {
            resource: ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                plural: "replicasets".into(),
            },
            namespaced: true,
        })
    }

    fn node(owners: &[(&str, bool)], finalizers: &[&str], deleting: bool) -> Node {
        Node {
            kind: kind(),
            namespace: Some("default".into()),
            name: "x".into(),
            owners: owners
                .iter()
                .map(|(uid, block)| OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: format!("rs-{uid}"),
                    uid: uid.to_string(),
                    block_owner_deletion: Some(*block),
                    controller: None,
                })
                .collect(),
            deleting,
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn verdicts_follow_kubernetes() {
        use OwnerState::*;
        let s = |v: &[(&str, OwnerState)]| -> Vec<(String, OwnerState)> {
            v.iter().map(|(u, s)| (u.to_string(), *s)).collect()
        };
        let none: &[String] = &[];
        let orphan = &["orphan".to_string()];
        let cases = [
            (s(&[("a", Solid)]), false, none, Verdict::Keep),
            (
                s(&[("a", Solid), ("b", Dangling)]),
                false,
                none,
                Verdict::Unlink(vec!["b".into()]),
            ),
            (
                s(&[("a", Solid), ("b", Waiting)]),
                true,
                none,
                Verdict::Unlink(vec!["b".into()]),
            ),
            (
                s(&[("a", Dangling)]),
                false,
                none,
                Verdict::Delete(PropagationPolicy::Background),
            ),
            (
                s(&[("a", Dangling), ("b", Waiting)]),
                false,
                none,
                Verdict::Delete(PropagationPolicy::Background),
            ),
            (
                s(&[("a", Waiting)]),
                true,
                none,
                Verdict::Delete(PropagationPolicy::Foreground),
            ),
            (
                s(&[("a", Dangling)]),
                true,
                orphan,
                Verdict::Delete(PropagationPolicy::Orphan),
            ),
            (s(&[]), false, none, Verdict::Keep),
        ];
        for (owners, has_dependents, finalizers, want) in cases {
            assert_eq!(
                verdict(&owners, has_dependents, finalizers),
                want,
                "{owners:?} {has_dependents}"
            );
        }
    }

    #[test]
    fn the_graph_follows_owners_and_says_whom_to_look_at() {
        let mut g = Graph::default();
        // An owner, two dependents (one blocking), one of an absent owner.
        assert!(g.upsert("rs".into(), node(&[], &[], false)).is_empty());
        assert_eq!(
            g.upsert("p1".into(), node(&[("rs", true)], &[], false)),
            ["p1"]
        );
        g.upsert(
            "p2".into(),
            node(&[("rs", false), ("gone", false)], &[], false),
        );
        let mut deps = g.dependents_of("rs");
        deps.sort();
        assert_eq!(deps, ["p1", "p2"]);
        assert_eq!(g.dependents_of("gone"), ["p2"]);
        assert_eq!(g.blocking_dependents("rs"), ["p1"]);

        // Deleted in the foreground: it and its dependents are looked at.
        let mut touched = g.upsert("rs".into(), node(&[], &[FOREGROUND], true));
        touched.sort();
        assert_eq!(touched, ["p1", "p2", "rs"]);
        // A dependent going brings the waiting owner back.
        let touched = g.remove("p1");
        assert_eq!(touched, ["rs"]);
        assert!(g.blocking_dependents("rs").is_empty());
        // A dependent dropping its reference does too, and is unindexed.
        assert_eq!(
            g.upsert("p2".into(), node(&[("gone", false)], &[], false)),
            ["p2", "rs"]
        );
        assert!(!g.has_dependents("rs"));
        // The owner going brings its dependents back: they may be dangling.
        g.upsert("p3".into(), node(&[("rs", true)], &[], false));
        assert_eq!(g.remove("rs"), ["p3"]);
        assert!(g.remove("rs").is_empty());
    }

    #[tokio::test]
    async fn the_work_queue_runs_each_uid_once_at_a_time() {
        let q = WorkQueue::default();
        q.add("a".into());
        q.add("b".into());
        q.add("a".into());
        assert_eq!(q.next().await, "a");
        // Added while running: queued again once done, not twice.
        q.add("a".into());
        q.add("a".into());
        assert_eq!(q.next().await, "b");
        q.done("b");
        q.done("a");
        assert_eq!(q.next().await, "a");
        q.done("a");
        let empty = tokio::time::timeout(Duration::from_millis(50), q.next()).await;
        assert!(empty.is_err());
    }
}
