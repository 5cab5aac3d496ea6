//! The shape of Kubernetes objects.
//!
//! Kubernetes describes every kind with an OpenAPI v3 schema plus a few
//! extensions of its own (`x-kubernetes-list-type`, `x-kubernetes-patch-
//! merge-key`, ...). Built-in kinds get theirs from their Go types (here:
//! from k8s-openapi's generated schemas, see the `kinds` crate); custom
//! resources bring theirs in the CustomResourceDefinition. This crate reads
//! both the same way.
//!
//! A [`SchemaSet`] holds named definitions (`io.k8s.api.core.v1.Pod`, ...);
//! a [`Node`] is one position in a schema. Navigating a node follows `$ref`
//! and single-element `allOf` wrappers (how OpenAPI attaches a description
//! or extension to a referenced type), while the extensions written at the
//! position itself win over those of the referenced type: Kubernetes puts
//! `x-kubernetes-patch-merge-key` on the *property* `containers`, not on the
//! `Container` type.

use std::collections::BTreeMap;

use serde_json::Value;

mod defaults;
mod formats;
mod prune;
mod structural;
mod validate;

pub use defaults::apply_defaults;
pub use prune::{prune, unknown_fields};
pub use structural::{check_structural, structural_issues};
pub use validate::{Issue, IssueKind, validate};

/// Named schema definitions, as in an OpenAPI document's
/// `components.schemas` (v3) or `definitions` (v2).
#[derive(Clone, Debug, Default)]
pub struct SchemaSet {
    defs: BTreeMap<String, Value>,
}

impl SchemaSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every definition of an OpenAPI v3 `components` object (the
    /// value holding `schemas`), or a plain map of name to schema.
    pub fn from_components(components: &Value) -> Self {
        let schemas = components.get("schemas").unwrap_or(components);
        let mut set = Self::new();
        if let Some(map) = schemas.as_object() {
            for (name, schema) in map {
                set.insert(name.clone(), schema.clone());
            }
        }
        set
    }

    /// Adds (or replaces) a definition.
    pub fn insert(&mut self, name: impl Into<String>, schema: Value) {
        self.defs.insert(name.into(), schema);
    }

    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<Node<'_>> {
        self.defs.get(name).map(|raw| Node::new(self, raw))
    }

    /// A node for a schema that is not itself a named definition (for
    /// example a CustomResourceDefinition's `openAPIV3Schema`); its `$ref`s
    /// resolve in this set.
    pub fn node<'a>(&'a self, schema: &'a Value) -> Node<'a> {
        Node::new(self, schema)
    }

    /// Every definition, by name.
    pub fn definitions(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.defs.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of definitions.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether the set has no definitions.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Resolves a `$ref` such as `#/components/schemas/X` or
    /// `#/definitions/X` to the definition `X`.
    fn resolve_ref(&self, reference: &str) -> Option<&Value> {
        let name = reference.rsplit('/').next()?;
        self.defs.get(name)
    }
}

/// The JSON type a node describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// `type: object`, or a schema with `properties` or
    /// `additionalProperties` and no type.
    Object,
    /// `type: array`.
    Array,
    /// `type: string` (any format, including date-time and byte).
    String,
    /// `type: integer`.
    Integer,
    /// `type: number`.
    Number,
    /// `type: boolean`.
    Boolean,
    /// `x-kubernetes-int-or-string`: an integer or a string.
    IntOrString,
    /// No type constraint: any JSON value (for example `RawExtension`, or a
    /// schema with only `x-kubernetes-preserve-unknown-fields`).
    Any,
}

/// How a list merges (`x-kubernetes-list-type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// The list is one value, replaced whole (the default).
    Atomic,
    /// A set of scalars: items are unique and merge by value.
    Set,
    /// A map keyed by the fields named in `x-kubernetes-list-map-keys`.
    Map(Vec<String>),
}

/// How a map or struct merges (`x-kubernetes-map-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    /// Keys merge one by one (the default).
    Granular,
    /// The map is one value, replaced whole.
    Atomic,
}

/// One position in a schema.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    set: &'a SchemaSet,
    /// The schema as written at this position: may be a `$ref` or an
    /// `allOf` wrapper carrying extensions and a description.
    raw: &'a Value,
    /// The schema that gives the structure, after following references.
    body: &'a Value,
}

