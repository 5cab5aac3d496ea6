//! PersistentVolumes and PersistentVolumeClaims: defaults, the phase they
//! start in, what may change after creation, and `kubectl get pv/pvc`
//! cells.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, PersistentVolumeSpec, PersistentVolumeStatus,
};
use serde_json::Value;

use super::cell;
use super::field::{self, not_supported};
use super::quantity::{self, Quantity};
use crate::table::{self, column, wide};
use crate::validation::quote;
use crate::{Column, FieldError, Strategy, typed};

/// The access modes Kubernetes knows, as `sets.List` orders them.
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// The volume modes Kubernetes knows.
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];

/// The beta annotation that once named a storage class and still wins.
const CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// `RWO,ROX,RWX,RWOP` for a list of access modes.
fn access_modes_string(modes: &[String]) -> String {
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.iter().any(|m| m == mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// Errors for a list of access modes.
fn validate_access_modes(path: &str, modes: &[String], required_detail: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if modes.is_empty() {
        errs.push(FieldError::required(path, required_detail));
    }
    for mode in modes {
        if !ACCESS_MODES.contains(&mode.as_str()) {
            errs.push(not_supported(path, mode, ACCESS_MODES));
        }
    }
    errs
}

/// Errors for a volume mode.
fn validate_volume_mode(path: &str, mode: Option<&str>) -> Vec<FieldError> {
    match mode {
        Some(m) if !VOLUME_MODES.contains(&m) => vec![not_supported(path, m, VOLUME_MODES)],
        _ => Vec::new(),
    }
}

/// The storage class a volume or claim belongs to: the beta annotation,
/// or the field.
fn storage_class(annotations: Option<&BTreeMap<String, String>>, field: Option<&String>) -> String {
    annotations
        .and_then(|a| a.get(CLASS_ANNOTATION))
        .or(field)
        .cloned()
        .unwrap_or_default()
}

/// The sources a persistent volume may use, as named in JSON.
const PV_SOURCES: &[&str] = &[
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "cinder",
    "cephfs",
    "iscsi",
    "fc",
    "flexVolume",
    "flocker",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

/// What the server does to PersistentVolumes.
pub(crate) struct PersistentVolumeStrategy;

impl Strategy for PersistentVolumeStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        let pv = typed::decode::<PersistentVolume>(obj)?;
        field::check_quantities(
            "spec.capacity",
            pv.spec.as_ref().and_then(|s| s.capacity.as_ref()),
        )
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |pv: &mut PersistentVolume| {
            let spec = pv.spec.get_or_insert_with(PersistentVolumeSpec::default);
            if spec
                .persistent_volume_reclaim_policy
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                spec.persistent_volume_reclaim_policy = Some("Retain".into());
            }
            spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
            if let Some(host_path) = spec.host_path.as_mut() {
                host_path.type_.get_or_insert_with(String::new);
            }
            quantity::default_resource_list(&mut spec.capacity);
            if let Some(status) = pv.status.as_mut()
                && status.phase.as_deref().unwrap_or_default().is_empty()
            {
                status.phase = Some("Pending".into());
            }
        });
    }

    fn prepare_create(&self, obj: &mut Value) {
        typed::modify(obj, |pv: &mut PersistentVolume| {
            pv.status = Some(PersistentVolumeStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            });
        });
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        typed::keep_status(new, old);
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let pv = match typed::decode::<PersistentVolume>(obj) {
            Ok(p) => p,
            Err(e) => return vec![e],
        };
        let spec = pv.spec.clone().unwrap_or_default();
        let mut errs = validate_access_modes(
            "spec.accessModes",
            spec.access_modes.as_deref().unwrap_or_default(),
            "",
        );
        let capacity = spec.capacity.clone().unwrap_or_default();
        if capacity.is_empty() {
            errs.push(FieldError::required("spec.capacity", ""));
        }
        if !capacity.contains_key("storage") || capacity.len() > 1 {
            let names: Vec<String> = capacity.keys().cloned().collect();
            errs.push(not_supported(
                "spec.capacity",
                &format!("{names:?}"),
                &["storage"],
            ));
        }
        for (name, raw) in &capacity {
            let p = format!("spec.capacity[{name}]");
            match field::parse_quantity(&p, raw) {
                Ok(q) if q.nanos() <= 0 => errs.push(FieldError::invalid(
                    p,
                    quote(&q.to_string()),
                    "must be greater than zero",
                )),
                Ok(_) => {}
                Err(e) => errs.push(e),
            }
        }
        if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
            errs.extend(field::dns_subdomain("spec.storageClassName", class));
        }
        errs.extend(validate_volume_mode(
            "spec.volumeMode",
            spec.volume_mode.as_deref(),
        ));
        let json = typed::encode(&spec);
        let sources: Vec<&str> = PV_SOURCES
            .iter()
            .copied()
            .filter(|s| json.get(s).is_some_and(|v| !v.is_null()))
            .collect();
        if sources.is_empty() {
            errs.push(FieldError::required("spec", "must specify a volume type"));
        }
        for extra in sources.iter().skip(1) {
            errs.push(FieldError::forbidden(
                format!("spec.{extra}"),
                "may not specify more than 1 volume type",
            ));
        }
        if let Some(host_path) = &spec.host_path
            && host_path.path.is_empty()
        {
            errs.push(FieldError::required("spec.hostPath.path", ""));
        }
        if let Some(local) = &spec.local {
            if local.path.is_empty() {
                errs.push(FieldError::required("spec.local.path", ""));
            }
            if spec.node_affinity.is_none() {
                errs.push(FieldError::required(
                    "spec.nodeAffinity",
                    "Local volume requires node affinity",
                ));
            }
        }
        if let Some(policy) = spec.persistent_volume_reclaim_policy.as_deref()
            && !["Delete", "Recycle", "Retain"].contains(&policy)
        {
            errs.push(not_supported(
                "spec.persistentVolumeReclaimPolicy",
                policy,
                &["Delete", "Recycle", "Retain"],
            ));
        }
        if let Some(old) = old {
            let old_spec = typed::decode::<PersistentVolume>(old)
                .ok()
                .and_then(|p| p.spec)
                .unwrap_or_default();
            let source = |s: &PersistentVolumeSpec| {
                let json = typed::encode(s);
                PV_SOURCES
                    .iter()
                    .map(|k| json.get(k).cloned())
                    .collect::<Vec<_>>()
            };
            if source(&spec) != source(&old_spec) {
                errs.push(FieldError::forbidden(
                    "spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation",
                ));
            }
            if spec.volume_mode != old_spec.volume_mode {
                errs.push(field::immutable(
                    "volumeMode",
                    quote(spec.volume_mode.as_deref().unwrap_or_default()),
                ));
            }
            if old_spec.node_affinity.is_some() && spec.node_affinity != old_spec.node_affinity {
                errs.push(field::immutable("nodeAffinity", "{}"));
            }
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
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column(
                "Capacity",
                "string",
                "capacity is the description of the persistent volume's resources and capacity.",
            ),
            column(
                "Access Modes",
                "string",
                "accessModes contains all ways the volume can be mounted.",
            ),
            column(
                "Reclaim Policy",
                "string",
                "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
            ),
            column(
                "Status",
                "string",
                "phase indicates if a volume is available, bound to a claim, or released by a claim.",
            ),
            column(
                "Claim",
                "string",
                "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
            ),
            column("StorageClass", "string", "StorageClass of the pv"),
            column(
                "VolumeAttributesClass",
                "string",
                "VolumeAttributesClass of the pv",
            ),
            column(
                "Reason",
                "string",
                "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
            ),
            table::age_column(),
            wide(
                "VolumeMode",
                "string",
                "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
            ),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let pv = typed::decode::<PersistentVolume>(obj).unwrap_or_default();
        let spec = pv.spec.clone().unwrap_or_default();
        let status = pv.status.clone().unwrap_or_default();
        let claim = spec.claim_ref.as_ref().map_or_else(String::new, |c| {
            format!(
                "{}/{}",
                c.namespace.clone().unwrap_or_default(),
                c.name.clone().unwrap_or_default()
            )
        });
        let capacity = spec
            .capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map_or_else(|| "0".to_owned(), |q| quantity::canonical(&q.0));
        let phase = if pv.metadata.deletion_timestamp.is_some() {
            "Terminating".to_owned()
        } else {
            status.phase.clone().unwrap_or_default()
        };
        vec![
            table::name(obj),
            cell(capacity),
            cell(access_modes_string(
                spec.access_modes.as_deref().unwrap_or_default(),
            )),
            cell(
                spec.persistent_volume_reclaim_policy
                    .clone()
                    .unwrap_or_default(),
            ),
            cell(phase),
            cell(claim),
            cell(storage_class(
                pv.metadata.annotations.as_ref(),
                spec.storage_class_name.as_ref(),
            )),
            cell(
                spec.volume_attributes_class_name
                    .clone()
                    .unwrap_or_else(|| "<unset>".into()),
            ),
            cell(status.reason.clone().unwrap_or_default()),
            table::age(obj, now),
            cell(spec.volume_mode.clone().unwrap_or_else(|| "<unset>".into())),
        ]
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        // Kubernetes keeps this unprefixed alias for old clients.
        vec![(
            "name".into(),
            typed::str_at(obj, "metadata.name")
                .unwrap_or_default()
                .to_owned(),
        )]
    }
}

