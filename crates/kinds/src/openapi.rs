//! The OpenAPI documents: `/openapi/v2` (Swagger 2.0) and `/openapi/v3/...`
//! (OpenAPI 3.0, one document per group/version), as Kubernetes serves them.
//!
//! The schemas come from k8s-openapi's schemars implementations, generated
//! with OpenAPI 3 settings, then completed with what k8s-openapi leaves out:
//! the patch and list extensions of [`crate::overlay`], the `<Kind>List`
//! definitions, and `x-kubernetes-group-version-kind`. The same
//! [`SchemaSet`] feeds the `schema` crate's validation and pruning, and
//! strategic merge patch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use schema::SchemaSet;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

use crate::overlay;
use crate::{ResourceDef, Subresource};

/// Registers one type (and everything it refers to) among a generator's
/// definitions, and answers the type's definition name.
type Register = fn(&mut SchemaGenerator) -> String;

fn register<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
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
    // The definition names come from the types themselves: Kubernetes'
    // package names do not always follow from the group's
    // (flowcontrol.apiserver.k8s.io is `io.k8s.api.flowcontrol`).
    let roots: Vec<(&Root, String)> = ROOTS
        .iter()
        .map(|root| (root, (root.register)(&mut generator)))
        .collect();
    for register in META {
        register(&mut generator);
    }
    let mut defs: Map<String, Value> = generator.take_definitions(true);
    for (root, name) in roots.iter().filter(|(r, _)| r.listed) {
        defs.insert(format!("{name}List"), list_definition(name, root.kind));
    }
    normalize_free_form(&mut defs);
    overlay::apply(&mut defs);
    add_group_version_kinds(&mut defs, &roots);
    let mut set = SchemaSet::new();
    for (name, schema) in defs {
        set.insert(name, schema);
    }
    set
}

