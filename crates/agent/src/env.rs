//! A container's environment as the kubelet builds it: `envFrom` sources in
//! order, then `env` entries (which win), each value expanded with the
//! variables before it; values from the pod's own fields
//! (`fieldRef`), its resources (`resourceFieldRef`), and ConfigMaps and
//! Secrets of its namespace. A missing source that is not optional stops
//! the container from being created (`CreateContainerConfigError`). Under
//! them all, the Services' variables (`service_env`), as Docker links once
//! named them: those names the pod sets itself win.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret, Service};
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;

use crate::pods::container::expand;

/// What the pod's own fields resolve to that the API object does not hold
/// yet (its addresses are the agent's to give).
#[derive(Clone, Debug, Default)]
pub(crate) struct PodFacts {
    pub(crate) pod_ip: String,
    pub(crate) host_ip: String,
    /// Allocatable of the node, for limits that are unset.
    pub(crate) node_allocatable:
        BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
}

/// Looks ConfigMaps and Secrets up once per build.
struct Sources<'a> {
    client: &'a kube::Client,
    namespace: &'a str,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Sources<'_> {
    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, String> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), self.namespace);
            let got = api
                .get_opt(name)
                .await
                .map_err(|e| crate::api_message(&e))?;
            self.config_maps.insert(name.to_owned(), got);
        }
        Ok(self.config_maps[name].as_ref())
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, String> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
            let got = api
                .get_opt(name)
                .await
                .map_err(|e| crate::api_message(&e))?;
            self.secrets.insert(name.to_owned(), got);
        }
        Ok(self.secrets[name].as_ref())
    }
}

