//! Filter and score plugins: plain functions of a pod and what a node has,
//! no I/O. Each filter names why a node does not fit, in the words
//! kube-scheduler uses, so `FailedScheduling` events read the same.

mod interpod;
mod scores;
pub(crate) mod selector;
mod spread;
mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint, Toleration,
};

pub use interpod::InterPodAffinity;
pub use scores::{BalancedAllocation, ImageLocality, NodeAffinityScore, TaintTolerationScore};
pub use spread::{Owners, PodTopologySpread};
pub use volumes::{
    Claims, VolumeBinding, VolumeZone, best_volume, volume_fits_claim, volume_fits_node,
};

/// Resources in the units the scheduler adds up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in thousandths of a core.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
}

impl Resources {
    /// Reads `cpu`, `memory` and `ephemeral-storage` from a resource list;
    /// malformed quantities count as zero (the API server refuses them).
    pub fn from_list(
        list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    ) -> Self {
        let get = |name: &str, milli: bool| {
            list.and_then(|l| l.get(name))
                .and_then(|q| kinds::parse_quantity(&q.0))
                .map(|q| {
                    let m = q.milli_value();
                    let v = if milli { m } else { (m + 999) / 1000 };
                    i64::try_from(v).unwrap_or(i64::MAX)
                })
                .unwrap_or(0)
        };
        Self {
            milli_cpu: get("cpu", true),
            memory: get("memory", false),
            ephemeral_storage: get("ephemeral-storage", false),
        }
    }

    fn add(self, o: Self) -> Self {
        Self {
            milli_cpu: self.milli_cpu.saturating_add(o.milli_cpu),
            memory: self.memory.saturating_add(o.memory),
            ephemeral_storage: self.ephemeral_storage.saturating_add(o.ephemeral_storage),
        }
    }

    fn max(self, o: Self) -> Self {
        Self {
            milli_cpu: self.milli_cpu.max(o.milli_cpu),
            memory: self.memory.max(o.memory),
            ephemeral_storage: self.ephemeral_storage.max(o.ephemeral_storage),
        }
    }

    /// What `self` plus `o` is, for adding a pod to a node.
    pub fn plus(self, o: Self) -> Self {
        self.add(o)
    }

    /// What `self` less `o` is, for removing a pod from a node.
    pub fn minus(self, o: Self) -> Self {
        Self {
            milli_cpu: self.milli_cpu - o.milli_cpu,
            memory: self.memory - o.memory,
            ephemeral_storage: self.ephemeral_storage - o.ephemeral_storage,
        }
    }
}

/// A pod's effective requests as Kubernetes computes them: the larger of
/// the sum over its containers (restartable init containers included) and
/// the largest init container, plus the pod's overhead.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum = sum.add(Resources::from_list(
            c.resources.as_ref().and_then(|r| r.requests.as_ref()),
        ));
    }
    let mut init_max = Resources::default();
    let mut sidecars = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.add(r);
            init_max = init_max.max(sidecars);
        } else {
            init_max = init_max.max(sidecars.add(r));
        }
    }
    sum.add(sidecars)
        .max(init_max)
        .add(Resources::from_list(spec.overhead.as_ref()))
}

/// A pod placed on a node (bound, or assumed by the scheduler), with what
/// the plugins ask of it: its requests and ports, and the labels, namespace
/// and pod affinity terms that inter-pod affinity and topology spreading
/// match against, so that these need no API call.
#[derive(Debug)]
pub struct PlacedPod {
    /// The pod's uid.
    pub uid: String,
    /// The pod's name.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
    /// Its effective requests.
    pub requests: Resources,
    /// Its host ports: (protocol, host IP, port).
    pub host_ports: Vec<(String, String, i32)>,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// Whether the pod is being deleted (spreading does not count it).
    pub deleting: bool,
    /// Its pod affinity and anti-affinity terms, `None` when it has none.
    pub(crate) terms: Option<Box<interpod::PodTerms>>,
}

