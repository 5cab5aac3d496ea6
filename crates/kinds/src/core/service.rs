//! Services: defaults, how cluster IPs carry over and normalise between
//! `clusterIP` and `clusterIPs`, what a change of type wipes, validation,
//! and `kubectl get services` cells.
//!
//! Allocating cluster IPs and node ports is the engine's admission step; it
//! runs after validation here, so validation tolerates what allocation
//! fills in later (an empty `clusterIP`, node ports of 0).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    ClientIPConfig, LoadBalancerStatus, Service, ServicePort, ServiceSpec, ServiceStatus,
    SessionAffinityConfig,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::field::{self, go_strings, not_supported};
use super::{cell, format_labels};
use crate::table::{self, column, wide};
use crate::validation::quote;
use crate::{Column, FieldError, NameRule, Strategy, typed};

/// What the server does to Services.
pub(crate) struct ServiceStrategy;

/// The type of a service, `ClusterIP` when unset.
fn service_type(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or("ClusterIP")
}

/// Whether a service needs a cluster IP (all but `ExternalName`).
fn needs_cluster_ip(spec: &ServiceSpec) -> bool {
    service_type(spec) != "ExternalName"
}

/// Whether a service needs node ports.
fn needs_node_ports(spec: &ServiceSpec) -> bool {
    match service_type(spec) {
        "NodePort" => true,
        "LoadBalancer" => spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

/// Whether traffic reaches the service from outside the cluster.
fn externally_accessible(spec: &ServiceSpec) -> bool {
    match service_type(spec) {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => spec
            .external_ips
            .as_ref()
            .is_some_and(|ips| !ips.is_empty()),
        _ => false,
    }
}

/// Whether the service is headless (`clusterIP: None`).
fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
}

/// `ClusterIP` services with `externalIPs` and the like need a health-check
/// node port only as load balancers with local traffic policy.
fn needs_health_check(spec: &ServiceSpec) -> bool {
    service_type(spec) == "LoadBalancer" && spec.external_traffic_policy.as_deref() == Some("Local")
}

/// The defaults users see on a service (`SetDefaults_Service`), and the IP
/// family fields the allocator records once a cluster IP is set.
fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(ServiceSpec::default);
    if spec
        .session_affinity
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        spec.session_affinity = Some("None".into());
    }
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let has_timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .is_some();
            if !has_timeout {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(10800),
                    }),
                });
            }
        }
        _ => {}
    }
    if spec.type_.as_deref().unwrap_or_default().is_empty() {
        spec.type_ = Some("ClusterIP".into());
    }
    for port in spec.ports.iter_mut().flatten() {
        if port.protocol.as_deref().unwrap_or_default().is_empty() {
            port.protocol = Some("TCP".into());
        }
        let unset = matches!(&port.target_port, None | Some(IntOrString::Int(0)))
            || matches!(&port.target_port, Some(IntOrString::String(s)) if s.is_empty());
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    if externally_accessible(spec)
        && spec
            .external_traffic_policy
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    {
        spec.external_traffic_policy = Some("Cluster".into());
    }
    if spec.internal_traffic_policy.is_none()
        && matches!(
            service_type(spec),
            "NodePort" | "LoadBalancer" | "ClusterIP"
        )
    {
        spec.internal_traffic_policy = Some("Cluster".into());
    }
    if service_type(spec) == "LoadBalancer" {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
        for ingress in svc
            .status
            .iter_mut()
            .flat_map(|s| s.load_balancer.iter_mut())
            .flat_map(|lb| lb.ingress.iter_mut().flatten())
        {
            if !ingress.ip.as_deref().unwrap_or_default().is_empty() && ingress.ip_mode.is_none() {
                ingress.ip_mode = Some("VIP".into());
            }
        }
    }
    let Some(spec) = svc.spec.as_mut() else {
        return;
    };
    let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
    if needs_cluster_ip(spec) && !cluster_ip.is_empty() {
        let headless = cluster_ip == "None";
        let selectorless = spec.selector.as_ref().is_none_or(|s| s.is_empty());
        if spec.ip_family_policy.is_none() {
            let policy = if headless && selectorless {
                "RequireDualStack"
            } else {
                "SingleStack"
            };
            spec.ip_family_policy = Some(policy.into());
        }
        if spec.ip_families.as_ref().is_none_or(Vec::is_empty) {
            let families = if headless {
                vec!["IPv4".to_owned()]
            } else {
                spec.cluster_ips
                    .clone()
                    .filter(|ips| !ips.is_empty())
                    .unwrap_or_else(|| vec![cluster_ip.clone()])
                    .iter()
                    .map(|ip| if ip.contains(':') { "IPv6" } else { "IPv4" }.to_owned())
                    .collect()
            };
            spec.ip_families = Some(families);
        }
    }
}

