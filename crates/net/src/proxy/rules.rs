//! The description of the Services compiled into rules, as plain data: no I/O.
//!
//! A [`Ruleset`] holds what the table should contain besides its fixed skeleton (the base
//! chains and the four maps, see `batch`): every regular chain with its rules, the affinity
//! sets, and the map elements. `batch` compares two of them to find what to send.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::expr::{
    BinaryOperation, CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression,
    NgMode, Numgen, Payload, PayloadField, Prefix, SetItem, Verdict,
};
use nftables::stmt::{
    self, JumpTarget, Mangle, Match, NAT, NATFlag, Operator, Statement, VerdictMap,
};

use super::{Endpoint, Protocol, ProxyConfig, ProxyError, ServicePort, TrafficPolicy};

/// The packet mark bit asking `nat-postrouting` to masquerade (kube-proxy's bit).
pub(crate) const MASQUERADE_MARK: u32 = 0x4000;

/// Dispatches service traffic through the verdict maps.
pub(crate) const SERVICES: &str = "services";
/// Rejects new connections to ports without endpoints.
pub(crate) const ENDPOINTS_CHECK: &str = "endpoints-check";
/// Masquerades marked packets, clearing the mark.
pub(crate) const MASQUERADING: &str = "masquerading";
/// Marks a packet for masquerading.
pub(crate) const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
/// Rejects (ICMP port unreachable).
pub(crate) const REJECT: &str = "reject-chain";
/// Drops (a `Local` policy without a local endpoint).
pub(crate) const DROP: &str = "drop-chain";
/// Refuses what is still addressed to the service range after DNAT.
pub(crate) const SERVICE_RANGE_CHECK: &str = "service-range-check";
/// Drops what reaches a load balancer address without being a Service's traffic: a node
/// announcing the address holds it as its own, and must not open its other ports on it.
pub(crate) const LOAD_BALANCER_INPUT: &str = "load-balancer-input";

/// The verdict maps of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum MapName {
    /// Cluster, external and load balancer IPs → the port's chain.
    ServiceIps,
    /// Node ports → the port's external chain.
    ServiceNodeports,
    /// Addresses of ports without endpoints → reject.
    NoEndpointServices,
    /// Node ports without endpoints → reject.
    NoEndpointNodeports,
}

impl MapName {
    /// Every map, in the order they are declared.
    pub(crate) const ALL: [MapName; 4] = [
        MapName::ServiceIps,
        MapName::ServiceNodeports,
        MapName::NoEndpointServices,
        MapName::NoEndpointNodeports,
    ];

    /// The map's name in the table.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MapName::ServiceIps => "service-ips",
            MapName::ServiceNodeports => "service-nodeports",
            MapName::NoEndpointServices => "no-endpoint-services",
            MapName::NoEndpointNodeports => "no-endpoint-nodeports",
        }
    }

    /// Whether its keys are `ip . proto . port` (else `proto . port`).
    pub(crate) fn keyed_by_address(self) -> bool {
        matches!(self, MapName::ServiceIps | MapName::NoEndpointServices)
    }
}

/// A map element's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum MapKey {
    /// `ip . proto . port`.
    Address(Ipv4Addr, Protocol, u16),
    /// `proto . port` (a node port).
    Port(Protocol, u16),
}

impl MapKey {
    /// The key as an nftables concatenation.
    pub(crate) fn expression(self) -> Expression<'static> {
        let parts = match self {
            MapKey::Address(ip, proto, port) => vec![
                Expression::String(ip.to_string().into()),
                Expression::String(proto.as_str().into()),
                Expression::Number(u32::from(port)),
            ],
            MapKey::Port(proto, port) => vec![
                Expression::String(proto.as_str().into()),
                Expression::Number(u32::from(port)),
            ],
        };
        Expression::Named(NamedExpression::Concat(parts))
    }
}

/// A regular chain: its rules, and the sets they name (a set made anew forces the chains
/// naming it to be rewritten, since a rule holds a reference to the set it was made with).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ChainSpec {
    /// Each rule's statements, in order.
    pub rules: Vec<Vec<Statement<'static>>>,
    /// The sets the rules name.
    pub sets: BTreeSet<String>,
}

