//! Defaults and validation of pod specs: the one implementation for Pods,
//! PodTemplates, ReplicationControllers and every workload that embeds a
//! pod template (Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs,
//! CronJobs, and their removed versions). The workload strategies, which
//! work on JSON, reach it through `template_at`, `default_template_json`
//! and `check_template_quantities`, and add only their own rules
//! (`validate_long_running`, a Job's restart policy) on top.
//!
//! The behaviour follows Kubernetes 1.32's v1 defaulters and
//! `ValidatePodSpec`: field paths and messages are Kubernetes' own, so that
//! `kubectl` users read the errors they would read from a real cluster.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, EphemeralContainer, HTTPGetAction, LifecycleHandler,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::field::{self, not_supported};
use super::quantity::{self, Quantity};
use crate::table::wide;
use crate::validation::quote;
use crate::{Column, FieldError, typed};

/// Sets `slot` to `value` when it is unset.
fn default_str(slot: &mut Option<String>, value: &str) {
    if slot.as_deref().unwrap_or_default().is_empty() {
        *slot = Some(value.to_owned());
    }
}

/// The pull policy Kubernetes gives an image without one
/// (`SetDefaults_Container`): `Always` when the image's tag is `latest`
/// (also when it names neither tag nor digest), `IfNotPresent` otherwise,
/// including references that do not parse.
pub(crate) fn default_pull_policy(image: &str) -> &'static str {
    if image_tag(image).as_deref() == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

/// The tag Kubernetes' `ParseImageName` finds in an image reference: the
/// explicit tag, `latest` when there is neither tag nor digest, "" for a
/// digest alone, and `None` when the reference does not parse.
fn image_tag(image: &str) -> Option<String> {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A colon in the last path component is a tag; one earlier belongs to a
    // registry host and port.
    let last = name.rsplit('/').next().unwrap_or(name);
    let (path, tag) = match last.rsplit_once(':') {
        Some((_, tag)) => (&name[..name.len() - tag.len() - 1], Some(tag)),
        None => (name, None),
    };
    // The first component is a registry host when it looks like one (a dot,
    // a port, `localhost`, or capitals, which repositories may not have);
    // the repository path after it must be lowercase.
    let repository = match path.split_once('/') {
        Some((host, rest))
            if host.contains(['.', ':'])
                || host == "localhost"
                || host.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            rest
        }
        _ => path,
    };
    if repository.is_empty() || repository.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    match (tag, digest) {
        (Some(tag), _) => Some(tag.to_owned()),
        (None, Some(_)) => Some(String::new()),
        (None, None) => Some("latest".into()),
    }
}

/// Defaults of an HTTP GET handler.
fn default_http_get(action: &mut HTTPGetAction) {
    default_str(&mut action.path, "/");
    default_str(&mut action.scheme, "HTTP");
}

/// Defaults of a probe.
fn default_probe(probe: &mut Probe) {
    for (slot, value) in [
        (&mut probe.timeout_seconds, 1),
        (&mut probe.period_seconds, 10),
        (&mut probe.success_threshold, 1),
        (&mut probe.failure_threshold, 3),
    ] {
        if slot.unwrap_or(0) == 0 {
            *slot = Some(value);
        }
    }
    if let Some(http) = probe.http_get.as_mut() {
        default_http_get(http);
    }
    if let Some(grpc) = probe.grpc.as_mut() {
        grpc.service.get_or_insert_with(String::new);
    }
}

/// Defaults of a lifecycle handler.
fn default_handler(handler: Option<&mut LifecycleHandler>) {
    if let Some(http) = handler.and_then(|h| h.http_get.as_mut()) {
        default_http_get(http);
    }
}

/// The defaults every kind of container gets. A macro, because regular and
/// ephemeral containers are different types with the same fields.
macro_rules! default_container_fields {
    ($c:expr) => {{
        let c = $c;
        if c.image_pull_policy
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            let policy = default_pull_policy(c.image.as_deref().unwrap_or_default());
            c.image_pull_policy = Some(policy.to_owned());
        }
        default_str(&mut c.termination_message_path, "/dev/termination-log");
        default_str(&mut c.termination_message_policy, "File");
        for port in c.ports.iter_mut().flatten() {
            default_str(&mut port.protocol, "TCP");
        }
        for env in c.env.iter_mut().flatten() {
            if let Some(field_ref) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
                default_str(&mut field_ref.api_version, "v1");
            }
        }
        // Go always writes the resources struct, so users see `resources: {}`.
        let resources = c.resources.get_or_insert_with(Default::default);
        quantity::default_resource_list(&mut resources.limits);
        quantity::default_resource_list(&mut resources.requests);
        for probe in [
            c.liveness_probe.as_mut(),
            c.readiness_probe.as_mut(),
            c.startup_probe.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            default_probe(probe);
        }
        if let Some(lifecycle) = c.lifecycle.as_mut() {
            default_handler(lifecycle.post_start.as_mut());
            default_handler(lifecycle.pre_stop.as_mut());
        }
    }};
}

/// Defaults of a regular or init container.
fn default_container(c: &mut Container) {
    default_container_fields!(c);
}

/// Defaults of an ephemeral container.
fn default_ephemeral_container(c: &mut EphemeralContainer) {
    default_container_fields!(c);
}

/// Defaults of a volume: an `emptyDir` when no source is given, file modes
/// 0644 (420) for projected files, and the declarative defaults of the
/// block-storage sources.
fn default_volume(v: &mut Volume) {
    if volume_sources(v).is_empty() {
        v.empty_dir = Some(Default::default());
    }
    if let Some(host_path) = v.host_path.as_mut() {
        host_path.type_.get_or_insert_with(String::new);
    }
    if let Some(secret) = v.secret.as_mut() {
        secret.default_mode.get_or_insert(420);
    }
    if let Some(config_map) = v.config_map.as_mut() {
        config_map.default_mode.get_or_insert(420);
    }
    if let Some(downward) = v.downward_api.as_mut() {
        downward.default_mode.get_or_insert(420);
        for item in downward.items.iter_mut().flatten() {
            if let Some(field_ref) = item.field_ref.as_mut() {
                default_str(&mut field_ref.api_version, "v1");
            }
        }
    }
    if let Some(projected) = v.projected.as_mut() {
        projected.default_mode.get_or_insert(420);
        for source in projected.sources.iter_mut().flatten() {
            for item in source
                .downward_api
                .iter_mut()
                .flat_map(|d| d.items.iter_mut().flatten())
            {
                if let Some(field_ref) = item.field_ref.as_mut() {
                    default_str(&mut field_ref.api_version, "v1");
                }
            }
            if let Some(token) = source.service_account_token.as_mut() {
                token.expiration_seconds.get_or_insert(3600);
            }
        }
    }
    if let Some(iscsi) = v.iscsi.as_mut() {
        default_str(&mut iscsi.iscsi_interface, "default");
    }
    if let Some(rbd) = v.rbd.as_mut() {
        default_str(&mut rbd.pool, "rbd");
        default_str(&mut rbd.user, "admin");
        default_str(&mut rbd.keyring, "/etc/ceph/keyring");
    }
    if let Some(disk) = v.azure_disk.as_mut() {
        default_str(&mut disk.caching_mode, "ReadWrite");
        default_str(&mut disk.fs_type, "ext4");
        disk.read_only.get_or_insert(false);
        default_str(&mut disk.kind, "Shared");
    }
    if let Some(scale_io) = v.scale_io.as_mut() {
        default_str(&mut scale_io.storage_mode, "ThinProvisioned");
        default_str(&mut scale_io.fs_type, "xfs");
    }
    if let Some(template) = v
        .ephemeral
        .as_mut()
        .and_then(|e| e.volume_claim_template.as_mut())
    {
        default_str(&mut template.spec.volume_mode, "Filesystem");
        if let Some(resources) = template.spec.resources.as_mut() {
            quantity::default_resource_list(&mut resources.limits);
            quantity::default_resource_list(&mut resources.requests);
        }
    }
}