impl PlacedPod {
    /// What the scheduler keeps of a pod placed on a node.
    pub fn of(pod: &Pod, requests: Resources) -> Self {
        let m = &pod.metadata;
        let spec = pod.spec.as_ref();
        Self {
            uid: m.uid.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_default(),
            labels: m.labels.clone().unwrap_or_default(),
            requests,
            host_ports: spec.map(host_ports).unwrap_or_default(),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            deleting: m.deletion_timestamp.is_some(),
            terms: interpod::PodTerms::of(pod).map(Box::new),
        }
    }
}

/// What the scheduler knows of one node: the node and what is placed on it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The Node object.
    pub node: Node,
    /// Sum of the requests of the pods placed on it.
    pub requested: Resources,
    /// The pods placed on it.
    pub placed: Vec<Arc<PlacedPod>>,
    /// How many of them have pod affinity or anti-affinity terms.
    pub with_affinity: usize,
    /// Host ports in use: (protocol, host IP, port).
    pub host_ports: Vec<(String, String, i32)>,
    /// Allocatable cpu, memory and storage, read once from the node.
    allocatable: Resources,
    /// Allocatable pods.
    max_pods: i64,
    /// Sizes of the images the node has, by normalised name.
    images: HashMap<String, i64>,
}

impl NodeInfo {
    /// A node with nothing placed on it.
    pub fn new(node: Node) -> Self {
        let mut info = Self {
            node,
            requested: Resources::default(),
            placed: Vec::new(),
            with_affinity: 0,
            host_ports: Vec::new(),
            allocatable: Resources::default(),
            max_pods: 0,
            images: HashMap::new(),
        };
        info.read_node();
        info
    }

    /// Replaces the Node object, keeping what is placed on it.
    pub fn set_node(&mut self, node: Node) {
        self.node = node;
        self.read_node();
    }

    /// Works out once what the plugins would otherwise parse per pod.
    fn read_node(&mut self) {
        let status = self.node.status.as_ref();
        let alloc = status.and_then(|s| s.allocatable.as_ref());
        self.max_pods = alloc
            .and_then(|a| a.get("pods"))
            .and_then(|q| kinds::parse_quantity(&q.0))
            .map_or(0, |q| {
                i64::try_from(q.milli_value() / 1000).unwrap_or(i64::MAX)
            });
        self.allocatable = Resources::from_list(alloc);
        self.images = status
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|i| {
                let size = i.size_bytes.unwrap_or(0);
                i.names
                    .iter()
                    .flatten()
                    .map(move |n| (normalized_image(n), size))
            })
            .collect();
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or_default()
    }

    /// The node's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.node.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    /// How many pods are placed on it.
    pub fn pods(&self) -> usize {
        self.placed.len()
    }

    /// The images the node has (normalised names) and their sizes.
    pub fn images(&self) -> impl Iterator<Item = (&str, i64)> {
        self.images.iter().map(|(n, s)| (n.as_str(), *s))
    }

    /// Counts a pod on the node.
    pub fn add(&mut self, pod: Arc<PlacedPod>) {
        self.requested = self.requested.plus(pod.requests);
        self.host_ports.extend(pod.host_ports.iter().cloned());
        if pod.terms.is_some() {
            self.with_affinity += 1;
        }
        self.placed.push(pod);
    }

    /// Stops counting a pod on the node.
    pub fn remove(&mut self, uid: &str) {
        let Some(i) = self.placed.iter().position(|p| p.uid == uid) else {
            return;
        };
        let pod = self.placed.swap_remove(i);
        self.requested = self.requested.minus(pod.requests);
        if pod.terms.is_some() {
            self.with_affinity -= 1;
        }
        for port in &pod.host_ports {
            if let Some(i) = self.host_ports.iter().position(|p| p == port) {
                self.host_ports.swap_remove(i);
            }
        }
    }

    /// Forgets every pod placed on the node.
    pub fn clear_pods(&mut self) {
        self.requested = Resources::default();
        self.placed.clear();
        self.with_affinity = 0;
        self.host_ports.clear();
    }

    fn allocatable(&self) -> (Resources, i64) {
        (self.allocatable, self.max_pods)
    }
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// An image name as kube-scheduler's ImageLocality compares them, a tag
/// added when there is none; we also spell out Docker Hub's implied
/// `docker.io/library/`, since node agents report full names.
pub fn normalized_image(name: &str) -> String {
    let mut name = name.to_owned();
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    if !name.contains('@') && !name[slash..].contains(':') {
        name.push_str(":latest");
    }
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        name
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    }
}

