//! Garbage collection on a `gantry up` node (issue 5): what `kubectl delete
//! --cascade` promises for a ReplicaSet's running pods, with the
//! controllers deciding (the API server only records the policy as a
//! finalizer).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::pods::{running, wait_for};

/// Three ReplicaSets of two pods each. `fg`'s pods ignore SIGTERM, so they
/// take their whole grace period to stop and the foreground deletion has a
/// window in which to be seen.
const SETS: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: bg}
spec:
  replicas: 2
  selector: {matchLabels: {app: bg}}
  template:
    metadata: {labels: {app: bg}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: "busybox:1.36", command: [sleep, "3600"]}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: orphans}
spec:
  replicas: 2
  selector: {matchLabels: {app: orphans}}
  template:
    metadata: {labels: {app: orphans}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: "busybox:1.36", command: [sleep, "3600"]}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: fg}
spec:
  replicas: 2
  selector: {matchLabels: {app: fg}}
  template:
    metadata: {labels: {app: fg}}
    spec:
      terminationGracePeriodSeconds: 4
      containers:
      - name: c
        image: "busybox:1.36"
        command: [sh, -c, 'trap "" TERM; sleep 3600']
"#;

/// The pods labelled `app=<app>`, terminating or not.
fn pods(ns: &Namespace<'_>, app: &str) -> Vec<Value> {
    let out = ns
        .kubectl(["get", "pods", "-l", &format!("app={app}"), "-o", "json"])
        .ok();
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"].as_array().unwrap().clone()
}

fn ready(ns: &Namespace<'_>, rs: &str) {
    wait_for(ns, &format!("rs/{rs}"), "2 ready replicas", |r| {
        r["status"]["readyReplicas"] == 2
    });
}

#[test]
fn kubectl_delete_cascades_as_asked() {
    let s = Server::node();
    let ns = s.namespace("gc");
    ns.apply(SETS);
    for rs in ["bg", "orphans", "fg"] {
        ready(&ns, rs);
    }

    // The default cascade (background): the pods go after the ReplicaSet.
    let out = ns.kubectl(["delete", "rs", "bg"]).ok();
    assert_eq!(out.trim(), "replicaset.apps \"bg\" deleted");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pods(&ns, "bg").is_empty() {
        assert!(
            Instant::now() < deadline,
            "bg's pods still there: {:#?}",
            pods(&ns, "bg")
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Orphan: kubectl waits for the ReplicaSet to go; the pods stay,
    // running and owned by nobody.
    let before: Vec<String> = pods(&ns, "orphans")
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect();
    ns.kubectl(["delete", "rs", "orphans", "--cascade=orphan"])
        .ok();
    assert!(!ns.exists("rs/orphans"));
    std::thread::sleep(Duration::from_secs(1));
    let after = pods(&ns, "orphans");
    assert_eq!(after.len(), 2);
    for p in &after {
        assert!(before.contains(&p["metadata"]["uid"].as_str().unwrap().to_owned()));
        assert!(running(p), "{p:#}");
        assert!(p["metadata"]["deletionTimestamp"].is_null(), "{p:#}");
        assert!(
            p["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(|r| r.is_empty()),
            "{p:#}"
        );
    }

    // Foreground: the ReplicaSet is there, marked, while its pods stop,
    // and goes only once they are gone.
    ns.kubectl(["delete", "rs", "fg", "--cascade=foreground", "--wait=false"])
        .ok();
    let rs = ns.get("rs/fg");
    assert!(rs["metadata"]["deletionTimestamp"].is_string(), "{rs:#}");
    assert_eq!(
        rs["metadata"]["finalizers"],
        serde_json::json!(["foregroundDeletion"])
    );
    let mut seen_waiting = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The ReplicaSet first, then the pods: once it is gone, so are they.
        let present = ns.exists("rs/fg");
        let left = pods(&ns, "fg");
        if !present {
            assert!(left.is_empty(), "fg went before its pods: {left:#?}");
            break;
        }
        if !left.is_empty()
            && left
                .iter()
                .all(|p| p["metadata"]["deletionTimestamp"].is_string())
        {
            seen_waiting = true;
        }
        assert!(
            Instant::now() < deadline,
            "rs/fg still there: {:#}",
            ns.get("rs/fg")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        seen_waiting,
        "never saw rs/fg waiting for its terminating pods"
    );

    ns.kubectl(["delete", "namespace", &ns.name, "--timeout=120s"])
        .ok();
}
