//! NetworkPolicy with the real kubectl against the real node: pods that a policy isolates
//! take (and make) only the connections its rules allow, enforced in the kernel.

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::pods::{running, wait_for};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: db}}
spec:
  containers:
  - name: httpd
    image: busybox:1.36
    command: ["sh", "-c", "mkdir /www; echo db > /www/index.html; exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: friend, labels: {role: friend}}
spec:
  containers: [{name: c, image: busybox:1.36, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: stranger}
spec:
  containers: [{name: c, image: busybox:1.36, command: ["sleep", "3600"]}]
"#;

/// Whether pod `from` gets the server's page (busybox's wget, bounded by `timeout`).
fn reaches(ns: &Namespace<'_>, from: &str, ip: &str) -> bool {
    let url = format!("http://{ip}:8080/");
    let out = ns
        .kubectl(["exec", from, "--", "timeout", "3", "wget", "-qO-", &url])
        .run();
    out.success() && out.stdout.trim() == "db"
}

/// Waits until `from` reaching the server is `want` (policies apply within a moment).
#[track_caller]
fn until_reaches(ns: &Namespace<'_>, from: &str, ip: &str, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reaches(ns, from, ip) != want {
        assert!(
            Instant::now() < deadline,
            "{from} {} the server",
            if want {
                "cannot reach"
            } else {
                "still reaches"
            }
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn network_policies_deny_and_allow_in_the_kernel() {
    let s = Server::node();
    let ns = s.namespace("netpol");
    ns.apply(PODS);
    let server = wait_for(&ns, "pod/server", "running", running);
    for pod in ["pod/friend", "pod/stranger"] {
        wait_for(&ns, pod, "running", running);
    }
    let ip = server["status"]["podIP"].as_str().unwrap().to_string();
    until_reaches(&ns, "friend", &ip, true);
    assert!(reaches(&ns, "stranger", &ip), "open before any policy");

    // Default deny for every pod of the namespace.
    ns.apply(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n",
    );
    until_reaches(&ns, "friend", &ip, false);
    assert!(!reaches(&ns, "stranger", &ip));

    // Friends may reach the server's named port.
    ns.apply(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: friends}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {role: friend}}}]\n    ports: [{port: http}]\n",
    );
    until_reaches(&ns, "friend", &ip, true);
    assert!(!reaches(&ns, "stranger", &ip), "not a friend");

    // Egress: the friend may send nothing at all.
    ns.apply(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: quiet}\nspec:\n  podSelector: {matchLabels: {role: friend}}\n  policyTypes: [Egress]\n",
    );
    until_reaches(&ns, "friend", &ip, false);

    // Policies gone: open again.
    ns.kubectl(["delete", "networkpolicy", "--all"]).ok();
    until_reaches(&ns, "friend", &ip, true);
    until_reaches(&ns, "stranger", &ip, true);
}
