//! The OpenAPI documents: `/openapi/v2` (Swagger 2.0) and `/openapi/v3/...`
//! (OpenAPI 3.0, one document per group/version), as Kubernetes serves them.
//!
//! The schemas come from k8s-openapi's schemars implementations, generated
//! with OpenAPI 3 settings, then completed with what k8s-openapi leaves out:
//! the patch and list extensions of [`crate::overlay`], the `<Kind>List`
//! definitions, and `x-kubernetes-group-version-kind`. The same
//! [`SchemaSet`] feeds the `schema` crate's validation and pruning, and
//! strategic merge patch.

use std::sync::OnceLock;

use schema::SchemaSet;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

use crate::overlay;

/// A schema generator for one type, registering it (and everything it
/// refers to) among the generator's definitions.
type Register = fn(&mut SchemaGenerator) -> Schema;

fn register<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A top-level kind whose definition the documents carry.
struct Root {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    register: Register,
    /// Whether Kubernetes also has a `<Kind>List` definition for it.
    listed: bool,
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    register: Register,
) -> Root {
    Root {
        group,
        version,
        kind,
        register,
        listed: true,
    }
}

/// A kind that is only ever sent in a request or answer (reviews, Scale,
/// Eviction, Binding), so Kubernetes has no list of it.
const fn unlisted(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    register: Register,
) -> Root {
    Root {
        listed: false,
        ..self::kind(group, version, kind, register)
    }
}

