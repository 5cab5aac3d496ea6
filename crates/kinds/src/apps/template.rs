//! Pod templates inside workload objects (Deployments, ReplicaSets,
//! StatefulSets, DaemonSets, Jobs, CronJobs): the defaults Kubernetes fills
//! into every `PodSpec` and the basic validation of a template.
//!
//! These mirror Kubernetes' `SetDefaults_PodSpec`, `SetDefaults_Container`,
//! probe and volume defaults, and the parts of `ValidatePodTemplateSpec`
//! users meet most. Defaults that Kubernetes applies only to Pods (not to
//! templates), such as `enableServiceLinks` or host-network ports, are left
//! to the Pod strategy.

use serde_json::{Map, Value, json};

use super::fields::{self, child, default_str, default_value, each_mut, items};
use super::messages::{nonnegative, not_supported};
use super::selector::validate_labels;
use crate::FieldError;
use crate::validation::{dns1123_label, dns1123_subdomain, qualified_name, quote};

/// Fills in the defaults of a `PodTemplateSpec`.
pub(crate) fn default_pod_template(template: &mut Value) {
    // Go's encoder writes the zero `creationTimestamp` of an embedded
    // ObjectMeta as null, so every template Kubernetes returns carries it.
    if let Some(meta) = child(template, "metadata")
        && meta.get("creationTimestamp").is_none()
    {
        fields::set(meta, "creationTimestamp", Value::Null);
    }
    if let Some(spec) = child(template, "spec") {
        default_pod_spec(spec);
    }
}

/// Fills in the defaults of a `PodSpec` (`SetDefaults_PodSpec` and the
/// defaults of everything inside it).
pub(crate) fn default_pod_spec(spec: &mut Value) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_value(spec, "securityContext", json!({}));
    default_value(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for container in each_mut(spec, key) {
            default_container(container);
        }
    }
    for volume in each_mut(spec, "volumes") {
        default_volume(volume);
    }
}

fn default_container(c: &mut Value) {
    if fields::is_unset(c, "imagePullPolicy") || c["imagePullPolicy"] == "" {
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let policy = if image_tag(image).as_deref() == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        fields::set(c, "imagePullPolicy", json!(policy));
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    // ResourceRequirements is a struct, not a pointer, so Kubernetes always
    // writes it, empty or not.
    default_value(c, "resources", json!({}));
    for port in each_mut(c, "ports") {
        default_str(port, "protocol", "TCP");
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = fields::child_if(c, probe) {
            default_probe(p);
        }
    }
    if let Some(lifecycle) = fields::child_if(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = fields::child_if(lifecycle, hook) {
                default_handler(h);
            }
        }
    }
    for env in each_mut(c, "env") {
        if let Some(field_ref) = fields::get_mut(env, "/valueFrom/fieldRef") {
            default_str(field_ref, "apiVersion", "v1");
        }
    }
}

fn default_probe(p: &mut Value) {
    for (key, default) in [
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        // Go tests these against 0, so an explicit 0 is replaced too.
        if p.get(key).and_then(Value::as_i64).unwrap_or(0) == 0 {
            fields::set(p, key, json!(default));
        }
    }
    default_handler(p);
    if let Some(grpc) = fields::child_if(p, "grpc") {
        default_value(grpc, "service", json!(""));
    }
}

fn default_handler(h: &mut Value) {
    if let Some(get) = fields::child_if(h, "httpGet") {
        default_str(get, "path", "/");
        default_str(get, "scheme", "HTTP");
    }
}

/// The volume sources a `Volume` may name besides `name`.
const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

fn default_volume(v: &mut Value) {
    if VOLUME_SOURCES.iter().all(|s| fields::is_unset(v, s)) {
        fields::set(v, "emptyDir", json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = fields::child_if(v, source) {
            default_value(s, "defaultMode", json!(420));
        }
    }
    if let Some(api) = fields::child_if(v, "downwardAPI") {
        default_downward_items(api);
    }
    if let Some(projected) = fields::child_if(v, "projected") {
        for source in each_mut(projected, "sources") {
            if let Some(token) = fields::child_if(source, "serviceAccountToken") {
                default_value(token, "expirationSeconds", json!(3600));
            }
            if let Some(api) = fields::child_if(source, "downwardAPI") {
                default_downward_items(api);
            }
        }
    }
    if let Some(host) = fields::child_if(v, "hostPath") {
        default_value(host, "type", json!(""));
    }
    if let Some(spec) = fields::get_mut(v, "/ephemeral/volumeClaimTemplate/spec") {
        default_str(spec, "volumeMode", "Filesystem");
    }
}

fn default_downward_items(api: &mut Value) {
    for item in each_mut(api, "items") {
        if let Some(field_ref) = fields::child_if(item, "fieldRef") {
            default_str(field_ref, "apiVersion", "v1");
        }
    }
}

/// The tag Kubernetes' `ParseImageName` finds in an image reference:
/// the explicit tag, `latest` when there is neither tag nor digest, and
/// `None` when the reference does not parse.
fn image_tag(image: &str) -> Option<String> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace()) {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let (path, tag) = match last.rsplit_once(':') {
        Some((_, t)) => (&name[..name.len() - t.len() - 1], Some(t)),
        None => (name, None),
    };
    // The repository path must be lowercase (the registry host may not be).
    let repo = match path.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            rest
        }
        _ => path,
    };
    if repo.is_empty() || repo.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    match (tag, digest) {
        (Some(t), _) => Some(t.to_owned()),
        (None, Some(_)) => Some(String::new()),
        (None, None) => Some("latest".into()),
    }
}

