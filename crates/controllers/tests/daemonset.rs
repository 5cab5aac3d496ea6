//! The DaemonSet controller against a real API server in-process, with
//! Node objects and no agents: a stand-in kubelet marks daemon pods Running
//! and Ready (or, when a test asks, Failed).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{server, status, wait_for};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn daemon_set(name: &str, image: &str, extra: Value) -> DaemonSet {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    });
    merge(&mut v["spec"], extra);
    serde_json::from_value(v).unwrap()
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

async fn add_node(nodes: &Api<Node>, name: &str, labels: Value, taints: Value) {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
}

/// Marks daemon pods Running and Ready after `delay` polls, except those
/// whose image is `crash`, which it marks Failed.
fn fake_kubelet(client: kube::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client, "default");
        loop {
            for p in pods.list(&ListParams::default()).await.unwrap().items {
                let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                if p.metadata.deletion_timestamp.is_some()
                    || matches!(phase.as_deref(), Some("Running" | "Failed"))
                {
                    continue;
                }
                let crash =
                    p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("crash");
                let status = if crash {
                    json!({"phase": "Failed"})
                } else {
                    json!({"phase": "Running",
                           "conditions": [{"type": "Ready", "status": "True",
                                           "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
                };
                let _ = pods
                    .patch_status(
                        &p.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "status": status })),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// The node each live pod of the set is for (from its name affinity), and
/// its image.
async fn placed(pods: &Api<Pod>, name: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in pods
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap()
        .items
    {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let spec = p.spec.unwrap();
        let node = spec
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms[0]
            .match_fields
            .clone()
            .unwrap()[0]
            .values
            .clone()
            .unwrap()[0]
            .clone();
        out.entry(node)
            .or_default()
            .push(spec.containers[0].image.clone().unwrap());
    }
    out
}

fn nodes_of(placed: &BTreeMap<String, Vec<String>>) -> Vec<&str> {
    placed.keys().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_follow_node_eligibility() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let kubelet = fake_kubelet(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    add_node(&nodes, "n1", json!({"role": "worker"}), json!([])).await;
    add_node(
        &nodes,
        "n2",
        json!({"role": "worker"}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    )
    .await;
    add_node(&nodes, "n3", json!({}), json!([])).await;
    // Not ready and unschedulable: the daemon tolerations let pods on.
    add_node(
        &nodes,
        "n4",
        json!({"role": "worker"}),
        json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
               {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
    )
    .await;

    sets.create(
        &PostParams::default(),
        &daemon_set(
            "agent",
            "v1",
            json!({"template": {"spec": {"nodeSelector": {"role": "worker"}}}}),
        ),
    )
    .await
    .unwrap();
    wait_for("pods on n1 and n4, available", || async {
        let st = status(&sets, "agent").await;
        nodes_of(&placed(&pods, "agent").await) == ["n1", "n4"]
            && st["desiredNumberScheduled"] == 2
            && st["currentNumberScheduled"] == 2
            && st["numberReady"] == 2
            && st["numberAvailable"] == 2
            && st["updatedNumberScheduled"] == 2
            && st["observedGeneration"] == 1
    })
    .await;
    let st = status(&sets, "agent").await;
    assert_eq!(st["numberMisscheduled"], 0, "{st:#}");
    assert_eq!(st["numberUnavailable"], 0, "{st:#}");

    // What every daemon pod gets.
    let pod = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .remove(0);
    assert!(pod.name_any().starts_with("agent-"));
    let hash = pod.labels()["controller-revision-hash"].clone();
    assert_eq!(pod.labels()["pod-template-generation"], "1");
    let rev = Api::<ControllerRevision>::namespaced(client.clone(), "default")
        .get(&format!("agent-{hash}"))
        .await
        .unwrap();
    assert_eq!(rev.revision, 1);
    let tolerations: Vec<(String, String)> = pod
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .iter()
        .flatten()
        .map(|t| (t.key.clone().unwrap(), t.effect.clone().unwrap()))
        .collect();
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        assert!(
            tolerations.contains(&(key.into(), effect.into())),
            "{key} {effect} missing: {tolerations:?}"
        );
    }

    // Tolerating n2's taint brings it in; labelling n3 too.
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
        ]}}}})),
    )
    .await
    .unwrap();
    nodes
        .patch(
            "n3",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"role": "worker"}}})),
        )
        .await
        .unwrap();
    wait_for("pods on all four nodes", || async {
        let st = status(&sets, "agent").await;
        nodes_of(&placed(&pods, "agent").await) == ["n1", "n2", "n3", "n4"]
            && st["desiredNumberScheduled"] == 4
            && st["numberAvailable"] == 4
            && st["updatedNumberScheduled"] == 4
    })
    .await;

    // n3 no longer eligible, n1 gone, a NoExecute taint on n2: their pods go.
    nodes
        .patch(
            "n3",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"role": null}}})),
        )
        .await
        .unwrap();
    nodes.delete("n1", &DeleteParams::default()).await.unwrap();
    nodes
        .patch(
            "n2",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                {"key": "evict", "effect": "NoExecute"}
            ]}})),
        )
        .await
        .unwrap();
    wait_for("only n4 left", || async {
        let st = status(&sets, "agent").await;
        nodes_of(&placed(&pods, "agent").await) == ["n4"]
            && st["desiredNumberScheduled"] == 1
            && st["numberAvailable"] == 1
    })
    .await;

    // A failed daemon pod is deleted and made again.
    let crashing = daemon_set("crashy", "crash", json!({}));
    sets.create(&PostParams::default(), &crashing)
        .await
        .unwrap();
    let crashy = || async {
        pods.list(&ListParams::default().labels("app=crashy"))
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.name_any())
            .collect::<Vec<String>>()
    };
    wait_for("crashy pods", || async { !crashy().await.is_empty() }).await;
    let first = crashy().await;
    wait_for("a failed pod replaced", || async {
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(client.clone(), "default");
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("FailedDaemonPod"))
            && crashy().await.iter().any(|p| !first.contains(p))
    })
    .await;
    kubelet.abort();
    controllers.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_updates_keep_within_max_unavailable_and_max_surge() {
    let (_dir, _server, client) = server().await;
    let controllers = tokio::spawn(controllers::run(client.clone()));
    let kubelet = fake_kubelet(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    for n in ["n1", "n2", "n3", "n4"] {
        add_node(&nodes, n, json!({}), json!([])).await;
    }
    sets.create(
        &PostParams::default(),
        &daemon_set("agent", "v1", json!({})),
    )
    .await
    .unwrap();
    let rolled_out = |image: &'static str| {
        let (sets, pods) = (sets.clone(), pods.clone());
        async move {
            let st = status(&sets, "agent").await;
            let p = placed(&pods, "agent").await;
            p.len() == 4
                && p.values().all(|images| images == &[image])
                && st["updatedNumberScheduled"] == 4
                && st["numberAvailable"] == 4
        }
    };
    wait_for("v1 everywhere", || rolled_out("v1")).await;

    // maxUnavailable 1 (the default): never fewer than three ready pods.
    let ready_count = |pods: Vec<Pod>| {
        pods.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count()
    };
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}}),
        ),
    )
    .await
    .unwrap();
    let mut fewest = usize::MAX;
    for _ in 0..600 {
        let live = pods.list(&ListParams::default()).await.unwrap().items;
        fewest = fewest.min(ready_count(live));
        if rolled_out("v2").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(rolled_out("v2").await, "{:#}", status(&sets, "agent").await);
    assert!(fewest >= 3, "{fewest} ready at worst");

    // maxSurge 1, maxUnavailable 0: never fewer than four ready, never
    // more than five pods.
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"spec": {"containers": [{"name": "c", "image": "v3"}]}}
        }})),
    )
    .await
    .unwrap();
    let (mut fewest, mut most) = (usize::MAX, 0);
    for _ in 0..600 {
        let live: Vec<Pod> = pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        most = most.max(live.len());
        fewest = fewest.min(ready_count(live));
        if rolled_out("v3").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(rolled_out("v3").await, "{:#}", status(&sets, "agent").await);
    assert!(fewest >= 4, "{fewest} ready at worst");
    assert!(most <= 5, "{most} pods at once");

    // Three revisions, numbered in order; undo (the old data patched back)
    // renumbers the first.
    let mut revs = revisions.list(&ListParams::default()).await.unwrap().items;
    revs.sort_by_key(|r| r.revision);
    assert_eq!(
        revs.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let first = revs[0].clone();
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Strategic(first.data.clone().unwrap().0),
    )
    .await
    .unwrap();
    wait_for("back to v1", || rolled_out("v1")).await;
    assert_eq!(revisions.get(&first.name_any()).await.unwrap().revision, 4);

    // OnDelete: a new template waits for pods to be deleted by hand.
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
            "template": {"spec": {"containers": [{"name": "c", "image": "v4"}]}}
        }})),
    )
    .await
    .unwrap();
    wait_for("the new template observed", || async {
        let st = status(&sets, "agent").await;
        st["observedGeneration"] == 5 && st["updatedNumberScheduled"] == 0
    })
    .await;
    assert!(placed(&pods, "agent").await.values().all(|i| i == &["v1"]));
    let victim = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .remove(0);
    pods.delete(&victim.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    wait_for("one pod at v4", || async {
        let p = placed(&pods, "agent").await;
        p.values().filter(|i| *i == &["v4"]).count() == 1
            && p.values().filter(|i| *i == &["v1"]).count() == 3
            && status(&sets, "agent").await["updatedNumberScheduled"] == 1
    })
    .await;
    kubelet.abort();
    controllers.abort();
}
