//! The PersistentVolume binder and Gantry's local-path provisioner, the parts of
//! kube-controller-manager's persistentvolume-binder a one-program cluster needs:
//! - a pending claim is bound to the smallest available volume that fits it (matched as
//!   the scheduler matches, [`scheduler::plugins::volume_fits_claim`]); a claim of a
//!   WaitForFirstConsumer class waits until the scheduler names its node
//!   ([`SELECTED_NODE`]) and then takes only a volume that node can reach;
//! - binding writes the volume first (`claimRef` with the claim's uid, a replace
//!   conditioned on the volume's resourceVersion, so two claims never get one volume),
//!   then its status, then the claim (`volumeName`, `bind-completed`) and its status; a
//!   volume whose `claimRef` already names the claim is taken first whatever its phase, so
//!   a binding that stopped halfway is finished on the next try;
//! - a claim of a class whose provisioner is [`LOCAL_PATH_PROVISIONER`] that no volume
//!   fits gets a new volume once a node is chosen: a hostPath directory under the class's
//!   `path` parameter, made by the agent on first use, with node affinity to that node,
//!   made for the claim (`claimRef` set);
//! - a volume whose claim is gone is `Released`, then deleted (`Delete`) or kept
//!   (`Retain`); a bound claim whose volume is gone is `Lost`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Value, json};

use kinds::storage::{
    LOCAL_PATH_PROVISIONER, NO_PROVISIONER, PROVISIONED_BY, SELECTED_NODE, claim_volume_name,
};
use scheduler::plugins::{best_volume, volume_fits_node};

use crate::events::Events;
use crate::informers::Informers;

/// Where local-path volumes go when their class names no `path`.
pub const DEFAULT_LOCAL_PATH: &str = "/var/lib/gantry/local-path";

const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("the claim has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: kube::Client,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    classes: Store<StorageClass>,
    nodes: Store<Node>,
    events: Events,
}

/// Runs the binder (claims) and the volumes' phases and reclaiming until the task is
/// dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let claims = informers.get::<PersistentVolumeClaim>().await;
    let volumes = informers.get::<PersistentVolume>().await;
    let classes = informers.get::<StorageClass>().await;
    let ctx = Arc::new(Ctx {
        client: informers.client(),
        claims: claims.store(),
        volumes: volumes.store(),
        classes: classes.store(),
        nodes: informers.get::<Node>().await.store(),
        events: Events::new(informers.client(), "persistentvolume-controller"),
    });
    let pending = claims.store();
    let on_volume = move |v: PersistentVolume| -> Vec<ObjectRef<PersistentVolumeClaim>> {
        // A volume meant for a claim wakes that claim; any other may fit a pending one.
        match v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
            Some(r) => match (&r.namespace, &r.name) {
                (Some(ns), Some(name)) => vec![ObjectRef::new(name).within(ns)],
                _ => Vec::new(),
            },
            None => pending
                .state()
                .iter()
                .filter(|c| claim_volume_name(c).is_none())
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect(),
        }
    };
    let waiting = claims.store();
    let on_class = move |_: StorageClass| -> Vec<ObjectRef<PersistentVolumeClaim>> {
        waiting
            .state()
            .iter()
            .filter(|c| claim_volume_name(c).is_none())
            .map(|c| ObjectRef::from_obj(c.as_ref()))
            .collect()
    };
    let binder = Controller::for_stream(claims.stream(), claims.store())
        .watches_stream(volumes.stream(), on_volume)
        .watches_stream(classes.stream(), on_class)
        .run(reconcile_claim, claim_error, Arc::clone(&ctx))
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "volume binder reconcile");
            }
            std::future::ready(())
        });
    let claim_of = |c: PersistentVolumeClaim| -> Option<ObjectRef<PersistentVolume>> {
        claim_volume_name(&c).map(ObjectRef::new)
    };
    let phases = Controller::for_stream(volumes.stream(), volumes.store())
        .watches_stream(claims.stream(), claim_of)
        .run(reconcile_volume, volume_error, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "volume reconcile");
            }
            std::future::ready(())
        });
    futures::join!(binder, phases);
    anyhow::bail!("the persistent volume controller ended")
}

