//! The routing table, pure: built from the cluster's Ingresses, IngressClasses, Services,
//! EndpointSlices and TLS Secrets, read by every request and never changed after.
//!
//! Which Ingresses: those whose `spec.ingressClassName` names an IngressClass with
//! `spec.controller: gantry.dev/ingress` (or, the deprecated way, whose
//! `kubernetes.io/ingress.class` annotation names one), and those naming no class at all
//! when one of our IngressClasses carries `ingressclass.kubernetes.io/is-default-class:
//! "true"`.
//!
//! How a request is routed, after the Ingress specification: its host is looked up among
//! the exact hosts, then among the wildcards (`*.example.com` covers `a.example.com`, one
//! label deep, not `example.com` nor `a.b.example.com`), then among the rules naming no
//! host; in each, an `Exact` path equal to the request's wins, else the longest `Prefix`
//! path that matches it element by element (`/foo` matches `/foo` and `/foo/bar`, not
//! `/foobar`; `ImplementationSpecific` is read as `Prefix`). A level with no matching path
//! hands the request to the next; after the last comes a `spec.defaultBackend`, then 404.
//! Rules of several Ingresses for one host are merged; where two claim the same host and
//! path, the older Ingress wins (as ingress-nginx decides).
//!
//! A backend is a Service port in the Ingress' namespace, by number or name, resolved to
//! the ready endpoints of the Service's EndpointSlices (label
//! `kubernetes.io/service-name`) at the slices' port of the same name, taken in turn. A
//! backend that names a missing Service or port is kept with no endpoints (503), and a
//! missing or unreadable TLS Secret leaves its hosts on the fake certificate and plain
//! HTTP; each such problem is a [`Warning`] for an Event on the Ingress, and every other
//! route is built as usual.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use rustls::sign::CertifiedKey;

/// The `spec.controller` of the IngressClasses this controller serves.
pub const CONTROLLER: &str = "gantry.dev/ingress";
/// The annotation that makes an IngressClass the one for Ingresses naming none.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The annotation Ingresses named their class with before `spec.ingressClassName`.
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The objects a table is built from, as the watches hold them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Objects<'a> {
    /// Every Ingress; those of other classes are skipped.
    pub ingresses: &'a [&'a Ingress],
    /// Every IngressClass.
    pub classes: &'a [&'a IngressClass],
    /// Services, of every namespace.
    pub services: &'a [&'a Service],
    /// EndpointSlices, of every namespace.
    pub slices: &'a [&'a EndpointSlice],
    /// Secrets holding certificates (type `kubernetes.io/tls`).
    pub secrets: &'a [&'a Secret],
}

/// A problem with one Ingress, for a Warning Event on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Warning {
    /// The Ingress' namespace.
    pub namespace: String,
    /// The Ingress' name.
    pub name: String,
    /// The Ingress' uid, so the Event is about this Ingress and not a later one of its name.
    pub uid: Option<String>,
    /// A word for the kind of problem, in an Event's `reason`.
    pub reason: &'static str,
    /// What is wrong, naming the object at fault.
    pub message: String,
}

