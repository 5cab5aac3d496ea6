//! The cluster's DNS records as plain data, built from Services,
//! EndpointSlices and Namespaces as the Kubernetes DNS specification
//! (schema 1.0.1) lays them out. No I/O: the server swaps a whole new
//! `Records` in on every change and looks names up in it.
//!
//! Names answered, for a zone `Z` (e.g. `cluster.local.`):
//! - `<svc>.<ns>.svc.Z`: A/AAAA of the ClusterIPs; for a headless Service
//!   the ready endpoints' addresses (no ready endpoint: the name does not
//!   exist, as the specification asks); for an ExternalName Service a CNAME.
//! - `_<port>._<proto>.<svc>.<ns>.svc.Z` SRV for each named port (and the
//!   same records at `<svc>.<ns>.svc.Z` itself, as CoreDNS answers), to the
//!   Service's name, or for a headless Service to each ready endpoint's
//!   `<hostname>.<svc>.<ns>.svc.Z` (its `hostname`, else its address with
//!   dashes), which has its A record.
//! - PTR for each ClusterIP and each ready headless endpoint address.
//! - `<a-b-c-d>.<ns>.pod.Z` A for any address in an existing namespace.
//! - The apex's SOA and NS, `ns.dns.Z` (the `kube-system/kube-dns`
//!   Service's addresses) and `dns-version.Z` TXT.
//!
//! Every name between a record and the apex exists (a query for it is
//! answered with no data, not NXDOMAIN); any other name in the zone does not.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The schema version of the Kubernetes DNS specification served, in
/// `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.0.1";

/// The label EndpointSlices name their Service with.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The objects records are built from, borrowed from wherever they are kept.
#[derive(Clone, Copy, Debug, Default)]
pub struct Objects<'a> {
    /// Every Service in the cluster.
    pub services: &'a [&'a Service],
    /// Every EndpointSlice in the cluster.
    pub slices: &'a [&'a EndpointSlice],
    /// The names of every Namespace.
    pub namespaces: &'a [&'a str],
}

/// What a name and type look up to.
#[derive(Debug)]
pub enum Answer<'a> {
    /// Not a name of the cluster's: to be forwarded.
    Elsewhere,
    /// The records are not known yet (the first lists are still coming):
    /// a failure the client retries, not a negative answer it caches.
    Unsynced,
    /// The records answering, and those to add to the additional section
    /// (the addresses of SRV targets).
    Found {
        /// The answer section.
        answers: Vec<&'a Record>,
        /// The additional section.
        additionals: Vec<&'a Record>,
    },
    /// An answer made for the query (pod names are not stored).
    Made(Box<Record>),
    /// The name is an ExternalName Service's alias: the CNAME answers,
    /// followed by the target's own records of the type asked.
    Alias {
        /// The CNAME record.
        cname: &'a Record,
        /// Where it points.
        target: &'a Name,
    },
    /// The name exists without records of this type (NOERROR, empty).
    NoData,
    /// The name does not exist in the zone.
    NxDomain,
}

/// The records of one name.
#[derive(Debug, Default)]
struct Node {
    /// Record sets by type, in the order they were made.
    sets: Vec<(RecordType, Vec<Record>)>,
    /// An alias, which then is the name's only record.
    cname: Option<Record>,
}

impl Node {
    fn set(&self, t: RecordType) -> Option<&[Record]> {
        self.sets
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.as_slice())
    }
}

/// The cluster's records, immutable once built.
#[derive(Debug)]
pub struct Records {
    zone: LowerName,
    pod_label: LowerName,
    synced: bool,
    soa: Record,
    nodes: HashMap<LowerName, Node>,
    namespaces: HashSet<String>,
}

impl Records {
    /// Records that are not known yet: names of the zone fail (SERVFAIL)
    /// rather than being denied, other names are forwarded.
    pub fn unsynced(zone: &Name, ttl: u32) -> Self {
        let zone = fqdn(zone);
        Self {
            pod_label: LowerName::new(
                &Name::from_ascii("pod")
                    .expect("a label")
                    .append_domain(&zone)
                    .expect("a short name"),
            ),
            soa: soa(&zone, ttl, 0),
            zone: LowerName::new(&zone),
            synced: false,
            nodes: HashMap::new(),
            namespaces: HashSet::new(),
        }
    }