/// Fills `clusterIPs` from `clusterIP` for clients that only know the
/// singular field, and keeps the two in step on updates
/// (`NormalizeClusterIPs`).
fn normalize_cluster_ips(new: &mut ServiceSpec, old: Option<&ServiceSpec>) {
    let new_ip = new.cluster_ip.clone().unwrap_or_default();
    let new_ips = new.cluster_ips.clone().unwrap_or_default();
    let Some(old) = old else {
        if !new_ip.is_empty() && new_ips.is_empty() {
            new.cluster_ips = Some(vec![new_ip]);
        }
        return;
    };
    let old_ip = old.cluster_ip.clone().unwrap_or_default();
    let old_ips = old.cluster_ips.clone().unwrap_or_default();
    // An old client patching other fields sent no `clusterIPs`.
    if !old_ips.is_empty() && new_ips.is_empty() && old_ip == new_ip {
        new.cluster_ips = Some(old_ips.clone());
    }
    let same_ips = new.cluster_ips.clone().unwrap_or_default() == old_ips;
    if old_ip != new_ip && same_ips {
        if !old_ip.is_empty() && new_ip.is_empty() {
            new.cluster_ips = None;
        } else {
            new.cluster_ips = Some(vec![new_ip]);
        }
    }
}

/// Keeps what was allocated to the old service when the new one leaves it
/// out (`patchAllocatedValues`): cluster IPs, IP families, node ports.
fn keep_allocated(new: &mut ServiceSpec, old: &ServiceSpec) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        if new.cluster_ip.as_deref().unwrap_or_default().is_empty() {
            new.cluster_ip.clone_from(&old.cluster_ip);
        }
        if new.cluster_ips.as_ref().is_none_or(Vec::is_empty) && old.cluster_ips.is_some() {
            new.cluster_ips.clone_from(&old.cluster_ips);
        }
        if new.ip_families.as_ref().is_none_or(Vec::is_empty) {
            new.ip_families.clone_from(&old.ip_families);
        }
        if new.ip_family_policy.is_none() {
            new.ip_family_policy.clone_from(&old.ip_family_policy);
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let old_ports = old.ports.clone().unwrap_or_default();
        for port in new.ports.iter_mut().flatten() {
            if port.node_port.unwrap_or(0) != 0 {
                continue;
            }
            let matching = old_ports
                .iter()
                .find(|o| o.port == port.port && o.protocol == port.protocol);
            if let Some(o) = matching {
                port.node_port = o.node_port;
            }
        }
    }
    if needs_health_check(old)
        && needs_health_check(new)
        && new.health_check_node_port.unwrap_or(0) == 0
    {
        new.health_check_node_port = old.health_check_node_port;
    }
}

