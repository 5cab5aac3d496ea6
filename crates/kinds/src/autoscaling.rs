//! autoscaling: HorizontalPodAutoscalers (v2, and v1 converted).

use crate::ResourceDef;

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    Vec::new()
}
