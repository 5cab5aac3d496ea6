//! Patches as Kubernetes applies them.
//!
//! Four ways to change an object, all pure functions over
//! [`serde_json::Value`]:
//!
//! - [`json_patch`]: RFC 6902 operations (`application/json-patch+json`),
//!   through the `json-patch` crate.
//! - [`merge_patch`]: RFC 7386 merge (`application/merge-patch+json`).
//! - [`strategic_merge_patch`]: Kubernetes' strategic merge patch
//!   (`application/strategic-merge-patch+json`), which merges lists by key
//!   where the schema says so and understands the `$patch`, `$retainKeys`,
//!   `$deleteFromPrimitiveList` and `$setElementOrder` directives that
//!   `kubectl apply`, `edit`, `label` and friends send.
//! - [`apply`]: server-side apply (`application/apply-patch+yaml`) and the
//!   field ownership (`metadata.managedFields`) that every write maintains.
//!
//! Nothing here does I/O or reads a clock: the caller passes the schema node
//! of the kind and the timestamp to record.

pub mod apply;
mod fmt;
mod strategic;
#[cfg(test)]
mod testing;

use serde_json::Value;

pub use strategic::strategic_merge_patch;

/// Why a patch could not be applied.
///
/// Messages follow Kubernetes' wording where clients are known to show them,
/// lowercased where Kubernetes capitalises.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// A JSON patch that is not an array of well-formed operations.
    #[error("malformed json patch: {0}")]
    Malformed(String),
    /// A well-formed JSON patch whose operation could not be carried out
    /// (a `test` that failed, a path that does not exist).
    #[error("json patch failed: {0}")]
    Failed(String),
    /// The document or the patch is not a JSON object where one is needed.
    #[error("invalid json document: {0}")]
    NotAnObject(&'static str),
    /// A list element that must carry the list's merge key does not.
    #[error("map: {map} does not contain declared merge key: {key}")]
    MissingMergeKey {
        /// The element, printed the way Go prints a map.
        map: String,
        /// The merge key.
        key: String,
    },
    /// A `$patch` directive with a value other than `replace` or `delete`
    /// on a map (`merge` included: Kubernetes rejects it too).
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownDirective {
        /// The directive's value.
        directive: String,
        /// The map holding it, printed the way Go prints a map.
        map: String,
    },
    /// `$patch: merge` as a list element, which Kubernetes does not support.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// `$retainKeys` that is not a list, or a patch setting a field the
    /// list leaves out.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// A `$deleteFromPrimitiveList` key without `/<field>`.
    #[error("invalid patch format of primitive list")]
    BadDeleteFromPrimitiveList,
    /// A `$setElementOrder` key without `/<field>`, or whose value is not a
    /// list.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// A patch list whose order contradicts its `$setElementOrder` list.
    #[error("the order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}")]
    OrderMismatch {
        /// The patch list, printed the way Go prints it.
        patch: String,
        /// The order list, printed the way Go prints it.
        order: String,
    },
    /// A list whose elements are lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A list mixing maps, scalars or nulls.
    #[error("list element types are not identical: {0}")]
    MixedElementTypes(String),
    /// A list of maps with merge strategy but no merge key in the schema.
    #[error("cannot merge lists without merge key for {0}")]
    NoMergeKey(String),
    /// An `x-kubernetes-patch-strategy` this code does not understand.
    #[error("unexpected patch strategy: {0}")]
    BadStrategy(String),
    /// A value of the wrong JSON type where the patch grammar needs a
    /// particular one (for example a merge-key list element that is not a
    /// map).
    #[error("expected {expected}, but received {actual}")]
    WrongType {
        /// What the patch grammar needs there.
        expected: &'static str,
        /// What was found.
        actual: &'static str,
    },
    /// A `fieldsV1` value that is not a well-formed field set.
    #[error("invalid fieldsV1: {0}")]
    BadFieldsV1(String),
}

/// Applies an RFC 6902 JSON patch to `doc`.
///
/// A patch that is not an array of well-formed operations is
/// [`PatchError::Malformed`]; an operation that cannot be carried out (a
/// failed `test`, a missing path) is [`PatchError::Failed`]. The operations
/// apply all or nothing.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_array() {
        return Err(PatchError::Malformed(
            "a json patch must be an array of operations".into(),
        ));
    }
    let operations: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|err| PatchError::Malformed(err.to_string()))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &operations).map_err(|err| PatchError::Failed(err.to_string()))?;
    Ok(out)
}

/// Applies an RFC 7386 JSON merge patch to `doc`: maps merge key by key,
/// `null` deletes, anything else (lists included) replaces.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_applies_operations_in_order() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"list": [1, 2]}});
        let patch = json!([
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "replace", "path": "/spec/list/0", "value": 0},
            {"op": "test", "path": "/spec/list/1", "value": 2},
            {"op": "copy", "from": "/spec/list", "path": "/spec/copy"},
            {"op": "move", "from": "/metadata/labels/b", "path": "/metadata/labels/c"}
        ]);
        assert_eq!(
            json_patch(&doc, &patch).unwrap(),
            json!({"metadata": {"labels": {"c": "2"}}, "spec": {"list": [0, 2, 3], "copy": [0, 2, 3]}})
        );
    }

    #[test]
    fn json_patch_tells_malformed_from_failed() {
        let doc = json!({"a": 1});
        for malformed in [
            json!({"op": "add", "path": "/b", "value": 1}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "value": 1}]),
            json!([{"op": "add", "path": "/b"}]),
            json!(["add"]),
        ] {
            assert!(
                matches!(json_patch(&doc, &malformed), Err(PatchError::Malformed(_))),
                "{malformed}"
            );
        }
        for failed in [
            json!([{"op": "test", "path": "/a", "value": 2}]),
            json!([{"op": "remove", "path": "/missing"}]),
            json!([{"op": "replace", "path": "/missing", "value": 1}]),
            json!([{"op": "add", "path": "/missing/child", "value": 1}]),
        ] {
            assert!(
                matches!(json_patch(&doc, &failed), Err(PatchError::Failed(_))),
                "{failed}"
            );
        }
    }

    #[test]
    fn json_patch_is_all_or_nothing() {
        let doc = json!({"a": 1});
        let patch = json!([
            {"op": "add", "path": "/b", "value": 2},
            {"op": "test", "path": "/a", "value": 5}
        ]);
        assert!(json_patch(&doc, &patch).is_err());
        assert_eq!(doc, json!({"a": 1}));
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The examples of RFC 7386's appendix, one per row.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (doc, patch, want) in cases {
            assert_eq!(merge_patch(&doc, &patch), want, "{doc} + {patch}");
        }
    }
}