impl<'a> Node<'a> {
    fn new(set: &'a SchemaSet, raw: &'a Value) -> Self {
        Self {
            set,
            raw,
            body: resolve(set, raw),
        }
    }

    /// The schema set this node belongs to.
    pub fn set(&self) -> &'a SchemaSet {
        self.set
    }

    /// The schema as written at this position.
    pub fn raw(&self) -> &'a Value {
        self.raw
    }

    /// The schema that gives this node's structure (references followed).
    pub fn body(&self) -> &'a Value {
        self.body
    }

    /// An extension or keyword, looked up first where the node is written and
    /// then on the type it refers to.
    pub fn keyword(&self, name: &str) -> Option<&'a Value> {
        self.raw.get(name).or_else(|| self.body.get(name))
    }

    /// The name of the definition this node refers to, if any.
    pub fn definition_name(&self) -> Option<&'a str> {
        let reference = ref_of(self.raw)?;
        reference.rsplit('/').next()
    }

    /// The JSON type this node describes.
    pub fn ty(&self) -> Type {
        if self.flag("x-kubernetes-int-or-string") {
            return Type::IntOrString;
        }
        match self.body.get("type").and_then(Value::as_str) {
            Some("object") => Type::Object,
            Some("array") => Type::Array,
            Some("string") => Type::String,
            Some("integer") => Type::Integer,
            Some("number") => Type::Number,
            Some("boolean") => Type::Boolean,
            _ if self.body.get("properties").is_some()
                || self.body.get("additionalProperties").is_some() =>
            {
                Type::Object
            }
            _ => Type::Any,
        }
    }

    /// The schema of property `name`, if the node declares it.
    pub fn property(&self, name: &str) -> Option<Node<'a>> {
        self.body
            .get("properties")
            .and_then(|p| p.get(name))
            .map(|raw| Node::new(self.set, raw))
    }

    /// Every declared property, in declaration order.
    pub fn properties(&self) -> impl Iterator<Item = (&'a str, Node<'a>)> + 'a {
        let set = self.set;
        self.body
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(move |(k, raw)| (k.as_str(), Node::new(set, raw)))
    }

    /// The schema of a map's values (`additionalProperties` as a schema).
    /// `additionalProperties: true` reads as a schema accepting anything.
    pub fn additional_properties(&self) -> Option<Node<'a>> {
        match self.body.get("additionalProperties") {
            Some(Value::Bool(true)) => Some(Node::new(self.set, &ANY)),
            Some(raw @ Value::Object(_)) => Some(Node::new(self.set, raw)),
            _ => None,
        }
    }

    /// The schema of a list's items.
    pub fn items(&self) -> Option<Node<'a>> {
        self.body.get("items").map(|raw| Node::new(self.set, raw))
    }

    /// The properties an object must have.
    pub fn required(&self) -> Vec<&'a str> {
        self.body
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// How this list merges.
    pub fn list_type(&self) -> ListType {
        match self
            .keyword("x-kubernetes-list-type")
            .and_then(Value::as_str)
        {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                self.keyword("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        }
    }

    /// How this map or struct merges.
    pub fn map_type(&self) -> MapType {
        match self
            .keyword("x-kubernetes-map-type")
            .and_then(Value::as_str)
        {
            Some("atomic") => MapType::Atomic,
            _ => MapType::Granular,
        }
    }

    /// The strategic-merge-patch strategy (`x-kubernetes-patch-strategy`),
    /// such as `merge`, `replace`, `retainKeys` or `merge,retainKeys`.
    pub fn patch_strategy(&self) -> Option<&'a str> {
        self.keyword("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
    }

    /// The strategic-merge-patch merge key (`x-kubernetes-patch-merge-key`).
    pub fn patch_merge_key(&self) -> Option<&'a str> {
        self.keyword("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
    }

    /// Whether unknown fields are kept (`x-kubernetes-preserve-unknown-fields`).
    pub fn preserves_unknown_fields(&self) -> bool {
        self.flag("x-kubernetes-preserve-unknown-fields")
    }

    /// Whether the node holds a whole Kubernetes object
    /// (`x-kubernetes-embedded-resource`).
    pub fn is_embedded_resource(&self) -> bool {
        self.flag("x-kubernetes-embedded-resource")
    }

    /// The node's description, for `kubectl explain`.
    pub fn description(&self) -> Option<&'a str> {
        self.keyword("description").and_then(Value::as_str)
    }

    fn flag(&self, name: &str) -> bool {
        self.keyword(name).and_then(Value::as_bool).unwrap_or(false)
    }
}