/// Where a UDP port was reachable, and through which endpoints, for the conntrack cleanup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct UdpPort {
    /// (destination address, destination port) pairs clients used; `None` for a node port
    /// on any of the node's addresses.
    pub frontends: Vec<(Option<Ipv4Addr>, u16)>,
    /// The endpoint addresses traffic was DNATed to.
    pub endpoints: BTreeSet<Ipv4Addr>,
}

/// Everything the table holds besides its skeleton.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Ruleset {
    /// Regular chains by name, the fixed ones included.
    pub chains: BTreeMap<String, ChainSpec>,
    /// Affinity sets by name, with their timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// Map elements: (map, key) → the chain the verdict goes to.
    pub elements: BTreeMap<(MapName, MapKey), String>,
    /// UDP ports by id, for deleting conntrack entries of removed endpoints.
    pub udp: BTreeMap<String, UdpPort>,
}

/// Compiles the description, refusing what cannot be made into a consistent table.
pub(crate) fn compile(config: &ProxyConfig, ports: &[ServicePort]) -> Result<Ruleset, ProxyError> {
    let mut out = Ruleset::default();
    fixed_chains(config, &mut out);
    let mut ids = HashSet::new();
    // Which port claimed each map key first, to name both in a conflict.
    let mut owners: BTreeMap<MapKey, String> = BTreeMap::new();
    for port in ports {
        validate(port)?;
        if !ids.insert(chain_id(port)) {
            return Err(invalid(port, "the port is described twice"));
        }
        for key in keys(port) {
            if let Some(other) = owners.insert(key, port.id()) {
                let what = match key {
                    MapKey::Address(ip, proto, p) => format!("{ip}:{p}/{}", proto.as_str()),
                    MapKey::Port(proto, p) => format!("node port {p}/{}", proto.as_str()),
                };
                return Err(invalid(port, &format!("{what} is also taken by {other}")));
            }
        }
        compile_port(config, port, &mut out);
    }
    // Service traffic to these addresses was DNATed before the input hook; the rest is not
    // the node's to answer.
    let load_balancer_ips: BTreeSet<Ipv4Addr> = ports
        .iter()
        .flat_map(|p| p.load_balancer_ips.iter().copied())
        .collect();
    if !load_balancer_ips.is_empty() {
        let set = load_balancer_ips
            .into_iter()
            .map(|ip| SetItem::Element(address(ip)))
            .collect();
        out.chains.insert(
            LOAD_BALANCER_INPUT.to_string(),
            ChainSpec {
                rules: vec![vec![
                    ip_match(
                        "daddr",
                        Operator::EQ,
                        Expression::Named(NamedExpression::Set(set)),
                    ),
                    Statement::Drop(None),
                ]],
                sets: BTreeSet::new(),
            },
        );
    }
    Ok(out)
}

fn invalid(port: &ServicePort, reason: &str) -> ProxyError {
    ProxyError::InvalidService {
        service: port.id(),
        reason: reason.to_string(),
    }
}

