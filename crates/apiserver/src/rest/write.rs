//! Create, update, patch and delete.
//!
//! Every write follows the same steps: decode the body, check its fields
//! against the schema (`fieldValidation`), convert it to the storage
//! version, check types, apply defaults, set what only the server sets
//! (uid, timestamps, generation, managedFields), let the strategy reset what
//! the request may not change, validate, admit, and commit in one store
//! transaction conditioned on the revision that was read. If another writer
//! got there first, a write the client did not make conditional (no
//! `resourceVersion`) is simply redone on the new object; a conditional one
//! fails with 409 Conflict.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use kinds::{FieldError, ResourceDef};
use schema::SchemaSet;
use serde_json::{Value, json};
use store::{Compare, CompareOp, DeleteRequest, PutRequest, Revision, TxnOp, TxnRequest};

use super::read::{self, Selection};
use super::{Target, body_format, json_response, with_warnings};
use crate::admission::{self, Extra};
use crate::codec;
use crate::meta;
use crate::status::{ApiError, ApiResult};
use crate::storage;

/// How many times an unconditional write is redone after losing a race.
const MAX_ATTEMPTS: usize = 16;

/// `?fieldValidation=`: what to do about unknown and duplicate fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and say so in Warning headers (the default).
    Warn,
    /// Refuse the request.
    Strict,
}

impl FieldValidation {
    fn parse(t: &Target) -> ApiResult<Self> {
        match t.query.get("fieldValidation").unwrap_or("") {
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            "Strict" => Ok(Self::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}; supported values are Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Unknown and duplicate fields of a request body, as Kubernetes words them.
#[derive(Debug, Default)]
pub(crate) struct FieldProblems(Vec<String>);

impl FieldProblems {
    fn new(duplicates: &[String]) -> Self {
        Self(
            duplicates
                .iter()
                .map(|d| format!("duplicate field \"{d}\""))
                .collect(),
        )
    }

    /// Drops fields the schema does not know from `obj`, noting them.
    fn prune(&mut self, set: &SchemaSet, def: &ResourceDef, obj: &mut Value) {
        if let Some(node) = def.schema.as_deref().and_then(|n| set.get(n)) {
            for path in schema::prune(node, obj) {
                let path = path.trim_start_matches('.');
                self.0.push(format!("unknown field \"{path}\""));
            }
        }
    }

    /// Under Strict, the error for a create or update; under Warn, the
    /// warnings to send.
    fn check(self, mode: FieldValidation, def: &ResourceDef) -> ApiResult<Vec<String>> {
        if self.0.is_empty() || mode == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        if mode == FieldValidation::Strict {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
                self.0.join(", "),
                kind = def.kind,
                v = def.version,
            )));
        }
        Ok(self.0)
    }

    /// As `check`, for a patch: Kubernetes reports these as an invalid
    /// `patch` field (422).
    fn check_patch(self, mode: FieldValidation, patched: &Value) -> ApiResult<Vec<String>> {
        if self.0.is_empty() || mode == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        if mode == FieldValidation::Strict {
            let err = FieldError::invalid(
                "patch",
                serde_json::Value::String(patched.to_string()).to_string(),
                format!("strict decoding error: {}", self.0.join(", ")),
            );
            let mut e = ApiError::invalid("", "", "", &[err]);
            e.message = format!("The request is invalid: {}", e.causes[0].message);
            e.name = None;
            e.kind = None;
            return Err(e);
        }
        Ok(self.0)
    }
}

/// Reads the request body as an object.
fn decode_body(t: &Target, body: &Bytes) -> ApiResult<codec::Body> {
    let format = body_format(t)?;
    let decoded = codec::decode(body, format)?;
    if !decoded.value.is_object() {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    Ok(decoded)
}

/// Checks the body's apiVersion and kind against the endpoint, filling them
/// in when absent.
fn check_type_meta(t: &Target, obj: &mut Value) -> ApiResult<()> {
    let want_version = t.def.group_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(want_version),
        Some(v) if v == want_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(t.def.kind),
        Some(k) if k == t.def.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                t.def.kind
            )));
        }
    }
    Ok(())
}

/// Sets or checks the namespace of an object sent to a namespaced path.
fn check_namespace(t: &Target, obj: &mut Value) -> ApiResult<()> {
    if !t.def.namespaced {
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("namespace");
        }
        return Ok(());
    }
    let Some(ns) = t.path.namespace.as_deref() else {
        return Err(ApiError::bad_request(
            "the namespace of the object must be given in the request path",
        ));
    };
    match meta::meta_str(obj, "namespace") {
        None | Some("") => {
            meta::metadata_mut(obj).insert("namespace".into(), json!(ns));
            Ok(())
        }
        Some(given) if given == ns => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
}