/// The environment of `c`, in order, without the image's (the caller
/// merges those underneath): what the pod sets, then those of
/// `service_vars` it does not set.
pub(crate) async fn container_env(
    client: &kube::Client,
    pod: &Pod,
    c: &Container,
    facts: &PodFacts,
    service_vars: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut sources = Sources {
        client,
        namespace,
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| match out
        .iter_mut()
        .find(|(n, _)| *n == k)
    {
        Some(slot) => slot.1 = v,
        None => out.push((k, v)),
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_map(&r.name).await? {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        set(&mut out, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secret(&r.name).await? {
                Some(s) => {
                    for (k, v) in s.data.iter().flatten() {
                        set(
                            &mut out,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        }
    }
    for var in c.env.iter().flatten() {
        if let Some(v) = value(&mut sources, pod, c, var, facts, &out).await? {
            set(&mut out, var.name.clone(), v);
        }
    }
    for (k, v) in service_vars {
        if !out.iter().any(|(n, _)| n == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    Ok(out)
}

/// How long a container start waits for the agent's first list of Services.
const SERVICES_WAIT: Duration = Duration::from_secs(5);

/// The agent's cache of every Service, and whether its first list is in. The proxy's
/// watch keeps it (`ServicesWriter`); containers read their Service variables from it.
/// Any number of containers may wait for the first list at once: kube-runtime's own
/// `Store::wait_until_ready` wakes only the last of several tasks waiting together.
#[derive(Clone)]
pub(crate) struct Services {
    store: Store<Service>,
    listed: tokio::sync::watch::Receiver<bool>,
}

/// What keeps [`Services`]: the store's writer, and where its first list is reported done.
pub(crate) struct ServicesWriter {
    pub(crate) store: Writer<Service>,
    pub(crate) listed: Listed,
}

/// Reports a [`Services`] cache's first list done.
pub(crate) struct Listed(tokio::sync::watch::Sender<bool>);

impl Services {
    /// An empty cache, not listed yet, and its writer.
    pub(crate) fn new() -> (Self, ServicesWriter) {
        let (store, writer) = kube::runtime::reflector::store();
        let (listed_tx, listed) = tokio::sync::watch::channel(false);
        (
            Self { store, listed },
            ServicesWriter {
                store: writer,
                listed: Listed(listed_tx),
            },
        )
    }

    /// Every Service cached now.
    pub(crate) fn state(&self) -> Vec<std::sync::Arc<Service>> {
        self.store.state()
    }

    /// Waits (at most `limit`) until the first list is cached; `false` if it is not.
    async fn wait_listed(&self, limit: Duration) -> bool {
        let mut listed = self.listed.clone();
        matches!(
            tokio::time::timeout(limit, listed.wait_for(|l| *l)).await,
            Ok(Ok(_))
        )
    }
}

impl Listed {
    /// Says the first list is in the store: every waiter goes on.
    pub(crate) fn done(&self) {
        self.0.send_replace(true);
    }
}

/// The variables of the Services a pod sees, as the kubelet sets them: every
/// Service of the pod's namespace with a cluster IP (unless the pod says
/// `enableServiceLinks: false`), and `default/kubernetes` always. The
/// Services come from the agent's cache, waited for (a while) until first
/// listed.
pub(crate) async fn service_env(services: &Services, pod: &Pod) -> Vec<(String, String)> {
    if !services.wait_listed(SERVICES_WAIT).await {
        tracing::warn!("no Services listed yet: the container starts without their variables");
        return Vec::new();
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut seen: Vec<std::sync::Arc<Service>> = services
        .state()
        .into_iter()
        .filter(|s| {
            let ns = s.metadata.namespace.as_deref();
            let name = s.metadata.name.as_deref();
            (links && ns == Some(namespace))
                || (ns == Some("default") && name == Some("kubernetes"))
        })
        .collect();
    // The kubelet's order: by name, so later ones of the same variable
    // (none, in practice) win the same way every time.
    seen.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    seen.dedup_by(|a, b| {
        a.metadata.name == b.metadata.name && a.metadata.namespace == b.metadata.namespace
    });
    let mut out = Vec::new();
    for svc in seen {
        link_vars(&svc, &mut out);
    }
    out
}

/// One Service's variables: `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`
/// (its first port), `<NAME>_SERVICE_PORT_<PORT NAME>`, and the Docker
/// link forms `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>` with `_PROTO`,
/// `_PORT` and `_ADDR`. None for a Service without a cluster IP (headless,
/// ExternalName).
fn link_vars(svc: &Service, out: &mut Vec<(String, String)>) {
    let Some(spec) = &svc.spec else { return };
    let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    else {
        return;
    };
    let name = svc
        .metadata
        .name
        .as_deref()
        .unwrap_or_default()
        .to_ascii_uppercase()
        .replace('-', "_");
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else { return };
    out.push((format!("{name}_SERVICE_HOST"), ip.to_owned()));
    out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
    for p in ports {
        if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let port_name = port_name.to_ascii_uppercase().replace('-', "_");
            out.push((
                format!("{name}_SERVICE_PORT_{port_name}"),
                p.port.to_string(),
            ));
        }
    }
    let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.clone().unwrap_or_else(|| "TCP".into())
    };
    out.push((
        format!("{name}_PORT"),
        format!(
            "{}://{ip}:{}",
            proto(first).to_ascii_lowercase(),
            first.port
        ),
    ));
    for p in ports {
        let upper = proto(p).to_ascii_uppercase();
        let prefix = format!("{name}_PORT_{}_{upper}", p.port);
        out.push((
            prefix.clone(),
            format!("{}://{ip}:{}", upper.to_ascii_lowercase(), p.port),
        ));
        out.push((format!("{prefix}_PROTO"), upper.to_ascii_lowercase()));
        out.push((format!("{prefix}_PORT"), p.port.to_string()));
        out.push((format!("{prefix}_ADDR"), ip.to_owned()));
    }
}

/// One `env` entry's value; `None` for an optional source that is missing.
async fn value(
    sources: &mut Sources<'_>,
    pod: &Pod,
    c: &Container,
    var: &EnvVar,
    facts: &PodFacts,
    before: &[(String, String)],
) -> Result<Option<String>, String> {
    let Some(from) = &var.value_from else {
        let vars: HashMap<&str, &str> = before
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        return Ok(Some(expand(
            var.value.as_deref().unwrap_or_default(),
            &vars,
        )));
    };
    if let Some(f) = &from.field_ref {
        return field(pod, &f.field_path, facts).map(Some);
    }
    if let Some(r) = &from.resource_field_ref {
        let target = match &r.container_name {
            Some(name) if !name.is_empty() => pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|x| &x.name == name))
                .ok_or_else(|| format!("container {name} not found in the pod"))?,
            _ => c,
        };
        return resource_field(target, &r.resource, r.divisor.as_ref(), facts).map(Some);
    }
    if let Some(k) = &from.config_map_key_ref {
        let optional = k.optional == Some(true);
        return match sources.config_map(&k.name).await? {
            Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&k.key)) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(format!(
                    "couldn't find key {} in ConfigMap {}/{}",
                    k.key, sources.namespace, k.name
                )),
            },
            None if optional => Ok(None),
            None => Err(format!("configmap \"{}\" not found", k.name)),
        };
    }
    if let Some(k) = &from.secret_key_ref {
        let optional = k.optional == Some(true);
        return match sources.secret(&k.name).await? {
            Some(s) => match s.data.as_ref().and_then(|d| d.get(&k.key)) {
                Some(v) => Ok(Some(String::from_utf8_lossy(&v.0).into_owned())),
                None if optional => Ok(None),
                None => Err(format!(
                    "couldn't find key {} in Secret {}/{}",
                    k.key, sources.namespace, k.name
                )),
            },
            None if optional => Ok(None),
            None => Err(format!("secret \"{}\" not found", k.name)),
        };
    }
    Ok(Some(String::new()))
}

/// A `fieldRef` path of the pod.
pub(crate) fn field(pod: &Pod, path: &str, facts: &PodFacts) -> Result<String, String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(|k| map.and_then(|m| m.get(k)).cloned().unwrap_or_default())
    };
    if let Some(v) = keyed("metadata.labels['", m.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = keyed("metadata.annotations['", m.annotations.as_ref()) {
        return Ok(v);
    }
    let render_map = |map: Option<&BTreeMap<String, String>>| {
        map.into_iter()
            .flatten()
            .map(|(k, v)| {
                format!(
                    "{k}=\"{}\"",
                    v.replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => render_map(m.labels.as_ref()),
        "metadata.annotations" => render_map(m.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        other => return Err(format!("unsupported fieldPath: {other}")),
    })
}

/// A `resourceFieldRef`: a request or limit divided by the divisor,
/// rounded up; an unset limit is the node's allocatable.
pub(crate) fn resource_field(
    c: &Container,
    resource: &str,
    divisor: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    facts: &PodFacts,
) -> Result<String, String> {
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource: {resource}"))?;
    let r = c.resources.as_ref();
    let list = match kind {
        "limits" => r.and_then(|r| r.limits.as_ref()),
        "requests" => r.and_then(|r| r.requests.as_ref()),
        _ => return Err(format!("unsupported container resource: {resource}")),
    };
    let milli = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        kinds::parse_quantity(&q.0).map(|q| q.milli_value())
    };
    let value = list
        .and_then(|l| l.get(name))
        .and_then(milli)
        .or_else(|| {
            (kind == "limits")
                .then(|| facts.node_allocatable.get(name).and_then(milli))
                .flatten()
        })
        .unwrap_or(0);
    let divisor = divisor.and_then(milli).filter(|d| *d > 0).unwrap_or(1000);
    let n = (value + divisor - 1) / divisor;
    Ok(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn services_as_docker_links() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "redis-primary", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [
                {"name": "redis", "port": 6379},
                {"name": "metrics-udp", "port": 9121, "protocol": "UDP"}
            ]}
        }))
        .unwrap();
        let mut out = Vec::new();
        link_vars(&svc, &mut out);
        let got: BTreeMap<String, String> = out.into_iter().collect();
        let want: BTreeMap<String, String> = [
            ("REDIS_PRIMARY_SERVICE_HOST", "10.96.0.20"),
            ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_REDIS", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_METRICS_UDP", "9121"),
            ("REDIS_PRIMARY_PORT", "tcp://10.96.0.20:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.96.0.20:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.96.0.20"),
            ("REDIS_PRIMARY_PORT_9121_UDP", "udp://10.96.0.20:9121"),
            ("REDIS_PRIMARY_PORT_9121_UDP_PROTO", "udp"),
            ("REDIS_PRIMARY_PORT_9121_UDP_PORT", "9121"),
            ("REDIS_PRIMARY_PORT_9121_UDP_ADDR", "10.96.0.20"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(got, want);
        // Headless: nothing.
        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}
        }))
        .unwrap();
        let mut out = Vec::new();
        link_vars(&headless, &mut out);
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn a_pod_sees_its_namespace_and_the_api_server() {
        let (store, mut writer) = Services::new();
        let svc = |ns: &str, name: &str, ip: &str| -> Service {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": ns},
                "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": 443}]}
            }))
            .unwrap()
        };
        writer
            .store
            .apply_watcher_event(&kube::runtime::watcher::Event::Init);
        for s in [
            svc("default", "kubernetes", "10.96.0.1"),
            svc("shop", "web", "10.96.0.30"),
            svc("other", "web2", "10.96.0.31"),
        ] {
            writer
                .store
                .apply_watcher_event(&kube::runtime::watcher::Event::InitApply(s));
        }
        writer
            .store
            .apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
        writer.listed.done();
        let pod = |links: Option<bool>| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "shop"},
                "spec": {"containers": [], "enableServiceLinks": links}
            }))
            .unwrap()
        };
        let names = |vars: Vec<(String, String)>| -> Vec<String> {
            vars.into_iter()
                .filter(|(k, _)| k.ends_with("_SERVICE_HOST"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        };
        assert_eq!(
            names(service_env(&store, &pod(None)).await),
            [
                "KUBERNETES_SERVICE_HOST=10.96.0.1",
                "WEB_SERVICE_HOST=10.96.0.30"
            ]
        );
        assert_eq!(
            names(service_env(&store, &pod(Some(false))).await),
            ["KUBERNETES_SERVICE_HOST=10.96.0.1"]
        );
        // What the pod sets itself wins.
        let c: Container = serde_json::from_value(json!({
            "name": "c", "env": [{"name": "WEB_SERVICE_HOST", "value": "mine"}]
        }))
        .unwrap();
        // Never asked anything: the container sets no ConfigMap or Secret.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let vars = service_env(&store, &pod(None)).await;
        let env = container_env(&client, &pod(None), &c, &PodFacts::default(), &vars)
            .await
            .unwrap();
        let value = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(value("WEB_SERVICE_HOST"), Some("mine"));
        assert_eq!(value("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(value("WEB_PORT"), Some("tcp://10.96.0.30:443"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn containers_starting_together_all_see_the_first_list() {
        let (store, mut writer) = Services::new();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": []}
        }))
        .unwrap();
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let (store, pod) = (store.clone(), pod.clone());
                tokio::spawn(async move { service_env(&store, &pod).await })
            })
            .collect();
        // All four are waiting before the list arrives.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let api: Service = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}
        }))
        .unwrap();
        let events = [
            kube::runtime::watcher::Event::Init,
            kube::runtime::watcher::Event::InitApply(api),
            kube::runtime::watcher::Event::InitDone,
        ];
        for event in &events {
            writer.store.apply_watcher_event(event);
        }
        writer.listed.done();
        for w in waiting {
            let vars = tokio::time::timeout(Duration::from_secs(1), w)
                .await
                .expect("a waiter was never woken")
                .unwrap();
            assert!(
                vars.iter()
                    .any(|(k, v)| k == "KUBERNETES_SERVICE_HOST" && v == "10.96.0.1"),
                "{vars:?}"
            );
        }
    }

    #[test]
    fn fields_of_the_pod() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "labels": {"app": "web", "tier": "front"}},
            "spec": {"nodeName": "n1", "containers": []}
        }))
        .unwrap();
        let facts = PodFacts {
            pod_ip: "10.244.0.5".into(),
            host_ip: "10.0.0.1".into(),
            ..PodFacts::default()
        };
        assert_eq!(field(&pod, "metadata.name", &facts).unwrap(), "web");
        assert_eq!(
            field(&pod, "metadata.labels['app']", &facts).unwrap(),
            "web"
        );
        assert_eq!(
            field(&pod, "metadata.labels", &facts).unwrap(),
            "app=\"web\"\ntier=\"front\""
        );
        assert_eq!(field(&pod, "status.podIP", &facts).unwrap(), "10.244.0.5");
        assert_eq!(
            field(&pod, "spec.serviceAccountName", &facts).unwrap(),
            "default"
        );
        assert!(field(&pod, "spec.bogus", &facts).is_err());
    }

    #[test]
    fn resource_fields_divide_and_round_up() {
        let c: Container = serde_json::from_value(json!({"name": "a", "resources": {
            "requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}))
        .unwrap();
        let mut facts = PodFacts::default();
        facts.node_allocatable.insert(
            "cpu".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
        );
        let q = |s: &str| k8s_openapi::apimachinery::pkg::api::resource::Quantity(s.into());
        assert_eq!(
            resource_field(&c, "requests.cpu", None, &facts).unwrap(),
            "1"
        );
        assert_eq!(
            resource_field(&c, "requests.cpu", Some(&q("1m")), &facts).unwrap(),
            "250"
        );
        assert_eq!(
            resource_field(&c, "limits.memory", Some(&q("1Mi")), &facts).unwrap(),
            "128"
        );
        assert_eq!(resource_field(&c, "limits.cpu", None, &facts).unwrap(), "2");
    }
}
