//! Namespaces: the `kubernetes` finalizer and `Active` phase they start
//! with, the `kubernetes.io/metadata.name` label, finalizers that only the
//! `finalize` subresource changes, and the phase rules of status writes.

use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use serde_json::Value;

use super::cell;
use crate::table::{self, column};
use crate::validation::{self, quote};
use crate::{Column, FieldError, NameRule, Strategy, typed};

/// The label every namespace carries with its own name.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// What the server does to Namespaces.
pub(crate) struct NamespaceStrategy;

/// Sets the name label (when the name is known: objects created with
/// `generateName` get theirs once named).
fn label_name(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(NAME_LABEL.into(), name);
    }
}

/// Errors for a finalizer name: qualified, or one of Kubernetes' own.
fn finalizer_errors(field: &str, name: &str) -> Vec<FieldError> {
    let mut errs = validation::field_errors(field, name, validation::qualified_name(name));
    if !name.contains('/') && name != "kubernetes" {
        errs.push(FieldError::invalid(
            field,
            quote(name),
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
    errs
}

impl Strategy for NamespaceStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        typed::decode::<Namespace>(obj).map(|_| ())
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |ns: &mut Namespace| {
            label_name(ns);
            if let Some(status) = ns.status.as_mut()
                && status.phase.as_deref().unwrap_or_default().is_empty()
            {
                status.phase = Some("Active".into());
            }
        });
    }

    fn prepare_create(&self, obj: &mut Value) {
        typed::modify(obj, |ns: &mut Namespace| {
            ns.status = Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            });
            let finalizers = ns
                .spec
                .get_or_insert_with(NamespaceSpec::default)
                .finalizers
                .get_or_insert_with(Vec::new);
            if !finalizers.iter().any(|f| f == "kubernetes") {
                finalizers.push("kubernetes".into());
            }
            label_name(ns);
        });
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        typed::keep_status(new, old);
        // Finalizers change only through the `finalize` subresource.
        let finalizers = typed::at(old, "spec.finalizers").cloned();
        if let Some(map) = new.as_object_mut() {
            let spec = map
                .entry("spec")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(spec) = spec.as_object_mut() {
                match finalizers {
                    Some(f) => {
                        spec.insert("finalizers".into(), f);
                    }
                    None => {
                        spec.remove("finalizers");
                    }
                }
            }
        }
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let ns = match typed::decode::<Namespace>(obj) {
            Ok(n) => n,
            Err(e) => return vec![e],
        };
        ns.spec
            .and_then(|s| s.finalizers)
            .unwrap_or_default()
            .iter()
            .flat_map(|f| finalizer_errors("spec.finalizers", f))
            .collect()
    }

    fn validate_status(&self, obj: &Value, _old: &Value) -> Vec<FieldError> {
        let ns = match typed::decode::<Namespace>(obj) {
            Ok(n) => n,
            Err(e) => return vec![e],
        };
        let phase = ns.status.and_then(|s| s.phase).unwrap_or_default();
        let deleting = ns.metadata.deletion_timestamp.is_some();
        match (deleting, phase.as_str()) {
            (false, "Active") | (true, "Terminating") => Vec::new(),
            (false, _) => vec![FieldError::invalid(
                "status.Phase",
                quote(&phase),
                "may only be 'Active' if `deletionTimestamp` is empty",
            )],
            (true, _) => vec![FieldError::invalid(
                "status.Phase",
                quote(&phase),
                "may only be 'Terminating' if `deletionTimestamp` is not empty",
            )],
        }
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn has_status_subresource(&self) -> bool {
        true
    }

    fn name_rule(&self) -> NameRule {
        NameRule::DnsLabel
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column("Status", "string", "The status of the namespace"),
            table::age_column(),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        vec![
            table::name(obj),
            cell(typed::str_at(obj, "status.phase").unwrap_or_default()),
            table::age(obj, now),
        ]
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        let s = |path: &str| typed::str_at(obj, path).unwrap_or_default().to_owned();
        vec![
            ("status.phase".into(), s("status.phase")),
            // Kubernetes keeps this unprefixed alias for old clients.
            ("name".into(), s("metadata.name")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespaces_start_active_with_the_kubernetes_finalizer() {
        let mut obj =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}});
        NamespaceStrategy.default(&mut obj);
        NamespaceStrategy.prepare_create(&mut obj);
        assert_eq!(obj["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(obj["status"], json!({"phase": "Active"}));
        assert_eq!(obj["metadata"]["labels"][NAME_LABEL], "team-a");
        assert!(NamespaceStrategy.validate(&obj, None).is_empty());
        assert_eq!(NamespaceStrategy.row(&obj, 0)[1], json!("Active"));

        // Updates keep finalizers and status.
        let mut new = obj.clone();
        new["spec"]["finalizers"] = json!([]);
        new["status"]["phase"] = json!("Terminating");
        NamespaceStrategy.prepare_update(&mut new, &obj);
        assert_eq!(new["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(new["status"]["phase"], "Active");
    }

    #[test]
    fn validation() {
        let obj = json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["custom"]}});
        assert_eq!(
            NamespaceStrategy.validate(&obj, None)[0].to_string(),
            "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
        );
        let status = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        assert_eq!(
            NamespaceStrategy.validate_status(&status, &status)[0].to_string(),
            "status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty"
        );
    }
}
