//! What the Endpoints and EndpointSlice controllers share: which pods back a
//! Service, the address and ports each one offers, and when the change they
//! publish happened (kube-controller-manager's `endpointutil` and
//! `TriggerTimeTracker`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{ObjectRef, Store};

/// The annotation saying when the pod or Service change that the object
/// publishes happened.
pub(crate) const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// The label Kubernetes puts on the Endpoints and EndpointSlices of a
/// headless Service.
pub(crate) const HEADLESS: &str = "service.kubernetes.io/headless";

/// The Service's selector, if it selects pods. A Service without one (or with
/// an empty one, which the API stores as none) has Endpoints its users manage.
pub(crate) fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

/// Whether the Service has no cluster IP of its own.
pub(crate) fn is_headless(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_none_or(|ip| ip.is_empty() || ip == "None")
}

/// The Service's ports.
pub(crate) fn ports(svc: &Service) -> &[ServicePort] {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

/// Whether the Service lists pods that are not ready as ready.
pub(crate) fn publishes_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.labels();
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pods of the Service's namespace its selector matches, by name; None
/// for a Service without a selector.
pub(crate) fn selected_pods(pods: &Store<Pod>, svc: &Service) -> Option<Vec<Arc<Pod>>> {
    let selector = selector(svc)?;
    let ns = svc.namespace();
    let mut found: Vec<Arc<Pod>> = pods
        .state()
        .into_iter()
        .filter(|p| p.namespace() == ns && selects(selector, p))
        .collect();
    found.sort_by_key(|p| p.name_any());
    Some(found)
}

/// The Services of the pod's namespace whose selector matches it.
pub(crate) fn services_selecting(services: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    services
        .state()
        .iter()
        .filter(|s| s.namespace() == pod.namespace())
        .filter(|s| selector(s).is_some_and(|sel| selects(sel, pod)))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Drives a Service controller's results to their end. A Service whose turn
/// came after it was deleted (kube-runtime finds it no longer cached) is
/// handed to `gone` as (namespace, name), to delete what was published for
/// it; other failures are logged, and retried by the controller.
pub(crate) async fn follow<E, Q, F, Fut>(
    results: impl Stream<Item = Result<(ObjectRef<Service>, Action), controller::Error<E, Q>>>,
    controller: &str,
    gone: F,
) where
    E: std::error::Error + 'static,
    Q: std::error::Error + 'static,
    F: Fn(String, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let gone = &gone;
    results
        .for_each(|result| async move {
            match result {
                Err(controller::Error::ObjectNotFound(svc)) => {
                    gone(svc.namespace.clone().unwrap_or_default(), svc.name.clone()).await
                }
                Err(e) => tracing::debug!(controller, error = %e, "reconcile failed"),
                Ok(_) => {}
            }
        })
        .await
}

/// Whether the pod's Ready condition is True.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod is being deleted.
pub(crate) fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Whether the pod belongs in a Service's endpoints at all: it has an IPv4
/// address and has not finished, and is not being deleted unless
/// `include_terminating` (Kubernetes' `ShouldPodBeInEndpoints`).
pub(crate) fn is_listed(pod: &Pod, include_terminating: bool) -> bool {
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    !finished && ipv4(pod).is_some() && (include_terminating || !is_terminating(pod))
}

/// The pod's IPv4 address: `podIP` if it is one, else the first in `podIPs`.
pub(crate) fn ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let is_v4 = |ip: &str| ip.parse::<std::net::Ipv4Addr>().is_ok();
    status
        .pod_ip
        .iter()
        .chain(status.pod_ips.iter().flatten().map(|p| &p.ip))
        .find(|ip| is_v4(ip))
        .cloned()
}

/// The pod's hostname within the Service's DNS name: set when the pod names
/// the Service as its subdomain.
pub(crate) fn hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    let same = spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace();
    same.then(|| hostname.to_owned())
}

/// A reference to the pod as the endpoint's target.
pub(crate) fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        name: Some(pod.name_any()),
        namespace: pod.namespace(),
        uid: pod.uid(),
        ..ObjectReference::default()
    }
}

/// The protocol of a Service port, as the API defaults it.
pub(crate) fn protocol(port: &ServicePort) -> String {
    port.protocol.clone().unwrap_or_else(|| "TCP".into())
}

/// The port the pod serves the Service port on: a numbered `targetPort` as
/// it is (the port itself when unset), a named one looked up among the
/// ports of the pod's containers and sidecars with the same protocol. None
/// when the pod has no port of that name.
pub(crate) fn target_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let name = match &port.target_port {
        None => return Some(port.port),
        Some(IntOrString::Int(0)) => return Some(port.port),
        Some(IntOrString::Int(n)) => return Some(*n),
        Some(IntOrString::String(name)) => name,
    };
    let spec = pod.spec.as_ref()?;
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let protocol = protocol(port);
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| {
            p.name.as_deref() == Some(name.as_str())
                && p.protocol.as_deref().unwrap_or("TCP") == protocol
        })
        .map(|p| p.container_port)
}

/// The labels every object published for the Service starts from: the
/// Service's own, and the headless label when it has no cluster IP.
pub(crate) fn published_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    if is_headless(svc) {
        labels.insert(HEADLESS.into(), String::new());
    } else {
        labels.remove(HEADLESS);
    }
    labels
}

/// `t` as the trigger-time annotation writes it (RFC 3339, UTC).
pub(crate) fn format_time(t: Timestamp) -> String {
    t.to_string()
}

