//! What the server checks and adds on writes beyond a kind's strategy:
//! namespace lifecycle (no new objects in a missing or terminating
//! namespace; the system namespaces cannot be deleted), Service address
//! allocation (cluster IPs from the service CIDR, node ports from
//! 30000-32767), and for pods default tolerations and their service
//! account's credentials (`serviceaccount.rs`).
//!
//! Allocations are reserved by keys under `/registry/ranges/` written in the
//! same store transaction as the Service, conditioned on the key being
//! absent, so two API servers over one etcd can never hand out the same
//! address; a delete releases them in its transaction.

use std::net::Ipv4Addr;

use kinds::FieldError;
use rand::Rng;
use serde_json::{Value, json};
use store::{Compare, CompareOp, DeleteRequest, PutRequest, RangeRequest, TxnOp};

use crate::rest::Target;
use crate::status::{ApiError, ApiResult};

/// Namespaces that may never be deleted.
pub const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Extra conditions and operations for a write's transaction.
#[derive(Debug, Default)]
pub struct Extra {
    /// Conditions that must hold.
    pub compares: Vec<Compare>,
    /// Operations to run with the object's own.
    pub ops: Vec<TxnOp>,
    /// The compares guard shared counters (quota usage), not reservations:
    /// when one fails, the write is admitted again rather than refused.
    pub contended: bool,
}

impl Extra {
    fn merge(&mut self, other: Extra) {
        self.compares.extend(other.compares);
        self.ops.extend(other.ops);
        self.contended |= other.contended;
    }
}

/// The service CIDR and node port range.
#[derive(Clone, Debug)]
pub struct Ranges {
    /// First address of the service CIDR.
    pub service_base: Ipv4Addr,
    /// Prefix length of the service CIDR.
    pub service_prefix: u8,
    /// Node ports.
    pub node_ports: std::ops::RangeInclusive<u16>,
}

impl Default for Ranges {
    fn default() -> Self {
        Self {
            service_base: Ipv4Addr::new(10, 96, 0, 0),
            service_prefix: 12,
            node_ports: 30000..=32767,
        }
    }
}

impl Ranges {
    /// The address of the `kubernetes` Service: the CIDR's first host.
    pub fn api_service_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.service_base) + 1)
    }

    /// The address of the `kube-system/kube-dns` Service: the CIDR's tenth
    /// address, as kubeadm gives it (10.96.0.10 in the default range).
    pub fn dns_service_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.service_base) + 10)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.service_prefix));
        u32::from(ip) & mask == u32::from(self.service_base) & mask
    }

    fn size(&self) -> u32 {
        1u32 << (32 - u32::from(self.service_prefix))
    }

    /// The service CIDR in text.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.service_base, self.service_prefix)
    }
}

const IP_KEYS: &str = "/registry/ranges/serviceips/";
const PORT_KEYS: &str = "/registry/ranges/servicenodeports/";

/// Checks a create; returns what its transaction must also do.
pub async fn admit_create(t: &Target, obj: &mut Value) -> ApiResult<Extra> {
    let mut extra = Extra::default();
    if t.def.namespaced {
        check_namespace_open(t, obj).await?;
    }
    if is_service(t) {
        extra.merge(allocate_service(t, obj, None).await?);
    }
    if is_pod(t) {
        add_default_tolerations(obj, t.api.config.default_toleration_seconds);
        crate::serviceaccount::admit_pod(t, obj).await?;
    }
    crate::storageclass::admit(t, obj).await?;
    crate::limitrange::admit(t, obj).await?;
    extra.merge(crate::quota::admit(t, obj, None).await?);
    Ok(extra)
}

/// Checks an update; returns what its transaction must also do.
pub async fn admit_update(t: &Target, new: &mut Value, old: &Value) -> ApiResult<Extra> {
    let mut extra = crate::quota::admit(t, new, Some(old)).await?;
    if is_service(t) {
        extra.merge(allocate_service(t, new, Some(old)).await?);
    }
    Ok(extra)
}

