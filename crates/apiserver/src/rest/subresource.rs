//! Subresources: `status`, `scale`, `binding`, `eviction`, a namespace's
//! `finalize`. Those of pods that reach into a node (`log`, `exec`,
//! `attach`, `portforward`) are proxied to its agent before they get here
//! (`node_proxy`); `proxy` is not served yet.

use axum::response::Response;
use bytes::Bytes;
use http::{Method, StatusCode};
use kinds::ScalePaths;
use serde_json::{Value, json};

use super::{Target, bytes_response, json_response, read, write};
use crate::codec::{Output, TABLE_CONTENT_TYPE};
use crate::meta;
use crate::status::{ApiError, ApiResult};
use crate::table::{self, Include};

/// Handles `<object>/<sub>`.
pub(crate) async fn handle(
    t: Target,
    sub: &str,
    method: &Method,
    body: Bytes,
) -> ApiResult<Response> {
    let Some(def) = t.def.subresource(sub).cloned() else {
        return Err(ApiError::no_route());
    };
    if t.path.name.is_none() {
        return Err(ApiError::no_route());
    }
    let verb = match method.as_str() {
        "GET" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "POST" => "create",
        "DELETE" => "delete",
        _ => "",
    };
    if !def.verbs.iter().any(|v| v == verb) {
        return Err(ApiError::method_not_allowed(
            verb,
            &t.def.group,
            &format!("{}/{sub}", t.def.plural),
        ));
    }
    match (sub, verb) {
        ("status", "get") => read::get(&t).await,
        ("status", "update") => write::update(&t, body, Some("status")).await,
        ("status", "patch") => write::patch(&t, body, Some("status")).await,
        ("scale", _) => scale(&t, verb, body).await,
        ("binding", "create") => binding(&t, body).await,
        ("eviction", "create") => eviction(&t, body).await,
        ("finalize", "update") => finalize(&t, body).await,
        ("token", "create") => crate::reviews::token_request(&t, body).await,
        ("proxy", _) => Err(ApiError::not_supported(format!(
            "{}/proxy is not supported by this Gantry",
            t.def.plural
        ))),
        _ => Err(ApiError::not_supported(format!(
            "{}/{sub} is not supported by this Gantry",
            t.def.plural
        ))),
    }
}

/// The label selector of an object, as the text a Scale carries.
fn selector_text(obj: &Value) -> String {
    let Some(selector) = obj.pointer("/spec/selector") else {
        return String::new();
    };
    // ReplicationControllers have a plain map; the rest a LabelSelector.
    let (labels, expressions) = match selector
        .get("matchLabels")
        .or(selector.get("matchExpressions"))
    {
        Some(_) => (
            selector.get("matchLabels"),
            selector.get("matchExpressions"),
        ),
        None => (Some(selector), None),
    };
    let mut terms: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in expressions.and_then(Value::as_array).into_iter().flatten() {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        terms.push(
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_owned(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            },
        );
    }
    terms.join(",")
}

/// The autoscaling/v1 Scale of an object: replicas where a custom
/// resource's CRD says (`paths`), else where the built-in kinds keep them.
fn scale_of(obj: &Value, paths: Option<&ScalePaths>) -> Value {
    let m = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let pick = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer(spec_replicas(paths)).cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj
                .pointer(paths.map_or("/status/replicas", |p| &p.status_replicas))
                .cloned()
                .unwrap_or(json!(0)),
            "selector": match paths {
                Some(p) => p
                    .label_selector
                    .as_deref()
                    .and_then(|s| obj.pointer(s))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                None => selector_text(obj),
            },
        },
    })
}

/// A Scale as `kubectl get --subresource=scale` prints it: Kubernetes'
/// `printScale` columns (a plain `Name`, so no `kind/` prefix).
fn scale_table(t: &Target, scale: &Value) -> ApiResult<Response> {
    let include = Include::parse(t.query.get("includeObject"))?;
    let column = |name: &str, ty: &str, description: &str| json!({"name": name, "type": ty, "format": "", "description": description, "priority": 0});
    let columns = json!([
        column("Name", "string", "Name of the object."),
        column(
            "Desired",
            "integer",
            "Desired number of instances for the scaled object."
        ),
        column(
            "Available",
            "integer",
            "Actual number of observed instances of the scaled object."
        ),
        column("Age", "string", "When the object was created."),
    ]);
    let cells = json!([
        scale["metadata"]["name"],
        scale["spec"]["replicas"],
        scale["status"]["replicas"],
        kinds::table::age(scale, meta::now_unix()),
    ]);
    let mut row = json!({"cells": cells});
    match include {
        Include::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": scale["metadata"],
            });
        }
        Include::Object => row["object"] = scale.clone(),
        Include::None => {}
    }
    let rv = scale["metadata"]["resourceVersion"].as_str().unwrap_or("");
    let body = table::table(Some(columns), vec![row], rv, None);
    Ok(bytes_response(
        StatusCode::OK,
        TABLE_CONTENT_TYPE,
        body.to_string().into_bytes(),
    ))
}

fn spec_replicas(paths: Option<&ScalePaths>) -> &str {
    paths.map_or("/spec/replicas", |p| &p.spec_replicas)
}

/// Sets the value at a JSON pointer, making the objects on the way.
fn set_at(obj: &mut Value, pointer: &str, value: Value) {
    let mut at = obj;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let map = at.as_object_mut().expect("made an object above");
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), value);
            return;
        }
        at = map.entry(*part).or_insert_with(|| json!({}));
    }
}

