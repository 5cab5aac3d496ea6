//! Binds pods that have no node, as kube-scheduler does: pods wait in a
//! queue, each node is checked by the filter plugins, the nodes that pass
//! are ranked by the score plugins, and the pod is bound to the best through
//! `pods/<name>/binding`. A pod that fits nowhere gets a `FailedScheduling`
//! event and a `PodScheduled=False` condition saying why per node, and is
//! retried with back-off (1 s doubling to 10 s) or as soon as a node or a
//! placed pod changes. A pod of higher priority that fits nowhere may
//! evict pods of lower priority from one node (see `Cache::preempt`).
//!
//! The scheduler is a client of the API like any other; what it knows of the
//! cluster comes from watches (nodes, pods, persistent volume claims,
//! volumes, storage classes, namespaces, disruption budgets, and the
//! Services and controllers that default spreading counts by), kept in a
//! [`cache`] that also holds the pods it has bound but not yet seen bound,
//! so the next pod does not land on room already given away.

mod cache;
pub mod plugins;
mod queue;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as WatchEvent};
use parking_lot::Mutex;

use crate::cache::{Cache, Preemption};
use crate::plugins::{Filter, Owners, Score, default_filters, default_scores, pod_requests};
use crate::queue::{PodKey, Queue};

/// The name pods ask for in `spec.schedulerName` to be scheduled here.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// How many bindings may be in flight at once.
const BINDINGS_IN_FLIGHT: usize = 16;

/// Runs the scheduler until the task is dropped.
pub async fn run(client: kube::Client) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        cache: Mutex::new(Cache::default()),
        queue: Queue::default(),
        filters: default_filters(),
        scores: default_scores(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: SCHEDULER_NAME.into(),
                instance: None,
            },
        ),
        client: client.clone(),
        binding: Arc::new(tokio::sync::Semaphore::new(BINDINGS_IN_FLIGHT)),
        synced: tokio::sync::watch::Sender::new(0),
    });
    // In a JoinSet, so that dropping this future (a lost lease) aborts
    // every task, and the old leader schedules nothing more.
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watch_nodes(Arc::clone(&shared)));
    tasks.spawn(watch_pods(Arc::clone(&shared)));
    tasks.spawn(watch_claims(Arc::clone(&shared)));
    tasks.spawn(watch_persistent_volumes(Arc::clone(&shared)));
    tasks.spawn(watch_storage_classes(Arc::clone(&shared)));
    tasks.spawn(watch_namespaces(Arc::clone(&shared)));
    tasks.spawn(watch_budgets(Arc::clone(&shared)));
    tasks.spawn(watch_services(Arc::clone(&shared)));
    tasks.spawn(watch_controllers::<ReplicaSet>(
        Arc::clone(&shared),
        "ReplicaSet",
        |o| o.spec.map(|s| s.selector),
    ));
    tasks.spawn(watch_controllers::<StatefulSet>(
        Arc::clone(&shared),
        "StatefulSet",
        |o| o.spec.map(|s| s.selector),
    ));
    tasks.spawn(watch_controllers::<ReplicationController>(
        Arc::clone(&shared),
        "ReplicationController",
        |o| {
            let labels = o.spec?.selector?;
            Some(LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            })
        },
    ));
    let watches = tasks.len();
    tasks.spawn(schedule_loop(Arc::clone(&shared), watches));
    // The tasks end only when aborted; if one fails, so does the scheduler,
    // and the caller sees why.
    if let Some(result) = tasks.join_next().await {
        result?;
    }
    Ok(())
}

struct Shared {
    cache: Mutex<Cache>,
    queue: Queue,
    filters: Vec<Box<dyn Filter>>,
    scores: Vec<Box<dyn Score>>,
    recorder: Recorder,
    client: kube::Client,
    /// Bindings (with their events) in flight.
    binding: Arc<tokio::sync::Semaphore>,
    /// How many watches have listed their kind once: nothing is scheduled
    /// before all have, as kube-scheduler waits for its caches to sync.
    synced: tokio::sync::watch::Sender<usize>,
}

