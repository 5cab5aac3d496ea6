//! The Deployment controller: one ReplicaSet per revision of the pod
//! template, rolled from the old to the new as the strategy says, and the
//! rollout's progress written to the Deployment's status.
//!
//! It follows kube-controller-manager's controller closely, because kubectl
//! reads what it writes: `rollout status` reads the status counters and the
//! `Progressing` condition, `rollout history` and `rollout undo` read the
//! ReplicaSets' `deployment.kubernetes.io/revision` and
//! `kubernetes.io/change-cause` annotations, and `undo` puts an old
//! ReplicaSet's template back on the Deployment, which then finds that
//! ReplicaSet again (templates are compared without the `pod-template-hash`
//! label) and gives it the next revision.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, ReplicaSet,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Value, json};

use crate::events::Events;
use crate::informers::Informers;
use crate::owners::{self, caught_up, controller_ref, controller_uid, settle};
use crate::selector;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
/// Annotations of a Deployment that are not copied to its ReplicaSets.
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// How often every Deployment is looked at again without a change.
const RESYNC: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the Deployment has no namespace")]
    NoNamespace,
    #[error("replica set name {0} is taken by another template; trying the next hash")]
    HashCollision(String),
}

struct Ctx {
    client: kube::Client,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    events: Events,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let client = informers.client();
    let deployments = informers.get::<Deployment>().await;
    let replicasets = informers.get::<ReplicaSet>().await;
    let pods = informers.get::<Pod>().await;
    let ctx = Arc::new(Ctx {
        events: Events::new(client.clone(), "deployment-controller"),
        client,
        replicasets: replicasets.store(),
        pods: pods.store(),
    });
    let d_store = deployments.store();
    let rs_owner = d_store.clone();
    let rs_store = replicasets.store();
    Controller::for_stream(deployments.stream(), deployments.store())
        .watches_stream(replicasets.stream(), move |rs: ReplicaSet| {
            owners_of(&rs_owner, &rs.metadata, rs.labels())
        })
        // Pods matter only to Recreate, which waits for the old ones to end.
        .watches_stream(pods.stream(), move |pod: Pod| {
            recreating_owner(&d_store, &rs_store, &pod)
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "deployment reconcile");
            }
            std::future::ready(())
        })
        .await;
    anyhow::bail!("the deployment controller ended")
}

/// The Deployment controlling a ReplicaSet, or, for an orphan, every
/// Deployment of its namespace whose selector matches it.
fn owners_of(
    deployments: &Store<Deployment>,
    meta: &ObjectMeta,
    labels: &BTreeMap<String, String>,
) -> Vec<ObjectRef<Deployment>> {
    let ns = meta.namespace.clone().unwrap_or_default();
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    match controller {
        Some(r) if r.kind == "Deployment" && r.api_version.starts_with("apps/") => {
            vec![ObjectRef::new(&r.name).within(&ns)]
        }
        Some(_) => Vec::new(),
        None => deployments
            .state()
            .iter()
            .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
            .filter(|d| {
                d.spec.as_ref().is_some_and(|s| {
                    !selector::is_empty(&s.selector) && selector::matches(&s.selector, labels)
                })
            })
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect(),
    }
}

fn recreating_owner(
    deployments: &Store<Deployment>,
    replicasets: &Store<ReplicaSet>,
    pod: &Pod,
) -> Option<ObjectRef<Deployment>> {
    let ns = pod.namespace()?;
    let rs_ref = pod
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true) && r.kind == "ReplicaSet")?;
    let rs = replicasets.get(&ObjectRef::new(&rs_ref.name).within(&ns))?;
    let d_ref = rs
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true) && r.kind == "Deployment")?;
    let d_ref = ObjectRef::new(&d_ref.name).within(&ns);
    let d = deployments.get(&d_ref)?;
    let recreate = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate");
    recreate.then_some(d_ref)
}

fn error_policy(d: Arc<Deployment>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(deployment = %d.name_any(), %error, "deployment sync failed; retrying");
    match error {
        Error::HashCollision(_) => Action::requeue(Duration::from_millis(100)),
        _ => Action::requeue(Duration::from_secs(1)),
    }
}

// ---- reading ReplicaSets -------------------------------------------------

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.replicas,
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    })
}

fn revision_of(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.annotations().get(key).and_then(|v| v.parse().ok())
}