/// What a Service looked like when its endpoints were last computed.
#[derive(Default)]
struct Seen {
    /// When each selected pod's Ready condition last changed, by pod name.
    pods: HashMap<String, Timestamp>,
    /// When the Service was created.
    service: Option<Timestamp>,
}

/// The time of the oldest change each sync publishes: a pod's Ready
/// transition, or the Service's creation, that the last sync had not seen.
/// Kept per Service across syncs, as kube-controller-manager does.
#[derive(Default)]
pub(crate) struct TriggerTimes {
    seen: Mutex<HashMap<(String, String), Seen>>,
}

impl TriggerTimes {
    /// Records what the Service and its pods look like now and returns the
    /// time of the oldest change since the last call (for a Service not seen
    /// before, its creation), or None when nothing it can date changed.
    pub(crate) fn observe(&self, svc: &Service, pods: &[Arc<Pod>]) -> Option<Timestamp> {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        let mut seen = self.seen.lock().expect("trigger times poisoned");
        let known = seen.contains_key(&key);
        let state = seen.entry(key).or_default();
        let mut oldest: Option<Timestamp> = None;
        let mut older = |t: Timestamp| oldest = Some(oldest.map_or(t, |o| o.min(t)));
        let mut now = HashMap::new();
        for pod in pods {
            let Some(t) = ready_condition(pod).and_then(|c| c.last_transition_time.as_ref()) else {
                continue;
            };
            let name = pod.name_any();
            if state.pods.get(&name).is_none_or(|before| t.0 > *before) {
                older(t.0);
            }
            now.insert(name, t.0);
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(c) = created
            && state.service.is_none_or(|before| c > before)
        {
            older(c);
        }
        state.pods = now;
        state.service = created;
        if known { oldest } else { created }
    }

    /// Forgets a Service that was deleted.
    pub(crate) fn forget(&self, namespace: &str, name: &str) {
        let mut seen = self.seen.lock().expect("trigger times poisoned");
        seen.remove(&(namespace.to_owned(), name.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn port(v: serde_json::Value) -> ServicePort {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn target_ports_by_number_and_name() {
        let p = pod(json!({
            "metadata": {"name": "a"},
            "spec": {
                "containers": [{"name": "c", "ports": [
                    {"name": "http", "containerPort": 8080},
                    {"name": "dns", "containerPort": 5353, "protocol": "UDP"}
                ]}],
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]},
                    {"name": "init", "ports": [{"name": "setup", "containerPort": 7070}]}
                ]
            }
        }));
        let at = |v| target_port(&p, &port(v));
        assert_eq!(at(json!({"port": 80})), Some(80));
        assert_eq!(at(json!({"port": 80, "targetPort": 81})), Some(81));
        assert_eq!(at(json!({"port": 80, "targetPort": "http"})), Some(8080));
        assert_eq!(at(json!({"port": 80, "targetPort": "metrics"})), Some(9090));
        assert_eq!(at(json!({"port": 80, "targetPort": "setup"})), None);
        assert_eq!(at(json!({"port": 80, "targetPort": "https"})), None);
        // The protocol must match too.
        assert_eq!(at(json!({"port": 53, "targetPort": "dns"})), None);
        assert_eq!(
            at(json!({"port": 53, "targetPort": "dns", "protocol": "UDP"})),
            Some(5353)
        );
    }

    #[test]
    fn which_pods_are_listed() {
        let base =
            json!({"metadata": {"name": "a"}, "status": {"phase": "Running", "podIP": "10.0.0.1"}});
        assert!(is_listed(&pod(base.clone()), false));
        let mut v = base.clone();
        v["status"]["phase"] = json!("Succeeded");
        assert!(!is_listed(&pod(v), true));
        let mut v = base.clone();
        v["status"]["podIP"] = json!(null);
        assert!(!is_listed(&pod(v), true));
        let mut v = base.clone();
        v["status"]["podIP"] = json!("fd00::1");
        v["status"]["podIPs"] = json!([{"ip": "fd00::1"}, {"ip": "10.0.0.9"}]);
        assert_eq!(ipv4(&pod(v)).as_deref(), Some("10.0.0.9"));
        let mut v = base;
        v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!is_listed(&pod(v.clone()), false));
        assert!(is_listed(&pod(v), true));
    }

    #[test]
    fn trigger_time_is_the_oldest_unseen_change() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "d", "creationTimestamp": "2026-01-01T00:00:00Z"}
        }))
        .unwrap();
        let ready = |name: &str, at: &str| {
            Arc::new(pod(
                json!({"metadata": {"name": name}, "status": {"conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": at}
                ]}}),
            ))
        };
        let t = TriggerTimes::default();
        let a = ready("a", "2026-01-01T00:01:00Z");
        let show = |t: Option<Timestamp>| t.map(format_time);
        // A new Service: its creation.
        assert_eq!(
            show(t.observe(&svc, std::slice::from_ref(&a))).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        // Nothing new: nothing to date.
        assert_eq!(t.observe(&svc, std::slice::from_ref(&a)), None);
        // Two pods changed: the older change.
        let a2 = ready("a", "2026-01-01T00:03:00Z");
        let b = ready("b", "2026-01-01T00:02:00Z");
        assert_eq!(
            show(t.observe(&svc, &[a2, b])).as_deref(),
            Some("2026-01-01T00:02:00Z")
        );
        t.forget("d", "web");
        assert_eq!(
            show(t.observe(&svc, &[])).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
    }
}
