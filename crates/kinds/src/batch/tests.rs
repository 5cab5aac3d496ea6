//! Tests of Jobs and CronJobs.

use serde_json::{Value, json};

use super::*;
use crate::Strategy;
use crate::apps::tests::{create, update};

fn pi_job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "0b1c",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "pi", "image": "perl:5.34", "command": ["perl", "-e", "print 1"]}]
        }}}
    })
}

#[test]
fn job_defaults_and_generated_selector() {
    let s = job_strategy();
    let (job, errs) = create(&s, pi_job());
    assert!(errs.is_empty(), "{errs:?}");
    let spec = &job["spec"];
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["manualSelector"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "0b1c"}})
    );
    let labels = json!({
        "job-name": "pi", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "0b1c", "batch.kubernetes.io/controller-uid": "0b1c"
    });
    assert_eq!(spec["template"]["metadata"]["labels"], labels);
    assert_eq!(job["metadata"]["labels"], labels);
}

#[test]
fn job_parallelism_only_leaves_completions_unset() {
    let mut j = pi_job();
    j["spec"]["parallelism"] = json!(3);
    let (job, errs) = create(&job_strategy(), j);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(job["spec"].get("completions").is_none());
    let now = crate::table::parse_time("2026-01-01T00:00:00Z").unwrap();
    assert_eq!(job_strategy().row(&job, now)[2], json!("0/1 of 3"));
}

#[test]
fn job_rejections() {
    let s = job_strategy();
    let mut j = pi_job();
    j["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("restartPolicy");
    j["spec"]["completions"] = json!(-1);
    assert_eq!(
        create(&s, j).1,
        [
            "spec.completions: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
        ]
    );
    let mut manual = pi_job();
    manual["spec"]["selector"] = json!({"matchLabels": {"app": "pi"}});
    manual["spec"]["template"]["metadata"] = json!({"labels": {"app": "pi"}});
    let errs = create(&s, manual).1;
    assert_eq!(
        errs,
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"pi\", \"batch.kubernetes.io/controller-uid\":\"0b1c\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated"
        ]
    );
}

#[test]
fn job_template_is_immutable() {
    let s = job_strategy();
    let (old, _) = create(&s, pi_job());
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5.36");
    let errs = update(&s, &old, new).1;
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("spec.template: Invalid value: {"),
        "{errs:?}"
    );
    assert!(errs[0].ends_with(": field is immutable"));
    let mut suspended = old.clone();
    suspended["spec"]["suspend"] = json!(true);
    let mut relabeled = suspended.clone();
    relabeled["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    assert!(update(&s, &suspended, relabeled).1.is_empty());
}

#[test]
fn job_table() {
    let s = job_strategy();
    let (mut job, _) = create(&s, pi_job());
    job["status"] = json!({
        "succeeded": 1, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:07Z",
        "conditions": [{"type": "Complete", "status": "True"}]
    });
    let now = crate::table::parse_time("2026-01-01T01:00:00Z").unwrap();
    assert_eq!(
        s.row(&job, now),
        vec![
            json!("pi"),
            json!("Complete"),
            json!("1/1"),
            json!("7s"),
            json!("60m"),
            json!("pi"),
            json!("perl:5.34"),
            json!("batch.kubernetes.io/controller-uid=0b1c"),
        ]
    );
    let names: Vec<String> = s.columns().iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        s.selectable_fields(&job),
        [("status.successful".to_string(), "1".to_string())]
    );
}

fn cron_job(schedule: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "hello", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "hello", "image": "busybox:1.36"}]
        }}}}}
    })
}

