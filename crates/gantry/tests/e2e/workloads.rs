//! StatefulSets and DaemonSets on a `gantry up` node, driven by kubectl:
//! they roll out, `kubectl rollout status|history|undo` work on them, and
//! a stateful pod deleted comes back under its name.

use serde_json::Value;

use crate::harness::*;
use crate::pods::{running, wait_for};

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 2
  serviceName: web
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.36
        command: [sleep, "3600"]
"#;

const AGENT: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.36
        command: [sleep, "3600"]
"#;

fn rollout_status(ns: &Namespace<'_>, what: &str) -> String {
    ns.kubectl(["rollout", "status", what, "--timeout=90s"])
        .ok()
}

/// The live pods with label `app=<app>`.
fn live(ns: &Namespace<'_>, app: &str) -> Vec<Value> {
    ns.get("pods")["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn image(p: &Value) -> &str {
    p["spec"]["containers"][0]["image"].as_str().unwrap()
}

#[test]
fn a_statefulset_and_a_daemonset_roll_out_with_kubectl() {
    let s = Server::node();
    let ns = s.namespace("workloads");
    let out = ns.apply(WEB);
    assert!(out.contains("statefulset.apps/web created"), "{out}");
    let out = rollout_status(&ns, "sts/web");
    assert!(
        out.trim_end()
            .ends_with("partitioned roll out complete: 2 new pods have been updated..."),
        "{out}"
    );
    let pods = live(&ns, "web");
    let mut names: Vec<&str> = pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["web-0", "web-1"]);
    for p in &pods {
        assert!(running(p), "{p:#}");
        assert_eq!(p["spec"]["subdomain"], "web");
        assert_eq!(p["spec"]["hostname"], p["metadata"]["name"]);
    }
    let table = ns.kubectl(["get", "sts", "web"]).ok();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["web", "2/2"], "{table}");

    // An image update rolls through, the highest ordinal first.
    ns.kubectl([
        "set",
        "image",
        "sts/web",
        "c=docker.io/library/busybox:1.36",
    ])
    .ok();
    rollout_status(&ns, "sts/web");
    wait_for(&ns, "sts/web", "the update completed", |s| {
        s["status"]["currentRevision"] == s["status"]["updateRevision"]
            && s["status"]["updatedReplicas"] == 2
            && s["status"]["readyReplicas"] == 2
    });
    let pods = live(&ns, "web");
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter()
            .all(|p| image(p) == "docker.io/library/busybox:1.36" && running(p)),
        "{pods:#?}"
    );
    let history = ns.kubectl(["rollout", "history", "sts/web"]).ok();
    assert!(history.starts_with("statefulset.apps/web"), "{history}");
    for rev in ["1", "2"] {
        assert!(
            history
                .lines()
                .any(|l| l.split_whitespace().next() == Some(rev)),
            "{history}"
        );
    }

    // Undo goes back to the first template, through the API's patch.
    let out = ns.kubectl(["rollout", "undo", "sts/web"]).ok();
    assert_eq!(out.trim(), "statefulset.apps/web rolled back");
    wait_for(&ns, "sts/web", "the undo completed", |s| {
        s["metadata"]["generation"] == s["status"]["observedGeneration"]
            && s["status"]["currentRevision"] == s["status"]["updateRevision"]
            && s["status"]["updatedReplicas"] == 2
            && s["status"]["readyReplicas"] == 2
    });
    assert!(live(&ns, "web").iter().all(|p| image(p) == "busybox:1.36"));

    // A pod deleted by hand comes back under the same name.
    let uid = ns.get("pod/web-0")["metadata"]["uid"].clone();
    ns.kubectl(["delete", "pod", "web-0", "--wait=false"]).ok();
    wait_for(&ns, "pod/web-0", "a new web-0 running", |p| {
        p["metadata"]["uid"] != uid && p["metadata"]["deletionTimestamp"].is_null() && running(p)
    });

    // A DaemonSet runs one pod on the node.
    let out = ns.apply(AGENT);
    assert!(out.contains("daemonset.apps/agent created"), "{out}");
    let out = rollout_status(&ns, "ds/agent");
    assert!(
        out.trim_end()
            .ends_with("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );
    let pods = live(&ns, "agent");
    assert_eq!(pods.len(), 1, "{pods:#?}");
    assert!(running(&pods[0]));
    assert_eq!(pods[0]["spec"]["nodeName"], s.node_name().as_str());
    let ds = ns.get("ds/agent");
    assert_eq!(ds["status"]["desiredNumberScheduled"], 1, "{ds:#}");
    assert_eq!(ds["status"]["numberAvailable"], 1, "{ds:#}");

    ns.kubectl(["set", "env", "ds/agent", "V=2"]).ok();
    rollout_status(&ns, "ds/agent");
    wait_for(&ns, "ds/agent", "the new pod available", |d| {
        d["status"]["updatedNumberScheduled"] == 1 && d["status"]["numberAvailable"] == 1
    });
    let out = ns.kubectl(["rollout", "undo", "ds/agent"]).ok();
    assert_eq!(out.trim(), "daemonset.apps/agent rolled back");
    rollout_status(&ns, "ds/agent");
    let history = ns.kubectl(["rollout", "history", "ds/agent"]).ok();
    assert!(
        history
            .lines()
            .any(|l| l.split_whitespace().next() == Some("3")),
        "{history}"
    );
}
