//! Helpers shared by the unit tests: the schemas of a few built-in kinds, as
//! Kubernetes' OpenAPI v3 document has them, and a JSON equality that
//! compares numbers by value.

use schema::{Node, SchemaSet};
use serde_json::Value;

/// The test schemas (`testdata/schemas.json`).
pub(crate) fn schemas() -> SchemaSet {
    let raw: Value = serde_json::from_str(include_str!("../testdata/schemas.json"))
        .expect("testdata/schemas.json is valid JSON");
    SchemaSet::from_components(&raw)
}

/// The node of definition `name`, which must exist.
pub(crate) fn node<'a>(set: &'a SchemaSet, name: &str) -> Node<'a> {
    set.get(name)
        .unwrap_or_else(|| panic!("no test schema named {name}"))
}

/// Equality where `80` and `80.0` are the same number (kubectl prints every
/// number without a fraction), and maps compare without order.
pub(crate) fn same(a: &Value, b: &Value) -> bool {
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
