//! One pod's life on the node, as one task: the kubelet's `syncPod` loop.
//!
//! Each pass (on a change of the pod, or every second, or when a probe or
//! back-off is due) brings the node towards the pod's spec: the sandbox
//! and its address, the volumes, the init containers one after the other,
//! then the containers; it notices containers that ended and restarts them
//! as the restart policy says, with the kubelet's back-off; it runs the
//! probes; and it writes the pod's status when it changed. When the pod is
//! deleted it stops the containers gracefully (preStop, the stop signal,
//! the grace period, SIGKILL), removes everything the pod had on the node,
//! and finishes the deletion in the API.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::EventType;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::container::{argv, merge_env, parse_env, resources};
use super::status::{ContainerView, PodView, State, Terminated, pod_status};
use super::{Context, Desired, labels};
use crate::env::{PodFacts, container_env};
use crate::probes::{self, Outcome};
use crate::time::{now, rfc3339};
use crate::volumes::{self, PodVolumes};

/// Back-off of container restarts: 10 s doubling to 5 minutes, reset after
/// a container ran for 10 minutes (the kubelet's figures).
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How often a pass runs when nothing else is due and the pod is not
/// settled (the kubelet's PLEG relists every second).
const RESYNC: Duration = Duration::from_secs(1);
/// How often a pass runs when the pod is settled: its containers run or are
/// done, their ends wake the worker (see `PodWorker::exited`), and the
/// status is written.
const SETTLED_RESYNC: Duration = Duration::from_secs(10);
/// How often file volumes are compared with their sources.
const VOLUME_REFRESH: Duration = Duration::from_secs(10);
/// The size at which a container's log rotates.
const LOG_MAX_BYTES: u64 = 10 << 20;

/// A probe's bookkeeping.
#[derive(Debug, Default)]
struct Prober {
    successes: i32,
    failures: i32,
    next: Option<Instant>,
}

/// What the worker knows of one container of the spec.
#[derive(Debug)]
struct Ctr {
    name: String,
    /// The runtime container running (or created) now.
    id: Option<String>,
    restart_count: i32,
    /// A container of this name has been started before.
    ever_started: bool,
    state: State,
    last: Option<Terminated>,
    /// Terminated and not to be restarted.
    done: bool,
    backoff: Duration,
    next_start: Option<Instant>,
    image_id: String,
    started_instant: Option<Instant>,
    started: bool,
    ready: bool,
    startup: Prober,
    liveness: Prober,
    readiness: Prober,
    /// Being killed by the agent (a failed probe or hook); the exit is
    /// expected.
    killing: bool,
}

impl Ctr {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            id: None,
            restart_count: 0,
            ever_started: false,
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
            last: None,
            done: false,
            backoff: Duration::ZERO,
            next_start: None,
            image_id: String::new(),
            started_instant: None,
            started: false,
            ready: false,
            startup: Prober::default(),
            liveness: Prober::default(),
            readiness: Prober::default(),
            killing: false,
        }
    }

    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn succeeded(&self) -> bool {
        matches!(&self.state, State::Terminated(t) if t.exit_code == 0)
    }

    fn waiting(&mut self, reason: &str, message: impl Into<String>) {
        self.state = State::Waiting {
            reason: reason.into(),
            message: message.into(),
        };
    }

    fn view(&self, spec: &Container) -> ContainerView {
        ContainerView {
            name: self.name.clone(),
            image: spec.image.clone().unwrap_or_default(),
            image_id: self.image_id.clone(),
            container_id: self
                .id
                .as_ref()
                .map(|id| format!("runc://{id}"))
                .or_else(|| match &self.state {
                    State::Terminated(t) => Some(t.container_id.clone()),
                    _ => None,
                }),
            state: self.state.clone(),
            last: self.last.clone(),
            restart_count: self.restart_count,
            ready: self.ready,
            started: self.started,
        }
    }
}

/// The worker of one pod.
pub(crate) struct PodWorker {
    ctx: Arc<Context>,
    uid: String,
    pod: Pod,
    /// The API object is gone: stop everything now.
    gone: bool,
    sandbox: Option<runtime::Sandbox>,
    ip: Option<Ipv4Addr>,
    /// The pod's interface being made (veth pair, address, routes), in the
    /// background while volumes, image and container spec are prepared;
    /// awaited before any process starts, before probes and before the
    /// status reports the address.
    wiring: Option<tokio::task::JoinHandle<Result<(), String>>>,
    volumes: Option<PodVolumes>,
    volumes_checked: Option<Instant>,
    init: Vec<Ctr>,
    containers: Vec<Ctr>,
    start_time: String,
    written: Option<Value>,
    /// Reached Succeeded or Failed and cleaned up: nothing more runs.
    finished: bool,
    /// Messages already reported as events, so a waiting pod does not
    /// repeat one every second.
    reported: HashMap<String, String>,
    /// Images whose last pull failed: when to try again, and the delay.
    pull_backoff: HashMap<String, (Instant, Duration)>,
    /// Events of this pass, sent once its status is written (see
    /// [`PodWorker::flush_events`]).
    held: parking_lot::Mutex<Vec<(EventType, String, String)>>,
    /// Woken when a container of this pod ends (the runtime's exit
    /// watcher), so a settled pod needs no pass every second to notice.
    exited: Arc<tokio::sync::Notify>,
    /// A container's end could not be watched: its end is noticed by the
    /// passes, which stay at one a second.
    unwatched: bool,
    /// The last status write failed: the next pass comes soon to retry.
    unsaved: bool,
}

impl PodWorker {
    /// A worker for `pod`, adopting the runtime containers listed in
    /// `records` (this pod's, found at the agent's start).
    pub(crate) fn new(ctx: Arc<Context>, pod: Pod, records: Vec<runtime::ContainerRecord>) -> Self {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut w = Self {
            ctx,
            uid,
            init: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| Ctr::new(&c.name))
                .collect(),
            containers: spec.containers.iter().map(|c| Ctr::new(&c.name)).collect(),
            start_time: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| {
                    serde_json::to_value(t)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(now),
            pod,
            gone: false,
            sandbox: None,
            ip: None,
            wiring: None,
            volumes: None,
            volumes_checked: None,
            written: None,
            finished: false,
            reported: HashMap::new(),
            pull_backoff: HashMap::new(),
            held: parking_lot::Mutex::new(Vec::new()),
            exited: Arc::new(tokio::sync::Notify::new()),
            unwatched: false,
            unsaved: false,
        };
        w.adopt(records);
        let adopted: Vec<String> = w
            .init
            .iter()
            .chain(w.containers.iter())
            .filter_map(|c| c.id.clone())
            .collect();
        for id in adopted {
            w.follow(&id);
        }
        w
    }

    /// Asks the runtime to wake this worker when container `id` ends.
    fn follow(&mut self, id: &str) {
        if let Err(e) = self.ctx.exits.watch(id, &self.exited) {
            tracing::warn!(pod = %self.name(), container = %id, error = %e,
                "watching a container's end: noticed by polling instead");
            self.unwatched = true;
        }
    }

    /// Nothing the pod waits for needs a pass to notice it: every container
    /// runs (its end wakes the worker) or is done, none is being killed, and
    /// the status is written. Never while the exit watcher does not work.
    fn settled(&self) -> bool {
        !self.unwatched
            && self.ctx.exits.working()
            && !self.unsaved
            && self.wiring.is_none()
            && self
                .init
                .iter()
                .chain(self.containers.iter())
                .all(|c| !c.killing && (c.running() || c.done))
    }

