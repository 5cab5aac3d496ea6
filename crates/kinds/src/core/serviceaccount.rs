//! ServiceAccounts: nothing beyond their name and metadata is checked, and
//! `kubectl get` counts their secrets.

use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::{Value, json};

use crate::table::{self, column};
use crate::{Column, FieldError, Strategy, typed};

/// What the server does to ServiceAccounts.
pub(crate) struct ServiceAccountStrategy;

impl Strategy for ServiceAccountStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        typed::decode::<ServiceAccount>(obj).map(|_| ())
    }

    fn default(&self, _obj: &mut Value) {}

    fn prepare_create(&self, _obj: &mut Value) {}

    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        match typed::decode::<ServiceAccount>(obj) {
            Ok(_) => Vec::new(),
            Err(e) => vec![e],
        }
    }

    fn validate_status(&self, _obj: &Value, _old: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column(
                "Secrets",
                "string",
                "Secrets is a list of the secrets in the same namespace that pods running using \
                 this ServiceAccount are allowed to use.",
            ),
            table::age_column(),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let sa = typed::decode::<ServiceAccount>(obj).unwrap_or_default();
        vec![
            table::name(obj),
            json!(sa.secrets.map_or(0, |s| s.len())),
            table::age(obj, now),
        ]
    }

    fn selectable_fields(&self, _obj: &Value) -> Vec<(String, String)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_secrets() {
        let sa = json!({"metadata": {"name": "default", "creationTimestamp": "2026-11-23T09:59:00Z"},
            "secrets": [{"name": "t"}]});
        let now = table::parse_time("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(
            ServiceAccountStrategy.row(&sa, now),
            [json!("default"), json!(1), json!("60s")]
        );
        assert!(ServiceAccountStrategy.validate(&sa, None).is_empty());
    }
}