/// The template as JSON, without the `pod-template-hash` label.
fn template_without_hash(t: Option<&PodTemplateSpec>) -> Value {
    let mut v = serde_json::to_value(t.cloned().unwrap_or_default()).unwrap_or_default();
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            v["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
    if v.get("metadata")
        .and_then(Value::as_object)
        .is_some_and(|m| m.is_empty())
    {
        v.as_object_mut().map(|m| m.remove("metadata"));
    }
    v
}

/// kube-controller-manager's name suffix: a 32-bit FNV-1a hash of the
/// template (and collision count), its decimal digits spelled with letters
/// and digits that make no words.
pub fn template_hash(template: &PodTemplateSpec, collisions: Option<i32>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(template_without_hash(Some(template)).to_string().as_bytes());
    if let Some(c) = collisions {
        feed(&c.to_le_bytes());
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// `maxSurge` and `maxUnavailable` as pod counts for `replicas`: surge
/// rounds up, unavailability down, and both zero means one unavailable.
fn fenceposts(spec: &DeploymentSpec, replicas: i32) -> (i32, i32) {
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let resolve = |v: Option<&IntOrString>, up: bool| -> i32 {
        match v {
            None => scaled(replicas, 25, up),
            Some(IntOrString::Int(n)) => *n,
            Some(IntOrString::String(s)) => {
                match s.strip_suffix('%').and_then(|p| p.parse().ok()) {
                    Some(p) => scaled(replicas, p, up),
                    None => s.parse().unwrap_or(0),
                }
            }
        }
    };
    let surge = resolve(rolling.and_then(|r| r.max_surge.as_ref()), true).max(0);
    let unavailable = resolve(rolling.and_then(|r| r.max_unavailable.as_ref()), false).max(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn scaled(replicas: i32, percent: i32, up: bool) -> i32 {
    let n = i64::from(replicas) * i64::from(percent);
    (if up { (n + 99) / 100 } else { n / 100 }) as i32
}

fn is_recreate(spec: &DeploymentSpec) -> bool {
    spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

fn now() -> Time {
    Time(Timestamp::now())
}

// ---- conditions ----------------------------------------------------------

fn condition<'a>(conds: &'a [DeploymentCondition], type_: &str) -> Option<&'a DeploymentCondition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Sets a condition as Kubernetes does: unchanged if status and reason are
/// the same, the transition time kept if only the reason changed, and the
/// condition moved to the end of the list.
fn set_condition(
    conds: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) {
    let old = conds.iter().position(|c| c.type_ == type_);
    if let Some(i) = old
        && conds[i].status == status
        && conds[i].reason.as_deref() == Some(reason)
    {
        return;
    }
    let t = now();
    let transition = old
        .filter(|i| conds[*i].status == status)
        .and_then(|i| conds[i].last_transition_time.clone())
        .unwrap_or_else(|| t.clone());
    if let Some(i) = old {
        conds.remove(i);
    }
    conds.push(DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(t),
        last_transition_time: Some(transition),
    });
}

// ---- the sync ------------------------------------------------------------

/// One reconcile of one Deployment: the ReplicaSets it controls (updated in
/// place as it writes them) and the conditions it will write.
struct Rollout<'a> {
    d: &'a Deployment,
    spec: DeploymentSpec,
    ctx: &'a Ctx,
    api: Api<ReplicaSet>,
    rss: Vec<ReplicaSet>,
    /// Index into `rss` of the ReplicaSet whose template is the Deployment's.
    new: Option<usize>,
    conditions: Vec<DeploymentCondition>,
    collisions: Option<i32>,
    /// The revision the Deployment's annotation should say.
    revision: Option<i64>,
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = d.namespace().ok_or(Error::NoNamespace)?;
    let spec = d.spec.clone().unwrap_or_default();
    // Being deleted: the garbage collector takes the ReplicaSets.
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if selector::is_empty(&spec.selector) {
        ctx.events
            .publish(
                d.as_ref(),
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            )
            .await;
        return Ok(Action::await_change());
    }
    let mut s = Rollout {
        d: &d,
        api: Api::namespaced(ctx.client.clone(), &ns),
        rss: claim_replicasets(&d, &spec.selector, &ctx, &ns).await?,
        spec,
        ctx: &ctx,
        new: None,
        conditions: d
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default(),
        collisions: d.status.as_ref().and_then(|s| s.collision_count),
        revision: None,
    };
    let name = d.name_any();
    let paused = s.spec.paused == Some(true);
    let progressing_reason = condition(&s.conditions, "Progressing").and_then(|c| c.reason.clone());
    if s.has_deadline() {
        if paused && progressing_reason.as_deref() != Some("DeploymentPaused") {
            set_condition(
                &mut s.conditions,
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
            );
        } else if !paused && progressing_reason.as_deref() == Some("DeploymentPaused") {
            set_condition(
                &mut s.conditions,
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
            );
        }
    }

    let result = if paused || s.is_scaling_event() {
        s.find_new(false).await?;
        s.scale().await?;
        if paused {
            s.cleanup().await?;
        }
        s.write_status(false).await
    } else if is_recreate(&s.spec) {
        s.recreate().await
    } else {
        s.rolling().await
    };
    if let Err(e) = &result {
        tracing::debug!(deployment = %name, error = %e, "deployment sync");
    }
    result
}

/// The ReplicaSets the Deployment controls, after adopting orphans its
/// selector matches and releasing those it no longer matches.
async fn claim_replicasets(
    d: &Deployment,
    sel: &LabelSelector,
    ctx: &Ctx,
    ns: &str,
) -> Result<Vec<ReplicaSet>, Error> {
    let uid = d.uid().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let in_ns: Vec<Arc<ReplicaSet>> = ctx
        .replicasets
        .state()
        .into_iter()
        .filter(|rs| rs.metadata.namespace.as_deref() == Some(ns))
        .collect();
    let mut changed = Vec::new();
    for rs in &in_ns {
        let matches = selector::matches(sel, rs.labels());
        match controller_uid(&rs.metadata) {
            None if matches && rs.metadata.deletion_timestamp.is_none() => {
                owners::adopt(&api, rs.as_ref(), d).await?;
                changed.push(rs.uid().unwrap_or_default());
            }
            Some(owner) if owner == uid && !matches => {
                owners::release(&api, rs.as_ref(), &uid).await?;
                changed.push(rs.uid().unwrap_or_default());
            }
            _ => {}
        }
    }
    if !changed.is_empty() {
        settle(&ctx.replicasets, |all| {
            changed.iter().all(|u| {
                all.iter()
                    .find(|rs| rs.uid().as_deref() == Some(u.as_str()))
                    .is_none_or(|rs| {
                        let mine = controller_uid(&rs.metadata) == Some(uid.as_str());
                        mine == selector::matches(sel, rs.labels())
                    })
            })
        })
        .await;
    }
    let mut mine: Vec<ReplicaSet> = ctx
        .replicasets
        .state()
        .into_iter()
        .filter(|rs| rs.metadata.namespace.as_deref() == Some(ns))
        .filter(|rs| controller_uid(&rs.metadata) == Some(uid.as_str()))
        .map(|rs| ReplicaSet::clone(&rs))
        .collect();
    mine.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.clone().map(|t| t.0),
            rs.name_any(),
        )
    });
    Ok(mine)
}

