//! Services on a `gantry up` node (issue 6): the agent's proxy turns Services and their
//! EndpointSlices into nftables rules on the machine, so a cluster IP answers from pods
//! and from the host, a node port on the node's address, and a Service scaled to nothing
//! refuses at once. The nginx pods serve their own name (a downward API file over nginx's
//! index), so every answer says which endpoint it came from.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::pods::{running, wait_for};

/// How long the proxy may take to follow a change (it syncs within milliseconds; pods
/// becoming ready take longer, which the waits before cover).
const PROXY_WAIT: Duration = Duration::from_secs(30);

fn web(replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: nginx
        image: nginx:1.13.1
        ports: [{{containerPort: 80, name: http}}]
        readinessProbe:
          httpGet: {{path: /, port: http}}
          periodSeconds: 1
        volumeMounts: [{{name: name, mountPath: /usr/share/nginx/html}}]
      volumes:
      - name: name
        downwardAPI:
          items: [{{path: index.html, fieldRef: {{fieldPath: metadata.name}}}}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"#
    )
}

/// `GET /` over HTTP/1.0 from this process (the host): the body, or why not.
fn http_get(addr: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("not HTTP: {response:?}")))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!("not 200: {head}")));
    }
    Ok(body.trim().to_string())
}

/// The names of the Deployment's ready pods.
fn ready_pods(ns: &Namespace<'_>) -> BTreeSet<String> {
    let pods = json(
        &ns.kubectl(["get", "pods", "-l", "app=web", "-o", "json"])
            .ok(),
    );
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Asks `addr` until every one of `want` has answered (and nothing else has), or fails.
#[track_caller]
fn until_all_answer(addr: SocketAddr, want: &BTreeSet<String>) {
    let deadline = Instant::now() + PROXY_WAIT;
    let mut seen = BTreeSet::new();
    let mut last = None;
    while Instant::now() < deadline {
        match http_get(addr) {
            Ok(name) if want.contains(&name) => {
                seen.insert(name);
                if seen == *want {
                    return;
                }
            }
            // An old endpoint or none yet: the proxy has not caught up.
            other => {
                seen.clear();
                last = Some(other);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    panic!("{addr}: wanted answers from {want:?}, saw {seen:?}; last odd answer {last:?}");
}

fn rollout_status(ns: &Namespace<'_>) {
    ns.kubectl(["rollout", "status", "deploy/web", "--timeout=120s"])
        .ok();
}

/// An address of the node that a node port answers on: its InternalIP, or, when that is
/// loopback (a test node registers 127.0.0.1, where node ports deliberately do not answer),
/// the address the machine's default route leaves from.
fn node_address(s: &Server) -> IpAddr {
    let node = s.get_json(&format!("/api/v1/nodes/{}", s.node_name()));
    let internal: IpAddr = node["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .expect("an InternalIP")
        .parse()
        .unwrap();
    if !internal.is_loopback() {
        return internal;
    }
    // A connected UDP socket names the source the kernel picks; nothing is sent.
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect("203.0.113.1:9").expect("a default route");
    let ip = socket.local_addr().unwrap().ip();
    assert!(
        !ip.is_unspecified() && !ip.is_loopback(),
        "no address besides loopback: {ip}"
    );
    ip
}

#[test]
fn a_cluster_ip_and_a_node_port_reach_the_ready_pods() {
    let s = Server::node();
    let ns = s.namespace("svc");
    ns.apply(&web(2));
    rollout_status(&ns);
    let pods = ready_pods(&ns);
    assert_eq!(pods.len(), 2, "{pods:?}");

    let service = ns.get("service/web");
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = service["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    let vip: SocketAddr = format!("{cluster_ip}:80").parse().unwrap();

    // From the host, both pods, through the cluster IP and the node port.
    until_all_answer(vip, &pods);
    let node_port_addr = SocketAddr::new(node_address(s), node_port as u16);
    until_all_answer(node_port_addr, &pods);

    // From a pod, with busybox's wget (its `-T` crashes in Debian 12's busybox 1.35; the
    // `timeout` applet bounds it instead).
    ns.kubectl([
        "run",
        "client",
        "--image=busybox:1.36",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ])
    .ok();
    wait_for(&ns, "pod/client", "running", running);
    // By the cluster IP, then by name, as applications find each other: the pod's
    // resolv.conf names the kube-dns Service, whose cluster IP the proxy leads to the
    // cluster DNS server. The short name goes through the search list, the full one
    // straight.
    let fqdn = format!("web.{}.svc.cluster.local", ns.name);
    for host in [cluster_ip.as_str(), "web", &fqdn] {
        let script = format!(
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do timeout 5 wget -qO- http://{host}:80/ 2>&1; echo; done"
        );
        let out = ns
            .kubectl(["exec", "client", "--", "sh", "-c", &script])
            .ok();
        let answered: BTreeSet<String> = out.lines().map(str::to_string).collect();
        assert_eq!(answered, pods, "from a pod, to {host}:\n{out}");
    }

    // Scaled to nothing: once the pods are gone, a connection is refused at once. Not
    // before: a terminating pod that still serves stays an endpoint (the fallback when none
    // is ready), and its server, closing, refuses too, while a moment later its address
    // takes nothing and a SYN sent there waits for a retransmission.
    ns.kubectl(["scale", "deploy/web", "--replicas=0"]).ok();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ns
        .kubectl(["get", "pods", "-l", "app=web", "-o", "name"])
        .ok()
        .trim()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the pods are still there");
        std::thread::sleep(Duration::from_millis(200));
    }
    loop {
        match http_get(vip) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
            other => {
                assert!(Instant::now() < deadline, "still answering: {other:?}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let started = Instant::now();
    let refused = http_get(vip).unwrap_err();
    assert_eq!(
        refused.kind(),
        io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let refused = http_get(node_port_addr).unwrap_err();
    assert_eq!(
        refused.kind(),
        io::ErrorKind::ConnectionRefused,
        "{refused}"
    );

    // And back.
    ns.kubectl(["scale", "deploy/web", "--replicas=2"]).ok();
    rollout_status(&ns);
    let pods = wait_for_ready(&ns, 2);
    until_all_answer(vip, &pods);
}

/// Waits until `n` pods of the Deployment are ready; returns their names.
fn wait_for_ready(ns: &Namespace<'_>, n: usize) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let pods = ready_pods(ns);
        if pods.len() == n {
            return pods;
        }
        assert!(Instant::now() < deadline, "ready pods: {pods:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Issue 5's figure: a rolling restart of a 10-replica Deployment behind a cluster IP,
/// with a client asking in a loop all along, and no request failing. As real users must,
/// the pods say when they are ready (a readiness probe) and, when told to stop, keep
/// serving a moment (a preStop sleep) while their endpoint is taken out of the rules.
#[test]
fn a_rolling_restart_behind_a_service_loses_no_request() {
    let s = Server::node();
    let ns = s.namespace("svc-roll");
    let manifest = web(10).replace(
        "        volumeMounts:",
        "        lifecycle:\n          preStop:\n            exec: {command: [sleep, \"2\"]}\n        volumeMounts:",
    );
    ns.apply(&manifest);
    rollout_status(&ns);
    let before = wait_for_ready(&ns, 10);
    let cluster_ip = ns.get("service/web")["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let vip: SocketAddr = format!("{cluster_ip}:80").parse().unwrap();
    until_all_answer(vip, &before);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0usize, Vec::new());
            let mut answered = BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match http_get(vip) {
                    Ok(name) => {
                        ok += 1;
                        answered.insert(name);
                    }
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed, answered)
        })
    };
    ns.kubectl(["rollout", "restart", "deploy/web"]).ok();
    rollout_status(&ns);
    let after = wait_for_ready(&ns, 10);
    // A little more of the new pods alone.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed, answered) = client.join().unwrap();
    eprintln!(
        "{ok} requests, {} failed, during the rolling restart",
        failed.len()
    );
    assert!(after.is_disjoint(&before), "every pod replaced: {after:?}");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert!(ok > 100, "only {ok} requests made");
    assert!(
        answered.intersection(&after).count() > 0 && answered.intersection(&before).count() > 0,
        "answers came from old and new pods: {answered:?}"
    );
}

/// A machine outside the cluster on the node's link: a network namespace with a veth to
/// the host, and the load balancer pool on that link (no gateway: it asks for the
/// addresses by ARP, so only a node announcing them answers). Removed on drop.
struct Outside {
    name: String,
    host_veth: String,
    host_ip: String,
}

impl Outside {
    fn new(slot: &node::Slot) -> Outside {
        let n = slot.n;
        let outside = Outside {
            name: format!("glb-e2e{n}"),
            host_veth: format!("glbh{n}"),
            host_ip: format!("10.204.{n}.1"),
        };
        outside.remove();
        let ip = |args: &str| {
            let out = std::process::Command::new("ip")
                .args(args.split_whitespace())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ip {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&format!("netns add {}", outside.name));
        ip(&format!(
            "link add {} type veth peer name eth0 netns {}",
            outside.host_veth, outside.name
        ));
        ip(&format!(
            "addr add {}/30 dev {}",
            outside.host_ip, outside.host_veth
        ));
        ip(&format!("link set {} up", outside.host_veth));
        let inside = |args: &str| ip(&format!("-n {} {args}", outside.name));
        inside(&format!("addr add 10.204.{n}.2/30 dev eth0"));
        inside("link set eth0 up");
        inside("link set lo up");
        inside(&format!("route add {} dev eth0", slot.load_balancer_pool()));
        outside
    }

    /// The body of `GET http://addr/` from outside, or why not.
    fn get(&self, addr: &str) -> Result<String, String> {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "curl",
                "-sS",
                "--max-time",
                "2",
            ])
            .arg(format!("http://{addr}/"))
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn remove(&self) {
        for args in [
            vec!["netns", "del", &self.name],
            vec!["link", "del", &self.host_veth],
        ] {
            let _ = std::process::Command::new("ip").args(args).output();
        }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The load balancer addresses the node holds on loopback.
fn announced(s: &Server) -> String {
    let label = format!("lo:{}", agent::announcer_tag(&s.slot().bridge()));
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", "lo", "label", &label])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `check` holds, or fails saying `what`.
#[track_caller]
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROXY_WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_load_balancer_gets_an_address_announced_to_the_outside() {
    let s = Server::node();
    let ns = s.namespace("lb");
    ns.apply(&web(2).replace("type: NodePort", "type: LoadBalancer"));
    rollout_status(&ns);
    let pods = ready_pods(&ns);
    assert_eq!(pods.len(), 2, "{pods:?}");
    let outside = Outside::new(s.slot());

    // An address of the pool, in the status, held by the node.
    let mut lb_ip = String::new();
    until("no load balancer address", || {
        let status = &ns.get("service/web")["status"]["loadBalancer"]["ingress"][0];
        lb_ip = status["ip"].as_str().unwrap_or_default().to_string();
        !lb_ip.is_empty() && status["ipMode"] == "VIP"
    });
    let pool: ipnet::Ipv4Net = s.slot().load_balancer_pool().parse().unwrap();
    assert!(
        pool.contains(&lb_ip.parse::<std::net::Ipv4Addr>().unwrap()),
        "{lb_ip}"
    );
    let events = ns.kubectl(["get", "events", "-o", "json"]).ok();
    assert!(events.contains("IPAllocated"), "{events}");
    until("the address is not announced", || {
        announced(s).contains(&format!("{lb_ip}/32"))
    });

    // From outside, by ARP for the address: both pods answer.
    let mut seen = BTreeSet::new();
    until("not every pod answered from outside", || {
        if let Ok(name) = outside.get(&lb_ip) {
            seen.insert(name);
        }
        seen == pods
    });

    // Source ranges: others are dropped, the ones listed get in.
    let patch = |body: String| {
        ns.kubectl(["patch", "service", "web", "-p", &body]).ok();
    };
    patch(r#"{"spec":{"loadBalancerSourceRanges":["192.0.2.0/24"]}}"#.into());
    until("a client outside the source ranges still got in", || {
        outside.get(&lb_ip).is_err()
    });
    patch(format!(
        r#"{{"spec":{{"loadBalancerSourceRanges":["{}/30"]}}}}"#,
        outside.host_ip
    ));
    until("a client in the source ranges was kept out", || {
        outside.get(&lb_ip).is_ok()
    });

    // Local traffic policy: a health check node port, answering for the local endpoints.
    patch(r#"{"spec":{"externalTrafficPolicy":"Local"}}"#.into());
    let health_port = ns.get("service/web")["spec"]["healthCheckNodePort"]
        .as_u64()
        .expect("a health check node port");
    let mut answer = String::new();
    until("no health check answer", || {
        let out = std::process::Command::new("curl")
            .args(["-s", "-i", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:{health_port}/healthz"))
            .output()
            .unwrap();
        answer = String::from_utf8_lossy(&out.stdout).into_owned();
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"localEndpoints\":2")
    });
    assert!(
        answer.contains(&format!("\"namespace\":\"{}\"", ns.name)),
        "{answer}"
    );

    // An address already taken, or outside the pool, is refused with an event.
    ns.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: twin}}\nspec:\n  type: LoadBalancer\n  loadBalancerIP: {lb_ip}\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: http}}]\n"
    ));
    until("no AllocationFailed event", || {
        ns.kubectl(["get", "events", "-o", "json"])
            .ok()
            .contains("already in use by another Service")
    });
    assert!(ns.get("service/twin")["status"]["loadBalancer"]["ingress"].is_null());

    // Deleted: the address is given up, and the twin may have it.
    ns.kubectl(["delete", "service", "web"]).ok();
    until("the twin did not get the freed address", || {
        ns.get("service/twin")["status"]["loadBalancer"]["ingress"][0]["ip"] == lb_ip.as_str()
    });
    ns.kubectl(["delete", "service", "twin"]).ok();
    until("the address is still held", || {
        !announced(s).contains(&format!("{lb_ip}/32"))
    });
}
