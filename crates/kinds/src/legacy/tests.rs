//! Old-style manifests, as course material writes them, through conversion
//! and the storage version's strategy, and back.

use serde_json::{Value, json};

use super::*;
use crate::apps::tests::create;

fn def(group: &str, version: &str, plural: &str) -> ResourceDef {
    resources()
        .into_iter()
        .find(|d| d.group == group && d.version == version && d.plural == plural)
        .expect("served")
}

/// The engine's create path for a legacy version: convert, then the
/// storage version's strategy.
fn create_legacy(d: &ResourceDef, obj: Value) -> (Value, Vec<String>) {
    let conversion = d.conversion.as_ref().expect("converted");
    let stored = conversion.to_storage(obj).expect("converts");
    create(d.strategy.as_ref(), stored)
}

#[test]
fn catalogue_entries() {
    let d = def("extensions", "v1beta1", "deployments");
    assert_eq!(d.storage.group, "apps");
    assert_eq!(d.storage.version, "v1");
    assert_eq!(d.storage.resource, "deployments");
    assert!(d.preferred, "extensions has no newer version of its own");
    assert_eq!(d.schema, None);
    assert!(d.subresource("scale").is_some());
    let beta2 = def("apps", "v1beta2", "deployments");
    assert!(!beta2.preferred);
    let ing = def("extensions", "v1beta1", "ingresses");
    assert_eq!(ing.storage.group, "networking.k8s.io");
    // extensions shares names with current groups: no short names, no
    // categories, so kubectl neither warns nor lists things twice.
    assert!(ing.short_names.is_empty());
    assert!(d.categories.is_empty());
    assert_eq!(beta2.short_names, ["deploy"]);
    assert_eq!(resources().len(), 13);
}

#[test]
fn extensions_deployment_without_selector() {
    let d = def("extensions", "v1beta1", "deployments");
    let manifest = json!({
        "apiVersion": "extensions/v1beta1", "kind": "Deployment",
        "metadata": {"name": "nginx-deployment"},
        "spec": {
            "replicas": 3,
            "rollbackTo": {"revision": 1},
            "template": {"metadata": {"labels": {"app": "nginx"}},
                         "spec": {"containers": [{"name": "nginx", "image": "nginx:1.7.9", "ports": [{"containerPort": 80}]}]}}
        }
    });
    let (stored, errs) = create_legacy(&d, manifest);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(stored["apiVersion"], "apps/v1");
    assert_eq!(stored["metadata"]["labels"], json!({"app": "nginx"}));
    let spec = &stored["spec"];
    assert_eq!(spec["selector"], json!({"matchLabels": {"app": "nginx"}}));
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 2147483647);
    assert_eq!(spec["progressDeadlineSeconds"], 2147483647);
    assert!(spec.get("rollbackTo").is_none());

    let conversion = d.conversion.as_ref().unwrap();
    let served = conversion.from_storage(stored.clone());
    assert_eq!(served["apiVersion"], "extensions/v1beta1");
    assert_eq!(conversion.to_storage(served).unwrap(), stored);
}

