//! NetworkPolicy for this node's pods (the part Calico's Felix plays): watches policies,
//! pods and namespaces, works out for every pod of the node what its policies allow, and
//! has `net::PolicyTable` enforce it.
//!
//! As the API defines it: a pod is isolated for ingress (egress) when a policy of its
//! namespace selects it and lists that type (`policyTypes`, by default `Ingress`, and
//! `Egress` when the policy has egress rules); then only what one of those policies' rules
//! allows passes. Peers are resolved to addresses here: `podSelector` in the policy's
//! namespace, `namespaceSelector` (with a `podSelector`, both must hold), `ipBlock` with its
//! `except`. A named port is the port of that name on the pod itself for ingress, and for
//! egress any port of that name on the cluster's pods. Host-network pods are not governed,
//! and the node's own traffic to its pods always passes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kinds::selector;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event};
use net::{PodPolicy, PolicyPeer, PolicyPort, PolicyRule, PolicyTable, Protocol};
use tokio::time::Instant;

/// How long to wait after a change for the ones coming with it.
const BATCH: Duration = Duration::from_millis(50);
/// The longest wait before retrying a failed sync.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Runs until the watches end: keeps `table` enforcing the policies of node `node_name`'s
/// pods.
pub(crate) async fn run(client: kube::Client, node_name: String, table: PolicyTable) {
    let (policies, policy_writer) = reflector::store::<NetworkPolicy>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (namespaces, namespace_writer) = reflector::store::<Namespace>();
    let config = watcher::Config::default;
    // 2: a list is complete; 1: an object changed; 0: nothing to do.
    fn weigh<K>(event: Result<Event<K>, watcher::Error>) -> Result<u8, watcher::Error> {
        event.map(|e| match e {
            Event::InitDone => 2,
            Event::Apply(_) | Event::Delete(_) => 1,
            Event::Init | Event::InitApply(_) => 0,
        })
    }
    let mut events = futures::stream::select_all([
        reflector::reflector(
            policy_writer,
            watcher::watcher(Api::<NetworkPolicy>::all(client.clone()), config()).default_backoff(),
        )
        .map(weigh)
        .boxed(),
        reflector::reflector(
            pod_writer,
            watcher::watcher(Api::<Pod>::all(client.clone()), config()).default_backoff(),
        )
        .map(weigh)
        .boxed(),
        reflector::reflector(
            namespace_writer,
            watcher::watcher(Api::<Namespace>::all(client), config()).default_backoff(),
        )
        .map(weigh)
        .boxed(),
    ]);
    // Lists completed: the three kinds' first ones (and any relist after).
    let mut listed = 0;
    let mut due: Option<Instant> = None;
    let mut retry = BATCH;
    let mut table = Some(table);
    loop {
        let wake = due
            .filter(|_| listed >= 3)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(0)) => {}
                Some(Ok(weight)) => {
                    if weight == 2 {
                        listed += 1;
                    }
                    due.get_or_insert_with(|| Instant::now() + BATCH);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "network policy: watching"),
                None => return,
            },
            () = tokio::time::sleep_until(wake) => {
                if listed < 3 || due.is_none_or(|d| d > Instant::now()) {
                    continue;
                }
                let wanted = describe(&policies.state(), &pods.state(), &namespaces.state(), &node_name);
                let mut t = table.take().expect("the table is back after each sync");
                let (t, result) = tokio::task::spawn_blocking(move || {
                    let result = t.sync(&wanted).map(|changed| (changed, wanted.len()));
                    (t, result)
                })
                .await
                .expect("the sync does not panic");
                table = Some(t);
                match result {
                    Ok((changed, isolated)) => {
                        if changed {
                            tracing::debug!(isolated, "network policy: synced");
                        }
                        due = None;
                        retry = BATCH;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?retry, "network policy: sync failed");
                        due = Some(Instant::now() + retry);
                        retry = (retry * 2).min(RETRY_MAX);
                    }
                }
            }
        }
    }
}

fn ipv4(pod: &Pod) -> Option<Ipv4Addr> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    status.pod_ip.as_deref()?.parse().ok()
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

