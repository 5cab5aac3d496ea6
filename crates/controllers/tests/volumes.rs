//! The persistent volume binder and the local-path provisioner against a real API server
//! (which gives classless claims the default class, `local-path`).

mod common;

use common::{server, wait_for};
use controllers::informers::Informers;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn volume(name: &str, size: &str, modes: &[&str], policy: &str) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": modes,
            "persistentVolumeReclaimPolicy": policy,
            "storageClassName": "",
            "hostPath": {"path": format!("/tmp/{name}")}
        }
    }))
    .unwrap()
}

/// A claim; `class` `None` leaves `storageClassName` out.
fn claim(name: &str, size: &str, class: Option<&str>) -> PersistentVolumeClaim {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}}
    });
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// The claim's phase and volume.
async fn bound(claims: &Api<PersistentVolumeClaim>, name: &str) -> (String, String) {
    let c = claims.get(name).await.unwrap();
    (
        c.status.and_then(|s| s.phase).unwrap_or_default(),
        c.spec.and_then(|s| s.volume_name).unwrap_or_default(),
    )
}

async fn wait_bound(claims: &Api<PersistentVolumeClaim>, name: &str) -> String {
    wait_for(&format!("claim {name} to be bound"), || async {
        bound(claims, name).await.0 == "Bound"
    })
    .await;
    bound(claims, name).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_get_the_smallest_volume_that_fits_and_give_it_back() {
    let (_dir, _server, client) = server().await;
    let controller = tokio::spawn(controllers::volumes::run(Informers::new(client.clone())));
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    for v in [
        volume("small", "1Gi", &["ReadWriteOnce"], "Retain"),
        volume("mid", "5Gi", &["ReadWriteOnce"], "Retain"),
        volume("big", "10Gi", &["ReadWriteOnce"], "Delete"),
        volume("shared", "3Gi", &["ReadOnlyMany"], "Retain"),
    ] {
        volumes.create(&pp, &v).await.unwrap();
    }
    wait_for("the volumes to be Available", || async {
        volumes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|v| v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Available"))
    })
    .await;

    // 2Gi read-write: not small (too little), not shared (read-only): mid, not big.
    let a = claims
        .create(&pp, &claim("a", "2Gi", Some("")))
        .await
        .unwrap();
    assert_eq!(wait_bound(&claims, "a").await, "mid");
    let got = claims.get("a").await.unwrap();
    let status = got.status.unwrap();
    assert_eq!(status.capacity.unwrap()["storage"].0, "5Gi");
    assert_eq!(status.access_modes.unwrap(), ["ReadWriteOnce"]);
    assert_eq!(
        got.metadata.annotations.unwrap()["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    let mid = volumes.get("mid").await.unwrap();
    let claim_ref = mid.spec.unwrap().claim_ref.unwrap();
    assert_eq!(claim_ref.uid, a.metadata.uid);
    assert_eq!(mid.status.unwrap().phase.as_deref(), Some("Bound"));

    // Nothing fits 20Gi: the claim waits and says why, until a volume that fits appears.
    claims
        .create(&pp, &claim("b", "20Gi", Some("")))
        .await
        .unwrap();
    wait_for("the FailedBinding event", || {
        common::has_event(
            &client,
            "b",
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        )
    })
    .await;
    assert_eq!(
        bound(&claims, "b").await,
        ("Pending".to_owned(), String::new())
    );
    volumes
        .create(&pp, &volume("huge", "50Gi", &["ReadWriteOnce"], "Delete"))
        .await
        .unwrap();
    assert_eq!(wait_bound(&claims, "b").await, "huge");

    // Two claims, one volume that fits either: exactly one gets it.
    volumes
        .create(&pp, &volume("one", "12Gi", &["ReadWriteOnce"], "Retain"))
        .await
        .unwrap();
    claims
        .create(&pp, &claim("x", "11Gi", Some("")))
        .await
        .unwrap();
    claims
        .create(&pp, &claim("y", "11Gi", Some("")))
        .await
        .unwrap();
    wait_for("one of x and y to be bound", || async {
        bound(&claims, "x").await.0 == "Bound" || bound(&claims, "y").await.0 == "Bound"
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (x, y) = (bound(&claims, "x").await, bound(&claims, "y").await);
    let winners: Vec<_> = [&x, &y].into_iter().filter(|c| c.0 == "Bound").collect();
    assert_eq!(winners.len(), 1, "x {x:?}, y {y:?}");
    assert_eq!(winners[0].1, "one");

    // A claim gone: Retain keeps the volume Released, Delete deletes it.
    claims.delete("a", &DeleteParams::default()).await.unwrap();
    claims.delete("b", &DeleteParams::default()).await.unwrap();
    wait_for("mid to be Released and huge deleted", || async {
        let mid = volumes.get("mid").await.unwrap();
        mid.status.and_then(|s| s.phase).as_deref() == Some("Released")
            && volumes.get_opt("huge").await.unwrap().is_none()
    })
    .await;
    // A Released volume is not given to a new claim.
    claims
        .create(&pp, &claim("c", "4Gi", Some("")))
        .await
        .unwrap();
    assert_eq!(wait_bound(&claims, "c").await, "big");
    controller.abort();
}

/// A binder stopped between writing the volume (claimRef, phase Bound) and writing the
/// claim leaves both so; the next binder finishes the binding instead of looking past
/// the volume for one that is Available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_stopped_halfway_is_finished() {
    let (_dir, _server, client) = server().await;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let half = claims
        .create(&pp, &claim("half", "1Gi", Some("")))
        .await
        .unwrap();
    let mut v = volume("taken", "2Gi", &["ReadWriteOnce"], "Retain");
    v.spec.as_mut().unwrap().claim_ref = Some(k8s_openapi::api::core::v1::ObjectReference {
        namespace: Some("default".into()),
        name: Some("half".into()),
        uid: half.metadata.uid.clone(),
        ..Default::default()
    });
    volumes.create(&pp, &v).await.unwrap();
    let bound_phase = json!({"status": {"phase": "Bound"}});
    volumes
        .patch_status(
            "taken",
            &PatchParams::default(),
            &Patch::Merge(&bound_phase),
        )
        .await
        .unwrap();
    // Another volume that would fit, were the half-made binding given up.
    volumes
        .create(&pp, &volume("spare", "1Gi", &["ReadWriteOnce"], "Retain"))
        .await
        .unwrap();

    let controller = tokio::spawn(controllers::volumes::run(Informers::new(client.clone())));
    assert_eq!(wait_bound(&claims, "half").await, "taken");
    controller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_of_the_default_class_gets_a_local_volume_on_the_chosen_node() {
    let (dir, _server, client) = server().await;
    let controller = tokio::spawn(controllers::volumes::run(Informers::new(client.clone())));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();

    // No class named: the API server gives it the default, local-path.
    let made = claims
        .create(&PostParams::default(), &claim("data", "1Gi", None))
        .await
        .unwrap();
    assert_eq!(
        made.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("local-path")
    );
    // An empty class asks for none and stays so.
    let none = claims
        .create(&PostParams::default(), &claim("classless", "1Gi", Some("")))
        .await
        .unwrap();
    assert_eq!(none.spec.unwrap().storage_class_name.as_deref(), Some(""));

    // WaitForFirstConsumer: nothing happens until a node is chosen, and the claim says so.
    wait_for("the WaitForFirstConsumer event", || {
        common::has_event(
            &client,
            "data",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        )
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(bound(&claims, "data").await.0, "Pending");
    assert!(
        volumes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let patch =
        json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "node-1"}}});
    claims
        .patch("data", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let name = wait_bound(&claims, "data").await;
    assert_eq!(name, format!("pvc-{}", made.uid().unwrap()));
    let pv: Value = serde_json::to_value(volumes.get(&name).await.unwrap()).unwrap();
    let spec = &pv["spec"];
    let root = std::path::absolute(dir.path().join("local-volumes")).unwrap();
    assert_eq!(
        spec["hostPath"],
        json!({"path": root.join(&name).display().to_string(), "type": "DirectoryOrCreate"})
    );
    assert_eq!(
        spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!(["node-1"])
    );
    assert_eq!(spec["capacity"]["storage"], "1Gi");
    assert_eq!(spec["storageClassName"], "local-path");
    assert_eq!(spec["persistentVolumeReclaimPolicy"], "Delete");
    assert!(common::has_event(&client, "data", "ProvisioningSucceeded", &name).await);

    // The claim gone, the volume goes (the class's reclaim policy is Delete).
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the provisioned volume to be deleted", || async {
        volumes.get_opt(&name).await.unwrap().is_none()
    })
    .await;
    controller.abort();
}
