//! Persistent volumes as kube-scheduler's VolumeBinding and VolumeZone plugins see them:
//! - a pod whose claim is missing or being deleted fits no node, and says which claim;
//! - a bound claim's volume must fit the node: its `spec.nodeAffinity` (VolumeBinding), and
//!   its zone and region labels (`topology.kubernetes.io/zone`, `.../region` and their
//!   `failure-domain.beta.kubernetes.io` forerunners; several values joined by `__`) must
//!   name the node's own (VolumeZone);
//! - an unbound claim must be of a WaitForFirstConsumer class (else "unbound immediate"):
//!   then a class with a provisioner fits any node, and one without
//!   (`kubernetes.io/no-provisioner`) needs an available volume that fits the claim and the
//!   node. The scheduler's bind then names the chosen node on such claims and waits for the
//!   volume binder (`controllers::volumes`), which matches with [`volume_fits_claim`] too.
//!
//! What the pod needs is worked out once per scheduling attempt ([`PodState`]) from the
//! claims, volumes and classes the scheduler watches ([`Claims`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kinds::storage::{NO_PROVISIONER, claim_volume_name};

use super::{Filter, NodeInfo, PodContext, Reason, term_matches};

/// The topology labels a volume's zone is read from, as kube-scheduler's VolumeZone.
const TOPOLOGY_LABELS: [&str; 4] = [
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
];

/// The claims, volumes and classes of the cluster, as the scheduler's watches last saw them.
#[derive(Debug, Default)]
pub struct Claims {
    claims: HashMap<(String, String), PersistentVolumeClaim>,
    volumes: HashMap<String, PersistentVolume>,
    classes: HashMap<String, StorageClass>,
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

    /// Replaces every class (after a list).
    pub fn replace_classes(&mut self, classes: Vec<StorageClass>) {
        self.classes = classes
            .into_iter()
            .map(|c| (c.metadata.name.clone().unwrap_or_default(), c))
            .collect();
    }

    /// Adds or updates a class.
    pub fn put_class(&mut self, class: StorageClass) {
        self.classes
            .insert(class.metadata.name.clone().unwrap_or_default(), class);
    }

    /// Forgets a class.
    pub fn remove_class(&mut self, class: &StorageClass) {
        self.classes
            .remove(class.metadata.name.as_deref().unwrap_or_default());
    }

    /// The pod's claims that wait for it to be placed (unbound, of a WaitForFirstConsumer
    /// class), by name.
    pub fn waiting_for(&self, pod: &Pod, namespace: &str) -> Vec<String> {
        claim_names(pod)
            .filter(|name| {
                self.claims
                    .get(&(namespace.to_owned(), (*name).to_owned()))
                    .is_some_and(|c| claim_volume_name(c).is_none() && self.waits_for_consumer(c))
            })
            .map(str::to_owned)
            .collect()
    }

    /// Whether the claim is bound (`None`: it is gone).
    pub fn is_bound(&self, namespace: &str, name: &str) -> Option<bool> {
        let claim = self.claims.get(&(namespace.to_owned(), name.to_owned()))?;
        let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
        Some(claim_volume_name(claim).is_some() && phase == Some("Bound"))
    }

    fn class_of(&self, claim: &PersistentVolumeClaim) -> Option<&StorageClass> {
        let name = claim.spec.as_ref()?.storage_class_name.as_deref()?;
        self.classes.get(name)
    }

    fn waits_for_consumer(&self, claim: &PersistentVolumeClaim) -> bool {
        self.class_of(claim)
            .and_then(|c| c.volume_binding_mode.as_deref())
            == Some("WaitForFirstConsumer")
    }
}

fn claim_key(c: &PersistentVolumeClaim) -> (String, String) {
    (
        c.metadata.namespace.clone().unwrap_or_default(),
        c.metadata.name.clone().unwrap_or_default(),
    )
}

fn claim_names(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
}