/// What the cluster looks like to the plugins while one pod is scheduled:
/// every node with its pods, and counts kept by the cache so that work a
/// pod does not need can be skipped without looking at each node.
pub struct Cluster<'a> {
    /// Every node, by name.
    pub nodes: &'a BTreeMap<String, NodeInfo>,
    /// How many nodes have each image (normalised names).
    pub image_nodes: &'a HashMap<String, usize>,
    /// How many placed pods have pod affinity or anti-affinity terms.
    pub with_affinity: usize,
    /// The persistent volume claims and volumes.
    pub claims: &'a Claims,
    /// Every namespace's labels, for pod affinity terms' `namespaceSelector`.
    pub namespaces: &'a NamespaceLabels,
    /// Services' and controllers' selectors, for default spreading.
    pub owners: &'a Owners,
}

/// Namespaces' labels, by namespace name.
pub type NamespaceLabels = HashMap<String, BTreeMap<String, String>>;

/// The pod being scheduled, with what the plugins work out about it once
/// before they look at nodes (kube-scheduler's PreFilter state).
pub struct PodContext<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its effective requests.
    pub requests: Resources,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The host ports it asks for.
    pub host_ports: Vec<(String, String, i32)>,
    pub(crate) inter_pod: interpod::PodState,
    pub(crate) spread: spread::PodState,
    pub(crate) volumes: volumes::PodState,
}

impl<'a> PodContext<'a> {
    /// Works out what the filters need to know of the pod and the cluster.
    pub fn new(pod: &'a Pod, requests: Resources, cluster: &Cluster) -> Self {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let labels = pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS);
        Self {
            pod,
            requests,
            namespace,
            labels,
            host_ports: pod.spec.as_ref().map(host_ports).unwrap_or_default(),
            inter_pod: interpod::PodState::new(pod, namespace, labels, cluster),
            spread: spread::PodState::new(pod, namespace, labels, cluster),
            volumes: volumes::PodState::new(pod, namespace, cluster.claims),
        }
    }
}

impl PodContext<'_> {
    /// Counts a placed pod on a node into (`by` 1) or out of (`by` -1) what
    /// inter-pod affinity and topology spreading worked out before any node
    /// was looked at: preemption takes would-be victims away and gives them
    /// back, as kube-scheduler's `RemovePod` and `AddPod` do.
    pub(crate) fn account(
        &mut self,
        placed: &PlacedPod,
        node: &NodeInfo,
        by: i64,
        cluster: &Cluster,
    ) {
        self.inter_pod
            .account(placed, node, by, self.namespace, self.labels, cluster);
        self.spread
            .account(self.pod, placed, node, by, self.namespace);
    }
}

/// Host ports a pod asks for: (protocol, host IP, port).
pub fn host_ports(spec: &PodSpec) -> Vec<(String, String, i32)> {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|&p| p > 0)?;
            Some((
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
                port,
            ))
        })
        .collect()
}

/// Why a node does not fit a pod, as kube-scheduler words it in
/// "0/3 nodes are available: ...".
pub type Reason = String;

/// A filter plugin: whether a pod may go on a node.
pub trait Filter: Send + Sync {
    /// The plugin's name, as in kube-scheduler's configuration.
    fn name(&self) -> &'static str;
    /// `Ok` when the pod fits, else every reason it does not.
    fn filter(&self, pod: &PodContext, node: &NodeInfo) -> Result<(), Vec<Reason>>;
}