/// `<Kind>List`, which k8s-openapi models as a generic `List<T>` without a
/// schema: `items` of the kind, list metadata, and `items` required.
pub(crate) fn list_definition(item: &str, kind: &str) -> Value {
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
fn add_group_version_kinds(defs: &mut Map<String, Value>, roots: &[(&Root, String)]) {
    let mut gvks: Vec<(String, Value)> = Vec::new();
    for (root, name) in roots {
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

pub(crate) fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

// ---------------------------------------------------------------------------
// The documents.
//
// Paths are first described in a neutral form (`PathItem`, `Operation`),
// then written out as OpenAPI 3.0 or Swagger 2.0: the two documents differ
// only in layout, never in content.

/// The media types a write of a built-in kind may be patched with.
const PATCH_TYPES: [&str; 4] = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// Custom resources take no strategic merge patch: Kubernetes answers 415,
/// and kubectl decides between a strategic and a JSON merge patch by
/// whether the operation lists it.
const PATCH_TYPES_NO_SMP: [&str; 3] = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
];

/// Media types of ordinary answers.
const PRODUCES: [&str; 2] = ["application/json", "application/yaml"];

/// Media types of lists and watches.
const PRODUCES_STREAM: [&str; 3] = [
    "application/json",
    "application/yaml",
    "application/json;stream=watch",
];

/// One query, path or body parameter.
#[derive(Clone, Copy)]
struct Param {
    name: &'static str,
    location: Location,
    ty: &'static str,
    description: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Location {
    Query,
    Path,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: Location::Query,
        ty,
        description,
    }
}

const PRETTY: Param = query("pretty", "string", "If 'true', the output is indented.");
const DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, the request is checked but not persisted. The only valid value is All: every stage runs except storing.",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "The name of the actor making the change, recorded in managedFields; at most 128 printable characters. Required for apply patches.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "How the server treats unknown and duplicate fields in the request's object: Ignore drops them, Warn (the default) answers with a warning for each, Strict rejects the request.",
);
const FORCE: Param = query(
    "force",
    "boolean",
    "Makes an apply patch take over fields other managers own. Only for apply patches.",
);
const LIST_PARAMS: [Param; 10] = [
    query(
        "allowWatchBookmarks",
        "boolean",
        "Asks for BOOKMARK events in a watch; the server sends them at its own discretion.",
    ),
    query(
        "continue",
        "string",
        "The token from a previous page's list metadata, to read the next page of a list.",
    ),
    query(
        "fieldSelector",
        "string",
        "Restricts the result to objects whose fields match. Defaults to everything.",
    ),
    query(
        "labelSelector",
        "string",
        "Restricts the result to objects whose labels match. Defaults to everything.",
    ),
    query(
        "limit",
        "integer",
        "The most items to return in one page; the list metadata then carries a continue token when there are more.",
    ),
    query(
        "resourceVersion",
        "string",
        "Which resource versions the answer may come from; see the API concepts documentation. Defaults to unset.",
    ),
    query(
        "resourceVersionMatch",
        "string",
        "How resourceVersion applies to a list: Exact or NotOlderThan. Defaults to unset.",
    ),
    query(
        "sendInitialEvents",
        "boolean",
        "With watch, starts the stream with the current objects as ADDED events, ended by a bookmark.",
    ),
    query(
        "timeoutSeconds",
        "integer",
        "How long a list or watch call may last, whatever happens.",
    ),
    query(
        "watch",
        "boolean",
        "Streams additions, changes and deletions instead of listing. Give resourceVersion to start from.",
    ),
];
const DELETE_PARAMS: [Param; 5] = [
    query(
        "gracePeriodSeconds",
        "integer",
        "Seconds before the object is deleted; zero deletes at once. Defaults to the kind's own grace period.",
    ),
    query(
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "boolean",
        "Deletes an object that cannot be read from storage (corrupt or undecryptable). May break the cluster: use with care.",
    ),
    query(
        "orphanDependents",
        "boolean",
        "Deprecated in favour of propagationPolicy: whether dependents are orphaned.",
    ),
    query(
        "propagationPolicy",
        "string",
        "Whether and how dependents are garbage collected: Orphan, Background or Foreground.",
    ),
    DRY_RUN,
];
const LOG_PARAMS: [Param; 9] = [
    query(
        "container",
        "string",
        "The container to read from; may be left out when the pod has one.",
    ),
    query(
        "follow",
        "boolean",
        "Keeps the stream open as the log grows.",
    ),
    query(
        "insecureSkipTLSVerifyBackend",
        "boolean",
        "Does not verify the serving certificate of the node the log is read from.",
    ),
    query("limitBytes", "integer", "The most bytes of log to return."),
    query(
        "previous",
        "boolean",
        "Reads the log of the container's previous, terminated instance.",
    ),
    query(
        "sinceSeconds",
        "integer",
        "Only lines newer than this many seconds.",
    ),
    query(
        "sinceTime",
        "string",
        "Only lines newer than this RFC 3339 time.",
    ),
    query("tailLines", "integer", "Only this many lines from the end."),
    query(
        "timestamps",
        "boolean",
        "Starts every line with its RFC 3339 timestamp.",
    ),
];
const STREAM_PARAMS: [Param; 6] = [
    query(
        "command",
        "string",
        "The command to run, one argument per occurrence.",
    ),
    query("container", "string", "The container to run in."),
    query("stderr", "boolean", "Whether to stream standard error."),
    query("stdin", "boolean", "Whether to stream standard input."),
    query("stdout", "boolean", "Whether to stream standard output."),
    query("tty", "boolean", "Whether to allocate a terminal."),
];

/// What an operation takes or returns.
#[derive(Clone, PartialEq, Eq)]
enum Payload {
    /// A definition, or nothing known when the resource has no schema.
    Definition(Option<String>),
    /// Text, such as a log.
    Text,
}

struct Operation {
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    params: Vec<Param>,
    /// The request body and the media types it may come in.
    body: Option<(Payload, Vec<&'static str>)>,
    /// Status codes with their descriptions; all return `response`.
    codes: &'static [(&'static str, &'static str)],
    response: Payload,
    produces: &'static [&'static str],
    gvk: (String, String, String),
}

struct PathItem {
    params: Vec<Param>,
    operations: Vec<Operation>,
}

const OK: &[(&str, &str)] = &[("200", "OK")];
const CREATED: &[(&str, &str)] = &[("200", "OK"), ("201", "Created"), ("202", "Accepted")];
const REPLACED: &[(&str, &str)] = &[("200", "OK"), ("201", "Created")];
const DELETED: &[(&str, &str)] = &[("200", "OK"), ("202", "Accepted")];

/// `core` / `apps` / `rbacAuthorization`: how Kubernetes names a group in
/// tags; the operation ids use the same words capitalised.
fn group_words(group: &str) -> Vec<String> {
    if group.is_empty() {
        return vec!["core".into()];
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(str::to_owned)
        .collect()
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `CoreV1`, `AppsV1`, `RbacAuthorizationV1`: the middle of operation ids.
fn id_group_version(group: &str, version: &str) -> String {
    let mut out: String = group_words(group).iter().map(|w| capitalise(w)).collect();
    out.push_str(&capitalise(version));
    out
}

/// `core_v1`, `rbacAuthorization_v1`: the operation tag.
fn tag(group: &str, version: &str) -> String {
    let words = group_words(group);
    let mut out = words[0].clone();
    for w in &words[1..] {
        out.push_str(&capitalise(w));
    }
    format!("{out}_{version}")
}

/// `/api/v1` or `/apis/apps/v1`.
fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// Whether the group is one of Kubernetes' own, whose kinds take strategic
/// merge patches; custom resources never do.
fn is_builtin_group(group: &str) -> bool {
    group == "extensions" || ROOTS.iter().any(|r| r.group == group)
}

fn path_param(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: Location::Path,
        ty: "string",
        description,
    }
}

const NAMESPACE: Param = Param {
    name: "namespace",
    location: Location::Path,
    ty: "string",
    description: "The object's namespace.",
};
const NAME: Param = Param {
    name: "name",
    location: Location::Path,
    ty: "string",
    description: "The object's name.",
};

/// The schema a resource's objects have in `defs`, if any.
fn object_payload(res: &ResourceDef, defs: &SchemaSet) -> Payload {
    Payload::Definition(
        res.schema
            .as_ref()
            .filter(|name| defs.get(name).is_some())
            .cloned(),
    )
}

/// The schema of a resource's lists: `<schema>List` when `defs` has it.
fn list_payload(res: &ResourceDef, defs: &SchemaSet) -> Payload {
    Payload::Definition(
        res.schema
            .as_ref()
            .map(|name| format!("{name}List"))
            .filter(|name| defs.get(name).is_some()),
    )
}

fn meta_payload(kind: &str) -> Payload {
    Payload::Definition(Some(format!("io.k8s.apimachinery.pkg.apis.meta.v1.{kind}")))
}

/// Every path of one resource, with its subresources.
fn resource_paths(res: &ResourceDef, defs: &SchemaSet, out: &mut BTreeMap<String, PathItem>) {
    let gv = id_group_version(&res.group, &res.version);
    let base = prefix(&res.group, &res.version);
    let kind = res.kind.as_str();
    let ns = if res.namespaced { "Namespaced" } else { "" };
    let scope = if res.namespaced {
        format!("/namespaces/{{namespace}}/{}", res.plural)
    } else {
        format!("/{}", res.plural)
    };
    let scope_params: Vec<Param> = if res.namespaced {
        vec![NAMESPACE, PRETTY]
    } else {
        vec![PRETTY]
    };
    let item_params: Vec<Param> = if res.namespaced {
        vec![NAME, NAMESPACE, PRETTY]
    } else {
        vec![NAME, PRETTY]
    };
    let gvk = (res.group.clone(), res.version.clone(), res.kind.clone());
    let has = |verb: &str| res.verbs.iter().any(|v| v == verb);
    let object = object_payload(res, defs);
    let list = list_payload(res, defs);
    let patch_types: Vec<&'static str> = if is_builtin_group(&res.group) {
        PATCH_TYPES.to_vec()
    } else {
        PATCH_TYPES_NO_SMP.to_vec()
    };
    let op = |method, action, id: String, description: String| Operation {
        method,
        action,
        id,
        description,
        params: Vec::new(),
        body: None,
        codes: OK,
        response: object.clone(),
        produces: &PRODUCES,
        gvk: gvk.clone(),
    };

    // The collection: list, create, delete the lot.
    let mut collection = Vec::new();
    if has("list") {
        collection.push(Operation {
            params: LIST_PARAMS.to_vec(),
            response: list.clone(),
            produces: &PRODUCES_STREAM,
            ..op(
                "get",
                "list",
                format!("list{gv}{ns}{kind}"),
                format!("list or watch objects of kind {kind}"),
            )
        });
    }
    if has("create") {
        collection.push(Operation {
            params: vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
            body: Some((object.clone(), vec!["*/*"])),
            codes: CREATED,
            ..op(
                "post",
                "post",
                format!("create{gv}{ns}{kind}"),
                format!("create a {kind}"),
            )
        });
    }
    if has("deletecollection") {
        let mut params = LIST_PARAMS.to_vec();
        params.retain(|p| p.name != "watch" && p.name != "allowWatchBookmarks");
        params.extend(DELETE_PARAMS);
        params.sort_by_key(|p| p.name);
        collection.push(Operation {
            params,
            body: Some((meta_payload("DeleteOptions"), vec!["*/*"])),
            response: meta_payload("Status"),
            ..op(
                "delete",
                "deletecollection",
                format!("delete{gv}Collection{ns}{kind}"),
                format!("delete collection of {kind}"),
            )
        });
    }
    add_path(out, format!("{base}{scope}"), &scope_params, collection);

    // The object: read, replace, patch, delete.
    let mut item = Vec::new();
    if has("get") {
        item.push(op(
            "get",
            "get",
            format!("read{gv}{ns}{kind}"),
            format!("read the specified {kind}"),
        ));
    }
    if has("update") {
        item.push(Operation {
            params: vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
            body: Some((object.clone(), vec!["*/*"])),
            codes: REPLACED,
            ..op(
                "put",
                "put",
                format!("replace{gv}{ns}{kind}"),
                format!("replace the specified {kind}"),
            )
        });
    }
    if has("patch") {
        item.push(Operation {
            params: vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE],
            body: Some((meta_payload("Patch"), patch_types.clone())),
            codes: REPLACED,
            ..op(
                "patch",
                "patch",
                format!("patch{gv}{ns}{kind}"),
                format!("partially update the specified {kind}"),
            )
        });
    }
    if has("delete") {
        item.push(Operation {
            params: DELETE_PARAMS.to_vec(),
            body: Some((meta_payload("DeleteOptions"), vec!["*/*"])),
            codes: DELETED,
            response: meta_payload("Status"),
            ..op(
                "delete",
                "delete",
                format!("delete{gv}{ns}{kind}"),
                format!("delete a {kind}"),
            )
        });
    }
    add_path(out, format!("{base}{scope}/{{name}}"), &item_params, item);

    // Lists across namespaces and the old watch paths.
    let mut list_path_params = LIST_PARAMS.to_vec();
    list_path_params.push(PRETTY);
    list_path_params.sort_by_key(|p| p.name);
    if res.namespaced && has("list") {
        let op = Operation {
            response: list.clone(),
            produces: &PRODUCES_STREAM,
            ..op(
                "get",
                "list",
                format!("list{gv}{kind}ForAllNamespaces"),
                format!("list or watch objects of kind {kind}"),
            )
        };
        add_path(
            out,
            format!("{base}/{}", res.plural),
            &list_path_params,
            vec![op],
        );
    }
    if has("watch") {
        let event = meta_payload("WatchEvent");
        let watch = |action, id: String, description: String| Operation {
            response: event.clone(),
            produces: &PRODUCES_STREAM,
            ..op("get", action, id, description)
        };
        let list_description = format!(
            "watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."
        );
        add_path(
            out,
            format!("{base}/watch{scope}"),
            &with_scope(&list_path_params, res.namespaced, false),
            vec![watch(
                "watchlist",
                format!("watch{gv}{ns}{kind}List"),
                list_description.clone(),
            )],
        );
        add_path(
            out,
            format!("{base}/watch{scope}/{{name}}"),
            &with_scope(&list_path_params, res.namespaced, true),
            vec![watch(
                "watch",
                format!("watch{gv}{ns}{kind}"),
                format!(
                    "watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."
                ),
            )],
        );
        if res.namespaced {
            add_path(
                out,
                format!("{base}/watch/{}", res.plural),
                &list_path_params,
                vec![watch(
                    "watchlist",
                    format!("watch{gv}{kind}ListForAllNamespaces"),
                    list_description,
                )],
            );
        }
    }

    for sub in &res.subresources {
        subresource_paths(
            res,
            sub,
            defs,
            &format!("{base}{scope}/{{name}}/{}", sub.name),
            &item_params,
            &patch_types,
            out,
        );
    }
}

