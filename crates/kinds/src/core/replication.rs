//! PodTemplates and ReplicationControllers: objects that hold a pod
//! template, defaulted and validated as templates (see `podspec`).

use k8s_openapi::api::core::v1::{PodTemplate, ReplicationController, ReplicationControllerStatus};
use serde_json::{Value, json};

use super::field::{self, go_map};
use super::podspec::{self, container_cells, container_columns};
use super::{cell, format_labels};
use crate::table::{self, column, wide};
use crate::{Column, FieldError, Strategy, typed};

/// What the server does to PodTemplates.
pub(crate) struct PodTemplateStrategy;

impl Strategy for PodTemplateStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        let template = typed::decode::<PodTemplate>(obj)?;
        match template.template.and_then(|t| t.spec) {
            Some(spec) => podspec::check_spec_quantities(&spec, "template.spec"),
            None => Ok(()),
        }
    }

    fn default(&self, obj: &mut Value) {
        // Go embeds the template as a struct, so it always exists.
        typed::modify(obj, |t: &mut PodTemplate| {
            podspec::default_pod_template_spec(t.template.get_or_insert_with(Default::default));
        });
        podspec::null_template_timestamp(obj, "/template");
    }

    fn prepare_create(&self, _obj: &mut Value) {}

    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        match typed::decode::<PodTemplate>(obj) {
            Ok(t) => {
                podspec::validate_pod_template_spec(&t.template.unwrap_or_default(), "template")
            }
            Err(e) => vec![e],
        }
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
        // PodTemplates show their containers without `-o wide`.
        let [containers, images] = container_columns().map(|c| Column { priority: 0, ..c });
        vec![
            table::name_column(),
            containers,
            images,
            column("Pod Labels", "string", "The labels for the pod template."),
        ]
    }

    fn row(&self, obj: &Value, _now: i64) -> Vec<Value> {
        let t = typed::decode::<PodTemplate>(obj).unwrap_or_default();
        let template = t.template.unwrap_or_default();
        let (names, images) = container_cells(template.spec.as_ref());
        let labels = template.metadata.and_then(|m| m.labels);
        vec![
            table::name(obj),
            cell(names),
            cell(images),
            cell(format_labels(labels.as_ref())),
        ]
    }

    fn selectable_fields(&self, _obj: &Value) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// What the server does to ReplicationControllers.
pub(crate) struct ReplicationControllerStrategy;