/// Every kind whose schema the documents carry: what the catalogue serves,
/// the kinds its subresources take, and the other kinds of the groups it
/// serves, so that a resource added to the catalogue finds its schema here.
const ROOTS: &[Root] = &[
    // core/v1
    kind("", "v1", "Pod", register::<api::core::v1::Pod>),
    kind("", "v1", "Service", register::<api::core::v1::Service>),
    kind("", "v1", "Endpoints", register::<api::core::v1::Endpoints>),
    kind("", "v1", "ConfigMap", register::<api::core::v1::ConfigMap>),
    kind("", "v1", "Secret", register::<api::core::v1::Secret>),
    kind(
        "",
        "v1",
        "ServiceAccount",
        register::<api::core::v1::ServiceAccount>,
    ),
    kind("", "v1", "Node", register::<api::core::v1::Node>),
    kind("", "v1", "Namespace", register::<api::core::v1::Namespace>),
    kind("", "v1", "Event", register::<api::core::v1::Event>),
    kind(
        "",
        "v1",
        "LimitRange",
        register::<api::core::v1::LimitRange>,
    ),
    kind(
        "",
        "v1",
        "ResourceQuota",
        register::<api::core::v1::ResourceQuota>,
    ),
    kind(
        "",
        "v1",
        "PersistentVolume",
        register::<api::core::v1::PersistentVolume>,
    ),
    kind(
        "",
        "v1",
        "PersistentVolumeClaim",
        register::<api::core::v1::PersistentVolumeClaim>,
    ),
    kind(
        "",
        "v1",
        "ReplicationController",
        register::<api::core::v1::ReplicationController>,
    ),
    kind(
        "",
        "v1",
        "PodTemplate",
        register::<api::core::v1::PodTemplate>,
    ),
    kind(
        "",
        "v1",
        "ComponentStatus",
        register::<api::core::v1::ComponentStatus>,
    ),
    unlisted("", "v1", "Binding", register::<api::core::v1::Binding>),
    // apps/v1
    kind(
        "apps",
        "v1",
        "Deployment",
        register::<api::apps::v1::Deployment>,
    ),
    kind(
        "apps",
        "v1",
        "ReplicaSet",
        register::<api::apps::v1::ReplicaSet>,
    ),
    kind(
        "apps",
        "v1",
        "StatefulSet",
        register::<api::apps::v1::StatefulSet>,
    ),
    kind(
        "apps",
        "v1",
        "DaemonSet",
        register::<api::apps::v1::DaemonSet>,
    ),
    kind(
        "apps",
        "v1",
        "ControllerRevision",
        register::<api::apps::v1::ControllerRevision>,
    ),
    // batch/v1
    kind("batch", "v1", "Job", register::<api::batch::v1::Job>),
    kind(
        "batch",
        "v1",
        "CronJob",
        register::<api::batch::v1::CronJob>,
    ),
    // autoscaling/v1 and v2
    kind(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        register::<api::autoscaling::v1::HorizontalPodAutoscaler>,
    ),
    unlisted(
        "autoscaling",
        "v1",
        "Scale",
        register::<api::autoscaling::v1::Scale>,
    ),
    kind(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        register::<api::autoscaling::v2::HorizontalPodAutoscaler>,
    ),
    // policy/v1
    kind(
        "policy",
        "v1",
        "PodDisruptionBudget",
        register::<api::policy::v1::PodDisruptionBudget>,
    ),
    unlisted(
        "policy",
        "v1",
        "Eviction",
        register::<api::policy::v1::Eviction>,
    ),
    // networking.k8s.io/v1
    kind(
        "networking.k8s.io",
        "v1",
        "Ingress",
        register::<api::networking::v1::Ingress>,
    ),
    kind(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        register::<api::networking::v1::IngressClass>,
    ),
    kind(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        register::<api::networking::v1::NetworkPolicy>,
    ),
    // discovery.k8s.io/v1
    kind(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        register::<api::discovery::v1::EndpointSlice>,
    ),
    // events.k8s.io/v1
    kind(
        "events.k8s.io",
        "v1",
        "Event",
        register::<api::events::v1::Event>,
    ),
    // storage.k8s.io/v1
    kind(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        register::<api::storage::v1::StorageClass>,
    ),
    kind(
        "storage.k8s.io",
        "v1",
        "CSIDriver",
        register::<api::storage::v1::CSIDriver>,
    ),
    kind(
        "storage.k8s.io",
        "v1",
        "CSINode",
        register::<api::storage::v1::CSINode>,
    ),
    kind(
        "storage.k8s.io",
        "v1",
        "CSIStorageCapacity",
        register::<api::storage::v1::CSIStorageCapacity>,
    ),
    kind(
        "storage.k8s.io",
        "v1",
        "VolumeAttachment",
        register::<api::storage::v1::VolumeAttachment>,
    ),
    // coordination.k8s.io/v1
    kind(
        "coordination.k8s.io",
        "v1",
        "Lease",
        register::<api::coordination::v1::Lease>,
    ),
    // scheduling.k8s.io/v1
    kind(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        register::<api::scheduling::v1::PriorityClass>,
    ),
    // node.k8s.io/v1
    kind(
        "node.k8s.io",
        "v1",
        "RuntimeClass",
        register::<api::node::v1::RuntimeClass>,
    ),
    // rbac.authorization.k8s.io/v1
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        register::<api::rbac::v1::Role>,
    ),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        register::<api::rbac::v1::RoleBinding>,
    ),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        register::<api::rbac::v1::ClusterRole>,
    ),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        register::<api::rbac::v1::ClusterRoleBinding>,
    ),
    // certificates.k8s.io/v1
    kind(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        register::<api::certificates::v1::CertificateSigningRequest>,
    ),
    // admissionregistration.k8s.io/v1
    kind(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        register::<api::admissionregistration::v1::MutatingWebhookConfiguration>,
    ),
    kind(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        register::<api::admissionregistration::v1::ValidatingWebhookConfiguration>,
    ),
    kind(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        register::<api::admissionregistration::v1::ValidatingAdmissionPolicy>,
    ),
    kind(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        register::<api::admissionregistration::v1::ValidatingAdmissionPolicyBinding>,
    ),
    // flowcontrol.apiserver.k8s.io/v1
    kind(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "FlowSchema",
        register::<api::flowcontrol::v1::FlowSchema>,
    ),
    kind(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "PriorityLevelConfiguration",
        register::<api::flowcontrol::v1::PriorityLevelConfiguration>,
    ),
    // authentication.k8s.io/v1 and authorization.k8s.io/v1: requests
    // answered on the spot, never stored or listed.
    unlisted(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        register::<api::authentication::v1::TokenReview>,
    ),
    unlisted(
        "authentication.k8s.io",
        "v1",
        "TokenRequest",
        register::<api::authentication::v1::TokenRequest>,
    ),
    unlisted(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        register::<api::authentication::v1::SelfSubjectReview>,
    ),
    unlisted(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        register::<api::authorization::v1::SubjectAccessReview>,
    ),
    unlisted(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        register::<api::authorization::v1::SelfSubjectAccessReview>,
    ),
    unlisted(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        register::<api::authorization::v1::LocalSubjectAccessReview>,
    ),
    unlisted(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        register::<api::authorization::v1::SelfSubjectRulesReview>,
    ),
    // apiextensions.k8s.io/v1
    kind(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        register::<apiextensions::CustomResourceDefinition>,
    ),
];