    /// Builds the records of `zone` from the cluster's objects, every record
    /// with `ttl`; `serial` is the SOA's (it should grow with each build).
    pub fn build(zone: &Name, ttl: u32, serial: u32, objects: Objects<'_>) -> Self {
        let zone = fqdn(zone);
        let mut b = Builder {
            zone: zone.clone(),
            ttl,
            entries: HashMap::new(),
            reverse: Vec::new(),
        };
        let mut namespaces: HashSet<String> = objects
            .namespaces
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let svc_zone = b.child(&zone, "svc");
        let pod_zone = b.child(&zone, "pod");
        b.exists(&svc_zone);
        b.exists(&pod_zone);

        // Slices by (namespace, service).
        let mut slices: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for s in objects.slices {
            let Some(ns) = s.metadata.namespace.as_deref() else {
                continue;
            };
            let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            slices.entry((ns, svc.as_str())).or_default().push(s);
        }

        for svc in objects.services {
            let (Some(ns), Some(name)) = (
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
            ) else {
                continue;
            };
            namespaces.insert(ns.to_ascii_lowercase());
            let Some(ns_name) = b.child_opt(&svc_zone, ns) else {
                continue;
            };
            let Some(svc_name) = b.child_opt(&ns_name, name) else {
                continue;
            };
            let spec = svc.spec.clone().unwrap_or_default();
            if spec.type_.as_deref() == Some("ExternalName") {
                // An address is no alias (CoreDNS makes no record of it
                // either); the name still exists.
                let target = spec
                    .external_name
                    .as_deref()
                    .filter(|t| t.parse::<IpAddr>().is_err())
                    .and_then(|t| Name::from_ascii(t).ok())
                    .map(|t| fqdn(&t));
                b.entry(&svc_name).cname = target;
                continue;
            }
            let mut ips: Vec<&str> = spec
                .cluster_ips
                .iter()
                .flatten()
                .map(String::as_str)
                .collect();
            if ips.is_empty() {
                ips.extend(spec.cluster_ip.as_deref());
            }
            if ips.first() == Some(&"None") {
                let own = slices.remove(&(ns, name)).unwrap_or_default();
                b.headless(
                    &svc_name,
                    &own,
                    spec.publish_not_ready_addresses == Some(true),
                );
                continue;
            }
            b.exists(&svc_name);
            for ip in ips.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()) {
                b.address(&svc_name, ip);
                b.reverse.push((ip, svc_name.clone()));
                if ns == "kube-system" && name == "kube-dns" {
                    let ns_dns = Name::from_ascii("ns.dns")
                        .expect("a name")
                        .append_domain(&zone)
                        .expect("a short name");
                    b.address(&ns_dns, ip);
                }
            }
            for p in spec.ports.iter().flatten() {
                let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                let Ok(port) = u16::try_from(p.port) else {
                    continue;
                };
                b.srv(&svc_name, port_name, proto, port, svc_name.clone());
            }
        }

