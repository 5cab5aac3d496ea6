//! The node's nftables table: masquerade for traffic leaving the cluster, and forwarding
//! for the bridge.
//!
//! The rules are plain data built here and handed to `nft -j -f -` in one batch, which the
//! kernel applies as one transaction: a re-run replaces the rules of our chains and nothing
//! else, so chains added to the table later (Services, policy) are left alone.

use std::borrow::Cow;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix};
use nftables::helper::{self, NftablesError};
use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::NetError;

/// The chain holding the masquerade rule.
pub(crate) const POSTROUTING: &str = "postrouting";
/// The chain accepting the bridge's forwarded traffic.
pub(crate) const FORWARD: &str = "forward";

/// What the rules are made from.
pub(crate) struct NatConfig<'a> {
    /// The table's name.
    pub table: &'a str,
    /// The pods' bridge.
    pub bridge: &'a str,
    /// This node's pods: the sources that are masqueraded.
    pub pod_cidr: Ipv4Net,
    /// Every pod of the cluster: destinations that keep the pod's source address.
    pub cluster_cidr: Ipv4Net,
}

/// The batch that creates or refreshes the table.
///
/// - `postrouting` (nat, srcnat priority): `ip saddr <pod_cidr> ip daddr != <cluster_cidr>
///   masquerade`. Traffic to other pods keeps its source, so pods and policies see who
///   really called; traffic to anywhere else leaves with the node's address, since nothing
///   outside knows the way back to a pod range.
/// - `forward` (filter, priority 0, policy accept): accept what enters or leaves through the
///   bridge. With `br_netfilter` loaded (`bridge-nf-call-iptables=1`, the default in every
///   namespace once the module is in), even traffic between two pods of one bridge passes
///   the IPv4 forward hook, with the bridge as `iifname` and `oifname`; these rules accept
///   it before anything this table may later add (policy) and say which traffic is the
///   pods'. A drop in another table's forward chain (a host firewall with policy drop)
///   still wins: an accept only ends its own chain.
pub(crate) fn ruleset(config: &NatConfig<'_>) -> Nftables<'static> {
    let table = config.table.to_string();
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(Table {
        family: NfFamily::IP,
        name: table.clone().into(),
        handle: None,
    }));
    for (name, kind, hook, prio) in [
        (POSTROUTING, NfChainType::NAT, NfHook::Postrouting, 100),
        (FORWARD, NfChainType::Filter, NfHook::Forward, 0),
    ] {
        let chain = Chain {
            family: NfFamily::IP,
            table: table.clone().into(),
            name: name.into(),
            _type: Some(kind),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(NfChainPolicy::Accept),
            ..Chain::default()
        };
        batch.add(NfListObject::Chain(chain.clone()));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(Chain {
            _type: None,
            hook: None,
            prio: None,
            policy: None,
            ..chain
        })));
    }
    let rule = |chain: &'static str, expr: Vec<Statement<'static>>, comment: &'static str| {
        NfListObject::Rule(Rule {
            family: NfFamily::IP,
            table: table.clone().into(),
            chain: chain.into(),
            expr: expr.into(),
            comment: Some(comment.into()),
            ..Rule::default()
        })
    };
    batch.add(rule(
        POSTROUTING,
        vec![
            ip_match("saddr", Operator::EQ, config.pod_cidr),
            ip_match("daddr", Operator::NEQ, config.cluster_cidr),
            Statement::Masquerade(None),
        ],
        "pods leaving the cluster",
    ));
    for key in [MetaKey::Iifname, MetaKey::Oifname] {
        batch.add(rule(
            FORWARD,
            vec![meta_match(key, config.bridge), Statement::Accept(None)],
            "pod bridge",
        ));
    }
    batch.to_nftables()
}

/// The batch that removes the table (a no-op when it is absent: it is added first).
pub(crate) fn delete_table(table: &str) -> Nftables<'static> {
    let table = Table {
        family: NfFamily::IP,
        name: table.to_string().into(),
        handle: None,
    };
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table.clone()));
    batch.delete(NfListObject::Table(table));
    batch.to_nftables()
}

/// Runs `nft` with the batch, in the calling thread's network namespace.
pub(crate) fn apply(table: &str, batch: &Nftables<'_>) -> Result<(), NetError> {
    helper::apply_ruleset(batch).map_err(|e| NetError::Nftables {
        table: table.to_string(),
        detail: describe(e),
    })
}

/// The error of an `nft` run with what `nft` itself said, which the crate's own message
/// leaves out.
fn describe(error: NftablesError) -> String {
    match error {
        NftablesError::NftFailed { stderr, hint, .. } => {
            format!("nft failed while {hint}: {}", stderr.trim())
        }
        other => other.to_string(),
    }
}

/// `meta <key> == <value>`, e.g. `iifname "gantry0"`.
fn meta_match(key: MetaKey, value: &str) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Meta(Meta { key })),
        right: Expression::String(value.to_string().into()),
        op: Operator::EQ,
    })
}

/// `ip <field> <op> <prefix>`.
fn ip_match(field: &'static str, op: Operator, net: Ipv4Net) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
            PayloadField {
                protocol: Cow::Borrowed("ip"),
                field: Cow::Borrowed(field),
            },
        ))),
        right: Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(net.trunc().network().to_string().into())),
            len: u32::from(net.prefix_len()),
        })),
        op,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_json() {
        let config = NatConfig {
            table: "gantry",
            bridge: "gantry0",
            pod_cidr: "10.244.1.0/24".parse().unwrap(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        };
        let json = serde_json::to_string(&ruleset(&config)).unwrap();
        let want = r#"{"nftables":[{"add":{"table":{"family":"ip","name":"gantry"}}},{"add":{"chain":{"family":"ip","table":"gantry","name":"postrouting","type":"nat","hook":"postrouting","prio":100,"policy":"accept"}}},{"flush":{"chain":{"family":"ip","table":"gantry","name":"postrouting"}}},{"add":{"chain":{"family":"ip","table":"gantry","name":"forward","type":"filter","hook":"forward","prio":0,"policy":"accept"}}},{"flush":{"chain":{"family":"ip","table":"gantry","name":"forward"}}},{"add":{"rule":{"family":"ip","table":"gantry","chain":"postrouting","expr":[{"match":{"left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.244.1.0","len":24}},"op":"=="}},{"match":{"left":{"payload":{"protocol":"ip","field":"daddr"}},"right":{"prefix":{"addr":"10.244.0.0","len":16}},"op":"!="}},{"masquerade":null}],"comment":"pods leaving the cluster"}}},{"add":{"rule":{"family":"ip","table":"gantry","chain":"forward","expr":[{"match":{"left":{"meta":{"key":"iifname"}},"right":"gantry0","op":"=="}},{"accept":null}],"comment":"pod bridge"}}},{"add":{"rule":{"family":"ip","table":"gantry","chain":"forward","expr":[{"match":{"left":{"meta":{"key":"oifname"}},"right":"gantry0","op":"=="}},{"accept":null}],"comment":"pod bridge"}}}]}"#;
        assert_eq!(json, want);
    }

    #[test]
    fn delete_table_json() {
        let json = serde_json::to_string(&delete_table("gantry")).unwrap();
        assert_eq!(
            json,
            r#"{"nftables":[{"add":{"table":{"family":"ip","name":"gantry"}}},{"delete":{"table":{"family":"ip","name":"gantry"}}}]}"#
        );
    }
}
