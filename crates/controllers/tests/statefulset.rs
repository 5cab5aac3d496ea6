//! The StatefulSet controller against a real API server in-process. No
//! node runs here: a stand-in kubelet marks pods Running and Ready, one at
//! a time, remembering which it marked, while a monitor checks the ordering
//! promises on every look at the pods.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{mark_ready, server, set_image, status, wait_for};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn set(name: &str, replicas: i32, policy: &str, image: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": "svc",
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image,
                                         "volumeMounts": [{"name": "www", "mountPath": "/www"}]}]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }))
    .unwrap()
}

/// The uids of the pods the stand-in kubelet has marked ready (recorded
/// before the mark is written, so it is never behind the API).
type Marked = Arc<Mutex<HashSet<String>>>;

/// Marks one not-yet-ready pod Running and Ready every `pace`, the lowest
/// name first.
fn slow_kubelet(
    client: kube::Client,
    pace: Duration,
    marked: Marked,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client, "default");
        loop {
            let mut waiting: Vec<Pod> = pods
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| !marked.lock().unwrap().contains(&p.uid().unwrap()))
                .collect();
            waiting.sort_by_key(|p| p.name_any());
            if let Some(p) = waiting.first() {
                marked.lock().unwrap().insert(p.uid().unwrap());
                mark_ready(&pods, &p.name_any(), None).await;
            }
            tokio::time::sleep(pace).await;
        }
    })
}

/// Checks, on every look while `scaling` holds, that the set's live pods
/// have ordinals 0..k and that a pod is there only if the one before it was
/// marked ready (a rolling update remakes lower ordinals under higher ones,
/// so not then).
fn ordering_monitor(
    client: kube::Client,
    name: &'static str,
    marked: Marked,
    scaling: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<String>>>) {
    let violations = Arc::new(Mutex::new(Vec::new()));
    let out = violations.clone();
    let task = tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client, "default");
        loop {
            let live: BTreeMap<i32, Pod> = pods
                .list(&ListParams::default().labels(&format!("app={name}")))
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|p| {
                    let o = p.name_any().rsplit('-').next()?.parse().ok()?;
                    Some((o, p))
                })
                .collect();
            let check = scaling.load(Ordering::SeqCst);
            let ordinals: Vec<i32> = live.keys().copied().collect();
            if check && ordinals.iter().enumerate().any(|(i, o)| *o != i as i32) {
                violations
                    .lock()
                    .unwrap()
                    .push(format!("ordinals {ordinals:?}"));
            }
            for (o, _) in live.iter().skip(1).filter(|_| check) {
                let before = &live[&(o - 1)];
                if !marked.lock().unwrap().contains(&before.uid().unwrap()) {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("{name}-{o} while {name}-{} not ready", o - 1));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (task, out)
}

/// Image and revision label per pod name.
async fn pods_of(pods: &Api<Pod>, name: &str) -> BTreeMap<String, (String, String)> {
    pods.list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let image = p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap();
            let rev = p.labels()["controller-revision-hash"].clone();
            (p.name_any(), (image, rev))
        })
        .collect()
}