/// Wipes what a change of type leaves meaningless, when the user did not
/// also change it (`dropTypeDependentFields`).
fn drop_type_dependent_fields(new: &mut ServiceSpec, old: &ServiceSpec) {
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        if new.cluster_ips == old.cluster_ips {
            new.cluster_ip = None;
            new.cluster_ips = None;
        }
        if new.ip_families == old.ip_families {
            new.ip_families = None;
        }
        if new.ip_family_policy == old.ip_family_policy {
            new.ip_family_policy = None;
        }
    }
    let node_ports = |s: &ServiceSpec| -> Vec<Option<i32>> {
        s.ports.iter().flatten().map(|p| p.node_port).collect()
    };
    if needs_node_ports(old) && !needs_node_ports(new) && node_ports(new) == node_ports(old) {
        for port in new.ports.iter_mut().flatten() {
            port.node_port = None;
        }
    }
    if needs_health_check(old)
        && !needs_health_check(new)
        && new.health_check_node_port == old.health_check_node_port
    {
        new.health_check_node_port = None;
    }
    if service_type(old) == "LoadBalancer" && service_type(new) != "LoadBalancer" {
        if new.allocate_load_balancer_node_ports.is_some()
            && new.allocate_load_balancer_node_ports == old.allocate_load_balancer_node_ports
        {
            new.allocate_load_balancer_node_ports = None;
        }
        if new.load_balancer_class == old.load_balancer_class {
            new.load_balancer_class = None;
        }
    }
    if externally_accessible(old)
        && !externally_accessible(new)
        && new.external_traffic_policy == old.external_traffic_policy
    {
        new.external_traffic_policy = None;
    }
}

impl Strategy for ServiceStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        typed::decode::<Service>(obj).map(|_| ())
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, default_service);
    }

    fn prepare_create(&self, obj: &mut Value) {
        typed::modify(obj, |svc: &mut Service| {
            // Go always writes the load balancer status, empty or not.
            svc.status = Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus::default()),
                ..Default::default()
            });
            let spec = svc.spec.get_or_insert_with(ServiceSpec::default);
            normalize_cluster_ips(spec, None);
        });
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        typed::keep_status(new, old);
        let Ok(old_svc) = typed::decode::<Service>(old) else {
            return;
        };
        let old_spec = old_svc.spec.unwrap_or_default();
        typed::modify(new, |svc: &mut Service| {
            let spec = svc.spec.get_or_insert_with(ServiceSpec::default);
            keep_allocated(spec, &old_spec);
            normalize_cluster_ips(spec, Some(&old_spec));
            drop_type_dependent_fields(spec, &old_spec);
            if service_type(spec) != "LoadBalancer"
                && let Some(status) = svc.status.as_mut()
            {
                status.load_balancer = Some(LoadBalancerStatus::default());
            }
        });
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let svc = match typed::decode::<Service>(obj) {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        let spec = svc.spec.unwrap_or_default();
        let mut errs = Vec::new();
        if let Some(old) = old {
            match typed::decode::<Service>(old) {
                Ok(old) => errs.extend(validate_update(&spec, &old.spec.unwrap_or_default())),
                Err(e) => errs.push(e),
            }
        }
        errs.extend(validate_spec(&spec));
        errs
    }

    fn validate_status(&self, obj: &Value, _old: &Value) -> Vec<FieldError> {
        let svc = match typed::decode::<Service>(obj) {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        let mut errs = Vec::new();
        let ingress = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default();
        for (i, ing) in ingress.iter().enumerate() {
            if let Some(ip) = ing.ip.as_deref().filter(|ip| !ip.is_empty()) {
                errs.extend(field::ip(
                    &format!("status.loadBalancer.ingress[{i}].ip"),
                    ip,
                ));
            }
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn has_status_subresource(&self) -> bool {
        true
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035Label
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column(
                "Type",
                "string",
                "type determines how the Service is exposed.",
            ),
            column(
                "Cluster-IP",
                "string",
                "clusterIP is the IP address of the service and is usually assigned randomly.",
            ),
            column(
                "External-IP",
                "string",
                "externalIPs is a list of IP addresses for which nodes in the cluster will also \
                 accept traffic for this service.",
            ),
            column(
                "Port(s)",
                "string",
                "The list of ports that are exposed by this service.",
            ),
            table::age_column(),
            wide(
                "Selector",
                "string",
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let svc = typed::decode::<Service>(obj).unwrap_or_default();
        let spec = svc.spec.clone().unwrap_or_default();
        let cluster_ip = spec
            .cluster_ips
            .as_ref()
            .and_then(|ips| ips.first().cloned())
            .unwrap_or_else(|| "<none>".into());
        let ports: Vec<String> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let protocol = p.protocol.as_deref().unwrap_or_default();
                match p.node_port.filter(|n| *n > 0) {
                    Some(node_port) => format!("{}:{node_port}/{protocol}", p.port),
                    None => format!("{}/{protocol}", p.port),
                }
            })
            .collect();
        let ports = if ports.is_empty() {
            "<none>".to_owned()
        } else {
            ports.join(",")
        };
        vec![
            table::name(obj),
            cell(service_type(&spec)),
            cell(cluster_ip),
            cell(external_ip(&svc, false)),
            cell(ports),
            table::age(obj, now),
            cell(format_labels(spec.selector.as_ref())),
        ]
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        let s = |path: &str| typed::str_at(obj, path).unwrap_or_default().to_owned();
        vec![
            ("spec.clusterIP".into(), s("spec.clusterIP")),
            ("spec.type".into(), s("spec.type")),
        ]
    }
}

/// The `External-IP` cell: external IPs, load balancer addresses (clipped
/// to 16 characters unless wide), `<pending>` or `<none>`.
fn external_ip(svc: &Service, wide: bool) -> String {
    let spec = svc.spec.clone().unwrap_or_default();
    let external = spec.external_ips.clone().unwrap_or_default();
    match service_type(&spec) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let addresses: BTreeSet<String> = svc
                .status
                .iter()
                .flat_map(|s| s.load_balancer.iter())
                .flat_map(|lb| lb.ingress.iter().flatten())
                .filter_map(|i| {
                    i.ip.clone()
                        .filter(|ip| !ip.is_empty())
                        .or_else(|| i.hostname.clone().filter(|h| !h.is_empty()))
                })
                .collect();
            let mut lb = addresses.into_iter().collect::<Vec<_>>().join(",");
            if !wide && lb.len() > 16 {
                lb = format!("{}...", &lb[..13]);
            }
            if !external.is_empty() {
                let mut all: Vec<String> = if lb.is_empty() {
                    Vec::new()
                } else {
                    lb.split(',').map(str::to_owned).collect()
                };
                all.extend(external);
                all.join(",")
            } else if lb.is_empty() {
                "<pending>".into()
            } else {
                lb
            }
        }
        "ExternalName" => spec.external_name.clone().unwrap_or_default(),
        _ => "<unknown>".into(),
    }
}

