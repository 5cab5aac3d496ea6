//! NetworkPolicy in the kernel: the node's pods that some policy isolates get their
//! traffic checked in the `forward` hook of an nftables table of their own.
//!
//! The description is plain data, already resolved by the caller (selectors turned into
//! addresses, named ports into numbers): per isolated pod, the rules that allow its
//! ingress and its egress. Packets of connections already established (and related ICMP)
//! pass; a new connection from an isolated pod must match one of its egress rules, one to
//! an isolated pod one of its ingress rules, or it is dropped. Both checks happen on the
//! node of the pod concerned, so across nodes the sender's node checks egress and the
//! receiver's ingress, as the Kubernetes model has it. Bridged traffic between pods of one
//! node reaches the hook through `br_netfilter`, which the pod network turns on.
//!
//! Each sync replaces the whole table in one `nft -f` transaction: there is never a moment
//! without rules, and what passes is decided again for new connections only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::NetError;
use crate::proxy::Protocol;

/// A set of addresses: a CIDR less the ones in `except`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPeer {
    pub net: Ipv4Net,
    pub except: Vec<Ipv4Net>,
}

impl PolicyPeer {
    /// One address.
    pub fn host(ip: Ipv4Addr) -> Self {
        Self {
            net: Ipv4Net::from(ip),
            except: Vec::new(),
        }
    }
}

/// A port (or range) of a protocol; `None` ports: the whole protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyPort {
    pub protocol: Protocol,
    pub ports: Option<(u16, u16)>,
}

/// What one rule of a policy allows: traffic with one of `peers` (`None`: anyone) on one
/// of `ports` (empty: any).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyRule {
    pub peers: Option<Vec<PolicyPeer>>,
    pub ports: Vec<PolicyPort>,
}

/// A pod of this node and what its policies allow; `None`: not isolated that way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPolicy {
    pub ip: Ipv4Addr,
    /// `namespace/name`, in the chain's comment.
    pub pod: String,
    pub ingress: Option<Vec<PolicyRule>>,
    pub egress: Option<Vec<PolicyRule>>,
}

/// The NetworkPolicy table of a node.
#[derive(Debug)]
pub struct PolicyTable {
    table: String,
    /// The last script applied, so an unchanged state is not sent again.
    applied: Option<String>,
}

impl PolicyTable {
    /// The table `table` (family `ip`) in the namespace of the calling thread.
    pub fn new(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            applied: None,
        }
    }

    /// Makes the table enforce exactly `pods`; whether anything was sent.
    pub fn sync(&mut self, pods: &[PodPolicy]) -> Result<bool, NetError> {
        let script = compile(&self.table, pods);
        if self.applied.as_deref() == Some(script.as_str()) {
            return Ok(false);
        }
        nft(&self.table, &script)?;
        self.applied = Some(script);
        Ok(true)
    }

    /// Removes the table.
    pub fn remove(&mut self) -> Result<(), NetError> {
        self.applied = None;
        nft(
            &self.table,
            &format!("table ip {0}\ndelete table ip {0}\n", self.table),
        )
    }
}

