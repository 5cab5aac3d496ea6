//! Versions Kubernetes removed but old manifests still use — apps/v1beta1,
//! apps/v1beta2 and extensions/v1beta1 — served by converting to and from
//! the current storage versions (apps/v1, networking.k8s.io/v1).
//!
//! Each conversion applies what the old version's defaulters did
//! differently (taken from Kubernetes 1.15, the last release to serve them
//! all): the selector and the object's labels taken from the template's
//! labels, extensions/v1beta1's `maxSurge`/`maxUnavailable` of 1 and
//! "unlimited" history and deadline (kept, as Kubernetes kept them, as
//! 2147483647), apps/v1beta1's history of 2 and OnDelete StatefulSets,
//! extensions/v1beta1's OnDelete DaemonSets; the storage version's own
//! defaults then fill the rest. Fields that no longer exist are dropped
//! (`spec.rollbackTo`) or moved where apps/v1 keeps them (a DaemonSet's
//! `spec.templateGeneration` becomes its annotation). Ingress backends move
//! from `serviceName`/`servicePort` to `service.name`/`service.port`.
//!
//! One deliberate leniency: apps/v1beta2 never defaulted the selector, but
//! course material writes v1beta2 Deployments without one, so a missing
//! selector is taken from the template's labels there too.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::apps::fields::{self, child, default_str, default_value, get_map};
use crate::apps::{
    TEMPLATE_GENERATION, controller_revision_strategy, daemon_set_strategy, deployment_strategy,
    replica_set_strategy, stateful_set_strategy,
};
use crate::catalog::resource;
use crate::networking::{ingress_strategy, network_policy_strategy};
use crate::{Conversion, FieldError, FieldErrorKind, ResourceDef, Strategy};

/// Served resources at the removed versions.
pub(crate) fn resources() -> Vec<ResourceDef> {
    let mut all = Vec::new();
    for version in ["v1beta1", "v1beta2"] {
        let beta1 = version == "v1beta1";
        let deployment_prepare: Prepare = if beta1 {
            apps_v1beta1_deployment
        } else {
            apps_v1beta2_workload
        };
        // apps/v1beta1 let updates change a Deployment's selector.
        all.push(legacy(
            "apps",
            version,
            "Deployment",
            "deployments",
            "apps",
            Arc::new(deployment_strategy(!beta1)),
            deployment_prepare,
            |_| {},
            Subresources::StatusScale,
            &["deploy"],
        ));
        if !beta1 {
            all.push(legacy(
                "apps",
                version,
                "ReplicaSet",
                "replicasets",
                "apps",
                Arc::new(replica_set_strategy(true)),
                apps_v1beta2_workload,
                |_| {},
                Subresources::StatusScale,
                &["rs"],
            ));
            all.push(legacy(
                "apps",
                version,
                "DaemonSet",
                "daemonsets",
                "apps",
                Arc::new(daemon_set_strategy(true)),
                apps_v1beta2_workload,
                |_| {},
                Subresources::Status,
                &["ds"],
            ));
        }
        all.push(legacy(
            "apps",
            version,
            "StatefulSet",
            "statefulsets",
            "apps",
            Arc::new(stateful_set_strategy()),
            if beta1 {
                apps_v1beta1_stateful_set
            } else {
                apps_v1beta2_workload
            },
            |_| {},
            Subresources::StatusScale,
            &["sts"],
        ));
        all.push(legacy(
            "apps",
            version,
            "ControllerRevision",
            "controllerrevisions",
            "apps",
            Arc::new(controller_revision_strategy()),
            |_| Ok(()),
            |_| {},
            Subresources::None,
            &[],
        ));
    }
    all.extend([
        legacy(
            "extensions",
            "v1beta1",
            "Deployment",
            "deployments",
            "apps",
            Arc::new(deployment_strategy(false)),
            extensions_deployment,
            |_| {},
            Subresources::StatusScale,
            &["deploy"],
        ),
        legacy(
            "extensions",
            "v1beta1",
            "ReplicaSet",
            "replicasets",
            "apps",
            Arc::new(replica_set_strategy(false)),
            extensions_replica_set,
            |_| {},
            Subresources::StatusScale,
            &["rs"],
        ),
        legacy(
            "extensions",
            "v1beta1",
            "DaemonSet",
            "daemonsets",
            "apps",
            Arc::new(daemon_set_strategy(false)),
            extensions_daemon_set,
            extensions_daemon_set_back,
            Subresources::Status,
            &["ds"],
        ),
        legacy(
            "extensions",
            "v1beta1",
            "Ingress",
            "ingresses",
            "networking.k8s.io",
            Arc::new(ingress_strategy()),
            extensions_ingress,
            extensions_ingress_back,
            Subresources::Status,
            &["ing"],
        ),
        legacy(
            "extensions",
            "v1beta1",
            "NetworkPolicy",
            "networkpolicies",
            "networking.k8s.io",
            Arc::new(network_policy_strategy()),
            |_| Ok(()),
            |_| {},
            Subresources::None,
            &["netpol"],
        ),
    ]);
    all
}