/// Refuses ports and names the rules cannot be made from.
fn validate(port: &ServicePort) -> Result<(), ProxyError> {
    // Names become part of chain names: DNS-like words only, short enough that a chain
    // name stays well under nftables' 256 bytes.
    let word_ok = |s: &str| {
        s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if port.namespace.is_empty() || port.name.is_empty() {
        return Err(invalid(port, "namespace and name must not be empty"));
    }
    for (what, value) in [
        ("namespace", &port.namespace),
        ("name", &port.name),
        ("port name", &port.port_name),
    ] {
        if !word_ok(value) {
            return Err(invalid(
                port,
                &format!("{what} {value:?} must be at most 63 letters, digits, '-' or '.'"),
            ));
        }
    }
    if port.port == 0 {
        return Err(invalid(port, "port 0 is not a port"));
    }
    if port.node_port == Some(0) {
        return Err(invalid(port, "node port 0 is not a port"));
    }
    if port.affinity_timeout == Some(0) {
        return Err(invalid(
            port,
            "session affinity timeout must be at least 1 second",
        ));
    }
    if let Some(endpoint) = port.endpoints.iter().find(|e| e.port == 0) {
        return Err(invalid(
            port,
            &format!("endpoint {} has port 0", endpoint.ip),
        ));
    }
    Ok(())
}

/// The map keys a port claims, whatever its endpoints.
fn keys(port: &ServicePort) -> Vec<MapKey> {
    let proto = port.protocol;
    let mut keys: Vec<MapKey> = port
        .cluster_ip
        .iter()
        .chain(&port.external_ips)
        .chain(&port.load_balancer_ips)
        .map(|ip| MapKey::Address(*ip, proto, port.port))
        .collect();
    keys.sort();
    keys.dedup();
    keys.extend(port.node_port.map(|p| MapKey::Port(proto, p)));
    keys
}

/// `namespace/name/proto/port-name`: the part of chain names that names the port.
fn chain_id(port: &ServicePort) -> String {
    let port_name = if port.port_name.is_empty() {
        format!("p{}", port.port)
    } else {
        port.port_name.clone()
    };
    format!(
        "{}/{}/{}/{port_name}",
        port.namespace,
        port.name,
        port.protocol.as_str()
    )
}

/// The endpoints new connections may use: the ready ones, or, when none is ready, the
/// terminating ones that still serve (Kubernetes' rule, so that a Service being rolled
/// over entirely keeps answering while its old pods drain).
fn usable<'a>(endpoints: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<Endpoint> {
    let mut ready: Vec<Endpoint> = endpoints.clone().filter(|e| e.ready).copied().collect();
    if ready.is_empty() {
        ready = endpoints
            .filter(|e| e.serving && e.terminating)
            .copied()
            .collect();
    }
    ready.sort_by_key(|e| (e.ip, e.port));
    ready.dedup_by_key(|e| (e.ip, e.port));
    ready
}

