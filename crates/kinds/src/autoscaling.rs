//! autoscaling: HorizontalPodAutoscalers, stored and preferred at v2 and
//! also served at v1 (which knows only a CPU target; the rest travels in
//! annotations, as Kubernetes does).

use std::sync::Arc;

use k8s_openapi::api::autoscaling::v2 as autoscaling;
use serde_json::{Map, Value, json};

use crate::apps::fields::{self, child, default_value, get, int_or_zero};
use crate::apps::messages::nonnegative_at;
use crate::apps::strategy::KindStrategy;
use crate::catalog::resource;
use crate::core::field::not_supported;
use crate::table::{self, age_column, column, name_column};
use crate::validation::{path_segment, quote};
use crate::{Column, Conversion, FieldError, FieldErrorKind, ResourceDef};

/// Annotation carrying, in autoscaling/v1, the metrics other than the CPU
/// target (as a JSON list of v2 metric specs).
const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// Annotation carrying, in autoscaling/v1, the current metrics.
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// Annotation carrying, in autoscaling/v1, the status conditions.
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// Annotation carrying, in autoscaling/v1, the scaling behavior.
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            Arc::new(hpa_strategy()),
        )
        .short_names(&["hpa"])
        .categories(&["all"])
        .status()
        .build(),
        resource(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            Arc::new(hpa_strategy()),
        )
        .short_names(&["hpa"])
        .categories(&["all"])
        .status()
        .stored_as(
            "autoscaling",
            "horizontalpodautoscalers",
            "v2",
            Arc::new(HpaV1),
        )
        .not_preferred()
        .build(),
    ]
}

fn hpa_strategy() -> KindStrategy<autoscaling::HorizontalPodAutoscaler> {
    KindStrategy {
        status: true,
        generation: true,
        default: default_hpa,
        validate: |obj, _| validate_hpa(obj),
        validate_status: |obj, _| {
            let mut errs = Vec::new();
            for key in ["currentReplicas", "desiredReplicas"] {
                errs.extend(nonnegative_at(
                    obj,
                    &format!("/status/{key}"),
                    &format!("status.{key}"),
                ));
            }
            errs
        },
        ..KindStrategy::new(hpa_columns, hpa_row)
    }
}

/// autoscaling/v2 `SetDefaults_HorizontalPodAutoscaler`: one replica at
/// least, an 80% CPU target when no metric is given, and every unset part
/// of a given `behavior` filled from the default rules.
fn default_hpa(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_value(spec, "minReplicas", json!(1));
    if fields::items(spec, "/metrics").is_empty() {
        fields::set(
            spec,
            "metrics",
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    if let Some(behavior) = fields::child_if(spec, "behavior") {
        let up = json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}
        ]});
        let down = json!({"selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}
        ]});
        for (key, defaults) in [("scaleUp", up), ("scaleDown", down)] {
            let mut rules = defaults;
            if let Some(given) = behavior.get(key).and_then(Value::as_object) {
                for (k, v) in given {
                    if !v.is_null() {
                        fields::set(&mut rules, k, v.clone());
                    }
                }
            }
            fields::set(behavior, key, rules);
        }
    }
}

