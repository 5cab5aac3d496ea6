//! CustomResourceDefinitions: serving their kinds, and the controller that
//! establishes and removes them.
//!
//! Every server follows the CRDs in the store with a watch. On any change
//! it rebuilds the catalogue (built-ins plus every established CRD's
//! served versions, see `kinds::custom`) and the schema set, and swaps both
//! in, so a request sees either the old or the new set, never a mix.
//!
//! The controller part, idempotent so that every server may run it:
//! - a new or changed CRD gets its names checked against the other CRDs
//!   of its group; accepted names go to `status.acceptedNames` with the
//!   conditions `NamesAccepted` and `Established`, and the CRD gets the
//!   `customresourcecleanup.apiextensions.k8s.io` finalizer;
//! - a CRD being deleted is marked `Terminating`, its objects are deleted
//!   through the REST engine (their finalizers honoured), and once none is
//!   left the finalizer is removed, which deletes the CRD.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use store::{KeyRange, RangeRequest, WatchRequest};

use crate::Api;
use crate::meta;
use crate::rest::{Target, write};
use crate::status::ApiResult;

/// Where CRDs are stored.
const PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// The finalizer that keeps a CRD until its objects are gone.
pub(crate) const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Reads every CRD from the store.
async fn list(api: &Api) -> ApiResult<Vec<Value>> {
    let listed = api.store.range(RangeRequest::prefix(PREFIX)).await?;
    Ok(listed
        .kvs
        .iter()
        .filter_map(|kv| crate::storage::decode(&kv.value, kv.mod_revision).ok())
        .collect())
}

fn is_established(crd: &Value) -> bool {
    condition(crd, "Established").is_some_and(|c| c["status"] == "True")
}

fn condition<'a>(crd: &'a Value, ty: &str) -> Option<&'a Value> {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == ty)
}

/// Serves the established CRDs among `crds` (and nothing else custom).
fn install(api: &Api, crds: &[Value]) {
    // What decides the served set: each established CRD's spec and names.
    let served: Vec<Value> = crds
        .iter()
        .filter(|c| is_established(c))
        .map(|c| json!([c["spec"], c.pointer("/status/acceptedNames")]))
        .collect();
    let served = Value::Array(served);
    let mut last = api.served_crds.lock();
    if last.as_ref() == Some(&served) {
        return;
    }
    *last = Some(served);
    let mut defs = kinds::builtin();
    let mut schemas = kinds::openapi::definitions().clone();
    for crd in crds.iter().filter(|c| is_established(c)) {
        let custom = kinds::custom::from_crd(crd);
        defs.extend(custom.resources);
        for (name, schema) in custom.schemas {
            schemas.insert(name, schema);
        }
    }
    api.install(defs, schemas);
}

/// Loads the CRDs at start, so their kinds are served from the first
/// request.
pub(crate) async fn load(api: &Arc<Api>) -> ApiResult<()> {
    let crds = list(api).await?;
    install(api, &crds);
    Ok(())
}

/// Follows CRD changes until the store closes.
pub(crate) async fn run(api: Arc<Api>) {
    loop {
        let watch = api
            .store
            .watch(WatchRequest::new(KeyRange::prefix(PREFIX)))
            .await;
        let mut watch = match watch {
            Ok(w) => w,
            Err(store::StoreError::Closed(_)) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch CustomResourceDefinitions");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // The watch started before this pass reads, so no change between
        // the two is missed.
        let pending = match reconcile(&api).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "CustomResourceDefinition pass failed");
                true
            }
        };
        // Wait for a change, or retry soon while CRDs are being deleted.
        let wait = if pending {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(30)
        };
        match tokio::time::timeout(wait, watch.next()).await {
            Ok(Some(Err(store::StoreError::Closed(_)))) => return,
            Ok(None) => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => {}
        }
    }
}

