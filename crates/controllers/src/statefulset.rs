//! The StatefulSet controller: pods with stable names `<set>-<ordinal>`,
//! each with its own PersistentVolumeClaims, made and removed in ordinal
//! order (or all at once with `podManagementPolicy: Parallel`), and rolled
//! to a new template from the highest ordinal down, one pod at a time.
//!
//! It follows kube-controller-manager's controller because kubectl reads
//! what it writes: `rollout status` reads the status counters and
//! revisions, `rollout history` and `undo` read the ControllerRevisions.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use crate::events::{self, Events};
use crate::informers::Informers;
use crate::owners::{self, controller_ref, controller_uid, settle};
use crate::replicaset::{is_ready, ready_since};
use crate::revisions::{self, POD_REVISION_LABEL};
use crate::selector;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// How often every StatefulSet is looked at again without a change.
const RESYNC: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the StatefulSet has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    revisions: Store<ControllerRevision>,
    events: Events,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let client = informers.client();
    let sets = informers.get::<StatefulSet>().await;
    let pods = informers.get::<Pod>().await;
    let claims = informers.get::<PersistentVolumeClaim>().await;
    let revisions = informers.get::<ControllerRevision>().await;
    let ctx = Arc::new(Ctx {
        events: Events::new(client.clone(), "statefulset-controller"),
        client,
        pods: pods.store(),
        claims: claims.store(),
        revisions: revisions.store(),
    });
    let set_store = sets.store();
    Controller::for_stream(sets.stream(), sets.store())
        .watches_stream(pods.stream(), move |pod: Pod| {
            owners::owners_to_wake(&set_store, &pod, member)
        })
        .watches_stream(revisions.stream(), |r: ControllerRevision| {
            owners::controller_of::<StatefulSet>(&r.metadata)
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "statefulset reconcile");
            }
            std::future::ready(())
        })
        .await;
    anyhow::bail!("the statefulset controller ended")
}

/// Whether a pod's labels and name make it one of the set's pods.
fn member(set: &StatefulSet, pod: &Pod) -> bool {
    let matches = set.spec.as_ref().is_some_and(|s| {
        !selector::is_empty(&s.selector) && selector::matches(&s.selector, pod.labels())
    });
    matches && ordinal_of(&set.name_any(), &pod.name_any()).is_some()
}

/// The ordinal in a pod name `<set>-<ordinal>`.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let digits = pod.strip_prefix(set)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn error_policy(set: Arc<StatefulSet>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(statefulset = %set.name_any(), %error, "statefulset sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn is_failed(p: &Pod) -> bool {
    matches!(phase(p), Some("Failed" | "Succeeded"))
}

fn running_and_ready(p: &Pod) -> bool {
    phase(p) == Some("Running") && is_ready(p)
}

/// Running, ready and ready for `min_ready` seconds; otherwise how long
/// until it may be (None when it is not even ready).
fn available(
    p: &Pod,
    min_ready: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Option<Duration>> {
    if !running_and_ready(p) {
        return Err(None);
    }
    let since = ready_since(p).unwrap_or(now);
    let age = (now - since).num_seconds();
    if age >= min_ready {
        Ok(())
    } else {
        Err(Some(Duration::from_secs((min_ready - age) as u64)))
    }
}

fn revision_of(p: &Pod) -> &str {
    p.labels()
        .get(POD_REVISION_LABEL)
        .map(String::as_str)
        .unwrap_or_default()
}

/// The name of the claim template `template` makes for the pod at `ordinal`.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The pod at `ordinal` from the template `revision` records.
fn pod_for(set: &StatefulSet, revision: &ControllerRevision, ordinal: i32) -> Pod {
    let spec = set.spec.clone().unwrap_or_default();
    let template = revisions::template_of(revision);
    let name = format!("{}-{ordinal}", set.name_any());
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(POD_REVISION_LABEL.into(), revision.name_any());
    let mut pod_spec = template.spec.unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    if !spec.service_name.as_deref().unwrap_or_default().is_empty() {
        pod_spec.subdomain = spec.service_name.clone();
    }
    // Each claim template's volume points at this pod's claim, replacing a
    // volume of the same name in the template.
    let claims: Vec<Volume> = spec
        .volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let template = t.name_any();
            Volume {
                name: template.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(&template, &set.name_any(), ordinal),
                    read_only: None,
                }),
                ..Volume::default()
            }
        })
        .collect();
    if !claims.is_empty() {
        let names: HashSet<String> = claims.iter().map(|v| v.name.clone()).collect();
        let mut volumes = claims;
        volumes.extend(
            pod_spec
                .volumes
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|v| !names.contains(&v.name)),
        );
        pod_spec.volumes = Some(volumes);
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(set)]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// The claims the pod at `ordinal` needs, as they would be made.
fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let spec = set.spec.clone().unwrap_or_default();
    let delete_with_set = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_deleted.as_deref())
        == Some("Delete");
    spec.volume_claim_templates
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
            let owners = delete_with_set.then(|| {
                vec![OwnerReference {
                    controller: None,
                    block_owner_deletion: None,
                    ..controller_ref(set)
                }]
            });
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&t.name_any(), &set.name_any(), ordinal)),
                    namespace: set.namespace(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    owner_references: owners,
                    ..ObjectMeta::default()
                },
                spec: t.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// One reconcile of one StatefulSet.
