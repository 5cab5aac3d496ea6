//! What to send to `nft`: the difference between two [`Ruleset`]s, or a whole table, as
//! the JSON commands of one batch.
//!
//! Within a batch the kernel checks references command by command, so the order is fixed:
//! chains are made before rules jump to them and map elements point at them; chains and
//! elements are emptied or removed before the chains and sets they name are deleted.
//!
//! The `nftables` crate's schema has no `verdict` map type, so the four maps (declaration,
//! flush, delete) are written as JSON here; everything else goes through its types.

use std::collections::{BTreeMap, BTreeSet};

use nftables::expr::{Expression, Verdict};
use nftables::helper::{self, NftablesError};
use nftables::schema::{
    Chain, Element, FlushObject, NfCmd, NfListObject, NfObject, Rule, Set, SetFlag, SetType,
    SetTypeValue, Table,
};
use nftables::stmt::{JumpTarget, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde_json::{Value, json};

use super::SyncReport;
use super::rules::{
    ENDPOINTS_CHECK, LOAD_BALANCER_INPUT, MASQUERADING, MapKey, MapName, Ruleset,
    SERVICE_RANGE_CHECK, SERVICES, ct_state_new, jump,
};
use crate::NetError;

/// A base chain: where the table hooks into the packet path, and the chain it sends
/// packets to (new connections only, or every packet).
struct BaseChain {
    name: &'static str,
    kind: NfChainType,
    hook: NfHook,
    priority: i32,
    target: &'static str,
    new_only: bool,
}

/// Destination NAT runs at `dstnat` (-100), the no-endpoint check just before it (so that
/// it sees the service address), the service range check just after it (so that a
/// Service's traffic no longer does), masquerading at `srcnat` (100); the input filter
/// guards the load balancer addresses a node announces.
const BASE_CHAINS: [BaseChain; 8] = [
    BaseChain {
        name: "filter-input",
        kind: NfChainType::Filter,
        hook: NfHook::Input,
        priority: 0,
        target: LOAD_BALANCER_INPUT,
        new_only: false,
    },
    // Only new connections: packets of connections already translated still carry the
    // service address here, and must not be refused when the last endpoint goes.
    BaseChain {
        name: "filter-prerouting",
        kind: NfChainType::Filter,
        hook: NfHook::Prerouting,
        priority: -110,
        target: ENDPOINTS_CHECK,
        new_only: true,
    },
    BaseChain {
        name: "filter-output",
        kind: NfChainType::Filter,
        hook: NfHook::Output,
        priority: -110,
        target: ENDPOINTS_CHECK,
        new_only: true,
    },
    BaseChain {
        name: "nat-prerouting",
        kind: NfChainType::NAT,
        hook: NfHook::Prerouting,
        priority: -100,
        target: SERVICES,
        new_only: false,
    },
    BaseChain {
        name: "nat-output",
        kind: NfChainType::NAT,
        hook: NfHook::Output,
        priority: -100,
        target: SERVICES,
        new_only: false,
    },
    // New connections only: one made before the check keeps its translation.
    BaseChain {
        name: "filter-output-post-dnat",
        kind: NfChainType::Filter,
        hook: NfHook::Output,
        priority: -90,
        target: SERVICE_RANGE_CHECK,
        new_only: true,
    },
    BaseChain {
        name: "filter-forward",
        kind: NfChainType::Filter,
        hook: NfHook::Forward,
        priority: -90,
        target: SERVICE_RANGE_CHECK,
        new_only: true,
    },
    BaseChain {
        name: "nat-postrouting",
        kind: NfChainType::NAT,
        hook: NfHook::Postrouting,
        priority: 100,
        target: MASQUERADING,
        new_only: false,
    },
];

impl BaseChain {
    fn rules(&self) -> Vec<Statement<'static>> {
        if self.new_only {
            vec![ct_state_new(), jump(self.target)]
        } else {
            vec![jump(self.target)]
        }
    }
}

