//! Versions Kubernetes removed but old manifests still use (apps/v1beta1, apps/v1beta2, extensions/v1beta1), served by converting to and from the current storage versions.

use crate::ResourceDef;

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    Vec::new()
}
