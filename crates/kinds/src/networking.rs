//! networking.k8s.io/v1: Ingresses, IngressClasses and NetworkPolicies.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::networking::v1 as networking;
use serde_json::{Value, json};

use crate::apps::fields::{self, child, default_str, default_value, get, items};
use crate::apps::intstr::IntOrString;
use crate::apps::messages::render;
use crate::apps::selector::{format_label_selector, validate_selector};
use crate::apps::strategy::KindStrategy;
use crate::catalog::resource;
use crate::core::field::{immutable, not_supported, port_name, port_number};
use crate::table::{self, age_column, column, name_column};
use crate::validation::{dns1035_label, dns1123_subdomain, path_segment, quote};
use crate::{Column, FieldError, ResourceDef};

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            Arc::new(ingress_strategy()),
        )
        .short_names(&["ing"])
        .status()
        .build(),
        resource(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            Arc::new(ingress_class_strategy()),
        )
        .cluster_scoped()
        .build(),
        resource(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            Arc::new(network_policy_strategy()),
        )
        .short_names(&["netpol"])
        .build(),
    ]
}

// ---------------------------------------------------------------------------
// Ingresses

/// The Ingress strategy (also behind extensions/v1beta1 Ingresses).
pub(crate) fn ingress_strategy() -> KindStrategy<networking::Ingress> {
    KindStrategy {
        status: true,
        generation: true,
        validate: |obj, _| validate_ingress(obj),
        validate_status: |obj, _| validate_ingress_status(obj),
        ..KindStrategy::new(ingress_columns, ingress_row)
    }
}

fn validate_ingress(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let rules = items(&spec, "/rules");
    let default_backend = get(&spec, "/defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        errs.push(FieldError::invalid(
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default_backend {
        errs.extend(validate_backend(b, "spec.defaultBackend"));
    }
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        let host = fields::str_or_empty(rule, "/host");
        if !host.is_empty() {
            errs.extend(validate_host(host, &format!("{path}.host"), true));
        }
        if let Some(http) = get(rule, "/http") {
            let paths = items(http, "/paths");
            if paths.is_empty() {
                errs.push(FieldError::required(format!("{path}.http.paths"), ""));
            }
            for (j, p) in paths.iter().enumerate() {
                errs.extend(validate_http_path(p, &format!("{path}.http.paths[{j}]")));
            }
        }
    }
    for (i, tls) in items(&spec, "/tls").iter().enumerate() {
        for (j, host) in items(tls, "/hosts").iter().enumerate() {
            let host = host.as_str().unwrap_or_default();
            let field = format!("spec.tls[{i}].hosts[{j}]");
            if host.contains('*') {
                errs.extend(
                    wildcard_problems(host)
                        .into_iter()
                        .map(|p| FieldError::invalid(field.clone(), quote(host), p)),
                );
            } else {
                errs.extend(
                    dns1123_subdomain(host)
                        .into_iter()
                        .map(|p| FieldError::invalid(field.clone(), quote(host), p)),
                );
            }
        }
        let secret = fields::str_or_empty(tls, "/secretName");
        if !secret.is_empty() {
            for p in dns1123_subdomain(secret) {
                errs.push(FieldError::invalid(
                    format!("spec.tls[{i}].secretName"),
                    quote(secret),
                    p,
                ));
            }
        }
    }
    if let Some(class) = fields::get_str(&spec, "/ingressClassName").filter(|c| !c.is_empty()) {
        for p in dns1123_subdomain(class) {
            errs.push(FieldError::invalid(
                "spec.ingressClassName",
                quote(class),
                p,
            ));
        }
    }
    errs
}

