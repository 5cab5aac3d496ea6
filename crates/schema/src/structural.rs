//! Whether a CustomResourceDefinition's `openAPIV3Schema` is structural,
//! and otherwise allowed, with the messages the CRD's validation gives.
//!
//! A structural schema says, at every position, what type a value has:
//! `type` is set everywhere (except under `x-kubernetes-int-or-string` or
//! `x-kubernetes-preserve-unknown-fields`), arrays have `items`, and the
//! value validations (`allOf`, `anyOf`, `oneOf`, `not`) only constrain
//! what the structure already declares, without types, defaults,
//! descriptions or extensions of their own. On top, Kubernetes forbids
//! keywords it does not support (`$ref`, `definitions`, `patternProperties`,
//! `uniqueItems`, ...) and checks the list and map extensions.
//!
//! Paths are relative to the schema, in Kubernetes' field path form:
//! `properties[spec].type`, `allOf[0].properties[x]`.

use serde_json::{Map, Value};

use crate::validate::{Issue, IssueKind, quote, render};

/// Where in the structure a schema sits; some rules differ at the root and
/// for items.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// Why `schema` (a CRD's `openAPIV3Schema`) is not acceptable, one message
/// per problem, as `path: message`; empty when it is fine.
pub fn check_structural(schema: &Value) -> Vec<String> {
    structural_issues(schema, "")
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The problems of `schema` as field issues, their paths starting with
/// `root` (such as `spec.versions[0].schema.openAPIV3Schema`), sorted as
/// Kubernetes sorts them.
pub fn structural_issues(schema: &Value, root: &str) -> Vec<Issue> {
    let mut out = Vec::new();
    structure(schema, Level::Root, root, &mut out);
    out.sort_by_key(|i| i.to_string());
    out
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn key(path: &str, name: &str, key: &str) -> String {
    format!("{}[{key}]", child(path, name))
}

fn index(path: &str, name: &str, i: usize) -> String {
    format!("{}[{i}]", child(path, name))
}

fn ty(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn push(out: &mut Vec<Issue>, path: String, kind: IssueKind, value: Option<String>, detail: &str) {
    out.push(Issue {
        path,
        kind,
        value,
        message: detail.to_owned(),
    });
}

/// A list of strings as Go prints a `[]string` value.
fn string_list(values: &[Value]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| quote(v.as_str().unwrap_or_default()))
        .collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// Checks one position of the structure, then its items, properties and
/// additional properties.
fn structure(schema: &Value, level: Level, path: &str, out: &mut Vec<Issue>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    let t = ty(schema);
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(schema, "x-kubernetes-embedded-resource");

    unsupported_keywords(schema, path, out);
    extensions(schema, path, out);

    if t == "array" && !map.contains_key("items") {
        push(
            out,
            child(path, "items"),
            IssueKind::Required,
            None,
            "must be specified",
        );
    }
    if let Some(items) = map.get("items") {
        if items.is_array() {
            push(
                out,
                child(path, "items"),
                IssueKind::Forbidden,
                None,
                "items must be a schema object and not an array",
            );
        } else {
            structure(items, Level::Item, &child(path, "items"), out);
        }
    }
    if let Some(props) = properties(schema) {
        for (name, prop) in props {
            structure(prop, Level::Field, &key(path, "properties", name), out);
        }
    }
    if let Some(additional) = map.get("additionalProperties") {
        if level == Level::Root {
            push(
                out,
                child(path, "additionalProperties"),
                IssueKind::Forbidden,
                None,
                "must not be used at the root",
            );
        }
        let allows = additional.as_bool() == Some(true);
        if properties(schema).is_some_and(|p| !p.is_empty()) && !allows {
            push(
                out,
                child(path, "additionalProperties"),
                IssueKind::Forbidden,
                None,
                "additionalProperties and properties are mutual exclusive",
            );
        }
        if embedded {
            push(
                out,
                child(path, "additionalProperties"),
                IssueKind::Forbidden,
                None,
                "must not be used if x-kubernetes-embedded-resource is set",
            );
        }
        if additional.is_object() {
            structure(
                additional,
                Level::Field,
                &child(path, "additionalProperties"),
                out,
            );
        }
    }

    value_validations(schema, path, out);
    completeness(schema, schema, path, path, out);

    if embedded && t != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        if t.is_empty() {
            push(out, child(path, "type"), IssueKind::Required, None, detail);
        } else {
            push(
                out,
                child(path, "type"),
                IssueKind::Invalid,
                Some(quote(t)),
                detail,
            );
        }
    } else if t.is_empty() && !int_or_string && !preserve {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        push(out, child(path, "type"), IssueKind::Required, None, detail);
    }
    if level == Level::Root && !t.is_empty() && t != "object" {
        push(
            out,
            child(path, "type"),
            IssueKind::Invalid,
            Some(quote(t)),
            "must be object at the root",
        );
    }

    let resource = level == Level::Root || embedded;
    if let Some(props) = properties(schema) {
        if resource {
            for name in ["kind", "apiVersion"] {
                if let Some(p) = props.get(name)
                    && ty(p) != "string"
                {
                    push(
                        out,
                        child(&key(path, "properties", name), "type"),
                        IssueKind::Invalid,
                        Some(quote(ty(p))),
                        "must be string",
                    );
                }
            }
        }
        if let Some(meta) = props.get("metadata") {
            metadata(
                meta,
                resource,
                level,
                &key(path, "properties", "metadata"),
                out,
            );
        }
    }
    if embedded && !preserve && properties(schema).is_none_or(Map::is_empty) {
        push(
            out,
            child(path, "properties"),
            IssueKind::Required,
            None,
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        );
    }
}

/// `metadata` of a resource must be an object; at the root it may say no
/// more than that and which of `name` and `generateName` it constrains.
fn metadata(meta: &Value, resource: bool, level: Level, path: &str, out: &mut Vec<Issue>) {
    let t = ty(meta);
    if resource && t != "object" {
        push(
            out,
            child(path, "type"),
            IssueKind::Invalid,
            Some(quote(t)),
            "must be object",
        );
    }
    if level != Level::Root {
        return;
    }
    let Some(map) = meta.as_object() else {
        return;
    };
    let only_names = |props: &Map<String, Value>| {
        !props.is_empty() && props.keys().all(|k| k == "name" || k == "generateName")
    };
    let anything_else = map.iter().any(|(k, v)| match k.as_str() {
        // The type is checked above, and a default elsewhere.
        "type" | "default" => false,
        "properties" => !v.as_object().is_some_and(only_names),
        _ => true,
    });
    if anything_else {
        push(
            out,
            path.to_owned(),
            IssueKind::Forbidden,
            None,
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        );
    }
}

/// Keywords Kubernetes does not support in CRD schemas.
fn unsupported_keywords(schema: &Value, path: &str, out: &mut Vec<Issue>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    for (keyword, detail) in [
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ] {
        if map.contains_key(keyword) {
            push(
                out,
                child(path, keyword),
                IssueKind::Forbidden,
                None,
                detail,
            );
        }
    }
    if flag(schema, "uniqueItems") {
        push(
            out,
            child(path, "uniqueItems"),
            IssueKind::Forbidden,
            None,
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        );
    }
    let t = ty(schema);
    if t == "null" {
        push(
            out,
            child(path, "type"),
            IssueKind::Forbidden,
            None,
            "type cannot be set to null, use nullable as an alternative",
        );
    } else if !t.is_empty()
        && !["array", "boolean", "integer", "number", "object", "string"].contains(&t)
    {
        push(
            out,
            child(path, "type"),
            IssueKind::NotSupported,
            Some(quote(t)),
            "supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\"",
        );
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Err(e) = regex::Regex::new(pattern)
    {
        let detail = format!("must be a valid regular expression, but isn't: {e}");
        push(
            out,
            child(path, "pattern"),
            IssueKind::Invalid,
            Some(quote(pattern)),
            &detail,
        );
    }
}

/// The list and map extensions, and `x-kubernetes-preserve-unknown-fields`.
fn extensions(schema: &Value, path: &str, out: &mut Vec<Issue>) {
    let t = ty(schema);
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if int_or_string && flag(schema, "x-kubernetes-preserve-unknown-fields") {
        push(
            out,
            child(path, "x-kubernetes-preserve-unknown-fields"),
            IssueKind::Invalid,
            Some("true".into()),
            "must be false if x-kubernetes-int-or-string is true",
        );
    }
    if int_or_string && flag(schema, "x-kubernetes-embedded-resource") {
        push(
            out,
            child(path, "x-kubernetes-embedded-resource"),
            IssueKind::Invalid,
            Some("true".into()),
            "must be false if x-kubernetes-int-or-string is true",
        );
    }
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        push(
            out,
            child(path, "x-kubernetes-preserve-unknown-fields"),
            IssueKind::Invalid,
            Some("false".into()),
            "must be true or undefined",
        );
    }
    let type_must_be = |out: &mut Vec<Issue>, wanted: &str, detail: &str| {
        if t != wanted {
            if t.is_empty() {
                push(out, child(path, "type"), IssueKind::Required, None, detail);
            } else {
                push(
                    out,
                    child(path, "type"),
                    IssueKind::Invalid,
                    Some(quote(t)),
                    detail,
                );
            }
        }
    };
    if let Some(map_type) = schema.get("x-kubernetes-map-type").and_then(Value::as_str) {
        type_must_be(
            out,
            "object",
            "must be object if x-kubernetes-map-type is specified",
        );
        if map_type != "atomic" && map_type != "granular" {
            push(
                out,
                child(path, "x-kubernetes-map-type"),
                IssueKind::NotSupported,
                Some(quote(map_type)),
                "supported values: \"atomic\", \"granular\"",
            );
        }
    }
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    if let Some(list_type) = list_type {
        type_must_be(
            out,
            "array",
            "must be array if x-kubernetes-list-type is specified",
        );
        if !["atomic", "set", "map"].contains(&list_type) {
            push(
                out,
                child(path, "x-kubernetes-list-type"),
                IssueKind::NotSupported,
                Some(quote(list_type)),
                "supported values: \"atomic\", \"set\", \"map\"",
            );
        }
        if list_type == "set" && t == "array" {
            set_items(schema, path, out);
        }
    }
    let keys: &[Value] = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !keys.is_empty() {
        match list_type {
            None => push(
                out,
                child(path, "x-kubernetes-list-type"),
                IssueKind::Required,
                None,
                "must be map if x-kubernetes-list-map-keys is non-empty",
            ),
            Some("map") => {}
            Some(other) => push(
                out,
                child(path, "x-kubernetes-list-type"),
                IssueKind::Invalid,
                Some(quote(other)),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            ),
        }
    }
    if list_type == Some("map") {
        map_list(schema, keys, path, out);
    }
}

/// The items of a set must themselves merge whole.
fn set_items(schema: &Value, path: &str, out: &mut Vec<Issue>) {
    let Some(items) = schema.get("items").filter(|i| i.is_object()) else {
        return;
    };
    let detail = "must be atomic as item of a list with x-kubernetes-list-type=set";
    match ty(items) {
        "array" => {
            if let Some(t) = items.get("x-kubernetes-list-type").and_then(Value::as_str)
                && t != "atomic"
            {
                let p = child(&child(path, "items"), "x-kubernetes-list-type");
                push(out, p, IssueKind::Invalid, Some(quote(t)), detail);
            }
        }
        "object"
            if items.get("x-kubernetes-map-type").and_then(Value::as_str) != Some("atomic") =>
        {
            let p = child(&child(path, "items"), "x-kubernetes-map-type");
            push(out, p, IssueKind::Invalid, Some("null".into()), detail);
        }
        _ => {}
    }
}

/// A `map` list needs keys that are scalar properties of its items.
fn map_list(schema: &Value, keys: &[Value], path: &str, out: &mut Vec<Issue>) {
    if keys.is_empty() {
        push(
            out,
            child(path, "x-kubernetes-list-map-keys"),
            IssueKind::Required,
            None,
            "must not be empty if x-kubernetes-list-type is map",
        );
    }
    let Some(items) = schema.get("items") else {
        push(
            out,
            child(path, "items"),
            IssueKind::Required,
            None,
            "must have a schema if x-kubernetes-list-type is map",
        );
        return;
    };
    if items.is_array() {
        push(
            out,
            child(path, "items"),
            IssueKind::Invalid,
            Some(render(items)),
            "must only have a single schema if x-kubernetes-list-type is map",
        );
        return;
    }
    let items_path = child(path, "items");
    if ty(items) != "object" {
        push(
            out,
            child(&items_path, "type"),
            IssueKind::Invalid,
            Some(quote(ty(items))),
            "must be object if parent array's x-kubernetes-list-type is map",
        );
        return;
    }
    let list = string_list(keys);
    let mut seen: Vec<&str> = Vec::new();
    for k in keys.iter().filter_map(Value::as_str) {
        match properties(items).and_then(|p| p.get(k)) {
            Some(prop) if matches!(ty(prop), "array" | "object") => push(
                out,
                child(&key(&items_path, "properties", k), "type"),
                IssueKind::Invalid,
                Some(quote("object")),
                "must be a scalar type if parent array's x-kubernetes-list-type is map",
            ),
            Some(_) => {}
            None => push(
                out,
                child(path, "x-kubernetes-list-map-keys"),
                IssueKind::Invalid,
                Some(list.clone()),
                "entries must all be names of item properties",
            ),
        }
        if seen.contains(&k) {
            push(
                out,
                child(path, "x-kubernetes-list-map-keys"),
                IssueKind::Invalid,
                Some(list.clone()),
                "must not contain duplicate entries",
            );
        }
        seen.push(k);
    }
}

/// `anyOf: [{type: integer}, {type: string}]`, the one place a type may be
/// written inside a value validation: how int-or-string was spelled before
/// its extension.
fn is_int_or_string_any_of(any_of: Option<&Value>) -> bool {
    any_of.and_then(Value::as_array).is_some_and(|a| {
        a.len() == 2
            && a[0] == serde_json::json!({"type": "integer"})
            && a[1] == serde_json::json!({"type": "string"})
    })
}

/// The value validations at one position of the structure: each nested
/// schema must be free of structure of its own.
fn value_validations(schema: &Value, path: &str, out: &mut Vec<Issue>) {
    let skip_any_of = is_int_or_string_any_of(schema.get("anyOf"));
    let first_all_of_skips = schema
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|first| is_int_or_string_any_of(first.get("anyOf")));
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if keyword == "anyOf" && skip_any_of {
            continue;
        }
        if let Some(all) = schema.get(keyword).and_then(Value::as_array) {
            for (i, sub) in all.iter().enumerate() {
                let skip = keyword == "allOf" && i == 0 && first_all_of_skips;
                nested(sub, skip, &index(path, keyword, i), out);
            }
        }
    }
    if let Some(not) = schema.get("not") {
        nested(not, false, &child(path, "not"), out);
    }
}

