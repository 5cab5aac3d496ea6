//! The scheduler against a real API server (in-process, embedded store):
//! pods get nodes through the binding subresource, and a pod that fits
//! nowhere gets a `FailedScheduling` event and waits until a node with room
//! appears.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

async fn server() -> (tempfile::TempDir, apiserver::ApiServer, kube::Client) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // kube's TLS asks for the process-wide provider, which the workspace
    // builds with two candidates for; `gantry` picks ring, and so do we.
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
    let client = kube::Client::try_from(config).unwrap();
    (dir, server, client)
}

fn node(name: &str, cpu: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                   "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}
    }))
    .unwrap()
}

fn pod(name: &str, cpu: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                 "resources": {"requests": {"cpu": cpu}}}]}
    }))
    .unwrap()
}

async fn node_of(pods: &Api<Pod>, name: &str) -> Option<String> {
    pods.get(name).await.unwrap().spec.unwrap().node_name
}

async fn nominated_node(pods: &Api<Pod>, name: &str) -> Option<String> {
    pods.get(name).await.unwrap().status?.nominated_node_name
}

async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Whether the pod has a `FailedScheduling` event whose message starts with `text`.
async fn failed_scheduling(client: &kube::Client, pod: &str, text: &str) -> bool {
    has_event(client, pod, "FailedScheduling", text).await
}

/// Whether the pod has an event with this reason whose message starts with `text`.
async fn has_event(client: &kube::Client, pod: &str, reason: &str, text: &str) -> bool {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    events
        .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
        .await
        .unwrap()
        .items
        .iter()
        .any(|e| {
            e.reason.as_deref() == Some(reason)
                && e.message.as_deref().is_some_and(|m| m.starts_with(text))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_bound_where_they_fit_and_wait_where_they_do_not() {
    let (_dir, _server, client) = server().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PostParams::default();
    // Node status is written with the node here; the API keeps it on create.
    nodes.create(&pp, &node("small", "1")).await.unwrap();
    nodes.create(&pp, &node("big", "4")).await.unwrap();
    let scheduler = tokio::spawn(scheduler::run(client.clone()));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&pp, &pod("wide", "3")).await.unwrap();
    wait_for("wide to be bound", || async {
        node_of(&pods, "wide").await.is_some()
    })
    .await;
    assert_eq!(node_of(&pods, "wide").await.as_deref(), Some("big"));

    // 1 core free on each node now: a 2-core pod fits nowhere.
    pods.create(&pp, &pod("huge", "2")).await.unwrap();
    wait_for("a FailedScheduling event", || {
        failed_scheduling(
            &client,
            "huge",
            "0/2 nodes are available: 2 Insufficient cpu.",
        )
    })
    .await;
    let status = pods.get("huge").await.unwrap().status.unwrap();
    let cond = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_deref()),
        ("False", Some("Unschedulable"))
    );
    assert_eq!(node_of(&pods, "huge").await, None);

    // A node with room appears: the waiting pod goes there.
    nodes.create(&pp, &node("new", "2")).await.unwrap();
    wait_for("huge to be bound", || async {
        node_of(&pods, "huge").await.is_some()
    })
    .await;
    assert_eq!(node_of(&pods, "huge").await.as_deref(), Some("new"));
    wait_for("a Scheduled event", || {
        has_event(
            &client,
            "huge",
            "Scheduled",
            "Successfully assigned default/huge to new",
        )
    })
    .await;
    scheduler.abort();
}

fn labelled_node(name: &str, cpu: &str, labels: serde_json::Value) -> Node {
    let mut n = node(name, cpu);
    n.metadata.labels = Some(serde_json::from_value(labels).unwrap());
    n
}

/// Pods named in order, created at once, and waited for until all are bound;
/// answers the node of each.
async fn bind_all(pods: &Api<Pod>, created: Vec<Pod>) -> Vec<String> {
    let pp = PostParams::default();
    let names: Vec<String> = created
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    for p in &created {
        pods.create(&pp, p).await.unwrap();
    }
    let mut nodes = Vec::new();
    for name in &names {
        wait_for(&format!("{name} to be bound"), || async {
            node_of(pods, name).await.is_some()
        })
        .await;
        nodes.push(node_of(pods, name).await.unwrap());
    }
    nodes
}

/// One big node the resource scores alone would pile every pod on, and two
/// small ones.
async fn big_and_small_nodes(client: &kube::Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, cpu) in [("big", "16"), ("small-1", "2"), ("small-2", "2")] {
        let labels = json!({"kubernetes.io/hostname": name});
        nodes
            .create(&PostParams::default(), &labelled_node(name, cpu, labels))
            .await
            .unwrap();
    }
}

