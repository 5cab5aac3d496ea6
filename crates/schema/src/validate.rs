//! Validation of a value against a schema, as the apiextensions API server
//! validates custom resources: OpenAPI v3 keywords (type, nullable,
//! required, enum, pattern, format, bounds, lengths, sizes, uniqueness,
//! allOf/anyOf/oneOf/not) plus `x-kubernetes-list-type` set and map
//! uniqueness, with Kubernetes' messages.
//!
//! Kubernetes runs kube-openapi's validator and turns each of its errors
//! into a field error; an [`Issue`] is that field error. The message of an
//! issue is kube-openapi's text (`spec.size in body should be less than or
//! equal to 10`), which Kubernetes shows after the field error's head:
//! `spec.size: Invalid value: 11: spec.size in body should be less than or
//! equal to 10`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::Value;

use crate::{ListType, Node, Type};

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// The field, as Kubernetes writes it: `spec.replicas`,
    /// `spec.items[0].name`; empty for the object itself.
    pub path: String,
    /// What kind of problem, deciding the head of the message.
    pub kind: IssueKind,
    /// The offending value, rendered as Kubernetes renders it (strings
    /// quoted), when the message shows one.
    pub value: Option<String>,
    /// The detail after the head and the value, such as `spec.size in body
    /// should be less than or equal to 10`, or `supported values: "a",
    /// "b"`; may be empty.
    pub message: String,
}

/// The kinds of field errors validation produces; each is one of
/// Kubernetes' field error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueKind {
    /// A required field is missing (`Required value`).
    Required,
    /// A value outside an enum (`Unsupported value`).
    NotSupported,
    /// A string longer than `maxLength` (`Too long`).
    TooLong,
    /// More items or properties than allowed (`Too many`).
    TooMany,
    /// A value of the wrong type or format (`Invalid value`, reason
    /// `FieldValueTypeInvalid`).
    TypeInvalid,
    /// Any other violated constraint (`Invalid value`).
    Invalid,
    /// A repeated item of a set or map list (`Duplicate value`).
    Duplicate,
    /// A keyword or value not allowed where it is (`Forbidden`).
    Forbidden,
}

impl IssueKind {
    /// The head Kubernetes starts the message with.
    pub fn head(self) -> &'static str {
        match self {
            IssueKind::Required => "Required value",
            IssueKind::NotSupported => "Unsupported value",
            IssueKind::TooLong => "Too long",
            IssueKind::TooMany => "Too many",
            IssueKind::TypeInvalid | IssueKind::Invalid => "Invalid value",
            IssueKind::Duplicate => "Duplicate value",
            IssueKind::Forbidden => "Forbidden",
        }
    }

    /// The `reason` of a Status cause for this kind of issue.
    pub fn cause_reason(self) -> &'static str {
        match self {
            IssueKind::Required => "FieldValueRequired",
            IssueKind::NotSupported => "FieldValueNotSupported",
            IssueKind::TooLong => "FieldValueTooLong",
            IssueKind::TooMany => "FieldValueTooMany",
            IssueKind::TypeInvalid => "FieldValueTypeInvalid",
            IssueKind::Invalid => "FieldValueInvalid",
            IssueKind::Duplicate => "FieldValueDuplicate",
            IssueKind::Forbidden => "FieldValueForbidden",
        }
    }
}

impl Issue {
    pub(crate) fn new(
        path: &str,
        kind: IssueKind,
        value: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.trim_start_matches('.').to_owned(),
            kind,
            value,
            message: message.into(),
        }
    }

    /// The message without the field, as in a Status cause:
    /// `Invalid value: "x": spec.replicas in body must be of type integer:
    /// "string"`.
    pub fn body(&self) -> String {
        let mut out = self.kind.head().to_owned();
        if let Some(v) = &self.value {
            out.push_str(": ");
            out.push_str(v);
        }
        if !self.message.is_empty() {
            out.push_str(": ");
            out.push_str(&self.message);
        }
        out
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.body())
        } else {
            write!(f, "{}: {}", self.path, self.body())
        }
    }
}