fn claim_error(claim: Arc<PersistentVolumeClaim>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(claim = %claim.name_any(), %error, "binding failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

fn volume_error(volume: Arc<PersistentVolume>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(volume = %volume.name_any(), %error, "volume phase failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

fn annotation<'a, K: ResourceExt>(obj: &'a K, key: &str) -> Option<&'a str> {
    obj.annotations().get(key).map(String::as_str)
}

fn phase_of_claim(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn phase_of_volume(volume: &PersistentVolume) -> Option<&str> {
    volume.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Whether a volume's `claimRef` is this claim (by uid when it has one).
fn refers_to(r: &ObjectReference, claim: &PersistentVolumeClaim) -> bool {
    r.namespace == claim.metadata.namespace
        && r.name == claim.metadata.name
        && r.uid
            .as_deref()
            .filter(|u| !u.is_empty())
            .is_none_or(|u| Some(u) == claim.metadata.uid.as_deref())
}

async fn reconcile_claim(
    claim: Arc<PersistentVolumeClaim>,
    ctx: Arc<Ctx>,
) -> Result<Action, Error> {
    if claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = claim.namespace().ok_or(Error::NoNamespace)?;
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    if let Some(name) = claim_volume_name(&claim) {
        let cached = ctx.volumes.get(&ObjectRef::new(name));
        let volume = match cached {
            Some(v) => Some(PersistentVolume::clone(&v)),
            // The cache may be behind the claim.
            None => volumes.get_opt(name).await?,
        };
        let Some(volume) = volume else {
            if annotation(claim.as_ref(), BIND_COMPLETED).is_some()
                && phase_of_claim(&claim) != Some("Lost")
            {
                set_claim_phase(&ctx, &claim, &ns, json!({"phase": "Lost"})).await?;
                let note = "Bound claim has lost its PersistentVolume. Data on the volume is lost!";
                ctx.events
                    .publish(claim.as_ref(), EventType::Warning, "ClaimLost", note.into())
                    .await;
            }
            return Ok(Action::await_change());
        };
        let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        match claim_ref {
            Some(r) if !refers_to(r, &claim) => {
                let note = format!("volume \"{name}\" already bound to a different claim.");
                ctx.events
                    .publish(claim.as_ref(), EventType::Warning, "FailedBinding", note)
                    .await;
                return Ok(Action::await_change());
            }
            _ => {}
        }
        finish_binding(&ctx, &claim, &ns, volume, false).await?;
        return Ok(Action::await_change());
    }

    let class_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    let class = (!class_name.is_empty())
        .then(|| ctx.classes.get(&ObjectRef::new(&class_name)))
        .flatten();
    let waits_for_consumer = class
        .as_ref()
        .and_then(|c| c.volume_binding_mode.as_deref())
        == Some("WaitForFirstConsumer");
    let selected = annotation(claim.as_ref(), SELECTED_NODE).map(str::to_owned);
    if waits_for_consumer && selected.is_none() {
        let note = "waiting for first consumer to be created before binding";
        ctx.events
            .publish(
                claim.as_ref(),
                EventType::Normal,
                "WaitForFirstConsumer",
                note.into(),
            )
            .await;
        return Ok(Action::await_change());
    }
    let node = selected
        .as_deref()
        .and_then(|n| ctx.nodes.get(&ObjectRef::new(n)));
    let all = ctx.volumes.state();
    let chosen = best_volume(all.iter().map(AsRef::as_ref), &claim, |v| match &node {
        Some(n) => volume_fits_node(v, n.labels(), &n.name_any()),
        // A node named but not known yet: only volumes for any node.
        None if selected.is_some() => volume_fits_node(v, &BTreeMap::new(), ""),
        None => true,
    });
    if let Some(volume) = chosen {
        finish_binding(&ctx, &claim, &ns, volume.clone(), true).await?;
        return Ok(Action::await_change());
    }
    match class {
        None if class_name.is_empty() => {
            let note = "no persistent volumes available for this claim and no storage class is set";
            failed_binding(&ctx, &claim, note.into()).await;
        }
        None => {
            let note = format!("storageclass.storage.k8s.io \"{class_name}\" not found");
            failed_binding(&ctx, &claim, note).await;
        }
        Some(c) if c.provisioner == LOCAL_PATH_PROVISIONER => match selected {
            Some(node) => provision(&ctx, &claim, &ns, &c, &node).await?,
            None => {
                let note = format!(
                    "failed to provision volume with StorageClass \"{class_name}\": local-path \
                     volumes live on one node, so the class must have volumeBindingMode \
                     WaitForFirstConsumer"
                );
                ctx.events
                    .publish(
                        claim.as_ref(),
                        EventType::Warning,
                        "ProvisioningFailed",
                        note,
                    )
                    .await;
            }
        },
        Some(c) if c.provisioner == NO_PROVISIONER => {
            let note = "no persistent volumes available for this claim";
            failed_binding(&ctx, &claim, note.into()).await;
        }
        Some(c) => {
            let note = format!(
                "waiting for a volume to be created either by the external provisioner '{}' \
                 or manually by the system administrator. If volume creation is delayed, \
                 please verify that the provisioner is running and correctly registered.",
                c.provisioner
            );
            ctx.events
                .publish(
                    claim.as_ref(),
                    EventType::Normal,
                    "ExternalProvisioning",
                    note,
                )
                .await;
        }
    }
    Ok(Action::await_change())
}

async fn failed_binding(ctx: &Ctx, claim: &PersistentVolumeClaim, note: String) {
    ctx.events
        .publish(claim, EventType::Normal, "FailedBinding", note)
        .await;
}

/// Binds the volume to the claim, then the claim to the volume, then both statuses; each
/// step is skipped when already done, so a reconcile that stopped halfway picks up.
async fn finish_binding(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    ns: &str,
    mut volume: PersistentVolume,
    chosen_here: bool,
) -> Result<(), Error> {
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let volume_name = volume.name_any();
    let spec = volume.spec.get_or_insert_with(Default::default);
    let needs_ref = spec
        .claim_ref
        .as_ref()
        .is_none_or(|r| r.uid.as_deref().is_none_or(str::is_empty));
    if needs_ref {
        let had_ref = spec.claim_ref.is_some();
        spec.claim_ref = Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            namespace: claim.metadata.namespace.clone(),
            name: claim.metadata.name.clone(),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            ..ObjectReference::default()
        });
        if chosen_here && !had_ref {
            volume
                .annotations_mut()
                .insert(BOUND_BY_CONTROLLER.into(), "yes".into());
        }
        // Conditioned on the volume's resourceVersion: a volume another claim took since
        // the cache saw it makes this a conflict, and the claim is tried again.
        volume = volumes
            .replace(&volume_name, &PostParams::default(), &volume)
            .await?;
    }
    if phase_of_volume(&volume) != Some("Bound") {
        volumes
            .patch_status(
                &volume_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Bound"}})),
            )
            .await?;
    }
    let mut claim = claim.clone();
    if claim_volume_name(&claim) != Some(volume_name.as_str())
        || annotation(&claim, BIND_COMPLETED).is_none()
    {
        claim.spec.get_or_insert_with(Default::default).volume_name = Some(volume_name.clone());
        let notes = claim.annotations_mut();
        notes.insert(BIND_COMPLETED.into(), "yes".into());
        if chosen_here {
            notes.insert(BOUND_BY_CONTROLLER.into(), "yes".into());
        }
        claim = claims
            .replace(&claim.name_any(), &PostParams::default(), &claim)
            .await?;
    }
    if phase_of_claim(&claim) != Some("Bound") {
        let spec = volume.spec.clone().unwrap_or_default();
        let status = json!({
            "phase": "Bound",
            "accessModes": spec.access_modes,
            "capacity": spec.capacity,
        });
        set_claim_phase(ctx, &claim, ns, status).await?;
        tracing::info!(claim = %format!("{ns}/{}", claim.name_any()), volume = %volume_name, "claim bound");
    }
    Ok(())
}

async fn set_claim_phase(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    ns: &str,
    status: Value,
) -> Result<(), Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    claims
        .patch_status(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    Ok(())
}

/// Makes a local-path volume for the claim on `node`, meant for the claim; the next
/// reconcile (woken by the new volume) binds them.
async fn provision(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    ns: &str,
    class: &StorageClass,
    node: &str,
) -> Result<(), Error> {
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    let name = format!("pvc-{uid}");
    let base = class
        .parameters
        .as_ref()
        .and_then(|p| p.get("path"))
        .map_or(DEFAULT_LOCAL_PATH, String::as_str)
        .trim_end_matches('/');
    let spec = claim.spec.clone().unwrap_or_default();
    let request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned();
    if claim.annotations().get(STORAGE_PROVISIONER).is_none() {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
        let patch =
            json!({"metadata": {"annotations": {STORAGE_PROVISIONER: LOCAL_PATH_PROVISIONER}}});
        claims
            .patch(
                &claim.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    let volume: PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {PROVISIONED_BY: LOCAL_PATH_PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": request},
            "accessModes": spec.access_modes,
            "persistentVolumeReclaimPolicy": class.reclaim_policy.as_deref().unwrap_or("Delete"),
            "storageClassName": class.name_any(),
            "volumeMode": spec.volume_mode.as_deref().unwrap_or("Filesystem"),
            "hostPath": {"path": format!("{base}/{name}"), "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{
                "key": "kubernetes.io/hostname", "operator": "In", "values": [node]
            }]}]}},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": ns,
                "name": claim.name_any(),
                "uid": uid,
            },
        },
    }))?;
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match volumes.create(&PostParams::default(), &volume).await {
        Ok(_) => {
            let note = format!(
                "Successfully provisioned volume {name} on node {node} using {LOCAL_PATH_PROVISIONER}"
            );
            ctx.events
                .publish(claim, EventType::Normal, "ProvisioningSucceeded", note)
                .await;
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile_volume(volume: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if volume.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = volume.name_any();
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let phase = phase_of_volume(&volume);
    let set_phase = |phase: &'static str, message: Option<String>| {
        let volumes = volumes.clone();
        let name = name.clone();
        async move {
            let status = json!({"status": {"phase": phase, "message": message}});
            volumes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map(drop)
        }
    };
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        if phase != Some("Available") {
            set_phase("Available", None).await?;
        }
        return Ok(Action::await_change());
    };
    let (Some(ns), Some(claim_name)) = (r.namespace.as_deref(), r.name.as_deref()) else {
        return Ok(Action::await_change());
    };
    let cached = ctx.claims.get(&ObjectRef::new(claim_name).within(ns));
    let claim = match cached {
        Some(c) => Some(PersistentVolumeClaim::clone(&c)),
        None => {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
            claims.get_opt(claim_name).await?
        }
    };
    let was_bound = r.uid.as_deref().is_some_and(|u| !u.is_empty());
    let claim_gone = match &claim {
        None => true,
        Some(c) => was_bound && c.metadata.uid.as_deref() != r.uid.as_deref(),
    };
    if !claim_gone {
        // Bound once the claim names it; until then it waits for that claim.
        let bound = claim.as_ref().and_then(claim_volume_name) == Some(name.as_str());
        if !bound && phase.is_none() {
            set_phase("Available", None).await?;
        }
        return Ok(Action::await_change());
    }
    if !was_bound {
        // Meant for a claim that does not exist yet.
        if phase.is_none() {
            set_phase("Available", None).await?;
        }
        return Ok(Action::await_change());
    }
    if phase != Some("Released") && phase != Some("Failed") {
        set_phase("Released", None).await?;
    }
    match volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
    {
        "Delete" => {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: volume.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            tracing::info!(volume = %name, "deleting a released volume (reclaimPolicy Delete)");
            match volumes.delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        "Recycle" if phase != Some("Failed") => {
            let message = "the Recycle reclaim policy is not supported (deprecated in Kubernetes)";
            set_phase("Failed", Some(message.into())).await?;
            ctx.events
                .publish(
                    volume.as_ref(),
                    EventType::Warning,
                    "VolumeFailedRecycle",
                    message.into(),
                )
                .await;
        }
        _ => {}
    }
    Ok(Action::await_change())
}
