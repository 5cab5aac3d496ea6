//! `metav1.LabelSelector` matching, as Kubernetes does it: every `matchLabels`
//! pair and every `matchExpressions` requirement must hold; an empty selector
//! matches everything (controllers refuse one before they get here).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` satisfy `selector`. An unknown operator matches nothing.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let pairs = selector.match_labels.iter().flatten();
    if !pairs.into_iter().all(|(k, v)| labels.get(k) == Some(v)) {
        return false;
    }
    selector.match_expressions.iter().flatten().all(|r| {
        let value = labels.get(&r.key);
        let values = r.values.as_deref().unwrap_or_default();
        match r.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    })
}

/// Whether the selector selects nothing in particular (no labels, no
/// expressions): Kubernetes refuses such a selector on a ReplicaSet.
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_and_expressions_all_hold() {
        let s = sel(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        }));
        let good = labels(&[("app", "web"), ("tier", "edge"), ("team", "a")]);
        assert!(matches(&s, &good));
        let mut l = good.clone();
        l.insert("app".into(), "db".into());
        assert!(!matches(&s, &l), "matchLabels");
        let mut l = good.clone();
        l.insert("tier".into(), "back".into());
        assert!(!matches(&s, &l), "In");
        let mut l = good.clone();
        l.insert("env".into(), "dev".into());
        assert!(!matches(&s, &l), "NotIn");
        let mut l = good.clone();
        l.remove("team");
        assert!(!matches(&s, &l), "Exists");
        let mut l = good;
        l.insert("legacy".into(), "".into());
        assert!(!matches(&s, &l), "DoesNotExist");
    }

    #[test]
    fn empty_and_unknown() {
        assert!(is_empty(&sel(json!({}))));
        assert!(matches(&sel(json!({})), &labels(&[("a", "b")])));
        assert!(!is_empty(&sel(json!({"matchLabels": {"a": "b"}}))));
        let odd = sel(json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}));
        assert!(!matches(&odd, &labels(&[("a", "b")])));
    }
}
