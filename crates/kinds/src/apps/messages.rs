//! Field errors and value renderings for kinds held as JSON, on top of the
//! validators and wordings every kind shares (`core::field`).
//!
//! Kubernetes formats the offending value of an `Invalid value` error with
//! Go's `%#v` when it is not a plain number or string, so users read
//! `map[string]string{"app":"web"}` or `v1.LabelSelector{...}`; the helpers
//! here reproduce those renderings from JSON.

use serde_json::{Map, Value};

use super::fields::{self, string_map};
use crate::FieldError;
use crate::core::field::{go_map, go_strings, nonnegative};
use crate::validation::quote;

/// Kubernetes' `ValidateNonnegativeField` for an optional integer at
/// `pointer` of `obj`, reported at `field`.
pub(crate) fn nonnegative_at(obj: &Value, pointer: &str, field: &str) -> Vec<FieldError> {
    fields::get_i64(obj, pointer)
        .map(|v| nonnegative(field, v))
        .unwrap_or_default()
}

/// A string-to-string map as Go's `%#v` prints it:
/// `map[string]string{"app":"web", "tier":"front"}`, keys sorted;
/// `map[string]string(nil)` when absent.
pub(crate) fn go_string_map(map: Option<&Map<String, Value>>) -> String {
    match map {
        None => "map[string]string(nil)".into(),
        Some(m) => go_map(&string_map(m)),
    }
}

/// A string slice as `%#v` prints it: `[]string{"a", "b"}` or
/// `[]string(nil)`.
pub(crate) fn go_string_slice(list: Option<&Value>) -> String {
    match list.and_then(Value::as_array) {
        None => "[]string(nil)".into(),
        Some(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect();
            go_strings(&items)
        }
    }
}

/// A label selector as `%#v` prints Kubernetes' `metav1.LabelSelector`:
/// `v1.LabelSelector{MatchLabels:map[string]string{"app":"web"},
/// MatchExpressions:[]v1.LabelSelectorRequirement(nil)}`.
pub(crate) fn go_label_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return "\"null\"".into();
    };
    let labels = go_string_map(selector.get("matchLabels").and_then(Value::as_object));
    let expressions = match selector.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_owned(),
        Some(list) => {
            let body: Vec<String> = list
                .iter()
                .map(|r| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        quote(r.get("key").and_then(Value::as_str).unwrap_or_default()),
                        quote(
                            r.get("operator")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                        ),
                        go_string_slice(r.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", body.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{expressions}}}")
}

/// Any JSON value in messages where Kubernetes would print a Go struct we do
/// not reproduce field by field: strings quoted, everything else as compact
/// JSON.
pub(crate) fn render(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "\"null\"".into(),
        Some(Value::String(s)) => quote(s),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_renderings() {
        let labels = json!({"tier": "fe", "app": "web"});
        assert_eq!(
            go_string_map(labels.as_object()),
            r#"map[string]string{"app":"web", "tier":"fe"}"#
        );
        assert_eq!(go_string_map(None), "map[string]string(nil)");
        assert_eq!(
            go_label_selector(Some(&json!({"matchLabels": {"app": "web"}}))),
            r#"v1.LabelSelector{MatchLabels:map[string]string{"app":"web"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"#
        );
        assert_eq!(
            go_label_selector(Some(&json!({"matchExpressions": [
                {"key": "k", "operator": "In", "values": ["a", "b"]}
            ]}))),
            r#"v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"k", Operator:"In", Values:[]string{"a", "b"}}}}"#
        );
        assert_eq!(
            go_string_slice(Some(&json!(["a", "b"]))),
            r#"[]string{"a", "b"}"#
        );
        assert_eq!(
            nonnegative_at(
                &json!({"spec": {"replicas": -1}}),
                "/spec/replicas",
                "spec.replicas"
            )[0]
            .to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
    }
}
