//! The Node object and its heartbeat, as the kubelet keeps them: the Node
//! is created (or taken over) at start with the machine's capacity,
//! allocatable, addresses, node info and conditions; its Lease in
//! `kube-node-lease` is renewed every 10 s (the heartbeat the node
//! lifecycle controller watches); its status is written again when a
//! condition or figure changes, and at least every five minutes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::time::{micro_now, now};

/// How often the Lease is renewed.
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How long a Lease stays valid without renewal.
const LEASE_SECONDS: i32 = 40;
/// How often the node's status is compared and, if changed, written.
const STATUS_CHECK: Duration = Duration::from_secs(10);
/// How often it is written even when unchanged.
const STATUS_REPORT: Duration = Duration::from_secs(300);
/// Memory kept back from pods (the kubelet's default hard eviction
/// threshold `memory.available<100Mi`).
const MEMORY_RESERVE: u64 = 100 << 20;

/// What the agent reports of its machine, gathered without the API.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Facts {
    pub(crate) cpus: u32,
    pub(crate) memory_total: u64,
    pub(crate) memory_available: u64,
    pub(crate) disk_total: u64,
    pub(crate) disk_free: u64,
    pub(crate) pids_max: u64,
    pub(crate) pids_used: u64,
    pub(crate) hostname: String,
    pub(crate) address: IpAddr,
    pub(crate) kernel: String,
    pub(crate) os_image: String,
    pub(crate) machine_id: String,
    pub(crate) boot_id: String,
    pub(crate) runc_version: String,
}

impl Facts {
    /// Reads the machine: `/proc`, the data directory's file system, and
    /// the address it reaches `server` from.
    pub(crate) fn gather(data_dir: &Path, address: IpAddr, runc_version: &str) -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let meminfo = read("/proc/meminfo");
        let mem = |key: &str| {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches(" kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or(0)
                * 1024
        };
        let (disk_total, disk_free) = nix::sys::statvfs::statvfs(data_dir)
            .map(|s| {
                let frag = s.fragment_size();
                (s.blocks() * frag, s.blocks_available() * frag)
            })
            .unwrap_or((0, 0));
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| "Linux".into());
        let pids_used = std::fs::read_dir("/proc")
            .map(|d| {
                d.filter(|e| {
                    e.as_ref().is_ok_and(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    })
                })
                .count() as u64
            })
            .unwrap_or(0);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memory_total: mem("MemTotal:"),
            memory_available: mem("MemAvailable:"),
            disk_total,
            disk_free,
            pids_max: read("/proc/sys/kernel/pid_max")
                .trim()
                .parse()
                .unwrap_or(32768),
            pids_used,
            hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
            address,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            os_image,
            machine_id: read("/etc/machine-id").trim().to_owned(),
            boot_id: read("/proc/sys/kernel/random/boot_id").trim().to_owned(),
            runc_version: runc_version.to_owned(),
        }
    }
}

/// The node's identity and settings, fixed for the agent's life.
#[derive(Clone, Debug)]
pub(crate) struct NodeSettings {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    /// Set by `--pod-cidr`; otherwise the cluster assigns one.
    pub(crate) pod_cidr: Option<String>,
    pub(crate) max_pods: u32,
    pub(crate) port: u16,
}

fn quantity(s: impl Into<String>) -> Quantity {
    Quantity(s.into())
}

/// Capacity and allocatable, as the kubelet computes them (allocatable is
/// capacity less the memory eviction threshold and 10% of the disk).
pub(crate) fn resources(
    f: &Facts,
    max_pods: u32,
) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let kib = |b: u64| quantity(format!("{}Ki", b / 1024));
    let capacity = BTreeMap::from([
        ("cpu".to_owned(), quantity(f.cpus.to_string())),
        ("memory".to_owned(), kib(f.memory_total)),
        ("ephemeral-storage".to_owned(), kib(f.disk_total)),
        ("pods".to_owned(), quantity(max_pods.to_string())),
        ("hugepages-2Mi".to_owned(), quantity("0")),
        ("hugepages-1Gi".to_owned(), quantity("0")),
    ]);
    let mut allocatable = capacity.clone();
    allocatable.insert(
        "memory".into(),
        kib(f.memory_total.saturating_sub(MEMORY_RESERVE)),
    );
    allocatable.insert(
        "ephemeral-storage".into(),
        quantity((f.disk_total - f.disk_total / 10).to_string()),
    );
    (capacity, allocatable)
}