        let mut records = b.finish(serial);
        records.namespaces = namespaces;
        for ns in &records.namespaces {
            for parent in [&svc_zone, &pod_zone] {
                if let Ok(n) = Name::from_ascii(ns).and_then(|l| l.append_domain(parent)) {
                    records.nodes.entry(LowerName::new(&n)).or_default();
                }
            }
        }
        records
    }

    /// The zone's apex, e.g. `cluster.local.`.
    pub fn zone(&self) -> &LowerName {
        &self.zone
    }

    /// The zone's SOA record, for the authority section of negative answers.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// Whether the records reflect the cluster (its objects were listed).
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Whether `name` is the zone's or one of its PTR names: answered here,
    /// authoritatively.
    pub fn is_ours(&self, name: &LowerName) -> bool {
        self.zone.zone_of(name) || self.nodes.contains_key(name)
    }

    /// Looks `name` up for records of type `qtype`.
    pub fn lookup(&self, name: &LowerName, qtype: RecordType) -> Answer<'_> {
        let in_zone = self.zone.zone_of(name);
        if !self.synced {
            return if in_zone {
                Answer::Unsynced
            } else {
                Answer::Elsewhere
            };
        }
        let Some(node) = self.nodes.get(name) else {
            if !in_zone {
                return Answer::Elsewhere;
            }
            return self.pod(name, qtype);
        };
        if let Some(cname) = &node.cname {
            if qtype == RecordType::CNAME || qtype == RecordType::ANY {
                return Answer::Found {
                    answers: vec![cname],
                    additionals: Vec::new(),
                };
            }
            let RData::CNAME(CNAME(target)) = &cname.data else {
                unreachable!("an alias is a CNAME record")
            };
            return Answer::Alias { cname, target };
        }
        let answers: Vec<&Record> = if qtype == RecordType::ANY {
            node.sets.iter().flat_map(|(_, v)| v).collect()
        } else {
            node.set(qtype)
                .map(|v| v.iter().collect())
                .unwrap_or_default()
        };
        if answers.is_empty() {
            return Answer::NoData;
        }
        let mut additionals = Vec::new();
        if qtype == RecordType::SRV {
            let mut seen = HashSet::new();
            for r in &answers {
                let RData::SRV(srv) = &r.data else { continue };
                let target = LowerName::new(&srv.target);
                if !seen.insert(target.clone()) {
                    continue;
                }
                if let Some(n) = self.nodes.get(&target) {
                    for t in [RecordType::A, RecordType::AAAA] {
                        additionals.extend(n.set(t).into_iter().flatten());
                    }
                }
            }
        }
        Answer::Found {
            answers,
            additionals,
        }
    }

    /// `<a-b-c-d>.<ns>.pod.<zone>`: made for any address in a namespace
    /// that exists (CoreDNS's `pods insecure`, kubeadm's default).
    fn pod(&self, name: &LowerName, qtype: RecordType) -> Answer<'_> {
        if name.num_labels() != self.pod_label.num_labels() + 2 || !self.pod_label.zone_of(name) {
            return Answer::NxDomain;
        }
        let mut labels = name.iter();
        let (Some(ip), Some(ns)) = (labels.next(), labels.next()) else {
            return Answer::NxDomain;
        };
        let (Ok(ip), Ok(ns)) = (std::str::from_utf8(ip), std::str::from_utf8(ns)) else {
            return Answer::NxDomain;
        };
        if !self.namespaces.contains(ns) {
            return Answer::NxDomain;
        }
        let Ok(addr) = ip.replace('-', ".").parse::<Ipv4Addr>() else {
            return Answer::NxDomain;
        };
        if qtype != RecordType::A && qtype != RecordType::ANY {
            return Answer::NoData;
        }
        Answer::Made(Box::new(Record::from_rdata(
            Name::from(name.clone()),
            self.soa.ttl,
            RData::A(A(addr)),
        )))
    }
}

/// One name's records while they are collected.
#[derive(Default)]
struct Entry {
    name: Option<Name>,
    addresses: Vec<IpAddr>,
    /// SRV records: (port name, protocol) → (port, target).
    srv: Vec<(u16, Name)>,
    cname: Option<Name>,
    other: Vec<RData>,
}

struct Builder {
    zone: Name,
    ttl: u32,
    entries: HashMap<LowerName, Entry>,
    reverse: Vec<(IpAddr, Name)>,
}

impl Builder {
    fn child(&self, parent: &Name, label: &str) -> Name {
        self.child_opt(parent, label)
            .expect("a fixed label under a valid zone")
    }

    /// `label.parent`, or None when the label is not a valid DNS label
    /// (names from the API are; this keeps a bad object from failing all).
    fn child_opt(&self, parent: &Name, label: &str) -> Option<Name> {
        parent.prepend_label(label.to_ascii_lowercase()).ok()
    }

    fn entry(&mut self, name: &Name) -> &mut Entry {
        let e = self.entries.entry(LowerName::new(name)).or_default();
        e.name.get_or_insert_with(|| name.clone());
        e
    }

    fn exists(&mut self, name: &Name) {
        self.entry(name);
    }

    fn address(&mut self, name: &Name, ip: IpAddr) {
        let e = self.entry(name);
        if !e.addresses.contains(&ip) {
            e.addresses.push(ip);
        }
    }

    fn srv(&mut self, service: &Name, port_name: &str, proto: &str, port: u16, target: Name) {
        let Some(named) = self
            .child_opt(service, &format!("_{}", proto.to_ascii_lowercase()))
            .and_then(|p| self.child_opt(&p, &format!("_{port_name}")))
        else {
            return;
        };
        for at in [&named, service] {
            let e = self.entry(at);
            if !e.srv.contains(&(port, target.clone())) {
                e.srv.push((port, target.clone()));
            }
        }
    }