/// Host checks of rules: a DNS name, not an IP; a leading `*.` wildcard
/// allowed.
fn validate_host(host: &str, field: &str, reject_ip: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if reject_ip && host.parse::<IpAddr>().is_ok() {
        errs.push(FieldError::invalid(
            field,
            quote(host),
            "must be a DNS name, not an IP address",
        ));
    }
    let problems = if host.contains('*') {
        wildcard_problems(host)
    } else {
        dns1123_subdomain(host)
    };
    errs.extend(
        problems
            .into_iter()
            .map(|p| FieldError::invalid(field, quote(host), p)),
    );
    errs
}

/// Kubernetes' `IsWildcardDNS1123Subdomain`.
fn wildcard_problems(host: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if host.len() > 253 {
        problems.push("must be no more than 253 characters".into());
    }
    let ok = host
        .strip_prefix("*.")
        .is_some_and(|rest| dns1123_subdomain(rest).is_empty());
    if !ok {
        problems.push(
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must \
             consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character \
             (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        );
    }
    problems
}

fn validate_http_path(p: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(path_type) = fields::get_str(p, "/pathType") else {
        return vec![FieldError::required(
            format!("{path}.pathType"),
            "pathType must be specified",
        )];
    };
    let value = fields::str_or_empty(p, "/path");
    let field = format!("{path}.path");
    match path_type {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(FieldError::invalid(
                    field.clone(),
                    quote(value),
                    "must be an absolute path",
                ));
            }
            if !value.is_empty() {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if value.contains(seq) {
                        errs.push(FieldError::invalid(
                            field.clone(),
                            quote(value),
                            format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in ["/..", "/."] {
                    if value.ends_with(suffix) {
                        errs.push(FieldError::invalid(
                            field.clone(),
                            quote(value),
                            format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(FieldError::invalid(
                    field,
                    quote(value),
                    "must be an absolute path",
                ));
            }
        }
        other => errs.push(not_supported(
            format!("{path}.pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    errs.extend(validate_backend(
        p.get("backend").unwrap_or(&Value::Null),
        &format!("{path}.backend"),
    ));
    errs
}

fn validate_backend(backend: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let resource = get(backend, "/resource");
    let service = get(backend, "/service");
    match (resource, service) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            "\"\"",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            let rpath = format!("{path}.resource");
            if let Some(group) = fields::get_str(r, "/apiGroup") {
                for p in dns1123_subdomain(group) {
                    errs.push(FieldError::invalid(
                        format!("{rpath}.apiGroup"),
                        quote(group),
                        p,
                    ));
                }
            }
            for key in ["kind", "name"] {
                let v = fields::str_or_empty(r, &format!("/{key}"));
                if v.is_empty() {
                    errs.push(FieldError::required(
                        format!("{rpath}.{key}"),
                        format!("{key} is required"),
                    ));
                }
                for p in path_segment(v).into_iter().filter(|_| !v.is_empty()) {
                    errs.push(FieldError::invalid(format!("{rpath}.{key}"), quote(v), p));
                }
            }
        }
        (None, Some(s)) => {
            let name = fields::str_or_empty(s, "/name");
            if name.is_empty() {
                errs.push(FieldError::required(format!("{path}.service.name"), ""));
            } else {
                for p in dns1035_label(name) {
                    errs.push(FieldError::invalid(
                        format!("{path}.service.name"),
                        quote(name),
                        p,
                    ));
                }
            }
            let by_name = fields::str_or_empty(s, "/port/name");
            let by_number = fields::int_or_zero(s, "/port/number");
            match (!by_name.is_empty(), by_number != 0) {
                (true, true) => errs.push(FieldError::invalid(
                    path,
                    "\"\"",
                    "cannot set both port name & port number",
                )),
                (true, false) => {
                    errs.extend(port_name(&format!("{path}.service.port.name"), by_name));
                }
                (false, true) => {
                    errs.extend(port_number(
                        &format!("{path}.service.port.number"),
                        by_number,
                    ));
                }
                (false, false) => errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                )),
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            "\"\"",
            "resource or service backend is required",
        )),
    }
    errs
}

fn validate_ingress_status(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ing) in items(obj, "/status/loadBalancer/ingress")
        .iter()
        .enumerate()
    {
        let path = format!("status.loadBalancer.ingress[{i}]");
        if let Some(ip) = fields::get_str(ing, "/ip").filter(|s| !s.is_empty())
            && ip.parse::<IpAddr>().is_err()
        {
            errs.push(FieldError::invalid(
                format!("{path}.ip"),
                quote(ip),
                "must be a valid IP address",
            ));
        }
        if let Some(host) = fields::get_str(ing, "/hostname").filter(|s| !s.is_empty()) {
            for p in dns1123_subdomain(host) {
                errs.push(FieldError::invalid(
                    format!("{path}.hostname"),
                    quote(host),
                    p,
                ));
            }
            if host.parse::<IpAddr>().is_ok() {
                errs.push(FieldError::invalid(
                    format!("{path}.hostname"),
                    quote(host),
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

fn ingress_columns() -> Vec<Column> {
    vec![
        name_column(),
        column(
            "Class",
            "string",
            "The IngressClass that handles this ingress.",
        ),
        column("Hosts", "string", "Hosts the rules match."),
        column(
            "Address",
            "string",
            "Where the load balancer receives traffic.",
        ),
        column("Ports", "string", "Ports the ingress serves on."),
        age_column(),
    ]
}

fn ingress_row(obj: &Value, now: i64) -> Vec<Value> {
    let class = fields::get_str(obj, "/spec/ingressClassName").unwrap_or("<none>");
    // Kubernetes' formatHosts: up to three hosts, then "+ N more...".
    let rules = items(obj, "/spec/rules");
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == 3 {
            more = true;
        }
        let host = fields::str_or_empty(rule, "/host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_owned()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - 3)
    } else {
        hosts.join(",")
    };
    let mut addresses: Vec<&str> = items(obj, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| {
            fields::get_str(i, "/ip")
                .filter(|s| !s.is_empty())
                .or_else(|| fields::get_str(i, "/hostname").filter(|s| !s.is_empty()))
        })
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let ports = if items(obj, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        table::name(obj),
        json!(class),
        json!(hosts),
        json!(addresses.join(",")),
        json!(ports),
        table::age(obj, now),
    ]
}

// ---------------------------------------------------------------------------
// IngressClasses

fn ingress_class_strategy() -> KindStrategy<networking::IngressClass> {
    KindStrategy {
        default: |obj| {
            if let Some(params) = fields::get_mut(obj, "/spec/parameters") {
                default_value(params, "scope", json!("Cluster"));
            }
        },
        validate: validate_ingress_class,
        ..KindStrategy::new(ingress_class_columns, ingress_class_row)
    }
}

fn validate_ingress_class(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let controller = fields::str_or_empty(obj, "/spec/controller");
    let field = "spec.controller";
    if controller.len() > 250 {
        errs.push(FieldError {
            kind: crate::FieldErrorKind::TooLong,
            field: field.into(),
            value: None,
            detail: "may not be more than 250 bytes".into(),
        });
    }
    match controller.split_once('/') {
        _ if controller.is_empty() => errs.push(FieldError::required(field, "")),
        Some((host, path)) if !host.is_empty() && !path.is_empty() => {
            for p in dns1123_subdomain(host) {
                errs.push(FieldError::invalid(field, quote(host), p));
            }
            if !path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c))
            {
                errs.push(FieldError::invalid(
                    field,
                    quote(path),
                    "must be a valid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
                ));
            }
        }
        _ => errs.push(FieldError::invalid(
            field,
            quote(controller),
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
    if let Some(params) = get(obj, "/spec/parameters") {
        let path = "spec.parameters";
        for key in ["kind", "name"] {
            let v = fields::str_or_empty(params, &format!("/{key}"));
            if v.is_empty() {
                errs.push(FieldError::required(
                    format!("{path}.{key}"),
                    format!("{key} is required"),
                ));
            } else {
                for p in path_segment(v) {
                    errs.push(FieldError::invalid(format!("{path}.{key}"), quote(v), p));
                }
            }
        }
        let namespace = fields::get_str(params, "/namespace");
        match fields::str_or_empty(params, "/scope") {
            "Namespace" => {
                if namespace.is_none_or(str::is_empty) {
                    errs.push(FieldError::required(
                        format!("{path}.namespace"),
                        "`parameters.scope` is set to 'Namespace'",
                    ));
                }
            }
            "Cluster" => {
                if namespace.is_some() {
                    errs.push(FieldError::forbidden(
                        format!("{path}.namespace"),
                        "`parameters.scope` is set to 'Cluster'",
                    ));
                }
            }
            "" => errs.push(FieldError::required(format!("{path}.scope"), "")),
            other => errs.push(not_supported(
                format!("{path}.scope"),
                other,
                &["Cluster", "Namespace"],
            )),
        }
    }
    if let Some(old) = old
        && fields::changed(obj, old, "/spec/controller")
    {
        errs.push(immutable(field, quote(controller)));
    }
    errs
}

fn ingress_class_columns() -> Vec<Column> {
    vec![
        name_column(),
        column(
            "Controller",
            "string",
            "The controller that implements this class.",
        ),
        column(
            "Parameters",
            "string",
            "The resource holding the class's parameters.",
        ),
        age_column(),
    ]
}

fn ingress_class_row(obj: &Value, now: i64) -> Vec<Value> {
    let parameters = match get(obj, "/spec/parameters") {
        None => "<none>".to_owned(),
        Some(p) => {
            let mut text = fields::str_or_empty(p, "/kind").to_owned();
            if let Some(group) = fields::get_str(p, "/apiGroup") {
                text = format!("{text}.{group}");
            }
            format!("{text}/{}", fields::str_or_empty(p, "/name"))
        }
    };
    vec![
        table::name(obj),
        json!(fields::str_or_empty(obj, "/spec/controller")),
        json!(parameters),
        table::age(obj, now),
    ]
}

// ---------------------------------------------------------------------------
// NetworkPolicies

/// The NetworkPolicy strategy (also behind extensions/v1beta1).
pub(crate) fn network_policy_strategy() -> KindStrategy<networking::NetworkPolicy> {
    KindStrategy {
        generation: true,
        default: default_network_policy,
        validate: |obj, _| validate_network_policy(obj),
        ..KindStrategy::new(network_policy_columns, network_policy_row)
    }
}

/// networking/v1 defaults: ports default to TCP, and a policy without
/// `policyTypes` is about ingress, and egress too when it has egress rules.
pub(crate) fn default_network_policy(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    for key in ["ingress", "egress"] {
        for rule in fields::each_mut(spec, key) {
            for port in fields::each_mut(rule, "ports") {
                default_str(port, "protocol", "TCP");
            }
        }
    }
    if items(spec, "/policyTypes").is_empty() {
        let mut types = vec![json!("Ingress")];
        if !items(spec, "/egress").is_empty() {
            types.push(json!("Egress"));
        }
        fields::set(spec, "policyTypes", Value::Array(types));
    }
}

fn validate_network_policy(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let mut errs = validate_selector(get(&spec, "/podSelector"), "spec.podSelector");
    for (key, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in items(&spec, &format!("/{key}")).iter().enumerate() {
            let path = format!("spec.{key}[{i}]");
            for (j, port) in items(rule, "/ports").iter().enumerate() {
                errs.extend(validate_policy_port(port, &format!("{path}.ports[{j}]")));
            }
            for (j, peer) in items(rule, &format!("/{peers}")).iter().enumerate() {
                errs.extend(validate_peer(peer, &format!("{path}.{peers}[{j}]")));
            }
        }
    }
    let types = items(&spec, "/policyTypes");
    if types.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.policyTypes",
            render(get(&spec, "/policyTypes")),
            "may not specify more than two policyTypes",
        ));
        return errs;
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or_default();
        if t != "Ingress" && t != "Egress" {
            errs.push(not_supported(
                format!("spec.policyTypes[{i}]"),
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
    errs
}

fn validate_policy_port(port: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(protocol) = fields::get_str(port, "/protocol")
        && !["TCP", "UDP", "SCTP"].contains(&protocol)
    {
        errs.push(not_supported(
            format!("{path}.protocol"),
            protocol,
            &["TCP", "UDP", "SCTP"],
        ));
    }
    let end = fields::get_i64(port, "/endPort");
    match get(port, "/port").map(|p| IntOrString::from_json(Some(p))) {
        Some(IntOrString::Int(n)) => {
            errs.extend(port_number(&format!("{path}.port"), n));
            if let Some(e) = end {
                if e < n {
                    errs.push(FieldError::invalid(
                        format!("{path}.endPort"),
                        n.to_string(),
                        "must be greater than or equal to `port`",
                    ));
                }
                errs.extend(port_number(&format!("{path}.endPort"), e));
            }
        }
        Some(IntOrString::Str(name)) => {
            if let Some(e) = end {
                errs.push(FieldError::invalid(
                    format!("{path}.endPort"),
                    e.to_string(),
                    "may not be specified when `port` is non-numeric",
                ));
            }
            errs.extend(port_name(&format!("{path}.port"), &name));
        }
        None => {
            if let Some(e) = end {
                errs.push(FieldError::invalid(
                    format!("{path}.endPort"),
                    e.to_string(),
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
    errs
}

fn validate_peer(peer: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut count = 0;
    for key in ["podSelector", "namespaceSelector"] {
        if let Some(sel) = get(peer, &format!("/{key}")) {
            count += 1;
            errs.extend(validate_selector(Some(sel), &format!("{path}.{key}")));
        }
    }
    let ip_block = get(peer, "/ipBlock");
    if let Some(block) = ip_block {
        count += 1;
        errs.extend(validate_ip_block(block, &format!("{path}.ipBlock")));
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    } else if count > 1 && ip_block.is_some() {
        errs.push(FieldError::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
    errs
}

/// An address and prefix length, such as `10.0.0.0/8`.
fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = cidr.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

/// The network part of an address as a number, for containment tests.
fn network(ip: IpAddr, bits: u8) -> (u128, bool) {
    let (value, width) = match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let shift = u32::from(width - bits);
    let masked = if shift >= 128 {
        0
    } else {
        (value >> shift) << shift
    };
    (masked, ip.is_ipv4())
}

const CIDR_MESSAGE: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

fn validate_ip_block(block: &Value, path: &str) -> Vec<FieldError> {
    let cidr = fields::str_or_empty(block, "/cidr");
    if cidr.is_empty() {
        return vec![FieldError::required(format!("{path}.cidr"), "")];
    }
    let Some((ip, bits)) = parse_cidr(cidr) else {
        return vec![FieldError::invalid(
            format!("{path}.cidr"),
            quote(cidr),
            CIDR_MESSAGE,
        )];
    };
    let mut errs = Vec::new();
    for (i, except) in items(block, "/except").iter().enumerate() {
        let except = except.as_str().unwrap_or_default();
        let field = format!("{path}.except[{i}]");
        let Some((eip, ebits)) = parse_cidr(except) else {
            errs.push(FieldError::invalid(field, quote(except), CIDR_MESSAGE));
            continue;
        };
        let inside = ip.is_ipv4() == eip.is_ipv4() && network(eip, bits) == network(ip, bits);
        if !inside || bits >= ebits {
            errs.push(FieldError::invalid(
                field,
                quote(except),
                "must be a strict subset of `cidr`",
            ));
        }
    }
    errs
}

fn network_policy_columns() -> Vec<Column> {
    vec![
        name_column(),
        column("Pod-Selector", "string", "The pods the policy applies to."),
        age_column(),
    ]
}

fn network_policy_row(obj: &Value, now: i64) -> Vec<Value> {
    vec![
        table::name(obj),
        json!(format_label_selector(Some(
            obj.pointer("/spec/podSelector").unwrap_or(&json!({}))
        ))),
        table::age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Strategy;
    use crate::apps::tests::create;

    fn ingress() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "gantry", "rules": [{"host": "web.example.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
            ]}}]}
        })
    }

    #[test]
    fn ingresses() {
        let s = ingress_strategy();
        let (mut ing, errs) = create(&s, ingress());
        assert!(errs.is_empty(), "{errs:?}");
        ing["status"] =
            json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}, {"hostname": "lb.test"}]}});
        let now = crate::table::parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            s.row(&ing, now),
            vec![
                json!("web"),
                json!("gantry"),
                json!("web.example.test"),
                json!("10.0.0.2,lb.test"),
                json!("80"),
                json!("0s")
            ]
        );

        let mut bad = ingress();
        bad["spec"]["rules"][0]["host"] = json!("*.*.example.test");
        bad["spec"]["rules"][0]["http"]["paths"][0]["path"] = json!("web");
        bad["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = json!("Regex");
        bad["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = json!({});
        let errs = create(&s, bad).1;
        assert!(errs[0].starts_with("spec.rules[0].host: Invalid value: \"*.*.example.test\": a wildcard DNS-1123 subdomain"), "{errs:?}");
        assert_eq!(
            &errs[1..],
            [
                "spec.rules[0].http.paths[0].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
                "spec.rules[0].http.paths[0].backend: Required value: port name or number is required",
            ]
        );
        let mut relative = ingress();
        relative["spec"]["rules"][0]["http"]["paths"][0]["path"] = json!("api");
        assert_eq!(
            create(&s, relative).1,
            ["spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path"]
        );
        let empty = json!({"metadata": {"name": "x"}, "spec": {}});
        assert_eq!(
            create(&s, empty).1,
            [
                "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"
            ]
        );
    }

    #[test]
    fn network_policies() {
        let s = network_policy_strategy();
        let np = json!({"metadata": {"name": "db", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {
            "podSelector": {"matchLabels": {"role": "db"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}}],
                         "ports": [{"port": 6379}]}],
            "egress": [{"to": [{"namespaceSelector": {}}]}]
        }});
        let (np, errs) = create(&s, np);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        let now = crate::table::parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(s.row(&np, now)[1], json!("role=db"));
        let all = json!({"metadata": {"name": "all"}, "spec": {"podSelector": {}}});
        assert_eq!(s.row(&all, now)[1], json!("<none>"));

        let bad = json!({"metadata": {"name": "x"}, "spec": {"podSelector": {}, "ingress": [{"from": [
            {}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}, "podSelector": {}}
        ]}]}});
        assert_eq!(
            create(&s, bad).1,
            [
                "spec.ingress[0].from[0]: Required value: must specify a peer",
                "spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: \"192.168.0.0/16\": must be a strict subset of `cidr`",
                "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer",
            ]
        );
    }

    #[test]
    fn ingress_classes() {
        let s = ingress_class_strategy();
        let ic = json!({"metadata": {"name": "gantry"}, "spec": {"controller": "gantry.dev/ingress",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
        let (ic, errs) = create(&s, ic);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(ic["spec"]["parameters"]["scope"], "Cluster");
        let now = crate::table::parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            s.row(&ic, now)[2],
            json!("IngressParameters.k8s.example.com/external-lb")
        );
        let bad = json!({"metadata": {"name": "x"}, "spec": {"controller": "nginx"}});
        assert_eq!(
            create(&s, bad).1,
            [
                "spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"
            ]
        );
    }
}
