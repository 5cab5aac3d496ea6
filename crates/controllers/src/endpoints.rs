//! The Endpoints controller: for each Service with a selector, an Endpoints
//! object of the same name listing the pods it selects, ready ones under
//! `addresses` and the rest under `notReadyAddresses`, each subset a set of
//! addresses that offer the same ports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::informers::Informers;
use crate::service_pods::{self as sp, TRIGGER_TIME, TriggerTimes};

/// How often every Service is looked at again without a change.
const RESYNC: Duration = Duration::from_secs(30);
/// How long a reconcile waits for its cache to show its own write.
const SETTLE: Duration = Duration::from_secs(10);
/// The most addresses one Endpoints object lists; the rest are left out and
/// the object is marked over capacity (EndpointSlices list them all).
const CAPACITY: usize = 1000;
/// The annotation marking Endpoints that list only some addresses.
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The annotation leader-election locks carry: such Endpoints are not a
/// Service's and are never swept.
const LEADER: &str = "control-plane.alpha.kubernetes.io/leader";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the Service has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    triggers: TriggerTimes,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let client = informers.client();
    let pods = informers.get::<Pod>().await;
    let services = informers.get::<Service>().await;
    let endpoints = informers.get::<Endpoints>().await;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pods.store(),
        endpoints: endpoints.store(),
        triggers: TriggerTimes::default(),
    });
    sweep_leftovers(&client, &services.store(), &endpoints.store()).await;

    // A pod wakes the Services that select it now and those whose Endpoints
    // list it (it may have stopped matching). An Endpoints object wakes its
    // Service, so one edited or deleted by hand is put back.
    let by_pod = (services.store(), endpoints.store());
    let svc_store = services.store();
    let results = Controller::for_stream(services.stream(), services.store())
        .watches_stream(pods.stream(), move |pod: Pod| {
            let (services, endpoints) = &by_pod;
            let mut refs = sp::services_selecting(services, &pod);
            refs.extend(listing(endpoints, &pod));
            refs
        })
        .watches_stream(endpoints.stream(), move |ep: Endpoints| {
            let svc = ObjectRef::<Service>::new(&ep.name_any()).within(&ep.namespace()?);
            svc_store.get(&svc).map(|_| svc)
        })
        .run(reconcile, error_policy, Arc::clone(&ctx));
    // A Service gone takes its Endpoints with it.
    sp::follow(results, "endpoints", |ns, name| {
        let ctx = Arc::clone(&ctx);
        async move {
            ctx.triggers.forget(&ns, &name);
            if let Err(e) = delete(&ctx.client, &ns, &name).await {
                tracing::debug!(service = %name, error = %e, "deleting endpoints");
            }
        }
    })
    .await;
    anyhow::bail!("the endpoints controller ended")
}

/// The Services (by name) of the pod's namespace whose Endpoints list it.
fn listing(endpoints: &Store<Endpoints>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let uid = pod.uid();
    endpoints
        .state()
        .iter()
        .filter(|ep| ep.namespace() == pod.namespace())
        .filter(|ep| {
            ep.subsets
                .iter()
                .flatten()
                .flat_map(|s| s.addresses.iter().chain(&s.not_ready_addresses).flatten())
                .any(|a| a.target_ref.as_ref().and_then(|r| r.uid.as_ref()) == uid.as_ref())
        })
        .filter_map(|ep| Some(ObjectRef::new(&ep.name_any()).within(&ep.namespace()?)))
        .collect()
}

/// Deletes Endpoints left behind by Services deleted while no controller
/// ran, as kube-controller-manager does when it starts.
async fn sweep_leftovers(
    client: &kube::Client,
    services: &Store<Service>,
    endpoints: &Store<Endpoints>,
) {
    for ep in endpoints.state() {
        let Some(ns) = ep.namespace() else { continue };
        let svc = ObjectRef::<Service>::new(&ep.name_any()).within(&ns);
        if services.get(&svc).is_none()
            && !ep.annotations().contains_key(LEADER)
            && let Err(e) = delete(client, &ns, &ep.name_any()).await
        {
            tracing::debug!(endpoints = %ep.name_any(), error = %e, "sweeping endpoints");
        }
    }
}

