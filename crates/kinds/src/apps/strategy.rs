//! One `Strategy` implementation for every kind in these modules: each kind
//! supplies its hooks as plain functions, and the parts that are the same
//! everywhere (type checks through k8s-openapi, status handling) live here.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::core::podspec;
use crate::typed;
use crate::{Column, FieldError, NameRule, Strategy};

/// Validation of a create (`old` is `None`) or an update.
pub(crate) type Validate = fn(&Value, Option<&Value>) -> Vec<FieldError>;

/// The hooks of one kind. `T` is k8s-openapi's type for the storage
/// version, used to check value types.
pub(crate) struct KindStrategy<T> {
    /// Whether the kind has a `status` written only through `/status`.
    pub status: bool,
    /// Whether spec changes bump `metadata.generation`.
    pub generation: bool,
    /// Which names objects may have.
    pub names: NameRule,
    /// Where a workload keeps its pod template (a JSON pointer such as
    /// `/spec/template`), whose quantities are checked with the types.
    pub template: Option<&'static str>,
    /// Fills in defaults.
    pub default: fn(&mut Value),
    /// Resets what a create may not set, after the status is cleared.
    pub prepare_create: fn(&mut Value),
    /// Resets what an update may not change, after the status is kept.
    pub prepare_update: fn(&mut Value, &Value),
    /// Adjusts a status write, after everything but the status is kept.
    pub prepare_status: fn(&mut Value, &Value),
    /// Validates creates and updates.
    pub validate: Validate,
    /// Validates status writes.
    pub validate_status: fn(&Value, &Value) -> Vec<FieldError>,
    /// The table columns.
    pub columns: fn() -> Vec<Column>,
    /// One row of cells.
    pub row: fn(&Value, i64) -> Vec<Value>,
    /// Field-selector labels beyond name and namespace.
    pub selectable: fn(&Value) -> Vec<(String, String)>,
    /// The typed form.
    pub typed: PhantomData<fn() -> T>,
}

impl<T> KindStrategy<T> {
    /// A kind without hooks: no defaults, no checks beyond types, a table of
    /// name and age; set the fields that differ.
    pub(crate) fn new(columns: fn() -> Vec<Column>, row: fn(&Value, i64) -> Vec<Value>) -> Self {
        KindStrategy {
            status: false,
            generation: false,
            names: NameRule::DnsSubdomain,
            template: None,
            default: |_| {},
            prepare_create: |_| {},
            prepare_update: |_, _| {},
            prepare_status: |_, _| {},
            validate: |_, _| Vec::new(),
            validate_status: |_, _| Vec::new(),
            columns,
            row,
            selectable: |_| Vec::new(),
            typed: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Strategy for KindStrategy<T> {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        typed::decode::<T>(obj)?;
        // Kubernetes rejects a malformed quantity while decoding, before
        // defaults and validation, as it does for Pods.
        match self.template {
            Some(pointer) => podspec::check_template_quantities(obj, pointer),
            None => Ok(()),
        }
    }

    fn default(&self, obj: &mut Value) {
        (self.default)(obj);
    }

    fn prepare_create(&self, obj: &mut Value) {
        if self.status {
            typed::clear_status(obj);
        }
        (self.prepare_create)(obj);
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        if self.status {
            typed::keep_status(new, old);
        }
        (self.prepare_update)(new, old);
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
        (self.prepare_status)(new, old);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        (self.validate)(obj, old)
    }

    fn validate_status(&self, obj: &Value, old: &Value) -> Vec<FieldError> {
        (self.validate_status)(obj, old)
    }

    fn tracks_generation(&self) -> bool {
        self.generation
    }

    fn has_status_subresource(&self) -> bool {
        self.status
    }

    fn name_rule(&self) -> NameRule {
        self.names
    }

    fn columns(&self) -> Vec<Column> {
        (self.columns)()
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        (self.row)(obj, now)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        (self.selectable)(obj)
    }
}

/// On a status write of an apps kind, labels stay as they were: Kubernetes
/// resets `metadata.labels` along with the spec for these kinds.
pub(crate) fn keep_labels(new: &mut Value, old: &Value) {
    let labels = old.get("metadata").and_then(|m| m.get("labels")).cloned();
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        match labels {
            Some(l) => {
                meta.insert("labels".into(), l);
            }
            None => {
                meta.remove("labels");
            }
        }
    }
}

/// The columns of kinds Kubernetes prints with its default table: `Name`
/// and `Created At` (RBAC roles, CustomResourceDefinitions).
pub(crate) fn created_at_columns() -> Vec<Column> {
    vec![
        crate::table::name_column(),
        Column {
            ty: "date".into(),
            ..crate::table::column(
                "Created At",
                "date",
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            )
        },
    ]
}

/// The cells of the default table: the name and the creation time in
/// RFC 3339 (UTC), Go's zero time when unknown.
pub(crate) fn created_at_row(obj: &Value, _now: i64) -> Vec<Value> {
    let created = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
    vec![crate::table::name(obj), Value::String(created)]
}