/// Kubernetes' defaults of a pod spec wherever it appears (`SetDefaults_PodSpec`
/// and the defaults of everything nested in it).
pub(crate) fn default_pod_spec(spec: &mut PodSpec) {
    default_str(&mut spec.dns_policy, "ClusterFirst");
    default_str(&mut spec.restart_policy, "Always");
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    default_str(&mut spec.scheduler_name, "default-scheduler");
    // The v1 API mirrors the deprecated `serviceAccount` into
    // `serviceAccountName` and back when converting.
    if spec
        .service_account_name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
        && let Some(sa) = spec.service_account.clone().filter(|s| !s.is_empty())
    {
        spec.service_account_name = Some(sa);
    }
    if let Some(name) = spec.service_account_name.clone().filter(|s| !s.is_empty()) {
        spec.service_account = Some(name);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        default_container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        default_ephemeral_container(c);
    }
    quantity::default_resource_list(&mut spec.overhead);
}

/// Defaults of a pod template. Go embeds the template's metadata and spec
/// as structs, not pointers, so both always exist and the spec is always
/// defaulted, even when the client sent none.
pub(crate) fn default_pod_template_spec(template: &mut PodTemplateSpec) {
    template.metadata.get_or_insert_with(Default::default);
    default_pod_spec(template.spec.get_or_insert_with(Default::default));
}

/// The defaults only Pods get (`SetDefaults_Pod`), and the service account
/// the ServiceAccount admission plugin assigns: requests default to limits,
/// `enableServiceLinks` is on, host-network pods publish their ports on the
/// host, and pods run as the namespace's `default` service account.
pub(crate) fn default_pod_only(spec: &mut PodSpec) {
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if let Some(resources) = c.resources.as_mut()
            && let Some(limits) = resources.limits.clone()
        {
            let requests = resources.requests.get_or_insert_with(BTreeMap::new);
            for (name, value) in limits {
                requests.entry(name).or_insert(value);
            }
        }
    }
    spec.enable_service_links.get_or_insert(true);
    if spec.host_network == Some(true) {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            for port in c.ports.iter_mut().flatten() {
                if port.host_port.unwrap_or(0) == 0 {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
    if spec
        .service_account_name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        spec.service_account_name = Some("default".into());
        spec.service_account = Some("default".into());
    }
}

/// The priority the Priority admission plugin gives a new pod: the value
/// of its built-in class, or 0 and `PreemptLowerPriority` when it names
/// none. Classes users create are left for the engine to resolve.
pub(crate) fn admit_priority(spec: &mut PodSpec) {
    let priority = match spec.priority_class_name.as_deref().unwrap_or_default() {
        "" => 0,
        "system-node-critical" => 2_000_001_000,
        "system-cluster-critical" => 2_000_000_000,
        _ => return,
    };
    spec.priority.get_or_insert(priority);
    default_str(&mut spec.preemption_policy, "PreemptLowerPriority");
}

/// The JSON names of a volume's sources that are set, in the order
/// Kubernetes checks them.
fn volume_sources(v: &Volume) -> Vec<&'static str> {
    const ORDER: &[&str] = &[
        "emptyDir",
        "hostPath",
        "gitRepo",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "flocker",
        "persistentVolumeClaim",
        "rbd",
        "cinder",
        "cephfs",
        "quobyte",
        "downwardAPI",
        "fc",
        "flexVolume",
        "configMap",
        "azureFile",
        "vsphereVolume",
        "photonPersistentDisk",
        "portworxVolume",
        "azureDisk",
        "storageos",
        "projected",
        "scaleIO",
        "csi",
        "ephemeral",
        "image",
    ];
    let json = typed::encode(v);
    ORDER
        .iter()
        .copied()
        .filter(|k| json.get(k).is_some_and(|v| !v.is_null()))
        .collect()
}

/// The child path Kubernetes names when a second volume source is given;
/// two of them are spelled differently from the JSON names.
fn source_child(source: &str) -> &str {
    match source {
        "downwardAPI" => "downwarAPI",
        "cephfs" => "cephFS",
        other => other,
    }
}

/// `must be a number between 0 and 0777 (octal), both inclusive`.
fn file_mode(field: &str, mode: Option<i32>) -> Vec<FieldError> {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => vec![FieldError::invalid(
            field,
            m.to_string(),
            "must be a number between 0 and 0777 (octal), both inclusive",
        )],
        _ => Vec::new(),
    }
}

/// Errors for a path that must stay below its volume's root.
fn local_descending_path(field: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if path.starts_with('/') {
        errs.push(FieldError::invalid(
            field,
            quote(path),
            "must be a relative path",
        ));
    }
    errs.extend(no_backsteps(field, path));
    errs
}

/// Errors for a path with a `..` component.
fn no_backsteps(field: &str, path: &str) -> Vec<FieldError> {
    if path.split('/').any(|part| part == "..") {
        vec![FieldError::invalid(
            field,
            quote(path),
            "must not contain '..'",
        )]
    } else {
        Vec::new()
    }
}

/// Errors for the items of a secret or config map volume.
fn key_to_paths(
    path: &str,
    items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, item) in items.into_iter().flatten().enumerate() {
        let p = format!("{path}.items[{i}]");
        errs.extend(field::required_string(&format!("{p}.key"), Some(&item.key)));
        errs.extend(field::required_string(
            &format!("{p}.path"),
            Some(&item.path),
        ));
        errs.extend(local_descending_path(&format!("{p}.path"), &item.path));
        errs.extend(file_mode(&format!("{p}.mode"), item.mode));
    }
    errs
}

