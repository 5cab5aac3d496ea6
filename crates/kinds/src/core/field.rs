//! Kubernetes' small validators, shared by every kind (typed or held as
//! JSON): ports, labels and annotations, keys, environment variable names,
//! IPs, non-negative numbers, resource names and quantities; the wording of
//! `Unsupported value` and `field is immutable`; and the way Go prints the
//! offending values.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Raw;

use super::quantity::{self, Quantity};
use crate::validation::{self, quote};
use crate::{FieldError, FieldErrorKind};

/// `must be between {lo} and {hi}, inclusive`.
pub(crate) fn range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// The message of a value that may not change.
pub(crate) const IMMUTABLE: &str = "field is immutable";

/// A Go map of strings as `%#v` prints it: `map[string]string{"a":"b"}`.
pub(crate) fn go_map(map: &BTreeMap<String, String>) -> String {
    let body: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
        .collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

/// A Go slice of strings as `%#v` prints it: `[]string{"a", "b"}`.
pub(crate) fn go_strings(items: &[String]) -> String {
    let body: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[]string{{{}}}", body.join(", "))
}

/// A value outside a fixed set; Kubernetes lists the supported values
/// quoted, in the order it keeps them.
pub(crate) fn not_supported(
    field: impl Into<String>,
    value: &str,
    supported: &[&str],
) -> FieldError {
    FieldError::not_supported(field, quote(value), supported_values(supported))
}

/// Errors for a value that must be one of a fixed set: `Required value`
/// when empty, `Unsupported value` (listing `supported`) when not in it.
pub(crate) fn required_one_of(field: &str, value: &str, supported: &[&str]) -> Vec<FieldError> {
    if value.is_empty() {
        vec![FieldError::required(field, "")]
    } else if supported.contains(&value) {
        Vec::new()
    } else {
        vec![not_supported(field, value, supported)]
    }
}

/// The detail of an `Unsupported value` error: `supported values: "A", "B"`.
pub(crate) fn supported_values(supported: &[&str]) -> String {
    let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
    format!("supported values: {}", list.join(", "))
}

/// A reference to something that does not exist (`Not found` in
/// Kubernetes). The crate's error kinds have no `NotFound`, so this is the
/// one place that renders it; see the report on `FieldErrorKind`.
pub(crate) fn not_found(field: impl Into<String>, value: &str) -> FieldError {
    FieldError {
        kind: FieldErrorKind::NotFound,
        field: field.into(),
        value: Some(quote(value)),
        detail: String::new(),
    }
}

/// `Invalid value: "x": field is immutable`, with `value` already rendered.
pub(crate) fn immutable(field: impl Into<String>, value: impl Into<String>) -> FieldError {
    FieldError::invalid(field, value, IMMUTABLE)
}

/// A string field that must be set.
pub(crate) fn required_string(field: &str, value: Option<&str>) -> Vec<FieldError> {
    if value.unwrap_or_default().is_empty() {
        vec![FieldError::required(field, "")]
    } else {
        Vec::new()
    }
}

/// Errors for a DNS-1123 label (container, volume and port names).
pub(crate) fn dns_label(field: &str, value: &str) -> Vec<FieldError> {
    validation::field_errors(field, value, validation::dns1123_label(value))
}

/// Errors for a DNS-1123 subdomain (node and object names).
pub(crate) fn dns_subdomain(field: &str, value: &str) -> Vec<FieldError> {
    validation::field_errors(field, value, validation::dns1123_subdomain(value))
}

/// Errors for a qualified name (label keys, condition types).
pub(crate) fn qualified_name(field: &str, value: &str) -> Vec<FieldError> {
    validation::field_errors(field, value, validation::qualified_name(value))
}

/// Errors for a map of labels, reported against the map as Kubernetes does.
pub(crate) fn labels(field: &str, labels: Option<&BTreeMap<String, String>>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(qualified_name(field, k));
        errs.extend(validation::field_errors(
            field,
            v,
            validation::label_value(v),
        ));
    }
    errs
}

/// The most bytes the keys and values of an object's annotations may
/// take together (Kubernetes' `TotalAnnotationSizeLimitB`).
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Errors for a map of annotations (`ValidateAnnotations`): keys are
/// qualified names, compared without case, and the whole map is at most
/// 256 KiB.
pub(crate) fn annotations(
    field: &str,
    annotations: Option<&BTreeMap<String, String>>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in annotations.into_iter().flat_map(BTreeMap::keys) {
        errs.extend(validation::field_errors(
            field,
            key,
            validation::qualified_name(&key.to_lowercase()),
        ));
    }
    let total: usize = annotations
        .into_iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if total > ANNOTATIONS_MAX_BYTES {
        errs.push(FieldError {
            kind: FieldErrorKind::TooLong,
            field: field.to_owned(),
            value: None,
            detail: format!("may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
        });
    }
    errs
}

/// Errors for a port number (1-65535).
pub(crate) fn port_number(field: &str, port: i64) -> Vec<FieldError> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            field,
            port.to_string(),
            range_error(1, 65535),
        )]
    }
}

