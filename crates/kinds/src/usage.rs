//! What an object counts against a ResourceQuota, as Kubernetes' quota
//! evaluators count it: object counts (`pods`, `services`, ...,
//! `count/<resource>.<group>`), a pod's compute requests and limits, a
//! Service's node ports and load balancers, a claim's storage. The API
//! server's quota admission and the resource quota controller both count
//! through here, so what admission charges is what the controller finds.
//!
//! Objects are JSON in their storage version; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::Quantity;

/// Resource name → amount.
pub type Usage = BTreeMap<String, Quantity>;

/// The compute resources a pod's containers are checked for when a quota
/// tracks them (Kubernetes' backward-compatible "must specify" rule).
const POD_CONSTRAINED: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Resources whose requests a pod also counts under their bare name.
const BARE: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// The object-count key of a resource: `count/pods`, `count/deployments.apps`.
pub fn count_key(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// The group and resource whose objects a quota's `key` counts, or `None`
/// when the key names no objects (an unknown resource name).
pub fn counted_by(key: &str) -> Option<(String, String)> {
    if let Some(rest) = key.strip_prefix("count/") {
        return Some(match rest.split_once('.') {
            Some((resource, group)) => (group.to_owned(), resource.to_owned()),
            None => (String::new(), rest.to_owned()),
        });
    }
    let core = |r: &str| Some((String::new(), r.to_owned()));
    match key {
        "pods" | "cpu" | "memory" | "ephemeral-storage" => core("pods"),
        "services" | "services.nodeports" | "services.loadbalancers" => core("services"),
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => core(key),
        "persistentvolumeclaims" | "requests.storage" => core("persistentvolumeclaims"),
        k if k.ends_with(".storageclass.storage.k8s.io/requests.storage")
            || k.ends_with(".storageclass.storage.k8s.io/persistentvolumeclaims") =>
        {
            core("persistentvolumeclaims")
        }
        k if k.starts_with("requests.") || k.starts_with("limits.") => core("pods"),
        _ => None,
    }
}

/// Whether a pod still uses what it asked for: not finished
/// (Succeeded/Failed) and not being deleted.
pub fn pod_counts(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    pod.pointer("/metadata/deletionTimestamp")
        .is_none_or(Value::is_null)
        && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// What `obj`, an object of `group`/`resource`, uses. A finished or
/// deleting pod uses nothing.
pub fn usage(group: &str, resource: &str, obj: &Value) -> Usage {
    let mut used = Usage::new();
    let one = Quantity::from_int(1);
    let core = group.is_empty();
    if core && resource == "pods" && !pod_counts(obj) {
        return used;
    }
    used.insert(count_key(group, resource), one);
    if !core {
        return used;
    }
    match resource {
        "pods" => {
            used.insert("pods".into(), one);
            pod_compute(obj, &mut used);
        }
        "services" => {
            used.insert("services".into(), one);
            let kind = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if kind == "NodePort" || kind == "LoadBalancer" {
                let ports = i64::try_from(ports).unwrap_or(i64::MAX);
                used.insert("services.nodeports".into(), Quantity::from_int(ports));
            }
            if kind == "LoadBalancer" {
                used.insert("services.loadbalancers".into(), one);
            }
        }
        "persistentvolumeclaims" => {
            used.insert("persistentvolumeclaims".into(), one);
            let class = obj
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            if let Some(class) = class {
                used.insert(
                    format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"),
                    one,
                );
            }
            let storage = obj
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(crate::parse_quantity);
            if let Some(q) = storage {
                used.insert("requests.storage".into(), q);
                if let Some(class) = class {
                    used.insert(
                        format!("{class}.storageclass.storage.k8s.io/requests.storage"),
                        q,
                    );
                }
            }
        }
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => {
            used.insert(resource.to_owned(), one);
        }
        _ => {}
    }
    used
}

/// A resource list (`requests`, `limits`) of one container, parsed.
fn resource_list(container: &Value, which: &str) -> Usage {
    container
        .pointer(&format!("/resources/{which}"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), crate::parse_quantity(v.as_str()?)?)))
                .collect()
        })
        .unwrap_or_default()
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A pod's effective requests or limits: the sum over its containers, at
/// least the largest of any init container, plus the pod's overhead.
pub fn pod_resources(pod: &Value, which: &str) -> Usage {
    let mut total = Usage::new();
    for c in containers(pod, "containers") {
        for (k, q) in resource_list(c, which) {
            let sum = total.get(&k).map_or(q, |t| t.plus(q));
            total.insert(k, sum);
        }
    }
    for c in containers(pod, "initContainers") {
        for (k, q) in resource_list(c, which) {
            if total.get(&k).is_none_or(|t| *t < q) {
                total.insert(k, q);
            }
        }
    }
    if let Some(overhead) = pod.pointer("/spec/overhead").and_then(Value::as_object) {
        for (k, v) in overhead {
            if let (Some(q), true) = (
                v.as_str().and_then(crate::parse_quantity),
                total.contains_key(k),
            ) {
                let sum = total[k].plus(q);
                total.insert(k.clone(), sum);
            }
        }
    }
    total
}

fn pod_compute(pod: &Value, used: &mut Usage) {
    for (k, q) in pod_resources(pod, "requests") {
        if BARE.contains(&k.as_str()) {
            used.insert(k.clone(), q);
        }
        used.insert(format!("requests.{k}"), q);
    }
    for (k, q) in pod_resources(pod, "limits") {
        if BARE.contains(&k.as_str()) || k.starts_with("hugepages-") {
            used.insert(format!("limits.{k}"), q);
        }
    }
}

