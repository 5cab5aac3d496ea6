//! What the controller tests share: a real API server in-process on the
//! embedded store, and polling until something holds.

// Each test binary includes this module and uses only some of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

/// An API server on a fresh embedded store in a temporary directory, and an
/// admin client for it. Keep the directory and server alive for the test.
pub async fn server() -> (tempfile::TempDir, apiserver::ApiServer, kube::Client) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // kube's TLS asks for the process-wide provider; `gantry` picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&store::StoreSpec::Embedded(dir.path().join("store")))
        .await
        .unwrap();
    let config = apiserver::Config::new("127.0.0.1:0".parse().unwrap(), dir.path());
    let server = apiserver::ApiServer::start(config, Arc::clone(&store))
        .await
        .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    (dir, server, kube::Client::try_from(config).unwrap())
}

/// Polls `f` every 50 ms until it holds; panics after 15 s naming `what`.
pub async fn wait_for<F, Fut>(what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_long(what, 15, f).await
}

/// Polls `f` every 50 ms until it holds; panics after `secs` naming `what`.
pub async fn wait_long<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Sets the image of container `c` in a workload's pod template.
pub async fn set_image<K>(api: &kube::Api<K>, name: &str, image: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(serde_json::json!({"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": image}]
        }}}})),
    )
    .await
    .unwrap();
}

/// An object's status as JSON (null if it has none).
pub async fn status<K>(api: &kube::Api<K>, name: &str) -> serde_json::Value
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let v = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
    v["status"].clone()
}

/// Marks a pod Running and Ready, as its kubelet would; `ip` if given.
pub async fn mark_ready(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    ip: Option<String>,
) {
    let mut status = serde_json::json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    });
    if let Some(ip) = ip {
        status["podIP"] = ip.into();
    }
    let _ = pods
        .patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await;
}

/// Whether an event in any namespace about an object named `name` has this reason and a
/// message containing `text`.
pub async fn has_event(client: &kube::Client, name: &str, reason: &str, text: &str) -> bool {
    let events: kube::Api<k8s_openapi::api::core::v1::Event> = kube::Api::all(client.clone());
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|e| {
            e.involved_object.name.as_deref() == Some(name)
                && e.reason.as_deref() == Some(reason)
                && e.message.as_deref().is_some_and(|m| m.contains(text))
        })
}