/// Errors for one volume's source.
fn volume_source(v: &Volume, path: &str) -> Vec<FieldError> {
    let sources = volume_sources(v);
    let mut errs = Vec::new();
    if sources.is_empty() {
        errs.push(FieldError::required(path, "must specify a volume type"));
        return errs;
    }
    for extra in &sources[1..] {
        errs.push(FieldError::forbidden(
            format!("{path}.{}", source_child(extra)),
            "may not specify more than 1 volume type",
        ));
    }
    if let Some(host_path) = &v.host_path {
        let p = format!("{path}.hostPath");
        if host_path.path.is_empty() {
            errs.push(FieldError::required(format!("{p}.path"), ""));
        } else {
            errs.extend(no_backsteps(&format!("{p}.path"), &host_path.path));
            const TYPES: &[&str] = &[
                "",
                "BlockDevice",
                "CharDevice",
                "Directory",
                "DirectoryOrCreate",
                "File",
                "FileOrCreate",
                "Socket",
            ];
            if let Some(t) = &host_path.type_
                && !TYPES.contains(&t.as_str())
            {
                errs.push(not_supported(format!("{p}.type"), t, TYPES));
            }
        }
    }
    if let Some(empty_dir) = &v.empty_dir
        && let Some(limit) = &empty_dir.size_limit
        && quantity::parse(&limit.0).is_some_and(Quantity::is_negative)
    {
        errs.push(FieldError::forbidden(
            format!("{path}.emptyDir.sizeLimit"),
            "SizeLimit field must be a valid resource quantity",
        ));
    }
    if let Some(secret) = &v.secret {
        let p = format!("{path}.secret");
        errs.extend(field::required_string(
            &format!("{p}.secretName"),
            secret.secret_name.as_deref(),
        ));
        errs.extend(file_mode(&format!("{p}.defaultMode"), secret.default_mode));
        errs.extend(key_to_paths(&p, secret.items.as_ref()));
    }
    if let Some(config_map) = &v.config_map {
        let p = format!("{path}.configMap");
        errs.extend(field::required_string(
            &format!("{p}.name"),
            Some(&config_map.name),
        ));
        errs.extend(file_mode(
            &format!("{p}.defaultMode"),
            config_map.default_mode,
        ));
        errs.extend(key_to_paths(&p, config_map.items.as_ref()));
    }
    if let Some(claim) = &v.persistent_volume_claim {
        errs.extend(field::required_string(
            &format!("{path}.persistentVolumeClaim.claimName"),
            Some(&claim.claim_name),
        ));
    }
    if let Some(nfs) = &v.nfs {
        let p = format!("{path}.nfs");
        errs.extend(field::required_string(
            &format!("{p}.server"),
            Some(&nfs.server),
        ));
        errs.extend(field::required_string(
            &format!("{p}.path"),
            Some(&nfs.path),
        ));
        if !nfs.path.starts_with('/') {
            errs.push(FieldError::invalid(
                format!("{p}.path"),
                quote(&nfs.path),
                "must be an absolute path",
            ));
        }
    }
    if let Some(downward) = &v.downward_api {
        let p = format!("{path}.downwardAPI");
        errs.extend(file_mode(
            &format!("{p}.defaultMode"),
            downward.default_mode,
        ));
        errs.extend(downward_items(&p, downward.items.as_deref()));
    }
    if let Some(projected) = &v.projected {
        for (i, source) in projected.sources.iter().flatten().enumerate() {
            if let Some(downward) = &source.downward_api {
                errs.extend(downward_items(
                    &format!("{path}.projected.sources[{i}].downwardAPI"),
                    downward.items.as_deref(),
                ));
            }
        }
    }
    errs
}

/// Errors for the files of a downwardAPI volume (or projection): each has a
/// path and exactly one of a field of the pod's metadata and a container's
/// resource.
fn downward_items(path: &str, items: Option<&[DownwardAPIVolumeFile]>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, item) in items.into_iter().flatten().enumerate() {
        let ip = format!("{path}.items[{i}]");
        errs.extend(field::required_string(
            &format!("{ip}.path"),
            Some(&item.path),
        ));
        match (&item.field_ref, &item.resource_field_ref) {
            (None, None) => errs.push(FieldError::required(
                &ip,
                "one of fieldRef and resourceFieldRef is required",
            )),
            (Some(_), Some(_)) => errs.push(FieldError::invalid(
                &ip,
                "\"\"",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            )),
            (Some(field_ref), None) if !field_ref.field_path.is_empty() => {
                errs.extend(check_field_path(
                    &format!("{ip}.fieldRef"),
                    &field_ref.field_path,
                    VOLUME_FIELD_PATHS,
                ))
            }
            (Some(_), None) => {
                errs.push(FieldError::required(format!("{ip}.fieldRef.fieldPath"), ""))
            }
            (None, Some(_)) => {}
        }
    }
    errs
}

/// Validates volumes; returns the names of the valid ones (which mounts may
/// refer to) and the errors.
fn validate_volumes(
    volumes: Option<&Vec<Volume>>,
    path: &str,
) -> (BTreeMap<String, Volume>, Vec<FieldError>) {
    let mut valid = BTreeMap::new();
    let mut errs = Vec::new();
    for (i, v) in volumes.into_iter().flatten().enumerate() {
        let p = format!("{path}[{i}]");
        let mut el = volume_source(v, &p);
        if v.name.is_empty() {
            el.push(FieldError::required(format!("{p}.name"), ""));
        } else {
            el.extend(field::dns_label(&format!("{p}.name"), &v.name));
        }
        if valid.contains_key(&v.name) {
            el.push(FieldError::duplicate(format!("{p}.name"), quote(&v.name)));
        }
        if el.is_empty() {
            valid.insert(v.name.clone(), v.clone());
        } else {
            errs.extend(el);
        }
    }
    (valid, errs)
}

