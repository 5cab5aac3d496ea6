//! Services for real, as root, with real packets: a "host" namespace stands in for the node
//! (the pod network and the proxy are set up from a thread inside it), pods are namespaces
//! attached to its bridge by `PodNetwork`, each running small TCP and UDP servers that
//! answer with the pod's name, and an "outside" namespace is linked to the host as another
//! machine on its network. Nothing touches the machine's own network; every namespace (and
//! with it every link and table) goes when its guard drops, even when a test fails.

#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use net::{
    Endpoint, PodNetwork, Protocol, ProxyConfig, ProxyError, ServicePort, ServiceProxy,
    TrafficPolicy, connect_in_netns, run_in_netns,
};
use support::{Netns, config, sock};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

/// The table the proxy gets in the host namespace.
const TABLE: &str = "gantry-svc";
/// The port every pod's servers listen on.
const POD_PORT: u16 = 8080;
/// The host's address on the link to the outside, and the outside's.
const HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The gateway of the pod range: masqueraded traffic to pods comes from it.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);

/// A node with pods and a machine outside it.
struct Node {
    host: Netns,
    outside: Netns,
    pods: Vec<Netns>,
    _state: tempfile::TempDir,
}

impl Node {
    /// The namespaces and the link to the outside: the host reaches anything through the
    /// outside (a default route, as a real node has, which locally made connections to
    /// service addresses need to be routed at all), the outside reaches the node's external
    /// service addresses (198.51.100.0/24) through the host.
    fn new(pods: usize) -> Node {
        let host = Netns::new("host");
        let outside = Netns::new("outside");
        host.ip(&format!(
            "link add up0 type veth peer name down0 netns {}",
            outside.path().display()
        ));
        host.ip(&format!("addr add {HOST_IP}/24 dev up0"));
        host.ip("link set up0 up");
        host.ip("link set lo up");
        host.ip(&format!("route add default via {OUTSIDE_IP}"));
        outside.ip(&format!("addr add {OUTSIDE_IP}/24 dev down0"));
        outside.ip("link set down0 up");
        outside.ip("link set lo up");
        outside.ip(&format!("route add 198.51.100.0/24 via {HOST_IP}"));
        let pods = (0..pods).map(|i| Netns::new(&format!("pod-{i}"))).collect();
        Node {
            host,
            outside,
            pods,
            _state: tempfile::tempdir().unwrap(),
        }
    }

    /// Inside the host's runtime: the pod network with every pod attached, each pod
    /// serving TCP and UDP on `POD_PORT` under the name `pod-<i>`. Returns the pod
    /// addresses.
    async fn start(&self) -> (PodNetwork, Vec<Ipv4Addr>) {
        let network = PodNetwork::setup(config(self._state.path(), "10.244.1.0/24"))
            .await
            .unwrap();
        let mut ips = Vec::new();
        for (i, pod) in self.pods.iter().enumerate() {
            let interface = network
                .attach(&format!("uid-{i}"), pod.path())
                .await
                .unwrap();
            serve_tcp(pod, format!("pod-{i}"));
            serve_udp(pod, format!("pod-{i}"));
            ips.push(interface.ip);
        }
        (network, ips)
    }

    fn proxy(&self) -> ServiceProxy {
        ServiceProxy::new(ProxyConfig {
            table: TABLE.into(),
            cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
            service_cidr: Some("10.96.0.0/16".parse().unwrap()),
        })
        .unwrap()
    }

    /// The proxy's table as `nft -j` lists it.
    fn table(&self) -> serde_json::Value {
        let listing = self
            .host
            .cmd("nft", &format!("-j list table ip {TABLE}"))
            .unwrap();
        serde_json::from_str(&listing).unwrap()
    }

    /// The handles of each chain's rules.
    fn rule_handles(&self) -> BTreeMap<String, Vec<u64>> {
        let mut handles: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for object in self.table()["nftables"].as_array().unwrap() {
            if let Some(rule) = object.get("rule") {
                handles
                    .entry(rule["chain"].as_str().unwrap().to_string())
                    .or_default()
                    .push(rule["handle"].as_u64().unwrap());
            }
        }
        handles
    }
}

