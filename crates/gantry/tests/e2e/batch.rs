//! Jobs and CronJobs on a `gantry up` node, made and watched with the real
//! kubectl, their pods run by the node with busybox.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// `kubectl create job NAME ... -- sh -c SCRIPT`, with `edit` applied to the
/// Job kubectl would send (it has no flags for completions and the like).
fn create_job(ns: &Namespace<'_>, name: &str, script: &str, edit: impl Fn(&mut Value)) {
    let out = ns
        .kubectl([
            "create",
            "job",
            name,
            "--image=busybox:1.36",
            "--dry-run=client",
            "-o",
            "json",
            "--",
            "sh",
            "-c",
            script,
        ])
        .ok();
    let mut job = json(&out);
    job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1.into();
    edit(&mut job);
    let out = ns
        .kubectl(["create", "-f", "-"])
        .stdin(job.to_string())
        .ok();
    assert_eq!(out.trim(), format!("job.batch/{name} created"));
}

/// The Job's pods.
fn pods_of(ns: &Namespace<'_>, job: &str) -> Vec<Value> {
    let selector = format!("batch.kubernetes.io/job-name={job}");
    let out = ns
        .kubectl(["get", "pods", "-l", &selector, "-o", "json"])
        .ok();
    json(&out)["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn jobs_complete_or_fail_on_a_node() {
    let s = Server::node();
    let ns = s.namespace("jobs");

    // Three completions, two at a time.
    create_job(&ns, "three", "exit 0", |j| {
        j["spec"]["completions"] = 3.into();
        j["spec"]["parallelism"] = 2.into();
    });
    let out = ns
        .kubectl([
            "wait",
            "--for=condition=complete",
            "job/three",
            "--timeout=55s",
        ])
        .ok();
    assert_eq!(out.trim(), "job.batch/three condition met");
    let job = ns.get("job/three");
    assert_eq!(job["status"]["succeeded"], 3, "{job:#}");
    assert!(job["status"]["completionTime"].is_string(), "{job:#}");
    let pods = pods_of(&ns, "three");
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Succeeded", "{p:#}");
        assert!(p["metadata"]["finalizers"].is_null(), "{p:#}");
    }
    let table = ns.kubectl(["get", "job", "three"]).ok();
    assert!(
        table.contains("Complete") && table.contains("3/3"),
        "{table}"
    );

    // A job whose pods fail is retried after a back-off, then fails.
    create_job(&ns, "doomed", "exit 1", |j| {
        j["spec"]["backoffLimit"] = 1.into();
    });
    let out = ns
        .kubectl([
            "wait",
            "--for=condition=failed",
            "job/doomed",
            "--timeout=55s",
        ])
        .ok();
    assert_eq!(out.trim(), "job.batch/doomed condition met");
    let job = ns.get("job/doomed");
    assert_eq!(job["status"]["failed"], 2, "{job:#}");
    let failed = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .cloned()
        .unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    let described = ns.kubectl(["describe", "job", "doomed"]).ok();
    for want in ["SuccessfulCreate", "BackoffLimitExceeded"] {
        assert!(described.contains(want), "{want} missing:\n{described}");
    }
}

#[test]
fn a_cronjob_starts_jobs_on_a_node() {
    let s = Server::node();
    let ns = s.namespace("cron");
    let out = ns
        .kubectl([
            "create",
            "cronjob",
            "tick",
            "--image=busybox:1.36",
            "--schedule=*/1 * * * *",
            "--",
            "sh",
            "-c",
            "exit 0",
        ])
        .ok();
    assert_eq!(out.trim(), "cronjob.batch/tick created");

    // kubectl makes a Job from the CronJob's template by itself.
    let out = ns
        .kubectl(["create", "job", "by-hand", "--from=cronjob/tick"])
        .ok();
    assert_eq!(out.trim(), "job.batch/by-hand created");
    let out = ns
        .kubectl([
            "wait",
            "--for=condition=complete",
            "job/by-hand",
            "--timeout=55s",
        ])
        .ok();
    assert_eq!(out.trim(), "job.batch/by-hand condition met");

    // Within a minute (and a little) the schedule starts a Job.
    let deadline = Instant::now() + Duration::from_secs(100);
    let scheduled = loop {
        let jobs = ns.get("jobs");
        let found = jobs["items"].as_array().unwrap().iter().find(|j| {
            j["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
                && j["metadata"]["ownerReferences"][0]["name"] == "tick"
                && j["metadata"]["name"] != "by-hand"
        });
        if let Some(j) = found {
            break j.clone();
        }
        assert!(Instant::now() < deadline, "no scheduled job: {jobs:#}");
        std::thread::sleep(Duration::from_secs(1));
    };
    let name = scheduled["metadata"]["name"].as_str().unwrap().to_owned();
    let stamp =
        scheduled["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    let minutes = chrono::DateTime::parse_from_rfc3339(&stamp)
        .unwrap_or_else(|e| panic!("{stamp}: {e}"))
        .timestamp()
        / 60;
    assert_eq!(name, format!("tick-{minutes}"));
    let out = ns
        .kubectl([
            "wait",
            "--for=condition=complete",
            &format!("job/{name}"),
            "--timeout=55s",
        ])
        .ok();
    assert_eq!(out.trim(), format!("job.batch/{name} condition met"));
    let cj = ns.get("cronjob/tick");
    assert!(cj["status"]["lastScheduleTime"].is_string(), "{cj:#}");
    // The status catches up with the finished Job.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ns.get("cronjob/tick")["status"]["lastSuccessfulTime"].is_null() {
        assert!(Instant::now() < deadline, "no lastSuccessfulTime");
        std::thread::sleep(Duration::from_millis(500));
    }
    ns.kubectl(["delete", "cronjob", "tick"]).ok();
}
