//! Label and field selectors, as in `?labelSelector=app=web,tier!=db` and
//! `?fieldSelector=spec.nodeName=n1,status.phase!=Running`.

use std::collections::BTreeMap;

use crate::status::{ApiError, ApiResult};

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the key is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses the text form.
    pub fn parse(text: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for term in split_terms(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(term).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unable to parse requirement: found '{term}', expected: key, !key, key=value, \
                     key!=value, key in (values) or key notin (values)"
                ))
            })?);
        }
        Ok(Self(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits at commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && kinds::validation::qualified_name(k).is_empty()
}

fn valid_value(v: &str) -> bool {
    kinds::validation::label_value(v).is_empty()
}

fn parse_requirement(term: &str) -> Option<Requirement> {
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        return valid_key(key).then(|| Requirement::DoesNotExist(key.to_owned()));
    }
    for (op, ctor) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((k, v)) = term.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            return (valid_key(k) && valid_value(v)).then(|| ctor(k.to_owned(), v.to_owned()));
        }
    }
    for (op, set) in [(" notin ", false), (" in ", true)] {
        if let Some((k, rest)) = term.split_once(op) {
            let k = k.trim();
            let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
            let values: Vec<String> = inner
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            if !valid_key(k) || values.is_empty() || !values.iter().all(|v| valid_value(v)) {
                return None;
            }
            return Some(if set {
                Requirement::In(k.to_owned(), values)
            } else {
                Requirement::NotIn(k.to_owned(), values)
            });
        }
    }
    valid_key(term).then(|| Requirement::Exists(term.to_owned()))
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses the text form, refusing fields not in `supported`.
    pub fn parse(text: &str, supported: &[String]) -> ApiResult<Self> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: invalid selector: '{term}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if !supported.iter().any(|s| s == field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    /// Whether an object with these field values matches. Absent fields
    /// read as empty strings, as in Kubernetes.
    pub fn matches(&self, fields: &[(String, String)]) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = fields
                .iter()
                .find(|(f, _)| f == field)
                .map_or("", |(_, v)| v.as_str());
            (actual == value) == *equal
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value required for `field` by an equality term, if any; used to
    /// narrow a list to one object (`metadata.name=x`).
    pub fn required(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, equal, _)| f == field && *equal)
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("tier in (front, back)", true),
            ("tier notin (front)", false),
            ("env notin (prod)", true),
            ("env!=prod", true),
            ("app", true),
            ("!app", false),
            ("!env", true),
            ("app in (web),!env", true),
        ];
        for (text, want) in cases {
            assert_eq!(
                LabelSelector::parse(text).unwrap().matches(&l),
                want,
                "{text}"
            );
        }
        for bad in ["app=", "=web", "app in web", "a b"] {
            if bad == "app=" {
                // An empty value is a valid label value.
                assert!(LabelSelector::parse(bad).is_ok());
                continue;
            }
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors_check_their_fields() {
        let supported = vec!["metadata.name".to_owned(), "status.phase".to_owned()];
        let s = FieldSelector::parse("metadata.name=web,status.phase!=Failed", &supported).unwrap();
        let fields = vec![
            ("metadata.name".to_owned(), "web".to_owned()),
            ("status.phase".to_owned(), "Running".to_owned()),
        ];
        assert!(s.matches(&fields));
        assert_eq!(s.required("metadata.name"), Some("web"));
        let err = FieldSelector::parse("spec.foo=x", &supported).unwrap_err();
        assert_eq!(err.message, "field label not supported: spec.foo");
        assert!(FieldSelector::parse("nonsense", &supported).is_err());
    }
}
