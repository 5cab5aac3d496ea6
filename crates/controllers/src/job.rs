//! The Job controller: runs a Job's pods until enough of them succeed, or
//! until it fails (too many pod failures, or running past its deadline), as
//! kube-controller-manager 1.32 does.
//!
//! Finished pods are counted through the `batch.kubernetes.io/job-tracking`
//! finalizer, as Kubernetes does: every pod is made with it, so a finished
//! pod cannot vanish before it is counted. A reconcile first records the
//! uids of newly finished pods in `status.uncountedTerminatedPods`, then
//! removes their finalizers, then (once the cache shows them without it)
//! moves them from there into `succeeded` and `failed`. A pod whose uid is
//! in that list is never counted twice, and a pod deleted after it finished
//! has been counted already.
//!
//! A `podFailurePolicy` is read for each failed pod, its rules in order, the
//! first that matches deciding: `FailJob` fails the Job at once (reason
//! `PodFailurePolicy`), `Ignore` lets the pod go uncounted (no step towards
//! `backoffLimit`, no back-off before its replacement), `Count` counts it as
//! usual. (`FailIndex` needs `backoffLimitPerIndex`, which the API server
//! refuses as not supported.) Under `podReplacementPolicy: Failed`, the
//! default with a policy, a pod being deleted is replaced only once gone or
//! finished.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{
    Job, JobCondition, JobStatus, PodFailurePolicy, PodFailurePolicyRule, UncountedTerminatedPods,
};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use crate::events::Events;
use crate::informers::Informers;
use crate::owners::{caught_up, controller_ref, controller_uid, settle};

/// The finalizer that keeps a Job's pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The label and annotation carrying an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable an Indexed Job pod's containers read their index from.
const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The first delay before a failed pod is replaced; it doubles with each
/// further failure up to `BACKOFF_MAX`.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);
/// How often a Job is looked at again without a change.
const RESYNC: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the Job has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    jobs: Store<Job>,
    events: Events,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let client = informers.client();
    let pods = informers.get::<Pod>().await;
    let jobs = informers.get::<Job>().await;
    let ctx = Arc::new(Ctx {
        events: Events::new(client.clone(), "job-controller"),
        client: client.clone(),
        pods: pods.store(),
        jobs: jobs.store(),
    });
    let orphans = tokio::spawn(release_orphans(client, pods.stream()));
    Controller::for_stream(jobs.stream(), jobs.store())
        .watches_stream(pods.stream(), |pod: Pod| owner_of(&pod))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "job reconcile");
            }
            std::future::ready(())
        })
        .await;
    orphans.abort();
    anyhow::bail!("the job controller ended")
}

/// The Job that controls `pod`, if any.
fn owner_of(pod: &Pod) -> Option<ObjectRef<Job>> {
    let r = pod
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true))?;
    (r.kind == "Job" && r.api_version.starts_with("batch/"))
        .then(|| ObjectRef::new(&r.name).within(&pod.namespace().unwrap_or_default()))
}

fn error_policy(job: Arc<Job>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(job = %job.name_any(), %error, "job sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Removes the tracking finalizer from pods whose Job is gone (deleted
/// before it could count them), so that they can be deleted in turn.
async fn release_orphans(
    client: kube::Client,
    pods: impl futures::Stream<Item = Result<Pod, kube::runtime::watcher::Error>>,
) {
    let mut pods = std::pin::pin!(pods);
    while let Some(Ok(pod)) = pods.next().await {
        if !has_finalizer(&pod) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let owner = pod
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true) && r.kind == "Job");
        let alive = match owner {
            None => false,
            Some(r) => {
                let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
                match jobs.get_opt(&r.name).await {
                    Ok(Some(j)) => j.uid().as_deref() == Some(r.uid.as_str()),
                    Ok(None) => false,
                    Err(_) => true,
                }
            }
        };
        if !alive {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if let Err(e) = remove_finalizer(&api, &pod).await {
                tracing::debug!(pod = %pod.name_any(), error = %e, "releasing an orphaned job pod");
            }
        }
    }
}

/// How a pod ended, as the Job counts it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Succeeded,
    Failed,
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// The pod's outcome, or `None` while it runs. A pod deleted before it
/// succeeded counts as failed.
fn outcome(p: &Pod) -> Option<Outcome> {
    match phase(p) {
        Some("Succeeded") => Some(Outcome::Succeeded),
        Some("Failed") => Some(Outcome::Failed),
        _ if p.metadata.deletion_timestamp.is_some() => Some(Outcome::Failed),
        _ => None,
    }
}