fn validate_hpa(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let min = fields::get_i64(&spec, "/minReplicas");
    let max = int_or_zero(&spec, "/maxReplicas");
    if let Some(m) = min.filter(|m| *m < 1) {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            m.to_string(),
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            max.to_string(),
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            max.to_string(),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    for key in ["kind", "name"] {
        let field = format!("spec.scaleTargetRef.{key}");
        let value = fields::str_or_empty(&spec, &format!("/scaleTargetRef/{key}"));
        if value.is_empty() {
            errs.push(FieldError::required(field, ""));
        } else {
            for problem in path_segment(value) {
                errs.push(FieldError::invalid(field.clone(), quote(value), problem));
            }
        }
    }
    for (i, metric) in fields::items(&spec, "/metrics").iter().enumerate() {
        errs.extend(validate_metric(metric, &format!("spec.metrics[{i}]")));
    }
    if let Some(behavior) = get(&spec, "/behavior") {
        for key in ["scaleUp", "scaleDown"] {
            if let Some(rules) = get(behavior, &format!("/{key}")) {
                errs.extend(validate_scaling_rules(
                    rules,
                    &format!("spec.behavior.{key}"),
                ));
            }
        }
    }
    errs
}

/// The metric source types, in Kubernetes' order.
const SOURCES: [(&str, &str); 5] = [
    ("Object", "object"),
    ("Pods", "pods"),
    ("Resource", "resource"),
    ("External", "external"),
    ("ContainerResource", "containerResource"),
];

fn validate_metric(metric: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let kind = fields::str_or_empty(metric, "/type");
    let supported: Vec<&str> = SOURCES.iter().map(|(t, _)| *t).collect();
    if kind.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.type"),
            "must specify a metric source type",
        ));
    }
    let present: Vec<&str> = SOURCES
        .iter()
        .map(|(_, f)| *f)
        .filter(|f| get(metric, &format!("/{f}")).is_some())
        .collect();
    if let [only] = present.as_slice() {
        errs.extend(validate_source(metric, only, &format!("{path}.{only}")));
    }
    match SOURCES.iter().find(|(t, _)| *t == kind) {
        Some((_, expected)) => {
            if get(metric, &format!("/{expected}")).is_none() {
                errs.push(FieldError::required(
                    format!("{path}.{expected}"),
                    "must populate information for the given metric source",
                ));
            }
            if present.len() > 1 {
                for other in present.iter().filter(|p| *p != expected) {
                    errs.push(FieldError::forbidden(
                        format!("{path}.{other}"),
                        "must populate the given metric source only",
                    ));
                }
            }
        }
        None => errs.push(not_supported(format!("{path}.type"), kind, &supported)),
    }
    errs
}

