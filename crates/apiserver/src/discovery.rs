//! Discovery: what the server serves, in the two forms clients read.
//!
//! kubectl asks `/api` and `/apis` for aggregated discovery (one document
//! with every group, version and resource) and recognizes it only by the
//! response's Content-Type. The Python client and older tools read the
//! legacy form: group lists, then one `APIResourceList` per group/version.

use serde_json::{Value, json};

use crate::registry::Catalog;

/// The Content-Type of aggregated discovery v2.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// The Content-Type of aggregated discovery v2beta1.
pub const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated version an Accept header asks for, if any (in the
/// client's order of preference).
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        let params: Vec<String> = part.split(';').map(|p| p.trim().replace(' ', "")).collect();
        let has = |p: &str| params.iter().any(|x| x == p);
        if has("as=APIGroupDiscoveryList") && has("g=apidiscovery.k8s.io") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        }
    }
    None
}

/// The version Gantry reports: Kubernetes 1.32, which also makes the
/// kubectl dispatcher on these machines pick kubectl 1.32.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0+gantry",
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2026-11-23T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api` in legacy form.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

fn api_group(catalog: &Catalog, name: &str) -> Option<Value> {
    let group = catalog.groups().iter().find(|g| g.name == name)?;
    let versions: Vec<Value> = group
        .versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(name, v), "version": v}))
        .collect();
    Some(json!({
        "name": name,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    }))
}

/// `/apis` in legacy form.
pub fn api_group_list(catalog: &Catalog) -> Value {
    let groups: Vec<Value> = catalog
        .groups()
        .iter()
        .filter(|g| !g.name.is_empty())
        .filter_map(|g| api_group(catalog, &g.name))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group_document(catalog: &Catalog, name: &str) -> Option<Value> {
    let mut g = api_group(catalog, name)?;
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/api/v1` or `/apis/<group>/<version>`: an `APIResourceList`.
pub fn resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    if !catalog.serves(group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for r in catalog.in_version(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in &r.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if sub.group != r.group || sub.version != r.version {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            resources.push(entry);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    }))
}

fn aggregated_group(catalog: &Catalog, name: &str) -> Option<Value> {
    let group = catalog.groups().iter().find(|g| g.name == name)?;
    let versions: Vec<Value> = group
        .versions
        .iter()
        .map(|version| {
            let resources: Vec<Value> = catalog
                .in_version(name, version)
                .map(|r| {
                    let mut entry = json!({
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": r.verbs,
                    });
                    if !r.short_names.is_empty() {
                        entry["shortNames"] = json!(r.short_names);
                    }
                    if !r.categories.is_empty() {
                        entry["categories"] = json!(r.categories);
                    }
                    if !r.subresources.is_empty() {
                        entry["subresources"] = Value::Array(
                            r.subresources
                                .iter()
                                .map(|s| {
                                    json!({
                                        "subresource": s.name,
                                        "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                                        "verbs": s.verbs,
                                    })
                                })
                                .collect(),
                        );
                    }
                    entry
                })
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let metadata = if name.is_empty() {
        json!({})
    } else {
        json!({"name": name})
    };
    Some(json!({"metadata": metadata, "versions": versions}))
}

/// Aggregated discovery for `/api` (`core`) or `/apis` (every other group).
pub fn aggregated(catalog: &Catalog, core: bool, version: &str) -> Value {
    let items: Vec<Value> = catalog
        .groups()
        .iter()
        .filter(|g| g.name.is_empty() == core)
        .filter_map(|g| aggregated_group(catalog, &g.name))
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_kubectls_accept_header() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(kubectl), Some("v2"));
        assert_eq!(wants_aggregated("application/json"), None);
        assert_eq!(
            wants_aggregated(
                "application/json;as=APIGroupDiscoveryList;v=v2beta1;g=apidiscovery.k8s.io"
            ),
            Some("v2beta1")
        );
    }

    #[test]
    fn documents_describe_the_catalogue() {
        let catalog = Catalog::new(kinds::builtin());
        let core = resource_list(&catalog, "", "v1").unwrap();
        let pods = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["singularName"], "pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert!(
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "pods/status")
        );
        let agg = aggregated(&catalog, false, "v2");
        let apps = agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["responseKind"]["kind"], "Deployment");
        assert_eq!(deploy["scope"], "Namespaced");
        let scale = deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .unwrap();
        assert_eq!(scale["responseKind"]["group"], "autoscaling");
        let groups = api_group_list(&catalog);
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["preferredVersion"].is_object())
        );
        assert!(resource_list(&catalog, "apps", "v9").is_none());
    }
}
