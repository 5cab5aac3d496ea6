//! storage.k8s.io/v1: StorageClasses, and the names volume provisioning shares between
//! the scheduler, the controllers and the node agent.

use std::sync::Arc;

use k8s_openapi::api::storage::v1 as storage;
use serde_json::{Value, json};

use crate::apps::fields::{self, default_value, get};
use crate::apps::messages::render;
use crate::apps::strategy::KindStrategy;
use crate::catalog::resource;
use crate::core::field::{immutable, not_supported};
use crate::table::{self, age_column, column, name_column};
use crate::validation::{qualified_name, quote};
use crate::{Column, FieldError, ResourceDef};

/// The provisioner of Gantry's local-path volumes (the default class's).
pub const LOCAL_PATH_PROVISIONER: &str = "gantry.dev/local-path";

/// The provisioner of classes whose volumes are all made ahead of time.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// The annotation on a volume naming the provisioner that made it.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// The annotation the scheduler puts on a WaitForFirstConsumer claim: the node its pod
/// goes to.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// The volume a claim names (`spec.volumeName`), bound or being bound.
pub fn claim_volume_name(
    claim: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
) -> Option<&str> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| !v.is_empty())
}

/// The annotations that make a StorageClass the default one.
const DEFAULT_CLASS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            Arc::new(storage_class_strategy()),
        )
        .short_names(&["sc"])
        .cluster_scoped()
        .build(),
    ]
}

fn storage_class_strategy() -> KindStrategy<storage::StorageClass> {
    KindStrategy {
        default: |obj| {
            default_value(obj, "reclaimPolicy", json!("Delete"));
            default_value(obj, "volumeBindingMode", json!("Immediate"));
        },
        validate: validate_storage_class,
        ..KindStrategy::new(storage_class_columns, storage_class_row)
    }
}

fn validate_storage_class(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let provisioner = fields::str_or_empty(obj, "/provisioner");
    if provisioner.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    } else {
        for p in qualified_name(&provisioner.to_lowercase()) {
            errs.push(FieldError::invalid("provisioner", quote(provisioner), p));
        }
    }
    let parameters = fields::get_map(obj, "/parameters");
    if parameters.is_some_and(|p| p.len() > 512) {
        errs.push(FieldError {
            kind: crate::FieldErrorKind::TooLong,
            field: "parameters".into(),
            value: None,
            detail: "may not have more than 512 items".into(),
        });
    }
    if parameters.is_some_and(|p| p.keys().any(String::is_empty)) {
        errs.push(FieldError::invalid(
            "parameters",
            "\"\"",
            "key must be non-empty",
        ));
    }
    if let Some(policy) = fields::get_str(obj, "/reclaimPolicy")
        && policy != "Delete"
        && policy != "Retain"
    {
        errs.push(not_supported(
            "reclaimPolicy",
            policy,
            &["Delete", "Retain"],
        ));
    }
    match fields::get_str(obj, "/volumeBindingMode") {
        None => errs.push(FieldError::required("volumeBindingMode", "")),
        Some("Immediate" | "WaitForFirstConsumer") => {}
        Some(other) => errs.push(not_supported(
            "volumeBindingMode",
            other,
            &["Immediate", "WaitForFirstConsumer"],
        )),
    }
    if let Some(old) = old {
        if fields::changed(obj, old, "/parameters") {
            errs.push(FieldError::forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if fields::changed(obj, old, "/provisioner") {
            errs.push(FieldError::forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if fields::changed(obj, old, "/reclaimPolicy") {
            errs.push(FieldError::forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        if fields::changed(obj, old, "/volumeBindingMode") {
            errs.push(immutable(
                "volumeBindingMode",
                render(get(obj, "/volumeBindingMode")),
            ));
        }
    }
    errs
}

fn storage_class_columns() -> Vec<Column> {
    vec![
        name_column(),
        column(
            "Provisioner",
            "string",
            "The volume plugin that provisions volumes of this class.",
        ),
        column(
            "ReclaimPolicy",
            "string",
            "What happens to a volume when its claim goes.",
        ),
        column(
            "VolumeBindingMode",
            "string",
            "When volumes are bound and provisioned.",
        ),
        column(
            "AllowVolumeExpansion",
            "string",
            "Whether volumes of this class may grow.",
        ),
        age_column(),
    ]
}

fn storage_class_row(obj: &Value, now: i64) -> Vec<Value> {
    let mut name = fields::str_or_empty(obj, "/metadata/name").to_owned();
    if DEFAULT_CLASS
        .iter()
        .any(|key| fields::annotation(obj, key) == Some("true"))
    {
        name.push_str(" (default)");
    }
    vec![
        json!(name),
        json!(fields::str_or_empty(obj, "/provisioner")),
        json!(fields::get_str(obj, "/reclaimPolicy").unwrap_or("Delete")),
        json!(fields::get_str(obj, "/volumeBindingMode").unwrap_or("Immediate")),
        json!(fields::get_bool(obj, "/allowVolumeExpansion").unwrap_or(false)),
        table::age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Strategy;
    use crate::apps::tests::{create, update};

    #[test]
    fn storage_classes() {
        let s = storage_class_strategy();
        let sc = json!({"metadata": {"name": "local", "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path"});
        let (sc, errs) = create(&s, sc);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
        let now = crate::table::parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            s.row(&sc, now),
            vec![
                json!("local (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("Immediate"),
                json!(false),
                json!("0s")
            ]
        );
        let mut changed = sc.clone();
        changed["reclaimPolicy"] = json!("Retain");
        assert_eq!(
            update(&s, &sc, changed).1,
            ["reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden."]
        );
        let (_, errs) = create(
            &s,
            json!({"metadata": {"name": "x"}, "volumeBindingMode": "Later"}),
        );
        assert_eq!(
            errs,
            [
                "provisioner: Required value",
                "volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\"",
            ]
        );
    }
}