impl Rollout<'_> {
    /// The Deployments of this one's namespace.
    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(
            self.ctx.client.clone(),
            &self.d.namespace().unwrap_or_default(),
        )
    }

    fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1).max(0)
    }

    fn fenceposts(&self) -> (i32, i32) {
        fenceposts(&self.spec, self.replicas())
    }

    /// The most pods that may be unavailable: none for Recreate.
    fn max_unavailable(&self) -> i32 {
        if is_recreate(&self.spec) || self.replicas() == 0 {
            0
        } else {
            self.fenceposts().1.min(self.replicas())
        }
    }

    fn has_deadline(&self) -> bool {
        self.spec
            .progress_deadline_seconds
            .is_some_and(|s| s != i32::MAX)
    }

    fn old(&self) -> impl Iterator<Item = &ReplicaSet> {
        self.rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.new)
            .map(|(_, rs)| rs)
    }

    fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new.map(|i| &self.rss[i])
    }

    fn is_scaling_event(&self) -> bool {
        self.rss
            .iter()
            .filter(|rs| spec_replicas(rs) > 0)
            .filter_map(|rs| annotation(rs, DESIRED_REPLICAS))
            .any(|desired| desired != self.replicas())
    }

    /// Finds the ReplicaSet of the current template (making it when `create`
    /// says so) and brings the revision annotations up to date.
    async fn find_new(&mut self, create: bool) -> Result<(), Error> {
        let want = template_without_hash(Some(&self.spec.template));
        // The oldest one with this template, if several.
        self.new = self.rss.iter().position(|rs| {
            template_without_hash(rs.spec.as_ref().and_then(|s| s.template.as_ref())) == want
        });
        let max_old = self
            .old()
            .map(|rs| revision_of(&rs.metadata))
            .max()
            .unwrap_or(0);
        let next = max_old + 1;
        match self.new {
            Some(i) => {
                let rs = &self.rss[i];
                let current = revision_of(&rs.metadata);
                let mut annotations = self.copied_annotations(rs);
                if current < next {
                    annotations.insert(REVISION.into(), next.to_string());
                    if current > 0 {
                        let mut history: Vec<String> = rs
                            .annotations()
                            .get(REVISION_HISTORY)
                            .map(|h| h.split(',').map(str::to_owned).collect())
                            .unwrap_or_default();
                        history.push(current.to_string());
                        annotations.insert(REVISION_HISTORY.into(), history.join(","));
                    }
                }
                let min_ready = self.spec.min_ready_seconds;
                let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
                let stale = annotations
                    .iter()
                    .any(|(k, v)| rs.annotations().get(k) != Some(v));
                if stale || min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0) {
                    let patch = json!({
                        "metadata": {
                            "annotations": annotations,
                            "resourceVersion": rs.resource_version(),
                        },
                        "spec": {"minReadySeconds": min_ready.unwrap_or(0)},
                    });
                    let name = rs.name_any();
                    self.patch_rs(i, &name, patch).await?;
                }
                self.revision = Some(revision_of(&self.rss[i].metadata));
                if condition(&self.conditions, "Progressing").is_none() && self.has_deadline() {
                    let msg = format!("Found new replica set \"{}\"", self.rss[i].name_any());
                    set_condition(
                        &mut self.conditions,
                        "Progressing",
                        "True",
                        "FoundNewReplicaSet",
                        msg,
                    );
                }
                Ok(())
            }
            None if create => self.create_new(next).await,
            None => Ok(()),
        }
    }

    /// The Deployment's annotations a ReplicaSet carries, with its own
    /// revision bookkeeping kept.
    fn copied_annotations(&self, rs: &ReplicaSet) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .d
            .annotations()
            .iter()
            .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for key in [REVISION, REVISION_HISTORY] {
            if let Some(v) = rs.annotations().get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        out
    }

    async fn create_new(&mut self, revision: i64) -> Result<(), Error> {
        let template = self.spec.template.clone();
        let hash = template_hash(&template, self.collisions);
        let name = format!("{}-{}", self.d.name_any(), hash);
        let mut template = template;
        let mut meta = template.metadata.take().unwrap_or_default();
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        template.metadata = Some(meta);
        let mut sel = self.spec.selector.clone();
        sel.match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let replicas = self.new_replicas(0);
        let (surge, _) = self.fenceposts();
        let mut annotations = self.copied_annotations(&ReplicaSet::default());
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), self.replicas().to_string());
        annotations.insert(MAX_REPLICAS.into(), (self.replicas() + surge).to_string());
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(HASH_LABEL.into(), hash.clone());
        let rs: ReplicaSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": self.d.namespace(),
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [controller_ref(self.d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": self.spec.min_ready_seconds.unwrap_or(0),
                "selector": sel,
                "template": template,
            },
        }))
        .map_err(kube::Error::SerdeError)?;
        let made = match self.api.create(&PostParams::default(), &rs).await {
            Ok(made) => made,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Ours already, with this template (a cache behind the API)?
                let existing = self.api.get(&name).await?;
                let same = controller_uid(&existing.metadata) == self.d.uid().as_deref()
                    && template_without_hash(
                        existing.spec.as_ref().and_then(|s| s.template.as_ref()),
                    ) == template_without_hash(Some(&self.spec.template));
                if same {
                    self.rss.push(existing);
                    self.new = Some(self.rss.len() - 1);
                    self.revision = Some(revision_of(&self.rss[self.rss.len() - 1].metadata));
                    return Ok(());
                }
                let collisions = self.collisions.unwrap_or(0) + 1;
                self.deployments()
                    .patch_status(
                        &self.d.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"collisionCount": collisions}})),
                    )
                    .await?;
                return Err(Error::HashCollision(name));
            }
            Err(e) => return Err(e.into()),
        };
        let uid = made.uid().unwrap_or_default();
        settle(&self.ctx.replicasets, |all| {
            all.iter()
                .any(|rs| rs.uid().as_deref() == Some(uid.as_str()))
        })
        .await;
        if replicas > 0 {
            self.scaled_event("up", &name, 0, replicas).await;
        }
        if self.has_deadline() {
            let msg = format!("Created new replica set \"{name}\"");
            set_condition(
                &mut self.conditions,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                msg,
            );
        }
        self.revision = Some(revision);
        self.rss.push(made);
        self.new = Some(self.rss.len() - 1);
        Ok(())
    }

    /// How many pods the new ReplicaSet may have now (for rolling updates:
    /// up to `replicas + maxSurge` pods in all).
    fn new_replicas(&self, current: i32) -> i32 {
        if is_recreate(&self.spec) {
            return self.replicas();
        }
        let (surge, _) = self.fenceposts();
        let all: i32 = self.rss.iter().map(spec_replicas).sum();
        let max_total = self.replicas() + surge;
        if all >= max_total {
            return current;
        }
        current + (max_total - all).min(self.replicas() - current).max(0)
    }

    async fn patch_rs(&mut self, i: usize, name: &str, patch: Value) -> Result<(), Error> {
        let updated = self
            .api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        let uid = updated.uid().unwrap_or_default();
        let rv = updated.resource_version().unwrap_or_default();
        settle(&self.ctx.replicasets, |all| caught_up(all, &uid, &rv)).await;
        self.rss[i] = updated;
        Ok(())
    }

    /// Sets one ReplicaSet's size (and the sizes it was set for). Returns
    /// whether the size changed.
    async fn scale_rs(&mut self, i: usize, to: i32) -> Result<bool, Error> {
        let rs = &self.rss[i];
        let from = spec_replicas(rs);
        let (surge, _) = self.fenceposts();
        let desired = self.replicas();
        let max = desired + surge;
        if from == to
            && annotation(rs, DESIRED_REPLICAS) == Some(desired)
            && annotation(rs, MAX_REPLICAS) == Some(max)
        {
            return Ok(false);
        }
        let name = rs.name_any();
        let patch = json!({
            "metadata": {
                "annotations": {DESIRED_REPLICAS: desired.to_string(), MAX_REPLICAS: max.to_string()},
                "resourceVersion": rs.resource_version(),
            },
            "spec": {"replicas": to},
        });
        self.patch_rs(i, &name, patch).await?;
        if from != to {
            let direction = if to > from { "up" } else { "down" };
            self.scaled_event(direction, &name, from, to).await;
        }
        Ok(from != to)
    }

    async fn scaled_event(&self, direction: &str, name: &str, from: i32, to: i32) {
        self.ctx
            .events
            .publish(
                self.d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {direction} replica set {name} from {from} to {to}"),
            )
            .await;
    }

    /// Scaling without a rollout (a paused Deployment, or `replicas`
    /// changed): the one active ReplicaSet takes the new size, or the sizes
    /// are spread over the active ones in proportion.
    async fn scale(&mut self) -> Result<(), Error> {
        let replicas = self.replicas();
        let active: Vec<usize> = (0..self.rss.len())
            .filter(|i| spec_replicas(&self.rss[*i]) > 0)
            .collect();
        match active.len() {
            0 => {
                let latest = self
                    .new
                    .or_else(|| (!self.rss.is_empty()).then(|| self.rss.len() - 1));
                if let Some(i) = latest {
                    self.scale_rs(i, replicas).await?;
                }
                return Ok(());
            }
            1 => {
                self.scale_rs(active[0], replicas).await?;
                return Ok(());
            }
            _ => {}
        }
        // The new ReplicaSet is saturated: the old ones go.
        if let Some(n) = self.new {
            let rs = &self.rss[n];
            if spec_replicas(rs) == replicas && status_of(rs).2 >= replicas {
                let old: Vec<usize> = (0..self.rss.len())
                    .filter(|i| Some(*i) != self.new)
                    .collect();
                for i in old {
                    self.scale_rs(i, 0).await?;
                }
                return Ok(());
            }
        }
        if is_recreate(&self.spec) {
            return Ok(());
        }
        let (surge, _) = self.fenceposts();
        let allowed = if replicas > 0 { replicas + surge } else { 0 };
        let total: i32 = active.iter().map(|i| spec_replicas(&self.rss[*i])).sum();
        let adding = allowed - total;
        // Larger first; among equals the newer when growing, the older when
        // shrinking. The first one takes what rounding leaves over.
        let mut order = active.clone();
        order.sort_by_key(|i| {
            let rs = &self.rss[*i];
            let t = rs.metadata.creation_timestamp.clone().map(|t| t.0);
            (
                Reverse(spec_replicas(rs)),
                if adding > 0 {
                    Reverse(t)
                } else {
                    Reverse(None)
                },
                t,
            )
        });
        let mut sizes: Vec<(usize, i32)> = order
            .iter()
            .map(|i| {
                let have = i64::from(spec_replicas(&self.rss[*i]));
                let share = if total > 0 {
                    have * i64::from(allowed) / i64::from(total)
                } else {
                    0
                };
                (*i, share as i32)
            })
            .collect();
        let assigned: i32 = sizes.iter().map(|(_, n)| n).sum();
        if let Some(first) = sizes.first_mut() {
            first.1 = (first.1 + allowed - assigned).max(0);
        }
        for (i, size) in sizes {
            self.scale_rs(i, size).await?;
        }
        Ok(())
    }

    async fn rolling(&mut self) -> Result<Action, Error> {
        self.find_new(true).await?;
        let n = self.new.expect("find_new(true) makes the new ReplicaSet");
        // Scale the new ReplicaSet up (or down to size).
        let have = spec_replicas(&self.rss[n]);
        let target = if have > self.replicas() {
            self.replicas()
        } else {
            self.new_replicas(have)
        };
        if self.scale_rs(n, target).await? {
            return self.write_status(true).await;
        }
        // Scale the old ones down as far as availability allows.
        if self.scale_down_old().await? {
            return self.write_status(true).await;
        }
        if self.complete(&self.status()) {
            self.cleanup().await?;
        }
        self.write_status(true).await
    }

    async fn scale_down_old(&mut self) -> Result<bool, Error> {
        let old: Vec<usize> = (0..self.rss.len())
            .filter(|i| Some(*i) != self.new)
            .collect();
        let old_count: i32 = old.iter().map(|i| spec_replicas(&self.rss[*i])).sum();
        if old_count == 0 {
            return Ok(false);
        }
        let all: i32 = self.rss.iter().map(spec_replicas).sum();
        let min_available = self.replicas() - self.max_unavailable();
        let new_unavailable = self
            .new_rs()
            .map_or(0, |rs| spec_replicas(rs) - status_of(rs).2);
        let max_down = all - min_available - new_unavailable;
        if max_down <= 0 {
            return Ok(false);
        }
        // First the old pods that are not available anyway (oldest first).
        let mut cleaned = 0;
        for &i in &old {
            if cleaned >= max_down {
                break;
            }
            let rs = &self.rss[i];
            let have = spec_replicas(rs);
            let unhealthy = have - status_of(rs).2;
            if have == 0 || unhealthy <= 0 {
                continue;
            }
            let down = (max_down - cleaned).min(unhealthy);
            self.scale_rs(i, have - down).await?;
            cleaned += down;
        }
        // Then available ones, while enough stay available.
        let available: i32 = self.rss.iter().map(|rs| status_of(rs).2).sum();
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for &i in &old {
                if scaled >= total {
                    break;
                }
                let have = spec_replicas(&self.rss[i]);
                if have == 0 {
                    continue;
                }
                let down = have.min(total - scaled);
                self.scale_rs(i, have - down).await?;
                scaled += down;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    async fn recreate(&mut self) -> Result<Action, Error> {
        self.find_new(false).await?;
        let mut scaled = false;
        let old: Vec<usize> = (0..self.rss.len())
            .filter(|i| Some(*i) != self.new)
            .collect();
        for i in old {
            scaled |= self.scale_rs(i, 0).await?;
        }
        if scaled || self.old_pods_running() {
            return self.write_status(true).await;
        }
        if self.new.is_none() {
            self.find_new(true).await?;
        }
        let n = self.new.expect("find_new(true) makes the new ReplicaSet");
        self.scale_rs(n, self.replicas()).await?;
        if self.complete(&self.status()) {
            self.cleanup().await?;
        }
        self.write_status(true).await
    }

    /// Whether any pod of an old ReplicaSet may still be running.
    fn old_pods_running(&self) -> bool {
        if self.old().any(|rs| status_of(rs).0 > 0) {
            return true;
        }
        let old: HashSet<String> = self.old().filter_map(|rs| rs.uid()).collect();
        self.ctx.pods.state().iter().any(|p| {
            controller_uid(&p.metadata).is_some_and(|u| old.contains(u))
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        })
    }

    /// Deletes old ReplicaSets, oldest revision first, beyond
    /// `revisionHistoryLimit` (only ones scaled to zero and settled).
    async fn cleanup(&mut self) -> Result<(), Error> {
        let limit = self.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut old: Vec<&ReplicaSet> = self
            .old()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        if old.len() <= limit {
            return Ok(());
        }
        old.sort_by_key(|rs| revision_of(&rs.metadata));
        let excess = old.len() - limit;
        let doomed: Vec<(String, String)> = old
            .into_iter()
            .take(excess)
            .filter(|rs| {
                status_of(rs).0 == 0
                    && spec_replicas(rs) == 0
                    && rs.metadata.generation.unwrap_or(0)
                        <= rs
                            .status
                            .as_ref()
                            .and_then(|s| s.observed_generation)
                            .unwrap_or(0)
            })
            .map(|rs| (rs.name_any(), rs.uid().unwrap_or_default()))
            .collect();
        for (name, uid) in doomed {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match self.api.delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The counters, from the ReplicaSets' own status, and the Available
    /// condition.
    fn status(&self) -> DeploymentStatus {
        let sum = |f: fn((i32, i32, i32)) -> i32| -> i32 {
            self.rss.iter().map(|rs| f(status_of(rs))).sum()
        };
        let available = sum(|s| s.2);
        let total: i32 = self.rss.iter().map(spec_replicas).sum();
        let mut conditions = self.conditions.clone();
        if available >= self.replicas() - self.max_unavailable() {
            set_condition(
                &mut conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            );
        } else {
            set_condition(
                &mut conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            );
        }
        DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: Some(sum(|s| s.0)),
            updated_replicas: Some(self.new_rs().map_or(0, |rs| status_of(rs).0)),
            ready_replicas: Some(sum(|s| s.1)),
            available_replicas: Some(available),
            unavailable_replicas: Some((total - available).max(0)),
            collision_count: self.collisions,
            conditions: Some(conditions),
        }
    }

    fn complete(&self, st: &DeploymentStatus) -> bool {
        let r = self.replicas();
        st.updated_replicas == Some(r)
            && st.replicas == Some(r)
            && st.available_replicas == Some(r)
            && st.observed_generation >= self.d.metadata.generation
    }

    /// Writes the status (with the Progressing condition when `rollout`),
    /// and says when to look again for the progress deadline.
    async fn write_status(&mut self, rollout: bool) -> Result<Action, Error> {
        let mut st = self.status();
        let old = self.d.status.clone().unwrap_or_default();
        let conds = st.conditions.get_or_insert_with(Vec::new);
        let new_name = self.new_rs().map(|rs| rs.name_any());
        let subject = match &new_name {
            Some(n) => format!("ReplicaSet \"{n}\""),
            None => format!("Deployment \"{}\"", self.d.name_any()),
        };
        let mut requeue = RESYNC;
        if !self.has_deadline() {
            conds.retain(|c| c.type_ != "Progressing");
        } else if rollout {
            let current = condition(conds, "Progressing").cloned();
            let done = st.replicas == st.updated_replicas
                && current.as_ref().and_then(|c| c.reason.as_deref())
                    == Some("NewReplicaSetAvailable");
            if !done {
                let progressed = st.updated_replicas > old.updated_replicas
                    || st.replicas.unwrap_or(0) - st.updated_replicas.unwrap_or(0)
                        < old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0)
                    || st.ready_replicas > old.ready_replicas
                    || st.available_replicas > old.available_replicas;
                let complete = self.complete(&st);
                let conds = st.conditions.as_mut().expect("set above");
                if complete {
                    set_condition(
                        conds,
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        format!("{subject} has successfully progressed."),
                    );
                } else if progressed {
                    // Progress renews the deadline, keeping the transition time.
                    let t = now();
                    let transition = current
                        .as_ref()
                        .filter(|c| c.status == "True")
                        .and_then(|c| c.last_transition_time.clone())
                        .unwrap_or_else(|| t.clone());
                    conds.retain(|c| c.type_ != "Progressing");
                    conds.push(DeploymentCondition {
                        type_: "Progressing".into(),
                        status: "True".into(),
                        reason: Some("ReplicaSetUpdated".into()),
                        message: Some(format!("{subject} is progressing.")),
                        last_update_time: Some(t),
                        last_transition_time: Some(transition),
                    });
                } else if let Some(left) = self.deadline_left(current.as_ref()) {
                    if left.is_zero() {
                        set_condition(
                            conds,
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            format!("{subject} has timed out progressing."),
                        );
                    } else {
                        requeue = requeue.min(left + Duration::from_secs(1));
                    }
                }
                if let Some(left) = self.deadline_left(condition(conds, "Progressing"))
                    && !left.is_zero()
                    && !complete
                {
                    requeue = requeue.min(left + Duration::from_secs(1));
                }
            }
        }
        if self.d.status.as_ref() != Some(&st) {
            self.deployments()
                .patch_status(
                    &self.d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": st })),
                )
                .await?;
        }
        self.write_revision().await?;
        Ok(Action::requeue(requeue))
    }

    /// How long until the progress deadline passes (zero if it has), for a
    /// rollout that is still progressing.
    fn deadline_left(&self, c: Option<&DeploymentCondition>) -> Option<Duration> {
        let c = c?;
        match c.reason.as_deref() {
            Some("NewReplicaSetAvailable" | "ProgressDeadlineExceeded") => return None,
            Some("DeploymentPaused") => return None,
            _ => {}
        }
        let from = c.last_update_time.as_ref()?.0;
        let deadline = self.spec.progress_deadline_seconds? as i64;
        let elapsed = Timestamp::now().as_second() - from.as_second();
        Some(Duration::from_secs((deadline - elapsed).max(0) as u64))
    }

    /// The Deployment's own revision annotation follows its new ReplicaSet.
    async fn write_revision(&self) -> Result<(), Error> {
        let Some(rev) = self.revision else {
            return Ok(());
        };
        if self.d.annotations().get(REVISION) == Some(&rev.to_string()) {
            return Ok(());
        }
        self.deployments()
            .patch(
                &self.d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {REVISION: rev.to_string()}}})),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(surge: Option<&str>, unavailable: Option<&str>) -> DeploymentSpec {
        let mut v =
            json!({"selector": {}, "strategy": {"type": "RollingUpdate", "rollingUpdate": {}}});
        if let Some(s) = surge {
            v["strategy"]["rollingUpdate"]["maxSurge"] =
                s.parse::<i64>().map_or(json!(s), |n| json!(n));
        }
        if let Some(u) = unavailable {
            v["strategy"]["rollingUpdate"]["maxUnavailable"] =
                u.parse::<i64>().map_or(json!(u), |n| json!(n));
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailability_down() {
        assert_eq!(fenceposts(&spec(None, None), 10), (3, 2));
        assert_eq!(fenceposts(&spec(None, None), 1), (1, 0));
        assert_eq!(fenceposts(&spec(Some("0"), Some("0")), 5), (0, 1));
        assert_eq!(fenceposts(&spec(Some("50%"), Some("1")), 3), (2, 1));
        assert_eq!(fenceposts(&spec(Some("0%"), Some("10%")), 9), (0, 1));
        assert_eq!(fenceposts(&spec(Some("2"), Some("0")), 0), (2, 0));
    }

    #[test]
    fn hashes_ignore_the_hash_label_and_change_with_collisions() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .unwrap();
        let mut labeled = t.clone();
        labeled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), "x".into());
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&labeled, None));
        assert_ne!(h, template_hash(&t, Some(1)));
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert!(
            h.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)),
            "{h}"
        );
        let mut other = t.clone();
        other.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert_ne!(h, template_hash(&other, None));
    }

    #[test]
    fn conditions_keep_transition_times_and_move_last() {
        let mut conds = Vec::new();
        set_condition(
            &mut conds,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            "a".into(),
        );
        set_condition(
            &mut conds,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "b".into(),
        );
        let first = conds[0].last_transition_time.clone();
        set_condition(
            &mut conds,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            "c".into(),
        );
        assert_eq!(conds[1].type_, "Progressing");
        assert_eq!(conds[1].last_transition_time, first);
        assert_eq!(conds[1].message.as_deref(), Some("c"));
        // Same status and reason: nothing changes, not even the message.
        set_condition(
            &mut conds,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            "d".into(),
        );
        assert_eq!(conds[1].message.as_deref(), Some("c"));
        assert_eq!(conds.len(), 2);
    }
}
