//! ResourceQuota admission: a create (or an update that uses more) of an
//! object some quota of its namespace tracks is refused with 403 when it
//! would go over `status.hard`, and otherwise charges `status.used` of
//! every such quota in the object's own store transaction, conditioned on
//! each quota's revision. Two writes racing for the last unit cannot both
//! commit: the loser's transaction fails and the write is admitted again
//! against the new usage (`Extra::contended`). The resource quota
//! controller in `controllers` recomputes `status.used` from the objects,
//! which is how deletions and finished pods give their usage back.

use std::collections::BTreeSet;

use kinds::usage::{self, Usage};
use serde_json::{Value, json};
use store::{Compare, CompareOp, PutRequest, RangeRequest, TxnOp};

use crate::admission::Extra;
use crate::rest::Target;
use crate::status::{ApiError, ApiResult};

const QUOTAS: &str = "/registry/core/resourcequotas/";

/// Parses a stored resource list (`status.hard`, `status.used`).
fn list_at(obj: &Value, path: &str) -> Usage {
    obj.pointer(path)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), kinds::parse_quantity(v.as_str()?)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a create (`old` is `None`) or update against the namespace's
/// quotas; returns the quota writes its transaction must make.
pub(crate) async fn admit(t: &Target, obj: &Value, old: Option<&Value>) -> ApiResult<Extra> {
    let mut extra = Extra::default();
    let Some(ns) = t.namespace() else {
        return Ok(extra);
    };
    let (group, resource) = (&t.def.storage.group, &t.def.storage.resource);
    let mut delta = usage::usage(group, resource, obj);
    if let Some(old) = old {
        // An update is charged only for what it adds.
        let before = usage::usage(group, resource, old);
        delta = delta
            .into_iter()
            .filter_map(|(k, q)| {
                let grown = before.get(&k).map_or(q, |b| q.minus(*b));
                (grown.nanos() > 0).then_some((k, grown))
            })
            .collect();
    }
    if delta.is_empty() {
        return Ok(extra);
    }
    let quotas = t
        .api
        .store
        .range(RangeRequest::prefix(format!("{QUOTAS}{ns}/")))
        .await?;
    for kv in &quotas.kvs {
        let Ok(mut quota) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let name = crate::meta::name(&quota).to_owned();
        let hard = list_at(&quota, "/status/hard");
        let tracked: BTreeSet<String> = hard
            .keys()
            .filter(|k| usage::concerns(group, resource, k))
            .cloned()
            .collect();
        if tracked.is_empty() || !usage::in_scope(&quota, group, resource, obj) {
            continue;
        }
        let forbid = |why: String| {
            ApiError::forbidden(&t.def.group, &t.def.plural, crate::meta::name(obj), &why)
        };
        if old.is_none()
            && group.is_empty()
            && resource == "pods"
            && let Some(missing) = usage::pod_missing(&tracked, obj)
        {
            return Err(forbid(format!(
                "failed quota: {name}: must specify {missing}"
            )));
        }
        let used = list_at(&quota, "/status/used");
        let unknown: Vec<&str> = tracked
            .iter()
            .filter(|k| !used.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(forbid(format!(
                "status unknown for quota: {name}, resources: {}",
                unknown.join(",")
            )));
        }
        let mut requested = Usage::new();
        let mut new_used = Usage::new();
        let mut exceeded = Vec::new();
        for key in tracked.iter().filter(|k| delta.contains_key(*k)) {
            let total = used[key].plus(delta[key]);
            if total > hard[key] {
                exceeded.push(key.clone());
            }
            requested.insert(key.clone(), delta[key]);
            new_used.insert(key.clone(), total);
        }
        if !exceeded.is_empty() {
            let only = |list: &Usage| -> Usage {
                list.iter()
                    .filter(|(k, _)| exceeded.contains(k))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect()
            };
            return Err(forbid(format!(
                "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                usage::pretty(&only(&requested)),
                usage::pretty(&only(&used)),
                usage::pretty(&only(&hard)),
            )));
        }
        if new_used.is_empty() {
            continue;
        }
        for (k, q) in new_used {
            quota["status"]["used"][k] = json!(q.to_string());
        }
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        extra.compares.push(Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            kv.mod_revision,
        ));
        extra.ops.push(TxnOp::Put(PutRequest::new(
            key,
            crate::storage::encode(&quota),
        )));
        extra.contended = true;
    }
    Ok(extra)
}
