//! The built-in kinds of the Kubernetes API, as data and pure functions.
//!
//! For every resource the API server serves, a [`ResourceDef`] says where it
//! lives (group, version, plural, scope), what clients may do with it (verbs,
//! subresources), how it is stored (which storage version, how other served
//! versions convert to it), and, through its [`Strategy`], what the server
//! does to an object on the way in (defaults, field resets, validation) and
//! how it prints (table columns). The generic REST engine in `apiserver`
//! does everything else the same way for every kind.
//!
//! Objects travel as `serde_json::Value` in the storage version of their
//! kind; a strategy may decode them into k8s-openapi's typed structs to do
//! its work. Nothing here does I/O or reads a clock: time is passed in.

use std::sync::Arc;

use serde_json::Value;

pub mod catalog;
pub mod custom;
pub mod openapi;
pub mod selector;
pub mod table;
pub mod typed;
pub mod usage;
pub mod validation;

mod apiextensions;
mod apps;
mod autoscaling;
mod batch;
mod coordination;
mod core;
mod legacy;
mod networking;
mod overlay;
mod policy;
mod rbac;
mod review;
pub use review::validate_token_request;
mod scheduling;
pub mod storage;

/// Resource quantities as Kubernetes parses and compares them (`500m`, `1Gi`).
pub use self::core::quantity::{Notation, Quantity, parse as parse_quantity};
pub use catalog::builtin;

/// Each API group's module contributes its resources through one function.
const GROUPS: &[fn() -> Vec<ResourceDef>] = &[
    core::resources,
    apps::resources,
    batch::resources,
    autoscaling::resources,
    policy::resources,
    networking::resources,
    storage::resources,
    coordination::resources,
    scheduling::resources,
    rbac::resources,
    review::resources,
    apiextensions::resources,
    legacy::resources,
];

/// One resource as served at one group/version, such as `deployments` in
/// `apps/v1`, or in `extensions/v1beta1` (converted to `apps/v1` storage).
#[derive(Clone)]
pub struct ResourceDef {
    /// API group; empty for the core group (`/api/v1`).
    pub group: String,
    /// Served version, such as `v1` or `v1beta1`.
    pub version: String,
    /// Kind, such as `Deployment`.
    pub kind: String,
    /// Plural resource name used in URLs, such as `deployments`.
    pub plural: String,
    /// Singular name, such as `deployment`.
    pub singular: String,
    /// Short names `kubectl` accepts, such as `deploy`.
    pub short_names: Vec<String>,
    /// Categories, such as `all`.
    pub categories: Vec<String>,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Verbs on the collection and its objects: any of `create`, `delete`,
    /// `deletecollection`, `get`, `list`, `patch`, `update`, `watch`.
    pub verbs: Vec<String>,
    /// Subresources, such as `status` and `scale`.
    pub subresources: Vec<Subresource>,
    /// Where and in which version objects are stored. Several served
    /// versions share one storage.
    pub storage: Storage,
    /// Whether this is the group's preferred version.
    pub preferred: bool,
    /// The OpenAPI definition describing this version's objects, such as
    /// `io.k8s.api.apps.v1.Deployment`; `None` when there is none (old
    /// versions k8s-openapi does not have).
    pub schema: Option<String>,
    /// What the server does to objects of this kind.
    pub strategy: Arc<dyn Strategy>,
    /// How objects in this version convert to and from the storage version;
    /// `None` when this version is the storage version.
    pub conversion: Option<Arc<dyn Conversion>>,
}

impl std::fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} {}", self.group_version(), self.plural, self.kind)
    }
}

impl ResourceDef {
    /// `apps/v1`, or `v1` for the core group.
    pub fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The subresource named `name`, if served.
    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// `Deployment.apps` or `Pod`: how Kubernetes names a kind in messages
    /// (`Deployment.apps "web" is invalid: ...`).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

/// A subresource, such as `pods/status` or `deployments/scale`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subresource {
    /// Its name in the URL: `status`, `scale`, `binding`, `eviction`, `log`,
    /// `exec`, `attach`, `portforward`, `proxy`, `ephemeralcontainers`.
    pub name: String,
    /// The group/version/kind it takes and returns, such as
    /// `autoscaling/v1 Scale`; the parent's own for `status`.
    pub group: String,
    /// See `group`.
    pub version: String,
    /// See `group`.
    pub kind: String,
    /// Verbs it supports, such as `get`, `patch`, `update` or `create`.
    pub verbs: Vec<String>,
}

