//! Int-or-string fields that hold a count or a percentage (`maxSurge: 25%`,
//! `minAvailable: 2`), validated as Kubernetes validates them.

use serde_json::Value;

use crate::FieldError;
use crate::validation::quote;

/// An `IntOrString` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IntOrString {
    /// A plain number.
    Int(i64),
    /// A string, normally a percentage such as `25%`.
    Str(String),
}

impl IntOrString {
    /// Reads a JSON number or string; anything else is treated as the zero
    /// value, as the type check reports it.
    pub(crate) fn from_json(value: Option<&Value>) -> IntOrString {
        match value {
            Some(Value::String(s)) => IntOrString::Str(s.clone()),
            Some(v) => IntOrString::Int(v.as_i64().unwrap_or(0)),
            None => IntOrString::Int(0),
        }
    }

    /// The value as Go's `%#v` prints an `intstr.IntOrString` in messages.
    pub(crate) fn go(&self) -> String {
        match self {
            IntOrString::Int(i) => format!("intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"),
            IntOrString::Str(s) => format!(
                "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
                quote(s)
            ),
        }
    }

    /// The value as `kubectl get` prints it (`2`, `50%`).
    pub(crate) fn text(&self) -> String {
        match self {
            IntOrString::Int(i) => i.to_string(),
            IntOrString::Str(s) => s.clone(),
        }
    }

    /// The percentage of a valid percent string.
    fn percent(&self) -> Option<i64> {
        match self {
            IntOrString::Str(s) if is_percent(s) => s[..s.len() - 1].parse().ok(),
            _ => None,
        }
    }

    /// The number a percentage or count stands for in comparisons with
    /// zero (Kubernetes' `getIntOrPercentValue`).
    pub(crate) fn value(&self) -> i64 {
        if let Some(p) = self.percent() {
            return p;
        }
        match self {
            IntOrString::Int(i) => *i,
            IntOrString::Str(s) => s.parse().unwrap_or(0),
        }
    }
}

fn is_percent(s: &str) -> bool {
    s.len() > 1 && s.ends_with('%') && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// Kubernetes' `ValidatePositiveIntOrPercent`: a non-negative count or a
/// well-formed percentage.
pub(crate) fn validate_positive_int_or_percent(v: &IntOrString, field: &str) -> Vec<FieldError> {
    match v {
        IntOrString::Str(s) if !is_percent(s) => vec![FieldError::invalid(
            field,
            v.go(),
            "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  \
             or '93%', regex used for validation is '[0-9]+%')",
        )],
        IntOrString::Str(_) => Vec::new(),
        IntOrString::Int(i) if *i < 0 => vec![FieldError::invalid(
            field,
            i.to_string(),
            "must be greater than or equal to 0",
        )],
        IntOrString::Int(_) => Vec::new(),
    }
}

/// Kubernetes' `IsNotMoreThan100Percent`.
pub(crate) fn not_more_than_100_percent(v: &IntOrString, field: &str) -> Vec<FieldError> {
    match v.percent() {
        Some(p) if p > 100 => vec![FieldError::invalid(
            field,
            v.go(),
            "must not be greater than 100%",
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_and_percentages() {
        let p = IntOrString::from_json(Some(&json!("25%")));
        assert_eq!(p.value(), 25);
        assert!(validate_positive_int_or_percent(&p, "f").is_empty());
        let bad = IntOrString::from_json(Some(&json!("25")));
        assert_eq!(
            validate_positive_int_or_percent(&bad, "f")[0].message(),
            "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"25\"}: a valid percent string must be \
             a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
        );
        let neg = IntOrString::from_json(Some(&json!(-1)));
        assert_eq!(
            validate_positive_int_or_percent(&neg, "f")[0].message(),
            "Invalid value: -1: must be greater than or equal to 0"
        );
        let big = IntOrString::Str("120%".into());
        assert_eq!(not_more_than_100_percent(&big, "f").len(), 1);
        assert_eq!(
            IntOrString::Int(0).go(),
            "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}"
        );
    }
}
