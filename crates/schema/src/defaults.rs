//! Structural defaulting of custom resources, as the apiextensions API
//! server applies a CRD schema's `default`s.
//!
//! A property that is missing, or `null` where the schema does not allow
//! null, gets a copy of its schema's `default`; the same holds for the
//! values of a map and the items of a list. Defaulting then continues into
//! the value, so defaults nested inside a defaulted object apply too.
//! Afterwards a `null` that is neither allowed nor defaulted is dropped, as
//! Kubernetes drops it, rather than failing validation.

use serde_json::Value;

use crate::Node;

/// Fills in `value`'s defaults from `node`, then drops the nulls the schema
/// neither allows nor defaults.
pub fn apply_defaults(node: Node<'_>, value: &mut Value) {
    default(node, value);
    drop_nulls(Some(node), value);
}

fn default_of<'a>(node: Node<'a>) -> Option<&'a Value> {
    // A default is written at the property (`raw`), never on a referenced
    // type in CRD schemas; `keyword` reads both.
    node.keyword("default")
}

fn nullable(node: Node<'_>) -> bool {
    node.keyword("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Whether `value` is a null the schema does not allow.
fn is_unwanted_null(value: &Value, node: Node<'_>) -> bool {
    value.is_null() && !nullable(node)
}

fn default(node: Node<'_>, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, prop) in node.properties() {
                let Some(d) = default_of(prop) else {
                    continue;
                };
                match map.get_mut(key) {
                    None => {
                        map.insert(key.to_owned(), d.clone());
                    }
                    Some(v) if is_unwanted_null(v, prop) => *v = d.clone(),
                    Some(_) => {}
                }
            }
            let values = node.additional_properties();
            for (key, v) in map.iter_mut() {
                if let Some(prop) = node.property(key) {
                    default(prop, v);
                } else if let Some(values) = values {
                    if is_unwanted_null(v, values)
                        && let Some(d) = default_of(values)
                    {
                        *v = d.clone();
                    }
                    default(values, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.items() {
                for v in items.iter_mut() {
                    if is_unwanted_null(v, item)
                        && let Some(d) = default_of(item)
                    {
                        *v = d.clone();
                    }
                    default(item, v);
                }
            }
        }
        _ => {}
    }
}

/// The schema of an object's field, if it has one.
fn field_schema<'a>(node: Option<Node<'a>>, key: &str) -> Option<Node<'a>> {
    let node = node?;
    node.property(key).or_else(|| node.additional_properties())
}

fn drop_nulls(node: Option<Node<'_>>, value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                let schema = field_schema(node, key);
                let unwanted =
                    schema.is_some_and(|s| v.is_null() && !nullable(s) && default_of(s).is_none());
                if !unwanted {
                    drop_nulls(schema, v);
                }
                !unwanted
            });
        }
        Value::Array(items) => {
            let item = node.and_then(|n| n.items());
            for v in items.iter_mut() {
                drop_nulls(item, v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SchemaSet;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "replicas": {"type": "integer", "default": 1},
                        "mode": {"type": "string", "default": "fast"},
                        "note": {"type": "string", "nullable": true, "default": "n"},
                        "plain": {"type": "string"},
                        "limits": {"type": "object", "default": {"cpu": "1"},
                                   "properties": {"cpu": {"type": "string"}, "memory": {"type": "string", "default": "1Gi"}}},
                        "ports": {"type": "array", "items": {"type": "object",
                                  "properties": {"port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}}},
                        "env": {"type": "object", "additionalProperties": {"type": "string", "default": "unset"}}
                    }
                }
            }
        })
    }

    #[test]
    fn defaults_apply_recursively() {
        let set = SchemaSet::new();
        let schema = schema();
        let node = set.node(&schema);
        let table: &[(Value, Value)] = &[
            // A missing spec is defaulted to {}, and then its fields.
            (
                json!({}),
                json!({"spec": {"replicas": 1, "mode": "fast", "note": "n", "limits": {"cpu": "1", "memory": "1Gi"}}}),
            ),
            // Present values stay; a null that is not allowed is replaced;
            // an allowed null stays.
            (
                json!({"spec": {"replicas": 3, "mode": null, "note": null, "limits": {"cpu": "2"}}}),
                json!({"spec": {"replicas": 3, "mode": "fast", "note": null, "limits": {"cpu": "2", "memory": "1Gi"}}}),
            ),
            // List items and map values get theirs; a null with no default
            // is dropped.
            (
                json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}], "env": {"A": null, "B": "b"}, "plain": null}}),
                json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "env": {"A": "unset", "B": "b"},
                        "replicas": 1, "mode": "fast", "note": "n", "limits": {"cpu": "1", "memory": "1Gi"}}}),
            ),
        ];
        for (input, expected) in table {
            let mut value = input.clone();
            apply_defaults(node, &mut value);
            assert_eq!(&value, expected, "from {input}");
        }
    }
}