/// A schema inside `allOf`, `anyOf`, `oneOf` or `not`: it may only
/// constrain values, never declare types, defaults, descriptions or the
/// extensions that shape the structure.
fn nested(schema: &Value, skip_any_of: bool, path: &str, out: &mut Vec<Issue>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    unsupported_keywords(schema, path, out);
    // The int-or-string spelling may sit in a nested allOf's first entry.
    if skip_any_of {
        let mut without = map.clone();
        without.remove("anyOf");
        value_validations(&Value::Object(without), path, out);
    } else {
        value_validations(schema, path, out);
    }
    if let Some(items) = map.get("items") {
        nested(items, false, &child(path, "items"), out);
    }
    if let Some(props) = properties(schema) {
        for (name, prop) in props {
            nested(prop, false, &key(path, "properties", name), out);
        }
        if props.contains_key("metadata") {
            push(
                out,
                key(path, "properties", "metadata"),
                IssueKind::Forbidden,
                None,
                "must not be specified in a nested context",
            );
        }
    }
    let forbidden = |out: &mut Vec<Issue>, keyword: &str, detail: &str| {
        push(
            out,
            child(path, keyword),
            IssueKind::Forbidden,
            None,
            detail,
        );
    };
    if map.get("type").is_some_and(|t| t.as_str() != Some("")) {
        forbidden(out, "type", "must be empty to be structural");
    }
    if map.contains_key("additionalProperties") {
        forbidden(
            out,
            "additionalProperties",
            "must be undefined to be structural",
        );
    }
    if map.contains_key("default") {
        forbidden(out, "default", "must be undefined to be structural");
    }
    if map
        .get("title")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        forbidden(out, "title", "must be empty to be structural");
    }
    if map
        .get("description")
        .and_then(Value::as_str)
        .is_some_and(|d| !d.is_empty())
    {
        forbidden(out, "description", "must be empty to be structural");
    }
    if flag(schema, "nullable") {
        forbidden(out, "nullable", "must be false to be structural");
    }
    for extension in [
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        if flag(schema, extension) {
            forbidden(out, extension, "must be false to be structural");
        }
    }
    if map
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .is_some_and(|k| !k.is_empty())
    {
        forbidden(
            out,
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        );
    }
    for extension in ["x-kubernetes-list-type", "x-kubernetes-map-type"] {
        if map.contains_key(extension) {
            forbidden(out, extension, "must be undefined to be structural");
        }
    }
    if map
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|v| !v.is_empty())
    {
        forbidden(
            out,
            "x-kubernetes-validations",
            "must be empty to be structural",
        );
    }
}

