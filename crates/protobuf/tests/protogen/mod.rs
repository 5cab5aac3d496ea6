//! The generator of `src/generated.rs`: for every message reachable from
//! the kinds Gantry decodes, joins k8s-pb's prost messages (field numbers
//! and wire types) with Kubernetes 1.32's Go declarations (`go-fields.txt`:
//! JSON names, pointers, `omitempty`), checks each field's type against the
//! kinds' OpenAPI definitions, and writes the table as Rust source.
//! Anything that does not agree is an error: a field missing from the table
//! would be skipped at run time, and a field matched wrongly would be
//! stored under the wrong name.

mod go;
pub mod k8spb;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use schema::{Node, SchemaSet, Type as JsonType};

use k8spb::{PbCard, PbField, PbMessage, PbMessages, PbType};

/// What a run produced: the source and how much it covers.
pub struct Generated {
    pub source: String,
    pub messages: usize,
    pub kinds: usize,
}

/// A kind whose bytes the table decodes: `apiVersion`, `kind`, definition.
type Root = (String, String, String);

/// Kinds a client sends that the catalogue does not list as a resource or a
/// subresource of one: reviews posted to their own endpoints, and
/// certificate signing requests (`kubectl certificate approve`).
const EXTRA_KINDS: &[(&str, &str)] = &[
    ("authentication.k8s.io/v1", "TokenRequest"),
    ("authentication.k8s.io/v1", "TokenReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
];

/// meta/v1 kinds that every group/version registers, so a client may label
/// them with any `apiVersion` (a typed client's own group/version): the
/// options bodies of DELETE requests.
const META_KINDS: &[&str] = &["DeleteOptions"];

/// Subresource kinds that travel as query parameters, never as bodies
/// (`pods/exec`, `pods/attach`, `pods/portforward`, `*/proxy`).
const QUERY_ONLY_KINDS: &[&str] = &[
    "NodeProxyOptions",
    "PodAttachOptions",
    "PodExecOptions",
    "PodPortForwardOptions",
    "PodProxyOptions",
    "ServiceProxyOptions",
];

const META_V1: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// apimachinery and apiextensions messages whose JSON Go writes by hand,
/// with the fields k8s-pb must declare for them (the decoder relies on
/// these numbers): (k8s-pb path, Go name, shape, fields as (tag, name,
/// type, repeated)).
type SpecialField = (u32, &'static str, &'static str, bool);
const SPECIALS: &[(&str, &str, &str, &[SpecialField])] = &[
    (
        "apimachinery::pkg::apis::meta::v1::Time",
        "Time",
        "Time",
        &[(1, "seconds", "int64", false), (2, "nanos", "int32", false)],
    ),
    (
        "apimachinery::pkg::apis::meta::v1::MicroTime",
        "MicroTime",
        "MicroTime",
        &[(1, "seconds", "int64", false), (2, "nanos", "int32", false)],
    ),
    (
        "apimachinery::pkg::apis::meta::v1::Duration",
        "Duration",
        "Duration",
        &[(1, "duration", "int64", false)],
    ),
    (
        "apimachinery::pkg::apis::meta::v1::FieldsV1",
        "FieldsV1",
        "FieldsV1",
        &[(1, "raw", "bytes", false)],
    ),
    (
        "apimachinery::pkg::api::resource::Quantity",
        "Quantity",
        "Quantity",
        &[(1, "string", "string", false)],
    ),
    (
        "apimachinery::pkg::util::intstr::IntOrString",
        "IntOrString",
        "IntOrString",
        &[
            (1, "type", "int64", false),
            (2, "int_val", "int32", false),
            (3, "str_val", "string", false),
        ],
    ),
    (
        "apimachinery::pkg::runtime::RawExtension",
        "RawExtension",
        "RawExtension",
        &[(1, "raw", "bytes", false)],
    ),
    (
        "apiextensions_apiserver::pkg::apis::apiextensions::v1::Json",
        "JSON",
        "Json",
        &[(1, "raw", "bytes", false)],
    ),
    (
        "apiextensions_apiserver::pkg::apis::apiextensions::v1::JsonSchemaPropsOrArray",
        "JSONSchemaPropsOrArray",
        "SchemaOrArray",
        &[
            (1, "schema", "JSONSchemaProps", false),
            (2, "j_son_schemas", "JSONSchemaProps", true),
        ],
    ),
    (
        "apiextensions_apiserver::pkg::apis::apiextensions::v1::JsonSchemaPropsOrBool",
        "JSONSchemaPropsOrBool",
        "SchemaOrBool",
        &[
            (1, "allows", "bool", false),
            (2, "schema", "JSONSchemaProps", false),
        ],
    ),
    (
        "apiextensions_apiserver::pkg::apis::apiextensions::v1::JsonSchemaPropsOrStringArray",
        "JSONSchemaPropsOrStringArray",
        "SchemaOrStringArray",
        &[
            (1, "schema", "JSONSchemaProps", false),
            (2, "property", "string", true),
        ],
    ),
    (
        "api::authentication::v1::ExtraValue",
        "ExtraValue",
        "StringList",
        &[(1, "items", "string", true)],
    ),
    (
        "api::authorization::v1::ExtraValue",
        "ExtraValue",
        "StringList",
        &[(1, "items", "string", true)],
    ),
    (
        "api::certificates::v1::ExtraValue",
        "ExtraValue",
        "StringList",
        &[(1, "items", "string", true)],
    ),
];

/// The envelope's messages, which `lib.rs` reads with these numbers.
const ENVELOPE: &[(&str, &[SpecialField])] = &[
    (
        "apimachinery::pkg::runtime::Unknown",
        &[
            (1, "type_meta", "TypeMeta", false),
            (2, "raw", "bytes", false),
            (3, "content_encoding", "string", false),
            (4, "content_type", "string", false),
        ],
    ),
    (
        "apimachinery::pkg::runtime::TypeMeta",
        &[
            (1, "api_version", "string", false),
            (2, "kind", "string", false),
        ],
    ),
];

/// Every kind the table decodes: each served resource that has a
/// definition, the kinds its subresources take, and [`EXTRA_KINDS`].
pub fn roots() -> Result<Vec<Root>, String> {
    let mut roots: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut add = |api_version: String, kind: String, def: String| match roots
        .insert((api_version.clone(), kind.clone()), def.clone())
    {
        Some(old) if old != def => Err(format!(
            "{api_version} {kind} is both {old} and {def} in the catalogue"
        )),
        _ => Ok(()),
    };
    for resource in kinds::builtin() {
        let Some(def) = &resource.schema else {
            continue;
        };
        add(resource.group_version(), resource.kind.clone(), def.clone())?;
        for sub in &resource.subresources {
            if (sub.kind == resource.kind && sub.group == resource.group)
                || QUERY_ONLY_KINDS.contains(&sub.kind.as_str())
            {
                continue;
            }
            let api_version = if sub.group.is_empty() {
                sub.version.clone()
            } else {
                format!("{}/{}", sub.group, sub.version)
            };
            let def = kinds::catalog::schema_name(&sub.group, &sub.version, &sub.kind);
            add(api_version, sub.kind.clone(), def)?;
        }
    }
    for (api_version, kind) in EXTRA_KINDS {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let def = kinds::catalog::schema_name(group, version, kind);
        add(api_version.to_string(), kind.to_string(), def)?;
    }
    Ok(roots
        .into_iter()
        .map(|((api_version, kind), def)| (api_version, kind, def))
        .collect())
}

/// Maps k8s-pb's module paths and Rust type names to definition names.
struct Names<'a> {
    /// (definition prefix, lowercase Go name) → definition name.
    by_lowercase: BTreeMap<(String, String), &'a str>,
    /// (definition prefix, lowercase Rust name) → k8s-pb path.
    pb_by_lowercase: BTreeMap<(String, String), String>,
}