/// Which subresources a legacy resource serves.
#[derive(Clone, Copy)]
enum Subresources {
    None,
    Status,
    StatusScale,
}

/// Changes an old-version object, in place, into the storage version's
/// shape (before its `apiVersion` is rewritten).
type Prepare = fn(&mut Value) -> Result<(), FieldError>;

/// Changes a storage-version object, in place, back into the old shape.
type Restore = fn(&mut Value);

#[allow(clippy::too_many_arguments)]
fn legacy(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    storage_group: &str,
    strategy: Arc<dyn Strategy>,
    to: Prepare,
    back: Restore,
    subresources: Subresources,
    short_names: &[&str],
) -> ResourceDef {
    let served = format!("{group}/{version}");
    let stored = format!("{storage_group}/v1");
    let conversion = LegacyConversion {
        served,
        stored,
        to,
        back,
    };
    let mut builder = resource(group, version, kind, plural, strategy)
        .stored_as(storage_group, plural, "v1", Arc::new(conversion))
        .schema(None);
    // extensions competes with apps and networking.k8s.io for the same
    // names: kubectl warns about shared short names, and `get all` would
    // list each Deployment twice. Only the current groups advertise them.
    if group != "extensions" {
        builder = builder.short_names(short_names);
        if matches!(
            kind,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        ) {
            builder = builder.categories(&["all"]);
        }
    }
    // The apps group has apps/v1; extensions has nothing newer of its own.
    if group == "apps" {
        builder = builder.not_preferred();
    }
    builder = match subresources {
        Subresources::None => builder,
        Subresources::Status => builder.status(),
        Subresources::StatusScale => builder.status().scale(),
    };
    builder.build()
}

/// A conversion between one removed version and its storage version.
struct LegacyConversion {
    /// The served `apiVersion`, such as `extensions/v1beta1`.
    served: String,
    /// The storage `apiVersion`, such as `apps/v1`.
    stored: String,
    /// Old shape to new.
    to: Prepare,
    /// New shape to old.
    back: Restore,
}

impl Conversion for LegacyConversion {
    fn to_storage(&self, mut obj: Value) -> Result<Value, FieldError> {
        if !obj.is_object() {
            return Err(FieldError {
                kind: FieldErrorKind::TypeInvalid,
                field: String::new(),
                value: None,
                detail: format!("expected a {} object", self.served),
            });
        }
        (self.to)(&mut obj)?;
        fields::set(&mut obj, "apiVersion", json!(self.stored));
        Ok(obj)
    }

    fn from_storage(&self, mut obj: Value) -> Value {
        (self.back)(&mut obj);
        fields::set(&mut obj, "apiVersion", json!(self.served));
        obj
    }
}

// ---------------------------------------------------------------------------
// Workloads

/// The template's labels become the selector when there is none and the
/// object's labels when it has none (the v1beta1 and extensions
/// defaulters).
fn selector_and_labels_from_template(obj: &mut Value) {
    let Some(labels) = get_map(obj, "/spec/template/metadata/labels").cloned() else {
        return;
    };
    if let Some(spec) = child(obj, "spec") {
        default_value(spec, "selector", json!({"matchLabels": labels}));
    }
    if get_map(obj, "/metadata/labels").is_none_or(Map::is_empty)
        && let Some(meta) = child(obj, "metadata")
    {
        fields::set(meta, "labels", Value::Object(labels));
    }
}