/// One pass: serve what is established, establish what is new, clean up
/// what is deleted. True when something is still waiting (objects of a
/// deleted CRD that have finalizers).
async fn reconcile(api: &Arc<Api>) -> ApiResult<bool> {
    let crds = list(api).await?;
    tracing::debug!(count = crds.len(), "reconciling CustomResourceDefinitions");
    install(api, &crds);
    let mut pending = false;
    for crd in &crds {
        let name = meta::name(crd).to_owned();
        let result = if meta::is_deleting(crd) {
            clean_up(api, crd, &name).await.map(|done| !done)
        } else {
            establish(api, crd, &crds, &name).await.map(|()| false)
        };
        tracing::debug!(crd = %name, ?result, "reconciled");
        match result {
            Ok(waiting) => pending |= waiting,
            // Another server got there first, or the CRD just went.
            Err(e) if e.code == 404 || e.code == 409 => pending = true,
            Err(e) => return Err(e),
        }
    }
    Ok(pending)
}

fn target(api: &Arc<Api>, name: &str) -> Target {
    Target::internal(
        api,
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        None,
        Some(name),
    )
    .expect("CustomResourceDefinitions are always served")
}

/// Which of `crd`'s names another CRD of its group already holds.
fn conflict(crd: &Value, crds: &[Value]) -> Option<(&'static str, String)> {
    let group = crd.pointer("/spec/group");
    let own = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    for other in crds {
        if meta::name(other) == meta::name(crd) || other.pointer("/spec/group") != group {
            continue;
        }
        let Some(taken) = other.pointer("/status/acceptedNames") else {
            continue;
        };
        for (field, reason) in [("plural", "PluralConflict"), ("kind", "KindConflict")] {
            if own.get(field).is_some() && own.get(field) == taken.get(field) {
                let value = own[field].as_str().unwrap_or_default().to_owned();
                return Some((reason, format!("{value:?} is already in use")));
            }
        }
    }
    None
}

fn conditions_of(crd: &Value) -> Vec<Value> {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Accepts a CRD's names (or says which conflict), establishes it, and
/// gives it the clean-up finalizer.
async fn establish(api: &Arc<Api>, crd: &Value, crds: &[Value], name: &str) -> ApiResult<()> {
    let t = target(api, name);
    let set = api.schemas();
    if !meta::finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER) {
        let add = |old: &Value| -> ApiResult<Value> {
            let mut new = old.clone();
            let mut finalizers = meta::finalizers(old);
            if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
                finalizers.push(CLEANUP_FINALIZER.to_owned());
            }
            meta::metadata_mut(&mut new).insert("finalizers".into(), json!(finalizers));
            Ok(new)
        };
        write::replace(&t, &set, add, None, false, None).await?;
    }
    let now = meta::now_rfc3339();
    let mut conditions = conditions_of(crd);
    let accepted = match conflict(crd, crds) {
        Some((reason, message)) => {
            meta::set_condition(
                &mut conditions,
                json!({"type": "NamesAccepted", "status": "False", "reason": reason, "message": message}),
                &now,
            );
            if !is_established(crd) {
                meta::set_condition(
                    &mut conditions,
                    json!({"type": "Established", "status": "False", "reason": "NotAccepted",
                           "message": "not all names are accepted"}),
                    &now,
                );
            }
            crd.pointer("/status/acceptedNames").cloned()
        }
        None => {
            meta::set_condition(
                &mut conditions,
                json!({"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                       "message": "no conflicts found"}),
                &now,
            );
            meta::set_condition(
                &mut conditions,
                json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                       "message": "the initial names have been accepted"}),
                &now,
            );
            let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
            if let Some(n) = names.as_object_mut() {
                let kind = n
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                n.entry("singular")
                    .or_insert_with(|| json!(kind.to_lowercase()));
                n.entry("listKind")
                    .or_insert_with(|| json!(format!("{kind}List")));
            }
            Some(names)
        }
    };
    let unchanged = crd.pointer("/status/conditions") == Some(&json!(conditions))
        && crd.pointer("/status/acceptedNames") == accepted.as_ref();
    if unchanged {
        return Ok(());
    }
    let mut t = t;
    t.path.subresource = Some("status".into());
    let update = |old: &Value| -> ApiResult<Value> {
        let mut new = old.clone();
        let status = new
            .as_object_mut()
            .map(|m| m.entry("status").or_insert_with(|| json!({})));
        if let Some(Value::Object(status)) = status {
            status.insert("conditions".into(), json!(conditions));
            match &accepted {
                Some(names) => status.insert("acceptedNames".into(), names.clone()),
                None => status.remove("acceptedNames"),
            };
        }
        Ok(new)
    };
    write::replace(&t, &set, update, None, false, Some("status")).await?;
    Ok(())
}

