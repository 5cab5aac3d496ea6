//! The VXLAN overlay for real, as root: three namespaces stand in for three hosts, joined by
//! a bridge in a fourth (their shared link, 192.0.2.0/24); each sets up its pod network with
//! an overlay and is told of the others, and pods on different hosts talk by pod address.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use net::{OverlayConfig, Peer, PodNetwork, format_mac};
use support::{Netns, config, round_trip, sock};

/// One host: its namespace, state, address on the shared link and pod range.
struct Host {
    ns: Netns,
    state: tempfile::TempDir,
    address: Ipv4Addr,
    pod_cidr: &'static str,
}

impl Host {
    fn config(&self) -> net::NetworkConfig {
        let mut config = config(self.state.path(), self.pod_cidr);
        config.overlay = Some(OverlayConfig {
            device: "gantry0.vx".into(),
            vni: 1,
            port: net::DEFAULT_VXLAN_PORT,
            local: self.address,
        });
        config
    }

    /// Sets up (again: it is idempotent) and tells the overlay of `peers`; returns this
    /// host's MAC.
    fn sync(&self, peers: &[Peer]) -> [u8; 6] {
        let config = self.config();
        self.ns.block_on(|| async move {
            let network = PodNetwork::setup(config).await.unwrap();
            network.sync_peers(peers).await.unwrap();
            network.overlay_mac().unwrap()
        })
    }

    fn peer(&self, mac: [u8; 6]) -> Peer {
        Peer {
            pod_cidr: self.pod_cidr.parse().unwrap(),
            underlay: self.address,
            mac,
        }
    }
}

/// Three hosts on one link, each a port of the bridge `lan` in the namespace `lan_ns`.
fn hosts(lan: &Netns) -> Vec<Host> {
    lan.ip("link add lan type bridge");
    lan.ip("link set lan up");
    (1..=3u8)
        .map(|n| {
            let ns = Netns::new(&format!("host{n}"));
            lan.ip(&format!(
                "link add port{n} type veth peer name uplink netns {}",
                ns.path().display()
            ));
            lan.ip(&format!("link set port{n} master lan up"));
            ns.ip(&format!("addr add 192.0.2.{n}/24 dev uplink"));
            ns.ip("link set uplink up");
            ns.ip("link set lo up");
            Host {
                ns,
                state: tempfile::tempdir().unwrap(),
                address: Ipv4Addr::new(192, 0, 2, n),
                pod_cidr: ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"][usize::from(n) - 1],
            }
        })
        .collect()
}