fn labels(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// What every isolated pod of node `me` may do.
pub(crate) fn describe(
    policies: &[Arc<NetworkPolicy>],
    pods: &[Arc<Pod>],
    namespaces: &[Arc<Namespace>],
    me: &str,
) -> Vec<PodPolicy> {
    let namespace_labels: BTreeMap<String, BTreeMap<String, String>> = namespaces
        .iter()
        .filter_map(|n| Some((n.metadata.name.clone()?, labels(&n.metadata))))
        .collect();
    let cx = Cx {
        pods,
        namespace_labels: &namespace_labels,
    };
    let mut out = Vec::new();
    for pod in pods {
        let on_me = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(me);
        let Some(ip) = ipv4(pod).filter(|_| on_me && !host_network(pod)) else {
            continue;
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let pod_labels = labels(&pod.metadata);
        let mut ingress: Option<Vec<PolicyRule>> = None;
        let mut egress: Option<Vec<PolicyRule>> = None;
        for policy in policies {
            if policy.metadata.namespace.as_deref() != Some(namespace) {
                continue;
            }
            let Some(spec) = &policy.spec else { continue };
            // Absent, like empty, selects every pod of the namespace.
            if !spec
                .pod_selector
                .as_ref()
                .is_none_or(|sel| selector::matches(sel, &pod_labels))
            {
                continue;
            }
            let has_egress = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
            let types: Vec<&str> = match &spec.policy_types {
                Some(t) if !t.is_empty() => t.iter().map(String::as_str).collect(),
                _ if has_egress => vec!["Ingress", "Egress"],
                _ => vec!["Ingress"],
            };
            if types.contains(&"Ingress") {
                let rules = ingress.get_or_insert_with(Vec::new);
                for rule in spec.ingress.iter().flatten() {
                    rules.extend(cx.rule(
                        namespace,
                        rule.from.as_deref(),
                        rule.ports.as_deref(),
                        Some(pod),
                    ));
                }
            }
            if types.contains(&"Egress") {
                let rules = egress.get_or_insert_with(Vec::new);
                for rule in spec.egress.iter().flatten() {
                    rules.extend(cx.rule(
                        namespace,
                        rule.to.as_deref(),
                        rule.ports.as_deref(),
                        None,
                    ));
                }
            }
        }
        if ingress.is_some() || egress.is_some() {
            out.push(PodPolicy {
                ip,
                pod: format!(
                    "{namespace}/{}",
                    pod.metadata.name.as_deref().unwrap_or_default()
                ),
                ingress,
                egress,
            });
        }
    }
    out
}

struct Cx<'a> {
    pods: &'a [Arc<Pod>],
    namespace_labels: &'a BTreeMap<String, BTreeMap<String, String>>,
}

impl Cx<'_> {
    /// One rule of a policy in `namespace`; `None` when it can match nothing (its ports
    /// are all names nothing has). `local` is the pod named ports of ingress rules are
    /// looked up on.
    fn rule(
        &self,
        namespace: &str,
        peers: Option<&[NetworkPolicyPeer]>,
        ports: Option<&[NetworkPolicyPort]>,
        local: Option<&Pod>,
    ) -> Option<PolicyRule> {
        let peers = match peers {
            None | Some([]) => None,
            Some(list) => Some(list.iter().flat_map(|p| self.peer(namespace, p)).collect()),
        };
        let mut resolved = Vec::new();
        let listed = ports.is_some_and(|p| !p.is_empty());
        for port in ports.into_iter().flatten() {
            let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            match &port.port {
                None => resolved.push(PolicyPort {
                    protocol,
                    ports: None,
                }),
                Some(IntOrString::Int(n)) => {
                    let Ok(first) = u16::try_from(*n) else {
                        continue;
                    };
                    let last = port
                        .end_port
                        .and_then(|e| u16::try_from(e).ok())
                        .filter(|e| *e >= first)
                        .unwrap_or(first);
                    resolved.push(PolicyPort {
                        protocol,
                        ports: Some((first, last)),
                    });
                }
                Some(IntOrString::String(name)) => {
                    let candidates: Vec<&Pod> = match local {
                        Some(pod) => vec![pod],
                        None => self.pods.iter().map(AsRef::as_ref).collect(),
                    };
                    let numbers: BTreeSet<u16> = candidates
                        .iter()
                        .flat_map(|p| named_ports(p, name, protocol))
                        .collect();
                    resolved.extend(numbers.into_iter().map(|n| PolicyPort {
                        protocol,
                        ports: Some((n, n)),
                    }));
                }
            }
        }
        if listed && resolved.is_empty() {
            return None;
        }
        Some(PolicyRule {
            peers,
            ports: resolved,
        })
    }

    fn peer(&self, namespace: &str, peer: &NetworkPolicyPeer) -> Vec<PolicyPeer> {
        if let Some(block) = &peer.ip_block {
            let Ok(net) = block.cidr.parse() else {
                return Vec::new();
            };
            let except = block
                .except
                .iter()
                .flatten()
                .filter_map(|e| e.parse().ok())
                .collect();
            return vec![PolicyPeer { net, except }];
        }
        let in_namespace = |ns: &str| match &peer.namespace_selector {
            None => ns == namespace,
            Some(sel) => self
                .namespace_labels
                .get(ns)
                .is_some_and(|l| selector::matches(sel, l)),
        };
        self.pods
            .iter()
            .filter(|p| in_namespace(p.metadata.namespace.as_deref().unwrap_or_default()))
            .filter(|p| {
                peer.pod_selector
                    .as_ref()
                    .is_none_or(|sel| selector::matches(sel, &labels(&p.metadata)))
            })
            .filter_map(|p| ipv4(p))
            .map(PolicyPeer::host)
            .collect()
    }
}