fn compile_port(config: &ProxyConfig, port: &ServicePort, out: &mut Ruleset) {
    let id = chain_id(port);
    let proto = port.protocol;
    let all = usable(port.endpoints.iter());
    let local = usable(port.endpoints.iter().filter(|e| e.local));
    let externals: BTreeSet<Ipv4Addr> = port
        .external_ips
        .iter()
        .chain(&port.load_balancer_ips)
        .copied()
        .filter(|ip| Some(*ip) != port.cluster_ip)
        .collect();
    let has_external = port.node_port.is_some() || !externals.is_empty();

    if all.is_empty() {
        // Nothing anywhere: every address of the port refuses new connections.
        for ip in port.cluster_ip.iter().chain(&externals) {
            out.elements.insert(
                (
                    MapName::NoEndpointServices,
                    MapKey::Address(*ip, proto, port.port),
                ),
                REJECT.to_string(),
            );
        }
        if let Some(node_port) = port.node_port {
            out.elements.insert(
                (MapName::NoEndpointNodeports, MapKey::Port(proto, node_port)),
                REJECT.to_string(),
            );
        }
        return;
    }

    if port.protocol == Protocol::Udp {
        let mut frontends: Vec<(Option<Ipv4Addr>, u16)> = port
            .cluster_ip
            .iter()
            .chain(&externals)
            .map(|ip| (Some(*ip), port.port))
            .collect();
        frontends.extend(port.node_port.map(|p| (None, p)));
        out.udp.insert(
            id.clone(),
            UdpPort {
                frontends,
                endpoints: all.iter().chain(&local).map(|e| e.ip).collect(),
            },
        );
    }

    let cluster_chain = format!("service-{id}");
    let local_chain = format!("local-{id}");
    let external_chain = format!("external-{id}");
    let mut balancer = |name: &str, endpoints: &[Endpoint]| {
        let chain = balance(config, port, &id, endpoints, out);
        out.chains.insert(name.to_string(), chain);
    };
    let wants_local = port.internal_policy == TrafficPolicy::Local
        || (has_external && port.external_policy == TrafficPolicy::Local);
    balancer(&cluster_chain, &all);
    if wants_local && !local.is_empty() {
        balancer(&local_chain, &local);
    }
    let local_target = if local.is_empty() { DROP } else { &local_chain };

    if let Some(cluster_ip) = port.cluster_ip {
        let target = match port.internal_policy {
            TrafficPolicy::Cluster => cluster_chain.as_str(),
            TrafficPolicy::Local => local_target,
        };
        out.elements.insert(
            (
                MapName::ServiceIps,
                MapKey::Address(cluster_ip, proto, port.port),
            ),
            target.to_string(),
        );
    }
    if !has_external {
        return;
    }
    let mut rules = Vec::new();
    match port.external_policy {
        TrafficPolicy::Cluster => {
            rules.push(vec![jump(MARK_FOR_MASQUERADE)]);
            rules.push(vec![goto(&cluster_chain)]);
        }
        TrafficPolicy::Local => {
            // Pods and the node itself are not "external" clients: kube-proxy sends them
            // to every endpoint (the node's own traffic masqueraded, since its source
            // address would not bring replies back through the DNAT otherwise).
            if let Some(cidr) = config.cluster_cidr {
                rules.push(vec![
                    ip_match("saddr", Operator::EQ, prefix(cidr)),
                    goto(&cluster_chain),
                ]);
            }
            rules.push(vec![fib_local("saddr"), jump(MARK_FOR_MASQUERADE)]);
            rules.push(vec![fib_local("saddr"), goto(&cluster_chain)]);
            rules.push(vec![goto(local_target)]);
        }
    }
    out.chains.insert(
        external_chain.clone(),
        ChainSpec {
            rules,
            sets: BTreeSet::new(),
        },
    );
    // `loadBalancerSourceRanges`: the load balancer addresses first check the client.
    let firewall_chain = format!("firewall-{id}");
    let firewalled = |ip: &Ipv4Addr| {
        !port.source_ranges.is_empty()
            && port.load_balancer_ips.contains(ip)
            && !port.external_ips.contains(ip)
    };
    if externals.iter().any(firewalled) {
        let allowed = port
            .source_ranges
            .iter()
            .map(|net| SetItem::Element(prefix(*net)))
            .collect();
        out.chains.insert(
            firewall_chain.clone(),
            ChainSpec {
                rules: vec![
                    vec![
                        ip_match(
                            "saddr",
                            Operator::EQ,
                            Expression::Named(NamedExpression::Set(allowed)),
                        ),
                        goto(&external_chain),
                    ],
                    vec![goto(DROP)],
                ],
                sets: BTreeSet::new(),
            },
        );
    }
    for ip in &externals {
        let target = if firewalled(ip) {
            &firewall_chain
        } else {
            &external_chain
        };
        out.elements.insert(
            (MapName::ServiceIps, MapKey::Address(*ip, proto, port.port)),
            target.clone(),
        );
    }
    if let Some(node_port) = port.node_port {
        out.elements.insert(
            (MapName::ServiceNodeports, MapKey::Port(proto, node_port)),
            external_chain,
        );
    }
}

/// A chain spreading new connections over `endpoints` (never empty), making the endpoint
/// chains (and affinity sets) it goes to.
fn balance(
    config: &ProxyConfig,
    port: &ServicePort,
    id: &str,
    endpoints: &[Endpoint],
    out: &mut Ruleset,
) -> ChainSpec {
    let mut chain = ChainSpec::default();
    if let (Some(cidr), Some(cluster_ip)) = (config.cluster_cidr, port.cluster_ip) {
        // A client outside the cluster (the node itself, another host routing the service
        // range here) may have no route back to the endpoint's node but through this one.
        chain.rules.push(vec![
            ip_match("daddr", Operator::EQ, address(cluster_ip)),
            ip_match("saddr", Operator::NEQ, prefix(cidr)),
            jump(MARK_FOR_MASQUERADE),
        ]);
    }
    let mut targets = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let suffix = format!("{id}__{}/{}", endpoint.ip, endpoint.port);
        let target = format!("endpoint-{suffix}");
        let affinity = port.affinity_timeout.map(|timeout| {
            let set = format!("affinity-{suffix}");
            out.sets.insert(set.clone(), timeout);
            set
        });
        if let Some(set) = &affinity {
            // A client seen lately goes back to the endpoint it had.
            chain.rules.push(vec![
                ip_match(
                    "saddr",
                    Operator::EQ,
                    Expression::String(format!("@{set}").into()),
                ),
                goto(&target),
            ]);
            chain.sets.insert(set.clone());
        }
        out.chains
            .insert(target.clone(), endpoint_chain(port, endpoint, affinity));
        targets.push(target);
    }
    if let [only] = targets.as_slice() {
        chain.rules.push(vec![goto(only)]);
    } else {
        let choices = targets
            .iter()
            .enumerate()
            .map(|(i, target)| {
                SetItem::Mapping(
                    Expression::Number(i as u32),
                    Expression::Verdict(Verdict::Goto(JumpTarget {
                        target: target.clone().into(),
                    })),
                )
            })
            .collect();
        chain.rules.push(vec![Statement::VerdictMap(VerdictMap {
            key: Expression::Named(NamedExpression::Numgen(Numgen {
                mode: NgMode::Random,
                ng_mod: targets.len() as u32,
                offset: None,
            })),
            data: Expression::Named(NamedExpression::Set(choices)),
        })]);
    }
    chain
}