/// Deletes a terminating CRD's objects; when none is left, lets the CRD
/// go. True when done.
async fn clean_up(api: &Arc<Api>, crd: &Value, name: &str) -> ApiResult<bool> {
    if !meta::finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER) {
        return Ok(true);
    }
    let set = api.schemas();
    if condition(crd, "Terminating").is_none() {
        let mut conditions = conditions_of(crd);
        meta::set_condition(
            &mut conditions,
            json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
                   "message": "CustomResource deletion is in progress"}),
            &meta::now_rfc3339(),
        );
        let mut t = target(api, name);
        t.path.subresource = Some("status".into());
        let mark = |old: &Value| -> ApiResult<Value> {
            let mut new = old.clone();
            new["status"]["conditions"] = json!(conditions);
            Ok(new)
        };
        write::replace(&t, &set, mark, None, false, Some("status")).await?;
    }
    let custom = kinds::custom::from_crd(crd);
    let remaining = match custom.resources.first() {
        Some(def) => delete_objects(api, def).await?,
        None => 0,
    };
    if remaining > 0 {
        return Ok(false);
    }
    let release = |old: &Value| -> ApiResult<Value> {
        let mut new = old.clone();
        let keep: Vec<String> = meta::finalizers(old)
            .into_iter()
            .filter(|f| f != CLEANUP_FINALIZER)
            .collect();
        meta::metadata_mut(&mut new).insert("finalizers".into(), json!(keep));
        Ok(new)
    };
    write::replace(&target(api, name), &set, release, None, false, None).await?;
    tracing::info!(crd = %name, "custom resources removed, CustomResourceDefinition deleted");
    Ok(true)
}

/// Deletes every object of a custom resource; answers how many remain
/// (objects held by finalizers).
async fn delete_objects(api: &Arc<Api>, def: &kinds::ResourceDef) -> ApiResult<i64> {
    let prefix = crate::storage::resource_prefix(&def.storage);
    let present = api
        .store
        .range(RangeRequest::prefix(prefix.clone()).keys_only())
        .await?;
    for kv in &present.kvs {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        let rest = key.strip_prefix(&prefix).unwrap_or_default();
        let (namespace, name) = match rest.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, rest),
        };
        let Some(t) = Target::internal(
            api,
            &def.group,
            &def.version,
            &def.plural,
            namespace,
            Some(name),
        ) else {
            // No longer served here: nothing can be done through the engine.
            continue;
        };
        match write::delete(&t, Bytes::new()).await {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => tracing::warn!(%key, error = %e, "could not delete a custom object"),
        }
    }
    Ok(api
        .store
        .range(RangeRequest::prefix(prefix).count_only())
        .await?
        .count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_use_in_the_group_conflict() {
        let crd = |name: &str, plural: &str, kind: &str, accepted: bool| {
            let mut c = json!({"metadata": {"name": name},
                "spec": {"group": "g.io", "names": {"plural": plural, "kind": kind}}});
            if accepted {
                c["status"] = json!({"acceptedNames": {"plural": plural, "kind": kind}});
            }
            c
        };
        let a = crd("as.g.io", "as", "A", true);
        let b = crd("bs.g.io", "bs", "A", false);
        let c = crd("cs.g.io", "cs", "C", false);
        let crds = vec![a.clone(), b.clone(), c.clone()];
        assert_eq!(conflict(&a, &crds), None);
        assert_eq!(
            conflict(&b, &crds),
            Some(("KindConflict", "\"A\" is already in use".into()))
        );
        assert_eq!(conflict(&c, &crds), None);
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let mut conditions = vec![json!({"type": "Established", "status": "True",
            "lastTransitionTime": "t0"})];
        meta::set_condition(
            &mut conditions,
            json!({"type": "Established", "status": "True", "reason": "R"}),
            "t1",
        );
        assert_eq!(conditions[0]["lastTransitionTime"], "t0");
        meta::set_condition(
            &mut conditions,
            json!({"type": "Established", "status": "False"}),
            "t2",
        );
        assert_eq!(conditions[0]["lastTransitionTime"], "t2");
        meta::set_condition(
            &mut conditions,
            json!({"type": "NamesAccepted", "status": "True"}),
            "t3",
        );
        assert_eq!(conditions.len(), 2);
    }
}
