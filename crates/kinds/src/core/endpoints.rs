//! Endpoints (core/v1) and EndpointSlices (discovery.k8s.io/v1): port
//! defaults, address and port validation, and their `kubectl get` cells.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use super::cell;
use super::field::{self, not_supported};
use crate::table::{self, column};
use crate::validation::quote;
use crate::{Column, FieldError, Strategy, typed};

/// What the server does to Endpoints.
pub(crate) struct EndpointsStrategy;

/// `host:port`, with IPv6 hosts in brackets.
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The first three of `list`, then `+ N more...`, or `<unset>` when empty.
fn list_with_more(list: Vec<String>, count: usize, empty: &str) -> String {
    const MAX: usize = 3;
    if count > MAX {
        format!("{} + {} more...", list.join(","), count - MAX)
    } else if list.is_empty() {
        empty.to_owned()
    } else {
        list.join(",")
    }
}

/// The `Endpoints` cell: up to three `ip:port` pairs.
fn format_endpoints(ep: &Endpoints) -> String {
    let subsets = ep.subsets.clone().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut count = 0;
    for ss in &subsets {
        let addresses = ss.addresses.clone().unwrap_or_default();
        let ports = ss.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            // Headless services may have addresses without ports.
            count += addresses.len();
            for a in &addresses {
                if list.len() == 3 {
                    break;
                }
                list.push(a.ip.clone());
            }
            continue;
        }
        for port in &ports {
            count += addresses.len();
            for a in &addresses {
                if list.len() == 3 {
                    break;
                }
                list.push(join_host_port(&a.ip, port.port));
            }
        }
    }
    list_with_more(list, count, "")
}

impl Strategy for EndpointsStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        typed::decode::<Endpoints>(obj).map(|_| ())
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |ep: &mut Endpoints| {
            for port in ep
                .subsets
                .iter_mut()
                .flatten()
                .flat_map(|s| s.ports.iter_mut().flatten())
            {
                if port.protocol.as_deref().unwrap_or_default().is_empty() {
                    port.protocol = Some("TCP".into());
                }
            }
        });
    }

    fn prepare_create(&self, _obj: &mut Value) {}

    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let ep = match typed::decode::<Endpoints>(obj) {
            Ok(e) => e,
            Err(e) => return vec![e],
        };
        let mut errs = Vec::new();
        for (i, ss) in ep.subsets.iter().flatten().enumerate() {
            let p = format!("subsets[{i}]");
            let addresses = ss.addresses.clone().unwrap_or_default();
            let not_ready = ss.not_ready_addresses.clone().unwrap_or_default();
            if addresses.is_empty() && not_ready.is_empty() {
                errs.push(FieldError::required(
                    &p,
                    "must specify `addresses` or `notReadyAddresses`",
                ));
            }
            for (list, items) in [("addresses", &addresses), ("notReadyAddresses", &not_ready)] {
                for (j, a) in items.iter().enumerate() {
                    let ap = format!("{p}.{list}[{j}]");
                    let ip_path = format!("{ap}.ip");
                    let ip_errs = field::ip(&ip_path, &a.ip);
                    if ip_errs.is_empty() {
                        errs.extend(field::endpoint_ip(&ip_path, &a.ip));
                    } else {
                        errs.extend(ip_errs);
                    }
                    if let Some(host) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
                        errs.extend(field::dns_label(&format!("{ap}.hostname"), host));
                    }
                    if let Some(node) = a.node_name.as_deref() {
                        errs.extend(field::dns_subdomain(&format!("{ap}.nodeName"), node));
                    }
                }
            }
            let ports = ss.ports.clone().unwrap_or_default();
            for (j, port) in ports.iter().enumerate() {
                let pp = format!("{p}.ports[{j}]");
                let name = port.name.clone().unwrap_or_default();
                if ports.len() > 1 && name.is_empty() {
                    errs.push(FieldError::required(format!("{pp}.name"), ""));
                } else if !name.is_empty() {
                    errs.extend(field::dns_label(&format!("{pp}.name"), &name));
                }
                errs.extend(field::port_number(
                    &format!("{pp}.port"),
                    i64::from(port.port),
                ));
                errs.extend(field::required_one_of(
                    &format!("{pp}.protocol"),
                    port.protocol.as_deref().unwrap_or_default(),
                    &["SCTP", "TCP", "UDP"],
                ));
            }
        }
        // Subsets older Kubernetes accepted stay acceptable when unchanged.
        if !errs.is_empty() && old.is_some_and(|o| o.get("subsets") == obj.get("subsets")) {
            errs.clear();
        }
        errs
    }

    fn validate_status(&self, _obj: &Value, _old: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column(
                "Endpoints",
                "string",
                "The set of all endpoints is the union of all subsets.",
            ),
            table::age_column(),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let ep = typed::decode::<Endpoints>(obj).unwrap_or_default();
        vec![
            table::name(obj),
            cell(format_endpoints(&ep)),
            table::age(obj, now),
        ]
    }

    fn selectable_fields(&self, _obj: &Value) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// What the server does to EndpointSlices.