async fn delete(client: &kube::Client, ns: &str, name: &str) -> Result<(), kube::Error> {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

fn error_policy(svc: Arc<Service>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(service = %svc.name_any(), %error, "endpoints sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = svc.namespace().ok_or(Error::NoNamespace)?;
    // Without a selector the Endpoints are the user's.
    let Some(pods) = sp::selected_pods(&ctx.pods, &svc) else {
        return Ok(Action::requeue(RESYNC));
    };
    let trigger = ctx.triggers.observe(&svc, &pods);
    let current = ctx
        .endpoints
        .get(&ObjectRef::new(&svc.name_any()).within(&ns));
    let Some(want) = desired(&svc, current.as_deref(), subsets(&svc, &pods), trigger) else {
        return Ok(Action::requeue(RESYNC));
    };
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let written = match &current {
        None => api.create(&PostParams::default(), &want).await?,
        Some(_) => {
            api.replace(&want.name_any(), &PostParams::default(), &want)
                .await?
        }
    };
    // The next reconcile must not start from a cache older than this write.
    let key = ObjectRef::from_obj(&written);
    let deadline = tokio::time::Instant::now() + SETTLE;
    while tokio::time::Instant::now() < deadline
        && ctx.endpoints.get(&key).and_then(|e| e.resource_version()) != written.resource_version()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Action::requeue(RESYNC))
}

/// The Endpoints object to write for the Service, or None if `current`
/// already lists these subsets with these labels (a new trigger time alone
/// is not worth a write). The labels are the Service's; other annotations
/// on `current` are kept.
fn desired(
    svc: &Service,
    current: Option<&Endpoints>,
    mut subsets: Vec<EndpointSubset>,
    trigger: Option<Timestamp>,
) -> Option<Endpoints> {
    let truncated = truncate(&mut subsets);
    let labels = sp::published_labels(svc);
    if let Some(cur) = current {
        let same = cur.subsets.clone().unwrap_or_default() == subsets
            && *cur.labels() == labels
            && cur.annotations().contains_key(OVER_CAPACITY) == truncated;
        if same {
            return None;
        }
    }
    let mut meta = match current {
        Some(cur) => cur.metadata.clone(),
        None => ObjectMeta {
            name: Some(svc.name_any()),
            namespace: svc.namespace(),
            ..ObjectMeta::default()
        },
    };
    meta.labels = (!labels.is_empty()).then_some(labels);
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => annotations.insert(TRIGGER_TIME.into(), sp::format_time(t)),
        None => annotations.remove(TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    if annotations.is_empty() {
        meta.annotations = None;
    }
    Some(Endpoints {
        metadata: meta,
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}

/// An address and port as a sortable key (`EndpointPort` has no order).
type PortKey = (Option<String>, i32, Option<String>, Option<String>);
/// An address's identity: its IP and the uid of the pod behind it.
type AddressKey = (String, String);

fn port_of(k: &PortKey) -> EndpointPort {
    EndpointPort {
        name: k.0.clone(),
        port: k.1,
        protocol: k.2.clone(),
        app_protocol: k.3.clone(),
    }
}

/// The Service's subsets: every listed pod's address under every Service port
/// the pod offers, then addresses grouped so that each subset holds the
/// addresses (ready and not) that offer exactly the same ports, addresses
/// sorted by IP (Kubernetes' `RepackSubsets`).
pub(crate) fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish = sp::publishes_not_ready(svc);
    let ports = sp::ports(svc);
    // Which addresses offer each port, and whether ready there. `None` stands
    // for "no port", which a headless Service without ports lists.
    let mut offers: BTreeMap<Option<PortKey>, BTreeMap<AddressKey, bool>> = BTreeMap::new();
    let mut addresses: BTreeMap<AddressKey, EndpointAddress> = BTreeMap::new();
    for pod in pods {
        if !sp::is_listed(pod, publish) {
            continue;
        }
        let Some(ip) = sp::ipv4(pod) else { continue };
        let key = (ip.clone(), pod.uid().unwrap_or_default());
        let ready = publish || sp::is_ready(pod);
        let mut offer = |port: Option<PortKey>| {
            offers
                .entry(port)
                .or_default()
                .entry(key.clone())
                .and_modify(|r| *r &= ready)
                .or_insert(ready);
        };
        if ports.is_empty() {
            if sp::is_headless(svc) {
                offer(None);
            }
        } else {
            for port in ports {
                if let Some(n) = sp::target_port(pod, port) {
                    let name = port.name.clone().filter(|n| !n.is_empty());
                    offer(Some((
                        name,
                        n,
                        Some(sp::protocol(port)),
                        port.app_protocol.clone(),
                    )));
                }
            }
        }
        addresses.insert(
            key.clone(),
            EndpointAddress {
                ip,
                hostname: sp::hostname(pod, svc),
                node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(sp::target_ref(pod)),
            },
        );
    }
    // Group the ports by the exact set of (address, ready) offering them.
    let mut groups: BTreeMap<Vec<(AddressKey, bool)>, BTreeSet<PortKey>> = BTreeMap::new();
    for (port, offered) in offers {
        let group = groups.entry(offered.into_iter().collect()).or_default();
        if let Some(p) = port {
            group.insert(p);
        }
    }
    groups
        .into_iter()
        .map(|(offered, ports)| {
            let list = |ready: bool| {
                let found: Vec<EndpointAddress> = offered
                    .iter()
                    .filter(|(_, r)| *r == ready)
                    .map(|(k, _)| addresses[k].clone())
                    .collect();
                (!found.is_empty()).then_some(found)
            };
            let ports: Vec<EndpointPort> = ports.iter().map(port_of).collect();
            EndpointSubset {
                addresses: list(true),
                not_ready_addresses: list(false),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// Cuts the subsets down to `CAPACITY` addresses, ready ones kept first and
/// each subset keeping its share (rounded up) of what is cut; says whether
/// anything was cut.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |l: &Option<Vec<EndpointAddress>>| l.as_ref().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= CAPACITY {
        return false;
    }
    // Past capacity with ready addresses alone: cut those and drop every not
    // ready one. Otherwise keep every ready one and cut the not ready.
    let cut_ready = ready > CAPACITY;
    let (room, total) = if cut_ready {
        (CAPACITY, ready)
    } else {
        (CAPACITY - ready, not_ready)
    };
    let mut left = room;
    for s in subsets.iter_mut() {
        let list = if cut_ready {
            s.not_ready_addresses = None;
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        let share = (count(list) * room).div_ceil(total).min(left);
        if let Some(l) = list.as_mut() {
            l.truncate(share);
            left -= l.len();
        }
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn svc(spec: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "d", "labels": {"team": "a"}},
            "spec": spec
        }))
        .unwrap()
    }

    /// A running pod with an IP, ready or not, serving `http` on `http_port`
    /// (if any).
    fn pod(name: &str, ip: &str, ready: bool, http_port: Option<i32>) -> Arc<Pod> {
        let ports: Vec<Value> = http_port
            .map(|p| json!({"name": "http", "containerPort": p}))
            .into_iter()
            .collect();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}")},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
                "status": {"phase": "Running", "podIP": ip, "conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" }}
                ]}
            }))
            .unwrap(),
        )
    }

    /// The subsets as `ip` lists and `port-name:port` lists, to read at a glance.
    fn shape(subsets: &[EndpointSubset]) -> Value {
        let ips = |l: &Option<Vec<EndpointAddress>>| -> Vec<String> {
            l.iter().flatten().map(|a| a.ip.clone()).collect()
        };
        subsets
            .iter()
            .map(|s| {
                json!({
                    "ready": ips(&s.addresses),
                    "notReady": ips(&s.not_ready_addresses),
                    "ports": s.ports.iter().flatten()
                        .map(|p| format!("{}:{}", p.name.clone().unwrap_or_default(), p.port))
                        .collect::<Vec<_>>(),
                })
            })
            .collect()
    }

    #[test]
    fn pods_with_the_same_ports_share_a_subset() {
        let s = svc(json!({"clusterIP": "10.96.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "admin", "port": 81, "targetPort": 9000}
        ]}));
        let pods = [
            pod("b", "10.0.0.2", true, Some(8080)),
            pod("a", "10.0.0.1", false, Some(8080)),
        ];
        let got = subsets(&s, &pods);
        assert_eq!(
            shape(&got),
            json!([{"ready": ["10.0.0.2"], "notReady": ["10.0.0.1"], "ports": ["admin:9000", "http:8080"]}])
        );
        // Every address carries its pod and node.
        let a = &got[0].not_ready_addresses.as_ref().unwrap()[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let r = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (
                r.kind.as_deref(),
                r.name.as_deref(),
                r.namespace.as_deref(),
                r.uid.as_deref()
            ),
            (Some("Pod"), Some("a"), Some("d"), Some("uid-a"))
        );
        assert_eq!(
            got[0].ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
    }

    #[test]
    fn ports_offered_by_different_pods_make_different_subsets() {
        // As Kubernetes' RepackSubsets: each subset holds the ports offered by
        // exactly the same addresses. c lacks the named port and d names it
        // on another number, so http:8080, http:8081 and admin:9000 each
        // have their own set of addresses.
        let s = svc(json!({"clusterIP": "10.96.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "admin", "port": 81, "targetPort": 9000}
        ]}));
        let pods = [
            pod("a", "10.0.0.1", true, Some(8080)),
            pod("b", "10.0.0.2", false, Some(8080)),
            pod("c", "10.0.0.3", true, None),
            pod("d", "10.0.0.4", true, Some(8081)),
        ];
        assert_eq!(
            shape(&subsets(&s, &pods)),
            json!([
                {"ready": ["10.0.0.1"], "notReady": ["10.0.0.2"], "ports": ["http:8080"]},
                {"ready": ["10.0.0.1", "10.0.0.3", "10.0.0.4"], "notReady": ["10.0.0.2"], "ports": ["admin:9000"]},
                {"ready": ["10.0.0.4"], "notReady": [], "ports": ["http:8081"]},
            ])
        );
    }

    #[test]
    fn who_is_left_out_and_publish_not_ready() {
        let mut s = svc(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}));
        let mut gone = (*pod("a", "10.0.0.1", true, None)).clone();
        gone.metadata.deletion_timestamp =
            serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap();
        let mut done = (*pod("b", "10.0.0.2", true, None)).clone();
        done.status.as_mut().unwrap().phase = Some("Failed".into());
        let mut no_ip = (*pod("c", "10.0.0.3", true, None)).clone();
        no_ip.status.as_mut().unwrap().pod_ip = None;
        let pods = [
            Arc::new(gone),
            Arc::new(done),
            Arc::new(no_ip),
            pod("d", "10.0.0.4", false, None),
        ];
        assert_eq!(
            shape(&subsets(&s, &pods)),
            json!([{"ready": [], "notReady": ["10.0.0.4"], "ports": [":80"]}])
        );
        // Publishing not-ready addresses lists them, and terminating ones, as ready.
        s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        assert_eq!(
            shape(&subsets(&s, &pods)),
            json!([{"ready": ["10.0.0.1", "10.0.0.4"], "notReady": [], "ports": [":80"]}])
        );
    }

    #[test]
    fn headless_without_ports_and_hostnames() {
        let s = svc(json!({"clusterIP": "None"}));
        let mut named = (*pod("a", "10.0.0.1", true, None)).clone();
        let spec = named.spec.as_mut().unwrap();
        spec.hostname = Some("db-0".into());
        spec.subdomain = Some("web".into());
        let pods = [Arc::new(named), pod("b", "10.0.0.2", true, None)];
        let got = subsets(&s, &pods);
        assert_eq!(
            shape(&got),
            json!([{"ready": ["10.0.0.1", "10.0.0.2"], "notReady": [], "ports": []}])
        );
        let addrs = got[0].addresses.as_ref().unwrap();
        assert_eq!(addrs[0].hostname.as_deref(), Some("db-0"));
        assert_eq!(addrs[1].hostname, None);
        // A Service with a cluster IP and no ports lists nothing.
        let plain = svc(json!({"clusterIP": "10.96.0.10"}));
        assert!(subsets(&plain, &pods).is_empty());
        // Its labels carry the headless mark.
        let want = desired(&s, None, got, None).unwrap();
        assert_eq!(
            want.labels().get(sp::HEADLESS).map(String::as_str),
            Some("")
        );
        assert_eq!(want.labels()["team"], "a");
    }

    #[test]
    fn written_only_when_changed() {
        let s = svc(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "TCP"}]}));
        let pods = [pod("a", "10.0.0.1", true, None)];
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let first = desired(&s, None, subsets(&s, &pods), Some(t)).unwrap();
        assert_eq!(first.name_any(), "web");
        assert_eq!(first.annotations()[TRIGGER_TIME], "2026-01-01T00:00:00Z");
        // The same subsets and labels: nothing to write, whatever the time.
        assert!(desired(&s, Some(&first), subsets(&s, &pods), None).is_none());
        // A pod more: written, keeping the object's metadata.
        let more = [pods[0].clone(), pod("b", "10.0.0.2", true, None)];
        let second = desired(&s, Some(&first), subsets(&s, &more), None).unwrap();
        assert_eq!(second.name_any(), "web");
        assert!(!second.annotations().contains_key(TRIGGER_TIME));
        assert_eq!(
            shape(second.subsets.as_deref().unwrap()),
            json!([{"ready": ["10.0.0.1", "10.0.0.2"], "notReady": [], "ports": [":80"]}])
        );
    }

    #[test]
    fn over_capacity_keeps_ready_addresses_first() {
        let addr = |i: usize| EndpointAddress {
            ip: format!("10.0.{}.{}", i / 250, i % 250),
            ..EndpointAddress::default()
        };
        let list = |r: std::ops::Range<usize>| Some(r.map(addr).collect::<Vec<_>>());
        // 600 + 300 ready, 400 not ready: all ready kept, 100 not ready.
        let mut subsets = vec![
            EndpointSubset {
                addresses: list(0..600),
                not_ready_addresses: list(600..900),
                ports: None,
            },
            EndpointSubset {
                addresses: list(900..1200),
                not_ready_addresses: list(1200..1300),
                ports: None,
            },
        ];
        assert!(truncate(&mut subsets));
        let n = |l: &Option<Vec<EndpointAddress>>| l.as_ref().map_or(0, Vec::len);
        assert_eq!(n(&subsets[0].addresses) + n(&subsets[1].addresses), 900);
        assert_eq!(n(&subsets[0].not_ready_addresses), 75);
        assert_eq!(n(&subsets[1].not_ready_addresses), 25);
        // 1200 ready: 1000 of them, no not-ready ones.
        let mut subsets = vec![EndpointSubset {
            addresses: list(0..1200),
            not_ready_addresses: list(1200..1210),
            ports: None,
        }];
        assert!(truncate(&mut subsets));
        assert_eq!(n(&subsets[0].addresses), 1000);
        assert_eq!(subsets[0].not_ready_addresses, None);
        assert!(!truncate(&mut subsets));
    }
}