/// What a Job's `podFailurePolicy` makes of a failed pod.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Fail the Job, with this message.
    FailJob(String),
    /// Let the pod go without counting it.
    Ignore,
    /// Count it as a failure (also when no rule matches, or there is no policy).
    Count,
}

/// The action of the first rule of `policy` that the failed pod `p` matches,
/// as kube-controller-manager reads a pod failure policy: an exit-code rule
/// matches a container (of the one named, if any) that ended with a non-zero
/// code the operator accepts; a condition rule matches a pod condition of that
/// type and status.
fn judge(policy: Option<&PodFailurePolicy>, p: &Pod) -> Verdict {
    let Some(policy) = policy else {
        return Verdict::Count;
    };
    let status = p.status.as_ref();
    let containers = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .chain(&s.container_statuses)
        })
        .flatten();
    let pod = format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or_default(),
        p.name_any()
    );
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(codes) = &rule.on_exit_codes {
            containers.clone().find_map(|c| {
                let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                let named = codes.container_name.as_ref().is_none_or(|n| *n == c.name);
                let listed = codes.values.contains(&code);
                let accepted = match codes.operator.as_str() {
                    "In" => listed,
                    "NotIn" => !listed,
                    _ => false,
                };
                (named && code != 0 && accepted).then(|| {
                    format!(
                        "Container {} for pod {pod} failed with exit code {code} matching {} \
                         rule at index {index}",
                        c.name, rule.action
                    )
                })
            })
        } else {
            let conditions = status
                .into_iter()
                .flat_map(|s| s.conditions.iter().flatten());
            rule.on_pod_conditions.iter().flatten().find_map(|pattern| {
                conditions
                    .clone()
                    .any(|c| c.type_ == pattern.type_ && c.status == pattern.status)
                    .then(|| {
                        format!(
                            "Pod {pod} has condition {} matching {} rule at index {index}",
                            pattern.type_, rule.action
                        )
                    })
            })
        };
        if let Some(message) = matched {
            return verdict(rule, message);
        }
    }
    Verdict::Count
}

fn verdict(rule: &PodFailurePolicyRule, message: String) -> Verdict {
    match rule.action.as_str() {
        "FailJob" => Verdict::FailJob(message),
        "Ignore" => Verdict::Ignore,
        _ => Verdict::Count,
    }
}

fn is_active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && !matches!(phase(p), Some("Succeeded" | "Failed"))
}

fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some() && !matches!(phase(p), Some("Succeeded" | "Failed"))
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn has_finalizer(p: &Pod) -> bool {
    p.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| c.restart_count)
        .sum()
}

/// The pod's completion index (Indexed Jobs), from its annotation.
fn index_of(p: &Pod) -> Option<i32> {
    p.annotations()
        .get(COMPLETION_INDEX)
        .and_then(|v| v.parse().ok())
        .filter(|i| *i >= 0)
}

/// When the pod ended: its containers' last finish, else when it was
/// deleted, else when it was made.
fn finished_at(p: &Pod) -> Option<Timestamp> {
    let containers = p
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    containers
        .or_else(|| p.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The delay before a pod is made again after `failures` pod failures:
/// 10 s, doubling with each failure, at most 6 minutes.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(16);
    BACKOFF_BASE.saturating_mul(1 << shift).min(BACKOFF_MAX)
}

/// Indexes as Kubernetes writes `completedIndexes`: ascending, runs of
/// consecutive numbers as `first-last` ("1,3-5").
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((first, last)) if i == last + 1 => Some((first, i)),
            Some(r) => {
                out.push(format_run(r));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(r) = run {
        out.push(format_run(r));
    }
    out.join(",")
}

fn format_run((first, last): (i32, i32)) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

/// The indexes of a `completedIndexes` string below `completions`; bad
/// parts are skipped.
pub fn parse_indexes(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(first), Ok(last)) = (first, last) {
            out.extend((first.max(0)..=last.min(completions - 1)).filter(|_| first <= last));
        }
    }
    out
}

