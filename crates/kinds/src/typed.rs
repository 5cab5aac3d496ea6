//! Moving between JSON and k8s-openapi's typed structs, and the pieces of
//! strategies that are the same for most kinds.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{FieldError, FieldErrorKind};

/// Decodes `obj` into `T`, naming the field when a value has the wrong type
/// (`spec.replicas: invalid type: string "3", expected i32`).
pub fn decode<T: DeserializeOwned>(obj: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(obj).map_err(|e| {
        let path = e.path().to_string();
        FieldError {
            kind: FieldErrorKind::TypeInvalid,
            field: if path == "." { String::new() } else { path },
            value: None,
            detail: e.into_inner().to_string(),
        }
    })
}

/// Encodes a typed object back into JSON.
pub fn encode<T: Serialize>(typed: &T) -> Value {
    serde_json::to_value(typed).expect("k8s-openapi types always serialize")
}

/// Decodes, lets `f` change the typed object, and writes the result back.
/// Objects that do not decode are left alone: `check_types` reports them.
pub fn modify<T: DeserializeOwned + Serialize>(obj: &mut Value, f: impl FnOnce(&mut T)) {
    if let Ok(mut typed) = decode::<T>(obj) {
        f(&mut typed);
        let mut out = encode(&typed);
        // The typed form knows nothing of apiVersion/kind for nested
        // objects, but top-level objects keep theirs.
        for key in ["apiVersion", "kind"] {
            if let (Some(v), Some(map)) = (obj.get(key).cloned(), out.as_object_mut()) {
                map.insert(key.to_owned(), v);
            }
        }
        *obj = out;
    }
}

/// Drops `status` from an object being created through the main resource
/// of a kind with a status subresource.
pub fn clear_status(obj: &mut Value) {
    if let Some(map) = obj.as_object_mut() {
        map.remove("status");
    }
}

/// Keeps `old`'s status on an update through the main resource.
pub fn keep_status(new: &mut Value, old: &Value) {
    if let Some(map) = new.as_object_mut() {
        match old.get("status") {
            Some(status) => {
                map.insert("status".into(), status.clone());
            }
            None => {
                map.remove("status");
            }
        }
    }
}

/// On a write through `/status`, keeps everything of `old` but the status
/// (and the metadata the engine manages itself).
pub fn keep_all_but_status(new: &mut Value, old: &Value) {
    let status = new.get("status").cloned();
    let metadata = new.get("metadata").cloned();
    let mut merged = old.clone();
    if let Some(map) = merged.as_object_mut() {
        match status {
            Some(s) => {
                map.insert("status".into(), s);
            }
            None => {
                map.remove("status");
            }
        }
        // Labels, annotations and the like may change through /status too,
        // as in Kubernetes; the engine restores what no write may change.
        if let Some(m) = metadata {
            map.insert("metadata".into(), m);
        }
    }
    *new = merged;
}

/// The string at a dotted path (`spec.nodeName`), if present.
pub fn str_at<'a>(obj: &'a Value, path: &str) -> Option<&'a str> {
    at(obj, path).and_then(Value::as_str)
}

/// The value at a dotted path, if present.
pub fn at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    #[test]
    fn wrong_types_name_their_field() {
        let err = decode::<Deployment>(&json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": "three", "selector": {}, "template": {}}
        }))
        .unwrap_err();
        assert_eq!(err.kind, FieldErrorKind::TypeInvalid);
        assert_eq!(err.field, "spec.replicas");
        assert!(
            err.detail.contains("invalid type: string \"three\""),
            "{}",
            err.detail
        );
    }

    #[test]
    fn status_helpers_keep_the_right_half() {
        let old = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"y": 1}});
        let mut update = json!({"metadata": {"name": "a"}, "spec": {"x": 2}, "status": {"y": 9}});
        keep_status(&mut update, &old);
        assert_eq!(update["status"]["y"], 1);
        assert_eq!(update["spec"]["x"], 2);
        let mut status_write =
            json!({"metadata": {"name": "a"}, "spec": {"x": 7}, "status": {"y": 2}});
        keep_all_but_status(&mut status_write, &old);
        assert_eq!(status_write["spec"]["x"], 1);
        assert_eq!(status_write["status"]["y"], 2);
        assert_eq!(str_at(&old, "metadata.name"), Some("a"));
    }
}