/// The numbers of `pod`'s container ports called `name`.
fn named_ports(pod: &Pod, name: &str, protocol: Protocol) -> Vec<u16> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.name.as_deref() == Some(name))
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == protocol.as_str().to_uppercase())
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, node: &str, ip: &str, labels: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"namespace": ns, "name": name, "labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "c",
                    "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"phase": "Running", "podIP": ip}
            }))
            .unwrap(),
        )
    }

    fn policy(ns: &str, spec: serde_json::Value) -> Arc<NetworkPolicy> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"namespace": ns, "name": "p"}, "spec": spec}),
            )
            .unwrap(),
        )
    }

    fn namespace(name: &str, labels: serde_json::Value) -> Arc<Namespace> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        )
    }

    fn world() -> (Vec<Arc<Pod>>, Vec<Arc<Namespace>>) {
        (
            vec![
                pod("a", "db", "me", "10.244.0.2", json!({"app": "db"})),
                pod("a", "web", "me", "10.244.0.3", json!({"app": "web"})),
                pod("a", "far", "other", "10.244.1.2", json!({"app": "web"})),
                pod("b", "mon", "other", "10.244.1.3", json!({"app": "mon"})),
            ],
            vec![
                namespace("a", json!({"team": "x"})),
                namespace("b", json!({"team": "ops"})),
            ],
        )
    }

    fn hosts(rule: &PolicyRule) -> Vec<String> {
        rule.peers
            .iter()
            .flatten()
            .map(|p| p.net.to_string())
            .collect()
    }

    #[test]
    fn selected_pods_of_this_node_are_isolated_with_resolved_peers() {
        let (pods, namespaces) = world();
        let policies = [policy(
            "a",
            json!({
                "podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [
                    {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "http"}]},
                    {"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]},
                    {"from": [{"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.9/32"]}}],
                     "ports": [{"port": 9000, "endPort": 9005, "protocol": "UDP"}]},
                    {"ports": [{"port": "nothing-has-this"}]}
                ]
            }),
        )];
        let out = describe(&policies, &pods, &namespaces, "me");
        assert_eq!(out.len(), 1, "{out:?}");
        let db = &out[0];
        assert_eq!(db.ip.to_string(), "10.244.0.2");
        assert!(db.egress.is_none());
        let rules = db.ingress.as_ref().unwrap();
        assert_eq!(
            rules.len(),
            3,
            "the rule with an unknown port name matches nothing"
        );
        assert_eq!(hosts(&rules[0]), ["10.244.0.3/32", "10.244.1.2/32"]);
        assert_eq!(
            rules[0].ports,
            [PolicyPort {
                protocol: Protocol::Tcp,
                ports: Some((8080, 8080))
            }]
        );
        assert_eq!(hosts(&rules[1]), ["10.244.1.3/32"]);
        assert!(rules[1].ports.is_empty());
        assert_eq!(rules[2].peers.as_ref().unwrap()[0].except.len(), 1);
        assert_eq!(rules[2].ports[0].ports, Some((9000, 9005)));
        // The same policy seen from the other node: its pods are not selected there.
        assert!(describe(&policies, &pods, &namespaces, "other").is_empty());
    }

    #[test]
    fn default_deny_and_egress_types() {
        let (pods, namespaces) = world();
        let deny_all = policy(
            "a",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        );
        let out = describe(&[deny_all], &pods, &namespaces, "me");
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|p| p.ingress == Some(vec![]) && p.egress == Some(vec![]))
        );
        // Egress rules alone make the policy an egress one as well.
        let dns_only = policy(
            "a",
            json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]
            }),
        );
        let out = describe(&[dns_only], &pods, &namespaces, "me");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ingress, Some(vec![]));
        let egress = out[0].egress.as_ref().unwrap();
        assert!(egress[0].peers.is_none(), "no `to`: anywhere");
    }
}