/// Errors for a container's requests and limits: resource names,
/// quantities, and requests not above limits.
pub(crate) fn validate_resources(
    resources: Option<&ResourceRequirements>,
    path: &str,
) -> Vec<FieldError> {
    let Some(resources) = resources else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let lim_path = format!("{path}.limits");
    let req_path = format!("{path}.requests");
    let mut limits = BTreeMap::new();
    for (name, raw) in resources.limits.iter().flatten() {
        let p = format!("{lim_path}[{name}]");
        errs.extend(field::container_resource_name(&p, name));
        match field::parse_quantity(&p, raw) {
            Ok(q) => {
                errs.extend(field::resource_quantity(&p, name, q));
                limits.insert(name.as_str(), q);
            }
            Err(e) => errs.push(e),
        }
    }
    let mut cpu_or_memory = limits.keys().any(|n| *n == "cpu" || *n == "memory");
    let mut huge_pages = limits.keys().any(|n| field::is_huge_pages(n));
    for (name, raw) in resources.requests.iter().flatten() {
        let p = format!("{req_path}[{name}]");
        errs.extend(field::container_resource_name(&p, name));
        let q = match field::parse_quantity(&p, raw) {
            Ok(q) => q,
            Err(e) => {
                errs.push(e);
                continue;
            }
        };
        errs.extend(field::resource_quantity(&p, name, q));
        match limits.get(name.as_str()) {
            Some(limit) if *limit != q && !field::is_overcommit_allowed(name) => {
                errs.push(FieldError::invalid(
                    &req_path,
                    quote(&q.to_string()),
                    format!("must be equal to {name} limit of {limit}"),
                ));
            }
            Some(limit) if q > *limit => {
                errs.push(FieldError::invalid(
                    &req_path,
                    quote(&q.to_string()),
                    format!("must be less than or equal to {name} limit of {limit}"),
                ));
            }
            Some(_) => {}
            None if !field::is_overcommit_allowed(name) => errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
        cpu_or_memory |= name == "cpu" || name == "memory";
        huge_pages |= field::is_huge_pages(name);
    }
    if huge_pages && !cpu_or_memory {
        errs.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
    errs
}

/// The downward-API fields an environment variable may read.
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The fields of the pod a downwardAPI volume file may hold: its metadata
/// only (the volume is made before the pod has an address).
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// The container resources an environment variable may read.
const ENV_RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// Errors for a container's environment.
fn validate_env(c: &Container, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, env) in c.env.iter().flatten().enumerate() {
        let p = format!("{path}.env[{i}]");
        if env.name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        }
        errs.extend(field::env_var_name(&format!("{p}.name"), &env.name));
        let Some(from) = &env.value_from else {
            continue;
        };
        let vp = format!("{p}.valueFrom");
        let mut sources = 0;
        if let Some(field_ref) = &from.field_ref {
            sources += 1;
            let fp = format!("{vp}.fieldRef");
            if field_ref
                .api_version
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                errs.push(FieldError::required(format!("{fp}.apiVersion"), ""));
            } else if field_ref.field_path.is_empty() {
                errs.push(FieldError::required(format!("{fp}.fieldPath"), ""));
            } else {
                errs.extend(check_field_path(
                    &fp,
                    &field_ref.field_path,
                    ENV_FIELD_PATHS,
                ));
            }
        }
        if let Some(resource_ref) = &from.resource_field_ref {
            sources += 1;
            let rp = format!("{vp}.resourceFieldRef");
            let resource = resource_ref.resource.as_str();
            if resource.is_empty() {
                errs.push(FieldError::required(format!("{rp}.resource"), ""));
            } else if !ENV_RESOURCE_FIELDS.contains(&resource)
                && !resource.starts_with("requests.hugepages-")
                && !resource.starts_with("limits.hugepages-")
            {
                errs.push(not_supported(
                    format!("{rp}.resource"),
                    resource,
                    ENV_RESOURCE_FIELDS,
                ));
            }
        }
        for (key, name, child) in [
            from.config_map_key_ref.as_ref().map(|r| (&r.key, &r.name)),
            from.secret_key_ref.as_ref().map(|r| (&r.key, &r.name)),
        ]
        .into_iter()
        .zip(["configMapKeyRef", "secretKeyRef"])
        .filter_map(|(refs, child)| refs.map(|(k, n)| (k, n, child)))
        {
            sources += 1;
            let rp = format!("{vp}.{child}");
            errs.extend(field::dns_subdomain(&format!("{rp}.name"), name));
            if key.is_empty() {
                errs.push(FieldError::required(format!("{rp}.key"), ""));
            } else {
                errs.extend(field::config_key(&format!("{rp}.key"), key));
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                &vp,
                "\"\"",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !env.value.as_deref().unwrap_or_default().is_empty() {
            errs.push(FieldError::invalid(
                &vp,
                "\"\"",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                &vp,
                "\"\"",
                "may not have more than one field specified at a time",
            ));
        }
    }
    for (i, from) in c.env_from.iter().flatten().enumerate() {
        let p = format!("{path}.envFrom[{i}]");
        if let Some(prefix) = from.prefix.as_deref().filter(|p| !p.is_empty()) {
            errs.extend(field::env_var_name(&format!("{p}.prefix"), prefix));
        }
        let refs = [
            from.config_map_ref
                .as_ref()
                .map(|r| ("configMapRef", &r.name)),
            from.secret_ref.as_ref().map(|r| ("secretRef", &r.name)),
        ];
        let set: Vec<_> = refs.into_iter().flatten().collect();
        for (child, name) in &set {
            let np = format!("{p}.{child}.name");
            if name.is_empty() {
                errs.push(FieldError::required(np, ""));
            } else {
                errs.extend(field::dns_subdomain(&np, name));
            }
        }
        let env_from_path = format!("{path}.envFrom");
        match set.len() {
            0 => errs.push(FieldError::invalid(
                env_from_path,
                "\"\"",
                "must specify one of: `configMapRef` or `secretRef`",
            )),
            1 => {}
            _ => errs.push(FieldError::invalid(
                env_from_path,
                "\"\"",
                "may not have more than one field specified at a time",
            )),
        }
    }
    errs
}

/// Errors for a downward-API field path, one of `supported` (an environment
/// variable's or a volume file's).
fn check_field_path(path: &str, field_path: &str, supported: &[&str]) -> Vec<FieldError> {
    // `metadata.labels['key']` and `metadata.annotations['key']` subscript
    // a map; everything else must be one of the supported fields.
    if let Some((base, rest)) = field_path.split_once('[') {
        let key = rest
            .strip_suffix(']')
            .map(|k| k.trim_matches('\'').to_owned())
            .unwrap_or_default();
        return match base {
            "metadata.annotations" => field::qualified_name(path, &key.to_lowercase()),
            "metadata.labels" => field::qualified_name(path, &key),
            _ => vec![FieldError::invalid(
                path,
                quote(base),
                "does not support subscript",
            )],
        };
    }
    if supported.contains(&field_path) {
        Vec::new()
    } else {
        let mut supported = supported.to_vec();
        supported.sort_unstable();
        vec![not_supported(
            format!("{path}.fieldPath"),
            field_path,
            &supported,
        )]
    }
}

/// Errors for a container's ports.
fn validate_ports(c: &Container, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let p = format!("{path}.ports[{i}]");
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let problems = field::port_name(&format!("{p}.name"), name);
            if !problems.is_empty() {
                errs.extend(problems);
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(format!("{p}.name"), quote(name)));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(format!("{p}.containerPort"), ""));
        } else {
            errs.extend(field::port_number(
                &format!("{p}.containerPort"),
                i64::from(port.container_port),
            ));
        }
        if let Some(host_port) = port.host_port.filter(|p| *p != 0) {
            errs.extend(field::port_number(
                &format!("{p}.hostPort"),
                i64::from(host_port),
            ));
        }
        errs.extend(field::required_one_of(
            &format!("{p}.protocol"),
            port.protocol.as_deref().unwrap_or_default(),
            &["SCTP", "TCP", "UDP"],
        ));
    }
    errs
}

/// Errors for a container's volume mounts.
fn validate_mounts(
    c: &Container,
    path: &str,
    volumes: &BTreeMap<String, Volume>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut mount_paths = BTreeSet::new();
    let mounts_path = format!("{path}.volumeMounts");
    for (i, mount) in c.volume_mounts.iter().flatten().enumerate() {
        let p = format!("{mounts_path}[{i}]");
        if mount.name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        }
        if !volumes.contains_key(&mount.name) {
            errs.push(field::not_found(format!("{p}.name"), &mount.name));
        }
        if mount.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{p}.mountPath"), ""));
        }
        if !mount_paths.insert(mount.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                format!("{p}.mountPath"),
                quote(&mount.mount_path),
                "must be unique",
            ));
        }
        // Kubernetes names the list, not the item, for these two.
        let sub_path = mount.sub_path.as_deref().unwrap_or_default();
        if !sub_path.is_empty() {
            errs.extend(local_descending_path(
                &format!("{mounts_path}.subPath"),
                sub_path,
            ));
        }
        let expr = mount.sub_path_expr.as_deref().unwrap_or_default();
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{p}.subPathExpr"),
                    quote(expr),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(local_descending_path(
                &format!("{mounts_path}.subPathExpr"),
                expr,
            ));
        }
    }
    errs
}