impl<'a> Names<'a> {
    fn new(defs: &'a SchemaSet, pb: &PbMessages) -> Self {
        let mut by_lowercase = BTreeMap::new();
        for (name, _) in defs.definitions() {
            if let Some((prefix, go)) = name.rsplit_once('.') {
                by_lowercase.insert((prefix.to_owned(), go.to_lowercase()), name);
            }
        }
        let mut pb_by_lowercase = BTreeMap::new();
        for path in pb.keys() {
            let (module, rust) = path.rsplit_once("::").unwrap_or(("", path));
            pb_by_lowercase.insert((prefix_of(module), rust.to_lowercase()), path.clone());
        }
        Self {
            by_lowercase,
            pb_by_lowercase,
        }
    }

    /// The definition of a k8s-pb message (`api::core::v1::HttpGetAction`
    /// → `io.k8s.api.core.v1.HTTPGetAction`).
    fn definition(&self, pb_path: &str) -> Option<&'a str> {
        let (module, rust) = pb_path.rsplit_once("::")?;
        self.by_lowercase
            .get(&(prefix_of(module), rust.to_lowercase()))
            .copied()
    }

    /// The k8s-pb message of a definition.
    fn pb_path(&self, def: &str) -> Option<&String> {
        let (prefix, go) = def.rsplit_once('.')?;
        self.pb_by_lowercase
            .get(&(prefix.to_owned(), go.to_lowercase()))
    }
}

