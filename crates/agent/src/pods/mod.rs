//! The pods bound to this node: a watch of them, one [`PodWorker`] task per
//! pod fed their latest spec, and the cleanup of what no pod owns any more.
//!
//! At start, before any worker runs, the agent lists what its runtime
//! already has (containers, sandboxes, addresses): a worker adopts the
//! containers labelled with its pod's uid, and whatever belongs to no pod
//! in the API's first list is removed.

pub(crate) mod container;
pub(crate) mod status;
pub(crate) mod worker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher::{self, Event as WatchEvent};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

pub(crate) use worker::PodWorker;

/// Labels the agent puts on runtime containers, to find them again.
pub(crate) mod labels {
    pub(crate) const POD_UID: &str = "io.kubernetes.pod.uid";
    pub(crate) const POD_NAME: &str = "io.kubernetes.pod.name";
    pub(crate) const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub(crate) const CONTAINER: &str = "io.kubernetes.container.name";
    pub(crate) const ATTEMPT: &str = "io.kubernetes.container.restartCount";
    pub(crate) const INIT: &str = "gantry.io/init-container";
    pub(crate) const STOP_SIGNAL: &str = "gantry.io/stop-signal";
}

/// A signal by name (`SIGQUIT`, `QUIT`) or number, as images write it.
pub(crate) fn parse_signal(s: &str) -> Option<nix::sys::signal::Signal> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).ok();
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).ok()
}

/// What a worker is told about its pod.
#[derive(Clone, Debug)]
pub(crate) enum Desired {
    /// The pod as the API has it now.
    Pod(Box<Pod>),
    /// The pod is gone from the API (or from this node).
    Gone,
}

/// What the agent's server needs to find a pod's containers.
#[derive(Clone, Debug)]
pub(crate) struct RegistryEntry {
    pub(crate) uid: String,
    /// The images its containers name, kept from image collection.
    pub(crate) images: Vec<String>,
    pub(crate) netns: Option<PathBuf>,
    /// `<logs>/<container>/<restartCount>.log`.
    pub(crate) logs: PathBuf,
    pub(crate) containers: HashMap<String, ContainerEntry>,
}

/// One container of a pod, for the server.
#[derive(Clone, Debug)]
pub(crate) struct ContainerEntry {
    /// The runtime container running now.
    pub(crate) id: Option<String>,
    pub(crate) restart_count: i32,
}

/// Pods by namespace and name, as the workers last saw them.
///
/// Until every pod of the agent's first list has been published once, a
/// pod missing here may be one a worker is still adopting: [`Registry::wait`]
/// tells those apart from pods that are not on the node.
#[derive(Default)]
pub(crate) struct Registry {
    pods: RwLock<HashMap<(String, String), RegistryEntry>>,
    /// Uids of the first list not yet published; `None` before that list.
    pending: Mutex<Option<HashSet<String>>>,
    changed: tokio::sync::Notify,
}

impl Registry {
    pub(crate) fn put(&self, ns: &str, name: &str, entry: RegistryEntry) {
        self.settle(&entry.uid);
        self.pods
            .write()
            .insert((ns.to_owned(), name.to_owned()), entry);
        self.changed.notify_waiters();
    }

    pub(crate) fn remove(&self, uid: &str) {
        self.settle(uid);
        self.pods.write().retain(|_, e| e.uid != uid);
        self.changed.notify_waiters();
    }

    /// The pods of the agent's first list: until each is published or
    /// removed, lookups wait for them.
    pub(crate) fn expect(&self, uids: impl IntoIterator<Item = String>) {
        let mut pending = self.pending.lock();
        if pending.is_none() {
            *pending = Some(uids.into_iter().collect());
        }
        drop(pending);
        self.changed.notify_waiters();
    }

    fn settle(&self, uid: &str) {
        if let Some(p) = self.pending.lock().as_mut() {
            p.remove(uid);
        }
    }

    fn settled(&self) -> bool {
        self.pending.lock().as_ref().is_some_and(HashSet::is_empty)
    }