/// Meta types every document may refer to, registered whatever the roots.
const META: &[Register] = &[
    register::<meta::ObjectMeta>,
    register::<meta::ListMeta>,
    register::<meta::Status>,
    register::<meta::DeleteOptions>,
    register::<meta::WatchEvent<()>>,
    register::<meta::Patch>,
    register::<meta::APIResourceList>,
    register::<meta::APIGroup>,
    register::<meta::APIGroupList>,
    register::<meta::APIVersions>,
];

/// The group/versions Kubernetes 1.32 registers its shared option and meta
/// kinds in (`DeleteOptions`, `WatchEvent`): they carry one
/// `x-kubernetes-group-version-kind` entry for each, as Kubernetes' do.
const SHARED_KIND_GROUP_VERSIONS: &[(&str, &str)] = &[
    ("", "v1"),
    ("admission.k8s.io", "v1"),
    ("admission.k8s.io", "v1beta1"),
    ("admissionregistration.k8s.io", "v1"),
    ("admissionregistration.k8s.io", "v1alpha1"),
    ("admissionregistration.k8s.io", "v1beta1"),
    ("apiextensions.k8s.io", "v1"),
    ("apiextensions.k8s.io", "v1beta1"),
    ("apiregistration.k8s.io", "v1"),
    ("apiregistration.k8s.io", "v1beta1"),
    ("apps", "v1"),
    ("apps", "v1beta1"),
    ("apps", "v1beta2"),
    ("authentication.k8s.io", "v1"),
    ("authentication.k8s.io", "v1alpha1"),
    ("authentication.k8s.io", "v1beta1"),
    ("authorization.k8s.io", "v1"),
    ("authorization.k8s.io", "v1beta1"),
    ("autoscaling", "v1"),
    ("autoscaling", "v2"),
    ("autoscaling", "v2beta1"),
    ("autoscaling", "v2beta2"),
    ("batch", "v1"),
    ("batch", "v1beta1"),
    ("certificates.k8s.io", "v1"),
    ("certificates.k8s.io", "v1alpha1"),
    ("certificates.k8s.io", "v1beta1"),
    ("coordination.k8s.io", "v1"),
    ("coordination.k8s.io", "v1alpha2"),
    ("coordination.k8s.io", "v1beta1"),
    ("discovery.k8s.io", "v1"),
    ("discovery.k8s.io", "v1beta1"),
    ("events.k8s.io", "v1"),
    ("events.k8s.io", "v1beta1"),
    ("extensions", "v1beta1"),
    ("flowcontrol.apiserver.k8s.io", "v1"),
    ("flowcontrol.apiserver.k8s.io", "v1beta1"),
    ("flowcontrol.apiserver.k8s.io", "v1beta2"),
    ("flowcontrol.apiserver.k8s.io", "v1beta3"),
    ("imagepolicy.k8s.io", "v1alpha1"),
    ("internal.apiserver.k8s.io", "v1alpha1"),
    ("networking.k8s.io", "v1"),
    ("networking.k8s.io", "v1alpha1"),
    ("networking.k8s.io", "v1beta1"),
    ("node.k8s.io", "v1"),
    ("node.k8s.io", "v1alpha1"),
    ("node.k8s.io", "v1beta1"),
    ("policy", "v1"),
    ("policy", "v1beta1"),
    ("rbac.authorization.k8s.io", "v1"),
    ("rbac.authorization.k8s.io", "v1alpha1"),
    ("rbac.authorization.k8s.io", "v1beta1"),
    ("resource.k8s.io", "v1alpha3"),
    ("resource.k8s.io", "v1beta1"),
    ("scheduling.k8s.io", "v1"),
    ("scheduling.k8s.io", "v1alpha1"),
    ("scheduling.k8s.io", "v1beta1"),
    ("storage.k8s.io", "v1"),
    ("storage.k8s.io", "v1alpha1"),
    ("storage.k8s.io", "v1beta1"),
    ("storagemigration.k8s.io", "v1alpha1"),
];