/// Answers every TCP connection with `<name>\n`, then echoes what it reads, until the
/// test's runtime ends.
fn serve_tcp(ns: &Netns, name: String) {
    let listener = ns.listen(sock(Ipv4Addr::UNSPECIFIED, POD_PORT));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let name = name.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.split();
                if write
                    .write_all(format!("{name}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write
                        .write_all(format!("{line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
}

/// Answers every UDP datagram with `<name>`.
fn serve_udp(ns: &Netns, name: String) {
    let socket = udp_socket(ns.path(), sock(Ipv4Addr::UNSPECIFIED, POD_PORT));
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while let Ok((_, peer)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(name.as_bytes(), peer).await;
        }
    });
}

/// A UDP socket bound to `addr` inside the namespace `ns`.
fn udp_socket(ns: &Path, addr: SocketAddr) -> UdpSocket {
    let socket = run_in_netns(ns, || std::net::UdpSocket::bind(addr))
        .expect("enter the namespace")
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    socket.set_nonblocking(true).unwrap();
    UdpSocket::from_std(socket).unwrap()
}

/// A TCP connection to `addr` from the namespace `from`, or from the calling thread's
/// (the host's) when `None`, failing after two seconds.
async fn connect(from: Option<&Path>, addr: SocketAddr) -> io::Result<BufReader<TcpStream>> {
    let connect = async {
        match from {
            Some(ns) => connect_in_netns(ns, addr).await,
            None => TcpStream::connect(addr).await,
        }
    };
    let stream = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr}")))??;
    Ok(BufReader::new(stream))
}

/// The first line the server at `addr` says: which pod answered.
async fn ask(from: Option<&Path>, addr: SocketAddr) -> io::Result<String> {
    let mut stream = connect(from, addr).await?;
    read_line(&mut stream).await
}

async fn read_line(stream: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "reading an answer"))??;
    Ok(line.trim_end().to_string())
}

/// Sends one datagram from `socket` and returns the answer.
async fn ask_udp(socket: &UdpSocket) -> io::Result<String> {
    socket.send(b"?").await?;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "waiting for a datagram"))??;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Which pods answer `count` new connections to `addr` from `from`.
async fn answers(from: Option<&Path>, addr: SocketAddr, count: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..count {
        seen.insert(
            ask(from, addr)
                .await
                .unwrap_or_else(|e| panic!("{addr}: {e}")),
        );
    }
    seen
}

/// Fails unless a TCP connection from `from` (the node: `None`) to `addr` is refused
/// within half a second.
async fn refused_at_once(from: Option<&Path>, addr: SocketAddr) {
    let started = Instant::now();
    let error = ask(from, addr).await.unwrap_err();
    assert_eq!(
        error.kind(),
        io::ErrorKind::ConnectionRefused,
        "{addr} from {from:?}: {error}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{addr} from {from:?}: slow refusal"
    );
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A ready endpoint on this node at the pods' port.
fn endpoint(ip: Ipv4Addr) -> Endpoint {
    Endpoint {
        ip,
        port: POD_PORT,
        ready: true,
        serving: true,
        terminating: false,
        local: true,
    }
}

/// A TCP ClusterIP Service port `default/<name>` on `cluster_ip:80`.
fn service(name: &str, cluster_ip: Ipv4Addr, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ip: Some(cluster_ip),
        port: 80,
        node_port: None,
        external_ips: Vec::new(),
        external_policy: TrafficPolicy::Cluster,
        internal_policy: TrafficPolicy::Cluster,
        load_balancer_ips: Vec::new(),
        source_ranges: Vec::new(),
        affinity_timeout: None,
        endpoints,
    }
}

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

