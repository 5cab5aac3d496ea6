//! Policy on a `gantry up` node (issue 5), driven by kubectl: a PodDisruptionBudget holds
//! `kubectl drain` back, and a ResourceQuota refuses what would overrun it with 403.

use serde_json::Value;

use crate::harness::*;
use crate::pods::{live, running, wait_for};

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
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
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: web}
"#;

#[test]
fn a_drain_stops_at_the_disruption_budget_and_a_quota_refuses_with_403() {
    let s = Server::node();
    let ns = s.namespace("policy");
    ns.apply(WEB);
    ns.kubectl(["rollout", "status", "deploy/web", "--timeout=90s"])
        .ok();
    wait_for(&ns, "pdb/web", "one disruption allowed", |p| {
        p["status"]["disruptionsAllowed"] == 1 && p["status"]["currentHealthy"] == 2
    });

    // The node is cordoned and one pod evicted; the other would break the budget (its
    // replacement has nowhere to go), so the drain retries until its timeout.
    let node = s.node_name();
    let err = ns
        .kubectl([
            "drain",
            &node,
            "--pod-selector=app=web",
            "--ignore-daemonsets",
            "--timeout=12s",
        ])
        .fails();
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{err}"
    );
    assert!(err.contains("global timeout reached: 12s"), "{err}");
    let cordoned = s
        .kubectl(["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"])
        .ok();
    assert_eq!(cordoned, "true");
    let pods = live(&ns, "web");
    let (up, waiting): (Vec<&Value>, Vec<&Value>) = pods.iter().partition(|p| running(p));
    assert_eq!((up.len(), waiting.len()), (1, 1), "{pods:#?}");
    assert!(waiting[0]["spec"]["nodeName"].is_null(), "{:#}", waiting[0]);
    let events = ns.kubectl(["get", "events", "-o", "json"]).ok();
    assert!(
        events.contains("node(s) were unschedulable"),
        "no FailedScheduling for the cordoned node: {events}"
    );

    // Uncordoned, the replacement is placed and the Deployment is whole again.
    s.kubectl(["uncordon", &node]).ok();
    wait_for(&ns, "deploy/web", "2 ready replicas again", |d| {
        d["status"]["readyReplicas"] == 2
    });

    // A quota of 3 pods: the Deployment's 2 count, one more fits, the next is refused.
    ns.kubectl(["create", "quota", "pods", "--hard=pods=3"])
        .ok();
    wait_for(&ns, "quota/pods", "the pods counted", |q| {
        q["status"]["used"]["pods"] == "2"
    });
    ns.kubectl([
        "run",
        "third",
        "--image=busybox:1.36",
        "--",
        "sleep",
        "3600",
    ])
    .ok();
    let err = ns
        .kubectl([
            "run",
            "fourth",
            "--image=busybox:1.36",
            "--",
            "sleep",
            "3600",
        ])
        .fails();
    assert!(
        err.contains("(Forbidden)")
            && err
                .contains("exceeded quota: pods, requested: pods=1, used: pods=3, limited: pods=3"),
        "{err}"
    );
}