/// A served-version object in storage form, types checked.
fn to_storage(t: &Target, obj: Value) -> ApiResult<Value> {
    let storage_def = t.storage_def();
    let mut obj = match &t.def.conversion {
        Some(conversion) => conversion.to_storage(obj).map_err(|e| {
            ApiError::invalid(&t.def.group, &t.def.kind, "", std::slice::from_ref(&e))
        })?,
        None => obj,
    };
    obj["apiVersion"] = json!(t.storage_api_version());
    obj["kind"] = json!(storage_def.kind);
    storage_def.strategy.check_types(&obj).map_err(|e| {
        let at = if e.field.is_empty() {
            String::new()
        } else {
            format!("{}: ", e.field)
        };
        ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {at}{}",
            e.detail,
            kind = t.def.kind,
            v = t.def.version,
        ))
    })?;
    Ok(obj)
}

/// Server-owned metadata a client may not set on create.
fn init_metadata(t: &Target, obj: &mut Value) -> ApiResult<()> {
    let tracks = t.storage_def().strategy.tracks_generation();
    let m = meta::metadata_mut(obj);
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "selfLink",
        "managedFields",
    ] {
        m.remove(field);
    }
    let has_name = m
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name
        && let Some(base) = m
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty())
    {
        let generated = meta::generate_name(base);
        m.insert("name".into(), json!(generated));
    }
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
    if tracks {
        m.insert("generation".into(), json!(1));
    }
    Ok(())
}

/// Server-owned metadata an update keeps from the stored object.
fn keep_metadata(t: &Target, new: &mut Value, old: &Value) {
    let tracks = t.storage_def().strategy.tracks_generation();
    let spec_changed = {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        strip(new) != strip(old)
    };
    let m = meta::metadata_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
    ] {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(v) => {
                m.insert(field.into(), v.clone());
            }
            None => {
                m.remove(field);
            }
        }
    }
    m.remove("selfLink");
    m.remove("generateName");
    if let Some(g) = old.pointer("/metadata/generateName") {
        m.insert("generateName".into(), g.clone());
    }
    let old_generation = old.pointer("/metadata/generation").and_then(Value::as_i64);
    match old_generation {
        Some(g) if tracks && spec_changed => {
            m.insert("generation".into(), json!(g + 1));
        }
        Some(g) => {
            m.insert("generation".into(), json!(g));
        }
        None => {
            m.remove("generation");
        }
    }
}

/// The schema node managed fields are tracked against.
fn storage_schema<'a>(t: &Target, set: &'a SchemaSet) -> Option<schema::Node<'a>> {
    t.storage_def().schema.as_deref().and_then(|n| set.get(n))
}

/// Records the fields a write changed in `managedFields`.
fn track_fields(
    t: &Target,
    set: &SchemaSet,
    old: Option<&Value>,
    new: Value,
    subresource: Option<&str>,
) -> Value {
    match storage_schema(t, set) {
        Some(node) => patch::apply::track_update(
            old,
            &new,
            &t.field_manager(),
            &t.def.group_version(),
            subresource,
            node,
            &meta::now_rfc3339(),
        ),
        None => new,
    }
}

/// Validation every write runs: metadata, then the kind's own rules.
fn validate(t: &Target, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let storage_def = t.storage_def();
    let mut errors = meta::validate(obj, storage_def.strategy.name_rule(), t.def.namespaced);
    if let Some(old) = old
        && meta::name(old) != meta::name(obj)
    {
        errors.push(FieldError::invalid(
            "metadata.name",
            kinds::validation::quote(meta::name(obj)),
            "field is immutable",
        ));
    }
    // An object being deleted may lose finalizers but gain none.
    if let Some(old) = old
        && meta::is_deleting(old)
    {
        let before = meta::finalizers(old);
        let mut added: Vec<String> = meta::finalizers(obj)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            added.sort();
            added.dedup();
            let quoted: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            errors.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, \
                     found new finalizers []string{{{}}}",
                    quoted.join(", ")
                ),
            ));
        }
    }
    errors.extend(storage_def.strategy.validate(obj, old));
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &t.def.group,
        &t.def.kind,
        meta::name(obj),
        &errors,
    ))
}

/// Commits `obj` at `key` if the key is still at `expected` (0: absent).
/// Returns the new revision, or `None` if someone else wrote first.
pub(crate) async fn commit(
    t: &Target,
    key: &str,
    obj: Option<&Value>,
    expected: Revision,
    extra: Extra,
) -> ApiResult<Option<Revision>> {
    let mut compare = vec![Compare::mod_revision(
        key.to_owned(),
        CompareOp::Equal,
        expected,
    )];
    let extra_checks = extra.compares.clone();
    let extra_contended = extra.contended;
    compare.extend(extra.compares);
    let mut ops = vec![match obj {
        Some(obj) => TxnOp::Put(PutRequest::new(key.to_owned(), storage::encode(obj))),
        None => TxnOp::Delete(DeleteRequest::key(key.to_owned())),
    }];
    ops.extend(extra.ops);
    let resp = t
        .api
        .store
        .txn(TxnRequest::when(compare).and_then(ops))
        .await?;
    if resp.succeeded {
        return Ok(Some(resp.revision));
    }
    // Tell a lost race on the object from a reservation that was taken.
    if !extra_checks.is_empty() {
        let current = t
            .api
            .store
            .range(store::RangeRequest::key(key.to_owned()))
            .await?;
        let still = current.kvs.first().map_or(0, |kv| kv.mod_revision);
        if still == expected && extra_contended {
            return Ok(None);
        }
        if still == expected {
            return Err(ApiError::conflict_because(
                &t.def.group,
                &t.def.plural,
                key.rsplit('/').next().unwrap_or(""),
                "an address it was given was taken meanwhile; please try again",
            ));
        }
    }
    Ok(None)
}