impl Shared {
    fn listed_once(&self, first: &mut bool) {
        if std::mem::take(first) {
            self.synced.send_modify(|n| *n += 1);
        }
    }
}

/// What a watch tells the cache: everything after a (re)list, or one object.
enum Change<K> {
    Listed(Vec<K>),
    Put(K),
    Removed(K),
}

/// A kind the scheduler mirrors from a watch of all of it.
trait Watched:
    kube::Resource<DynamicType = ()>
    + Clone
    + k8s_openapi::serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + 'static
{
}

impl<K> Watched for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static
{
}

/// Keeps one kind in the cache through `apply`, from a watch of all of it. With `retry`, a
/// change may let waiting pods fit (a node added, a claim bound or made, a volume or class
/// made, a namespace relabelled), so they are tried again.
async fn mirror<K: Watched>(s: Arc<Shared>, retry: bool, apply: impl Fn(&mut Cache, Change<K>)) {
    let api: Api<K> = Api::all(s.client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut relisted = Vec::new();
    let mut first = true;
    while let Some(event) = events.next().await {
        let change = match event {
            Ok(WatchEvent::Init) => {
                relisted.clear();
                continue;
            }
            Ok(WatchEvent::InitApply(o)) => {
                relisted.push(o);
                continue;
            }
            Ok(WatchEvent::InitDone) => Change::Listed(std::mem::take(&mut relisted)),
            Ok(WatchEvent::Apply(o)) => Change::Put(o),
            Ok(WatchEvent::Delete(o)) => Change::Removed(o),
            Err(e) => {
                tracing::warn!(kind = %K::kind(&()), error = %e, "scheduler: watch failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let listed = matches!(change, Change::Listed(_));
        apply(&mut s.cache.lock(), change);
        if listed {
            s.listed_once(&mut first);
        }
        if retry {
            s.queue.flush_backoff();
        }
    }
}

async fn watch_nodes(s: Arc<Shared>) {
    mirror::<Node>(s, true, |cache, change| match change {
        Change::Listed(all) => cache.replace_nodes(all),
        Change::Put(node) => cache.put_node(node),
        Change::Removed(node) => {
            cache.remove_node(node.metadata.name.as_deref().unwrap_or_default());
        }
    })
    .await;
}

async fn watch_claims(s: Arc<Shared>) {
    mirror::<PersistentVolumeClaim>(s, true, |cache, change| match change {
        Change::Listed(all) => cache.claims.replace_claims(all),
        Change::Put(c) => cache.claims.put_claim(c),
        Change::Removed(c) => cache.claims.remove_claim(&c),
    })
    .await;
}

async fn watch_persistent_volumes(s: Arc<Shared>) {
    mirror::<PersistentVolume>(s, true, |cache, change| match change {
        Change::Listed(all) => cache.claims.replace_volumes(all),
        Change::Put(v) => cache.claims.put_volume(v),
        Change::Removed(v) => cache.claims.remove_volume(&v),
    })
    .await;
}

async fn watch_storage_classes(s: Arc<Shared>) {
    mirror::<StorageClass>(s, true, |cache, change| match change {
        Change::Listed(all) => cache.claims.replace_classes(all),
        Change::Put(c) => cache.claims.put_class(c),
        Change::Removed(c) => cache.claims.remove_class(&c),
    })
    .await;
}

/// Namespaces' labels, for pod affinity terms with a `namespaceSelector`.
async fn watch_namespaces(s: Arc<Shared>) {
    fn entry(ns: Namespace) -> (String, BTreeMap<String, String>) {
        (
            ns.metadata.name.unwrap_or_default(),
            ns.metadata.labels.unwrap_or_default(),
        )
    }
    mirror::<Namespace>(s, true, |cache, change| match change {
        Change::Listed(all) => cache.namespaces = all.into_iter().map(entry).collect(),
        Change::Put(ns) => {
            let (name, labels) = entry(ns);
            cache.namespaces.insert(name, labels);
        }
        Change::Removed(ns) => {
            cache
                .namespaces
                .remove(ns.metadata.name.as_deref().unwrap_or_default());
        }
    })
    .await;
}

/// Services' selectors, for default spreading (scores only: no retry).
async fn watch_services(s: Arc<Shared>) {
    fn put(owners: &mut Owners, svc: Service) {
        let selector = svc.spec.and_then(|s| s.selector);
        let m = svc.metadata;
        owners.put_service(
            m.namespace.unwrap_or_default(),
            m.name.unwrap_or_default(),
            selector,
        );
    }
    mirror::<Service>(s, false, |cache, change| match change {
        Change::Listed(all) => {
            cache.owners.clear_services();
            for svc in all {
                put(&mut cache.owners, svc);
            }
        }
        Change::Put(svc) => put(&mut cache.owners, svc),
        Change::Removed(svc) => {
            let m = svc.metadata;
            cache
                .owners
                .remove_service(m.namespace.unwrap_or_default(), m.name.unwrap_or_default());
        }
    })
    .await;
}

/// One kind of controller's selectors, for default spreading (scores only:
/// no retry).
async fn watch_controllers<K: Watched>(
    s: Arc<Shared>,
    kind: &'static str,
    selector: fn(K) -> Option<LabelSelector>,
) {
    let put = move |owners: &mut Owners, o: K| {
        let m = o.meta().clone();
        let (namespace, name) = (m.namespace.unwrap_or_default(), m.name.unwrap_or_default());
        match selector(o) {
            Some(sel) => owners.put_controller(kind, namespace, name, sel),
            None => owners.remove_controller(kind, namespace, name),
        }
    };
    mirror::<K>(s, false, move |cache, change| match change {
        Change::Listed(all) => {
            cache.owners.clear_controllers(kind);
            for o in all {
                put(&mut cache.owners, o);
            }
        }
        Change::Put(o) => put(&mut cache.owners, o),
        Change::Removed(o) => {
            let m = o.meta().clone();
            cache.owners.remove_controller(
                kind,
                m.namespace.unwrap_or_default(),
                m.name.unwrap_or_default(),
            );
        }
    })
    .await;
}

/// PodDisruptionBudgets, which preemption tries not to break.
async fn watch_budgets(s: Arc<Shared>) {
    mirror::<PodDisruptionBudget>(s, false, |cache, change| match change {
        Change::Listed(all) => cache.replace_budgets(all),
        Change::Put(pdb) => cache.put_budget(&pdb),
        Change::Removed(pdb) => cache.remove_budget(&pdb),
    })
    .await;
}

async fn watch_pods(s: Arc<Shared>) {
    let api: Api<Pod> = Api::all(s.client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut relisted = Vec::new();
    let mut first = true;
    while let Some(event) = events.next().await {
        match event {
            Ok(WatchEvent::Init) => relisted.clear(),
            Ok(WatchEvent::InitApply(pod)) => relisted.push(pod),
            Ok(WatchEvent::InitDone) => {
                let pods = std::mem::take(&mut relisted);
                let pending = s.cache.lock().replace_pods(&pods);
                s.queue.replace(pending);
                s.listed_once(&mut first);
            }
            Ok(WatchEvent::Apply(pod)) => {
                let pending = s.cache.lock().put_pod(&pod);
                match pending {
                    Some(key) => s.queue.add(key, pod),
                    None => {
                        s.queue.forget(&PodKey::of(&pod));
                        // Room may have been freed (a pod finished).
                        if cache::is_terminal(&pod) {
                            s.queue.flush_backoff();
                        }
                    }
                }
            }
            Ok(WatchEvent::Delete(pod)) => {
                s.cache.lock().remove_pod(&pod);
                s.queue.forget(&PodKey::of(&pod));
                s.queue.flush_backoff();
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduler: watching pods");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn schedule_loop(s: Arc<Shared>, watches: usize) {
    let _ = s.synced.subscribe().wait_for(|n| *n >= watches).await;
    loop {
        let (key, pod) = s.queue.pop().await;
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        let requests = pod_requests(spec);
        let decision = {
            let mut cache = s.cache.lock();
            cache.choose(&pod, requests, &s.filters, &s.scores)
        };
        match decision {
            Ok(node) => {
                s.cache.lock().assume(&pod, &node, requests);
                // Binding is a round trip; the next pod need not wait for
                // it, but only so many are in flight, so that the client
                // reuses its connections instead of opening one per pod.
                let permit = Arc::clone(&s.binding)
                    .acquire_owned()
                    .await
                    .expect("the binding semaphore is never closed");
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    bind(&s, key, pod, node).await;
                    drop(permit);
                });
            }
            Err(message) => {
                let preemption = s.cache.lock().preempt(&pod, requests, &s.filters);
                let attempts = s.queue.back_off(key.clone(), pod.clone());
                tracing::debug!(pod = %key, %message, attempts, "unschedulable");
                report_unschedulable(&s, &pod, &message).await;
                if let Some(p) = preemption {
                    preempt(&s, &pod, p).await;
                }
            }
        }
    }
}

async fn bind(s: &Shared, key: PodKey, pod: Pod, node: String) {
    if let Err(message) = bind_claims(s, &key, &pod, &node).await {
        tracing::debug!(pod = %key, %message, "binding volumes failed");
        s.cache.lock().forget_assumed(&key.uid);
        let message = format!("running PreBind plugin \"VolumeBinding\": {message}");
        report_unschedulable(s, &pod, &message).await;
        s.queue.back_off(key, pod);
        return;
    }
    let api: Api<Pod> = Api::namespaced(s.client.clone(), &key.namespace);
    let binding = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": key.name, "namespace": key.namespace, "uid": key.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let result = api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &key.name,
            &PostParams::default(),
            &binding,
        )
        .await;
    match result {
        Ok(_) => {
            let note = format!(
                "Successfully assigned {}/{} to {node}",
                key.namespace, key.name
            );
            publish(s, &pod, EventType::Normal, "Scheduled", "Binding", note).await;
        }
        // Gone, or bound by someone else meanwhile: nothing to retry.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
            s.cache.lock().forget_assumed(&key.uid);
        }
        Err(e) => {
            tracing::warn!(pod = %key, error = %e, "binding failed");
            s.cache.lock().forget_assumed(&key.uid);
            s.queue.back_off(key, pod);
        }
    }
}

/// How long a bind waits for the volume binder to bind the pod's claims.
const CLAIMS_BOUND_WITHIN: Duration = Duration::from_secs(30);

/// Names `node` on the pod's claims that waited for it (WaitForFirstConsumer), then waits
/// until the volume binder has bound them all, as kube-scheduler's VolumeBinding PreBind.
async fn bind_claims(s: &Shared, key: &PodKey, pod: &Pod, node: &str) -> Result<(), String> {
    let waiting = s.cache.lock().claims.waiting_for(pod, &key.namespace);
    if waiting.is_empty() {
        return Ok(());
    }
    let api: Api<PersistentVolumeClaim> = Api::namespaced(s.client.clone(), &key.namespace);
    let patch = serde_json::json!({
        "metadata": {"annotations": {kinds::storage::SELECTED_NODE: node}}
    });
    for name in &waiting {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("annotating claim {name}: {e}"))?;
    }
    let deadline = tokio::time::Instant::now() + CLAIMS_BOUND_WITHIN;
    loop {
        let unbound: Vec<&String> = {
            let cache = s.cache.lock();
            let mut unbound = Vec::new();
            for name in &waiting {
                match cache.claims.is_bound(&key.namespace, name) {
                    Some(true) => {}
                    Some(false) => unbound.push(name),
                    None => return Err(format!("persistentvolumeclaim \"{name}\" not found")),
                }
            }
            unbound
        };
        if unbound.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "binding volumes: timed out waiting for claims {unbound:?} to be bound"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Nominates the node for the preemptor, then marks each victim
/// `DisruptionTarget` (so a Job's pod failure policy can tell preemption from
/// failure) and deletes it with its own grace period; the preemptor is
/// retried when they are gone (a deleted pod flushes the back-off).
async fn preempt(s: &Shared, pod: &Pod, p: Preemption) {
    let meta = &pod.metadata;
    let api: Api<Pod> = Api::namespaced(
        s.client.clone(),
        meta.namespace.as_deref().unwrap_or("default"),
    );
    let patch = serde_json::json!({"status": {"nominatedNodeName": p.node}});
    if let Err(e) = api
        .patch_status(
            meta.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        tracing::debug!(error = %e, "writing nominatedNodeName");
    }
    let scheduler = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.scheduler_name.as_deref())
        .unwrap_or("default-scheduler");
    for v in p.victims {
        let victims: Api<Pod> = Api::namespaced(s.client.clone(), &v.namespace);
        let disrupted = serde_json::json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": chrono_now(),
        }]}});
        if let Err(e) = victims
            .patch_status(
                &v.name,
                &PatchParams::default(),
                &Patch::Strategic(disrupted),
            )
            .await
        {
            tracing::debug!(pod = %v, error = %e, "marking a preemption victim");
        }
        // Only this pod, as the scheduler saw it.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(v.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match victims.delete(&v.name, &params).await {
            Ok(_) => {
                let victim = Pod {
                    metadata: kube::api::ObjectMeta {
                        name: Some(v.name.clone()),
                        namespace: Some(v.namespace.clone()),
                        uid: Some(v.uid.clone()),
                        ..Default::default()
                    },
                    ..Pod::default()
                };
                let note = format!(
                    "Preempted by pod {} on node {}",
                    meta.uid.as_deref().unwrap_or_default(),
                    p.node
                );
                publish(
                    s,
                    &victim,
                    EventType::Normal,
                    "Preempted",
                    "Preempting",
                    note,
                )
                .await;
            }
            Err(e) => tracing::debug!(pod = %v, error = %e, "deleting a preemption victim"),
        }
    }
}

