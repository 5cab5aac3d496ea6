//! policy/v1: PodDisruptionBudgets (and the Eviction subresource kind).

use crate::ResourceDef;

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    Vec::new()
}