/// Answers with an object in the client's version.
fn respond(
    t: &Target,
    stored: Value,
    rev: Option<Revision>,
    code: StatusCode,
    warnings: &[String],
) -> ApiResult<Response> {
    let mut stored = stored;
    if let Some(rev) = rev {
        storage::set_revision(&mut stored, rev);
    }
    Ok(with_warnings(
        read::respond_object(t, stored, code)?,
        warnings,
    ))
}

/// POST: create an object.
pub(crate) async fn create(t: &Target, body: Bytes) -> ApiResult<Response> {
    let dry_run = t.query.dry_run()?;
    let (obj, warnings) = decode_new(t, &body)?;
    let set = t.api.schemas();
    let (obj, rev) = create_object(t, obj, &set, dry_run, None).await?;
    respond(t, obj, rev, StatusCode::CREATED, &warnings)
}

/// Reads a POSTed object: type meta checked, unknown and duplicate fields
/// handled as `fieldValidation` says (answering the warnings), namespace
/// set from the path.
pub(crate) fn decode_new(t: &Target, body: &Bytes) -> ApiResult<(Value, Vec<String>)> {
    let mode = FieldValidation::parse(t)?;
    let decoded = decode_body(t, body)?;
    let mut obj = decoded.value;
    check_type_meta(t, &mut obj)?;
    let set = t.api.schemas();
    let mut problems = FieldProblems::new(&decoded.duplicates);
    problems.prune(&set, &t.def, &mut obj);
    let warnings = problems.check(mode, &t.def)?;
    check_namespace(t, &mut obj)?;
    Ok((obj, warnings))
}

/// The shared end of every create (POST, and apply of a new object): the
/// object is in the client's version with type meta and namespace set.
/// `applied` carries the managed fields a server-side apply computed; an
/// ordinary create records its fields as an update by the field manager.
async fn create_object(
    t: &Target,
    obj: Value,
    set: &SchemaSet,
    dry_run: bool,
    applied: Option<Value>,
) -> ApiResult<(Value, Option<Revision>)> {
    let storage_def = t.storage_def();
    let mut obj = to_storage(t, obj)?;
    storage_def.strategy.default(&mut obj);
    let generated = meta::meta_str(&obj, "name").is_none_or(str::is_empty);
    for _attempt in 0..MAX_ATTEMPTS {
        let mut candidate = obj.clone();
        init_metadata(t, &mut candidate)?;
        storage_def.strategy.prepare_create(&mut candidate);
        validate(t, &candidate, None)?;
        let name = meta::name(&candidate).to_owned();
        let key = storage::key(&t.def.storage, t.namespace(), &name);
        // An existing name is AlreadyExists, before admission reserves
        // addresses it would then have to give back (the commit below still
        // settles a race).
        if !generated && read::read_object(t, &key).await?.is_some() {
            return Err(ApiError::already_exists(&t.def.group, &t.def.plural, &name));
        }
        let extra = admission::admit_create(t, &mut candidate).await?;
        // Allocation may have set fields that have defaults of their own.
        storage_def.strategy.default(&mut candidate);
        let candidate = match &applied {
            Some(managed) => {
                meta::metadata_mut(&mut candidate).insert("managedFields".into(), managed.clone());
                candidate
            }
            None => track_fields(t, set, None, candidate, None),
        };
        if dry_run {
            return Ok((candidate, None));
        }
        match commit(t, &key, Some(&candidate), 0, extra).await? {
            Some(rev) => return Ok((candidate, Some(rev))),
            None if generated => continue,
            // A quota it charged changed meanwhile: admit it again.
            None if read::read_object(t, &key).await?.is_none() => continue,
            None => return Err(ApiError::already_exists(&t.def.group, &t.def.plural, &name)),
        }
    }
    Err(ApiError::timeout(
        "failed to generate a unique name; please try again",
    ))
}

/// PUT: replace an object (or, with `subresource`, its status).
pub(crate) async fn update(
    t: &Target,
    body: Bytes,
    subresource: Option<&str>,
) -> ApiResult<Response> {
    let dry_run = t.query.dry_run()?;
    let mode = FieldValidation::parse(t)?;
    let decoded = decode_body(t, &body)?;
    let mut obj = decoded.value;
    check_type_meta(t, &mut obj)?;
    let set = t.api.schemas();
    let mut problems = FieldProblems::new(&decoded.duplicates);
    problems.prune(&set, &t.def, &mut obj);
    let warnings = problems.check(mode, &t.def)?;
    if meta::name(&obj).is_empty() {
        meta::metadata_mut(&mut obj).insert("name".into(), json!(t.name()));
    }
    if meta::name(&obj) != t.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta::name(&obj),
            t.name()
        )));
    }
    check_namespace(t, &mut obj)?;
    let precondition = precondition_of(&obj)?;
    let new = to_storage(t, obj)?;
    let (stored, rev, code) = replace(
        t,
        &set,
        |_| Ok(new.clone()),
        precondition,
        dry_run,
        subresource,
    )
    .await?;
    respond(t, stored, rev, code, &warnings)
}

