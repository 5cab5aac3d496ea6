//! LimitRange and ResourceQuota admission, the resource quota and
//! disruption controllers, and the eviction subresource, against a real
//! API server. A fake kubelet marks pods Running and Ready where a test
//! needs ready pods.

mod common;

use std::time::Duration;

use common::{server, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{LimitRange, Pod, ResourceQuota};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn pod(name: &str, resources: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "q"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]}
    }))
    .unwrap()
}

/// The message of a refused API call, with its code.
fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(e)) => (e.code, e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn quota(client: &kube::Client, name: &str, hard: Value) -> Api<ResourceQuota> {
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "default");
    let q = serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"hard": hard}}))
        .unwrap();
    quotas.create(&PostParams::default(), &q).await.unwrap();
    let hard_keys = hard.as_object().unwrap().len();
    wait_for("the quota's status to be counted", || {
        let quotas = quotas.clone();
        async move {
            let q = quotas.get(name).await.unwrap();
            q.status
                .and_then(|s| s.used)
                .is_some_and(|u| u.len() == hard_keys)
        }
    })
    .await;
    quotas
}

async fn used(quotas: &Api<ResourceQuota>, name: &str, key: &str) -> String {
    let q = quotas.get(name).await.unwrap();
    q.status
        .and_then(|s| s.used)
        .and_then(|u| u.get(key).map(|q| q.0.clone()))
        .unwrap_or_default()
}

#[tokio::test]
async fn limit_ranges_fill_defaults_and_refuse_what_is_out_of_range() {
    let (_dir, _server, client) = server().await;
    let ranges: Api<LimitRange> = Api::namespaced(client.clone(), "default");
    let lr = serde_json::from_value(json!({"metadata": {"name": "limits"}, "spec": {"limits": [
        {"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "16Mi"},
         "default": {"cpu": "500m", "memory": "128Mi"},
         "defaultRequest": {"cpu": "250m", "memory": "64Mi"}}
    ]}}))
    .unwrap();
    ranges.create(&PostParams::default(), &lr).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let made = pods
        .create(&PostParams::default(), &pod("plain", json!({})))
        .await
        .unwrap();
    let res = made.spec.unwrap().containers[0].resources.clone().unwrap();
    assert_eq!(res.limits.unwrap()["cpu"].0, "500m");
    assert_eq!(res.requests.unwrap()["memory"].0, "64Mi");
    assert!(
        made.metadata.annotations.unwrap()["kubernetes.io/limit-ranger"]
            .starts_with("LimitRanger plugin set: ")
    );

    let big = pod("big", json!({"limits": {"cpu": "2"}}));
    let (code, message) = refusal(pods.create(&PostParams::default(), &big).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
    let small = pod("small", json!({"requests": {"memory": "8Mi"}}));
    let (code, message) = refusal(pods.create(&PostParams::default(), &small).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"small\" is forbidden: minimum memory usage per Container is 16Mi, but request is 8Mi"
    );
}

#[tokio::test]
async fn quotas_refuse_over_the_limit_and_free_usage_on_delete() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let quotas = quota(&client, "objects", json!({"pods": "2", "configmaps": "10"})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for name in ["a", "b"] {
        pods.create(&PostParams::default(), &pod(name, json!({})))
            .await
            .unwrap();
    }
    assert_eq!(used(&quotas, "objects", "pods").await, "2");
    let (code, message) = refusal(
        pods.create(&PostParams::default(), &pod("c", json!({})))
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"c\" is forbidden: exceeded quota: objects, requested: pods=1, used: pods=2, limited: pods=2"
    );

    // A pod that finished, or one deleted, gives its usage back.
    pods.patch_status(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    wait_for("a finished pod to stop counting", || {
        let quotas = quotas.clone();
        async move { used(&quotas, "objects", "pods").await == "1" }
    })
    .await;
    pods.create(&PostParams::default(), &pod("c", json!({})))
        .await
        .unwrap();
    pods.delete("b", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for("a deleted pod to stop counting", || {
        let quotas = quotas.clone();
        async move { used(&quotas, "objects", "pods").await == "1" }
    })
    .await;

    // A quota on compute resources wants every container to state them.
    quota(&client, "compute", json!({"limits.cpu": "1"})).await;
    let (code, message) = refusal(
        pods.create(&PostParams::default(), &pod("d", json!({})))
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"d\" is forbidden: failed quota: compute: must specify limits.cpu for: c"
    );
    let (_, message) = refusal(
        pods.create(
            &PostParams::default(),
            &pod("e", json!({"limits": {"cpu": "2"}})),
        )
        .await,
    );
    assert!(
        message.ends_with(
            "exceeded quota: compute, requested: limits.cpu=2, used: limits.cpu=0, limited: limits.cpu=1"
        ),
        "{message}"
    );
    controllers.abort();
}

#[tokio::test]
async fn concurrent_creates_never_exceed_a_quota() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let quotas = quota(&client, "five", json!({"pods": "5"})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let tries = (0..20).map(|i| {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &pod(&format!("p{i}"), json!({})))
                .await
        }
    });
    let results = futures::future::join_all(tries).await;
    let made = results.iter().filter(|r| r.is_ok()).count();
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        match r {
            kube::Error::Api(e) => {
                assert_eq!(e.code, 403, "{e:?}");
                assert!(e.message.contains("exceeded quota: five"), "{e:?}");
            }
            other => panic!("unexpected failure {other:?}"),
        }
    }
    assert_eq!(made, 5);
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        5
    );
    assert_eq!(used(&quotas, "five", "pods").await, "5");
    controllers.abort();
}

