//! The Job and TTL-after-finished controllers against a real API server
//! in-process. No node runs here: each test plays the kubelet, ending pods
//! by setting their phase to Succeeded or Failed.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{server, wait_long};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const TRACKING: &str = "batch.kubernetes.io/job-tracking";
const INDEX: &str = "batch.kubernetes.io/job-completion-index";

fn job(name: &str, spec: Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox"}]
    }});
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// The Job's pods, oldest first.
async fn pods_of(pods: &Api<Pod>, job: &str) -> Vec<Pod> {
    let mut items = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items;
    items.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    items
}

fn running(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// Ends a pod as a kubelet would report it.
async fn finish(pods: &Api<Pod>, p: &Pod, phase: &str) {
    let code = if phase == "Succeeded" { 0 } else { 1 };
    finish_with(pods, p, phase, code).await;
}

/// Ends a pod whose container exited with `code`.
async fn finish_with(pods: &Api<Pod>, p: &Pod, phase: &str, code: i32) {
    pods.patch_status(
        &p.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": phase,
            "containerStatuses": [{
                "name": "c", "image": "busybox", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": code,
                    "finishedAt": k8s_openapi::jiff::Timestamp::now().to_string()}}
            }]
        }})),
    )
    .await
    .unwrap();
}

fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

fn holds(job: &Job, type_: &str) -> bool {
    condition(job, type_).is_some_and(|(s, _)| s == "True")
}

#[tokio::test]
async fn completions_with_bounded_parallelism() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("five", json!({"completions": 5, "parallelism": 2})),
    )
    .await
    .unwrap();

    // Finish the pods one at a time; never more than two run at once.
    let mut finished = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while finished.len() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {finished:?} done"
        );
        let all = pods_of(&pods, "five").await;
        let running: Vec<&Pod> = all.iter().filter(|p| running(p)).collect();
        assert!(running.len() <= 2, "{} pods running at once", running.len());
        if let Some(p) = running.first() {
            for (k, v) in [
                ("batch.kubernetes.io/job-name", "five"),
                ("job-name", "five"),
            ] {
                assert_eq!(p.labels().get(k).map(String::as_str), Some(v));
            }
            assert!(
                p.labels()
                    .contains_key("batch.kubernetes.io/controller-uid")
            );
            assert!(p.labels().contains_key("controller-uid"));
            assert!(p.finalizers().iter().any(|f| f == TRACKING));
            assert!(p.name_any().starts_with("five-"));
            finish(&pods, p, "Succeeded").await;
            finished.insert(p.name_any());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_long("the job to complete", 30, || async {
        holds(&jobs.get("five").await.unwrap(), "Complete")
    })
    .await;
    let done = jobs.get("five").await.unwrap();
    let status = done.status.clone().unwrap();
    assert_eq!(status.succeeded, Some(5));
    assert_eq!(status.failed, None);
    assert_eq!(status.active, None);
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    assert_eq!(
        condition(&done, "SuccessCriteriaMet"),
        Some(("True".into(), "CompletionsReached".into()))
    );
    assert_eq!(
        condition(&done, "Complete"),
        Some(("True".into(), "CompletionsReached".into()))
    );
    let all = pods_of(&pods, "five").await;
    assert_eq!(all.len(), 5, "no extra pods were made");
    assert!(
        all.iter()
            .all(|p| !p.finalizers().iter().any(|f| f == TRACKING))
    );
    // Deleting counted pods loses no count.
    for p in &all {
        pods.delete(&p.name_any(), &Default::default())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = jobs.get("five").await.unwrap();
    assert_eq!(again.status.unwrap().succeeded, Some(5));
    controllers.abort();
}

#[tokio::test]
async fn backoff_limit_fails_the_job() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("flaky", json!({"backoffLimit": 1})),
    )
    .await
    .unwrap();
    // The first failure is followed by a new pod after the 10 s back-off;
    // the second exceeds the limit.
    let mut failed = 0;
    let started = tokio::time::Instant::now();
    let mut second_after = Duration::ZERO;
    while failed < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out: {failed} failed"
        );
        let all = pods_of(&pods, "flaky").await;
        assert!(all.iter().filter(|p| running(p)).count() <= 1);
        if let Some(p) = all.iter().find(|p| running(p)) {
            if failed == 1 {
                second_after = started.elapsed();
            }
            finish(&pods, p, "Failed").await;
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        second_after >= Duration::from_secs(9),
        "the second pod came {second_after:?} after the start, before the back-off"
    );
    wait_long("the job to fail", 30, || async {
        holds(&jobs.get("flaky").await.unwrap(), "Failed")
    })
    .await;
    let j = jobs.get("flaky").await.unwrap();
    assert_eq!(
        condition(&j, "Failed"),
        Some(("True".into(), "BackoffLimitExceeded".into()))
    );
    assert_eq!(
        condition(&j, "FailureTarget"),
        Some(("True".into(), "BackoffLimitExceeded".into()))
    );
    assert_eq!(j.status.as_ref().unwrap().failed, Some(2));
    assert_eq!(pods_of(&pods, "flaky").await.len(), 2);
    controllers.abort();
}

