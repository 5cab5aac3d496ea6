//! Controllers on a `gantry up` node (issue 5): what kubectl applies is kept
//! running by them. So far: ReplicaSets and Deployments.

use serde_json::Value;

use crate::harness::*;
use crate::pods::{live, running, wait_for};

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

/// The ReplicaSet's pods that are not being deleted.
fn live_pods(ns: &Namespace<'_>) -> Vec<Value> {
    live(ns, "sleepers")
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

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  progressDeadlineSeconds: 8
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

/// `kubectl rollout status` until it says the rollout finished.
fn rolled_out(ns: &Namespace<'_>) {
    let out = ns
        .kubectl(["rollout", "status", "deploy/web", "--timeout=50s"])
        .ok();
    assert!(
        out.trim_end()
            .ends_with("deployment \"web\" successfully rolled out"),
        "{out}"
    );
}

/// The `V` environment variable of the running pods' template, per pod.
fn versions(ns: &Namespace<'_>) -> Vec<String> {
    ns.get("pods")["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            p["spec"]["containers"][0]["env"][0]["value"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        })
        .collect()
}

#[test]
fn a_deployment_rolls_out_updates_rolls_back_and_stalls_on_a_bad_image() {
    let s = Server::node();
    let ns = s.namespace("deploy");
    assert_eq!(ns.apply(WEB).trim(), "deployment.apps/web created");
    rolled_out(&ns);
    let table = ns.kubectl(["get", "deploy", "web"]).ok();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "3/3", "3", "3"], "{table}");
    let rs = ns.get("rs")["items"][0].clone();
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert!(pods_running(&ns, 3), "{:#}", ns.get("pods")["items"]);

    // A change to the template rolls out as revision 2.
    ns.kubectl(["set", "env", "deploy/web", "V=2"]).ok();
    ns.kubectl([
        "annotate",
        "deploy/web",
        "kubernetes.io/change-cause=set V=2",
    ])
    .ok();
    rolled_out(&ns);
    assert_eq!(versions(&ns), ["2", "2", "2"]);
    let history = ns.kubectl(["rollout", "history", "deploy/web"]).ok();
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].starts_with("deployment.apps/web"), "{history}");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().eq(["1", "<none>"])),
        "{history}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().eq(["2", "set", "V=2"])),
        "{history}"
    );

    // Undo puts revision 1's template back, as revision 3.
    let out = ns.kubectl(["rollout", "undo", "deploy/web"]).ok();
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    rolled_out(&ns);
    assert_eq!(versions(&ns), ["none", "none", "none"]);
    let d = ns.get("deploy/web");
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    // Paused: a change waits for resume; restart makes a new revision.
    ns.kubectl(["rollout", "pause", "deploy/web"]).ok();
    ns.kubectl(["set", "env", "deploy/web", "V=4"]).ok();
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(versions(&ns), ["none", "none", "none"]);
    ns.kubectl(["rollout", "resume", "deploy/web"]).ok();
    rolled_out(&ns);
    assert_eq!(versions(&ns), ["4", "4", "4"]);
    ns.kubectl(["rollout", "restart", "deploy/web"]).ok();
    rolled_out(&ns);
    let d = ns.get("deploy/web");
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "5"
    );

    // An image that cannot be pulled: the rollout stalls past its deadline
    // and the running pods stay (25% of 3 rounds down to none unavailable).
    ns.kubectl(["set", "image", "deploy/web", "c=gantry.invalid/none:1"])
        .ok();
    let out = ns
        .kubectl(["rollout", "status", "deploy/web", "--timeout=50s"])
        .run();
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains("exceeded its progress deadline"),
        "{out}"
    );
    let d = ns.get("deploy/web");
    assert_eq!(d["status"]["availableReplicas"], 3, "{d:#}");
    assert!(pods_running(&ns, 3));
    let described = ns.kubectl(["describe", "deploy", "web"]).ok();
    for want in [
        "ProgressDeadlineExceeded",
        "ScalingReplicaSet",
        "Scaled up replica set web-",
    ] {
        assert!(described.contains(want), "{want} missing:\n{described}");
    }
}

/// Whether at least `n` pods of the Deployment run with the current or an
/// earlier template.
fn pods_running(ns: &Namespace<'_>, n: usize) -> bool {
    ns.get("pods")["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .filter(|p| running(p))
        .count()
        >= n
}