/// `spec.rollbackTo` has no place in apps/v1; rollbacks are made by
/// applying an older template.
fn drop_rollback(obj: &mut Value) {
    if let Some(spec) = fields::child_if(obj, "spec") {
        fields::remove(spec, "rollbackTo");
    }
}

fn apps_v1beta1_deployment(obj: &mut Value) -> Result<(), FieldError> {
    selector_and_labels_from_template(obj);
    drop_rollback(obj);
    if let Some(spec) = child(obj, "spec") {
        default_value(spec, "revisionHistoryLimit", json!(2));
    }
    Ok(())
}

fn apps_v1beta1_stateful_set(obj: &mut Value) -> Result<(), FieldError> {
    selector_and_labels_from_template(obj);
    if let Some(strategy) = child(obj, "spec").and_then(|s| child(s, "updateStrategy")) {
        default_str(strategy, "type", "OnDelete");
    }
    Ok(())
}

/// apps/v1beta2 is apps/v1 in shape; only the selector is defaulted (see
/// the module's notes).
fn apps_v1beta2_workload(obj: &mut Value) -> Result<(), FieldError> {
    if let Some(labels) = get_map(obj, "/spec/template/metadata/labels").cloned()
        && let Some(spec) = child(obj, "spec")
    {
        default_value(spec, "selector", json!({"matchLabels": labels}));
    }
    Ok(())
}

fn extensions_deployment(obj: &mut Value) -> Result<(), FieldError> {
    selector_and_labels_from_template(obj);
    drop_rollback(obj);
    let Some(spec) = child(obj, "spec") else {
        return Ok(());
    };
    default_value(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if (strategy["type"] == "RollingUpdate" || !fields::is_unset(strategy, "rollingUpdate"))
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            default_value(ru, "maxUnavailable", json!(1));
            default_value(ru, "maxSurge", json!(1));
        }
    }
    // "Unset" meant no deadline and no limit; Kubernetes stored that as the
    // largest int32.
    default_value(spec, "progressDeadlineSeconds", json!(i32::MAX));
    default_value(spec, "revisionHistoryLimit", json!(i32::MAX));
    Ok(())
}

fn extensions_replica_set(obj: &mut Value) -> Result<(), FieldError> {
    selector_and_labels_from_template(obj);
    if let Some(spec) = child(obj, "spec") {
        default_value(spec, "replicas", json!(1));
    }
    Ok(())
}

fn extensions_daemon_set(obj: &mut Value) -> Result<(), FieldError> {
    selector_and_labels_from_template(obj);
    let mut generation = None;
    if let Some(spec) = child(obj, "spec") {
        if let Some(strategy) = child(spec, "updateStrategy") {
            default_str(strategy, "type", "OnDelete");
            if strategy["type"] == "RollingUpdate"
                && let Some(ru) = child(strategy, "rollingUpdate")
            {
                default_value(ru, "maxUnavailable", json!(1));
            }
        }
        default_value(spec, "revisionHistoryLimit", json!(10));
        generation = fields::remove(spec, "templateGeneration").filter(|g| !g.is_null());
    }
    if let Some(g) = generation {
        let Some(n) = g.as_i64() else {
            return Err(FieldError {
                kind: FieldErrorKind::TypeInvalid,
                field: "spec.templateGeneration".into(),
                value: None,
                detail: format!("invalid type: {g}, expected i64"),
            });
        };
        fields::set_annotation(obj, TEMPLATE_GENERATION, &n.to_string());
    }
    Ok(())
}

fn extensions_daemon_set_back(obj: &mut Value) {
    let generation =
        fields::remove_annotation(obj, TEMPLATE_GENERATION).and_then(|g| g.parse::<i64>().ok());
    if let (Some(g), Some(spec)) = (generation, fields::child_if(obj, "spec")) {
        fields::set(spec, "templateGeneration", json!(g));
    }
}