    /// Takes over what a previous agent left: the newest runtime container
    /// of each name, and from the pod's last status the restart counts,
    /// last states and init containers that already succeeded.
    fn adopt(&mut self, records: Vec<runtime::ContainerRecord>) {
        let status = self.pod.status.clone().unwrap_or_default();
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            self.finished = true;
        }
        let restore =
            |ctrs: &mut Vec<Ctr>,
             statuses: Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
                for c in ctrs.iter_mut() {
                    let Some(s) = statuses.and_then(|l| l.iter().find(|s| s.name == c.name)) else {
                        continue;
                    };
                    c.restart_count = s.restart_count;
                    c.image_id = s.image_id.clone();
                    c.last = s
                        .last_state
                        .as_ref()
                        .and_then(|l| l.terminated.as_ref())
                        .map(terminated_from);
                    c.ever_started = s.restart_count > 0
                        || c.last.is_some()
                        || s.state.as_ref().is_some_and(|st| st.waiting.is_none());
                    if let Some(t) = s.state.as_ref().and_then(|st| st.terminated.as_ref()) {
                        c.state = State::Terminated(terminated_from(t));
                        c.done = true;
                    }
                }
            };
        restore(&mut self.init, status.init_container_statuses.as_ref());
        restore(&mut self.containers, status.container_statuses.as_ref());
        // A terminated regular container may still restart (policy Always,
        // or OnFailure after a failure): only the status can tell that it
        // was final, and the next pass decides again.
        for c in &mut self.containers {
            if c.done
                && restarts(
                    self.pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.restart_policy.as_deref()),
                    c.succeeded(),
                )
            {
                c.done = false;
            }
        }
        let mut newest: HashMap<String, (i32, runtime::ContainerRecord)> = HashMap::new();
        for r in records {
            let name = r.labels.get(labels::CONTAINER).cloned().unwrap_or_default();
            let attempt: i32 = r
                .labels
                .get(labels::ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            match newest.get(&name) {
                Some((a, _)) if *a >= attempt => self.spawn_remove(r.id),
                _ => {
                    if let Some((_, old)) = newest.insert(name, (attempt, r)) {
                        self.spawn_remove(old.id);
                    }
                }
            }
        }
        for (_, record) in newest.values() {
            if let Some(signal) = record
                .labels
                .get(labels::STOP_SIGNAL)
                .and_then(|s| super::parse_signal(s))
            {
                self.ctx
                    .stop_signals
                    .lock()
                    .insert(record.id.clone(), signal);
            }
        }
        for (name, (attempt, record)) in newest {
            let Some(c) = self
                .init
                .iter_mut()
                .chain(self.containers.iter_mut())
                .find(|c| c.name == name)
            else {
                self.spawn_remove(record.id);
                continue;
            };
            c.id = Some(record.id);
            c.restart_count = attempt;
            c.ever_started = true;
            c.done = false;
            c.started_instant = Some(Instant::now());
            // Probes start over; the container is not restarted.
            c.started = true;
        }
    }

    fn spawn_remove(&self, id: String) {
        let ctx = Arc::clone(&self.ctx);
        tokio::spawn(async move {
            if let Err(e) = ctx.runtime.remove_container(&id).await {
                tracing::warn!(container = %id, error = %e, "removing a stale container");
            }
        });
    }

    fn name(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
            self.pod.metadata.name.as_deref().unwrap_or_default()
        )
    }

    fn restart_policy(&self) -> Option<&str> {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
    }

    /// Runs the worker until the pod is gone from the node.
    pub(crate) async fn run(mut self, mut rx: watch::Receiver<Desired>) {
        let exited = Arc::clone(&self.exited);
        loop {
            let wake = self.sync().await;
            self.flush_events();
            let Some(wake) = wake else {
                break;
            };
            tokio::select! {
                () = exited.notified() => {}
                changed = rx.changed() => {
                    if changed.is_err() {
                        // The agent is stopping: leave the containers running.
                        return;
                    }
                    match rx.borrow_and_update().clone() {
                        Desired::Pod(p) => self.update_spec(*p),
                        Desired::Gone => self.gone = true,
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        self.ctx.registry.remove(&self.uid);
    }

    fn update_spec(&mut self, pod: Pod) {
        // Only images (and a few scheduling fields) of a pod's containers
        // change after creation; a changed image makes the container
        // restart, as the kubelet does.
        let old = self.pod.spec.clone().unwrap_or_default();
        let new = pod.spec.clone().unwrap_or_default();
        for (c, (o, n)) in self
            .containers
            .iter_mut()
            .zip(old.containers.iter().zip(new.containers.iter()))
        {
            if o.image != n.image
                && c.running()
                && let Some(id) = c.id.clone()
            {
                c.killing = true;
                let ctx = Arc::clone(&self.ctx);
                tokio::spawn(async move {
                    let _ = ctx.runtime.kill(&id, Signal::SIGTERM).await;
                });
            }
        }
        self.pod = pod;
    }

    /// One pass; answers when the next is due, or `None` when the pod is
    /// gone from the node.
    async fn sync(&mut self) -> Option<Instant> {
        if self.gone || self.pod.metadata.deletion_timestamp.is_some() {
            self.terminate().await;
            return None;
        }
        if self.finished {
            self.cleanup_runtime().await;
            self.publish_registry();
            return Some(Instant::now() + Duration::from_secs(10));
        }
        let began = Instant::now();
        // The volumes need nothing of the sandbox (their files hold none of
        // the pod's addresses): both are made at once.
        let volumes = self.volumes_due().then(|| self.setup_volumes());
        let ((sandboxed, sandbox_took), (volumes, volumes_took)) = tokio::join!(
            async {
                let r = self.ensure_sandbox().await;
                (r, began.elapsed())
            },
            async move {
                let r = match volumes {
                    Some(setup) => Some(setup.await),
                    None => None,
                };
                (r, began.elapsed())
            }
        );
        if let Err(message) = sandboxed {
            self.event(EventType::Warning, "FailedCreatePodSandBox", &message)
                .await;
            self.write_status().await;
            return Some(Instant::now() + Duration::from_secs(2));
        }
        match volumes {
            Some(Ok(v)) => {
                self.volumes = Some(v);
                self.volumes_checked = Some(Instant::now());
            }
            Some(Err(e)) => {
                self.report_once("FailedMount", &e.to_string()).await;
                self.write_status().await;
                return Some(Instant::now() + Duration::from_secs(2));
            }
            None => {}
        }
        let prepared = began.elapsed();
        self.observe().await;
        let spec = self.pod.spec.clone().unwrap_or_default();
        // Init containers, one at a time, in order.
        let mut initialized = true;
        let mut init_failed = false;
        for i in 0..self.init.len() {
            if self.init[i].succeeded() {
                continue;
            }
            initialized = false;
            if self.init[i].running() {
                break;
            }
            if self.init[i].done {
                init_failed = true;
                break;
            }
            let c = spec
                .init_containers
                .as_ref()
                .map(|l| l[i].clone())
                .unwrap_or_default();
            self.try_start(true, i, &c).await;
            break;
        }
        // The containers wait with PodInitializing until init is done.
        if !initialized {
            for c in &mut self.containers {
                if !c.running() && !c.done && c.last.is_none() {
                    c.waiting("PodInitializing", "");
                }
            }
        }
        if initialized && !init_failed {
            for i in 0..self.containers.len() {
                let c = &self.containers[i];
                if c.running() || c.done || c.killing {
                    continue;
                }
                self.try_start(false, i, &spec.containers[i]).await;
            }
        }
        if let Err(message) = self.network_ready().await {
            self.report_once("FailedCreatePodSandBox", &message).await;
            self.write_status().await;
            return Some(Instant::now() + Duration::from_secs(2));
        }
        let mut wake = self.volumes_next();
        if let Some(t) = self.run_probes(&spec).await {
            wake = wake.min(t);
        }
        for c in self.init.iter().chain(self.containers.iter()) {
            if let Some(t) = c.next_start.filter(|t| *t > Instant::now()) {
                wake = wake.min(t);
            }
        }
        let before_status = began.elapsed();
        let phase = self.write_status().await;
        // Where a slow sync's time went (a pod's start, say); quick ones, most of
        // them, change nothing and say nothing.
        if began.elapsed() > Duration::from_millis(5) {
            tracing::debug!(
                pod = %self.name(),
                sandbox_and_volumes_ms = prepared.as_secs_f64() * 1e3,
                sandbox_ms = sandbox_took.as_secs_f64() * 1e3,
                volumes_ms = volumes_took.as_secs_f64() * 1e3,
                status_ms = (began.elapsed() - before_status).as_secs_f64() * 1e3,
                total_ms = began.elapsed().as_secs_f64() * 1e3,
                "pod synced"
            );
        }
        self.publish_registry();
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
            self.finished = true;
            self.cleanup_runtime().await;
        }
        let resync = if self.settled() {
            SETTLED_RESYNC
        } else {
            RESYNC
        };
        Some(wake.min(Instant::now() + resync))
    }

    /// The sandbox, its address and its files (/etc/hosts, resolv.conf).
    async fn ensure_sandbox(&mut self) -> Result<(), String> {
        if self.sandbox.is_some() && (self.ip.is_some() || self.host_network()) {
            return Ok(());
        }
        let hostname = self.hostname();
        let host_network = self.host_network();
        let network_failed = |e: net::NetError| {
            format!("Failed to create pod sandbox: setting up the pod network: {e}")
        };
        // A blocking thread makes the namespaces while this one takes the
        // address and writes the pod's files, which name it.
        let rt = Arc::clone(&self.ctx);
        let uid = self.uid.clone();
        let name = hostname.clone();
        let making = tokio::task::spawn_blocking(move || {
            rt.runtime.create_sandbox(&uid, &name, host_network)
        });
        let addressed = if host_network {
            Ok(())
        } else {
            self.ctx
                .network
                .address(&self.uid)
                .map(|ip| self.ip = Some(ip))
                .map_err(network_failed)
        };
        let written = addressed.and_then(|()| {
            self.write_pod_files(&hostname)
                .map_err(|e| format!("Failed to create pod sandbox: {e}"))
        });
        let made = match making.await {
            Ok(made) => made.map_err(|e| format!("Failed to create pod sandbox: {e}")),
            Err(e) => Err(e.to_string()),
        };
        let sandbox = match made.and_then(|sandbox| written.map(|()| sandbox)) {
            Ok(sandbox) => sandbox,
            Err(message) => {
                // No address shows in the status before the sandbox is whole; it
                // stays reserved for the pod (`address` finds it again).
                self.ip = None;
                return Err(message);
            }
        };
        if let Some(netns) = &sandbox.netns {
            // The interface is made while the containers are prepared, and
            // awaited before they start (`network_ready`).
            let (ctx, uid, netns) = (Arc::clone(&self.ctx), self.uid.clone(), netns.clone());
            if let Some(old) = self.wiring.take() {
                let _ = old.await;
            }
            self.wiring = Some(tokio::spawn(async move {
                ctx.network
                    .attach(&uid, &netns)
                    .await
                    .map(|_| ())
                    .map_err(network_failed)
            }));
            // A task spawned from this one waits in this worker thread's next-task
            // slot, which no other worker takes from, until this task yields: without
            // this, not before `network_ready`, after the bundle is made.
            tokio::task::yield_now().await;
        }
        self.sandbox = Some(sandbox);
        Ok(())
    }

    /// Waits for the pod's interface (see `wiring`). On failure the address
    /// is forgotten, so the next sync makes the sandbox's network again.
    async fn network_ready(&mut self) -> Result<(), String> {
        if let Some(wiring) = self.wiring.take() {
            let result = match wiring.await {
                Ok(r) => r,
                Err(e) => Err(format!("Failed to create pod sandbox: {e}")),
            };
            if let Err(message) = result {
                self.ip = None;
                return Err(message);
            }
        }
        if self.ip.is_none() && !self.host_network() {
            return Err("Failed to create pod sandbox: the pod network is not ready".to_owned());
        }
        Ok(())
    }

    fn host_network(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    fn hostname(&self) -> String {
        let spec = self.pod.spec.as_ref();
        if self.host_network() {
            return self.ctx.facts_hostname.clone();
        }
        spec.and_then(|s| s.hostname.clone())
            .filter(|h| !h.is_empty())
            .or_else(|| self.pod.metadata.name.clone())
            .unwrap_or_default()
            .chars()
            .take(63)
            .collect()
    }

    fn pod_dir(&self) -> PathBuf {
        self.ctx.pods_root.join(&self.uid)
    }

    fn pod_ip(&self) -> String {
        match (self.ip, self.host_network()) {
            (_, true) => self.ctx.host_ip.to_string(),
            (Some(ip), _) => ip.to_string(),
            _ => String::new(),
        }
    }

    /// /etc/hosts, /etc/hostname and /etc/resolv.conf of the pod.
    fn write_pod_files(&self, hostname: &str) -> std::io::Result<()> {
        let dir = self.pod_dir().join("etc");
        std::fs::create_dir_all(&dir)?;
        let spec = self.pod.spec.clone().unwrap_or_default();
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let mut hosts = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        let fqdn = spec
            .subdomain
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|sub| format!("{hostname}.{sub}.{ns}.svc.{}", self.ctx.cluster_domain));
        let ip = self.pod_ip();
        if !ip.is_empty() {
            match &fqdn {
                Some(f) => hosts.push_str(&format!("{ip}\t{f}\t{hostname}\n")),
                None => hosts.push_str(&format!("{ip}\t{hostname}\n")),
            }
        }
        if let Some(aliases) = &spec.host_aliases {
            hosts.push_str("\n# Entries added by HostAliases.\n");
            for a in aliases {
                hosts.push_str(&format!(
                    "{}\t{}\n",
                    a.ip,
                    a.hostnames.clone().unwrap_or_default().join("\t")
                ));
            }
        }
        std::fs::write(dir.join("hosts"), hosts)?;
        std::fs::write(dir.join("hostname"), format!("{hostname}\n"))?;
        std::fs::write(dir.join("resolv.conf"), self.resolv_conf(&spec, &ns))?;
        Ok(())
    }

    /// The pod's resolv.conf: the host's for `dnsPolicy: Default` and for
    /// pods on the host's network, cluster DNS when the node has it, and
    /// `dnsConfig` merged in.
    fn resolv_conf(&self, spec: &k8s_openapi::api::core::v1::PodSpec, ns: &str) -> String {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut servers: Vec<String> = Vec::new();
        let mut searches: Vec<String> = Vec::new();
        let mut options: Vec<String> = Vec::new();
        let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
        let cluster = match (&self.ctx.cluster_dns, policy) {
            (Some(dns), "ClusterFirst") if !self.host_network() => Some(dns),
            (Some(dns), "ClusterFirstWithHostNet") => Some(dns),
            _ => None,
        };
        if policy != "None" {
            match cluster {
                Some(dns) => {
                    servers.push(dns.to_string());
                    let d = &self.ctx.cluster_domain;
                    searches.extend([format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()]);
                    options.push("ndots:5".into());
                }
                None => {
                    for line in host.lines() {
                        let mut words = line.split_whitespace();
                        match words.next() {
                            Some("nameserver") => servers.extend(words.next().map(str::to_owned)),
                            Some("search") | Some("domain") => {
                                searches.extend(words.map(str::to_owned))
                            }
                            Some("options") => options.extend(words.map(str::to_owned)),
                            _ => {}
                        }
                    }
                }
            }
        }
        if let Some(cfg) = &spec.dns_config {
            servers.extend(cfg.nameservers.iter().flatten().cloned());
            searches.extend(cfg.searches.iter().flatten().cloned());
            for o in cfg.options.iter().flatten() {
                let Some(name) = &o.name else { continue };
                options.retain(|x| x.split(':').next() != Some(name.as_str()));
                options.push(match &o.value {
                    Some(v) => format!("{name}:{v}"),
                    None => name.clone(),
                });
            }
        }
        let mut out = String::new();
        if !searches.is_empty() {
            out.push_str(&format!("search {}\n", searches.join(" ")));
        }
        for s in servers.iter().take(3) {
            out.push_str(&format!("nameserver {s}\n"));
        }
        if !options.is_empty() {
            out.push_str(&format!("options {}\n", options.join(" ")));
        }
        out
    }

    fn facts(&self) -> PodFacts {
        PodFacts {
            pod_ip: self.pod_ip(),
            host_ip: self.ctx.host_ip.to_string(),
            node_allocatable: self.ctx.allocatable.clone(),
        }
    }

    /// The volumes were never made, or are due to be refreshed (configMaps,
    /// secrets, the service account token). `volumes_checked` is set with
    /// `volumes`, so made volumes have a time.
    fn volumes_due(&self) -> bool {
        self.volumes.is_none() || Instant::now() >= self.volumes_next()
    }

    /// When the volumes are next due: their refresh, or the first token's renewal.
    fn volumes_next(&self) -> Instant {
        let refresh = self
            .volumes_checked
            .map_or_else(|| Instant::now() + RESYNC, |t| t + VOLUME_REFRESH);
        match self.volumes.as_ref().and_then(PodVolumes::renew_at) {
            Some(renew) => refresh.min(Instant::from_std(renew)),
            None => refresh,
        }
    }

    /// Makes or refreshes the pod's volumes; the future borrows nothing of
    /// the worker, so it runs beside the sandbox's making.
    fn setup_volumes(
        &self,
    ) -> impl std::future::Future<Output = Result<PodVolumes, volumes::VolumeError>> + use<> {
        let client = self.ctx.client.clone();
        let pods_root = self.ctx.pods_root.clone();
        let pod = self.pod.clone();
        let facts = self.facts();
        let tokens = self
            .volumes
            .as_ref()
            .map(|v| v.tokens.clone())
            .unwrap_or_default();
        async move { volumes::setup(&client, &pods_root, &pod, &facts, &tokens).await }
    }

    fn ctr(&mut self, init: bool, i: usize) -> &mut Ctr {
        if init {
            &mut self.init[i]
        } else {
            &mut self.containers[i]
        }
    }

    /// Notices containers that ended, records how, and decides whether
    /// they restart.
    async fn observe(&mut self) {
        for init in [true, false] {
            let n = if init {
                self.init.len()
            } else {
                self.containers.len()
            };
            for i in 0..n {
                let Some(id) = self.ctr(init, i).id.clone() else {
                    continue;
                };
                let status = self.ctx.runtime.status(&id);
                match status {
                    Ok(runtime::ContainerStatus::Running { started_at, .. }) => {
                        let c = self.ctr(init, i);
                        if !c.running() {
                            c.state = State::Running {
                                started_at: rfc3339(started_at),
                            };
                        }
                    }
                    Ok(runtime::ContainerStatus::Exited {
                        exit_code,
                        signal,
                        started_at,
                        finished_at,
                        oom_killed,
                    }) => {
                        let t = self.terminated(
                            init,
                            i,
                            &id,
                            exit_code,
                            signal,
                            started_at,
                            finished_at,
                            oom_killed,
                        );
                        self.handle_exit(init, i, t).await;
                    }
                    Ok(runtime::ContainerStatus::Created) => {
                        // A start that never happened (the agent stopped in
                        // between): start over.
                        let _ = self.ctx.runtime.remove_container(&id).await;
                        self.ctr(init, i).id = None;
                    }
                    Ok(runtime::ContainerStatus::Unknown(message)) => {
                        let t = Terminated {
                            exit_code: 255,
                            signal: None,
                            reason: "Unknown".into(),
                            message,
                            started_at: None,
                            finished_at: now(),
                            container_id: format!("runc://{id}"),
                        };
                        self.handle_exit(init, i, t).await;
                    }
                    Err(e) => {
                        let t = Terminated {
                            exit_code: 255,
                            signal: None,
                            reason: "Unknown".into(),
                            message: e.to_string(),
                            started_at: None,
                            finished_at: now(),
                            container_id: format!("runc://{id}"),
                        };
                        self.handle_exit(init, i, t).await;
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn terminated(
        &self,
        init: bool,
        i: usize,
        id: &str,
        exit_code: i32,
        signal: Option<i32>,
        started_at: Option<SystemTime>,
        finished_at: SystemTime,
        oom_killed: bool,
    ) -> Terminated {
        let spec = self.container_spec(init, i);
        let reason = if oom_killed {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let c = if init {
            &self.init[i]
        } else {
            &self.containers[i]
        };
        let mut message = std::fs::read(self.termination_log(&c.name, c.restart_count))
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned())
            .unwrap_or_default();
        let fallback = spec
            .as_ref()
            .and_then(|s| s.termination_message_policy.as_deref())
            == Some("FallbackToLogsOnError");
        if message.is_empty() && fallback && exit_code != 0 {
            message = tail_of_log(&self.log_path(&c.name, c.restart_count), 80, 2048);
        }
        Terminated {
            exit_code,
            signal,
            reason: reason.into(),
            message,
            started_at: started_at.map(rfc3339),
            finished_at: rfc3339(finished_at),
            container_id: format!("runc://{id}"),
        }
    }

    fn container_spec(&self, init: bool, i: usize) -> Option<Container> {
        let spec = self.pod.spec.as_ref()?;
        if init {
            spec.init_containers.as_ref()?.get(i).cloned()
        } else {
            spec.containers.get(i).cloned()
        }
    }

    async fn handle_exit(&mut self, init: bool, i: usize, t: Terminated) {
        let policy = self.restart_policy().map(str::to_owned);
        let (name, id) = {
            let c = self.ctr(init, i);
            (c.name.clone(), c.id.take())
        };
        if let Some(id) = id
            && let Err(e) = self.ctx.runtime.remove_container(&id).await
        {
            tracing::warn!(container = %id, error = %e, "removing an exited container");
        }
        let ran = self.ctr(init, i).started_instant.map(|s| s.elapsed());
        let again = if init {
            // A failed init container is retried unless the pod never
            // restarts; one that succeeded is done.
            t.exit_code != 0 && policy.as_deref() != Some("Never")
        } else {
            restarts(policy.as_deref(), t.exit_code == 0)
        };
        let c = self.ctr(init, i);
        c.ready = false;
        c.started = false;
        c.killing = false;
        c.startup = Prober::default();
        c.liveness = Prober::default();
        c.readiness = Prober::default();
        if again {
            if ran.is_some_and(|r| r >= BACKOFF_RESET) {
                c.backoff = Duration::ZERO;
            }
            c.next_start = Some(Instant::now() + c.backoff);
            c.backoff = if c.backoff.is_zero() {
                BACKOFF_START
            } else {
                (c.backoff * 2).min(BACKOFF_MAX)
            };
            c.state = State::Terminated(t.clone());
            c.last = Some(t);
        } else {
            c.done = true;
            c.state = State::Terminated(t);
        }
        tracing::debug!(pod = %self.name(), container = %name, again, "container exited");
    }

    /// Starts container `i` if its back-off allows: image, environment,
    /// create, start, postStart.
    async fn try_start(&mut self, init: bool, i: usize, spec: &Container) {
        let pod_name = self.name();
        {
            let c = self.ctr(init, i);
            if let Some(t) = c.next_start
                && t > Instant::now()
            {
                if c.last.is_some() {
                    let delay = c.backoff / 2;
                    let message = format!(
                        "back-off {} restarting failed container={} pod={}",
                        human(delay.max(BACKOFF_START)),
                        c.name,
                        pod_name.replace('/', "_"),
                    );
                    c.waiting("CrashLoopBackOff", message);
                }
                return;
            }
        }
        let began = Instant::now();
        let image = match self.ensure_image(spec).await {
            Ok(img) => img,
            Err((reason, message)) => {
                let c = self.ctr(init, i);
                c.waiting(&reason, message.clone());
                return;
            }
        };
        let imaged = began.elapsed();
        let links = crate::env::service_env(&self.ctx.services, &self.pod).await;
        let env = container_env(&self.ctx.client, &self.pod, spec, &self.facts(), &links).await;
        let mut env = match env {
            Ok(env) => env,
            Err(message) => {
                self.ctr(init, i)
                    .waiting("CreateContainerConfigError", message.clone());
                self.report_once("Failed", &format!("Error: {message}"))
                    .await;
                return;
            }
        };
        env = merge_env(parse_env(&image.config.env), env);
        if !env.iter().any(|(k, _)| k == "HOSTNAME") {
            env.push(("HOSTNAME".into(), self.hostname()));
        }
        let built = match self.build_spec(init, i, spec, &image, env) {
            Ok(s) => s,
            Err(message) => {
                self.ctr(init, i)
                    .waiting("CreateContainerConfigError", message.clone());
                self.report_once("Failed", &format!("Error: {message}"))
                    .await;
                return;
            }
        };
        let id = built.id.clone();
        let name = spec.name.clone();
        let specified = began.elapsed();
        // A leftover of an interrupted start with the same id goes first.
        // Only when there is one: removing runs `runc delete`, a process
        // (~8 ms) on every start otherwise. The runtime makes a container's
        // directory before anything else of it (runc state, cgroup, mounts).
        if self.ctx.runtime.config().root.join(&id).exists() {
            let _ = self.ctx.runtime.remove_container(&id).await;
        }
        // From here a container instance exists: it counts as a restart
        // (the kubelet's restartCount counts instances made).
        let before = {
            let c = self.ctr(init, i);
            let before = (c.restart_count, c.ever_started);
            if c.ever_started {
                c.restart_count += 1;
            }
            c.ever_started = true;
            before
        };
        // Created and started in one runc process (`runc run`): a separate
        // `runc start` costs ~10 ms of every pod's start. The bundle is made
        // while the pod's interface is finished (see `wiring`), and the
        // process, which must find its network made, starts after both.
        let prepared = match self.ctx.runtime.prepare_run(built).await {
            Ok(p) => p,
            Err(e) => {
                self.run_failed(init, i, &id, e, before).await;
                return;
            }
        };
        let bundled = began.elapsed();
        if let Err(message) = self.network_ready().await {
            prepared.abandon().await;
            self.unmade(init, i, before);
            self.report_once("FailedCreatePodSandBox", &message).await;
            return;
        }
        let wired = began.elapsed();
        if let Err(e) = prepared.start().await {
            self.run_failed(init, i, &id, e, before).await;
            return;
        }
        tracing::debug!(
            pod = %pod_name,
            container = %name,
            image_ms = imaged.as_secs_f64() * 1e3,
            spec_ms = (specified - imaged).as_secs_f64() * 1e3,
            bundle_ms = (bundled - specified).as_secs_f64() * 1e3,
            network_wait_ms = (wired - bundled).as_secs_f64() * 1e3,
            run_ms = (began.elapsed() - wired).as_secs_f64() * 1e3,
            "container running"
        );
        self.event(
            EventType::Normal,
            "Created",
            &format!("Created container: {name}"),
        )
        .await;
        if let Some(signal) = image
            .config
            .stop_signal
            .as_deref()
            .and_then(super::parse_signal)
        {
            self.ctx.stop_signals.lock().insert(id.clone(), signal);
        }
        {
            let c = self.ctr(init, i);
            c.id = Some(id.clone());
            c.image_id = image
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.clone());
            c.started_instant = Some(Instant::now());
            c.state = State::Running { started_at: now() };
            c.next_start = None;
            c.started = spec.startup_probe.is_none();
        }
        self.follow(&id);
        // The use only orders garbage collection, and the store writes it
        // durably (an fsync, ~8 ms here): off the start's path and off the
        // async workers.
        let (images, image_id) = (self.ctx.images.clone(), image.id.clone());
        tokio::task::spawn_blocking(move || images.touch(&image_id));
        self.event(
            EventType::Normal,
            "Started",
            &format!("Started container {name}"),
        )
        .await;
        if let Some(hook) = spec.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            // The hook may run for the whole grace period.
            self.flush_events();
            let grace = self.grace();
            if let Err(message) =
                run_handler(&self.ctx, &id, spec, hook, self.probe_ip(), grace).await
            {
                self.event(
                    EventType::Warning,
                    "FailedPostStartHook",
                    &format!("PostStartHook failed: {message}"),
                )
                .await;
                self.ctr(init, i).killing = true;
                let _ = self.ctx.runtime.kill(&id, Signal::SIGKILL).await;
            }
        }
    }

    /// Making or running container `id` failed (the runtime has removed what
    /// it made). runc refusing to create or start the process is the
    /// container's start failing (RunContainerError, a StartError
    /// termination); anything before runc is CreateContainerError, and no
    /// instance was made: the restart count goes back to `before`.
    async fn run_failed(
        &mut self,
        init: bool,
        i: usize,
        id: &str,
        e: runtime::RuntimeError,
        before: (i32, bool),
    ) {
        let message = e.to_string();
        if matches!(e, runtime::RuntimeError::Runc { .. }) {
            self.start_error(init, i, id, &message).await;
        } else {
            self.unmade(init, i, before);
            self.fail_start(init, i, "CreateContainerError", &message)
                .await;
        }
    }

    /// Forgets an instance that was never made: the restart count goes back to `before`.
    fn unmade(&mut self, init: bool, i: usize, before: (i32, bool)) {
        let c = self.ctr(init, i);
        (c.restart_count, c.ever_started) = before;
    }

    /// The container's process could not start: it ends as a `StartError`
    /// termination (exit code 128), restarts as its policy says, and waits
    /// with `RunContainerError`.
    async fn start_error(&mut self, init: bool, i: usize, id: &str, message: &str) {
        // It never ran: the back-off is not reset for a long run.
        self.ctr(init, i).started_instant = None;
        let t = Terminated {
            exit_code: 128,
            signal: None,
            reason: "StartError".into(),
            message: message.to_owned(),
            started_at: None,
            finished_at: now(),
            container_id: format!("runc://{id}"),
        };
        self.handle_exit(init, i, t).await;
        let c = self.ctr(init, i);
        if !c.done {
            c.waiting("RunContainerError", message);
        }
        self.event(EventType::Warning, "Failed", &format!("Error: {message}"))
            .await;
    }

    async fn fail_start(&mut self, init: bool, i: usize, reason: &str, message: &str) {
        let c = self.ctr(init, i);
        c.waiting(reason, message);
        c.next_start = Some(Instant::now() + c.backoff);
        c.backoff = if c.backoff.is_zero() {
            BACKOFF_START
        } else {
            (c.backoff * 2).min(BACKOFF_MAX)
        };
        self.event(EventType::Warning, "Failed", &format!("Error: {message}"))
            .await;
    }

    /// The image of a container, pulled as its policy says.
    async fn ensure_image(&mut self, spec: &Container) -> Result<images::Image, (String, String)> {
        let image = spec.image.clone().unwrap_or_default();
        let reference = images::normalize(&image).map_err(|e| {
            (
                "InvalidImageName".to_owned(),
                format!("Failed to apply default image tag {image:?}: {e}"),
            )
        })?;
        let policy = spec.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
        let present = self.ctx.images.get(&reference);
        match (policy, present) {
            ("Never", Some(img)) | ("IfNotPresent", Some(img)) => {
                self.report_once(
                    "Pulled",
                    &format!("Container image \"{image}\" already present on machine"),
                )
                .await;
                return Ok(img);
            }
            ("Never", None) => {
                let message =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.report_once("ErrImageNeverPull", &message).await;
                return Err(("ErrImageNeverPull".into(), message));
            }
            _ => {}
        }
        if let Some(until) = self.pull_backoff.get(&reference).map(|b| b.0)
            && until > Instant::now()
        {
            return Err((
                "ImagePullBackOff".into(),
                format!("Back-off pulling image \"{image}\""),
            ));
        }
        self.event(
            EventType::Normal,
            "Pulling",
            &format!("Pulling image \"{image}\""),
        )
        .await;
        // A pull can take minutes: what led to it is said now.
        self.flush_events();
        let started = Instant::now();
        let options = images::PullOptions {
            credentials: self.pull_credentials().await,
            insecure_registries: self.ctx.insecure_registries.clone(),
        };
        match self.ctx.images.pull(&reference, &options).await {
            Ok(img) => {
                self.pull_backoff.remove(&reference);
                let took = started.elapsed().as_secs_f64();
                self.event(
                    EventType::Normal,
                    "Pulled",
                    &format!(
                        "Successfully pulled image \"{image}\" in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                        img.size
                    ),
                )
                .await;
                Ok(img)
            }
            Err(e) => {
                {
                    // Per pod, as the kubelet keys its image back-off.
                    let entry = self
                        .pull_backoff
                        .entry(reference)
                        .or_insert((Instant::now(), Duration::ZERO));
                    entry.1 = if entry.1.is_zero() {
                        BACKOFF_START
                    } else {
                        (entry.1 * 2).min(BACKOFF_MAX)
                    };
                    entry.0 = Instant::now() + entry.1;
                }
                let message = format!("Failed to pull image \"{image}\": {e}");
                self.event(EventType::Warning, "Failed", &message).await;
                self.event(EventType::Warning, "Failed", "Error: ErrImagePull")
                    .await;
                Err(("ErrImagePull".into(), message))
            }
        }
    }

    async fn pull_credentials(&self) -> Vec<images::Credential> {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), ns);
        let mut out = Vec::new();
        let refs = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default();
        for r in refs {
            let Ok(Some(secret)) = api.get_opt(&r.name).await else {
                tracing::debug!(secret = %r.name, "image pull secret not found");
                continue;
            };
            for key in [".dockerconfigjson", ".dockercfg"] {
                if let Some(data) = secret.data.as_ref().and_then(|d| d.get(key))
                    && let Ok(creds) = images::credentials_from_docker_config(&data.0)
                {
                    out.extend(creds);
                }
            }
        }
        out
    }

    fn log_path(&self, name: &str, restart_count: i32) -> PathBuf {
        self.pod_dir()
            .join("logs")
            .join(name)
            .join(format!("{restart_count}.log"))
    }

    fn termination_log(&self, name: &str, restart_count: i32) -> PathBuf {
        self.pod_dir()
            .join("containers")
            .join(name)
            .join(format!("{restart_count}.termination-log"))
    }

    /// The runtime's description of container `i`.
    fn build_spec(
        &self,
        init: bool,
        i: usize,
        c: &Container,
        image: &images::Image,
        env: Vec<(String, String)>,
    ) -> Result<runtime::ContainerSpec, String> {
        let state = if init {
            &self.init[i]
        } else {
            &self.containers[i]
        };
        let attempt = if state.ever_started {
            state.restart_count + 1
        } else {
            state.restart_count
        };
        let id = format!("{}-{}-{attempt}", self.uid, c.name);
        let pod_spec = self.pod.spec.clone().unwrap_or_default();
        let psc = pod_spec.security_context.clone().unwrap_or_default();
        let sc = c.security_context.clone().unwrap_or_default();
        let layers = self.ctx.images.layers(image).map_err(|e| e.to_string())?;
        let argv = argv(c, &image.config.entrypoint, &image.config.cmd, &env);
        if argv.is_empty() {
            return Err("no command specified".into());
        }
        let run_as_user = sc.run_as_user.or(psc.run_as_user);
        let run_as_group = sc.run_as_group.or(psc.run_as_group);
        if sc.run_as_non_root.or(psc.run_as_non_root) == Some(true) {
            let user = image.config.user.split(':').next().unwrap_or_default();
            match run_as_user {
                Some(0) => return Err("container's runAsUser breaks non-root policy".into()),
                Some(_) => {}
                None if user.is_empty() || user == "0" || user == "root" => {
                    return Err("container has runAsNonRoot and image will run as root".into());
                }
                None if user.parse::<u32>().is_err() => {
                    return Err(format!(
                        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root"
                    ));
                }
                None => {}
            }
        }
        let mut groups: Vec<u32> = psc
            .supplemental_groups
            .iter()
            .flatten()
            .map(|g| *g as u32)
            .collect();
        if let Some(g) = psc.fs_group {
            groups.push(g as u32);
        }
        let volumes = self.volumes.clone().unwrap_or_default();
        let mut mounts = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            let Some(base) = volumes.paths.get(&m.name) else {
                return Err(format!(
                    "volume {:?} not found among the pod's volumes",
                    m.name
                ));
            };
            let mut source = base.clone();
            if let Some(sub) = m.sub_path.as_ref().filter(|s| !s.is_empty()) {
                if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                    return Err(format!("invalid subPath {sub:?}"));
                }
                source = source.join(sub);
                if !source.exists() {
                    std::fs::create_dir_all(&source)
                        .map_err(|e| format!("{}: {e}", source.display()))?;
                }
            }
            let propagation = match m.mount_propagation.as_deref() {
                Some("HostToContainer") => runtime::Propagation::HostToContainer,
                Some("Bidirectional") => runtime::Propagation::Bidirectional,
                _ => runtime::Propagation::Private,
            };
            mounts.push(runtime::Mount {
                destination: PathBuf::from(&m.mount_path),
                source: runtime::MountSource::Bind(source),
                readonly: m.read_only.unwrap_or(false) || volumes.read_only.contains(&m.name),
                propagation,
            });
        }
        let etc = self.pod_dir().join("etc");
        let mounted = |dest: &str| {
            mounts
                .iter()
                .any(|m: &runtime::Mount| m.destination == std::path::Path::new(dest))
        };
        let mut extra = Vec::new();
        for (file, dest) in [
            ("hosts", "/etc/hosts"),
            ("hostname", "/etc/hostname"),
            ("resolv.conf", "/etc/resolv.conf"),
        ] {
            if !mounted(dest) {
                extra.push(runtime::Mount {
                    destination: dest.into(),
                    source: runtime::MountSource::Bind(etc.join(file)),
                    readonly: false,
                    propagation: runtime::Propagation::Private,
                });
            }
        }
        let term_path = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        let term_file = self.termination_log(&c.name, attempt);
        if let Some(parent) = term_file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&term_file, b"").map_err(|e| format!("{}: {e}", term_file.display()))?;
        std::fs::set_permissions(
            &term_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .map_err(|e| e.to_string())?;
        if !mounted(&term_path) {
            extra.push(runtime::Mount {
                destination: term_path.into(),
                source: runtime::MountSource::Bind(term_file),
                readonly: false,
                propagation: runtime::Propagation::Private,
            });
        }
        mounts.extend(extra);
        let log_path = self.log_path(&c.name, attempt);
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let caps = sc.capabilities.clone().unwrap_or_default();
        let mut label_map = BTreeMap::from([
            (labels::POD_UID.to_owned(), self.uid.clone()),
            (
                labels::POD_NAME.to_owned(),
                self.pod.metadata.name.clone().unwrap_or_default(),
            ),
            (
                labels::POD_NAMESPACE.to_owned(),
                self.pod.metadata.namespace.clone().unwrap_or_default(),
            ),
            (labels::CONTAINER.to_owned(), c.name.clone()),
            (labels::ATTEMPT.to_owned(), attempt.to_string()),
        ]);
        if init {
            label_map.insert(labels::INIT.to_owned(), "true".to_owned());
        }
        if let Some(signal) = image.config.stop_signal.as_ref().filter(|s| !s.is_empty()) {
            label_map.insert(labels::STOP_SIGNAL.to_owned(), signal.clone());
        }
        Ok(runtime::ContainerSpec {
            id,
            labels: label_map,
            sandbox: self.sandbox.clone().unwrap_or_default(),
            layers,
            readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
            argv,
            env,
            cwd: c
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or_else(|| Some(image.config.working_dir.clone()).filter(|w| !w.is_empty()))
                .unwrap_or_else(|| "/".into()),
            user: runtime::UserSpec {
                image_user: image.config.user.clone(),
                uid: run_as_user.map(|u| u as u32),
                gid: run_as_group.map(|g| g as u32),
                supplemental_groups: groups,
            },
            capabilities_add: caps.add.unwrap_or_default(),
            capabilities_drop: caps.drop.unwrap_or_default(),
            privileged: sc.privileged.unwrap_or(false),
            no_new_privileges: sc.allow_privilege_escalation == Some(false),
            mounts,
            resources: resources(c, &self.pod, self.ctx.memory_capacity),
            tty: c.tty.unwrap_or(false),
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            log_path,
            log_max_bytes: LOG_MAX_BYTES,
        })
    }

    /// The address probes and hooks reach the pod at.
    fn probe_ip(&self) -> Option<IpAddr> {
        self.ip
            .map(IpAddr::V4)
            .or_else(|| self.host_network().then_some(self.ctx.host_ip))
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    }

    /// Runs the probes that are due; answers when the next one is.
    async fn run_probes(&mut self, spec: &k8s_openapi::api::core::v1::PodSpec) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for i in 0..self.containers.len() {
            let c_spec = spec.containers[i].clone();
            let (id, running, started) = {
                let c = &self.containers[i];
                (c.id.clone(), c.running() && !c.killing, c.started)
            };
            let Some(id) = id.filter(|_| running) else {
                self.containers[i].ready = false;
                continue;
            };
            let kinds: [(&str, Option<&Probe>); 3] = [
                ("Startup", c_spec.startup_probe.as_ref()),
                ("Liveness", c_spec.liveness_probe.as_ref()),
                ("Readiness", c_spec.readiness_probe.as_ref()),
            ];
            for (kind, probe) in kinds {
                let Some(probe) = probe else { continue };
                if kind != "Startup" && !started {
                    continue;
                }
                if kind == "Startup" && started {
                    continue;
                }
                let since = self.containers[i]
                    .started_instant
                    .unwrap_or_else(Instant::now);
                let tracker = match kind {
                    "Startup" => &mut self.containers[i].startup,
                    "Liveness" => &mut self.containers[i].liveness,
                    _ => &mut self.containers[i].readiness,
                };
                let due = *tracker.next.get_or_insert(
                    since
                        + Duration::from_secs(
                            probe.initial_delay_seconds.unwrap_or(0).max(0) as u64
                        ),
                );
                if due > Instant::now() {
                    next = Some(next.map_or(due, |n| n.min(due)));
                    continue;
                }
                let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
                let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
                let target = probes::Target {
                    runtime: &self.ctx.runtime,
                    container_id: &id,
                    container: &c_spec,
                    pod_ip: self.probe_ip(),
                };
                let outcome = if let Some(e) = &probe.exec {
                    probes::exec(&target, e, timeout).await
                } else if let Some(h) = &probe.http_get {
                    probes::http(&target, h, timeout).await
                } else if let Some(t) = &probe.tcp_socket {
                    probes::tcp(&target, t, timeout).await
                } else if probe.grpc.is_some() {
                    Outcome::Failure("gRPC probes are not supported on this node".into())
                } else {
                    Outcome::Success
                };
                let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
                let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
                let c = &mut self.containers[i];
                let tracker = match kind {
                    "Startup" => &mut c.startup,
                    "Liveness" => &mut c.liveness,
                    _ => &mut c.readiness,
                };
                let due = Instant::now() + period;
                tracker.next = Some(due);
                next = Some(next.map_or(due, |n| n.min(due)));
                match outcome {
                    Outcome::Success => {
                        tracker.failures = 0;
                        tracker.successes += 1;
                        if tracker.successes >= success_threshold {
                            match kind {
                                "Startup" => c.started = true,
                                "Readiness" => c.ready = true,
                                _ => {}
                            }
                        }
                    }
                    Outcome::Failure(message) => {
                        tracker.successes = 0;
                        tracker.failures += 1;
                        let failures = tracker.failures;
                        if kind == "Readiness" {
                            c.ready = false;
                        }
                        let name = c.name.clone();
                        self.event(
                            EventType::Warning,
                            "Unhealthy",
                            &format!("{kind} probe failed: {message}"),
                        )
                        .await;
                        if kind != "Readiness" && failures >= failure_threshold {
                            self.event(
                                EventType::Normal,
                                "Killing",
                                &format!(
                                    "Container {name} failed {} probe, will be restarted",
                                    kind.to_lowercase()
                                ),
                            )
                            .await;
                            self.containers[i].killing = true;
                            let grace = Duration::from_secs(
                                probe
                                    .termination_grace_period_seconds
                                    .or(spec.termination_grace_period_seconds)
                                    .unwrap_or(30)
                                    .max(0) as u64,
                            );
                            // As for a deletion: preStop, the stop signal,
                            // the grace period, SIGKILL; the exit is then
                            // seen by `observe` and the container restarts.
                            let ctx = Arc::clone(&self.ctx);
                            let id = id.clone();
                            let container = c_spec.clone();
                            let ip = self.probe_ip();
                            tokio::spawn(async move {
                                let deadline = Instant::now() + grace;
                                if let Some(hook) = container
                                    .lifecycle
                                    .as_ref()
                                    .and_then(|l| l.pre_stop.as_ref())
                                {
                                    let _ =
                                        run_handler(&ctx, &id, &container, hook, ip, grace).await;
                                }
                                let left = deadline.saturating_duration_since(Instant::now());
                                stop_container(&ctx, &id, left).await;
                            });
                            break;
                        }
                    }
                }
            }
            // Without a readiness probe a started container is ready.
            let c = &mut self.containers[i];
            if c_spec.readiness_probe.is_none() {
                c.ready = c.started && c.running() && !c.killing;
            }
        }
        next
    }

    /// Computes the status and writes it when it changed; answers the phase.
    async fn write_status(&mut self) -> Option<String> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let inits = spec.init_containers.clone().unwrap_or_default();
        let view = PodView {
            init: self
                .init
                .iter()
                .zip(inits.iter())
                .map(|(c, s)| c.view(s))
                .collect(),
            containers: self
                .containers
                .iter()
                .zip(spec.containers.iter())
                .map(|(c, s)| c.view(s))
                .collect(),
            sandbox_ready: self.sandbox.is_some(),
            pod_ip: Some(self.pod_ip()).filter(|ip| !ip.is_empty()),
            host_ip: self.ctx.host_ip.to_string(),
            start_time: self.start_time.clone(),
            init_failed: self.init.iter().any(|c| c.done && !c.succeeded()),
            initialized: self.init.iter().all(Ctr::succeeded),
        };
        let status = pod_status(&self.pod, &view, &now());
        let phase = status["phase"].as_str().map(str::to_owned);
        if self.written.as_ref() == Some(&status) {
            return phase;
        }
        // Nothing but transition times changed since the object we hold?
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let patch = json!({
            "metadata": {"uid": self.uid},
            "status": status,
        });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(p) => {
                self.unsaved = false;
                self.written = Some(status);
                // Keep the server's copy (its resourceVersion, its status) for
                // later transition times; the spec comes from the watch.
                self.pod.status = p.status;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => self.gone = true,
            Err(e) => {
                self.unsaved = true;
                tracing::warn!(pod = %self.name(), error = %e, "writing the pod status");
            }
        }
        phase
    }

    /// Tells the agent's server where this pod's containers are.
    fn publish_registry(&self) {
        let spec = self.pod.spec.as_ref();
        let images = spec
            .map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .filter_map(|c| c.image.clone())
                    .collect()
            })
            .unwrap_or_default();
        let entry = super::RegistryEntry {
            uid: self.uid.clone(),
            images,
            netns: self.sandbox.as_ref().and_then(|s| s.netns.clone()),
            logs: self.pod_dir().join("logs"),
            containers: self
                .init
                .iter()
                .chain(self.containers.iter())
                .map(|c| {
                    (
                        c.name.clone(),
                        super::ContainerEntry {
                            id: c.id.clone().filter(|_| c.running()),
                            restart_count: c.restart_count,
                        },
                    )
                })
                .collect(),
        };
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        self.ctx.registry.put(&ns, &name, entry);
    }

    /// Removes the runtime containers and the sandbox of a finished pod;
    /// its logs and status stay until it is deleted.
    async fn cleanup_runtime(&mut self) {
        for c in self.init.iter_mut().chain(self.containers.iter_mut()) {
            if let Some(id) = c.id.take() {
                let _ = self.ctx.runtime.remove_container(&id).await;
            }
        }
        if self.sandbox.take().is_some() || self.ctx.runtime.sandbox(&self.uid).is_some() {
            self.remove_sandbox().await;
        }
    }

    async fn remove_sandbox(&mut self) {
        // An interface still being made would outlive the detach.
        if let Some(wiring) = self.wiring.take() {
            let _ = wiring.await;
        }
        let netns = self.ctx.runtime.sandbox(&self.uid).and_then(|s| s.netns);
        if let Err(e) = self.ctx.network.detach(&self.uid, netns.as_deref()).await {
            tracing::warn!(pod = %self.name(), error = %e, "detaching the pod network");
        }
        let ctx = Arc::clone(&self.ctx);
        let uid = self.uid.clone();
        match tokio::task::spawn_blocking(move || ctx.runtime.remove_sandbox(&uid)).await {
            Ok(Err(e)) => tracing::warn!(pod = %self.name(), error = %e, "removing the sandbox"),
            Err(e) => tracing::warn!(pod = %self.name(), error = %e, "removing the sandbox"),
            Ok(Ok(())) => {}
        }
        self.ip = None;
    }

    /// Stops the pod gracefully, removes everything it had on the node,
    /// and finishes its deletion in the API.
    async fn terminate(&mut self) {
        let grace = self.grace();
        let spec = self.pod.spec.clone().unwrap_or_default();
        let mut stops = Vec::new();
        for (c, s) in self
            .containers
            .iter()
            .zip(spec.containers.iter())
            .chain(self.init.iter().zip(spec.init_containers.iter().flatten()))
        {
            let Some(id) = c.id.clone().filter(|_| c.running()) else {
                continue;
            };
            stops.push((id, s.clone()));
        }
        let deadline = Instant::now() + grace;
        // Each container stops on its own task: preStop, the stop signal,
        // the rest of the grace period, SIGKILL.
        let mut stopping = Vec::new();
        for (id, spec) in stops {
            self.event(
                EventType::Normal,
                "Killing",
                &format!("Stopping container {}", spec.name),
            )
            .await;
            let ctx = Arc::clone(&self.ctx);
            let pod = self.pod.clone();
            let ip = self.probe_ip();
            stopping.push(tokio::spawn(async move {
                if let Some(hook) = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Err(m) = run_handler(&ctx, &id, &spec, hook, ip, left).await {
                        ctx.event(
                            &pod,
                            EventType::Warning,
                            "FailedPreStopHook",
                            &format!("PreStopHook failed: {m}"),
                        );
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                stop_container(&ctx, &id, left).await;
            }));
        }
        // Stopping takes up to the grace period.
        self.flush_events();
        for task in stopping {
            let _ = task.await;
        }
        // Record how they ended, for the last status.
        self.observe_final().await;
        for c in self.init.iter_mut().chain(self.containers.iter_mut()) {
            if let Some(id) = c.id.take() {
                let _ = self.ctx.runtime.remove_container(&id).await;
            }
        }
        self.remove_sandbox().await;
        let pods_root = self.ctx.pods_root.clone();
        let uid = self.uid.clone();
        let torn = tokio::task::spawn_blocking(move || volumes::teardown(&pods_root, &uid)).await;
        if let Ok(Err(e)) | Err(e) = torn.map_err(std::io::Error::other) {
            tracing::warn!(pod = %self.name(), error = %e, "removing the pod's volumes");
        }
        let _ = std::fs::remove_dir_all(self.pod_dir());
        self.ctx.registry.remove(&self.uid);
        if self.gone {
            return;
        }
        self.sandbox = None;
        self.write_status().await;
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        // Boxed as Send here: the compiler cannot see through kube's
        // delete future's lifetimes when proving the worker Send.
        let delete: std::pin::Pin<
            Box<dyn std::future::Future<Output = kube::Result<_>> + Send + '_>,
        > = Box::pin(api.delete(&name, &params));
        match delete.await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                tracing::warn!(pod = %self.name(), error = %e, "finishing the pod's deletion")
            }
        }
    }

    async fn observe_final(&mut self) {
        for init in [true, false] {
            let n = if init {
                self.init.len()
            } else {
                self.containers.len()
            };
            for i in 0..n {
                let Some(id) = self.ctr(init, i).id.clone() else {
                    continue;
                };
                if let Ok(runtime::ContainerStatus::Exited {
                    exit_code,
                    signal,
                    started_at,
                    finished_at,
                    oom_killed,
                }) = self.ctx.runtime.status(&id)
                {
                    let t = self.terminated(
                        init,
                        i,
                        &id,
                        exit_code,
                        signal,
                        started_at,
                        finished_at,
                        oom_killed,
                    );
                    let c = self.ctr(init, i);
                    c.state = State::Terminated(t);
                    c.ready = false;
                }
            }
        }
    }

    /// Reports an event once per reason and message (a pod waiting on the
    /// same missing volume does not repeat it every pass).
    async fn report_once(&mut self, reason: &str, message: &str) {
        if self.reported.get(reason).map(String::as_str) == Some(message) {
            return;
        }
        self.reported.insert(reason.to_owned(), message.to_owned());
        let kind = if matches!(reason, "Pulled") {
            EventType::Normal
        } else {
            EventType::Warning
        };
        self.event(kind, reason, message).await;
    }

    /// Records an event of this pass. It goes out with the pass's others
    /// once the pass has written the pod's status, or before a step that
    /// waits long: a container's start then shares the two cores with
    /// neither the events' writes nor their watchers, and its status is not
    /// queued behind them.
    async fn event(&self, type_: EventType, reason: &str, message: &str) {
        self.held
            .lock()
            .push((type_, reason.to_owned(), message.to_owned()));
    }

    /// Sends the held events, in order.
    fn flush_events(&self) {
        let held = std::mem::take(&mut *self.held.lock());
        for (type_, reason, message) in held {
            self.ctx.event(&self.pod, type_, &reason, &message);
        }
    }
}