#[test]
fn cron_jobs() {
    let s = cron_job_strategy();
    let (cj, errs) = create(&s, cron_job("*/1 * * * *"));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["suspend"], false);
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    assert!(
        cj["spec"]["jobTemplate"]["spec"]
            .get("backoffLimit")
            .is_none()
    );
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );

    assert_eq!(
        create(&s, cron_job("61 * * * *")).1,
        ["spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"]
    );
    let mut long = cron_job("@daily");
    long["metadata"]["name"] = json!("a".repeat(53));
    assert_eq!(
        create(&s, long).1,
        [format!(
            "metadata.name: Invalid value: \"{}\": must be no more than 52 characters",
            "a".repeat(53)
        )]
    );
    let mut tz = cron_job("CRON_TZ=UTC 0 0 * * *");
    tz["spec"]["timeZone"] = json!("Local");
    assert_eq!(
        create(&s, tz).1,
        [
            "spec.schedule: Invalid value: \"CRON_TZ=UTC 0 0 * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            "spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ]
    );

    let mut heavy = cron_job("@daily");
    heavy["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"memory": "1 Gi"}});
    assert_eq!(
        s.check_types(&heavy).unwrap_err().field,
        "spec.jobTemplate.spec.template.spec.containers[0].resources.requests.memory"
    );
    let mut unnamed = cron_job("@daily");
    unnamed["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "", "value": "x"}]);
    assert_eq!(
        create(&s, unnamed).1,
        [
            "spec.jobTemplate.spec.template.spec.containers[0].env[0].name: Required value",
            "spec.jobTemplate.spec.template.spec.containers[0].env[0].name: Invalid value: \"\": environment variable name must be non-empty",
        ]
    );

    let mut running = cj.clone();
    running["status"] =
        json!({"active": [{"name": "hello-1"}], "lastScheduleTime": "2026-01-01T00:09:00Z"});
    let now = crate::table::parse_time("2026-01-01T00:10:00Z").unwrap();
    assert_eq!(
        s.row(&running, now),
        vec![
            json!("hello"),
            json!("*/1 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("60s"),
            json!("10m"),
            json!("hello"),
            json!("busybox:1.36"),
            json!("<none>"),
        ]
    );
}

#[test]
fn pod_failure_policies_are_checked() {
    let s = job_strategy();
    let mut job = pi_job();
    job["spec"]["podFailurePolicy"] = json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "pi", "operator": "In", "values": [1, 42]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]});
    let (made, errs) = create(&s, job.clone());
    assert!(errs.is_empty(), "{errs:?}");
    // A condition pattern's status defaults to True; replacement waits for failure.
    assert_eq!(
        made["spec"]["podFailurePolicy"]["rules"][1]["onPodConditions"][0]["status"],
        "True"
    );
    assert_eq!(made["spec"]["podReplacementPolicy"], "Failed");

    job["spec"]["podFailurePolicy"] = json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "nope", "operator": "In", "values": [0, 3, 3, 2]}},
        {"action": "Explode", "onPodConditions": [{"type": "Ready", "status": "Maybe"}]},
        {"action": "Count"},
        {"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [1]},
         "onPodConditions": [{"type": "Ready", "status": "True"}]},
        {"action": "FailIndex", "onExitCodes": {"operator": "Between", "values": []}},
    ]});
    job["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    let errs = create(&s, job).1;
    let p = "spec.podFailurePolicy.rules";
    for want in [
        format!(
            "{p}[0].onExitCodes.containerName: Invalid value: \"nope\": must be one of the \
             container or initContainer names in the pod template"
        ),
        format!(
            "{p}[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator"
        ),
        format!("{p}[0].onExitCodes.values[2]: Duplicate value: 3"),
        format!("{p}[0].onExitCodes.values[3]: Invalid value: 2: must be ordered"),
        format!(
            "{p}[1].action: Unsupported value: \"Explode\": supported values: \"Count\", \
             \"FailIndex\", \"FailJob\", \"Ignore\""
        ),
        format!(
            "{p}[1].onPodConditions[0].status: Unsupported value: \"Maybe\": supported values: \
             \"False\", \"True\", \"Unknown\""
        ),
        format!(
            "{p}[2]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required"
        ),
        format!(
            "{p}[3]: Invalid value: specifying both OnExitCodes and OnPodConditions is not supported"
        ),
        format!(
            "{p}[4].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set"
        ),
        format!(
            "{p}[4].onExitCodes.operator: Unsupported value: \"Between\": supported values: \
             \"In\", \"NotIn\""
        ),
        format!(
            "{p}[4].onExitCodes.values: Invalid value: []int32{{}}: at least one value is required, and at \
             most 255 are allowed"
        ),
        "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \
         \"Never\""
            .to_owned(),
    ] {
        assert!(errs.contains(&want), "missing {want}\nin {errs:#?}");
    }
    assert_eq!(errs.len(), 12, "{errs:#?}");
}

#[test]
fn per_index_backoff_is_refused_not_ignored() {
    let s = job_strategy();
    let mut job = pi_job();
    job["spec"]["completionMode"] = json!("Indexed");
    job["spec"]["backoffLimitPerIndex"] = json!(1);
    job["spec"]["maxFailedIndexes"] = json!(2);
    let errs = create(&s, job).1;
    assert_eq!(
        errs,
        vec![
            "spec.backoffLimitPerIndex: Forbidden: not supported by this server (per-index \
             backoff limits are not implemented)",
            "spec.maxFailedIndexes: Forbidden: not supported by this server (per-index backoff \
             limits are not implemented)",
        ]
    );
}