/// What the kernel's table holds, by name, before a full sync.
#[derive(Debug, Default)]
pub(crate) struct Existing {
    chains: BTreeSet<String>,
    /// Sets with their timeout in seconds (`None`: none, not one of ours).
    sets: BTreeMap<String, Option<u64>>,
    maps: BTreeSet<String>,
}

impl Existing {
    /// Lists the table `table` in the calling thread's namespace; empty when it does not
    /// exist.
    pub(crate) fn list(table: &str) -> Result<Existing, NetError> {
        let listing = match helper::get_current_ruleset_raw(
            helper::DEFAULT_NFT,
            ["list", "table", "ip", table],
        ) {
            Ok(listing) => listing,
            Err(NftablesError::NftFailed { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                return Ok(Existing::default());
            }
            Err(e) => return Err(super::nft_error(table, e)),
        };
        let listing: Value = serde_json::from_str(&listing).map_err(|e| NetError::Nftables {
            table: table.to_string(),
            detail: format!("unreadable listing: {e}"),
        })?;
        Ok(Existing::from_listing(&listing))
    }

    fn from_listing(listing: &Value) -> Existing {
        let mut existing = Existing::default();
        let objects = listing["nftables"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for object in objects {
            let name = |kind: &str| object[kind]["name"].as_str().map(str::to_string);
            if let Some(name) = name("chain") {
                existing.chains.insert(name);
            } else if let Some(name) = name("set") {
                existing
                    .sets
                    .insert(name, object["set"]["timeout"].as_u64());
            } else if let Some(name) = name("map") {
                existing.maps.insert(name);
            }
        }
        existing
    }
}

/// The batch that rewrites the whole table to `desired`, whatever `existing` holds: every
/// chain flushed and refilled, the maps refilled, what is not wanted removed. Affinity sets
/// still wanted (same name, same timeout) are kept with their entries.
pub(crate) fn full(
    table: &str,
    desired: &Ruleset,
    existing: &Existing,
) -> (Vec<Value>, SyncReport) {
    let mut b = Commands::new(table);
    b.add_table();
    let is_base = |name: &str| BASE_CHAINS.iter().any(|c| c.name == name);
    let unwanted: Vec<&String> = existing
        .chains
        .iter()
        .filter(|name| !is_base(name) && !desired.chains.contains_key(*name))
        .collect();

    for base in &BASE_CHAINS {
        b.add_base_chain(base);
        b.flush_chain(base.name);
    }
    for map in MapName::ALL {
        b.add_map(map);
        b.flush_map(map.as_str());
    }
    for name in &existing.maps {
        if !MapName::ALL.iter().any(|m| m.as_str() == name) {
            b.delete_map(name);
        }
    }
    for name in &unwanted {
        b.flush_chain(name);
    }
    for name in desired.chains.keys() {
        b.add_chain(name);
        b.flush_chain(name);
    }
    for (name, timeout) in &existing.sets {
        if desired.sets.get(name).map(|t| u64::from(*t)) != *timeout {
            b.delete_set(name);
        }
    }
    for (name, timeout) in &desired.sets {
        if existing.sets.get(name) != Some(&Some(u64::from(*timeout))) {
            b.add_set(name, *timeout);
        }
    }
    for name in &unwanted {
        b.delete_chain(name);
    }
    for base in &BASE_CHAINS {
        b.add_rule(base.name, base.rules());
    }
    for (name, spec) in &desired.chains {
        for rule in &spec.rules {
            b.add_rule(name, rule.clone());
        }
    }
    for ((map, key), target) in &desired.elements {
        b.add_element(*map, *key, target);
    }
    let report = SyncReport {
        full: true,
        chains_written: BASE_CHAINS.len() + desired.chains.len(),
        chains_deleted: unwanted.len(),
        elements_changed: desired.elements.len(),
        conntrack_deleted: 0,
    };
    (b.commands, report)
}

/// The batch that turns `previous` (what the kernel holds) into `desired`, touching only
/// what differs. Empty when nothing does.
pub(crate) fn incremental(
    table: &str,
    previous: &Ruleset,
    desired: &Ruleset,
) -> (Vec<Value>, SyncReport) {
    let mut b = Commands::new(table);
    let sets_changed: BTreeSet<&String> = desired
        .sets
        .iter()
        .filter(|(name, timeout)| previous.sets.get(*name).is_some_and(|t| t != *timeout))
        .map(|(name, _)| name)
        .collect();
    let sets_removed = previous
        .sets
        .keys()
        .filter(|n| !desired.sets.contains_key(*n));
    let sets_new = desired
        .sets
        .keys()
        .filter(|n| !previous.sets.contains_key(*n));
    let chains_new: Vec<&String> = desired
        .chains
        .keys()
        .filter(|n| !previous.chains.contains_key(*n))
        .collect();
    let chains_removed: Vec<&String> = previous
        .chains
        .keys()
        .filter(|n| !desired.chains.contains_key(*n))
        .collect();
    // A chain is rewritten when its rules differ, or when a set it names is made anew (its
    // rules hold the old set).
    let chains_changed: Vec<&String> = desired
        .chains
        .iter()
        .filter(|(name, spec)| {
            previous.chains.get(*name).is_some_and(|old| {
                old != *spec || spec.sets.iter().any(|s| sets_changed.contains(s))
            })
        })
        .map(|(name, _)| name)
        .collect();
    let elements_gone: Vec<_> = previous
        .elements
        .iter()
        .filter(|(key, target)| desired.elements.get(*key) != Some(*target))
        .collect();
    let elements_new: Vec<_> = desired
        .elements
        .iter()
        .filter(|(key, target)| previous.elements.get(*key) != Some(*target))
        .collect();

    for name in &chains_new {
        b.add_chain(name);
    }
    for name in chains_changed.iter().chain(&chains_removed) {
        b.flush_chain(name);
    }
    for ((map, key), _) in &elements_gone {
        b.delete_element(*map, *key);
    }
    for name in sets_removed.chain(sets_changed.iter().copied()) {
        b.delete_set(name);
    }
    for name in sets_new.chain(sets_changed.iter().copied()) {
        b.add_set(name, desired.sets[name]);
    }
    for name in chains_new.iter().chain(&chains_changed) {
        for rule in &desired.chains[*name].rules {
            b.add_rule(name, rule.clone());
        }
    }
    for ((map, key), target) in &elements_new {
        b.add_element(*map, *key, target);
    }
    for name in &chains_removed {
        b.delete_chain(name);
    }
    let report = SyncReport {
        full: false,
        chains_written: chains_new.len() + chains_changed.len(),
        chains_deleted: chains_removed.len(),
        elements_changed: elements_gone.len() + elements_new.len(),
        conntrack_deleted: 0,
    };
    (b.commands, report)
}

/// The batch that removes the table (a no-op when it is absent: it is added first).
pub(crate) fn delete_table(table: &str) -> Vec<Value> {
    let mut b = Commands::new(table);
    b.add_table();
    let table = Table {
        family: NfFamily::IP,
        name: table.to_string().into(),
        handle: None,
    };
    b.push(NfCmd::Delete(NfListObject::Table(table)));
    b.commands
}

/// Commands for one table, in order.
struct Commands {
    table: String,
    commands: Vec<Value>,
}

impl Commands {
    fn new(table: &str) -> Self {
        Commands {
            table: table.to_string(),
            commands: Vec::new(),
        }
    }

    fn push(&mut self, cmd: NfCmd<'_>) {
        let value = serde_json::to_value(NfObject::CmdObject(cmd))
            .expect("nftables commands serialize to JSON");
        self.commands.push(value);
    }

    fn add_table(&mut self) {
        let table = Table {
            family: NfFamily::IP,
            name: self.table.clone().into(),
            handle: None,
        };
        self.push(NfCmd::Add(NfListObject::Table(table)));
    }

    fn chain(&self, name: &str) -> Chain<'static> {
        Chain {
            family: NfFamily::IP,
            table: self.table.clone().into(),
            name: name.to_string().into(),
            ..Chain::default()
        }
    }

    fn add_base_chain(&mut self, base: &BaseChain) {
        let chain = Chain {
            _type: Some(base.kind),
            hook: Some(base.hook),
            prio: Some(base.priority),
            policy: Some(NfChainPolicy::Accept),
            ..self.chain(base.name)
        };
        self.push(NfCmd::Add(NfListObject::Chain(chain)));
    }

    fn add_chain(&mut self, name: &str) {
        let chain = self.chain(name);
        self.push(NfCmd::Add(NfListObject::Chain(chain)));
    }

    fn flush_chain(&mut self, name: &str) {
        let chain = self.chain(name);
        self.push(NfCmd::Flush(FlushObject::Chain(chain)));
    }

    fn delete_chain(&mut self, name: &str) {
        let chain = self.chain(name);
        self.push(NfCmd::Delete(NfListObject::Chain(chain)));
    }

    fn add_rule(&mut self, chain: &str, statements: Vec<Statement<'static>>) {
        let rule = Rule {
            family: NfFamily::IP,
            table: self.table.clone().into(),
            chain: chain.to_string().into(),
            expr: statements.into(),
            ..Rule::default()
        };
        self.push(NfCmd::Add(NfListObject::Rule(rule)));
    }

    fn set(&self, name: &str, timeout: Option<u32>) -> Set<'static> {
        Set {
            family: NfFamily::IP,
            table: self.table.clone().into(),
            name: name.to_string().into(),
            set_type: SetTypeValue::Single(SetType::Ipv4Addr),
            // Entries expire. (Being updated from the packet path, the set is made
            // `dynamic` by nft itself, whose JSON parser in Debian 12 refuses the flag.)
            flags: timeout.map(|_| [SetFlag::Timeout].into_iter().collect()),
            timeout,
            ..Set::default()
        }
    }

