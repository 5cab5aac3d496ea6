//! scheduling.k8s.io/v1: PriorityClasses.

use std::sync::Arc;

use k8s_openapi::api::scheduling::v1 as scheduling;
use serde_json::{Value, json};

use crate::apps::fields::{self, default_value, get};
use crate::apps::messages::render;
use crate::apps::strategy::KindStrategy;
use crate::catalog::resource;
use crate::core::field::{immutable, not_supported};
use crate::table::{self, age_column, column, name_column};
use crate::{Column, FieldError, ResourceDef};

/// The highest priority a user-defined class may have; higher ones belong
/// to the system's classes.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

/// The classes Kubernetes reserves (`system-` names), with their values.
const SYSTEM_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            Arc::new(priority_class_strategy()),
        )
        .short_names(&["pc"])
        .cluster_scoped()
        .build(),
    ]
}

fn priority_class_strategy() -> KindStrategy<scheduling::PriorityClass> {
    KindStrategy {
        default: |obj| default_value(obj, "preemptionPolicy", json!("PreemptLowerPriority")),
        validate: validate_priority_class,
        ..KindStrategy::new(priority_class_columns, priority_class_row)
    }
}

fn validate_priority_class(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = fields::str_or_empty(obj, "/metadata/name");
    let value = fields::int_or_zero(obj, "/value");
    let global = fields::get_bool(obj, "/globalDefault").unwrap_or(false);
    if name.starts_with("system-") {
        let problem = match SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, v)) if *v != value => {
                Some(format!("value of {name} PriorityClass must be {v}"))
            }
            Some(_) if global => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(p) = problem {
            errs.push(FieldError::forbidden(
                "metadata.name",
                format!("priority class names with 'system-' prefix are reserved for system use only. error: {p}"),
            ));
        }
    } else if value > HIGHEST_USER_PRIORITY {
        errs.push(FieldError::forbidden(
            "value",
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        ));
    }
    if let Some(policy) = fields::get_str(obj, "/preemptionPolicy")
        && policy != "Never"
        && policy != "PreemptLowerPriority"
    {
        errs.push(not_supported(
            "preemptionPolicy",
            policy,
            &["Never", "PreemptLowerPriority"],
        ));
    }
    if let Some(old) = old {
        if fields::changed(obj, old, "/value") {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if fields::changed(obj, old, "/preemptionPolicy") {
            errs.push(immutable(
                "preemptionPolicy",
                render(get(obj, "/preemptionPolicy")),
            ));
        }
    }
    errs
}

fn priority_class_columns() -> Vec<Column> {
    vec![
        name_column(),
        column("Value", "integer", "The priority pods of this class get."),
        column(
            "Global-Default",
            "boolean",
            "Whether pods without a class get this one.",
        ),
        age_column(),
        // Kubernetes shows this one by default too, last.
        column(
            "PreemptionPolicy",
            "string",
            "Whether pods of this class preempt lower ones.",
        ),
    ]
}

fn priority_class_row(obj: &Value, now: i64) -> Vec<Value> {
    vec![
        table::name(obj),
        json!(fields::int_or_zero(obj, "/value")),
        json!(fields::get_bool(obj, "/globalDefault").unwrap_or(false)),
        table::age(obj, now),
        json!(fields::str_or_empty(obj, "/preemptionPolicy")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Strategy;
    use crate::apps::tests::{create, update};

    #[test]
    fn priority_classes() {
        let s = priority_class_strategy();
        let pc = json!({"metadata": {"name": "high", "creationTimestamp": "2026-01-01T00:00:00Z"}, "value": 1000});
        let (pc, errs) = create(&s, pc);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
        let now = crate::table::parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            s.row(&pc, now),
            vec![
                json!("high"),
                json!(1000),
                json!(false),
                json!("0s"),
                json!("PreemptLowerPriority")
            ]
        );
        let mut changed = pc.clone();
        changed["value"] = json!(5);
        assert_eq!(
            update(&s, &pc, changed).1,
            ["value: Forbidden: may not be changed in an update."]
        );
        let huge = json!({"metadata": {"name": "huge"}, "value": 2_000_000_000});
        assert_eq!(
            create(&s, huge).1,
            ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
        );
        let system = json!({"metadata": {"name": "system-mine"}, "value": 1});
        assert_eq!(
            create(&s, system).1,
            [
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
            ]
        );
    }
}