struct Sync<'a> {
    set: &'a StatefulSet,
    ctx: &'a Ctx,
    pods: Api<Pod>,
    /// Pods made or deleted, by uid or name, to wait for in the cache.
    made: Vec<String>,
    deleted: Vec<String>,
}

impl Sync<'_> {
    async fn create_claims(&mut self, ordinal: i32, pod_name: &str) -> Result<(), Error> {
        let ns = self.set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), &ns);
        for claim in claims_for(self.set, ordinal) {
            let key = ObjectRef::new(&claim.name_any()).within(&ns);
            if self.ctx.claims.get(&key).is_some() {
                continue;
            }
            let name = claim.name_any();
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => {
                    self.event(
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!(
                            "create Claim {name} Pod {pod_name} in StatefulSet {} success",
                            self.set.name_any()
                        ),
                    )
                    .await
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    self.event(
                        EventType::Warning,
                        "FailedCreate",
                        format!(
                            "create Claim {name} for Pod {pod_name} in StatefulSet {} failed error: {}",
                            self.set.name_any(),
                            events::failure(&e)
                        ),
                    )
                    .await;
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    async fn create_pod(
        &mut self,
        revision: &ControllerRevision,
        ordinal: i32,
    ) -> Result<(), Error> {
        let pod = pod_for(self.set, revision, ordinal);
        let name = pod.name_any();
        self.create_claims(ordinal, &name).await?;
        match self.pods.create(&PostParams::default(), &pod).await {
            Ok(p) => {
                self.made.push(p.uid().unwrap_or_default());
                self.event(
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!(
                        "create Pod {name} in StatefulSet {} successful",
                        self.set.name_any()
                    ),
                )
                .await;
                Ok(())
            }
            // The old pod of this name is still on its way out.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => {
                self.event(
                    EventType::Warning,
                    "FailedCreate",
                    format!(
                        "create Pod {name} in StatefulSet {} failed error: {}",
                        self.set.name_any(),
                        events::failure(&e)
                    ),
                )
                .await;
                Err(e.into())
            }
        }
    }

    async fn delete_pod(&mut self, pod: &Pod) -> Result<(), Error> {
        let name = pod.name_any();
        match self.pods.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                self.deleted.push(pod.uid().unwrap_or_default());
                self.event(
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!(
                        "delete Pod {name} in StatefulSet {} successful",
                        self.set.name_any()
                    ),
                )
                .await;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => {
                self.event(
                    EventType::Warning,
                    "FailedDelete",
                    format!(
                        "delete Pod {name} in StatefulSet {} failed error: {e}",
                        self.set.name_any()
                    ),
                )
                .await;
                Err(e.into())
            }
        }
    }

    /// With `whenScaled: Delete`, a pod removed by scaling down takes its
    /// claims with it: they are made its dependents before it goes.
    async fn claims_follow(&mut self, pod: &Pod, ordinal: i32) -> Result<(), Error> {
        let spec = self.set.spec.as_ref();
        let when_scaled = spec
            .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref())
            .and_then(|p| p.when_scaled.as_deref());
        if when_scaled != Some("Delete") {
            return Ok(());
        }
        let ns = self.set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), &ns);
        for claim in claims_for(self.set, ordinal) {
            let Some(have) = self
                .ctx
                .claims
                .get(&ObjectRef::new(&claim.name_any()).within(&ns))
            else {
                continue;
            };
            let uid = pod.uid().unwrap_or_default();
            if have.owner_references().iter().any(|r| r.uid == uid) {
                continue;
            }
            let mut refs = have.owner_references().to_vec();
            refs.push(OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: pod.name_any(),
                uid,
                controller: None,
                block_owner_deletion: None,
            });
            api.patch(
                &claim.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"ownerReferences": refs}})),
            )
            .await?;
        }
        Ok(())
    }

    async fn event(&self, type_: EventType, reason: &str, note: String) {
        self.ctx.events.publish(self.set, type_, reason, note).await;
    }
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = set.namespace().ok_or(Error::NoNamespace)?;
    let uid = set.uid().unwrap_or_default();
    let name = set.name_any();
    let spec = set.spec.clone().unwrap_or_default();
    if set.metadata.deletion_timestamp.is_some() || selector::is_empty(&spec.selector) {
        return Ok(Action::await_change());
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);

    // Adopt orphans that are members; release children that no longer are.
    owners::claim_pods(&pods_api, &ctx.pods, set.as_ref(), |p| member(&set, p)).await?;

    // Revisions: the update revision records the template now; the current
    // one is what the status says, until the rollout completes.
    let collisions = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let template = spec.template.clone();
    let history = revisions::sync(
        &ctx.client,
        &ctx.revisions,
        set.as_ref(),
        &template,
        collisions,
        &revisions::Naming {
            hash: revisions::data_hash,
            hash_label: revisions::HASH_LABEL,
        },
    )
    .await?;
    let update = history.update.clone();
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        .and_then(|c| history.revisions.iter().find(|r| r.name_any() == c))
        .cloned()
        .unwrap_or_else(|| update.clone());

    let mine = |pods: &[Arc<Pod>]| -> Vec<Arc<Pod>> {
        pods.iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|p| controller_uid(&p.metadata) == Some(uid.as_str()))
            .filter(|p| member(&set, p))
            .cloned()
            .collect()
    };
    let pods = mine(&ctx.pods.state());
    let mut sync = Sync {
        set: &set,
        ctx: &ctx,
        pods: pods_api,
        made: Vec::new(),
        deleted: Vec::new(),
    };
    let wake = act(&mut sync, &spec, &pods, &current, &update).await?;
    let (made, deleted) = (sync.made.clone(), sync.deleted.clone());
    if !made.is_empty() || !deleted.is_empty() {
        settle(&ctx.pods, |pods| {
            made.iter()
                .all(|u| pods.iter().any(|p| p.uid().as_deref() == Some(u.as_str())))
                && pods
                    .iter()
                    .filter(|p| p.uid().is_some_and(|u| deleted.contains(&u)))
                    .all(|p| is_terminating(p))
        })
        .await;
    }

    // Status from what the cache shows now.
    let pods = mine(&ctx.pods.state());
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0).max(0));
    let now = chrono::Utc::now();
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        collision_count: Some(history.collision_count),
        current_revision: Some(current.name_any()),
        update_revision: Some(update.name_any()),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
        ..StatefulSetStatus::default()
    };
    let mut next_available: Option<Duration> = None;
    let (mut ready, mut avail, mut cur, mut upd) = (0, 0, 0, 0);
    for p in &pods {
        status.replicas += 1;
        if running_and_ready(p) {
            ready += 1;
            match available(p, min_ready, now) {
                Ok(()) => avail += 1,
                Err(Some(w)) => next_available = Some(next_available.map_or(w, |n| n.min(w))),
                Err(None) => {}
            }
        }
        if !is_terminating(p) {
            if revision_of(p) == current.name_any() {
                cur += 1;
            }
            if revision_of(p) == update.name_any() {
                upd += 1;
            }
        }
    }
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(avail);
    status.current_replicas = Some(cur);
    status.updated_replicas = Some(upd);
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    if rolling && upd == status.replicas && ready == status.replicas {
        status.current_replicas = Some(upd);
        status.current_revision = Some(update.name_any());
    }
    if set.status.as_ref() != Some(&status) {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }

    // Old revisions beyond the history limit go, unless a pod uses one.
    let mut live: HashSet<String> = pods.iter().map(|p| revision_of(p).to_owned()).collect();
    live.extend(status.current_revision.clone());
    live.insert(update.name_any());
    revisions::truncate(
        &ctx.client,
        &history,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;

    let wait = [wake, next_available.map(|w| w + Duration::from_millis(100))]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(RESYNC);
    Ok(Action::requeue(wait))
}

