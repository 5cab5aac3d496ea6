//! The DNS server following a real API server (in-process, on a fresh
//! embedded store): Services and EndpointSlices made through the API are
//! answered within a second, and the `kube-dns` Service and its
//! EndpointSlice are where a cluster expects them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::net::UdpSocket;

/// An API server on a fresh embedded store in a temporary directory, and an
/// admin client for it. Keep the directory and server alive for the test.
async fn api_server() -> (tempfile::TempDir, apiserver::ApiServer, kube::Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix(&format!("dns-cluster-{}-", std::process::id()))
        .tempdir()
        .unwrap();
    let store = store::open(&store::StoreSpec::Embedded(dir.path().join("store")))
        .await
        .unwrap();
    let config = apiserver::Config::new("127.0.0.1:0".parse().unwrap(), dir.path());
    let server = apiserver::ApiServer::start(config, Arc::clone(&store))
        .await
        .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    (dir, server, kube::Client::try_from(config).unwrap())
}

/// The address this machine's main route leaves from (nothing is sent):
/// EndpointSlices refuse loopback addresses, as Kubernetes' do.
fn machine_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect("192.0.2.1:9").unwrap();
    let ip = socket.local_addr().unwrap().ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "no address but loopback"
    );
    ip
}

/// A DNS server at `at` following the API through `client`.
async fn dns_server_at(
    client: &kube::Client,
    at: SocketAddr,
) -> (dns::Server, tokio::task::JoinHandle<()>) {
    let mut config = dns::ServerConfig::new(at);
    config.upstreams = Some(Vec::new());
    let server = dns::Server::start(config).await.unwrap();
    let follow = tokio::spawn(dns::follow(client.clone(), server.records()));
    (server, follow)
}

/// A DNS server on loopback following the API through `client`.
async fn dns_server(client: &kube::Client) -> (dns::Server, tokio::task::JoinHandle<()>) {
    dns_server_at(client, "127.0.0.1:0".parse().unwrap()).await
}

