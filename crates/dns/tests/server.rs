//! The DNS server on loopback, fed records directly (no API server), asked
//! real queries over UDP and TCP; other names go to a fake upstream on
//! another loopback port that records what it is asked.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dns::{Objects, Records, Server, ServerConfig};
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A stand-in for the host's resolver: `*.example.test` A 192.0.2.1,
/// `big.example.test` truncated over UDP and 40 addresses over TCP,
/// NXDOMAIN for anything else. It keeps the names it was asked.
struct Upstream {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn upstream_answer(query: &Message, tcp: bool) -> Message {
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    let q = query.queries[0].clone();
    let name = q.name().to_ascii().to_lowercase();
    m.add_query(q.clone());
    if name == "big.example.test." && !tcp {
        m.metadata.truncation = true;
    } else if name == "big.example.test." {
        for i in 0..40u8 {
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                60,
                RData::A(A::new(192, 0, 2, i)),
            ));
        }
    } else if name.ends_with("example.test.") && q.query_type() == RecordType::A {
        m.add_answer(Record::from_rdata(
            q.name().clone(),
            60,
            RData::A(A::new(192, 0, 2, 1)),
        ));
    } else if !name.ends_with("example.test.") {
        m.metadata.response_code = ResponseCode::NXDomain;
    }
    m
}

async fn upstream() -> Upstream {
    // One port for both: UDP's pick may have its TCP twin taken.
    let (udp, tcp) = dns::bind_pair(([127, 0, 0, 1], 0).into()).unwrap();
    let udp = UdpSocket::from_std(udp).unwrap();
    let tcp = TcpListener::from_std(tcp).unwrap();
    let addr = udp.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&asked);
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_bytes(&buf[..n]) else {
                continue;
            };
            seen.lock().unwrap().push(q.queries[0].name().to_ascii());
            let a = upstream_answer(&q, false);
            let _ = udp.send_to(&a.to_vec().unwrap(), from).await;
        }
    });
    let tcp_task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = tcp.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(len) = s.read_u16().await else { return };
                let mut buf = vec![0u8; usize::from(len)];
                if s.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let q = Message::from_bytes(&buf).unwrap();
                let a = upstream_answer(&q, true).to_vec().unwrap();
                let mut out = (a.len() as u16).to_be_bytes().to_vec();
                out.extend(a);
                let _ = s.write_all(&out).await;
            });
        }
    });
    Upstream {
        addr,
        asked,
        tasks: vec![udp_task, tcp_task],
    }
}

fn query(name: &str, t: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m
}

async fn ask_udp(server: SocketAddr, q: &Message) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket.send(&q.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let m = Message::from_bytes(&buf[..n]).unwrap();
    assert_eq!(m.metadata.id, q.metadata.id);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    m
}

async fn ask(server: SocketAddr, name: &str, t: RecordType) -> Message {
    ask_udp(server, &query(name, t)).await
}

async fn ask_tcp(server: SocketAddr, name: &str, t: RecordType) -> Message {
    let q = query(name, t).to_vec().unwrap();
    let mut s = TcpStream::connect(server).await.unwrap();
    let mut out = (q.len() as u16).to_be_bytes().to_vec();
    out.extend(q);
    s.write_all(&out).await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(5), s.read_u16())
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_bytes(&buf).unwrap()
}

fn addresses(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn objects() -> (Vec<Service>, Vec<EndpointSlice>) {
    let services = vec![
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {
            "clusterIP": "10.96.3.4", "ports": [{"name": "http", "port": 80}]}}),
        )
        .unwrap(),
        serde_json::from_value(
            json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {
            "clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
        )
        .unwrap(),
        serde_json::from_value(
            json!({"metadata": {"name": "ext", "namespace": "shop"}, "spec": {
            "type": "ExternalName", "externalName": "www.example.test"}}),
        )
        .unwrap(),
    ];
    let slices = vec![
        serde_json::from_value(json!({"metadata": {"name": "db-1", "namespace": "shop",
            "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.0.7"], "hostname": "db-0"},
            {"addresses": ["10.244.0.8"], "hostname": "db-1"}
        ]}))
        .unwrap(),
    ];
    (services, slices)
}

fn records(services: &[Service], slices: &[EndpointSlice]) -> Records {
    let services: Vec<&Service> = services.iter().collect();
    let slices: Vec<&EndpointSlice> = slices.iter().collect();
    Records::build(
        &Name::from_ascii("cluster.local").unwrap(),
        5,
        1,
        Objects {
            services: &services,
            slices: &slices,
            namespaces: &["shop"],
        },
    )
}

/// A server on loopback forwarding to `upstream`, with the test objects.
async fn server(upstream: &Upstream) -> Server {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.upstreams = Some(vec![upstream.addr]);
    let server = Server::start(config).await.unwrap();
    let (services, slices) = objects();
    server.records().replace(records(&services, &slices));
    server
}