/// Where objects of a resource are kept: `/registry/<group>/<resource>/...`,
/// in `version`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Storage {
    /// Group of the storage resource (empty for core).
    pub group: String,
    /// Resource, such as `deployments` (or `events` for both core and
    /// `events.k8s.io` events).
    pub resource: String,
    /// The version objects are stored in, such as `v1`.
    pub version: String,
}

/// What the server does to objects of one kind, on top of what it does to
/// every object (uid, names, resourceVersion, timestamps, finalizers, ...).
///
/// Every method receives and returns objects in the storage version, as
/// JSON. The engine calls, for a create: `check_types`, `default`,
/// `prepare_create`, `validate(obj, None)`; for an update or patch:
/// `check_types`, `default`, `prepare_update`, `validate(new, Some(old))`;
/// for a write through the status subresource: `check_types`,
/// `prepare_status_update`, `validate_status`.
pub trait Strategy: Send + Sync {
    /// Decodes `obj` into its typed form to find values of the wrong type
    /// (a string where a number belongs, ...). The error names the field.
    fn check_types(&self, obj: &Value) -> Result<(), FieldError>;

    /// Fills in defaults, as Kubernetes' defaulters do (for a Pod:
    /// `restartPolicy: Always`, `dnsPolicy: ClusterFirst`, each container's
    /// `imagePullPolicy` and `terminationMessagePath`, ...).
    fn default(&self, obj: &mut Value);

    /// Resets what a create may not set, such as `status` when the kind has
    /// a status subresource.
    fn prepare_create(&self, obj: &mut Value);

    /// Resets what an update of the main resource may not change, such as
    /// `status` (kept from `old`) when the kind has a status subresource.
    fn prepare_update(&self, new: &mut Value, old: &Value);

    /// Keeps everything but `status` from `old` on a status write.
    fn prepare_status_update(&self, new: &mut Value, old: &Value);

    /// Checks an object about to be created (`old` is `None`) or to replace
    /// `old`: required fields, formats, ranges, immutable fields.
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError>;

    /// Checks an object whose status is about to be written.
    fn validate_status(&self, obj: &Value, old: &Value) -> Vec<FieldError>;

    /// Whether a change to anything outside `metadata` and `status` bumps
    /// `metadata.generation` (true for most kinds with a spec).
    fn tracks_generation(&self) -> bool;

    /// Whether the kind has a status written only through `/status`.
    fn has_status_subresource(&self) -> bool;

    /// Which names objects of this kind may have.
    fn name_rule(&self) -> NameRule {
        NameRule::DnsSubdomain
    }

    /// The columns `kubectl get` shows, in order. Columns with priority 0
    /// show by default; priority 1 only with `-o wide`.
    fn columns(&self) -> Vec<Column>;

    /// One cell per column for `obj`; `now` is seconds since the Unix epoch,
    /// for ages.
    fn row(&self, obj: &Value, now: i64) -> Vec<Value>;

    /// Field-selector labels of `obj`, beyond `metadata.name` and
    /// `metadata.namespace` (which every kind has): for a Pod,
    /// `spec.nodeName`, `status.phase`, ...
    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)>;

    /// Where the `scale` subresource reads and writes replicas, for kinds
    /// that say so themselves (custom resources); `None` for the built-in
    /// layout (`spec.replicas`, `status.replicas`, `spec.selector`).
    fn scale_paths(&self) -> Option<&ScalePaths> {
        None
    }
}

/// A custom resource's `scale` subresource, as its CRD declares it: JSON
/// pointers (`/spec/replicas`) into the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// The desired replicas (`specReplicasPath`).
    pub spec_replicas: String,
    /// The observed replicas (`statusReplicasPath`).
    pub status_replicas: String,
    /// The label selector as a string (`labelSelectorPath`), if declared.
    pub label_selector: Option<String>,
}