/// Three replicas, created at once, land one on each of those nodes.
async fn one_on_each_node(pods: &Api<Pod>, replica: impl Fn(&str) -> Pod) {
    let mut placed = bind_all(pods, ["web-0", "web-1", "web-2"].map(replica).to_vec()).await;
    placed.sort();
    assert_eq!(placed, ["big", "small-1", "small-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_affinity_by_hostname_puts_each_replica_on_its_own_node() {
    let (_dir, _server, client) = server().await;
    let pp = PostParams::default();
    big_and_small_nodes(&client).await;
    let scheduler = tokio::spawn(scheduler::run(client.clone()));
    let replica = |name: &str| -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {
                "containers": [{"name": "c", "image": "busybox",
                                "resources": {"requests": {"cpu": "100m"}}}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname"}]}}
            }
        }))
        .unwrap()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    one_on_each_node(&pods, replica).await;

    // A fourth replica has nowhere to go, and says why per node.
    pods.create(&pp, &replica("web-3")).await.unwrap();
    wait_for("a FailedScheduling event for web-3", || {
        failed_scheduling(
            &client,
            "web-3",
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.",
        )
    })
    .await;
    assert_eq!(node_of(&pods, "web-3").await, None);
    scheduler.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_spread_keeps_zones_within_max_skew() {
    let (_dir, _server, client) = server().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PostParams::default();
    // Zone a has two big nodes, zone b one small one: by free room alone
    // every pod would go to zone a.
    for (name, cpu, zone) in [("a-1", "8", "a"), ("a-2", "8", "a"), ("b-1", "2", "b")] {
        let labels = json!({"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone});
        nodes
            .create(&pp, &labelled_node(name, cpu, labels))
            .await
            .unwrap();
    }
    let scheduler = tokio::spawn(scheduler::run(client.clone()));
    let spread = |name: &str| -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "api"}},
            "spec": {
                "containers": [{"name": "c", "image": "busybox",
                                "resources": {"requests": {"cpu": "500m"}}}],
                "topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": "api"}}}]
            }
        }))
        .unwrap()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let placed = bind_all(&pods, (0..4).map(|i| spread(&format!("api-{i}"))).collect()).await;
    let in_b = placed.iter().filter(|n| *n == "b-1").count();
    // Four pods, skew at most 1 between the zones: two and two.
    assert_eq!(in_b, 2, "{placed:?}");
    scheduler.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_pod_evicts_a_lower_one() {
    let (_dir, _server, client) = server().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PostParams::default();
    nodes.create(&pp, &node("only", "1")).await.unwrap();
    let scheduler = tokio::spawn(scheduler::run(client.clone()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let with_priority = |name: &str, priority: i32| {
        let mut p = pod(name, "800m");
        p.spec.as_mut().unwrap().priority = Some(priority);
        p
    };
    let mut low = with_priority("low", 1);
    // Kept after its deletion, to be looked at.
    low.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    pods.create(&pp, &low).await.unwrap();
    wait_for("low to be bound", || async {
        node_of(&pods, "low").await.is_some()
    })
    .await;
    // No room left for another 800m pod: the higher one takes the node's
    // nomination and the lower one is deleted.
    pods.create(&pp, &with_priority("high", 100)).await.unwrap();
    wait_for("high to be nominated", || async {
        nominated_node(&pods, "high").await.as_deref() == Some("only")
    })
    .await;
    wait_for("low to be deleted", || async {
        pods.get("low")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    // Marked as preempted first, as kube-scheduler does.
    let low = pods.get("low").await.unwrap();
    let disrupted = low
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_ == "DisruptionTarget")
        .expect("the victim is marked");
    assert_eq!(disrupted.status, "True");
    assert_eq!(disrupted.reason.as_deref(), Some("PreemptionByScheduler"));
    assert_eq!(
        disrupted.message.as_deref(),
        Some("default-scheduler: preempting to accommodate a higher priority pod")
    );
    // A pod of equal or lower priority evicts nobody.
    pods.create(&pp, &with_priority("peer", 100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(pods.get("high").await.is_ok());
    assert_eq!(nominated_node(&pods, "peer").await, None);
    scheduler.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waits_for_its_claim_and_goes_to_its_volumes_zone() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let (_dir, _server, client) = server().await;
    let pp = PostParams::default();
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, zone) in [("in-a", "a"), ("in-b", "b")] {
        let labels = json!({"topology.kubernetes.io/zone": zone});
        nodes
            .create(&pp, &labelled_node(name, "2", labels))
            .await
            .unwrap();
    }
    let scheduler = tokio::spawn(scheduler::run(client.clone()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let with_claim: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}
    }))
    .unwrap();
    pods.create(&pp, &with_claim).await.unwrap();
    let said = |text: &'static str| failed_scheduling(&client, "db", text);
    wait_for("the missing claim named", || {
        said("0/2 nodes are available: 2 persistentvolumeclaim \"data\" not found")
    })
    .await;

    // The claim, not bound yet: still waiting, and why.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap();
    claims.create(&pp, &claim).await.unwrap();
    wait_for("the unbound claim named", || {
        said("0/2 nodes are available: 2 pod has unbound immediate PersistentVolumeClaims")
    })
    .await;
    assert_eq!(node_of(&pods, "db").await, None);

    // A volume in zone b, and the claim bound to it: the pod goes to b.
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volume: PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pv-b", "labels": {"topology.kubernetes.io/zone": "b"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "", "hostPath": {"path": "/tmp/pv-b"}}
    }))
    .unwrap();
    volumes.create(&pp, &volume).await.unwrap();
    let mut bound = claims.get("data").await.unwrap();
    bound.spec.as_mut().unwrap().volume_name = Some("pv-b".into());
    claims
        .replace("data", &PostParams::default(), &bound)
        .await
        .unwrap();
    wait_for("db to be bound", || async {
        node_of(&pods, "db").await.is_some()
    })
    .await;
    assert_eq!(node_of(&pods, "db").await.as_deref(), Some("in-b"));
    scheduler.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_names_its_node_on_a_claim_that_waited_and_is_bound_once_the_claim_is() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{Patch, PatchParams};
    let (_dir, _server, client) = server().await;
    let pp = PostParams::default();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.create(&pp, &node("only", "2")).await.unwrap();
    let classes: Api<StorageClass> = Api::all(client.clone());
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "later"}, "provisioner": "example.test/disks",
        "volumeBindingMode": "WaitForFirstConsumer"
    }))
    .unwrap();
    classes.create(&pp, &class).await.unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "disk"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "later",
                 "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap();
    claims.create(&pp, &claim).await.unwrap();
    let scheduler = tokio::spawn(scheduler::run(client.clone()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let with_claim: Pod = serde_json::from_value(json!({
        "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "disk"}}]}
    }))
    .unwrap();
    pods.create(&pp, &with_claim).await.unwrap();
    // The claim is told the node; the pod waits for the claim to be bound.
    wait_for("the claim to name the node", || async {
        let c = claims.get("disk").await.unwrap();
        c.metadata.annotations.is_some_and(|a| {
            a.get("volume.kubernetes.io/selected-node")
                .map(String::as_str)
                == Some("only")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node_of(&pods, "app").await, None);
    // What the volume binder would do: the claim bound (volumeName, then phase Bound).
    claims
        .patch(
            "disk",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"volumeName": "pv-1"}})),
        )
        .await
        .unwrap();
    claims
        .patch_status(
            "disk",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await
        .unwrap();
    wait_for("app to be bound", || async {
        node_of(&pods, "app").await.is_some()
    })
    .await;
    assert_eq!(node_of(&pods, "app").await.as_deref(), Some("only"));
    scheduler.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_selector_follows_the_namespaces_labels() {
    let (_dir, _server, client) = server().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let pp = PostParams::default();
    for name in ["n1", "n2"] {
        let labels = json!({"kubernetes.io/hostname": name});
        nodes
            .create(&pp, &labelled_node(name, "4", labels))
            .await
            .unwrap();
    }
    for (ns, team) in [("shop", "a"), ("blog", "b")] {
        let n = json!({"metadata": {"name": ns, "labels": {"team": team}}});
        namespaces
            .create(&pp, &serde_json::from_value(n).unwrap())
            .await
            .unwrap();
    }
    // A database in each namespace, already on its node.
    for (ns, node) in [("shop", "n1"), ("blog", "n2")] {
        let mut db = pod("db", "100m");
        db.metadata.labels = Some([("app".to_owned(), "db".to_owned())].into());
        db.spec.as_mut().unwrap().node_name = Some(node.to_owned());
        Api::<Pod>::namespaced(client.clone(), ns)
            .create(&pp, &db)
            .await
            .unwrap();
    }
    let scheduler = tokio::spawn(scheduler::run(client.clone()));
    // Away from the databases of team a's namespaces.
    let away = |name: &str, team: &str| -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"app": "db"}},
                    "namespaceSelector": {"matchLabels": {"team": team}},
                    "topologyKey": "kubernetes.io/hostname"}]}}
            }
        }))
        .unwrap()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let placed = bind_all(&pods, vec![away("x", "a"), away("y", "b")]).await;
    assert_eq!(placed, ["n2", "n1"]);

    // blog joins team a: both nodes now hold one of its databases.
    namespaces
        .patch(
            "blog",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pods.create(&pp, &away("z", "a")).await.unwrap();
    wait_for("a FailedScheduling event for z", || {
        failed_scheduling(
            &client,
            "z",
            "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules.",
        )
    })
    .await;
    assert_eq!(node_of(&pods, "z").await, None);
    scheduler.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_passes_over_a_pod_its_budget_protects() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let (_dir, _server, client) = server().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PostParams::default();
    for name in ["n1", "n2"] {
        nodes.create(&pp, &node(name, "1")).await.unwrap();
    }
    // With no disruption controller here the budget's status says 0
    // disruptions allowed, as it would on a cluster without one.
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb = json!({"metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}});
    budgets
        .create(&pp, &serde_json::from_value(pdb).unwrap())
        .await
        .unwrap();
    // The database has the lowest priority, on n1; a batch pod on n2.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let placed = |name: &str, node: &str, priority: i32, app: &str| {
        let mut p = pod(name, "800m");
        p.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
        let spec = p.spec.as_mut().unwrap();
        spec.priority = Some(priority);
        spec.node_name = Some(node.to_owned());
        p
    };
    pods.create(&pp, &placed("db", "n1", 1, "db"))
        .await
        .unwrap();
    pods.create(&pp, &placed("batch", "n2", 5, "batch"))
        .await
        .unwrap();
    let scheduler = tokio::spawn(scheduler::run(client.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut high = pod("high", "800m");
    high.spec.as_mut().unwrap().priority = Some(100);
    pods.create(&pp, &high).await.unwrap();
    wait_for("high to be nominated", || async {
        nominated_node(&pods, "high").await.is_some()
    })
    .await;
    assert_eq!(nominated_node(&pods, "high").await.as_deref(), Some("n2"));
    // No agent here to see them go: the victims keep their deletion mark.
    let deleting = |name: &'static str| {
        let pods = pods.clone();
        async move {
            pods.get(name)
                .await
                .unwrap()
                .metadata
                .deletion_timestamp
                .is_some()
        }
    };
    wait_for("batch to be deleted", || deleting("batch")).await;
    assert!(!deleting("db").await, "the budget's pod stays");
    scheduler.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicasets_pods_spread_over_nodes_by_default() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let (_dir, _server, client) = server().await;
    let pp = PostParams::default();
    big_and_small_nodes(&client).await;
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let rs = Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .create(&pp, &rs)
        .await
        .unwrap();
    let scheduler = tokio::spawn(scheduler::run(client.clone()));
    // The scheduler's watches catch up before the pods come.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let replica = |name: &str| -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "name": "web", "uid": rs.metadata.uid, "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": "100m"}}}]}
        }))
        .unwrap()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    one_on_each_node(&pods, replica).await;
    // A pod nothing owns or selects piles on the big node as before.
    let mut lone = pod("lone-0", "100m");
    let mut lone_1 = pod("lone-1", "100m");
    for p in [&mut lone, &mut lone_1] {
        p.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
    }
    let placed = bind_all(&pods, vec![lone, lone_1]).await;
    assert_eq!(placed, ["big", "big"]);
    scheduler.abort();
}

/// A leader that loses its Lease has its scheduler dropped: none of its
/// tasks may go on binding pods beside the new leader's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_scheduler_binds_nothing_more() {
    let (_dir, _server, client) = server().await;
    let pp = PostParams::default();
    Api::<Node>::all(client.clone())
        .create(&pp, &node("only", "4"))
        .await
        .unwrap();
    let scheduler = tokio::spawn(scheduler::run(client.clone()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&pp, &pod("first", "100m")).await.unwrap();
    wait_for("first to be bound", || async {
        node_of(&pods, "first").await.is_some()
    })
    .await;
    scheduler.abort();
    assert!(scheduler.await.unwrap_err().is_cancelled());
    pods.create(&pp, &pod("second", "100m")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(node_of(&pods, "second").await, None);
}