/// Checks a delete; returns what its transaction must also do.
pub fn admit_delete(t: &Target, obj: &Value) -> ApiResult<Extra> {
    if t.def.storage.group.is_empty() && t.def.storage.resource == "namespaces" {
        let name = crate::meta::name(obj);
        if PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(
                "",
                "namespaces",
                name,
                "this namespace may not be deleted",
            ));
        }
    }
    let mut extra = Extra::default();
    if is_service(t) {
        release_all(obj, &mut extra);
    }
    Ok(extra)
}

fn is_pod(t: &Target) -> bool {
    t.def.storage.group.is_empty() && t.def.storage.resource == "pods"
}

/// DefaultTolerationSeconds: a pod that does not say how long it stays on
/// a node that is not ready or unreachable stays the configured time, after
/// which the taint eviction controller deletes it.
fn add_default_tolerations(obj: &mut Value, seconds: crate::DefaultTolerations) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if tolerations.is_null() {
        *tolerations = json!([]);
    }
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for (key, secs) in [
        ("node.kubernetes.io/not-ready", seconds.not_ready),
        ("node.kubernetes.io/unreachable", seconds.unreachable),
    ] {
        // Any toleration that would match the taint counts as saying so.
        let says = list.iter().any(|t| {
            let effect = t["effect"].as_str().unwrap_or("");
            let k = t["key"].as_str().unwrap_or("");
            let exists = t["operator"].as_str() == Some("Exists");
            (effect.is_empty() || effect == "NoExecute") && (k == key || (k.is_empty() && exists))
        });
        if !says {
            list.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": secs,
            }));
        }
    }
}

fn is_service(t: &Target) -> bool {
    t.def.storage.group.is_empty() && t.def.storage.resource == "services"
}

async fn check_namespace_open(t: &Target, obj: &Value) -> ApiResult<()> {
    let Some(ns) = t.namespace() else {
        return Ok(());
    };
    let key = format!("/registry/core/namespaces/{ns}");
    let resp = t.api.store.range(RangeRequest::key(key)).await?;
    let Some(kv) = resp.kvs.first() else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    let namespace: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("namespace {ns} is not valid JSON: {e}")))?;
    let terminating = crate::meta::is_deleting(&namespace)
        || namespace.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating");
    // Events may still be recorded about a namespace being torn down.
    if terminating && t.def.storage.resource != "events" {
        return Err(ApiError::forbidden(
            &t.def.group,
            &t.def.plural,
            crate::meta::name(obj),
            &format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        ));
    }
    Ok(())
}

fn cluster_ips(obj: &Value) -> Vec<String> {
    let from_list: Vec<String> = obj
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if !from_list.is_empty() {
        return from_list;
    }
    obj.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| vec![s.to_owned()])
        .unwrap_or_default()
}

/// The node ports a Service holds: its ports' and its health check's.
fn node_ports(obj: &Value) -> Vec<u16> {
    let mut ports: Vec<u16> = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    ports.extend(health_check_port(obj));
    ports
}