/// Marks pods Running and Ready, as a kubelet would.
fn fake_kubelet(client: kube::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(client.clone());
        loop {
            for p in pods.list(&ListParams::default()).await.unwrap().items {
                let running = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|ph| ph == "Running");
                if running || p.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap());
                let _ = api
                    .patch_status(
                        &p.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"phase": "Running",
                            "conditions": [{"type": "Ready", "status": "True",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

async fn deploy(client: &kube::Client, name: &str, replicas: i32) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

async fn budget(client: &kube::Client, name: &str, spec: Value) -> Api<PodDisruptionBudget> {
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    pdbs
}

/// (expected, desired, current, allowed, condition reason)
async fn budget_status(
    pdbs: &Api<PodDisruptionBudget>,
    name: &str,
) -> (i32, i32, i32, i32, String) {
    let s = pdbs.get(name).await.unwrap().status.unwrap_or_default();
    let reason = s
        .conditions
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "DisruptionAllowed")
        .map(|c| c.reason.clone())
        .unwrap_or_default();
    (
        s.expected_pods,
        s.desired_healthy,
        s.current_healthy,
        s.disruptions_allowed,
        reason,
    )
}

async fn wait_budget(
    pdbs: &Api<PodDisruptionBudget>,
    name: &str,
    want: (i32, i32, i32, i32, &str),
) {
    let want = (want.0, want.1, want.2, want.3, want.4.to_owned());
    for _ in 0..600 {
        if budget_status(pdbs, name).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "budget {name}: wanted {want:?}, have {:?}",
        budget_status(pdbs, name).await
    );
}

/// A client that reports a 429 at once instead of retrying it.
async fn no_retry_client(server: &apiserver::ApiServer) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn budgets_count_pods_and_evictions_respect_them() {
    let (_dir, server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let kubelet = fake_kubelet(client.clone());
    deploy(&client, "web", 3).await;
    deploy(&client, "api", 4).await;
    let pdbs = budget(
        &client,
        "web",
        json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
    )
    .await;
    budget(
        &client,
        "api",
        json!({"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "api"}}}),
    )
    .await;
    wait_budget(&pdbs, "web", (3, 2, 3, 1, "SufficientPods")).await;
    wait_budget(&pdbs, "api", (4, 2, 4, 2, "SufficientPods")).await;
    let pdb = pdbs.get("web").await.unwrap();
    assert_eq!(
        pdb.status.unwrap().observed_generation,
        pdb.metadata.generation
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let web: Vec<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    // Deleted at once: nothing here plays the kubelet's part in a graceful end.
    let now = EvictParams {
        delete_options: Some(DeleteParams::default().grace_period(0)),
        ..EvictParams::default()
    };
    // No kubelet while the budget is spent, so the replacement stays
    // unready and the budget keeps forbidding.
    kubelet.abort();
    pods.evict(&web[0], &now).await.unwrap();
    // kube's client would retry a 429 for minutes; kubectl does not.
    let once: Api<Pod> = Api::namespaced(no_retry_client(&server).await, "default");
    let (code, message) = refusal(once.evict(&web[1], &now).await);
    assert_eq!(code, 429);
    assert_eq!(
        message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    // The ReplicaSet replaces the evicted pod; once it is ready the budget
    // allows one disruption again.
    let kubelet = fake_kubelet(client.clone());
    wait_budget(&pdbs, "web", (3, 2, 3, 1, "SufficientPods")).await;
    pods.evict(&web[1], &now).await.unwrap();
    kubelet.abort();
    controllers.abort();
}

/// An eviction marks the pod `DisruptionTarget` before it deletes it (so a
/// Job's pod failure policy can tell it from a failure), checks the
/// delete's preconditions first and still honours them after its own write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_marks_the_pod_disrupted() {
    let (_dir, _server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut held = pod("held", json!({}));
    // Kept after its deletion, to be looked at.
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let held = pods.create(&PostParams::default(), &held).await.unwrap();
    let disrupted = |p: &Pod| {
        p.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .find(|c| c.type_ == "DisruptionTarget")
            .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
    };
    // kube's `EvictParams` sends its options as `delete_options`, which the
    // API (ours as Kubernetes') does not read: the body is written here.
    let evict = |rv: &str| {
        let body = json!({
            "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "held"},
            "deleteOptions": {"preconditions": {"resourceVersion": rv}},
        });
        let request = kube::core::Request::new("/api/v1/namespaces/default/pods/held/eviction")
            .create(&PostParams::default(), serde_json::to_vec(&body).unwrap())
            .unwrap();
        client.request::<Value>(request)
    };

    let (code, message) = refusal(evict("1").await);
    assert_eq!(code, 409);
    assert!(message.contains("Precondition failed"), "{message}");
    let now = pods.get("held").await.unwrap();
    assert_eq!(disrupted(&now), None);
    assert!(now.metadata.deletion_timestamp.is_none());

    let rv = held.resource_version().unwrap();
    evict(&rv).await.unwrap();
    let gone = pods.get("held").await.unwrap();
    assert!(gone.metadata.deletion_timestamp.is_some());
    assert_eq!(
        disrupted(&gone),
        Some(("True".to_owned(), "EvictionByEvictionAPI".to_owned()))
    );

    let release = json!({"metadata": {"finalizers": null}});
    pods.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
}