async fn ask(server: SocketAddr, name: &str, t: RecordType) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    socket.send(&q.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    Message::from_bytes(&buf[..n]).unwrap()
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

/// Asks until `ok` holds of the answer; returns how long that took.
async fn until(
    server: SocketAddr,
    name: &str,
    t: RecordType,
    ok: impl Fn(&Message) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let m = ask(server, name, t).await;
        if ok(&m) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} {t}: still {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn namespace(client: &kube::Client, name: &str) {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn follows_services_and_endpoints_within_a_second() {
    let (_dir, _api, client) = api_server().await;
    let ns = format!("dns-follow-{}", std::process::id());
    namespace(&client, &ns).await;
    let (server, _follow) = dns_server(&client).await;
    let at = server.local_addrs()[0];

    // The bootstrap Service is answered once the first lists are in.
    until(
        at,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
        |m| addresses(m) == ["10.96.0.1"],
    )
    .await;
    let m = ask(at, &format!("web.{ns}.svc.cluster.local."), RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // A new Service: answered within a second of its creation.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let svc = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
                "ports": [{"name": "http", "port": 80}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let ip = svc.spec.unwrap().cluster_ip.unwrap();
    let took = until(
        at,
        &format!("web.{ns}.svc.cluster.local."),
        RecordType::A,
        |m| addresses(m) == [ip.clone()],
    )
    .await;
    assert!(took < Duration::from_secs(1), "a new Service took {took:?}");
    let m = ask(
        at,
        &format!("_http._tcp.web.{ns}.svc.cluster.local."),
        RecordType::SRV,
    )
    .await;
    assert_eq!(m.answers.len(), 1);

    // A headless Service and its endpoints, written as a controller would.
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {
                "clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let slice = |addresses: &[&str]| -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": addresses.iter().enumerate().map(|(i, a)| json!({
                "addresses": [a], "hostname": format!("db-{i}"), "conditions": {"ready": true}
            })).collect::<Vec<_>>()
        }))
        .unwrap()
    };
    slices
        .create(&PostParams::default(), &slice(&["10.244.0.7"]))
        .await
        .unwrap();
    let took = until(
        at,
        &format!("db.{ns}.svc.cluster.local."),
        RecordType::A,
        |m| addresses(m) == ["10.244.0.7"],
    )
    .await;
    assert!(took < Duration::from_secs(1), "new endpoints took {took:?}");

    // An endpoint added: the A records and the pod's own name follow.
    let mut two = slice(&["10.244.0.7", "10.244.1.8"]);
    let current = slices.get("db-1").await.unwrap();
    two.metadata.resource_version = current.metadata.resource_version;
    slices
        .replace("db-1", &PostParams::default(), &two)
        .await
        .unwrap();
    let took = until(
        at,
        &format!("db-1.db.{ns}.svc.cluster.local."),
        RecordType::A,
        |m| addresses(m) == ["10.244.1.8"],
    )
    .await;
    assert!(
        took < Duration::from_secs(1),
        "a changed slice took {took:?}"
    );
    assert_eq!(
        addresses(&ask(at, &format!("db.{ns}.svc.cluster.local."), RecordType::A).await),
        ["10.244.0.7", "10.244.1.8"]
    );

    // Deleted: no such name any more.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let took = until(
        at,
        &format!("web.{ns}.svc.cluster.local."),
        RecordType::A,
        |m| m.metadata.response_code == ResponseCode::NXDomain,
    )
    .await;
    assert!(took < Duration::from_secs(1), "a deletion took {took:?}");
    // The namespace is still there, so its own name has no data but exists.
    let m = ask(at, &format!("{ns}.svc.cluster.local."), RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn kube_dns_service_and_slice() {
    let (_dir, _api, client) = api_server().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let svc = services.get("kube-dns").await.unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    assert!(
        spec.selector.is_none(),
        "its endpoints are written, not selected"
    );
    let ports: Vec<(String, i32, String)> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port, p.protocol.unwrap()))
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".to_owned(), 53, "UDP".to_owned()),
            ("dns-tcp".to_owned(), 53, "TCP".to_owned())
        ]
    );
    assert_eq!(
        svc.metadata
            .labels
            .unwrap()
            .get("k8s-app")
            .map(String::as_str),
        Some("kube-dns")
    );

    // The server's endpoint, written, corrected when changed, removed.
    let (server, _follow) = dns_server_at(&client, SocketAddr::new(machine_address(), 0)).await;
    let local = server.local_addrs()[0];
    let name = format!("kube-dns-test-{}", std::process::id());
    let slice = dns::ServerSlice::kube_dns(name.clone(), local.ip(), local.port(), None);
    slice.apply(&client).await.unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    let got = slices.get(&name).await.unwrap();
    let labels = got.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/service-name"], "kube-dns");
    assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], "gantry");
    assert_eq!(got.endpoints[0].addresses, [local.ip().to_string()]);
    let ports: Vec<(String, i32)> = got
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port.unwrap()))
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".to_owned(), i32::from(local.port())),
            ("dns-tcp".to_owned(), i32::from(local.port()))
        ]
    );
    slices
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"endpoints": [{"addresses": ["10.1.2.3"]}]})),
        )
        .await
        .unwrap();
    let changed = slices.get(&name).await.unwrap();
    assert!(!slice.matches(&changed));
    slice.apply(&client).await.unwrap();
    let got = slices.get(&name).await.unwrap();
    assert_eq!(got.endpoints[0].addresses, [local.ip().to_string()]);
    assert!(slice.matches(&got));

    // Kept: a deleted slice comes back.
    let keeper = tokio::spawn(slice.clone().keep(client.clone()));
    slices
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let started = Instant::now();
    while !slices
        .get_opt(&name)
        .await
        .unwrap()
        .is_some_and(|s| slice.matches(&s))
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the slice did not come back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    keeper.abort();

    // What the slice says is where the server answers: the Service's name
    // through it.
    let m = until(
        local,
        "kube-dns.kube-system.svc.cluster.local.",
        RecordType::A,
        |m| addresses(m) == ["10.96.0.10"],
    )
    .await;
    assert!(m < Duration::from_secs(5));

    dns::remove_slice(&client, "kube-system", &name)
        .await
        .unwrap();
    assert!(slices.get_opt(&name).await.unwrap().is_none());
    // Removing what is gone is fine.
    dns::remove_slice(&client, "kube-system", &name)
        .await
        .unwrap();
}