#[test]
fn cluster_ip_reaches_every_endpoint_from_the_host_and_from_pods() {
    let node = Node::new(3);
    node.host.block_on(|| async {
        let (network, ips) = node.start().await;
        let mut proxy = node.proxy();
        let mut udp = service("dns", VIP, vec![endpoint(ips[0]), endpoint(ips[1])]);
        udp.protocol = Protocol::Udp;
        udp.port = 53;
        udp.port_name = "dns".into();
        let report = proxy
            .sync(&[
                service("web", VIP, vec![endpoint(ips[0]), endpoint(ips[1])]),
                udp,
            ])
            .await
            .unwrap();
        assert!(report.full, "{report:?}");

        let both = names(&["pod-0", "pod-1"]);
        let vip = sock(VIP, 80);
        assert_eq!(answers(None, vip, 40).await, both, "from the host");
        let client = node.pods[2].path();
        assert_eq!(answers(Some(client), vip, 40).await, both, "from a pod");
        // And the endpoint's own port is untouched: the pod address still answers directly.
        assert_eq!(
            ask(Some(client), sock(ips[0], POD_PORT)).await.unwrap(),
            "pod-0"
        );

        // UDP: a new socket is a new flow, balanced again.
        let mut seen = BTreeSet::new();
        for _ in 0..40 {
            let socket = udp_socket(client, sock(Ipv4Addr::UNSPECIFIED, 0));
            socket.connect(sock(VIP, 53)).await.unwrap();
            seen.insert(ask_udp(&socket).await.unwrap());
        }
        assert_eq!(seen, both, "UDP from a pod");

        // The port of the cluster IP that no Service has is not proxied.
        assert!(ask(Some(client), sock(VIP, 81)).await.is_err());
        proxy.teardown().await.unwrap();
        assert!(
            node.host
                .cmd("nft", &format!("list table ip {TABLE}"))
                .is_err()
        );
        network.teardown().await.unwrap();
    });
}

#[test]
fn session_affinity_keeps_a_client_on_one_endpoint() {
    let node = Node::new(4);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut proxy = node.proxy();
        let mut web = service(
            "web",
            VIP,
            vec![endpoint(ips[0]), endpoint(ips[1]), endpoint(ips[2])],
        );
        web.affinity_timeout = Some(60);
        proxy.sync(std::slice::from_ref(&web)).await.unwrap();

        let vip = sock(VIP, 80);
        let client = node.pods[3].path();
        let from_pod = answers(Some(client), vip, 30).await;
        assert_eq!(from_pod.len(), 1, "one pod for one client: {from_pod:?}");
        let from_host = answers(None, vip, 30).await;
        assert_eq!(from_host.len(), 1, "one pod for the host: {from_host:?}");

        // The chosen endpoint goes: the client moves to another one and sticks there.
        let gone = from_pod.first().unwrap().clone();
        let gone_ip = ips[gone.trim_start_matches("pod-").parse::<usize>().unwrap()];
        web.endpoints.retain(|e| e.ip != gone_ip);
        proxy.sync(std::slice::from_ref(&web)).await.unwrap();
        let after = answers(Some(client), vip, 20).await;
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(!after.contains(&gone), "{after:?}");
    });
}