async fn set_partition(sets: &Api<StatefulSet>, name: &str, partition: i32) {
    sets.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {
            "type": "RollingUpdate", "rollingUpdate": {"partition": partition}
        }}})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_ready_creates_in_order_scales_down_in_reverse_and_respects_the_partition() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let marked = Marked::default();
    let kubelet = slow_kubelet(client.clone(), Duration::from_millis(300), marked.clone());
    let scaling = Arc::new(AtomicBool::new(true));
    let (monitor, violations) =
        ordering_monitor(client.clone(), "web", marked.clone(), scaling.clone());
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");

    sets.create(&PostParams::default(), &set("web", 3, "OrderedReady", "v1"))
        .await
        .unwrap();
    wait_for("three ready replicas", || async {
        let st = status(&sets, "web").await;
        st["readyReplicas"] == 3 && st["replicas"] == 3 && st["observedGeneration"] == 1
    })
    .await;
    let st = status(&sets, "web").await;
    assert_eq!(st["currentRevision"], st["updateRevision"], "{st:#}");
    assert_eq!(st["currentReplicas"], 3, "{st:#}");
    assert_eq!(st["updatedReplicas"], 3, "{st:#}");
    assert_eq!(st["availableReplicas"], 3, "{st:#}");
    let rev1 = st["updateRevision"].as_str().unwrap().to_owned();
    assert!(rev1.starts_with("web-"), "{rev1}");

    // Identity: labels, hostname, subdomain, the claim as a volume.
    let p1 = pods.get("web-1").await.unwrap();
    let labels = p1.labels();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    assert_eq!(labels["controller-revision-hash"], rev1);
    let spec = p1.spec.clone().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("svc"));
    let volume = &spec.volumes.unwrap()[0];
    assert_eq!(volume.name, "www");
    assert_eq!(
        volume.persistent_volume_claim.as_ref().unwrap().claim_name,
        "www-web-1"
    );
    for i in 0..3 {
        let c = claims.get(&format!("www-web-{i}")).await.unwrap();
        assert_eq!(c.labels()["app"], "web");
    }
    let r = revisions.get(&rev1).await.unwrap();
    assert_eq!(r.revision, 1);
    assert_eq!(r.owner_references()[0].name, "web");

    scaling.store(false, Ordering::SeqCst);

    // A pod deleted by hand comes back under the same name.
    let old_uid = pods.get("web-2").await.unwrap().uid().unwrap();
    pods.delete("web-2", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("web-2 back and ready", || async {
        pods.get_opt("web-2")
            .await
            .unwrap()
            .is_some_and(|p| p.uid().unwrap() != old_uid)
            && status(&sets, "web").await["readyReplicas"] == 3
    })
    .await;

    // A partitioned update: only the ordinals at or above the partition,
    // highest first.
    set_partition(&sets, "web", 1).await;
    set_image(&sets, "web", "v2").await;
    wait_for("web-1 and web-2 updated", || async {
        let p = pods_of(&pods, "web").await;
        let st = status(&sets, "web").await;
        p.len() == 3
            && p["web-1"].0 == "v2"
            && p["web-2"].0 == "v2"
            && st["updatedReplicas"] == 2
            && st["readyReplicas"] == 3
    })
    .await;
    let p = pods_of(&pods, "web").await;
    assert_eq!(p["web-0"], ("v1".to_owned(), rev1.clone()));
    let st = status(&sets, "web").await;
    assert_eq!(st["currentRevision"], rev1.as_str(), "{st:#}");
    let rev2 = st["updateRevision"].as_str().unwrap().to_owned();
    assert_ne!(rev1, rev2);
    assert_eq!(p["web-2"].1, rev2);

    set_partition(&sets, "web", 0).await;
    wait_for("the update completed", || async {
        let st = status(&sets, "web").await;
        st["currentRevision"] == rev2.as_str()
            && st["updatedReplicas"] == 3
            && st["readyReplicas"] == 3
    })
    .await;
    assert_eq!(pods_of(&pods, "web").await["web-0"].0, "v2");

    // What `kubectl rollout undo` does: patch the old revision's data back.
    let data = revisions.get(&rev1).await.unwrap().data.unwrap().0;
    sets.patch("web", &PatchParams::default(), &Patch::Strategic(data))
        .await
        .unwrap();
    wait_for("rolled back to v1 as revision 3", || async {
        let st = status(&sets, "web").await;
        st["currentRevision"] == rev1.as_str()
            && st["updatedReplicas"] == 3
            && st["readyReplicas"] == 3
            && revisions.get(&rev1).await.unwrap().revision == 3
    })
    .await;
    assert!(pods_of(&pods, "web").await.values().all(|(i, _)| i == "v1"));

    // Scale down: the highest ordinal first, one at a time (every pod is
    // marked ready by now, so only the order of ordinals is checked).
    scaling.store(true, Ordering::SeqCst);
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    wait_for("one replica", || async {
        let st = status(&sets, "web").await;
        st["replicas"] == 1 && pods_of(&pods, "web").await.len() == 1
    })
    .await;
    assert!(pods_of(&pods, "web").await.contains_key("web-0"));
    // Claims are retained by default.
    assert!(claims.get_opt("www-web-2").await.unwrap().is_some());

    let seen = violations.lock().unwrap().clone();
    assert!(seen.is_empty(), "ordering broken: {seen:?}");
    monitor.abort();
    kubelet.abort();
    controllers.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_makes_every_pod_at_once_and_history_is_limited() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let mut s = set("db", 3, "Parallel", "v1");
    s.spec.as_mut().unwrap().revision_history_limit = Some(0);
    sets.create(&PostParams::default(), &s).await.unwrap();
    // Nothing ever becomes ready, yet all three are made.
    wait_for("three pods", || async {
        pods_of(&pods, "db").await.len() == 3 && status(&sets, "db").await["replicas"] == 3
    })
    .await;
    assert_eq!(status(&sets, "db").await["readyReplicas"], 0);

    // Three templates, no history kept: the revision no pod uses goes. The
    // controller may never see v2 (both patches can land before it looks),
    // so v3's revision is numbered 2 or 3: name the update revision by the
    // status, as `kubectl rollout history` does.
    set_image(&sets, "db", "v2").await;
    set_image(&sets, "db", "v3").await;
    wait_for("revisions trimmed", || async {
        let st = status(&sets, "db").await;
        let (Some(current), Some(update)) = (
            st["currentRevision"].as_str(),
            st["updateRevision"].as_str(),
        ) else {
            return false;
        };
        let revs: BTreeMap<String, (i64, String)> = revisions
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|r| {
                (
                    r.name_any(),
                    (r.revision, r.data.as_ref().unwrap().0.to_string()),
                )
            })
            .collect();
        // v1 (the current revision, pods use it) and v3 (the update) stay. v2 stays only
        // while a pod uses it: a pod of db may have been made anew at v2 before v3 came.
        let used: HashSet<String> = pods_of(&pods, "db")
            .await
            .into_values()
            .map(|(_, rev)| rev)
            .collect();
        let unused_old = revs
            .keys()
            .any(|name| name != current && name != update && !used.contains(name));
        revs.get(current)
            .is_some_and(|(n, data)| *n == 1 && data.contains("\"v1\""))
            && revs
                .get(update)
                .is_some_and(|(n, data)| *n > 1 && data.contains("\"v3\""))
            && !unused_old
    })
    .await;
    controllers.abort();
}
