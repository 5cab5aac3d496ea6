//! The Endpoints and EndpointSlice controllers against a real API server
//! (in-process, embedded store). No node runs here: a test gives its pods an
//! IP and a Ready condition by writing their status, as a kubelet would.

mod common;

use std::collections::BTreeSet;

use common::{server, wait_for};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn object<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// A pod on node n1 labelled `app`, serving `http` on `port` if given.
fn pod(name: &str, app: &str, port: Option<i32>) -> Pod {
    let ports: Vec<Value> = port
        .map(|p| json!({"name": "http", "containerPort": p}))
        .into_iter()
        .collect();
    object(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox", "ports": ports}]}
    }))
}

/// Writes the pod's status as a kubelet would: running with `ip`, ready or not.
async fn set_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let ready = if ready { "True" } else { "False" };
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        }})),
    )
    .await
    .unwrap();
}

/// The Endpoints' subsets as ready `ip:port` and not-ready `ip:port` sets.
async fn listed(eps: &Api<Endpoints>, name: &str) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let ep = eps.get_opt(name).await.unwrap()?;
    let mut ready = BTreeSet::new();
    let mut not_ready = BTreeSet::new();
    for s in ep.subsets.iter().flatten() {
        for p in s.ports.iter().flatten() {
            for a in s.addresses.iter().flatten() {
                ready.insert(format!("{}:{}", a.ip, p.port));
            }
            for a in s.not_ready_addresses.iter().flatten() {
                not_ready.insert(format!("{}:{}", a.ip, p.port));
            }
        }
    }
    Some((ready, not_ready))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The slices of the Service, by the label the controller gives them.
async fn slices_of(slices: &Api<EndpointSlice>, svc: &str) -> Vec<EndpointSlice> {
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
    slices.list(&lp).await.unwrap().items
}