/// Sets a condition of `type_` to `status` (its transition time changes only
/// when the status does). Returns whether anything changed.
fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> bool {
    let now = Time(Timestamp::now());
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => false,
        Some(c) => {
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
            c.last_probe_time = Some(now.clone());
            c.last_transition_time = Some(now);
            true
        }
        None => {
            conditions.push(JobCondition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_probe_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
            true
        }
    }
}

fn condition<'a>(conditions: &'a [JobCondition], type_: &str) -> Option<&'a JobCondition> {
    conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job has finished (Complete or Failed), and when.
pub fn finished(job: &Job) -> Option<Timestamp> {
    let conds = job.status.as_ref()?.conditions.as_deref()?;
    let c = condition(conds, "Complete").or_else(|| condition(conds, "Failed"))?;
    Some(
        c.last_transition_time
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0),
    )
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = job.namespace().ok_or(Error::NoNamespace)?;
    let uid = job.uid().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let mine = |pods: &[Arc<Pod>]| -> Vec<Arc<Pod>> {
        pods.iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|p| controller_uid(&p.metadata) == Some(uid.as_str()))
            .cloned()
            .collect()
    };
    let pods = mine(&ctx.pods.state());
    let mut status = job.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.clone().unwrap_or_default();
    let done =
        condition(&conditions, "Complete").is_some() || condition(&conditions, "Failed").is_some();

    // A Job being deleted or already finished counts nothing more: its pods
    // are let go so that they can be deleted.
    if job.metadata.deletion_timestamp.is_some() || done {
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            remove_finalizer(&pods_api, p).await?;
        }
        return Ok(Action::await_change());
    }

    let spec = job.spec.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6).max(0);
    let suspended = spec.suspend == Some(true);

    // 1. Record newly finished pods as uncounted (and Indexed Jobs' indexes
    //    as completed) before their finalizers go.
    let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut succ_uids: Vec<String> = uncounted.succeeded.clone().unwrap_or_default();
    let mut fail_uids: Vec<String> = uncounted.failed.clone().unwrap_or_default();
    let recorded: HashSet<String> = succ_uids.iter().chain(&fail_uids).cloned().collect();
    let mut completed = parse_indexes(
        status.completed_indexes.as_deref().unwrap_or(""),
        completions.unwrap_or(0),
    );
    let mut recorded_new = false;
    let policy = spec.pod_failure_policy.as_ref();
    // Failed pods the policy ignores: let go, never counted.
    let mut ignored = Vec::new();
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let pod_uid = p.uid().unwrap_or_default();
        if recorded.contains(&pod_uid) {
            continue;
        }
        match outcome(p) {
            Some(Outcome::Succeeded) => {
                succ_uids.push(pod_uid);
                if indexed
                    && let Some(i) = index_of(p)
                    && i < completions.unwrap_or(0)
                {
                    completed.insert(i);
                }
                recorded_new = true;
            }
            Some(Outcome::Failed) => {
                if judge(policy, p) == Verdict::Ignore {
                    ignored.push(Arc::clone(p));
                } else {
                    fail_uids.push(pod_uid);
                    recorded_new = true;
                }
            }
            None => {}
        }
    }
    let mut job = job;
    if recorded_new {
        uncounted = UncountedTerminatedPods {
            succeeded: Some(succ_uids.clone()).filter(|v| !v.is_empty()),
            failed: Some(fail_uids.clone()).filter(|v| !v.is_empty()),
        };
        status.uncounted_terminated_pods = Some(uncounted.clone());
        if indexed {
            status.completed_indexes = Some(format_indexes(&completed)).filter(|s| !s.is_empty());
        }
        job = Arc::new(write_status(&ctx, &jobs_api, &job, status.clone()).await?);
    }

    // 2. Let the recorded pods go, and wait for the cache to show it.
    let uncounted_uids: HashSet<String> = succ_uids.iter().chain(&fail_uids).cloned().collect();
    let mut released = Vec::new();
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        if p.uid().is_some_and(|u| uncounted_uids.contains(&u)) {
            remove_finalizer(&pods_api, p).await?;
            released.push(p.uid().unwrap_or_default());
        }
    }
    for p in &ignored {
        remove_finalizer(&pods_api, p).await?;
        released.push(p.uid().unwrap_or_default());
    }
    if !released.is_empty() {
        settle(&ctx.pods, |pods| {
            released.iter().all(|u| {
                pods.iter()
                    .find(|p| p.uid().as_deref() == Some(u.as_str()))
                    .is_none_or(|p| !has_finalizer(p))
            })
        })
        .await;
    }

    // 3. Count the pods whose finalizer is gone.
    let pods = mine(&ctx.pods.state());
    let still_held = |u: &String| {
        pods.iter()
            .any(|p| p.uid().as_deref() == Some(u.as_str()) && has_finalizer(p))
    };
    let mut succeeded = status.succeeded.unwrap_or(0);
    let mut failed = status.failed.unwrap_or(0);
    let (held_succ, counted_succ): (Vec<String>, Vec<String>) =
        succ_uids.into_iter().partition(still_held);
    let (held_fail, counted_fail): (Vec<String>, Vec<String>) =
        fail_uids.into_iter().partition(still_held);
    if indexed {
        succeeded = completed.len() as i32;
    } else {
        succeeded += counted_succ.len() as i32;
    }
    failed += counted_fail.len() as i32;
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: Some(held_succ.clone()).filter(|v| !v.is_empty()),
        failed: Some(held_fail.clone()).filter(|v| !v.is_empty()),
    });
    // What the decisions below go by: counted or not, every finished pod.
    let all_succeeded = if indexed {
        completed.len() as i32
    } else {
        succeeded + held_succ.len() as i32
    };
    let all_failed = failed + held_fail.len() as i32;

    let active: Vec<Arc<Pod>> = pods.iter().filter(|p| is_active(p)).cloned().collect();
    // Pods that finished after step 1 looked (this snapshot is newer) are
    // neither running nor recorded: the next pass counts them. Until then they
    // keep their place and their index, so nothing is started instead of them.
    let unrecorded: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| has_finalizer(p) && outcome(p).is_some())
        .filter(|p| !p.uid().is_some_and(|u| uncounted_uids.contains(&u)))
        .collect();
    // With `podReplacementPolicy: Failed` (the default under a pod failure
    // policy) a pod being deleted is replaced only once it has finished.
    let replacing: Vec<&Arc<Pod>> = if spec.pod_replacement_policy.as_deref() == Some("Failed") {
        pods.iter()
            .filter(|p| is_terminating(p))
            .filter(|p| !unrecorded.iter().any(|u| Arc::ptr_eq(u, p)))
            .collect()
    } else {
        Vec::new()
    };
    let now = Timestamp::now();
    let mut requeue = RESYNC;

    // 4. Suspension: no pods run; the condition says so.
    let was_suspended = condition(&conditions, "Suspended").is_some();
    if suspended {
        delete_pods(&job, &ctx, &pods_api, &active, true).await?;
        if set_condition(
            &mut conditions,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
        ) {
            ctx.events
                .publish(
                    job.as_ref(),
                    EventType::Normal,
                    "Suspended",
                    "Job suspended".into(),
                )
                .await;
        }
    } else {
        if was_suspended {
            set_condition(
                &mut conditions,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
            );
            ctx.events
                .publish(
                    job.as_ref(),
                    EventType::Normal,
                    "Resumed",
                    "Job resumed".into(),
                )
                .await;
            status.start_time = Some(Time(now));
        }
        if status.start_time.is_none() {
            status.start_time = Some(Time(now));
        }
    }

    // 5. Has the Job failed, or succeeded?
    if !suspended
        && condition(&conditions, "FailureTarget").is_none()
        && condition(&conditions, "SuccessCriteriaMet").is_none()
    {
        let restarted: i32 = if spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("OnFailure")
        {
            active.iter().map(|p| restarts(p)).sum()
        } else {
            0
        };
        let past_deadline = spec.active_deadline_seconds.and_then(|secs| {
            let start = status.start_time.as_ref()?.0;
            let left = start.as_second() + secs - now.as_second();
            if left <= 0 {
                Some(true)
            } else {
                requeue = requeue.min(Duration::from_secs(left as u64));
                None
            }
        });
        let complete = match completions {
            Some(c) => all_succeeded >= c,
            None => all_succeeded > 0 && active.is_empty(),
        };
        // A failure being counted that the policy says fails the Job (pods let
        // go uncounted, ones the Job deleted itself say, are no failures).
        let failed_by_policy = pods
            .iter()
            .filter(|p| p.uid().is_some_and(|u| uncounted_uids.contains(&u)))
            .filter(|p| outcome(p) == Some(Outcome::Failed))
            .find_map(|p| match judge(policy, p) {
                Verdict::FailJob(message) => Some(message),
                _ => None,
            });
        if let Some(message) = failed_by_policy {
            set_condition(
                &mut conditions,
                "FailureTarget",
                "True",
                "PodFailurePolicy",
                &message,
            );
        } else if all_failed + restarted > backoff_limit {
            set_condition(
                &mut conditions,
                "FailureTarget",
                "True",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            );
        } else if past_deadline.is_some() {
            set_condition(
                &mut conditions,
                "FailureTarget",
                "True",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            );
        } else if complete {
            set_condition(
                &mut conditions,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
        }
    }

    if let Some(target) = condition(&conditions, "FailureTarget")
        .or_else(|| condition(&conditions, "SuccessCriteriaMet"))
        .cloned()
    {
        // 6. Finishing: no pod runs any more; once every pod is counted the
        //    final condition is written.
        let failing = target.type_ == "FailureTarget";
        delete_pods(&job, &ctx, &pods_api, &active, !failing).await?;
        let pods = mine(&ctx.pods.state());
        let settled = !pods.iter().any(|p| has_finalizer(p) || is_terminating(p))
            && held_succ.is_empty()
            && held_fail.is_empty();
        if settled {
            let reason = target.reason.clone().unwrap_or_default();
            let message = target.message.clone().unwrap_or_default();
            if failing {
                set_condition(&mut conditions, "Failed", "True", &reason, &message);
                ctx.events
                    .publish(job.as_ref(), EventType::Warning, &reason, message)
                    .await;
            } else {
                set_condition(&mut conditions, "Complete", "True", &reason, &message);
                status.completion_time = Some(Time(now));
                ctx.events
                    .publish(
                        job.as_ref(),
                        EventType::Normal,
                        "Completed",
                        "Job completed".into(),
                    )
                    .await;
            }
        } else {
            requeue = Duration::from_secs(1);
        }
    } else if !suspended {
        // 7. Run as many pods as wanted, no more than parallelism at once,
        //    after the back-off that failures call for.
        let want = match completions {
            Some(c) if indexed => (c - completed.len() as i32).clamp(0, parallelism),
            Some(c) => (c - all_succeeded).clamp(0, parallelism),
            None if all_succeeded > 0 => active.len() as i32,
            None => parallelism,
        } as usize;
        if active.len() > want {
            let mut extra = active.clone();
            extra.sort_by_key(|p| {
                std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0))
            });
            extra.truncate(active.len() - want);
            delete_pods(&job, &ctx, &pods_api, &extra, true).await?;
        } else if active.len() + unrecorded.len() + replacing.len() < want {
            let last_failure = pods
                .iter()
                .filter(|p| outcome(p) == Some(Outcome::Failed))
                .filter_map(|p| finished_at(p))
                .max();
            let delay = backoff_delay(all_failed.max(0) as u32);
            let wait = last_failure.map_or(0, |t| {
                t.as_second() + delay.as_secs() as i64 - now.as_second()
            });
            if wait > 0 {
                requeue = requeue.min(Duration::from_secs(wait as u64));
            } else {
                let count = want - active.len() - unrecorded.len() - replacing.len();
                let indexes: Vec<Option<i32>> = if indexed {
                    let running: HashSet<i32> = active
                        .iter()
                        .chain(unrecorded.iter().copied())
                        .chain(replacing.iter().copied())
                        .filter_map(|p| index_of(p))
                        .collect();
                    (0..completions.unwrap_or(0))
                        .filter(|i| !completed.contains(i) && !running.contains(i))
                        .take(count)
                        .map(Some)
                        .collect()
                } else {
                    vec![None; count]
                };
                create_pods(&job, &ctx, &pods_api, &indexes).await?;
            }
        }
    }

    // 8. Status from what the cache shows now.
    let pods = mine(&ctx.pods.state());
    let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_active(p)).collect();
    status.active = Some(active.len() as i32).filter(|n| *n > 0);
    status.ready = Some(active.iter().filter(|p| is_ready(p)).count() as i32);
    status.terminating = Some(pods.iter().filter(|p| is_terminating(p)).count() as i32);
    status.succeeded = Some(succeeded).filter(|n| *n > 0);
    status.failed = Some(failed).filter(|n| *n > 0);
    if indexed {
        status.completed_indexes = Some(format_indexes(&completed)).filter(|s| !s.is_empty());
    }
    if status
        .uncounted_terminated_pods
        .as_ref()
        .is_some_and(|u| u.succeeded.is_none() && u.failed.is_none())
    {
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    }
    status.conditions = Some(conditions).filter(|c| !c.is_empty());
    if job.status.as_ref() != Some(&status) {
        write_status(&ctx, &jobs_api, &job, status).await?;
    }
    Ok(Action::requeue(requeue + Duration::from_millis(200)))
}