/// Problems with a port name (`IsValidPortName`: an IANA service name).
/// Each rule is checked on its own, so `HTTP` breaks two.
pub(crate) fn port_name_problems(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push("must be no more than 15 characters".to_owned());
    }
    let charset = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !charset {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// Errors for a port name.
pub(crate) fn port_name(field: &str, name: &str) -> Vec<FieldError> {
    validation::field_errors(field, name, port_name_problems(name))
}

/// Errors for a port given as a number or a name (`targetPort`, probes).
pub(crate) fn port_number_or_name(
    field: &str,
    port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
) -> Vec<FieldError> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match port {
        IntOrString::Int(n) => port_number(field, i64::from(*n)),
        IntOrString::String(s) => port_name(field, s),
    }
}

/// Problems with a ConfigMap or Secret key.
pub(crate) fn config_key_problems(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters".to_owned());
    }
    let charset = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    if !charset {
        errs.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. \
             'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')"
                .into(),
        );
    }
    if key == "." {
        errs.push("must not be '.'".into());
    } else if key == ".." {
        errs.push("must not be '..'".into());
    } else if key.starts_with("..") {
        errs.push("must not start with '..'".into());
    }
    errs
}

/// Errors for a ConfigMap or Secret key.
pub(crate) fn config_key(field: &str, key: &str) -> Vec<FieldError> {
    validation::field_errors(field, key, config_key_problems(key))
}

/// Errors for an environment variable name, under the relaxed rules that
/// are on by default in Kubernetes 1.32 (`IsRelaxedEnvVarName`: not empty,
/// printable ASCII but `=`).
pub(crate) fn env_var_name(field: &str, name: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push(FieldError::invalid(
            field,
            quote(name),
            "environment variable name must be non-empty",
        ));
    }
    let bad = name
        .chars()
        .any(|c| !c.is_ascii() || c.is_ascii_control() || c == '=');
    if bad {
        errs.push(FieldError::invalid(
            field,
            quote(name),
            "a valid environment variable name must consist only of printable ASCII characters \
             other than '='",
        ));
    }
    errs
}

/// Errors for an IP address field.
pub(crate) fn ip(field: &str, value: &str) -> Vec<FieldError> {
    if parse_ip(value).is_some() {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            field,
            quote(value),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        )]
    }
}

/// Parses an IP address, tolerating the leading zeros in IPv4 octets that
/// Kubernetes' legacy fields accept.
pub(crate) fn parse_ip(value: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = value.parse() {
        return Some(ip);
    }
    let octets: Vec<&str> = value.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let mut bytes = [0u8; 4];
    for (b, o) in bytes.iter_mut().zip(octets) {
        if o.is_empty() || o.len() > 3 || !o.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *b = o.parse().ok()?;
    }
    Some(std::net::IpAddr::from(bytes))
}

/// Errors for an endpoint address, which must also be routable.
pub(crate) fn endpoint_ip(field: &str, value: &str) -> Vec<FieldError> {
    let Some(addr) = parse_ip(value) else {
        return ip(field, value);
    };
    let mut errs = Vec::new();
    let invalid = |detail: String| FieldError::invalid(field, quote(value), detail);
    if addr.is_unspecified() {
        errs.push(invalid(format!("may not be unspecified ({value})")));
    }
    if addr.is_loopback() {
        errs.push(invalid(
            "may not be in the loopback range (127.0.0.0/8, ::1/128)".into(),
        ));
    }
    let link_local = match addr {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        errs.push(invalid(
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)".into(),
        ));
    }
    let link_local_multicast = match addr {
        std::net::IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    };
    if link_local_multicast {
        errs.push(invalid(
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".into(),
        ));
    }
    errs
}

/// `must be greater than or equal to 0` for a negative number.
pub(crate) fn nonnegative(field: &str, value: i64) -> Vec<FieldError> {
    if value < 0 {
        vec![FieldError::invalid(
            field,
            value.to_string(),
            "must be greater than or equal to 0",
        )]
    } else {
        Vec::new()
    }
}

/// Whether a resource name is one of Kubernetes' own (`cpu`,
/// `kubernetes.io/...`) rather than an extended resource.
pub(crate) fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Whether a resource is an extended resource (`example.com/gpu`).
pub(crate) fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && validation::qualified_name(&format!("requests.{name}")).is_empty()
}

