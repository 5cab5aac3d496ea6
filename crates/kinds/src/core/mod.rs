//! The core group (`/api/v1`): Pods, Services, Endpoints, ConfigMaps,
//! Secrets, ServiceAccounts, Nodes, Namespaces, Events (also served as
//! events.k8s.io/v1), LimitRanges, ResourceQuotas, PersistentVolumes,
//! PersistentVolumeClaims, PodTemplates, ReplicationControllers; plus
//! discovery.k8s.io EndpointSlices.
//!
//! Each kind's module holds its strategy: Kubernetes' v1 defaults, what its
//! registry strategy resets on create and update, its validation (field
//! paths and messages as Kubernetes words them), its `kubectl get` columns
//! and its field selectors. `podspec` defaults and validates pod specs and
//! pod templates for every kind that holds one (the apps and batch
//! workloads too), `field` holds the small validators every kind uses,
//! `quantity` resource quantities.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::ResourceDef;
use crate::catalog::resource;

mod config;
mod endpoints;
mod event;
pub(crate) mod field;
mod namespace;
mod node;
mod pod;
pub(crate) mod podspec;
pub(crate) mod quantity;
mod quota;
mod replication;
mod service;
mod serviceaccount;
mod volume;

/// The verbs `kubectl` may use on connect subresources (`exec`, `attach`,
/// `portforward`), as Kubernetes advertises them.
const CONNECT: &[&str] = &["create", "get"];

/// The verbs of proxy subresources.
const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];

/// The core group's resources (and EndpointSlices and events.k8s.io Events).
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource("", "v1", "Pod", "pods", Arc::new(pod::PodStrategy))
            .short_names(&["po"])
            .categories(&["all"])
            .status()
            .subresource("binding", "", "v1", "Binding", &["create"])
            .subresource("eviction", "policy", "v1", "Eviction", &["create"])
            .subresource("log", "", "v1", "Pod", &["get"])
            .subresource("exec", "", "v1", "PodExecOptions", CONNECT)
            .subresource("attach", "", "v1", "PodAttachOptions", CONNECT)
            .subresource("portforward", "", "v1", "PodPortForwardOptions", CONNECT)
            .subresource(
                "ephemeralcontainers",
                "",
                "v1",
                "Pod",
                &["get", "patch", "update"],
            )
            .build(),
        resource(
            "",
            "v1",
            "Service",
            "services",
            Arc::new(service::ServiceStrategy),
        )
        .short_names(&["svc"])
        .categories(&["all"])
        .status()
        .subresource("proxy", "", "v1", "ServiceProxyOptions", PROXY)
        .build(),
        resource(
            "",
            "v1",
            "Endpoints",
            "endpoints",
            Arc::new(endpoints::EndpointsStrategy),
        )
        .short_names(&["ep"])
        .build(),
        resource(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            Arc::new(config::ConfigMapStrategy),
        )
        .short_names(&["cm"])
        .build(),
        resource(
            "",
            "v1",
            "Secret",
            "secrets",
            Arc::new(config::SecretStrategy),
        )
        .build(),
        resource(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            Arc::new(serviceaccount::ServiceAccountStrategy),
        )
        .short_names(&["sa"])
        .subresource(
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            &["create"],
        )
        .build(),
        resource("", "v1", "Node", "nodes", Arc::new(node::NodeStrategy))
            .short_names(&["no"])
            .cluster_scoped()
            .status()
            .subresource("proxy", "", "v1", "NodeProxyOptions", PROXY)
            .build(),
        resource(
            "",
            "v1",
            "Namespace",
            "namespaces",
            Arc::new(namespace::NamespaceStrategy),
        )
        .short_names(&["ns"])
        .cluster_scoped()
        .verbs(&[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ])
        .status()
        .subresource("finalize", "", "v1", "Namespace", &["update"])
        .build(),
        resource("", "v1", "Event", "events", Arc::new(event::EventStrategy))
            .short_names(&["ev"])
            .build(),
        resource(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            Arc::new(event::EventsV1Strategy),
        )
        .short_names(&["ev"])
        .stored_as("", "events", "v1", Arc::new(event::EventsV1Conversion))
        .build(),
        resource(
            "",
            "v1",
            "LimitRange",
            "limitranges",
            Arc::new(quota::LimitRangeStrategy),
        )
        .short_names(&["limits"])
        .build(),
        resource(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            Arc::new(quota::ResourceQuotaStrategy),
        )
        .short_names(&["quota"])
        .status()
        .build(),
        resource(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            Arc::new(volume::PersistentVolumeStrategy),
        )
        .short_names(&["pv"])
        .cluster_scoped()
        .status()
        .build(),
        resource(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            Arc::new(volume::PersistentVolumeClaimStrategy),
        )
        .short_names(&["pvc"])
        .status()
        .build(),
        resource(
            "",
            "v1",
            "PodTemplate",
            "podtemplates",
            Arc::new(replication::PodTemplateStrategy),
        )
        .build(),
        resource(
            "",
            "v1",
            "ReplicationController",
            "replicationcontrollers",
            Arc::new(replication::ReplicationControllerStrategy),
        )
        .short_names(&["rc"])
        .categories(&["all"])
        .status()
        .scale()
        .build(),
        resource(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            Arc::new(endpoints::EndpointSliceStrategy),
        )
        .build(),
    ]
}

/// Labels as `kubectl` prints them in cells: `a=b,c=d` in key order, or
/// `<none>`.
pub(crate) fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    crate::table::join_or_none(
        labels
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}")),
    )
}

/// A JSON string cell.
pub(crate) fn cell(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_is_described_once() {
        let defs = resources();
        let mut seen = std::collections::BTreeSet::new();
        for def in &defs {
            assert!(
                seen.insert((def.group_version(), def.plural.clone())),
                "{def:?} twice"
            );
            assert!(!def.strategy.columns().is_empty(), "{def:?} has no columns");
        }
        let events = defs
            .iter()
            .find(|d| d.group == "events.k8s.io")
            .expect("events.k8s.io");
        assert_eq!(events.storage.group, "");
        assert_eq!(events.storage.resource, "events");
        assert!(events.conversion.is_some());
        let pods = defs.iter().find(|d| d.plural == "pods").expect("pods");
        assert_eq!(
            pods.subresource("exec").map(|s| s.verbs.clone()),
            Some(vec!["create".to_owned(), "get".to_owned()])
        );
        let ns = defs.iter().find(|d| d.plural == "namespaces").expect("ns");
        assert!(!ns.namespaced);
        assert_eq!(ns.strategy.name_rule(), crate::NameRule::DnsLabel);
    }

    #[test]
    fn labels_print_sorted() {
        let labels = BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]);
        assert_eq!(format_labels(Some(&labels)), "a=1,b=2");
        assert_eq!(format_labels(None), "<none>");
    }
}