/// The `metadata.resourceVersion` a client sent, as a precondition.
fn precondition_of(obj: &Value) -> ApiResult<Option<Revision>> {
    match meta::meta_str(obj, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(rv) => rv
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}"))),
    }
}

/// The shared end of update and patch: reads the object, lets `make` build
/// the new one (storage version) from the current one, and commits,
/// redoing the whole when a concurrent write got in unless the client set a
/// precondition. `subresource` is `Some("status")` for status writes and
/// `Some("finalize")` for a namespace's finalizers.
pub(crate) async fn replace(
    t: &Target,
    set: &SchemaSet,
    make: impl Fn(&Value) -> ApiResult<Value>,
    precondition: Option<Revision>,
    dry_run: bool,
    subresource: Option<&str>,
) -> ApiResult<(Value, Option<Revision>, StatusCode)> {
    let storage_def = t.storage_def();
    let key = t.key();
    for _ in 0..MAX_ATTEMPTS {
        let Some((old, old_rev)) = read::read_object(t, &key).await? else {
            return Err(ApiError::not_found(&t.def.group, &t.def.plural, t.name()));
        };
        if let Some(p) = precondition
            && p != old_rev
        {
            return Err(ApiError::conflict(&t.def.group, &t.def.plural, t.name()));
        }
        let mut new = make(&old)?;
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        if subresource == Some("status") {
            storage_def.strategy.prepare_status_update(&mut new, &old);
            keep_metadata(t, &mut new, &old);
            // A status write never changes the generation.
            if let Some(g) = old.pointer("/metadata/generation") {
                meta::metadata_mut(&mut new).insert("generation".into(), g.clone());
            }
            let errors = storage_def.strategy.validate_status(&new, &old);
            if !errors.is_empty() {
                return Err(ApiError::invalid(
                    &t.def.group,
                    &t.def.kind,
                    t.name(),
                    &errors,
                ));
            }
        } else {
            storage_def.strategy.default(&mut new);
            keep_metadata(t, &mut new, &old);
            // A namespace's `finalize` write changes exactly the
            // `spec.finalizers` an ordinary update keeps as they were; a
            // pod's `binding` sets `spec.nodeName` and the PodScheduled
            // condition directly, as Kubernetes' binding storage does,
            // outside the rules for updates of a pod.
            match subresource {
                Some("finalize") => validate(t, &new, Some(&old))?,
                Some("binding") => {}
                _ => {
                    storage_def.strategy.prepare_update(&mut new, &old);
                    validate(t, &new, Some(&old))?;
                }
            }
        }
        let extra = admission::admit_update(t, &mut new, &old).await?;
        let mut new = track_fields(t, set, Some(&old), new, subresource);
        // Nothing changed: answer without writing, as Kubernetes does.
        storage::set_revision(&mut new, old_rev);
        if new == old {
            return Ok((old, None, StatusCode::OK));
        }
        if dry_run {
            return Ok((new, None, StatusCode::OK));
        }
        // Removing the last finalizer of an object being deleted deletes it.
        if meta::is_deleting(&new) && ready_to_delete(t, &new) {
            let extra_delete = admission::admit_delete(t, &new).unwrap_or_default();
            let mut all = extra;
            all.compares.extend(extra_delete.compares);
            all.ops.extend(extra_delete.ops);
            match commit(t, &key, None, old_rev, all).await? {
                Some(rev) => return Ok((new, Some(rev), StatusCode::OK)),
                None if precondition.is_some() => {
                    return Err(ApiError::conflict(&t.def.group, &t.def.plural, t.name()));
                }
                None => continue,
            }
        }
        match commit(t, &key, Some(&new), old_rev, extra).await? {
            Some(rev) => return Ok((new, Some(rev), StatusCode::OK)),
            None if precondition.is_some() => {
                return Err(ApiError::conflict(&t.def.group, &t.def.plural, t.name()));
            }
            None => continue,
        }
    }
    Err(ApiError::conflict(&t.def.group, &t.def.plural, t.name()))
}

/// Whether an object marked for deletion may go now: no finalizers left
/// (for namespaces, also none in `spec.finalizers`), and for a pod no grace
/// period still running.
fn ready_to_delete(t: &Target, obj: &Value) -> bool {
    if !meta::finalizers(obj).is_empty() {
        return false;
    }
    if is_core(t, "namespaces") {
        let spec_finalizers = obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        return !spec_finalizers;
    }
    if is_core(t, "pods") {
        return obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(0);
    }
    true
}

fn is_core(t: &Target, resource: &str) -> bool {
    t.def.storage.group.is_empty() && t.def.storage.resource == resource
}