/// A score plugin: how good each node that passed the filters is for a pod.
/// It sees them all at once, as kube-scheduler's PreScore, Score and
/// NormalizeScore together do, since some scores are relative to the other
/// nodes' (a node's share of the most preferred weight, say).
pub trait Score: Send + Sync {
    /// The plugin's name.
    fn name(&self) -> &'static str;
    /// How much its score counts (kube-scheduler's default weights).
    fn weight(&self) -> i64;
    /// Writes each node's score, 0 to 100, into `scores` (same order as
    /// `nodes`, all zero on entry).
    fn score(&self, pod: &PodContext, cluster: &Cluster, nodes: &[&NodeInfo], scores: &mut [i64]);
}

/// Nodes marked unschedulable take only pods that tolerate that.
pub struct NodeUnschedulable;

impl Filter for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }
    fn filter(&self, pod: &PodContext, node: &NodeInfo) -> Result<(), Vec<Reason>> {
        let unschedulable = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !unschedulable {
            return Ok(());
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        if !tolerated(tolerations(pod.pod), &taint) {
            return Err(vec!["node(s) were unschedulable".into()]);
        }
        Ok(())
    }
}

/// `spec.nodeSelector` and required node affinity.
pub struct NodeAffinity;

impl Filter for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn filter(&self, pod: &PodContext, node: &NodeInfo) -> Result<(), Vec<Reason>> {
        if node_affinity_matches(pod.pod, node) {
            Ok(())
        } else {
            Err(vec![
                "node(s) didn't match Pod's node affinity/selector".into(),
            ])
        }
    }
}

/// Whether a node passes a pod's `nodeSelector` and required node affinity.
pub(crate) fn node_affinity_matches(pod: &Pod, node: &NodeInfo) -> bool {
    let spec = pod.spec.as_ref();
    let labels = node.labels();
    let selector_ok = spec
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let required = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok = required.is_none_or(|r| {
        r.node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, node.name()))
    });
    selector_ok && affinity_ok
}

/// Whether a node selector term matches a node (terms are ORed, the
/// requirements inside one ANDed; an empty term matches nothing).
pub(crate) fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let exprs = term.match_expressions.iter().flatten();
    let fields = term.match_fields.iter().flatten();
    if term.match_expressions.as_ref().is_none_or(Vec::is_empty)
        && term.match_fields.as_ref().is_none_or(Vec::is_empty)
    {
        return false;
    }
    exprs
        .clone()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields
            .clone()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(name)))
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(number), values.first().and_then(|x| number(x))), (Some(v), Some(x)) if v > x)
        }
        "Lt" => {
            matches!((value.and_then(number), values.first().and_then(|x| number(x))), (Some(v), Some(x)) if v < x)
        }
        _ => false,
    }
}

/// Taints with effect `NoSchedule` or `NoExecute` must be tolerated.
pub struct TaintToleration;

impl Filter for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn filter(&self, pod: &PodContext, node: &NodeInfo) -> Result<(), Vec<Reason>> {
        match untolerated_taint(pod.pod, node) {
            None => Ok(()),
            Some(t) => {
                let shown = match &t.value {
                    Some(v) if !v.is_empty() => format!("{}: {v}", t.key),
                    _ => t.key.clone(),
                };
                Err(vec![format!("node(s) had untolerated taint {{{shown}}}")])
            }
        }
    }
}

/// The first `NoSchedule` or `NoExecute` taint of a node that a pod does
/// not tolerate.
pub(crate) fn untolerated_taint<'n>(pod: &Pod, node: &'n NodeInfo) -> Option<&'n Taint> {
    let taints = node.node.spec.as_ref().and_then(|s| s.taints.as_ref());
    taints.into_iter().flatten().find(|t| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tolerations(pod), t)
    })
}

pub(crate) fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

