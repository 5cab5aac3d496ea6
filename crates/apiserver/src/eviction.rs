//! `pods/<name>/eviction` (policy/v1 and v1beta1 Eviction), as Kubernetes'
//! eviction REST: a pod that no PodDisruptionBudget covers, or that has
//! already stopped counting (finished, pending, being deleted), is deleted
//! as a graceful delete with the Eviction's `deleteOptions`. A pod one
//! budget covers is deleted only if the budget allows a disruption: its
//! `status.disruptionsAllowed` is decremented and the pod recorded in
//! `status.disruptedPods` with a write conditioned on the budget's
//! revision (redone on a lost race) before the pod is deleted; otherwise
//! the answer is 429 with a `DisruptionBudget` cause, which `kubectl
//! drain` waits on and retries. Several budgets for one pod are a 500.

use bytes::Bytes;
use serde_json::{Value, json};
use store::{Compare, CompareOp, PutRequest, RangeRequest, TxnOp, TxnRequest};

use crate::meta;
use crate::rest::Target;
use crate::rest::write;
use crate::status::{ApiError, ApiResult, Cause};

const BUDGETS: &str = "/registry/policy/poddisruptionbudgets/";

/// How many times a lost race on the budget is redone.
const ATTEMPTS: usize = 16;

/// Evicts the pod `t` names; returns once it is deleted (or refused).
pub(crate) async fn evict(t: &Target, body: Bytes) -> ApiResult<()> {
    let doc = crate::codec::decode_json(&body)?.value;
    let options = doc
        .get("deleteOptions")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let dry_run = t.query.dry_run()?
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    let ns = t.namespace().unwrap_or("");
    for _ in 0..ATTEMPTS {
        let Some((pod, _)) = crate::rest::read::read_object(t, &t.key()).await? else {
            return Err(ApiError::not_found("", "pods", t.name()));
        };
        if !ignores_budgets(&pod) {
            let budgets = t
                .api
                .store
                .range(RangeRequest::prefix(format!("{BUDGETS}{ns}/")))
                .await?;
            let labels = crate::meta::labels(&pod);
            let covering: Vec<_> = budgets
                .kvs
                .iter()
                .filter_map(|kv| Some((serde_json::from_slice::<Value>(&kv.value).ok()?, kv)))
                .filter(|(pdb, _)| selects(pdb.pointer("/spec/selector"), &labels))
                .collect();
            if covering.len() > 1 {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some((pdb, kv)) = covering.into_iter().next() {
                let Some(charged) = charge(pdb, &pod, t.name())? else {
                    // Unhealthy pod of a healthy budget: no disruption spent.
                    return delete(t, &options, dry_run).await;
                };
                if !dry_run {
                    let key = String::from_utf8_lossy(&kv.key).into_owned();
                    let resp = t
                        .api
                        .store
                        .txn(
                            TxnRequest::when(vec![Compare::mod_revision(
                                key.clone(),
                                CompareOp::Equal,
                                kv.mod_revision,
                            )])
                            .and_then(vec![TxnOp::Put(
                                PutRequest::new(key, crate::storage::encode(&charged)),
                            )]),
                        )
                        .await?;
                    if !resp.succeeded {
                        continue;
                    }
                }
            }
        }
        return delete(t, &options, dry_run).await;
    }
    Err(ApiError::conflict(
        "policy",
        "poddisruptionbudgets",
        t.name(),
    ))
}

/// Marks the pod `DisruptionTarget` (reason `EvictionByEvictionAPI`), as
/// Kubernetes does so that a Job's pod failure policy can tell an eviction
/// from a failure, then deletes it.
async fn delete(t: &Target, options: &Value, dry_run: bool) -> ApiResult<()> {
    let mut options = options.clone();
    if !dry_run {
        mark_disrupted(t, &mut options).await?;
    }
    write::delete(t, Bytes::from(options.to_string())).await?;
    Ok(())
}

/// Adds the condition to the pod as it is now, a status write as any other,
/// checking the delete's preconditions against the pod first; a
/// resourceVersion precondition is then moved on to the version it wrote.
async fn mark_disrupted(t: &Target, options: &mut Value) -> ApiResult<()> {
    let precondition = |field: &str| {
        options
            .pointer(&format!("/preconditions/{field}"))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (want_uid, want_version) = (precondition("uid"), precondition("resourceVersion"));
    let failed = |what: &str, want: &str, have: &str| {
        ApiError::conflict_because(
            "",
            "pods",
            t.name(),
            &format!(
                "Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
            ),
        )
    };
    let now = meta::now_rfc3339();
    let mark = |pod: &Value| -> ApiResult<Value> {
        for (what, want, field) in [
            ("UID", &want_uid, "uid"),
            ("ResourceVersion", &want_version, "resourceVersion"),
        ] {
            let have = meta::meta_str(pod, field).unwrap_or("");
            if let Some(want) = want
                && want != have
            {
                return Err(failed(what, want, have));
            }
        }
        let mut marked = pod.clone();
        if meta::is_deleting(pod) {
            return Ok(marked);
        }
        let mut conditions = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let cond = json!({
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting",
        });
        meta::set_condition(&mut conditions, cond, &now);
        marked["status"]["conditions"] = Value::Array(conditions);
        Ok(marked)
    };
    let mut status = Target::internal(&t.api, "", "v1", "pods", t.namespace(), Some(t.name()))
        .expect("pods are always served");
    status.path.subresource = Some("status".into());
    let set = t.api.schemas();
    let (_, written, _) = write::replace(&status, &set, mark, None, false, Some("status")).await?;
    if let (Some(revision), Some(_)) = (written, &want_version) {
        options["preconditions"]["resourceVersion"] = json!(revision.to_string());
    }
    Ok(())
}

/// A finished, pending or deleting pod disrupts nothing more when evicted.
fn ignores_budgets(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Pending") | None
    ) || crate::meta::is_deleting(pod)
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn status_int(pdb: &Value, field: &str) -> i64 {
    pdb.pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The budget with one disruption spent on `pod`, `None` when the pod may
/// go without spending one, or the refusal.
fn charge(mut pdb: Value, pod: &Value, pod_name: &str) -> ApiResult<Option<Value>> {
    let name = crate::meta::name(&pdb).to_owned();
    let too_many = |message: String, retry: u32| {
        let mut e = ApiError::too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            retry,
        );
        e.causes.push(Cause {
            reason: "DisruptionBudget".into(),
            message,
            field: String::new(),
        });
        e
    };
    let generation = pdb
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if status_int(&pdb, "observedGeneration") < generation {
        return Err(too_many(
            format!("The disruption budget {name} is still being processed by the server."),
            10,
        ));
    }
    let allowed = status_int(&pdb, "disruptionsAllowed");
    let (current, desired) = (
        status_int(&pdb, "currentHealthy"),
        status_int(&pdb, "desiredHealthy"),
    );
    if !is_ready(pod) {
        let policy = pdb
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str);
        if policy == Some("AlwaysAllow") || (current >= desired && desired > 0) {
            return Ok(None);
        }
    }
    if allowed < 0 {
        return Err(ApiError::forbidden(
            "policy",
            "poddisruptionbudget",
            &name,
            "pdb disruptions allowed is negative",
        ));
    }
    if allowed == 0 {
        return Err(too_many(
            format!(
                "The disruption budget {name} needs {desired} healthy pods and has {current} currently"
            ),
            0,
        ));
    }
    pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
    pdb["status"]["disruptedPods"][pod_name] = json!(crate::meta::now_rfc3339());
    if allowed == 1 {
        let conditions = pdb["status"]["conditions"]
            .as_array_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut conditions: Vec<Value> = conditions
            .into_iter()
            .filter(|c| c["type"] != "DisruptionAllowed")
            .collect();
        conditions.push(json!({
            "type": "DisruptionAllowed",
            "status": "False",
            "reason": "InsufficientPods",
            "message": "",
            "observedGeneration": generation,
            "lastTransitionTime": crate::meta::now_rfc3339(),
        }));
        pdb["status"]["conditions"] = json!(conditions);
    }
    Ok(Some(pdb))
}

/// Whether a policy/v1 `LabelSelector` selects `labels`; an absent
/// selector selects nothing, an empty one everything.
fn selects(selector: Option<&Value>, labels: &std::collections::BTreeMap<String, String>) -> bool {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return false;
    };
    let by_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    by_labels
        && selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .all(|e| {
                let key = e["key"].as_str().unwrap_or("");
                let values: Vec<&str> = e["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let value = labels.get(key).map(String::as_str);
                match e["operator"].as_str().unwrap_or("") {
                    "In" => value.is_some_and(|v| values.contains(&v)),
                    "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running_pod() -> Value {
        json!({"metadata": {"name": "p"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    #[test]
    fn spends_a_disruption_or_refuses() {
        let pdb = json!({"metadata": {"name": "b", "generation": 1}, "status": {
            "observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 3,
            "desiredHealthy": 2}});
        let charged = charge(pdb, &running_pod(), "p").unwrap().unwrap();
        assert_eq!(charged["status"]["disruptionsAllowed"], 0);
        assert!(charged["status"]["disruptedPods"]["p"].is_string());
        assert_eq!(
            charged["status"]["conditions"][0]["reason"],
            "InsufficientPods"
        );
        let err = charge(charged, &running_pod(), "p").unwrap_err();
        assert_eq!(err.code, 429);
        assert_eq!(
            err.causes[0].message,
            "The disruption budget b needs 2 healthy pods and has 3 currently"
        );
    }

    #[test]
    fn selectors() {
        let labels = [("app".to_owned(), "web".to_owned())].into_iter().collect();
        assert!(selects(Some(&json!({})), &labels));
        assert!(!selects(None, &labels));
        assert!(selects(
            Some(&json!({"matchLabels": {"app": "web"}})),
            &labels
        ));
        assert!(!selects(
            Some(
                &json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]})
            ),
            &labels
        ));
    }
}