/// The chain of one endpoint: hairpin masquerade, affinity, DNAT.
fn endpoint_chain(port: &ServicePort, endpoint: &Endpoint, affinity: Option<String>) -> ChainSpec {
    let mut chain = ChainSpec::default();
    // A pod reaching itself through its Service: without a new source its reply would go
    // straight back inside the pod, never un-DNATed.
    chain.rules.push(vec![
        ip_match("saddr", Operator::EQ, address(endpoint.ip)),
        jump(MARK_FOR_MASQUERADE),
    ]);
    if let Some(set) = affinity {
        chain.rules.push(vec![Statement::Set(stmt::Set {
            op: stmt::SetOp::Update,
            elem: ip_field("saddr"),
            set: format!("@{set}").into(),
        })]);
        chain.sets.insert(set);
    }
    chain.rules.push(vec![
        Statement::Match(Match {
            left: meta(MetaKey::L4proto),
            right: Expression::String(port.protocol.as_str().into()),
            op: Operator::EQ,
        }),
        Statement::DNAT(Some(NAT {
            addr: Some(address(endpoint.ip)),
            family: None,
            port: Some(Expression::Number(u32::from(endpoint.port))),
            flags: None,
        })),
    ]);
    chain
}

/// The chains every table has, whatever the Services.
fn fixed_chains(config: &ProxyConfig, out: &mut Ruleset) {
    let dispatch = |map: MapName| {
        let key = if map.keyed_by_address() {
            concat(vec![ip_field("daddr"), meta(MetaKey::L4proto), th_dport()])
        } else {
            concat(vec![meta(MetaKey::L4proto), th_dport()])
        };
        Statement::VerdictMap(VerdictMap {
            key,
            data: Expression::String(format!("@{}", map.as_str()).into()),
        })
    };
    // Node ports answer on the node's addresses, but not on loopback: a DNAT from
    // 127.0.0.1 to a pod would need `route_localnet`, and kube-proxy's nftables mode does
    // not offer it either.
    let on_node = || {
        vec![
            fib_local("daddr"),
            ip_match(
                "daddr",
                Operator::NEQ,
                prefix("127.0.0.0/8".parse().expect("a CIDR")),
            ),
        ]
    };
    let mut fixed = |name: &str, rules: Vec<Vec<Statement<'static>>>| {
        out.chains.insert(
            name.to_string(),
            ChainSpec {
                rules,
                sets: BTreeSet::new(),
            },
        );
    };
    fixed(
        SERVICES,
        vec![
            vec![dispatch(MapName::ServiceIps)],
            [on_node(), vec![dispatch(MapName::ServiceNodeports)]].concat(),
        ],
    );
    fixed(
        ENDPOINTS_CHECK,
        vec![
            vec![dispatch(MapName::NoEndpointServices)],
            [on_node(), vec![dispatch(MapName::NoEndpointNodeports)]].concat(),
        ],
    );
    let mark = || meta(MetaKey::Mark);
    fixed(
        MASQUERADING,
        vec![
            vec![
                Statement::Match(Match {
                    left: Expression::BinaryOperation(Box::new(BinaryOperation::AND(
                        mark(),
                        Expression::Number(MASQUERADE_MARK),
                    ))),
                    right: Expression::Number(0),
                    op: Operator::EQ,
                }),
                Statement::Return(None),
            ],
            // Cleared, so that a packet encapsulated after this (VXLAN) is not masqueraded
            // a second time.
            vec![Statement::Mangle(Mangle {
                key: mark(),
                value: Expression::BinaryOperation(Box::new(BinaryOperation::XOR(
                    mark(),
                    Expression::Number(MASQUERADE_MARK),
                ))),
            })],
            vec![Statement::Masquerade(Some(NAT {
                addr: None,
                family: None,
                port: None,
                flags: Some([NATFlag::FullyRandom].into_iter().collect()),
            }))],
        ],
    );
    fixed(
        MARK_FOR_MASQUERADE,
        vec![vec![Statement::Mangle(Mangle {
            key: mark(),
            value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
                mark(),
                Expression::Number(MASQUERADE_MARK),
            ]))),
        })]],
    );
    fixed(LOAD_BALANCER_INPUT, Vec::new());
    // After DNAT a Service's traffic is addressed to its endpoint; what still names the
    // range reached no Service.
    fixed(
        SERVICE_RANGE_CHECK,
        config
            .service_cidr
            .iter()
            .map(|cidr| vec![ip_match("daddr", Operator::EQ, prefix(*cidr)), goto(REJECT)])
            .collect(),
    );
    fixed(REJECT, vec![vec![Statement::Reject(None)]]);
    fixed(DROP, vec![vec![Statement::Drop(None)]]);
}