    fn add_set(&mut self, name: &str, timeout: u32) {
        let set = self.set(name, Some(timeout));
        self.push(NfCmd::Add(NfListObject::Set(Box::new(set))));
    }

    fn delete_set(&mut self, name: &str) {
        let set = self.set(name, None);
        self.push(NfCmd::Delete(NfListObject::Set(Box::new(set))));
    }

    fn map_object(&self, name: &str) -> Value {
        json!({ "family": "ip", "table": self.table, "name": name })
    }

    fn add_map(&mut self, map: MapName) {
        let mut object = self.map_object(map.as_str());
        object["type"] = if map.keyed_by_address() {
            json!(["ipv4_addr", "inet_proto", "inet_service"])
        } else {
            json!(["inet_proto", "inet_service"])
        };
        object["map"] = json!("verdict");
        self.commands.push(json!({ "add": { "map": object } }));
    }

    fn flush_map(&mut self, name: &str) {
        let object = self.map_object(name);
        self.commands.push(json!({ "flush": { "map": object } }));
    }

    fn delete_map(&mut self, name: &str) {
        let object = self.map_object(name);
        self.commands.push(json!({ "delete": { "map": object } }));
    }

    fn element(&self, map: MapName, elem: Expression<'static>) -> Element<'static> {
        Element {
            family: NfFamily::IP,
            table: self.table.clone().into(),
            name: map.as_str().into(),
            elem: vec![elem].into(),
        }
    }

    fn add_element(&mut self, map: MapName, key: MapKey, target: &str) {
        let verdict = Expression::Verdict(Verdict::Goto(JumpTarget {
            target: target.to_string().into(),
        }));
        let element = self.element(map, Expression::List(vec![key.expression(), verdict]));
        self.push(NfCmd::Add(NfListObject::Element(element)));
    }

    fn delete_element(&mut self, map: MapName, key: MapKey) {
        let element = self.element(map, key.expression());
        self.push(NfCmd::Delete(NfListObject::Element(element)));
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::proxy::{Endpoint, Protocol, ProxyConfig, ServicePort, TrafficPolicy};

    fn ruleset(endpoints: &[u8]) -> Ruleset {
        let port = ServicePort {
            namespace: "ns".into(),
            name: "web".into(),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 1)),
            port: 80,
            node_port: None,
            external_ips: Vec::new(),
            external_policy: TrafficPolicy::Cluster,
            internal_policy: TrafficPolicy::Cluster,
            load_balancer_ips: Vec::new(),
            source_ranges: Vec::new(),
            affinity_timeout: Some(30),
            endpoints: endpoints
                .iter()
                .map(|last| Endpoint {
                    ip: Ipv4Addr::new(10, 244, 1, *last),
                    port: 8080,
                    ready: true,
                    serving: true,
                    terminating: false,
                    local: true,
                })
                .collect(),
        };
        let config = ProxyConfig {
            table: "t".into(),
            cluster_cidr: None,
            service_cidr: None,
        };
        super::super::rules::compile(&config, &[port]).unwrap()
    }

