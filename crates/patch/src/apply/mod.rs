//! Server-side apply and the field ownership every write maintains.
//!
//! Each object carries `metadata.managedFields`: one entry per manager and
//! kind of write, listing the fields that manager set. An *apply* (a PATCH
//! with `application/apply-patch+yaml`) declares the whole intent of one
//! manager: its entry becomes exactly the fields of its configuration,
//! fields it set last time and left out now are removed from the object
//! (unless another manager also owns them), and setting a field another
//! manager owns to a different value is a conflict unless forced. An
//! ordinary write (create, update, patch) makes its manager own whatever it
//! changed and takes those fields from the others.
//!
//! The algorithms are structured-merge-diff's (`merge.Updater`) wrapped the
//! way the Kubernetes API server wraps them (`managedfields/internal`):
//! entries keyed by manager, operation, subresource and (for updates)
//! version; metadata the server owns never tracked; at most ten update
//! entries, the oldest folded into `ancient-changes`; an existing object
//! without managed fields handed to `before-first-apply` on its first
//! apply; `kubectl`'s migration from client-side apply forgiven its
//! conflicts on fields that still match the last-applied annotation.
//!
//! Not modelled: conversion between API versions (every entry is read
//! against the one schema given, whatever version it was written in) and
//! per-resource reset fields (a status subresource ignoring spec changes).

mod fieldset;
#[cfg(test)]
mod tests;
mod typed;

use std::collections::BTreeMap;

use schema::{Node, Type};
use serde_json::{Map, Value, json};

pub use fieldset::FieldSet;
use fieldset::PathElement;

use crate::fmt::go_json_string;

/// The annotation `kubectl apply` (client-side) keeps its last configuration
/// in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The manager `kubectl apply --server-side` uses by default.
const KUBECTL: &str = "kubectl";
/// The manager that receives an existing object's fields on its first apply.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// The manager the oldest update entries are folded into.
const ANCIENT_CHANGES: &str = "ancient-changes";
/// How many update entries an object keeps before folding the oldest.
const MAX_UPDATE_MANAGERS: usize = 10;

impl FieldSet {
    /// Every field of `value` read through `schema`: its scalar leaves,
    /// atomic maps and lists, the elements of granular lists (with `.`), the
    /// entries of maps, and fields holding null or `{}`.
    pub fn of(value: &Value, schema: Node<'_>) -> Self {
        typed::field_set(value, Some(schema))
    }
}

/// One field an apply would take from another manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager owning the field.
    pub manager: String,
    /// The API version of the owner's entry for an update entry; empty for
    /// an apply entry, which Kubernetes identifies without a version.
    pub api_version: String,
    /// The subresource the owner wrote through (`status`), or empty.
    pub subresource: String,
    /// The field, as Kubernetes prints it (`.spec.replicas`).
    pub field: String,
}

impl Conflict {
    /// The owner as Kubernetes describes it in conflict messages:
    /// `"name"`, plus `with subresource "status"` and `using apps/v1` where
    /// they apply.
    pub fn owner(&self) -> String {
        let mut out = go_json_string(&self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(
                " with subresource {}",
                go_json_string(&self.subresource)
            ));
        }
        if !self.api_version.is_empty() {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// The message of this conflict's cause in the 409 Status
    /// (`conflict with "kubectl-client-side-apply" using apps/v1`); the
    /// cause's `field` is [`Conflict::field`].
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.owner())
    }

    /// The owner's identity as Kubernetes spells it, used to order managers.
    fn identity(&self) -> String {
        let operation = if self.api_version.is_empty() {
            Operation::Apply
        } else {
            Operation::Update
        };
        identity(
            &self.manager,
            operation,
            &self.api_version,
            &self.subresource,
        )
    }
}

