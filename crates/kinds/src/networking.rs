//! networking.k8s.io/v1: Ingresses, IngressClasses, NetworkPolicies.

use crate::ResourceDef;

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    Vec::new()
}