/// Errors for a probe or lifecycle handler: exactly one action.
fn validate_handler(
    path: &str,
    exec: Option<&k8s_openapi::api::core::v1::ExecAction>,
    http_get: Option<&HTTPGetAction>,
    tcp_port: Option<&IntOrString>,
    grpc_port: Option<i32>,
    sleep_seconds: Option<i64>,
    grace_period: Option<i64>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut handlers = 0;
    let mut one = |name: &str, errs: &mut Vec<FieldError>| {
        handlers += 1;
        if handlers > 1 {
            errs.push(FieldError::forbidden(
                format!("{path}.{name}"),
                "may not specify more than 1 handler type",
            ));
            false
        } else {
            true
        }
    };
    if let Some(exec) = exec
        && one("exec", &mut errs)
        && exec.command.as_ref().is_none_or(Vec::is_empty)
    {
        errs.push(FieldError::required(format!("{path}.exec.command"), ""));
    }
    if let Some(http) = http_get
        && one("httpGet", &mut errs)
    {
        let p = format!("{path}.httpGet");
        if http.path.as_deref().unwrap_or_default().is_empty() {
            errs.push(FieldError::required(format!("{p}.path"), ""));
        }
        errs.extend(field::port_number_or_name(&format!("{p}.port"), &http.port));
        let scheme = http.scheme.as_deref().unwrap_or_default();
        if scheme != "HTTP" && scheme != "HTTPS" {
            errs.push(not_supported(
                format!("{p}.scheme"),
                scheme,
                &["HTTP", "HTTPS"],
            ));
        }
    }
    if let Some(port) = tcp_port
        && one("tcpSocket", &mut errs)
    {
        errs.extend(field::port_number_or_name(
            &format!("{path}.tcpSocket.port"),
            port,
        ));
    }
    if let Some(port) = grpc_port
        && one("grpc", &mut errs)
    {
        errs.extend(field::port_number(
            &format!("{path}.grpc.port"),
            i64::from(port),
        ));
    }
    if let Some(seconds) = sleep_seconds
        && one("sleep", &mut errs)
        && let Some(grace) = grace_period
        && (seconds <= 0 || seconds > grace)
    {
        errs.push(FieldError::invalid(
            format!("{path}.sleep"),
            seconds.to_string(),
            format!(
                "must be greater than 0 and less than terminationGracePeriodSeconds \
                             ({grace}). Enable AllowPodLifecycleSleepActionZeroValue feature gate \
                             for zero sleep."
            ),
        ));
    }
    if handlers == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

/// Which probe a probe is, for the rules particular to each.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    /// Restarts the container when it fails.
    Liveness,
    /// Takes the pod out of service endpoints when it fails.
    Readiness,
    /// Holds the other probes back until it succeeds.
    Startup,
}

/// Errors for a probe.
fn validate_probe(
    probe: Option<&Probe>,
    path: &str,
    kind: ProbeKind,
    grace: Option<i64>,
) -> Vec<FieldError> {
    let Some(probe) = probe else {
        return Vec::new();
    };
    let mut errs = validate_handler(
        path,
        probe.exec.as_ref(),
        probe.http_get.as_ref(),
        probe.tcp_socket.as_ref().map(|t| &t.port),
        probe.grpc.as_ref().map(|g| g.port),
        None,
        grace,
    );
    for (name, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        errs.extend(field::nonnegative(
            &format!("{path}.{name}"),
            i64::from(value.unwrap_or(0)),
        ));
    }
    if let Some(seconds) = probe.termination_grace_period_seconds {
        if kind == ProbeKind::Readiness {
            errs.push(FieldError::invalid(
                format!("{path}.terminationGracePeriodSeconds"),
                seconds.to_string(),
                "must not be set for readinessProbes",
            ));
        } else if seconds <= 0 {
            errs.push(FieldError::invalid(
                format!("{path}.terminationGracePeriodSeconds"),
                seconds.to_string(),
                "must be greater than 0",
            ));
        }
    }
    let success = probe.success_threshold.unwrap_or(0);
    if kind != ProbeKind::Readiness && success != 1 {
        errs.push(FieldError::invalid(
            format!("{path}.successThreshold"),
            success.to_string(),
            "must be 1",
        ));
    }
    errs
}

/// Errors for a container's probes and lifecycle hooks.
fn validate_probes_and_lifecycle(c: &Container, path: &str, grace: Option<i64>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(lifecycle) = &c.lifecycle {
        for (name, handler) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            if let Some(h) = handler {
                errs.extend(validate_handler(
                    &format!("{path}.lifecycle.{name}"),
                    h.exec.as_ref(),
                    h.http_get.as_ref(),
                    h.tcp_socket.as_ref().map(|t| &t.port),
                    None,
                    h.sleep.as_ref().map(|s| s.seconds),
                    grace,
                ));
            }
        }
    }
    errs.extend(validate_probe(
        c.liveness_probe.as_ref(),
        &format!("{path}.livenessProbe"),
        ProbeKind::Liveness,
        grace,
    ));
    errs.extend(validate_probe(
        c.readiness_probe.as_ref(),
        &format!("{path}.readinessProbe"),
        ProbeKind::Readiness,
        grace,
    ));
    errs.extend(validate_probe(
        c.startup_probe.as_ref(),
        &format!("{path}.startupProbe"),
        ProbeKind::Startup,
        grace,
    ));
    errs
}

/// Errors for a user or group ID.
fn id_range(field: &str, id: Option<i64>) -> Vec<FieldError> {
    match id {
        Some(id) if !(0..=2_147_483_647).contains(&id) => vec![FieldError::invalid(
            field,
            id.to_string(),
            field::range_error(0, 2_147_483_647),
        )],
        _ => Vec::new(),
    }
}

/// The checks every kind of container gets (`validateContainerCommon`).
fn validate_container_common(
    c: &Container,
    path: &str,
    volumes: &BTreeMap<String, Volume>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name_path = format!("{path}.name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        errs.extend(field::dns_label(&name_path, &c.name));
    }
    if c.image.as_deref().unwrap_or_default().is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    errs.extend(field::required_one_of(
        &format!("{path}.terminationMessagePolicy"),
        c.termination_message_policy.as_deref().unwrap_or_default(),
        &["File", "FallbackToLogsOnError"],
    ));
    errs.extend(validate_ports(c, path));
    errs.extend(validate_env(c, path));
    errs.extend(validate_mounts(c, path, volumes));
    errs.extend(field::required_one_of(
        &format!("{path}.imagePullPolicy"),
        c.image_pull_policy.as_deref().unwrap_or_default(),
        &["Always", "IfNotPresent", "Never"],
    ));
    errs.extend(validate_resources(
        c.resources.as_ref(),
        &format!("{path}.resources"),
    ));
    if let Some(sc) = &c.security_context {
        let p = format!("{path}.securityContext");
        errs.extend(id_range(&format!("{p}.runAsUser"), sc.run_as_user));
        errs.extend(id_range(&format!("{p}.runAsGroup"), sc.run_as_group));
    }
    errs
}

/// Host ports used twice among `containers` (`TCP//8080`).
fn host_port_conflicts<'a>(
    containers: impl Iterator<Item = (usize, &'a Container)>,
    path: &str,
    seen: &mut BTreeSet<String>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (ci, c) in containers {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let host_port = port.host_port.unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{host_port}",
                port.protocol.as_deref().unwrap_or_default(),
                port.host_ip.as_deref().unwrap_or_default()
            );
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    format!("{path}[{ci}].ports[{pi}].hostPort"),
                    quote(&key),
                ));
            }
        }
    }
    errs
}