/// The message of the 409 Status for `conflicts`, as Kubernetes writes it:
/// `Apply failed with 1 conflict: conflict with "mgr" using apps/v1:
/// .spec.replicas`, or, for several, one block per manager.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.owner(),
            only.field
        );
    }
    let mut by_manager: BTreeMap<String, (&Conflict, Vec<&str>)> = BTreeMap::new();
    for conflict in conflicts {
        by_manager
            .entry(conflict.identity())
            .or_insert_with(|| (conflict, Vec::new()))
            .1
            .push(&conflict.field);
    }
    let mut lines = Vec::new();
    for (conflict, fields) in by_manager.values() {
        lines.push(format!("conflicts with {}:", conflict.owner()));
        lines.extend(fields.iter().map(|f| format!("- {f}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change; retry with force to
    /// take them. Kubernetes answers 409 Conflict.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration (or the live object's managed fields) cannot be
    /// read: duplicate list keys, missing keys, managed fields in the
    /// configuration.
    #[error("{0}")]
    Invalid(String),
}

/// The two kinds of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    /// Written by server-side apply.
    Apply,
    /// Written by an ordinary create, update or patch.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: String,
    time: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn identity(&self) -> String {
        identity(
            &self.manager,
            self.operation,
            &self.api_version,
            &self.subresource,
        )
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("manager".into(), json!(self.manager));
        out.insert("operation".into(), json!(self.operation.as_str()));
        out.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            out.insert("time".into(), json!(time));
        }
        out.insert("fieldsType".into(), json!("FieldsV1"));
        out.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            out.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(out)
    }
}

/// Kubernetes' manager identity: the entry's JSON without time and fields,
/// and without the version for apply entries (one apply entry per manager
/// whatever version it applied with).
fn identity(manager: &str, operation: Operation, api_version: &str, subresource: &str) -> String {
    let mut out = format!(
        "{{\"manager\":{},\"operation\":\"{}\"",
        go_json_string(manager),
        operation.as_str()
    );
    if operation == Operation::Update && !api_version.is_empty() {
        out.push_str(&format!(",\"apiVersion\":{}", go_json_string(api_version)));
    }
    if !subresource.is_empty() {
        out.push_str(&format!(",\"subresource\":{}", go_json_string(subresource)));
    }
    out.push('}');
    out
}

/// The entries of an object, in the object's order.
#[derive(Debug, Clone, Default)]
struct Managed {
    entries: Vec<Entry>,
}

impl Managed {
    /// Reads `metadata.managedFields`.
    fn decode(object: &Value) -> Result<Self, String> {
        let mut managed = Self::default();
        let Some(raw) = object.pointer("/metadata/managedFields") else {
            return Ok(managed);
        };
        let list = match raw {
            Value::Null => return Ok(managed),
            Value::Array(list) => list,
            _ => return Err("metadata.managedFields must be a list".into()),
        };
        for (i, raw) in list.iter().enumerate() {
            let text = |key: &str| raw.get(key).and_then(Value::as_str).unwrap_or("");
            let operation = match text("operation") {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return Err("operation must be `Apply` or `Update`".into()),
            };
            if text("apiVersion").is_empty() {
                return Err("apiVersion must not be empty".into());
            }
            match text("fieldsType") {
                "FieldsV1" => {}
                "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
                other => {
                    return Err(format!(
                        "invalid fieldsType {other:?} in managed fields entry {i}"
                    ));
                }
            }
            let fields = match raw.get("fieldsV1") {
                None | Some(Value::Null) => FieldSet::new(),
                Some(v) => FieldSet::from_fields_v1(v).map_err(|e| e.to_string())?,
            };
            let entry = Entry {
                manager: text("manager").to_owned(),
                operation,
                api_version: text("apiVersion").to_owned(),
                subresource: text("subresource").to_owned(),
                time: raw.get("time").and_then(Value::as_str).map(str::to_owned),
                fields,
            };
            managed.upsert(entry);
        }
        Ok(managed)
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.identity() == id)
    }

    fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.identity() == id)
    }

    /// Inserts `entry`, replacing the entry with the same identity.
    fn upsert(&mut self, entry: Entry) {
        match self.position(&entry.identity()) {
            Some(i) => self.entries[i] = entry,
            None => self.entries.push(entry),
        }
    }

    /// Writes the entries into `object`'s metadata, sorted as Kubernetes
    /// sorts them (apply entries first, then by time, manager, version and
    /// subresource); no entries removes the field.
    fn encode_into(mut self, object: &mut Value) {
        self.entries.retain(|e| !e.fields.is_empty());
        self.entries.sort_by(|a, b| {
            a.operation
                .cmp(&b.operation)
                .then_with(|| unix_seconds(a.time.as_deref()).cmp(&unix_seconds(b.time.as_deref())))
                .then_with(|| a.manager.cmp(&b.manager))
                .then_with(|| a.api_version.cmp(&b.api_version))
                .then_with(|| a.subresource.cmp(&b.subresource))
        });
        let Value::Object(root) = object else { return };
        if self.entries.is_empty() {
            if let Some(Value::Object(meta)) = root.get_mut("metadata") {
                meta.remove("managedFields");
            }
            return;
        }
        let list: Vec<Value> = self.entries.iter().map(Entry::to_json).collect();
        let meta = root
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp (0 when absent or
/// unreadable), to order entries by time as Kubernetes does.
fn unix_seconds(time: Option<&str>) -> i64 {
    fn parse(s: &str) -> Option<i64> {
        let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mut rest = s.get(19..)?;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(frac.len());
            rest = &frac[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = if rest.starts_with('-') { -1 } else { 1 };
                let oh: i64 = rest.get(1..3)?.parse().ok()?;
                let om: i64 = rest.get(4..6)?.parse().ok()?;
                sign * (oh * 3600 + om * 60)
            }
        };
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = if mo <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (mo + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
    }
    time.and_then(parse).unwrap_or(0)
}

/// The fields the server sets and no manager owns (Kubernetes'
/// `stripMetaManager`, plus `deletionTimestamp`).
fn server_fields() -> FieldSet {
    let mut set = FieldSet::new();
    let f = |s: &str| PathElement::Field(s.into());
    set.insert(&[f("apiVersion")]);
    set.insert(&[f("kind")]);
    set.insert(&[f("metadata")]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
        "deletionTimestamp",
    ] {
        set.insert(&[f("metadata"), f(name)]);
    }
    set
}

/// Removes the server's fields from the entry `id`, dropping it if nothing
/// is left.
fn strip_server_fields(managed: &mut Managed, id: &str) {
    if let Some(i) = managed.position(id) {
        let fields = managed.entries[i].fields.difference(&server_fields());
        if fields.is_empty() {
            managed.entries.remove(i);
        } else {
            managed.entries[i].fields = fields;
        }
    }
}

/// `object` without `metadata.managedFields`.
fn without_managed_fields(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.remove("managedFields");
    }
    out
}

/// The object a create starts from, as Kubernetes' empty typed object
/// serialises: structs that are not pointers (`default: {}` in the OpenAPI
/// schema) present and empty, required fields present and null. Comparing
/// against it keeps `.` off the fields that are always there, as in
/// Kubernetes' managed fields for a create.
fn zero_object(schema: Node<'_>) -> Value {
    fn zero(node: Node<'_>, depth: usize) -> Map<String, Value> {
        let mut out = Map::new();
        if depth > 16 {
            return out;
        }
        let required = node.required();
        for (name, property) in node.properties() {
            let struct_default = property
                .keyword("default")
                .is_some_and(|d| d.as_object().is_some_and(Map::is_empty));
            if struct_default && property.ty() == Type::Object {
                out.insert(name.to_owned(), Value::Object(zero(property, depth + 1)));
            } else if required.contains(&name) {
                out.insert(name.to_owned(), Value::Null);
            }
        }
        out
    }
    Value::Object(zero(schema, 0))
}

/// Moves ownership for a change from `old` to `new` by the entry `id`
/// (structured-merge-diff's `update`, forced): every other entry loses the
/// fields that changed, every entry loses the fields that were removed. With
/// `force` false, nothing moves and the fields other entries would lose are
/// returned as conflicts instead.
fn take_changed_fields(
    old: &Value,
    new: &Value,
    managed: &mut Managed,
    id: &str,
    force: bool,
    schema: Node<'_>,
) -> Result<typed::Comparison, Vec<Conflict>> {
    let comparison = typed::compare(old, new, Some(schema));
    let changed = comparison.modified.union(&comparison.added);
    if !force {
        let mut conflicts = Vec::new();
        let mut others: Vec<&Entry> = managed
            .entries
            .iter()
            .filter(|e| e.identity() != id)
            .collect();
        others.sort_by_key(|e| e.identity());
        for entry in others {
            let taken = entry.fields.intersection(&changed);
            for field in taken.paths() {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    api_version: match entry.operation {
                        Operation::Apply => String::new(),
                        Operation::Update => entry.api_version.clone(),
                    },
                    subresource: entry.subresource.clone(),
                    field,
                });
            }
        }
        if !conflicts.is_empty() {
            return Err(conflicts);
        }
    }
    for entry in &mut managed.entries {
        if entry.identity() == id {
            continue;
        }
        entry.fields = entry
            .fields
            .difference(&changed)
            .difference(&comparison.removed);
    }
    managed.entries.retain(|e| !e.fields.is_empty());
    Ok(comparison)
}