/// `api::apps::v1` → `io.k8s.api.apps.v1`;
/// `apiextensions_apiserver::pkg::apis::apiextensions::v1` →
/// `io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1`.
fn prefix_of(module: &str) -> String {
    let dotted = module.replace("::", ".").replace('_', "-");
    format!("io.k8s.{dotted}")
}

/// JSON and Rust names compare lowercase, without `_`, `-` and `$`
/// (`host_ipc` ↔ `hostIPC`, `r#ref` ↔ `$ref`,
/// `x_kubernetes_list_type` ↔ `x-kubernetes-list-type`).
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '$'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// One message of the table, as the generator computes it.
enum Entry {
    Object(Vec<FieldEntry>),
    Special(String),
}

struct FieldEntry {
    tag: u32,
    json: String,
    ty: String,
    card: &'static str,
    go: &'static str,
}

/// Runs the generator over k8s-pb's source in `src` (of `version`).
pub fn generate(pb: &PbMessages, version: &str) -> Result<Generated, String> {
    let defs = kinds::openapi::definitions();
    let names = Names::new(defs, pb);
    let roots = roots()?;
    let mut errors = Vec::new();

    // Name every special message and check its fields are the ones the
    // decoder reads.
    let mut special_names: BTreeMap<&'static str, (String, &'static str)> = BTreeMap::new();
    for (path, go_name, shape, _) in SPECIALS {
        let module = path.rsplit_once("::").map(|(m, _)| m).unwrap_or_default();
        let name = format!("{}.{go_name}", prefix_of(module));
        special_names.insert(path, (name, shape));
    }
    let checked = SPECIALS
        .iter()
        .map(|(path, _, _, fields)| (*path, *fields))
        .chain(ENVELOPE.iter().copied());
    for (path, fields) in checked {
        match pb.get(path) {
            None => errors.push(format!("k8s-pb has no {path}")),
            Some(message) => {
                if let Err(e) = check_special(message, fields, &names, &special_names) {
                    errors.push(e);
                }
            }
        }
    }

    // Walk from the roots to every message they hold.
    let meta_kinds: Vec<(String, String)> = META_KINDS
        .iter()
        .map(|kind| (kind.to_string(), format!("{META_V1}.{kind}")))
        .collect();
    let mut walk = Walk {
        pb,
        defs,
        names,
        special_names,
        inline: BTreeMap::new(),
        queue: VecDeque::new(),
        seen: BTreeSet::new(),
        table: BTreeMap::new(),
        errors,
        go: go::structs()?,
        newer: Vec::new(),
    };
    let root_defs = roots
        .iter()
        .map(|(api_version, kind, def)| (format!("{api_version} {kind}"), def.clone()))
        .chain(
            meta_kinds
                .iter()
                .map(|(kind, def)| (kind.clone(), def.clone())),
        );
    for (what, def) in root_defs {
        match walk.names.pb_path(&def) {
            Some(path) => {
                let path = path.clone();
                walk.enqueue(&path);
            }
            None => walk
                .errors
                .push(format!("{what}: k8s-pb has no message for {def}")),
        }
    }
    while let Some(path) = walk.queue.pop_front() {
        walk.message(&path);
    }
    let Walk {
        table,
        errors,
        mut newer,
        ..
    } = walk;
    newer.sort();
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }

    let mut kinds_table: Vec<(String, String, String)> = roots;
    kinds_table.sort();
    Ok(Generated {
        messages: table.len(),
        kinds: kinds_table.len(),
        source: render(version, &table, &kinds_table, &meta_kinds, &newer),
    })
}