#[tokio::test]
async fn answers_service_names_authoritatively() {
    let up = upstream().await;
    let s = server(&up).await;
    let at = s.local_addrs()[0];

    let m = ask(at, "web.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative, "cluster names are ours: AA");
    assert!(m.metadata.recursion_available, "we forward: RA");
    assert_eq!(addresses(&m), ["10.96.3.4"]);
    assert_eq!(m.answers[0].ttl, 5);

    // Over TCP too, and whatever the case of the question.
    let m = ask_tcp(at, "Web.SHOP.svc.Cluster.Local.", RecordType::A).await;
    assert_eq!(addresses(&m), ["10.96.3.4"]);

    // A headless Service: its endpoints, their names and SRV records with
    // the addresses in the additional section.
    let m = ask(at, "db.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addresses(&m), ["10.244.0.7", "10.244.0.8"]);
    let m = ask(at, "_pg._tcp.db.shop.svc.cluster.local.", RecordType::SRV).await;
    let mut targets: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some(format!("{} {}", s.port, s.target)),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "5432 db-0.db.shop.svc.cluster.local.",
            "5432 db-1.db.shop.svc.cluster.local."
        ]
    );
    assert_eq!(m.additionals.len(), 2, "{m:?}");
    let m = ask(at, "8.0.244.10.in-addr.arpa.", RecordType::PTR).await;
    assert!(m.metadata.authoritative);
    assert_eq!(
        m.answers[0].data.to_string(),
        "db-1.db.shop.svc.cluster.local."
    );
    assert!(
        up.asked.lock().unwrap().is_empty(),
        "no cluster name went upstream"
    );
}

#[tokio::test]
async fn negative_answers_carry_the_soa() {
    let up = upstream().await;
    let s = server(&up).await;
    let at = s.local_addrs()[0];

    let m = ask(at, "nope.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities[0].name.to_ascii(), "cluster.local.");

    // The cluster is IPv4: AAAA of a Service is no data, not no name.
    let m = ask(at, "web.shop.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert!(up.asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn forwards_other_names_upstream() {
    let up = upstream().await;
    let s = server(&up).await;
    let at = s.local_addrs()[0];

    let m = ask(at, "www.example.test.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.authoritative, "forwarded answers are not ours");
    assert_eq!(addresses(&m), ["192.0.2.1"]);
    assert_eq!(m.answers[0].ttl, 60, "the upstream's TTL is kept");
    // The upstream's NXDOMAIN comes back as it was.
    let m = ask(at, "nowhere.invalid.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        *up.asked.lock().unwrap(),
        ["www.example.test.", "nowhere.invalid."]
    );
    // A PTR outside the cluster's addresses goes upstream too.
    ask(at, "1.2.0.192.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(up.asked.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn truncated_upstream_answers_are_fetched_over_tcp() {
    let up = upstream().await;
    let s = server(&up).await;
    let at = s.local_addrs()[0];

    // Over TCP the client gets all 40 addresses the upstream gave over TCP.
    let m = ask_tcp(at, "big.example.test.", RecordType::A).await;
    assert_eq!(m.answers.len(), 40);
    // Over UDP with EDNS (1232 bytes) they fit too.
    let mut q = query("big.example.test.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    q.set_edns(edns);
    let m = ask_udp(at, &q).await;
    assert_eq!(m.answers.len(), 40);
    assert!(!m.metadata.truncation);
    assert!(m.edns.is_some(), "an EDNS query gets an EDNS answer");
    // Plain UDP (512 bytes) cannot hold them: truncated, so the client
    // retries over TCP.
    let m = ask(at, "big.example.test.", RecordType::A).await;
    assert!(m.metadata.truncation);
    assert!(m.answers.len() < 40);
}

#[tokio::test]
async fn external_names_are_aliases_followed_upstream() {
    let up = upstream().await;
    let s = server(&up).await;
    let at = s.local_addrs()[0];

    let m = ask(at, "ext.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(m.answers[0].data.to_string(), "www.example.test.");
    assert_eq!(addresses(&m), ["192.0.2.1"]);
    assert_eq!(*up.asked.lock().unwrap(), ["www.example.test."]);
}

#[tokio::test]
async fn a_change_is_answered_at_once() {
    let up = upstream().await;
    let s = server(&up).await;
    let at = s.local_addrs()[0];
    let (mut services, slices) = objects();
    services[0] = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "10.96.9.9"}}))
    .unwrap();
    s.records().replace(records(&services, &slices));
    let m = ask(at, "web.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addresses(&m), ["10.96.9.9"]);
}

#[tokio::test]
async fn unsynced_cluster_names_fail_and_others_still_forward() {
    let up = upstream().await;
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.upstreams = Some(vec![up.addr]);
    let s = Server::start(config).await.unwrap();
    let at = s.local_addrs()[0];
    let m = ask(at, "web.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let m = ask(at, "www.example.test.", RecordType::A).await;
    assert_eq!(addresses(&m), ["192.0.2.1"]);
}

#[tokio::test]
async fn never_forwards_to_itself() {
    // Listen on a port picked free and name the same address as the only
    // upstream: it is dropped, and outside names fail at once instead of
    // looping. The port is free for UDP when picked but its TCP twin may be
    // taken (or another test may take it first), so try a few.
    let (me, s) = 'pick: {
        for _ in 0..20 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .await
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let me: SocketAddr = ([127, 0, 0, 1], port).into();
            let mut config = ServerConfig::new(me);
            config.upstreams = Some(vec![me]);
            match Server::start(config).await {
                Ok(s) => break 'pick (me, s),
                Err(dns::DnsError::Bind(..)) => continue,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("no free port for both UDP and TCP in 20 tries");
    };
    assert!(s.upstreams().is_empty());
    let started = Instant::now();
    let m = ask(me, "www.example.test.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_silent_upstream_is_skipped_for_the_next() {
    let up = upstream().await;
    // Bound but never read: queries to it time out.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.upstreams = Some(vec![silent.local_addr().unwrap(), up.addr]);
    let s = Server::start(config).await.unwrap();
    let m = ask(s.local_addrs()[0], "www.example.test.", RecordType::A).await;
    assert_eq!(addresses(&m), ["192.0.2.1"]);
}