/// A service port key as Go prints the struct Kubernetes reports in a
/// duplicate-port error.
fn go_port_key(protocol: &str, port: i32) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, \
         TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        quote(protocol)
    )
}

/// Errors for one service port.
fn validate_port(
    port: &ServicePort,
    path: &str,
    require_name: bool,
    names: &mut BTreeSet<String>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = port.name.clone().unwrap_or_default();
    if require_name && name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !name.is_empty() {
        errs.extend(field::dns_label(&format!("{path}.name"), &name));
        if !names.insert(name.clone()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), quote(&name)));
        }
    }
    errs.extend(field::port_number(
        &format!("{path}.port"),
        i64::from(port.port),
    ));
    match port.protocol.as_deref().unwrap_or_default() {
        "" => errs.push(FieldError::required(format!("{path}.protocol"), "")),
        "TCP" | "UDP" | "SCTP" => {}
        other => errs.push(not_supported(
            format!("{path}.protocol"),
            other,
            &["SCTP", "TCP", "UDP"],
        )),
    }
    if let Some(target) = &port.target_port {
        errs.extend(field::port_number_or_name(
            &format!("{path}.targetPort"),
            target,
        ));
    }
    if let Some(node_port) = port.node_port.filter(|n| *n != 0) {
        errs.extend(field::port_number(
            &format!("{path}.nodePort"),
            i64::from(node_port),
        ));
    }
    if let Some(app) = port.app_protocol.as_deref() {
        errs.extend(field::qualified_name(&format!("{path}.appProtocol"), app));
    }
    errs
}