#[test]
fn node_ports_and_external_ips_from_outside() {
    let node = Node::new(2);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut proxy = node.proxy();
        let mut web = service("web", VIP, vec![endpoint(ips[0]), endpoint(ips[1])]);
        web.node_port = Some(30080);
        web.external_ips = vec![Ipv4Addr::new(198, 51, 100, 10)];
        proxy.sync(std::slice::from_ref(&web)).await.unwrap();

        let outside = Some(node.outside.path());
        let both = names(&["pod-0", "pod-1"]);
        assert_eq!(
            answers(outside, sock(HOST_IP, 30080), 30).await,
            both,
            "node port"
        );
        let external = sock(Ipv4Addr::new(198, 51, 100, 10), 80);
        assert_eq!(answers(outside, external, 30).await, both, "external IP");
        // On the gateway address too (any address of the node), from a pod.
        let both_again = answers(Some(node.pods[1].path()), sock(GATEWAY, 30080), 30).await;
        assert_eq!(both_again, both, "node port on the bridge's address");
        // Not on loopback.
        assert!(ask(None, sock(Ipv4Addr::LOCALHOST, 30080)).await.is_err());

        // Cluster policy: masqueraded, the pod sees the node. Local policy: the client's
        // own address, and only this node's endpoints.
        let seen_from = |pod: &Netns| {
            let listener = pod.listen(sock(Ipv4Addr::UNSPECIFIED, 9090));
            async move { listener.accept().await.unwrap().1.ip() }
        };
        let mut probe = service("probe", Ipv4Addr::new(10, 96, 0, 11), vec![]);
        probe.node_port = Some(30090);
        probe.endpoints = vec![Endpoint {
            port: 9090,
            ..endpoint(ips[0])
        }];
        proxy.sync(&[web.clone(), probe.clone()]).await.unwrap();
        let accept = tokio::spawn(seen_from(&node.pods[0]));
        let _client = connect(outside, sock(HOST_IP, 30090)).await.unwrap();
        assert_eq!(accept.await.unwrap(), GATEWAY, "masqueraded");

        probe.external_policy = TrafficPolicy::Local;
        proxy.sync(&[web.clone(), probe.clone()]).await.unwrap();
        let accept = tokio::spawn(seen_from(&node.pods[0]));
        let _client = connect(outside, sock(HOST_IP, 30090)).await.unwrap();
        assert_eq!(accept.await.unwrap(), OUTSIDE_IP, "source kept");

        // Local with endpoints elsewhere only: external traffic is dropped (no answer at
        // all), while the cluster IP still reaches them.
        web.external_policy = TrafficPolicy::Local;
        for e in &mut web.endpoints {
            e.local = e.ip == ips[1];
        }
        proxy.sync(&[web.clone(), probe.clone()]).await.unwrap();
        assert_eq!(
            answers(outside, sock(HOST_IP, 30080), 20).await,
            names(&["pod-1"])
        );
        for e in &mut web.endpoints {
            e.local = false;
        }
        proxy.sync(&[web.clone(), probe.clone()]).await.unwrap();
        let dropped = ask(outside, sock(HOST_IP, 30080)).await.unwrap_err();
        assert_eq!(dropped.kind(), io::ErrorKind::TimedOut, "{dropped}");
        assert_eq!(answers(None, sock(VIP, 80), 20).await, both, "cluster IP");
    });
}

#[test]
fn load_balancer_source_ranges_let_only_their_clients_in() {
    let node = Node::new(1);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut proxy = node.proxy();
        let lb_ip = Ipv4Addr::new(198, 51, 100, 20);
        let mut web = service("web", VIP, vec![endpoint(ips[0])]);
        web.node_port = Some(30081);
        web.load_balancer_ips = vec![lb_ip];
        web.source_ranges = vec!["192.0.2.0/24".parse().unwrap()];
        proxy.sync(std::slice::from_ref(&web)).await.unwrap();
        let outside = Some(node.outside.path());
        let only = names(&["pod-0"]);
        assert_eq!(answers(outside, sock(lb_ip, 80), 5).await, only, "allowed");
        // The node announcing the address holds it; its own other ports stay closed there.
        node.host.ip(&format!("addr add {lb_ip}/32 dev lo"));
        let _own = node.host.listen(sock(Ipv4Addr::UNSPECIFIED, 9999));
        assert_eq!(
            answers(outside, sock(lb_ip, 80), 5).await,
            only,
            "announced"
        );
        assert!(
            connect(outside, sock(HOST_IP, 9999)).await.is_ok(),
            "the node's own port, on its own address"
        );
        let Err(closed) = connect(outside, sock(lb_ip, 9999)).await else {
            panic!("the node's own port answered on the load balancer address");
        };
        assert_eq!(closed.kind(), io::ErrorKind::TimedOut, "{closed}");

        web.source_ranges = vec!["203.0.113.0/24".parse().unwrap()];
        proxy.sync(std::slice::from_ref(&web)).await.unwrap();
        let dropped = ask(outside, sock(lb_ip, 80)).await.unwrap_err();
        assert_eq!(dropped.kind(), io::ErrorKind::TimedOut, "{dropped}");
        // The node port is not the load balancer's: still open.
        assert_eq!(
            answers(outside, sock(HOST_IP, 30081), 5).await,
            only,
            "node port"
        );

        web.source_ranges.clear();
        proxy.sync(std::slice::from_ref(&web)).await.unwrap();
        assert_eq!(
            answers(outside, sock(lb_ip, 80), 5).await,
            only,
            "no ranges"
        );
    });
}

