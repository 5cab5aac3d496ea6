//! coordination.k8s.io/v1: Leases.

use std::sync::Arc;

use k8s_openapi::api::coordination::v1 as coordination;
use serde_json::{Value, json};

use crate::apps::fields;
use crate::apps::strategy::KindStrategy;
use crate::catalog::resource;
use crate::table::{self, age_column, column, name_column};
use crate::{Column, FieldError, ResourceDef};

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            Arc::new(lease_strategy()),
        )
        .build(),
    ]
}

fn lease_strategy() -> KindStrategy<coordination::Lease> {
    KindStrategy {
        validate: |obj, _| validate_lease(obj),
        ..KindStrategy::new(lease_columns, lease_row)
    }
}

fn validate_lease(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(d) = fields::get_i64(obj, "/spec/leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            d.to_string(),
            "must be greater than 0",
        ));
    }
    if let Some(t) = fields::get_i64(obj, "/spec/leaseTransitions").filter(|t| *t < 0) {
        errs.push(FieldError::invalid(
            "spec.leaseTransitions",
            t.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    let strategy = fields::get_str(obj, "/spec/strategy").unwrap_or_default();
    if !strategy.is_empty() && strategy != "OldestEmulationVersion" {
        errs.push(crate::core::field::not_supported(
            "spec.strategy",
            strategy,
            &["OldestEmulationVersion"],
        ));
    }
    if fields::get_str(obj, "/spec/preferredHolder").is_some_and(|h| !h.is_empty())
        && strategy.is_empty()
    {
        errs.push(FieldError::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

fn lease_columns() -> Vec<Column> {
    vec![
        name_column(),
        column("Holder", "string", "The identity holding the lease."),
        age_column(),
    ]
}

fn lease_row(obj: &Value, now: i64) -> Vec<Value> {
    vec![
        table::name(obj),
        json!(fields::str_or_empty(obj, "/spec/holderIdentity")),
        table::age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Strategy;
    use crate::apps::tests::create;

    #[test]
    fn leases() {
        let s = lease_strategy();
        let lease = json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease",
            "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}});
        let (lease, errs) = create(&s, lease);
        assert!(errs.is_empty(), "{errs:?}");
        let now = crate::table::parse_time("2026-01-01T00:00:10Z").unwrap();
        assert_eq!(
            s.row(&lease, now),
            vec![json!("node-1"), json!("node-1"), json!("10s")]
        );
        let bad = json!({"metadata": {"name": "x"}, "spec": {"leaseDurationSeconds": 0}});
        assert_eq!(
            create(&s, bad).1,
            ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
        );
    }
}