/// Replaces the Job's status (a conflict is an error: the next reconcile
/// looks again), then waits until the cache shows it: a reconcile that read
/// the Job from before this write would miss the pods it recorded (their
/// finalizers are gone) and start their indexes again.
async fn write_status(
    ctx: &Ctx,
    api: &Api<Job>,
    job: &Job,
    status: JobStatus,
) -> Result<Job, Error> {
    let mut next = job.clone();
    next.status = Some(status);
    next.metadata.managed_fields = None;
    let written = api
        .replace_status(&job.name_any(), &PostParams::default(), &next)
        .await?;
    let uid = written.uid().unwrap_or_default();
    let rv = written.resource_version().unwrap_or_default();
    settle(&ctx.jobs, |jobs| caught_up(jobs, &uid, &rv)).await;
    Ok(written)
}

/// Removes the tracking finalizer from a pod, leaving any others. The write
/// is conditional on the pod's resource version; on a conflict the pod is
/// read again and the write retried.
async fn remove_finalizer(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let mut pod = pod.clone();
    for _ in 0..5 {
        if !has_finalizer(&pod) {
            return Ok(());
        }
        let rest: Vec<&String> = pod
            .finalizers()
            .iter()
            .filter(|f| *f != TRACKING_FINALIZER)
            .collect();
        // No finalizers left: the field goes, as Kubernetes leaves it.
        let rest = if rest.is_empty() {
            json!(null)
        } else {
            json!(rest)
        };
        let patch = json!({"metadata": {
            "finalizers": rest,
            "resourceVersion": pod.metadata.resource_version,
        }});
        match api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                match api.get_opt(&pod.name_any()).await? {
                    Some(p) if p.uid() == pod.uid() => pod = p,
                    _ => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The pod a Job makes from its template; `index` for Indexed Jobs.
pub fn pod_from_template(job: &Job, index: Option<i32>) -> Pod {
    let name = job.name_any();
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let mut finalizers = meta.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.into());
    let mut spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX.into(), i.to_string());
            annotations.insert(COMPLETION_INDEX.into(), i.to_string());
            if spec.hostname.is_none() {
                spec.hostname = Some(format!("{name}-{i}"));
            }
            let env = EnvVar {
                name: INDEX_ENV.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    }),
                    ..EnvVarSource::default()
                }),
            };
            let containers = spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten());
            for c in containers {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == INDEX_ENV) {
                    vars.push(env.clone());
                }
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: Some(annotations).filter(|a| !a.is_empty()),
            finalizers: Some(finalizers),
            owner_references: Some(vec![controller_ref(job)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

async fn create_pods(
    job: &Job,
    ctx: &Ctx,
    api: &Api<Pod>,
    indexes: &[Option<i32>],
) -> Result<(), Error> {
    let pp = PostParams::default();
    let results = futures::future::join_all(
        indexes
            .iter()
            .map(|i| async { api.create(&pp, &pod_from_template(job, *i)).await }),
    )
    .await;
    let mut made = Vec::new();
    let mut failure = None;
    for r in results {
        ctx.events.pod_create(job, &r).await;
        match r {
            Ok(p) => made.push(p.uid().unwrap_or_default()),
            Err(e) => failure = Some(e),
        }
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

/// Deletes pods; with `release`, their finalizer goes first so that they do
/// not count as failures (pods the Job no longer wants, not pods that failed).
async fn delete_pods(
    job: &Job,
    ctx: &Ctx,
    api: &Api<Pod>,
    doomed: &[Arc<Pod>],
    release: bool,
) -> Result<(), Error> {
    if doomed.is_empty() {
        return Ok(());
    }
    let dp = DeleteParams::default();
    for p in doomed {
        if release {
            remove_finalizer(api, p).await?;
        }
        match api.delete(&p.name_any(), &dp).await {
            Ok(_) => {
                ctx.events
                    .publish(
                        job,
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.name_any()),
                    )
                    .await
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let gone: HashSet<String> = doomed.iter().filter_map(|p| p.uid()).collect();
    settle(&ctx.pods, |pods| {
        pods.iter()
            .filter(|p| p.uid().is_some_and(|u| gone.contains(&u)))
            .all(|p| !is_active(p))
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn failed_pod(exit_codes: &[(&str, i32)], conditions: &[(&str, &str)]) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {
                "phase": "Failed",
                "containerStatuses": exit_codes.iter().map(|(name, code)| json!({
                    "name": name, "image": "busybox", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": code}},
                })).collect::<Vec<_>>(),
                "conditions": conditions.iter().map(|(t, s)| json!({"type": t, "status": s}))
                    .collect::<Vec<_>>(),
            },
        }))
        .unwrap()
    }

    fn policy(rules: Value) -> PodFailurePolicy {
        serde_json::from_value(json!({ "rules": rules })).unwrap()
    }

    #[test]
    fn failure_policy_takes_the_first_matching_rule() {
        let p = policy(json!([
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0, 1]}},
            {"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [0]}},
        ]));
        let judged = |codes: &[(&str, i32)], conds: &[(&str, &str)]| {
            judge(Some(&p), &failed_pod(codes, conds))
        };
        assert_eq!(
            judged(&[("main", 42)], &[]),
            Verdict::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at \
                 index 1"
                    .into()
            )
        );
        // Another container's 42 is no match for a rule naming `main`.
        assert_eq!(judged(&[("side", 42)], &[]), Verdict::Count);
        // The disruption rule comes first.
        assert_eq!(
            judged(&[("main", 42)], &[("DisruptionTarget", "True")]),
            Verdict::Ignore
        );
        assert_eq!(
            judged(&[("main", 42)], &[("DisruptionTarget", "False")]),
            Verdict::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at \
                 index 1"
                    .into()
            )
        );
        // 1 passes the third rule and matches the fourth.
        assert_eq!(judged(&[("main", 1)], &[]), Verdict::Ignore);
        // Exit code 0 matches no rule, even NotIn ones.
        assert_eq!(judged(&[("main", 0)], &[]), Verdict::Count);
        assert_eq!(
            judge(None, &failed_pod(&[("main", 42)], &[])),
            Verdict::Count
        );
        let by_condition = policy(json!([
            {"action": "FailJob", "onPodConditions": [{"type": "ConfigIssue", "status": "True"}]},
        ]));
        assert_eq!(
            judge(
                Some(&by_condition),
                &failed_pod(&[], &[("ConfigIssue", "True")])
            ),
            Verdict::FailJob(
                "Pod ns/p has condition ConfigIssue matching FailJob rule at index 0".into()
            )
        );
    }

    #[test]
    fn indexes_round_trip() {
        let set: BTreeSet<i32> = [1, 3, 4, 5, 7, 9, 10].into_iter().collect();
        assert_eq!(format_indexes(&set), "1,3-5,7,9-10");
        assert_eq!(parse_indexes("1,3-5,7,9-10", 11), set);
        assert_eq!(
            parse_indexes("1,3-5,7,9-10", 5),
            [1, 3, 4].into_iter().collect()
        );
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        assert!(parse_indexes("", 3).is_empty());
        assert!(parse_indexes("x,5-2", 9).is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_six_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 320, 360]);
        assert_eq!(backoff_delay(1000).as_secs(), 360);
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let job: Job = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "work", "namespace": "default", "uid": "u1"},
            "spec": {"completionMode": "Indexed", "completions": 3, "template": {
                "metadata": {"labels": {"job-name": "work"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            }}
        }))
        .unwrap();
        let pod = pod_from_template(&job, Some(2));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("work-2-"));
        assert_eq!(pod.labels()[COMPLETION_INDEX], "2");
        assert_eq!(pod.annotations()[COMPLETION_INDEX], "2");
        assert_eq!(pod.finalizers(), [TRACKING_FINALIZER]);
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("work-2"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, INDEX_ENV);
        let plain = pod_from_template(&job, None);
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("work-"));
        assert!(!plain.labels().contains_key(COMPLETION_INDEX));
    }
}
