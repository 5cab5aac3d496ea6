//! apiextensions.k8s.io: CustomResourceDefinitions (the kind itself; custom resources are served by `apiserver` from them).

use crate::ResourceDef;

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    Vec::new()
}