/// Records an ordinary write by `manager` (Kubernetes' update path below
/// the decoding): the fields that changed become the manager's, on top of
/// what it owned.
#[allow(clippy::too_many_arguments)]
fn record_update(
    old: &Value,
    new: &Value,
    managed: &mut Managed,
    manager: &str,
    api_version: &str,
    subresource: &str,
    schema: Node<'_>,
    time: &str,
) {
    // The write is accounted to a fresh, nameless entry first, so that the
    // manager's own earlier entry loses removed fields like everyone's.
    let comparison = match take_changed_fields(old, new, managed, "", true, schema) {
        Ok(c) => c,
        Err(_) => return,
    };
    let changed = comparison.modified.union(&comparison.added);
    if changed.is_empty() {
        return;
    }
    let manager = if manager.is_empty() {
        "unknown"
    } else {
        manager
    };
    let id = identity(manager, Operation::Update, api_version, subresource);
    let previous = managed
        .get(&id)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    managed.upsert(Entry {
        manager: manager.to_owned(),
        operation: Operation::Update,
        api_version: api_version.to_owned(),
        subresource: subresource.to_owned(),
        time: Some(time.to_owned()),
        fields: changed.union(&previous),
    });
    strip_server_fields(managed, &id);
    cap_update_entries(managed);
}

