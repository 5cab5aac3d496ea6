//! Fields a schema does not declare: finding them (strict field validation)
//! and removing them (structural pruning of custom resources).
//!
//! Both read a schema the same way. An object's field is known when the
//! schema declares it as a property, or has `additionalProperties`; any
//! field is kept under `x-kubernetes-preserve-unknown-fields`. At the root
//! of a resource, and in an `x-kubernetes-embedded-resource`, `apiVersion`,
//! `kind` and `metadata` are always known, and `metadata` is read as
//! `ObjectMeta`. A named definition with neither properties nor
//! `additionalProperties` (`RawExtension`, `FieldsV1`, apiextensions'
//! `JSON`) holds any value, as Kubernetes' built-in types do; an inline
//! `type: object` without properties in a CRD schema holds none, as
//! structural pruning has it.
//!
//! Paths are written as Kubernetes writes them in `unknown field
//! "spec.containers[0].bar"`: fields joined with dots, list indices in
//! brackets.

use serde_json::{Map, Value};

use crate::{Node, Type};

/// The definition that describes `metadata` at resource roots.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// `ObjectMeta`'s fields, for a schema set that lacks its definition.
const OBJECT_META_FIELDS: [&str; 15] = [
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

/// What a schema says about one field of an object.
enum Field<'a> {
    /// Declared, with this schema.
    Known(Node<'a>),
    /// Kept as it is, whatever it holds.
    Free,
    /// The `metadata` of a resource.
    Metadata,
    /// Not declared: unknown.
    Unknown,
}

/// Whether `node` holds an object whose every field is kept: open
/// built-in definitions and `additionalProperties: true`.
fn is_free_form(node: Node<'_>) -> bool {
    let body = node.body();
    if body.is_null() {
        // The schema `additionalProperties: true` stands for.
        return true;
    }
    body.get("properties").is_none()
        && body.get("additionalProperties").is_none()
        && node.definition_name().is_some()
}

fn field<'a>(node: Node<'a>, key: &str, resource: bool) -> Field<'a> {
    if resource && matches!(key, "apiVersion" | "kind" | "metadata") {
        return if key == "metadata" {
            Field::Metadata
        } else {
            Field::Free
        };
    }
    if let Some(prop) = node.property(key) {
        Field::Known(prop)
    } else if let Some(values) = node.additional_properties() {
        Field::Known(values)
    } else if node.preserves_unknown_fields() || is_free_form(node) {
        Field::Free
    } else {
        Field::Unknown
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Paths of the fields of `value` that `node` does not declare, in the
/// order they appear: what strict field validation reports as `unknown
/// field "<path>"`. `node` is the schema of a whole object (its
/// `apiVersion`, `kind` and `metadata` are always known).
///
/// A value of the wrong type (an object where a string belongs) is left to
/// type checking and reports no unknown fields.
pub fn unknown_fields(node: Node<'_>, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    find_unknown(node, value, "", true, &mut out);
    out
}

fn find_unknown(node: Node<'_>, value: &Value, path: &str, resource: bool, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if !matches!(node.ty(), Type::Object | Type::Any) {
                return;
            }
            let resource = resource || node.is_embedded_resource();
            for (key, v) in map {
                let child = join(path, key);
                match field(node, key, resource) {
                    Field::Known(sub) => find_unknown(sub, v, &child, false, out),
                    Field::Free => {}
                    Field::Metadata => find_unknown_metadata(node, v, &child, out),
                    Field::Unknown => out.push(child),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.items() {
                for (i, v) in items.iter().enumerate() {
                    find_unknown(item, v, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

fn find_unknown_metadata(node: Node<'_>, value: &Value, path: &str, out: &mut Vec<String>) {
    match metadata_schema(node) {
        Some(meta) => find_unknown(meta, value, path, false, out),
        None => {
            if let Some(map) = value.as_object() {
                for key in map.keys() {
                    if !OBJECT_META_FIELDS.contains(&key.as_str()) {
                        out.push(join(path, key));
                    }
                }
            }
        }
    }
}

/// The schema `metadata` is read with: the resource's own `metadata`
/// property when it is a full `ObjectMeta` (built-in kinds), else the
/// set's `ObjectMeta` definition, if it has one.
fn metadata_schema(node: Node<'_>) -> Option<Node<'_>> {
    node.property("metadata")
        .filter(|m| m.definition_name() == Some(OBJECT_META))
        .or_else(|| node.set().get(OBJECT_META))
}

/// Removes from `value` every field `node` does not declare, as the
/// apiextensions API server prunes a custom resource, and answers the
/// removed fields' paths, sorted. `node` is the schema of the whole
/// resource (its `apiVersion`, `kind` and `metadata` are kept, and
/// `metadata` is pruned to `ObjectMeta`'s fields).
pub fn prune(node: Node<'_>, value: &mut Value) -> Vec<String> {
    let mut out = Vec::new();
    prune_at(Some(node), value, "", true, &mut out);
    out.sort();
    out
}

/// `node` is `None` below a field that has no schema at all: everything
/// in objects there goes.
fn prune_at(
    node: Option<Node<'_>>,
    value: &mut Value,
    path: &str,
    resource: bool,
    out: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let Some(node) = node else {
                out.extend(map.keys().map(|k| join(path, k)));
                map.clear();
                return;
            };
            let resource = resource || node.is_embedded_resource();
            prune_object(node, map, path, resource, out);
        }
        Value::Array(items) => {
            // Under a free list (no `items`) nothing is pruned.
            let Some(item) = node.map(|n| n.items()) else {
                for (i, v) in items.iter_mut().enumerate() {
                    prune_at(None, v, &format!("{path}[{i}]"), false, out);
                }
                return;
            };
            if let Some(item) = item {
                for (i, v) in items.iter_mut().enumerate() {
                    prune_at(Some(item), v, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(
    node: Node<'_>,
    map: &mut Map<String, Value>,
    path: &str,
    resource: bool,
    out: &mut Vec<String>,
) {
    map.retain(|key, v| {
        let child = join(path, key);
        match field(node, key, resource) {
            Field::Known(sub) => {
                prune_at(Some(sub), v, &child, false, out);
                true
            }
            Field::Free => true,
            Field::Metadata => {
                prune_metadata(node, v, &child, out);
                true
            }
            Field::Unknown => {
                out.push(child);
                false
            }
        }
    });
}

fn prune_metadata(node: Node<'_>, value: &mut Value, path: &str, out: &mut Vec<String>) {
    match metadata_schema(node) {
        Some(meta) => prune_at(Some(meta), value, path, false, out),
        None => {
            if let Some(map) = value.as_object_mut() {
                map.retain(|key, _| {
                    let known = OBJECT_META_FIELDS.contains(&key.as_str());
                    if !known {
                        out.push(join(path, key));
                    }
                    known
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SchemaSet;
    use serde_json::json;

    /// A pod-like set of definitions, with Kubernetes' open types.
    fn builtin() -> SchemaSet {
        SchemaSet::from_components(&json!({"schemas": {
            "Pod": {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]},
                    "spec": {"$ref": "#/components/schemas/PodSpec"},
                    "data": {"allOf": [{"$ref": "#/components/schemas/RawExtension"}], "description": "anything"}
                }
            },
            "PodSpec": {
                "type": "object",
                "properties": {
                    "containers": {"type": "array", "items": {"$ref": "#/components/schemas/Container"}},
                    "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
                    "port": {"x-kubernetes-int-or-string": true}
                }
            },
            "Container": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "image": {"type": "string"}}
            },
            "RawExtension": {"type": "object"},
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }
        }}))
    }

    #[test]
    fn unknown_fields_of_builtin_kinds() {
        let set = builtin();
        let pod = set.get("Pod").unwrap();
        let table: &[(Value, &[&str])] = &[
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "labels": {"x": "y"}},
                       "spec": {"containers": [{"name": "c", "image": "i"}], "nodeSelector": {"any": "key"}}}),
                &[],
            ),
            (
                json!({"metadata": {"name": "a", "bogus": 1}, "spec": {"containers": [{"name": "c", "bar": 1}, {"baz": 2}]}, "foo": 1}),
                &[
                    "metadata.bogus",
                    "spec.containers[0].bar",
                    "spec.containers[1].baz",
                    "foo",
                ],
            ),
            // RawExtension holds anything.
            (json!({"data": {"whatever": {"deep": [1]}}}), &[]),
            // Wrong types are type checking's business.
            (json!({"spec": {"containers": "x", "port": {"a": 1}}}), &[]),
        ];
        for (value, expected) in table {
            assert_eq!(unknown_fields(pod, value), *expected, "{value}");
        }
    }

    fn widget() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "size": {"type": "integer"},
                        "empty": {"type": "object"},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                 "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                        "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
                        "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                     "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}}
                    }
                }
            }
        })
    }

    #[test]
    fn pruning_custom_resources() {
        let set = SchemaSet::new();
        let schema = widget();
        let node = set.node(&schema);
        let mut value = json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "labels": {"a": "b"}, "junk": true},
            "spec": {
                "size": 1,
                "extra": 2,
                "empty": {"gone": 1},
                "free": {"kept": {"deep": 1}, "known": {"a": "x", "b": "pruned"}},
                "map": {"k": {"v": "1", "w": "2"}},
                "items": [{"name": "a", "zzz": 1}],
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1},
                             "spec": {"x": "y", "z": 1}, "other": 1}
            },
            "status": {"phase": "x"}
        });
        let removed = prune(node, &mut value);
        assert_eq!(
            removed,
            [
                "metadata.junk",
                "spec.empty.gone",
                "spec.extra",
                "spec.free.known.b",
                "spec.items[0].zzz",
                "spec.map.k.w",
                "spec.template.metadata.junk",
                "spec.template.other",
                "spec.template.spec.z",
                "status",
            ]
        );
        assert_eq!(
            value,
            json!({
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "w", "labels": {"a": "b"}},
                "spec": {
                    "size": 1,
                    "empty": {},
                    "free": {"kept": {"deep": 1}, "known": {"a": "x"}},
                    "map": {"k": {"v": "1"}},
                    "items": [{"name": "a"}],
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": "y"}}
                }
            })
        );
        // What pruning removes is what strict validation reports.
        let mut again = value.clone();
        assert!(prune(node, &mut again).is_empty());
    }

    #[test]
    fn metadata_uses_the_sets_object_meta() {
        let set = builtin();
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
        let node = set.node(&schema);
        let value =
            json!({"metadata": {"name": "a", "labels": {"x": "y"}, "nope": 1}, "spec": {"x": 1}});
        assert_eq!(unknown_fields(node, &value), ["metadata.nope", "spec.x"]);
    }
}