/// Converts objects of one served version to and from the storage version.
pub trait Conversion: Send + Sync {
    /// Converts an object as a client sent it to the storage version (also
    /// applying the served version's defaults, which may differ).
    fn to_storage(&self, obj: Value) -> Result<Value, FieldError>;

    /// Converts a stored object to the served version.
    #[allow(clippy::wrong_self_convention)]
    fn from_storage(&self, obj: Value) -> Value;
}

/// Which names objects of a kind may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS subdomain (RFC 1123): lowercase alphanumerics, `-` and `.`,
    /// at most 253 characters. Most kinds.
    DnsSubdomain,
    /// A DNS label (RFC 1123): lowercase alphanumerics and `-`, at most 63
    /// characters, such as namespaces.
    DnsLabel,
    /// An RFC 1035 label (must start with a letter), such as services.
    Dns1035Label,
    /// Anything usable as a path segment (not `.`, `..`, no `/` or `%`),
    /// such as RBAC roles.
    PathSegment,
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Header, such as `READY`.
    pub name: String,
    /// OpenAPI type of the cells: `string`, `integer`, `number`, `boolean`.
    pub ty: String,
    /// OpenAPI format, such as `name` (the first column) or `date`.
    pub format: String,
    /// What the column shows.
    pub description: String,
    /// 0: shown by default; 1: shown with `-o wide`.
    pub priority: i32,
}

/// One problem with one field, in the terms of Kubernetes' field errors:
/// it becomes a cause in a `422 Invalid` Status (`spec.replicas: Invalid
/// value: -1: must be greater than or equal to 0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of problem.
    pub kind: FieldErrorKind,
    /// Path of the field, such as `spec.containers[0].image`.
    pub field: String,
    /// The offending value, rendered as Kubernetes renders it (strings
    /// quoted), when there is one.
    pub value: Option<String>,
    /// What is wrong, such as `must be greater than or equal to 0`.
    pub detail: String,
}

/// The kinds of field errors Kubernetes distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A required field is missing (`Required value`).
    Required,
    /// A value is malformed or out of range (`Invalid value`).
    Invalid,
    /// A value is not one of the supported ones (`Unsupported value`).
    NotSupported,
    /// A value appears twice (`Duplicate value`).
    Duplicate,
    /// A value is not allowed here (`Forbidden`).
    Forbidden,
    /// A value is too long (`Too long`).
    TooLong,
    /// A value has the wrong JSON type (`Invalid value`, decoding error).
    TypeInvalid,
    /// A referenced value does not exist (`Not found`).
    NotFound,
    /// A list has too many items (`Too many`).
    TooMany,
}

impl FieldErrorKind {
    /// The `reason` of a Status cause for this kind of error.
    pub fn cause_reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid | FieldErrorKind::TypeInvalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::TooMany => "FieldValueTooMany",
        }
    }
}

impl FieldError {
    /// A missing required field.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// A malformed or out-of-range value.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// A value outside the supported set; `detail` lists the supported ones.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: FieldErrorKind::NotSupported,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// A repeated value.
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Duplicate,
            field: field.into(),
            value: Some(value.into()),
            detail: String::new(),
        }
    }

    /// A value not allowed here.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// The message of the error as Kubernetes words it, without the field:
    /// `Invalid value: -1: must be greater than or equal to 0`.
    pub fn message(&self) -> String {
        let head = match self.kind {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid | FieldErrorKind::TypeInvalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::TooMany => "Too many",
        };
        match (&self.value, self.detail.is_empty()) {
            (Some(v), false) => format!("{head}: {v}: {}", self.detail),
            (Some(v), true) => format!("{head}: {v}"),
            (None, false) => format!("{head}: {}", self.detail),
            (None, true) => head.to_owned(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_read_like_kubernetes() {
        let e = FieldError::invalid("spec.replicas", "-1", "must be greater than or equal to 0");
        assert_eq!(
            e.to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            FieldError::required("spec.containers", "").to_string(),
            "spec.containers: Required value"
        );
        assert_eq!(
            FieldError::not_supported(
                "spec.restartPolicy",
                "\"Sometimes\"",
                "supported values: \"Always\", \"OnFailure\", \"Never\""
            )
            .to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        assert_eq!(
            FieldErrorKind::Duplicate.cause_reason(),
            "FieldValueDuplicate"
        );
    }
}
