//! The ReplicaSet controller against a real API server (in-process, embedded
//! store): pods made from the template and owned, scaled up and down, a lost
//! pod replaced, an orphan adopted, a relabeled pod released, and the status
//! counting ready and available pods. No node runs here: pods stay Pending
//! unless a test writes their status.

mod common;

use std::time::Duration;

use common::{server, wait_for};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "front"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

/// The pods the ReplicaSet controls, not being deleted.
async fn owned(pods: &Api<Pod>, rs_uid: &str) -> Vec<Pod> {
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.owner_references()
                .iter()
                .any(|r| r.uid == rs_uid && r.controller == Some(true))
        })
        .collect()
}

async fn status_of(rss: &Api<ReplicaSet>, name: &str) -> serde_json::Value {
    serde_json::to_value(rss.get(name).await.unwrap().status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicasets_keep_their_pods() {
    let (_dir, _server, client) = server().await;
    let controller = tokio::spawn(controllers::run(client.clone()));
    let pp = PostParams::default();
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // Made from the template, owned, named after the ReplicaSet.
    let rs = rss.create(&pp, &replicaset("web", 3)).await.unwrap();
    let uid = rs.uid().unwrap();
    wait_for("3 pods", || async { owned(&pods, &uid).await.len() == 3 }).await;
    for p in owned(&pods, &uid).await {
        assert!(p.name_any().starts_with("web-"), "{}", p.name_any());
        assert_eq!(p.labels()["tier"], "front");
        let r = &p.owner_references()[0];
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("ReplicaSet", "web"));
        assert_eq!(r.block_owner_deletion, Some(true));
    }
    wait_for("status.replicas 3", || async {
        status_of(&rss, "web").await["replicas"] == 3
    })
    .await;
    // Level-triggered, not doubled: still three a moment later.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(owned(&pods, &uid).await.len(), 3);
    let st = status_of(&rss, "web").await;
    assert_eq!(st["fullyLabeledReplicas"], 3);
    assert_eq!(st["readyReplicas"], 0);
    assert_eq!(st["observedGeneration"], 1);

    // Scaled up and down through the scale subresource, as kubectl scale does.
    let scale = |n: i32| Patch::Merge(json!({"spec": {"replicas": n}}));
    rss.patch_scale("web", &PatchParams::default(), &scale(5))
        .await
        .unwrap();
    wait_for("5 pods", || async { owned(&pods, &uid).await.len() == 5 }).await;
    rss.patch_scale("web", &PatchParams::default(), &scale(2))
        .await
        .unwrap();
    wait_for("2 pods", || async { owned(&pods, &uid).await.len() == 2 }).await;
    wait_for("status.replicas 2", || async {
        status_of(&rss, "web").await["replicas"] == 2
    })
    .await;

    // A pod lost is replaced.
    let lost = owned(&pods, &uid).await[0].name_any();
    pods.delete(&lost, &DeleteParams::default()).await.unwrap();
    wait_for("a replacement", || async {
        let now = owned(&pods, &uid).await;
        now.len() == 2 && now.iter().all(|p| p.name_any() != lost)
    })
    .await;

    // An orphan that comes to carry the labels is adopted, and one pod too
    // many goes: not the orphan, which is placed, running and ready, but a
    // pending one. A pod relabeled out of the selector is released and
    // replaced.
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "labels": {"app": "not-yet"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&pp, &orphan).await.unwrap();
    pods.patch_status(
        "stray",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}})),
    )
    .await
    .unwrap();
    pods.patch(
        "stray",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    wait_for("the orphan adopted", || async {
        pods.get("stray")
            .await
            .unwrap()
            .owner_references()
            .iter()
            .any(|r| r.uid == uid)
    })
    .await;
    wait_for("2 pods again", || async {
        owned(&pods, &uid).await.len() == 2
    })
    .await;
    let keep = owned(&pods, &uid)
        .await
        .into_iter()
        .map(|p| p.name_any())
        .find(|n| n != "stray")
        .unwrap();
    pods.patch(
        &keep,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "elsewhere"}}})),
    )
    .await
    .unwrap();
    wait_for("the relabeled pod released", || async {
        pods.get(&keep)
            .await
            .unwrap()
            .owner_references()
            .iter()
            .all(|r| r.uid != uid)
    })
    .await;
    wait_for("2 pods of its own", || async {
        let now = owned(&pods, &uid).await;
        now.len() == 2 && now.iter().all(|p| p.name_any() != keep)
    })
    .await;

    // Ready pods count as ready, and as available at once (minReadySeconds 0):
    // the adopted one, and one more made ready here.
    let first = owned(&pods, &uid)
        .await
        .into_iter()
        .map(|p| p.name_any())
        .find(|n| n != "stray")
        .unwrap();
    pods.patch_status(
        &first,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}})),
    )
    .await
    .unwrap();
    wait_for("two ready and available", || async {
        let st = status_of(&rss, "web").await;
        st["readyReplicas"] == 2 && st["availableReplicas"] == 2
    })
    .await;

    // What it did is told in events, as kube-controller-manager tells it.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    wait_for("SuccessfulCreate and SuccessfulDelete events", || async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=web"))
            .await
            .unwrap()
            .items;
        let has = |reason: &str, prefix: &str| {
            list.iter().any(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.message.as_deref().is_some_and(|m| m.starts_with(prefix))
            })
        };
        let ok = has("SuccessfulCreate", "Created pod: web-")
            && has("SuccessfulDelete", "Deleted pod: ");
        if !ok {
            eprintln!(
                "EVENTS {:?}",
                list.iter()
                    .map(|e| (e.reason.clone(), e.message.clone(), e.count))
                    .collect::<Vec<_>>()
            );
        }
        ok
    })
    .await;
    controller.abort();
}
