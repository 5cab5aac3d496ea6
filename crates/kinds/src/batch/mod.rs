//! batch/v1: Jobs and CronJobs.

use std::sync::Arc;

use k8s_openapi::api::batch::v1 as batch;
use serde_json::{Map, Value, json};

use crate::apps::fields::{self, child, default_str, default_value, get, get_map, int_or_zero};
use crate::apps::messages::{go_label_selector, go_string_map, nonnegative_at, render};
use crate::apps::selector::{Selector, format_label_selector, validate_selector};
use crate::apps::strategy::KindStrategy;
use crate::catalog::resource;
use crate::core::field::{immutable, not_supported, supported_values};
use crate::core::podspec::{self, container_columns, default_template_json, template_cells};
use crate::table::{self, age_column, column, human_duration, name_column, parse_time, wide};
use crate::validation::{dns1123_label, quote};
use crate::{Column, FieldError, ResourceDef};

mod cron;

/// Where a Job keeps its pod template.
const JOB_TEMPLATE: &str = "/spec/template";
/// Where a CronJob keeps the pod template of its Jobs.
const CRON_JOB_TEMPLATE: &str = "/spec/jobTemplate/spec/template";

/// The label Kubernetes puts the Job's uid under on its pods (and selects).
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// The same, as older Kubernetes named it (still set).
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
/// The label carrying the Job's name.
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// The same, as older Kubernetes named it (still set).
const LEGACY_JOB_NAME: &str = "job-name";

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource("batch", "v1", "Job", "jobs", Arc::new(job_strategy()))
            .categories(&["all"])
            .status()
            .build(),
        resource(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            Arc::new(cron_job_strategy()),
        )
        .short_names(&["cj"])
        .categories(&["all"])
        .status()
        .build(),
    ]
}

// ---------------------------------------------------------------------------
// Jobs

fn job_strategy() -> KindStrategy<batch::Job> {
    KindStrategy {
        status: true,
        generation: true,
        default: default_job,
        prepare_create: prepare_job_create,
        validate: validate_job,
        validate_status: validate_job_status,
        selectable: |obj| {
            vec![(
                "status.successful".into(),
                int_or_zero(obj, "/status/succeeded").to_string(),
            )]
        },
        template: Some(JOB_TEMPLATE),
        ..KindStrategy::new(job_columns, job_row)
    }
}