fn validate_source(metric: &Value, source: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let src = get(metric, &format!("/{source}"))
        .cloned()
        .unwrap_or(Value::Null);
    if source == "resource" || source == "containerResource" {
        if fields::str_or_empty(&src, "/name").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.name"),
                "must specify a resource name",
            ));
        }
        if source == "containerResource" && fields::str_or_empty(&src, "/container").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.container"),
                "must specify a container",
            ));
        }
    } else if fields::str_or_empty(&src, "/metric/name").is_empty() {
        errs.push(FieldError::required(
            format!("{path}.metric.name"),
            "must specify a metric name",
        ));
    }
    let target = src.get("target").cloned().unwrap_or(Value::Null);
    let tpath = format!("{path}.target");
    let ttype = fields::str_or_empty(&target, "/type");
    if ttype.is_empty() {
        errs.push(FieldError::required(
            format!("{tpath}.type"),
            "must specify a metric target type",
        ));
    }
    if !["Utilization", "Value", "AverageValue"].contains(&ttype) {
        errs.push(FieldError::invalid(
            format!("{tpath}.type"),
            quote(ttype),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    if let Some(u) = fields::get_i64(&target, "/averageUtilization").filter(|u| *u < 1) {
        errs.push(FieldError::invalid(
            format!("{tpath}.averageUtilization"),
            u.to_string(),
            "must be greater than 0",
        ));
    }
    let utilization = get(&target, "/averageUtilization").is_some();
    let average = get(&target, "/averageValue").is_some();
    match source {
        "resource" | "containerResource" => {
            if !utilization && !average {
                errs.push(FieldError::required(
                    format!("{tpath}.averageUtilization"),
                    "must set either a target raw value or a target utilization",
                ));
            }
            if utilization && average {
                errs.push(FieldError::forbidden(
                    format!("{tpath}.averageValue"),
                    "may not set both a target raw value and a target utilization",
                ));
            }
        }
        "pods" => {
            if !average {
                errs.push(FieldError::required(
                    format!("{tpath}.averageValue"),
                    "must specify a positive target averageValue",
                ));
            }
        }
        _ => {
            let value = get(&target, "/value").is_some();
            if value == average {
                errs.push(FieldError::required(
                    format!("{tpath}.averageValue"),
                    "must set either a target value or averageValue",
                ));
            }
        }
    }
    errs
}

fn validate_scaling_rules(rules: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(w) = fields::get_i64(rules, "/stabilizationWindowSeconds") {
        let field = format!("{path}.stabilizationWindowSeconds");
        if w < 0 {
            errs.push(FieldError::invalid(
                field,
                w.to_string(),
                "must be greater than or equal to zero",
            ));
        } else if w > 3600 {
            errs.push(FieldError::invalid(
                field,
                w.to_string(),
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(p) = fields::get_str(rules, "/selectPolicy")
        && !["Max", "Min", "Disabled"].contains(&p)
    {
        errs.push(not_supported(
            format!("{path}.selectPolicy"),
            p,
            &["Disabled", "Max", "Min"],
        ));
    }
    let policies = fields::items(rules, "/policies");
    if policies.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, policy) in policies.iter().enumerate() {
        let p = format!("{path}.policies[{i}]");
        let kind = fields::str_or_empty(policy, "/type");
        if kind != "Pods" && kind != "Percent" {
            errs.push(not_supported(
                format!("{p}.type"),
                kind,
                &["Percent", "Pods"],
            ));
        }
        let value = int_or_zero(policy, "/value");
        if value <= 0 {
            errs.push(FieldError::invalid(
                format!("{p}.value"),
                value.to_string(),
                "must be greater than zero",
            ));
        }
        let period = int_or_zero(policy, "/periodSeconds");
        if period <= 0 {
            errs.push(FieldError::invalid(
                format!("{p}.periodSeconds"),
                period.to_string(),
                "must be greater than zero",
            ));
        } else if period > 1800 {
            errs.push(FieldError::invalid(
                format!("{p}.periodSeconds"),
                period.to_string(),
                "must be less than or equal to 1800",
            ));
        }
    }
    errs
}

fn hpa_columns() -> Vec<Column> {
    vec![
        name_column(),
        column("Reference", "string", "The object whose scale is managed."),
        column(
            "Targets",
            "string",
            "Current and target values of the metrics.",
        ),
        column(
            "MinPods",
            "string",
            "The fewest replicas the autoscaler sets.",
        ),
        column(
            "MaxPods",
            "string",
            "The most replicas the autoscaler sets.",
        ),
        column("Replicas", "string", "The current number of replicas."),
        age_column(),
    ]
}

/// The `Targets` cell (Kubernetes' `formatHPAMetrics`): up to two metrics
/// as `current/target`, then `+ N more...`.
fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let unknown = || "<unknown>".to_owned();
    let quantity =
        |v: Option<&Value>| v.map(|q| q.as_str().map_or_else(|| q.to_string(), str::to_owned));
    let mut list = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        let kind = fields::str_or_empty(spec, "/type");
        let text = match kind {
            "External" | "Object" => {
                let f = if kind == "External" {
                    "external"
                } else {
                    "object"
                };
                let current = status.and_then(|s| get(s, &format!("/{f}/current")));
                if let Some(avg) = get(spec, &format!("/{f}/target/averageValue")) {
                    let cur = quantity(current.and_then(|c| get(c, "/averageValue")))
                        .unwrap_or_else(unknown);
                    format!("{cur}/{} (avg)", quantity(Some(avg)).unwrap_or_default())
                } else {
                    let cur =
                        quantity(current.and_then(|c| get(c, "/value"))).unwrap_or_else(unknown);
                    format!(
                        "{cur}/{}",
                        quantity(get(spec, &format!("/{f}/target/value"))).unwrap_or_default()
                    )
                }
            }
            "Pods" => {
                let cur = quantity(status.and_then(|s| get(s, "/pods/current/averageValue")))
                    .unwrap_or_else(unknown);
                format!(
                    "{cur}/{}",
                    quantity(get(spec, "/pods/target/averageValue")).unwrap_or_default()
                )
            }
            "Resource" | "ContainerResource" => {
                let f = if kind == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let name = fields::str_or_empty(spec, &format!("/{f}/name"));
                let current = status.and_then(|s| get(s, &format!("/{f}/current")));
                if let Some(avg) = get(spec, &format!("/{f}/target/averageValue")) {
                    let cur = quantity(current.and_then(|c| get(c, "/averageValue")))
                        .unwrap_or_else(unknown);
                    format!("{name}: {cur}/{}", quantity(Some(avg)).unwrap_or_default())
                } else {
                    let cur = current
                        .and_then(|c| fields::get_i64(c, "/averageUtilization"))
                        .map_or_else(unknown, |u| format!("{u}%"));
                    let target = fields::get_i64(spec, &format!("/{f}/target/averageUtilization"))
                        .map_or_else(|| "<auto>".to_owned(), |u| format!("{u}%"));
                    format!("{name}: {cur}/{target}")
                }
            }
            _ => "<unknown type>".into(),
        };
        list.push(text);
    }
    let count = list.len();
    if count > 2 {
        list.truncate(2);
        format!("{} + {} more...", list.join(", "), count - 2)
    } else {
        list.join(", ")
    }
}

fn hpa_row(obj: &Value, now: i64) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        fields::str_or_empty(obj, "/spec/scaleTargetRef/kind"),
        fields::str_or_empty(obj, "/spec/scaleTargetRef/name")
    );
    let min = fields::get_i64(obj, "/spec/minReplicas")
        .map_or_else(|| "<unset>".into(), |m| m.to_string());
    vec![
        table::name(obj),
        json!(reference),
        json!(format_metrics(
            fields::items(obj, "/spec/metrics"),
            fields::items(obj, "/status/currentMetrics")
        )),
        json!(min),
        json!(int_or_zero(obj, "/spec/maxReplicas")),
        json!(int_or_zero(obj, "/status/currentReplicas")),
        table::age(obj, now),
    ]
}

/// autoscaling/v1 ⇄ v2. v1 has one target, CPU utilization; every other
/// metric, the behavior, the current metrics and the conditions travel in
/// annotations, so that a round trip through v1 loses nothing.
struct HpaV1;

fn is_cpu_utilization(metric: &Value) -> bool {
    fields::str_or_empty(metric, "/type") == "Resource"
        && fields::str_or_empty(metric, "/resource/name") == "cpu"
        && fields::str_or_empty(metric, "/resource/target/type") == "Utilization"
}

fn take_json_annotation(obj: &mut Value, key: &str) -> Result<Option<Value>, FieldError> {
    match fields::remove_annotation(obj, key) {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| FieldError {
                kind: FieldErrorKind::Invalid,
                field: format!("metadata.annotations[{key}]"),
                value: Some(quote(&text)),
                detail: format!("must hold JSON: {e}"),
            }),
    }
}