/// Writes `PodScheduled=False` first and the event after it, so whoever sees
/// the event also sees the condition.
async fn report_unschedulable(s: &Shared, pod: &Pod, message: &str) {
    write_unschedulable(s, pod, message).await;
    publish(
        s,
        pod,
        EventType::Warning,
        "FailedScheduling",
        "Scheduling",
        message.to_owned(),
    )
    .await;
}

async fn write_unschedulable(s: &Shared, pod: &Pod, message: &str) {
    let meta = &pod.metadata;
    let api: Api<Pod> = Api::namespaced(
        s.client.clone(),
        meta.namespace.as_deref().unwrap_or("default"),
    );
    let already = pod
        .status
        .as_ref()
        .and_then(|st| st.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.message.as_deref() == Some(message)
        });
    if already {
        return;
    }
    let now = chrono_now();
    let patch = serde_json::json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": now,
    }]}});
    if let Err(e) = api
        .patch_status(
            meta.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        tracing::debug!(error = %e, "writing PodScheduled=False");
    }
}

async fn publish(
    s: &Shared,
    pod: &Pod,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let meta = &pod.metadata;
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectReference::default()
    };
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = s.recorder.publish(&event, &reference).await {
        tracing::debug!(error = %e, "publishing a scheduler event");
    }
}

/// The time now as Kubernetes writes it (RFC 3339, seconds, UTC).
fn chrono_now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