/// Makes, removes and replaces pods as the policy allows, one step at a
/// time when ordered. Returns when to look again if it waits on time.
async fn act(
    sync: &mut Sync<'_>,
    spec: &k8s_openapi::api::apps::v1::StatefulSetSpec,
    pods: &[Arc<Pod>],
    current: &ControllerRevision,
    update: &ControllerRevision,
) -> Result<Option<Duration>, Error> {
    let name = sync.set.name_any();
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0);
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0).max(0));
    let now = chrono::Utc::now();
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0);

    let by_ordinal: BTreeMap<i32, Arc<Pod>> = pods
        .iter()
        .filter_map(|p| Some((ordinal_of(&name, &p.name_any())?, p.clone())))
        .collect();
    let wanted = start..start + replicas;
    let healthy = |p: &Pod| !is_terminating(p) && available(p, min_ready, now).is_ok();
    let wait_for = |p: &Pod| available(p, min_ready, now).err().flatten();
    // The first pod, in the order the set makes and then removes pods, that
    // keeps an ordered set from going on.
    let first_unhealthy = wanted
        .clone()
        .filter_map(|o| by_ordinal.get(&o))
        .chain(
            by_ordinal
                .iter()
                .rev()
                .filter(|(o, _)| !wanted.contains(o))
                .map(|(_, p)| p),
        )
        .find(|p| !healthy(p))
        .map(|p| p.name_any());

    // Make or replace the pods that should exist, lowest ordinal first.
    for ordinal in wanted.clone() {
        match by_ordinal.get(&ordinal) {
            None => {
                // Below the partition a pod is remade at the current revision.
                let revision = if rolling && ordinal - start < partition {
                    current
                } else {
                    update
                };
                sync.create_pod(revision, ordinal).await?;
                if ordered {
                    return Ok(None);
                }
            }
            Some(p) if is_failed(p) && !is_terminating(p) => {
                sync.event(
                    EventType::Warning,
                    "RecreatingFailedPod",
                    format!(
                        "StatefulSet {}/{name} is recreating failed Pod {}",
                        sync.set.namespace().unwrap_or_default(),
                        p.name_any()
                    ),
                )
                .await;
                sync.delete_pod(p).await?;
                if ordered {
                    return Ok(None);
                }
            }
            Some(p) => {
                if !is_terminating(p) {
                    sync.create_claims(ordinal, &p.name_any()).await?;
                }
                if ordered && !healthy(p) {
                    return Ok(wait_for(p));
                }
            }
        }
    }

    // Remove the pods beyond the replicas, highest ordinal first.
    for (ordinal, p) in by_ordinal.iter().rev().filter(|(o, _)| !wanted.contains(o)) {
        if is_terminating(p) {
            if ordered {
                return Ok(None);
            }
            continue;
        }
        if ordered && !healthy(p) && first_unhealthy.as_deref() != Some(p.name_any().as_str()) {
            return Ok(wait_for(p));
        }
        sync.claims_follow(p, *ordinal).await?;
        sync.delete_pod(p).await?;
        if ordered {
            return Ok(None);
        }
    }

    // Roll to the update revision from the highest ordinal down to the
    // partition, one pod at a time, each ready before the next.
    if !rolling {
        return Ok(None);
    }
    for ordinal in (start + partition..start + replicas).rev() {
        let Some(p) = by_ordinal.get(&ordinal) else {
            return Ok(None);
        };
        if revision_of(p) != update.name_any() && !is_terminating(p) {
            sync.delete_pod(p).await?;
            return Ok(None);
        }
        if !healthy(p) {
            return Ok(wait_for(p));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_come_from_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-"), None);
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "web-1-2"), None);
        assert_eq!(ordinal_of("web", "webs-1"), None);
        assert_eq!(claim_name("www", "web", 3), "www-web-3");
    }
}
