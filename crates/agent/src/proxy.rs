//! Services on this node (kube-proxy's job): watches Services and EndpointSlices, turns
//! them into the plain description `net::ServiceProxy` programs, and syncs it soon after
//! every change.
//!
//! Changes arriving within a few milliseconds of each other are synced together; a failed
//! sync is retried with back-off (the proxy then rewrites its whole table, not trusting what
//! it thought the kernel held); and every few minutes a full rewrite mends anything changed
//! behind the proxy's back. Headless and ExternalName Services get no rules: DNS answers
//! for them.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event};
use net::{Endpoint, Protocol, ProxyError, ServicePort, ServiceProxy, TrafficPolicy};
use tokio::time::Instant;

use crate::loadbalancer::{self, HealthServers};

/// The label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// How long to wait after a change for the ones coming with it (a rollout's pod updates
/// come as bursts of slice changes).
const BATCH: Duration = Duration::from_millis(20);
/// The first and the longest wait before retrying a failed sync.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// How often the whole table is rewritten even when nothing changed.
const FULL_SYNC: Duration = Duration::from_secs(300);
/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`.
const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// What the watches report.
enum Change {
    /// An object was added, changed or removed.
    Object,
    /// The initial list of one kind is complete.
    Listed(Kind),
    /// A watch failed (it retries by itself, with back-off).
    Failed(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Services,
    Slices,
    Nodes,
}

/// Runs until the watches end (never, in practice): keeps `proxy`'s table in step with the
/// cluster's Services as this node `node_name` sees them, and the load balancer addresses
/// it announces (with `announcer`) and its health check ports (see `loadbalancer`). Its
/// watch of Services keeps the Service cache given (the containers' variables read it).
pub(crate) async fn run(
    client: kube::Client,
    node_name: String,
    (services, service_writer): (crate::env::Services, crate::env::ServicesWriter),
    mut proxy: ServiceProxy,
    announcer: Option<net::Announcer>,
) {
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let mut health = HealthServers::default();
    let crate::env::ServicesWriter {
        store: service_writer,
        listed: services_first_list,
    } = service_writer;
    let service_events = reflector::reflector(
        service_writer,
        watcher::watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    );
    let slice_events = reflector::reflector(
        slice_writer,
        watcher::watcher(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    );
    let node_events = reflector::reflector(
        node_writer,
        watcher::watcher(Api::<Node>::all(client), watcher::Config::default()).default_backoff(),
    );
    let mut changes = futures::stream::select_all([
        changes(service_events, Kind::Services),
        changes(slice_events, Kind::Slices),
        changes(node_events, Kind::Nodes),
    ]);

    let (mut services_listed, mut slices_listed, mut nodes_listed) = (false, false, false);
    // When the next sync is due; `None` while nothing waits to be synced.
    let mut due: Option<Instant> = None;
    let mut retry = RETRY_FIRST;
    let mut next_full = Instant::now() + FULL_SYNC;
    loop {
        let ready = services_listed && slices_listed && nodes_listed;
        let wake = due.filter(|_| ready).unwrap_or(next_full);
        tokio::select! {
            change = changes.next() => match change {
                Some(Change::Object) => {
                    due.get_or_insert_with(|| Instant::now() + BATCH);
                }
                Some(Change::Listed(kind)) => {
                    match kind {
                        Kind::Services => {
                            services_listed = true;
                            services_first_list.done();
                        }
                        Kind::Slices => slices_listed = true,
                        Kind::Nodes => nodes_listed = true,
                    }
                    due.get_or_insert_with(|| Instant::now() + BATCH);
                }
                Some(Change::Failed(message)) => {
                    tracing::warn!(error = %message, "service proxy: watching");
                }
                None => return,
            },
            () = tokio::time::sleep_until(wake) => {
                if Instant::now() >= next_full {
                    next_full = Instant::now() + FULL_SYNC;
                    proxy.forget();
                    due.get_or_insert_with(Instant::now);
                }
                if !ready || due.is_none_or(|d| d > Instant::now()) {
                    continue;
                }
                let (services, slices) = (services.state(), slices.state());
                let ports = describe(&services, &slices, &node_name);
                let plan = loadbalancer::plan(&services, &slices, &nodes.state(), &node_name);
                health.sync(&plan.health).await;
                let synced = match sync(&mut proxy, ports).await {
                    // The rules first: an address is announced once its traffic has
                    // somewhere to go.
                    Ok(()) => match &announcer {
                        Some(a) => a.sync(&plan.announced).await.map_err(ProxyError::from),
                        None => Ok(()),
                    },
                    Err(e) => Err(e),
                };
                match synced {
                    Ok(()) => {
                        due = None;
                        retry = RETRY_FIRST;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?retry, "service proxy: sync failed");
                        due = Some(Instant::now() + retry);
                        retry = (retry * 2).min(RETRY_MAX);
                    }
                }
            }
        }
    }
}

/// The watch events of one kind as [`Change`]s.
fn changes<K>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    kind: Kind,
) -> BoxStream<'static, Change>
where
    K: Send + 'static,
{
    events
        .filter_map(move |event| async move {
            match event {
                Ok(Event::InitDone) => Some(Change::Listed(kind)),
                Ok(Event::Init | Event::InitApply(_)) => None,
                Ok(Event::Apply(_) | Event::Delete(_)) => Some(Change::Object),
                Err(e) => Some(Change::Failed(e.to_string())),
            }
        })
        .boxed()
}

/// Syncs `ports`; a port the proxy refuses is left out (and said), so that one odd Service
/// never keeps the others from being programmed.
async fn sync(proxy: &mut ServiceProxy, mut ports: Vec<ServicePort>) -> Result<(), ProxyError> {
    loop {
        match proxy.sync(&ports).await {
            Ok(report) => {
                if !report.is_noop() {
                    tracing::debug!(ports = ports.len(), ?report, "service proxy: synced");
                }
                return Ok(());
            }
            Err(ProxyError::InvalidService { service, reason }) => {
                tracing::warn!(%service, %reason, "service proxy: leaving a service port out");
                let before = ports.len();
                ports.retain(|p| p.id() != service);
                if ports.len() == before {
                    return Err(ProxyError::InvalidService { service, reason });
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The description of every Service port with the endpoints serving it: Services joined to
/// their EndpointSlices by the `kubernetes.io/service-name` label, endpoints local when
/// their `nodeName` is `node_name`. IPv4 only.
pub(crate) fn describe(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    node_name: &str,
) -> Vec<ServicePort> {
    let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for slice in slices {
        let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
        let labels = slice.metadata.labels.as_ref();
        if slice.address_type != "IPv4" {
            continue;
        }
        if let Some(name) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) {
            by_service.entry((namespace, name)).or_default().push(slice);
        }
    }
    let mut ports = Vec::new();
    for service in services {
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let slices = by_service
            .get(&(namespace, name))
            .map(Vec::as_slice)
            .unwrap_or_default();
        ports.extend(describe_service(service, slices, node_name));
    }
    ports
}

fn describe_service(
    service: &Service,
    slices: &[&EndpointSlice],
    node_name: &str,
) -> Vec<ServicePort> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let ipv4 = |s: &String| s.parse::<Ipv4Addr>().ok();
    let cluster_ip = match spec.cluster_ip.as_deref() {
        Some("None") => return Vec::new(),
        _ => spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(&spec.cluster_ip)
            .find_map(ipv4),
    };
    let mut external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(ipv4)
        .collect();
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    external_ips.sort();
    external_ips.dedup();
    let mut load_balancer_ips: Vec<Ipv4Addr> = ingress
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_ref())
        .filter_map(ipv4)
        .collect();
    load_balancer_ips.sort();
    load_balancer_ips.dedup();
    // Only a load balancer has source ranges (the API server checked them; an IPv6 one
    // guards nothing here).
    let source_ranges: Vec<ipnet::Ipv4Net> = if spec.type_.as_deref() == Some("LoadBalancer") {
        spec.load_balancer_source_ranges
            .iter()
            .flatten()
            .filter_map(|r| r.trim().parse().ok())
            .collect()
    } else {
        Vec::new()
    };
    let policy = |value: Option<&String>| match value.map(String::as_str) {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    };
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();

    let mut ports = Vec::new();
    for port in spec.ports.iter().flatten() {
        let protocol = match protocol(port.protocol.as_deref()) {
            Some(protocol) => protocol,
            None => continue,
        };
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        let port_name = port.name.clone().unwrap_or_default();
        ports.push(ServicePort {
            namespace: namespace.clone(),
            name: name.clone(),
            endpoints: endpoints(slices, &port_name, protocol, node_name),
            port_name,
            protocol,
            cluster_ip,
            port: number,
            node_port: port
                .node_port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0),
            external_ips: external_ips.clone(),
            load_balancer_ips: load_balancer_ips.clone(),
            source_ranges: source_ranges.clone(),
            external_policy: policy(spec.external_traffic_policy.as_ref()),
            internal_policy: policy(spec.internal_traffic_policy.as_ref()),
            affinity_timeout,
        });
    }
    ports
}

fn protocol(name: Option<&str>) -> Option<Protocol> {
    match name.unwrap_or("TCP") {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        _ => None,
    }
}

/// The endpoints of the slice port named `port_name` (a Service port and its slice ports
/// share their name; the slice's carries the resolved target port).
fn endpoints(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: Protocol,
    node_name: &str,
) -> Vec<Endpoint> {
    // The same address may appear in two slices while one is being rewritten; a map keeps
    // one copy, preferring a ready one.
    let mut found: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        let Some(target) = slice.ports.iter().flatten().find_map(|p| {
            let same_name = p.name.as_deref().unwrap_or_default() == port_name;
            let same_protocol = self::protocol(p.protocol.as_deref()) == Some(protocol);
            (same_name && same_protocol)
                .then_some(p.port)
                .flatten()
                .and_then(|n| u16::try_from(n).ok())
        }) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.as_ref();
            // Unset conditions mean ready and serving, not terminating (the API's rule).
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let local = endpoint.node_name.as_deref() == Some(node_name);
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse::<Ipv4Addr>() else {
                    continue;
                };
                let new = Endpoint {
                    ip,
                    port: target,
                    ready,
                    serving,
                    terminating,
                    local,
                };
                found
                    .entry((ip, target))
                    .and_modify(|old| {
                        if new.ready && !old.ready {
                            *old = new;
                        }
                    })
                    .or_insert(new);
            }
        }
    }
    found.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn slice(value: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn web() -> Arc<Service> {
        service(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.5",
                "clusterIPs": ["10.96.0.5"],
                "externalIPs": ["198.51.100.7"],
                "externalTrafficPolicy": "Local",
                "sessionAffinity": "ClientIP",
                "ports": [
                    {"name": "http", "port": 80, "targetPort": "web", "nodePort": 30080},
                    {"name": "dns", "port": 53, "protocol": "UDP"}
                ]
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb"}]}}
        }))
    }

    fn web_slice() -> Arc<EndpointSlice> {
        slice(json!({
            "metadata": {"namespace": "ns", "name": "web-abc",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.244.0.2"], "conditions": {"ready": true}, "nodeName": "me"},
                {"addresses": ["10.244.1.2"],
                 "conditions": {"ready": false, "serving": true, "terminating": true},
                 "nodeName": "other"}
            ]
        }))
    }

    #[test]
    fn services_are_joined_to_their_slices() {
        let ports = describe(&[web()], &[web_slice()], "me");
        assert_eq!(ports.len(), 2);
        let http = &ports[0];
        assert_eq!(http.id(), "ns/web:http");
        assert_eq!(http.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 5)));
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.external_ips, [Ipv4Addr::new(198, 51, 100, 7)]);
        assert_eq!(http.load_balancer_ips, [Ipv4Addr::new(203, 0, 113, 9)]);
        assert!(http.source_ranges.is_empty(), "not a load balancer");
        assert_eq!(http.external_policy, TrafficPolicy::Local);
        assert_eq!(http.internal_policy, TrafficPolicy::Cluster);
        assert_eq!(http.affinity_timeout, Some(10800));
        assert_eq!(
            http.endpoints,
            [
                Endpoint {
                    ip: Ipv4Addr::new(10, 244, 0, 2),
                    port: 8080,
                    ready: true,
                    serving: true,
                    terminating: false,
                    local: true
                },
                Endpoint {
                    ip: Ipv4Addr::new(10, 244, 1, 2),
                    port: 8080,
                    ready: false,
                    serving: true,
                    terminating: true,
                    local: false
                },
            ]
        );
        let dns = &ports[1];
        assert_eq!(
            (dns.protocol, dns.port, dns.node_port),
            (Protocol::Udp, 53, None)
        );
        assert_eq!(
            dns.endpoints.iter().map(|e| e.port).collect::<Vec<_>>(),
            [5353, 5353]
        );
    }

    #[test]
    fn headless_and_external_name_services_get_nothing() {
        let headless = service(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}
        }));
        let external = service(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}
        }));
        assert!(describe(&[headless, external], &[web_slice()], "me").is_empty());
    }

    #[test]
    fn slices_of_other_services_and_ports_do_not_count() {
        let other = slice(json!({
            "metadata": {"namespace": "other", "name": "web-x",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9999}],
            "endpoints": [{"addresses": ["10.244.9.9"]}]
        }));
        let unnamed = service(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"clusterIP": "10.96.0.6", "ports": [{"port": 80}]}
        }));
        // An unnamed Service port matches only an unnamed slice port.
        assert!(
            describe(std::slice::from_ref(&unnamed), &[web_slice(), other], "me")[0]
                .endpoints
                .is_empty()
        );
        let unnamed_slice = slice(json!({
            "metadata": {"namespace": "ns", "name": "web-y",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"port": 8080}],
            "endpoints": [{"addresses": ["10.244.0.3"]}]
        }));
        let ports = describe(&[unnamed], &[unnamed_slice], "me");
        assert_eq!(ports[0].id(), "ns/web:80");
        assert!(ports[0].endpoints[0].ready, "unset conditions are ready");
    }
}