/// Folds the oldest update entries into `ancient-changes` (one per
/// version) until at most ten remain (Kubernetes' `capManagersManager`).
fn cap_update_entries(managed: &mut Managed) {
    let mut updaters: Vec<(i64, String)> = managed
        .entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .map(|e| (unix_seconds(e.time.as_deref()), e.identity()))
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort();
    let mut length = updaters.len();
    let mut first_of_version: BTreeMap<String, String> = BTreeMap::new();
    for (_, id) in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = managed.get(&id).cloned() else {
            continue;
        };
        let bucket = identity(ANCIENT_CHANGES, Operation::Update, &entry.api_version, "");
        match first_of_version.get(&entry.api_version) {
            Some(first) => {
                if managed.get(&bucket).is_none()
                    && let Some(i) = managed.position(first)
                {
                    let mut moved = managed.entries.remove(i);
                    moved.manager = ANCIENT_CHANGES.into();
                    moved.subresource = String::new();
                    managed.upsert(moved);
                }
                if let Some(i) = managed.position(&bucket) {
                    let bucket_entry = &mut managed.entries[i];
                    bucket_entry.fields = entry.fields.union(&bucket_entry.fields);
                    bucket_entry.time = entry.time.clone();
                }
                if let Some(i) = managed.position(&id) {
                    managed.entries.remove(i);
                }
                length -= 1;
            }
            None => {
                first_of_version.insert(entry.api_version.clone(), id);
            }
        }
    }
}

/// Field tracking for an ordinary write (create, update, patch) by
/// `manager` (operation `Update`, through `subresource` if given): fields
/// that changed from `old` to `new` become owned by `manager` and are taken
/// from other managers. Returns `new` with `metadata.managedFields`
/// updated; `old` is `None` for a create.
///
/// As in Kubernetes, `new` may carry managed fields of its own, which then
/// replace the old ones (`[]` clears them); an existing object without any
/// is left untracked until its first apply.
pub fn track_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    schema: Node<'_>,
    time: &str,
) -> Value {
    let subresource = subresource.unwrap_or("");
    let from_old = || {
        old.map(|o| Managed::decode(o).unwrap_or_default())
            .unwrap_or_default()
    };
    let sent = new.pointer("/metadata/managedFields");
    let managed = if !subresource.is_empty() {
        from_old()
    } else if is_reset(sent) {
        Managed::default()
    } else {
        match Managed::decode(new) {
            Ok(m) if !m.is_empty() => m,
            _ => from_old(),
        }
    };
    let mut out = without_managed_fields(new);
    let existing = old.is_some_and(|o| {
        o.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .is_some_and(|uid| !uid.is_empty())
    });
    if managed.is_empty() && existing {
        // Kubernetes starts tracking an object that has no managed fields
        // only at its first apply.
        return out;
    }
    let mut managed = managed;
    let old_plain = match old {
        Some(old) => without_managed_fields(old),
        None => zero_object(schema),
    };
    record_update(
        &old_plain,
        &out,
        &mut managed,
        manager,
        api_version,
        subresource,
        schema,
        time,
    );
    managed.encode_into(&mut out);
    out
}

