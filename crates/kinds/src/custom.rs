//! Custom resources: what one CustomResourceDefinition serves.
//!
//! [`from_crd`] turns a CRD (as stored, apiextensions.k8s.io/v1) into one
//! [`ResourceDef`] per served version, and the OpenAPI definitions that
//! describe them (the version's `openAPIV3Schema` with `apiVersion`, `kind`
//! and `metadata` added, and its list). The strategy validates and defaults
//! against that schema, keeps `status` to its subresource when the version
//! has one, reads `scale` through the declared paths, and prints the
//! `additionalPrinterColumns`. Versions convert by relabelling
//! `apiVersion` (conversion strategy `None`; webhooks are not supported).

use std::sync::Arc;

use serde_json::{Map, Value, json};
use serde_json_path::JsonPath;

use crate::catalog::{ALL_VERBS, version_priority};
use crate::table::{column, name_column, since};
use crate::{
    Column, Conversion, FieldError, FieldErrorKind, ResourceDef, ScalePaths, Storage, Strategy,
    Subresource, typed,
};

/// What a CRD serves.
#[derive(Debug, Default)]
pub struct Custom {
    /// One definition per served version.
    pub resources: Vec<ResourceDef>,
    /// OpenAPI definitions by name: each served version's kind and list.
    pub schemas: Vec<(String, Value)>,
}

/// The OpenAPI definition name Kubernetes gives a custom kind: the group's
/// labels reversed, then version and kind (`com.example.stable.v1.CronTab`
/// for `stable.example.com`).
pub fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings_at(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The names a CRD is served under: those the server accepted, or, before
/// it has, those asked for.
fn names(crd: &Value) -> &Value {
    match crd.pointer("/status/acceptedNames") {
        Some(accepted) if !str_at(accepted, "/plural").is_empty() => accepted,
        _ => crd.pointer("/spec/names").unwrap_or(&Value::Null),
    }
}

/// Everything `crd` serves. A version without a schema serves objects as
/// they come (nothing pruned, nothing validated).
pub fn from_crd(crd: &Value) -> Custom {
    let group = str_at(crd, "/spec/group").to_owned();
    let names = names(crd);
    let kind = str_at(names, "/kind").to_owned();
    let plural = str_at(names, "/plural").to_owned();
    let singular = match str_at(names, "/singular") {
        "" => kind.to_lowercase(),
        s => s.to_owned(),
    };
    let list_kind = match str_at(names, "/listKind") {
        "" => format!("{kind}List"),
        s => s.to_owned(),
    };
    let namespaced = str_at(crd, "/spec/scope") != "Cluster";
    let versions: Vec<&Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| str_at(v, "/name").to_owned())
        .unwrap_or_default();
    let storage_strategy = versions
        .iter()
        .find(|v| str_at(v, "/name") == storage_version)
        .map(|v| {
            Arc::new(CustomStrategy::new(
                v,
                v.pointer("/schema/openAPIV3Schema").cloned(),
            ))
        });
    let served: Vec<&Value> = versions
        .into_iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .collect();
    let preferred = served
        .iter()
        .map(|v| str_at(v, "/name"))
        .max_by_key(|name| version_priority(name))
        .unwrap_or("")
        .to_owned();
    let mut out = Custom::default();
    if group.is_empty() || kind.is_empty() || plural.is_empty() || storage_version.is_empty() {
        return out;
    }
    for version in served {
        let name = str_at(version, "/name").to_owned();
        let schema = version.pointer("/schema/openAPIV3Schema").cloned();
        let strategy = Arc::new(CustomStrategy::new(version, schema.clone()));
        let mut subresources = Vec::new();
        if strategy.status {
            subresources.push(Subresource {
                name: "status".into(),
                group: group.clone(),
                version: name.clone(),
                kind: kind.clone(),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
            });
        }
        if strategy.scale.is_some() {
            subresources.push(Subresource {
                name: "scale".into(),
                group: "autoscaling".into(),
                version: "v1".into(),
                kind: "Scale".into(),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
            });
        }
        let definition = schema_name(&group, &name, &kind);
        let api_version = format!("{group}/{name}");
        let conversion: Option<Arc<dyn Conversion>> = (name != storage_version).then(|| {
            Arc::new(Relabel {
                served: api_version.clone(),
                storage: format!("{group}/{storage_version}"),
                strategy: Arc::clone(&strategy),
                storage_strategy: storage_strategy.clone(),
            }) as Arc<dyn Conversion>
        });
        if let Some(schema) = &schema {
            out.schemas.push((
                definition.clone(),
                openapi_definition(schema, &group, &name, &kind),
            ));
            let mut list = crate::openapi::list_definition(&definition, &kind);
            list["x-kubernetes-group-version-kind"] =
                json!([crate::openapi::gvk(&group, &name, &list_kind)]);
            out.schemas.push((format!("{definition}List"), list));
        }
        out.resources.push(ResourceDef {
            group: group.clone(),
            version: name.clone(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            short_names: strings_at(names, "/shortNames"),
            categories: strings_at(names, "/categories"),
            namespaced,
            verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
            subresources,
            storage: Storage {
                group: group.clone(),
                resource: plural.clone(),
                version: storage_version.clone(),
            },
            preferred: name == preferred,
            schema: schema.as_ref().map(|_| definition),
            strategy,
            conversion,
        });
    }
    out
}

/// A version's schema as the OpenAPI documents publish it: the CRD's own,
/// with `apiVersion`, `kind` and a full `metadata` added, and the
/// group/version/kind it describes.
fn openapi_definition(schema: &Value, group: &str, version: &str, kind: &str) -> Value {
    let mut def = schema.clone();
    let Some(obj) = def.as_object_mut() else {
        return def;
    };
    let properties = obj
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(props) = properties.as_object_mut() {
        props.insert(
            "apiVersion".into(),
            json!({
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string"
            }),
        );
        props.insert(
            "kind".into(),
            json!({
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string"
            }),
        );
        props.insert(
            "metadata".into(),
            json!({
                "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}],
                "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
            }),
        );
    }
    obj.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([crate::openapi::gvk(group, version, kind)]),
    );
    def
}