/// Runs a lifecycle handler of a container within `timeout`.
async fn run_handler(
    ctx: &Context,
    id: &str,
    spec: &Container,
    handler: &LifecycleHandler,
    pod_ip: Option<IpAddr>,
    timeout: Duration,
) -> Result<(), String> {
    let target = probes::Target {
        runtime: &ctx.runtime,
        container_id: id,
        container: spec,
        pod_ip,
    };
    let outcome = if let Some(e) = &handler.exec {
        probes::exec(&target, e, timeout).await
    } else if let Some(h) = &handler.http_get {
        probes::http(&target, h, timeout).await
    } else if let Some(s) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(timeout)).await;
        Outcome::Success
    } else if let Some(t) = &handler.tcp_socket {
        probes::tcp(&target, t, timeout).await
    } else {
        Outcome::Success
    };
    match outcome {
        Outcome::Success => Ok(()),
        Outcome::Failure(m) => Err(m),
    }
}

/// Whether a container that ended restarts under `policy`.
fn restarts(policy: Option<&str>, succeeded: bool) -> bool {
    match policy.unwrap_or("Always") {
        "Never" => false,
        "OnFailure" => !succeeded,
        _ => true,
    }
}

/// Sends the stop signal, waits out the grace period, then SIGKILL.
pub(crate) async fn stop_container(ctx: &Context, id: &str, grace: Duration) {
    let signal = ctx.stop_signal(id);
    let _ = ctx.runtime.kill(id, signal).await;
    let deadline = Instant::now() + grace;
    loop {
        match ctx.runtime.status(id) {
            Ok(runtime::ContainerStatus::Running { .. })
            | Ok(runtime::ContainerStatus::Created) => {}
            _ => return,
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = ctx.runtime.kill(id, Signal::SIGKILL).await;
    for _ in 0..50 {
        if !matches!(
            ctx.runtime.status(id),
            Ok(runtime::ContainerStatus::Running { .. })
        ) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn terminated_from(t: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> Terminated {
    let time = |x: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        x.as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    Terminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone().unwrap_or_default(),
        started_at: time(&t.started_at),
        finished_at: time(&t.finished_at).unwrap_or_default(),
        container_id: t.container_id.clone().unwrap_or_default(),
    }
}

/// "10s", "1m20s", "5m0s", as Go prints durations in back-off messages.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// The last lines of a container's log, for `FallbackToLogsOnError`.
fn tail_of_log(path: &std::path::Path, lines: usize, bytes: usize) -> String {
    let Ok(raw) = std::fs::read(path) else {
        return String::new();
    };
    let mut out: Vec<u8> = Vec::new();
    for line in raw.split(|b| *b == b'\n') {
        if let Some(r) = runtime::logs::parse_record(line) {
            runtime::logs::render_record(&r, false, &mut out);
        }
    }
    let text = String::from_utf8_lossy(&out);
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    let start = tail.len().saturating_sub(bytes);
    let start = (start..tail.len())
        .find(|i| tail.is_char_boundary(*i))
        .unwrap_or(tail.len());
    tail[start..].to_owned()
}
