//! Persistent volumes as kube-scheduler's VolumeBinding and VolumeZone plugins see them,
//! for volumes bound ahead of time (no provisioning, no binding by the scheduler):
//! - a pod whose claim is missing, being deleted or not bound yet fits no node, and says
//!   which claim;
//! - a bound volume's `spec.nodeAffinity` must match the node (VolumeBinding);
//! - a bound volume's zone and region labels (`topology.kubernetes.io/zone`, `.../region`
//!   and their `failure-domain.beta.kubernetes.io` forerunners; several values joined by
//!   `__`) must name the node's own (VolumeZone).
//!
//! What the pod needs is worked out once per scheduling attempt ([`PodState`]) from the
//! claims and volumes the scheduler watches ([`Claims`]).

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod};

use super::{Filter, NodeInfo, PodContext, Reason, term_matches};

/// The topology labels a volume's zone is read from, as kube-scheduler's VolumeZone.
const TOPOLOGY_LABELS: [&str; 4] = [
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
];

/// The claims and volumes of the cluster, as the scheduler's watches last saw them.
#[derive(Debug, Default)]
pub struct Claims {
    claims: HashMap<(String, String), PersistentVolumeClaim>,
    volumes: HashMap<String, PersistentVolume>,
}

impl Claims {
    /// Replaces every claim (after a list).
    pub fn replace_claims(&mut self, claims: Vec<PersistentVolumeClaim>) {
        self.claims = claims.into_iter().map(|c| (claim_key(&c), c)).collect();
    }

    /// Adds or updates a claim.
    pub fn put_claim(&mut self, claim: PersistentVolumeClaim) {
        self.claims.insert(claim_key(&claim), claim);
    }

    /// Forgets a claim.
    pub fn remove_claim(&mut self, claim: &PersistentVolumeClaim) {
        self.claims.remove(&claim_key(claim));
    }

    /// Replaces every volume (after a list).
    pub fn replace_volumes(&mut self, volumes: Vec<PersistentVolume>) {
        self.volumes = volumes
            .into_iter()
            .map(|v| (v.metadata.name.clone().unwrap_or_default(), v))
            .collect();
    }

    /// Adds or updates a volume.
    pub fn put_volume(&mut self, volume: PersistentVolume) {
        self.volumes
            .insert(volume.metadata.name.clone().unwrap_or_default(), volume);
    }

    /// Forgets a volume.
    pub fn remove_volume(&mut self, volume: &PersistentVolume) {
        self.volumes
            .remove(volume.metadata.name.as_deref().unwrap_or_default());
    }
}

fn claim_key(c: &PersistentVolumeClaim) -> (String, String) {
    (
        c.metadata.namespace.clone().unwrap_or_default(),
        c.metadata.name.clone().unwrap_or_default(),
    )
}

/// What a pod's persistent volumes ask of a node.
#[derive(Debug, Default)]
pub(crate) struct PodState {
    /// Why no node can do (a claim missing, being deleted or unbound).
    unresolvable: Option<Reason>,
    /// The bound volumes' required node affinity.
    affinity: Vec<NodeSelector>,
    /// Per topology label, the values the node's must be one of (one set per volume).
    zones: Vec<(&'static str, BTreeSet<String>)>,
}

impl PodState {
    /// Looks the pod's claims and their volumes up.
    pub(crate) fn new(pod: &Pod, namespace: &str, claims: &Claims) -> Self {
        let mut state = Self::default();
        let names = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.as_str());
        for name in names {
            let Some(claim) = claims.claims.get(&(namespace.to_owned(), name.to_owned())) else {
                state.unresolvable = Some(format!("persistentvolumeclaim \"{name}\" not found"));
                return state;
            };
            if claim.metadata.deletion_timestamp.is_some() {
                state.unresolvable =
                    Some(format!("persistentvolumeclaim \"{name}\" is being deleted"));
                return state;
            }
            let bound_to = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .filter(|v| !v.is_empty());
            let Some(volume) = bound_to.and_then(|v| claims.volumes.get(v)) else {
                // Binding is the volume controller's; this scheduler does not pick
                // volumes for WaitForFirstConsumer claims either.
                state.unresolvable =
                    Some("pod has unbound immediate PersistentVolumeClaims".into());
                return state;
            };
            if let Some(required) = volume
                .spec
                .as_ref()
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.clone())
            {
                state.affinity.push(required);
            }
            let labels = volume.metadata.labels.as_ref();
            for key in TOPOLOGY_LABELS {
                if let Some(value) = labels.and_then(|l| l.get(key)) {
                    let allowed = value
                        .split("__")
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                        .collect();
                    state.zones.push((key, allowed));
                }
            }
        }
        state
    }
}