/// Whether a write's managed fields ask for a reset: an empty list, or a
/// single empty entry.
fn is_reset(sent: Option<&Value>) -> bool {
    match sent {
        Some(Value::Array(list)) => match list.as_slice() {
            [] => true,
            [only] => only.as_object().is_some_and(Map::is_empty),
            _ => false,
        },
        _ => false,
    }
}

/// Server-side apply of `config` (the user's partial object) by `manager`
/// onto `live` (`None` when the object does not exist yet).
///
/// Returns the merged object with `metadata.managedFields` updated: this
/// manager's apply entry holds exactly the fields of `config`; fields it
/// owned before but dropped from its configuration are removed from the
/// object unless another manager also owns them; setting a field another
/// manager owns to a different value is a conflict, unless `force`, which
/// takes the field over. `time` is the RFC 3339 timestamp recorded in the
/// entries that change; `api_version` the version the request used.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    api_version: &str,
    force: bool,
    schema: Node<'_>,
    time: &str,
) -> Result<Value, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::Invalid(
            "the apply configuration must be an object".into(),
        ));
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    typed::validate(config, Some(schema)).map_err(|err| {
        ApplyError::Invalid(format!(
            "failed to create typed patch object ({}): {err}",
            describe(config)
        ))
    })?;

    let empty = Value::Object(Map::new());
    let live_object = live.unwrap_or(&empty);
    let mut managed = Managed::decode(live_object)
        .map_err(|err| ApplyError::Invalid(format!("failed to decode managed fields: {err}")))?;
    let live_plain = without_managed_fields(live_object);
    if managed.is_empty() && live.is_some() {
        // An object written before anyone tracked it: its fields go to a
        // placeholder manager, so that the apply does not silently take
        // them and can conflict with them.
        record_update(
            &zero_object(schema),
            &live_plain,
            &mut managed,
            BEFORE_FIRST_APPLY,
            api_version,
            "",
            schema,
            time,
        );
    }

    let attempt = |managed: Managed, force: bool| {
        apply_once(
            &live_plain,
            config,
            managed,
            manager,
            api_version,
            force,
            schema,
            time,
        )
    };
    let (mut object, managed) = match attempt(managed.clone(), force) {
        Err(ApplyError::Conflicts(conflicts)) if manager == KUBECTL => {
            // kubectl moving from client-side to server-side apply: the
            // fields it set before (per the last-applied annotation) and
            // that still hold those values are its own.
            match fields_from_last_applied(&live_plain, api_version, schema) {
                Some(allowed) => {
                    let remaining: Vec<Conflict> = conflicts
                        .iter()
                        .filter(|c| !allowed.contains(&c.field))
                        .cloned()
                        .collect();
                    if remaining.is_empty() {
                        attempt(managed, true)?
                    } else {
                        return Err(ApplyError::Conflicts(remaining));
                    }
                }
                None => return Err(ApplyError::Conflicts(conflicts)),
            }
        }
        other => other?,
    };

    if manager == KUBECTL {
        refresh_last_applied(&mut object, config);
    }
    managed.encode_into(&mut object);
    Ok(object)
}