fn health_check_port(obj: &Value) -> Option<u16> {
    obj.pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

/// A LoadBalancer Service that keeps traffic on the nodes it reached
/// (`externalTrafficPolicy: Local`) gets a node port for the load
/// balancer's health checks.
fn needs_health_check(obj: &Value) -> bool {
    service_type(obj) == "LoadBalancer"
        && obj
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

fn service_type(obj: &Value) -> &str {
    obj.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn release_all(obj: &Value, extra: &mut Extra) {
    for ip in cluster_ips(obj).iter().filter(|ip| *ip != "None") {
        extra
            .ops
            .push(TxnOp::Delete(DeleteRequest::key(format!("{IP_KEYS}{ip}"))));
    }
    for port in node_ports(obj) {
        extra.ops.push(TxnOp::Delete(DeleteRequest::key(format!(
            "{PORT_KEYS}{port}"
        ))));
    }
}

fn reserve(key: String, owner: &str, extra: &mut Extra) {
    extra
        .compares
        .push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
    extra
        .ops
        .push(TxnOp::Put(PutRequest::new(key, owner.to_owned())));
}

async fn taken(t: &Target, key: &str) -> ApiResult<bool> {
    Ok(t.api
        .store
        .range(RangeRequest::key(key.to_owned()).count_only())
        .await?
        .count
        > 0)
}

/// Allocates what a Service needs and is missing, checks what the client
/// asked for, and releases what an update gave up.
async fn allocate_service(t: &Target, obj: &mut Value, old: Option<&Value>) -> ApiResult<Extra> {
    let ranges = &t.api.config.ranges;
    let owner = format!(
        "{}/{}",
        crate::meta::meta_str(obj, "namespace").unwrap_or(""),
        crate::meta::name(obj)
    );
    let name = crate::meta::name(obj).to_owned();
    let invalid = |errors: Vec<FieldError>| ApiError::invalid("", "Service", &name, &errors);
    let mut extra = Extra::default();
    let kind = service_type(obj).to_owned();
    let old_ips = old.map(cluster_ips).unwrap_or_default();
    let old_ports = old.map(node_ports).unwrap_or_default();

    // Cluster IP.
    let wanted = cluster_ips(obj);
    if kind == "ExternalName" {
        for ip in old_ips.iter().filter(|ip| *ip != "None") {
            extra
                .ops
                .push(TxnOp::Delete(DeleteRequest::key(format!("{IP_KEYS}{ip}"))));
        }
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    } else if wanted.first().map(String::as_str) == Some("None") {
        // Headless: nothing to allocate.
    } else if let Some(ip) = wanted.first() {
        if !old_ips.contains(ip) {
            let addr: Ipv4Addr = ip.parse().map_err(|_| {
                invalid(vec![FieldError::invalid(
                    "spec.clusterIPs[0]",
                    format!("\"{ip}\""),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )])
            })?;
            if !ranges.contains(addr) {
                return Err(invalid(vec![FieldError::invalid(
                    "spec.clusterIPs",
                    format!("[]string{{\"{ip}\"}}"),
                    format!(
                        "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                        ranges.cidr()
                    ),
                )]));
            }
            let key = format!("{IP_KEYS}{ip}");
            if taken(t, &key).await? {
                return Err(invalid(vec![FieldError::invalid(
                    "spec.clusterIPs",
                    format!("[]string{{\"{ip}\"}}"),
                    format!("failed to allocate IP {ip}: provided IP is already allocated"),
                )]));
            }
            reserve(key, &owner, &mut extra);
        }
    } else {
        let ip = free_ip(t).await?;
        reserve(format!("{IP_KEYS}{ip}"), &owner, &mut extra);
        obj["spec"]["clusterIP"] = json!(ip.to_string());
        obj["spec"]["clusterIPs"] = json!([ip.to_string()]);
    }

    // Node ports, for NodePort and LoadBalancer services (unless the
    // latter says `allocateLoadBalancerNodePorts: false`: then only those
    // asked for).
    let needs_ports = kind == "NodePort" || kind == "LoadBalancer";
    let allocate_ports = kind == "NodePort"
        || obj
            .pointer("/spec/allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            != Some(false);
    let mut kept = Vec::new();
    if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for (i, port) in ports.iter_mut().enumerate() {
            if !needs_ports {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
                continue;
            }
            match port.get("nodePort").and_then(Value::as_u64) {
                Some(n) => {
                    let n = u16::try_from(n).unwrap_or(0);
                    if !ranges.node_ports.contains(&n) {
                        return Err(invalid(vec![FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            n.to_string(),
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                ranges.node_ports.start(),
                                ranges.node_ports.end()
                            ),
                        )]));
                    }
                    if !old_ports.contains(&n) {
                        let key = format!("{PORT_KEYS}{n}");
                        if taken(t, &key).await? || kept.contains(&n) {
                            return Err(invalid(vec![FieldError::invalid(
                                format!("spec.ports[{i}].nodePort"),
                                n.to_string(),
                                "provided port is already allocated",
                            )]));
                        }
                        reserve(key, &owner, &mut extra);
                    }
                    kept.push(n);
                }
                None if allocate_ports => {
                    let n = free_port(t, &kept).await?;
                    reserve(format!("{PORT_KEYS}{n}"), &owner, &mut extra);
                    port["nodePort"] = json!(n);
                    kept.push(n);
                }
                None => {}
            }
        }
    }
    if needs_health_check(obj) {
        match health_check_port(obj) {
            Some(n) => {
                if !ranges.node_ports.contains(&n) {
                    return Err(invalid(vec![FieldError::invalid(
                        "spec.healthCheckNodePort",
                        n.to_string(),
                        format!(
                            "provided port is not in the valid range. The range of valid ports is {}-{}",
                            ranges.node_ports.start(),
                            ranges.node_ports.end()
                        ),
                    )]));
                }
                if !old_ports.contains(&n) {
                    let key = format!("{PORT_KEYS}{n}");
                    if taken(t, &key).await? || kept.contains(&n) {
                        return Err(invalid(vec![FieldError::invalid(
                            "spec.healthCheckNodePort",
                            n.to_string(),
                            "provided port is already allocated",
                        )]));
                    }
                    reserve(key, &owner, &mut extra);
                }
                kept.push(n);
            }
            None => {
                let n = free_port(t, &kept).await?;
                reserve(format!("{PORT_KEYS}{n}"), &owner, &mut extra);
                obj["spec"]["healthCheckNodePort"] = json!(n);
                kept.push(n);
            }
        }
    }
    for port in old_ports.iter().filter(|p| !kept.contains(p)) {
        extra.ops.push(TxnOp::Delete(DeleteRequest::key(format!(
            "{PORT_KEYS}{port}"
        ))));
    }
    Ok(extra)
}

async fn free_ip(t: &Target) -> ApiResult<Ipv4Addr> {
    let ranges = &t.api.config.ranges;
    let base = u32::from(ranges.service_base);
    let size = ranges.size();
    // Random probes first (cheap while the range is sparse), then a scan.
    for _ in 0..64 {
        let offset = rand::rng().random_range(2..size - 1);
        let ip = Ipv4Addr::from(base + offset);
        if !taken(t, &format!("{IP_KEYS}{ip}")).await? {
            return Ok(ip);
        }
    }
    let used = t
        .api
        .store
        .range(RangeRequest::prefix(IP_KEYS).keys_only())
        .await?;
    let used: std::collections::HashSet<Vec<u8>> =
        used.kvs.into_iter().map(|kv| kv.key.to_vec()).collect();
    (2..size - 1)
        .map(|o| Ipv4Addr::from(base + o))
        .find(|ip| !used.contains(format!("{IP_KEYS}{ip}").as_bytes()))
        .ok_or_else(|| {
            ApiError::internal(format!(
                "failed to allocate a serviceIP: range {} is full",
                ranges.cidr()
            ))
        })
}

async fn free_port(t: &Target, also_taken: &[u16]) -> ApiResult<u16> {
    let range = t.api.config.ranges.node_ports.clone();
    for _ in 0..64 {
        let n = rand::rng().random_range(range.clone());
        if !also_taken.contains(&n) && !taken(t, &format!("{PORT_KEYS}{n}")).await? {
            return Ok(n);
        }
    }
    for n in range {
        if !also_taken.contains(&n) && !taken(t, &format!("{PORT_KEYS}{n}")).await? {
            return Ok(n);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a nodePort: range is full",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_cidr_arithmetic() {
        let r = Ranges::default();
        assert_eq!(r.api_service_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert!(r.contains(Ipv4Addr::new(10, 111, 255, 254)));
        assert!(!r.contains(Ipv4Addr::new(10, 112, 0, 1)));
        assert_eq!(r.size(), 1 << 20);
        assert_eq!(r.cidr(), "10.96.0.0/12");
        assert_eq!(r.dns_service_ip(), Ipv4Addr::new(10, 96, 0, 10));
    }

    #[test]
    fn reads_service_addresses() {
        let svc = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.9",
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}});
        assert_eq!(cluster_ips(&svc), ["10.96.0.9"]);
        assert_eq!(node_ports(&svc), [30080]);
        let mut extra = Extra::default();
        release_all(&svc, &mut extra);
        assert_eq!(extra.ops.len(), 2);
    }
}
