//! The disruption controller: keeps the status of every
//! PodDisruptionBudget (policy/v1) true, as kube-controller-manager's does:
//! `expectedPods`, `desiredHealthy` (from `minAvailable` or
//! `maxUnavailable`, a percentage taken of the scale of the pods'
//! controllers), `currentHealthy` (ready pods not being deleted and not
//! just evicted), `disruptionsAllowed`, `observedGeneration`, the
//! `DisruptionAllowed` condition, and `disruptedPods` (the evictions the
//! API server recorded) pruned once the pods are gone or two minutes old.
//! The eviction subresource spends what this controller allows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::events::Events;
use crate::informers::Informers;
use crate::selector;

/// How long an eviction's entry in `disruptedPods` keeps its pod out of
/// `currentHealthy` if the pod is not deleted.
const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// How often every budget is looked at again without a change.
const RESYNC: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
    rcs: Store<ReplicationController>,
    events: Events,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let client = informers.client();
    let pdbs = informers.get::<PodDisruptionBudget>().await;
    let pods = informers.get::<Pod>().await;
    let ctx = Arc::new(Ctx {
        events: Events::new(client.clone(), "controllermanager"),
        client,
        pods: pods.store(),
        replicasets: informers.get::<ReplicaSet>().await.store(),
        deployments: informers.get::<Deployment>().await.store(),
        statefulsets: informers.get::<StatefulSet>().await.store(),
        rcs: informers.get::<ReplicationController>().await.store(),
    });
    let store = pdbs.store();
    // A pod wakes the budgets of its namespace that select it.
    Controller::for_stream(pdbs.stream(), pdbs.store())
        .watches_stream(pods.stream(), move |pod: Pod| {
            store
                .state()
                .iter()
                .filter(|b| b.namespace() == pod.namespace() && selects(b, &pod))
                .map(|b| ObjectRef::from_obj(b.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "disruption reconcile");
            }
            std::future::ready(())
        })
        .await;
    anyhow::bail!("the disruption controller ended")
}

fn error_policy(pdb: Arc<PodDisruptionBudget>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(pdb = %pdb.name_any(), %error, "disruption sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// policy/v1: an absent selector selects nothing, an empty one every pod.
fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    pdb.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| selector::matches(s, pod.labels()))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// `value` of `total` (a count, or a percentage rounded up).
fn scaled(value: &IntOrString, total: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let total = i64::from(total);
            Ok(i32::try_from((percent * total + 99) / 100).unwrap_or(i32::MAX))
        }
    }
}

/// The sum of the scales of the pods' controllers, each counted once
/// (a ReplicaSet a Deployment controls counts as the Deployment).
fn expected_scale(ctx: &Ctx, ns: &str, pods: &[Arc<Pod>]) -> Result<i32, String> {
    let mut scales: HashMap<String, i32> = HashMap::new();
    for pod in pods {
        let Some(owner) = pod
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true))
        else {
            return Err(format!("found no controllers for pod {:?}", pod.name_any()));
        };
        let scale = match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = ctx.replicasets.get(&ObjectRef::new(&owner.name).within(ns));
                let deployment = rs.as_ref().and_then(|rs| {
                    rs.owner_references()
                        .iter()
                        .find(|r| r.controller == Some(true) && r.kind == "Deployment")
                        .and_then(|r| ctx.deployments.get(&ObjectRef::new(&r.name).within(ns)))
                });
                match (deployment, rs) {
                    (Some(d), _) => Some((d.uid(), d.spec.as_ref().and_then(|s| s.replicas))),
                    (None, Some(rs)) => Some((rs.uid(), rs.spec.as_ref().and_then(|s| s.replicas))),
                    _ => None,
                }
            }
            "StatefulSet" => ctx
                .statefulsets
                .get(&ObjectRef::new(&owner.name).within(ns))
                .map(|s| (s.uid(), s.spec.as_ref().and_then(|s| s.replicas))),
            "ReplicationController" => ctx
                .rcs
                .get(&ObjectRef::new(&owner.name).within(ns))
                .map(|s| (s.uid(), s.spec.as_ref().and_then(|s| s.replicas))),
            _ => None,
        };
        let Some((Some(uid), replicas)) = scale else {
            return Err(format!(
                "the controller {} {:?} of pod {:?} has no known scale",
                owner.kind,
                owner.name,
                pod.name_any()
            ));
        };
        scales.insert(uid, replicas.unwrap_or(1));
    }
    Ok(scales.values().sum())
}