/// PATCH: JSON patch, merge patch, strategic merge patch, or server-side
/// apply (or, with `subresource`, a patch of the status).
pub(crate) async fn patch(
    t: &Target,
    body: Bytes,
    subresource: Option<&str>,
) -> ApiResult<Response> {
    let dry_run = t.query.dry_run()?;
    let mode = FieldValidation::parse(t)?;
    let content_type = t
        .header("content-type")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let set = t.api.schemas();
    let served_schema = t
        .def
        .schema
        .clone()
        .or_else(|| t.storage_def().schema.clone());
    let builtin = t.api.is_builtin(&t.def);
    let kind = match content_type.as_str() {
        "application/json-patch+json" => PatchKind::Json,
        "application/merge-patch+json" => PatchKind::Merge,
        "application/strategic-merge-patch+json" if builtin => PatchKind::Strategic,
        "application/apply-patch+yaml" => PatchKind::Apply,
        other => {
            return Err(ApiError::unsupported_media_type(
                other,
                if builtin {
                    &[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                        "application/strategic-merge-patch+json",
                    ]
                } else {
                    &[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                    ]
                },
            ));
        }
    };
    if body.len() > codec::MAX_BODY {
        return Err(ApiError::too_large(codec::MAX_BODY));
    }
    let patch_doc: Value = match kind {
        PatchKind::Apply => codec::decode_yaml(&body)?.value,
        _ => codec::decode_json(&body)?.value,
    };
    if kind == PatchKind::Apply {
        if subresource.is_some() {
            return Err(ApiError::not_supported(
                "server-side apply of a subresource is not supported",
            ));
        }
        return apply(t, &set, patch_doc, mode, dry_run).await;
    }
    let force_no_precondition = matches!(kind, PatchKind::Json);
    let warnings = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let make = |old: &Value| -> ApiResult<Value> {
        let current = t.to_served(old.clone());
        let node = served_schema.as_deref().and_then(|n| set.get(n));
        let mut patched = match kind {
            PatchKind::Json => patch::json_patch(&current, &patch_doc).map_err(patch_error)?,
            PatchKind::Merge => patch::merge_patch(&current, &patch_doc),
            PatchKind::Strategic => {
                patch::strategic_merge_patch(&current, &patch_doc, node).map_err(patch_error)?
            }
            PatchKind::Apply => unreachable!("handled above"),
        };
        // A patch may carry a resourceVersion: it is a precondition.
        if !force_no_precondition
            && let Some(rv) = precondition_of(&patched)?
            && Some(rv.to_string().as_str()) != meta::meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::conflict(&t.def.group, &t.def.plural, t.name()));
        }
        if meta::name(&patched) != t.name() {
            return Err(ApiError::bad_request(format!(
                "metadata.name: Invalid value: {:?}: field is immutable",
                meta::name(&patched)
            )));
        }
        let mut problems = FieldProblems::default();
        problems.prune(&set, &t.def, &mut patched);
        let found = problems.check_patch(mode, &patched)?;
        *warnings.lock() = found;
        patched["apiVersion"] = json!(t.def.group_version());
        patched["kind"] = json!(t.def.kind);
        to_storage(t, patched)
    };
    let (stored, rev, code) = replace(t, &set, make, None, dry_run, subresource).await?;
    let warnings = warnings.lock().clone();
    respond(t, stored, rev, code, &warnings)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

fn patch_error(e: patch::PatchError) -> ApiError {
    match e {
        // A failed `test` or a path that is not there: the patch is valid
        // but does not apply to this object.
        patch::PatchError::Failed(_) => {
            let mut err = ApiError::invalid("", "", "", &[]);
            err.message =
                format!("the server rejected our request due to an error in our request: {e}");
            err.name = None;
            err.kind = None;
            err
        }
        _ => ApiError::bad_request(e.to_string()),
    }
}