/// `ct state new`.
pub(crate) fn ct_state_new() -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::CT(CT {
            key: "state".into(),
            family: None,
            dir: None,
        })),
        right: Expression::String("new".into()),
        op: Operator::IN,
    })
}

pub(crate) fn jump(target: &str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: target.to_string().into(),
    })
}

fn goto(target: &str) -> Statement<'static> {
    Statement::Goto(JumpTarget {
        target: target.to_string().into(),
    })
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn concat(parts: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(parts))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

fn ip_field(field: &'static str) -> Expression<'static> {
    payload("ip", field)
}

/// The transport header's destination port, whatever the protocol.
fn th_dport() -> Expression<'static> {
    payload("th", "dport")
}

fn address(ip: Ipv4Addr) -> Expression<'static> {
    Expression::String(ip.to_string().into())
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(address(net.trunc().network())),
        len: u32::from(net.prefix_len()),
    }))
}

/// `ip <field> <op> <right>`.
fn ip_match(field: &'static str, op: Operator, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left: ip_field(field),
        right,
        op,
    })
}

/// `fib <field> type local`: the address is one of this node's.
fn fib_local(field: &'static str) -> Statement<'static> {
    let flag = if field == "saddr" {
        FibFlag::Saddr
    } else {
        FibFlag::Daddr
    };
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: [flag].into_iter().collect(),
        })),
        right: Expression::String("local".into()),
        op: Operator::EQ,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(last: u8, ready: bool, terminating: bool) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::new(10, 244, 1, last),
            port: 8080,
            ready,
            serving: ready || terminating,
            terminating,
            local: last.is_multiple_of(2),
        }
    }

    fn port(endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            namespace: "ns".into(),
            name: "web".into(),
            port_name: String::new(),
            protocol: Protocol::Tcp,
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 1)),
            port: 80,
            node_port: None,
            external_ips: Vec::new(),
            external_policy: TrafficPolicy::Cluster,
            internal_policy: TrafficPolicy::Cluster,
            load_balancer_ips: Vec::new(),
            source_ranges: Vec::new(),
            affinity_timeout: None,
            endpoints,
        }
    }

    fn config() -> ProxyConfig {
        ProxyConfig {
            table: "t".into(),
            cluster_cidr: None,
            service_cidr: None,
        }
    }

    fn ips(endpoints: &[Endpoint]) -> Vec<u8> {
        endpoints.iter().map(|e| e.ip.octets()[3]).collect()
    }

    #[test]
    fn ready_endpoints_first_then_terminating_ones_that_serve() {
        let all = [
            endpoint(2, true, false),
            endpoint(3, false, true),
            endpoint(4, false, false),
        ];
        assert_eq!(ips(&usable(all.iter())), [2]);
        assert_eq!(ips(&usable(all[1..].iter())), [3]);
        assert!(usable(all[2..].iter()).is_empty());
    }

    #[test]
    fn a_port_without_endpoints_is_only_rejected() {
        let compiled = compile(&config(), &[port(vec![endpoint(4, false, false)])]).unwrap();
        let key = MapKey::Address(Ipv4Addr::new(10, 96, 0, 1), Protocol::Tcp, 80);
        assert_eq!(
            compiled.elements,
            BTreeMap::from([((MapName::NoEndpointServices, key), REJECT.to_string())])
        );
        assert!(compiled.chains.keys().all(|c| !c.contains("ns/web")));
    }

    #[test]
    fn chains_are_named_after_the_port_and_endpoint() {
        let compiled = compile(&config(), &[port(vec![endpoint(2, true, false)])]).unwrap();
        let ours: Vec<&String> = compiled
            .chains
            .keys()
            .filter(|c| c.contains("ns/web"))
            .collect();
        assert_eq!(
            ours,
            [
                "endpoint-ns/web/tcp/p80__10.244.1.2/8080",
                "service-ns/web/tcp/p80"
            ]
        );
    }

    #[test]
    fn source_ranges_guard_only_the_load_balancer_addresses() {
        let mut web = port(vec![endpoint(3, true, false)]);
        web.node_port = Some(30080);
        web.external_ips = vec![Ipv4Addr::new(198, 51, 100, 1)];
        web.load_balancer_ips = vec![Ipv4Addr::new(192, 0, 2, 1)];
        let open = compile(&config(), std::slice::from_ref(&web)).unwrap();
        let at = |compiled: &Ruleset, ip: Ipv4Addr| {
            compiled.elements[&(MapName::ServiceIps, MapKey::Address(ip, Protocol::Tcp, 80))]
                .clone()
        };
        assert_eq!(
            at(&open, Ipv4Addr::new(192, 0, 2, 1)),
            "external-ns/web/tcp/p80"
        );
        assert!(!open.chains.contains_key("firewall-ns/web/tcp/p80"));

        web.source_ranges = vec!["203.0.113.0/24".parse().unwrap()];
        let guarded = compile(&config(), &[web]).unwrap();
        assert_eq!(
            at(&guarded, Ipv4Addr::new(192, 0, 2, 1)),
            "firewall-ns/web/tcp/p80"
        );
        assert_eq!(
            at(&guarded, Ipv4Addr::new(198, 51, 100, 1)),
            "external-ns/web/tcp/p80"
        );
        let firewall = &guarded.chains["firewall-ns/web/tcp/p80"];
        assert_eq!(firewall.rules.len(), 2);
        assert_eq!(firewall.rules[1], vec![goto(DROP)]);
        let text = serde_json::to_string(&firewall.rules[0]).unwrap();
        assert!(text.contains("203.0.113.0"), "{text}");
    }

    #[test]
    fn internal_local_without_local_endpoints_drops() {
        let mut web = port(vec![endpoint(3, true, false)]);
        web.internal_policy = TrafficPolicy::Local;
        let compiled = compile(&config(), &[web]).unwrap();
        let key = MapKey::Address(Ipv4Addr::new(10, 96, 0, 1), Protocol::Tcp, 80);
        assert_eq!(compiled.elements[&(MapName::ServiceIps, key)], DROP);
    }

    #[test]
    fn conflicts_and_bad_ports_are_refused() {
        let web = port(vec![endpoint(2, true, false)]);
        let mut other = web.clone();
        other.name = "other".into();
        let error = compile(&config(), &[web.clone(), other]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "service ns/other:80: 10.96.0.1:80/tcp is also taken by ns/web:80"
        );
        let error = compile(&config(), &[web.clone(), web.clone()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "service ns/web:80: the port is described twice"
        );
        let mut bad = web.clone();
        bad.name = "we b".into();
        assert!(compile(&config(), &[bad]).is_err());
        let mut bad = web;
        bad.affinity_timeout = Some(0);
        assert!(compile(&config(), &[bad]).is_err());
    }
}
