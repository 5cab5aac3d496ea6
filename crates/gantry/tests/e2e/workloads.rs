//! StatefulSets and DaemonSets on a `gantry up` node, driven by kubectl:
//! they roll out, `kubectl rollout status|history|undo` work on them, and
//! a stateful pod deleted comes back under its name.

use serde_json::Value;

use crate::harness::*;
use crate::pods::{live, running, wait_for};

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

const DB: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 1
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 1
      securityContext: {runAsUser: 1000}
      containers:
      - name: c
        image: busybox:1.36
        command: [sh, -c, "test -f /data/first || cat /proc/sys/kernel/random/uuid > /data/first; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 64Mi}}
"#;

/// Issue 5's volumeClaimTemplates end to end: the claim gets the default class, the
/// scheduler names the node, the local-path provisioner makes a volume there, the pod
/// (not root) writes to it, and the pod made again after a delete finds what it wrote.
#[test]
fn a_statefulsets_claim_gets_a_local_volume_that_outlives_its_pod() {
    let s = Server::node();
    let ns = s.namespace("volumes");
    ns.apply(DB);
    rollout_status(&ns, "sts/db");
    let claim = ns.get("pvc/data-db-0");
    assert_eq!(claim["status"]["phase"], "Bound", "{claim:#}");
    assert_eq!(claim["spec"]["storageClassName"], "local-path");
    assert_eq!(
        claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        s.node_name().as_str()
    );
    let volume = claim["spec"]["volumeName"].as_str().unwrap().to_owned();
    let pv = json(&s.kubectl(["get", "pv", &volume, "-o", "json"]).ok());
    assert_eq!(pv["status"]["phase"], "Bound");
    assert_eq!(pv["spec"]["claimRef"]["uid"], claim["metadata"]["uid"]);
    let path = std::path::PathBuf::from(pv["spec"]["hostPath"]["path"].as_str().unwrap());
    assert!(path.starts_with(s.data_dir()), "{}", path.display());
    let table = ns.kubectl(["get", "pvc", "data-db-0"]).ok();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..5],
        ["data-db-0", "Bound", volume.as_str(), "64Mi", "RWO"],
        "{table}"
    );

    let first = ns
        .kubectl(["exec", "db-0", "--", "cat", "/data/first"])
        .ok();
    assert_eq!(first.trim().len(), 36, "{first:?}");
    assert_eq!(std::fs::read_to_string(path.join("first")).unwrap(), first);

    // The pod made again under its name mounts the same volume.
    let old_uid = ns.get("pod/db-0")["metadata"]["uid"].clone();
    ns.kubectl(["delete", "pod", "db-0", "--timeout=60s"]).ok();
    wait_for(&ns, "pod/db-0", "db-0 made again and running", |p| {
        p["metadata"]["uid"] != old_uid && running(p)
    });
    let again = ns
        .kubectl(["exec", "db-0", "--", "cat", "/data/first"])
        .ok();
    assert_eq!(again, first);

    // The set and its claim gone, the volume goes too (the class's policy is Delete), and
    // the node removes its directory.
    ns.kubectl(["delete", "sts", "db", "--timeout=60s"]).ok();
    ns.kubectl(["delete", "pvc", "data-db-0", "--timeout=60s"])
        .ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s
        .kubectl(["get", "pv", &volume, "--ignore-not-found", "-o", "name"])
        .ok()
        .trim()
        != ""
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{volume} was not deleted"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    while path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} is left",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