/// What the server does to PersistentVolumeClaims.
pub(crate) struct PersistentVolumeClaimStrategy;

/// The storage a claim requests.
fn requested_storage(spec: &PersistentVolumeClaimSpec) -> Option<Quantity> {
    spec.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| quantity::parse(&q.0))
}

/// The update rules of a claim (`ValidatePersistentVolumeClaimUpdate`):
/// nothing changes but the requested size of a bound claim, and the
/// volume name once.
fn validate_claim_update(
    new: &PersistentVolumeClaim,
    old: &PersistentVolumeClaim,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let new_spec = new.spec.clone().unwrap_or_default();
    let old_spec = old.spec.clone().unwrap_or_default();
    let mut new_clone = new_spec.clone();
    let mut old_clone = old_spec.clone();
    if old_spec
        .volume_name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        old_clone.volume_name.clone_from(&new_spec.volume_name);
    }
    // Claims that only named their class in the beta annotation may move it
    // into the field.
    let old_annotation = old
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CLASS_ANNOTATION));
    if old_spec.storage_class_name.is_none()
        && new_spec.storage_class_name.is_some()
        && old_annotation.is_none_or(|a| Some(a) == new_spec.storage_class_name.as_ref())
    {
        old_clone
            .storage_class_name
            .clone_from(&new_spec.storage_class_name);
    }
    let bound = new.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    if bound
        && let Some(requests) = new_clone
            .resources
            .as_mut()
            .and_then(|r| r.requests.as_mut())
    {
        match old_spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
        {
            Some(old_storage) => {
                requests.insert("storage".into(), old_storage.clone());
            }
            None => {
                requests.remove("storage");
            }
        }
    }
    if typed::encode(&new_clone) != typed::encode(&old_clone) {
        errs.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests for bound claims",
        ));
    }
    if let (Some(new_size), Some(old_size)) =
        (requested_storage(&new_spec), requested_storage(&old_spec))
    {
        let capacity = old
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .and_then(|q| quantity::parse(&q.0))
            .unwrap_or(Quantity::from_int(0));
        if new_size < old_size && new_size <= capacity {
            errs.push(FieldError::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than status.capacity",
            ));
        }
    }
    errs
}