/// Checks `value` against `node`, returning every problem found.
pub fn validate(node: Node<'_>, value: &Value) -> Vec<Issue> {
    let mut out = Vec::new();
    check(node, value, "", &mut out);
    out
}

/// The path of a child field: `spec` at the root, `spec.replicas` below.
fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn check(node: Node<'_>, value: &Value, path: &str, out: &mut Vec<Issue>) {
    check_type(node, value, path, out);
    check_combinators(node, value, path, out);
    match value {
        Value::String(s) => {
            check_string(node, s, path, out);
            check_format(node, s, path, out);
        }
        Value::Number(_) => check_number(node, value, path, out),
        Value::Array(items) => check_array(node, items, path, out),
        Value::Object(map) => check_object(node, map, path, out),
        Value::Bool(_) | Value::Null => {}
    }
    check_enum(node, value, path, out);
}

/// The JSON type name kube-openapi reports for a value.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_nullable(node: Node<'_>) -> bool {
    node.keyword("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn check_type(node: Node<'_>, value: &Value, path: &str, out: &mut Vec<Issue>) {
    let expected: &[&str] = match node.ty() {
        Type::Any => return,
        Type::Object => {
            // A schema with only `properties` constrains nothing by type.
            if node.body().get("type").is_none() {
                return;
            }
            &["object"]
        }
        Type::Array => &["array"],
        Type::String => &["string"],
        Type::Integer => &["integer"],
        Type::Number => &["number"],
        Type::Boolean => &["boolean"],
        Type::IntOrString => &["integer", "string"],
    };
    let actual = type_name(value);
    let fits = match actual {
        "null" => is_nullable(node),
        // An integer is a number, and a number with no fraction an integer.
        "integer" => expected.contains(&"integer") || expected.contains(&"number"),
        "number" => {
            expected.contains(&"number")
                || (expected.contains(&"integer")
                    && value.as_f64().is_some_and(|f| f.fract() == 0.0))
        }
        other => expected.contains(&other),
    };
    if !fits {
        let types = expected.join(",");
        out.push(Issue::new(
            path,
            IssueKind::TypeInvalid,
            Some(render(value)),
            format!("{path} in body must be of type {types}: \"{actual}\""),
        ));
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not`, whose schemas apply at the same
/// position.
fn check_combinators(node: Node<'_>, value: &Value, path: &str, out: &mut Vec<Issue>) {
    let set = node.set();
    let schemas = |key: &str| -> Vec<Node<'_>> {
        node.body()
            .get(key)
            .and_then(Value::as_array)
            .map(|all| all.iter().map(|s| set.node(s)).collect())
            .unwrap_or_default()
    };
    // A reference wrapped in a one-element allOf is the node itself, already
    // followed by `Node`; only real conjunctions are checked here.
    let all_of = schemas("allOf");
    if !(all_of.len() == 1 && all_of[0].raw().get("$ref").is_some()) {
        for sub in all_of {
            check(sub, value, path, out);
        }
    }
    let any_of = schemas("anyOf");
    if !any_of.is_empty()
        && !any_of
            .iter()
            .any(|s| validate_at(*s, value, path).is_empty())
    {
        out.push(Issue::new(
            path,
            IssueKind::Invalid,
            Some(render(value)),
            format!("{path} in body must validate at least one schema (anyOf)"),
        ));
    }
    let one_of = schemas("oneOf");
    if !one_of.is_empty() {
        let passing = one_of
            .iter()
            .filter(|s| validate_at(**s, value, path).is_empty())
            .count();
        if passing != 1 {
            out.push(Issue::new(
                path,
                IssueKind::Invalid,
                Some(render(value)),
                format!("{path} in body must validate one and only one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = node.body().get("not")
        && validate_at(set.node(not), value, path).is_empty()
    {
        out.push(Issue::new(
            path,
            IssueKind::Invalid,
            Some(render(value)),
            format!("{path} in body should not validate the schema (not)"),
        ));
    }
}

fn validate_at(node: Node<'_>, value: &Value, path: &str) -> Vec<Issue> {
    let mut out = Vec::new();
    check(node, value, path, &mut out);
    out
}

fn uint(node: Node<'_>, key: &str) -> Option<u64> {
    node.keyword(key).and_then(Value::as_u64)
}

fn check_string(node: Node<'_>, s: &str, path: &str, out: &mut Vec<Issue>) {
    // Lengths count characters, as kube-openapi does (runes, not bytes),
    // though Kubernetes' "Too long" message says bytes.
    let len = s.chars().count() as u64;
    if let Some(max) = uint(node, "maxLength")
        && len > max
    {
        out.push(Issue::new(
            path,
            IssueKind::TooLong,
            None,
            format!("may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = uint(node, "minLength")
        && len < min
    {
        out.push(Issue::new(
            path,
            IssueKind::Invalid,
            Some(quote(s)),
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = node.keyword("pattern").and_then(Value::as_str)
        && let Some(re) = compiled(pattern)
        && !re.is_match(s)
    {
        out.push(Issue::new(
            path,
            IssueKind::Invalid,
            Some(quote(s)),
            format!("{path} in body should match '{pattern}'"),
        ));
    }
}

/// Compiled patterns, kept because the same few schemas validate every
/// object of their kind. The cache is emptied when it grows large, so
/// schemas that come and go cannot make it grow without bound.
fn compiled(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let Ok(mut cache) = cache.lock() else {
        return Regex::new(pattern).ok();
    };
    if let Some(re) = cache.get(pattern) {
        return re.clone();
    }
    if cache.len() > 4096 {
        cache.clear();
    }
    let re = Regex::new(pattern).ok();
    cache.insert(pattern.to_owned(), re.clone());
    re
}

fn check_format(node: Node<'_>, s: &str, path: &str, out: &mut Vec<Issue>) {
    let Some(format) = node.keyword("format").and_then(Value::as_str) else {
        return;
    };
    if crate::formats::is_valid(format, s) == Some(false) {
        out.push(Issue::new(
            path,
            IssueKind::TypeInvalid,
            Some(quote(s)),
            format!("{path} in body must be of type {format}: {}", quote(s)),
        ));
    }
}

fn check_number(node: Node<'_>, value: &Value, path: &str, out: &mut Vec<Issue>) {
    let Some(x) = value.as_f64() else {
        return;
    };
    let flag = |key: &str| node.keyword(key).and_then(Value::as_bool).unwrap_or(false);
    if let Some(factor) = node.keyword("multipleOf").and_then(Value::as_f64)
        && factor > 0.0
        && (x / factor).fract() != 0.0
    {
        out.push(Issue::new(
            path,
            IssueKind::Invalid,
            Some(render(value)),
            format!("{path} in body should be a multiple of {}", number(factor)),
        ));
    }
    if let Some(max) = node.keyword("maximum").and_then(Value::as_f64) {
        let exclusive = flag("exclusiveMaximum");
        if x > max || (exclusive && x == max) {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(Issue::new(
                path,
                IssueKind::Invalid,
                Some(render(value)),
                format!("{path} in body should be {relation} {}", number(max)),
            ));
        }
    }
    if let Some(min) = node.keyword("minimum").and_then(Value::as_f64) {
        let exclusive = flag("exclusiveMinimum");
        if x < min || (exclusive && x == min) {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(Issue::new(
                path,
                IssueKind::Invalid,
                Some(render(value)),
                format!("{path} in body should be {relation} {}", number(min)),
            ));
        }
    }
}

fn check_array(node: Node<'_>, items: &[Value], path: &str, out: &mut Vec<Issue>) {
    let len = items.len() as u64;
    if let Some(min) = uint(node, "minItems")
        && len < min
    {
        out.push(Issue::new(
            path,
            IssueKind::Invalid,
            Some(len.to_string()),
            format!("{path} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = uint(node, "maxItems")
        && len > max
    {
        out.push(Issue::new(
            path,
            IssueKind::TooMany,
            Some(len.to_string()),
            format!("must have at most {max} items"),
        ));
    }
    if node
        .keyword("uniqueItems")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        && has_duplicates(items)
    {
        out.push(Issue::new(
            path,
            IssueKind::Invalid,
            Some("\"\"".into()),
            format!("{path} in body shouldn't contain duplicates"),
        ));
    }
    check_list_type(node, items, path, out);
    if let Some(item) = node.items() {
        for (i, v) in items.iter().enumerate() {
            check(item, v, &format!("{path}[{i}]"), out);
        }
    }
}

fn has_duplicates(items: &[Value]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items[..i].iter().any(|b| same(a, b)))
}

/// JSON equality in which `1` and `1.0` are the same number, as Go's
/// decoded values compare.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// `x-kubernetes-list-type: set` items must be unique, and the items of a
/// `map` list unique by their keys. Each repeated item is reported once,
/// at its second occurrence.
fn check_list_type(node: Node<'_>, items: &[Value], path: &str, out: &mut Vec<Issue>) {
    let keys: Vec<Value> = match node.list_type() {
        ListType::Atomic => return,
        ListType::Set => items.to_vec(),
        ListType::Map(fields) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() && !item.is_null() {
                    out.push(Issue::new(
                        &format!("{path}[{i}]"),
                        IssueKind::Invalid,
                        Some(render(item)),
                        "must be an object for an array of list-type map",
                    ));
                    return;
                }
            }
            items
                .iter()
                .map(|item| {
                    let key: serde_json::Map<String, Value> = fields
                        .iter()
                        .filter_map(|f| item.get(f).map(|v| (f.clone(), v.clone())))
                        .collect();
                    Value::Object(key)
                })
                .collect()
        }
    };
    for (i, key) in keys.iter().enumerate() {
        let earlier = keys[..i].iter().filter(|k| same(k, key)).count();
        if earlier == 1 {
            out.push(Issue::new(
                &format!("{path}[{i}]"),
                IssueKind::Duplicate,
                Some(render(key)),
                "",
            ));
        }
    }
}

fn check_enum(node: Node<'_>, value: &Value, path: &str, out: &mut Vec<Issue>) {
    let Some(allowed) = node.keyword("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.is_empty() || allowed.iter().any(|a| same(a, value)) {
        return;
    }
    let supported: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => quote(s),
            other => quote(&other.to_string()),
        })
        .collect();
    out.push(Issue::new(
        path,
        IssueKind::NotSupported,
        Some(render(value)),
        format!("supported values: {}", supported.join(", ")),
    ));
}

fn check_object(
    node: Node<'_>,
    map: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Issue>,
) {
    let len = map.len() as u64;
    if let Some(min) = uint(node, "minProperties")
        && len < min
    {
        out.push(Issue::new(
            path,
            IssueKind::Invalid,
            Some(len.to_string()),
            format!("{path} in body should have at least {min} properties"),
        ));
    }
    if let Some(max) = uint(node, "maxProperties")
        && len > max
    {
        out.push(Issue::new(
            path,
            IssueKind::TooMany,
            Some(len.to_string()),
            format!("must have at most {max} items"),
        ));
    }
    for (key, v) in map {
        let child = child_path(path, key);
        if let Some(prop) = node.property(key) {
            check(prop, v, &child, out);
        } else if let Some(values) = node.additional_properties() {
            check(values, v, &child, out);
        }
    }
    for key in node.required() {
        if !map.contains_key(key) {
            out.push(Issue::new(
                &child_path(path, key),
                IssueKind::Required,
                None,
                "",
            ));
        }
    }
}

/// A value as Kubernetes prints it in a field error: strings quoted,
/// numbers and booleans bare, `null`, and objects and lists as JSON.
pub(crate) fn render(value: &Value) -> String {
    match value {
        Value::String(s) => quote(s),
        Value::Number(_) => value.as_f64().map(number).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// A string quoted as Go's `%q` quotes it (close to JSON's quoting).
pub(crate) fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// A number as Go's `%v` prints a float64: no fraction when it has none.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e21 {
        format!("{}", x as i128)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SchemaSet;
    use serde_json::json;

    /// Runs `validate` on each case and compares the issues' full text.
    fn cases(schema: Value, cases: &[(Value, &[&str])]) {
        let set = SchemaSet::new();
        let node = set.node(&schema);
        for (value, expected) in cases {
            let got: Vec<String> = validate(node, value)
                .iter()
                .map(|i| i.to_string())
                .collect();
            assert_eq!(got, *expected, "value {value}");
        }
    }

    fn widget() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "replicas": {"type": "integer", "format": "int32"},
                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                        "ratio": {"type": "number", "exclusiveMaximum": true, "maximum": 1, "multipleOf": 0.25},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "note": {"type": "string", "nullable": true},
                        "when": {"type": "string", "format": "date-time"},
                        "blob": {"type": "string", "format": "byte"},
                        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2, "minItems": 1},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1},
                        "set": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["port"],
                            "items": {"type": "object", "properties": {"port": {"type": "integer"}}}
                        },
                        "unique": {"type": "array", "items": {"type": "integer"}, "uniqueItems": true}
                    }
                }
            }
        })
    }

    #[test]
    fn messages_read_like_kubernetes() {
        cases(
            widget(),
            &[
                (json!({"spec": {"size": 3}}), &[]),
                (
                    json!({"spec": {"size": 3, "replicas": "three"}}),
                    &[
                        "spec.replicas: Invalid value: \"three\": spec.replicas in body must be of type integer: \"string\"",
                    ],
                ),
                (
                    json!({"spec": {"size": 11}}),
                    &[
                        "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
                    ],
                ),
                (
                    json!({"spec": {"size": 0}}),
                    &[
                        "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
                    ],
                ),
                // 3.0 is an integer; 3.5 is not.
                (json!({"spec": {"size": 3.0}}), &[]),
                (
                    json!({"spec": {"size": 3.5}}),
                    &[
                        "spec.size: Invalid value: 3.5: spec.size in body must be of type integer: \"number\"",
                    ],
                ),
                (json!({"spec": {}}), &["spec.size: Required value"]),
                (
                    json!({"spec": {"size": 1, "mode": "c"}}),
                    &["spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\""],
                ),
                (
                    json!({"spec": {"size": 1, "ratio": 1}}),
                    &["spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"],
                ),
                (
                    json!({"spec": {"size": 1, "ratio": 0.3}}),
                    &[
                        "spec.ratio: Invalid value: 0.3: spec.ratio in body should be a multiple of 0.25",
                    ],
                ),
                (
                    json!({"spec": {"size": 1, "name": "Abcdef"}}),
                    &[
                        "spec.name: Too long: may not be more than 5 bytes",
                        "spec.name: Invalid value: \"Abcdef\": spec.name in body should match '^[a-z]+$'",
                    ],
                ),
                (
                    json!({"spec": {"size": 1, "name": "a"}}),
                    &[
                        "spec.name: Invalid value: \"a\": spec.name in body should be at least 2 chars long",
                    ],
                ),
                (json!({"spec": {"size": 1, "port": 80}}), &[]),
                (json!({"spec": {"size": 1, "port": "http"}}), &[]),
                (
                    json!({"spec": {"size": 1, "port": true}}),
                    &[
                        "spec.port: Invalid value: true: spec.port in body must be of type integer,string: \"boolean\"",
                    ],
                ),
                (json!({"spec": {"size": 1, "note": null}}), &[]),
                (
                    json!({"spec": {"size": 1, "mode": null}}),
                    &[
                        "spec.mode: Invalid value: null: spec.mode in body must be of type string: \"null\"",
                        "spec.mode: Unsupported value: null: supported values: \"a\", \"b\"",
                    ],
                ),
                (
                    json!({"spec": {"size": 1, "when": "2024-01-02T03:04:05Z"}}),
                    &[],
                ),
                (
                    json!({"spec": {"size": 1, "when": "yesterday"}}),
                    &[
                        "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
                    ],
                ),
                (
                    json!({"spec": {"size": 1, "blob": "not base64!"}}),
                    &[
                        "spec.blob: Invalid value: \"not base64!\": spec.blob in body must be of type byte: \"not base64!\"",
                    ],
                ),
                (
                    json!({"spec": {"size": 1, "tags": ["a", "b", 3]}}),
                    &[
                        "spec.tags: Too many: 3: must have at most 2 items",
                        "spec.tags[2]: Invalid value: 3: spec.tags[2] in body must be of type string: \"integer\"",
                    ],
                ),
                (
                    json!({"spec": {"size": 1, "tags": []}}),
                    &[
                        "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items",
                    ],
                ),
                (
                    json!({"spec": {"size": 1, "labels": {"a": "x", "b": 2}}}),
                    &[
                        "spec.labels: Too many: 2: must have at most 1 items",
                        "spec.labels.b: Invalid value: 2: spec.labels.b in body must be of type string: \"integer\"",
                    ],
                ),
                (
                    json!({"spec": {"size": 1, "set": ["x", "y", "x", "x"]}}),
                    &["spec.set[2]: Duplicate value: \"x\""],
                ),
                (
                    json!({"spec": {"size": 1, "ports": [{"port": 80}, {"port": 81}, {"port": 80}]}}),
                    &["spec.ports[2]: Duplicate value: {\"port\":80}"],
                ),
                (
                    json!({"spec": {"size": 1, "unique": [1, 2, 1]}}),
                    &[
                        "spec.unique: Invalid value: \"\": spec.unique in body shouldn't contain duplicates",
                    ],
                ),
                (
                    json!({"spec": "none"}),
                    &[
                        "spec: Invalid value: \"none\": spec in body must be of type object: \"string\"",
                    ],
                ),
            ],
        );
    }

    #[test]
    fn combinators_apply_at_the_same_position() {
        cases(
            json!({
                "type": "object",
                "properties": {
                    "a": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "b": {"type": "integer", "allOf": [{"minimum": 2}, {"maximum": 4}]},
                    "c": {"type": "integer", "not": {"enum": [13]}},
                    "d": {"oneOf": [{"minimum": 0}, {"maximum": 10}]}
                }
            }),
            &[
                (json!({"a": 1, "b": 3, "c": 1, "d": 20}), &[]),
                (
                    json!({"a": true}),
                    &[
                        "a: Invalid value: true: a in body must validate at least one schema (anyOf)",
                    ],
                ),
                (
                    json!({"b": 5}),
                    &["b: Invalid value: 5: b in body should be less than or equal to 4"],
                ),
                (
                    json!({"c": 13}),
                    &["c: Invalid value: 13: c in body should not validate the schema (not)"],
                ),
                (
                    json!({"d": 5}),
                    &[
                        "d: Invalid value: 5: d in body must validate one and only one schema (oneOf)",
                    ],
                ),
            ],
        );
    }

    #[test]
    fn references_resolve_in_the_set() {
        let set = SchemaSet::from_components(&json!({"schemas": {
            "Thing": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
        }}));
        let schema = json!({"type": "array", "items": {"$ref": "#/components/schemas/Thing"}});
        let issues = validate(set.node(&schema), &json!([{"name": "a"}, {}]));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].path, "[1].name");
        assert_eq!(issues[0].kind, IssueKind::Required);
        assert_eq!(issues[0].kind.cause_reason(), "FieldValueRequired");
    }
}