/// The list parameters plus `name` and `namespace` as a watch path takes
/// them.
fn with_scope(list_params: &[Param], namespaced: bool, named: bool) -> Vec<Param> {
    let mut params = list_params.to_vec();
    if named {
        params.push(NAME);
    }
    if namespaced {
        params.push(NAMESPACE);
    }
    params.sort_by_key(|p| p.name);
    params
}

/// The operations of one subresource, such as `pods/status`,
/// `deployments/scale`, `pods/eviction` or `pods/exec`.
fn subresource_paths(
    res: &ResourceDef,
    sub: &Subresource,
    defs: &SchemaSet,
    path: &str,
    item_params: &[Param],
    patch_types: &[&'static str],
    out: &mut BTreeMap<String, PathItem>,
) {
    let gv = id_group_version(&res.group, &res.version);
    let ns = if res.namespaced { "Namespaced" } else { "" };
    let kind = res.kind.as_str();
    let suffix = capitalise(&sub.name);
    let same_kind = sub.group == res.group && sub.version == res.version && sub.kind == res.kind;
    let payload = if same_kind {
        object_payload(res, defs)
    } else {
        let name = crate::catalog::schema_name(&sub.group, &sub.version, &sub.kind);
        Payload::Definition(defs.get(&name).is_some().then_some(name))
    };
    let gvk = (sub.group.clone(), sub.version.clone(), sub.kind.clone());
    let has = |verb: &str| sub.verbs.iter().any(|v| v == verb);
    let what = sub.name.as_str();
    let op = |method, action, id: String, description: String| Operation {
        method,
        action,
        id,
        description,
        params: Vec::new(),
        body: None,
        codes: OK,
        response: payload.clone(),
        produces: &PRODUCES,
        gvk: gvk.clone(),
    };
    let mut ops = Vec::new();
    let mut path_params = item_params.to_vec();
    match sub.name.as_str() {
        "exec" | "attach" | "portforward" | "proxy" => {
            // Streams: the client upgrades the connection.
            let params: Vec<Param> = match sub.name.as_str() {
                "exec" => STREAM_PARAMS.to_vec(),
                "attach" => STREAM_PARAMS[1..].to_vec(),
                "portforward" => vec![query(
                    "ports",
                    "integer",
                    "The ports to forward, one per occurrence.",
                )],
                _ => vec![query("path", "string", "The path to proxy to.")],
            };
            path_params.retain(|p| p.name != "pretty");
            path_params.extend(params);
            path_params.sort_by_key(|p| p.name);
            for (verb, method) in [
                ("get", "get"),
                ("create", "post"),
                ("update", "put"),
                ("patch", "patch"),
                ("delete", "delete"),
            ] {
                if has(verb) {
                    let m = capitalise(method);
                    ops.push(Operation {
                        response: Payload::Text,
                        produces: &["*/*"],
                        ..op(
                            method,
                            "connect",
                            format!("connect{gv}{m}{ns}{kind}{suffix}"),
                            format!(
                                "connect {} requests to {what} of {kind}",
                                method.to_uppercase()
                            ),
                        )
                    });
                }
            }
        }
        "log" => {
            path_params.extend(LOG_PARAMS);
            path_params.sort_by_key(|p| p.name);
            ops.push(Operation {
                response: Payload::Text,
                produces: &["text/plain", "application/json", "application/yaml"],
                ..op(
                    "get",
                    "get",
                    format!("read{gv}{ns}{kind}{suffix}"),
                    format!("read {what} of the specified {kind}"),
                )
            });
        }
        _ => {
            if has("get") {
                ops.push(op(
                    "get",
                    "get",
                    format!("read{gv}{ns}{kind}{suffix}"),
                    format!("read {what} of the specified {kind}"),
                ));
            }
            if has("update") {
                ops.push(Operation {
                    params: vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
                    body: Some((payload.clone(), vec!["*/*"])),
                    codes: REPLACED,
                    ..op(
                        "put",
                        "put",
                        format!("replace{gv}{ns}{kind}{suffix}"),
                        format!("replace {what} of the specified {kind}"),
                    )
                });
            }
            if has("patch") {
                ops.push(Operation {
                    params: vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE],
                    body: Some((meta_payload("Patch"), patch_types.to_vec())),
                    codes: REPLACED,
                    ..op(
                        "patch",
                        "patch",
                        format!("patch{gv}{ns}{kind}{suffix}"),
                        format!("partially update {what} of the specified {kind}"),
                    )
                });
            }
            if has("create") {
                ops.push(Operation {
                    params: vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
                    body: Some((payload.clone(), vec!["*/*"])),
                    codes: CREATED,
                    ..op(
                        "post",
                        "post",
                        format!("create{gv}{ns}{kind}{suffix}"),
                        format!("create {what} of a {kind}"),
                    )
                });
            }
        }
    }
    add_path(out, path.to_owned(), &path_params, ops);
    if sub.name == "proxy" {
        let mut params = path_params.clone();
        params.retain(|p| p.name != "path");
        params.push(path_param("path", "The path to proxy to."));
        params.sort_by_key(|p| p.name);
        let mut ops = Vec::new();
        for o in out
            .get(path)
            .map(|item| &item.operations[..])
            .unwrap_or_default()
        {
            ops.push(Operation {
                id: format!("{}WithPath", o.id),
                description: o.description.clone(),
                params: o.params.clone(),
                body: o.body.clone(),
                response: o.response.clone(),
                gvk: o.gvk.clone(),
                ..*o
            });
        }
        add_path(out, format!("{path}/{{path}}"), &params, ops);
    }
}

