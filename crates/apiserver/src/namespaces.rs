//! The objects every cluster starts with, and namespace termination.
//!
//! Bootstrap creates (if absent) the namespaces `default`, `kube-system`,
//! `kube-public` and `kube-node-lease`, and the `kubernetes` Service in
//! `default` at the first address of the service range, and the cluster
//! DNS Service `kube-system/kube-dns` at its tenth (kubeadm's address; the
//! DNS server writes the Service's endpoints itself, as it is not a pod),
//! and the IngressClass `gantry` of the nodes' Ingress proxy, the default.
//!
//! Termination: a deleted namespace is only marked (phase Terminating, the
//! `kubernetes` finalizer in `spec.finalizers`). A background loop empties
//! such namespaces through the REST engine (so pods stop gracefully and
//! finalizers are honoured), then clears the finalizer, which deletes the
//! namespace. Every server runs the loop; its steps are idempotent.
//!
//! The same loop gives every live namespace its `default` ServiceAccount,
//! as Kubernetes' service account controller does (pods name it unless
//! they say otherwise, and their tokens are issued for it), and its
//! `kube-root-ca.crt` ConfigMap with the cluster CA, as the root CA
//! publisher does (pods' `kube-api-access` volumes read it); a deleted or
//! edited one is put back on the next pass (at most five seconds).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use store::{KeyRange, RangeRequest, WatchRequest};

use crate::Api;
use crate::rest::{Target, write};
use crate::status::ApiResult;

/// Namespaces every cluster has.
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

async fn create_if_absent(
    api: &Arc<Api>,
    resource: &str,
    namespace: Option<&str>,
    obj: Value,
) -> ApiResult<()> {
    create_in_group_if_absent(api, ("", "v1"), resource, namespace, obj).await
}

async fn create_in_group_if_absent(
    api: &Arc<Api>,
    (group, version): (&str, &str),
    resource: &str,
    namespace: Option<&str>,
    obj: Value,
) -> ApiResult<()> {
    let t = Target::internal(api, group, version, resource, namespace, None)
        .expect("built-in resources are always served");
    match write::create(&t, Bytes::from(obj.to_string())).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the objects every cluster has.
pub(crate) async fn bootstrap(api: &Arc<Api>) -> ApiResult<()> {
    for ns in SYSTEM_NAMESPACES {
        create_if_absent(api, "namespaces", None, json!({"metadata": {"name": ns}})).await?;
    }
    let port = api.config.listen.port();
    // No selector: every server keeps an EndpointSlice of it pointing at
    // itself (gantry's `api_endpoint`), as kube-apiserver's endpoint
    // reconciler does.
    create_if_absent(
        api,
        "services",
        Some("default"),
        json!({
            "metadata": {
                "name": "kubernetes",
                "labels": {"component": "apiserver", "provider": "kubernetes"}
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": api.config.ranges.api_service_ip().to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]
            }
        }),
    )
    .await?;
    // No selector: the endpoints are where the DNS servers listen, which
    // they publish as EndpointSlices (the `dns` crate's `ServerSlice`).
    create_if_absent(
        api,
        "services",
        Some("kube-system"),
        json!({
            "metadata": {
                "name": "kube-dns",
                "labels": {
                    "k8s-app": "kube-dns",
                    "kubernetes.io/cluster-service": "true",
                    "kubernetes.io/name": "CoreDNS"
                }
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": api.config.ranges.dns_service_ip().to_string(),
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}
                ]
            }
        }),
    )
    .await?;
    // The default class of claims: local directories on the node a claim's first pod
    // goes to, made by the controllers' local-path provisioner.
    let volumes = std::path::absolute(api.config.data_dir.join("local-volumes"))
        .unwrap_or_else(|_| api.config.data_dir.join("local-volumes"));
    create_in_group_if_absent(
        api,
        ("storage.k8s.io", "v1"),
        "storageclasses",
        None,
        json!({
            "metadata": {
                "name": "local-path",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}
            },
            "provisioner": kinds::storage::LOCAL_PATH_PROVISIONER,
            "parameters": {"path": volumes.display().to_string()},
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"
        }),
    )
    .await?;
    // The class of the Ingress proxy every node runs (the `ingress` crate), the default
    // for Ingresses naming none, as an ingress controller's installation makes it.
    create_in_group_if_absent(
        api,
        ("networking.k8s.io", "v1"),
        "ingressclasses",
        None,
        json!({
            "metadata": {
                "name": "gantry",
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}
            },
            "spec": {"controller": "gantry.dev/ingress"}
        }),
    )
    .await
}

