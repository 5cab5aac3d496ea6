//! The DaemonSet controller: one pod of the template on every node the
//! template may run on (node selector, required node affinity, taints
//! against tolerations), made when a node becomes eligible and deleted when
//! it no longer is, rolled to a new template within `maxUnavailable` and
//! `maxSurge`, with the counts kubectl reads in the status.
//!
//! As with kube-controller-manager, the pods are not bound here: each gets
//! a required node affinity for its node's name and the scheduler binds it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Value, json};

use crate::deployment::template_hash;
use crate::events::Events;
use crate::informers::Informers;
use crate::owners::{self, controller_ref, controller_uid, settle};
use crate::replicaset::{is_ready, ready_since};
use crate::revisions::{self, POD_REVISION_LABEL};
use crate::selector;

/// The label daemon pods carry their DaemonSet's template generation in.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// How often every DaemonSet is looked at again without a change.
const RESYNC: Duration = Duration::from_secs(30);
/// The first and the longest wait before a failed daemon pod is replaced.
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the DaemonSet has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    events: Events,
    /// Per DaemonSet uid and node, when a failed pod may next be replaced
    /// and how long the wait after that one will be.
    backoff: Mutex<HashMap<(String, String), (Instant, Duration)>>,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let client = informers.client();
    let sets = informers.get::<DaemonSet>().await;
    let pods = informers.get::<Pod>().await;
    let nodes = informers.get::<Node>().await;
    let revisions = informers.get::<ControllerRevision>().await;
    let ctx = Arc::new(Ctx {
        events: Events::new(client.clone(), "daemonset-controller"),
        client,
        pods: pods.store(),
        nodes: nodes.store(),
        revisions: revisions.store(),
        backoff: Mutex::default(),
    });
    let for_pods = sets.store();
    let for_nodes = sets.store();
    Controller::for_stream(sets.stream(), sets.store())
        .watches_stream(pods.stream(), move |pod: Pod| {
            owners::owners_to_wake(&for_pods, &pod, selects)
        })
        // A node that comes, goes or changes may change where every
        // DaemonSet runs.
        .watches_stream(nodes.stream(), move |_: Node| {
            for_nodes
                .state()
                .iter()
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(revisions.stream(), |r: ControllerRevision| {
            owners::controller_of::<DaemonSet>(&r.metadata)
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "daemonset reconcile");
            }
            std::future::ready(())
        })
        .await;
    anyhow::bail!("the daemonset controller ended")
}

fn selects(ds: &DaemonSet, pod: &Pod) -> bool {
    ds.spec.as_ref().is_some_and(|s| {
        !selector::is_empty(&s.selector) && selector::matches(&s.selector, pod.labels())
    })
}

fn error_policy(ds: Arc<DaemonSet>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(daemonset = %ds.name_any(), %error, "daemonset sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

// ---- where daemon pods run -----------------------------------------------

/// The tolerations every daemon pod gets, so that node conditions do not
/// evict it or keep it off its node.
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    };
    let mut out = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        out.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    out
}

/// The template's pod spec with the daemon tolerations added (those it
/// does not already have).
fn with_daemon_tolerations(mut spec: PodSpec) -> PodSpec {
    let mut tolerations = spec.tolerations.take().unwrap_or_default();
    for t in daemon_tolerations(spec.host_network == Some(true)) {
        let have = tolerations
            .iter()
            .any(|h| h.key == t.key && h.effect == t.effect);
        if !have {
            tolerations.push(t);
        }
    }
    spec.tolerations = Some(tolerations);
    spec
}

