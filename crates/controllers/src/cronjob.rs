//! The CronJob controller: makes a Job from each CronJob's template at the
//! times its schedule names, as kube-controller-manager 1.32 does (the
//! "v2" controller): the most recent missed start time is run (if within
//! `startingDeadlineSeconds`), the concurrency policy decides what happens
//! to Jobs still running, finished Jobs beyond the history limits are
//! deleted, and `status` lists the active Jobs and the last schedule and
//! success times.
//!
//! The clock is a field of the context, so that tests can move time.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::events::{self, Events};
use crate::informers::Informers;
use crate::owners::{controller_ref, controller_uid, settle};

/// The annotation on each Job with the start time it was made for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed start times than this get a warning.
const MAX_MISSED: usize = 100;

/// The clock the controller reads.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the CronJob has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: kube::Client,
    jobs: Store<Job>,
    events: Events,
    clock: Clock,
}

/// Runs the controller with the system clock until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    run_with_clock(informers, Arc::new(Utc::now)).await
}

/// Runs the controller reading the time from `clock`.
pub async fn run_with_clock(informers: Informers, clock: Clock) -> anyhow::Result<()> {
    let client = informers.client();
    let jobs = informers.get::<Job>().await;
    let cronjobs = informers.get::<CronJob>().await;
    let ctx = Arc::new(Ctx {
        events: Events::new(client.clone(), "cronjob-controller"),
        client,
        jobs: jobs.store(),
        clock,
    });
    Controller::for_stream(cronjobs.stream(), cronjobs.store())
        .watches_stream(jobs.stream(), |job: Job| owner_of(&job))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "cronjob reconcile");
            }
            std::future::ready(())
        })
        .await;
    anyhow::bail!("the cronjob controller ended")
}

fn owner_of(job: &Job) -> Option<ObjectRef<CronJob>> {
    let r = job
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true))?;
    (r.kind == "CronJob" && r.api_version.starts_with("batch/"))
        .then(|| ObjectRef::new(&r.name).within(&job.namespace().unwrap_or_default()))
}

fn error_policy(cj: Arc<CronJob>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(cronjob = %cj.name_any(), %error, "cronjob sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// A parsed schedule and the zone it is read in.
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses a five-field schedule or a `@descriptor`, read in `zone`
    /// (the `timeZone` field), else in a `TZ=`/`CRON_TZ=` prefix's zone,
    /// else in UTC.
    pub fn parse(schedule: &str, zone: Option<&str>) -> Result<Self, String> {
        let mut text = schedule.trim();
        let mut zone_name = zone.map(str::to_owned);
        for prefix in ["TZ=", "CRON_TZ="] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                zone_name.get_or_insert_with(|| name.to_owned());
                text = rest.trim();
            }
        }
        let zone = match zone_name {
            Some(name) => Tz::from_str(&name).map_err(|_| format!("unknown time zone {name}"))?,
            None => Tz::UTC,
        };
        let text = match text {
            "@midnight" => "0 0 * * *",
            t if t.starts_with("@every") => return Err(format!("unsupported schedule {t}")),
            t => t,
        };
        let cron = Cron::from_str(text).map_err(|e| e.to_string())?;
        Ok(Self { cron, zone })
    }

    /// The first start time after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// The last start time at or before `t`.
    pub fn last_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.zone);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// The zone the schedule is read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }
}

/// The most recent start time after `earliest` and at or before `now`, and
/// how many start times were missed in that span (counted up to one past
/// `MAX_MISSED`).
pub fn most_recent(
    schedule: &Schedule,
    earliest: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, usize) {
    let Some(last) = schedule.last_until(now).filter(|t| *t > earliest) else {
        return (None, 0);
    };
    let mut missed = 0;
    let mut t = earliest;
    while let Some(next) = schedule.next_after(t) {
        if next > now || missed > MAX_MISSED {
            break;
        }
        missed += 1;
        t = next;
    }
    (Some(last), missed)
}

/// The name of the Job made for start time `t`: the CronJob's name and the
/// time in minutes since the epoch.
pub fn job_name(cronjob: &str, t: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", t.timestamp() / 60)
}

fn to_chrono(t: &Time) -> DateTime<Utc> {
    Utc.timestamp_opt(t.0.as_second(), 0)
        .single()
        .unwrap_or_default()
}