/// Every property a value validation mentions must be declared by the
/// structure at the same position.
fn completeness(
    structure: &Value,
    validation: &Value,
    s_path: &str,
    v_path: &str,
    out: &mut Vec<Issue>,
) {
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if let Some(all) = validation.get(keyword).and_then(Value::as_array) {
            for (i, sub) in all.iter().enumerate() {
                nested_completeness(structure, sub, s_path, &index(v_path, keyword, i), out);
            }
        }
    }
    if let Some(not) = validation.get("not") {
        nested_completeness(structure, not, s_path, &child(v_path, "not"), out);
    }
}

fn nested_completeness(
    structure: &Value,
    validation: &Value,
    s_path: &str,
    v_path: &str,
    out: &mut Vec<Issue>,
) {
    completeness(structure, validation, s_path, v_path, out);
    if let Some(items) = validation.get("items").filter(|i| i.is_object()) {
        let s_items = child(s_path, "items");
        let v_items = child(v_path, "items");
        match structure.get("items").filter(|i| i.is_object()) {
            Some(s) => nested_completeness(s, items, &s_items, &v_items, out),
            None => push(
                out,
                s_items,
                IssueKind::Required,
                None,
                &format!("because it is defined in {v_items}"),
            ),
        }
    }
    if let Some(props) = properties(validation) {
        for (name, v_prop) in props {
            let s_prop_path = key(s_path, "properties", name);
            let v_prop_path = key(v_path, "properties", name);
            match properties(structure).and_then(|p| p.get(name)) {
                Some(s_prop) => {
                    nested_completeness(s_prop, v_prop, &s_prop_path, &v_prop_path, out)
                }
                None => push(
                    out,
                    s_prop_path,
                    IssueKind::Required,
                    None,
                    &format!("because it is defined in {v_prop_path}"),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: Value, expected: &[&str]) {
        assert_eq!(check_structural(&schema), expected, "{schema}");
    }

    #[test]
    fn structural_schemas_pass() {
        check(
            json!({
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}},
                    "spec": {
                        "type": "object",
                        "properties": {
                            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                            "free": {"x-kubernetes-preserve-unknown-fields": true},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "x-kubernetes-map-type": "atomic"},
                            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                                      "items": {"type": "object", "required": ["port"], "properties": {"port": {"type": "integer"}}}},
                            "choice": {"type": "string", "oneOf": [{"enum": ["a"]}, {"pattern": "^b"}]},
                            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
                        },
                        "anyOf": [{"required": ["port"]}, {"required": ["free"]}]
                    }
                }
            }),
            &[],
        );
    }

    #[test]
    fn problems_read_like_kubernetes() {
        check(
            json!({
                "properties": {
                    "spec": {
                        "properties": {
                            "list": {"type": "array"},
                            "items": {"type": "array", "items": {}},
                            "bad": {"type": "string", "$ref": "#/x", "uniqueItems": true, "pattern": "("},
                            "both": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
                            "keyed": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
                            "strange": {"type": "string", "x-kubernetes-list-type": "set"}
                        },
                        "type": "object",
                        "allOf": [{"type": "object", "description": "no", "properties": {"ghost": {"default": 1}}}]
                    }
                },
                "additionalProperties": {"type": "string"}
            }),
            &[
                "additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
                "additionalProperties: Forbidden: must not be used at the root",
                "properties[spec].allOf[0].description: Forbidden: must be empty to be structural",
                "properties[spec].allOf[0].properties[ghost].default: Forbidden: must be undefined to be structural",
                "properties[spec].allOf[0].type: Forbidden: must be empty to be structural",
                "properties[spec].properties[bad].$ref: Forbidden: $ref is not supported",
                "properties[spec].properties[bad].pattern: Invalid value: \"(\": must be a valid regular expression, but isn't: regex parse error:\n    (\n    ^\nerror: unclosed group",
                "properties[spec].properties[bad].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                "properties[spec].properties[both].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
                "properties[spec].properties[ghost]: Required value: because it is defined in properties[spec].allOf[0].properties[ghost]",
                "properties[spec].properties[items].items.type: Required value: must not be empty for specified array items",
                "properties[spec].properties[keyed].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map",
                "properties[spec].properties[list].items: Required value: must be specified",
                "properties[spec].properties[strange].type: Invalid value: \"string\": must be array if x-kubernetes-list-type is specified",
                "type: Required value: must not be empty at the root",
            ],
        );
    }

    #[test]
    fn resource_metadata_and_embedded_resources() {
        check(
            json!({
                "type": "object",
                "properties": {
                    "kind": {"type": "integer"},
                    "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
                    "spec": {
                        "type": "object",
                        "properties": {
                            "inner": {"type": "object", "x-kubernetes-embedded-resource": true},
                            "odd": {"x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                            "ios": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true},
                            "keys": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a", "b", "a"],
                                     "items": {"type": "object", "properties": {"a": {"type": "object"}}}}
                        }
                    }
                }
            }),
            &[
                "properties[kind].type: Invalid value: \"integer\": must be string",
                "properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
                "properties[spec].properties[inner].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
                "properties[spec].properties[ios].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true",
                // Kubernetes checks each listed key, so a repeated key is
                // reported twice.
                "properties[spec].properties[keys].items.properties[a].type: Invalid value: \"object\": must be a scalar type if parent array's x-kubernetes-list-type is map",
                "properties[spec].properties[keys].items.properties[a].type: Invalid value: \"object\": must be a scalar type if parent array's x-kubernetes-list-type is map",
                "properties[spec].properties[keys].x-kubernetes-list-map-keys: Invalid value: []string{\"a\", \"b\", \"a\"}: entries must all be names of item properties",
                "properties[spec].properties[keys].x-kubernetes-list-map-keys: Invalid value: []string{\"a\", \"b\", \"a\"}: must not contain duplicate entries",
                "properties[spec].properties[odd].type: Required value: must be object if x-kubernetes-embedded-resource is true",
            ],
        );
        let issues = structural_issues(
            &json!({"type": "string"}),
            "spec.versions[0].schema.openAPIV3Schema",
        );
        assert_eq!(
            issues[0].to_string(),
            "spec.versions[0].schema.openAPIV3Schema.type: Invalid value: \"string\": must be object at the root"
        );
    }
}