/// Empties terminating namespaces and lets them go, until the store closes.
pub(crate) async fn run_finalizer(api: Arc<Api>) {
    loop {
        // Wake on any namespace change, or every few seconds to retry
        // namespaces still waiting for pods or finalizers. The watch starts
        // before the pass, so a namespace created during it wakes the next
        // one at once (its ServiceAccount and CA follow in milliseconds).
        let watch = api
            .store
            .watch(WatchRequest::new(KeyRange::prefix(
                "/registry/core/namespaces/",
            )))
            .await;
        if let Err(e) = finalize_all(&api).await {
            tracing::warn!(error = %e, "namespace termination pass failed");
        }
        match watch {
            Ok(mut w) => {
                let _ = tokio::time::timeout(Duration::from_secs(5), w.next()).await;
            }
            Err(store::StoreError::Closed(_)) => return,
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

async fn finalize_all(api: &Arc<Api>) -> ApiResult<()> {
    let namespaces = api
        .store
        .range(RangeRequest::prefix("/registry/core/namespaces/"))
        .await?;
    for kv in namespaces.kvs {
        let Ok(ns) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let name = crate::meta::name(&ns).to_owned();
        if !crate::meta::is_deleting(&ns) {
            ensure_default_service_account(api, &name).await?;
            // One namespace's odd ConfigMap (made immutable, say) must not
            // hold up the others' termination.
            if let Err(e) = ensure_root_ca(api, &name).await {
                tracing::warn!(namespace = %name, error = %e, "publishing the cluster CA");
            }
            continue;
        }
        if empty_namespace(api, &name).await? {
            let t = Target::internal(api, "", "v1", "namespaces", None, Some(&name))
                .expect("namespaces are always served");
            let set = api.schemas();
            let clear = |old: &Value| -> ApiResult<Value> {
                let mut new = old.clone();
                let keep: Vec<Value> = new
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .map(|f| {
                        f.iter()
                            .filter(|f| f.as_str() != Some("kubernetes"))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                new["spec"]["finalizers"] = Value::Array(keep);
                Ok(new)
            };
            match write::replace(&t, &set, clear, None, false, Some("finalize")).await {
                Ok(_) => tracing::info!(namespace = %name, "namespace emptied and deleted"),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Creates the namespace's `default` ServiceAccount when it is missing.
async fn ensure_default_service_account(api: &Arc<Api>, namespace: &str) -> ApiResult<()> {
    let key = format!("/registry/core/serviceaccounts/{namespace}/default");
    let found = api.store.range(RangeRequest::key(key).count_only()).await?;
    if found.count > 0 {
        return Ok(());
    }
    match create_if_absent(
        api,
        "serviceaccounts",
        Some(namespace),
        json!({"metadata": {"name": "default"}}),
    )
    .await
    {
        // A namespace that started terminating meanwhile refuses it.
        Err(e) if e.code == 403 => Ok(()),
        other => other,
    }
}

/// Creates the namespace's `kube-root-ca.crt` ConfigMap, or puts the CA back
/// into it when it holds anything else.
async fn ensure_root_ca(api: &Arc<Api>, namespace: &str) -> ApiResult<()> {
    let name = crate::serviceaccount::ROOT_CA_CONFIGMAP;
    let key = format!("/registry/core/configmaps/{namespace}/{name}");
    let found = api.store.range(RangeRequest::key(key)).await?;
    let pem = api.ca.cert_pem();
    let data = json!({"ca.crt": pem});
    let current = found
        .kvs
        .first()
        .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok());
    let result = match current {
        None => {
            create_if_absent(
                api,
                "configmaps",
                Some(namespace),
                json!({"metadata": {"name": name, "annotations": {
                    "kubernetes.io/description": "The cluster CA, for clients in pods to check \
                        the API server's certificate at kubernetes.default.svc."}},
                       "data": data}),
            )
            .await
        }
        Some(cm) if cm.get("data") == Some(&data) && cm.get("binaryData").is_none() => Ok(()),
        Some(_) => {
            let t = Target::internal(api, "", "v1", "configmaps", Some(namespace), Some(name))
                .expect("configmaps are always served");
            let set = api.schemas();
            let restore = |old: &Value| -> ApiResult<Value> {
                let mut new = old.clone();
                new["data"] = data.clone();
                if let Some(o) = new.as_object_mut() {
                    o.remove("binaryData");
                }
                Ok(new)
            };
            write::replace(&t, &set, restore, None, false, None)
                .await
                .map(|_| ())
        }
    };
    match result {
        // Gone meanwhile (the next pass makes it again), or the namespace
        // started terminating.
        Err(e) if e.code == 404 || e.code == 403 || e.code == 409 => Ok(()),
        other => other,
    }
}

/// Deletes what is left in a namespace; true when nothing is left after.
async fn empty_namespace(api: &Arc<Api>, namespace: &str) -> ApiResult<bool> {
    let catalog = api.registry.catalog();
    let resources: Vec<_> = catalog
        .resources()
        .iter()
        .filter(|d| d.namespaced && d.conversion.is_none())
        .cloned()
        .collect();
    let mut remaining = 0;
    for def in &resources {
        let prefix = crate::storage::prefix(&def.storage, Some(namespace));
        let present = api
            .store
            .range(RangeRequest::prefix(prefix.clone()).keys_only())
            .await?;
        for kv in present.kvs {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            let name = key.rsplit('/').next().unwrap_or("").to_owned();
            let Some(t) = Target::internal(
                api,
                &def.group,
                &def.version,
                &def.plural,
                Some(namespace),
                Some(&name),
            ) else {
                continue;
            };
            // In the background, as Kubernetes' namespace controller does:
            // the owners go now, whatever their kind's default, and their
            // dependents in this namespace are being deleted here anyway.
            let background = Bytes::from_static(br#"{"propagationPolicy":"Background"}"#);
            match write::delete(&t, background).await {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(%key, error = %e, "could not delete during namespace termination")
                }
            }
        }
        // Pods stopping gracefully and objects with finalizers stay a while.
        remaining += api
            .store
            .range(RangeRequest::prefix(prefix).count_only())
            .await?
            .count;
    }
    Ok(remaining == 0)
}
