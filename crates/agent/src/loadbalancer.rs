//! The node's part in Services of type LoadBalancer, besides the proxy's rules: which of
//! their addresses this node announces, and the health check node ports.
//!
//! **Announcing** (MetalLB's layer 2 mode): each address is announced by exactly one node,
//! chosen by every agent alike from what they all see: among the eligible nodes (Ready, not
//! being deleted, without the `node.kubernetes.io/exclude-from-external-load-balancers`
//! label; for `externalTrafficPolicy: Local`, only those with a ready endpoint of the
//! Service), the one whose hash of (node name, address) is lowest. A node that fails
//! or loses its endpoints hands its addresses to the next one without any coordination.
//!
//! **Health checks** (kube-proxy's): a `LoadBalancer` Service with
//! `externalTrafficPolicy: Local` has a `healthCheckNodePort`; every node answers HTTP there
//! with 200 while it has ready endpoints of the Service, 503 otherwise, and the body
//! kube-proxy gives (`localEndpoints`), so an outside load balancer sends traffic only to
//! nodes that keep it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// The label that keeps a node out of every load balancer.
const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// The label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What a health check node port reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Health {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// Ready endpoints of the Service on this node.
    pub(crate) local_endpoints: usize,
}

/// What this node does for the cluster's load balancers.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The addresses this node announces.
    pub(crate) announced: BTreeSet<Ipv4Addr>,
    /// Health check node ports and what each reports.
    pub(crate) health: BTreeMap<u16, Health>,
}

/// Works out the plan of node `me` from the cluster's Services, slices and Nodes.
pub(crate) fn plan(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    nodes: &[Arc<Node>],
    me: &str,
) -> Plan {
    let eligible: Vec<&str> = nodes
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter(|n| {
            !n.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(EXCLUDE_LABEL))
        })
        .filter(|n| ready(n))
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let mut plan = Plan::default();
    for service in services {
        let Some(spec) = &service.spec else { continue };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            continue;
        }
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let local = spec.external_traffic_policy.as_deref() == Some("Local");
        let mut with_endpoints: BTreeMap<&str, usize> = BTreeMap::new();
        for slice in slices {
            let ours = slice.metadata.namespace.as_deref() == Some(namespace)
                && slice
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .is_some_and(|n| n == name);
            if !ours || slice.address_type != "IPv4" {
                continue;
            }
            for endpoint in &slice.endpoints {
                let is_ready = endpoint
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .unwrap_or(true);
                if let (true, Some(node)) = (is_ready, endpoint.node_name.as_deref()) {
                    *with_endpoints.entry(node).or_default() += endpoint.addresses.len();
                }
            }
        }
        if local
            && let Some(port) = spec
                .health_check_node_port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
        {
            plan.health.insert(
                port,
                Health {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    local_endpoints: with_endpoints.get(me).copied().unwrap_or(0),
                },
            );
        }
        let candidates: Vec<&str> = eligible
            .iter()
            .copied()
            .filter(|n| !local || with_endpoints.contains_key(n))
            .collect();
        let addresses = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok());
        for ip in addresses {
            let chosen = candidates.iter().min_by_key(|n| (rank(n, ip), **n));
            if chosen == Some(&me) {
                plan.announced.insert(ip);
            }
        }
    }
    plan
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// FNV-1a of the node's name and the address, mixed by MurmurHash3's finalizer (FNV alone
/// orders names that differ early the same way for every address): the same on every
/// agent, whatever its build.
fn rank(node: &str, ip: Ipv4Addr) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes().chain([0]).chain(ip.octets()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The health check servers running now, by port.
#[derive(Default)]
pub(crate) struct HealthServers {
    running: HashMap<u16, (watch::Sender<Health>, tokio::task::JoinHandle<()>)>,
}

impl Drop for HealthServers {
    fn drop(&mut self) {
        for (_, (_, task)) in self.running.drain() {
            task.abort();
        }
    }
}

impl HealthServers {
    /// Serves exactly the ports of `wanted`, on every address of the node.
    pub(crate) async fn sync(&mut self, wanted: &BTreeMap<u16, Health>) {
        self.running.retain(|port, (_, task)| {
            let keep = wanted.contains_key(port) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (port, health) in wanted {
            if let Some((tx, _)) = self.running.get(port) {
                tx.send_if_modified(|h| {
                    let changed = h != health;
                    *h = health.clone();
                    changed
                });
                continue;
            }
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port));
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, service = %format!("{}/{}", health.namespace, health.name),
                        "cannot serve a load balancer health check");
                    continue;
                }
            };
            let (tx, rx) = watch::channel(health.clone());
            let task = tokio::spawn(serve(listener, rx));
            self.running.insert(*port, (tx, task));
        }
    }
}