/// batch/v1 `SetDefaults_Job` and the template's defaults.
fn default_job(obj: &mut Value) {
    let template_labels = get_map(obj, "/spec/template/metadata/labels").cloned();
    let job_labels_empty = get_map(obj, "/metadata/labels").is_none_or(Map::is_empty);
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if fields::is_unset(spec, "completions") && fields::is_unset(spec, "parallelism") {
        fields::set(spec, "completions", json!(1));
        fields::set(spec, "parallelism", json!(1));
    }
    default_value(spec, "parallelism", json!(1));
    if fields::is_unset(spec, "backoffLimit") {
        let limit = if fields::is_unset(spec, "backoffLimitPerIndex") {
            6
        } else {
            i64::from(i32::MAX)
        };
        fields::set(spec, "backoffLimit", json!(limit));
    }
    default_value(spec, "completionMode", json!("NonIndexed"));
    default_value(spec, "suspend", json!(false));
    let has_failure_policy = !fields::is_unset(spec, "podFailurePolicy");
    if let Some(policy) = fields::child_if(spec, "podFailurePolicy") {
        for rule in fields::each_mut(policy, "rules") {
            for pattern in fields::each_mut(rule, "onPodConditions") {
                default_str(pattern, "status", "True");
            }
        }
    }
    let replacement = if has_failure_policy {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    default_value(spec, "podReplacementPolicy", json!(replacement));
    default_value(spec, "manualSelector", json!(false));
    if let Some(template) = child(spec, "template") {
        default_template_json(template);
    }
    // A Job without labels takes its template's.
    if let Some(labels) = template_labels
        && job_labels_empty
        && let Some(meta) = child(obj, "metadata")
    {
        fields::set(meta, "labels", Value::Object(labels));
    }
}

/// Unless the user asked to choose the selector (`manualSelector: true`),
/// Kubernetes labels the template with the Job's name and uid and selects
/// the uid; the engine has set `metadata.uid` by now.
fn prepare_job_create(obj: &mut Value) {
    if fields::get_bool(obj, "/spec/manualSelector") == Some(true) {
        return;
    }
    let name = fields::str_or_empty(obj, "/metadata/name").to_owned();
    let uid = fields::str_or_empty(obj, "/metadata/uid").to_owned();
    let before = get_map(obj, "/spec/template/metadata/labels").cloned();
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if let Some(labels) = child(spec, "template")
        .and_then(|t| child(t, "metadata"))
        .and_then(|m| child(m, "labels"))
    {
        for key in [LEGACY_JOB_NAME, JOB_NAME] {
            default_value(labels, key, json!(name));
        }
        for key in [LEGACY_CONTROLLER_UID, CONTROLLER_UID] {
            default_value(labels, key, json!(uid));
        }
    }
    if let Some(match_labels) = child(spec, "selector").and_then(|s| child(s, "matchLabels")) {
        default_value(match_labels, CONTROLLER_UID, json!(uid));
    }
    // Kubernetes' defaulter made the Job's labels the very map of its
    // template, so labels copied from the template show the generated ones
    // too.
    let after = get_map(obj, "/spec/template/metadata/labels").cloned();
    let job_labels = get_map(obj, "/metadata/labels");
    if (job_labels.is_none_or(Map::is_empty) || job_labels == before.as_ref())
        && let (Some(after), Some(meta)) = (after, child(obj, "metadata"))
    {
        fields::set(meta, "labels", Value::Object(after));
    }
}

fn validate_job(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // Updates check Kubernetes' newer labels only where the Job has them.
    let prefixed = old.is_none_or(|o| {
        get(
            o,
            &format!(
                "/spec/template/metadata/labels/{}",
                pointer_key(CONTROLLER_UID)
            ),
        )
        .is_some()
    });
    errs.extend(validate_generated_selector(obj, prefixed));
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    errs.extend(validate_job_spec(&spec, "spec"));
    let sel = get(&spec, "/selector");
    match sel {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(s) => errs.extend(validate_selector(Some(s), "spec.selector")),
    }
    if let Ok(parsed) = Selector::parse(sel) {
        let labels = get_map(&spec, "/template/metadata/labels");
        if !parsed.matches(labels) {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                go_string_map(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if fields::str_or_empty(&spec, "/completionMode") == "Indexed"
        && let Some(completions) = fields::get_i64(&spec, "/completions").filter(|c| *c > 0)
    {
        let name = fields::str_or_empty(obj, "/metadata/name");
        let hostname = format!("{name}-{}", completions - 1);
        if !dns1123_label(&hostname).is_empty() {
            errs.push(FieldError::invalid(
                "metadata.name",
                quote(name),
                format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
    if let Some(old) = old {
        errs.extend(validate_job_update(obj, old));
    }
    errs
}

fn pointer_key(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The checks Kubernetes makes of a selector it generated itself.
fn validate_generated_selector(obj: &Value, prefixed: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if fields::get_bool(obj, "/spec/manualSelector") == Some(true)
        || get(obj, "/spec/selector").is_none()
    {
        return errs;
    }
    let uid = fields::str_or_empty(obj, "/metadata/uid");
    let name = fields::str_or_empty(obj, "/metadata/name");
    if uid.is_empty() {
        errs.push(FieldError::required("metadata.uid", ""));
    }
    let labels = get_map(obj, "/spec/template/metadata/labels");
    let mut expect = vec![(LEGACY_CONTROLLER_UID, uid), (LEGACY_JOB_NAME, name)];
    if prefixed {
        expect.extend([(CONTROLLER_UID, uid), (JOB_NAME, name)]);
    }
    for (key, want) in expect {
        let field = format!("spec.template.metadata.labels[{key}]");
        match labels.and_then(|l| l.get(key)).and_then(Value::as_str) {
            None => errs.push(FieldError::required(field, format!("must be '{want}'"))),
            Some(v) if v != want => errs.push(FieldError::invalid(
                field,
                go_string_map(labels),
                format!("must be '{want}'"),
            )),
            Some(_) => {}
        }
    }
    let uid_key = if prefixed {
        CONTROLLER_UID
    } else {
        LEGACY_CONTROLLER_UID
    };
    let mut expected = Map::new();
    expected.insert(uid_key.into(), json!(uid));
    let sel = get(obj, "/spec/selector");
    match Selector::parse(sel) {
        Err(_) => errs.push(FieldError::invalid(
            "spec.selector",
            go_label_selector(sel),
            "invalid label selector.",
        )),
        Ok(s) if !s.matches(Some(&expected)) => {
            errs.push(FieldError::invalid(
                "spec.selector",
                go_label_selector(sel),
                "`selector` not auto-generated",
            ));
        }
        Ok(_) => {}
    }
    errs
}

/// Kubernetes' `validateJobSpec`, shared by Jobs and CronJobs' job
/// templates; `path` is where the spec sits.
fn validate_job_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        errs.extend(nonnegative_at(
            spec,
            &format!("/{key}"),
            &format!("{path}.{key}"),
        ));
    }
    if let Some(mode) = fields::get_str(spec, "/completionMode") {
        if mode != "NonIndexed" && mode != "Indexed" {
            errs.push(not_supported(
                format!("{path}.completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if mode == "Indexed" {
            if get(spec, "/completions").is_none() {
                errs.push(FieldError::required(
                    format!("{path}.completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = fields::get_i64(spec, "/parallelism").filter(|p| *p > 100_000) {
                errs.push(FieldError::invalid(
                    format!("{path}.parallelism"),
                    p.to_string(),
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
        }
    }
    if let Some(policy) = fields::get_str(spec, "/podReplacementPolicy") {
        let field = format!("{path}.podReplacementPolicy");
        if get(spec, "/podFailurePolicy").is_some() {
            if policy != "Failed" {
                errs.push(not_supported(&field, policy, &["Failed"]));
            }
        } else if policy != "Failed" && policy != "TerminatingOrFailed" {
            errs.push(not_supported(
                &field,
                policy,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    // Failure budgets per index are not run by this server's Job controller:
    // refused rather than ignored.
    for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
        if get(spec, &format!("/{key}")).is_some_and(|v| !v.is_null()) {
            errs.push(FieldError::forbidden(
                format!("{path}.{key}"),
                "not supported by this server (per-index backoff limits are not implemented)",
            ));
        }
    }
    let template = podspec::template_at(spec, "/template");
    errs.extend(podspec::validate_pod_template_spec(
        &template,
        &format!("{path}.template"),
    ));
    let failure_policy = get(spec, "/podFailurePolicy").filter(|v| !v.is_null());
    if let Some(policy) = failure_policy {
        let names: Vec<&str> = template
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .map(|c| c.name.as_str())
            .collect();
        errs.extend(validate_pod_failure_policy(
            policy,
            &names,
            &format!("{path}.podFailurePolicy"),
        ));
    }
    // An unset restartPolicy was defaulted to Always, so both mean the user
    // has not chosen one a Job can use.
    let restart_field = format!("{path}.template.spec.restartPolicy");
    let restart = template.spec.and_then(|s| s.restart_policy);
    match restart.as_deref().unwrap_or_default() {
        "" | "Always" => errs.push(FieldError::required(
            &restart_field,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" | "Never" => {}
        other => errs.push(not_supported(
            &restart_field,
            other,
            &["OnFailure", "Never"],
        )),
    }
    if failure_policy.is_some()
        && let Some(policy @ "OnFailure") = restart.as_deref()
    {
        errs.push(not_supported(&restart_field, policy, &["Never"]));
    }
    errs
}

/// The most rules a pod failure policy may have, and patterns and exit codes a rule.
const MAX_FAILURE_RULES: usize = 20;
const MAX_CONDITION_PATTERNS: usize = 20;
const MAX_EXIT_CODES: usize = 255;

fn too_many(field: String, count: usize, most: usize) -> FieldError {
    FieldError {
        kind: crate::FieldErrorKind::TooMany,
        field,
        value: Some(count.to_string()),
        detail: format!("must have at most {most} items"),
    }
}

/// Kubernetes' `validatePodFailurePolicy`; `containers` are the template's
/// container and init container names.
fn validate_pod_failure_policy(policy: &Value, containers: &[&str], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = policy
        .get("rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if rules.len() > MAX_FAILURE_RULES {
        errs.push(too_many(
            format!("{path}.rules"),
            rules.len(),
            MAX_FAILURE_RULES,
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{path}.rules[{i}]");
        let action = fields::str_or_empty(rule, "/action");
        match action {
            "" => errs.push(FieldError::required(
                format!("{at}.action"),
                "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            )),
            // FailIndex needs backoffLimitPerIndex, which is refused above.
            "FailIndex" => errs.push(FieldError::invalid(
                format!("{at}.action"),
                quote(action),
                "requires the backoffLimitPerIndex to be set",
            )),
            "Count" | "FailJob" | "Ignore" => {}
            other => errs.push(not_supported(
                format!("{at}.action"),
                other,
                &["Count", "FailIndex", "FailJob", "Ignore"],
            )),
        }
        let codes = rule.get("onExitCodes").filter(|v| !v.is_null());
        let patterns = rule
            .get("onPodConditions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(codes) = codes {
            errs.extend(validate_on_exit_codes(
                codes,
                containers,
                &format!("{at}.onExitCodes"),
            ));
        }
        if patterns.len() > MAX_CONDITION_PATTERNS {
            errs.push(too_many(
                format!("{at}.onPodConditions"),
                patterns.len(),
                MAX_CONDITION_PATTERNS,
            ));
        }
        for (j, pattern) in patterns.iter().enumerate() {
            let pat = format!("{at}.onPodConditions[{j}]");
            errs.extend(crate::core::field::qualified_name(
                &format!("{pat}.type"),
                fields::str_or_empty(pattern, "/type"),
            ));
            let status = fields::str_or_empty(pattern, "/status");
            if !matches!(status, "True" | "False" | "Unknown") {
                errs.push(not_supported(
                    format!("{pat}.status"),
                    status,
                    &["False", "True", "Unknown"],
                ));
            }
        }
        let detail = match (codes.is_some(), patterns.is_empty()) {
            (true, false) => "specifying both OnExitCodes and OnPodConditions is not supported",
            (false, true) => "specifying one of OnExitCodes and OnPodConditions is required",
            _ => "",
        };
        if !detail.is_empty() {
            // Kubernetes gives no value here (`field.OmitValueType`).
            errs.push(FieldError {
                kind: crate::FieldErrorKind::Invalid,
                field: at,
                value: None,
                detail: detail.to_owned(),
            });
        }
    }
    errs
}

/// A list of exit codes as Go prints an `[]int32`.
fn go_int32s(values: &[i64]) -> String {
    let items: Vec<String> = values.iter().map(i64::to_string).collect();
    format!("[]int32{{{}}}", items.join(", "))
}

fn validate_on_exit_codes(codes: &Value, containers: &[&str], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(name) = fields::get_str(codes, "/containerName")
        && !containers.contains(&name)
    {
        errs.push(FieldError::invalid(
            format!("{path}.containerName"),
            quote(name),
            "must be one of the container or initContainer names in the pod template",
        ));
    }
    let operator = fields::str_or_empty(codes, "/operator");
    match operator {
        "" => errs.push(FieldError::required(
            format!("{path}.operator"),
            "valid values: [\"In\" \"NotIn\"]",
        )),
        "In" | "NotIn" => {}
        other => errs.push(not_supported(
            format!("{path}.operator"),
            other,
            &["In", "NotIn"],
        )),
    }
    let values: Vec<i64> = codes
        .get("values")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if values.is_empty() || values.len() > MAX_EXIT_CODES {
        errs.push(FieldError::invalid(
            format!("{path}.values"),
            go_int32s(&values),
            format!("at least one value is required, and at most {MAX_EXIT_CODES} are allowed"),
        ));
        return errs;
    }
    for (j, value) in values.iter().enumerate() {
        let at = format!("{path}.values[{j}]");
        if operator == "In" && *value == 0 {
            errs.push(FieldError::invalid(
                &at,
                "0",
                "must not be 0 for the In operator",
            ));
        }
        if values[..j].contains(value) {
            errs.push(FieldError::duplicate(&at, value.to_string()));
        }
        if j > 0 && values[j - 1] > *value {
            errs.push(FieldError::invalid(
                &at,
                value.to_string(),
                "must be ordered",
            ));
        }
    }
    errs
}

fn validate_job_update(obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let indexed = fields::str_or_empty(obj, "/spec/completionMode") == "Indexed";
    if fields::changed(obj, old, "/spec/completions") {
        // Indexed Jobs may be scaled by changing completions and
        // parallelism together (elastic Indexed Jobs).
        let elastic = indexed && get(obj, "/spec/completions") == get(obj, "/spec/parallelism");
        if !elastic {
            errs.push(immutable(
                "spec.completions",
                render(get(obj, "/spec/completions")),
            ));
        }
    }
    if fields::changed(obj, old, "/spec/selector") {
        errs.push(immutable(
            "spec.selector",
            go_label_selector(get(obj, "/spec/selector")),
        ));
    }
    // A suspended Job that never started may still have its scheduling
    // directives changed (Kubernetes' mutable scheduling directives).
    let mut new_template = obj
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let mut old_template = old
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let suspended_unstarted = fields::get_bool(old, "/spec/suspend") == Some(true)
        && get(old, "/status/startTime").is_none();
    if suspended_unstarted {
        for t in [&mut new_template, &mut old_template] {
            if let Some(meta) = fields::child_if(t, "metadata") {
                fields::remove(meta, "labels");
                fields::remove(meta, "annotations");
            }
            if let Some(spec) = fields::child_if(t, "spec") {
                for key in ["nodeSelector", "tolerations", "affinity", "schedulingGates"] {
                    fields::remove(spec, key);
                }
            }
        }
    }
    if !fields::same(Some(&new_template), Some(&old_template)) {
        errs.push(immutable(
            "spec.template",
            render(obj.pointer("/spec/template")),
        ));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
    ] {
        if fields::changed(obj, old, &format!("/spec/{key}")) {
            errs.push(immutable(
                format!("spec.{key}"),
                render(get(obj, &format!("/spec/{key}"))),
            ));
        }
    }
    errs
}

fn validate_job_status(obj: &Value, _old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for c in ["active", "succeeded", "failed", "ready", "terminating"] {
        errs.extend(nonnegative_at(
            obj,
            &format!("/status/{c}"),
            &format!("status.{c}"),
        ));
    }
    errs
}

fn job_columns() -> Vec<Column> {
    let [containers, images] = container_columns();
    vec![
        name_column(),
        column("Status", "string", "Status of the job."),
        column(
            "Completions",
            "string",
            "Succeeded pods out of the completions wanted.",
        ),
        column(
            "Duration",
            "string",
            "How long the job ran or has been running.",
        ),
        age_column(),
        containers,
        images,
        wide(
            "Selector",
            "string",
            "Label query over the pods the job manages.",
        ),
    ]
}

/// Whether the first condition of `kind` is `True`.
fn has_condition(obj: &Value, kind: &str) -> bool {
    fields::items(obj, "/status/conditions")
        .iter()
        .find(|c| fields::str_or_empty(c, "/type") == kind)
        .is_some_and(|c| fields::str_or_empty(c, "/status") == "True")
}

fn job_row(obj: &Value, now: i64) -> Vec<Value> {
    let succeeded = int_or_zero(obj, "/status/succeeded");
    let completions = match fields::get_i64(obj, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_or_zero(obj, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = fields::get_str(obj, "/status/startTime").and_then(parse_time);
    let end = fields::get_str(obj, "/status/completionTime").and_then(parse_time);
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now - s),
        (Some(s), Some(e)) => human_duration(e - s),
    };
    let status = if has_condition(obj, "Complete") {
        "Complete"
    } else if has_condition(obj, "Failed") {
        "Failed"
    } else if get(obj, "/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(obj, "Suspended") {
        "Suspended"
    } else if has_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = template_cells(obj, JOB_TEMPLATE);
    vec![
        table::name(obj),
        json!(status),
        json!(completions),
        json!(duration),
        table::age(obj, now),
        json!(names),
        json!(images),
        json!(format_label_selector(get(obj, "/spec/selector"))),
    ]
}

// ---------------------------------------------------------------------------
// CronJobs

fn cron_job_strategy() -> KindStrategy<batch::CronJob> {
    KindStrategy {
        status: true,
        generation: true,
        default: default_cron_job,
        validate: validate_cron_job,
        template: Some(CRON_JOB_TEMPLATE),
        ..KindStrategy::new(cron_job_columns, cron_job_row)
    }
}

/// batch/v1 `SetDefaults_CronJob` and the job template's pod defaults (a
/// job template gets no Job defaults: those come when the Job is made).
fn default_cron_job(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_str(spec, "concurrencyPolicy", "Allow");
    default_value(spec, "suspend", json!(false));
    default_value(spec, "successfulJobsHistoryLimit", json!(3));
    default_value(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_template) = child(spec, "jobTemplate") {
        podspec::null_template_timestamp(job_template, "");
        if let Some(template) = child(job_template, "spec").and_then(|s| child(s, "template")) {
            default_template_json(template);
        }
    }
}

fn validate_cron_job(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let schedule = fields::str_or_empty(&spec, "/schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        if let Err(e) = cron::parse_standard(schedule) {
            errs.push(FieldError::invalid("spec.schedule", quote(schedule), e));
        }
        let allow_tz =
            old.is_some_and(|o| fields::str_or_empty(o, "/spec/schedule").contains("TZ"));
        if schedule.contains("TZ") {
            if !allow_tz {
                errs.push(FieldError::invalid(
                    "spec.schedule",
                    quote(schedule),
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            } else if get(&spec, "/timeZone").is_some() {
                errs.push(FieldError::invalid(
                    "spec.schedule",
                    quote(schedule),
                    "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                ));
            }
        }
    }
    errs.extend(nonnegative_at(
        &spec,
        "/startingDeadlineSeconds",
        "spec.startingDeadlineSeconds",
    ));
    let tz_changed = old.is_none_or(|o| fields::changed(obj, o, "/spec/timeZone"));
    if tz_changed && let Some(tz) = fields::get_str(&spec, "/timeZone") {
        if tz.is_empty() {
            errs.push(FieldError::invalid(
                "spec.timeZone",
                quote(tz),
                "timeZone must be nil or non-empty string",
            ));
        } else if !cron::plausible_zone(tz) {
            errs.push(FieldError::invalid(
                "spec.timeZone",
                quote(tz),
                format!("unknown time zone {tz}"),
            ));
        } else if tz.eq_ignore_ascii_case("local") {
            errs.push(FieldError::invalid(
                "spec.timeZone",
                quote(tz),
                "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
            ));
        }
    }
    match fields::str_or_empty(&spec, "/concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        other => errs.push(not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let job_spec = spec
        .pointer("/jobTemplate/spec")
        .cloned()
        .unwrap_or(Value::Null);
    errs.extend(validate_job_spec(&job_spec, "spec.jobTemplate.spec"));
    if let Some(sel) = get(&job_spec, "/selector") {
        errs.push(FieldError::invalid(
            "spec.jobTemplate.spec.selector",
            go_label_selector(Some(sel)),
            "`selector` will be auto-generated",
        ));
    }
    if fields::get_bool(&job_spec, "/manualSelector") == Some(true) {
        errs.push(FieldError::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            "true",
            supported_values(&["nil", "false"]),
        ));
    }
    for key in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        errs.extend(nonnegative_at(
            &spec,
            &format!("/{key}"),
            &format!("spec.{key}"),
        ));
    }
    // The controller names each Job `<cronjob>-<11-character timestamp>`,
    // which must fit a 63-character label.
    let name = fields::str_or_empty(obj, "/metadata/name");
    if old.is_none() && name.len() > 52 {
        errs.push(FieldError::invalid(
            "metadata.name",
            quote(name),
            "must be no more than 52 characters",
        ));
    }
    errs
}

fn cron_job_columns() -> Vec<Column> {
    let [containers, images] = container_columns();
    vec![
        name_column(),
        column("Schedule", "string", "The schedule in cron format."),
        column(
            "Timezone",
            "string",
            "The time zone the schedule is read in.",
        ),
        column("Suspend", "boolean", "Whether new runs are suspended."),
        column("Active", "integer", "Number of jobs running now."),
        column("Last Schedule", "string", "When a job was last scheduled."),
        age_column(),
        containers,
        images,
        wide(
            "Selector",
            "string",
            "Label query over the pods the jobs manage.",
        ),
    ]
}

fn cron_job_row(obj: &Value, now: i64) -> Vec<Value> {
    let last = match get(obj, "/status/lastScheduleTime") {
        Some(t) => table::since(Some(t), now),
        None => "<none>".into(),
    };
    let suspend = match fields::get_bool(obj, "/spec/suspend") {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let (names, images) = template_cells(obj, CRON_JOB_TEMPLATE);
    vec![
        table::name(obj),
        json!(fields::str_or_empty(obj, "/spec/schedule")),
        json!(fields::get_str(obj, "/spec/timeZone").unwrap_or("<none>")),
        json!(suspend),
        json!(fields::items(obj, "/status/active").len()),
        json!(last),
        table::age(obj, now),
        json!(names),
        json!(images),
        json!(format_label_selector(get(
            obj,
            "/spec/jobTemplate/spec/selector"
        ))),
    ]
}

#[cfg(test)]
mod tests;