fn add_path(
    out: &mut BTreeMap<String, PathItem>,
    path: String,
    params: &[Param],
    operations: Vec<Operation>,
) {
    if operations.is_empty() {
        return;
    }
    let item = out.entry(path).or_insert_with(|| PathItem {
        params: params.to_vec(),
        operations: Vec::new(),
    });
    item.operations.extend(operations);
}

/// Every path of the resources served at `group`/`version`.
fn paths_of(
    resources: &[ResourceDef],
    group: &str,
    version: &str,
    defs: &SchemaSet,
) -> BTreeMap<String, PathItem> {
    let mut out = BTreeMap::new();
    for res in resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resource_paths(res, defs, &mut out);
    }
    out
}

/// The names of the definitions `roots` refer to, directly or through
/// other definitions.
fn referenced(roots: impl IntoIterator<Item = String>, defs: &SchemaSet) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue: Vec<String> = roots.into_iter().collect();
    while let Some(name) = queue.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(node) = defs.get(&name) {
            collect_refs(node.raw(), &mut queue);
        }
    }
    seen.retain(|name| defs.get(name).is_some());
    seen
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                // A string under `$ref` is a reference; anything else is a
                // property that happens to be named `$ref` (JSONSchemaProps
                // has one).
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.rsplit('/').next() {
                            out.push(name.to_owned());
                        }
                    }
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The definitions the operations of `paths` name.
fn payload_roots(paths: &BTreeMap<String, PathItem>) -> Vec<String> {
    let mut roots = Vec::new();
    for item in paths.values() {
        for op in &item.operations {
            for payload in [Some(&op.response), op.body.as_ref().map(|(p, _)| p)]
                .into_iter()
                .flatten()
            {
                if let Payload::Definition(Some(name)) = payload {
                    roots.push(name.clone());
                }
            }
        }
    }
    roots
}

const V3_PREFIX: &str = "#/components/schemas/";
const V2_PREFIX: &str = "#/definitions/";

fn v3_schema(payload: &Payload) -> Value {
    match payload {
        Payload::Definition(Some(name)) => json!({"$ref": format!("{V3_PREFIX}{name}")}),
        Payload::Definition(None) => json!({}),
        Payload::Text => json!({"type": "string"}),
    }
}

fn v3_param(p: &Param) -> Value {
    let mut out = Map::new();
    out.insert("description".into(), p.description.into());
    let location = match p.location {
        Location::Query => "query",
        Location::Path => "path",
    };
    out.insert("in".into(), location.into());
    out.insert("name".into(), p.name.into());
    if p.location == Location::Path {
        out.insert("required".into(), true.into());
    }
    out.insert("schema".into(), json!({"type": p.ty, "uniqueItems": true}));
    Value::Object(out)
}

fn gvk_object(triple: &(String, String, String)) -> Value {
    gvk(&triple.0, &triple.1, &triple.2)
}

fn v3_operation(op: &Operation, tag: &str) -> Value {
    let mut out = Map::new();
    out.insert("description".into(), op.description.clone().into());
    out.insert("operationId".into(), op.id.clone().into());
    if !op.params.is_empty() {
        out.insert(
            "parameters".into(),
            op.params.iter().map(v3_param).collect(),
        );
    }
    if let Some((payload, types)) = &op.body {
        let schema = v3_schema(payload);
        let content: Map<String, Value> = types
            .iter()
            .map(|t| ((*t).to_owned(), json!({"schema": schema})))
            .collect();
        out.insert(
            "requestBody".into(),
            json!({"content": content, "required": true}),
        );
    }
    let schema = v3_schema(&op.response);
    let content: Map<String, Value> = op
        .produces
        .iter()
        .map(|t| ((*t).to_owned(), json!({"schema": schema})))
        .collect();
    let responses: Map<String, Value> = op
        .codes
        .iter()
        .map(|(code, description)| {
            (
                (*code).to_owned(),
                json!({"content": content, "description": description}),
            )
        })
        .collect();
    out.insert("responses".into(), Value::Object(responses));
    out.insert("tags".into(), json!([tag]));
    out.insert("x-kubernetes-action".into(), op.action.into());
    out.insert(
        "x-kubernetes-group-version-kind".into(),
        gvk_object(&op.gvk),
    );
    Value::Object(out)
}

/// The OpenAPI 3.0 document Kubernetes serves at `/openapi/v3/api/v1` (core,
/// `group` empty) or `/openapi/v3/apis/<group>/<version>`: every path of
/// the resources served there, and the definitions they refer to. `defs`
/// holds the definitions: [`definitions`], plus those of custom resources.
pub fn openapi_v3(
    resources: &[ResourceDef],
    group: &str,
    version: &str,
    defs: &SchemaSet,
) -> Value {
    let doc = v3_document(resources, group, version, defs);
    // Converting a document of JSON values into a value cannot fail.
    serde_json::to_value(&doc).unwrap_or_default()
}

/// A v3 document whose schemas are borrowed from the definitions, so that
/// serving it copies nothing but bytes.
#[derive(serde::Serialize)]
struct V3<'a> {
    openapi: &'static str,
    info: Value,
    paths: Map<String, Value>,
    components: Components<'a>,
    security: Value,
}

#[derive(serde::Serialize)]
struct Components<'a> {
    schemas: BTreeMap<String, &'a Value>,
    #[serde(rename = "securitySchemes")]
    security_schemes: Value,
}