/// The state of the walk from the roots through every message they hold.
struct Walk<'a> {
    pb: &'a PbMessages,
    defs: &'a SchemaSet,
    names: Names<'a>,
    special_names: BTreeMap<&'static str, (String, &'static str)>,
    /// Embedded Go structs that have no definition of their own (`Volume`'s
    /// `VolumeSource`): k8s-pb path → (table name, the definition of the
    /// struct they are embedded in, which names their fields).
    inline: BTreeMap<String, (String, String)>,
    queue: VecDeque<String>,
    seen: BTreeSet<String>,
    table: BTreeMap<String, Entry>,
    errors: Vec<String>,
    /// Kubernetes 1.32's Go declarations.
    go: go::GoStructs,
    /// Fields k8s-pb has that Kubernetes 1.32 does not
    /// (`<message>.<k8s-pb name> = <number>`): left out of the table, so
    /// the decoder skips them as Go's decoder skips unknown fields.
    newer: Vec<String>,
}

impl Walk<'_> {
    fn enqueue(&mut self, path: &str) {
        if self.seen.insert(path.to_owned()) {
            self.queue.push_back(path.to_owned());
        }
    }

    /// Queues the message a kept field of `path` holds.
    fn hold(&mut self, path: &str, ty: &PbType) {
        if let PbType::Message(inner) = ty {
            if self.pb.contains_key(inner) {
                self.enqueue(inner);
            } else {
                self.errors
                    .push(format!("{path} holds {inner}, which k8s-pb lacks"));
            }
        }
    }

    /// The table name of a message held by a field.
    fn type_name(&self, ty: &PbType) -> Result<String, String> {
        if let PbType::Message(path) = ty
            && let Some((name, _)) = self.inline.get(path)
        {
            return Ok(format!("Message({name:?})"));
        }
        type_name(ty, &self.names, &self.special_names)
    }

    /// Adds one message (and queues what it holds).
    fn message(&mut self, path: &str) {
        let pb = self.pb;
        let message = &pb[path];
        if let Some((name, shape)) = self.special_names.get(path).cloned() {
            for field in &message.fields {
                self.hold(path, &field.ty);
            }
            let entry = Entry::Special(special_inner(shape, self.defs));
            self.table.insert(name, entry);
            return;
        }
        let (name, def_name) = match self.inline.get(path) {
            Some((name, parent)) => (name.clone(), parent.clone()),
            None => match self.names.definition(path) {
                Some(def) => (def.to_owned(), def.to_owned()),
                None => {
                    self.errors
                        .push(format!("{path}: no OpenAPI definition matches"));
                    return;
                }
            },
        };
        let fields = self.object(message, &name, &def_name);
        self.table.insert(name, Entry::Object(fields));
    }

    /// The fields of object message `name`: numbers and wire types from
    /// k8s-pb, JSON names and declarations from the Go struct of the same
    /// name, types checked against the definition `def_name` (the parent's,
    /// for a struct inlined without a definition of its own).
    fn object(&mut self, message: &PbMessage, name: &str, def_name: &str) -> Vec<FieldEntry> {
        let defs = self.defs;
        let def = defs.get(def_name).expect("indexed definition");
        let go_fields = match self.go.get(name) {
            Some(fields) => fields.clone(),
            // An empty Go struct (`CustomResourceSubresourceStatus`) has
            // no line of its own.
            None if message.fields.is_empty() => BTreeMap::new(),
            None => {
                self.errors
                    .push(format!("{name}: go-fields.txt has no such struct"));
                return Vec::new();
            }
        };
        let mut fields = Vec::new();
        for field in &message.fields {
            let Some(go) = go_fields.get(&field.tag) else {
                // Not in Kubernetes 1.32's struct: a newer field, unless
                // the definition has it (then go-fields.txt is stale).
                let normalized = normalize(&field.name);
                if def
                    .properties()
                    .any(|(json, _)| normalize(json) == normalized)
                {
                    self.errors.push(format!(
                        "{name}: {def_name} has field {} (tag {}) but go-fields.txt does not",
                        field.name, field.tag
                    ));
                } else {
                    self.newer
                        .push(format!("{name}.{} = {}", field.name, field.tag));
                }
                continue;
            };
            if go.is_collection() && field.card == PbCard::Optional && field.ty != PbType::Bytes {
                self.errors.push(format!(
                    "{name}.{}: Go declares {} but k8s-pb a single value",
                    field.name, go.go_type
                ));
            }
            if go.json.is_empty() {
                if let Some(entry) = self.inlined(message, field, def_name) {
                    fields.push(entry);
                }
                continue;
            }
            let Some(property) = def.property(&go.json) else {
                self.errors.push(format!(
                    "{def_name} has no property {} (Go's {name} field {})",
                    go.json, field.tag
                ));
                continue;
            };
            self.hold(&message.path, &field.ty);
            let ty = match self.type_name(&field.ty) {
                Ok(ty) => ty,
                Err(e) => {
                    self.errors.push(format!("{name}.{}: {e}", go.json));
                    continue;
                }
            };
            if let Err(e) = check_json_type(field, &ty, property) {
                self.errors.push(format!("{name}.{}: {e}", go.json));
            }
            fields.push(FieldEntry {
                tag: field.tag,
                json: go.json.clone(),
                ty,
                card: match field.card {
                    PbCard::Optional => "Single",
                    PbCard::Repeated => "Repeated",
                    PbCard::Map => "Map",
                },
                go: go.mode(),
            });
        }
        for (tag, go) in &go_fields {
            if !message.fields.iter().any(|f| f.tag == *tag) {
                self.errors.push(format!(
                    "{name}: k8s-pb's {} lacks field {tag} ({} {})",
                    message.path, go.json, go.go_type
                ));
            }
        }
        fields.sort_by_key(|f| f.tag);
        fields
    }

    /// The entry for a Go struct embedded with `json:",inline"`: one
    /// message on the wire whose fields join the parent's JSON object.
    /// With a definition of its own (`LocalObjectReference`) the message is
    /// named and checked by it; without one (`VolumeSource`,
    /// `ProbeHandler`), it is named after k8s-pb's type and its fields are
    /// checked against the parent's definition, where they appear.
    fn inlined(
        &mut self,
        parent: &PbMessage,
        field: &PbField,
        parent_def: &str,
    ) -> Option<FieldEntry> {
        let PbType::Message(path) = &field.ty else {
            self.errors.push(format!(
                "{}.{}: inlined, but not a message",
                parent.path, field.name
            ));
            return None;
        };
        if field.card != PbCard::Optional || self.special_names.contains_key(path.as_str()) {
            self.errors.push(format!(
                "{}.{}: inlined, but repeated or special",
                parent.path, field.name
            ));
            return None;
        }
        if self.names.definition(path).is_none() {
            let module = path.rsplit_once("::").map(|(m, _)| m).unwrap_or_default();
            let rust = path.rsplit("::").next().unwrap_or_default();
            let entry = (
                format!("{}.{rust}", prefix_of(module)),
                parent_def.to_owned(),
            );
            match self.inline.get(path) {
                Some(existing) if *existing != entry => {
                    self.errors.push(format!(
                        "{path} is embedded in both {} and {parent_def}",
                        existing.1
                    ));
                }
                _ => {
                    self.inline.insert(path.clone(), entry);
                }
            }
        }
        self.hold(&parent.path, &field.ty);
        match self.type_name(&field.ty) {
            Ok(ty) => Some(FieldEntry {
                tag: field.tag,
                json: String::new(),
                ty,
                card: "Inline",
                go: "Value",
            }),
            Err(e) => {
                self.errors.push(format!("{parent_def}: {e}"));
                None
            }
        }
    }
}