pub(crate) struct EndpointSliceStrategy;

impl Strategy for EndpointSliceStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        typed::decode::<EndpointSlice>(obj).map(|_| ())
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |slice: &mut EndpointSlice| {
            for port in slice.ports.iter_mut().flatten() {
                port.name.get_or_insert_with(String::new);
                if port.protocol.is_none() {
                    port.protocol = Some("TCP".into());
                }
            }
        });
    }

    fn prepare_create(&self, _obj: &mut Value) {}

    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let slice = match typed::decode::<EndpointSlice>(obj) {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        let mut errs = Vec::new();
        let address_type = slice.address_type.as_str();
        errs.extend(field::required_one_of(
            "addressType",
            address_type,
            &["FQDN", "IPv4", "IPv6"],
        ));
        if slice.endpoints.len() > 1000 {
            errs.push(FieldError {
                kind: crate::FieldErrorKind::TooLong,
                field: "endpoints".into(),
                value: Some(slice.endpoints.len().to_string()),
                detail: "must have at most 1000 items".into(),
            });
        }
        for (i, endpoint) in slice.endpoints.iter().enumerate() {
            let p = format!("endpoints[{i}]");
            let addresses_path = format!("{p}.addresses");
            if endpoint.addresses.is_empty() {
                errs.push(FieldError::required(
                    &addresses_path,
                    "must contain at least 1 address",
                ));
            }
            for (j, address) in endpoint.addresses.iter().enumerate() {
                let ap = format!("{addresses_path}[{j}]");
                match address_type {
                    "IPv4" | "IPv6" => {
                        let ip_errs = field::ip(&ap, address);
                        if !ip_errs.is_empty() {
                            errs.extend(ip_errs);
                            continue;
                        }
                        let v6 = address.contains(':');
                        if address_type == "IPv4" && v6 {
                            errs.push(FieldError::invalid(
                                &addresses_path,
                                quote(address),
                                "must be an IPv4 address",
                            ));
                        }
                        if address_type == "IPv6" && !v6 {
                            errs.push(FieldError::invalid(
                                &addresses_path,
                                quote(address),
                                "must be an IPv6 address",
                            ));
                        }
                        errs.extend(field::endpoint_ip(&ap, address));
                    }
                    "FQDN" => errs.extend(field::dns_subdomain(&ap, address)),
                    _ => {}
                }
            }
            if let Some(node) = endpoint.node_name.as_deref() {
                errs.extend(field::dns_subdomain(&format!("{p}.nodeName"), node));
            }
            if let Some(host) = endpoint.hostname.as_deref() {
                errs.extend(field::dns_label(&format!("{p}.hostname"), host));
            }
        }
        let mut names = BTreeSet::new();
        for (i, port) in slice.ports.iter().flatten().enumerate() {
            let p = format!("ports[{i}]");
            let name = port.name.clone().unwrap_or_default();
            if !name.is_empty() {
                errs.extend(field::dns_label(&format!("{p}.name"), &name));
            }
            if !names.insert(name.clone()) {
                errs.push(FieldError::duplicate(format!("{p}.name"), quote(&name)));
            }
            match port.protocol.as_deref() {
                None => errs.push(FieldError::required(format!("{p}.protocol"), "")),
                Some("TCP" | "UDP" | "SCTP") => {}
                Some(other) => errs.push(not_supported(
                    format!("{p}.protocol"),
                    other,
                    &["SCTP", "TCP", "UDP"],
                )),
            }
            if let Some(app) = port.app_protocol.as_deref() {
                errs.extend(field::qualified_name(&format!("{p}.appProtocol"), app));
            }
        }
        if let Some(old) = old {
            let old_type = typed::str_at(old, "addressType").unwrap_or_default();
            if old_type != address_type {
                errs.push(field::immutable("addressType", quote(address_type)));
            }
        }
        errs
    }

    fn validate_status(&self, _obj: &Value, _old: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column(
                "AddressType",
                "string",
                "addressType specifies the type of address carried by this EndpointSlice.",
            ),
            column(
                "Ports",
                "string",
                "ports specifies the list of network ports exposed by each endpoint in this slice.",
            ),
            column(
                "Endpoints",
                "string",
                "endpoints is a list of unique endpoints in this slice.",
            ),
            table::age_column(),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let slice = typed::decode::<EndpointSlice>(obj).unwrap_or_default();
        let ports = slice.ports.clone().unwrap_or_default();
        let port_list: Vec<String> = ports
            .iter()
            .take(3)
            .map(|p| match (p.port, &p.name) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.clone(),
                (None, None) => "*".into(),
            })
            .collect();
        let addresses: Vec<String> = slice
            .endpoints
            .iter()
            .flat_map(|e| e.addresses.iter().cloned())
            .collect();
        let count = addresses.len();
        let address_list = addresses.into_iter().take(3).collect();
        vec![
            table::name(obj),
            cell(slice.address_type.clone()),
            cell(list_with_more(port_list, ports.len(), "<unset>")),
            cell(list_with_more(address_list, count, "<unset>")),
            table::age(obj, now),
        ]
    }

    fn selectable_fields(&self, _obj: &Value) -> Vec<(String, String)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_cells_and_defaults() {
        let mut obj = json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.1.0.1"}, {"ip": "10.1.0.2"}, {"ip": "fd00::3"}, {"ip": "10.1.0.4"}],
            "ports": [{"port": 80}]}]});
        EndpointsStrategy.default(&mut obj);
        assert_eq!(obj["subsets"][0]["ports"][0]["protocol"], "TCP");
        assert!(EndpointsStrategy.validate(&obj, None).is_empty());
        assert_eq!(
            EndpointsStrategy.row(&obj, 0)[1],
            json!("10.1.0.1:80,10.1.0.2:80,[fd00::3]:80 + 1 more...")
        );
        let empty = json!({"metadata": {"name": "none"}});
        assert_eq!(EndpointsStrategy.row(&empty, 0)[1], json!("<none>"));
    }

    #[test]
    fn endpoints_validation() {
        let obj = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80, "protocol": "TCP"}]},
            {"ports": [{"port": 81, "protocol": "TCP"}]}]});
        let got: Vec<String> = EndpointsStrategy
            .validate(&obj, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
            ]
        );
        // The same subsets stay acceptable on update.
        assert!(EndpointsStrategy.validate(&obj, Some(&obj)).is_empty());
    }

    #[test]
    fn endpoint_slices() {
        let mut obj = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.1"]}, {"addresses": ["10.1.0.2"]}],
            "ports": [{"port": 80}]});
        EndpointSliceStrategy.default(&mut obj);
        assert_eq!(
            obj["ports"][0],
            json!({"name": "", "port": 80, "protocol": "TCP"})
        );
        assert!(EndpointSliceStrategy.validate(&obj, None).is_empty());
        let row = EndpointSliceStrategy.row(&obj, 0);
        assert_eq!(
            row[1..4],
            [json!("IPv4"), json!("80"), json!("10.1.0.1,10.1.0.2")]
        );
        let mut changed = obj.clone();
        changed["addressType"] = json!("IPv6");
        changed["endpoints"] = json!([{"addresses": ["fd00::1"]}]);
        let errs = EndpointSliceStrategy.validate(&changed, Some(&obj));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "addressType: Invalid value: \"IPv6\": field is immutable"
        );
        let bad = json!({"metadata": {"name": "x"}, "addressType": "IPv4", "endpoints": [{"addresses": []}]});
        assert_eq!(
            EndpointSliceStrategy.validate(&bad, None)[0].to_string(),
            "endpoints[0].addresses: Required value: must contain at least 1 address"
        );
        let unset = json!({"metadata": {"name": "x"}, "addressType": "IPv4", "endpoints": []});
        assert_eq!(
            EndpointSliceStrategy.row(&unset, 0)[2..4],
            [json!("<unset>"), json!("<unset>")]
        );
    }
}