fn v3_document<'a>(
    resources: &[ResourceDef],
    group: &str,
    version: &str,
    defs: &'a SchemaSet,
) -> V3<'a> {
    let paths = paths_of(resources, group, version, defs);
    let tag = tag(group, version);
    let mut out_paths = Map::new();
    for (path, item) in &paths {
        let mut entry = Map::new();
        for op in &item.operations {
            entry.insert(op.method.into(), v3_operation(op, &tag));
        }
        entry.insert(
            "parameters".into(),
            item.params.iter().map(v3_param).collect(),
        );
        out_paths.insert(path.clone(), Value::Object(entry));
    }
    let mut schemas = BTreeMap::new();
    for name in referenced(payload_roots(&paths), defs) {
        if let Some(node) = defs.get(&name) {
            schemas.insert(name, node.raw());
        }
    }
    V3 {
        openapi: "3.0.0",
        info: json!({"title": "Kubernetes", "version": "unversioned"}),
        paths: out_paths,
        components: Components {
            schemas,
            security_schemes: json!({
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header"
                }
            }),
        },
        security: json!([{"BearerToken": []}]),
    }
}

/// One document of `/openapi/v3`, ready to serve.
#[derive(Clone, Debug)]
pub struct V3Document {
    /// Its key in the index, without a leading slash: `api/v1`,
    /// `apis/apps/v1`.
    pub path: String,
    /// The document, serialised.
    pub body: Vec<u8>,
    /// The hash of `body` that its URL carries (`?hash=`), also fit for an
    /// `ETag`.
    pub hash: String,
}

/// Every group/version's document, in the order of `resources`' first
/// appearance of each.
pub fn openapi_v3_documents(resources: &[ResourceDef], defs: &SchemaSet) -> Vec<V3Document> {
    let mut seen = BTreeSet::new();
    let mut docs = Vec::new();
    for res in resources {
        if !seen.insert((res.group.clone(), res.version.clone())) {
            continue;
        }
        let doc = v3_document(resources, &res.group, &res.version, defs);
        // Serialising JSON values cannot fail: their keys are strings.
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let hash = document_hash(&body);
        let path = prefix(&res.group, &res.version)
            .trim_start_matches('/')
            .to_owned();
        docs.push(V3Document { path, body, hash });
    }
    docs
}

/// The index at `/openapi/v3`: each group/version's document with a URL
/// that changes whenever the document does, so clients may cache them for
/// good.
pub fn openapi_v3_index(resources: &[ResourceDef], defs: &SchemaSet) -> Value {
    index_of(&openapi_v3_documents(resources, defs))
}