/// The four conditions the kubelet reports, without times: `(type,
/// status, reason, message)`.
pub(crate) fn conditions(
    f: &Facts,
) -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    let memory = if f.memory_available < MEMORY_RESERVE {
        (
            "MemoryPressure",
            "True",
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        )
    } else {
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        )
    };
    let disk = if f.disk_total > 0 && f.disk_free < f.disk_total / 10 {
        (
            "DiskPressure",
            "True",
            "KubeletHasDiskPressure",
            "kubelet has disk pressure",
        )
    } else {
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        )
    };
    let pids = if f.pids_max > 0 && f.pids_used * 10 > f.pids_max * 9 {
        (
            "PIDPressure",
            "True",
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        )
    } else {
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        )
    };
    vec![
        memory,
        disk,
        pids,
        (
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ]
}

/// The node's status from the machine's facts, keeping the transition
/// times of conditions that did not change from `old`.
pub(crate) fn status(
    f: &Facts,
    s: &NodeSettings,
    old: Option<&NodeStatus>,
    now: &str,
) -> NodeStatus {
    let (capacity, allocatable) = resources(f, s.max_pods);
    let old_conditions = old.and_then(|o| o.conditions.as_ref());
    let conditions: Vec<NodeCondition> = conditions(f)
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let since = old_conditions
                .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == status))
                .and_then(|c| c.last_transition_time.clone());
            serde_json::from_value::<NodeCondition>(json!({
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": since.map_or_else(|| json!(now), |t| json!(t)),
            }))
            .expect("a node condition")
        })
        .collect();
    serde_json::from_value(json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": f.address.to_string()},
            {"type": "Hostname", "address": f.hostname},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": s.port}},
        "nodeInfo": {
            "machineID": f.machine_id,
            "systemUUID": f.machine_id,
            "bootID": f.boot_id,
            "kernelVersion": f.kernel,
            "osImage": f.os_image,
            "containerRuntimeVersion": format!("runc://{}", f.runc_version),
            "kubeletVersion": crate::KUBELET_VERSION,
            "kubeProxyVersion": crate::KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": crate::ARCH,
        },
    }))
    .expect("a node status")
}

/// Whether two statuses differ in more than heartbeat times.
fn changed(a: &NodeStatus, b: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(cs) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
            for c in cs {
                if let Some(o) = c.as_object_mut() {
                    o.remove("lastHeartbeatTime");
                }
            }
        }
        // Free memory and disk move all the time; only capacity and
        // allocatable (and the conditions they drive) are reported.
        v
    };
    strip(a) != strip(b)
}

/// The Node as first registered.
fn node_object(s: &NodeSettings, status: NodeStatus) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), s.name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), crate::ARCH.to_owned()),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("beta.kubernetes.io/arch".to_owned(), crate::ARCH.to_owned()),
    ]);
    labels.extend(s.labels.clone());
    let mut node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": s.name, "labels": labels},
        "spec": spec(s),
    }))
    .expect("a node");
    node.status = Some(status);
    node
}

/// The Node's spec: the pod range, when the agent was given one.
fn spec(s: &NodeSettings) -> serde_json::Value {
    match &s.pod_cidr {
        Some(cidr) => json!({"podCIDR": cidr, "podCIDRs": [cidr]}),
        None => json!({}),
    }
}