#[tokio::test]
async fn active_deadline_stops_the_job() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "slow",
            json!({"parallelism": 2, "completions": 4, "activeDeadlineSeconds": 3}),
        ),
    )
    .await
    .unwrap();
    wait_long("two pods", 20, || async {
        pods_of(&pods, "slow")
            .await
            .iter()
            .filter(|p| running(p))
            .count()
            == 2
    })
    .await;
    wait_long("the deadline to fail the job", 30, || async {
        holds(&jobs.get("slow").await.unwrap(), "Failed")
    })
    .await;
    let j = jobs.get("slow").await.unwrap();
    assert_eq!(
        condition(&j, "Failed"),
        Some(("True".into(), "DeadlineExceeded".into()))
    );
    let status = j.status.unwrap();
    assert_eq!(status.active, None);
    assert_eq!(status.failed, Some(2), "the deleted pods count as failed");
    wait_long("the pods to be deleted", 20, || async {
        pods_of(&pods, "slow").await.is_empty()
    })
    .await;
    controllers.abort();
}

#[tokio::test]
async fn indexed_completions() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "idx",
            json!({"completions": 4, "parallelism": 3, "completionMode": "Indexed"}),
        ),
    )
    .await
    .unwrap();
    wait_long("three indexed pods", 20, || async {
        pods_of(&pods, "idx").await.len() == 3
    })
    .await;
    let first = pods_of(&pods, "idx").await;
    let indexes: BTreeSet<String> = first.iter().map(|p| p.labels()[INDEX].clone()).collect();
    assert_eq!(indexes, ["0", "1", "2"].map(String::from).into());
    for p in &first {
        let i = &p.annotations()[INDEX];
        assert_eq!(&p.labels()[INDEX], i);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{i}").as_str()));
        let env = spec.containers[0].env.as_ref().unwrap();
        assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
        assert!(p.name_any().starts_with(&format!("idx-{i}-")));
    }
    let by_index = |i: &str| {
        first
            .iter()
            .find(|p| p.labels()[INDEX] == i)
            .unwrap()
            .clone()
    };
    finish(&pods, &by_index("0"), "Succeeded").await;
    finish(&pods, &by_index("2"), "Succeeded").await;
    wait_long("indexes 0 and 2 to be counted", 20, || async {
        jobs.get("idx")
            .await
            .unwrap()
            .status
            .unwrap()
            .completed_indexes
            .as_deref()
            == Some("0,2")
    })
    .await;
    // Index 3 is started in a freed slot.
    wait_long("a pod for index 3", 20, || async {
        pods_of(&pods, "idx")
            .await
            .iter()
            .any(|p| p.labels()[INDEX] == "3")
    })
    .await;
    for p in pods_of(&pods, "idx").await.iter().filter(|p| running(p)) {
        finish(&pods, p, "Succeeded").await;
    }
    wait_long("the job to complete", 30, || async {
        holds(&jobs.get("idx").await.unwrap(), "Complete")
    })
    .await;
    let status = jobs.get("idx").await.unwrap().status.unwrap();
    assert_eq!(status.completed_indexes.as_deref(), Some("0-3"));
    assert_eq!(status.succeeded, Some(4));
    controllers.abort();
}

