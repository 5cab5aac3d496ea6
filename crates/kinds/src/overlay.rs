//! Kubernetes' merge and list extensions, which k8s-openapi's schemas lack.
//!
//! Kubernetes generates its OpenAPI from Go types whose fields carry
//! `patchStrategy`/`patchMergeKey` struct tags and `+listType`,
//! `+listMapKey`, `+mapType` and `+structType` markers; they become
//! `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`,
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and
//! `x-kubernetes-map-type` on the *property* (or, for `+structType`, on the
//! type's definition). k8s-openapi generates its schemas from the same
//! OpenAPI but drops these extensions, so this module writes them back.
//!
//! The table below was written from the Kubernetes 1.32 API types
//! (`k8s.io/api` and `k8s.io/apimachinery` v0.32.9, `types.go` of each
//! group/version, and `apiextensions-apiserver`'s), for every definition the
//! documents carry; a test checks that each entry names a property that
//! exists. Clients rely on these facts: `kubectl apply` and strategic merge
//! patch merge `containers` by `name` because of them, and server-side apply
//! keys list items by the map keys.

use serde_json::{Map, Value};

/// The extensions Kubernetes writes on one property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ext {
    /// `x-kubernetes-list-type`: `atomic`, `set` or `map`.
    pub(crate) list_type: Option<&'static str>,
    /// `x-kubernetes-list-map-keys`, for `map` lists.
    pub(crate) map_keys: &'static [&'static str],
    /// `x-kubernetes-map-type`: `atomic` or `granular`.
    pub(crate) map_type: Option<&'static str>,
    /// `x-kubernetes-patch-strategy`: `merge`, `replace`, `retainKeys` or
    /// `merge,retainKeys`.
    pub(crate) patch_strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`.
    pub(crate) merge_key: Option<&'static str>,
}

const NONE: Ext = Ext {
    list_type: None,
    map_keys: &[],
    map_type: None,
    patch_strategy: None,
    merge_key: None,
};

/// A list replaced whole.
const fn atomic() -> Ext {
    Ext {
        list_type: Some("atomic"),
        ..NONE
    }
}

/// A list of unique scalars.
const fn set() -> Ext {
    Ext {
        list_type: Some("set"),
        ..NONE
    }
}

/// A list of objects keyed by `keys`.
const fn map(keys: &'static [&'static str]) -> Ext {
    Ext {
        list_type: Some("map"),
        map_keys: keys,
        ..NONE
    }
}

/// A map or struct merged whole (`atomic`) or key by key (`granular`).
const fn map_type(ty: &'static str) -> Ext {
    Ext {
        map_type: Some(ty),
        ..NONE
    }
}

/// Only a patch strategy, such as `retainKeys` or `replace`.
const fn patch_strategy(strategy: &'static str) -> Ext {
    Ext {
        patch_strategy: Some(strategy),
        ..NONE
    }
}

impl Ext {
    /// Strategic merge patch merges a list of scalars (a set) item by item.
    const fn merge(self) -> Ext {
        Ext {
            patch_strategy: Some("merge"),
            ..self
        }
    }

    /// Strategic merge patch merges the list's items by `key`.
    const fn merge_by(self, key: &'static str) -> Ext {
        self.patch("merge", key)
    }

    /// A patch strategy with a merge key.
    const fn patch(self, strategy: &'static str, key: &'static str) -> Ext {
        Ext {
            patch_strategy: Some(strategy),
            merge_key: Some(key),
            ..self
        }
    }
}

/// One property's extensions: definition (abbreviated, see [`expand`]),
/// property, extensions.
pub(crate) struct PropertyRule {
    /// The definition, as `core.v1.PodSpec` or `meta.v1.ObjectMeta`.
    pub(crate) definition: &'static str,
    /// The property's JSON name.
    pub(crate) property: &'static str,
    /// What Kubernetes writes on it.
    pub(crate) ext: Ext,
}

const fn p(definition: &'static str, property: &'static str, ext: Ext) -> PropertyRule {
    PropertyRule {
        definition,
        property,
        ext,
    }
}

/// Every property of the served definitions that carries a list, map or
/// patch extension in Kubernetes 1.32. Conditions lists merge by `type`
/// almost everywhere; lists Kubernetes marks `atomic` are listed too, since
/// server-side apply reads the mark.
#[rustfmt::skip]
pub(crate) const PROPERTIES: &[PropertyRule] = &[
    // admissionregistration.k8s.io: webhooks and admission policies.
    p("admissionregistration.v1.MatchResources", "excludeResourceRules", atomic()),
    p("admissionregistration.v1.MatchResources", "resourceRules", atomic()),
    p("admissionregistration.v1.MutatingWebhook", "admissionReviewVersions", atomic()),
    p("admissionregistration.v1.MutatingWebhook", "matchConditions", map(&["name"]).merge_by("name")),
    p("admissionregistration.v1.MutatingWebhook", "rules", atomic()),
    p("admissionregistration.v1.MutatingWebhookConfiguration", "webhooks", map(&["name"]).merge_by("name")),
    p("admissionregistration.v1.NamedRuleWithOperations", "resourceNames", atomic()),
    p("admissionregistration.v1.RuleWithOperations", "operations", atomic()),
    p("admissionregistration.v1.TypeChecking", "expressionWarnings", atomic()),
    p("admissionregistration.v1.ValidatingAdmissionPolicyBindingSpec", "validationActions", set()),
    p("admissionregistration.v1.ValidatingAdmissionPolicySpec", "auditAnnotations", atomic()),
    p("admissionregistration.v1.ValidatingAdmissionPolicySpec", "matchConditions", map(&["name"]).merge_by("name")),
    p("admissionregistration.v1.ValidatingAdmissionPolicySpec", "validations", atomic()),
    p("admissionregistration.v1.ValidatingAdmissionPolicySpec", "variables", map(&["name"]).merge_by("name")),
    p("admissionregistration.v1.ValidatingAdmissionPolicyStatus", "conditions", map(&["type"])),
    p("admissionregistration.v1.ValidatingWebhook", "admissionReviewVersions", atomic()),
    p("admissionregistration.v1.ValidatingWebhook", "matchConditions", map(&["name"]).merge_by("name")),
    p("admissionregistration.v1.ValidatingWebhook", "rules", atomic()),
    p("admissionregistration.v1.ValidatingWebhookConfiguration", "webhooks", map(&["name"]).merge_by("name")),
    // apps: workload specs and their statuses.
    p("apps.v1.DaemonSetStatus", "conditions", map(&["type"]).merge_by("type")),
    p("apps.v1.DeploymentSpec", "strategy", patch_strategy("retainKeys")),
    p("apps.v1.DeploymentStatus", "conditions", map(&["type"]).merge_by("type")),
    p("apps.v1.ReplicaSetStatus", "conditions", map(&["type"]).merge_by("type")),
    p("apps.v1.StatefulSetSpec", "volumeClaimTemplates", atomic()),
    p("apps.v1.StatefulSetStatus", "conditions", map(&["type"]).merge_by("type")),
    // authentication
    p("authentication.v1.TokenRequestSpec", "audiences", atomic()),
    p("authentication.v1.TokenReviewSpec", "audiences", atomic()),
    p("authentication.v1.TokenReviewStatus", "audiences", atomic()),
    p("authentication.v1.UserInfo", "groups", atomic()),
    // authorization
    p("authorization.v1.FieldSelectorAttributes", "requirements", atomic()),
    p("authorization.v1.LabelSelectorAttributes", "requirements", atomic()),
    p("authorization.v1.NonResourceRule", "nonResourceURLs", atomic()),
    p("authorization.v1.NonResourceRule", "verbs", atomic()),
    p("authorization.v1.ResourceRule", "apiGroups", atomic()),
    p("authorization.v1.ResourceRule", "resourceNames", atomic()),
    p("authorization.v1.ResourceRule", "resources", atomic()),
    p("authorization.v1.ResourceRule", "verbs", atomic()),
    p("authorization.v1.SubjectAccessReviewSpec", "groups", atomic()),
    p("authorization.v1.SubjectRulesReviewStatus", "nonResourceRules", atomic()),
    p("authorization.v1.SubjectRulesReviewStatus", "resourceRules", atomic()),
    // autoscaling: metric lists and conditions.
    p("autoscaling.v2.HPAScalingRules", "policies", atomic()),
    p("autoscaling.v2.HorizontalPodAutoscalerSpec", "metrics", atomic()),
    p("autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions", map(&["type"]).merge_by("type")),
    p("autoscaling.v2.HorizontalPodAutoscalerStatus", "currentMetrics", atomic()),
    // batch: jobs, their failure and success policies.
    p("batch.v1.CronJobStatus", "active", atomic()),
    p("batch.v1.JobStatus", "conditions", atomic().merge_by("type")),
    p("batch.v1.PodFailurePolicy", "rules", atomic()),
    p("batch.v1.PodFailurePolicyOnExitCodesRequirement", "values", set()),
    p("batch.v1.PodFailurePolicyRule", "onPodConditions", atomic()),
    p("batch.v1.SuccessPolicy", "rules", atomic()),
    p("batch.v1.UncountedTerminatedPods", "failed", set()),
    p("batch.v1.UncountedTerminatedPods", "succeeded", set()),
    // certificates.k8s.io.
    p("certificates.v1.CertificateSigningRequestSpec", "groups", atomic()),
    p("certificates.v1.CertificateSigningRequestSpec", "request", atomic()),
    p("certificates.v1.CertificateSigningRequestSpec", "usages", atomic()),
    p("certificates.v1.CertificateSigningRequestStatus", "certificate", atomic()),
    p("certificates.v1.CertificateSigningRequestStatus", "conditions", map(&["type"])),
    // core: pods, containers, services, nodes, volumes and the rest of /api/v1.
    p("core.v1.Capabilities", "add", atomic()),
    p("core.v1.Capabilities", "drop", atomic()),
    p("core.v1.CephFSPersistentVolumeSource", "monitors", atomic()),
    p("core.v1.CephFSVolumeSource", "monitors", atomic()),
    p("core.v1.ComponentStatus", "conditions", map(&["type"]).merge_by("type")),
    p("core.v1.ConfigMapProjection", "items", atomic()),
    p("core.v1.ConfigMapVolumeSource", "items", atomic()),
    p("core.v1.Container", "args", atomic()),
    p("core.v1.Container", "command", atomic()),
    p("core.v1.Container", "env", map(&["name"]).merge_by("name")),
    p("core.v1.Container", "envFrom", atomic()),
    p("core.v1.Container", "ports", map(&["containerPort", "protocol"]).merge_by("containerPort")),
    p("core.v1.Container", "resizePolicy", atomic()),
    p("core.v1.Container", "volumeDevices", map(&["devicePath"]).merge_by("devicePath")),
    p("core.v1.Container", "volumeMounts", map(&["mountPath"]).merge_by("mountPath")),
    p("core.v1.ContainerImage", "names", atomic()),
    p("core.v1.ContainerStatus", "allocatedResourcesStatus", map(&["name"]).merge_by("name")),
    p("core.v1.ContainerStatus", "volumeMounts", map(&["mountPath"]).merge_by("mountPath")),
    p("core.v1.DownwardAPIProjection", "items", atomic()),
    p("core.v1.DownwardAPIVolumeSource", "items", atomic()),
    p("core.v1.EndpointSubset", "addresses", atomic()),
    p("core.v1.EndpointSubset", "notReadyAddresses", atomic()),
    p("core.v1.EndpointSubset", "ports", atomic()),
    p("core.v1.Endpoints", "subsets", atomic()),
    p("core.v1.ExecAction", "command", atomic()),
    p("core.v1.FCVolumeSource", "targetWWNs", atomic()),
    p("core.v1.FCVolumeSource", "wwids", atomic()),
    p("core.v1.HTTPGetAction", "httpHeaders", atomic()),
    p("core.v1.HostAlias", "hostnames", atomic()),
    p("core.v1.ISCSIPersistentVolumeSource", "portals", atomic()),
    p("core.v1.ISCSIVolumeSource", "portals", atomic()),
    p("core.v1.LimitRangeSpec", "limits", atomic()),
    p("core.v1.LinuxContainerUser", "supplementalGroups", atomic()),
    p("core.v1.LoadBalancerIngress", "ports", atomic()),
    p("core.v1.LoadBalancerStatus", "ingress", atomic()),
    p("core.v1.NamespaceSpec", "finalizers", atomic()),
    p("core.v1.NamespaceStatus", "conditions", map(&["type"]).merge_by("type")),
    p("core.v1.NodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution", atomic()),
    p("core.v1.NodeSelector", "nodeSelectorTerms", atomic()),
    p("core.v1.NodeSelectorRequirement", "values", atomic()),
    p("core.v1.NodeSelectorTerm", "matchExpressions", atomic()),
    p("core.v1.NodeSelectorTerm", "matchFields", atomic()),
    p("core.v1.NodeSpec", "podCIDRs", set().merge()),
    p("core.v1.NodeSpec", "taints", atomic()),
    p("core.v1.NodeStatus", "addresses", map(&["type"]).merge_by("type")),
    p("core.v1.NodeStatus", "conditions", map(&["type"]).merge_by("type")),
    p("core.v1.NodeStatus", "images", atomic()),
    p("core.v1.NodeStatus", "runtimeHandlers", atomic()),
    p("core.v1.NodeStatus", "volumesAttached", atomic()),
    p("core.v1.NodeStatus", "volumesInUse", atomic()),
    p("core.v1.PersistentVolumeClaimSpec", "accessModes", atomic()),
    p("core.v1.PersistentVolumeClaimStatus", "accessModes", atomic()),
    p("core.v1.PersistentVolumeClaimStatus", "allocatedResourceStatuses", map_type("granular")),
    p("core.v1.PersistentVolumeClaimStatus", "conditions", map(&["type"]).merge_by("type")),
    p("core.v1.PersistentVolumeSpec", "accessModes", atomic()),
    p("core.v1.PersistentVolumeSpec", "claimRef", map_type("granular")),
    p("core.v1.PersistentVolumeSpec", "mountOptions", atomic()),
    p("core.v1.PodAffinity", "preferredDuringSchedulingIgnoredDuringExecution", atomic()),
    p("core.v1.PodAffinity", "requiredDuringSchedulingIgnoredDuringExecution", atomic()),
    p("core.v1.PodAffinityTerm", "matchLabelKeys", atomic()),
    p("core.v1.PodAffinityTerm", "mismatchLabelKeys", atomic()),
    p("core.v1.PodAffinityTerm", "namespaces", atomic()),
    p("core.v1.PodAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution", atomic()),
    p("core.v1.PodAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", atomic()),
    p("core.v1.PodDNSConfig", "nameservers", atomic()),
    p("core.v1.PodDNSConfig", "options", atomic()),
    p("core.v1.PodDNSConfig", "searches", atomic()),
    p("core.v1.PodSecurityContext", "supplementalGroups", atomic()),
    p("core.v1.PodSecurityContext", "sysctls", atomic()),
    p("core.v1.PodSpec", "containers", map(&["name"]).merge_by("name")),
    p("core.v1.PodSpec", "ephemeralContainers", map(&["name"]).merge_by("name")),
    p("core.v1.PodSpec", "hostAliases", map(&["ip"]).merge_by("ip")),
    p("core.v1.PodSpec", "imagePullSecrets", map(&["name"]).merge_by("name")),
    p("core.v1.PodSpec", "initContainers", map(&["name"]).merge_by("name")),
    p("core.v1.PodSpec", "nodeSelector", map_type("atomic")),
    p("core.v1.PodSpec", "readinessGates", atomic()),
    p("core.v1.PodSpec", "resourceClaims", map(&["name"]).patch("merge,retainKeys", "name")),
    p("core.v1.PodSpec", "schedulingGates", map(&["name"]).merge_by("name")),
    p("core.v1.PodSpec", "tolerations", atomic()),
    p("core.v1.PodSpec", "topologySpreadConstraints", map(&["topologyKey", "whenUnsatisfiable"]).merge_by("topologyKey")),
    p("core.v1.PodSpec", "volumes", map(&["name"]).patch("merge,retainKeys", "name")),
    p("core.v1.PodStatus", "conditions", map(&["type"]).merge_by("type")),
    p("core.v1.PodStatus", "containerStatuses", atomic()),
    p("core.v1.PodStatus", "ephemeralContainerStatuses", atomic()),
    p("core.v1.PodStatus", "hostIPs", atomic().merge_by("ip")),
    p("core.v1.PodStatus", "initContainerStatuses", atomic()),
    p("core.v1.PodStatus", "podIPs", map(&["ip"]).merge_by("ip")),
    p("core.v1.PodStatus", "resourceClaimStatuses", map(&["name"]).patch("merge,retainKeys", "name")),
    p("core.v1.ProjectedVolumeSource", "sources", atomic()),
    p("core.v1.RBDPersistentVolumeSource", "monitors", atomic()),
    p("core.v1.RBDVolumeSource", "monitors", atomic()),
    p("core.v1.ReplicationControllerSpec", "selector", map_type("atomic")),
    p("core.v1.ReplicationControllerStatus", "conditions", map(&["type"]).merge_by("type")),
    p("core.v1.ResourceQuotaSpec", "scopes", atomic()),
    p("core.v1.ResourceRequirements", "claims", map(&["name"])),
    p("core.v1.ResourceStatus", "resources", map(&["resourceID"])),
    p("core.v1.ScopeSelector", "matchExpressions", atomic()),
    p("core.v1.ScopedResourceSelectorRequirement", "values", atomic()),
    p("core.v1.SecretProjection", "items", atomic()),
    p("core.v1.SecretVolumeSource", "items", atomic()),
    p("core.v1.ServiceAccount", "imagePullSecrets", atomic()),
    p("core.v1.ServiceAccount", "secrets", map(&["name"]).merge_by("name")),
    p("core.v1.ServiceSpec", "clusterIPs", atomic()),
    p("core.v1.ServiceSpec", "externalIPs", atomic()),
    p("core.v1.ServiceSpec", "ipFamilies", atomic()),
    p("core.v1.ServiceSpec", "loadBalancerSourceRanges", atomic()),
    p("core.v1.ServiceSpec", "ports", map(&["port", "protocol"]).merge_by("port")),
    p("core.v1.ServiceSpec", "selector", map_type("atomic")),
    p("core.v1.ServiceStatus", "conditions", map(&["type"]).merge_by("type")),
    p("core.v1.TopologySelectorLabelRequirement", "values", atomic()),
    p("core.v1.TopologySelectorTerm", "matchLabelExpressions", atomic()),
    p("core.v1.TopologySpreadConstraint", "matchLabelKeys", atomic()),
    // discovery.k8s.io: EndpointSlices.
    p("discovery.v1.Endpoint", "addresses", set()),
    p("discovery.v1.EndpointHints", "forZones", atomic()),
    p("discovery.v1.EndpointSlice", "endpoints", atomic()),
    p("discovery.v1.EndpointSlice", "ports", atomic()),
    // flowcontrol.apiserver.k8s.io.
    p("flowcontrol.v1.FlowSchemaSpec", "rules", atomic()),
    p("flowcontrol.v1.FlowSchemaStatus", "conditions", map(&["type"]).merge_by("type")),
    p("flowcontrol.v1.NonResourcePolicyRule", "nonResourceURLs", set()),
    p("flowcontrol.v1.NonResourcePolicyRule", "verbs", set()),
    p("flowcontrol.v1.PolicyRulesWithSubjects", "nonResourceRules", atomic()),
    p("flowcontrol.v1.PolicyRulesWithSubjects", "resourceRules", atomic()),
    p("flowcontrol.v1.PolicyRulesWithSubjects", "subjects", atomic()),
    p("flowcontrol.v1.PriorityLevelConfigurationStatus", "conditions", map(&["type"]).merge_by("type")),
    p("flowcontrol.v1.ResourcePolicyRule", "apiGroups", set()),
    p("flowcontrol.v1.ResourcePolicyRule", "namespaces", set()),
    p("flowcontrol.v1.ResourcePolicyRule", "resources", set()),
    p("flowcontrol.v1.ResourcePolicyRule", "verbs", set()),
    // networking.k8s.io: Ingresses and NetworkPolicies.
    p("networking.v1.HTTPIngressRuleValue", "paths", atomic()),
    p("networking.v1.IPBlock", "except", atomic()),
    p("networking.v1.IngressLoadBalancerIngress", "ports", atomic()),
    p("networking.v1.IngressLoadBalancerStatus", "ingress", atomic()),
    p("networking.v1.IngressSpec", "rules", atomic()),
    p("networking.v1.IngressSpec", "tls", atomic()),
    p("networking.v1.IngressTLS", "hosts", atomic()),
    p("networking.v1.NetworkPolicyEgressRule", "ports", atomic()),
    p("networking.v1.NetworkPolicyEgressRule", "to", atomic()),
    p("networking.v1.NetworkPolicyIngressRule", "from", atomic()),
    p("networking.v1.NetworkPolicyIngressRule", "ports", atomic()),
    p("networking.v1.NetworkPolicySpec", "egress", atomic()),
    p("networking.v1.NetworkPolicySpec", "ingress", atomic()),
    p("networking.v1.NetworkPolicySpec", "policyTypes", atomic()),
    // node.k8s.io: RuntimeClasses.
    p("node.v1.Scheduling", "nodeSelector", map_type("atomic")),
    p("node.v1.Scheduling", "tolerations", atomic()),
    // policy: PodDisruptionBudgets.
    p("policy.v1.PodDisruptionBudgetSpec", "selector", patch_strategy("replace")),
    p("policy.v1.PodDisruptionBudgetStatus", "conditions", map(&["type"]).merge_by("type")),
    // rbac.authorization.k8s.io.
    p("rbac.v1.AggregationRule", "clusterRoleSelectors", atomic()),
    p("rbac.v1.ClusterRole", "rules", atomic()),
    p("rbac.v1.ClusterRoleBinding", "subjects", atomic()),
    p("rbac.v1.PolicyRule", "apiGroups", atomic()),
    p("rbac.v1.PolicyRule", "nonResourceURLs", atomic()),
    p("rbac.v1.PolicyRule", "resourceNames", atomic()),
    p("rbac.v1.PolicyRule", "resources", atomic()),
    p("rbac.v1.PolicyRule", "verbs", atomic()),
    p("rbac.v1.Role", "rules", atomic()),
    p("rbac.v1.RoleBinding", "subjects", atomic()),
    // storage.k8s.io.
    p("storage.v1.CSIDriverSpec", "tokenRequests", atomic()),
    p("storage.v1.CSIDriverSpec", "volumeLifecycleModes", set()),
    p("storage.v1.CSINodeDriver", "topologyKeys", atomic()),
    p("storage.v1.CSINodeSpec", "drivers", map(&["name"]).merge_by("name")),
    p("storage.v1.StorageClass", "allowedTopologies", atomic()),
    p("storage.v1.StorageClass", "mountOptions", atomic()),
    // apiextensions.k8s.io: CustomResourceDefinitions.
    p("apiextensions.v1.CustomResourceDefinitionNames", "categories", atomic()),
    p("apiextensions.v1.CustomResourceDefinitionNames", "shortNames", atomic()),
    p("apiextensions.v1.CustomResourceDefinitionSpec", "versions", atomic()),
    p("apiextensions.v1.CustomResourceDefinitionStatus", "conditions", map(&["type"])),
    p("apiextensions.v1.CustomResourceDefinitionStatus", "storedVersions", atomic()),
    p("apiextensions.v1.CustomResourceDefinitionVersion", "additionalPrinterColumns", atomic()),
    p("apiextensions.v1.CustomResourceDefinitionVersion", "selectableFields", atomic()),
    p("apiextensions.v1.JSONSchemaProps", "allOf", atomic()),
    p("apiextensions.v1.JSONSchemaProps", "anyOf", atomic()),
    p("apiextensions.v1.JSONSchemaProps", "enum", atomic()),
    p("apiextensions.v1.JSONSchemaProps", "oneOf", atomic()),
    p("apiextensions.v1.JSONSchemaProps", "required", atomic()),
    p("apiextensions.v1.JSONSchemaProps", "x-kubernetes-list-map-keys", atomic()),
    p("apiextensions.v1.JSONSchemaProps", "x-kubernetes-validations", map(&["rule"]).merge_by("rule")),
    p("apiextensions.v1.WebhookConversion", "conversionReviewVersions", atomic()),
    // meta/v1: ObjectMeta, selectors and status types every kind shares.
    p("meta.v1.APIGroup", "serverAddressByClientCIDRs", atomic()),
    p("meta.v1.APIGroup", "versions", atomic()),
    p("meta.v1.APIGroupList", "groups", atomic()),
    p("meta.v1.APIResource", "categories", atomic()),
    p("meta.v1.APIResource", "shortNames", atomic()),
    p("meta.v1.APIResourceList", "resources", atomic()),
    p("meta.v1.APIVersions", "serverAddressByClientCIDRs", atomic()),
    p("meta.v1.APIVersions", "versions", atomic()),
    p("meta.v1.DeleteOptions", "dryRun", atomic()),
    p("meta.v1.FieldSelectorRequirement", "values", atomic()),
    p("meta.v1.LabelSelector", "matchExpressions", atomic()),
    p("meta.v1.LabelSelectorRequirement", "values", atomic()),
    p("meta.v1.ObjectMeta", "finalizers", set().merge()),
    p("meta.v1.ObjectMeta", "managedFields", atomic()),
    p("meta.v1.ObjectMeta", "ownerReferences", map(&["uid"]).merge_by("uid")),
    p("meta.v1.Status", "details", atomic()),
    p("meta.v1.StatusDetails", "causes", atomic()),
];

/// Definitions Kubernetes marks `+structType=atomic`: references and
/// selectors that are replaced whole (`x-kubernetes-map-type: atomic` on the
/// definition itself).
pub(crate) const ATOMIC_TYPES: &[&str] = &[
    "admissionregistration.v1.MatchResources",
    "admissionregistration.v1.NamedRuleWithOperations",
    "admissionregistration.v1.ParamKind",
    "admissionregistration.v1.ParamRef",
    "admissionregistration.v1.Variable",
    "autoscaling.v1.CrossVersionObjectReference",
    "core.v1.ConfigMapKeySelector",
    "core.v1.EndpointAddress",
    "core.v1.EndpointPort",
    "core.v1.LocalObjectReference",
    "core.v1.NodeSelector",
    "core.v1.NodeSelectorTerm",
    "core.v1.ObjectFieldSelector",
    "core.v1.ObjectReference",
    "core.v1.ResourceFieldSelector",
    "core.v1.ScopeSelector",
    "core.v1.SecretKeySelector",
    "core.v1.SecretReference",
    "core.v1.TopologySelectorTerm",
    "core.v1.TypedLocalObjectReference",
    "discovery.v1.EndpointPort",
    "networking.v1.ServiceBackendPort",
    "rbac.v1.RoleRef",
    "rbac.v1.Subject",
    "meta.v1.LabelSelector",
    "meta.v1.OwnerReference",
];

/// Defaults Kubernetes publishes in its schemas and that merging depends
/// on: a port's `protocol` is part of its list-map key, so server-side
/// apply needs the value an omitted one stands for.
pub(crate) const DEFAULTS: &[(&str, &str, &str)] = &[
    ("core.v1.ContainerPort", "protocol", "TCP"),
    ("core.v1.ServicePort", "protocol", "TCP"),
];

/// The full definition name for an abbreviation of [`PROPERTIES`]:
/// `meta.v1.X` is apimachinery's, `apiextensions.v1.X` the apiextensions
/// server's, anything else an `io.k8s.api` group's.
pub(crate) fn expand(short: &str) -> String {
    if let Some(rest) = short.strip_prefix("meta.") {
        format!("io.k8s.apimachinery.pkg.apis.meta.{rest}")
    } else if let Some(rest) = short.strip_prefix("apiextensions.") {
        format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{rest}")
    } else {
        format!("io.k8s.api.{short}")
    }
}

/// Writes the table's extensions into `defs` (definition name to schema).
/// Entries for definitions `defs` does not hold are skipped, so a smaller
/// set of definitions can be completed too.
pub(crate) fn apply(defs: &mut Map<String, Value>) {
    for rule in PROPERTIES {
        if let Some(Value::Object(prop)) = property_mut(defs, rule.definition, rule.property) {
            write_ext(prop, rule.ext);
        }
    }
    for short in ATOMIC_TYPES {
        if let Some(Value::Object(def)) = defs.get_mut(&expand(short)) {
            def.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
    for (short, property, default) in DEFAULTS {
        if let Some(Value::Object(prop)) = property_mut(defs, short, property) {
            prop.insert("default".into(), (*default).into());
        }
    }
}

fn property_mut<'a>(
    defs: &'a mut Map<String, Value>,
    short: &str,
    property: &str,
) -> Option<&'a mut Value> {
    defs.get_mut(&expand(short))?
        .get_mut("properties")?
        .get_mut(property)
}

fn write_ext(prop: &mut Map<String, Value>, ext: Ext) {
    let strings = [
        ("x-kubernetes-list-type", ext.list_type),
        ("x-kubernetes-map-type", ext.map_type),
        ("x-kubernetes-patch-strategy", ext.patch_strategy),
        ("x-kubernetes-patch-merge-key", ext.merge_key),
    ];
    for (key, value) in strings {
        if let Some(v) = value {
            prop.insert(key.into(), v.into());
        }
    }
    if !ext.map_keys.is_empty() {
        let keys = ext.map_keys.iter().map(|k| Value::from(*k)).collect();
        prop.insert("x-kubernetes-list-map-keys".into(), Value::Array(keys));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::definitions;

    #[test]
    fn every_rule_names_an_existing_property() {
        let defs = definitions();
        for rule in PROPERTIES {
            let name = expand(rule.definition);
            let def = defs
                .get(&name)
                .unwrap_or_else(|| panic!("no definition {name}"));
            assert!(
                def.property(rule.property).is_some(),
                "{name} has no property {}",
                rule.property
            );
        }
        for short in ATOMIC_TYPES {
            assert!(defs.get(&expand(short)).is_some(), "no definition {short}");
        }
        for (short, property, _) in DEFAULTS {
            assert!(
                defs.get(&expand(short))
                    .unwrap()
                    .property(property)
                    .is_some()
            );
        }
    }

    #[test]
    fn rules_are_consistent() {
        for rule in PROPERTIES {
            let ext = rule.ext;
            // A map list always names its keys, and only map lists do.
            assert_eq!(
                ext.list_type == Some("map"),
                !ext.map_keys.is_empty(),
                "{}.{}",
                rule.definition,
                rule.property
            );
            // A merge key only makes sense with the merge strategy.
            if ext.merge_key.is_some() {
                assert!(
                    ext.patch_strategy.unwrap_or("").contains("merge"),
                    "{}.{}",
                    rule.definition,
                    rule.property
                );
            }
        }
    }
}