/// Every definition the documents may refer to, with Kubernetes' extensions.
/// Generated once per process (about the cost measured in this module's
/// tests) and shared.
pub fn definitions() -> &'static SchemaSet {
    static DEFINITIONS: OnceLock<SchemaSet> = OnceLock::new();
    DEFINITIONS.get_or_init(build_definitions)
}

fn build_definitions() -> SchemaSet {
    // OpenAPI 3 settings: references as `#/components/schemas/<name>`, and
    // a reference with a description beside it wrapped in a one-element
    // `allOf`, as Kubernetes' own v3 builder does.
    let mut generator = SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator();
    for root in ROOTS {
        (root.register)(&mut generator);
    }
    for register in META {
        register(&mut generator);
    }
    let mut defs: Map<String, Value> = generator.take_definitions(true);
    for root in ROOTS.iter().filter(|r| r.listed) {
        let name = crate::catalog::schema_name(root.group, root.version, root.kind);
        defs.insert(format!("{name}List"), list_definition(&name, root.kind));
    }
    normalize_free_form(&mut defs);
    overlay::apply(&mut defs);
    add_group_version_kinds(&mut defs);
    let mut set = SchemaSet::new();
    for (name, schema) in defs {
        set.insert(name, schema);
    }
    set
}

/// `<Kind>List`, which k8s-openapi models as a generic `List<T>` without a
/// schema: `items` of the kind, list metadata, and `items` required.
fn list_definition(item: &str, kind: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": API_VERSION_DESCRIPTION,
                "type": "string"
            },
            "items": {
                "description": format!("Items is a list of {kind} objects."),
                "type": "array",
                "items": {"$ref": format!("#/components/schemas/{item}")}
            },
            "kind": {
                "description": KIND_DESCRIPTION,
                "type": "string"
            },
            "metadata": {
                "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}],
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
            }
        },
        "required": ["items"]
    })
}

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// Kubernetes describes the values of a CRD schema's `default`, `enum` and
/// `example` (`JSON`) and the either-or fields of `JSONSchemaProps` with a
/// description only, which reads as "any value"; k8s-openapi gives them a
/// type or a `oneOf`, which would make strict field validation of a
/// CustomResourceDefinition reject valid schemas.
fn normalize_free_form(defs: &mut Map<String, Value>) {
    const PREFIX: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.";
    for short in [
        "JSON",
        "JSONSchemaPropsOrArray",
        "JSONSchemaPropsOrBool",
        "JSONSchemaPropsOrStringArray",
    ] {
        if let Some(Value::Object(def)) = defs.get_mut(&format!("{PREFIX}{short}")) {
            def.retain(|key, _| key == "description");
        }
    }
}

/// Marks every top-level kind with the group/version/kinds it is served as.
fn add_group_version_kinds(defs: &mut Map<String, Value>) {
    let mut gvks: Vec<(String, Value)> = Vec::new();
    for root in ROOTS {
        let name = crate::catalog::schema_name(root.group, root.version, root.kind);
        gvks.push((
            name.clone(),
            json!([gvk(root.group, root.version, root.kind)]),
        ));
        if root.listed {
            let list_kind = format!("{}List", root.kind);
            gvks.push((
                format!("{name}List"),
                json!([gvk(root.group, root.version, &list_kind)]),
            ));
        }
    }
    for kind in ["DeleteOptions", "WatchEvent"] {
        let all: Vec<Value> = SHARED_KIND_GROUP_VERSIONS
            .iter()
            .map(|(g, v)| gvk(g, v, kind))
            .collect();
        gvks.push((
            format!("io.k8s.apimachinery.pkg.apis.meta.v1.{kind}"),
            Value::Array(all),
        ));
    }
    for kind in [
        "Status",
        "APIResourceList",
        "APIGroup",
        "APIGroupList",
        "APIVersions",
    ] {
        gvks.push((
            format!("io.k8s.apimachinery.pkg.apis.meta.v1.{kind}"),
            json!([gvk("", "v1", kind)]),
        ));
    }
    for (name, list) in gvks {
        if let Some(Value::Object(def)) = defs.get_mut(&name) {
            def.insert("x-kubernetes-group-version-kind".into(), list);
        }
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn generation_cost() {
        let start = Instant::now();
        let set = build_definitions();
        let elapsed = start.elapsed();
        println!("{} definitions in {:?}", set.len(), elapsed);
        for (name, _) in set.definitions() {
            println!("DEF {name}");
        }
    }
}