/// One apply (structured-merge-diff's `Updater.Apply`).
#[allow(clippy::too_many_arguments)]
fn apply_once(
    live: &Value,
    config: &Value,
    mut managed: Managed,
    manager: &str,
    api_version: &str,
    force: bool,
    schema: Node<'_>,
    time: &str,
) -> Result<(Value, Managed), ApplyError> {
    let manager = if manager.is_empty() {
        "unknown"
    } else {
        manager
    };
    let id = identity(manager, Operation::Apply, "", "");
    let merged = typed::merge(live, config, Some(schema))
        .map_err(|err| ApplyError::Invalid(format!("failed to merge config: {err}")))?;
    let previous = managed.get(&id).cloned();
    managed.upsert(Entry {
        manager: manager.to_owned(),
        operation: Operation::Apply,
        api_version: api_version.to_owned(),
        subresource: String::new(),
        time: previous.as_ref().and_then(|p| p.time.clone()),
        fields: typed::field_set(config, Some(schema)),
    });
    let merged = match &previous {
        Some(last) if !last.fields.is_empty() => prune(merged, &managed, &last.fields, schema),
        _ => merged,
    };
    take_changed_fields(live, &merged, &mut managed, &id, force, schema)
        .map_err(ApplyError::Conflicts)?;
    let mut merged = merged;
    typed::drop_config_nulls(&mut merged, config);
    strip_server_fields(&mut managed, &id);
    if let Some(i) = managed.position(&id) {
        // The entry's time moves when the object changed, and is set on a
        // new entry.
        let entry = &mut managed.entries[i];
        if !typed::equal(live, &merged) || entry.time.is_none() {
            entry.time = Some(time.to_owned());
        }
    }
    Ok((merged, managed))
}

/// Removes from `merged` the fields the applier owned last time (`last`)
/// that no manager owns now (structured-merge-diff's `prune`, with its
/// add-back passes).
fn prune(merged: Value, managed: &Managed, last: &FieldSet, schema: Node<'_>) -> Value {
    let sc = Some(schema);
    let named = |set: &FieldSet| typed::with_named_fields(set, sc);
    let last = named(last);
    let pruned = typed::remove(&merged, &last, sc);

    // Put back what someone (the applier's new configuration included)
    // still owns.
    let owned = managed
        .entries
        .iter()
        .fold(FieldSet::new(), |acc, e| acc.union(&e.fields));
    let merged_set = named(&typed::field_set(&merged, sc));
    let pruned_set = named(&typed::field_set(&pruned, sc));
    let drop = merged_set.difference(&pruned_set.union(&named(&owned)));
    let pruned = typed::remove(&merged, &drop, sc);

    // Remove only what the applier owned before: fields nobody owns (set by
    // defaulting, say) stay.
    let pruned_set = named(&typed::field_set(&pruned, sc));
    let drop = merged_set.difference(&pruned_set).intersection(&last);
    typed::remove(&merged, &drop, sc)
}

/// The fields of the last-applied annotation whose values the live object
/// still has, as printed paths; `None` without a usable annotation.
fn fields_from_last_applied(
    live: &Value,
    api_version: &str,
    schema: Node<'_>,
) -> Option<Vec<String>> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    typed::validate(&last, Some(schema)).ok()?;
    let set = typed::field_set(&last, Some(schema));
    let comparison = typed::compare(&last, live, Some(schema));
    Some(
        set.difference(&comparison.modified)
            .difference(&comparison.added)
            .difference(&comparison.removed)
            .paths(),
    )
}

/// Rewrites the last-applied annotation, if the object has one, to the
/// configuration just applied (Kubernetes keeps it in step so that a later
/// client-side apply computes the right patch).
fn refresh_last_applied(object: &mut Value, config: &Value) {
    let has = object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has {
        return;
    }
    let mut applied = config.clone();
    if let Some(Value::Object(annotations)) = applied.pointer_mut("/metadata/annotations") {
        annotations.remove(LAST_APPLIED);
    }
    let text = crate::fmt::go_json(&applied);
    if let Some(Value::Object(annotations)) = object.pointer_mut("/metadata/annotations") {
        annotations.insert(LAST_APPLIED.into(), Value::String(text));
    }
}

/// `namespace/name; group/version, Kind=kind`, as Kubernetes names an
/// object in apply errors.
fn describe(object: &Value) -> String {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
    let api_version = text("/apiVersion");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!(
        "{}/{}; {}/{}, Kind={}",
        text("/metadata/namespace"),
        text("/metadata/name"),
        group,
        version,
        text("/kind")
    )
}