/// Validates a `PodTemplateSpec` at `path` (such as `spec.template`), as
/// Kubernetes' `ValidatePodTemplateSpec` does for the fields users meet.
pub(crate) fn validate_pod_template(template: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = validate_labels(
        fields::get_map(template, "/metadata/labels"),
        &format!("{path}.labels"),
    );
    errs.extend(validate_annotations(
        fields::get_map(template, "/metadata/annotations"),
        &format!("{path}.annotations"),
    ));
    let spec = template.get("spec").cloned().unwrap_or(Value::Null);
    errs.extend(validate_pod_spec(&spec, &format!("{path}.spec")));
    if !items(template, "/spec/ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            format!("{path}.spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// Kubernetes' `ValidateAnnotations`: keys are qualified names.
pub(crate) fn validate_annotations(
    annotations: Option<&Map<String, Value>>,
    field: &str,
) -> Vec<FieldError> {
    let mut keys: Vec<&String> = annotations.into_iter().flat_map(|a| a.keys()).collect();
    keys.sort();
    let mut errs = Vec::new();
    for key in keys {
        for problem in qualified_name(&key.to_lowercase()) {
            errs.push(FieldError::invalid(field, quote(key), problem));
        }
    }
    let total: usize = annotations
        .into_iter()
        .flatten()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if total > 256 * 1024 {
        errs.push(FieldError {
            kind: crate::FieldErrorKind::TooLong,
            field: field.to_owned(),
            value: None,
            detail: "may not be more than 262144 bytes".into(),
        });
    }
    errs
}

/// Validates a `PodSpec` at `path`.
pub(crate) fn validate_pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = validate_volumes(spec, &format!("{path}.volumes"));

    let containers = items(spec, "/containers");
    let container_path = format!("{path}.containers");
    let mut names: Vec<&str> = Vec::new();
    if containers.is_empty() {
        errs.push(FieldError::required(container_path.clone(), ""));
    }
    for (i, c) in containers.iter().enumerate() {
        let idx = format!("{container_path}[{i}]");
        errs.extend(validate_container(c, &idx));
        let name = fields::str_or_empty(c, "/name");
        if names.contains(&name) {
            errs.push(FieldError::duplicate(format!("{idx}.name"), quote(name)));
        } else {
            names.push(name);
        }
    }
    for (i, c) in items(spec, "/initContainers").iter().enumerate() {
        let idx = format!("{path}.initContainers[{i}]");
        errs.extend(validate_container(c, &idx));
        let name = fields::str_or_empty(c, "/name");
        if names.contains(&name) {
            errs.push(FieldError::duplicate(format!("{idx}.name"), quote(name)));
        } else {
            names.push(name);
        }
    }

    let restart = fields::str_or_empty(spec, "/restartPolicy");
    match restart {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(format!("{path}.restartPolicy"), "")),
        other => errs.push(not_supported(
            &format!("{path}.restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    match fields::str_or_empty(spec, "/dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(format!("{path}.dnsPolicy"), "")),
        other => errs.push(not_supported(
            &format!("{path}.dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    errs.extend(validate_labels(
        fields::get_map(spec, "/nodeSelector"),
        &format!("{path}.nodeSelector"),
    ));
    if let Some(sa) = fields::get_str(spec, "/serviceAccountName").filter(|s| !s.is_empty()) {
        for problem in dns1123_subdomain(sa) {
            errs.push(FieldError::invalid(
                format!("{path}.serviceAccountName"),
                quote(sa),
                problem,
            ));
        }
    }
    if let Some(deadline) = fields::get_i64(spec, "/activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errs.push(FieldError::invalid(
            format!("{path}.activeDeadlineSeconds"),
            deadline.to_string(),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for key in ["hostname", "subdomain"] {
        if let Some(v) = fields::get_str(spec, &format!("/{key}")).filter(|s| !s.is_empty()) {
            for problem in dns1123_label(v) {
                errs.push(FieldError::invalid(
                    format!("{path}.{key}"),
                    quote(v),
                    problem,
                ));
            }
        }
    }
    if let Some(pc) = fields::get_str(spec, "/priorityClassName").filter(|s| !s.is_empty()) {
        for problem in dns1123_subdomain(pc) {
            errs.push(FieldError::invalid(
                format!("{path}.priorityClassName"),
                quote(pc),
                problem,
            ));
        }
    }
    errs
}

fn validate_volumes(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, vol) in items(spec, "/volumes").iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let sources: Vec<&&str> = VOLUME_SOURCES
            .iter()
            .filter(|s| !fields::is_unset(vol, s))
            .collect();
        match sources.as_slice() {
            [] => errs.push(FieldError::required(
                idx.clone(),
                "must specify a volume type",
            )),
            [_] => {}
            [_, second, ..] => errs.push(FieldError::forbidden(
                format!("{idx}.{second}"),
                "may not specify more than 1 volume type",
            )),
        }
        let required = [
            ("configMap", "name"),
            ("secret", "secretName"),
            ("persistentVolumeClaim", "claimName"),
            ("hostPath", "path"),
            ("nfs", "server"),
        ];
        for (source, key) in required {
            if let Some(s) = vol.get(source).filter(|s| s.is_object())
                && fields::str_or_empty(s, &format!("/{key}")).is_empty()
            {
                errs.push(FieldError::required(format!("{idx}.{source}.{key}"), ""));
            }
        }
        let name = fields::str_or_empty(vol, "/name");
        let name_path = format!("{idx}.name");
        if name.is_empty() {
            errs.push(FieldError::required(name_path.clone(), ""));
        } else {
            for problem in dns1123_label(name) {
                errs.push(FieldError::invalid(name_path.clone(), quote(name), problem));
            }
        }
        if names.contains(&name) {
            errs.push(FieldError::duplicate(name_path, quote(name)));
        } else {
            names.push(name);
        }
    }
    errs
}

fn validate_container(c: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = fields::str_or_empty(c, "/name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        for problem in dns1123_label(name) {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                quote(name),
                problem,
            ));
        }
    }
    if fields::str_or_empty(c, "/image").is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    match fields::str_or_empty(c, "/terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            format!("{path}.terminationMessagePolicy"),
            "",
        )),
        other => errs.push(not_supported(
            &format!("{path}.terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    errs.extend(validate_ports(c, &format!("{path}.ports")));
    errs.extend(validate_env(c, &format!("{path}.env")));
    errs.extend(validate_mounts(c, &format!("{path}.volumeMounts")));
    match fields::str_or_empty(c, "/imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(format!("{path}.imagePullPolicy"), "")),
        other => errs.push(not_supported(
            &format!("{path}.imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    errs
}

fn validate_ports(c: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, port) in items(c, "/ports").iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let name = fields::str_or_empty(port, "/name");
        if !name.is_empty() {
            let problems = port_name_problems(name);
            if !problems.is_empty() {
                for p in problems {
                    errs.push(FieldError::invalid(format!("{idx}.name"), quote(name), p));
                }
            } else if names.contains(&name) {
                errs.push(FieldError::duplicate(format!("{idx}.name"), quote(name)));
            } else {
                names.push(name);
            }
        }
        let container_port = fields::int_or_zero(port, "/containerPort");
        if container_port == 0 {
            errs.push(FieldError::required(format!("{idx}.containerPort"), ""));
        } else if !(1..=65535).contains(&container_port) {
            errs.push(port_range(&format!("{idx}.containerPort"), container_port));
        }
        let host_port = fields::int_or_zero(port, "/hostPort");
        if host_port != 0 && !(1..=65535).contains(&host_port) {
            errs.push(port_range(&format!("{idx}.hostPort"), host_port));
        }
        match fields::str_or_empty(port, "/protocol") {
            "TCP" | "UDP" | "SCTP" => {}
            "" => errs.push(FieldError::required(format!("{idx}.protocol"), "")),
            other => errs.push(not_supported(
                &format!("{idx}.protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
    errs
}

/// `must be between 1 and 65535, inclusive` for a port number.
pub(crate) fn port_range(field: &str, port: i64) -> FieldError {
    FieldError::invalid(
        field,
        port.to_string(),
        "must be between 1 and 65535, inclusive",
    )
}

/// Kubernetes' `IsValidPortName` (an IANA service name).
pub(crate) fn port_name_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.len() > 15 {
        problems.push("must be no more than 15 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        problems
            .push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        problems.push("must contain at least one letter (a-z)".into());
    }
    if name.contains("--") {
        problems.push("must not contain consecutive hyphens".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        problems.push("must not begin or end with a hyphen".into());
    }
    problems
}

fn validate_env(c: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, env) in items(c, "/env").iter().enumerate() {
        let field = format!("{path}[{i}].name");
        let name = fields::str_or_empty(env, "/name");
        // Kubernetes 1.32 relaxes environment variable names to any
        // printable ASCII but '=' (RelaxedEnvironmentVariableValidation).
        if name.is_empty() {
            errs.push(FieldError::required(field.clone(), ""));
            errs.push(FieldError::invalid(
                field,
                quote(name),
                "environment variable name must be non-empty",
            ));
        } else if name
            .chars()
            .any(|ch| !(' '..='~').contains(&ch) || ch == '=')
        {
            errs.push(FieldError::invalid(
                field,
                quote(name),
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
    }
    errs
}

fn validate_mounts(c: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut mount_paths: Vec<&str> = Vec::new();
    for (i, mount) in items(c, "/volumeMounts").iter().enumerate() {
        let idx = format!("{path}[{i}]");
        if fields::str_or_empty(mount, "/name").is_empty() {
            errs.push(FieldError::required(format!("{idx}.name"), ""));
        }
        let mount_path = fields::str_or_empty(mount, "/mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(format!("{idx}.mountPath"), ""));
        } else if mount_paths.contains(&mount_path) {
            errs.push(FieldError::invalid(
                format!("{idx}.mountPath"),
                quote(mount_path),
                "must be unique",
            ));
        } else {
            mount_paths.push(mount_path);
        }
    }
    errs
}

/// The `restartPolicy` rule of controllers whose pods run forever
/// (Deployments, ReplicaSets, StatefulSets, DaemonSets): only `Always`; and
/// `activeDeadlineSeconds` is not supported.
pub(crate) fn validate_long_running(template: &Value, path: &str, kind: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let restart = fields::str_or_empty(template, "/spec/restartPolicy");
    if restart != "Always" {
        errs.push(not_supported(
            &format!("{path}.spec.restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if fields::get(template, "/spec/activeDeadlineSeconds").is_some() {
        errs.push(FieldError::forbidden(
            format!("{path}.spec.activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

/// The `Containers` and `Images` cells of wide tables: names and images
/// joined by commas.
pub(crate) fn container_cells(template: &Value) -> (String, String) {
    let containers = items(template, "/spec/containers");
    let names: Vec<&str> = containers
        .iter()
        .map(|c| fields::str_or_empty(c, "/name"))
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| fields::str_or_empty(c, "/image"))
        .collect();
    (names.join(","), images.join(","))
}

/// Non-negative check for an optional integer at `pointer` of `obj`,
/// reported at `field`.
pub(crate) fn nonnegative_at(obj: &Value, pointer: &str, field: &str) -> Vec<FieldError> {
    fields::get_i64(obj, pointer)
        .map(|v| nonnegative(field, v))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_defaults_match_a_pods() {
        let mut t = json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                 "readinessProbe": {"httpGet": {"port": 80}}},
                {"name": "side", "image": "busybox"}
            ], "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}]}
        });
        default_pod_template(&mut t);
        assert_eq!(t["metadata"]["creationTimestamp"], Value::Null);
        let spec = &t["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        let web = &spec["containers"][0];
        assert_eq!(web["imagePullPolicy"], "IfNotPresent");
        assert_eq!(web["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(web["terminationMessagePolicy"], "File");
        assert_eq!(web["resources"], json!({}));
        assert_eq!(web["ports"][0]["protocol"], "TCP");
        assert_eq!(
            web["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                   "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "Always");
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
    }

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("nginx").as_deref(), Some("latest"));
        assert_eq!(image_tag("nginx:latest").as_deref(), Some("latest"));
        assert_eq!(image_tag("localhost:5000/app").as_deref(), Some("latest"));
        assert_eq!(image_tag("localhost:5000/app:v1").as_deref(), Some("v1"));
        assert_eq!(image_tag("app@sha256:abc").as_deref(), Some(""));
        assert_eq!(image_tag("Nginx"), None);
        assert_eq!(image_tag(""), None);
    }

    #[test]
    fn template_validation_names_fields() {
        let t = json!({"metadata": {}, "spec": {
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
        "containers": [
            {"name": "Web", "image": "", "imagePullPolicy": "Sometimes", "terminationMessagePolicy": "File",
             "ports": [{"containerPort": 70000, "protocol": "TCP"}]},
            {"name": "x", "image": "i", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"},
            {"name": "x", "image": "i", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"}
        ]}});
        let errs: Vec<String> = validate_pod_template(&t, "spec.template")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(errs[0].starts_with("spec.template.spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label"), "{errs:?}");
        assert_eq!(
            &errs[1..],
            [
                "spec.template.spec.containers[0].image: Required value",
                "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.template.spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                "spec.template.spec.containers[2].name: Duplicate value: \"x\"",
            ]
        );
        let empty = validate_pod_template(
            &json!({"spec": {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}}),
            "spec.template",
        );
        assert_eq!(
            empty[0].to_string(),
            "spec.template.spec.containers: Required value"
        );
    }
}