/// A pod's claims must be bound, and their volumes' node affinity must match the node.
pub struct VolumeBinding;

impl Filter for VolumeBinding {
    fn name(&self) -> &'static str {
        "VolumeBinding"
    }
    fn filter(&self, pod: &PodContext, node: &NodeInfo) -> Result<(), Vec<Reason>> {
        let state = &pod.volumes;
        if let Some(why) = &state.unresolvable {
            return Err(vec![why.clone()]);
        }
        let labels = node.labels();
        let fits = state.affinity.iter().all(|selector| {
            selector
                .node_selector_terms
                .iter()
                .any(|t| term_matches(t, labels, node.name()))
        });
        if fits {
            Ok(())
        } else {
            Err(vec!["node(s) had volume node affinity conflict".into()])
        }
    }
}

/// A pod's bound volumes must be in the node's zone and region.
pub struct VolumeZone;

impl Filter for VolumeZone {
    fn name(&self) -> &'static str {
        "VolumeZone"
    }
    fn filter(&self, pod: &PodContext, node: &NodeInfo) -> Result<(), Vec<Reason>> {
        let labels = node.labels();
        let fits = pod.volumes.zones.iter().all(|(key, allowed)| {
            // A node without the label is not held to it, as in kube-scheduler.
            labels.get(*key).is_none_or(|v| allowed.contains(v))
        });
        if fits {
            Ok(())
        } else {
            Err(vec!["node(s) had no available volume zone".into()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{node, pod};
    use super::super::{Cluster, default_filters, pod_requests, unschedulable_message};
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn claims() -> Claims {
        let mut c = Claims::default();
        let claim = |name: &str, volume: Option<&str>| -> PersistentVolumeClaim {
            serde_json::from_value(json!({
                "metadata": {"namespace": "ns", "name": name},
                "spec": {"volumeName": volume, "accessModes": ["ReadWriteOnce"]}
            }))
            .unwrap()
        };
        c.replace_claims(vec![
            claim("east", Some("pv-east")),
            claim("pinned", Some("pv-pinned")),
            claim("loose", None),
        ]);
        let volume =
            |v: serde_json::Value| -> PersistentVolume { serde_json::from_value(v).unwrap() };
        c.replace_volumes(vec![
            volume(json!({"metadata": {"name": "pv-east", "labels": {
                "topology.kubernetes.io/zone": "east-1__east-2",
                "topology.kubernetes.io/region": "east"}}})),
            volume(
                json!({"metadata": {"name": "pv-pinned"}, "spec": {"nodeAffinity": {"required": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}]}}}}),
            ),
        ]);
        c
    }

    fn with_claims(names: &[&str]) -> Pod {
        let volumes: Vec<_> = names
            .iter()
            .map(|n| json!({"name": n, "persistentVolumeClaim": {"claimName": n}}))
            .collect();
        pod(json!({
            "metadata": {"namespace": "ns", "name": "p"},
            "spec": {"containers": [{"name": "c"}], "volumes": volumes}
        }))
    }

    fn nodes() -> Vec<NodeInfo> {
        let n = |name: &str, zone: Option<&str>| {
            let mut labels = json!({"kubernetes.io/hostname": name});
            if let Some(z) = zone {
                labels["topology.kubernetes.io/zone"] = json!(z);
                labels["topology.kubernetes.io/region"] = json!("east");
            }
            node(json!({"metadata": {"name": name, "labels": labels},
                "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"}}}))
        };
        vec![
            n("n1", Some("east-1")),
            n("n2", Some("west-1")),
            n("n3", None),
        ]
    }

    /// Which nodes pass every default filter, and the message when none does.
    fn feasible(p: &Pod, claims: &Claims) -> (Vec<String>, String) {
        let infos = nodes();
        let by_name: BTreeMap<String, NodeInfo> = BTreeMap::new();
        let images: HashMap<String, usize> = HashMap::new();
        let cluster = Cluster {
            nodes: &by_name,
            image_nodes: &images,
            with_affinity: 0,
            claims,
        };
        let ctx = PodContext::new(p, pod_requests(p.spec.as_ref().unwrap()), &cluster);
        let filters = default_filters();
        let mut fit = Vec::new();
        let mut reasons = Vec::new();
        for info in &infos {
            let failed = filters.iter().find_map(|f| f.filter(&ctx, info).err());
            match failed {
                None => fit.push(info.name().to_owned()),
                Some(why) => reasons.push(why),
            }
        }
        (fit, unschedulable_message(infos.len(), &reasons))
    }

    #[test]
    fn a_zoned_volume_keeps_the_pod_in_its_zones() {
        let (fit, _) = feasible(&with_claims(&["east"]), &claims());
        // n2 is in another zone; n3 has no zone label and is not held to it.
        assert_eq!(fit, ["n1", "n3"]);
    }

    #[test]
    fn a_volume_pinned_to_a_node_takes_the_pod_there() {
        let (fit, message) = feasible(&with_claims(&["east", "pinned"]), &claims());
        assert!(fit.is_empty(), "{fit:?}");
        assert!(
            message.contains("1 node(s) had no available volume zone")
                && message.contains("2 node(s) had volume node affinity conflict"),
            "{message}"
        );
        let (fit, _) = feasible(&with_claims(&["pinned"]), &claims());
        assert_eq!(fit, ["n2"]);
    }

    #[test]
    fn missing_deleting_and_unbound_claims_fit_nowhere_and_say_so() {
        let mut c = claims();
        let (fit, message) = feasible(&with_claims(&["gone"]), &c);
        assert!(fit.is_empty());
        assert!(
            message.starts_with(
                "0/3 nodes are available: 3 persistentvolumeclaim \"gone\" not found."
            ),
            "{message}"
        );
        let (fit, message) = feasible(&with_claims(&["loose"]), &c);
        assert!(fit.is_empty());
        assert!(
            message.contains("3 pod has unbound immediate PersistentVolumeClaims"),
            "{message}"
        );
        let mut deleting: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "east",
                "deletionTimestamp": "2026-12-05T00:00:00Z"},
            "spec": {"volumeName": "pv-east"}
        }))
        .unwrap();
        c.put_claim(deleting.clone());
        let (_, message) = feasible(&with_claims(&["east"]), &c);
        assert!(message.contains("\"east\" is being deleted"), "{message}");
        // Deleted: not found; back again without the deletion: fits.
        c.remove_claim(&deleting);
        let (fit, _) = feasible(&with_claims(&["east"]), &c);
        assert!(fit.is_empty());
        deleting.metadata.deletion_timestamp = None;
        c.put_claim(deleting);
        let (fit, _) = feasible(&with_claims(&["east"]), &c);
        assert_eq!(fit, ["n1", "n3"]);
    }

    #[test]
    fn pods_without_claims_are_not_held() {
        let (fit, _) = feasible(&with_claims(&[]), &Claims::default());
        assert_eq!(fit, ["n1", "n2", "n3"]);
    }
}