fn nft(table: &str, script: &str) -> Result<(), NetError> {
    let error = |detail: String| NetError::Nftables {
        table: table.to_owned(),
        detail,
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| error(format!("running nft: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| error(format!("writing to nft: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| error(format!("waiting for nft: {e}")))?;
    if !out.status.success() {
        return Err(error(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

/// The `nft -f` script that replaces the table with one enforcing `pods`.
pub(crate) fn compile(table: &str, pods: &[PodPolicy]) -> String {
    // Declared (so the flush cannot fail on a missing table), emptied, refilled: one
    // transaction.
    let mut out = format!("table ip {table}\nflush table ip {table}\ntable ip {table} {{\n");
    let mut egress: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    let mut ingress: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    let mut chains = String::new();
    for pod in pods {
        for (direction, rules, field, into) in [
            ("egress", &pod.egress, "daddr", &mut egress),
            ("ingress", &pod.ingress, "saddr", &mut ingress),
        ] {
            let Some(rules) = rules else { continue };
            let chain = format!("{direction}-{}", pod.ip);
            let _ = writeln!(chains, "  chain {chain} {{");
            let _ = writeln!(
                chains,
                "    comment \"{} of {}\"",
                direction,
                quote(&pod.pod)
            );
            for rule in rules {
                for line in rule_lines(rule, field) {
                    let _ = writeln!(chains, "    {line}return");
                }
            }
            let _ = writeln!(chains, "    counter drop\n  }}");
            into.insert(pod.ip, chain);
        }
    }
    let _ = writeln!(
        out,
        "  chain forward {{\n    type filter hook forward priority filter; policy accept;\n    ct state established,related accept"
    );
    for (field, map) in [("saddr", &egress), ("daddr", &ingress)] {
        if map.is_empty() {
            continue;
        }
        let elements: Vec<String> = map
            .iter()
            .map(|(ip, chain)| format!("{ip} : jump {chain}"))
            .collect();
        let _ = writeln!(out, "    ip {field} vmap {{ {} }}", elements.join(", "));
    }
    out.push_str("  }\n");
    out.push_str(&chains);
    out.push_str("}\n");
    out
}

/// The match parts of one rule, each ending in a space (the verdict follows); several
/// when the rule has several peers or ports, none when it matches nothing.
fn rule_lines(rule: &PolicyRule, field: &str) -> Vec<String> {
    let peers: Vec<String> = match &rule.peers {
        None => vec![String::new()],
        Some(peers) => peers
            .iter()
            .map(|p| {
                let mut m = format!("ip {field} {} ", p.net);
                if !p.except.is_empty() {
                    let except: Vec<String> = p.except.iter().map(ToString::to_string).collect();
                    let _ = write!(m, "ip {field} != {{ {} }} ", except.join(", "));
                }
                m
            })
            .collect(),
    };
    let ports: Vec<String> = if rule.ports.is_empty() {
        vec![String::new()]
    } else {
        rule.ports
            .iter()
            .map(|p| {
                let proto = p.protocol.as_str();
                match p.ports {
                    None => format!("meta l4proto {proto} "),
                    Some((a, b)) if a == b => format!("meta l4proto {proto} th dport {a} "),
                    Some((a, b)) => format!("meta l4proto {proto} th dport {a}-{b} "),
                }
            })
            .collect()
    };
    peers
        .iter()
        .flat_map(|peer| ports.iter().map(move |port| format!("{peer}{port}")))
        .collect()
}

/// A comment's text without what would end it.
fn quote(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\n').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn isolated_pods_get_chains_and_the_rest_pass() {
        let pods = [
            PodPolicy {
                ip: ip("10.244.0.5"),
                pod: "ns/db".into(),
                ingress: Some(vec![PolicyRule {
                    peers: Some(vec![
                        PolicyPeer::host(ip("10.244.0.6")),
                        PolicyPeer {
                            net: "10.0.0.0/8".parse().unwrap(),
                            except: vec!["10.244.0.0/16".parse().unwrap()],
                        },
                    ]),
                    ports: vec![PolicyPort {
                        protocol: Protocol::Tcp,
                        ports: Some((5432, 5432)),
                    }],
                }]),
                egress: Some(Vec::new()),
            },
            PodPolicy {
                ip: ip("10.244.0.7"),
                pod: "ns/open".into(),
                ingress: None,
                egress: Some(vec![PolicyRule {
                    peers: None,
                    ports: vec![PolicyPort {
                        protocol: Protocol::Udp,
                        ports: Some((53, 54)),
                    }],
                }]),
            },
        ];
        let script = compile("t-pol", &pods);
        assert!(
            script.starts_with("table ip t-pol\nflush table ip t-pol\n"),
            "{script}"
        );
        assert!(script.contains("ip saddr vmap { 10.244.0.5 : jump egress-10.244.0.5, 10.244.0.7 : jump egress-10.244.0.7 }"), "{script}");
        assert!(
            script.contains("ip daddr vmap { 10.244.0.5 : jump ingress-10.244.0.5 }"),
            "{script}"
        );
        assert!(
            script.contains("ip saddr 10.244.0.6/32 meta l4proto tcp th dport 5432 return"),
            "{script}"
        );
        assert!(script.contains("ip saddr 10.0.0.0/8 ip saddr != { 10.244.0.0/16 } meta l4proto tcp th dport 5432 return"), "{script}");
        assert!(
            script.contains("meta l4proto udp th dport 53-54 return"),
            "{script}"
        );
        // Deny-all egress: a chain that only drops.
        let egress = script.split("chain egress-10.244.0.5 {").nth(1).unwrap();
        let body: Vec<&str> = egress.lines().take_while(|l| !l.contains('}')).collect();
        assert_eq!(
            body.iter().filter(|l| l.contains("return")).count(),
            0,
            "{body:?}"
        );
        assert!(body.iter().any(|l| l.contains("drop")));
    }

    #[test]
    fn nobody_isolated_is_an_open_forward_chain() {
        let script = compile("t-pol", &[]);
        assert!(!script.contains("vmap"));
        assert!(script.contains("policy accept"));
    }
}