/// Every endpoint of the Service's slices as `ip ready serving terminating`.
async fn slice_endpoints(slices: &Api<EndpointSlice>, svc: &str) -> BTreeSet<String> {
    slices_of(slices, svc)
        .await
        .iter()
        .flat_map(|s| s.endpoints.clone())
        .map(|e| {
            let c = e.conditions.unwrap_or_default();
            format!(
                "{} {} {} {}",
                e.addresses[0],
                c.ready.unwrap_or_default(),
                c.serving.unwrap_or_default(),
                c.terminating.unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_the_pods_a_service_selects() {
    let (_dir, _server, client) = server().await;
    let controller = tokio::spawn(controllers::run(client.clone()));
    let pp = PostParams::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");

    // a and b serve http on 8080, c on 9090, d not at all: d is left out of
    // the named port's addresses. a and c are ready, b is not.
    for (name, port) in [
        ("a", Some(8080)),
        ("b", Some(8080)),
        ("c", Some(9090)),
        ("d", None),
    ] {
        pods.create(&pp, &pod(name, "web", port)).await.unwrap();
    }
    pods.create(&pp, &pod("other", "db", Some(8080)))
        .await
        .unwrap();
    set_status(&pods, "a", "10.1.0.1", true).await;
    set_status(&pods, "b", "10.1.0.2", false).await;
    set_status(&pods, "c", "10.1.0.3", true).await;
    set_status(&pods, "d", "10.1.0.4", true).await;
    set_status(&pods, "other", "10.1.0.9", true).await;
    let svc: Service = object(json!({
        "metadata": {"name": "web", "labels": {"team": "blue"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }));
    svcs.create(&pp, &svc).await.unwrap();
    wait_for("ready a, c and not-ready b", || async {
        listed(&eps, "web").await
            == Some((
                set(&["10.1.0.1:8080", "10.1.0.3:9090"]),
                set(&["10.1.0.2:8080"]),
            ))
    })
    .await;
    let ep = eps.get("web").await.unwrap();
    assert_eq!(ep.labels()["team"], "blue");
    assert!(
        ep.annotations()
            .contains_key("endpoints.kubernetes.io/last-change-trigger-time"),
        "{:?}",
        ep.annotations()
    );
    assert!(ep.owner_references().is_empty());
    let a = ep
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .find(|a| a.ip == "10.1.0.1")
        .unwrap();
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    let target = a.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            target.kind.as_deref(),
            target.name.as_deref(),
            target.namespace.as_deref()
        ),
        (Some("Pod"), Some("a"), Some("default"))
    );
    assert_eq!(target.uid, pods.get("a").await.unwrap().uid());

    // The slices say the same, with conditions, d included with no ports.
    wait_for("slices of a, b, c and d", || async {
        slice_endpoints(&slices, "web").await
            == set(&[
                "10.1.0.1 true true false",
                "10.1.0.2 false false false",
                "10.1.0.3 true true false",
                "10.1.0.4 true true false",
            ])
    })
    .await;
    for s in slices_of(&slices, "web").await {
        assert_eq!(s.address_type, "IPv4");
        assert!(s.name_any().starts_with("web-"), "{}", s.name_any());
        assert_eq!(
            s.labels()["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        let owner = &s.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Service", "web")
        );
        assert_eq!(owner.controller, Some(true));
    }

    // A pod becoming ready moves from one list to the other.
    set_status(&pods, "b", "10.1.0.2", true).await;
    wait_for("b ready", || async {
        listed(&eps, "web").await
            == Some((
                set(&["10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.3:9090"]),
                set(&[]),
            ))
            && slice_endpoints(&slices, "web")
                .await
                .contains("10.1.0.2 true true false")
    })
    .await;

    // Unchanged Endpoints and slices are not written again.
    let rv = eps.get("web").await.unwrap().resource_version();
    let versions = |list: Vec<EndpointSlice>| -> BTreeSet<(String, String)> {
        list.iter()
            .map(|s| (s.name_any(), s.resource_version().unwrap()))
            .collect()
    };
    let slice_rvs = versions(slices_of(&slices, "web").await);
    pods.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"note": "x"}}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(eps.get("web").await.unwrap().resource_version(), rv);
    assert_eq!(versions(slices_of(&slices, "web").await), slice_rvs);

    // A pod on a node being deleted stops for a while: its slice endpoint
    // says it is terminating, and no longer ready though still serving.
    pods.delete("d", &DeleteParams::default()).await.unwrap();
    wait_for("d terminating", || async {
        slice_endpoints(&slices, "web")
            .await
            .contains("10.1.0.4 false true true")
    })
    .await;

    // A pod deleted disappears (gone at once with no grace).
    pods.delete("c", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for("c gone", || async {
        listed(&eps, "web").await == Some((set(&["10.1.0.1:8080", "10.1.0.2:8080"]), set(&[])))
            && !slice_endpoints(&slices, "web")
                .await
                .iter()
                .any(|e| e.starts_with("10.1.0.3 "))
    })
    .await;

    // A pod relabelled out of the selector leaves; the new selector's pods
    // come in.
    pods.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})),
    )
    .await
    .unwrap();
    wait_for("b relabelled away", || async {
        listed(&eps, "web").await == Some((set(&["10.1.0.1:8080"]), set(&[])))
    })
    .await;
    svcs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"selector": {"app": "db"}}})),
    )
    .await
    .unwrap();
    wait_for("the new selector's pod", || async {
        listed(&eps, "web").await == Some((set(&["10.1.0.9:8080"]), set(&[])))
            && slice_endpoints(&slices, "web").await == set(&["10.1.0.9 true true false"])
    })
    .await;

    // The Service deleted: its Endpoints and slices go.
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    wait_for("endpoints and slices deleted", || async {
        eps.get_opt("web").await.unwrap().is_none() && slices_of(&slices, "web").await.is_empty()
    })
    .await;
    controller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_endpoints_to_a_slice() {
    let (_dir, _server, client) = server().await;
    let controller = tokio::spawn(controllers::run(client.clone()));
    let pp = PostParams::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let svc: Service = object(json!({
        "metadata": {"name": "many"},
        "spec": {"selector": {"app": "many"}, "ports": [{"port": 80}]}
    }));
    svcs.create(&pp, &svc).await.unwrap();
    // No pods yet: one empty slice says so.
    wait_for("an empty slice", || async {
        let now = slices_of(&slices, "many").await;
        now.len() == 1 && now[0].endpoints.is_empty()
    })
    .await;
    let placeholder = slices_of(&slices, "many").await[0].name_any();

    let names: Vec<String> = (0..250).map(|i| format!("p{i:03}")).collect();
    for chunk in names.chunks(25) {
        let made: Vec<Pod> = chunk.iter().map(|n| pod(n, "many", None)).collect();
        for r in futures::future::join_all(made.iter().map(|p| pods.create(&pp, p))).await {
            r.unwrap();
        }
    }
    for (i, chunk) in names.chunks(25).enumerate() {
        futures::future::join_all(chunk.iter().enumerate().map(|(j, n)| {
            let ip = format!("10.2.{}.{}", i, j + 1);
            let pods = &pods;
            async move { set_status(pods, n, &ip, true).await }
        }))
        .await;
    }
    wait_for("250 endpoints in slices of 100, 100 and 50", || async {
        let now = slices_of(&slices, "many").await;
        let mut sizes: Vec<usize> = now.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort();
        sizes == [50, 100, 100]
    })
    .await;
    let now = slices_of(&slices, "many").await;
    // The empty slice was filled rather than replaced.
    assert!(now.iter().any(|s| s.name_any() == placeholder));
    let addresses: BTreeSet<String> = now
        .iter()
        .flat_map(|s| s.endpoints.iter().map(|e| e.addresses[0].clone()))
        .collect();
    assert_eq!(addresses.len(), 250);
    let ports = serde_json::to_value(&now[0].ports).unwrap();
    assert_eq!(ports, json!([{"name": "", "port": 80, "protocol": "TCP"}]));

    svcs.delete("many", &DeleteParams::default()).await.unwrap();
    wait_for("the slices deleted", || async {
        slices_of(&slices, "many").await.is_empty()
    })
    .await;
    controller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_a_selector_keeps_its_users_endpoints_mirrored_into_slices() {
    let (_dir, _server, client) = server().await;
    let controller = tokio::spawn(controllers::run(client.clone()));
    let pp = PostParams::default();
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // A pod that would match, were there a selector.
    pods.create(&pp, &pod("a", "ext", None)).await.unwrap();
    set_status(&pods, "a", "10.3.0.1", true).await;
    let svc: Service = object(json!({
        "metadata": {"name": "ext", "labels": {"app": "ext"}},
        "spec": {"ports": [{"port": 5432}]}
    }));
    svcs.create(&pp, &svc).await.unwrap();
    let mine: Endpoints = object(json!({
        "metadata": {"name": "ext"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]
    }));
    eps.create(&pp, &mine).await.unwrap();
    // A Service with a selector alongside, to know the controllers have run.
    let probe: Service = object(json!({
        "metadata": {"name": "probe"},
        "spec": {"selector": {"app": "ext"}, "ports": [{"port": 80}]}
    }));
    svcs.create(&pp, &probe).await.unwrap();
    wait_for("the probe's endpoints", || async {
        listed(&eps, "probe").await == Some((set(&["10.3.0.1:80"]), set(&[])))
            && !slices_of(&slices, "probe").await.is_empty()
    })
    .await;
    // The user's Endpoints are mirrored into a slice (the proxy and DNS read
    // slices), and left as they were.
    wait_for("the mirrored slice", || async {
        slice_endpoints(&slices, "ext").await == set(&["192.0.2.10 true false false"])
    })
    .await;
    assert_eq!(
        listed(&eps, "ext").await,
        Some((set(&["192.0.2.10:5432"]), set(&[])))
    );
    let ep = eps.get("ext").await.unwrap();
    assert!(ep.labels().is_empty());
    let mirrored = slices_of(&slices, "ext").await;
    assert_eq!(mirrored.len(), 1);
    let slice = &mirrored[0];
    assert_eq!(
        slice.labels()["endpointslice.kubernetes.io/managed-by"],
        "endpointslicemirroring-controller.k8s.io"
    );
    let owner = &slice.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.clone()),
        ("Endpoints", ep.uid().unwrap())
    );
    assert_eq!(
        serde_json::to_value(&slice.ports).unwrap(),
        json!([{"name": "", "port": 5432, "protocol": "TCP"}])
    );

    // Changes follow; a slice deleted by hand comes back.
    eps.patch(
        "ext",
        &PatchParams::default(),
        &Patch::Merge(json!({"subsets": [{
            "addresses": [{"ip": "192.0.2.10"}],
            "notReadyAddresses": [{"ip": "192.0.2.11"}],
            "ports": [{"port": 5432}]
        }]})),
    )
    .await
    .unwrap();
    wait_for("the not-ready address mirrored", || async {
        slice_endpoints(&slices, "ext").await
            == set(&[
                "192.0.2.10 true false false",
                "192.0.2.11 false false false",
            ])
    })
    .await;
    let name = slices_of(&slices, "ext").await[0].name_any();
    slices
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the slice back", || async {
        slices_of(&slices, "ext")
            .await
            .iter()
            .any(|s| s.name_any() != name && s.endpoints.len() == 2)
    })
    .await;

    // Labelled skip-mirror, or its Service deleted: no mirrored slice.
    let skip = |v: &str| {
        Patch::Merge(
            json!({"metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": v}}}),
        )
    };
    eps.patch("ext", &PatchParams::default(), &skip("true"))
        .await
        .unwrap();
    wait_for("no slice when skipped", || async {
        slices_of(&slices, "ext").await.is_empty()
    })
    .await;
    eps.patch("ext", &PatchParams::default(), &skip("false"))
        .await
        .unwrap();
    wait_for("mirrored again", || async {
        slices_of(&slices, "ext").await.len() == 1
    })
    .await;
    svcs.delete("ext", &DeleteParams::default()).await.unwrap();
    wait_for("no slice without the Service", || async {
        slices_of(&slices, "ext").await.is_empty()
    })
    .await;
    controller.abort();
}
