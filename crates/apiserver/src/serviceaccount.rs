//! ServiceAccount admission for new pods, as Kubernetes' `ServiceAccount`
//! plugin: unless the pod or its service account turns
//! `automountServiceAccountToken` off, the pod gets a projected volume
//! `kube-api-access-<5 random>` (a token bound to the pod, the cluster CA from
//! the namespace's `kube-root-ca.crt` ConfigMap, and the namespace's name),
//! mounted read-only at [`MOUNT_PATH`] in every container and init container
//! that has nothing there already. That is what in-cluster clients read. A pod
//! that names no image pull secrets gets its service account's.
//!
//! Unlike Kubernetes, a service account that does not exist (yet) does not
//! refuse the pod: the namespace loop creates `default` a moment after the
//! namespace, and a pod created in that moment still starts once its token
//! can be issued. Mirror pods (`kubernetes.io/config.mirror`) are left alone.

use serde_json::{Value, json};
use store::RangeRequest;

use crate::rest::Target;
use crate::status::ApiResult;

/// Where in-cluster clients look for the token, `ca.crt` and `namespace`.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap every namespace has with the cluster CA under `ca.crt`.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// The token's lifetime, as the kubelet's default (an hour and seven seconds).
const TOKEN_SECONDS: i64 = 3607;

/// Mounts the service account's credentials into a pod being created.
pub(crate) async fn admit_pod(t: &Target, pod: &mut Value) -> ApiResult<()> {
    if pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return Ok(());
    }
    let account = account_name(pod).to_owned();
    let key = format!(
        "/registry/core/serviceaccounts/{}/{account}",
        t.namespace().unwrap_or("default")
    );
    let found = t.api.store.range(RangeRequest::key(key)).await?;
    let sa = found
        .kvs
        .first()
        .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok());
    inject(
        pod,
        sa.as_ref(),
        &crate::meta::generate_name("kube-api-access-"),
    );
    Ok(())
}

/// The service account the pod runs as.
fn account_name(pod: &Value) -> &str {
    ["/spec/serviceAccountName", "/spec/serviceAccount"]
        .iter()
        .find_map(|p| pod.pointer(p).and_then(Value::as_str))
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

/// What admission adds, given the service account (when it exists) and the
/// name for a new volume.
fn inject(pod: &mut Value, sa: Option<&Value>, volume_name: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
        && let Some(secrets) = sa
            .and_then(|sa| sa.get("imagePullSecrets"))
            .and_then(Value::as_array)
            .filter(|s| !s.is_empty())
    {
        spec.insert("imagePullSecrets".into(), Value::Array(secrets.clone()));
    }
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| sa?.get("automountServiceAccountToken")?.as_bool())
        .unwrap_or(true);
    if !automount {
        return;
    }
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            if mounts.is_null() {
                *mounts = json!([]);
            }
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            let taken = mounts.iter().any(|m| {
                m["mountPath"].as_str().map(|p| p.trim_end_matches('/')) == Some(MOUNT_PATH)
            });
            if !taken {
                mounts
                    .push(json!({"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH}));
                mounted = true;
            }
        }
    }
    if !mounted {
        return;
    }
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if volumes.is_null() {
        *volumes = json!([]);
    }
    if let Some(volumes) = volumes.as_array_mut() {
        volumes.push(json!({
            "name": volume_name,
            "projected": {
                "defaultMode": 0o644,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                    {"configMap": {"name": ROOT_CA_CONFIGMAP,
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef":
                        {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i", "image": "busybox"}],
            "containers": [
                {"name": "a", "image": "busybox", "volumeMounts": [{"name": "d", "mountPath": "/d"}]},
                {"name": "b", "image": "busybox"},
            ],
            "volumes": [{"name": "d", "emptyDir": {}}],
        }})
    }

    fn mounts(pod: &Value, list: &str, i: usize) -> Vec<(String, String)> {
        pod["spec"][list][i]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_owned(),
                    m["mountPath"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn every_container_gets_the_projected_credentials() {
        let mut p = pod();
        inject(&mut p, None, "kube-api-access-x2b4z");
        let access = ("kube-api-access-x2b4z".to_owned(), MOUNT_PATH.to_owned());
        assert_eq!(
            mounts(&p, "initContainers", 0),
            std::slice::from_ref(&access)
        );
        assert_eq!(
            mounts(&p, "containers", 0),
            [("d".to_owned(), "/d".to_owned()), access.clone()]
        );
        assert_eq!(mounts(&p, "containers", 1), [access]);
        assert_eq!(
            p["spec"]["containers"][1]["volumeMounts"][0]["readOnly"],
            true
        );
        let volumes = p["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        let sources = &volumes[1]["projected"]["sources"];
        assert_eq!(volumes[1]["projected"]["defaultMode"], 420);
        assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(sources[1]["configMap"]["items"][0]["path"], "ca.crt");
        assert_eq!(
            sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
    }

    #[test]
    fn the_pod_or_its_account_can_turn_it_off() {
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(false);
        let sa_on = json!({"automountServiceAccountToken": true});
        inject(&mut p, Some(&sa_on), "kube-api-access-aaaaa");
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert!(p["spec"]["containers"][1].get("volumeMounts").is_none());

        let mut p = pod();
        let sa_off = json!({"automountServiceAccountToken": false});
        inject(&mut p, Some(&sa_off), "kube-api-access-aaaaa");
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);

        // The pod's word beats its account's.
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(true);
        inject(&mut p, Some(&sa_off), "kube-api-access-aaaaa");
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_container_with_its_own_mount_there_keeps_it() {
        let mut p = pod();
        for c in ["initContainers", "containers"] {
            for container in p["spec"][c].as_array_mut().unwrap() {
                container["volumeMounts"] =
                    json!([{"name": "d", "mountPath": format!("{MOUNT_PATH}/")}]);
            }
        }
        inject(&mut p, None, "kube-api-access-aaaaa");
        // Nobody needs the volume, so there is none.
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(mounts(&p, "containers", 1).len(), 1);
    }

    #[test]
    fn pull_secrets_come_from_the_account_when_the_pod_has_none() {
        let sa = json!({"imagePullSecrets": [{"name": "reg"}]});
        let mut p = pod();
        inject(&mut p, Some(&sa), "kube-api-access-aaaaa");
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "reg"}]));
        let mut p = pod();
        p["spec"]["imagePullSecrets"] = json!([{"name": "own"}]);
        inject(&mut p, Some(&sa), "kube-api-access-aaaaa");
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "own"}]));
    }

    #[test]
    fn the_account_is_named_by_either_field() {
        assert_eq!(account_name(&json!({"spec": {}})), "default");
        assert_eq!(
            account_name(&json!({"spec": {"serviceAccount": "old"}})),
            "old"
        );
        assert_eq!(
            account_name(&json!({"spec": {"serviceAccountName": "new", "serviceAccount": "old"}})),
            "new"
        );
    }
}
