//! apps/v1: Deployments, ReplicaSets, StatefulSets, DaemonSets, ControllerRevisions.

use crate::ResourceDef;

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    Vec::new()
}