/// `(expectedPods, desiredHealthy)` as kube-controller-manager counts them.
fn expected_and_desired(
    ctx: &Ctx,
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
) -> Result<(i32, i32), String> {
    let ns = pdb.namespace().unwrap_or_default();
    let spec = pdb.spec.clone().unwrap_or_default();
    if let Some(max) = &spec.max_unavailable {
        let expected = expected_scale(ctx, &ns, pods)?;
        let max = scaled(max, expected)?;
        return Ok((expected, (expected - max).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((i32::try_from(pods.len()).unwrap_or(i32::MAX), *n)),
        Some(min) => {
            let expected = expected_scale(ctx, &ns, pods)?;
            Ok((expected, scaled(min, expected)?))
        }
        None => Ok((0, 0)),
    }
}

/// The `DisruptionAllowed` condition, its transition time kept while its
/// status holds.
fn condition(
    old: Option<&PodDisruptionBudgetStatus>,
    status: &str,
    reason: &str,
    message: String,
    generation: i64,
    now: Timestamp,
) -> Condition {
    let previous = old
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed");
    let since = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: Some(generation),
        last_transition_time: since,
    }
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = pdb.namespace().unwrap_or_default();
    let now = Timestamp::now();
    let generation = pdb.metadata.generation.unwrap_or(0);
    let old = pdb.status.as_ref();
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && selects(&pdb, p))
        .collect();
    // Evictions the API server recorded, while their pods still stand.
    let by_name: BTreeMap<String, &Arc<Pod>> = pods.iter().map(|p| (p.name_any(), p)).collect();
    let disrupted: BTreeMap<String, Time> = old
        .and_then(|s| s.disrupted_pods.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, at)| {
            by_name
                .get(name)
                .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
                && at.0.as_second() + DELETION_TIMEOUT.as_secs() as i64 > now.as_second()
        })
        .collect();
    let status = match expected_and_desired(&ctx, &pdb, &pods) {
        Ok((expected, desired)) => {
            let healthy = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| !disrupted.contains_key(&p.name_any()))
                .filter(|p| is_ready(p))
                .count();
            let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
            let allowed = if expected <= 0 {
                0
            } else {
                (healthy - desired).max(0)
            };
            let (state, reason) = if allowed > 0 {
                ("True", "SufficientPods")
            } else {
                ("False", "InsufficientPods")
            };
            PodDisruptionBudgetStatus {
                current_healthy: healthy,
                desired_healthy: desired,
                expected_pods: expected,
                disruptions_allowed: allowed,
                disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
                observed_generation: Some(generation),
                conditions: Some(vec![condition(
                    old,
                    state,
                    reason,
                    String::new(),
                    generation,
                    now,
                )]),
            }
        }
        // Fail safe: no disruption allowed while the budget cannot be
        // worked out.
        Err(why) => {
            ctx.events
                .publish(
                    pdb.as_ref(),
                    EventType::Warning,
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {why}"),
                )
                .await;
            PodDisruptionBudgetStatus {
                current_healthy: old.map_or(0, |s| s.current_healthy),
                desired_healthy: old.map_or(0, |s| s.desired_healthy),
                expected_pods: old.map_or(0, |s| s.expected_pods),
                disruptions_allowed: 0,
                disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
                observed_generation: Some(generation),
                conditions: Some(vec![condition(
                    old,
                    "False",
                    "SyncFailed",
                    why,
                    generation,
                    now,
                )]),
            }
        }
    };
    if old != Some(&status) {
        let mut updated = (*pdb).clone();
        updated.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
        // Conditioned on the version read: an eviction spent meanwhile
        // makes this write conflict and the budget be counted again.
        match api
            .replace_status(&pdb.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::requeue(RESYNC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3), Ok(2));
        assert_eq!(scaled(&IntOrString::String("25%".into()), 4), Ok(1));
        assert_eq!(scaled(&IntOrString::Int(2), 10), Ok(2));
        assert!(scaled(&IntOrString::String("x".into()), 3).is_err());
    }
}
