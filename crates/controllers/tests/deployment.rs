//! The Deployment controller (with the ReplicaSet controller under it)
//! against a real API server in-process. No node runs here: a stand-in
//! kubelet marks every pod Running and Ready unless its image is `broken`,
//! so availability follows what each test asks for.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{mark_ready, server, set_image, status, wait_for};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const REVISION: &str = "deployment.kubernetes.io/revision";

fn deployment(name: &str, replicas: i32, image: &str, strategy: Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .unwrap()
}

/// Marks pods Running and Ready (with an IP), as a kubelet would, except
/// those whose image is `broken`.
fn fake_kubelet(client: kube::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(client.clone());
        let mut n = 0u32;
        loop {
            for p in pods.list(&ListParams::default()).await.unwrap().items {
                let broken = p
                    .spec
                    .as_ref()
                    .is_some_and(|s| s.containers[0].image.as_deref() == Some("broken"));
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|ph| ph == "Running");
                if broken || ready || p.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                n += 1;
                let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap());
                let ip = format!("10.9.{}.{}", n / 250, n % 250 + 1);
                mark_ready(&api, &p.name_any(), Some(ip)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// The Deployment's ReplicaSets by revision: (replicas, image).
async fn by_revision(rss: &Api<ReplicaSet>, d: &str) -> BTreeMap<i64, (i32, String)> {
    rss.list(&ListParams::default().labels(&format!("app={d}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .map(|rs| {
            let rev = rs.annotations()[REVISION].parse().unwrap();
            let spec = rs.spec.unwrap();
            let image = spec.template.unwrap().spec.unwrap().containers[0]
                .image
                .clone()
                .unwrap();
            (rev, (spec.replicas.unwrap(), image))
        })
        .collect()
}

fn progressing_reason(st: &Value) -> String {
    st["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Progressing")
        .map(|c| c["reason"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn rolled_out(st: &Value, n: i32) -> bool {
    st["replicas"] == n
        && st["updatedReplicas"] == n
        && st["availableReplicas"] == n
        && progressing_reason(st) == "NewReplicaSetAvailable"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_updates_keep_within_surge_and_unavailability_and_undo_reuses_the_old_set() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let kubelet = fake_kubelet(client.clone());
    let ds: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let strategy = json!({"type": "RollingUpdate",
                          "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    ds.create(
        &PostParams::default(),
        &deployment("web", 4, "v1", strategy),
    )
    .await
    .unwrap();
    wait_for("the first rollout", || async {
        rolled_out(&status(&ds, "web").await, 4)
    })
    .await;
    let revs = by_revision(&rss, "web").await;
    assert_eq!(revs, BTreeMap::from([(1, (4, "v1".to_owned()))]));
    let d = ds.get("web").await.unwrap();
    assert_eq!(d.annotations()[REVISION], "1");

    // v2: at no time more than 5 pods, nor fewer than 3 available.
    set_image(&ds, "web", "v2").await;
    let mut most = 0;
    let mut fewest_available = i64::MAX;
    for _ in 0..400 {
        let live: Vec<Pod> = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        most = most.max(live.len());
        let st = status(&ds, "web").await;
        fewest_available = fewest_available.min(st["availableReplicas"].as_i64().unwrap_or(0));
        if rolled_out(&st, 4) && st["observedGeneration"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let st = status(&ds, "web").await;
    assert!(rolled_out(&st, 4), "{st:#}");
    assert!(most <= 5, "{most} pods at once");
    assert!(
        fewest_available >= 3,
        "{fewest_available} available at worst"
    );
    assert_eq!(
        by_revision(&rss, "web").await,
        BTreeMap::from([(1, (0, "v1".to_owned())), (2, (4, "v2".to_owned()))])
    );
    assert_eq!(ds.get("web").await.unwrap().annotations()[REVISION], "2");

    // Putting the old template back (what `kubectl rollout undo` does)
    // reuses the first ReplicaSet, now revision 3.
    set_image(&ds, "web", "v1").await;
    wait_for("the undo rolled out", || async {
        by_revision(&rss, "web").await
            == BTreeMap::from([(2, (0, "v2".to_owned())), (3, (4, "v1".to_owned()))])
            && rolled_out(&status(&ds, "web").await, 4)
    })
    .await;
    let old = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|rs| rs.annotations()[REVISION] == "3")
        .unwrap();
    assert_eq!(
        old.annotations()["deployment.kubernetes.io/revision-history"],
        "1"
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let messages: Vec<String> = events
        .list(&ListParams::default().fields("involvedObject.name=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ScalingReplicaSet"))
        .filter_map(|e| e.message)
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Scaled up replica set web-") && m.ends_with("from 0 to 4")),
        "{messages:?}"
    );
    kubelet.abort();
    controllers.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_image_stalls_with_progress_deadline_exceeded_and_keeps_the_old_pods() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let kubelet = fake_kubelet(client.clone());
    let ds: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("app", 4, "v1", json!({"type": "RollingUpdate"}));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    ds.create(&PostParams::default(), &d).await.unwrap();
    wait_for("the first rollout", || async {
        rolled_out(&status(&ds, "app").await, 4)
    })
    .await;
    set_image(&ds, "app", "broken").await;
    wait_for("ProgressDeadlineExceeded", || async {
        progressing_reason(&status(&ds, "app").await) == "ProgressDeadlineExceeded"
    })
    .await;
    // 25% of 4 may be unavailable (1): three old pods stay; the new set got
    // the surge (1) and what the old one gave up (1).
    let revs = by_revision(&rss, "app").await;
    assert_eq!(revs[&1], (3, "v1".to_owned()), "{revs:?}");
    assert_eq!(revs[&2], (2, "broken".to_owned()), "{revs:?}");
    let st = status(&ds, "app").await;
    assert_eq!(st["availableReplicas"], 3, "{st:#}");
    let available = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap()
        .clone();
    assert_eq!(available["status"], "True", "{available:#}");
    kubelet.abort();
    controllers.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deployments_scale_but_do_not_roll_and_history_is_limited() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let kubelet = fake_kubelet(client.clone());
    let ds: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("p", 2, "v1", json!({"type": "RollingUpdate"}));
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    ds.create(&PostParams::default(), &d).await.unwrap();
    wait_for("the first rollout", || async {
        rolled_out(&status(&ds, "p").await, 2)
    })
    .await;

    let pause = |paused: bool| {
        let ds = ds.clone();
        async move {
            ds.patch(
                "p",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"paused": paused}})),
            )
            .await
            .unwrap();
        }
    };
    pause(true).await;
    wait_for("DeploymentPaused", || async {
        progressing_reason(&status(&ds, "p").await) == "DeploymentPaused"
    })
    .await;
    set_image(&ds, "p", "v2").await;
    ds.patch(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    wait_for("scaled while paused", || async {
        status(&ds, "p").await["availableReplicas"] == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        by_revision(&rss, "p").await,
        BTreeMap::from([(1, (3, "v1".to_owned()))])
    );

    pause(false).await;
    wait_for("v2 rolled out after resume", || async {
        by_revision(&rss, "p").await.get(&2) == Some(&(3, "v2".to_owned()))
            && rolled_out(&status(&ds, "p").await, 3)
    })
    .await;
    // v3: with a history of one, revision 1 goes once it is scaled down.
    set_image(&ds, "p", "v3").await;
    wait_for("v3 rolled out and revision 1 deleted", || async {
        by_revision(&rss, "p").await
            == BTreeMap::from([(2, (0, "v2".to_owned())), (3, (3, "v3".to_owned()))])
    })
    .await;
    kubelet.abort();
    controllers.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_removes_the_old_pods_before_making_new_ones() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let kubelet = fake_kubelet(client.clone());
    let ds: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    ds.create(
        &PostParams::default(),
        &deployment("r", 3, "v1", json!({"type": "Recreate"})),
    )
    .await
    .unwrap();
    wait_for("the first rollout", || async {
        rolled_out(&status(&ds, "r").await, 3)
    })
    .await;
    set_image(&ds, "r", "v2").await;
    let mut mixed = false;
    for _ in 0..400 {
        let images: Vec<String> = pods
            .list(&ListParams::default().labels("app=r"))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| p.spec.unwrap().containers[0].image.clone().unwrap())
            .collect();
        mixed |= images.contains(&"v1".to_owned()) && images.contains(&"v2".to_owned());
        let st = status(&ds, "r").await;
        if rolled_out(&st, 3) && st["observedGeneration"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rolled_out(&status(&ds, "r").await, 3));
    assert!(!mixed, "old and new pods existed at once");
    kubelet.abort();
    controllers.abort();
}
