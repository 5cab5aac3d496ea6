//! policy/v1: PodDisruptionBudgets.

use std::sync::Arc;

use k8s_openapi::api::policy::v1 as policy;
use serde_json::{Value, json};

use crate::apps::fields::{self, get, int_or_zero};
use crate::apps::intstr::{
    IntOrString, not_more_than_100_percent, validate_positive_int_or_percent,
};
use crate::apps::messages::{nonnegative_at, render};
use crate::apps::selector::validate_selector;
use crate::apps::strategy::KindStrategy;
use crate::catalog::resource;
use crate::core::field::not_supported;
use crate::table::{self, age_column, column, name_column};
use crate::{Column, FieldError, ResourceDef};

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            Arc::new(pdb_strategy()),
        )
        .short_names(&["pdb"])
        .status()
        .build(),
    ]
}

fn pdb_strategy() -> KindStrategy<policy::PodDisruptionBudget> {
    KindStrategy {
        status: true,
        generation: true,
        validate: |obj, _| validate_pdb(obj),
        validate_status: |obj, _| {
            let mut errs = Vec::new();
            for key in [
                "disruptionsAllowed",
                "currentHealthy",
                "desiredHealthy",
                "expectedPods",
            ] {
                errs.extend(nonnegative_at(
                    obj,
                    &format!("/status/{key}"),
                    &format!("status.{key}"),
                ));
            }
            errs
        },
        ..KindStrategy::new(pdb_columns, pdb_row)
    }
}

fn validate_pdb(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let min = get(obj, "/spec/minAvailable");
    let max = get(obj, "/spec/maxUnavailable");
    if min.is_some() && max.is_some() {
        errs.push(FieldError::invalid(
            "spec",
            render(obj.get("spec")),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (key, value) in [("minAvailable", min), ("maxUnavailable", max)] {
        if let Some(v) = value {
            let v = IntOrString::from_json(Some(v));
            let field = format!("spec.{key}");
            errs.extend(validate_positive_int_or_percent(&v, &field));
            errs.extend(not_more_than_100_percent(&v, &field));
        }
    }
    errs.extend(validate_selector(
        get(obj, "/spec/selector"),
        "spec.selector",
    ));
    if let Some(policy) = fields::get_str(obj, "/spec/unhealthyPodEvictionPolicy")
        && policy != "IfHealthyBudget"
        && policy != "AlwaysAllow"
    {
        errs.push(not_supported(
            "spec.unhealthyPodEvictionPolicy",
            policy,
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
    errs
}

fn pdb_columns() -> Vec<Column> {
    vec![
        name_column(),
        column(
            "Min Available",
            "string",
            "The fewest pods that must stay available.",
        ),
        column(
            "Max Unavailable",
            "string",
            "The most pods that may be unavailable.",
        ),
        column(
            "Allowed Disruptions",
            "integer",
            "How many pods may be disrupted now.",
        ),
        age_column(),
    ]
}

fn pdb_row(obj: &Value, now: i64) -> Vec<Value> {
    let cell = |key: &str| {
        get(obj, &format!("/spec/{key}")).map_or_else(
            || "N/A".to_owned(),
            |v| IntOrString::from_json(Some(v)).text(),
        )
    };
    vec![
        table::name(obj),
        json!(cell("minAvailable")),
        json!(cell("maxUnavailable")),
        json!(int_or_zero(obj, "/status/disruptionsAllowed")),
        table::age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Strategy;
    use crate::apps::tests::create;

    #[test]
    fn budgets() {
        let s = pdb_strategy();
        let pdb = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 3}});
        let (created, errs) = create(&s, pdb.clone());
        assert!(errs.is_empty(), "{errs:?}");
        assert!(created.get("status").is_none());
        let now = crate::table::parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            s.row(&pdb, now),
            vec![
                json!("web"),
                json!("50%"),
                json!("N/A"),
                json!(3),
                json!("0s")
            ]
        );
        let both = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "maxUnavailable": "120%"}});
        let errs = create(&s, both).1;
        assert_eq!(
            errs,
            [
                "spec: Invalid value: {\"minAvailable\":1,\"maxUnavailable\":\"120%\"}: minAvailable and maxUnavailable cannot be both set",
                "spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"120%\"}: must not be greater than 100%",
            ]
        );
    }
}