/// Answers every request on `listener` with the Service's health, one request per
/// connection.
async fn serve(listener: tokio::net::TcpListener, health: watch::Receiver<Health>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let health = health.borrow().clone();
        tokio::spawn(async move {
            // The request itself says nothing that changes the answer; read its head so
            // that the client is not reset while still sending it.
            let mut buf = [0u8; 4096];
            let mut read = 0;
            while read < buf.len() {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    stream.read(&mut buf[read..]),
                )
                .await
                {
                    Ok(Ok(n)) if n > 0 => {
                        read += n;
                        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    _ => return,
                }
            }
            let _ = stream.write_all(response(&health).as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// kube-proxy's health check answer.
fn response(health: &Health) -> String {
    let body = serde_json::json!({
        "service": {"namespace": health.namespace, "name": health.name},
        "localEndpoints": health.local_endpoints,
        "serviceProxyHealthy": true,
    })
    .to_string();
    let status = if health.local_endpoints > 0 {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: bool) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
            }))
            .unwrap(),
        )
    }

    fn lb(name: &str, ip: &str, policy: &str, health: Option<u16>) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"namespace": "ns", "name": name},
                "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy,
                         "healthCheckNodePort": health, "ports": [{"port": 80}]},
                "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
            }))
            .unwrap(),
        )
    }

    fn slice(service: &str, on: &[(&str, bool)]) -> Arc<EndpointSlice> {
        let endpoints: Vec<_> = on
            .iter()
            .enumerate()
            .map(|(i, (node, ready))| {
                json!({
                    "addresses": [format!("10.244.0.{}", i + 2)],
                    "conditions": {"ready": ready}, "nodeName": node
                })
            })
            .collect();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"namespace": "ns", "name": format!("{service}-x"),
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4", "endpoints": endpoints
            }))
            .unwrap(),
        )
    }

    fn announcers(
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
        nodes: &[Arc<Node>],
    ) -> BTreeMap<Ipv4Addr, Vec<String>> {
        let mut by_ip: BTreeMap<Ipv4Addr, Vec<String>> = BTreeMap::new();
        for n in nodes {
            let me = n.metadata.name.clone().unwrap();
            for ip in plan(services, slices, nodes, &me).announced {
                by_ip.entry(ip).or_default().push(me.clone());
            }
        }
        by_ip
    }

    #[test]
    fn each_address_has_exactly_one_ready_announcer() {
        let nodes = [node("a", true), node("b", true), node("c", false)];
        let services: Vec<_> = (1..=20)
            .map(|i| lb(&format!("s{i}"), &format!("192.0.2.{i}"), "Cluster", None))
            .collect();
        let by_ip = announcers(&services, &[], &nodes);
        assert_eq!(by_ip.len(), 20);
        assert!(by_ip.values().all(|n| n.len() == 1 && n[0] != "c"));
        // Both ready nodes get a fair share: the hash spreads them.
        let on_a = by_ip.values().filter(|n| n[0] == "a").count();
        assert!((4..=16).contains(&on_a), "{on_a} of 20 on a");
        // A node going away hands its addresses over.
        let fewer = [node("a", true), node("b", false), node("c", false)];
        let by_ip = announcers(&services, &[], &fewer);
        assert!(by_ip.values().all(|n| n == &["a"]));
        assert!(announcers(&services, &[], &[node("a", false)]).is_empty());
    }

    #[test]
    fn local_policy_announces_from_a_node_with_endpoints_and_reports_health() {
        let nodes = [node("a", true), node("b", true)];
        let services = [lb("web", "192.0.2.9", "Local", Some(31000))];
        let slices = [slice("web", &[("b", true), ("a", false)])];
        let by_ip = announcers(&services, &slices, &nodes);
        assert_eq!(by_ip[&"192.0.2.9".parse().unwrap()], ["b"]);
        let on_a = plan(&services, &slices, &nodes, "a");
        assert_eq!(on_a.health[&31000].local_endpoints, 0);
        let on_b = plan(&services, &slices, &nodes, "b");
        assert_eq!(on_b.health[&31000].local_endpoints, 1);
        assert!(response(&on_a.health[&31000]).starts_with("HTTP/1.1 503"));
        let ok = response(&on_b.health[&31000]);
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("\"localEndpoints\":1"), "{ok}");
        // No ready endpoint anywhere: nobody announces.
        let none = [slice("web", &[("a", false)])];
        assert!(announcers(&services, &none, &nodes).is_empty());
    }

    #[tokio::test]
    async fn health_servers_follow_the_plan() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut servers = HealthServers::default();
        let mut health = Health {
            namespace: "ns".into(),
            name: "web".into(),
            local_endpoints: 0,
        };
        let get = || async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await?;
            let mut out = String::new();
            s.read_to_string(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        servers
            .sync(&BTreeMap::from([(port, health.clone())]))
            .await;
        assert!(get().await.unwrap().starts_with("HTTP/1.1 503"));
        health.local_endpoints = 2;
        servers
            .sync(&BTreeMap::from([(port, health.clone())]))
            .await;
        let answer = get().await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"localEndpoints\":2"), "{answer}");
        servers.sync(&BTreeMap::new()).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(get().await.is_err(), "the port is closed again");
    }
}
