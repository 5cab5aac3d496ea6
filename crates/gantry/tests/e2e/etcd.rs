//! Gantry over a real etcd (Debian's `etcd-server`): several API servers
//! over one etcd serve one cluster (one CA, one token signing key, one
//! sequence of resource versions), and resource versions etcd has
//! compacted away are refused with 410 as Kubernetes refuses them.

use std::time::Duration;

use crate::harness::*;

/// Compacts etcd's history up to `revision`, as kube-apiserver does every
/// few minutes (Gantry's embedded store is never compacted by the server).
fn compact(spec: &str, revision: i64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = store::open(&store::StoreSpec::parse(spec).unwrap())
            .await
            .unwrap();
        store.compact(revision).await.unwrap();
    });
}

fn rv(obj: &serde_json::Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn two_servers_over_one_etcd_are_one_cluster() {
    let etcd = testkit::EtcdServer::start().expect("starting etcd");
    let a = Server::start_with(Options {
        store: Some(etcd.spec()),
        ..Options::default()
    });
    // Separate data directories: the CA comes from the store.
    let b = Server::start_with(Options {
        store: Some(etcd.spec()),
        ..Options::default()
    });
    assert_ne!(a.addr(), b.addr());
    assert_eq!(a.ca_pem(), b.ca_pem(), "one cluster, one CA");
    let ns = a.namespace("shared");
    let on_b = |args: &[&str]| b.kubectl(["-n", &ns.name]).args(args);

    // A watch through b sees what is written through a.
    let mut watch = on_b(&["get", "cm", "-w", "-o", "name"]).spawn();
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: {k: a}\n");
    watch.expect_line(WAIT, |l| l == "configmap/one");
    // And the other way round, with one sequence of versions.
    on_b(&["patch", "cm", "one", "-p", r#"{"data":{"k":"b"}}"#]).ok();
    let seen_by_a = ns.get("cm/one");
    assert_eq!(seen_by_a["data"]["k"], "b");
    let seen_by_b = json(&on_b(&["get", "cm", "one", "-o", "json"]).ok());
    assert_eq!(seen_by_a, seen_by_b);
    // Optimistic concurrency holds across servers.
    let mut stale = seen_by_a.clone();
    ns.kubectl(["annotate", "cm", "one", "by=a"]).ok();
    stale["data"]["k"] = "c".into();
    let err = on_b(&["replace", "-f", "-"])
        .stdin(stale.to_string())
        .fails();
    assert!(err.contains("the object has been modified"), "{err}");

    // A service account token one server issues, the other accepts.
    ns.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot}\n");
    let r = a.request(
        Request::new(
            "POST",
            &format!("/api/v1/namespaces/{}/serviceaccounts/robot/token", ns.name),
        )
        .body(
            "application/json",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}"#,
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let token = Auth::Bearer(r.json()["status"]["token"].as_str().unwrap().to_owned());
    let r = b.request_as(&token, Request::new("GET", "/api/v1/namespaces"));
    assert_eq!(r.status, 200, "{}", r.text());

    // One server going away leaves the cluster to the other.
    a.stop();
    let out = on_b(&[
        "get",
        "cm",
        "one",
        "-o",
        "jsonpath={.metadata.annotations.by}",
    ])
    .ok();
    assert_eq!(out, "a");
}

#[test]
fn compacted_resource_versions_are_gone() {
    let etcd = testkit::EtcdServer::start().expect("starting etcd");
    let s = Server::start_with(Options {
        store: Some(etcd.spec()),
        ..Options::default()
    });
    let ns = s.namespace("compacted");
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {v: '1'}\n");
    let old = rv(&ns.get("cm/c"));
    for v in 2..=4 {
        ns.kubectl([
            "patch",
            "cm",
            "c",
            "-p",
            &format!(r#"{{"data":{{"v":"{v}"}}}}"#),
        ])
        .ok();
    }
    let current = rv(&ns.get("cm/c"));
    compact(&etcd.spec(), current);

    // A watch from before the compaction: one ERROR event, 410 Expired.
    let base = format!("/api/v1/namespaces/{}/configmaps", ns.name);
    let r = s.request(Request::new(
        "GET",
        &format!("{base}?watch=true&resourceVersion={old}&timeoutSeconds=5"),
    ));
    assert_eq!(r.status, 200);
    let events: Vec<serde_json::Value> = r.text().lines().map(json).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
    assert_eq!(
        events[0]["object"]["message"],
        format!("too old resource version: {old} ({current})")
    );
    // A list at an exact compacted version: 410.
    let r = s.request(Request::new(
        "GET",
        &format!("{base}?resourceVersion={old}&resourceVersionMatch=Exact"),
    ));
    assert_eq!(r.status, 410, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "The resourceVersion for the provided list is too old."
    );
    // From the compaction point on, everything works.
    let r = s.request(Request::new(
        "GET",
        &format!("{base}?watch=true&resourceVersion={current}&timeoutSeconds=1"),
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "", "no events after the current version");
    let mut watch = ns.kubectl(["get", "cm", "-w", "-o", "name"]).spawn();
    watch.expect_line(WAIT, |l| l == "configmap/c");
    ns.kubectl(["delete", "cm", "c"]).ok();
    watch.expect_line(Duration::from_secs(10), |l| l == "configmap/c");
}

/// The holder of a Lease in kube-system, as kubectl shows it.
fn holder(s: &Server, lease: &str) -> String {
    s.kubectl([
        "-n",
        "kube-system",
        "get",
        "lease",
        lease,
        "-o",
        "jsonpath={.spec.holderIdentity}",
        "--ignore-not-found",
    ])
    .ok()
}

#[test]
fn one_server_leads_the_controllers_and_a_killed_leader_hands_over() {
    let etcd = testkit::EtcdServer::start().expect("starting etcd");
    let start = || {
        Server::start_with(Options {
            store: Some(etcd.spec()),
            controllers: true,
            ..Options::default()
        })
    };
    let servers = [start(), start()];
    let port_of = |h: &str| -> Option<usize> {
        servers
            .iter()
            .position(|s| h.contains(&format!("_{}_", s.addr().port())))
    };
    // One leader for each Lease, one of the two servers.
    let deadline = std::time::Instant::now() + WAIT;
    let leader = loop {
        let h = holder(&servers[0], "kube-controller-manager");
        if let Some(i) = port_of(&h) {
            break i;
        }
        assert!(std::time::Instant::now() < deadline, "no leader: {h:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let other = 1 - leader;
    let ns = servers[other].namespace("elected");
    let rs = |name: &str| {
        format!(
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: {name}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: busybox:1.36}}]}}\n"
        )
    };
    let pods_of = |name: &str| -> usize {
        ns.get("pods")["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == name)
            .count()
    };
    ns.apply(&rs("before"));
    let deadline = std::time::Instant::now() + WAIT;
    while pods_of("before") < 2 {
        assert!(std::time::Instant::now() < deadline, "no pods made");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The leader dies without giving its Leases up: the other server takes
    // them within 15 s and its controllers act.
    servers[leader].kill();
    let killed = std::time::Instant::now();
    ns.apply(&rs("after"));
    loop {
        let taken = port_of(&holder(&servers[other], "kube-controller-manager")) == Some(other)
            && port_of(&holder(&servers[other], "kube-scheduler")) == Some(other);
        if taken && pods_of("after") == 2 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "no handover within 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("handover took {:?}", killed.elapsed());
}