/// An Ingress this controller serves, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Served {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Where requests for one route go: a Service port's ready endpoints, taken in turn.
#[derive(Debug)]
pub struct Backend {
    /// `<namespace>/<service>:<port>`, for logs.
    pub name: String,
    endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Backend {
    fn new(name: String, endpoints: Vec<SocketAddr>) -> Self {
        Self {
            name,
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// The next endpoint in turn, or `None` when there is none ready (503).
    pub fn pick(&self) -> Option<SocketAddr> {
        match self.endpoints.len() {
            0 => None,
            1 => Some(self.endpoints[0]),
            n => Some(self.endpoints[self.next.fetch_add(1, Ordering::Relaxed) % n]),
        }
    }

    /// The ready endpoints.
    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }
}

/// The paths of one host (or of the rules naming none).
#[derive(Debug, Default)]
struct Paths {
    /// `Exact` paths.
    exact: HashMap<String, Arc<Backend>>,
    /// `Prefix` paths without their trailing `/` (`/` itself is the empty string), longest
    /// first.
    prefixes: Vec<(String, Arc<Backend>)>,
}

impl Paths {
    fn find(&self, path: &str) -> Option<&Arc<Backend>> {
        if let Some(b) = self.exact.get(path) {
            return Some(b);
        }
        self.prefixes
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map(|(_, b)| b)
    }

    fn insert(&mut self, kind: PathKind, path: &str, backend: &Arc<Backend>) -> bool {
        match kind {
            PathKind::Exact => {
                if self.exact.contains_key(path) {
                    return false;
                }
                self.exact.insert(path.to_owned(), Arc::clone(backend));
            }
            PathKind::Prefix => {
                let prefix = path.trim_end_matches('/');
                if self.prefixes.iter().any(|(p, _)| p == prefix) {
                    return false;
                }
                // Longest first; among equals, the first inserted (the older Ingress).
                let at = self
                    .prefixes
                    .iter()
                    .position(|(p, _)| p.len() < prefix.len())
                    .unwrap_or(self.prefixes.len());
                self.prefixes
                    .insert(at, (prefix.to_owned(), Arc::clone(backend)));
            }
        }
        true
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// Whether `prefix` (without its trailing `/`) matches `path` element by element.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathKind {
    Exact,
    Prefix,
}

/// The routing table: what every request is matched against.
#[derive(Debug, Default)]
pub struct Table {
    exact_hosts: HashMap<String, Paths>,
    /// Wildcard hosts by the domain under the `*.` (`example.com` for `*.example.com`).
    wildcard_hosts: HashMap<String, Paths>,
    any_host: Paths,
    default_backend: Option<Arc<Backend>>,
    /// Certificates by exact host name, and by the domain under a wildcard's `*.`.
    certificates: HashMap<String, Arc<CertifiedKey>>,
    wildcard_certificates: HashMap<String, Arc<CertifiedKey>>,
}

/// Where a request goes.
#[derive(Debug)]
pub enum Route<'a> {
    /// To this backend (its endpoints may be none: 503).
    Backend(&'a Arc<Backend>),
    /// Nowhere: no rule and no default backend (404).
    NotFound,
}

impl Table {
    /// Where a request for `host` (any case, with or without a port) and `path` (without
    /// its query) goes.
    pub fn route(&self, host: &str, path: &str) -> Route<'_> {
        let host = normalize_host(host);
        let levels = [
            self.exact_hosts.get(host.as_ref()),
            parent_domain(&host).and_then(|d| self.wildcard_hosts.get(d)),
            Some(&self.any_host),
        ];
        let path = if path.is_empty() { "/" } else { path };
        for paths in levels.into_iter().flatten() {
            if let Some(b) = paths.find(path) {
                return Route::Backend(b);
            }
        }
        match &self.default_backend {
            Some(b) => Route::Backend(b),
            None => Route::NotFound,
        }
    }

    /// The certificate of `server_name`, if an Ingress' `tls` gives one.
    pub fn certificate(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = normalize_host(server_name);
        self.certificates
            .get(name.as_ref())
            .or_else(|| parent_domain(&name).and_then(|d| self.wildcard_certificates.get(d)))
            .cloned()
    }

    /// Whether plain HTTP requests for `host` are redirected to HTTPS: hosts an Ingress
    /// lists under `tls` with a certificate that could be read.
    pub fn redirects_to_https(&self, host: &str) -> bool {
        if self.certificates.is_empty() && self.wildcard_certificates.is_empty() {
            return false;
        }
        self.certificate(host).is_some()
    }

    /// Whether the table routes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.exact_hosts.is_empty()
            && self.wildcard_hosts.is_empty()
            && self.any_host.is_empty()
            && self.default_backend.is_none()
    }
}

/// A host name lower-cased, without a port or a final dot.
fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = match host.rsplit_once(':') {
        // Not an IPv6 literal's colons.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// What a `*.` wildcard covering `host` is keyed by: `host` without its first label.
fn parent_domain(host: &str) -> Option<&str> {
    host.split_once('.')
        .map(|(_, rest)| rest)
        .filter(|d| !d.is_empty())
}

/// A table and what building it found.
#[derive(Debug)]
pub struct Built {
    /// The table.
    pub table: Table,
    /// Problems to report on the Ingresses.
    pub warnings: Vec<Warning>,
    /// The Ingresses the table serves, sorted.
    pub served: Vec<Served>,
}

/// Whether this controller serves `ingress`.
pub fn is_ours(ingress: &Ingress, classes: &[&IngressClass]) -> bool {
    let ours = |name: &str| {
        classes.iter().any(|c| {
            c.metadata.name.as_deref() == Some(name)
                && c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
        })
    };
    let named = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
                .map(String::as_str)
        });
    match named {
        Some(name) => ours(name),
        None => classes.iter().any(|c| {
            c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
                && c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true")
        }),
    }
}

/// The Services, slices and Secrets indexed for one build.
struct Index<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    /// Slices by namespace and Service name.
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    secrets: HashMap<(&'a str, &'a str), &'a Secret>,
}