#[test]
fn pods_on_different_hosts_reach_each_other_through_the_overlay() {
    let lan = Netns::new("lan");
    let hosts = hosts(&lan);
    let pods: Vec<Netns> = (1..=3).map(|n| Netns::new(&format!("pod{n}"))).collect();

    // Set up each host with no peers yet, and attach one pod to each.
    let mut macs = Vec::new();
    let mut ips = Vec::new();
    for (host, pod) in hosts.iter().zip(&pods) {
        let config = host.config();
        let (mac, ip, mtu) = host.ns.block_on(|| async move {
            let network = PodNetwork::setup(config).await.unwrap();
            let interface = network.attach("uid", pod.path()).await.unwrap();
            (network.overlay_mac().unwrap(), interface.ip, network.mtu())
        });
        // The uplink's 1500 less VXLAN's 50, on the device, the bridge and the pod.
        assert_eq!(mtu, 1450);
        for link in ["gantry0.vx", "gantry0"] {
            assert_eq!(host.ns.mtu(link), 1450, "{link}");
        }
        assert_eq!(pod.mtu("eth0"), 1450);
        let vx = host.ns.link("gantry0.vx").expect("the VXLAN device");
        assert_eq!(vx["address"], format_mac(mac), "{vx}");
        let network = host.pod_cidr.split('/').next().unwrap();
        assert_eq!(
            host.ns.ipv4_addresses("gantry0.vx"),
            [format!("{network}/32")]
        );
        macs.push(mac);
        ips.push(ip);
    }
    assert!(macs[0] != macs[1] && macs[1] != macs[2], "{macs:?}");

    // Before peers are known, host 2's pods are out of reach for host 1's.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let server = pods[1].listen(sock(Ipv4Addr::UNSPECIFIED, 0));
    let port = server.local_addr().unwrap().port();
    let before = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(1),
            round_trip(pods[0].path(), sock(ips[1], port), &server),
        )
        .await
    });
    assert!(!matches!(before, Ok(Ok(_))), "reached without the overlay");

    // Everyone learns of everyone else (twice: a second sync changes nothing).
    for _ in 0..2 {
        for (i, host) in hosts.iter().enumerate() {
            let peers: Vec<Peer> = hosts
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, h)| h.peer(macs[j]))
                .collect();
            assert_eq!(host.sync(&peers), macs[i], "the MAC is stable");
        }
    }
    let routes = hosts[0].ns.ip("route show dev gantry0.vx");
    for (range, via) in [
        ("10.244.2.0/24", "10.244.2.0"),
        ("10.244.3.0/24", "10.244.3.0"),
    ] {
        let route = routes.lines().find(|l| l.starts_with(range));
        assert!(
            route.is_some_and(|r| r.contains(&format!("via {via} ")) && r.contains("onlink")),
            "{routes}"
        );
    }
    let fdb = hosts[0]
        .ns
        .cmd("bridge", "fdb show dev gantry0.vx")
        .unwrap();
    assert!(
        fdb.contains(&format!("{} dst 192.0.2.2", format_mac(macs[1]))),
        "{fdb}"
    );

    // Every pod reaches every other, and sees its real address: no NAT inside the cluster.
    for from in 0..3 {
        for to in 0..3 {
            if from == to {
                continue;
            }
            let server = pods[to].listen(sock(Ipv4Addr::UNSPECIFIED, 0));
            let port = server.local_addr().unwrap().port();
            let peer = runtime
                .block_on(round_trip(pods[from].path(), sock(ips[to], port), &server))
                .unwrap_or_else(|e| panic!("pod {from} to pod {to}: {e}"));
            assert_eq!(peer.ip(), ips[from], "pod {from} to pod {to}");
        }
    }
    // A full-size packet crosses without fragments going astray.
    let ping = pods[0].cmd("ping", &format!("-c 1 -W 2 -M do -s 1422 {}", ips[2]));
    assert!(ping.is_ok(), "{ping:?}");

    // Host 2 leaves: host 1 forgets it, and keeps host 3.
    hosts[0].sync(&[hosts[2].peer(macs[2])]);
    let routes = hosts[0].ns.ip("route show dev gantry0.vx");
    assert!(!routes.contains("10.244.2.0/24"), "{routes}");
    assert!(routes.contains("10.244.3.0/24"), "{routes}");
    let neighbours = hosts[0].ns.ip("neigh show dev gantry0.vx");
    assert!(!neighbours.contains("10.244.2.0 "), "{neighbours}");
    let fdb = hosts[0]
        .ns
        .cmd("bridge", "fdb show dev gantry0.vx")
        .unwrap();
    assert!(!fdb.contains("dst 192.0.2.2"), "{fdb}");
    assert!(fdb.contains("dst 192.0.2.3"), "{fdb}");
    let server = pods[2].listen(sock(Ipv4Addr::UNSPECIFIED, 0));
    let port = server.local_addr().unwrap().port();
    runtime
        .block_on(round_trip(pods[0].path(), sock(ips[2], port), &server))
        .unwrap();

    // A peer claiming this host's own range is ignored rather than routed.
    hosts[0].sync(&[Peer {
        pod_cidr: "10.244.1.0/25".parse().unwrap(),
        underlay: Ipv4Addr::new(192, 0, 2, 9),
        mac: [2, 0, 0, 0, 0, 9],
    }]);
    let routes = hosts[0].ns.ip("route show dev gantry0.vx");
    assert!(!routes.contains("10.244.1.0/25"), "{routes}");

    // Teardown takes the device too.
    for host in &hosts {
        let config = host.config();
        host.ns.block_on(|| async move {
            PodNetwork::setup(config)
                .await
                .unwrap()
                .teardown()
                .await
                .unwrap();
        });
        assert_eq!(host.ns.link_names(), ["lo", "uplink"]);
    }
}

#[test]
fn a_device_made_with_other_settings_is_made_anew() {
    let host = Netns::new("host");
    host.ip("link add uplink type veth peer name other");
    host.ip("addr add 192.0.2.7/24 dev uplink");
    host.ip("link set uplink up");
    host.ip("link add gantry0.vx type vxlan id 77 dstport 4789 local 192.0.2.7");
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path(), "10.244.5.0/24");
    config.overlay = Some(OverlayConfig {
        device: "gantry0.vx".into(),
        vni: 1,
        port: net::DEFAULT_VXLAN_PORT,
        local: Ipv4Addr::new(192, 0, 2, 7),
    });
    let again = config.clone();
    host.block_on(|| async move { drop(PodNetwork::setup(config).await.unwrap()) });
    let details = host.ip("-d link show dev gantry0.vx");
    assert!(details.contains("vxlan id 1 "), "{details}");
    assert!(details.contains("dstport 8472"), "{details}");
    assert!(details.contains("nolearning"), "{details}");
    host.block_on(|| async move {
        PodNetwork::setup(again)
            .await
            .unwrap()
            .teardown()
            .await
            .unwrap();
    });
}