fn requirement_holds(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|w| w == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|w| w == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// Whether a node satisfies a required node selector: any term whose
/// every expression (on labels) and field (on the name) holds.
fn node_selector_holds(selector: &NodeSelector, node: &Node) -> bool {
    let labels = node.labels();
    let name = node.name_any();
    selector.node_selector_terms.iter().any(|term| {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        (!exprs.is_empty() || !fields.is_empty())
            && exprs
                .iter()
                .all(|r| requirement_holds(r, labels.get(&r.key).map(String::as_str)))
            && fields.iter().all(|r| {
                let v = (r.key == "metadata.name").then_some(name.as_str());
                requirement_holds(r, v)
            })
    })
}

/// Whether a daemon pod should be made on `node`, and whether one already
/// there may stay (a `NoSchedule` taint keeps new pods off but lets
/// running ones be; `NoExecute` does neither).
pub fn placement(spec: &PodSpec, node: &Node) -> (bool, bool) {
    let labels = node.labels();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let affinity_ok = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|s| node_selector_holds(s, node));
    if !selector_ok || !affinity_ok {
        return (false, false);
    }
    let spec = with_daemon_tolerations(spec.clone());
    let tolerations = spec.tolerations.unwrap_or_default();
    let untolerated = |effect: &str| {
        node.spec
            .iter()
            .flat_map(|s| s.taints.iter().flatten())
            .filter(|t| t.effect == effect)
            .any(|t| {
                !tolerations
                    .iter()
                    .any(|o| scheduler::plugins::tolerates(o, t))
            })
    };
    if untolerated("NoExecute") {
        (false, false)
    } else if untolerated("NoSchedule") {
        (false, true)
    } else {
        (true, true)
    }
}

/// The node a daemon pod is for: where it is bound, or else the node its
/// name affinity asks for.
fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// The pod for `node` from `ds`'s template: daemon tolerations, a required
/// affinity for the node's name (replacing the template's), and the
/// revision labels.
fn pod_for(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(POD_REVISION_LABEL.into(), hash.into());
    if let Some(g) = ds.annotations().get(TEMPLATE_GENERATION_ANNOTATION) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.clone());
    }
    let mut spec = with_daemon_tolerations(template.spec.unwrap_or_default());
    let name_term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
    };
    let mut affinity = spec.affinity.take().unwrap_or_default();
    affinity.node_affinity = Some(NodeAffinity {
        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
            node_selector_terms: vec![name_term],
        }),
        ..affinity.node_affinity.unwrap_or_default()
    });
    spec.affinity = Some(affinity);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.name_any())),
            namespace: ds.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(ds)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// A DaemonSet revision's name hash: the template's hash, as for the
/// ReplicaSets of a Deployment.
fn template_data_hash(data: &Value, collisions: i32) -> String {
    let rev = ControllerRevision {
        data: Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(
            data.clone(),
        )),
        ..ControllerRevision::default()
    };
    template_hash(&revisions::template_of(&rev), Some(collisions))
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn is_available(p: &Pod, min_ready: i64, now: chrono::DateTime<chrono::Utc>) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && ready_since(p).is_some_and(|since| (now - since).num_seconds() >= min_ready)
}

/// `maxSurge` or `maxUnavailable` as a pod count for `desired` nodes
/// (percentages round up).
fn scaled(v: Option<&IntOrString>, desired: i32, default: i32) -> i32 {
    match v {
        None => default,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
                Some(p) => ((i64::from(desired) * p + 99) / 100) as i32,
                None => s.parse().unwrap_or(default),
            }
        }
    }
}

// ---- the sync ------------------------------------------------------------

/// What one sync does to pods: make them on nodes, delete them.
#[derive(Default)]
struct Plan {
    create: Vec<String>,
    delete: Vec<Arc<Pod>>,
    /// When a failed pod's back-off ends and the set should be looked at.
    wake: Option<Duration>,
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = ds.namespace().ok_or(Error::NoNamespace)?;
    let uid = ds.uid().unwrap_or_default();
    let spec = ds.spec.clone().unwrap_or_default();
    if ds.metadata.deletion_timestamp.is_some() || selector::is_empty(&spec.selector) {
        return Ok(Action::await_change());
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);

    // Adopt orphans the selector matches; release children it no longer does.
    owners::claim_pods(&pods_api, &ctx.pods, ds.as_ref(), |p| selects(&ds, p)).await?;

    let collisions = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let history = revisions::sync(
        &ctx.client,
        &ctx.revisions,
        ds.as_ref(),
        &spec.template,
        collisions,
        &revisions::Naming {
            hash: template_data_hash,
            hash_label: POD_REVISION_LABEL,
        },
    )
    .await?;
    let hash = history
        .update
        .labels()
        .get(POD_REVISION_LABEL)
        .cloned()
        .unwrap_or_default();