/// Errors for tolerations.
pub(crate) fn validate_tolerations(
    tolerations: &[k8s_openapi::api::core::v1::Toleration],
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let key = t.key.as_deref().unwrap_or_default();
        let operator = t.operator.as_deref().unwrap_or_default();
        let value = t.value.as_deref().unwrap_or_default();
        let effect = t.effect.as_deref().unwrap_or_default();
        if !key.is_empty() {
            errs.extend(field::qualified_name(&format!("{p}.key"), key));
        }
        if key.is_empty() && operator != "Exists" {
            errs.push(FieldError::invalid(
                format!("{p}.operator"),
                quote(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                format!("{p}.effect"),
                quote(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "Equal" | "" => {
                let problems = crate::validation::label_value(value);
                if !problems.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{p}.operator"),
                        quote(value),
                        problems.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{p}.operator"),
                        quote(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported(
                format!("{p}.operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            errs.push(not_supported(
                format!("{p}.effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
    errs
}

/// Converts an ephemeral container to the container it describes, for the
/// checks the two share.
fn as_container(e: &EphemeralContainer) -> Container {
    typed::decode(&typed::encode(e)).unwrap_or_default()
}

/// Whether `spec` is a whole Pod's or a template's; some checks differ.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpecOwner {
    /// The spec of a Pod object.
    Pod,
    /// A pod template inside another object.
    Template,
}

/// Validates a pod spec at `path` (`ValidatePodSpec`).
pub(crate) fn validate_pod_spec(spec: &PodSpec, path: &str, owner: SpecOwner) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let grace = spec.termination_grace_period_seconds;
    if grace.is_none() {
        errs.push(FieldError::required(
            format!("{path}.terminationGracePeriodSeconds"),
            "",
        ));
    }
    let (volumes, volume_errs) =
        validate_volumes(spec.volumes.as_ref(), &format!("{path}.volumes"));
    errs.extend(volume_errs);

    // Regular containers.
    let containers_path = format!("{path}.containers");
    if spec.containers.is_empty() {
        errs.push(FieldError::required(&containers_path, ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let p = format!("{containers_path}[{i}]");
        errs.extend(validate_container_common(c, &p, &volumes));
        if !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(format!("{p}.name"), quote(&c.name)));
        }
        errs.extend(validate_probes_and_lifecycle(c, &p, grace));
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                format!("{p}.restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs.extend(host_port_conflicts(
        spec.containers.iter().enumerate(),
        &containers_path,
        &mut BTreeSet::new(),
    ));

    // Init containers run one by one, so host ports only conflict within
    // one of them; their names share the regular containers' namespace.
    let init_path = format!("{path}.initContainers");
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let p = format!("{init_path}[{i}]");
        errs.extend(validate_container_common(c, &p, &volumes));
        let restart_always = match c.restart_policy.as_deref() {
            None => false,
            Some("Always") => true,
            Some(other) => {
                errs.push(not_supported(
                    format!("{p}.restartPolicy"),
                    other,
                    &["Always"],
                ));
                false
            }
        };
        if names.contains(c.name.as_str()) {
            errs.push(FieldError::duplicate(format!("{p}.name"), quote(&c.name)));
        } else if !c.name.is_empty() {
            names.insert(c.name.as_str());
        }
        errs.extend(host_port_conflicts(
            std::iter::once((i, c)),
            &init_path,
            &mut BTreeSet::new(),
        ));
        if restart_always {
            errs.extend(validate_probes_and_lifecycle(c, &p, grace));
        } else {
            for (name, set) in [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ] {
                if set {
                    errs.push(FieldError::forbidden(
                        format!("{p}.{name}"),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }

    // Ephemeral containers: the common checks, and unique names.
    for (i, e) in spec.ephemeral_containers.iter().flatten().enumerate() {
        let p = format!("{path}.ephemeralContainers[{i}]");
        let c = as_container(e);
        errs.extend(validate_container_common(&c, &p, &volumes));
        if !names.insert(e.name.as_str()) {
            errs.push(FieldError::duplicate(format!("{p}.name"), quote(&e.name)));
        }
    }

    // Host networking: ports on the host are the container's ports.
    if spec.host_network == Some(true) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, port) in c.ports.iter().flatten().enumerate() {
                let hp = port.host_port.unwrap_or(0);
                if (owner == SpecOwner::Pod || hp != 0) && hp != port.container_port {
                    errs.push(FieldError::invalid(
                        format!("{containers_path}[{i}].ports[{j}].hostPort"),
                        hp.to_string(),
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }

    errs.extend(field::required_one_of(
        &format!("{path}.restartPolicy"),
        spec.restart_policy.as_deref().unwrap_or_default(),
        &["Always", "OnFailure", "Never"],
    ));
    let dns_policy = spec.dns_policy.as_deref().unwrap_or_default();
    errs.extend(field::required_one_of(
        &format!("{path}.dnsPolicy"),
        dns_policy,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    ));
    errs.extend(field::labels(
        &format!("{path}.nodeSelector"),
        spec.node_selector.as_ref(),
    ));
    if let Some(sc) = &spec.security_context {
        let p = format!("{path}.securityContext");
        errs.extend(id_range(&format!("{p}.runAsUser"), sc.run_as_user));
        errs.extend(id_range(&format!("{p}.runAsGroup"), sc.run_as_group));
        errs.extend(id_range(&format!("{p}.fsGroup"), sc.fs_group));
        for (g, gid) in sc.supplemental_groups.iter().flatten().enumerate() {
            errs.extend(id_range(
                &format!("{p}.supplementalGroups[{g}]"),
                Some(*gid),
            ));
        }
    }
    if dns_policy == "None" {
        let dns_path = format!("{path}.dnsConfig");
        match &spec.dns_config {
            None => errs.push(FieldError::required(
                dns_path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )),
            Some(c) if c.nameservers.as_ref().is_none_or(Vec::is_empty) => {
                errs.push(FieldError::required(
                    format!("{dns_path}.nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ))
            }
            Some(_) => {}
        }
    }
    for (i, ns) in spec
        .dns_config
        .iter()
        .flat_map(|c| c.nameservers.iter().flatten())
        .enumerate()
    {
        errs.extend(field::ip(&format!("{path}.dnsConfig.nameservers[{i}]"), ns));
    }
    for (i, gate) in spec.readiness_gates.iter().flatten().enumerate() {
        errs.extend(field::qualified_name(
            &format!("{path}.readinessGates[{i}].conditionType"),
            &gate.condition_type,
        ));
    }
    let mut gates = BTreeSet::new();
    for (i, gate) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = format!("{path}.schedulingGates[{i}]");
        errs.extend(field::qualified_name(&p, &gate.name));
        if !gates.insert(gate.name.as_str()) {
            errs.push(FieldError::duplicate(p, quote(&gate.name)));
        }
    }
    for (name, value) in [
        ("serviceAccountName", &spec.service_account_name),
        ("nodeName", &spec.node_name),
        ("priorityClassName", &spec.priority_class_name),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            errs.extend(field::dns_subdomain(&format!("{path}.{name}"), v));
        }
    }
    if let Some(deadline) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errs.push(FieldError::invalid(
            format!("{path}.activeDeadlineSeconds"),
            deadline.to_string(),
            field::range_error(1, i64::from(i32::MAX)),
        ));
    }
    for (name, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            errs.extend(field::dns_label(&format!("{path}.{name}"), v));
        }
    }
    errs.extend(validate_tolerations(
        spec.tolerations.as_deref().unwrap_or_default(),
        &format!("{path}.tolerations"),
    ));
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let p = format!("{path}.hostAliases[{i}]");
        errs.extend(field::ip(&format!("{p}.ip"), &alias.ip));
        for (j, host) in alias.hostnames.iter().flatten().enumerate() {
            errs.extend(field::dns_subdomain(&format!("{p}.hostnames[{j}]"), host));
        }
    }
    if let Some(policy) = spec.preemption_policy.as_deref() {
        errs.extend(field::required_one_of(
            &format!("{path}.preemptionPolicy"),
            policy,
            &["PreemptLowerPriority", "Never"],
        ));
    }
    if owner == SpecOwner::Pod {
        for (list, items) in [
            ("containers", &spec.containers),
            (
                "initContainers",
                spec.init_containers.as_ref().unwrap_or(&Vec::new()),
            ),
        ] {
            for (i, c) in items.iter().enumerate() {
                let image = c.image.as_deref().unwrap_or_default();
                if image.trim() != image {
                    errs.push(FieldError::invalid(
                        format!("{path}.{list}[{i}].image"),
                        quote(image),
                        "must not have leading or trailing whitespace",
                    ));
                }
            }
        }
    }
    errs
}

/// Errors for a pod template's labels and annotations, which Kubernetes
/// reports at `<path>.labels` and `<path>.annotations`.
pub(crate) fn validate_template_metadata(
    template: &PodTemplateSpec,
    path: &str,
) -> Vec<FieldError> {
    let meta = template.metadata.as_ref();
    let mut errs = field::labels(
        &format!("{path}.labels"),
        meta.and_then(|m| m.labels.as_ref()),
    );
    errs.extend(field::annotations(
        &format!("{path}.annotations"),
        meta.and_then(|m| m.annotations.as_ref()),
    ));
    errs
}

/// Validates a pod template inside another object (`ValidatePodTemplateSpec`).
pub(crate) fn validate_pod_template_spec(
    template: &PodTemplateSpec,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = validate_template_metadata(template, path);
    let spec = template.spec.clone().unwrap_or_default();
    errs.extend(validate_pod_spec(
        &spec,
        &format!("{path}.spec"),
        SpecOwner::Template,
    ));
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            format!("{path}.spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// The rule of controllers whose pods run until replaced (ReplicationControllers,
/// Deployments, ReplicaSets, StatefulSets, DaemonSets), on top of the
/// template's own validation: `restartPolicy` only `Always`, and no
/// `activeDeadlineSeconds`. `kind` names the controller in the message as
/// Kubernetes does (Deployments say "ReplicaSet").
pub(crate) fn validate_long_running(
    template: &PodTemplateSpec,
    path: &str,
    kind: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = template.spec.as_ref();
    let restart = spec
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or_default();
    if restart != "Always" {
        errs.push(not_supported(
            format!("{path}.spec.restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if spec.is_some_and(|s| s.active_deadline_seconds.is_some()) {
        errs.push(FieldError::forbidden(
            format!("{path}.spec.activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

/// The first malformed quantity in a pod spec's resources, for
/// `check_types` (Kubernetes rejects these while decoding).
pub(crate) fn check_spec_quantities(spec: &PodSpec, path: &str) -> Result<(), FieldError> {
    for (list, items) in [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ] {
        for (i, c) in items.into_iter().flatten().enumerate() {
            let p = format!("{path}.{list}[{i}].resources");
            if let Some(r) = &c.resources {
                field::check_quantities(&format!("{p}.limits"), r.limits.as_ref())?;
                field::check_quantities(&format!("{p}.requests"), r.requests.as_ref())?;
            }
        }
    }
    field::check_quantities(&format!("{path}.overhead"), spec.overhead.as_ref())
}

/// The QoS class Kubernetes gives a pod from its containers' cpu and memory
/// requests and limits.
pub(crate) fn qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let positive = |raw: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        quantity::parse(&raw.0).filter(|q| q.nanos() > 0)
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let resources = c.resources.clone().unwrap_or_default();
        for (name, raw) in resources.requests.iter().flatten() {
            let name = match name.as_str() {
                "cpu" => "cpu",
                "memory" => "memory",
                _ => continue,
            };
            if let Some(q) = positive(raw) {
                let sum = requests.get(name).map_or(q, |prev| prev.plus(q));
                requests.insert(name, sum);
            }
        }
        let mut found = BTreeSet::new();
        for (name, raw) in resources.limits.iter().flatten() {
            let name = match name.as_str() {
                "cpu" => "cpu",
                "memory" => "memory",
                _ => continue,
            };
            if let Some(q) = positive(raw) {
                found.insert(name);
                let sum = limits.get(name).map_or(q, |prev| prev.plus(q));
                limits.insert(name, sum);
            }
        }
        if found.len() < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        guaranteed = requests
            .iter()
            .all(|(name, req)| limits.get(name).is_some_and(|lim| lim == req));
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Adds `creationTimestamp: null` to the metadata of the embedded object
/// at `pointer` (a pod, job or claim template), as Go writes the zero time
/// of an embedded object's metadata.
pub(crate) fn null_template_timestamp(obj: &mut Value, pointer: &str) {
    if let Some(template) = obj.pointer_mut(pointer).and_then(Value::as_object_mut) {
        let meta = template
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            meta.entry("creationTimestamp").or_insert(Value::Null);
        }
    }
}

/// The `Containers` and `Images` columns of kinds with a pod template,
/// shown with `-o wide`; `container_cells` fills them.
pub(crate) fn container_columns() -> [Column; 2] {
    [
        wide(
            "Containers",
            "string",
            "Names of each container in the template.",
        ),
        wide(
            "Images",
            "string",
            "Images referenced by each container in the template.",
        ),
    ]
}

/// The `Containers` and `Images` cells of tables: the containers' names
/// and images, joined by commas.
pub(crate) fn container_cells(spec: Option<&PodSpec>) -> (String, String) {
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or_default())
        .collect();
    (names.join(","), images.join(","))
}

// ---------------------------------------------------------------------------
// Templates inside objects held as JSON
//
// The apps and batch strategies work on JSON (they must tell a missing
// selector from an empty one); for their pod templates they decode the
// template and use the typed functions above, so that every kind shares
// one implementation.

/// The pod template at `pointer` of a JSON object, typed. An absent or null
/// template is the empty one, as Go's embedded struct is; so is one that
/// does not decode, which `check_types` has already rejected.
pub(crate) fn template_at(obj: &Value, pointer: &str) -> PodTemplateSpec {
    obj.pointer(pointer)
        .filter(|t| !t.is_null())
        .and_then(|t| typed::decode(t).ok())
        .unwrap_or_default()
}

/// The `Containers` and `Images` cells of the pod template at `pointer`.
pub(crate) fn template_cells(obj: &Value, pointer: &str) -> (String, String) {
    container_cells(template_at(obj, pointer).spec.as_ref())
}

/// Fills in the defaults of a pod template held as JSON, including the
/// `creationTimestamp: null` Go writes into its metadata.
pub(crate) fn default_template_json(template: &mut Value) {
    typed::modify(template, default_pod_template_spec);
    null_template_timestamp(template, "");
}

/// The first malformed quantity in the pod template at `pointer` of a JSON
/// object, for `check_types`; errors are reported under the pointer's path
/// (`/spec/template` is `spec.template`).
pub(crate) fn check_template_quantities(obj: &Value, pointer: &str) -> Result<(), FieldError> {
    match template_at(obj, pointer).spec {
        Some(spec) => {
            let path = pointer.trim_start_matches('/').replace('/', ".");
            check_spec_quantities(&spec, &format!("{path}.spec"))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pull_policies_follow_the_tag() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/app", "Always"),
            ("localhost:5000/app:v2", "IfNotPresent"),
            ("nginx@sha256:abcd", "IfNotPresent"),
            ("nginx:latest@sha256:abcd", "Always"),
            ("Registry.example.com/app", "Always"),
            ("Upper/app", "Always"),
            ("registry.example.com/App", "IfNotPresent"),
            ("Nginx", "IfNotPresent"),
            ("nginx latest", "IfNotPresent"),
            ("", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
        assert_eq!(image_tag("localhost:5000/app:v1").as_deref(), Some("v1"));
        assert_eq!(image_tag("app@sha256:abcd").as_deref(), Some(""));
    }

    #[test]
    fn json_templates_get_a_pods_defaults() {
        let mut t = json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                 "readinessProbe": {"httpGet": {"port": 80}},
                 "livenessProbe": {"grpc": {"port": 9000}},
                 "resources": {"limits": {"cpu": "1000m"}}},
                {"name": "side", "image": "busybox"}
            ], "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}]}
        });
        default_template_json(&mut t);
        assert_eq!(
            t["metadata"],
            json!({"labels": {"app": "web"}, "creationTimestamp": null})
        );
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
        assert_eq!(web["resources"], json!({"limits": {"cpu": "1"}}));
        assert_eq!(web["ports"][0]["protocol"], "TCP");
        assert_eq!(
            web["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                   "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            web["livenessProbe"]["grpc"],
            json!({"port": 9000, "service": ""})
        );
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "Always");
        assert_eq!(spec["containers"][1]["resources"], json!({}));
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);

        // Go's template is a struct: an empty one still gets its metadata
        // and a defaulted spec, so only the containers are missing.
        let mut empty = json!({});
        default_template_json(&mut empty);
        assert_eq!(empty["metadata"], json!({"creationTimestamp": null}));
        assert_eq!(empty["spec"]["restartPolicy"], "Always");
        let got = messages(validate_pod_template_spec(
            &template_at(&json!({"t": empty}), "/t"),
            "spec.template",
        ));
        assert_eq!(got, ["spec.template.spec.containers: Required value"]);
    }

    #[test]
    fn template_validation_covers_metadata_and_spec() {
        let mut t = json!({
            "metadata": {"labels": {"app": "-web"},
                         "annotations": {"Example.com/Note": "ok", "bad key": "x"}},
            "spec": {
                "containers": [
                    {"name": "x", "image": "i", "imagePullPolicy": "Sometimes",
                     "ports": [{"containerPort": 70000, "name": "HTTP"}]},
                    {"name": "x", "image": "i"}
                ],
                "ephemeralContainers": [{"name": "debug", "image": "busybox"}]
            }
        });
        default_template_json(&mut t);
        let got = messages(validate_pod_template_spec(
            &template_at(&t, ""),
            "spec.template",
        ));
        assert_eq!(
            got,
            [
                "spec.template.labels: Invalid value: \"-web\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                "spec.template.annotations: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "spec.template.spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.template.spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain at least one letter (a-z)",
                "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.template.spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                "spec.template.spec.containers[1].name: Duplicate value: \"x\"",
                "spec.template.spec.ephemeralContainers: Forbidden: ephemeral containers not allowed in pod template",
            ]
        );
    }

    #[test]
    fn long_running_templates_restart_always() {
        let mut t = template_at(
            &json!({"spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 5}}),
            "",
        );
        assert_eq!(
            messages(validate_long_running(&t, "spec.template", "DaemonSet")),
            [
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in DaemonSet is not Supported",
            ]
        );
        default_pod_template_spec(&mut t);
        let spec = t.spec.as_mut().unwrap();
        spec.restart_policy = Some("Always".into());
        spec.active_deadline_seconds = None;
        assert!(validate_long_running(&t, "spec.template", "DaemonSet").is_empty());
    }

    fn spec(value: Value) -> PodSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn qos_classes() {
        let best_effort = spec(json!({"containers": [{"name": "a"}]}));
        assert_eq!(qos_class(&best_effort), "BestEffort");
        let guaranteed = spec(json!({"containers": [{"name": "a", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1000m", "memory": "1Gi"}}}]}));
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        let burstable = spec(json!({"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "100m"}}}]}));
        assert_eq!(qos_class(&burstable), "Burstable");
    }

    fn messages(errs: Vec<FieldError>) -> Vec<String> {
        errs.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn container_errors_name_their_fields() {
        let mut s = spec(json!({"containers": [
            {"name": "Web", "image": "", "ports": [{"containerPort": 70000, "protocol": "HTTP"}],
             "env": [{"name": ""}], "volumeMounts": [{"name": "data", "mountPath": "/d"}],
             "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}},
            {"name": "side", "image": "busybox"},
            {"name": "side", "image": "busybox"}
        ], "restartPolicy": "Sometimes"}));
        default_pod_spec(&mut s);
        s.restart_policy = Some("Sometimes".into());
        let got = messages(validate_pod_spec(&s, "spec", SpecOwner::Pod));
        let want = [
            "spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.containers[0].image: Required value",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].env[0].name: Required value",
            "spec.containers[0].env[0].name: Invalid value: \"\": environment variable name must be non-empty",
            "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
            "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            "spec.containers[2].name: Duplicate value: \"side\"",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn volumes_need_one_source_and_unique_names() {
        let s = spec(json!({
            "containers": [{"name": "a", "image": "x", "imagePullPolicy": "Always",
                            "terminationMessagePolicy": "File"}],
            "volumes": [
                {"name": "a", "emptyDir": {}, "hostPath": {"path": "/x"}},
                {"name": "b", "emptyDir": {}},
                {"name": "b", "emptyDir": {}},
            ],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "terminationGracePeriodSeconds": 30,
        }));
        let got = messages(validate_pod_spec(&s, "spec", SpecOwner::Pod));
        assert_eq!(
            got,
            [
                "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[2].name: Duplicate value: \"b\"",
            ]
        );
    }

    #[test]
    fn downward_api_files_hold_only_metadata() {
        let s = spec(json!({
            "containers": [{"name": "a", "image": "x", "imagePullPolicy": "Always",
                            "terminationMessagePolicy": "File"}],
            "volumes": [
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                    {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
                    {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}},
                    {"path": "both", "fieldRef": {"fieldPath": "metadata.uid"},
                     "resourceFieldRef": {"containerName": "a", "resource": "limits.cpu"}},
                    {"path": "cpu", "resourceFieldRef": {"containerName": "a", "resource": "limits.cpu"}},
                ]}},
                {"name": "all", "projected": {"sources": [
                    {"downwardAPI": {"items": [
                        {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}},
                    ]}},
                ]}},
            ],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "terminationGracePeriodSeconds": 30,
        }));
        let got = messages(validate_pod_spec(&s, "spec", SpecOwner::Pod));
        let supported = "supported values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", \"metadata.uid\"";
        assert_eq!(
            got,
            [
                format!(
                    "spec.volumes[0].downwardAPI.items[2].fieldRef.fieldPath: Unsupported value: \"status.podIP\": {supported}"
                ),
                "spec.volumes[0].downwardAPI.items[3]: Invalid value: \"\": fieldRef and resourceFieldRef can not be specified simultaneously".to_owned(),
                format!(
                    "spec.volumes[1].projected.sources[0].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: \"spec.nodeName\": {supported}"
                ),
            ]
        );
    }

    #[test]
    fn init_containers_and_probes() {
        let mut s = spec(json!({
            "initContainers": [{"name": "init", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}}],
            "containers": [{"name": "init", "image": "x",
                            "livenessProbe": {"httpGet": {"port": 80}, "successThreshold": 2}}],
        }));
        default_pod_spec(&mut s);
        let got = messages(validate_pod_spec(&s, "spec", SpecOwner::Template));
        assert_eq!(
            got,
            [
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.initContainers[0].name: Duplicate value: \"init\"",
                "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            ]
        );
    }
}