/// One printer column: how it is described, and where its value is.
struct Printer {
    column: Column,
    path: Option<JsonPath>,
}

/// Parses a printer column's `jsonPath` (`.spec.replicas`,
/// `.status.conditions[?(@.type=="Ready")].status`, with or without
/// braces) as an RFC 9535 query.
fn parse_path(path: &str) -> Option<JsonPath> {
    let inner = path.trim();
    let inner = inner
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(inner);
    let inner = inner.strip_prefix('$').unwrap_or(inner);
    let query = if inner.starts_with('.') || inner.starts_with('[') {
        format!("${inner}")
    } else {
        format!("$.{inner}")
    };
    JsonPath::parse(&query).ok()
}

/// A JSON pointer from a scale path such as `.spec.replicas`.
fn pointer(path: &str) -> String {
    path.trim_start_matches('.')
        .split('.')
        .fold(String::new(), |acc, part| format!("{acc}/{part}"))
}

/// What the server does to custom objects of one version.
pub(crate) struct CustomStrategy {
    /// The version's schema under the name `root`, or nothing.
    schema: Option<schema::SchemaSet>,
    status: bool,
    scale: Option<ScalePaths>,
    printers: Vec<Printer>,
    selectable: Vec<(String, JsonPath)>,
}

impl CustomStrategy {
    fn new(version: &Value, schema: Option<Value>) -> Self {
        let schema = schema.map(|s| {
            let mut set = schema::SchemaSet::new();
            set.insert("root", s);
            set
        });
        let status = version.pointer("/subresources/status").is_some();
        let scale = version.pointer("/subresources/scale").map(|s| ScalePaths {
            spec_replicas: pointer(str_at(s, "/specReplicasPath")),
            status_replicas: pointer(str_at(s, "/statusReplicasPath")),
            label_selector: Some(str_at(s, "/labelSelectorPath"))
                .filter(|p| !p.is_empty())
                .map(pointer),
        });
        let declared: Vec<&Value> = version
            .pointer("/additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let printers = if declared.is_empty() {
            vec![Printer {
                column: Column {
                    format: String::new(),
                    ..column("Age", "date", "")
                },
                path: parse_path(".metadata.creationTimestamp"),
            }]
        } else {
            declared
                .iter()
                .map(|c| Printer {
                    column: Column {
                        name: str_at(c, "/name").to_owned(),
                        ty: str_at(c, "/type").to_owned(),
                        format: str_at(c, "/format").to_owned(),
                        description: str_at(c, "/description").to_owned(),
                        priority: c
                            .get("priority")
                            .and_then(Value::as_i64)
                            .and_then(|p| i32::try_from(p).ok())
                            .unwrap_or(0),
                    },
                    path: parse_path(str_at(c, "/jsonPath")),
                })
                .collect()
        };
        let selectable = version
            .pointer("/selectableFields")
            .and_then(Value::as_array)
            .map(|fields| {
                fields
                    .iter()
                    .filter_map(|f| {
                        let path = str_at(f, "/jsonPath");
                        Some((path.trim_start_matches('.').to_owned(), parse_path(path)?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            schema,
            status,
            scale,
            printers,
            selectable,
        }
    }

    fn node(&self) -> Option<schema::Node<'_>> {
        self.schema.as_ref().and_then(|s| s.get("root"))
    }

    fn check(&self, obj: &Value) -> Vec<FieldError> {
        let Some(node) = self.node() else {
            return Vec::new();
        };
        schema::validate(node, obj)
            .into_iter()
            .map(|issue| FieldError {
                kind: match issue.kind {
                    schema::IssueKind::Required => FieldErrorKind::Required,
                    schema::IssueKind::NotSupported => FieldErrorKind::NotSupported,
                    schema::IssueKind::TooLong => FieldErrorKind::TooLong,
                    schema::IssueKind::TooMany => FieldErrorKind::TooMany,
                    schema::IssueKind::TypeInvalid => FieldErrorKind::TypeInvalid,
                    schema::IssueKind::Invalid => FieldErrorKind::Invalid,
                    schema::IssueKind::Duplicate => FieldErrorKind::Duplicate,
                    schema::IssueKind::Forbidden => FieldErrorKind::Forbidden,
                },
                field: issue.path,
                value: issue.value,
                detail: issue.message,
            })
            .collect()
    }
}

/// A table cell from the first value a printer column's path finds.
fn cell(ty: &str, found: Option<&Value>, now: i64) -> Value {
    let Some(value) = found else {
        return Value::Null;
    };
    match ty {
        "date" => Value::String(since(Some(value), now)),
        "integer" | "number" if value.is_number() => value.clone(),
        "boolean" if value.is_boolean() => value.clone(),
        _ => match value {
            Value::String(s) => Value::String(s.clone()),
            Value::Null => Value::Null,
            other => Value::String(other.to_string()),
        },
    }
}

impl Strategy for CustomStrategy {
    fn check_types(&self, _obj: &Value) -> Result<(), FieldError> {
        // Custom objects have no Go type: wrong types are schema
        // violations, reported with the rest by `validate` (422).
        Ok(())
    }

    fn default(&self, obj: &mut Value) {
        if let Some(node) = self.node() {
            schema::apply_defaults(node, obj);
        }
    }

    fn prepare_create(&self, obj: &mut Value) {
        if self.status {
            typed::clear_status(obj);
        }
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        if self.status {
            typed::keep_status(new, old);
        }
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        self.check(obj)
    }

    fn validate_status(&self, obj: &Value, _old: &Value) -> Vec<FieldError> {
        self.check(obj)
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn has_status_subresource(&self) -> bool {
        self.status
    }

    fn columns(&self) -> Vec<Column> {
        std::iter::once(name_column())
            .chain(self.printers.iter().map(|p| p.column.clone()))
            .collect()
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let mut row = vec![crate::table::name(obj)];
        for p in &self.printers {
            let found = p.path.as_ref().and_then(|path| path.query(obj).first());
            row.push(cell(&p.column.ty, found, now));
        }
        row
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        self.selectable
            .iter()
            .map(|(name, path)| {
                let value = match path.query(obj).first() {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                (name.clone(), value)
            })
            .collect()
    }

    fn scale_paths(&self) -> Option<&ScalePaths> {
        self.scale.as_ref()
    }
}

/// A served version that is not the storage version: objects differ only
/// in `apiVersion` (conversion strategy `None`).
struct Relabel {
    served: String,
    storage: String,
    /// The served version's strategy, whose defaults apply on the way in.
    strategy: Arc<CustomStrategy>,
    /// The storage version's, whose schema prunes what is stored.
    storage_strategy: Option<Arc<CustomStrategy>>,
}

impl Conversion for Relabel {
    fn to_storage(&self, mut obj: Value) -> Result<Value, FieldError> {
        self.strategy.default(&mut obj);
        obj["apiVersion"] = Value::String(self.storage.clone());
        // What the storage version does not declare is not kept, as
        // Kubernetes prunes after converting.
        if let Some(node) = self.storage_strategy.as_ref().and_then(|s| s.node()) {
            schema::prune(node, &mut obj);
        }
        Ok(obj)
    }

    fn from_storage(&self, mut obj: Value) -> Value {
        obj["apiVersion"] = Value::String(self.served.clone());
        obj
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crontab() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com",
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                          "shortNames": ["ct"], "categories": ["all"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "cronSpec": {"type": "string"},
                            "replicas": {"type": "integer", "default": 1}}}}}}},
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                            "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                            "image": {"type": "string"},
                            "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 2}}},
                        "status": {"type": "object", "properties": {
                            "replicas": {"type": "integer"},
                            "labelSelector": {"type": "string"},
                            "conditions": {"type": "array", "items": {"type": "object", "properties": {
                                "type": {"type": "string"}, "status": {"type": "string"}}}}}}}}},
                     "subresources": {"status": {}, "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.labelSelector"}},
                     "additionalPrinterColumns": [
                        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                        {"name": "Ready", "type": "string", "priority": 1,
                         "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]},
                    {"name": "v0", "served": false, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]
            }
        })
    }

    #[test]
    fn serves_each_served_version_from_the_storage_version() {
        let custom = from_crd(&crontab());
        let versions: Vec<&str> = custom
            .resources
            .iter()
            .map(|r| r.version.as_str())
            .collect();
        assert_eq!(versions, ["v1beta1", "v1"]);
        let v1 = &custom.resources[1];
        assert!(v1.preferred && !custom.resources[0].preferred);
        assert_eq!(v1.storage.version, "v1");
        assert_eq!(custom.resources[0].storage.version, "v1");
        assert!(v1.conversion.is_none() && custom.resources[0].conversion.is_some());
        assert_eq!(v1.short_names, ["ct"]);
        assert_eq!(v1.schema.as_deref(), Some("com.example.stable.v1.CronTab"));
        let subs: Vec<&str> = v1.subresources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(subs, ["status", "scale"]);
        assert!(custom.resources[0].subresources.is_empty());
        let names: Vec<&str> = custom.schemas.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"com.example.stable.v1.CronTabList"));
        let def = &custom
            .schemas
            .iter()
            .find(|(n, _)| n == "com.example.stable.v1.CronTab")
            .unwrap()
            .1;
        assert!(def.pointer("/properties/metadata/allOf/0/$ref").is_some());
        assert_eq!(def["x-kubernetes-group-version-kind"][0]["kind"], "CronTab");
    }

    #[test]
    fn validates_and_defaults_against_the_schema() {
        let custom = from_crd(&crontab());
        let v1 = &custom.resources[1];
        let mut obj = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "a"}, "spec": {"cronSpec": "* * * * */5"}});
        v1.strategy.default(&mut obj);
        assert_eq!(obj["spec"]["replicas"], 2);
        assert!(v1.strategy.validate(&obj, None).is_empty());
        let bad = json!({"metadata": {"name": "a"}, "spec": {"cronSpec": 5, "replicas": 11}});
        let errs = v1.strategy.validate(&bad, None);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"spec.cronSpec"), "{errs:?}");
        assert!(fields.contains(&"spec.replicas"), "{errs:?}");
        let missing = json!({"metadata": {"name": "a"}, "spec": {}});
        assert_eq!(
            v1.strategy.validate(&missing, None)[0].kind,
            FieldErrorKind::Required
        );
        // The older version defaults with its own schema on the way in.
        let old = custom.resources[0].conversion.as_ref().unwrap();
        let stored = old
            .to_storage(
                json!({"apiVersion": "stable.example.com/v1beta1", "kind": "CronTab",
                "metadata": {"name": "b"}, "spec": {"cronSpec": "x"}}),
            )
            .unwrap();
        assert_eq!(stored["apiVersion"], "stable.example.com/v1");
        assert_eq!(stored["spec"]["replicas"], 1);
        let pruned = old
            .to_storage(json!({"apiVersion": "stable.example.com/v1beta1", "kind": "CronTab",
                "metadata": {"name": "b", "labels": {"a": "b"}}, "spec": {"cronSpec": "x", "free": 1}}))
            .unwrap();
        assert!(pruned["spec"].get("free").is_none());
        assert_eq!(pruned["metadata"]["labels"]["a"], "b");
        assert_eq!(
            old.from_storage(stored)["apiVersion"],
            "stable.example.com/v1beta1"
        );
    }

    #[test]
    fn keeps_status_to_its_subresource_and_reads_scale_paths() {
        let custom = from_crd(&crontab());
        let s = &custom.resources[1].strategy;
        let mut created = json!({"spec": {}, "status": {"replicas": 3}});
        s.prepare_create(&mut created);
        assert!(created.get("status").is_none());
        let old = json!({"spec": {"a": 1}, "status": {"replicas": 3}});
        let mut new = json!({"spec": {"a": 2}, "status": {"replicas": 9}});
        s.prepare_update(&mut new, &old);
        assert_eq!(new["status"]["replicas"], 3);
        let paths = s.scale_paths().unwrap();
        assert_eq!(paths.spec_replicas, "/spec/replicas");
        assert_eq!(
            paths.label_selector.as_deref(),
            Some("/status/labelSelector")
        );
    }

    #[test]
    fn prints_the_declared_columns() {
        let custom = from_crd(&crontab());
        let s = &custom.resources[1].strategy;
        let cols: Vec<String> = s.columns().into_iter().map(|c| c.name).collect();
        assert_eq!(cols, ["Name", "Spec", "Replicas", "Ready", "Age"]);
        let obj = json!({"metadata": {"name": "t", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"cronSpec": "* * * * *", "replicas": 3},
            "status": {"conditions": [{"type": "Other", "status": "False"},
                                      {"type": "Ready", "status": "True"}]}});
        let now = crate::table::parse_time("2026-01-01T00:05:00Z").unwrap();
        assert_eq!(
            s.row(&obj, now),
            vec![
                json!("t"),
                json!("* * * * *"),
                json!(3),
                json!("True"),
                json!("5m")
            ]
        );
        // Without declared columns: name and age.
        let plain = &custom.resources[0].strategy;
        let cols: Vec<String> = plain.columns().into_iter().map(|c| c.name).collect();
        assert_eq!(cols, ["Name", "Age"]);
        assert_eq!(
            plain.row(&json!({"metadata": {"name": "t"}}), now)[1],
            Value::Null
        );
    }

    #[test]
    fn names_follow_kubernetes() {
        assert_eq!(
            schema_name("stable.example.com", "v1", "CronTab"),
            "com.example.stable.v1.CronTab"
        );
        assert!(parse_path("{.spec.x}").is_some());
        assert!(parse_path(".status.conditions[?(@.type==\"Ready\")].status").is_some());
        assert_eq!(pointer(".spec.replicas"), "/spec/replicas");
    }
}
