//! LimitRange admission, as Kubernetes' LimitRanger: a new pod's containers
//! get the `default` limits and `defaultRequest` requests of the
//! namespace's `Container` limits they do not state (recorded in the
//! `kubernetes.io/limit-ranger` annotation), then the pod is refused with
//! 403 when a container or the whole pod (`Pod` limits) is below `min`,
//! above `max` or over `maxLimitRequestRatio`; a new claim is checked
//! against `PersistentVolumeClaim` limits.

use kinds::Quantity;
use kinds::usage::{Usage, pod_resources};
use serde_json::{Value, json};
use store::RangeRequest;

use crate::rest::Target;
use crate::status::{ApiError, ApiResult};

const LIMIT_RANGES: &str = "/registry/core/limitranges/";

/// A parsed resource list under `path` of `obj`.
fn list(obj: &Value, path: &str) -> Usage {
    obj.pointer(path)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), kinds::parse_quantity(v.as_str()?)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Applies the defaults of the namespace's limits to a new pod and checks
/// a new pod or claim against them.
pub(crate) async fn admit(t: &Target, obj: &mut Value) -> ApiResult<()> {
    let (group, resource) = (&t.def.storage.group, t.def.storage.resource.as_str());
    if !group.is_empty() || !matches!(resource, "pods" | "persistentvolumeclaims") {
        return Ok(());
    }
    let Some(ns) = t.namespace() else {
        return Ok(());
    };
    let ranges = t
        .api
        .store
        .range(RangeRequest::prefix(format!("{LIMIT_RANGES}{ns}/")))
        .await?;
    let items: Vec<Value> = ranges
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .flat_map(|lr| {
            lr.pointer("/spec/limits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    let errors = if resource == "pods" {
        for item in items.iter().filter(|i| type_of(i) == "Container") {
            apply_defaults(obj, item);
        }
        check_pod(obj, &items)
    } else {
        check_claim(obj, &items)
    };
    if errors.is_empty() {
        return Ok(());
    }
    // Kubernetes aggregates the errors: one alone, several in brackets.
    let why = if errors.len() == 1 {
        errors[0].clone()
    } else {
        format!("[{}]", errors.join(", "))
    };
    Err(ApiError::forbidden(
        &t.def.group,
        &t.def.plural,
        crate::meta::name(obj),
        &why,
    ))
}

fn type_of(item: &Value) -> &str {
    item.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Sets what a `Container` limit defaults and the containers leave out,
/// and notes it in the pod's `kubernetes.io/limit-ranger` annotation.
fn apply_defaults(pod: &mut Value, item: &Value) {
    let defaults = [
        ("requests", item.get("defaultRequest")),
        ("limits", item.get("default")),
    ];
    let mut notes = Vec::new();
    for field in ["initContainers", "containers"] {
        let Some(containers) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            for (which, default) in defaults {
                let Some(default) = default.and_then(Value::as_object) else {
                    continue;
                };
                let mut set = Vec::new();
                for (res, q) in default {
                    let list = &mut c["resources"][which];
                    if list.get(res).is_none() {
                        list[res] = q.clone();
                        set.push(res.clone());
                    }
                }
                if !set.is_empty() {
                    let word = if which == "limits" {
                        "limit"
                    } else {
                        "request"
                    };
                    notes.push(format!(
                        "{} {word} for {} {name}",
                        set.join(", "),
                        if field == "containers" {
                            "container"
                        } else {
                            "init container"
                        }
                    ));
                }
            }
        }
    }
    if !notes.is_empty() {
        let annotations = &mut crate::meta::metadata_mut(pod)
            .entry("annotations")
            .or_insert_with(|| json!({}));
        annotations["kubernetes.io/limit-ranger"] =
            json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

fn check_pod(pod: &Value, items: &[Value]) -> Vec<String> {
    let mut errors = Vec::new();
    for item in items {
        match type_of(item) {
            "Container" => {
                for field in ["containers", "initContainers"] {
                    for c in pod
                        .pointer(&format!("/spec/{field}"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let requests = list(c, "/resources/requests");
                        let limits = list(c, "/resources/limits");
                        errors.extend(check(item, "Container", &requests, &limits));
                    }
                }
            }
            "Pod" => {
                let requests = pod_resources(pod, "requests");
                let limits = pod_resources(pod, "limits");
                errors.extend(check(item, "Pod", &requests, &limits));
            }
            _ => {}
        }
    }
    errors
}

fn check_claim(claim: &Value, items: &[Value]) -> Vec<String> {
    let requests = list(claim, "/spec/resources/requests");
    let mut errors = Vec::new();
    for item in items
        .iter()
        .filter(|i| type_of(i) == "PersistentVolumeClaim")
    {
        let kind = "PersistentVolumeClaim";
        for (res, min) in list(item, "/min") {
            match requests.get(&res) {
                None => errors.push(format!(
                    "minimum {res} usage per {kind} is {min}.  No request is specified"
                )),
                Some(r) if *r < min => errors.push(format!(
                    "minimum {res} usage per {kind} is {min}, but request is {r}"
                )),
                Some(_) => {}
            }
        }
        for (res, max) in list(item, "/max") {
            match requests.get(&res) {
                None => errors.push(format!(
                    "maximum {res} usage per {kind} is {max}.  No request is specified"
                )),
                Some(r) if *r > max => errors.push(format!(
                    "maximum {res} usage per {kind} is {max}, but request is {r}"
                )),
                Some(_) => {}
            }
        }
    }
    errors
}

/// Checks one container's (or the pod's) requests and limits against a
/// limit's `min`, `max` and `maxLimitRequestRatio`, in Kubernetes' words.
fn check(item: &Value, kind: &str, requests: &Usage, limits: &Usage) -> Vec<String> {
    let mut errors = Vec::new();
    for (res, min) in list(item, "/min") {
        match (requests.get(&res), limits.get(&res)) {
            (None, _) => errors.push(format!(
                "minimum {res} usage per {kind} is {min}.  No request is specified"
            )),
            (Some(r), _) if *r < min => errors.push(format!(
                "minimum {res} usage per {kind} is {min}, but request is {r}"
            )),
            (_, Some(l)) if *l < min => errors.push(format!(
                "minimum {res} usage per {kind} is {min}, but limit is {l}"
            )),
            _ => {}
        }
    }
    for (res, max) in list(item, "/max") {
        match (requests.get(&res), limits.get(&res)) {
            (_, None) => errors.push(format!(
                "maximum {res} usage per {kind} is {max}.  No limit is specified"
            )),
            (_, Some(l)) if *l > max => errors.push(format!(
                "maximum {res} usage per {kind} is {max}, but limit is {l}"
            )),
            (Some(r), _) if *r > max => errors.push(format!(
                "maximum {res} usage per {kind} is {max}, but request is {r}"
            )),
            _ => {}
        }
    }
    let zero = Quantity::from_int(0);
    for (res, ratio) in list(item, "/maxLimitRequestRatio") {
        let request = requests.get(&res).copied().unwrap_or(zero);
        let limit = limits.get(&res).copied().unwrap_or(zero);
        if request == zero {
            errors.push(format!("{res} max limit to request ratio per {kind} is {ratio}, but no request is specified or request is 0"));
        } else if limit == zero {
            errors.push(format!("{res} max limit to request ratio per {kind} is {ratio}, but no limit is specified or limit is 0"));
        } else {
            // Compared in thousandths, as Kubernetes compares them.
            let observed = limit.milli_value() as f64 / request.milli_value() as f64;
            if observed * 1000.0 > ratio.milli_value() as f64 {
                errors.push(format!(
                    "{res} max limit to request ratio per {kind} is {ratio}, but provided ratio is {observed:.6}"
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn defaults_then_checks_containers() {
        let item = json!({"type": "Container", "max": {"cpu": "1"},
            "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "250m"}});
        let mut pod = json!({"metadata": {}, "spec": {"containers": [{"name": "a"}]}});
        apply_defaults(&mut pod, &item);
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "500m"
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "250m"
        );
        assert_eq!(
            pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
            "LimitRanger plugin set: cpu request for container a; cpu limit for container a"
        );
        assert!(check_pod(&pod, std::slice::from_ref(&item)).is_empty());
        pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("2");
        assert_eq!(
            check_pod(&pod, &[item]),
            ["maximum cpu usage per Container is 1, but limit is 2"]
        );
    }

    #[test]
    fn ratio_and_minimum() {
        let item = json!({"type": "Container", "min": {"memory": "64Mi"},
            "maxLimitRequestRatio": {"memory": "2"}});
        let requests =
            BTreeMap::from([("memory".to_owned(), kinds::parse_quantity("32Mi").unwrap())]);
        let limits =
            BTreeMap::from([("memory".to_owned(), kinds::parse_quantity("128Mi").unwrap())]);
        assert_eq!(
            check(&item, "Container", &requests, &limits),
            [
                "minimum memory usage per Container is 64Mi, but request is 32Mi",
                "memory max limit to request ratio per Container is 2, but provided ratio is 4.000000"
            ]
        );
    }
}
