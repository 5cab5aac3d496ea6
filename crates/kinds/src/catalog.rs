//! The catalogue: every built-in resource, assembled from the modules that
//! define them, and a builder that keeps each definition short.

use std::sync::Arc;

use crate::{Conversion, ResourceDef, Storage, Strategy, Subresource};

/// Every built-in resource at every served version.
pub fn builtin() -> Vec<ResourceDef> {
    let mut all = Vec::new();
    for group in crate::GROUPS {
        all.extend(group());
    }
    all
}

/// The verbs of an ordinary resource.
pub const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Starts a resource definition: `group` ("" for core), `version`, `kind`,
/// plural `resource`, and the strategy. Defaults: namespaced, every verb,
/// singular = lowercase kind, stored as itself in this version, preferred,
/// schema named after k8s-openapi's type for this group/version/kind.
pub fn resource(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    strategy: Arc<dyn Strategy>,
) -> ResourceBuilder {
    ResourceBuilder(ResourceDef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: Vec::new(),
        categories: Vec::new(),
        namespaced: true,
        verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
        subresources: Vec::new(),
        storage: Storage {
            group: group.into(),
            resource: plural.into(),
            version: version.into(),
        },
        preferred: true,
        schema: Some(schema_name(group, version, kind)),
        strategy,
        conversion: None,
    })
}

/// The OpenAPI definition name Kubernetes (and k8s-openapi) give a kind:
/// `io.k8s.api.core.v1.Pod`, `io.k8s.api.apps.v1.Deployment`,
/// `io.k8s.api.rbac.v1.Role`, `io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition`.
pub fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let package = match group {
        "" => "core".to_owned(),
        "apiextensions.k8s.io" => {
            return format!(
                "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}"
            );
        }
        // Kubernetes' Go package is the group's first label.
        g => g.split('.').next().unwrap_or(g).to_owned(),
    };
    format!("io.k8s.api.{package}.{version}.{kind}")
}

/// Kubernetes' ordering of versions: GA over beta over alpha, then by
/// number (`v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1`).
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, minor) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n.parse().unwrap_or(0))
    } else if tail.is_empty() {
        (2, 0)
    } else {
        (0, 0)
    };
    (stage, major, minor)
}

/// A resource definition under construction; see [`resource`].
pub struct ResourceBuilder(ResourceDef);

impl ResourceBuilder {
    /// Sets the short names (`po`, `svc`, `deploy`).
    pub fn short_names(mut self, names: &[&str]) -> Self {
        self.0.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets the categories (`all`).
    pub fn categories(mut self, categories: &[&str]) -> Self {
        self.0.categories = categories.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Makes the resource cluster-scoped.
    pub fn cluster_scoped(mut self) -> Self {
        self.0.namespaced = false;
        self
    }

    /// Replaces the verbs.
    pub fn verbs(mut self, verbs: &[&str]) -> Self {
        self.0.verbs = verbs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Adds the `status` subresource (get, patch, update of the same kind).
    pub fn status(mut self) -> Self {
        let sub = Subresource {
            name: "status".into(),
            group: self.0.group.clone(),
            version: self.0.version.clone(),
            kind: self.0.kind.clone(),
            verbs: vec!["get".into(), "patch".into(), "update".into()],
        };
        self.0.subresources.push(sub);
        self
    }

    /// Adds the `scale` subresource (autoscaling/v1 Scale).
    pub fn scale(self) -> Self {
        self.subresource(
            "scale",
            "autoscaling",
            "v1",
            "Scale",
            &["get", "patch", "update"],
        )
    }

    /// Adds any subresource.
    pub fn subresource(
        mut self,
        name: &str,
        group: &str,
        version: &str,
        kind: &str,
        verbs: &[&str],
    ) -> Self {
        self.0.subresources.push(Subresource {
            name: name.into(),
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// Sets the singular name when it is not the lowercase kind.
    pub fn singular(mut self, singular: &str) -> Self {
        self.0.singular = singular.into();
        self
    }

    /// Serves this version from another version's storage, converting.
    pub fn stored_as(
        mut self,
        group: &str,
        resource: &str,
        version: &str,
        conversion: Arc<dyn Conversion>,
    ) -> Self {
        self.0.storage = Storage {
            group: group.into(),
            resource: resource.into(),
            version: version.into(),
        };
        self.0.conversion = Some(conversion);
        self
    }

    /// Marks this version as not the group's preferred one.
    pub fn not_preferred(mut self) -> Self {
        self.0.preferred = false;
        self
    }

    /// Sets the OpenAPI definition name, or `None` when there is none.
    pub fn schema(mut self, schema: Option<&str>) -> Self {
        self.0.schema = schema.map(str::to_owned);
        self
    }

    /// The finished definition.
    pub fn build(self) -> ResourceDef {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_match_kubernetes() {
        assert_eq!(schema_name("", "v1", "Pod"), "io.k8s.api.core.v1.Pod");
        assert_eq!(
            schema_name("apps", "v1", "Deployment"),
            "io.k8s.api.apps.v1.Deployment"
        );
        assert_eq!(
            schema_name("rbac.authorization.k8s.io", "v1", "Role"),
            "io.k8s.api.rbac.v1.Role"
        );
        assert_eq!(
            schema_name("networking.k8s.io", "v1", "Ingress"),
            "io.k8s.api.networking.v1.Ingress"
        );
        assert_eq!(
            schema_name("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema"),
            "io.k8s.api.flowcontrol.v1.FlowSchema"
        );
        assert_eq!(
            schema_name("events.k8s.io", "v1", "Event"),
            "io.k8s.api.events.v1.Event"
        );
        assert_eq!(
            schema_name("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
        );
    }
}