#[tokio::test]
async fn suspend_and_resume() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "paused",
            json!({"parallelism": 2, "completions": 2, "suspend": true}),
        ),
    )
    .await
    .unwrap();
    wait_long("the Suspended condition", 20, || async {
        holds(&jobs.get("paused").await.unwrap(), "Suspended")
    })
    .await;
    let j = jobs.get("paused").await.unwrap();
    assert_eq!(
        condition(&j, "Suspended"),
        Some(("True".into(), "JobSuspended".into()))
    );
    assert!(j.status.unwrap().start_time.is_none());
    assert!(pods_of(&pods, "paused").await.is_empty());

    let suspend = |on: bool| Patch::Merge(json!({"spec": {"suspend": on}}));
    jobs.patch("paused", &PatchParams::default(), &suspend(false))
        .await
        .unwrap();
    wait_long("two pods after resuming", 20, || async {
        pods_of(&pods, "paused")
            .await
            .iter()
            .filter(|p| running(p))
            .count()
            == 2
    })
    .await;
    let j = jobs.get("paused").await.unwrap();
    assert_eq!(
        condition(&j, "Suspended"),
        Some(("False".into(), "JobResumed".into()))
    );
    assert!(j.status.unwrap().start_time.is_some());

    jobs.patch("paused", &PatchParams::default(), &suspend(true))
        .await
        .unwrap();
    wait_long("the pods to go when suspended", 20, || async {
        pods_of(&pods, "paused").await.is_empty()
    })
    .await;
    let j = jobs.get("paused").await.unwrap();
    assert!(holds(&j, "Suspended"));
    assert_eq!(j.status.unwrap().failed, None, "suspending is no failure");
    controllers.abort();
}

#[tokio::test]
async fn ttl_after_finished_deletes_the_job() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("brief", json!({"ttlSecondsAfterFinished": 2})),
    )
    .await
    .unwrap();
    wait_long("a pod", 20, || async {
        !pods_of(&pods, "brief").await.is_empty()
    })
    .await;
    finish(&pods, &pods_of(&pods, "brief").await[0], "Succeeded").await;
    wait_long("the job to complete", 20, || async {
        jobs.get_opt("brief")
            .await
            .unwrap()
            .is_some_and(|j| holds(&j, "Complete"))
    })
    .await;
    wait_long("the job and its pod to be deleted", 30, || async {
        jobs.get_opt("brief").await.unwrap().is_none() && pods_of(&pods, "brief").await.is_empty()
    })
    .await;
    controllers.abort();
}

/// The one running pod of `job`, once there is one.
async fn running_pod(pods: &Api<Pod>, job: &str) -> Pod {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(p) = pods_of(pods, job).await.into_iter().find(running) {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no running pod of {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pod_failure_policy_fails_the_job_at_once() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let spec = json!({"backoffLimit": 6, "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}},
    ]}});
    jobs.create(&PostParams::default(), &job("fatal", spec))
        .await
        .unwrap();
    let first = running_pod(&pods, "fatal").await;
    finish_with(&pods, &first, "Failed", 42).await;
    wait_long("the job to fail", 30, || async {
        holds(&jobs.get("fatal").await.unwrap(), "Failed")
    })
    .await;
    let j = jobs.get("fatal").await.unwrap();
    assert_eq!(
        condition(&j, "Failed"),
        Some(("True".into(), "PodFailurePolicy".into()))
    );
    let message = j
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed")
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert_eq!(
        message,
        format!(
            "Container c for pod default/{} failed with exit code 42 matching FailJob rule at index 0",
            first.name_any()
        )
    );
    assert_eq!(j.status.as_ref().unwrap().failed, Some(1));
    // No retry: the budget of 6 was not spent.
    assert_eq!(pods_of(&pods, "fatal").await.len(), 1);
    controllers.abort();
}

#[tokio::test]
async fn pod_failure_policy_ignores_and_counts() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let spec = json!({"backoffLimit": 0, "podFailurePolicy": {"rules": [
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [3]}},
    ]}});
    jobs.create(&PostParams::default(), &job("picky", spec))
        .await
        .unwrap();
    // An ignored failure: replaced without back-off, and not counted, so a
    // backoffLimit of 0 does not fail the Job.
    let first = running_pod(&pods, "picky").await;
    let ended = tokio::time::Instant::now();
    finish_with(&pods, &first, "Failed", 3).await;
    let second = running_pod(&pods, "picky").await;
    assert_ne!(second.uid(), first.uid());
    assert!(
        ended.elapsed() < Duration::from_secs(8),
        "the replacement waited {:?}, a back-off",
        ended.elapsed()
    );
    let j = jobs.get("picky").await.unwrap();
    assert!(
        !holds(&j, "Failed") && !holds(&j, "FailureTarget"),
        "{:?}",
        j.status
    );
    assert_eq!(j.status.as_ref().unwrap().failed, None);
    // A counted one exceeds the limit of 0.
    finish_with(&pods, &second, "Failed", 1).await;
    wait_long("the job to fail", 30, || async {
        holds(&jobs.get("picky").await.unwrap(), "Failed")
    })
    .await;
    let j = jobs.get("picky").await.unwrap();
    assert_eq!(
        condition(&j, "Failed"),
        Some(("True".into(), "BackoffLimitExceeded".into()))
    );
    assert_eq!(j.status.as_ref().unwrap().failed, Some(1));
    controllers.abort();
}