/// Validation of a service (`validateService`).
fn validate_spec(spec: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = service_type(spec);
    let ports = spec.ports.clone().unwrap_or_default();
    let cluster_ips = spec.cluster_ips.clone().unwrap_or_default();
    if ports.is_empty() && !is_headless(spec) && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let first_ip = cluster_ips.first().cloned().unwrap_or_default();
    match ty {
        "LoadBalancer" | "NodePort" if is_headless(spec) => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            quote(&first_ip),
            format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            if !cluster_ips.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let name = spec.external_name.clone().unwrap_or_default();
            let cname = name.strip_suffix('.').unwrap_or(&name);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                errs.extend(field::dns_subdomain("spec.externalName", cname));
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        errs.extend(validate_port(
            port,
            &format!("spec.ports[{i}]"),
            ports.len() > 1,
            &mut names,
        ));
    }
    errs.extend(field::labels("spec.selector", spec.selector.as_ref()));
    match spec.session_affinity.as_deref().unwrap_or_default() {
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        "ClientIP" => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            match timeout {
                None => errs.push(FieldError::required(
                    "spec.sessionAffinityConfig",
                    "when session affinity type is ClientIP",
                )),
                Some(t) if t <= 0 || t > 86400 => errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t.to_string(),
                    "must be greater than 0 and less than 86400",
                )),
                Some(_) => {}
            }
        }
        "None" => {
            if spec.session_affinity_config.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
    errs.extend(validate_cluster_ips(spec));
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        errs.extend(field::endpoint_ip(&format!("spec.externalIPs[{i}]"), ip));
    }
    match spec.type_.as_deref().unwrap_or_default() {
        "" => errs.push(FieldError::required("spec.type", "")),
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName" => {}
        other => errs.push(not_supported(
            "spec.type",
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port.node_port.unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let node_port = port.node_port.unwrap_or(0);
        if node_port != 0 && !node_ports.insert((port.protocol.clone(), node_port)) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}].nodePort"),
                node_port.to_string(),
            ));
        }
    }
    let mut keys = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.clone().unwrap_or_default();
        if !keys.insert((protocol.clone(), port.port)) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}]"),
                go_port_key(&protocol, port.port),
            ));
        }
    }
    if spec
        .load_balancer_source_ranges
        .as_ref()
        .is_some_and(|r| !r.is_empty())
        && ty != "LoadBalancer"
    {
        errs.push(FieldError::forbidden(
            "spec.LoadBalancerSourceRanges",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if spec.allocate_load_balancer_node_ports.is_some() && ty != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }
    let etp = spec.external_traffic_policy.as_deref().unwrap_or_default();
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                quote(etp),
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(not_supported(
            "spec.externalTrafficPolicy",
            etp,
            &["Cluster", "Local"],
        ));
    }
    let health_check = spec.health_check_node_port.unwrap_or(0);
    if !needs_health_check(spec) && health_check != 0 {
        errs.push(FieldError::invalid(
            "spec.healthCheckNodePort",
            health_check.to_string(),
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    match spec.internal_traffic_policy.as_deref() {
        None if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") => {
            errs.push(FieldError::required("spec.internalTrafficPolicy", ""));
        }
        Some(policy) if policy != "Cluster" && policy != "Local" => errs.push(not_supported(
            "spec.internalTrafficPolicy",
            policy,
            &["Cluster", "Local"],
        )),
        _ => {}
    }
    if let Some(distribution) = spec.traffic_distribution.as_deref()
        && distribution != "PreferClose"
    {
        errs.push(not_supported(
            "spec.trafficDistribution",
            distribution,
            &["PreferClose"],
        ));
    }
    errs
}

/// The checks linking `clusterIP`, `clusterIPs`, `ipFamilies` and
/// `ipFamilyPolicy` (`ValidateServiceClusterIPsRelatedFields`).
fn validate_cluster_ips(spec: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if service_type(spec) == "ExternalName" {
        return errs;
    }
    let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
    let cluster_ips = spec.cluster_ips.clone().unwrap_or_default();
    if !cluster_ip.is_empty() {
        match cluster_ips.first() {
            None => errs.push(FieldError::required("spec.clusterIPs", "")),
            Some(first) if *first != cluster_ip => errs.push(FieldError::invalid(
                "spec.clusterIPs",
                go_strings(&cluster_ips),
                "first value must match `clusterIP`",
            )),
            Some(_) => {}
        }
    } else if !cluster_ips.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            go_strings(&cluster_ips),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let families = spec.ip_families.clone().unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, family) in families.iter().enumerate() {
        if family != "IPv4" && family != "IPv6" {
            errs.push(not_supported(
                format!("spec.ipFamilies[{i}]"),
                family,
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(family) {
            errs.push(FieldError::duplicate(
                format!("spec.ipFamilies[{i}]"),
                quote(family),
            ));
        }
    }
    if let Some(policy) = spec.ip_family_policy.as_deref()
        && !["SingleStack", "PreferDualStack", "RequireDualStack"].contains(&policy)
    {
        errs.push(not_supported(
            "spec.ipFamilyPolicy",
            policy,
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }
    let mut invalid = false;
    for (i, ip) in cluster_ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if cluster_ips.len() > 1 {
                invalid = true;
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    go_strings(&cluster_ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let bad = field::ip(&format!("spec.clusterIPs[{i}]"), ip);
        invalid |= !bad.is_empty();
        errs.extend(bad);
    }
    if cluster_ips.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            go_strings(&cluster_ips),
            "may only hold up to 2 values",
        ));
    }
    if invalid {
        return errs;
    }
    if cluster_ips.len() > 1 {
        let v6: Vec<bool> = cluster_ips.iter().map(|ip| ip.contains(':')).collect();
        if v6.iter().all(|x| *x) || v6.iter().all(|x| !*x) {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                go_strings(&cluster_ips),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(spec) {
        for (i, (ip, family)) in cluster_ips.iter().zip(&families).enumerate() {
            let is_v6 = ip.contains(':');
            if family == "IPv4" && is_v6 {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    quote(ip),
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if family == "IPv6" && !is_v6 {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    quote(ip),
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

/// What an update may not change: assigned cluster IPs and IP families
/// (`validateUpgradeDowngradeClusterIPs` and `...IPFamilies`), and the
/// health-check node port.
fn validate_update(new: &ServiceSpec, old: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if service_type(new) == "ExternalName" || service_type(old) == "ExternalName" {
        return errs;
    }
    if !(is_headless(new) && is_headless(old)) {
        let new_ips = new.cluster_ips.clone().unwrap_or_default();
        let old_ips = old.cluster_ips.clone().unwrap_or_default();
        let changed = || {
            FieldError::invalid(
                "spec.clusterIPs[0]",
                go_strings(&new_ips),
                "may not change once set",
            )
        };
        if new_ips.len() == old_ips.len() {
            for (i, (n, o)) in new_ips.iter().zip(&old_ips).enumerate() {
                if n != o {
                    errs.push(FieldError::invalid(
                        format!("spec.clusterIPs[{i}]"),
                        go_strings(&new_ips),
                        "may not change once set",
                    ));
                }
            }
        } else if old_ips.len() > new_ips.len() {
            if new_ips.is_empty() {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    go_strings(&new_ips),
                    "primary clusterIP can not be unset",
                ));
            } else if new_ips[0] != old_ips[0] {
                errs.push(changed());
            }
        } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
            errs.push(changed());
        }
    }
    let new_families = new.ip_families.clone().unwrap_or_default();
    let old_families = old.ip_families.clone().unwrap_or_default();
    let go_families = |f: &[String]| {
        let body: Vec<String> = f.iter().map(|s| quote(s)).collect();
        format!("[]core.IPFamily{{{}}}", body.join(", "))
    };
    let family_changed = if new_families.len() == old_families.len() {
        new_families != old_families
    } else {
        !new_families.is_empty() && !old_families.is_empty() && new_families[0] != old_families[0]
    };
    if family_changed {
        errs.push(FieldError::invalid(
            "spec.ipFamilies[0]",
            go_families(&new_families),
            "may not change once set",
        ));
    }
    if needs_health_check(old)
        && needs_health_check(new)
        && new.health_check_node_port != old.health_check_node_port
    {
        errs.push(FieldError::forbidden(
            "spec.healthCheckNodePort",
            "field is immutable",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn created(input: Value) -> Value {
        let mut obj = input;
        ServiceStrategy.default(&mut obj);
        ServiceStrategy.prepare_create(&mut obj);
        obj
    }

    /// What the engine's allocation does, for the tests.
    fn allocate(obj: &mut Value, ip: &str) {
        obj["spec"]["clusterIP"] = json!(ip);
        obj["spec"]["clusterIPs"] = json!([ip]);
        ServiceStrategy.default(obj);
    }

    #[test]
    fn defaults_users_see() {
        let mut obj = created(json!({"metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}));
        assert!(ServiceStrategy.validate(&obj, None).is_empty());
        allocate(&mut obj, "10.96.0.10");
        let spec = &obj["spec"];
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(
            spec["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(obj["status"], json!({"loadBalancer": {}}));
        assert!(ServiceStrategy.validate(&obj, None).is_empty());
    }

    #[test]
    fn node_port_and_load_balancer_defaults() {
        let obj = created(json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": "https"}]}}));
        assert_eq!(obj["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(obj["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(obj["spec"]["ports"][0]["targetPort"], "https");
    }

    #[test]
    fn invalid_services() {
        let obj = created(json!({"metadata": {"name": "bad"},
            "spec": {"type": "Cheap", "sessionAffinity": "Sticky",
                     "ports": [{"port": 0, "protocol": "HTTP"}, {"port": 80, "name": "web"}]}}));
        let got: Vec<String> = ServiceStrategy
            .validate(&obj, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
                "spec.type: Unsupported value: \"Cheap\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ]
        );
        let dup = created(json!({"metadata": {"name": "dup"},
            "spec": {"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}}));
        let errs = ServiceStrategy.validate(&dup, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"
        );
    }

    #[test]
    fn cluster_ip_is_immutable_and_carries_over() {
        let mut old = created(json!({"metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}]}}));
        allocate(&mut old, "10.96.0.10");

        // A replace without the allocated fields keeps them.
        let mut replaced =
            json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 8080}]}});
        ServiceStrategy.default(&mut replaced);
        ServiceStrategy.prepare_update(&mut replaced, &old);
        assert_eq!(replaced["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(replaced["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        assert_eq!(replaced["status"], json!({"loadBalancer": {}}));
        assert!(ServiceStrategy.validate(&replaced, Some(&old)).is_empty());

        // Changing clusterIP moves clusterIPs along, and is refused.
        let mut changed = old.clone();
        changed["spec"]["clusterIP"] = json!("10.96.0.11");
        ServiceStrategy.prepare_update(&mut changed, &old);
        let errs = ServiceStrategy.validate(&changed, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"
        );
    }

    #[test]
    fn switching_type_wipes_node_ports() {
        let mut old = created(json!({"metadata": {"name": "np"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}));
        allocate(&mut old, "10.96.0.12");
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        ServiceStrategy.default(&mut new);
        ServiceStrategy.prepare_update(&mut new, &old);
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert!(new["spec"].get("externalTrafficPolicy").is_none());
        assert!(ServiceStrategy.validate(&new, Some(&old)).is_empty());
    }

    #[test]
    fn rows() {
        let mut obj = created(
            json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-23T09:00:00Z"},
            "spec": {"type": "NodePort", "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}}),
        );
        allocate(&mut obj, "10.96.0.10");
        let now = crate::table::parse_time("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(
            ServiceStrategy.row(&obj, now),
            [
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("60m"),
                json!("app=web"),
            ]
        );
        let mut lb = created(json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}));
        assert_eq!(ServiceStrategy.row(&lb, now)[3], json!("<pending>"));
        lb["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}});
        assert_eq!(ServiceStrategy.row(&lb, now)[3], json!("203.0.113.7"));
        assert_eq!(ServiceStrategy.row(&lb, now)[2], json!("<none>"));
    }
}