/// Whether some toleration tolerates a taint, as Kubernetes matches them.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// Whether one toleration tolerates a taint: the effect matches (or is
/// empty), the key matches (or is empty, which only `Exists` allows), and
/// for `Equal` the value matches.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key_ok = t
        .key
        .as_deref()
        .is_none_or(|k| k.is_empty() || k == taint.key);
    let value_ok = match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        _ => t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
    };
    effect_ok && key_ok && value_ok
}

/// Requests against allocatable, and the node's pod count.
pub struct NodeResourcesFit;

impl Filter for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
    fn filter(&self, pod: &PodContext, node: &NodeInfo) -> Result<(), Vec<Reason>> {
        let req = pod.requests;
        let (alloc, max_pods) = node.allocatable();
        let used = node.requested;
        let mut reasons = Vec::new();
        if node.pods() as i64 + 1 > max_pods {
            reasons.push("Too many pods".to_owned());
        }
        if req.milli_cpu > 0 && used.milli_cpu + req.milli_cpu > alloc.milli_cpu {
            reasons.push("Insufficient cpu".to_owned());
        }
        if req.memory > 0 && used.memory + req.memory > alloc.memory {
            reasons.push("Insufficient memory".to_owned());
        }
        if req.ephemeral_storage > 0
            && used.ephemeral_storage + req.ephemeral_storage > alloc.ephemeral_storage
        {
            reasons.push("Insufficient ephemeral-storage".to_owned());
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

/// Host ports a pod asks for must be free on the node.
pub struct NodePorts;

impl Filter for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }
    fn filter(&self, pod: &PodContext, node: &NodeInfo) -> Result<(), Vec<Reason>> {
        let clash = pod.host_ports.iter().any(|(proto, ip, port)| {
            node.host_ports.iter().any(|(p, i, n)| {
                p == proto && n == port && (i == ip || i == "0.0.0.0" || ip == "0.0.0.0")
            })
        });
        if clash {
            Err(vec![
                "node(s) didn't have free ports for the requested pod ports".into(),
            ])
        } else {
            Ok(())
        }
    }
}

/// Prefers the node with the most room left, over cpu and memory, counting
/// a pod without requests as kube-scheduler does (100m, 200 MiB).
pub struct LeastAllocated;

impl Score for LeastAllocated {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
    fn weight(&self) -> i64 {
        1
    }
    fn score(&self, pod: &PodContext, _: &Cluster, nodes: &[&NodeInfo], scores: &mut [i64]) {
        let req = non_zero(pod.requests);
        for (node, score) in nodes.iter().zip(scores) {
            *score = least_allocated(node, req);
        }
    }
}

/// Requests as kube-scheduler counts them for spreading by load: a pod
/// that asks for no cpu or memory counts as 100m and 200 MiB.
fn non_zero(req: Resources) -> Resources {
    Resources {
        milli_cpu: if req.milli_cpu == 0 {
            100
        } else {
            req.milli_cpu
        },
        memory: if req.memory == 0 {
            200 << 20
        } else {
            req.memory
        },
        ephemeral_storage: 0,
    }
}

fn least_allocated(node: &NodeInfo, req: Resources) -> i64 {
    let (alloc, _) = node.allocatable();
    let free = |cap: i64, used: i64| {
        if cap <= 0 {
            0
        } else {
            ((cap - used).max(0) * 100) / cap
        }
    };
    (free(alloc.milli_cpu, node.requested.milli_cpu + req.milli_cpu)
        + free(alloc.memory, node.requested.memory + req.memory))
        / 2
}

/// The filters kube-scheduler runs that this build has, in its order (the
/// first that fails names the node's reason).
pub fn default_filters() -> Vec<Box<dyn Filter>> {
    vec![
        Box::new(NodeUnschedulable),
        Box::new(TaintToleration),
        Box::new(NodeAffinity),
        Box::new(NodePorts),
        Box::new(NodeResourcesFit),
        Box::new(VolumeBinding),
        Box::new(VolumeZone),
        Box::new(PodTopologySpread),
        Box::new(InterPodAffinity),
    ]
}