    pub(crate) fn get(&self, ns: &str, name: &str) -> Option<RegistryEntry> {
        self.pods
            .read()
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The pod's entry; while the agent is still taking over the pods it
    /// found at start, waits for it up to `patience`.
    pub(crate) async fn wait(
        &self,
        ns: &str,
        name: &str,
        patience: Duration,
    ) -> Option<RegistryEntry> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let changed = self.changed.notified();
            if let Some(e) = self.get(ns, name) {
                return Some(e);
            }
            if self.settled() {
                return None;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.get(ns, name);
            }
        }
    }

    /// Every image the node's pods name.
    pub(crate) fn images(&self) -> Vec<String> {
        self.pods
            .read()
            .values()
            .flat_map(|e| e.images.iter().cloned())
            .collect()
    }
}

/// What every worker shares.
pub(crate) struct Context {
    pub(crate) client: kube::Client,
    pub(crate) node_name: String,
    pub(crate) host_ip: IpAddr,
    pub(crate) facts_hostname: String,
    pub(crate) runtime: runtime::Runtime,
    /// Wakes pod workers when their containers end.
    pub(crate) exits: runtime::ExitWatcher,
    pub(crate) images: images::ImageStore,
    pub(crate) network: net::PodNetwork,
    /// `DATA/pods`: per pod its volumes, logs, /etc files.
    pub(crate) pods_root: PathBuf,
    pub(crate) memory_capacity: u64,
    pub(crate) allocatable: BTreeMap<String, Quantity>,
    pub(crate) insecure_registries: Vec<String>,
    pub(crate) cluster_dns: Option<IpAddr>,
    pub(crate) cluster_domain: String,
    /// Every Service, for the variables containers get (kept by the Service
    /// proxy's watch).
    pub(crate) services: crate::env::Services,
    /// Events waiting to be published (see [`publish_events`]).
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<(ObjectReference, Event)>,
    pub(crate) registry: Registry,
    /// Stop signals of images, by container id (from the image config).
    pub(crate) stop_signals: Mutex<HashMap<String, nix::sys::signal::Signal>>,
}

impl Context {
    /// Publishes an event about a pod, as the kubelet. It is queued, not
    /// awaited: events go out in order on a task of their own, off the path
    /// of the container start they describe.
    pub(crate) fn event(&self, pod: &Pod, type_: EventType, reason: &str, message: &str) {
        let m = &pod.metadata;
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            ..ObjectReference::default()
        };
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(message.chars().take(1024).collect()),
            action: reason.into(),
            secondary: None,
        };
        let _ = self.events.send((reference, ev));
    }

    /// The signal that stops a container: its image's `StopSignal`, else
    /// SIGTERM.
    pub(crate) fn stop_signal(&self, id: &str) -> nix::sys::signal::Signal {
        self.stop_signals
            .lock()
            .get(id)
            .copied()
            .unwrap_or(nix::sys::signal::Signal::SIGTERM)
    }
}

/// Publishes queued events one after another, in the order they came.
pub(crate) async fn publish_events(
    recorder: Recorder,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<(ObjectReference, Event)>,
) {
    while let Some((reference, ev)) = queue.recv().await {
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::debug!(error = %e, reason = %ev.reason, "publishing a pod event");
        }
    }
}

struct Handle {
    tx: watch::Sender<Desired>,
    task: tokio::task::JoinHandle<()>,
}