/// The volume a claim is bound to, if any.
/// A `storage` quantity in bytes (absent or unreadable: zero).
fn storage(
    quantities: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> i128 {
    quantities
        .and_then(|q| q.get("storage"))
        .and_then(|q| kinds::parse_quantity(&q.0))
        .map_or(0, |q| q.milli_value() / 1000)
}

/// Whether `volume` could be bound to `claim`, as the volume binder matches: free (or
/// already meant for this claim), not released, of the claim's class and volume mode,
/// with every access mode the claim asks for, at least as big, and selected by the
/// claim's selector.
pub fn volume_fits_claim(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let (Some(spec), Some(want)) = (volume.spec.as_ref(), claim.spec.as_ref()) else {
        return false;
    };
    if volume.metadata.deletion_timestamp.is_some() {
        return false;
    }
    if let Some(r) = &spec.claim_ref {
        let uid = r.uid.as_deref().filter(|u| !u.is_empty());
        if r.namespace != claim.metadata.namespace
            || r.name != claim.metadata.name
            || uid.is_some_and(|u| Some(u) != claim.metadata.uid.as_deref())
        {
            return false;
        }
    }
    // A volume already meant for this claim fits whatever its phase, as in Kubernetes: a
    // binding that stopped after the volume was marked Bound is finished, not abandoned.
    let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
    if spec.claim_ref.is_none() && !matches!(phase, None | Some("Pending" | "Available")) {
        return false;
    }
    let class = |c: &Option<String>| c.clone().unwrap_or_default();
    let mode = |m: &Option<String>| m.clone().unwrap_or_else(|| "Filesystem".into());
    if class(&spec.storage_class_name) != class(&want.storage_class_name)
        || mode(&spec.volume_mode) != mode(&want.volume_mode)
    {
        return false;
    }
    let offered = spec.access_modes.as_deref().unwrap_or_default();
    if !want
        .access_modes
        .iter()
        .flatten()
        .all(|m| offered.contains(m))
    {
        return false;
    }
    let requested = storage(want.resources.as_ref().and_then(|r| r.requests.as_ref()));
    if storage(spec.capacity.as_ref()) < requested {
        return false;
    }
    let labels = volume.metadata.labels.clone().unwrap_or_default();
    want.selector
        .as_ref()
        .is_none_or(|s| kinds::selector::matches(s, &labels))
}

/// Whether the volume's required node affinity admits the node (no affinity: any node).
pub fn volume_fits_node(
    volume: &PersistentVolume,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| term_matches(t, labels, name))
        })
}

/// The smallest of `volumes` that fits the claim and passes `on_node`; a volume already
/// meant for this claim (`claimRef` naming it) goes first.
pub fn best_volume<'a>(
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    claim: &PersistentVolumeClaim,
    on_node: impl Fn(&PersistentVolume) -> bool,
) -> Option<&'a PersistentVolume> {
    volumes
        .into_iter()
        .filter(|v| volume_fits_claim(v, claim) && on_node(v))
        .min_by_key(|v| {
            let free = v.spec.as_ref().is_none_or(|s| s.claim_ref.is_none());
            (
                free,
                storage(v.spec.as_ref().and_then(|s| s.capacity.as_ref())),
                v.metadata.name.clone(),
            )
        })
}