/// The index listing `docs`.
pub fn index_of(docs: &[V3Document]) -> Value {
    let paths: Map<String, Value> = docs
        .iter()
        .map(|d| {
            (
                d.path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{}?hash={}", d.path, d.hash)}),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// A stable hash of a document's bytes, as 32 upper-case hex digits
/// (128-bit FNV-1a). Kubernetes uses SHA-512; clients treat the value as
/// opaque, and only need it to change when the document does.
pub fn document_hash(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let hash = bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME));
    format!("{hash:032X}")
}

// --- Swagger 2.0 ------------------------------------------------------------

/// Rewrites a v3 schema as Swagger 2.0 writes it: references to
/// `#/definitions/`, and a reference wrapped in a one-element `allOf` (how
/// v3 attaches a description to it) unwrapped, its siblings kept beside the
/// `$ref` as Kubernetes' v2 document has them.
pub fn schema_to_v2(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        let name = r.strip_prefix(V3_PREFIX).unwrap_or(r);
                        out.insert(key.clone(), format!("{V2_PREFIX}{name}").into());
                    }
                    ("allOf", Value::Array(items))
                        if items.len() == 1 && items[0].get("$ref").is_some() =>
                    {
                        if let Value::Object(inner) = schema_to_v2(&items[0]) {
                            out.extend(inner);
                        }
                    }
                    ("nullable", _) => {}
                    _ => {
                        out.insert(key.clone(), schema_to_v2(v));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => items.iter().map(schema_to_v2).collect(),
        other => other.clone(),
    }
}

fn v2_schema(payload: &Payload) -> Option<Value> {
    match payload {
        Payload::Definition(Some(name)) => Some(json!({"$ref": format!("{V2_PREFIX}{name}")})),
        Payload::Definition(None) => None,
        Payload::Text => Some(json!({"type": "string"})),
    }
}

fn v2_param(p: &Param) -> Value {
    let mut out = Map::new();
    out.insert("description".into(), p.description.into());
    let location = match p.location {
        Location::Query => "query",
        Location::Path => "path",
    };
    out.insert("in".into(), location.into());
    out.insert("name".into(), p.name.into());
    if p.location == Location::Path {
        out.insert("required".into(), true.into());
    }
    out.insert("type".into(), p.ty.into());
    out.insert("uniqueItems".into(), true.into());
    Value::Object(out)
}

fn v2_operation(op: &Operation, tag: &str) -> Value {
    let mut out = Map::new();
    let consumes: Vec<&str> = op
        .body
        .as_ref()
        .map(|(_, types)| types.clone())
        .unwrap_or_else(|| vec!["*/*"]);
    out.insert("consumes".into(), json!(consumes));
    out.insert("description".into(), op.description.clone().into());
    out.insert("operationId".into(), op.id.clone().into());
    let mut params: Vec<Value> = Vec::new();
    if let Some((payload, _)) = &op.body {
        let mut body = json!({"in": "body", "name": "body", "required": true});
        if let (Some(schema), Some(map)) = (v2_schema(payload), body.as_object_mut()) {
            map.insert("schema".into(), schema);
        }
        params.push(body);
    }
    params.extend(op.params.iter().map(v2_param));
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    out.insert("produces".into(), json!(op.produces));
    let mut responses = Map::new();
    for (code, description) in op.codes {
        let mut response = json!({"description": description});
        if let (Some(schema), Some(map)) = (v2_schema(&op.response), response.as_object_mut()) {
            map.insert("schema".into(), schema);
        }
        responses.insert((*code).to_owned(), response);
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    out.insert("responses".into(), Value::Object(responses));
    out.insert("schemes".into(), json!(["https"]));
    out.insert("tags".into(), json!([tag]));
    out.insert("x-kubernetes-action".into(), op.action.into());
    out.insert(
        "x-kubernetes-group-version-kind".into(),
        gvk_object(&op.gvk),
    );
    Value::Object(out)
}

/// The Swagger 2.0 document Kubernetes serves at `/openapi/v2`: every path
/// of every resource, and every definition in `defs`, with the same
/// extensions as the v3 documents.
pub fn openapi_v2(resources: &[ResourceDef], defs: &SchemaSet) -> Value {
    let mut gvs: Vec<(String, String)> = Vec::new();
    for res in resources {
        let gv = (res.group.clone(), res.version.clone());
        if !gvs.contains(&gv) {
            gvs.push(gv);
        }
    }
    let mut out_paths = BTreeMap::new();
    for (group, version) in &gvs {
        let tag = tag(group, version);
        for (path, item) in paths_of(resources, group, version, defs) {
            let mut entry = Map::new();
            for op in &item.operations {
                entry.insert(op.method.into(), v2_operation(op, &tag));
            }
            entry.insert(
                "parameters".into(),
                item.params.iter().map(v2_param).collect(),
            );
            out_paths.insert(path, Value::Object(entry));
        }
    }
    let definitions: Map<String, Value> = defs
        .definitions()
        .map(|(name, schema)| (name.to_owned(), schema_to_v2(schema)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": out_paths.into_iter().collect::<Map<String, Value>>(),
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "type": "apiKey",
                "description": "Bearer Token authentication",
                "name": "authorization",
                "in": "header"
            }
        },
        "security": [{"BearerToken": []}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::resource;
    use crate::{Column, FieldError, Strategy};
    use std::sync::Arc;
    use std::time::Instant;

    /// A strategy that does nothing: the documents only read where a
    /// resource lives.
    struct Inert;

    impl Strategy for Inert {
        fn check_types(&self, _: &Value) -> Result<(), FieldError> {
            Ok(())
        }
        fn default(&self, _: &mut Value) {}
        fn prepare_create(&self, _: &mut Value) {}
        fn prepare_update(&self, _: &mut Value, _: &Value) {}
        fn prepare_status_update(&self, _: &mut Value, _: &Value) {}
        fn validate(&self, _: &Value, _: Option<&Value>) -> Vec<FieldError> {
            Vec::new()
        }
        fn validate_status(&self, _: &Value, _: &Value) -> Vec<FieldError> {
            Vec::new()
        }
        fn tracks_generation(&self) -> bool {
            true
        }
        fn has_status_subresource(&self) -> bool {
            true
        }
        fn columns(&self) -> Vec<Column> {
            Vec::new()
        }
        fn row(&self, _: &Value, _: i64) -> Vec<Value> {
            Vec::new()
        }
        fn selectable_fields(&self, _: &Value) -> Vec<(String, String)> {
            Vec::new()
        }
    }

    /// A small catalogue: pods with their subresources, nodes, deployments
    /// in apps/v1 and in extensions/v1beta1 (no schema), and a custom
    /// resource.
    fn sample() -> Vec<ResourceDef> {
        let s = || -> Arc<dyn Strategy> { Arc::new(Inert) };
        vec![
            resource("", "v1", "Pod", "pods", s())
                .status()
                .subresource("eviction", "policy", "v1", "Eviction", &["create"])
                .subresource("binding", "", "v1", "Binding", &["create"])
                .subresource("log", "", "v1", "Pod", &["get"])
                .subresource("exec", "", "v1", "PodExecOptions", &["get", "create"])
                .subresource("proxy", "", "v1", "PodProxyOptions", &["get", "create"])
                .build(),
            resource("", "v1", "Node", "nodes", s())
                .cluster_scoped()
                .status()
                .build(),
            resource("apps", "v1", "Deployment", "deployments", s())
                .status()
                .scale()
                .build(),
            resource("extensions", "v1beta1", "Deployment", "deployments", s())
                .schema(None)
                .not_preferred()
                .status()
                .scale()
                .build(),
            resource("example.com", "v1", "Widget", "widgets", s())
                .schema(Some("com.example.v1.Widget"))
                .build(),
        ]
    }

    /// Definitions plus a custom resource's, as the API server passes them.
    fn defs_with_widget() -> SchemaSet {
        let mut defs = definitions().clone();
        defs.insert(
            "com.example.v1.Widget",
            json!({
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                },
                "x-kubernetes-group-version-kind": [{"group": "example.com", "version": "v1", "kind": "Widget"}]
            }),
        );
        defs
    }

    fn refs_in(value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        if let ("$ref", Value::String(r)) = (k.as_str(), v) {
                            out.push(r.clone());
                        } else {
                            walk(v, out);
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(value, &mut out);
        out
    }

    #[test]
    fn definitions_carry_kubernetes_extensions() {
        let defs = definitions();
        let spec = defs.get("io.k8s.api.core.v1.PodSpec").unwrap();
        let containers = spec.property("containers").unwrap();
        assert_eq!(containers.patch_merge_key(), Some("name"));
        assert_eq!(containers.patch_strategy(), Some("merge"));
        assert_eq!(
            containers.list_type(),
            schema::ListType::Map(vec!["name".into()])
        );
        assert_eq!(
            spec.property("volumes").unwrap().patch_strategy(),
            Some("merge,retainKeys")
        );
        assert_eq!(
            spec.property("tolerations").unwrap().list_type(),
            schema::ListType::Atomic
        );
        let container = containers.items().unwrap();
        let ports = container.property("ports").unwrap();
        assert_eq!(ports.patch_merge_key(), Some("containerPort"));
        assert_eq!(
            ports.list_type(),
            schema::ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            ports
                .items()
                .unwrap()
                .property("protocol")
                .unwrap()
                .keyword("default"),
            Some(&json!("TCP"))
        );
        let meta = defs
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .unwrap();
        assert_eq!(
            meta.property("finalizers").unwrap().list_type(),
            schema::ListType::Set
        );
        assert_eq!(
            meta.property("ownerReferences").unwrap().patch_merge_key(),
            Some("uid")
        );
        let strategy = defs
            .get("io.k8s.api.apps.v1.DeploymentSpec")
            .unwrap()
            .property("strategy")
            .unwrap();
        assert_eq!(strategy.patch_strategy(), Some("retainKeys"));
        let selector = defs
            .get("io.k8s.api.core.v1.ServiceSpec")
            .unwrap()
            .property("selector")
            .unwrap();
        assert_eq!(selector.map_type(), schema::MapType::Atomic);
        // A type marked atomic carries it on the definition itself, and a
        // property referring to it sees it through the reference.
        let label_selector = defs
            .get("io.k8s.api.apps.v1.DeploymentSpec")
            .unwrap()
            .property("selector")
            .unwrap();
        assert_eq!(label_selector.map_type(), schema::MapType::Atomic);
        let conditions = defs
            .get("io.k8s.api.core.v1.NodeStatus")
            .unwrap()
            .property("conditions")
            .unwrap();
        assert_eq!(conditions.patch_merge_key(), Some("type"));
    }

    #[test]
    fn kinds_carry_their_group_version_kinds() {
        let defs = definitions();
        let gvks = |name: &str| {
            defs.get(name)
                .unwrap()
                .keyword("x-kubernetes-group-version-kind")
                .cloned()
                .unwrap()
        };
        assert_eq!(
            gvks("io.k8s.api.apps.v1.Deployment"),
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert_eq!(
            gvks("io.k8s.api.core.v1.PodList"),
            json!([{"group": "", "kind": "PodList", "version": "v1"}])
        );
        assert_eq!(
            gvks("io.k8s.api.autoscaling.v1.Scale"),
            json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}])
        );
        let delete = gvks("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions");
        let delete = delete.as_array().unwrap();
        assert!(
            delete.contains(&json!({"group": "apps", "kind": "DeleteOptions", "version": "v1"}))
        );
        assert!(delete.contains(&json!({"group": "", "kind": "DeleteOptions", "version": "v1"})));
        // Every root has its definition, and every listed root its list.
        let mut generator = SchemaGenerator::default();
        for root in ROOTS {
            let name = (root.register)(&mut generator);
            assert!(defs.get(&name).is_some(), "{name}");
            assert_eq!(
                defs.get(&format!("{name}List")).is_some(),
                root.listed,
                "{name}List"
            );
        }
    }

    #[test]
    fn every_reference_in_the_definitions_resolves() {
        let defs = definitions();
        for (name, schema) in defs.definitions() {
            for r in refs_in(schema) {
                let target = r
                    .strip_prefix(V3_PREFIX)
                    .unwrap_or_else(|| panic!("{name}: {r}"));
                assert!(
                    defs.get(target).is_some(),
                    "{name} refers to missing {target}"
                );
            }
        }
    }

    #[test]
    fn core_document_has_pod_paths_and_operations() {
        let defs = defs_with_widget();
        let doc = openapi_v3(&sample(), "", "v1", &defs);
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/api/v1/namespaces/{namespace}/pods",
            "/api/v1/namespaces/{namespace}/pods/{name}",
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
            "/api/v1/namespaces/{namespace}/pods/{name}/binding",
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            "/api/v1/namespaces/{namespace}/pods/{name}/proxy",
            "/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}",
            "/api/v1/pods",
            "/api/v1/watch/pods",
            "/api/v1/watch/namespaces/{namespace}/pods",
            "/api/v1/watch/namespaces/{namespace}/pods/{name}",
            "/api/v1/nodes",
            "/api/v1/nodes/{name}",
            "/api/v1/nodes/{name}/status",
            "/api/v1/watch/nodes/{name}",
        ] {
            assert!(paths.contains_key(path), "missing {path}");
        }
        // No deployment or custom resource path leaks into the core document.
        assert!(paths.keys().all(|p| p.starts_with("/api/v1/")));

        let patch = &paths["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["operationId"], "patchCoreV1NamespacedPod");
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "kind": "Pod", "version": "v1"})
        );
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for wanted in ["fieldValidation", "fieldManager", "dryRun", "force"] {
            assert!(names.contains(&wanted), "{wanted} in {names:?}");
        }
        assert!(
            patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_some()
        );
        let post = &paths["/api/v1/namespaces/{namespace}/pods"]["post"];
        assert_eq!(post["operationId"], "createCoreV1NamespacedPod");
        assert_eq!(
            post["requestBody"]["content"]["*/*"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Pod"
        );
        assert!(
            post["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let list = &paths["/api/v1/namespaces/{namespace}/pods"]["get"];
        assert_eq!(list["x-kubernetes-action"], "list");
        assert_eq!(
            list["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodList"
        );
        let eviction = &paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
        assert_eq!(eviction["operationId"], "createCoreV1NamespacedPodEviction");
        assert_eq!(
            eviction["x-kubernetes-group-version-kind"],
            json!({"group": "policy", "kind": "Eviction", "version": "v1"})
        );
        let exec = &paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"];
        assert_eq!(
            exec["get"]["operationId"],
            "connectCoreV1GetNamespacedPodExec"
        );
        assert_eq!(exec["post"]["x-kubernetes-action"], "connect");
        assert_eq!(
            paths["/api/v1/watch/namespaces/{namespace}/pods"]["get"]["x-kubernetes-action"],
            "watchlist"
        );
        assert_eq!(
            paths["/api/v1/nodes/{name}/status"]["patch"]["operationId"],
            "patchCoreV1NodeStatus"
        );

        // The components hold exactly what is needed, and every reference
        // in the document resolves among them.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "io.k8s.api.core.v1.Pod",
            "io.k8s.api.core.v1.PodList",
            "io.k8s.api.core.v1.Container",
            "io.k8s.api.policy.v1.Eviction",
            "io.k8s.api.core.v1.Binding",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        ] {
            assert!(schemas.contains_key(name), "missing {name}");
        }
        assert!(!schemas.contains_key("io.k8s.api.apps.v1.Deployment"));
        for r in refs_in(&doc) {
            let name = r.strip_prefix(V3_PREFIX).unwrap();
            assert!(schemas.contains_key(name), "dangling {r}");
        }
    }

    #[test]
    fn old_versions_and_custom_resources_get_paths() {
        let defs = defs_with_widget();
        let resources = sample();
        let apps = openapi_v3(&resources, "apps", "v1", &defs);
        let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(
            scale["put"]["operationId"],
            "replaceAppsV1NamespacedDeploymentScale"
        );
        assert_eq!(
            scale["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"
        );

        // extensions/v1beta1 has no schema: its paths are there, without
        // body schemas, but the Scale subresource still has its own.
        let old = openapi_v3(&resources, "extensions", "v1beta1", &defs);
        let item =
            &old["paths"]["/apis/extensions/v1beta1/namespaces/{namespace}/deployments/{name}"];
        assert_eq!(
            item["get"]["operationId"],
            "readExtensionsV1beta1NamespacedDeployment"
        );
        assert_eq!(
            item["get"]["responses"]["200"]["content"]["application/json"],
            json!({"schema": {}})
        );
        assert_eq!(
            item["patch"]["x-kubernetes-group-version-kind"],
            json!({"group": "extensions", "kind": "Deployment", "version": "v1beta1"})
        );
        let schemas = old["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
        for r in refs_in(&old) {
            assert!(
                schemas.contains_key(r.strip_prefix(V3_PREFIX).unwrap()),
                "dangling {r}"
            );
        }

        // A custom resource: its own schema, and no strategic merge patch.
        let crd = openapi_v3(&resources, "example.com", "v1", &defs);
        let patch =
            &crd["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
        let content = patch["requestBody"]["content"].as_object().unwrap();
        assert!(content.contains_key("application/merge-patch+json"));
        assert!(!content.contains_key("application/strategic-merge-patch+json"));
        assert_eq!(patch["operationId"], "patchExampleComV1NamespacedWidget");
        assert_eq!(patch["tags"], json!(["exampleCom_v1"]));
        let schemas = crd["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("com.example.v1.Widget"));
        assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        // The list has no definition of its own here, so it has no schema.
        let list = &crd["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets"]["get"];
        assert_eq!(
            list["responses"]["200"]["content"]["application/json"],
            json!({"schema": {}})
        );
    }

    #[test]
    fn index_lists_every_group_version_with_a_stable_hash() {
        let defs = defs_with_widget();
        let resources = sample();
        let index = openapi_v3_index(&resources, &defs);
        let paths = index["paths"].as_object().unwrap();
        let keys: Vec<&String> = paths.keys().collect();
        assert_eq!(
            keys,
            [
                "api/v1",
                "apis/apps/v1",
                "apis/extensions/v1beta1",
                "apis/example.com/v1"
            ]
        );
        let url = paths["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
        // The same input gives the same hash; a changed document another.
        assert_eq!(index, openapi_v3_index(&resources, &defs));
        let fewer = openapi_v3_index(&resources[1..], &defs);
        assert_ne!(
            fewer["paths"]["api/v1"]["serverRelativeURL"],
            paths["api/v1"]["serverRelativeURL"]
        );
        assert_eq!(
            fewer["paths"]["apis/apps/v1"]["serverRelativeURL"],
            paths["apis/apps/v1"]["serverRelativeURL"]
        );
        // The documents parse back as JSON and hash as the index says.
        for doc in openapi_v3_documents(&resources, &defs) {
            let value: Value = serde_json::from_slice(&doc.body).unwrap();
            assert_eq!(value["openapi"], "3.0.0");
            assert_eq!(
                paths[&doc.path]["serverRelativeURL"],
                format!("/openapi/v3/{}?hash={}", doc.path, doc.hash)
            );
        }
        assert_eq!(document_hash(b"").len(), 32);
    }

    /// The operations of a document, format aside: path, method, id,
    /// action, GVK, parameter names, request and response schema names.
    fn operations(doc: &Value, v2: bool) -> Vec<String> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let shared: Vec<&str> = item["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let mut params: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|a| a.iter().map(|p| p["name"].as_str().unwrap()).collect())
                    .unwrap_or_default();
                params.retain(|p| *p != "body");
                let request = if v2 {
                    op["parameters"]
                        .as_array()
                        .and_then(|a| a.iter().find(|p| p["in"] == "body"))
                        .map(|p| p["schema"].to_string())
                } else {
                    op["requestBody"]["content"]
                        .as_object()
                        .and_then(|c| c.values().next())
                        .map(|c| c["schema"].to_string())
                };
                let response = if v2 {
                    op["responses"]["200"]["schema"].to_string()
                } else {
                    op["responses"]["200"]["content"]
                        .as_object()
                        .and_then(|c| c.values().next())
                        .map(|c| c["schema"].to_string())
                        .unwrap_or_default()
                };
                let norm = |s: String| {
                    s.replace(V2_PREFIX, "#/")
                        .replace(V3_PREFIX, "#/")
                        .replace("{}", "null")
                };
                out.push(format!(
                    "{path} {method} {} {} {} {shared:?} {params:?} {:?} {}",
                    op["operationId"],
                    op["x-kubernetes-action"],
                    op["x-kubernetes-group-version-kind"],
                    request.map(norm),
                    norm(response),
                ));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn v2_and_v3_differ_only_in_format() {
        let defs = defs_with_widget();
        let resources = sample();
        let v2 = openapi_v2(&resources, &defs);
        assert_eq!(v2["swagger"], "2.0");
        let mut v3_ops = Vec::new();
        for (group, version) in [
            ("", "v1"),
            ("apps", "v1"),
            ("extensions", "v1beta1"),
            ("example.com", "v1"),
        ] {
            let v3 = openapi_v3(&resources, group, version, &defs);
            v3_ops.extend(operations(&v3, false));
            // Every definition a v3 document carries is in v2, rewritten.
            for (name, schema) in v3["components"]["schemas"].as_object().unwrap() {
                assert_eq!(v2["definitions"][name], schema_to_v2(schema), "{name}");
            }
        }
        v3_ops.sort();
        assert_eq!(operations(&v2, true), v3_ops);
        // v2 references point at definitions, all of which exist.
        let definitions = v2["definitions"].as_object().unwrap();
        for r in refs_in(&v2) {
            let name = r.strip_prefix(V2_PREFIX).unwrap_or_else(|| panic!("{r}"));
            assert!(definitions.contains_key(name), "dangling {r}");
        }
        // A described reference is unwrapped from its allOf in v2.
        let pod = &v2["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
        assert_eq!(pod["$ref"], "#/definitions/io.k8s.api.core.v1.PodSpec");
        assert!(pod.get("allOf").is_none());
        assert!(pod.get("description").is_some());
    }

    #[test]
    fn strict_field_validation_reads_the_definitions() {
        let defs = definitions();
        let unknown =
            |name: &str, value: Value| schema::unknown_fields(defs.get(name).unwrap(), &value);
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "1"}],
                "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "c",
                            "image": "nginx",
                            "ports": [{"containerPort": 80}],
                            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                            "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
                        }],
                        "volumes": [{"name": "v", "configMap": {"name": "cm"}}]
                    }
                }
            },
            "status": {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}
        });
        assert!(unknown("io.k8s.api.apps.v1.Deployment", deployment.clone()).is_empty());
        let mut bad = deployment;
        bad["spec"]["template"]["spec"]["containers"][0]["bar"] = json!(1);
        bad["spec"]["foo"] = json!(1);
        bad["metadata"]["nope"] = json!(1);
        assert_eq!(
            unknown("io.k8s.api.apps.v1.Deployment", bad),
            [
                "metadata.nope",
                "spec.template.spec.containers[0].bar",
                "spec.foo"
            ]
        );
        // Open built-in types hold anything.
        let revision = json!({"metadata": {"name": "r"}, "revision": 1, "data": {"spec": {"anything": [1, 2]}}});
        assert!(unknown("io.k8s.api.apps.v1.ControllerRevision", revision).is_empty());
        // A CRD's schema is data, not structure: its defaults, enums and
        // nested schemas pass, and its own fields are checked.
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"plural": "widgets", "kind": "Widget"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {
                            "type": "object",
                            "default": {"size": 1},
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "size": {"type": "integer", "enum": [1, 2]},
                                "items": {"type": "array", "items": {"type": "string"}}
                            }
                        }}
                    }},
                    "bogus": true
                }]
            }
        });
        assert_eq!(
            unknown(
                "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
                crd
            ),
            ["spec.versions[0].bogus"]
        );
    }

    #[test]
    fn generation_cost() {
        let start = Instant::now();
        let set = build_definitions();
        let built = start.elapsed();
        // Every root kind served as a resource: about the size of the full
        // catalogue.
        let mut generator = SchemaGenerator::default();
        let resources: Vec<ResourceDef> = ROOTS
            .iter()
            .map(|r| {
                let name = (r.register)(&mut generator);
                resource(
                    r.group,
                    r.version,
                    r.kind,
                    &format!("{}s", r.kind.to_lowercase()),
                    Arc::new(Inert),
                )
                .schema(Some(&name))
                .status()
                .build()
            })
            .collect();
        let start = Instant::now();
        let docs = openapi_v3_documents(&resources, &set);
        let documents = start.elapsed();
        let start = Instant::now();
        let v2 = serde_json::to_vec(&openapi_v2(&resources, &set)).unwrap();
        let swagger = start.elapsed();
        println!(
            "definitions: {} in {built:?}; v3 documents: {} ({} bytes) in {documents:?}; v2: {} bytes in {swagger:?}",
            set.len(),
            docs.len(),
            docs.iter().map(|d| d.body.len()).sum::<usize>(),
            v2.len(),
        );
    }
}