/// The score plugins, with kube-scheduler's default weights.
pub fn default_scores() -> Vec<Box<dyn Score>> {
    vec![
        Box::new(TaintTolerationScore),
        Box::new(NodeAffinityScore),
        Box::new(LeastAllocated),
        Box::new(PodTopologySpread),
        Box::new(InterPodAffinity),
        Box::new(BalancedAllocation),
        Box::new(ImageLocality),
    ]
}

/// "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were
/// unschedulable." from each node's reasons.
pub fn unschedulable_message(total: usize, reasons: &[Vec<Reason>]) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons.iter().flatten() {
        *counts.entry(r).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!(
        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
        parts.join(", ")
    )
}

/// Builders shared by the plugins' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::LazyLock;

    use super::*;

    pub(crate) fn node(v: serde_json::Value) -> NodeInfo {
        NodeInfo::new(serde_json::from_value(v).unwrap())
    }

    pub(crate) fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    pub(crate) fn cluster_of(nodes: Vec<NodeInfo>) -> BTreeMap<String, NodeInfo> {
        nodes
            .into_iter()
            .map(|n| (n.name().to_owned(), n))
            .collect()
    }

    pub(crate) fn placed_pod(p: &Pod) -> Arc<PlacedPod> {
        let mut placed = PlacedPod::of(p, pod_requests(p.spec.as_ref().unwrap()));
        if placed.uid.is_empty() {
            placed.uid = placed.name.clone();
        }
        Arc::new(placed)
    }

    /// A cluster of these nodes and nothing else: no images, claims,
    /// namespaces, nor placed pods with affinity terms.
    pub(crate) fn bare(nodes: &BTreeMap<String, NodeInfo>) -> Cluster<'_> {
        static IMAGES: LazyLock<HashMap<String, usize>> = LazyLock::new(HashMap::new);
        static CLAIMS: LazyLock<Claims> = LazyLock::new(Claims::default);
        static NAMESPACES: LazyLock<NamespaceLabels> = LazyLock::new(HashMap::new);
        static OWNERS: LazyLock<Owners> = LazyLock::new(Owners::default);
        Cluster {
            nodes,
            image_nodes: &IMAGES,
            with_affinity: 0,
            claims: &CLAIMS,
            namespaces: &NAMESPACES,
            owners: &OWNERS,
        }
    }

    pub(crate) fn context<'a>(p: &'a Pod, cluster: &Cluster) -> PodContext<'a> {
        PodContext::new(p, pod_requests(p.spec.as_ref().unwrap()), cluster)
    }

    /// A context for a pod in an empty cluster, with the given requests.
    pub(crate) fn alone(p: &Pod, requests: Resources) -> PodContext<'_> {
        let nodes = BTreeMap::new();
        let cluster = bare(&nodes);
        PodContext::new(p, requests, &cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{alone, bare, cluster_of, node, placed_pod, pod};
    use super::*;
    use serde_json::json;

    fn small_node() -> NodeInfo {
        node(json!({
            "metadata": {"name": "n1", "labels": {"disk": "ssd"}},
            "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "3", "ephemeral-storage": "10Gi"}}
        }))
    }

    #[test]
    fn requests_take_the_larger_of_containers_and_init_containers() {
        let p = pod(json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}}}
            ],
            "initContainers": [
                {"name": "i", "resources": {"requests": {"cpu": "1", "memory": "16Mi"}}}
            ],
            "overhead": {"cpu": "10m"}
        }}));
        let r = pod_requests(p.spec.as_ref().unwrap());
        assert_eq!(r.milli_cpu, 1010);
        assert_eq!(r.memory, (64 << 20));
    }

    #[test]
    fn resources_fit_counts_cpu_memory_and_pods() {
        let mut n = small_node();
        let p = pod(json!({"spec": {"containers": []}}));
        let fits = |req: Resources, n: &NodeInfo| NodeResourcesFit.filter(&alone(&p, req), n);
        assert!(
            fits(
                Resources {
                    milli_cpu: 2000,
                    memory: 1 << 30,
                    ephemeral_storage: 0
                },
                &n
            )
            .is_ok()
        );
        assert_eq!(
            fits(
                Resources {
                    milli_cpu: 2001,
                    memory: (1 << 30) + 1,
                    ephemeral_storage: 0
                },
                &n
            ),
            Err(vec![
                "Insufficient cpu".to_owned(),
                "Insufficient memory".to_owned()
            ])
        );
        for i in 0..3 {
            n.add(placed_pod(&pod(
                json!({"metadata": {"name": format!("p{i}")}, "spec": {"containers": []}}),
            )));
        }
        assert_eq!(
            fits(Resources::default(), &n),
            Err(vec!["Too many pods".to_owned()])
        );
    }

    #[test]
    fn selectors_affinity_and_taints() {
        let n = small_node();
        let p = pod(json!({"spec": {"containers": [], "nodeSelector": {"disk": "hdd"}}}));
        assert!(
            NodeAffinity
                .filter(&alone(&p, Resources::default()), &n)
                .is_err()
        );
        let p = pod(
            json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
            ]}}}}}),
        );
        assert!(
            NodeAffinity
                .filter(&alone(&p, Resources::default()), &n)
                .is_ok()
        );

        let tainted = node(json!({"metadata": {"name": "t"},
            "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}));
        let plain = pod(json!({"spec": {"containers": []}}));
        assert_eq!(
            TaintToleration.filter(&alone(&plain, Resources::default()), &tainted),
            Err(vec![
                "node(s) had untolerated taint {dedicated: gpu}".to_owned()
            ])
        );
        let tolerant = pod(json!({"spec": {"containers": [], "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}}));
        assert!(
            TaintToleration
                .filter(&alone(&tolerant, Resources::default()), &tainted)
                .is_ok()
        );
        let everything =
            pod(json!({"spec": {"containers": [], "tolerations": [{"operator": "Exists"}]}}));
        assert!(
            TaintToleration
                .filter(&alone(&everything, Resources::default()), &tainted)
                .is_ok()
        );
    }

    #[test]
    fn host_ports_clash_on_the_same_protocol_and_port() {
        let mut n = small_node();
        n.host_ports.push(("TCP".into(), "0.0.0.0".into(), 8080));
        let p = pod(
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
        );
        assert!(
            NodePorts
                .filter(&alone(&p, Resources::default()), &n)
                .is_err()
        );
        let udp = pod(
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]}]}}),
        );
        assert!(
            NodePorts
                .filter(&alone(&udp, Resources::default()), &n)
                .is_ok()
        );
    }

    #[test]
    fn least_allocated_prefers_the_emptier_node() {
        let empty = small_node();
        let mut busy = small_node();
        busy.requested = Resources {
            milli_cpu: 1500,
            memory: 512 << 20,
            ephemeral_storage: 0,
        };
        let p = pod(json!({"spec": {"containers": []}}));
        let nodes = cluster_of(vec![]);
        let cluster = bare(&nodes);
        let mut scores = [0, 0];
        LeastAllocated.score(
            &alone(&p, Resources::default()),
            &cluster,
            &[&empty, &busy],
            &mut scores,
        );
        assert!(scores[0] > scores[1], "{scores:?}");
    }

    #[test]
    fn messages_count_reasons_like_kube_scheduler() {
        let msg = unschedulable_message(
            3,
            &[
                vec!["Insufficient cpu".into()],
                vec!["Insufficient cpu".into()],
                vec!["node(s) were unschedulable".into()],
            ],
        );
        assert!(
            msg.starts_with(
                "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable."
            ),
            "{msg}"
        );
        assert_eq!(
            unschedulable_message(0, &[]),
            "no nodes available to schedule pods"
        );
    }
}
