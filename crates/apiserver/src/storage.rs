//! How objects sit in the store.
//!
//! Keys: `/registry/<group>/<resource>/<namespace>/<name>` (`core` for the
//! core group; no namespace part for cluster-scoped resources).
//!
//! Values: the object's JSON in its storage version, with `apiVersion`,
//! `kind` and `metadata` first and `metadata.resourceVersion` left out. The
//! resource version is the key's modification revision; it is put back when
//! an object is read. Because the first `"metadata":{` of a stored value is
//! always the object's own, a list can be answered by splicing the version
//! into the stored bytes, without parsing thousands of objects.

use bytes::Bytes;
use kinds::Storage;
use serde_json::{Map, Value};
use store::Revision;

/// The key prefix of every object of a storage resource.
pub fn resource_prefix(storage: &Storage) -> String {
    let group = if storage.group.is_empty() {
        "core"
    } else {
        &storage.group
    };
    format!("/registry/{group}/{}/", storage.resource)
}

/// The key prefix of a storage resource's objects in one namespace (or all
/// of them when `namespace` is `None`).
pub fn prefix(storage: &Storage, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{}{ns}/", resource_prefix(storage)),
        None => resource_prefix(storage),
    }
}

/// The key of one object.
pub fn key(storage: &Storage, namespace: Option<&str>, name: &str) -> String {
    format!("{}{name}", prefix(storage, namespace))
}

/// The stored bytes of an object: leading fields first, no resourceVersion.
pub fn encode(obj: &Value) -> Vec<u8> {
    let Some(map) = obj.as_object() else {
        return obj.to_string().into_bytes();
    };
    let mut ordered = Map::with_capacity(map.len());
    for k in ["apiVersion", "kind", "metadata"] {
        if let Some(v) = map.get(k) {
            ordered.insert(k.to_owned(), v.clone());
        }
    }
    if let Some(Value::Object(meta)) = ordered.get_mut("metadata") {
        meta.remove("resourceVersion");
        meta.remove("selfLink");
    } else {
        ordered.insert("metadata".into(), Value::Object(Map::new()));
    }
    for (k, v) in map {
        if !ordered.contains_key(k) {
            ordered.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&Value::Object(ordered)).expect("JSON values always serialize")
}

/// Stored bytes with `"resourceVersion":"<rev>"` put back into metadata.
pub fn splice_revision(stored: &[u8], rev: Revision) -> Vec<u8> {
    const MARK: &[u8] = b"\"metadata\":{";
    let Some(at) = find(stored, MARK).map(|i| i + MARK.len()) else {
        return stored.to_vec();
    };
    let field = format!("\"resourceVersion\":\"{rev}\"");
    let mut out = Vec::with_capacity(stored.len() + field.len() + 1);
    out.extend_from_slice(&stored[..at]);
    out.extend_from_slice(field.as_bytes());
    if stored.get(at) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(&stored[at..]);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a stored object and sets its resource version.
pub fn decode(stored: &[u8], rev: Revision) -> Result<Value, serde_json::Error> {
    let mut obj: Value = serde_json::from_slice(stored)?;
    set_revision(&mut obj, rev);
    Ok(obj)
}

/// Sets `metadata.resourceVersion`.
pub fn set_revision(obj: &mut Value, rev: Revision) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
}

/// A `<Kind>List` body built from stored values without parsing them; an
/// item with a revision gets it spliced in, one without is used as is.
pub fn list_bytes(
    api_version: &str,
    list_kind: &str,
    revision: Revision,
    continue_token: Option<&str>,
    remaining: Option<i64>,
    items: impl IntoIterator<Item = (Bytes, Option<Revision>)>,
) -> Vec<u8> {
    let mut meta = format!("\"resourceVersion\":\"{revision}\"");
    if let Some(token) = continue_token {
        meta.push_str(&format!(
            ",\"continue\":{}",
            Value::String(token.to_owned())
        ));
    }
    if let Some(n) = remaining {
        meta.push_str(&format!(",\"remainingItemCount\":{n}"));
    }
    let mut out = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{{{meta}}},\"items\":[",
        Value::String(list_kind.to_owned()),
        Value::String(api_version.to_owned()),
    )
    .into_bytes();
    for (i, (value, rev)) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match rev {
            Some(rev) => out.extend_from_slice(&splice_revision(&value, rev)),
            None => out.extend_from_slice(&value),
        }
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn storage(group: &str, resource: &str) -> Storage {
        Storage {
            group: group.into(),
            resource: resource.into(),
            version: "v1".into(),
        }
    }

    #[test]
    fn keys_follow_the_layout() {
        let pods = storage("", "pods");
        assert_eq!(
            key(&pods, Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        assert_eq!(
            prefix(&pods, Some("default")),
            "/registry/core/pods/default/"
        );
        assert_eq!(prefix(&pods, None), "/registry/core/pods/");
        let nodes = storage("", "nodes");
        assert_eq!(key(&nodes, None, "n1"), "/registry/core/nodes/n1");
        let deploy = storage("apps", "deployments");
        assert_eq!(
            key(&deploy, Some("x"), "d"),
            "/registry/apps/deployments/x/d"
        );
    }

    #[test]
    fn stored_objects_get_their_revision_back() {
        // A template's metadata comes first in the client's body, but the
        // object's own metadata must be the one spliced.
        let obj = json!({
            "spec": {"template": {"metadata": {"labels": {"a": "b"}}}},
            "metadata": {"name": "web", "resourceVersion": "999"},
            "kind": "Deployment",
            "apiVersion": "apps/v1",
        });
        let stored = encode(&obj);
        let text = String::from_utf8(stored.clone()).unwrap();
        assert!(text.starts_with("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"}"), "{text}");
        let back: Value = serde_json::from_slice(&splice_revision(&stored, 42)).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "42");
        assert_eq!(back["metadata"]["name"], "web");
        assert!(
            back["spec"]["template"]["metadata"]
                .get("resourceVersion")
                .is_none()
        );
        assert_eq!(decode(&stored, 42).unwrap(), back);
        let empty = encode(&json!({"kind": "X"}));
        let back: Value = serde_json::from_slice(&splice_revision(&empty, 7)).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn lists_are_assembled_from_bytes() {
        let a = Bytes::from(encode(
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}),
        ));
        let b = Bytes::from(encode(
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}),
        ));
        let body = list_bytes(
            "v1",
            "PodList",
            10,
            Some("tok"),
            Some(3),
            [(a, Some(5)), (b, Some(9))],
        );
        let list: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(list["metadata"]["resourceVersion"], "10");
        assert_eq!(list["metadata"]["continue"], "tok");
        assert_eq!(list["metadata"]["remainingItemCount"], 3);
        assert_eq!(list["items"][1]["metadata"]["resourceVersion"], "9");
        let none = list_bytes("v1", "PodList", 1, None, None, Vec::new());
        let list: Value = serde_json::from_slice(&none).unwrap();
        assert_eq!(list["items"], json!([]));
    }
}
