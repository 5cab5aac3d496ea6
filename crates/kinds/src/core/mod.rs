//! The core group (`/api/v1`): Pods, Services, Endpoints, ConfigMaps,
//! Secrets, ServiceAccounts, Nodes, Namespaces, Events (also served as
//! events.k8s.io/v1), LimitRanges, ResourceQuotas, PersistentVolumes,
//! PersistentVolumeClaims; plus discovery.k8s.io EndpointSlices.

use crate::ResourceDef;

/// The core group's resources (and EndpointSlices and events.k8s.io Events).
pub(crate) fn resources() -> Vec<ResourceDef> {
    Vec::new()
}
