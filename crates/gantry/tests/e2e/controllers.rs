//! Controllers on a `gantry up` node (issue 5): what kubectl applies is kept
//! running by them. So far: ReplicaSets.

use serde_json::Value;

use crate::harness::*;
use crate::pods::{running, wait_for};

const SLEEPERS: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: sleepers
spec:
  replicas: 3
  selector:
    matchLabels: {app: sleepers}
  template:
    metadata:
      labels: {app: sleepers}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.36
        command: [sleep, "3600"]
"#;

/// The names of the ReplicaSet's pods that are not being deleted.
fn live_pods(ns: &Namespace<'_>) -> Vec<Value> {
    ns.get("pods")["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "sleepers")
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn name(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap().to_owned()
}

#[test]
fn a_replicaset_keeps_its_pods_running() {
    let s = Server::node();
    let ns = s.namespace("rs");
    assert_eq!(
        ns.apply(SLEEPERS).trim(),
        "replicaset.apps/sleepers created"
    );
    wait_for(&ns, "rs/sleepers", "3 ready replicas", |r| {
        r["status"]["readyReplicas"] == 3 && r["status"]["availableReplicas"] == 3
    });
    let pods = live_pods(&ns);
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(running(p), "{p:#}");
        assert!(name(p).starts_with("sleepers-"), "{}", name(p));
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    }
    let table = ns.kubectl(["get", "rs", "sleepers"]).ok();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["sleepers", "3", "3", "3"], "{table}");

    // A pod deleted is replaced by a new one.
    let lost = name(&pods[0]);
    ns.kubectl(["delete", "pod", &lost, "--wait=false"]).ok();
    wait_for(&ns, "rs/sleepers", "a replacement running", |r| {
        r["status"]["readyReplicas"] == 3 && {
            let live = live_pods(&ns);
            live.len() == 3 && live.iter().all(|p| name(p) != lost && running(p))
        }
    });

    // kubectl scale goes through the scale subresource; the extras go.
    let out = ns.kubectl(["scale", "rs/sleepers", "--replicas=1"]).ok();
    assert_eq!(out.trim(), "replicaset.apps/sleepers scaled");
    wait_for(&ns, "rs/sleepers", "one replica", |r| {
        r["status"]["replicas"] == 1 && r["status"]["readyReplicas"] == 1
    });
    let described = ns.kubectl(["describe", "rs", "sleepers"]).ok();
    for want in [
        "SuccessfulCreate",
        "Created pod: sleepers-",
        "SuccessfulDelete",
    ] {
        assert!(described.contains(want), "{want} missing:\n{described}");
    }
}