#[test]
fn apps_v1beta2_deployment_from_course_material() {
    // As written in the seed documents: no selector.
    let d = def("apps", "v1beta2", "deployments");
    let manifest = json!({
        "apiVersion": "apps/v1beta2", "kind": "Deployment",
        "metadata": {"labels": {"app": "webapp", "role": "frontend"}, "name": "web-frontend"},
        "spec": {"replicas": 3, "template": {
            "metadata": {"labels": {"app": "webapp", "role": "frontend"}},
            "spec": {"containers": [{"image": "nginx:1.13.1", "name": "nginx",
                                     "ports": [{"containerPort": 443, "name": "https"}]}]}
        }}
    });
    let (stored, errs) = create_legacy(&d, manifest);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        stored["spec"]["selector"]["matchLabels"],
        json!({"app": "webapp", "role": "frontend"})
    );
    assert_eq!(
        stored["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );
}

#[test]
fn apps_v1beta1_stateful_set() {
    let d = def("apps", "v1beta1", "statefulsets");
    let manifest = json!({
        "apiVersion": "apps/v1beta1", "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "nginx", "replicas": 2,
            "template": {"metadata": {"labels": {"app": "nginx"}},
                         "spec": {"containers": [{"name": "nginx", "image": "k8s.gcr.io/nginx-slim:0.8",
                             "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    });
    let (stored, errs) = create_legacy(&d, manifest);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(stored["apiVersion"], "apps/v1");
    assert_eq!(
        stored["spec"]["selector"],
        json!({"matchLabels": {"app": "nginx"}})
    );
    assert_eq!(
        stored["spec"]["updateStrategy"],
        json!({"type": "OnDelete"})
    );
    assert_eq!(stored["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(stored["spec"]["revisionHistoryLimit"], 10);
    let conversion = d.conversion.as_ref().unwrap();
    let served = conversion.from_storage(stored.clone());
    assert_eq!(served["apiVersion"], "apps/v1beta1");
    assert_eq!(conversion.to_storage(served).unwrap(), stored);
}

#[test]
fn apps_v1beta1_deployment_keeps_two_revisions() {
    let d = def("apps", "v1beta1", "deployments");
    let manifest = json!({"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}});
    let (stored, errs) = create_legacy(&d, manifest);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(stored["spec"]["revisionHistoryLimit"], 2);
    assert_eq!(stored["spec"]["progressDeadlineSeconds"], 600);
}

#[test]
fn extensions_ingress_with_service_name_and_port() {
    let d = def("extensions", "v1beta1", "ingresses");
    let manifest = json!({
        "apiVersion": "extensions/v1beta1", "kind": "Ingress",
        "metadata": {"name": "test-ingress", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {
            "backend": {"serviceName": "default-http-backend", "servicePort": 80},
            "rules": [{"host": "foo.bar.com", "http": {"paths": [
                {"path": "/foo", "backend": {"serviceName": "s1", "servicePort": "http"}}
            ]}}]
        }
    });
    let (stored, errs) = create_legacy(&d, manifest);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(stored["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        stored["spec"]["defaultBackend"],
        json!({"service": {"name": "default-http-backend", "port": {"number": 80}}})
    );
    let path = &stored["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["pathType"], "ImplementationSpecific");
    assert_eq!(
        path["backend"],
        json!({"service": {"name": "s1", "port": {"name": "http"}}})
    );
    // Kubernetes never turned the class annotation into ingressClassName.
    assert!(stored["spec"].get("ingressClassName").is_none());

    let conversion = d.conversion.as_ref().unwrap();
    let served = conversion.from_storage(stored.clone());
    assert_eq!(
        served["spec"]["backend"],
        json!({"serviceName": "default-http-backend", "servicePort": 80})
    );
    assert_eq!(
        served["spec"]["rules"][0]["http"]["paths"][0]["backend"],
        json!({"serviceName": "s1", "servicePort": "http"})
    );
    assert_eq!(conversion.to_storage(served).unwrap(), stored);

    let bad = json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "x"},
        "spec": {"backend": {"serviceName": "s", "servicePort": true}}});
    let err = conversion.to_storage(bad).unwrap_err();
    assert_eq!(err.field, "spec.backend.servicePort");
    assert_eq!(err.kind, FieldErrorKind::TypeInvalid);
}

#[test]
fn extensions_daemon_set_template_generation() {
    let d = def("extensions", "v1beta1", "daemonsets");
    let manifest = json!({
        "apiVersion": "extensions/v1beta1", "kind": "DaemonSet",
        "metadata": {"name": "fluentd"},
        "spec": {"templateGeneration": 3, "template": {"metadata": {"labels": {"name": "fluentd"}},
                 "spec": {"containers": [{"name": "fluentd", "image": "fluentd:v1"}]}}}
    });
    let (stored, errs) = create_legacy(&d, manifest);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        stored["spec"]["updateStrategy"],
        json!({"type": "OnDelete"})
    );
    assert_eq!(stored["metadata"]["annotations"][TEMPLATE_GENERATION], "3");
    assert!(stored["spec"].get("templateGeneration").is_none());
    let served = d.conversion.as_ref().unwrap().from_storage(stored);
    assert_eq!(served["spec"]["templateGeneration"], 3);
    assert!(served["metadata"].get("annotations").is_none());
}

#[test]
fn extensions_network_policy() {
    let d = def("extensions", "v1beta1", "networkpolicies");
    let manifest = json!({"apiVersion": "extensions/v1beta1", "kind": "NetworkPolicy", "metadata": {"name": "deny"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}});
    let (stored, errs) = create_legacy(&d, manifest);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(stored["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(stored["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(stored["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
}

#[test]
fn every_converted_version_lands_on_a_served_storage_version() {
    let groups: [fn() -> Vec<ResourceDef>; 11] = [
        crate::apps::resources,
        crate::batch::resources,
        crate::autoscaling::resources,
        crate::policy::resources,
        crate::networking::resources,
        crate::storage::resources,
        crate::coordination::resources,
        crate::scheduling::resources,
        crate::rbac::resources,
        crate::apiextensions::resources,
        resources,
    ];
    let all: Vec<ResourceDef> = groups.iter().flat_map(|g| g()).collect();
    let mut seen = std::collections::HashSet::new();
    for d in &all {
        assert!(
            seen.insert((d.group.clone(), d.version.clone(), d.plural.clone())),
            "{d:?} twice"
        );
        if d.conversion.is_some() {
            assert!(
                all.iter().any(|s| s.conversion.is_none()
                    && s.group == d.storage.group
                    && s.version == d.storage.version
                    && s.plural == d.storage.resource
                    && s.kind == d.kind),
                "{d:?} has no storage version"
            );
        } else {
            assert_eq!(
                (&d.storage.group, &d.storage.version),
                (&d.group, &d.version),
                "{d:?}"
            );
        }
    }
}