/// Server-side apply: merge the client's configuration, owning its fields.
async fn apply(
    t: &Target,
    set: &SchemaSet,
    config: Value,
    mode: FieldValidation,
    dry_run: bool,
) -> ApiResult<Response> {
    let Some(manager) = t.query.text("fieldManager").map(str::to_owned) else {
        return Err(ApiError::bad_request(
            "PATCH request with apply content type must specify a fieldManager query parameter",
        ));
    };
    let force = t.query.flag("force");
    let mut config = config;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "apply configuration must be an object",
        ));
    }
    check_type_meta(t, &mut config)?;
    check_namespace(t, &mut config)?;
    if meta::name(&config) != t.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta::name(&config),
            t.name()
        )));
    }
    let mut problems = FieldProblems::default();
    problems.prune(set, &t.def, &mut config);
    let warnings = problems.check(mode, &t.def)?;
    let schema_name = t
        .def
        .schema
        .clone()
        .or_else(|| t.storage_def().schema.clone());
    let node = schema_name
        .as_deref()
        .and_then(|n| set.get(n))
        .ok_or_else(|| {
            ApiError::not_supported(format!(
                "server-side apply is not supported for {}",
                t.def.qualified_kind()
            ))
        })?;
    let api_version = t.def.group_version();
    let time = meta::now_rfc3339();
    let apply_to = |live: Option<&Value>| -> ApiResult<Value> {
        patch::apply::apply(live, &config, &manager, &api_version, force, node, &time).map_err(
            |e| match e {
                patch::apply::ApplyError::Conflicts(conflicts) => {
                    let mut err = ApiError::conflict("", "", "");
                    err.message = patch::apply::conflict_message(&conflicts);
                    err.name = None;
                    err.group = None;
                    err.kind = None;
                    err.causes = conflicts
                        .iter()
                        .map(|c| crate::status::Cause {
                            reason: "FieldManagerConflict".into(),
                            message: c.cause_message(),
                            field: c.field.clone(),
                        })
                        .collect();
                    err
                }
                patch::apply::ApplyError::Invalid(msg) => ApiError::bad_request(msg),
            },
        )
    };
    // A new object is created from the configuration alone.
    if read::read_object(t, &t.key()).await?.is_none() {
        let applied = apply_to(None)?;
        let managed = applied.pointer("/metadata/managedFields").cloned();
        match create_object(t, applied, set, dry_run, managed).await {
            Ok((obj, rev)) => return respond(t, obj, rev, StatusCode::CREATED, &warnings),
            // Created meanwhile by someone else: apply onto theirs.
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    let make = |old: &Value| -> ApiResult<Value> {
        let live = t.to_served(old.clone());
        let merged = apply_to(Some(&live))?;
        to_storage(t, merged)
    };
    let (stored, rev, code) = replace_applied(t, set, make, dry_run).await?;
    respond(t, stored, rev, code, &warnings)
}

/// Like [`replace`], but the managed fields the apply computed are kept
/// rather than recomputed as an ordinary update's.
async fn replace_applied(
    t: &Target,
    set: &SchemaSet,
    make: impl Fn(&Value) -> ApiResult<Value>,
    dry_run: bool,
) -> ApiResult<(Value, Option<Revision>, StatusCode)> {
    let _ = set;
    let storage_def = t.storage_def();
    let key = t.key();
    for _ in 0..MAX_ATTEMPTS {
        let Some((old, old_rev)) = read::read_object(t, &key).await? else {
            return Err(ApiError::not_found(&t.def.group, &t.def.plural, t.name()));
        };
        let mut new = make(&old)?;
        let managed = new.pointer("/metadata/managedFields").cloned();
        storage_def.strategy.default(&mut new);
        keep_metadata(t, &mut new, &old);
        storage_def.strategy.prepare_update(&mut new, &old);
        validate(t, &new, Some(&old))?;
        let extra = admission::admit_update(t, &mut new, &old).await?;
        if let Some(mf) = managed {
            meta::metadata_mut(&mut new).insert("managedFields".into(), mf);
        }
        storage::set_revision(&mut new, old_rev);
        if new == old {
            return Ok((old, None, StatusCode::OK));
        }
        if dry_run {
            return Ok((new, None, StatusCode::OK));
        }
        match commit(t, &key, Some(&new), old_rev, extra).await? {
            Some(rev) => return Ok((new, Some(rev), StatusCode::OK)),
            None => continue,
        }
    }
    Err(ApiError::conflict(&t.def.group, &t.def.plural, t.name()))
}

/// What happens to an object's dependents (the objects whose
/// `ownerReferences` name it) when it is deleted. The garbage collector in
/// `controllers` does the work; the API server only records the choice as a
/// finalizer on the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// The owner goes now; the collector deletes the dependents after.
    Background,
    /// The owner stays (finalizer `foregroundDeletion`) until the collector
    /// has deleted the dependents that block it.
    Foreground,
    /// The owner stays (finalizer `orphan`) until the collector has removed
    /// its reference from every dependent, which then live on.
    Orphan,
}

impl Propagation {
    const ORPHAN_FINALIZER: &str = "orphan";
    const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

    fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "Background" => Ok(Self::Background),
            "Foreground" => Ok(Self::Foreground),
            "Orphan" => Ok(Self::Orphan),
            other => Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
        }
    }

    /// The policy a delete without one gets: Orphan for the versions that
    /// had it before garbage collection existed (core/v1
    /// ReplicationControllers, batch/v1 Jobs, the beta workload groups), as
    /// in Kubernetes; Background for everything else.
    fn default_for(group: &str, version: &str, resource: &str) -> Self {
        match (group, version, resource) {
            ("", "v1", "replicationcontrollers") | ("batch", "v1", "jobs") => Self::Orphan,
            ("extensions", "v1beta1", _) | ("apps", "v1beta1" | "v1beta2", _) => Self::Orphan,
            _ => Self::Background,
        }
    }

    /// The finalizers of an object being deleted with `asked` (or none):
    /// the policy asked for wins, then the one a finalizer already records,
    /// then the kind's default; `orphan` or `foregroundDeletion` is added for
    /// the winner and the other removed. Unchanged (same order) if the set
    /// is the same.
    fn finalizers(asked: Option<Self>, default: Self, existing: &[String]) -> Vec<String> {
        let recorded = existing.iter().find_map(|f| match f.as_str() {
            Self::ORPHAN_FINALIZER => Some(Self::Orphan),
            Self::FOREGROUND_FINALIZER => Some(Self::Foreground),
            _ => None,
        });
        let mut out: Vec<String> = existing
            .iter()
            .filter(|f| *f != Self::ORPHAN_FINALIZER && *f != Self::FOREGROUND_FINALIZER)
            .cloned()
            .collect();
        match asked.or(recorded).unwrap_or(default) {
            Self::Orphan => out.push(Self::ORPHAN_FINALIZER.into()),
            Self::Foreground => out.push(Self::FOREGROUND_FINALIZER.into()),
            Self::Background => {}
        }
        let same = out.len() == existing.len() && out.iter().all(|f| existing.contains(f));
        if same { existing.to_vec() } else { out }
    }
}

