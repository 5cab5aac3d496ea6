//! Node lifecycle, taint eviction and the pod GC against a real API server
//! in-process. No agent runs: the test plays the kubelets, renewing the
//! Lease of the nodes it keeps alive and writing their Ready condition, and
//! stops doing so for the node it "kills".

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{server, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Now, in a `Time` (seconds) and a `MicroTime`.
fn now() -> (String, String) {
    let t = k8s_openapi::jiff::Timestamp::now();
    (
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string(),
    )
}

/// Registers a Ready node and its Lease.
async fn register(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    report(client, name).await;
}

/// What a kubelet does every few seconds: its Lease and its Ready condition.
async fn report(client: &kube::Client, name: &str) {
    let (seconds, micros) = now();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "lastHeartbeatTime": seconds,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ]}})),
        )
        .await
        .unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micros},
    });
    leases
        .patch(
            name,
            &PatchParams::apply("kubelet").force(),
            &Patch::Apply(lease),
        )
        .await
        .unwrap();
}

/// Keeps a node alive every 300 ms while `alive` holds.
fn kubelet(client: kube::Client, name: &'static str, alive: Arc<AtomicBool>) {
    tokio::spawn(async move {
        loop {
            if alive.load(Ordering::SeqCst) {
                report(&client, name).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
}

async fn pod_on(client: &kube::Client, name: &str, node: &str, tolerations: Value) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": tolerations,
                 "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}})),
    )
    .await
    .unwrap();
    pod
}

fn taints(node: &Node) -> Vec<(String, String)> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| (t.key.clone(), t.effect.clone()))
        .collect()
}

