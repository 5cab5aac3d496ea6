//! The ReplicaSet controller: keeps `spec.replicas` pods of the template
//! running for each ReplicaSet, and writes how many there are to its status.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use crate::events::Events;
use crate::informers::Informers;
use crate::owners::{self, controller_ref, controller_uid, settle};
use crate::selector;

/// How often every ReplicaSet is looked at again without a change (pods that
/// came to match a selector are adopted then, as with kube-controller-manager's
/// resync).
const RESYNC: Duration = Duration::from_secs(30);
/// The most pods made at once: batches grow 1, 2, 4, ... up to this, and stop
/// at the first failure (kube-controller-manager's "slow start").
const BURST: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the ReplicaSet has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    events: Events,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let client = informers.client();
    let pods = informers.get::<Pod>().await;
    let replicasets = informers.get::<ReplicaSet>().await;
    let ctx = Arc::new(Ctx {
        events: Events::new(client.clone(), "replicaset-controller"),
        client,
        pods: pods.store(),
    });
    // A pod wakes its controlling ReplicaSet, or, if it has none, every
    // ReplicaSet of its namespace whose selector it matches (to be adopted).
    let rs_store = replicasets.store();
    Controller::for_stream(replicasets.stream(), replicasets.store())
        .watches_stream(pods.stream(), move |pod: Pod| owners_of(&rs_store, &pod))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "replicaset reconcile");
            }
            std::future::ready(())
        })
        .await;
    anyhow::bail!("the replicaset controller ended")
}

fn owners_of(replicasets: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    let controller = pod
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true));
    match controller {
        Some(r) if r.kind == "ReplicaSet" && r.api_version.starts_with("apps/") => {
            vec![ObjectRef::new(&r.name).within(&ns)]
        }
        Some(_) => Vec::new(),
        None => replicasets
            .state()
            .iter()
            .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
            .filter(|rs| {
                rs.spec.as_ref().is_some_and(|s| {
                    !selector::is_empty(&s.selector) && selector::matches(&s.selector, pod.labels())
                })
            })
            .map(|rs| ObjectRef::from_obj(rs.as_ref()))
            .collect(),
    }
}

fn error_policy(rs: Arc<ReplicaSet>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(replicaset = %rs.name_any(), %error, "replicaset sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

pub(crate) fn is_active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

pub(crate) fn is_ready(p: &Pod) -> bool {
    ready_since(p).is_some()
}

/// When the pod's Ready condition last became True, if it is True.
pub(crate) fn ready_since(p: &Pod) -> Option<chrono::DateTime<chrono::Utc>> {
    let c = p
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        c.last_transition_time
            .as_ref()
            .map(|t| {
                let s = serde_json::to_value(t).unwrap_or_default();
                s.as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or_else(chrono::Utc::now)
            })
            .unwrap_or_else(chrono::Utc::now),
    )
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = rs.namespace().ok_or(Error::NoNamespace)?;
    let uid = rs.uid().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    // A ReplicaSet being deleted is left to the garbage collector; one whose
    // selector selects everything is refused by the API and ignored here.
    if rs.metadata.deletion_timestamp.is_some() || selector::is_empty(&spec.selector) {
        return Ok(Action::await_change());
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);

    // Adopt orphans the selector matches; release children it no longer does.
    let in_ns: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .collect();
    for p in &in_ns {
        let labels = p.labels();
        let matches = selector::matches(&spec.selector, labels);
        match controller_uid(&p.metadata) {
            None if matches && is_active(p) => {
                owners::adopt(&pods_api, p.as_ref(), rs.as_ref()).await?
            }
            Some(owner) if owner == uid && !matches => {
                owners::release(&pods_api, p.as_ref(), &uid).await?
            }
            _ => {}
        }
    }
    let adopted: HashSet<String> = in_ns
        .iter()
        .filter(|p| controller_uid(&p.metadata).is_none() && is_active(p))
        .filter(|p| selector::matches(&spec.selector, p.labels()))
        .filter_map(|p| p.uid())
        .collect();
    if !adopted.is_empty() {
        settle(&ctx.pods, |pods| {
            adopted.iter().all(|u| {
                pods.iter()
                    .find(|p| p.uid().as_deref() == Some(u))
                    .is_none_or(|p| controller_uid(&p.metadata).is_some())
            })
        })
        .await;
    }

    let mine = |pods: &[Arc<Pod>]| -> Vec<Arc<Pod>> {
        pods.iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|p| controller_uid(&p.metadata) == Some(uid.as_str()))
            .filter(|p| selector::matches(&spec.selector, p.labels()))
            .cloned()
            .collect()
    };
    let active: Vec<Arc<Pod>> = mine(&ctx.pods.state())
        .into_iter()
        .filter(|p| is_active(p))
        .collect();
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    if active.len() < want {
        create_pods(&rs, &ctx, &pods_api, want - active.len()).await?;
    } else if active.len() > want {
        delete_pods(&rs, &ctx, &pods_api, active, want).await?;
    }

    // Status from what the cache shows now.
    let active: Vec<Arc<Pod>> = mine(&ctx.pods.state())
        .into_iter()
        .filter(|p| is_active(p))
        .collect();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0).max(0) as i64;
    let now = chrono::Utc::now();
    let mut next_available: Option<Duration> = None;
    let available = active
        .iter()
        .filter(|p| match ready_since(p) {
            None => false,
            Some(since) => {
                let age = (now - since).num_seconds();
                if age >= min_ready {
                    true
                } else {
                    let wait = Duration::from_secs((min_ready - age) as u64);
                    next_available = Some(next_available.map_or(wait, |n| n.min(wait)));
                    false
                }
            }
        })
        .count();
    let status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(
            active
                .iter()
                .filter(|p| {
                    let l = p.labels();
                    template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
                })
                .count() as i32,
        ),
        ready_replicas: Some(active.iter().filter(|p| is_ready(p)).count() as i32),
        available_replicas: Some(available as i32),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    if rs.status.as_ref() != Some(&status) {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    Ok(match next_available {
        Some(wait) => Action::requeue(wait + Duration::from_millis(100)),
        None => Action::requeue(RESYNC),
    })
}

fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

async fn create_pods(
    rs: &ReplicaSet,
    ctx: &Ctx,
    api: &Api<Pod>,
    count: usize,
) -> Result<(), Error> {
    let pod = pod_from_template(rs);
    let pp = PostParams::default();
    let mut made = Vec::new();
    let mut failure = None;
    let mut batch = 1;
    while made.len() < count && failure.is_none() {
        let n = batch.min(count - made.len());
        let results = futures::future::join_all((0..n).map(|_| api.create(&pp, &pod))).await;
        for r in results {
            ctx.events.pod_create(rs, &r).await;
            match r {
                Ok(p) => made.push(p.uid().unwrap_or_default()),
                Err(e) => failure = Some(e),
            }
        }
        batch = (batch * 2).min(BURST);
    }
    settle(&ctx.pods, |pods| {
        made.iter()
            .all(|u| pods.iter().any(|p| p.uid().as_deref() == Some(u.as_str())))
    })
    .await;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Deletes all but `keep` of `active`, the least useful first: unscheduled,
/// then pending, then not ready, then more restarted, then newest.
async fn delete_pods(
    rs: &ReplicaSet,
    ctx: &Ctx,
    api: &Api<Pod>,
    mut active: Vec<Arc<Pod>>,
    keep: usize,
) -> Result<(), Error> {
    let phase_rank = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Running") => 2,
        _ => 1,
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .map(|c| c.restart_count)
            .sum()
    };
    active.sort_by_key(|p| {
        (
            p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some(),
            phase_rank(p),
            is_ready(p),
            Reverse(restarts(p)),
            Reverse(p.metadata.creation_timestamp.clone().map(|t| t.0)),
        )
    });
    let doomed: Vec<Arc<Pod>> = active.iter().take(active.len() - keep).cloned().collect();
    let names: Vec<String> = doomed.iter().map(|p| p.name_any()).collect();
    let dp = DeleteParams::default();
    let results = futures::future::join_all(names.iter().map(|n| api.delete(n, &dp))).await;
    let mut failure = None;
    for (p, r) in doomed.iter().zip(results) {
        match r {
            Ok(_) => {
                ctx.events
                    .publish(
                        rs,
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.name_any()),
                    )
                    .await
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => failure = Some(e),
        }
    }
    let gone: BTreeMap<String, ()> = doomed
        .iter()
        .filter_map(|p| p.uid())
        .map(|u| (u, ()))
        .collect();
    settle(&ctx.pods, |pods| {
        pods.iter()
            .filter(|p| p.uid().is_some_and(|u| gone.contains_key(&u)))
            .all(|p| !is_active(p))
    })
    .await;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