/// DeleteOptions from the body and the query.
#[derive(Debug, Default)]
pub(crate) struct DeleteOptions {
    /// Seconds a pod gets to stop; `None`: its own setting.
    pub(crate) grace: Option<i64>,
    /// `propagationPolicy`, or the deprecated `orphanDependents` (true:
    /// Orphan, false: Background); `None`: the object's or kind's default.
    pub(crate) propagation: Option<Propagation>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

impl DeleteOptions {
    fn parse(t: &Target, body: &Bytes) -> ApiResult<Self> {
        let mut o = DeleteOptions {
            grace: t.query.int("gracePeriodSeconds")?,
            dry_run: t.query.dry_run()?,
            ..Default::default()
        };
        let mut policy = t.query.text("propagationPolicy").map(str::to_owned);
        let mut orphan = match t.query.text("orphanDependents") {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "orphanDependents: invalid boolean {other:?}"
                )));
            }
        };
        let trimmed: &[u8] = body.as_ref();
        if trimmed.iter().any(|b| !b.is_ascii_whitespace()) {
            let doc = codec::decode_json(body)?.value;
            if let Some(g) = doc.get("gracePeriodSeconds").and_then(Value::as_i64) {
                o.grace = Some(g);
            }
            if let Some(p) = doc.get("propagationPolicy").and_then(Value::as_str) {
                policy = Some(p.to_owned());
            }
            if let Some(b) = doc.get("orphanDependents").and_then(Value::as_bool) {
                orphan = Some(b);
            }
            o.uid = doc
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_owned);
            o.resource_version = doc
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if doc
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                o.dry_run = true;
            }
        }
        o.propagation = match (policy, orphan) {
            (Some(p), None) => Some(Propagation::parse(&p)?),
            (None, Some(true)) => Some(Propagation::Orphan),
            (None, Some(false)) => Some(Propagation::Background),
            (None, None) => None,
            (Some(p), Some(_)) => {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "DeleteOptions",
                    "",
                    &[FieldError::invalid(
                        "propagationPolicy",
                        kinds::validation::quote(&p),
                        "orphanDependents and deletionPropagation cannot be both set",
                    )],
                ));
            }
        };
        if o.grace.is_some_and(|g| g < 0) {
            o.grace = Some(0);
        }
        Ok(o)
    }
}

/// DELETE of one object.
pub(crate) async fn delete(t: &Target, body: Bytes) -> ApiResult<Response> {
    let options = DeleteOptions::parse(t, &body)?;
    let (obj, rev) = delete_object(t, &t.key(), &options).await?;
    respond(t, obj, rev, StatusCode::OK, &[])
}

/// Deletes (or marks for deletion) the object at `key`.
pub(crate) async fn delete_object(
    t: &Target,
    key: &str,
    options: &DeleteOptions,
) -> ApiResult<(Value, Option<Revision>)> {
    let name = key.rsplit('/').next().unwrap_or("").to_owned();
    for _ in 0..MAX_ATTEMPTS {
        let Some((obj, rev)) = read::read_object(t, key).await? else {
            return Err(ApiError::not_found(&t.def.group, &t.def.plural, &name));
        };
        if let Some(uid) = &options.uid
            && meta::meta_str(&obj, "uid") != Some(uid.as_str())
        {
            return Err(ApiError::conflict_because(
                &t.def.group,
                &t.def.plural,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::meta_str(&obj, "uid").unwrap_or("")
                ),
            ));
        }
        if let Some(want) = &options.resource_version
            && *want != rev.to_string()
        {
            return Err(ApiError::conflict_because(
                &t.def.group,
                &t.def.plural,
                &name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                ),
            ));
        }
        let extra = admission::admit_delete(t, &obj)?;
        let mut marked = obj.clone();
        let graceful = mark_for_deletion(t, &mut marked, options);
        if graceful {
            if marked == obj {
                return Ok((obj, None));
            }
            if options.dry_run {
                return Ok((marked, None));
            }
            match commit(t, key, Some(&marked), rev, Extra::default()).await? {
                Some(new_rev) => return Ok((marked, Some(new_rev))),
                None => continue,
            }
        }
        if options.dry_run {
            return Ok((obj, None));
        }
        match commit(t, key, None, rev, extra).await? {
            Some(_) => return Ok((obj, None)),
            None => continue,
        }
    }
    Err(ApiError::conflict(&t.def.group, &t.def.plural, &name))
}