fn condition(pod: &Pod, type_: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_reporting_is_tainted_and_its_pods_evicted_as_they_tolerate() {
    let (_dir, _server, client) = server().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    register(&client, "alive").await;
    register(&client, "doomed").await;
    let doomed_alive = Arc::new(AtomicBool::new(true));
    kubelet(client.clone(), "alive", Arc::new(AtomicBool::new(true)));
    kubelet(client.clone(), "doomed", Arc::clone(&doomed_alive));

    // DefaultTolerationSeconds: 300 s for both taints unless the pod says.
    let plain = pod_on(&client, "plain", "doomed", json!(null)).await;
    let tolerations = serde_json::to_value(&plain.spec.as_ref().unwrap().tolerations).unwrap();
    for key in ["node.kubernetes.io/not-ready", UNREACHABLE] {
        assert!(
            tolerations
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["key"] == key
                    && t["effect"] == "NoExecute"
                    && t["tolerationSeconds"] == 300),
            "{tolerations}"
        );
    }
    let forever = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]);
    let stays = pod_on(&client, "stays", "doomed", forever).await;
    let stays_tolerations =
        serde_json::to_value(&stays.spec.as_ref().unwrap().tolerations).unwrap();
    assert_eq!(
        stays_tolerations.as_array().unwrap().len(),
        2,
        "only not-ready was added: {stays_tolerations}"
    );
    let short = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                        "tolerationSeconds": 2}]);
    pod_on(&client, "short", "doomed", short).await;
    pod_on(&client, "elsewhere", "alive", json!(null)).await;

    let config = controllers::Config {
        nodes: controllers::nodelifecycle::Settings {
            grace_period: Duration::from_secs(2),
            monitor_period: Duration::from_millis(500),
        },
        ..Default::default()
    };
    let _controllers = tokio::spawn(controllers::run_with(client.clone(), config));
    // Alive nodes get no taints (give the controller a few periods).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(taints(&nodes.get("doomed").await.unwrap()), vec![]);

    // The kubelet stops: Unknown, tainted, pods not ready.
    doomed_alive.store(false, Ordering::SeqCst);
    wait_for("the doomed node to be Unknown and tainted", || async {
        let n = nodes.get("doomed").await.unwrap();
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .cloned()
            .unwrap();
        ready.status == "Unknown"
            && ready.reason.as_deref() == Some("NodeStatusUnknown")
            && taints(&n)
                == vec![
                    (UNREACHABLE.to_owned(), "NoSchedule".to_owned()),
                    (UNREACHABLE.to_owned(), "NoExecute".to_owned()),
                ]
    })
    .await;
    assert_eq!(taints(&nodes.get("alive").await.unwrap()), vec![]);
    wait_for("the doomed node's pods to be not ready", || async {
        let p = pods.get("plain").await.unwrap();
        condition(&p, "Ready").as_deref() == Some("False")
    })
    .await;
    assert_eq!(
        condition(&pods.get("elsewhere").await.unwrap(), "Ready").as_deref(),
        Some("True")
    );

    // `short` tolerates it 2 s, then goes, marked as disrupted.
    wait_for("the short-tolerating pod to be evicted", || async {
        let p = pods.get("short").await.unwrap();
        p.metadata.deletion_timestamp.is_some()
            && condition(&p, "DisruptionTarget").as_deref() == Some("True")
    })
    .await;
    // The others tolerate it for ever or for 300 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in ["stays", "plain", "elsewhere"] {
        let p = pods.get(name).await.unwrap();
        assert!(
            p.metadata.deletion_timestamp.is_none(),
            "{name} was evicted"
        );
    }

    // The kubelet is back: the taints go.
    doomed_alive.store(true, Ordering::SeqCst);
    wait_for("the doomed node to lose its taints", || async {
        taints(&nodes.get("doomed").await.unwrap()).is_empty()
    })
    .await;

    // Cordoning shows as a taint too.
    nodes
        .patch(
            "alive",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    wait_for("the cordoned node's taint", || async {
        taints(&nodes.get("alive").await.unwrap())
            == vec![(
                "node.kubernetes.io/unschedulable".to_owned(),
                "NoSchedule".to_owned(),
            )]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_deleted_node_are_collected() {
    let (_dir, _server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    register(&client, "here").await;
    kubelet(client.clone(), "here", Arc::new(AtomicBool::new(true)));
    pod_on(&client, "orphan", "gone", json!(null)).await;
    pod_on(&client, "kept", "here", json!(null)).await;
    let _controllers = tokio::spawn(controllers::run(client.clone()));
    // Two passes of the collector, 10 s apart, then the delete.
    let mut gone = false;
    for _ in 0..80 {
        if pods.get_opt("orphan").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(gone, "the pod bound to a missing node is still there");
    assert!(pods.get_opt("kept").await.unwrap().is_some());
}

/// The node's pod range, if it has one.
async fn range_of(nodes: &Api<Node>, name: &str) -> Option<String> {
    let node = nodes.get(name).await.unwrap();
    node.spec.and_then(|s| s.pod_cidr)
}

/// Waits for an event of `reason` about the Node `name`.
async fn wait_for_node_event(client: &kube::Client, name: &str, reason: &str) {
    wait_for(&format!("{reason} on {name}"), || {
        common::has_event(client, name, reason, "")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_get_free_pod_ranges_and_a_full_cluster_cidr_says_so() {
    let (_dir, _server, client) = server().await;
    let nodes: Api<Node> = Api::all(client.clone());
    // Room for four /26 ranges; the first node brings its own (the second).
    let config = controllers::Config {
        pod_ranges: controllers::nodeipam::Settings {
            cluster_cidr: Some("10.9.0.0/24".parse().unwrap()),
            node_mask: 26,
        },
        ..Default::default()
    };
    let own: Node = serde_json::from_value(json!({
        "metadata": {"name": "own"},
        "spec": {"podCIDR": "10.9.0.64/26", "podCIDRs": ["10.9.0.64/26"]},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &own).await.unwrap();
    let _controllers = tokio::spawn(controllers::run_with(client.clone(), config));

    // Made together, the next three get the three free ranges, never one twice.
    for name in ["n1", "n2", "n3"] {
        register(&client, name).await;
    }
    let mut given = Vec::new();
    for name in ["n1", "n2", "n3"] {
        wait_for(&format!("{name}'s range"), || async {
            range_of(&nodes, name).await.is_some()
        })
        .await;
        let node = nodes.get(name).await.unwrap();
        let spec = node.spec.unwrap();
        assert_eq!(spec.pod_cidrs.unwrap(), [spec.pod_cidr.clone().unwrap()]);
        given.push(spec.pod_cidr.unwrap());
    }
    given.sort();
    assert_eq!(given, ["10.9.0.0/26", "10.9.0.128/26", "10.9.0.192/26"]);
    assert_eq!(range_of(&nodes, "own").await.unwrap(), "10.9.0.64/26");

    // The fifth finds none free, says so, and waits.
    register(&client, "n4").await;
    wait_for_node_event(&client, "n4", "CIDRNotAvailable").await;
    assert_eq!(range_of(&nodes, "n4").await, None);

    // A node deleted frees its range, which the waiting one then gets.
    let freed = range_of(&nodes, "n1").await.unwrap();
    nodes.delete("n1", &Default::default()).await.unwrap();
    wait_for("n4's range", || async {
        range_of(&nodes, "n4").await.is_some()
    })
    .await;
    assert_eq!(range_of(&nodes, "n4").await.unwrap(), freed);

    // A range may not be changed once given.
    let changed = nodes
        .patch(
            "n4",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"podCIDR": "10.9.1.0/26", "podCIDRs": ["10.9.1.0/26"]}})),
        )
        .await;
    assert!(
        matches!(changed, Err(kube::Error::Api(ref e)) if e.code == 422),
        "{changed:?}"
    );

    // A node made with another's range is reported, not changed.
    let clash: Node = serde_json::from_value(json!({
        "metadata": {"name": "clash"},
        "spec": {"podCIDR": "10.9.0.64/27", "podCIDRs": ["10.9.0.64/27"]},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &clash).await.unwrap();
    wait_for_node_event(&client, "clash", "PodCIDROverlap").await;
    assert_eq!(range_of(&nodes, "clash").await.unwrap(), "10.9.0.64/27");
}
