//! Reading and filling in fields of objects held as JSON.
//!
//! Strategies work on the JSON a client sent rather than on k8s-openapi's
//! typed structs, because the typed form cannot tell a missing field from
//! an empty one (a Deployment without `spec.selector` decodes to an empty
//! selector), and Kubernetes answers the two differently. JSON `null` counts
//! as absent everywhere, as a nil pointer does in Go.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The value at a JSON pointer (`/spec/replicas`), `None` when absent or null.
pub(crate) fn get<'a>(obj: &'a Value, pointer: &str) -> Option<&'a Value> {
    obj.pointer(pointer).filter(|v| !v.is_null())
}

/// The integer at a JSON pointer.
pub(crate) fn get_i64(obj: &Value, pointer: &str) -> Option<i64> {
    get(obj, pointer).and_then(Value::as_i64)
}

/// The integer at a JSON pointer, or 0 as Go's zero value.
pub(crate) fn int_or_zero(obj: &Value, pointer: &str) -> i64 {
    get_i64(obj, pointer).unwrap_or(0)
}

/// The string at a JSON pointer.
pub(crate) fn get_str<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    get(obj, pointer).and_then(Value::as_str)
}

/// The string at a JSON pointer, or "" as Go's zero value.
pub(crate) fn str_or_empty<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    get_str(obj, pointer).unwrap_or("")
}

/// The boolean at a JSON pointer.
pub(crate) fn get_bool(obj: &Value, pointer: &str) -> Option<bool> {
    get(obj, pointer).and_then(Value::as_bool)
}

/// The elements of the array at a JSON pointer (none when absent).
pub(crate) fn items<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    get(obj, pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The object at a JSON pointer.
pub(crate) fn get_map<'a>(obj: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    get(obj, pointer).and_then(Value::as_object)
}

/// A JSON object of strings (labels, annotations, a node selector) as the
/// map Go decodes it into; a value that is not a string counts as "" (the
/// type check reports it).
pub(crate) fn string_map(map: &Map<String, Value>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// The child `key` of an object, created as `{}` when absent or null.
/// `None` when `value` is not an object (the type check reports that).
pub(crate) fn child<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let map = value.as_object_mut()?;
    let entry = map.entry(key.to_owned()).or_insert(Value::Null);
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry.is_object().then_some(entry)
}

/// The child `key` of an object when present (and not null).
pub(crate) fn child_if<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    value.as_object_mut()?.get_mut(key).filter(|v| !v.is_null())
}

/// Whether `key` of an object is absent or null.
pub(crate) fn is_unset(value: &Value, key: &str) -> bool {
    value.get(key).is_none_or(Value::is_null)
}

/// Sets `key` to `default` when absent or null.
pub(crate) fn default_value(value: &mut Value, key: &str, default: Value) {
    if is_unset(value, key)
        && let Some(map) = value.as_object_mut()
    {
        map.insert(key.to_owned(), default);
    }
}

/// Sets the string `key` to `default` when absent, null or empty (Go's
/// defaulters test enum strings against "").
pub(crate) fn default_str(value: &mut Value, key: &str, default: &str) {
    let empty = value.get(key).is_none_or(|v| v.is_null() || v == "");
    if empty && let Some(map) = value.as_object_mut() {
        map.insert(key.to_owned(), Value::String(default.to_owned()));
    }
}

/// The elements of the array `key`, for changing each in place.
pub(crate) fn each_mut<'a>(value: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    value
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Removes `key` from an object.
pub(crate) fn remove(value: &mut Value, key: &str) -> Option<Value> {
    value.as_object_mut()?.remove(key)
}

/// Sets `key` of an object.
pub(crate) fn set(value: &mut Value, key: &str, new: Value) {
    if let Some(map) = value.as_object_mut() {
        map.insert(key.to_owned(), new);
    }
}

/// The value at a JSON pointer for changing in place.
pub(crate) fn get_mut<'a>(obj: &'a mut Value, pointer: &str) -> Option<&'a mut Value> {
    obj.pointer_mut(pointer).filter(|v| !v.is_null())
}

/// A metadata annotation.
pub(crate) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Sets a metadata annotation, creating the maps it lives in.
pub(crate) fn set_annotation(obj: &mut Value, key: &str, value: &str) {
    if let Some(annotations) = child(obj, "metadata").and_then(|m| child(m, "annotations")) {
        set(annotations, key, Value::String(value.to_owned()));
    }
}

/// Removes a metadata annotation, and the annotations map when it empties.
pub(crate) fn remove_annotation(obj: &mut Value, key: &str) -> Option<String> {
    let metadata = child_if(obj, "metadata")?;
    let annotations = child_if(metadata, "annotations")?;
    let removed = remove(annotations, key)?;
    if annotations.as_object().is_some_and(Map::is_empty) {
        remove(metadata, "annotations");
    }
    removed.as_str().map(str::to_owned)
}

/// Whether an object's value at `pointer` differs between two versions,
/// treating absent and null alike (Kubernetes' semantic equality).
pub(crate) fn changed(new: &Value, old: &Value, pointer: &str) -> bool {
    !same(get(new, pointer), get(old, pointer))
}

/// Whether two values are equal when null fields count as absent, at any
/// depth.
pub(crate) fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let a = a.filter(|v| !v.is_null());
    let b = b.filter(|v| !v.is_null());
    match (a, b) {
        (None, None) => true,
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            x.keys().chain(y.keys()).all(|k| same(x.get(k), y.get(k)))
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(Some(p), Some(q)))
        }
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let mut spec = json!({"replicas": null, "paused": false, "policy": ""});
        default_value(&mut spec, "replicas", json!(1));
        default_value(&mut spec, "paused", json!(true));
        default_str(&mut spec, "policy", "Always");
        default_str(&mut spec, "other", "x");
        assert_eq!(
            spec,
            json!({"replicas": 1, "paused": false, "policy": "Always", "other": "x"})
        );
        let mut obj = json!({"spec": null});
        assert!(child(&mut obj, "spec").is_some());
        assert_eq!(obj, json!({"spec": {}}));
        assert!(child(&mut json!({"spec": 3}), "spec").is_none());
    }

    #[test]
    fn annotations_come_and_go() {
        let mut obj = json!({"metadata": {"name": "a"}});
        set_annotation(&mut obj, "k", "v");
        assert_eq!(annotation(&obj, "k"), Some("v"));
        assert_eq!(remove_annotation(&mut obj, "k").as_deref(), Some("v"));
        assert_eq!(obj, json!({"metadata": {"name": "a"}}));
        assert!(changed(&json!({"a": 1}), &json!({"a": 2}), "/a"));
        assert!(!changed(&json!({"a": null}), &json!({}), "/a"));
    }
}