fn to_time(t: DateTime<Utc>) -> Time {
    Time(Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A finished Job's outcome: `Some(true)` for Complete, `Some(false)` for
/// Failed, `None` while it runs.
fn job_outcome(job: &Job) -> Option<bool> {
    let conds = job.status.as_ref()?.conditions.as_deref()?;
    let holds = |t: &str| conds.iter().any(|c| c.type_ == t && c.status == "True");
    if holds("Complete") {
        Some(true)
    } else if holds("Failed") {
        Some(false)
    } else {
        None
    }
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = cj.namespace().ok_or(Error::NoNamespace)?;
    let uid = cj.uid().unwrap_or_default();
    let name = cj.name_any();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let cj_api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let now = (ctx.clock)();
    let mine = |jobs: &[Arc<Job>]| -> Vec<Arc<Job>> {
        jobs.iter()
            .filter(|j| j.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|j| controller_uid(&j.metadata) == Some(uid.as_str()))
            .cloned()
            .collect()
    };
    let children = mine(&ctx.jobs.state());
    let spec = cj.spec.clone().unwrap_or_default();
    let mut status = cj.status.clone().unwrap_or_default();

    // 1. The active list: running children, finished ones noted.
    let mut active: Vec<ObjectReference> = Vec::new();
    for job in &children {
        match job_outcome(job) {
            None if job.metadata.deletion_timestamp.is_none() => active.push(job_ref(job)),
            None => {}
            Some(succeeded) => {
                let was_active = status
                    .active
                    .iter()
                    .flatten()
                    .any(|r| r.uid == job.metadata.uid);
                if was_active {
                    let condition = if succeeded { "Complete" } else { "Failed" };
                    ctx.events
                        .publish(
                            cj.as_ref(),
                            EventType::Normal,
                            "SawCompletedJob",
                            format!(
                                "Saw completed job: {}, condition: {condition}",
                                job.name_any()
                            ),
                        )
                        .await;
                }
                let completed_at = job.status.as_ref().and_then(|s| s.completion_time.as_ref());
                if succeeded && let Some(at) = completed_at {
                    let newer = status
                        .last_successful_time
                        .as_ref()
                        .is_none_or(|t| t.0 < at.0);
                    if newer {
                        status.last_successful_time = Some(at.clone());
                    }
                }
            }
        }
    }
    active.sort_by(|a, b| a.name.cmp(&b.name));

    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }

    // 2. History: finished Jobs beyond the limits go, oldest first.
    remove_old_jobs(&cj, &ctx, &jobs_api, &children, &spec).await;

    let mut requeue: Option<Duration> = None;
    let schedule = match Schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(s) => Some(s),
        Err(e) => {
            let (reason, note) = if e.starts_with("unknown time zone") {
                (
                    "UnknownTimeZone",
                    format!(
                        "invalid timeZone: {:?}: {e}",
                        spec.time_zone.clone().unwrap_or_default()
                    ),
                )
            } else {
                (
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                )
            };
            ctx.events
                .publish(cj.as_ref(), EventType::Warning, reason, note)
                .await;
            None
        }
    };

    // 3. Start a Job for the most recent start time not yet handled.
    if let Some(schedule) = schedule.as_ref().filter(|_| spec.suspend != Some(true)) {
        let mut earliest = status
            .last_schedule_time
            .as_ref()
            .or(cj.metadata.creation_timestamp.as_ref())
            .map(to_chrono)
            .unwrap_or(now);
        if let Some(deadline) = spec.starting_deadline_seconds {
            earliest = earliest.max(now - chrono::Duration::seconds(deadline));
        }
        let (scheduled, missed) = most_recent(schedule, earliest, now);
        if missed > MAX_MISSED {
            ctx.events
                .publish(
                    cj.as_ref(),
                    EventType::Warning,
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                )
                .await;
        }
        if let Some(at) = scheduled {
            start_job(&cj, &ctx, &jobs_api, &spec, at, &mut active, &mut status).await?;
        }
        requeue = schedule
            .next_after(now)
            .map(|n| (n - now).to_std().unwrap_or_default() + Duration::from_millis(100));
    }

    status.active = Some(active).filter(|a| !a.is_empty());
    if cj.status.as_ref() != Some(&status) {
        let mut body = serde_json::to_value(&status).unwrap_or_default();
        // A merge patch removes what is null.
        if status.active.is_none() {
            body["active"] = serde_json::Value::Null;
        }
        cj_api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": body })),
            )
            .await?;
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// Starts the Job for start time `at`, unless it was started already, it is
/// too late, or the concurrency policy says no.
async fn start_job(
    cj: &CronJob,
    ctx: &Ctx,
    api: &Api<Job>,
    spec: &k8s_openapi::api::batch::v1::CronJobSpec,
    at: DateTime<Utc>,
    active: &mut Vec<ObjectReference>,
    status: &mut k8s_openapi::api::batch::v1::CronJobStatus,
) -> Result<(), Error> {
    let now = (ctx.clock)();
    let name = job_name(&cj.name_any(), at);
    if let Some(deadline) = spec.starting_deadline_seconds
        && at + chrono::Duration::seconds(deadline) < now
    {
        ctx.events
            .publish(
                cj,
                EventType::Warning,
                "MissSchedule",
                format!("Missed scheduled time to start a job: {}", at.to_rfc3339()),
            )
            .await;
        return Ok(());
    }
    // Made already (running or finished).
    let uid = cj.uid().unwrap_or_default();
    if ctx.jobs.state().iter().any(|j| {
        j.metadata.namespace == cj.metadata.namespace
            && j.name_any() == name
            && controller_uid(&j.metadata) == Some(uid.as_str())
    }) {
        return Ok(());
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            ctx.events
                .publish(
                    cj,
                    EventType::Normal,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
                )
                .await;
            return Ok(());
        }
        Some("Replace") => {
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            for r in active.drain(..) {
                let job_name = r.name.clone().unwrap_or_default();
                match api.delete(&job_name, &dp).await {
                    Ok(_) => {
                        ctx.events
                            .publish(
                                cj,
                                EventType::Normal,
                                "SuccessfulDelete",
                                format!("Deleted job {job_name}"),
                            )
                            .await
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        _ => {}
    }
    let job = job_from_template(cj, at, spec.time_zone.as_deref());
    match api.create(&PostParams::default(), &job).await {
        Ok(made) => {
            ctx.events
                .publish(
                    cj,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created job {}", made.name_any()),
                )
                .await;
            active.push(job_ref(&made));
            let made_uid = made.uid().unwrap_or_default();
            settle(&ctx.jobs, |jobs| {
                jobs.iter()
                    .any(|j| j.uid().as_deref() == Some(made_uid.as_str()))
            })
            .await;
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => {
            ctx.events
                .publish(
                    cj,
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating job: {}", events::failure(&e)),
                )
                .await;
            return Err(e.into());
        }
    }
    status.last_schedule_time = Some(to_time(at));
    Ok(())
}

/// The Job a CronJob makes for start time `at`.
pub fn job_from_template(cj: &CronJob, at: DateTime<Utc>, zone: Option<&str>) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let stamp = match zone.and_then(|z| Tz::from_str(z).ok()) {
        Some(tz) => at.with_timezone(&tz).to_rfc3339(),
        None => at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    annotations.insert(SCHEDULED_TIMESTAMP.into(), stamp);
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cj.name_any(), at)),
            namespace: cj.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit`
/// and `failedJobsHistoryLimit`.
async fn remove_old_jobs(
    cj: &CronJob,
    ctx: &Ctx,
    api: &Api<Job>,
    children: &[Arc<Job>],
    spec: &k8s_openapi::api::batch::v1::CronJobSpec,
) {
    let started = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .or(j.meta().creation_timestamp.as_ref())
            .map(|t| t.0)
    };
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    for (succeeded, limit) in [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&Arc<Job>> = children
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .filter(|j| job_outcome(j) == Some(succeeded))
            .collect();
        let keep = limit.max(0) as usize;
        if done.len() <= keep {
            continue;
        }
        // Oldest first; Jobs started in the same second go by name, as
        // in Kubernetes, so that the same ones go on every pass.
        done.sort_by_key(|j| (started(j), j.name_any()));
        for j in &done[..done.len() - keep] {
            match api.delete(&j.name_any(), &dp).await {
                Ok(_) => {
                    ctx.events
                        .publish(
                            cj,
                            EventType::Normal,
                            "SuccessfulDelete",
                            format!("Deleted job {}", j.name_any()),
                        )
                        .await
                }
                Err(e) => tracing::debug!(job = %j.name_any(), error = %e, "removing an old job"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_start_times() {
        let cases = [
            (
                "*/1 * * * *",
                None,
                "2026-03-01T10:00:30Z",
                "2026-03-01T10:01:00Z",
            ),
            (
                "*/15 * * * *",
                None,
                "2026-03-01T10:00:00Z",
                "2026-03-01T10:15:00Z",
            ),
            (
                "@hourly",
                None,
                "2026-03-01T10:59:59Z",
                "2026-03-01T11:00:00Z",
            ),
            (
                "@daily",
                None,
                "2026-03-01T10:00:00Z",
                "2026-03-02T00:00:00Z",
            ),
            (
                "@midnight",
                None,
                "2026-03-01T10:00:00Z",
                "2026-03-02T00:00:00Z",
            ),
            (
                "30 2 * * mon-fri",
                None,
                "2026-03-06T03:00:00Z",
                "2026-03-09T02:30:00Z",
            ),
            (
                "0 0 1 jan,jul *",
                None,
                "2026-03-01T00:00:00Z",
                "2026-07-01T00:00:00Z",
            ),
            (
                "5-10/5 * * * *",
                None,
                "2026-03-01T10:06:00Z",
                "2026-03-01T10:10:00Z",
            ),
            // 09:00 in Tokyo is 00:00 UTC.
            (
                "0 9 * * *",
                Some("Asia/Tokyo"),
                "2026-03-01T01:00:00Z",
                "2026-03-02T00:00:00Z",
            ),
            (
                "CRON_TZ=Asia/Tokyo 0 9 * * *",
                None,
                "2026-03-01T01:00:00Z",
                "2026-03-02T00:00:00Z",
            ),
        ];
        for (schedule, zone, now, want) in cases {
            let s = Schedule::parse(schedule, zone).unwrap();
            assert_eq!(
                s.next_after(at(now)),
                Some(at(want)),
                "{schedule} after {now}"
            );
        }
        assert!(Schedule::parse("0 0 * * *", Some("Mars/Olympus")).is_err());
        assert!(Schedule::parse("61 * * * *", None).is_err());
    }

    #[test]
    fn most_recent_and_missed() {
        let s = Schedule::parse("*/10 * * * *", None).unwrap();
        let (t, missed) = most_recent(&s, at("2026-03-01T10:00:00Z"), at("2026-03-01T10:35:00Z"));
        assert_eq!(t, Some(at("2026-03-01T10:30:00Z")));
        assert_eq!(missed, 3);
        let (t, missed) = most_recent(&s, at("2026-03-01T10:30:00Z"), at("2026-03-01T10:35:00Z"));
        assert_eq!((t, missed), (None, 0));
        let every = Schedule::parse("* * * * *", None).unwrap();
        let (t, missed) = most_recent(
            &every,
            at("2026-03-01T00:00:00Z"),
            at("2026-03-02T00:00:30Z"),
        );
        assert_eq!(t, Some(at("2026-03-02T00:00:00Z")));
        assert!(missed > MAX_MISSED);
    }

    #[test]
    fn job_names_and_annotation() {
        let t = at("2026-03-01T10:30:00Z");
        assert_eq!(
            job_name("hello", t),
            format!("hello-{}", t.timestamp() / 60)
        );
        let cj: CronJob = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "hello", "namespace": "default", "uid": "u1"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
            }}
        }))
        .unwrap();
        let job = job_from_template(&cj, t, None);
        assert_eq!(
            job.annotations()[SCHEDULED_TIMESTAMP],
            "2026-03-01T10:30:00Z"
        );
        assert_eq!(job.labels()["team"], "a");
        assert_eq!(job.owner_references()[0].kind, "CronJob");
        let tokyo = job_from_template(&cj, t, Some("Asia/Tokyo"));
        assert_eq!(
            tokyo.annotations()[SCHEDULED_TIMESTAMP],
            "2026-03-01T19:30:00+09:00"
        );
    }
}
