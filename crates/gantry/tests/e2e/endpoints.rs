//! Endpoints and EndpointSlices on a `gantry up` node (issue 5): a Service
//! selecting a ReplicaSet's pods lists their IPs, as kubectl shows them.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::*;
use crate::pods::wait_for;

const WEB: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
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
      - name: httpd
        image: busybox:1.36
        command: [sh, -c, 'echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp']
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
"#;

/// The IPs of the ReplicaSet's pods that are ready and not being deleted.
fn ready_pod_ips(ns: &Namespace<'_>) -> BTreeSet<String> {
    ns.get("pods")["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
        .collect()
}

/// The ready `ip:port` pairs the Endpoints object lists.
fn listed(ep: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for s in ep["subsets"].as_array().into_iter().flatten() {
        for port in s["ports"].as_array().into_iter().flatten() {
            for a in s["addresses"].as_array().into_iter().flatten() {
                found.insert(format!("{}:{}", a["ip"].as_str().unwrap(), port["port"]));
            }
        }
    }
    found
}

fn with_port(ips: &BTreeSet<String>) -> BTreeSet<String> {
    ips.iter().map(|ip| format!("{ip}:8080")).collect()
}

#[test]
fn a_service_lists_the_pods_it_selects() {
    let s = Server::node();
    let ns = s.namespace("endpoints");
    let out = ns.apply(WEB);
    assert!(out.contains("service/web created"), "{out}");
    wait_for(&ns, "rs/web", "2 ready replicas", |r| {
        r["status"]["readyReplicas"] == 2
    });
    let ips = ready_pod_ips(&ns);
    assert_eq!(ips.len(), 2, "{ips:?}");
    wait_for(&ns, "endpoints/web", "both pods listed", |ep| {
        listed(ep) == with_port(&ips)
    });

    // kubectl's table shows both, each on the named target port's number.
    let table = Table::parse(&ns.kubectl(["get", "endpoints", "web"]).ok());
    let cell: BTreeSet<String> = table
        .cell("web", "ENDPOINTS")
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(cell, with_port(&ips));

    let out = ns
        .kubectl([
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ])
        .ok();
    let table = Table::parse(&out);
    assert_eq!(table.rows.len(), 1, "one slice:\n{out}");
    let name = table.rows[0][table.column("NAME")].clone();
    assert!(name.starts_with("web-"), "{out}");
    assert_eq!(table.cell(&name, "ADDRESSTYPE"), "IPv4");
    assert_eq!(table.cell(&name, "PORTS"), "8080");
    let addresses: BTreeSet<String> = table
        .cell(&name, "ENDPOINTS")
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(addresses, ips);

    // Scaled to one: one address left.
    ns.kubectl(["scale", "rs/web", "--replicas=1"]).ok();
    wait_for(&ns, "endpoints/web", "one pod listed", |ep| {
        listed(ep).len() == 1
    });
    let left = ready_pod_ips(&ns);
    let ep = ns.get("endpoints/web");
    assert_eq!(listed(&ep), with_port(&left));
    let described = ns.kubectl(["describe", "svc", "web"]).ok();
    let line = described
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_else(|| panic!("no Endpoints line:\n{described}"));
    let shown: BTreeSet<String> = line["Endpoints:".len()..]
        .trim()
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(shown, with_port(&left), "{described}");

    // The Service deleted takes its Endpoints and slices with it.
    ns.kubectl(["delete", "svc", "web"]).ok();
    let slice = format!("endpointslice/{name}");
    for what in ["endpoints/web", slice.as_str()] {
        ns.kubectl(["wait", "--for=delete", what, "--timeout=60s"])
            .ok();
    }
    let left = ns
        .kubectl([
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "name",
        ])
        .ok();
    assert_eq!(left.trim(), "", "slices left: {left}");
    ns.kubectl(["delete", "rs", "web"]).ok();
    ns.kubectl(["delete", "pods", "-l", "app=web", "--wait=false"])
        .ok();
}