impl<'a> Index<'a> {
    fn new(objects: &Objects<'a>) -> Self {
        let key = |m: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            (
                m.namespace.as_deref().unwrap_or(""),
                m.name.as_deref().unwrap_or(""),
            )
        };
        let mut slices: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for s in objects.slices {
            let service = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let Some(service) = service {
                let ns = s.metadata.namespace.as_deref().unwrap_or("");
                slices.entry((ns, service.as_str())).or_default().push(*s);
            }
        }
        Self {
            services: objects
                .services
                .iter()
                .map(|s| (key(&s.metadata), *s))
                .collect(),
            slices,
            secrets: objects
                .secrets
                .iter()
                .map(|s| (key(&s.metadata), *s))
                .collect(),
        }
    }
}

/// Builds the routing table.
pub fn build(objects: &Objects<'_>) -> Built {
    let mut ingresses: Vec<&Ingress> = objects
        .ingresses
        .iter()
        .copied()
        .filter(|i| i.metadata.deletion_timestamp.is_none() && is_ours(i, objects.classes))
        .collect();
    // The older Ingress wins a host and path both claim.
    ingresses.sort_by(|a, b| {
        let key = |i: &&Ingress| {
            (
                i.metadata.creation_timestamp.as_ref().map(|t| t.0),
                i.metadata.namespace.clone(),
                i.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut builder = Builder {
        index: Index::new(objects),
        table: Table::default(),
        warnings: Vec::new(),
        backends: HashMap::new(),
        certificates: HashMap::new(),
    };
    let mut served = Vec::new();
    for ingress in ingresses {
        builder.add(ingress);
        served.push(Served {
            namespace: ingress.metadata.namespace.clone().unwrap_or_default(),
            name: ingress.metadata.name.clone().unwrap_or_default(),
        });
    }
    served.sort();
    Built {
        table: builder.table,
        warnings: builder.warnings,
        served,
    }
}

/// A Secret's certificate, or the reason and message of a warning about it.
type CertificateRead = Result<Arc<CertifiedKey>, (&'static str, String)>;

struct Builder<'a> {
    index: Index<'a>,
    table: Table,
    warnings: Vec<Warning>,
    /// Backends by namespace, Service and port, shared by every route to them so that
    /// their turns are taken together.
    backends: HashMap<(String, String, String), Arc<Backend>>,
    /// Certificates read, by the Secret's namespace and name.
    certificates: HashMap<(String, String), CertificateRead>,
}

impl Builder<'_> {
    fn warn(&mut self, ingress: &Ingress, reason: &'static str, message: String) {
        let warning = Warning {
            namespace: ingress.metadata.namespace.clone().unwrap_or_default(),
            name: ingress.metadata.name.clone().unwrap_or_default(),
            uid: ingress.metadata.uid.clone(),
            reason,
            message,
        };
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    fn add(&mut self, ingress: &Ingress) {
        let Some(spec) = &ingress.spec else {
            return;
        };
        if let Some(default) = &spec.default_backend {
            let backend = self.backend(ingress, default);
            self.table.default_backend.get_or_insert(backend);
        }
        for rule in spec.rules.iter().flatten() {
            let Some(http) = &rule.http else {
                continue;
            };
            for path in &http.paths {
                let kind = match path.path_type.as_str() {
                    "Exact" => PathKind::Exact,
                    // Prefix, and ImplementationSpecific read as Prefix.
                    _ => PathKind::Prefix,
                };
                let backend = self.backend(ingress, &path.backend);
                let at = path
                    .path
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .unwrap_or("/");
                let host = rule.host.as_deref().map(normalize_host);
                let paths = match host.as_deref() {
                    None | Some("") => &mut self.table.any_host,
                    Some(h) => match h.strip_prefix("*.") {
                        Some(domain) => self
                            .table
                            .wildcard_hosts
                            .entry(domain.to_owned())
                            .or_default(),
                        None => self.table.exact_hosts.entry(h.to_owned()).or_default(),
                    },
                };
                paths.insert(kind, at, &backend);
            }
        }
        for tls in spec.tls.iter().flatten() {
            // No Secret named: the hosts get the fake certificate, as ingress-nginx does.
            let Some(secret) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
            let certificate = self.certificate(&namespace, secret);
            let certificate = match certificate {
                Ok(c) => c,
                Err((reason, message)) => {
                    self.warn(ingress, reason, message);
                    continue;
                }
            };
            let listed: Vec<String> = tls.hosts.iter().flatten().cloned().collect();
            // No hosts listed: the certificate covers the Ingress' own hosts.
            let hosts = if listed.is_empty() {
                spec.rules
                    .iter()
                    .flatten()
                    .filter_map(|r| r.host.clone())
                    .collect()
            } else {
                listed
            };
            for host in hosts {
                let host = normalize_host(&host).into_owned();
                let (map, key) = match host.strip_prefix("*.") {
                    Some(domain) => (&mut self.table.wildcard_certificates, domain.to_owned()),
                    None => (&mut self.table.certificates, host.clone()),
                };
                map.entry(key).or_insert_with(|| Arc::clone(&certificate));
            }
        }
    }

    fn certificate(&mut self, namespace: &str, name: &str) -> CertificateRead {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(found) = self.certificates.get(&key) {
            return found.clone();
        }
        let read = match self.index.secrets.get(&(namespace, name)) {
            None => Err((
                "SecretNotFound",
                format!(
                    "secret {namespace}/{name} not found; its hosts get the default certificate"
                ),
            )),
            Some(secret) => {
                let data = secret.data.as_ref();
                let field = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
                match (field("tls.crt"), field("tls.key")) {
                    (Some(cert), Some(key)) => crate::tls::certified_key(cert, key)
                        .map(Arc::new)
                        .map_err(|e| ("InvalidSecret", format!("secret {namespace}/{name}: {e}"))),
                    _ => Err((
                        "InvalidSecret",
                        format!("secret {namespace}/{name} lacks tls.crt or tls.key"),
                    )),
                }
            }
        };
        self.certificates.insert(key, read.clone());
        read
    }

    /// The backend `spec` names, made once per Service port.
    fn backend(&mut self, ingress: &Ingress, spec: &IngressBackend) -> Arc<Backend> {
        let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
        let Some(service) = &spec.service else {
            let what = spec
                .resource
                .as_ref()
                .map(|r| format!("{}/{}", r.kind, r.name))
                .unwrap_or_else(|| "nothing".into());
            self.warn(
                ingress,
                "UnsupportedBackend",
                format!("backend {what}: only Service backends are served; answering 503"),
            );
            return Arc::new(Backend::new(what, Vec::new()));
        };
        let port = service.port.as_ref();
        let port_text = match (
            port.and_then(|p| p.number),
            port.and_then(|p| p.name.as_deref()),
        ) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_owned(),
            (None, None) => String::new(),
        };
        let key = (namespace.clone(), service.name.clone(), port_text.clone());
        if let Some(b) = self.backends.get(&key) {
            let b = Arc::clone(b);
            // A backend already known to be broken is reported for this Ingress too.
            if b.endpoints.is_empty() {
                self.check_service(ingress, &namespace, &service.name, port);
            }
            return b;
        }
        let name = format!("{namespace}/{}:{port_text}", service.name);
        let endpoints = match self.check_service(ingress, &namespace, &service.name, port) {
            Some(port_name) => self.endpoints(&namespace, &service.name, port_name.as_deref()),
            None => Vec::new(),
        };
        let backend = Arc::new(Backend::new(name, endpoints));
        self.backends.insert(key, Arc::clone(&backend));
        backend
    }

    /// The name of the Service port `port` names (`None` for an unnamed port), or `None`
    /// with a warning when the Service or the port is missing.
    fn check_service(
        &mut self,
        ingress: &Ingress,
        namespace: &str,
        service: &str,
        port: Option<&k8s_openapi::api::networking::v1::ServiceBackendPort>,
    ) -> Option<Option<String>> {
        let Some(found) = self.index.services.get(&(namespace, service)) else {
            self.warn(
                ingress,
                "ServiceNotFound",
                format!("service {namespace}/{service} not found; answering 503"),
            );
            return None;
        };
        let ports = found
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_deref())
            .unwrap_or_default();
        let matched = ports.iter().find(|p| {
            p.protocol.as_deref().is_none_or(|proto| proto == "TCP")
                && match (
                    port.and_then(|p| p.number),
                    port.and_then(|p| p.name.as_deref()),
                ) {
                    (Some(n), _) => p.port == n,
                    (None, Some(name)) => p.name.as_deref() == Some(name),
                    (None, None) => false,
                }
        });
        match matched {
            Some(p) => Some(p.name.clone().filter(|n| !n.is_empty())),
            None => {
                let wanted = match (
                    port.and_then(|p| p.number),
                    port.and_then(|p| p.name.as_deref()),
                ) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(name)) => name.to_owned(),
                    (None, None) => "(none given)".into(),
                };
                self.warn(
                    ingress,
                    "PortNotFound",
                    format!(
                        "service {namespace}/{service} has no TCP port {wanted}; answering 503"
                    ),
                );
                None
            }
        }
    }

    /// The ready endpoints of a Service's port named `port_name`, sorted.
    fn endpoints(
        &self,
        namespace: &str,
        service: &str,
        port_name: Option<&str>,
    ) -> Vec<SocketAddr> {
        let mut found = Vec::new();
        for slice in self
            .index
            .slices
            .get(&(namespace, service))
            .into_iter()
            .flatten()
        {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            let port = slice.ports.iter().flatten().find(|p| {
                p.name.as_deref().filter(|n| !n.is_empty()) == port_name
                    && p.protocol.as_deref().is_none_or(|proto| proto == "TCP")
            });
            let Some(port) = port
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            for endpoint in &slice.endpoints {
                // Ready unless said otherwise, as the EndpointSlice API reads a missing
                // condition.
                if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                if let Some(ip) = endpoint
                    .addresses
                    .first()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                {
                    found.push(SocketAddr::new(ip, port));
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).expect("a valid object")
    }

    fn class(name: &str, controller: &str, default: bool) -> IngressClass {
        let mut annotations = serde_json::Map::new();
        if default {
            annotations.insert(DEFAULT_CLASS_ANNOTATION.into(), json!("true"));
        }
        from(json!({
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"controller": controller}
        }))
    }

    /// A Service `name` in `ns` with ports `http` 80 and `admin` 9000.
    fn service(ns: &str, name: &str) -> Service {
        from(json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "admin", "port": 9000, "targetPort": 9090}
            ]}
        }))
    }

    /// A slice of Service `name` whose ready endpoints are `ips`, plus one not ready
    /// (10.9.9.9), on ports `http` 8080 and `admin` 9090.
    fn slice(ns: &str, name: &str, ips: &[&str]) -> EndpointSlice {
        let mut endpoints: Vec<Value> = ips
            .iter()
            .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
            .collect();
        endpoints.push(json!({"addresses": ["10.9.9.9"], "conditions": {"ready": false}}));
        from(json!({
            "metadata": {"namespace": ns, "name": format!("{name}-abc"),
                "labels": {SERVICE_NAME_LABEL: name}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "admin", "port": 9090, "protocol": "TCP"}]
        }))
    }

    fn ingress(ns: &str, name: &str, created: &str, spec: Value) -> Ingress {
        from(json!({
            "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{name}"),
                "creationTimestamp": created},
            "spec": spec
        }))
    }

    fn path(kind: &str, path: &str, service: &str, port: Value) -> Value {
        json!({"path": path, "pathType": kind,
            "backend": {"service": {"name": service, "port": port}}})
    }

    fn tls_secret(ns: &str, name: &str, host: &str) -> Secret {
        let made = rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap();
        let b64 = |s: String| k8s_openapi::ByteString(s.into_bytes());
        let mut secret: Secret = from(json!({
            "metadata": {"namespace": ns, "name": name},
            "type": "kubernetes.io/tls"
        }));
        secret.data = Some(
            [
                ("tls.crt".to_owned(), b64(made.cert.pem())),
                ("tls.key".to_owned(), b64(made.signing_key.serialize_pem())),
            ]
            .into(),
        );
        secret
    }

    struct World {
        ingresses: Vec<Ingress>,
        classes: Vec<IngressClass>,
        services: Vec<Service>,
        slices: Vec<EndpointSlice>,
        secrets: Vec<Secret>,
    }

    impl World {
        /// Our default class `gantry`, another controller's `other`, and Services `web`
        /// (endpoints 10.0.0.1 and .2), `api` (10.0.1.1) and `empty` (none ready) in `ns`.
        fn new() -> Self {
            Self {
                ingresses: Vec::new(),
                classes: vec![
                    class("gantry", CONTROLLER, true),
                    class("other", "k8s.io/ingress-nginx", false),
                ],
                services: vec![
                    service("ns", "web"),
                    service("ns", "api"),
                    service("ns", "empty"),
                ],
                slices: vec![
                    slice("ns", "web", &["10.0.0.2", "10.0.0.1"]),
                    slice("ns", "api", &["10.0.1.1"]),
                    slice("ns", "empty", &[]),
                ],
                secrets: Vec::new(),
            }
        }

        fn build(&self) -> Built {
            let ingresses: Vec<&Ingress> = self.ingresses.iter().collect();
            let classes: Vec<&IngressClass> = self.classes.iter().collect();
            let services: Vec<&Service> = self.services.iter().collect();
            let slices: Vec<&EndpointSlice> = self.slices.iter().collect();
            let secrets: Vec<&Secret> = self.secrets.iter().collect();
            build(&Objects {
                ingresses: &ingresses,
                classes: &classes,
                services: &services,
                slices: &slices,
                secrets: &secrets,
            })
        }
    }

    /// The backend's name a request goes to, or "404".
    fn to(table: &Table, host: &str, path: &str) -> String {
        match table.route(host, path) {
            Route::Backend(b) => b.name.clone(),
            Route::NotFound => "404".into(),
        }
    }

    #[test]
    fn prefix_paths_match_element_by_element() {
        for (prefix, path, matches) in [
            ("/foo", "/foo", true),
            ("/foo/", "/foo", true),
            ("/foo", "/foo/", true),
            ("/foo", "/foo/bar", true),
            ("/foo", "/foobar", false),
            ("/foo/bar", "/foo", false),
            ("/", "/anything", true),
            ("/aaa/bb", "/aaa/bbb", false),
            ("/aaa/bbb", "/aaa/bbb/ccc", true),
        ] {
            let prefix = prefix.trim_end_matches('/');
            assert_eq!(prefix_matches(prefix, path), matches, "{prefix} vs {path}");
        }
    }

    #[test]
    fn exact_beats_prefix_and_longer_prefixes_win() {
        let mut w = World::new();
        w.ingresses.push(ingress(
            "ns",
            "a",
            "2024-01-01T00:00:00Z",
            json!({"rules": [{"host": "shop.test", "http": {"paths": [
                path("Prefix", "/", "web", json!({"number": 80})),
                path("Prefix", "/api", "api", json!({"number": 80})),
                path("Exact", "/api/health", "web", json!({"name": "admin"})),
                path("ImplementationSpecific", "/api/v2", "web", json!({"number": 9000})),
            ]}}]}),
        ));
        let built = w.build();
        assert!(built.warnings.is_empty(), "{:?}", built.warnings);
        let t = &built.table;
        assert_eq!(to(t, "shop.test", "/"), "ns/web:80");
        assert_eq!(to(t, "shop.test", "/apix"), "ns/web:80");
        assert_eq!(to(t, "shop.test", "/api"), "ns/api:80");
        assert_eq!(to(t, "shop.test", "/api/health"), "ns/web:admin");
        assert_eq!(to(t, "shop.test", "/api/health/x"), "ns/api:80");
        assert_eq!(to(t, "shop.test", "/api/v2/items"), "ns/web:9000");
        assert_eq!(to(t, "SHOP.test:8080", "/api"), "ns/api:80");
        assert_eq!(to(t, "other.test", "/"), "404");
    }

    #[test]
    fn wildcards_cover_one_label_and_exact_hosts_come_first() {
        let mut w = World::new();
        w.ingresses.push(ingress(
            "ns",
            "a",
            "2024-01-01T00:00:00Z",
            json!({"rules": [
                {"host": "*.example.com", "http": {"paths": [path("Prefix", "/", "web", json!({"number": 80}))]}},
                {"host": "api.example.com", "http": {"paths": [path("Prefix", "/v1", "api", json!({"number": 80}))]}},
                {"http": {"paths": [path("Exact", "/healthz", "api", json!({"name": "http"}))]}},
            ]}),
        ));
        let t = w.build().table;
        assert_eq!(to(&t, "www.example.com", "/x"), "ns/web:80");
        assert_eq!(to(&t, "api.example.com", "/v1/users"), "ns/api:80");
        // No path of the exact host matches: the wildcard's rules answer.
        assert_eq!(to(&t, "api.example.com", "/other"), "ns/web:80");
        assert_eq!(to(&t, "a.b.example.com", "/x"), "404");
        assert_eq!(to(&t, "example.com", "/x"), "404");
        assert_eq!(to(&t, "anything.test", "/healthz"), "ns/api:http");
        assert_eq!(to(&t, "www.example.com", "/healthz"), "ns/web:80");
    }

    #[test]
    fn ingresses_merge_by_host_and_the_older_wins_a_conflict() {
        let mut w = World::new();
        w.ingresses.push(ingress(
            "ns",
            "newer",
            "2024-02-01T00:00:00Z",
            json!({"rules": [{"host": "a.test", "http": {"paths": [
                path("Prefix", "/", "api", json!({"number": 80})),
                path("Prefix", "/new", "api", json!({"number": 80})),
            ]}}], "defaultBackend": {"service": {"name": "api", "port": {"number": 80}}}}),
        ));
        w.ingresses.push(ingress(
            "ns",
            "older",
            "2024-01-01T00:00:00Z",
            json!({"rules": [{"host": "a.test", "http": {"paths": [
                path("Prefix", "/", "web", json!({"number": 80})),
            ]}}], "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}),
        ));
        let built = w.build();
        let t = &built.table;
        assert_eq!(to(t, "a.test", "/"), "ns/web:80");
        assert_eq!(to(t, "a.test", "/new/x"), "ns/api:80");
        assert_eq!(
            to(t, "b.test", "/"),
            "ns/web:80",
            "the older default backend"
        );
        assert_eq!(
            built.served,
            [
                Served {
                    namespace: "ns".into(),
                    name: "newer".into()
                },
                Served {
                    namespace: "ns".into(),
                    name: "older".into()
                }
            ]
        );
    }

    #[test]
    fn only_our_classes_are_served() {
        let mut w = World::new();
        let rule = |host: &str| json!([{"host": host, "http": {"paths": [path("Prefix", "/", "web", json!({"number": 80}))]}}]);
        w.ingresses.push(ingress(
            "ns",
            "named",
            "2024-01-01T00:00:00Z",
            json!({"ingressClassName": "gantry", "rules": rule("named.test")}),
        ));
        w.ingresses.push(ingress(
            "ns",
            "unnamed",
            "2024-01-01T00:00:00Z",
            json!({"rules": rule("unnamed.test")}),
        ));
        w.ingresses.push(ingress(
            "ns",
            "theirs",
            "2024-01-01T00:00:00Z",
            json!({"ingressClassName": "other", "rules": rule("theirs.test")}),
        ));
        w.ingresses.push(ingress(
            "ns",
            "missing",
            "2024-01-01T00:00:00Z",
            json!({"ingressClassName": "nope", "rules": rule("missing.test")}),
        ));
        let mut legacy = ingress(
            "ns",
            "legacy",
            "2024-01-01T00:00:00Z",
            json!({"rules": rule("legacy.test")}),
        );
        legacy.metadata.annotations =
            Some([(LEGACY_CLASS_ANNOTATION.to_owned(), "other".to_owned())].into());
        w.ingresses.push(legacy);
        let t = w.build().table;
        assert_eq!(to(&t, "named.test", "/"), "ns/web:80");
        assert_eq!(to(&t, "unnamed.test", "/"), "ns/web:80");
        assert_eq!(to(&t, "theirs.test", "/"), "404");
        assert_eq!(to(&t, "missing.test", "/"), "404");
        assert_eq!(to(&t, "legacy.test", "/"), "404");

        // Our class no longer the default: Ingresses naming no class are not ours.
        w.classes[0] = class("gantry", CONTROLLER, false);
        let t = w.build().table;
        assert_eq!(to(&t, "named.test", "/"), "ns/web:80");
        assert_eq!(to(&t, "unnamed.test", "/"), "404");
    }

    #[test]
    fn endpoints_are_the_ready_ones_at_the_slice_port_taken_in_turn() {
        let mut w = World::new();
        w.ingresses.push(ingress(
            "ns",
            "a",
            "2024-01-01T00:00:00Z",
            json!({"rules": [
            {"host": "a.test", "http": {"paths": [
                path("Prefix", "/", "web", json!({"number": 80})),
                path("Prefix", "/admin", "web", json!({"name": "admin"})),
                path("Prefix", "/same", "web", json!({"name": "http"})),
            ]}}]}),
        ));
        let t = w.build().table;
        let Route::Backend(web) = t.route("a.test", "/") else {
            panic!("a backend")
        };
        assert_eq!(
            web.endpoints(),
            [
                "10.0.0.1:8080".parse().unwrap(),
                "10.0.0.2:8080".parse::<SocketAddr>().unwrap()
            ]
        );
        let picks: Vec<SocketAddr> = (0..4).map(|_| web.pick().unwrap()).collect();
        assert_eq!(picks[0], picks[2]);
        assert_eq!(picks[1], picks[3]);
        assert_ne!(picks[0], picks[1]);
        let Route::Backend(admin) = t.route("a.test", "/admin") else {
            panic!("a backend")
        };
        assert_eq!(
            admin.endpoints(),
            [
                "10.0.0.1:9090".parse().unwrap(),
                "10.0.0.2:9090".parse::<SocketAddr>().unwrap()
            ]
        );
        let Route::Backend(same) = t.route("a.test", "/same") else {
            panic!("a backend")
        };
        assert_eq!(same.endpoints(), web.endpoints());
    }

    #[test]
    fn bad_backends_answer_503_and_are_reported_while_the_rest_works() {
        let mut w = World::new();
        w.ingresses.push(ingress("ns", "a", "2024-01-01T00:00:00Z", json!({"rules": [
            {"host": "a.test", "http": {"paths": [
                path("Prefix", "/", "web", json!({"number": 80})),
                path("Prefix", "/gone", "nosuch", json!({"number": 80})),
                path("Prefix", "/badport", "web", json!({"number": 81})),
                path("Prefix", "/badname", "web", json!({"name": "grpc"})),
                path("Prefix", "/empty", "empty", json!({"number": 80})),
                {"path": "/bucket", "pathType": "Prefix", "backend":
                    {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "b"}}},
            ]}}]})));
        let built = w.build();
        let t = &built.table;
        assert!(matches!(t.route("a.test", "/"), Route::Backend(b) if b.pick().is_some()));
        for p in ["/gone", "/badport", "/badname", "/empty", "/bucket"] {
            let Route::Backend(b) = t.route("a.test", p) else {
                panic!("{p}: a backend")
            };
            assert_eq!(b.pick(), None, "{p}");
        }
        let reasons: Vec<(&str, &str)> = built
            .warnings
            .iter()
            .map(|w| (w.reason, w.message.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "ServiceNotFound",
                    "service ns/nosuch not found; answering 503"
                ),
                (
                    "PortNotFound",
                    "service ns/web has no TCP port 81; answering 503"
                ),
                (
                    "PortNotFound",
                    "service ns/web has no TCP port grpc; answering 503"
                ),
                (
                    "UnsupportedBackend",
                    "backend StorageBucket/b: only Service backends are served; answering 503"
                ),
            ]
        );
        assert!(
            built
                .warnings
                .iter()
                .all(|w| w.uid.as_deref() == Some("uid-a"))
        );
    }

    #[test]
    fn tls_hosts_get_their_certificate_by_sni_and_a_missing_secret_is_reported() {
        let mut w = World::new();
        w.secrets.push(tls_secret("ns", "a-cert", "a.test"));
        w.secrets.push(tls_secret("ns", "wild-cert", "*.w.test"));
        let mut broken = tls_secret("ns", "broken", "c.test");
        broken.data.as_mut().unwrap().remove("tls.key");
        w.secrets.push(broken);
        let rules = json!([
            {"host": "a.test", "http": {"paths": [path("Prefix", "/", "web", json!({"number": 80}))]}},
            {"host": "b.test", "http": {"paths": [path("Prefix", "/", "api", json!({"number": 80}))]}},
        ]);
        w.ingresses.push(ingress(
            "ns",
            "a",
            "2024-01-01T00:00:00Z",
            json!({
                "rules": rules,
                "tls": [
                    {"hosts": ["a.test"], "secretName": "a-cert"},
                    {"hosts": ["b.test"], "secretName": "missing"},
                    {"hosts": ["*.w.test"], "secretName": "wild-cert"},
                    {"hosts": ["c.test"], "secretName": "broken"},
                ]
            }),
        ));
        let built = w.build();
        let t = &built.table;
        assert!(t.certificate("a.test").is_some());
        assert!(t.certificate("A.TEST").is_some());
        assert!(t.certificate("x.w.test").is_some());
        assert!(t.certificate("w.test").is_none());
        assert!(t.certificate("b.test").is_none());
        assert!(t.redirects_to_https("a.test:80"));
        assert!(
            !t.redirects_to_https("b.test"),
            "no certificate: plain HTTP keeps working"
        );
        assert_eq!(to(t, "b.test", "/"), "ns/api:80");
        let reasons: Vec<&str> = built.warnings.iter().map(|w| w.reason).collect();
        assert_eq!(reasons, ["SecretNotFound", "InvalidSecret"]);
        assert_eq!(
            built.warnings[0].message,
            "secret ns/missing not found; its hosts get the default certificate"
        );
    }

    #[test]
    fn no_rules_and_no_default_is_404_and_deleting_ingresses_are_skipped() {
        let mut w = World::new();
        assert!(w.build().table.is_empty());
        let mut going = ingress(
            "ns",
            "a",
            "2024-01-01T00:00:00Z",
            json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}),
        );
        going.metadata.deletion_timestamp = going.metadata.creation_timestamp.clone();
        w.ingresses.push(going);
        let built = w.build();
        assert_eq!(to(&built.table, "x", "/"), "404");
        assert!(built.served.is_empty());
    }
}
