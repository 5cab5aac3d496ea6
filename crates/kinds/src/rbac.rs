//! rbac.authorization.k8s.io/v1: Roles, ClusterRoles and their bindings.

use crate::ResourceDef;

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    Vec::new()
}