/// Waits for the pod range the cluster's allocator gives the Node `name`
/// (at once when it has one), saying so now and then: a node without a
/// range can run no pod.
pub(crate) async fn assigned_range(
    client: &kube::Client,
    name: &str,
) -> Result<ipnet::Ipv4Net, kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let started = tokio::time::Instant::now();
    let mut said = started;
    loop {
        let node = api.get(name).await?;
        let range = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref());
        if let Some(range) = range {
            match range.parse() {
                Ok(range) => return Ok(range),
                Err(_) => tracing::warn!(node = name, range, "the node's pod range is not IPv4"),
            }
        }
        if said.elapsed() >= Duration::from_secs(15) {
            said = tokio::time::Instant::now();
            tracing::warn!(
                node = name,
                waited = ?started.elapsed(),
                "waiting for the cluster to give the node a pod range (is a server with controllers running?)"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Registers the node: creates it, or adopts the existing one (an agent
/// restart, or a re-join) by bringing its labels, pod CIDR and status up to
/// date.
pub(crate) async fn register(
    client: &kube::Client,
    s: &NodeSettings,
    facts: &Facts,
) -> Result<Node, kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let now = now();
    if api.get_opt(&s.name).await?.is_none() {
        let node = node_object(s, status(facts, s, None, &now));
        match api.create(&PostParams::default(), &node).await {
            Ok(n) => return Ok(n),
            // Made meanwhile by another agent of this name: adopt it below.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    // It exists: bring its metadata and spec in line, then its status.
    let want = node_object(s, status(facts, s, None, &now));
    let patch = json!({
        "metadata": {"labels": want.metadata.labels},
        "spec": spec(s),
    });
    let node = api
        .patch(&s.name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    let st = status(facts, s, node.status.as_ref(), &now);
    api.patch_status(
        &s.name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": st})),
    )
    .await
}

/// Renews the node's Lease every 10 s, creating it when missing.
pub(crate) async fn heartbeat(client: kube::Client, node: Node) {
    let api: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let name = node.metadata.name.clone().unwrap_or_default();
    let owner = json!([{
        "apiVersion": "v1", "kind": "Node", "name": name,
        "uid": node.metadata.uid,
    }]);
    loop {
        let renew = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease", "ownerReferences": owner},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_now()},
        });
        let result = match api.get_opt(&name).await {
            Ok(Some(_)) => api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": renew["spec"]})),
                )
                .await
                .map(drop),
            Ok(None) => {
                let lease: Lease = serde_json::from_value(renew).expect("a lease");
                api.create(&PostParams::default(), &lease).await.map(drop)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(node = %name, error = %e, "renewing the node lease");
        }
        tokio::time::sleep(LEASE_RENEW).await;
    }
}

/// Writes the node's status when it changes, and every five minutes.
pub(crate) async fn report_status(
    client: kube::Client,
    s: NodeSettings,
    gather: impl Fn() -> Facts + Send,
) {
    let api: Api<Node> = Api::all(client);
    let mut last: Option<NodeStatus> = None;
    let mut last_write = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(STATUS_CHECK).await;
        let facts = gather();
        let current = match api.get_opt(&s.name).await {
            Ok(Some(n)) => n.status,
            Ok(None) => {
                // Deleted under us: register again, as the kubelet does.
                if let Err(e) = register(&api.clone().into_client(), &s, &facts).await {
                    tracing::warn!(node = %s.name, error = %e, "registering the node again");
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(node = %s.name, error = %e, "reading the node");
                continue;
            }
        };
        let want = status(&facts, &s, current.as_ref(), &now());
        let due = last_write.elapsed() >= STATUS_REPORT;
        let differs = match (&last, &current) {
            (_, Some(cur)) => changed(cur, &want),
            _ => true,
        };
        if !(due || differs) {
            continue;
        }
        match api
            .patch_status(
                &s.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": want})),
            )
            .await
        {
            Ok(_) => {
                last = Some(want);
                last_write = tokio::time::Instant::now();
            }
            Err(e) => tracing::warn!(node = %s.name, error = %e, "writing the node status"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            cpus: 2,
            memory_total: 4 << 30,
            memory_available: 3 << 30,
            disk_total: 100 << 30,
            disk_free: 50 << 30,
            pids_max: 32768,
            pids_used: 300,
            hostname: "box".into(),
            address: "10.0.0.5".parse().unwrap(),
            kernel: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            machine_id: "abc".into(),
            boot_id: "def".into(),
            runc_version: "1.1.5".into(),
        }
    }

    fn settings() -> NodeSettings {
        NodeSettings {
            name: "box".into(),
            labels: BTreeMap::new(),
            pod_cidr: Some("10.244.0.0/24".into()),
            max_pods: 110,
            port: 10250,
        }
    }

    #[test]
    fn allocatable_keeps_back_the_eviction_threshold() {
        let (cap, alloc) = resources(&facts(), 110);
        assert_eq!(cap["memory"].0, "4194304Ki");
        assert_eq!(alloc["memory"].0, "4091904Ki");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(cap["cpu"].0, "2");
    }

    #[test]
    fn conditions_follow_pressure_and_keep_transition_times() {
        let f = facts();
        let s = status(&f, &settings(), None, "2026-01-01T00:00:00Z");
        let ready = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        let again = status(&f, &settings(), Some(&s), "2026-01-01T00:00:10Z");
        assert!(!changed(&s, &again), "only heartbeats moved");
        let mut low = f.clone();
        low.memory_available = 50 << 20;
        let pressed = status(&low, &settings(), Some(&again), "2026-01-01T00:00:20Z");
        assert!(changed(&again, &pressed));
        let mem = pressed
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "MemoryPressure")
            .unwrap();
        assert_eq!(mem.status, "True");
        assert_eq!(
            serde_json::to_value(&mem.last_transition_time).unwrap(),
            json!("2026-01-01T00:00:20Z")
        );
        let ready = pressed
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            serde_json::to_value(&ready.last_transition_time).unwrap(),
            json!("2026-01-01T00:00:00Z")
        );
    }
}