/// Watches the pods bound to the node and keeps one worker per pod.
pub(crate) async fn run(ctx: Arc<Context>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut events = watcher::watcher(api, config).boxed();
    let mut workers: HashMap<String, Handle> = HashMap::new();
    let mut relisted: Vec<Pod> = Vec::new();
    // Containers found at start, by pod uid, for the workers to adopt.
    let mut found: Option<HashMap<String, Vec<runtime::ContainerRecord>>> = None;
    while let Some(event) = events.next().await {
        workers.retain(|_, h| !h.task.is_finished());
        match event {
            Ok(WatchEvent::Init) => relisted.clear(),
            Ok(WatchEvent::InitApply(pod)) => relisted.push(pod),
            Ok(WatchEvent::InitDone) => {
                let pods = std::mem::take(&mut relisted);
                let live: HashSet<String> =
                    pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
                if found.is_none() {
                    found = Some(adopt(&ctx, &live).await);
                    ctx.registry.expect(live.iter().cloned());
                }
                for (uid, h) in &workers {
                    if !live.contains(uid) {
                        let _ = h.tx.send(Desired::Gone);
                    }
                }
                for pod in pods {
                    dispatch(
                        &ctx,
                        &mut workers,
                        found.as_mut().expect("adopted above"),
                        pod,
                    );
                }
            }
            Ok(WatchEvent::Apply(pod)) => {
                let records = found.get_or_insert_with(HashMap::new);
                dispatch(&ctx, &mut workers, records, pod);
            }
            Ok(WatchEvent::Delete(pod)) => {
                if let Some(h) = pod.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                    let _ = h.tx.send(Desired::Gone);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "agent: watching the node's pods");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn dispatch(
    ctx: &Arc<Context>,
    workers: &mut HashMap<String, Handle>,
    found: &mut HashMap<String, Vec<runtime::ContainerRecord>>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    if let Some(h) = workers.get(&uid)
        && !h.task.is_finished()
    {
        let _ = h.tx.send(Desired::Pod(Box::new(pod)));
        return;
    }
    let records = found.remove(&uid).unwrap_or_default();
    let (tx, rx) = watch::channel(Desired::Pod(Box::new(pod.clone())));
    let worker = PodWorker::new(Arc::clone(ctx), pod, records);
    let task = tokio::spawn(worker.run(rx));
    workers.insert(uid, Handle { tx, task });
}

/// Lists what the runtime has; removes what belongs to no live pod;
/// answers the rest by pod uid.
async fn adopt(
    ctx: &Arc<Context>,
    live: &HashSet<String>,
) -> HashMap<String, Vec<runtime::ContainerRecord>> {
    let mut by_pod: HashMap<String, Vec<runtime::ContainerRecord>> = HashMap::new();
    match ctx.runtime.list_containers() {
        Ok(records) => {
            for r in records {
                let uid = r.labels.get(labels::POD_UID).cloned().unwrap_or_default();
                if live.contains(&uid) {
                    by_pod.entry(uid).or_default().push(r);
                } else {
                    tracing::info!(container = %r.id, "removing a container no pod owns");
                    if let Err(e) = ctx.runtime.remove_container(&r.id).await {
                        tracing::warn!(container = %r.id, error = %e, "removing an orphaned container");
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing the runtime's containers"),
    }
    let mut gone: HashSet<String> = HashSet::new();
    if let Ok(sandboxes) = ctx.runtime.list_sandboxes() {
        gone.extend(
            sandboxes
                .into_iter()
                .map(|s| s.pod_uid)
                .filter(|u| !live.contains(u)),
        );
    }
    if let Ok(allocations) = ctx.network.allocations() {
        gone.extend(
            allocations
                .into_iter()
                .map(|(u, _)| u)
                .filter(|u| !live.contains(u)),
        );
    }
    if let Ok(dirs) = std::fs::read_dir(&ctx.pods_root) {
        gone.extend(
            dirs.flatten()
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .filter(|u| !live.contains(u)),
        );
    }
    for uid in gone {
        tracing::info!(pod_uid = %uid, "removing what a deleted pod left on the node");
        let netns = ctx.runtime.sandbox(&uid).and_then(|s| s.netns);
        if let Err(e) = ctx.network.detach(&uid, netns.as_deref()).await {
            tracing::warn!(pod_uid = %uid, error = %e, "releasing an orphaned address");
        }
        let c = Arc::clone(ctx);
        let u = uid.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = c.runtime.remove_sandbox(&u) {
                tracing::warn!(pod_uid = %u, error = %e, "removing an orphaned sandbox");
            }
            if let Err(e) = crate::volumes::teardown(&c.pods_root, &u) {
                tracing::warn!(pod_uid = %u, error = %e, "removing orphaned volumes");
            }
            let _ = std::fs::remove_dir_all(c.pods_root.join(&u));
        })
        .await;
    }
    by_pod
}