    let mine = |pods: &[Arc<Pod>]| -> BTreeMap<String, Vec<Arc<Pod>>> {
        let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for p in pods {
            if p.metadata.namespace.as_deref() != Some(ns.as_str())
                || controller_uid(&p.metadata) != Some(uid.as_str())
                || p.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            by_node
                .entry(node_of(p).unwrap_or_default())
                .or_default()
                .push(p.clone());
        }
        for pods in by_node.values_mut() {
            pods.sort_by(|a, b| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            });
        }
        by_node
    };
    let nodes: Vec<Arc<Node>> = ctx.nodes.state();
    let template_spec = spec.template.spec.clone().unwrap_or_default();
    let placements: BTreeMap<String, (bool, bool)> = nodes
        .iter()
        .map(|n| (n.name_any(), placement(&template_spec, n)))
        .collect();
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0).max(0));
    let now = chrono::Utc::now();
    let by_node = mine(&ctx.pods.state());
    let is_new = |p: &Pod| p.labels().get(POD_REVISION_LABEL) == Some(&hash);

    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref() != Some("OnDelete");
    let desired = placements.values().filter(|(run, _)| *run).count() as i32;
    let ru = strategy.rolling_update.clone().unwrap_or_default();
    let surge = if rolling {
        scaled(ru.max_surge.as_ref(), desired, 0).max(0)
    } else {
        0
    };
    let mut max_unavailable = scaled(ru.max_unavailable.as_ref(), desired, 1).max(0);
    if surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }

    let mut plan = Plan::default();
    for (node, pods) in &by_node {
        let (run, stay) = placements.get(node).copied().unwrap_or((false, false));
        // Failed pods go (after a back-off per node), to be made again.
        let (failed, live): (Vec<_>, Vec<_>) = pods
            .iter()
            .cloned()
            .partition(|p| phase(p) == Some("Failed"));
        if !failed.is_empty() && run {
            let key = (uid.clone(), node.clone());
            let mut backoff = ctx.backoff.lock().expect("backoff poisoned");
            let (until, delay) = backoff
                .get(&key)
                .copied()
                .unwrap_or((Instant::now(), BACKOFF_START));
            if Instant::now() < until {
                let left = until - Instant::now();
                plan.wake = Some(plan.wake.map_or(left, |w| w.min(left)));
            } else {
                backoff.insert(key, (Instant::now() + delay, (delay * 2).min(BACKOFF_MAX)));
                plan.delete.extend(failed.iter().cloned());
            }
        } else {
            plan.delete.extend(failed.iter().cloned());
        }
        if !(run || stay && !live.is_empty()) {
            plan.delete.extend(live);
            continue;
        }
        // At most one pod a node: with surge, one new and one old while the
        // new one becomes available.
        let (new, old): (Vec<_>, Vec<_>) = live.into_iter().partition(|p| is_new(p));
        let keep_old = if surge > 0 && !new.is_empty() { 1 } else { 0 };
        if new.len() > 1 {
            plan.delete.extend(new[1..].iter().cloned());
        }
        let old_keep = if new.is_empty() { 1 } else { keep_old };
        if old.len() > old_keep {
            plan.delete.extend(old[old_keep..].iter().cloned());
        }
    }
    for (node, (run, _)) in &placements {
        let has = by_node
            .get(node)
            .is_some_and(|pods| pods.iter().any(|p| phase(p) != Some("Failed")));
        if *run && !has {
            plan.create.push(node.clone());
        }
    }
    // Nodes no longer there take their pods with them.
    for (node, pods) in &by_node {
        if !placements.contains_key(node) {
            plan.delete.extend(pods.iter().cloned());
        }
    }

    if rolling {
        roll(
            &mut plan,
            &by_node,
            &placements,
            &is_new,
            surge,
            max_unavailable,
            min_ready,
            now,
        );
    }
    execute(&ds, &ctx, &pods_api, &plan, &hash).await?;

    // Status from what the cache shows now.
    let by_node = mine(&ctx.pods.state());
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: Some(history.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..DaemonSetStatus::default()
    };
    let mut next_available: Option<Duration> = None;
    for (node, (run, _)) in &placements {
        let pods: Vec<&Arc<Pod>> = by_node.get(node).into_iter().flatten().collect();
        if !run {
            if !pods.is_empty() {
                status.number_misscheduled += 1;
            }
            continue;
        }
        status.desired_number_scheduled += 1;
        let Some(pod) = pods.iter().find(|p| is_new(p)).or(pods.first()) else {
            continue;
        };
        status.current_number_scheduled += 1;
        if is_ready(pod) {
            status.number_ready += 1;
            if is_available(pod, min_ready, now) {
                *status.number_available.get_or_insert(0) += 1;
            } else if let Some(since) = ready_since(pod) {
                let left =
                    Duration::from_secs((min_ready - (now - since).num_seconds()).max(0) as u64);
                next_available = Some(next_available.map_or(left, |n| n.min(left)));
            }
        }
        if is_new(pod) {
            *status.updated_number_scheduled.get_or_insert(0) += 1;
        }
    }
    let available = status.number_available.unwrap_or(0);
    status.number_available = Some(available);
    status.updated_number_scheduled = Some(status.updated_number_scheduled.unwrap_or(0));
    status.number_unavailable = Some((status.desired_number_scheduled - available).max(0));
    if ds.status.as_ref() != Some(&status) {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &ds.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }

    let mut live: HashSet<String> = HashSet::new();
    live.insert(history.update.name_any());
    for pods in by_node.values() {
        for p in pods {
            if let Some(h) = p.labels().get(POD_REVISION_LABEL) {
                live.insert(revisions::revision_name(&ds.name_any(), h));
            }
        }
    }
    revisions::truncate(
        &ctx.client,
        &history,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;

    let wait = [
        plan.wake,
        next_available.map(|w| w + Duration::from_millis(100)),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(RESYNC);
    Ok(Action::requeue(wait))
}

/// Adds to `plan` the old pods a rolling update may replace now.
#[allow(clippy::too_many_arguments)]
fn roll(
    plan: &mut Plan,
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    placements: &BTreeMap<String, (bool, bool)>,
    is_new: &dyn Fn(&Pod) -> bool,
    surge: i32,
    max_unavailable: i32,
    min_ready: i64,
    now: chrono::DateTime<chrono::Utc>,
) {
    let doomed: HashSet<String> = plan.delete.iter().filter_map(|p| p.uid()).collect();
    let mut unavailable = 0;
    let mut surging = 0;
    // Nodes whose only pod is old and available, to be replaced within the
    // budget.
    let mut replaceable: Vec<(String, Arc<Pod>)> = Vec::new();
    for (node, (run, _)) in placements {
        if !run {
            continue;
        }
        let pods: Vec<&Arc<Pod>> = by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter(|p| phase(p) != Some("Failed"))
            .filter(|p| !doomed.contains(&p.uid().unwrap_or_default()))
            .collect();
        let new = pods.iter().find(|p| is_new(p));
        let old = pods.iter().find(|p| !is_new(p));
        match (new, old) {
            (None, None) => unavailable += 1,
            (Some(n), None) => {
                if !is_available(n, min_ready, now) {
                    unavailable += 1;
                }
            }
            (Some(n), Some(o)) => {
                if is_available(n, min_ready, now) {
                    plan.delete.push(Arc::clone(o));
                } else {
                    surging += 1;
                }
            }
            (None, Some(o)) => {
                if !is_available(o, min_ready, now) {
                    plan.delete.push(Arc::clone(o));
                    unavailable += 1;
                } else {
                    replaceable.push((node.clone(), Arc::clone(o)));
                }
            }
        }
    }
    for (node, old) in replaceable {
        if surge > 0 {
            if surging < surge {
                plan.create.push(node);
                surging += 1;
            }
        } else if unavailable < max_unavailable {
            plan.delete.push(old);
            unavailable += 1;
        }
    }
}

async fn execute(
    ds: &DaemonSet,
    ctx: &Ctx,
    api: &Api<Pod>,
    plan: &Plan,
    hash: &str,
) -> Result<(), Error> {
    let mut made = Vec::new();
    let mut gone = Vec::new();
    let mut failure = None;
    let mut seen = HashSet::new();
    for p in &plan.delete {
        let uid = p.uid().unwrap_or_default();
        if !seen.insert(uid.clone()) {
            continue;
        }
        if phase(p) == Some("Failed") {
            ctx.events
                .publish(
                    ds,
                    EventType::Warning,
                    "FailedDaemonPod",
                    format!(
                        "Found failed daemon pod {}/{} on node {}, will try to kill it",
                        p.namespace().unwrap_or_default(),
                        p.name_any(),
                        node_of(p).unwrap_or_default()
                    ),
                )
                .await;
        }
        match api.delete(&p.name_any(), &DeleteParams::default()).await {
            Ok(_) => {
                gone.push(uid);
                ctx.events
                    .publish(
                        ds,
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.name_any()),
                    )
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => failure = Some(e),
        }
    }
    for node in &plan.create {
        let result = api
            .create(&PostParams::default(), &pod_for(ds, hash, node))
            .await;
        ctx.events.pod_create(ds, &result).await;
        match result {
            Ok(p) => made.push(p.uid().unwrap_or_default()),
            Err(e) => failure = Some(e),
        }
    }
    if !made.is_empty() || !gone.is_empty() {
        settle(&ctx.pods, |pods| {
            made.iter()
                .all(|u| pods.iter().any(|p| p.uid().as_deref() == Some(u.as_str())))
                && pods
                    .iter()
                    .filter(|p| p.uid().is_some_and(|u| gone.contains(&u)))
                    .all(|p| p.metadata.deletion_timestamp.is_some())
        })
        .await;
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v: Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    fn spec(v: Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn placement_follows_selectors_affinity_and_taints() {
        let plain = spec(json!({"containers": [{"name": "c"}]}));
        let n = node(json!({"metadata": {"name": "n1", "labels": {"disk": "ssd", "cores": "8"}}}));
        assert_eq!(placement(&plain, &n), (true, true));
        let picky = spec(json!({"containers": [], "nodeSelector": {"disk": "hdd"}}));
        assert_eq!(placement(&picky, &n), (false, false));
        let affine = spec(json!({"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}
        ]}}}}));
        assert_eq!(placement(&affine, &n), (true, true));
        let by_name = spec(json!({"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
        ]}}}}));
        assert_eq!(placement(&by_name, &n), (false, false));

        let tainted = |effect: &str, key: &str| {
            node(json!({"metadata": {"name": "n1"},
                        "spec": {"taints": [{"key": key, "effect": effect}]}}))
        };
        assert_eq!(
            placement(&plain, &tainted("NoSchedule", "x")),
            (false, true)
        );
        assert_eq!(
            placement(&plain, &tainted("NoExecute", "x")),
            (false, false)
        );
        assert_eq!(
            placement(&plain, &tainted("PreferNoSchedule", "x")),
            (true, true)
        );
        // The daemon tolerations let pods onto unschedulable and not-ready nodes.
        assert_eq!(
            placement(
                &plain,
                &tainted("NoSchedule", "node.kubernetes.io/unschedulable")
            ),
            (true, true)
        );
        assert_eq!(
            placement(
                &plain,
                &tainted("NoExecute", "node.kubernetes.io/not-ready")
            ),
            (true, true)
        );
        let tolerant = spec(json!({"containers": [],
            "tolerations": [{"key": "x", "operator": "Exists"}]}));
        assert_eq!(
            placement(&tolerant, &tainted("NoExecute", "x")),
            (true, true)
        );
    }

    #[test]
    fn host_network_pods_tolerate_an_unavailable_network() {
        let keys = |host| -> Vec<String> {
            daemon_tolerations(host)
                .into_iter()
                .map(|t| t.key.unwrap())
                .collect()
        };
        assert!(!keys(false).contains(&"node.kubernetes.io/network-unavailable".into()));
        assert!(keys(true).contains(&"node.kubernetes.io/network-unavailable".into()));
    }

    #[test]
    fn surge_and_unavailability_scale_up() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled(Some(&pct), 5, 0), 2);
        assert_eq!(scaled(Some(&IntOrString::Int(3)), 5, 0), 3);
        assert_eq!(scaled(None, 5, 1), 1);
    }
}