impl Conversion for HpaV1 {
    fn to_storage(&self, mut obj: Value) -> Result<Value, FieldError> {
        let extra_metrics = take_json_annotation(&mut obj, METRICS)?;
        let current_metrics = take_json_annotation(&mut obj, CURRENT_METRICS)?;
        let conditions = take_json_annotation(&mut obj, CONDITIONS)?;
        let behavior = take_json_annotation(&mut obj, BEHAVIOR)?;
        fields::set(&mut obj, "apiVersion", json!("autoscaling/v2"));
        if let Some(spec) = fields::child_if(&mut obj, "spec") {
            let mut metrics = Vec::new();
            if let Some(cpu) =
                fields::remove(spec, "targetCPUUtilizationPercentage").filter(|v| !v.is_null())
            {
                metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": cpu}}}));
            }
            if let Some(Value::Array(more)) = extra_metrics {
                metrics.extend(more);
            }
            if !metrics.is_empty() {
                fields::set(spec, "metrics", Value::Array(metrics));
            }
            if let Some(b) = behavior {
                fields::set(spec, "behavior", b);
            }
        }
        if let Some(status) = fields::child_if(&mut obj, "status") {
            let mut current = Vec::new();
            if let Some(cpu) =
                fields::remove(status, "currentCPUUtilizationPercentage").filter(|v| !v.is_null())
            {
                current.push(json!({"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": cpu}}}));
            }
            if let Some(Value::Array(more)) = current_metrics {
                current.extend(more);
            }
            if !current.is_empty() {
                fields::set(status, "currentMetrics", Value::Array(current));
            }
            if let Some(c) = conditions {
                fields::set(status, "conditions", c);
            }
        }
        Ok(obj)
    }

    fn from_storage(&self, mut obj: Value) -> Value {
        fields::set(&mut obj, "apiVersion", json!("autoscaling/v1"));
        let mut annotations = Map::new();
        if let Some(spec) = fields::child_if(&mut obj, "spec") {
            let metrics = fields::remove(spec, "metrics")
                .and_then(|m| m.as_array().cloned())
                .unwrap_or_default();
            let (cpu, rest): (Vec<Value>, Vec<Value>) =
                metrics.into_iter().partition(is_cpu_utilization);
            if let Some(target) = cpu
                .first()
                .and_then(|m| get(m, "/resource/target/averageUtilization"))
            {
                fields::set(spec, "targetCPUUtilizationPercentage", target.clone());
            }
            if !rest.is_empty() {
                annotations.insert(METRICS.into(), json!(Value::Array(rest).to_string()));
            }
            if let Some(b) = fields::remove(spec, "behavior").filter(|b| !b.is_null()) {
                annotations.insert(BEHAVIOR.into(), json!(b.to_string()));
            }
        }
        if let Some(status) = fields::child_if(&mut obj, "status") {
            let metrics = fields::remove(status, "currentMetrics")
                .and_then(|m| m.as_array().cloned())
                .unwrap_or_default();
            let (cpu, rest): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(|m| {
                fields::str_or_empty(m, "/type") == "Resource"
                    && fields::str_or_empty(m, "/resource/name") == "cpu"
                    && get(m, "/resource/current/averageUtilization").is_some()
            });
            if let Some(current) = cpu
                .first()
                .and_then(|m| get(m, "/resource/current/averageUtilization"))
            {
                fields::set(status, "currentCPUUtilizationPercentage", current.clone());
            }
            if !rest.is_empty() {
                annotations.insert(
                    CURRENT_METRICS.into(),
                    json!(Value::Array(rest).to_string()),
                );
            }
            if let Some(c) = fields::remove(status, "conditions").filter(|c| !c.is_null()) {
                annotations.insert(CONDITIONS.into(), json!(c.to_string()));
            }
        }
        for (k, v) in annotations {
            fields::set_annotation(&mut obj, &k, v.as_str().unwrap_or_default());
        }
        obj
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Strategy;
    use crate::apps::tests::create;

    fn hpa() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 5}
        })
    }

    #[test]
    fn defaults_and_table() {
        let s = hpa_strategy();
        let mut with_behavior = hpa();
        with_behavior["spec"]["behavior"] =
            json!({"scaleDown": {"stabilizationWindowSeconds": 60}});
        let (h, errs) = create(&s, with_behavior);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(h["spec"]["minReplicas"], 1);
        assert_eq!(
            h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(
            h["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            60
        );
        assert_eq!(h["spec"]["behavior"]["scaleDown"]["selectPolicy"], "Max");
        assert_eq!(
            h["spec"]["behavior"]["scaleUp"]["policies"][0],
            json!({"type": "Pods", "value": 4, "periodSeconds": 15})
        );
        let mut h = h;
        h["status"] = json!({"currentReplicas": 2, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 31}}}]});
        let now = crate::table::parse_time("2026-01-01T00:00:30Z").unwrap();
        assert_eq!(
            s.row(&h, now),
            vec![
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 31%/80%"),
                json!("1"),
                json!(5),
                json!(2),
                json!("30s")
            ]
        );
        let fresh = create(&s, hpa()).0;
        assert_eq!(s.row(&fresh, now)[2], json!("cpu: <unknown>/80%"));
    }

    #[test]
    fn rejections() {
        let mut h = hpa();
        h["spec"]["minReplicas"] = json!(6);
        h["spec"]["scaleTargetRef"]["name"] = json!("");
        assert_eq!(
            create(&hpa_strategy(), h).1,
            [
                "spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`",
                "spec.scaleTargetRef.name: Required value",
            ]
        );
    }

    #[test]
    fn v1_round_trip() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4,
                     "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 20}
        });
        let v2 = HpaV1.to_storage(v1.clone()).unwrap();
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 50})
        );
        assert_eq!(
            v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
            20
        );
        let mut with_memory = v2.clone();
        with_memory["spec"]["metrics"].as_array_mut().unwrap().push(json!({"type": "Resource",
            "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}));
        let back = HpaV1.from_storage(with_memory.clone());
        assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(
            back["metadata"]["annotations"][METRICS]
                .as_str()
                .unwrap()
                .contains("memory")
        );
        assert_eq!(HpaV1.to_storage(back).unwrap(), with_memory);
        assert_eq!(HpaV1.from_storage(v2), v1);
    }
}
