//! The CronJob controller (with the Job controller under it) against a real
//! API server in-process, on a clock the test moves: a minute passes when
//! the test says so, and touching the CronJob makes the controller look.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use common::{server, wait_long};
use controllers::cronjob::{self, SCHEDULED_TIMESTAMP};
use controllers::informers::Informers;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The controllers this file needs, on a clock that stands still half a
/// minute past a whole minute, `offset` seconds on: only the test moves it,
/// so a real minute ending during a test makes no Job.
fn start(client: &kube::Client, offset: Arc<AtomicI64>) -> Vec<tokio::task::JoinHandle<()>> {
    let informers = Informers::new(client.clone());
    let now = Utc::now().timestamp();
    let base = chrono::DateTime::from_timestamp(now - now % 60 + 30, 0).unwrap();
    let clock: cronjob::Clock =
        Arc::new(move || base + chrono::Duration::seconds(offset.load(Ordering::SeqCst)));
    let ignore = |r: anyhow::Result<()>| drop(r);
    vec![
        tokio::spawn({
            let i = informers.clone();
            async move { ignore(controllers::job::run(i).await) }
        }),
        tokio::spawn(async move { ignore(cronjob::run_with_clock(informers, clock).await) }),
        tokio::spawn({
            let c = client.clone();
            async move { ignore(controllers::gc::run(c).await) }
        }),
    ]
}

fn cron_job(name: &str, extra: Value) -> CronJob {
    let mut spec = json!({
        "schedule": "*/1 * * * *",
        "jobTemplate": {
            "metadata": {"labels": {"cron": name}},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]
            }}}
        }
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// The CronJob's Jobs that are not being deleted, by name.
async fn jobs_of(jobs: &Api<Job>, cj: &str) -> Vec<String> {
    let mut names: Vec<String> = jobs
        .list(&ListParams::default().labels(&format!("cron={cj}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .map(|j| j.name_any())
        .collect();
    names.sort();
    names
}

/// Moves the clock a minute on and makes the controller look again.
async fn next_minute(cjs: &Api<CronJob>, name: &str, offset: &AtomicI64) {
    let now = offset.fetch_add(60, Ordering::SeqCst) + 60;
    cjs.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"test/tick": now.to_string()}}})),
    )
    .await
    .unwrap();
}

/// Ends the Job's pods with `phase`, as a kubelet would.
async fn finish_job(pods: &Api<Pod>, job: &str, phase: &str) {
    wait_long(&format!("a pod of {job}"), 20, || async {
        !pods
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    for p in pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
    {
        pods.patch_status(
            &p.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": phase}})),
        )
        .await
        .unwrap();
    }
}

async fn job_finished(jobs: &Api<Job>, name: &str) -> bool {
    jobs.get(name).await.is_ok_and(|j| {
        j.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
    })
}

#[tokio::test]
async fn forbid_skips_while_a_job_runs() {
    let (_dir, _server, client) = server().await;
    let offset = Arc::new(AtomicI64::new(0));
    let tasks = start(&client, offset.clone());
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    cjs.create(
        &PostParams::default(),
        &cron_job("tick", json!({"concurrencyPolicy": "Forbid"})),
    )
    .await
    .unwrap();
    next_minute(&cjs, "tick", &offset).await;
    wait_long("the first job", 20, || async {
        jobs_of(&jobs, "tick").await.len() == 1
    })
    .await;
    let first = jobs_of(&jobs, "tick").await.remove(0);
    let job = jobs.get(&first).await.unwrap();
    let stamp = &job.annotations()[SCHEDULED_TIMESTAMP];
    let at = chrono::DateTime::parse_from_rfc3339(stamp).unwrap();
    assert_eq!(first, format!("tick-{}", at.timestamp() / 60));
    assert_eq!(at.timestamp() % 60, 0, "{stamp}");
    wait_long("the active list to name the job", 20, || async {
        cjs.get("tick").await.unwrap().status.is_some_and(|s| {
            s.last_schedule_time.is_some()
                && s.active
                    .is_some_and(|a| a.len() == 1 && a[0].name.as_deref() == Some(first.as_str()))
        })
    })
    .await;

    // Still running a minute later: nothing new starts.
    next_minute(&cjs, "tick", &offset).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(jobs_of(&jobs, "tick").await, std::slice::from_ref(&first));

    // Once it has finished, the start time it skipped (still the most
    // recent one, and no deadline set) gets its Job.
    finish_job(&pods, &first, "Succeeded").await;
    wait_long("the first job to complete", 20, || {
        job_finished(&jobs, &first)
    })
    .await;
    wait_long("lastSuccessfulTime", 20, || async {
        cjs.get("tick")
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.last_successful_time.is_some())
    })
    .await;
    wait_long("a second job", 20, || async {
        jobs_of(&jobs, "tick").await.len() == 2
    })
    .await;
    tasks.iter().for_each(|t| t.abort());
}

#[tokio::test]
async fn replace_deletes_the_running_job() {
    let (_dir, _server, client) = server().await;
    let offset = Arc::new(AtomicI64::new(0));
    let tasks = start(&client, offset.clone());
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    cjs.create(
        &PostParams::default(),
        &cron_job("swap", json!({"concurrencyPolicy": "Replace"})),
    )
    .await
    .unwrap();
    next_minute(&cjs, "swap", &offset).await;
    wait_long("the first job", 20, || async {
        jobs_of(&jobs, "swap").await.len() == 1
    })
    .await;
    let first = jobs_of(&jobs, "swap").await.remove(0);
    next_minute(&cjs, "swap", &offset).await;
    wait_long("the first job replaced by a second", 30, || async {
        let now = jobs_of(&jobs, "swap").await;
        now.len() == 1 && now[0] != first
    })
    .await;
    let second = jobs_of(&jobs, "swap").await.remove(0);
    wait_long("the active list to name the second job", 20, || async {
        cjs.get("swap")
            .await
            .unwrap()
            .status
            .and_then(|s| s.active)
            .is_some_and(|a| a.len() == 1 && a[0].name.as_deref() == Some(second.as_str()))
    })
    .await;
    tasks.iter().for_each(|t| t.abort());
}

#[tokio::test]
async fn history_limits_keep_the_newest_finished_jobs() {
    let (_dir, _server, client) = server().await;
    let offset = Arc::new(AtomicI64::new(0));
    let tasks = start(&client, offset.clone());
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    cjs.create(
        &PostParams::default(),
        &cron_job(
            "keep",
            json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1}),
        ),
    )
    .await
    .unwrap();
    // Three Jobs: the first two succeed, the third fails.
    let mut made: Vec<String> = Vec::new();
    for phase in ["Succeeded", "Succeeded", "Failed"] {
        next_minute(&cjs, "keep", &offset).await;
        wait_long("a new job", 20, || async {
            jobs.list(&ListParams::default().labels("cron=keep"))
                .await
                .unwrap()
                .items
                .iter()
                .any(|j| !made.contains(&j.name_any()))
        })
        .await;
        let name = jobs
            .list(&ListParams::default().labels("cron=keep"))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|j| j.name_any())
            .find(|n| !made.contains(n))
            .unwrap();
        finish_job(&pods, &name, phase).await;
        wait_long("the job to finish", 30, || job_finished(&jobs, &name)).await;
        made.push(name);
    }
    // The oldest success goes; the newest success and the failure stay.
    wait_long("the oldest job to be deleted", 30, || async {
        jobs_of(&jobs, "keep").await == [made[1].clone(), made[2].clone()]
    })
    .await;
    tasks.iter().for_each(|t| t.abort());
}