/// Whether a resource is a huge page size (`hugepages-2Mi`).
pub(crate) fn is_huge_pages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Whether requests of a resource may be below its limit.
pub(crate) fn is_overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_huge_pages(name)
}

/// Whether a resource is counted in whole units.
fn is_integer_resource(name: &str) -> bool {
    const INTEGER: &[&str] = &[
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
    ];
    INTEGER.contains(&name) || is_extended_resource(name) || name.starts_with("count/")
}

/// Errors for a resource name in a container's requests or limits.
pub(crate) fn container_resource_name(field: &str, name: &str) -> Vec<FieldError> {
    let errs = qualified_name(field, name);
    if !errs.is_empty() {
        return errs;
    }
    if !name.contains('/') {
        let standard =
            ["cpu", "memory", "ephemeral-storage"].contains(&name) || is_huge_pages(name);
        if !standard {
            return vec![FieldError::invalid(
                field,
                quote(name),
                "must be a standard resource for containers",
            )];
        }
    } else if !is_native_resource(name) && !is_extended_resource(name) {
        return vec![FieldError::invalid(
            field,
            quote(name),
            "doesn't follow extended resource name standard",
        )];
    }
    Vec::new()
}

/// Parses a quantity for validation; the error is Kubernetes' decode
/// message, which it reports before any other validation.
pub(crate) fn parse_quantity(field: &str, value: &Raw) -> Result<Quantity, FieldError> {
    quantity::parse(&value.0).ok_or_else(|| FieldError {
        kind: FieldErrorKind::TypeInvalid,
        field: field.to_owned(),
        value: None,
        detail: quantity::PARSE_ERROR.into(),
    })
}

/// The first malformed quantity in a resource list, for `check_types`.
pub(crate) fn check_quantities(
    field: &str,
    list: Option<&BTreeMap<String, Raw>>,
) -> Result<(), FieldError> {
    for (name, value) in list.into_iter().flatten() {
        parse_quantity(&format!("{field}.{name}"), value)?;
    }
    Ok(())
}

/// Errors for a quantity of a resource: not negative, and whole for
/// resources counted in units.
pub(crate) fn resource_quantity(field: &str, name: &str, value: Quantity) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if value.is_negative() {
        errs.push(FieldError::invalid(
            field,
            quote(&value.to_string()),
            "must be greater than or equal to 0",
        ));
    }
    if is_integer_resource(name) && value.milli_value() % 1000 != 0 {
        errs.push(FieldError::invalid(
            field,
            quote(&value.to_string()),
            "must be an integer",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_values_print_like_go() {
        let map = BTreeMap::from([("b".to_owned(), "2".to_owned()), ("a".into(), "1".into())]);
        assert_eq!(go_map(&map), r#"map[string]string{"a":"1", "b":"2"}"#);
        assert_eq!(go_strings(&["10.0.0.1".into()]), r#"[]string{"10.0.0.1"}"#);
    }

    #[test]
    fn small_validators() {
        assert!(port_name_problems("http").is_empty());
        assert_eq!(
            port_name_problems("8080"),
            ["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            port_name_problems("a--b"),
            ["must not contain consecutive hyphens"]
        );
        // Kubernetes checks the character set and the letter separately.
        let both = [
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "must contain at least one letter (a-z)",
        ];
        assert_eq!(port_name_problems("HTTP"), both);
        assert_eq!(port_name_problems(""), both);
        let notes = BTreeMap::from([
            ("Example.com/Note".to_owned(), "x".repeat(10)),
            ("ok".into(), "y".repeat(256 * 1024)),
        ]);
        let errs = annotations("metadata.annotations", Some(&notes));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(env_var_name("f", "").len(), 1);
        assert!(config_key_problems("app.properties").is_empty());
        assert_eq!(config_key_problems("..x"), ["must not start with '..'"]);
        assert!(env_var_name("f", "1-weird.NAME").is_empty());
        assert_eq!(env_var_name("f", "A=B").len(), 1);
        assert!(ip("f", "10.0.0.1").is_empty());
        assert!(ip("f", "010.000.000.001").is_empty());
        assert_eq!(ip("f", "10.0.0").len(), 1);
        assert_eq!(endpoint_ip("f", "127.0.0.1").len(), 1);
        assert!(is_extended_resource("example.com/gpu"));
        assert!(!is_extended_resource("cpu"));
        assert!(container_resource_name("f", "memory").is_empty());
        assert_eq!(
            container_resource_name("f", "gpu")[0].detail,
            "must be a standard resource for containers"
        );
    }
}