/// Decides between deleting now and marking for deletion (finalizers to
/// run, a namespace to empty, a pod to stop gracefully). Marks `obj` in the
/// second case and returns true.
fn mark_for_deletion(t: &Target, obj: &mut Value, options: &DeleteOptions) -> bool {
    let now = chrono::Utc::now();
    let default = Propagation::default_for(&t.def.group, &t.def.version, &t.def.plural);
    let finalizers = Propagation::finalizers(options.propagation, default, &meta::finalizers(obj));
    let already = meta::is_deleting(obj);
    if is_core(t, "namespaces") {
        if !already {
            meta::metadata_mut(obj).insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
            meta::metadata_mut(obj).insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        set_finalizers(obj, finalizers);
        obj["status"]["phase"] = json!("Terminating");
        return true;
    }
    if is_core(t, "pods") {
        let scheduled = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let default_grace = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let grace = options.grace.unwrap_or(default_grace);
        // A pod no node runs, or a forced delete, goes at once (its
        // finalizers permitting); otherwise the kubelet stops it within the
        // grace period and then deletes it with a grace period of zero.
        if !scheduled || grace == 0 {
            if finalizers.is_empty() {
                return false;
            }
        } else {
            let current = obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            let m = meta::metadata_mut(obj);
            if !already || current.is_none_or(|c| grace < c) {
                let at = now + chrono::Duration::seconds(grace);
                m.insert(
                    "deletionTimestamp".into(),
                    json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            set_finalizers(obj, finalizers);
            return true;
        }
    }
    if finalizers.is_empty() {
        return false;
    }
    let m = meta::metadata_mut(obj);
    if !already {
        m.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    set_finalizers(obj, finalizers);
    true
}

/// Sets `metadata.finalizers`, leaving the field out when there are none.
fn set_finalizers(obj: &mut Value, finalizers: Vec<String>) {
    let m = meta::metadata_mut(obj);
    if finalizers.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(finalizers));
    }
}

/// DELETE of a collection: every object matching the selectors.
pub(crate) async fn delete_collection(t: &Target, body: Bytes) -> ApiResult<Response> {
    let options = DeleteOptions::parse(t, &body)?;
    let selection = Selection::parse(t)?;
    let page = read::read_page(t, &selection, 0).await?;
    let mut deleted = Vec::new();
    for kv in page.items {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        match delete_object(t, &key, &options).await {
            Ok((obj, _)) => deleted.push(t.to_served(obj)),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": format!("{}List", t.def.kind),
        "apiVersion": t.def.group_version(),
        "metadata": {},
        "items": deleted,
    });
    Ok(json_response(StatusCode::OK, &list))
}

#[cfg(test)]
mod tests {
    use super::Propagation::{self, Background, Foreground, Orphan};

    #[test]
    fn propagation_defaults_to_orphan_only_for_the_old_workload_versions() {
        for (group, version, resource, want) in [
            ("", "v1", "replicationcontrollers", Orphan),
            ("batch", "v1", "jobs", Orphan),
            ("apps", "v1beta2", "replicasets", Orphan),
            ("extensions", "v1beta1", "deployments", Orphan),
            ("apps", "v1", "replicasets", Background),
            ("", "v1", "configmaps", Background),
            ("example.com", "v1", "widgets", Background),
        ] {
            assert_eq!(
                Propagation::default_for(group, version, resource),
                want,
                "{group}/{version} {resource}"
            );
        }
    }

    #[test]
    fn propagation_finalizers_follow_the_request_then_the_object_then_the_default() {
        let f = |asked, default, existing: &[&str]| {
            let existing: Vec<String> = existing.iter().map(|s| s.to_string()).collect();
            Propagation::finalizers(asked, default, &existing)
        };
        // Asked for, the kind's default, the finalizers before, after.
        type Case<'a> = (
            Option<Propagation>,
            Propagation,
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            (None, Background, &[], &[]),
            (None, Orphan, &[], &["orphan"]),
            (Some(Foreground), Background, &[], &["foregroundDeletion"]),
            (Some(Orphan), Background, &["a.io/x"], &["a.io/x", "orphan"]),
            // A second delete switches the policy.
            (
                Some(Orphan),
                Background,
                &["foregroundDeletion"],
                &["orphan"],
            ),
            (Some(Background), Orphan, &["orphan", "a.io/x"], &["a.io/x"]),
            // Without one, the recorded policy stays, in its place.
            (
                None,
                Background,
                &["orphan", "a.io/x"],
                &["orphan", "a.io/x"],
            ),
            (
                None,
                Orphan,
                &["foregroundDeletion"],
                &["foregroundDeletion"],
            ),
        ];
        for (asked, default, existing, want) in cases {
            assert_eq!(
                f(*asked, *default, existing),
                *want,
                "{asked:?} {default:?} {existing:?}"
            );
        }
    }
}
