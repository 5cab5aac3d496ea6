//! The live set of served resources: the built-in catalogue plus one entry
//! per served version of each established CustomResourceDefinition.
//!
//! Readers take a cheap snapshot (`Arc<Catalog>`); a CRD change builds a new
//! catalogue and swaps it in, so a request never sees a half-updated set.

use std::collections::HashMap;
use std::sync::Arc;

use kinds::ResourceDef;
pub use kinds::catalog::version_priority;
use parking_lot::RwLock;

/// The order groups appear in discovery. kubectl resolves a bare resource
/// name (`deployments`, `ingresses`) to the first group serving it, so the
/// removed `extensions` group comes last (see [`group_rank`]).
const GROUP_ORDER: &[&str] = &[
    "",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
];

/// Where a group goes in discovery: built-ins in Kubernetes' order, then
/// custom groups alphabetically, then the removed `extensions` group.
fn group_rank(group: &str) -> (u8, usize, String) {
    if group == "extensions" {
        return (2, 0, String::new());
    }
    match GROUP_ORDER.iter().position(|known| *known == group) {
        Some(i) => (0, i, String::new()),
        None => (1, 0, group.to_owned()),
    }
}

/// One API group as discovery shows it.
#[derive(Clone, Debug)]
pub struct Group {
    /// Its name ("" for core).
    pub name: String,
    /// Versions, preferred first.
    pub versions: Vec<String>,
}

/// An immutable snapshot of everything served.
#[derive(Debug, Default)]
pub struct Catalog {
    resources: Vec<Arc<ResourceDef>>,
    by_path: HashMap<(String, String, String), Arc<ResourceDef>>,
    groups: Vec<Group>,
}

impl Catalog {
    /// Builds a catalogue from resource definitions.
    pub fn new(defs: Vec<ResourceDef>) -> Self {
        let resources: Vec<Arc<ResourceDef>> = defs.into_iter().map(Arc::new).collect();
        let mut by_path = HashMap::new();
        for r in &resources {
            by_path.insert(
                (r.group.clone(), r.version.clone(), r.plural.clone()),
                Arc::clone(r),
            );
        }
        let mut names: Vec<String> = Vec::new();
        for r in &resources {
            if !names.contains(&r.group) {
                names.push(r.group.clone());
            }
        }
        names.sort_by_key(|g| group_rank(g));
        let groups = names
            .into_iter()
            .map(|name| {
                let mut versions: Vec<(bool, String)> = Vec::new();
                for r in resources.iter().filter(|r| r.group == name) {
                    match versions.iter_mut().find(|(_, v)| *v == r.version) {
                        Some(entry) => entry.0 |= r.preferred,
                        None => versions.push((r.preferred, r.version.clone())),
                    }
                }
                versions.sort_by(|(pa, a), (pb, b)| {
                    pb.cmp(pa)
                        .then_with(|| version_priority(b).cmp(&version_priority(a)))
                });
                Group {
                    name,
                    versions: versions.into_iter().map(|(_, v)| v).collect(),
                }
            })
            .collect();
        Self {
            resources,
            by_path,
            groups,
        }
    }

    /// The resource served at `group`/`version`/`plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceDef>> {
        self.by_path
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
    }

    /// Every resource, in catalogue order.
    pub fn resources(&self) -> &[Arc<ResourceDef>] {
        &self.resources
    }

    /// Resources of one group/version, in catalogue order.
    pub fn in_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceDef>> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }

    /// Groups in discovery order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Whether `group` serves `version`.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.groups
            .iter()
            .any(|g| g.name == group && g.versions.iter().any(|v| v == version))
    }

    /// The definition that serves a storage resource in its storage version
    /// (for reading objects regardless of the version a client used).
    pub fn storage_def(&self, storage: &kinds::Storage) -> Option<&Arc<ResourceDef>> {
        self.resources.iter().find(|r| {
            r.conversion.is_none()
                && r.storage == *storage
                && r.group == storage.group
                && r.version == storage.version
        })
    }
}

/// The registry: the current catalogue.
#[derive(Debug)]
pub struct Registry {
    current: RwLock<Arc<Catalog>>,
}

impl Registry {
    /// A registry serving the built-in kinds.
    pub fn new(builtin: Vec<ResourceDef>) -> Self {
        Self {
            current: RwLock::new(Arc::new(Catalog::new(builtin))),
        }
    }

    /// The current catalogue.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.current.read())
    }

    /// Replaces what is served.
    pub fn install(&self, defs: Vec<ResourceDef>) {
        *self.current.write() = Arc::new(Catalog::new(defs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1beta1", "v1", "v2", "v1alpha1", "v1beta2", "v2beta1"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, ["v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1"]);
    }

    #[test]
    fn builtin_groups_order_and_preferred_versions() {
        let catalog = Catalog::new(kinds::builtin());
        let names: Vec<&str> = catalog.groups().iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names[0], "");
        assert_eq!(names[1], "apps");
        assert_eq!(*names.last().unwrap(), "extensions");
        let apps = &catalog.groups()[1];
        assert_eq!(apps.versions[0], "v1");
        let autoscaling = catalog
            .groups()
            .iter()
            .find(|g| g.name == "autoscaling")
            .unwrap();
        assert_eq!(autoscaling.versions[0], "v2");
        assert!(catalog.get("apps", "v1", "deployments").is_some());
        assert!(catalog.get("", "v1", "pods").is_some());
        assert!(
            catalog
                .get("extensions", "v1beta1", "deployments")
                .is_some()
        );
    }
}
