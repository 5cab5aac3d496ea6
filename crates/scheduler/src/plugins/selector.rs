//! `metav1.LabelSelector` turned once into requirements, then matched
//! against many pods' labels (affinity terms and spread constraints are
//! checked against every pod on every node they look at).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// How one requirement compares a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug)]
struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// A label selector ready to match.
#[derive(Clone, Debug)]
pub(crate) struct Selector {
    requirements: Vec<Requirement>,
    /// A missing selector, or one Kubernetes would refuse to parse (an
    /// unknown operator), selects nothing, as `LabelSelectorAsSelector` does.
    nothing: bool,
}

/// Whether `selector` has no requirement at all, and so selects everything.
pub(crate) fn selects_everything(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

impl Selector {
    /// Compiles a selector; `None` selects nothing, an empty one everything.
    pub(crate) fn new(selector: Option<&LabelSelector>) -> Self {
        let Some(s) = selector else {
            return Self {
                requirements: Vec::new(),
                nothing: true,
            };
        };
        let mut out = Self {
            requirements: Vec::new(),
            nothing: false,
        };
        for (k, v) in s.match_labels.iter().flatten() {
            out.require(k, v);
        }
        for e in s.match_expressions.iter().flatten() {
            let operator = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                _ => {
                    out.nothing = true;
                    continue;
                }
            };
            out.requirements.push(Requirement {
                key: e.key.clone(),
                operator,
                values: e.values.clone().unwrap_or_default(),
            });
        }
        out
    }

    /// Adds `key = value` (for `matchLabelKeys`, which copies the incoming
    /// pod's own label values into the selector).
    pub(crate) fn require(&mut self, key: &str, value: &str) {
        self.requirements.push(Requirement {
            key: key.to_owned(),
            operator: Operator::In,
            values: vec![value.to_owned()],
        });
    }

    /// Whether a set of labels is selected.
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.nothing {
            return false;
        }
        self.requirements.iter().all(|r| {
            let value = labels.get(&r.key);
            match r.operator {
                Operator::In => value.is_some_and(|v| r.values.contains(v)),
                Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: serde_json::Value) -> BTreeMap<String, String> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn missing_selects_nothing_and_empty_everything() {
        let l = labels(json!({"app": "web"}));
        assert!(!Selector::new(None).matches(&l));
        assert!(Selector::new(Some(&LabelSelector::default())).matches(&l));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let s: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        let s = Selector::new(Some(&s));
        assert!(s.matches(&labels(json!({"app": "web", "tier": "b"}))));
        assert!(!s.matches(&labels(json!({"app": "web", "tier": "c"}))));
        assert!(!s.matches(&labels(json!({"app": "web", "tier": "a", "canary": "1"}))));
        assert!(!s.matches(&labels(json!({"tier": "a"}))));
    }
}