#[test]
fn a_service_without_endpoints_refuses_at_once() {
    let node = Node::new(1);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut proxy = node.proxy();
        let mut empty = service("empty", VIP, vec![]);
        empty.node_port = Some(30081);
        let mut udp = service("empty-udp", VIP, vec![]);
        udp.protocol = Protocol::Udp;
        udp.port = 53;
        // Not ready and not terminating: not usable either.
        let mut unready = service(
            "unready",
            Ipv4Addr::new(10, 96, 0, 12),
            vec![endpoint(ips[0])],
        );
        unready.endpoints[0].ready = false;
        proxy.sync(&[empty, udp, unready]).await.unwrap();

        let pod = Some(node.pods[0].path());
        for (from, addr) in [
            (None, sock(VIP, 80)),
            (pod, sock(VIP, 80)),
            (Some(node.outside.path()), sock(HOST_IP, 30081)),
            (pod, sock(Ipv4Addr::new(10, 96, 0, 12), 80)),
        ] {
            refused_at_once(from, addr).await;
        }
        let socket = udp_socket(node.pods[0].path(), sock(Ipv4Addr::UNSPECIFIED, 0));
        socket.connect(sock(VIP, 53)).await.unwrap();
        let error = ask_udp(&socket).await.unwrap_err();
        assert_eq!(
            error.kind(),
            io::ErrorKind::ConnectionRefused,
            "UDP: {error}"
        );
    });
}

#[test]
fn the_service_range_refuses_what_no_service_takes() {
    let node = Node::new(1);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut proxy = node.proxy();
        proxy
            .sync(&[service("web", VIP, vec![endpoint(ips[0])])])
            .await
            .unwrap();
        let pod = Some(node.pods[0].path());
        // The Service answers; an address of the range no Service has, and a port the
        // Service lacks, are refused at once, from the node and from a pod, instead of
        // being routed on.
        assert_eq!(ask(pod, sock(VIP, 80)).await.unwrap(), "pod-0");
        assert_eq!(ask(None, sock(VIP, 80)).await.unwrap(), "pod-0");
        for from in [None, pod] {
            for addr in [sock(Ipv4Addr::new(10, 96, 0, 77), 80), sock(VIP, 81)] {
                refused_at_once(from, addr).await;
            }
        }
        // Outside the range, nothing changes: an address the node has no route to.
        let error = ask(None, sock(Ipv4Addr::new(10, 97, 0, 77), 80))
            .await
            .unwrap_err();
        assert_ne!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    });
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let node = Node::new(3);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut proxy = node.proxy();
        let terminating = Endpoint {
            ready: false,
            serving: true,
            terminating: true,
            ..endpoint(ips[1])
        };
        let mut web = service("web", VIP, vec![endpoint(ips[0]), terminating]);
        proxy.sync(std::slice::from_ref(&web)).await.unwrap();
        let client = Some(node.pods[2].path());
        assert_eq!(answers(client, sock(VIP, 80), 20).await, names(&["pod-0"]));
        web.endpoints[0].ready = false;
        proxy.sync(std::slice::from_ref(&web)).await.unwrap();
        assert_eq!(answers(client, sock(VIP, 80), 20).await, names(&["pod-1"]));
    });
}

