//! Field errors worded as Kubernetes words them, and values rendered as its
//! messages render them.
//!
//! Kubernetes formats the offending value of an `Invalid value` error with
//! Go's `%#v` when it is not a plain number or string, so users read
//! `map[string]string{"app":"web"}` or `v1.LabelSelector{...}`; the helpers
//! here reproduce those renderings from JSON.

use serde_json::{Map, Value};

use crate::FieldError;
use crate::validation::quote;

/// `field: Invalid value: <n>: must be greater than or equal to 0` when `n`
/// is negative (Kubernetes' `ValidateNonnegativeField`).
pub(crate) fn nonnegative(field: &str, value: i64) -> Vec<FieldError> {
    if value < 0 {
        vec![FieldError::invalid(
            field,
            value.to_string(),
            "must be greater than or equal to 0",
        )]
    } else {
        Vec::new()
    }
}

/// `Unsupported value: "x": supported values: "A", "B"`.
pub(crate) fn not_supported(field: &str, value: &str, supported: &[&str]) -> FieldError {
    FieldError::not_supported(field, quote(value), supported_values(supported))
}

/// The detail of an `Unsupported value` error.
pub(crate) fn supported_values(supported: &[&str]) -> String {
    let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
    format!("supported values: {}", list.join(", "))
}

/// `field: Invalid value: <rendered>: field is immutable`.
pub(crate) fn immutable(field: &str, rendered: impl Into<String>) -> FieldError {
    FieldError::invalid(field, rendered, "field is immutable")
}

/// A string-to-string map as Go's `%#v` prints it:
/// `map[string]string{"app":"web", "tier":"front"}`, keys sorted;
/// `map[string]string(nil)` when absent.
pub(crate) fn go_string_map(map: Option<&Map<String, Value>>) -> String {
    match map {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let mut pairs: Vec<(&String, &Value)> = m.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), quote(v.as_str().unwrap_or_default())))
                .collect();
            format!("map[string]string{{{}}}", body.join(", "))
        }
    }
}

/// A string slice as `%#v` prints it: `[]string{"a", "b"}` or
/// `[]string(nil)`.
pub(crate) fn go_string_slice(list: Option<&Value>) -> String {
    match list.and_then(Value::as_array) {
        None => "[]string(nil)".into(),
        Some(items) => {
            let body: Vec<String> = items
                .iter()
                .map(|v| quote(v.as_str().unwrap_or_default()))
                .collect();
            format!("[]string{{{}}}", body.join(", "))
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
            not_supported("f", "x", &["A", "B"]).to_string(),
            r#"f: Unsupported value: "x": supported values: "A", "B""#
        );
        assert_eq!(
            nonnegative("spec.replicas", -1)[0].to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
    }
}