/// Checks a special message's fields against what the decoder reads.
fn check_special(
    message: &PbMessage,
    expected: &[SpecialField],
    names: &Names<'_>,
    special_names: &BTreeMap<&str, (String, &str)>,
) -> Result<(), String> {
    let mut got: Vec<String> = message
        .fields
        .iter()
        .map(|f| {
            let ty = match &f.ty {
                PbType::Message(m) => type_name(&f.ty, names, special_names)
                    .map(|t| {
                        t.trim_start_matches("Message(\"")
                            .trim_end_matches("\")")
                            .rsplit('.')
                            .next()
                            .unwrap_or_default()
                            .to_owned()
                    })
                    .unwrap_or_else(|_| m.rsplit("::").next().unwrap_or_default().to_owned()),
                other => format!("{other:?}").to_lowercase(),
            };
            format!("{} {} {} {}", f.tag, f.name, ty, f.card == PbCard::Repeated)
        })
        .collect();
    let mut want: Vec<String> = expected
        .iter()
        .map(|(tag, name, ty, repeated)| format!("{tag} {name} {ty} {repeated}"))
        .collect();
    got.sort();
    want.sort();
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{}: k8s-pb declares {got:?}, the decoder reads {want:?}",
            message.path
        ))
    }
}

/// The message a special shape refers to (the schema of the apiextensions
/// wrappers), as the shape's Rust expression.
fn special_inner(shape: &str, _defs: &SchemaSet) -> String {
    const SCHEMA: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
    match shape {
        "SchemaOrArray" | "SchemaOrBool" | "SchemaOrStringArray" => {
            format!("{shape}({SCHEMA:?})")
        }
        other => other.to_owned(),
    }
}

