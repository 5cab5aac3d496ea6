//! The pod network for real, as root, inside network namespaces the tests make: a "host"
//! namespace stands in for the node (the `PodNetwork` is set up from a thread inside it),
//! pods are namespaces of their own, and nothing touches the machine's own network.

mod support;

use std::net::Ipv4Addr;

use net::{NetError, PodNetwork, connect_in_netns, host_veth_name};
use support::{Netns, config, eventually, round_trip, sock};

#[test]
fn pods_reach_each_other_and_the_gateway() {
    let host = Netns::new("host");
    let (a, b) = (Netns::new("pod-a"), Netns::new("pod-b"));
    let state = tempfile::tempdir().unwrap();
    host.block_on(|| async {
        let network = PodNetwork::setup(config(state.path(), "10.244.1.0/24"))
            .await
            .unwrap();
        assert_eq!(network.gateway(), Ipv4Addr::new(10, 244, 1, 1));
        let ia = network.attach("uid-a", a.path()).await.unwrap();
        let ib = network.attach("uid-b", b.path()).await.unwrap();
        assert_eq!(ia.ip, Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(ib.ip, Ipv4Addr::new(10, 244, 1, 3));
        assert_eq!((ia.prefix_len, ia.gateway), (24, network.gateway()));
        assert_eq!(ia.host_veth, host_veth_name("uid-a"));

        // The pod side: eth0 with the address, lo up, default route via the gateway.
        assert_eq!(a.ipv4_addresses("eth0"), ["10.244.1.2/24"]);
        assert!(a.ip("-o link show dev lo").contains("UP"), "lo is up");
        let routes = a.ip("route show default");
        assert!(
            routes.contains("default via 10.244.1.1 dev eth0"),
            "{routes}"
        );
        // The host side: the bridge with the gateway, the veths its ports.
        assert_eq!(host.ipv4_addresses("gantry0"), ["10.244.1.1/24"]);
        for veth in [&ia.host_veth, &ib.host_veth] {
            let link = host.link(veth).expect("host veth");
            assert_eq!(link["master"], "gantry0", "{link}");
            assert!(link["flags"].to_string().contains("UP"), "{link}");
        }
        assert_eq!(
            host.cmd("cat", "/proc/sys/net/ipv4/ip_forward")
                .unwrap()
                .trim(),
            "1"
        );

        // Pod to pod, both ways, sources kept.
        let server = b.listen(sock(Ipv4Addr::UNSPECIFIED, 0));
        let port = server.local_addr().unwrap().port();
        let peer = round_trip(a.path(), sock(ib.ip, port), &server)
            .await
            .unwrap();
        assert_eq!(peer.ip(), ia.ip);
        let server = a.listen(sock(Ipv4Addr::UNSPECIFIED, 0));
        let port = server.local_addr().unwrap().port();
        let peer = round_trip(b.path(), sock(ia.ip, port), &server)
            .await
            .unwrap();
        assert_eq!(peer.ip(), ib.ip);

        // Pod to the gateway (a server of the node on the bridge's address).
        let server = host.listen(sock(network.gateway(), 0));
        let port = server.local_addr().unwrap().port();
        let peer = round_trip(a.path(), sock(network.gateway(), port), &server)
            .await
            .unwrap();
        assert_eq!(peer.ip(), ia.ip);

        network.teardown().await.unwrap();
    });
    // Torn down: no bridge, no veths, no table.
    assert_eq!(host.link_names(), ["lo"]);
    assert!(host.cmd("nft", "list table ip gantry").is_err());
}

#[test]
fn traffic_leaving_the_cluster_is_masqueraded() {
    let host = Netns::new("host");
    let outside = Netns::new("outside");
    let pod = Netns::new("pod");
    let state = tempfile::tempdir().unwrap();
    // The outside world: a veth from the host, 192.0.2.0/24 on the link, and behind it
    // 10.244.200.0/24, another node's pods (inside the cluster range). Outside knows the
    // way back to this node's pods, so only masquerading can change the source it sees.
    host.ip(&format!(
        "link add up0 type veth peer name down0 netns {}",
        outside.path().display()
    ));
    host.ip("addr add 192.0.2.1/24 dev up0");
    host.ip("link set up0 up");
    host.ip("route add 10.244.200.0/24 via 192.0.2.2");
    outside.ip("addr add 192.0.2.2/24 dev down0");
    outside.ip("addr add 10.244.200.2/24 dev down0");
    outside.ip("link set down0 up");
    outside.ip("route add 10.244.1.0/24 via 192.0.2.1");

    host.block_on(|| async {
        let network = PodNetwork::setup(config(state.path(), "10.244.1.0/24"))
            .await
            .unwrap();
        let interface = network.attach("uid-nat", pod.path()).await.unwrap();

        // Leaving the cluster: the server sees the host's address.
        let server = outside.listen(sock(Ipv4Addr::new(192, 0, 2, 2), 0));
        let port = server.local_addr().unwrap().port();
        let peer = round_trip(pod.path(), sock(Ipv4Addr::new(192, 0, 2, 2), port), &server)
            .await
            .unwrap();
        assert_eq!(peer.ip(), Ipv4Addr::new(192, 0, 2, 1), "masqueraded");

        // To a pod of another node: the pod's own address.
        let server = outside.listen(sock(Ipv4Addr::new(10, 244, 200, 2), 0));
        let port = server.local_addr().unwrap().port();
        let peer = round_trip(
            pod.path(),
            sock(Ipv4Addr::new(10, 244, 200, 2), port),
            &server,
        )
        .await
        .unwrap();
        assert_eq!(
            peer.ip(),
            interface.ip,
            "not masqueraded inside the cluster"
        );

        network.teardown().await.unwrap();
    });
}

#[test]
fn attach_and_detach_are_idempotent() {
    let host = Netns::new("host");
    let a = Netns::new("pod-a");
    let state = tempfile::tempdir().unwrap();
    host.block_on(|| async {
        let network = PodNetwork::setup(config(state.path(), "10.244.1.0/24"))
            .await
            .unwrap();
        // The address is known before the interface is made, and is the one it gets.
        let reserved = network.address("uid-a").unwrap();
        assert_eq!(network.address("uid-a").unwrap(), reserved);
        let first = network.attach("uid-a", a.path()).await.unwrap();
        assert_eq!(first.ip, reserved);
        let index = |ns: &Netns, name: &str| ns.link(name).expect("link")["ifindex"].clone();
        let (host_index, pod_index) = (index(&host, &first.host_veth), index(&a, "eth0"));
        let again = network.attach("uid-a", a.path()).await.unwrap();
        assert_eq!(first, again);
        // The whole pair was recognized and kept, not made anew.
        assert_eq!(index(&host, &first.host_veth), host_index);
        assert_eq!(index(&a, "eth0"), pod_index);
        assert_eq!(a.ipv4_addresses("eth0"), ["10.244.1.2/24"]);
        assert_eq!(a.link_names(), ["lo", "eth0"]);
        assert_eq!(
            network.allocations().unwrap(),
            [("uid-a".to_string(), first.ip)]
        );

        // A sandbox made anew (a new namespace) for the same pod: same address, the pair
        // moved over, nothing left in the old one.
        let a2 = Netns::new("pod-a2");
        let moved = network.attach("uid-a", a2.path()).await.unwrap();
        assert_eq!(moved, first);
        assert_eq!(a2.ipv4_addresses("eth0"), ["10.244.1.2/24"]);
        assert_eq!(a.link_names(), ["lo"]);

        // Detach: the pair and the address go; a second detach is harmless.
        network.detach("uid-a", Some(a2.path())).await.unwrap();
        assert!(host.link(&first.host_veth).is_none());
        assert_eq!(a2.link_names(), ["lo"]);
        assert!(network.allocations().unwrap().is_empty());
        network.detach("uid-a", Some(a2.path())).await.unwrap();
        network.detach("uid-a", None).await.unwrap();

        // A pod whose namespace is removed before the detach: the kernel takes its veth
        // (both ends), and a detach naming the vanished namespace still frees the address.
        let b = Netns::new("pod-b");
        let ib = network.attach("uid-b", b.path()).await.unwrap();
        assert!(host.link(&ib.host_veth).is_some());
        let b_path = b.path().to_path_buf();
        drop(b);
        eventually("the host veth of a removed pod namespace goes", || {
            host.link(&ib.host_veth).is_none()
        })
        .await;
        network.detach("uid-b", Some(&b_path)).await.unwrap();
        assert!(network.allocations().unwrap().is_empty());
        assert_eq!(host.link_names(), ["lo", "gantry0"]);

        // A new namespace that already has an `eth0` (not ours): a pair cannot be made
        // over it, so it is removed and the pair made.
        let c = Netns::new("pod-c");
        c.ip("link add eth0 type veth peer name other0");
        let ic = network.attach("uid-c", c.path()).await.unwrap();
        let details: serde_json::Value =
            serde_json::from_str(&c.ip("-d -j link show dev eth0")).unwrap();
        assert_eq!(details[0]["linkinfo"]["info_kind"], "veth");
        assert_eq!(c.ipv4_addresses("eth0"), [format!("{}/24", ic.ip)]);
        assert!(host.link(&ic.host_veth).is_some());
        network.detach("uid-c", Some(c.path())).await.unwrap();
        assert_eq!(c.link_names(), ["lo"]);

        network.teardown().await.unwrap();
    });
}

#[test]
fn setup_twice_and_addresses_survive_a_new_pod_network() {
    let host = Netns::new("host");
    let (a, b, c) = (
        Netns::new("pod-a"),
        Netns::new("pod-b"),
        Netns::new("pod-c"),
    );
    let state = tempfile::tempdir().unwrap();
    host.block_on(|| async {
        let cfg = config(state.path(), "10.244.1.0/24");
        let first = PodNetwork::setup(cfg.clone()).await.unwrap();
        let ia = first.attach("uid-a", a.path()).await.unwrap();
        let ib = first.attach("uid-b", b.path()).await.unwrap();
        drop(first);

        // As after an agent restart: the same config over the same state directory.
        let second = PodNetwork::setup(cfg).await.unwrap();
        assert_eq!(host.ipv4_addresses("gantry0"), ["10.244.1.1/24"]);
        let table = host.cmd("nft", "-j list table ip gantry").unwrap();
        let table: serde_json::Value = serde_json::from_str(&table).unwrap();
        let rules = table["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o.get("rule").is_some())
            .count();
        assert_eq!(rules, 3, "rules replaced, not added: {table}");
        let listing = host.cmd("nft", "list table ip gantry").unwrap();
        assert!(
            listing.contains("ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 masquerade"),
            "{listing}"
        );

        assert_eq!(
            second.allocations().unwrap(),
            [("uid-a".to_string(), ia.ip), ("uid-b".to_string(), ib.ip)]
        );
        assert_eq!(second.attach("uid-a", a.path()).await.unwrap(), ia);
        assert_eq!(a.link_names(), ["lo", "eth0"]);
        // Round robin goes on after the last address handed out.
        second.detach("uid-a", Some(a.path())).await.unwrap();
        let ic = second.attach("uid-c", c.path()).await.unwrap();
        assert_eq!(ic.ip, Ipv4Addr::new(10, 244, 1, 4));

        // And the pods still talk through the bridge the first setup made.
        let server = c.listen(sock(Ipv4Addr::UNSPECIFIED, 0));
        let port = server.local_addr().unwrap().port();
        let peer = round_trip(b.path(), sock(ic.ip, port), &server)
            .await
            .unwrap();
        assert_eq!(peer.ip(), ib.ip);

        second.teardown().await.unwrap();
    });
}

#[test]
fn a_small_range_runs_out_clearly() {
    let host = Netns::new("host");
    let pods: Vec<Netns> = (0..6).map(|i| Netns::new(&format!("pod-{i}"))).collect();
    let state = tempfile::tempdir().unwrap();
    host.block_on(|| async {
        let network = PodNetwork::setup(config(state.path(), "10.244.1.0/29"))
            .await
            .unwrap();
        let mut got = Vec::new();
        for (i, pod) in pods[..5].iter().enumerate() {
            got.push(
                network
                    .attach(&format!("uid-{i}"), pod.path())
                    .await
                    .unwrap()
                    .ip,
            );
        }
        let want: Vec<_> = (2..=6).map(|i| Ipv4Addr::new(10, 244, 1, i)).collect();
        assert_eq!(got, want, "never the network, gateway or broadcast address");

        let err = network.attach("uid-5", pods[5].path()).await.unwrap_err();
        assert!(matches!(err, NetError::AddressesExhausted { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "no free address left in pod range 10.244.1.0/29 (5 of 5 allocated)"
        );
        assert!(host.link(&host_veth_name("uid-5")).is_none());
        assert_eq!(pods[5].link_names(), ["lo"]);

        // Freeing one makes room again.
        network.detach("uid-2", Some(pods[2].path())).await.unwrap();
        let late = network.attach("uid-5", pods[5].path()).await.unwrap();
        assert_eq!(late.ip, Ipv4Addr::new(10, 244, 1, 4));
        network.teardown().await.unwrap();
    });
}

#[test]
fn mtu_and_queues_are_set_on_the_bridge_and_both_veth_ends() {
    let host = Netns::new("host");
    let pod = Netns::new("pod");
    let state = tempfile::tempdir().unwrap();
    host.block_on(|| async {
        let mut cfg = config(state.path(), "10.244.1.0/24");
        cfg.mtu = Some(1400);
        let network = PodNetwork::setup(cfg).await.unwrap();
        let interface = network.attach("uid-mtu", pod.path()).await.unwrap();
        assert_eq!(host.mtu("gantry0"), 1400);
        assert_eq!(host.mtu(&interface.host_veth), 1400);
        assert_eq!(pod.mtu("eth0"), 1400);
        // One queue each way on both ends: the kernel would otherwise make one per CPU and
        // cut back, waiting for a grace period per end.
        assert_eq!(host.queues(&interface.host_veth), (1, 1));
        assert_eq!(pod.queues("eth0"), (1, 1));
        network.teardown().await.unwrap();
    });
}

#[test]
fn default_mtu_comes_from_the_default_route() {
    let host = Netns::new("host");
    let pod = Netns::new("pod");
    let state = tempfile::tempdir().unwrap();
    host.block_on(|| async {
        // No default route: 1500.
        let network = PodNetwork::setup(config(state.path(), "10.244.1.0/24"))
            .await
            .unwrap();
        assert_eq!(network.mtu(), 1500);
        network.teardown().await.unwrap();
    });
    // The uplink: a veth (its peer stays in the host too) with an MTU of its own.
    host.ip("link add uplink0 mtu 1450 type veth peer name uplink1 mtu 1450");
    host.ip("link set uplink1 up");
    host.ip("link set uplink0 up");
    host.ip("addr add 198.51.100.1/24 dev uplink0");
    host.ip("route add default via 198.51.100.254 dev uplink0");
    host.block_on(|| async {
        let network = PodNetwork::setup(config(state.path(), "10.244.1.0/24"))
            .await
            .unwrap();
        assert_eq!(network.mtu(), 1450);
        let interface = network.attach("uid-mtu", pod.path()).await.unwrap();
        assert_eq!(host.mtu("gantry0"), 1450);
        assert_eq!(host.mtu(&interface.host_veth), 1450);
        assert_eq!(pod.mtu("eth0"), 1450);
        network.teardown().await.unwrap();
    });
}

#[test]
fn connect_in_netns_reaches_a_pods_loopback() {
    let host = Netns::new("host");
    let (a, b) = (Netns::new("pod-a"), Netns::new("pod-b"));
    let state = tempfile::tempdir().unwrap();
    host.block_on(|| async {
        let network = PodNetwork::setup(config(state.path(), "10.244.1.0/24"))
            .await
            .unwrap();
        let ia = network.attach("uid-a", a.path()).await.unwrap();
        network.attach("uid-b", b.path()).await.unwrap();

        // A server only on the pod's 127.0.0.1, as port-forward targets are.
        let server = a.listen(sock(Ipv4Addr::LOCALHOST, 0));
        let port = server.local_addr().unwrap().port();
        let peer = round_trip(a.path(), sock(Ipv4Addr::LOCALHOST, port), &server)
            .await
            .unwrap();
        assert_eq!(peer.ip(), Ipv4Addr::LOCALHOST);

        // It is not there from another pod's loopback, nor from outside by the pod's IP.
        for (from, ip) in [(b.path(), Ipv4Addr::LOCALHOST), (b.path(), ia.ip)] {
            let refused = connect_in_netns(from, sock(ip, port)).await;
            assert!(refused.is_err(), "{ip}:{port} from another pod");
        }
        network.teardown().await.unwrap();
    });
}

#[test]
fn attach_to_a_missing_namespace_fails_and_keeps_nothing() {
    let host = Netns::new("host");
    let state = tempfile::tempdir().unwrap();
    host.block_on(|| async {
        let network = PodNetwork::setup(config(state.path(), "10.244.1.0/24"))
            .await
            .unwrap();
        let missing = state.path().join("no-such-netns");
        let err = network.attach("uid-x", &missing).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("network namespace {}", missing.display())),
            "{err}"
        );
        assert!(network.allocations().unwrap().is_empty());
        assert!(host.link(&host_veth_name("uid-x")).is_none());
        network.teardown().await.unwrap();
    });
}