    /// Each command as `verb kind name`.
    fn summary(commands: &[Value]) -> Vec<String> {
        commands
            .iter()
            .map(|c| {
                let (verb, body) = c.as_object().unwrap().iter().next().unwrap();
                let (kind, object) = body.as_object().unwrap().iter().next().unwrap();
                let name = object
                    .get("name")
                    .or(object.get("chain"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                format!("{verb} {kind} {name}")
            })
            .collect()
    }

    #[test]
    fn nothing_changed_nothing_sent() {
        let (commands, report) = incremental("t", &ruleset(&[2, 3]), &ruleset(&[2, 3]));
        assert!(commands.is_empty());
        assert!(report.is_noop());
    }

    #[test]
    fn a_removed_endpoint_is_unhooked_before_it_is_deleted() {
        let (commands, report) = incremental("t", &ruleset(&[2, 3]), &ruleset(&[2]));
        let service = "ns/web/tcp/http";
        let gone = format!("{service}__10.244.1.3/8080");
        assert_eq!(
            summary(&commands),
            [
                format!("flush chain service-{service}"),
                format!("flush chain endpoint-{gone}"),
                format!("delete set affinity-{gone}"),
                format!("add rule service-{service}"),
                format!("add rule service-{service}"),
                format!("delete chain endpoint-{gone}"),
            ]
        );
        assert_eq!(
            (
                report.chains_written,
                report.chains_deleted,
                report.elements_changed
            ),
            (1, 1, 0)
        );
    }

    #[test]
    fn a_full_sync_keeps_wanted_sets_and_removes_strangers() {
        let desired = ruleset(&[2]);
        let listing = json!({"nftables": [
            {"table": {"family": "ip", "name": "t"}},
            {"chain": {"name": "endpoint-old"}},
            {"set": {"name": "affinity-ns/web/tcp/http__10.244.1.2/8080", "timeout": 30}},
            {"set": {"name": "affinity-old", "timeout": 30}},
            {"map": {"name": "old-map"}},
        ]});
        let existing = Existing::from_listing(&listing);
        let (commands, report) = full("t", &desired, &existing);
        let summary = summary(&commands);
        let position = |line: &str| summary.iter().position(|s| s == line);
        assert!(position("add set affinity-ns/web/tcp/http__10.244.1.2/8080").is_none());
        let flushed = position("flush chain endpoint-old").unwrap();
        let deleted = position("delete chain endpoint-old").unwrap();
        assert!(flushed < deleted);
        assert!(position("delete set affinity-old").unwrap() < deleted);
        assert!(position("delete map old-map").is_some());
        assert_eq!(report.chains_deleted, 1);
    }
}