/// What a pod's persistent volumes ask of a node.
#[derive(Debug, Default)]
pub(crate) struct PodState {
    /// Why no node can do (a claim missing, being deleted or unbound and immediate).
    unresolvable: Option<Reason>,
    /// The bound volumes' required node affinity.
    affinity: Vec<NodeSelector>,
    /// Per topology label, the values the node's must be one of (one set per volume).
    zones: Vec<(&'static str, BTreeSet<String>)>,
    /// For each unbound claim that takes a volume made ahead of time, the volumes that
    /// fit it: one of them must fit the node.
    candidates: Vec<Vec<PersistentVolume>>,
}

impl PodState {
    /// Looks the pod's claims and their volumes up.
    pub(crate) fn new(pod: &Pod, namespace: &str, claims: &Claims) -> Self {
        let mut state = Self::default();
        for name in claim_names(pod) {
            let Some(claim) = claims.claims.get(&(namespace.to_owned(), name.to_owned())) else {
                state.unresolvable = Some(format!("persistentvolumeclaim \"{name}\" not found"));
                return state;
            };
            if claim.metadata.deletion_timestamp.is_some() {
                state.unresolvable =
                    Some(format!("persistentvolumeclaim \"{name}\" is being deleted"));
                return state;
            }
            let Some(volume) = claim_volume_name(claim).and_then(|v| claims.volumes.get(v)) else {
                if !claims.waits_for_consumer(claim) {
                    // Binding it is the volume binder's, whatever node the pod goes to.
                    state.unresolvable =
                        Some("pod has unbound immediate PersistentVolumeClaims".into());
                    return state;
                }
                let provisioner = claims.class_of(claim).map(|c| c.provisioner.as_str());
                if provisioner == Some(NO_PROVISIONER) {
                    let fit = claims
                        .volumes
                        .values()
                        .filter(|v| volume_fits_claim(v, claim))
                        .cloned()
                        .collect();
                    state.candidates.push(fit);
                }
                continue;
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

/// A pod's bound volumes must admit the node, and its unbound claims must be able to get a
/// volume there.
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
        if !fits {
            return Err(vec!["node(s) had volume node affinity conflict".into()]);
        }
        let available = state.candidates.iter().all(|volumes| {
            volumes
                .iter()
                .any(|v| volume_fits_node(v, labels, node.name()))
        });
        if available {
            Ok(())
        } else {
            Err(vec![
                "node(s) didn't find available persistent volumes to bind".into(),
            ])
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
    use super::super::testing::{bare, node, pod};
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
        let cluster = Cluster {
            claims,
            ..bare(&by_name)
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
    fn claims_waiting_for_their_pod_fit_where_a_volume_can_be_had() {
        let mut c = claims();
        let class = |name: &str, provisioner: &str| -> StorageClass {
            serde_json::from_value(
                json!({"metadata": {"name": name}, "provisioner": provisioner,
                "volumeBindingMode": "WaitForFirstConsumer"}),
            )
            .unwrap()
        };
        c.replace_classes(vec![
            class("local-path", "gantry.dev/local-path"),
            class("manual", NO_PROVISIONER),
        ]);
        let waiting = |name: &str, class: &str| -> PersistentVolumeClaim {
            serde_json::from_value(json!({
                "metadata": {"namespace": "ns", "name": name, "uid": format!("uid-{name}")},
                "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}
            }))
            .unwrap()
        };
        c.put_claim(waiting("fresh", "local-path"));
        c.put_claim(waiting("manual", "manual"));
        // A provisioner makes a volume wherever the pod goes.
        let (fit, _) = feasible(&with_claims(&["fresh"]), &c);
        assert_eq!(fit, ["n1", "n2", "n3"]);
        assert_eq!(
            c.waiting_for(&with_claims(&["fresh", "east", "manual"]), "ns"),
            ["fresh", "manual"]
        );
        assert_eq!(c.is_bound("ns", "fresh"), Some(false));
        assert_eq!(c.is_bound("ns", "nothing"), None);
        // Without a provisioner, only where a volume that fits is.
        let (fit, message) = feasible(&with_claims(&["manual"]), &c);
        assert!(fit.is_empty());
        assert!(
            message.contains("3 node(s) didn't find available persistent volumes to bind"),
            "{message}"
        );
        let on = |name: &str, node: &str, size: &str, modes: &[&str]| -> PersistentVolume {
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": {
                "storageClassName": "manual", "capacity": {"storage": size}, "accessModes": modes,
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}}))
            .unwrap()
        };
        c.put_volume(on("too-small", "n1", "512Mi", &["ReadWriteOnce"]));
        c.put_volume(on("read-only", "n2", "5Gi", &["ReadOnlyMany"]));
        c.put_volume(on("fits", "n3", "2Gi", &["ReadWriteOnce", "ReadOnlyMany"]));
        let (fit, _) = feasible(&with_claims(&["manual"]), &c);
        assert_eq!(fit, ["n3"]);
        // The wait is over once the claim is bound.
        let mut done = waiting("manual", "manual");
        done.spec.as_mut().unwrap().volume_name = Some("fits".into());
        done.status = Some(Default::default());
        c.put_claim(done.clone());
        assert_eq!(c.is_bound("ns", "manual"), Some(false));
        done.status.as_mut().unwrap().phase = Some("Bound".into());
        c.put_claim(done);
        assert_eq!(c.is_bound("ns", "manual"), Some(true));
        assert!(c.waiting_for(&with_claims(&["manual"]), "ns").is_empty());
    }

    #[test]
    fn a_volume_fits_a_claim_by_class_mode_size_selector_and_claim_ref() {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "c", "uid": "u1"},
            "spec": {"storageClassName": "", "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "selector": {"matchLabels": {"tier": "fast"}}}
        }))
        .unwrap();
        let base = json!({"metadata": {"name": "v", "labels": {"tier": "fast"}}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
        let fits = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = base.clone();
            edit(&mut v);
            volume_fits_claim(&serde_json::from_value(v).unwrap(), &claim)
        };
        assert!(fits(&|_| {}));
        assert!(!fits(
            &|v| v["spec"]["capacity"]["storage"] = json!("1000Mi")
        ));
        assert!(!fits(&|v| v["spec"]["storageClassName"] = json!("other")));
        assert!(!fits(&|v| v["spec"]["volumeMode"] = json!("Block")));
        assert!(!fits(
            &|v| v["spec"]["accessModes"] = json!(["ReadOnlyMany"])
        ));
        assert!(!fits(&|v| v["metadata"]["labels"]["tier"] = json!("slow")));
        assert!(!fits(&|v| v["status"] = json!({"phase": "Released"})));
        assert!(fits(
            &|v| v["spec"]["claimRef"] = json!({"namespace": "ns", "name": "c", "uid": "u1"})
        ));
        assert!(fits(
            &|v| v["spec"]["claimRef"] = json!({"namespace": "ns", "name": "c"})
        ));
        assert!(!fits(
            &|v| v["spec"]["claimRef"] = json!({"namespace": "ns", "name": "c", "uid": "old"})
        ));
        assert!(!fits(
            &|v| v["spec"]["claimRef"] = json!({"namespace": "ns", "name": "other"})
        ));
        // Half bound to this claim (the volume written, the claim not yet): still fits.
        assert!(fits(&|v| {
            v["spec"]["claimRef"] = json!({"namespace": "ns", "name": "c", "uid": "u1"});
            v["status"] = json!({"phase": "Bound"});
        }));
        assert!(!fits(&|v| {
            v["spec"]["claimRef"] = json!({"namespace": "ns", "name": "c", "uid": "old"});
            v["status"] = json!({"phase": "Released"});
        }));
    }

    #[test]
    fn pods_without_claims_are_not_held() {
        let (fit, _) = feasible(&with_claims(&[]), &Claims::default());
        assert_eq!(fit, ["n1", "n2", "n3"]);
    }
}