/// The field's type as a `Type` expression of the table.
fn type_name(
    ty: &PbType,
    names: &Names<'_>,
    special_names: &BTreeMap<&str, (String, &str)>,
) -> Result<String, String> {
    Ok(match ty {
        PbType::String => "String".into(),
        PbType::Bytes => "Bytes".into(),
        PbType::Bool => "Bool".into(),
        PbType::Int32 => "Int32".into(),
        PbType::Int64 => "Int64".into(),
        PbType::Double => "Double".into(),
        PbType::Message(path) => {
            let name = match special_names.get(path.as_str()) {
                Some((name, _)) => name.clone(),
                None => names
                    .definition(path)
                    .ok_or_else(|| format!("no definition matches {path}"))?
                    .to_owned(),
            };
            format!("Message({name:?})")
        }
    })
}

/// Checks that a field's wire type agrees with its JSON schema, which
/// catches a Rust name matched to the wrong property.
fn check_json_type(field: &PbField, ty: &str, property: Node<'_>) -> Result<(), String> {
    let value = match field.card {
        PbCard::Optional => property,
        PbCard::Repeated => {
            if property.ty() != JsonType::Array {
                return Err(format!("repeated on the wire, {:?} in JSON", property.ty()));
            }
            property.items().ok_or("an array without items")?
        }
        PbCard::Map => {
            if property.ty() != JsonType::Object {
                return Err(format!("a map on the wire, {:?} in JSON", property.ty()));
            }
            property
                .additional_properties()
                .ok_or("a map without additionalProperties")?
        }
    };
    let json = value.ty();
    let ok = match &field.ty {
        PbType::String | PbType::Bytes => json == JsonType::String,
        PbType::Bool => json == JsonType::Boolean,
        PbType::Int32 | PbType::Int64 => json == JsonType::Integer,
        PbType::Double => json == JsonType::Number,
        PbType::Message(_) => {
            let wire = ty.trim_start_matches("Message(\"").trim_end_matches("\")");
            match value.definition_name() {
                Some(def) => def == wire || !wire.starts_with("io.k8s.api."),
                None => true,
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{:?} on the wire, {json:?} in JSON", field.ty))
    }
}

/// Writes the table as Rust source.
fn render(
    version: &str,
    table: &BTreeMap<String, Entry>,
    kinds: &[(String, String, String)],
    meta_kinds: &[(String, String)],
    newer: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// @generated by crates/protobuf/tests/protogen from k8s-pb {version} (field numbers and\n\
         // wire types), tests/protogen/go-fields.txt (Kubernetes 1.32's Go declarations: JSON\n\
         // names, pointers, omitempty) and kinds::openapi::definitions() (JSON types, checked).\n\
         // Do not edit: regenerate with\n\
         //     UPDATE_EXPECT=1 cargo test -p protobuf --test generated\n\
         // {} messages, {} kinds.\n//\n\
         // Fields k8s-pb has that Kubernetes 1.32 does not, skipped like any unknown field:",
        table.len(),
        kinds.len()
    );
    for field in newer {
        let _ = writeln!(out, "//     {field}");
    }
    out.push('\n');
    out.push_str("use crate::table::Card::*;\n");
    out.push_str("use crate::table::Go::*;\n");
    out.push_str("use crate::table::Shape::*;\n");
    out.push_str("use crate::table::Type::*;\n");
    out.push_str("use crate::table::{Field, Message};\n\n");
    out.push_str("/// (apiVersion, kind, message) for every kind the table decodes, sorted.\n");
    out.push_str("pub(crate) static KINDS: &[(&str, &str, &str)] = &[\n");
    for (api_version, kind, def) in kinds {
        let _ = writeln!(out, "    ({api_version:?}, {kind:?}, {def:?}),");
    }
    out.push_str("];\n\n");
    out.push_str("/// (kind, message) for meta/v1 kinds accepted under any apiVersion.\n");
    out.push_str("pub(crate) static META_KINDS: &[(&str, &str)] = &[\n");
    for (kind, def) in meta_kinds {
        let _ = writeln!(out, "    ({kind:?}, {def:?}),");
    }
    out.push_str("];\n\n");
    out.push_str("/// Every message, sorted by name.\n");
    out.push_str("pub(crate) static MESSAGES: &[Message] = &[\n");
    for (name, entry) in table {
        match entry {
            Entry::Special(shape) => {
                let _ = writeln!(out, "    Message {{ name: {name:?}, shape: {shape} }},");
            }
            Entry::Object(fields) => {
                let _ = writeln!(out, "    Message {{ name: {name:?}, shape: Object(&[");
                for f in fields {
                    let _ = writeln!(
                        out,
                        "        Field {{ tag: {}, json: {:?}, ty: {}, card: {}, go: {} }},",
                        f.tag, f.json, f.ty, f.card, f.go
                    );
                }
                out.push_str("    ]) },\n");
            }
        }
    }
    out.push_str("];\n");
    out
}
