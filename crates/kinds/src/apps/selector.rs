//! Label selectors (`matchLabels` and `matchExpressions`) and label maps:
//! validation with Kubernetes' messages, matching, and the text forms
//! `kubectl` prints (`app=web,tier in (a,b)`).

use serde_json::{Map, Value};

use super::fields::string_map;
use crate::FieldError;
use crate::validation::{label_value, qualified_name, quote};

/// A parsed selector, as Kubernetes' `LabelSelectorAsSelector` builds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Selector {
    /// No selector at all: matches nothing (a nil selector in Go).
    Nothing,
    /// Requirements that must all hold, sorted by key; none matches
    /// everything.
    All(Vec<Requirement>),
}

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// The operators of a requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Equals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Selector {
    /// Parses a `LabelSelector` (absent or null: `Nothing`). Fails where
    /// Kubernetes' conversion fails: unknown operators, `In`/`NotIn` without
    /// values, `Exists` with values, invalid keys or values.
    pub(crate) fn parse(selector: Option<&Value>) -> Result<Selector, String> {
        let Some(selector) = selector.filter(|s| !s.is_null()) else {
            return Ok(Selector::Nothing);
        };
        let mut reqs = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                let value = v.as_str().unwrap_or_default().to_owned();
                check_key_value(k, std::slice::from_ref(&value))?;
                reqs.push(Requirement {
                    key: k.clone(),
                    op: Op::Equals,
                    values: vec![value],
                });
            }
        }
        for expr in selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
            let operator = expr
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut values: Vec<String> = expr
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect();
            let op = match operator {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(format!(
                        "{} is not a valid label selector operator",
                        quote(other)
                    ));
                }
            };
            match op {
                Op::In | Op::NotIn if values.is_empty() => {
                    return Err("for 'in', 'notin' operators, values set can't be empty".into());
                }
                Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                    return Err("values set must be empty for exists and does not exist".into());
                }
                _ => {}
            }
            check_key_value(key, &values)?;
            values.sort();
            values.dedup();
            reqs.push(Requirement {
                key: key.to_owned(),
                op,
                values,
            });
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector::All(reqs))
    }

    /// Whether the selector selects everything (no requirements).
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Selector::All(reqs) if reqs.is_empty())
    }

    /// Whether objects with `labels` are selected.
    pub(crate) fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let Selector::All(reqs) = self else {
            return false;
        };
        reqs.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match r.op {
                Op::Equals | Op::In => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotIn => value.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
            }
        })
    }
}

impl std::fmt::Display for Selector {
    /// The selector as Kubernetes prints it: `app=web,tier in (a,b),!old`;
    /// empty for `Nothing` and for an empty selector.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Selector::All(reqs) = self else {
            return Ok(());
        };
        let parts: Vec<String> = reqs
            .iter()
            .map(|r| match r.op {
                Op::Equals => format!("{}={}", r.key, r.values.join(",")),
                Op::In => format!("{} in ({})", r.key, r.values.join(",")),
                Op::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                Op::Exists => r.key.clone(),
                Op::DoesNotExist => format!("!{}", r.key),
            })
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

fn check_key_value(key: &str, values: &[String]) -> Result<(), String> {
    if let Some(problem) = qualified_name(key).into_iter().next() {
        return Err(format!("key: Invalid value: {}: {problem}", quote(key)));
    }
    for v in values {
        if let Some(problem) = label_value(v).into_iter().next() {
            return Err(format!(
                "values[0][{key}]: Invalid value: {}: {problem}",
                quote(v)
            ));
        }
    }
    Ok(())
}

/// A selector as `kubectl get` prints it (`metav1.FormatLabelSelector`):
/// `<none>` when it selects everything or is absent, `<error>` when it
/// does not parse.
pub(crate) fn format_label_selector(selector: Option<&Value>) -> String {
    match Selector::parse(selector) {
        Err(_) => "<error>".into(),
        Ok(s) => {
            let text = s.to_string();
            if text.is_empty() {
                "<none>".into()
            } else {
                text
            }
        }
    }
}

/// A label map as `kubectl get` prints it (`labels.FormatLabels`):
/// `a=1,b=2` sorted by key, `<none>` when empty.
pub(crate) fn format_labels(labels: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// Kubernetes' `ValidateLabels` (`core::field::labels`) for a label map
/// held as JSON.
pub(crate) fn validate_labels(labels: Option<&Map<String, Value>>, field: &str) -> Vec<FieldError> {
    crate::core::field::labels(field, labels.map(string_map).as_ref())
}

/// Kubernetes' `ValidateLabelSelector` (strict about label values).
pub(crate) fn validate_selector(selector: Option<&Value>, field: &str) -> Vec<FieldError> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Vec::new();
    };
    let mut errs = validate_labels(
        selector.get("matchLabels").and_then(Value::as_object),
        &format!("{field}.matchLabels"),
    );
    for (i, expr) in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("{field}.matchExpressions[{i}]");
        let values = expr.get("values").and_then(Value::as_array);
        let count = values.map_or(0, Vec::len);
        let operator = expr
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match operator {
            "In" | "NotIn" if count == 0 => errs.push(FieldError::required(
                format!("{path}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if count > 0 => errs.push(FieldError::forbidden(
                format!("{path}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                format!("{path}.operator"),
                quote(other),
                "not a valid selector operator",
            )),
        }
        let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
        for problem in qualified_name(key) {
            errs.push(FieldError::invalid(
                format!("{path}.key"),
                quote(key),
                problem,
            ));
        }
        for (j, v) in values.into_iter().flatten().enumerate() {
            let v = v.as_str().unwrap_or_default();
            for problem in label_value(v) {
                errs.push(FieldError::invalid(
                    format!("{path}.values[{j}]"),
                    quote(v),
                    problem,
                ));
            }
        }
    }
    errs
}

/// Whether a selector value has neither labels nor expressions.
pub(crate) fn has_no_terms(selector: &Value) -> bool {
    let labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    let exprs = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    labels + exprs == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_match_and_print_like_kubernetes() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "old", "operator": "DoesNotExist"}
            ]
        });
        let s = Selector::parse(Some(&sel)).unwrap();
        assert_eq!(s.to_string(), "app=web,!old,tier in (a,b)");
        let labels = json!({"app": "web", "tier": "a"});
        assert!(s.matches(labels.as_object()));
        assert!(!s.matches(json!({"app": "web"}).as_object()));
        assert!(!Selector::Nothing.matches(labels.as_object()));
        assert!(Selector::parse(Some(&json!({}))).unwrap().is_empty());
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(
            format_label_selector(Some(
                &json!({"matchExpressions": [{"key": "a", "operator": "Bad"}]})
            )),
            "<error>"
        );
        assert_eq!(
            format_labels(json!({"b": "2", "a": "1"}).as_object()),
            "a=1,b=2"
        );
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn selector_validation_messages() {
        let sel = json!({"matchExpressions": [
            {"key": "a", "operator": "In"},
            {"key": "b", "operator": "Exists", "values": ["x"]},
            {"key": "c", "operator": "Near"}
        ]});
        let errs: Vec<String> = validate_selector(Some(&sel), "spec.selector")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                "spec.selector.matchExpressions[2].operator: Invalid value: \"Near\": not a valid selector operator",
            ]
        );
        let bad = validate_labels(json!({"app": "-x"}).as_object(), "spec.template.labels");
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].field, "spec.template.labels");
    }
}