/// A schema that accepts anything.
static ANY: Value = Value::Null;

fn ref_of(raw: &Value) -> Option<&str> {
    if let Some(r) = raw.get("$ref").and_then(Value::as_str) {
        return Some(r);
    }
    // OpenAPI v3 wraps a reference in a one-element allOf to attach a
    // description or default to it.
    match raw
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([only]) => only.get("$ref").and_then(Value::as_str),
        _ => None,
    }
}

/// Follows references (a bounded number of times, so a cycle of bare
/// references cannot loop) to the schema that carries the structure.
fn resolve<'a>(set: &'a SchemaSet, raw: &'a Value) -> &'a Value {
    let mut current = raw;
    for _ in 0..16 {
        match ref_of(current).and_then(|r| set.resolve_ref(r)) {
            Some(next) => current = next,
            None => return current,
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> SchemaSet {
        SchemaSet::from_components(&json!({
            "schemas": {
                "io.k8s.api.core.v1.PodSpec": {
                    "type": "object",
                    "required": ["containers"],
                    "properties": {
                        "containers": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"},
                            "x-kubernetes-patch-merge-key": "name",
                            "x-kubernetes-patch-strategy": "merge",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"]
                        },
                        "nodeSelector": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "x-kubernetes-map-type": "atomic"
                        },
                        "overhead": {
                            "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"}],
                            "description": "overhead"
                        }
                    }
                },
                "io.k8s.api.core.v1.Container": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "args": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"}
                    }
                },
                "io.k8s.apimachinery.pkg.api.resource.Quantity": {
                    "type": "string",
                    "x-kubernetes-int-or-string": true,
                    "description": "quantity"
                }
            }
        }))
    }

    #[test]
    fn navigates_references_and_keeps_property_extensions() {
        let set = pods();
        let spec = set.get("io.k8s.api.core.v1.PodSpec").unwrap();
        assert_eq!(spec.ty(), Type::Object);
        assert_eq!(spec.required(), ["containers"]);
        let containers = spec.property("containers").unwrap();
        assert_eq!(containers.ty(), Type::Array);
        assert_eq!(containers.patch_merge_key(), Some("name"));
        assert_eq!(containers.patch_strategy(), Some("merge"));
        assert_eq!(containers.list_type(), ListType::Map(vec!["name".into()]));
        let container = containers.items().unwrap();
        assert_eq!(
            container.definition_name(),
            Some("io.k8s.api.core.v1.Container")
        );
        assert_eq!(container.property("name").unwrap().ty(), Type::String);
        assert_eq!(
            container.property("args").unwrap().list_type(),
            ListType::Atomic
        );
        assert!(container.property("nope").is_none());
        let selector = spec.property("nodeSelector").unwrap();
        assert_eq!(selector.map_type(), MapType::Atomic);
        assert_eq!(selector.additional_properties().unwrap().ty(), Type::String);
        // allOf-wrapped reference: structure from the target, description
        // from the wrapper first.
        let overhead = spec.property("overhead").unwrap();
        assert_eq!(overhead.ty(), Type::IntOrString);
        assert_eq!(overhead.description(), Some("overhead"));
        let names: Vec<&str> = spec.properties().map(|(k, _)| k).collect();
        assert_eq!(names, ["containers", "nodeSelector", "overhead"]);
    }

    #[test]
    fn untyped_and_open_schemas_accept_anything() {
        let set = SchemaSet::new();
        let raw = json!({"x-kubernetes-preserve-unknown-fields": true});
        let node = set.node(&raw);
        assert_eq!(node.ty(), Type::Any);
        assert!(node.preserves_unknown_fields());
        let open = json!({"type": "object", "additionalProperties": true});
        let values = set.node(&open).additional_properties().unwrap();
        assert_eq!(values.ty(), Type::Any);
        // A dangling reference resolves to itself rather than failing.
        let dangling = json!({"$ref": "#/components/schemas/Missing"});
        assert_eq!(set.node(&dangling).ty(), Type::Any);
    }
}