/// Whether a quota's key is one that the objects of `group`/`resource`
/// count towards.
pub fn concerns(group: &str, resource: &str, key: &str) -> bool {
    counted_by(key).is_some_and(|(g, r)| g == group && r == resource)
}

/// For a pod, Kubernetes' refusal when a quota tracks a compute resource
/// (of `tracked`) that some container does not state: `limits.cpu for:
/// c1,c2; requests.memory for: c1`. `None` when every container states
/// them all.
pub fn pod_missing(tracked: &BTreeSet<String>, pod: &Value) -> Option<String> {
    let required: Vec<&str> = POD_CONSTRAINED
        .into_iter()
        .filter(|r| tracked.contains(*r))
        .collect();
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in containers(pod, "containers").chain(containers(pod, "initContainers")) {
        let requests = resource_list(c, "requests");
        let limits = resource_list(c, "limits");
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        for r in &required {
            let has = match r.split_once('.') {
                Some(("limits", res)) => limits.contains_key(res),
                Some((_, res)) => requests.contains_key(res),
                None => requests.contains_key(*r),
            };
            if !has {
                missing.entry(r).or_default().insert(name.to_owned());
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "{r} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Some(parts.join("; "))
}

/// Whether a quota's scopes (`spec.scopes` and `spec.scopeSelector`)
/// select the object. Scoped quotas count pods only.
pub fn in_scope(quota: &Value, group: &str, resource: &str, obj: &Value) -> bool {
    let mut scopes: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_owned(), "Exists".to_owned(), Vec::new()))
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        scopes.push((text("scopeName"), text("operator"), values));
    }
    if scopes.is_empty() {
        return true;
    }
    if !(group.is_empty() && resource == "pods") {
        return false;
    }
    scopes
        .iter()
        .all(|(scope, op, values)| pod_in_scope(obj, scope, op, values))
}

fn pod_in_scope(pod: &Value, scope: &str, op: &str, values: &[String]) -> bool {
    let terminating = pod
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0);
    let best_effort = ["requests", "limits"].iter().all(|which| {
        let all = pod_resources(pod, which);
        !all.contains_key("cpu") && !all.contains_key("memory")
    });
    let holds = |v: bool| {
        if op == "DoesNotExist" || op == "NotIn" {
            !v
        } else {
            v
        }
    };
    match scope {
        "Terminating" => holds(terminating),
        "NotTerminating" => holds(!terminating),
        "BestEffort" => holds(best_effort),
        "NotBestEffort" => holds(!best_effort),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str);
            match op {
                "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                "NotIn" => class.is_none_or(|c| !values.iter().any(|v| v == c)),
                "Exists" => class.is_some_and(|c| !c.is_empty()),
                "DoesNotExist" => class.is_none_or(str::is_empty),
                _ => false,
            }
        }
        _ => false,
    }
}

/// `a=1,b=2`, keys sorted, as Kubernetes prints resource lists in quota
/// messages.
pub fn pretty(list: &Usage) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": "200m"}}},
            {"name": "b", "resources": {"requests": {"cpu": "300m"}}}
        ], "initContainers": [
            {"name": "i", "resources": {"requests": {"cpu": "1"}}}
        ]}})
    }

    #[test]
    fn pods_count_their_effective_requests_and_limits() {
        let u = usage("", "pods", &pod());
        let s: Vec<String> = u.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            s,
            [
                "count/pods=1",
                "cpu=1",
                "limits.cpu=200m",
                "memory=64Mi",
                "pods=1",
                "requests.cpu=1",
                "requests.memory=64Mi"
            ]
        );
        let mut done = pod();
        done["status"] = json!({"phase": "Succeeded"});
        assert!(usage("", "pods", &done).is_empty());
    }

    #[test]
    fn counts_services_claims_and_other_objects() {
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 1}, {"port": 2}]}});
        assert_eq!(
            pretty(&usage("", "services", &svc)),
            "count/services=1,services=1,services.nodeports=2"
        );
        let pvc = json!({"spec": {"storageClassName": "fast",
            "resources": {"requests": {"storage": "1Gi"}}}});
        assert!(
            pretty(&usage("", "persistentvolumeclaims", &pvc)).contains("requests.storage=1Gi")
        );
        assert_eq!(
            pretty(&usage("apps", "deployments", &json!({}))),
            "count/deployments.apps=1"
        );
        assert_eq!(
            counted_by("count/deployments.apps"),
            Some(("apps".into(), "deployments".into()))
        );
        assert!(concerns("", "pods", "limits.memory"));
        assert!(!concerns("", "services", "pods"));
    }

    #[test]
    fn names_containers_missing_tracked_resources() {
        let tracked: BTreeSet<String> = ["limits.cpu", "requests.memory", "pods"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            pod_missing(&tracked, &pod()).unwrap(),
            "limits.cpu for: b,i; requests.memory for: b,i"
        );
    }

    #[test]
    fn scopes_select_pods() {
        let quota = json!({"spec": {"scopes": ["BestEffort"]}});
        let bare = json!({"spec": {"containers": [{"name": "a"}]}});
        assert!(in_scope(&quota, "", "pods", &bare));
        assert!(!in_scope(&quota, "", "pods", &pod()));
        assert!(!in_scope(&quota, "", "configmaps", &json!({})));
        let prio = json!({"spec": {"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        let high = json!({"spec": {"priorityClassName": "high"}});
        assert!(in_scope(&prio, "", "pods", &high));
        assert!(!in_scope(&prio, "", "pods", &bare));
    }
}