impl Strategy for ReplicationControllerStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        let rc = typed::decode::<ReplicationController>(obj)?;
        match rc.spec.and_then(|s| s.template).and_then(|t| t.spec) {
            Some(spec) => podspec::check_spec_quantities(&spec, "spec.template.spec"),
            None => Ok(()),
        }
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |rc: &mut ReplicationController| {
            let spec = rc.spec.get_or_insert_with(Default::default);
            // The selector and the controller's labels default to the
            // template's labels.
            let labels = spec
                .template
                .as_ref()
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone());
            if let Some(labels) = labels {
                if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
                    spec.selector = Some(labels.clone());
                }
                if rc.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                    rc.metadata.labels = Some(labels);
                }
            }
            spec.replicas.get_or_insert(1);
            if let Some(template) = spec.template.as_mut() {
                podspec::default_pod_template_spec(template);
            }
        });
        podspec::null_template_timestamp(obj, "/spec/template");
    }

    fn prepare_create(&self, obj: &mut Value) {
        typed::modify(obj, |rc: &mut ReplicationController| {
            rc.status = Some(ReplicationControllerStatus::default());
        });
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        typed::keep_status(new, old);
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let rc = match typed::decode::<ReplicationController>(obj) {
            Ok(r) => r,
            Err(e) => return vec![e],
        };
        let spec = rc.spec.unwrap_or_default();
        let mut errs = field::nonnegative(
            "spec.minReadySeconds",
            i64::from(spec.min_ready_seconds.unwrap_or(0)),
        );
        let selector = spec.selector.clone().unwrap_or_default();
        if selector.is_empty() {
            errs.push(FieldError::required("spec.selector", ""));
        }
        match spec.replicas {
            None => errs.push(FieldError::required("spec.replicas", "")),
            Some(r) => errs.extend(field::nonnegative("spec.replicas", i64::from(r))),
        }
        let Some(template) = spec.template else {
            errs.push(FieldError::required("spec.template", ""));
            return errs;
        };
        let labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        if !selector.is_empty() && !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                go_map(&labels),
                "`selector` does not match template `labels`",
            ));
        }
        errs.extend(podspec::validate_pod_template_spec(
            &template,
            "spec.template",
        ));
        errs.extend(podspec::validate_long_running(
            &template,
            "spec.template",
            "ReplicationController",
        ));
        errs
    }

    fn validate_status(&self, obj: &Value, _old: &Value) -> Vec<FieldError> {
        let rc = match typed::decode::<ReplicationController>(obj) {
            Ok(r) => r,
            Err(e) => return vec![e],
        };
        let status = rc.status.unwrap_or_default();
        let replicas = status.replicas;
        let fully = status.fully_labeled_replicas.unwrap_or(0);
        let ready = status.ready_replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        let mut errs = Vec::new();
        for (name, value) in [
            ("replicas", i64::from(replicas)),
            ("fullyLabeledReplicas", i64::from(fully)),
            ("readyReplicas", i64::from(ready)),
            ("availableReplicas", i64::from(available)),
            (
                "observedGeneration",
                status.observed_generation.unwrap_or(0),
            ),
        ] {
            errs.extend(field::nonnegative(&format!("status.{name}"), value));
        }
        for (name, value) in [
            ("fullyLabeledReplicas", fully),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ] {
            if value > replicas {
                errs.push(FieldError::invalid(
                    format!("status.{name}"),
                    value.to_string(),
                    "cannot be greater than status.replicas",
                ));
            }
        }
        if available > ready {
            errs.push(FieldError::invalid(
                "status.availableReplicas",
                available.to_string(),
                "cannot be greater than readyReplicas",
            ));
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn has_status_subresource(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        let [containers, images] = container_columns();
        vec![
            table::name_column(),
            column(
                "Desired",
                "integer",
                "Replicas is the number of desired replicas.",
            ),
            column(
                "Current",
                "integer",
                "Replicas is the most recently observed number of replicas.",
            ),
            column(
                "Ready",
                "integer",
                "The number of ready replicas for this replication controller.",
            ),
            table::age_column(),
            containers,
            images,
            wide(
                "Selector",
                "string",
                "Selector is a label query over pods that should match the Replicas count.",
            ),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let rc = typed::decode::<ReplicationController>(obj).unwrap_or_default();
        let spec = rc.spec.unwrap_or_default();
        let status = rc.status.unwrap_or_default();
        let (names, images) = container_cells(spec.template.as_ref().and_then(|t| t.spec.as_ref()));
        vec![
            table::name(obj),
            json!(spec.replicas.unwrap_or(0)),
            json!(status.replicas),
            json!(status.ready_replicas.unwrap_or(0)),
            table::age(obj, now),
            cell(names),
            cell(images),
            cell(format_labels(spec.selector.as_ref())),
        ]
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        let replicas = typed::at(obj, "status.replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        vec![("status.replicas".into(), replicas.to_string())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc() -> Value {
        json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
    }

    #[test]
    fn replication_controllers_default_from_their_template() {
        let mut obj = rc();
        ReplicationControllerStrategy.default(&mut obj);
        ReplicationControllerStrategy.prepare_create(&mut obj);
        assert_eq!(obj["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(obj["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(
            obj["spec"]["template"]["metadata"]["creationTimestamp"],
            Value::Null
        );
        assert_eq!(obj["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(obj["status"], json!({"replicas": 0}));
        assert!(
            ReplicationControllerStrategy
                .validate(&obj, None)
                .is_empty()
        );
        assert_eq!(
            ReplicationControllerStrategy.row(&obj, 0)[1..],
            [
                json!(1),
                json!(0),
                json!(0),
                json!("<unknown>"),
                json!("web"),
                json!("nginx:1.27"),
                json!("app=web"),
            ]
        );
        assert_eq!(
            ReplicationControllerStrategy.selectable_fields(&obj),
            [("status.replicas".into(), "0".into())]
        );
    }

    #[test]
    fn selector_must_match_the_template() {
        let mut obj = rc();
        obj["spec"]["selector"] = json!({"app": "other"});
        obj["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        ReplicationControllerStrategy.default(&mut obj);
        let got: Vec<String> = ReplicationControllerStrategy
            .validate(&obj, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ]
        );
    }

    #[test]
    fn pod_templates() {
        let mut obj = json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}});
        PodTemplateStrategy.default(&mut obj);
        assert!(PodTemplateStrategy.validate(&obj, None).is_empty());
        assert_eq!(
            PodTemplateStrategy.row(&obj, 0),
            [json!("t"), json!("a,b"), json!("x,y"), json!("a=b")]
        );
        let bad = json!({"metadata": {"name": "t"}, "template": {"spec": {"containers": []}}});
        let mut bad = bad;
        PodTemplateStrategy.default(&mut bad);
        assert_eq!(
            PodTemplateStrategy.validate(&bad, None)[0].to_string(),
            "template.spec.containers: Required value"
        );
    }
}