#[test]
fn a_removed_endpoint_keeps_its_open_connections_and_gets_no_new_ones() {
    let node = Node::new(3);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut proxy = node.proxy();
        let mut web = service("web", VIP, vec![endpoint(ips[0]), endpoint(ips[1])]);
        let mut dns = web.clone();
        dns.name = "dns".into();
        dns.protocol = Protocol::Udp;
        dns.port = 53;
        proxy.sync(&[web.clone(), dns.clone()]).await.unwrap();

        let client = node.pods[2].path();
        let mut open = connect(Some(client), sock(VIP, 80)).await.unwrap();
        let first = read_line(&mut open).await.unwrap();
        let udp = udp_socket(client, sock(Ipv4Addr::UNSPECIFIED, 0));
        udp.connect(sock(VIP, 53)).await.unwrap();
        let udp_first = ask_udp(&udp).await.unwrap();
        assert_eq!(
            ask_udp(&udp).await.unwrap(),
            udp_first,
            "one flow, one endpoint"
        );

        let index = |name: &str| name.trim_start_matches("pod-").parse::<usize>().unwrap();
        web.endpoints.retain(|e| e.ip != ips[index(&first)]);
        dns.endpoints.retain(|e| e.ip != ips[index(&udp_first)]);
        let report = proxy.sync(&[web.clone(), dns.clone()]).await.unwrap();
        assert!(report.conntrack_deleted >= 1, "{report:?}");

        let others = answers(Some(client), sock(VIP, 80), 30).await;
        assert!(!others.contains(&first), "{first} still picked: {others:?}");
        // The connection made before goes on with the endpoint it had.
        open.get_mut().write_all(b"still there\n").await.unwrap();
        assert_eq!(read_line(&mut open).await.unwrap(), "still there");
        // The UDP flow, its conntrack entry gone, is balanced anew.
        assert_ne!(ask_udp(&udp).await.unwrap(), udp_first);
    });
}

#[test]
fn a_pod_reaches_itself_through_its_service() {
    let node = Node::new(2);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut proxy = node.proxy();
        proxy
            .sync(&[service("self", VIP, vec![endpoint(ips[0])])])
            .await
            .unwrap();
        assert_eq!(
            answers(Some(node.pods[0].path()), sock(VIP, 80), 10).await,
            names(&["pod-0"])
        );
        // With two endpoints, both, its own included.
        proxy
            .sync(&[service(
                "self",
                VIP,
                vec![endpoint(ips[0]), endpoint(ips[1])],
            )])
            .await
            .unwrap();
        assert_eq!(
            answers(Some(node.pods[0].path()), sock(VIP, 80), 40).await,
            names(&["pod-0", "pod-1"])
        );
    });
}