    /// A headless Service's records from its slices' ready endpoints.
    fn headless(&mut self, service: &Name, slices: &[&EndpointSlice], unready_too: bool) {
        for slice in slices {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready && !unready_too {
                    continue;
                }
                for addr in &ep.addresses {
                    let Ok(ip) = addr.parse::<IpAddr>() else {
                        continue;
                    };
                    let host = ep
                        .hostname
                        .clone()
                        .unwrap_or_else(|| addr.replace(['.', ':'], "-"));
                    let Some(host_name) = self.child_opt(service, &host) else {
                        continue;
                    };
                    self.address(service, ip);
                    self.address(&host_name, ip);
                    self.reverse.push((ip, host_name.clone()));
                    for p in slice.ports.iter().flatten() {
                        let (Some(name), Some(port)) = (p.name.as_deref(), p.port) else {
                            continue;
                        };
                        let Ok(port) = u16::try_from(port) else {
                            continue;
                        };
                        if name.is_empty() {
                            continue;
                        }
                        let proto = p.protocol.as_deref().unwrap_or("TCP");
                        self.srv(service, name, proto, port, host_name.clone());
                    }
                }
            }
        }
    }

    fn finish(mut self, serial: u32) -> Records {
        let zone = self.zone.clone();
        let ttl = self.ttl;
        let soa = soa(&zone, ttl, serial);
        let ns_name = Name::from_ascii("ns.dns")
            .expect("a name")
            .append_domain(&zone)
            .expect("a short name");
        let apex = self.entry(&zone);
        apex.other.push(soa.data.clone());
        apex.other.push(RData::NS(NS(ns_name)));
        let version = self.child(&zone, "dns-version");
        self.entry(&version)
            .other
            .push(RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_owned()])));

        let mut nodes: HashMap<LowerName, Node> = HashMap::with_capacity(self.entries.len() * 2);
        for (key, e) in std::mem::take(&mut self.entries) {
            let name = e.name.expect("every entry is named");
            let mut node = Node::default();
            if let Some(target) = e.cname {
                node.cname = Some(Record::from_rdata(
                    name.clone(),
                    ttl,
                    RData::CNAME(CNAME(target)),
                ));
            }
            let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) =
                e.addresses.iter().partition(|a| a.is_ipv4());
            let a: Vec<Record> = v4
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(ip) => Some(Record::from_rdata(name.clone(), ttl, RData::A(A(*ip)))),
                    IpAddr::V6(_) => None,
                })
                .collect();
            let aaaa: Vec<Record> = v6
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V6(ip) => Some(Record::from_rdata(
                        name.clone(),
                        ttl,
                        RData::AAAA(AAAA(*ip)),
                    )),
                    IpAddr::V4(_) => None,
                })
                .collect();
            // Equal shares of 100, as RFC 2782 clients pick by weight.
            let weight = u16::try_from(100 / e.srv.len().max(1)).unwrap_or(1).max(1);
            let srv: Vec<Record> = e
                .srv
                .iter()
                .map(|(port, target)| {
                    Record::from_rdata(
                        name.clone(),
                        ttl,
                        RData::SRV(SRV::new(0, weight, *port, target.clone())),
                    )
                })
                .collect();
            for (t, set) in [
                (RecordType::A, a),
                (RecordType::AAAA, aaaa),
                (RecordType::SRV, srv),
            ] {
                if !set.is_empty() {
                    node.sets.push((t, set));
                }
            }
            for rdata in e.other {
                let t = rdata.record_type();
                let record = Record::from_rdata(name.clone(), ttl, rdata);
                match node.sets.iter_mut().find(|(k, _)| *k == t) {
                    Some((_, v)) => v.push(record),
                    None => node.sets.push((t, vec![record])),
                }
            }
            // Every name between this one and the apex exists.
            let mut parent = name.base_name();
            while zone.zone_of(&parent) && parent.num_labels() >= zone.num_labels() {
                nodes.entry(LowerName::new(&parent)).or_default();
                if parent.num_labels() == zone.num_labels() {
                    break;
                }
                parent = parent.base_name();
            }
            nodes.insert(key, node);
        }
        let pod_label = LowerName::new(&self.child(&zone, "pod"));
        for (ip, target) in self.reverse {
            let node = nodes.entry(LowerName::new(&Name::from(ip))).or_default();
            let record = Record::from_rdata(Name::from(ip), ttl, RData::PTR(PTR(target)));
            match node.sets.iter_mut().find(|(k, _)| *k == RecordType::PTR) {
                Some((_, v)) => {
                    if !v.iter().any(|r| r.data == record.data) {
                        v.push(record)
                    }
                }
                None => node.sets.push((RecordType::PTR, vec![record])),
            }
        }
        Records {
            pod_label,
            zone: LowerName::new(&zone),
            synced: true,
            soa,
            nodes,
            namespaces: HashSet::new(),
        }
    }
}

