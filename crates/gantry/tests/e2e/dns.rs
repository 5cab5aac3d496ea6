//! Cluster DNS on the real binary (issue 6): the `kube-system/kube-dns`
//! Service, the EndpointSlice the server keeps for it, and Service names
//! answered at the address that slice names, where the Service proxy sends
//! pods' queries.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use serde_json::Value;

use crate::harness::*;

fn ask(server: SocketAddr, name: &str) -> Message {
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    socket.send_to(&q.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).expect("a DNS answer within 5 s");
    Message::from_bytes(&buf[..n]).unwrap()
}

fn addresses(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

/// Asks until `done` holds of the answer, for at most 10 s.
fn until(server: SocketAddr, name: &str, done: impl Fn(&Message) -> bool) -> Message {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = ask(server, name);
        if done(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{name}: still {m:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the kube-dns EndpointSlice says the server listens (UDP).
fn dns_endpoint(server: &Server) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = server
            .kubectl([
                "get",
                "endpointslices",
                "-n",
                "kube-system",
                "-l",
                "kubernetes.io/service-name=kube-dns",
                "-o",
                "json",
            ])
            .ok();
        let v: Value = serde_json::from_str(&out).unwrap();
        if let Some(slice) = v["items"].as_array().and_then(|i| i.first()) {
            assert_eq!(
                slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
                "gantry"
            );
            let ip = slice["endpoints"][0]["addresses"][0].as_str().unwrap();
            let port = slice["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "dns" && p["protocol"] == "UDP")
                .and_then(|p| p["port"].as_u64())
                .expect("a dns port");
            return SocketAddr::new(ip.parse().unwrap(), port as u16);
        }
        assert!(
            Instant::now() < deadline,
            "no kube-dns EndpointSlice; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn service_names_are_answered_where_the_kube_dns_slice_points() {
    let server = Server::shared();
    let out = server
        .kubectl([
            "get",
            "service",
            "kube-dns",
            "-n",
            "kube-system",
            "-o",
            "json",
        ])
        .ok();
    let svc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(svc["metadata"]["labels"]["k8s-app"], "kube-dns");

    let at = dns_endpoint(server);
    until(at, "kubernetes.default.svc.cluster.local.", |m| {
        addresses(m) == ["10.96.0.1"]
    });
    let ns = server.namespace("dns");
    ns.kubectl(["create", "service", "clusterip", "web", "--tcp=80:8080"])
        .ok();
    let ip = ns.get("service/web")["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = until(at, &format!("web.{}.svc.cluster.local.", ns.name), |m| {
        addresses(m) == [ip.clone()]
    });
    assert!(m.metadata.authoritative);
    let m = ask(at, &format!("nope.{}.svc.cluster.local.", ns.name));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn pods_are_given_the_cluster_dns_service() {
    let s = Server::node();
    let ns = s.namespace("dns-pod");
    ns.kubectl([
        "run",
        "resolv",
        "--image=busybox:1.36",
        "--restart=Never",
        "--",
        "cat",
        "/etc/resolv.conf",
    ])
    .ok();
    crate::pods::wait_for(&ns, "pod/resolv", "Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let conf = ns.kubectl(["logs", "resolv"]).ok();
    // The tenth address of this server's own Service range (10.96.0.10 by default).
    let dns = s
        .kubectl([
            "-n",
            "kube-system",
            "get",
            "service",
            "kube-dns",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .ok();
    assert!(dns.ends_with(".10"), "{dns}");
    assert_eq!(
        conf,
        format!(
            "search {0}.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver {dns}\n\
             options ndots:5\n",
            ns.name
        )
    );
}