#[test]
fn a_sync_rewrites_only_what_changed_and_a_restart_keeps_connections() {
    let node = Node::new(3);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut proxy = node.proxy();
        let other_vip = Ipv4Addr::new(10, 96, 0, 20);
        let mut web = service("web", VIP, vec![endpoint(ips[0]), endpoint(ips[1])]);
        let api = service("api", other_vip, vec![endpoint(ips[2])]);
        proxy.sync(&[web.clone(), api.clone()]).await.unwrap();
        let before = node.rule_handles();

        // The same description again: nothing to send.
        let report = proxy.sync(&[web.clone(), api.clone()]).await.unwrap();
        assert!(report.is_noop(), "{report:?}");
        assert_eq!(node.rule_handles(), before);

        // One endpoint of `web` goes: its service chain is rewritten and the endpoint's
        // chain removed; `api` and everything fixed keep their rules.
        web.endpoints.pop();
        let report = proxy.sync(&[web.clone(), api.clone()]).await.unwrap();
        assert_eq!(
            (report.chains_written, report.chains_deleted),
            (1, 1),
            "{report:?}"
        );
        let after = node.rule_handles();
        let web_chain = "service-default/web/tcp/http";
        assert_ne!(after[web_chain], before[web_chain]);
        let gone = format!("endpoint-default/web/tcp/http__{}/{POD_PORT}", ips[1]);
        assert!(before.contains_key(&gone) && !after.contains_key(&gone));
        for (chain, handles) in &before {
            if chain != web_chain && *chain != gone {
                assert_eq!(after.get(chain), Some(handles), "{chain} was rewritten");
            }
        }
        assert_eq!(answers(None, sock(VIP, 80), 10).await, names(&["pod-0"]));

        // A restart: a new proxy knows nothing and rewrites the whole table in one go; a
        // connection made before goes on.
        let mut open = connect(None, sock(other_vip, 80)).await.unwrap();
        assert_eq!(read_line(&mut open).await.unwrap(), "pod-2");
        drop(proxy);
        let mut restarted = node.proxy();
        let report = restarted.sync(&[web.clone(), api.clone()]).await.unwrap();
        assert!(report.full, "{report:?}");
        open.get_mut().write_all(b"after restart\n").await.unwrap();
        assert_eq!(read_line(&mut open).await.unwrap(), "after restart");
        assert_eq!(
            answers(None, sock(other_vip, 80), 5).await,
            names(&["pod-2"])
        );
        // The full rewrite left exactly one copy of each rule.
        let rules: usize = node.rule_handles().values().map(Vec::len).sum();
        let previous: usize = after.values().map(Vec::len).sum();
        assert_eq!(rules, previous);

        // A Service gone: its chains and elements go with it.
        restarted.sync(std::slice::from_ref(&web)).await.unwrap();
        let handles = node.rule_handles();
        assert!(handles.keys().all(|c| !c.contains("/api/")), "{handles:?}");
        // No longer proxied: the address is routed out like any other, and nobody answers.
        assert!(ask(None, sock(other_vip, 80)).await.is_err());
    });
}

#[test]
fn an_invalid_description_changes_nothing() {
    let node = Node::new(2);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut proxy = node.proxy();
        let web = service("web", VIP, vec![endpoint(ips[0])]);
        proxy.sync(std::slice::from_ref(&web)).await.unwrap();
        let before = node.table();

        let mut bad = service("bad", Ipv4Addr::new(10, 96, 0, 30), vec![endpoint(ips[1])]);
        bad.endpoints[0].port = 0;
        let error = proxy.sync(&[web.clone(), bad]).await.unwrap_err();
        assert!(
            matches!(error, ProxyError::InvalidService { .. }),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            format!("service default/bad:http: endpoint {} has port 0", ips[1])
        );
        let mut clash = service("clash", VIP, vec![endpoint(ips[1])]);
        clash.port_name = String::new();
        let error = proxy.sync(&[web.clone(), clash]).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "service default/clash:80: 10.96.0.10:80/tcp is also taken by default/web:http"
        );
        assert_eq!(node.table(), before, "nothing applied");
        assert_eq!(answers(None, sock(VIP, 80), 5).await, names(&["pod-0"]));

        // Behind the proxy's back, the dispatch map is emptied: the next sync, which deletes
        // an element it believes is there, fails as a whole (nothing of it applied), and
        // the one after, no longer trusting its memory, rewrites the whole table.
        node.host
            .cmd("nft", &format!("flush map ip {TABLE} service-ips"))
            .unwrap();
        let other = Ipv4Addr::new(10, 96, 0, 31);
        let api = service("api", other, vec![endpoint(ips[1])]);
        let error = proxy.sync(std::slice::from_ref(&api)).await.unwrap_err();
        assert!(matches!(error, ProxyError::Net(_)), "{error}");
        let listing = node
            .host
            .cmd("nft", &format!("list table ip {TABLE}"))
            .unwrap();
        assert!(
            listing.contains("chain service-default/web/tcp/http"),
            "{listing}"
        );
        assert!(!listing.contains("api"), "{listing}");
        let report = proxy.sync(std::slice::from_ref(&api)).await.unwrap();
        assert!(report.full, "{report:?}");
        assert_eq!(answers(None, sock(other, 80), 5).await, names(&["pod-1"]));

        // `forget` asks for the same rewrite, e.g. on a timer, to mend what nobody reported.
        node.host
            .cmd("nft", &format!("flush map ip {TABLE} service-ips"))
            .unwrap();
        assert!(
            ask(None, sock(other, 80)).await.is_err(),
            "the map was emptied"
        );
        proxy.forget();
        let report = proxy.sync(std::slice::from_ref(&api)).await.unwrap();
        assert!(report.full, "{report:?}");
        assert_eq!(answers(None, sock(other, 80), 5).await, names(&["pod-1"]));
    });
}