/// `scale`: read, replace or patch the replica count.
async fn scale(t: &Target, verb: &str, body: Bytes) -> ApiResult<Response> {
    let storage_def = t.storage_def();
    let paths = storage_def.strategy.scale_paths();
    if verb == "get" {
        let (obj, _) = read::read_object(t, &t.key())
            .await?
            .ok_or_else(|| ApiError::not_found(&t.def.group, &t.def.plural, t.name()))?;
        let scale = scale_of(&obj, paths);
        return match t.output() {
            Output::Json | Output::Metadata => Ok(json_response(StatusCode::OK, &scale)),
            Output::Table => scale_table(t, &scale),
        };
    }
    let doc: Value = crate::codec::decode_json(&body)?.value;
    let content_type = t
        .header("content-type")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let precondition = if verb == "update" {
        meta::meta_str(&doc, "resourceVersion")
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v:?}")))
            })
            .transpose()?
    } else {
        None
    };
    let set = t.api.schemas();
    let make = |old: &Value| -> ApiResult<Value> {
        let current = scale_of(old, paths);
        let wanted = match (verb, content_type.as_str()) {
            ("update", _) => doc.clone(),
            (_, "application/json-patch+json") => patch::json_patch(&current, &doc)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
            _ => patch::merge_patch(&current, &doc),
        };
        let replicas = wanted
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                t.name(),
                &[kinds::FieldError::invalid(
                    "spec.replicas",
                    replicas.to_string(),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let mut new = old.clone();
        set_at(&mut new, spec_replicas(paths), json!(replicas));
        Ok(new)
    };
    let (stored, rev, _) = write::replace(
        t,
        &set,
        make,
        precondition,
        t.query.dry_run()?,
        Some("scale"),
    )
    .await?;
    let mut stored = stored;
    if let Some(rev) = rev {
        crate::storage::set_revision(&mut stored, rev);
    }
    Ok(json_response(StatusCode::OK, &scale_of(&stored, paths)))
}

/// `pods/binding`: assigns a pod to a node (the scheduler's write).
async fn binding(t: &Target, body: Bytes) -> ApiResult<Response> {
    let doc = crate::codec::decode_json(&body)?.value;
    let node = doc
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "",
                "Binding",
                t.name(),
                &[kinds::FieldError::required("target.name", "")],
            )
        })?
        .to_owned();
    let set = t.api.schemas();
    let now = json!(meta::now_rfc3339());
    let make = |old: &Value| -> ApiResult<Value> {
        if meta::is_deleting(old) {
            return Err(ApiError::conflict_because(
                "",
                "pods",
                t.name(),
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        if let Some(existing) = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict_because(
                "",
                "pods",
                t.name(),
                &format!(
                    "pod {} is already assigned to node \"{existing}\"",
                    t.name()
                ),
            ));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        set_condition(&mut new, "PodScheduled", "True", now.clone());
        Ok(new)
    };
    write::replace(t, &set, make, None, t.query.dry_run()?, Some("binding")).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &crate::status::success(None),
    ))
}

/// Sets a condition in `status.conditions`, keeping its transition time
/// when its status does not change.
fn set_condition(obj: &mut Value, type_: &str, status: &str, now: Value) {
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let conditions = obj["status"]["conditions"]
        .as_array_mut()
        .expect("conditions were just made a list");
    match conditions.iter_mut().find(|c| c["type"] == type_) {
        Some(c) if c["status"] == status => {}
        Some(c) => {
            *c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
        }
        None => conditions.push(
            json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": now}),
        ),
    }
}

/// `pods/eviction`: deletes the pod unless its disruption budget forbids
/// it (`crate::eviction`).
async fn eviction(t: &Target, body: Bytes) -> ApiResult<Response> {
    crate::eviction::evict(t, body).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &crate::status::success(None),
    ))
}

/// `namespaces/finalize`: the namespace controller's write of
/// `spec.finalizers`, the only field it changes.
async fn finalize(t: &Target, body: Bytes) -> ApiResult<Response> {
    let doc = crate::codec::decode_json(&body)?.value;
    let finalizers = doc
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let set = t.api.schemas();
    let make = |old: &Value| -> ApiResult<Value> {
        let mut new = old.clone();
        new["spec"]["finalizers"] = finalizers.clone();
        Ok(new)
    };
    let (stored, rev, _) =
        write::replace(t, &set, make, None, t.query.dry_run()?, Some("finalize")).await?;
    let mut stored = stored;
    if let Some(rev) = rev {
        crate::storage::set_revision(&mut stored, rev);
    }
    Ok(json_response(StatusCode::OK, &t.to_served(stored)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_read_replicas_and_selectors() {
        let deploy = json!({
            "metadata": {"name": "web", "namespace": "d", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
            "status": {"replicas": 2}
        });
        let s = scale_of(&deploy, None);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web,tier in (a,b)");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
        let rc = json!({"spec": {"selector": {"app": "x"}}});
        assert_eq!(selector_text(&rc), "app=x");
    }

    #[test]
    fn scales_custom_resources_through_their_paths() {
        let paths = ScalePaths {
            spec_replicas: "/spec/size".into(),
            status_replicas: "/status/size".into(),
            label_selector: Some("/status/selector".into()),
        };
        let obj = json!({"metadata": {"name": "c"}, "spec": {"size": 4},
            "status": {"size": 1, "selector": "app=c"}});
        let s = scale_of(&obj, Some(&paths));
        assert_eq!(s["spec"]["replicas"], 4);
        assert_eq!(s["status"]["replicas"], 1);
        assert_eq!(s["status"]["selector"], "app=c");
        let mut bare = json!({"metadata": {}});
        set_at(&mut bare, "/spec/size", json!(2));
        assert_eq!(bare["spec"]["size"], 2);
    }
}