impl Strategy for PersistentVolumeClaimStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        let pvc = typed::decode::<PersistentVolumeClaim>(obj)?;
        let resources = pvc.spec.and_then(|s| s.resources).unwrap_or_default();
        field::check_quantities("spec.resources.requests", resources.requests.as_ref())?;
        field::check_quantities("spec.resources.limits", resources.limits.as_ref())
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |pvc: &mut PersistentVolumeClaim| {
            let spec = pvc
                .spec
                .get_or_insert_with(PersistentVolumeClaimSpec::default);
            spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
            if let Some(resources) = spec.resources.as_mut() {
                quantity::default_resource_list(&mut resources.limits);
                quantity::default_resource_list(&mut resources.requests);
            }
            if let Some(status) = pvc.status.as_mut()
                && status.phase.as_deref().unwrap_or_default().is_empty()
            {
                status.phase = Some("Pending".into());
            }
        });
    }

    fn prepare_create(&self, obj: &mut Value) {
        typed::modify(obj, |pvc: &mut PersistentVolumeClaim| {
            pvc.status = Some(PersistentVolumeClaimStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            });
        });
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        typed::keep_status(new, old);
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
        typed::modify(new, |pvc: &mut PersistentVolumeClaim| {
            if let Some(status) = pvc.status.as_mut() {
                quantity::canonicalize_list(&mut status.capacity);
            }
        });
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let pvc = match typed::decode::<PersistentVolumeClaim>(obj) {
            Ok(p) => p,
            Err(e) => return vec![e],
        };
        let spec = pvc.spec.clone().unwrap_or_default();
        let mut errs = validate_access_modes(
            "spec.accessModes",
            spec.access_modes.as_deref().unwrap_or_default(),
            "at least 1 access mode is required",
        );
        let storage = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"));
        match storage {
            None => errs.push(FieldError::required("spec.resources[storage]", "")),
            Some(raw) => match field::parse_quantity("spec.resources[storage]", raw) {
                Ok(q) if q.nanos() <= 0 => errs.push(FieldError::invalid(
                    "spec.resources[storage]",
                    quote(&q.to_string()),
                    "must be greater than zero",
                )),
                Ok(_) => {}
                Err(e) => errs.push(e),
            },
        }
        if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
            errs.extend(field::dns_subdomain("spec.storageClassName", class));
        }
        errs.extend(validate_volume_mode(
            "spec.volumeMode",
            spec.volume_mode.as_deref(),
        ));
        if let Some(old) = old {
            match typed::decode::<PersistentVolumeClaim>(old) {
                Ok(old) => errs.extend(validate_claim_update(&pvc, &old)),
                Err(e) => errs.push(e),
            }
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
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column(
                "Status",
                "string",
                "phase represents the current phase of PersistentVolumeClaim.",
            ),
            column(
                "Volume",
                "string",
                "volumeName is the binding reference to the PersistentVolume backing this claim.",
            ),
            column(
                "Capacity",
                "string",
                "capacity represents the actual resources of the underlying volume.",
            ),
            column(
                "Access Modes",
                "string",
                "accessModes contains the actual access modes the volume backing the PVC has.",
            ),
            column("StorageClass", "string", "StorageClass of the pvc"),
            column(
                "VolumeAttributesClass",
                "string",
                "VolumeAttributesClass of the pvc",
            ),
            table::age_column(),
            wide(
                "VolumeMode",
                "string",
                "volumeMode defines what type of volume is required by the claim.",
            ),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let pvc = typed::decode::<PersistentVolumeClaim>(obj).unwrap_or_default();
        let spec = pvc.spec.clone().unwrap_or_default();
        let status = pvc.status.clone().unwrap_or_default();
        let phase = if pvc.metadata.deletion_timestamp.is_some() {
            "Terminating".to_owned()
        } else {
            status.phase.clone().unwrap_or_default()
        };
        let volume = spec.volume_name.clone().unwrap_or_default();
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                status
                    .capacity
                    .as_ref()
                    .and_then(|c| c.get("storage"))
                    .map_or_else(|| "0".to_owned(), |q| quantity::canonical(&q.0)),
                access_modes_string(status.access_modes.as_deref().unwrap_or_default()),
            )
        };
        vec![
            table::name(obj),
            cell(phase),
            cell(volume),
            cell(capacity),
            cell(modes),
            cell(storage_class(
                pvc.metadata.annotations.as_ref(),
                spec.storage_class_name.as_ref(),
            )),
            cell(
                spec.volume_attributes_class_name
                    .clone()
                    .unwrap_or_else(|| "<unset>".into()),
            ),
            table::age(obj, now),
            cell(spec.volume_mode.clone().unwrap_or_else(|| "<unset>".into())),
        ]
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        vec![(
            "name".into(),
            typed::str_at(obj, "metadata.name")
                .unwrap_or_default()
                .to_owned(),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn volumes() {
        let mut pv = json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "hostPath": {"path": "/data"},
            "storageClassName": "manual",
            "claimRef": {"namespace": "default", "name": "data"}}});
        PersistentVolumeStrategy.default(&mut pv);
        PersistentVolumeStrategy.prepare_create(&mut pv);
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pv["spec"]["hostPath"]["type"], "");
        assert_eq!(pv["status"], json!({"phase": "Pending"}));
        assert!(PersistentVolumeStrategy.validate(&pv, None).is_empty());
        let row = PersistentVolumeStrategy.row(&pv, 0);
        assert_eq!(
            row[1..9],
            [
                json!("10Gi"),
                json!("RWO,ROX"),
                json!("Retain"),
                json!("Pending"),
                json!("default/data"),
                json!("manual"),
                json!("<unset>"),
                json!(""),
            ]
        );
        assert_eq!(row[10], json!("Filesystem"));

        let mut moved = pv.clone();
        moved["spec"]["hostPath"]["path"] = json!("/elsewhere");
        assert_eq!(
            messages(PersistentVolumeStrategy.validate(&moved, Some(&pv))),
            [
                "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"
            ]
        );
        let bad = json!({"metadata": {"name": "pv2"}, "spec": {"capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteSometimes"]}});
        assert_eq!(
            messages(PersistentVolumeStrategy.validate(&bad, None)),
            [
                "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec: Required value: must specify a volume type",
            ]
        );
    }

    #[test]
    fn claims() {
        let mut pvc = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}});
        PersistentVolumeClaimStrategy.default(&mut pvc);
        PersistentVolumeClaimStrategy.prepare_create(&mut pvc);
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc["status"], json!({"phase": "Pending"}));
        assert!(
            PersistentVolumeClaimStrategy
                .validate(&pvc, None)
                .is_empty()
        );
        assert_eq!(
            PersistentVolumeClaimStrategy.row(&pvc, 0)[1..7],
            [
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!(""),
                json!("<unset>")
            ]
        );

        let mut bigger = pvc.clone();
        bigger["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert_eq!(
            messages(PersistentVolumeClaimStrategy.validate(&bigger, Some(&pvc))),
            [
                "spec: Forbidden: spec is immutable after creation except resources.requests for bound claims"
            ]
        );
        // Bound claims may grow.
        let mut bound = pvc.clone();
        bound["spec"]["volumeName"] = json!("pv1");
        bound["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]});
        let mut grown = bound.clone();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert!(
            PersistentVolumeClaimStrategy
                .validate(&grown, Some(&bound))
                .is_empty()
        );
        assert_eq!(
            PersistentVolumeClaimStrategy.row(&bound, 0)[1..5],
            [json!("Bound"), json!("pv1"), json!("1Gi"), json!("RWO")]
        );
        let missing = json!({"metadata": {"name": "x"}, "spec": {}});
        assert_eq!(
            messages(PersistentVolumeClaimStrategy.validate(&missing, None)),
            [
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ]
        );
    }
}
