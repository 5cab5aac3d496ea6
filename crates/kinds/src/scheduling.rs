//! scheduling.k8s.io/v1: PriorityClasses.

use crate::ResourceDef;

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    Vec::new()
}