// ---------------------------------------------------------------------------
// Ingresses

/// An extensions/v1beta1 backend (`serviceName`, `servicePort`) as a
/// networking/v1 one (`service: {name, port: {number | name}}`).
fn backend_to_v1(backend: &Value, path: &str) -> Result<Value, FieldError> {
    let mut out = Map::new();
    if let Some(resource) = backend.get("resource").filter(|r| !r.is_null()) {
        out.insert("resource".into(), resource.clone());
    }
    let name = backend.get("serviceName").filter(|n| !n.is_null());
    let port = backend.get("servicePort").filter(|p| !p.is_null());
    if name.is_some() || port.is_some() {
        let name = match name {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(type_error(&format!("{path}.serviceName"), other, "string")),
        };
        let port = match port {
            None => json!({}),
            Some(Value::String(s)) => json!({"name": s}),
            Some(n @ Value::Number(_)) if n.as_i64().is_some() => match n.as_i64() {
                Some(0) => json!({}),
                _ => json!({"number": n}),
            },
            Some(other) => {
                return Err(type_error(
                    &format!("{path}.servicePort"),
                    other,
                    "an integer or a string",
                ));
            }
        };
        out.insert("service".into(), json!({"name": name, "port": port}));
    }
    Ok(Value::Object(out))
}

fn type_error(field: &str, value: &Value, expected: &str) -> FieldError {
    FieldError {
        kind: FieldErrorKind::TypeInvalid,
        field: field.into(),
        value: None,
        detail: format!("invalid type: {value}, expected {expected}"),
    }
}

/// A networking/v1 backend in extensions/v1beta1's shape.
fn backend_to_v1beta1(backend: &Value) -> Value {
    let mut out = Map::new();
    if let Some(service) = backend.get("service").filter(|s| !s.is_null()) {
        out.insert(
            "serviceName".into(),
            json!(fields::str_or_empty(service, "/name")),
        );
        if let Some(n) = fields::get_i64(service, "/port/number") {
            out.insert("servicePort".into(), json!(n));
        } else if let Some(name) = fields::get_str(service, "/port/name") {
            out.insert("servicePort".into(), json!(name));
        }
    }
    if let Some(resource) = backend.get("resource").filter(|r| !r.is_null()) {
        out.insert("resource".into(), resource.clone());
    }
    Value::Object(out)
}

fn extensions_ingress(obj: &mut Value) -> Result<(), FieldError> {
    let Some(spec) = fields::child_if(obj, "spec") else {
        return Ok(());
    };
    if let Some(backend) = fields::remove(spec, "backend").filter(|b| !b.is_null()) {
        let converted = backend_to_v1(&backend, "spec.backend")?;
        fields::set(spec, "defaultBackend", converted);
    }
    for (i, rule) in fields::each_mut(spec, "rules").enumerate() {
        let Some(http) = fields::child_if(rule, "http") else {
            continue;
        };
        for (j, path) in fields::each_mut(http, "paths").enumerate() {
            default_str(path, "pathType", "ImplementationSpecific");
            let backend = path.get("backend").cloned().unwrap_or(Value::Null);
            let converted = backend_to_v1(
                &backend,
                &format!("spec.rules[{i}].http.paths[{j}].backend"),
            )?;
            fields::set(path, "backend", converted);
        }
    }
    Ok(())
}

fn extensions_ingress_back(obj: &mut Value) {
    let Some(spec) = fields::child_if(obj, "spec") else {
        return;
    };
    if let Some(backend) = fields::remove(spec, "defaultBackend").filter(|b| !b.is_null()) {
        fields::set(spec, "backend", backend_to_v1beta1(&backend));
    }
    for rule in fields::each_mut(spec, "rules") {
        let Some(http) = fields::child_if(rule, "http") else {
            continue;
        };
        for path in fields::each_mut(http, "paths") {
            if let Some(backend) = path.get("backend").filter(|b| !b.is_null()) {
                let converted = backend_to_v1beta1(backend);
                fields::set(path, "backend", converted);
            }
        }
    }
}

#[cfg(test)]
mod tests;