#[test]
fn network_policy_drops_new_connections_it_does_not_allow() {
    use net::{PodPolicy, PolicyPeer, PolicyPort, PolicyRule, PolicyTable};
    let node = Node::new(3);
    node.host.block_on(|| async {
        let (_network, ips) = node.start().await;
        let mut table = PolicyTable::new("gantry-pol");
        let from = |i: usize| Some(node.pods[i].path());
        let to = |i: usize| sock(ips[i], POD_PORT);
        let allow_from = |peer: usize, port: u16| PolicyRule {
            peers: Some(vec![PolicyPeer::host(ips[peer])]),
            ports: vec![PolicyPort {
                protocol: Protocol::Tcp,
                ports: Some((port, port)),
            }],
        };
        // Nobody isolated: everyone reaches everyone.
        assert!(table.sync(&[]).unwrap());
        assert_eq!(ask(from(1), to(2)).await.unwrap(), "pod-2");

        // pod-2 takes connections from pod-0 on its port only.
        let mut db = PodPolicy {
            ip: ips[2],
            pod: "ns/pod-2".into(),
            ingress: Some(vec![allow_from(0, POD_PORT)]),
            egress: None,
        };
        let mut open = connect(from(1), to(2)).await.unwrap();
        assert_eq!(read_line(&mut open).await.unwrap(), "pod-2");
        table.sync(std::slice::from_ref(&db)).unwrap();
        assert_eq!(ask(from(0), to(2)).await.unwrap(), "pod-2", "allowed peer");
        let Err(denied) = connect(from(1), to(2)).await else {
            panic!("pod-1 reached pod-2");
        };
        assert_eq!(denied.kind(), io::ErrorKind::TimedOut, "{denied}");
        // The connection made before stays up.
        open.get_mut().write_all(b"still\n").await.unwrap();
        assert_eq!(read_line(&mut open).await.unwrap(), "still");
        // The node itself is not held back.
        assert_eq!(ask(None, to(2)).await.unwrap(), "pod-2", "from the node");
        // Another port of an allowed peer: no.
        db.ingress = Some(vec![allow_from(0, POD_PORT + 1)]);
        table.sync(std::slice::from_ref(&db)).unwrap();
        assert!(connect(from(0), to(2)).await.is_err(), "the wrong port");

        // Egress: pod-0 may reach nobody (deny all), pod-2 (now open) included.
        db.ingress = None;
        let quiet = PodPolicy {
            ip: ips[0],
            pod: "ns/pod-0".into(),
            ingress: None,
            egress: Some(Vec::new()),
        };
        table.sync(&[db, quiet]).unwrap();
        assert!(connect(from(0), to(1)).await.is_err(), "egress denied");
        assert_eq!(
            ask(from(1), to(0)).await.unwrap(),
            "pod-0",
            "ingress still open"
        );
        assert!(table.sync(&[]).unwrap(), "a change is applied");
        assert!(!table.sync(&[]).unwrap(), "no change, nothing sent");
        assert_eq!(ask(from(0), to(1)).await.unwrap(), "pod-1", "lifted");
        table.remove().unwrap();
    });
}