fn fqdn(name: &Name) -> Name {
    let mut n = name.to_lowercase();
    n.set_fqdn(true);
    n
}

/// The zone's SOA, with CoreDNS's timers; its minimum (the negative TTL) is
/// the records' TTL.
fn soa(zone: &Name, ttl: u32, serial: u32) -> Record {
    let mname = Name::from_ascii("ns.dns")
        .expect("a name")
        .append_domain(zone)
        .expect("a short name");
    let rname = Name::from_ascii("hostmaster")
        .expect("a name")
        .append_domain(zone)
        .expect("a short name");
    Record::from_rdata(
        zone.clone(),
        ttl,
        RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, ttl)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).expect("a Service")
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).expect("an EndpointSlice")
    }

    fn cluster() -> Records {
        let services = [
            service(
                json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {
                "clusterIP": "10.96.3.4", "clusterIPs": ["10.96.3.4"],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}]}}),
            ),
            service(
                json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {
                "clusterIP": "None",
                "ports": [{"name": "pg", "port": 5432}]}}),
            ),
            service(
                json!({"metadata": {"name": "empty", "namespace": "shop"}, "spec": {
                "clusterIP": "None"}}),
            ),
            service(
                json!({"metadata": {"name": "ext", "namespace": "shop"}, "spec": {
                "type": "ExternalName", "externalName": "www.example.test"}}),
            ),
            service(
                json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"}, "spec": {
                "clusterIP": "10.96.0.10",
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}),
            ),
        ];
        let slices = [
            slice(json!({"metadata": {"name": "db-1", "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5433, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.1.8"], "conditions": {}},
                {"addresses": ["10.244.1.9"], "hostname": "db-2", "conditions": {"ready": false}}
            ]})),
            // Another Service's endpoints, which must not leak into db's.
            slice(json!({"metadata": {"name": "web-1", "namespace": "shop",
                    "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.0.3"]}]})),
            slice(json!({"metadata": {"name": "empty-1", "namespace": "shop",
                    "labels": {"kubernetes.io/service-name": "empty"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.0.4"], "conditions": {"ready": false}}]})),
        ];
        let services: Vec<&Service> = services.iter().collect();
        let slices: Vec<&EndpointSlice> = slices.iter().collect();
        Records::build(
            &Name::from_ascii("Cluster.Local").unwrap(),
            5,
            42,
            Objects {
                services: &services,
                slices: &slices,
                namespaces: &["shop", "kube-system", "quiet"],
            },
        )
    }

    /// The answer in zone-file lines, sorted, or the kind of negative answer.
    fn ask(records: &Records, name: &str, t: RecordType) -> String {
        let name = LowerName::new(&Name::from_ascii(name).unwrap());
        let line = |r: &Record| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data);
        match records.lookup(&name, t) {
            Answer::Found {
                answers,
                additionals,
            } => {
                let mut a: Vec<String> = answers.into_iter().map(line).collect();
                a.sort();
                let mut d: Vec<String> = additionals.into_iter().map(line).collect();
                d.sort();
                if !d.is_empty() {
                    a.push("+".into());
                    a.extend(d);
                }
                a.join("\n")
            }
            Answer::Made(r) => line(&r),
            Answer::Alias { cname, target } => format!("{} -> {target}", line(cname)),
            Answer::NoData => "NODATA".into(),
            Answer::NxDomain => "NXDOMAIN".into(),
            Answer::Elsewhere => "ELSEWHERE".into(),
            Answer::Unsynced => "UNSYNCED".into(),
        }
    }

    #[test]
    fn cluster_ip_service() {
        let r = cluster();
        assert_eq!(
            ask(&r, "web.shop.svc.cluster.local.", RecordType::A),
            "web.shop.svc.cluster.local. 5 A 10.96.3.4"
        );
        // Case-insensitive, as the specification requires.
        assert_eq!(
            ask(&r, "WEB.Shop.SVC.cluster.LOCAL.", RecordType::A),
            "web.shop.svc.cluster.local. 5 A 10.96.3.4"
        );
        assert_eq!(
            ask(&r, "web.shop.svc.cluster.local.", RecordType::AAAA),
            "NODATA"
        );
        assert_eq!(
            ask(
                &r,
                "_http._tcp.web.shop.svc.cluster.local.",
                RecordType::SRV
            ),
            "_http._tcp.web.shop.svc.cluster.local. 5 SRV 0 100 80 web.shop.svc.cluster.local.\n+\nweb.shop.svc.cluster.local. 5 A 10.96.3.4"
        );
        // The unnamed port has no SRV record, and the wrong protocol none.
        assert_eq!(
            ask(
                &r,
                "_http._udp.web.shop.svc.cluster.local.",
                RecordType::SRV
            ),
            "NXDOMAIN"
        );
        assert_eq!(
            ask(&r, "_tcp.web.shop.svc.cluster.local.", RecordType::SRV),
            "NODATA"
        );
        assert_eq!(
            ask(&r, "4.3.96.10.in-addr.arpa.", RecordType::PTR),
            "4.3.96.10.in-addr.arpa. 5 PTR web.shop.svc.cluster.local."
        );
        // A ClusterIP Service's endpoints have no names of their own.
        assert_eq!(
            ask(&r, "10-244-0-3.web.shop.svc.cluster.local.", RecordType::A),
            "NXDOMAIN"
        );
        assert_eq!(
            ask(&r, "3.0.244.10.in-addr.arpa.", RecordType::PTR),
            "ELSEWHERE"
        );
    }

    #[test]
    fn headless_service() {
        let r = cluster();
        // Ready endpoints only; no condition counts as ready.
        assert_eq!(
            ask(&r, "db.shop.svc.cluster.local.", RecordType::A),
            "db.shop.svc.cluster.local. 5 A 10.244.0.7\ndb.shop.svc.cluster.local. 5 A 10.244.1.8"
        );
        assert_eq!(
            ask(&r, "db-0.db.shop.svc.cluster.local.", RecordType::A),
            "db-0.db.shop.svc.cluster.local. 5 A 10.244.0.7"
        );
        assert_eq!(
            ask(&r, "10-244-1-8.db.shop.svc.cluster.local.", RecordType::A),
            "10-244-1-8.db.shop.svc.cluster.local. 5 A 10.244.1.8"
        );
        assert_eq!(
            ask(&r, "db-2.db.shop.svc.cluster.local.", RecordType::A),
            "NXDOMAIN"
        );
        // One SRV per ready endpoint, on the endpoints' own port, to their
        // names, whose addresses come along.
        assert_eq!(
            ask(&r, "_pg._tcp.db.shop.svc.cluster.local.", RecordType::SRV),
            "_pg._tcp.db.shop.svc.cluster.local. 5 SRV 0 50 5433 10-244-1-8.db.shop.svc.cluster.local.\n\
             _pg._tcp.db.shop.svc.cluster.local. 5 SRV 0 50 5433 db-0.db.shop.svc.cluster.local.\n\
             +\n\
             10-244-1-8.db.shop.svc.cluster.local. 5 A 10.244.1.8\n\
             db-0.db.shop.svc.cluster.local. 5 A 10.244.0.7"
        );
        assert_eq!(
            ask(&r, "7.0.244.10.in-addr.arpa.", RecordType::PTR),
            "7.0.244.10.in-addr.arpa. 5 PTR db-0.db.shop.svc.cluster.local."
        );
        // No ready endpoint: the name does not exist (schema 1.0.1).
        assert_eq!(
            ask(&r, "empty.shop.svc.cluster.local.", RecordType::A),
            "NXDOMAIN"
        );
    }

    #[test]
    fn unready_endpoints_published_on_request() {
        let svc = service(
            json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {
            "clusterIP": "None", "publishNotReadyAddresses": true}}),
        );
        let s = slice(json!({"metadata": {"name": "db-1", "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.9"], "conditions": {"ready": false}}]}));
        let r = Records::build(
            &Name::from_ascii("cluster.local").unwrap(),
            5,
            1,
            Objects {
                services: &[&svc],
                slices: &[&s],
                namespaces: &[],
            },
        );
        assert_eq!(
            ask(&r, "db.shop.svc.cluster.local.", RecordType::A),
            "db.shop.svc.cluster.local. 5 A 10.244.1.9"
        );
    }

    #[test]
    fn external_name() {
        let r = cluster();
        assert_eq!(
            ask(&r, "ext.shop.svc.cluster.local.", RecordType::A),
            "ext.shop.svc.cluster.local. 5 CNAME www.example.test. -> www.example.test."
        );
        assert_eq!(
            ask(&r, "ext.shop.svc.cluster.local.", RecordType::CNAME),
            "ext.shop.svc.cluster.local. 5 CNAME www.example.test."
        );
        let by_ip = service(
            json!({"metadata": {"name": "ip", "namespace": "shop"}, "spec": {
            "type": "ExternalName", "externalName": "192.0.2.7"}}),
        );
        let r = Records::build(
            &Name::from_ascii("cluster.local").unwrap(),
            5,
            1,
            Objects {
                services: &[&by_ip],
                slices: &[],
                namespaces: &[],
            },
        );
        assert_eq!(
            ask(&r, "ip.shop.svc.cluster.local.", RecordType::A),
            "NODATA"
        );
    }

    #[test]
    fn negative_answers() {
        let r = cluster();
        // A namespace that exists, without such a Service.
        assert_eq!(
            ask(&r, "nope.quiet.svc.cluster.local.", RecordType::A),
            "NXDOMAIN"
        );
        assert_eq!(ask(&r, "quiet.svc.cluster.local.", RecordType::A), "NODATA");
        assert_eq!(
            ask(&r, "gone.svc.cluster.local.", RecordType::A),
            "NXDOMAIN"
        );
        assert_eq!(
            ask(&r, "web.gone.svc.cluster.local.", RecordType::A),
            "NXDOMAIN"
        );
        assert_eq!(ask(&r, "svc.cluster.local.", RecordType::A), "NODATA");
        assert_eq!(ask(&r, "pod.cluster.local.", RecordType::A), "NODATA");
        assert_eq!(ask(&r, "other.cluster.local.", RecordType::A), "NXDOMAIN");
        // A search-path expansion of an outside name.
        assert_eq!(
            ask(&r, "example.com.shop.svc.cluster.local.", RecordType::A),
            "NXDOMAIN"
        );
        assert_eq!(ask(&r, "example.com.", RecordType::A), "ELSEWHERE");
    }

    #[test]
    fn pod_names() {
        let r = cluster();
        assert_eq!(
            ask(&r, "10-244-0-5.shop.pod.cluster.local.", RecordType::A),
            "10-244-0-5.shop.pod.cluster.local. 5 A 10.244.0.5"
        );
        assert_eq!(
            ask(&r, "10-244-0-5.shop.pod.cluster.local.", RecordType::AAAA),
            "NODATA"
        );
        assert_eq!(
            ask(&r, "10-244-0-5.gone.pod.cluster.local.", RecordType::A),
            "NXDOMAIN"
        );
        assert_eq!(
            ask(&r, "10-244-0-500.shop.pod.cluster.local.", RecordType::A),
            "NXDOMAIN"
        );
        assert_eq!(
            ask(&r, "x.10-244-0-5.shop.pod.cluster.local.", RecordType::A),
            "NXDOMAIN"
        );
        assert_eq!(ask(&r, "shop.pod.cluster.local.", RecordType::A), "NODATA");
    }

    #[test]
    fn apex_and_version() {
        let r = cluster();
        assert_eq!(
            ask(&r, "cluster.local.", RecordType::SOA),
            "cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"
        );
        assert_eq!(
            ask(&r, "cluster.local.", RecordType::NS),
            "cluster.local. 5 NS ns.dns.cluster.local."
        );
        assert_eq!(
            ask(&r, "ns.dns.cluster.local.", RecordType::A),
            "ns.dns.cluster.local. 5 A 10.96.0.10"
        );
        assert_eq!(
            ask(&r, "dns-version.cluster.local.", RecordType::TXT),
            format!("dns-version.cluster.local. 5 TXT {SCHEMA_VERSION}")
        );
    }

    #[test]
    fn unsynced_records_fail_the_zone_only() {
        let r = Records::unsynced(&Name::from_ascii("cluster.local").unwrap(), 5);
        assert_eq!(
            ask(&r, "web.shop.svc.cluster.local.", RecordType::A),
            "UNSYNCED"
        );
        assert_eq!(ask(&r, "example.com.", RecordType::A), "ELSEWHERE");
    }
}
