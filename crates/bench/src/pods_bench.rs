//! `gantry-bench pods`: the node agent's figures (issue 4), measured on the
//! real `gantry up` (API server, scheduler and node agent in one process)
//! running real pods through runc.
//!
//! Three figures:
//! - **Pod start**: a pod created through the API until a watch shows it
//!   `Running` with its container running, one pod at a time, next to a bare
//!   `runc run --detach` of the same process on the same root file system
//!   (the anchor), in alternating rounds so the machine's noise hits both.
//! - **Node cost**: the RSS of `gantry up` idle and with the node's maximum
//!   of 110 pods running, the shims' RSS beside it, and how long the 110 take
//!   to be running.
//! - **Deployment** (issue 5): a 100-replica Deployment until its status says
//!   all are Ready, next to as many pods created directly until all are
//!   Running.
//!
//! Everything the run creates is named after the benchmark's pid (node,
//! bridge, nftables table, pod CIDR, state directory, cgroup parent), so it
//! runs beside another Gantry and the test suite. At the end every pod is
//! deleted through the API and the server stopped; then the benchmark checks
//! that the agent left no shim, container, mount or veth behind (a leftover
//! fails the run) and removes what a node keeps by design (bridge, nftables
//! table, cgroup parent, directories). If the run fails or is interrupted,
//! the guards' `Drop` removes everything by force.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::api_client::{Connection, Credentials};
use crate::gantry_process::rss_bytes;
use crate::report::{Better, Goal, Row, table};

/// Command-line arguments of `gantry-bench pods`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Short mode for the test suite: 2 rounds of 5 pods and 5 runc runs,
    /// 20 pods for the node's RSS.
    #[arg(long)]
    quick: bool,
    /// Exit with an error if a figure misses its target.
    #[arg(long)]
    check: bool,
    /// The `gantry` binary to run; by default the one next to gantry-bench.
    #[arg(long)]
    gantry: Option<PathBuf>,
    /// Directory for the node's data directory and the anchor's bundle.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Also write everything `gantry up` prints to this file (run with
    /// `--rust-log agent=debug` to see where a pod's time goes).
    #[arg(long)]
    log: Option<PathBuf>,
    /// RUST_LOG for `gantry up`; by default it logs at its own default level.
    #[arg(long)]
    rust_log: Option<String>,
}

impl Args {
    /// The arguments another benchmark starts a node with (`ingress_bench`).
    pub(crate) fn for_node(
        gantry: Option<PathBuf>,
        dir: PathBuf,
        rust_log: Option<String>,
    ) -> Self {
        Self {
            quick: true,
            check: false,
            gantry,
            dir,
            log: None,
            rust_log,
        }
    }
}

/// How much of each figure to measure.
#[derive(Debug)]
struct Plan {
    /// Alternating rounds of pods and runc runs.
    rounds: usize,
    /// Pods (and as many runc runs) per round.
    per_round: usize,
    /// Pods running at once for the node's RSS.
    node_pods: usize,
    /// How long the node sits before its RSS is read.
    settle: Duration,
    /// Replicas of the Deployment timed until all are Ready (and as many
    /// pods created directly, its anchor).
    replicas: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                rounds: 2,
                per_round: 5,
                node_pods: 20,
                settle: Duration::from_secs(2),
                replicas: 10,
            }
        } else {
            Self {
                rounds: 10,
                per_round: 10,
                node_pods: 110,
                settle: Duration::from_secs(3),
                replicas: 100,
            }
        }
    }
}

/// The namespace the pods are created in.
pub(crate) const NAMESPACE: &str = "bench-pods";

/// The image every pod and the anchor run (imported before the figures).
const IMAGE: &str = "busybox:1.36";

/// The agent's RSS target with the node's maximum of pods, in MiB.
const AGENT_RSS_TARGET_MIB: f64 = 100.0;

/// How long `gantry up` may take to serve and register its node.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How long one pod may take to be running in the latency figure.
const RUNNING_WITHIN: Duration = Duration::from_secs(60);

/// How long the node's pods may take to be running, or to be gone, all of
/// them together.
const BATCH_WITHIN: Duration = Duration::from_secs(300);

/// How long `gantry up` may take to stop after SIGINT.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// Lines of gantry's stderr kept to quote in errors.
const LOG_TAIL_LINES: usize = 60;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::new(args.quick);
    if !nix::unistd::geteuid().is_root() {
        bail!("gantry-bench pods runs containers: it must run as root");
    }
    let gantry = match &args.gantry {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("finding gantry-bench's own path")?
            .with_file_name("gantry"),
    };
    if !gantry.is_file() {
        bail!(
            "{} not found; build it (cargo build --release -p gantry) or pass --gantry",
            gantry.display()
        );
    }
    let runc = runc_version()?;
    let log = match &args.log {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ))),
        None => None,
    };
    let pid = std::process::id();

    // `gantry up`: both figures.
    let names = Names::new(pid, NodeKind::Up);
    eprintln!(
        "gantry-bench pods: starting gantry up (node {}, bridge {}, pods {})",
        names.node, names.bridge, names.pod_cidr
    );
    let mut node = Node::start(NodeKind::Up, &gantry, &args, &names, log.clone()).await?;
    let result = async {
        let mut watch = node.prepare().await?;
        let cost = node_cost(&mut node, &mut watch, &plan).await?;
        let start = pod_start(&mut node, &mut watch, &plan, &args.dir).await?;
        let deployment = deployment_ready(&mut node, &mut watch, &plan).await?;
        watch.stop();
        anyhow::Ok((cost, start, deployment))
    }
    .await;
    // Delete every pod through the API and stop the node, whatever the
    // figures did, then look for what the agent left behind.
    let leftovers = node.shut_down().await;
    let (up_cost, start, deployment) = result?;
    let mut leftovers = leftovers?;

    // `gantry agent` alone against a `gantry server`, where the binary has
    // it: the node's cost without the server's share.
    let agent_cost = if has_agent_command(&gantry) {
        let names = Names::new(pid, NodeKind::Agent);
        eprintln!(
            "gantry-bench pods: starting gantry server and gantry agent (node {}, bridge {}, pods {})",
            names.node, names.bridge, names.pod_cidr
        );
        let mut node = Node::start(NodeKind::Agent, &gantry, &args, &names, log).await?;
        let result = async {
            let mut watch = node.prepare().await?;
            let cost = node_cost(&mut node, &mut watch, &plan).await?;
            watch.stop();
            anyhow::Ok(cost)
        }
        .await;
        let more = node.shut_down().await;
        let cost = result?;
        leftovers.extend(more?);
        Some(cost)
    } else {
        None
    };

    println!(
        "gantry-bench pods{}: {}, {} cores, data in {}, {runc}",
        if args.quick { " --quick" } else { "" },
        gantry.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.dir.display()
    );
    print!("{}", start.render(&plan));
    println!();
    print!("{}", render_cost(&plan, &up_cost, agent_cost.as_ref()));
    println!();
    let deployment_rows = deployment.rows(&plan);
    println!(
        "a Deployment of {} replicas (busybox, sleep 3600) on this node until its status \
         says all Ready, next to as many pods created directly until all are Running",
        plan.replicas
    );
    print!("{}", table("Deployment", "bare pods", &deployment_rows));
    let mut missed: Vec<String> = start
        .rows()
        .into_iter()
        .chain(deployment_rows)
        .filter(|r| !r.met())
        .map(|r| r.metric)
        .collect();
    if !cost_met(&up_cost, agent_cost.as_ref()) {
        missed.push("agent RSS with the node's pods".into());
    }
    if !leftovers.is_empty() {
        bail!(
            "the agent left these behind after every pod was deleted and the node stopped \
             (removed by force now):\n  {}",
            leftovers.join("\n  ")
        );
    }
    if args.check && !missed.is_empty() {
        bail!("targets missed: {}", missed.join(", "));
    }
    Ok(())
}

/// The pod-start figure.
struct StartFigures {
    /// Pod created → Running seen in the watch (µs).
    pod_running: Histogram<u64>,
    /// Pod created → POST answered (µs).
    pod_posted: Histogram<u64>,
    /// Pod created → bound to the node, seen in the watch (µs).
    pod_bound: Histogram<u64>,
    /// `runc run --detach` (µs).
    runc_run: Histogram<u64>,
    /// Deleting a round's pods until all are gone from the API (ms).
    round_deletes: Vec<f64>,
}

impl StartFigures {
    fn rows(&self) -> Vec<Row> {
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        vec![
            Row {
                metric: "pod created → Running in a watch, p50 (anchor: runc run --detach)".into(),
                ours: ms(&self.pod_running, 0.5),
                anchor: ms(&self.runc_run, 0.5),
                unit: "ms",
                better: Better::Lower,
                // Ours at most twice the anchor's: anchor / ours ≥ 0.5.
                target: Some(Goal::Ratio(0.5)),
            },
            Row {
                metric: "pod created → Running in a watch, p99 (anchor: runc run --detach)".into(),
                ours: ms(&self.pod_running, 0.99),
                anchor: ms(&self.runc_run, 0.99),
                unit: "ms",
                better: Better::Lower,
                target: Some(Goal::AtMost(500.0)),
            },
            Row {
                metric: "pod created → Running in a watch, max".into(),
                ours: ms(&self.pod_running, 1.0),
                anchor: ms(&self.runc_run, 1.0),
                unit: "ms",
                better: Better::Lower,
                target: None,
            },
        ]
    }

    fn render(&self, plan: &Plan) -> String {
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let mut out = String::new();
        out.push_str(&format!(
            "pod start on `gantry up`: {} rounds, each {} pods (`{IMAGE}`, sleep 3600) created \
             one at a time, then {} `runc run --detach` of the same process on the same layer\n",
            plan.rounds, plan.per_round, plan.per_round
        ));
        out.push_str(&format!(
            "of the pod's time (medians): POST answered {:.1} ms, bound in the watch {:.1} ms, \
             Running in the watch {:.1} ms; deleting a round's pods took {:.0} ms (median)\n\n",
            ms(&self.pod_posted, 0.5),
            ms(&self.pod_bound, 0.5),
            ms(&self.pod_running, 0.5),
            median(self.round_deletes.clone()),
        ));
        out.push_str(&table("gantry", "runc", &self.rows()));
        out
    }
}

/// The node-cost figure of one node.
struct NodeCost {
    /// RSS of the measured process before any pod (MiB).
    idle_rss: f64,
    /// ... with the node's pods running (MiB).
    loaded_rss: f64,
    /// ... after they were deleted (MiB).
    after_rss: f64,
    /// The shims with the pods running.
    shims: ShimMemory,
    /// First POST → the last pod running.
    all_running: Duration,
    /// Deleting them → the last one gone.
    all_gone: Duration,
}

/// Whether the agent's RSS target is met: on the agent alone where it was
/// measured, else on `gantry up` (which bounds the agent's).
fn cost_met(up: &NodeCost, agent: Option<&NodeCost>) -> bool {
    agent.unwrap_or(up).loaded_rss <= AGENT_RSS_TARGET_MIB
}

/// How a row of the node-cost table reads its cell from a node's figures.
type CostCell = fn(&NodeCost) -> String;

/// The node-cost table: no anchor, so its own shape, a column per node.
fn render_cost(plan: &Plan, up: &NodeCost, agent: Option<&NodeCost>) -> String {
    let n = plan.node_pods;
    let mut out = format!(
        "node cost: {n} pods created back to back, RSS read {:.0} s after the last is Running; \
         `gantry agent` alone runs against a separate `gantry server` (pods name their node, \
         there is no scheduler)\n\n",
        plan.settle.as_secs_f64()
    );
    out.push_str(
        "| metric | `gantry up` (server + scheduler + agent) | `gantry agent` alone | target | verdict |\n\
         |---|---:|---:|---|---|\n",
    );
    let verdict = if cost_met(up, agent) { "met" } else { "MISSED" };
    let rows: Vec<(String, CostCell, &str, &str)> = vec![
        (
            "RSS idle, before any pod".into(),
            |c| format!("{:.1} MiB", c.idle_rss),
            "-",
            "-",
        ),
        (
            format!("RSS with {n} pods running"),
            |c| format!("{:.1} MiB", c.loaded_rss),
            "agent ≤ 100 MiB",
            verdict,
        ),
        (
            format!("RSS the {n} pods added"),
            |c| format!("{:.1} MiB", c.loaded_rss - c.idle_rss),
            "-",
            "-",
        ),
        (
            "RSS after they were deleted".into(),
            |c| format!("{:.1} MiB", c.after_rss),
            "-",
            "-",
        ),
        (
            "shims (one `gantry shim` per container), total VmRSS".into(),
            |c| format!("{:.1} MiB ({})", c.shims.rss, c.shims.count),
            "-",
            "-",
        ),
        (
            "shims, total PSS (shared pages split between them)".into(),
            |c| format!("{:.1} MiB", c.shims.pss),
            "-",
            "-",
        ),
        (
            "shims, total private memory (what stopping them frees)".into(),
            |c| format!("{:.1} MiB", c.shims.private),
            "-",
            "-",
        ),
        (
            format!("{n} pods created → all Running"),
            |c| format!("{:.2} s", c.all_running.as_secs_f64()),
            "-",
            "-",
        ),
        (
            format!("{n} pods deleted → all gone from the API"),
            |c| format!("{:.2} s", c.all_gone.as_secs_f64()),
            "-",
            "-",
        ),
    ];
    for (metric, value, target, verdict) in rows {
        let alone = agent.map_or_else(|| "n/a".to_owned(), value);
        out.push_str(&format!(
            "| {metric} | {} | {alone} | {target} | {verdict} |\n",
            value(up)
        ));
    }
    out
}

/// Whether the binary has `gantry agent` (and `gantry token create`, which
/// makes the token it joins with).
fn has_agent_command(gantry: &Path) -> bool {
    let ok = |args: &[&str]| {
        Command::new(gantry)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok(&["agent", "--help"]) && ok(&["token", "create", "--help"])
}

/// The node's cost: RSS idle, with the node's maximum of pods created back
/// to back, and after they are deleted.
async fn node_cost(node: &mut Node, watch: &mut PodWatch, plan: &Plan) -> anyhow::Result<NodeCost> {
    let conn = node.creds()?.connect().await?;
    tokio::time::sleep(plan.settle).await;
    let idle_rss = mib(node.rss_bytes()?);
    eprintln!("gantry-bench pods: {} pods at once", plan.node_pods);
    let names: Vec<String> = (0..plan.node_pods)
        .map(|i| format!("node-{i:03}"))
        .collect();
    let started = Instant::now();
    for name in &names {
        create_pod(&conn, name, node.pinned_node()).await?;
    }
    let last = watch
        .wait_all_running(&names, BATCH_WITHIN)
        .await
        .map_err(|e| node.explain(e))?;
    let all_running = last.saturating_duration_since(started);
    tokio::time::sleep(plan.settle).await;
    let loaded_rss = mib(node.rss_bytes()?);
    let shims = node.shims();
    if shims.count < plan.node_pods {
        bail!(
            "{} pods are running but only {} shims were found for {}",
            plan.node_pods,
            shims.count,
            node.data_dir().display()
        );
    }
    let started = Instant::now();
    delete_pods(&conn, &names).await?;
    let gone = watch
        .wait_all_gone(&names, BATCH_WITHIN)
        .await
        .map_err(|e| node.explain(e))?;
    let all_gone = gone.saturating_duration_since(started);
    tokio::time::sleep(plan.settle).await;
    let after_rss = mib(node.rss_bytes()?);
    Ok(NodeCost {
        idle_rss,
        loaded_rss,
        after_rss,
        shims,
        all_running,
        all_gone,
    })
}

/// Pod start, in rounds alternating with the anchor.
async fn pod_start(
    node: &mut Node,
    watch: &mut PodWatch,
    plan: &Plan,
    dir: &Path,
) -> anyhow::Result<StartFigures> {
    let conn = node.creds()?.connect().await?;
    let mut anchor = RuncAnchor::new(dir, &node.image_layer()?, std::process::id())?;
    let mut pod_running = Histogram::<u64>::new(3)?;
    let mut pod_posted = Histogram::<u64>::new(3)?;
    let mut pod_bound = Histogram::<u64>::new(3)?;
    let mut runc_run = Histogram::<u64>::new(3)?;
    let mut round_deletes = Vec::new();
    for round in 0..plan.rounds {
        eprintln!(
            "gantry-bench pods: round {}/{}: {} pods, then {} runc runs",
            round + 1,
            plan.rounds,
            plan.per_round,
            plan.per_round
        );
        let mut names = Vec::new();
        for i in 0..plan.per_round {
            let name = format!("start-{round:02}-{i:02}");
            let sent = Instant::now();
            create_pod(&conn, &name, node.pinned_node()).await?;
            let answered = Instant::now();
            let (bound, running) = watch
                .wait_running(&name, RUNNING_WITHIN)
                .await
                .map_err(|e| node.explain(e))?;
            pod_posted.record(micros(answered - sent))?;
            pod_bound.record(micros(bound.saturating_duration_since(sent)))?;
            pod_running.record(micros(running.saturating_duration_since(sent)))?;
            names.push(name);
        }
        let started = Instant::now();
        delete_pods(&conn, &names).await?;
        watch
            .wait_all_gone(&names, BATCH_WITHIN)
            .await
            .map_err(|e| node.explain(e))?;
        round_deletes.push(started.elapsed().as_secs_f64() * 1000.0);
        for _ in 0..plan.per_round {
            runc_run.record(micros(anchor.run_once().await?))?;
        }
    }
    anchor.close()?;
    Ok(StartFigures {
        pod_running,
        pod_posted,
        pod_bound,
        runc_run,
        round_deletes,
    })
}

/// The Deployment figure: its pods all Ready, and as many bare pods all
/// Running (the anchor: the same node work without the controllers).
struct DeploymentFigures {
    via_deployment: Duration,
    direct: Duration,
}

impl DeploymentFigures {
    fn rows(&self, plan: &Plan) -> Vec<Row> {
        vec![Row {
            metric: format!("{} pods Ready", plan.replicas),
            ours: self.via_deployment.as_secs_f64(),
            anchor: self.direct.as_secs_f64(),
            unit: "s",
            better: Better::Lower,
            // Issue 5: a 100-replica Deployment all Ready within 30 s.
            target: (plan.replicas >= 100).then_some(Goal::AtMost(30.0)),
        }]
    }
}

/// Times `plan.replicas` bare pods until Running, then a Deployment of as
/// many replicas until its status says all are Ready; then scales it to
/// zero, waits for its pods to go, and deletes it and its ReplicaSet.
async fn deployment_ready(
    node: &mut Node,
    watch: &mut PodWatch,
    plan: &Plan,
) -> anyhow::Result<DeploymentFigures> {
    let conn = node.creds()?.connect().await?;
    let n = plan.replicas;
    eprintln!("gantry-bench pods: {n} bare pods, then a Deployment of {n}");
    let names: Vec<String> = (0..n).map(|i| format!("direct-{i:03}")).collect();
    let started = Instant::now();
    for name in &names {
        create_pod(&conn, name, node.pinned_node()).await?;
    }
    let last = watch
        .wait_all_running(&names, BATCH_WITHIN)
        .await
        .map_err(|e| node.explain(e))?;
    let direct = last.saturating_duration_since(started);
    delete_pods(&conn, &names).await?;
    watch
        .wait_all_gone(&names, BATCH_WITHIN)
        .await
        .map_err(|e| node.explain(e))?;

    let base = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments");
    let path = format!("{base}/bench");
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": n,
            "selector": {"matchLabels": {"app": "bench-deployment"}},
            "template": {
                "metadata": {"labels": {"app": "bench-deployment"}},
                "spec": pod("unused", node.pinned_node())["spec"],
            },
        },
    });
    let started = Instant::now();
    conn.post(&base, &d)
        .await?
        .expect("creating the Deployment", StatusCode::CREATED)?;
    let via_deployment = loop {
        let got = conn
            .get(&path)
            .await?
            .expect("reading the Deployment", StatusCode::OK)?;
        if got["status"]["readyReplicas"].as_u64() == Some(n as u64) {
            break started.elapsed();
        }
        if started.elapsed() > BATCH_WITHIN {
            node.check_running()?;
            bail!(
                "the Deployment's {n} replicas were not Ready within {BATCH_WITHIN:?}: {:#}",
                got["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Scale to zero (the ReplicaSet deletes the pods), then delete both.
    let mut got = conn
        .get(&path)
        .await?
        .expect("reading the Deployment", StatusCode::OK)?;
    got["spec"]["replicas"] = json!(0);
    conn.put(&path, &got)
        .await?
        .expect("scaling the Deployment to zero", StatusCode::OK)?;
    let pods = format!("/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=app%3Dbench-deployment");
    loop {
        let list = conn
            .get(&pods)
            .await?
            .expect("listing the pods", StatusCode::OK)?;
        if list["items"].as_array().is_none_or(Vec::is_empty) {
            break;
        }
        if started.elapsed() > 2 * BATCH_WITHIN {
            bail!("the Deployment's pods were still there after scaling it to zero");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in [
        path,
        format!(
            "/apis/apps/v1/namespaces/{NAMESPACE}/replicasets?labelSelector=app%3Dbench-deployment"
        ),
    ] {
        let reply = conn
            .send(Method::DELETE, &p, "application/json", Default::default())
            .await?;
        reply.expect(&format!("DELETE {p}"), StatusCode::OK)?;
    }
    Ok(DeploymentFigures {
        via_deployment,
        direct,
    })
}

/// The pod every figure creates: one busybox container sleeping an hour,
/// with a grace period of one second (busybox's `sleep` as pid 1 ignores
/// SIGTERM, so every deletion waits the grace period out). `node` names the
/// node where no scheduler runs.
fn pod(name: &str, node: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "gantry-bench"}},
        "spec": {
            "containers": [{
                "name": "sleep",
                "image": IMAGE,
                "command": ["sleep", "3600"],
            }],
            "terminationGracePeriodSeconds": 1,
        },
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod
}

async fn create_pod(conn: &Connection, name: &str, node: Option<&str>) -> anyhow::Result<()> {
    conn.post(
        &format!("/api/v1/namespaces/{NAMESPACE}/pods"),
        &pod(name, node),
    )
    .await?
    .expect(&format!("creating pod {name}"), StatusCode::CREATED)?;
    Ok(())
}

/// Deletes pods (gracefully, as `kubectl delete` does), all requests at
/// once.
async fn delete_pods(conn: &Connection, names: &[String]) -> anyhow::Result<()> {
    let deletes = names.iter().map(|name| async move {
        let path = format!("/api/v1/namespaces/{NAMESPACE}/pods/{name}");
        let reply = conn
            .send(
                Method::DELETE,
                &path,
                "application/json",
                Default::default(),
            )
            .await?;
        // 200 with the pod marked for deletion; 404 if it is already gone.
        if reply.status != StatusCode::NOT_FOUND {
            reply.expect(&format!("deleting pod {name}"), StatusCode::OK)?;
        }
        anyhow::Ok(())
    });
    for result in futures::future::join_all(deletes).await {
        result?;
    }
    Ok(())
}

/// What the watch says about one pod.
#[derive(Debug)]
struct PodEvent {
    name: String,
    /// The pod is gone from the API.
    deleted: bool,
    /// It has a node.
    bound: bool,
    /// Its phase is Running and every container's state is running.
    running: bool,
    /// When the event's bytes arrived.
    at: Instant,
}

/// A watch of the benchmark's pods on a connection of its own, read by a
/// task into a channel.
pub(crate) struct PodWatch {
    events: tokio::sync::mpsc::UnboundedReceiver<anyhow::Result<PodEvent>>,
    reader: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    async fn start(creds: &Credentials) -> anyhow::Result<Self> {
        let path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
        let conn = creds.connect().await?;
        let list = conn
            .get(&path)
            .await?
            .expect("listing the benchmark's pods", StatusCode::OK)?;
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .context("the pod list has no resourceVersion")?
            .to_owned();
        let mut body = conn
            .stream(&format!("{path}?watch=1&resourceVersion={rv}"))
            .await?;
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            // The connection lives as long as the reader.
            let _conn = conn;
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let at = Instant::now();
                let data = match frame {
                    Ok(f) => match f.into_data() {
                        Ok(d) => d,
                        Err(_) => continue,
                    },
                    Err(e) => {
                        let _ =
                            tx.send(Err(anyhow::Error::from(e).context("reading the pod watch")));
                        return;
                    }
                };
                buf.extend_from_slice(&data);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    let event = serde_json::from_slice::<Value>(&line)
                        .ok()
                        .filter(|e| e["type"] != "ERROR")
                        .map(|e| pod_event(&e, at));
                    match event {
                        Some(event) => {
                            if tx.send(Ok(event)).is_err() {
                                return;
                            }
                        }
                        None => {
                            let _ = tx.send(Err(anyhow::anyhow!(
                                "bad pod watch event: {}",
                                String::from_utf8_lossy(&line)
                            )));
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Err(anyhow::anyhow!("the pod watch ended")));
        });
        Ok(Self { events, reader })
    }

    /// The next event, or an error after `deadline`.
    async fn next(&mut self, deadline: Instant, what: &str) -> anyhow::Result<PodEvent> {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, self.events.recv())
            .await
            .map_err(|_| anyhow::anyhow!("{what}: not seen in the watch in time"))?
            .context("the pod watch reader stopped")?
    }

    /// Waits for `name` to be running; answers when the watch first showed
    /// it bound and when it showed it running.
    async fn wait_running(
        &mut self,
        name: &str,
        within: Duration,
    ) -> anyhow::Result<(Instant, Instant)> {
        let deadline = Instant::now() + within;
        let what = format!("pod {name} running within {within:?}");
        let mut bound = None;
        loop {
            let e = self.next(deadline, &what).await?;
            if e.name != name {
                continue;
            }
            if e.deleted {
                bail!("pod {name} was deleted before it ran");
            }
            if e.bound && bound.is_none() {
                bound = Some(e.at);
            }
            if e.running {
                return Ok((bound.unwrap_or(e.at), e.at));
            }
        }
    }

    /// Waits until every pod in `names` was seen running; answers when the
    /// last one was.
    async fn wait_all_running(
        &mut self,
        names: &[String],
        within: Duration,
    ) -> anyhow::Result<Instant> {
        self.wait_all(names, within, "running", |e| e.running).await
    }

    /// Waits until every pod in `names` is gone from the API (the agent
    /// deletes a pod for good once it has stopped its containers and removed
    /// what it had on the node); answers when the last one went.
    async fn wait_all_gone(
        &mut self,
        names: &[String],
        within: Duration,
    ) -> anyhow::Result<Instant> {
        self.wait_all(names, within, "gone", |e| e.deleted).await
    }

    /// Waits until an event with `reached` was seen for every pod in `names`;
    /// answers when the last one came.
    async fn wait_all(
        &mut self,
        names: &[String],
        within: Duration,
        state: &str,
        reached: fn(&PodEvent) -> bool,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + within;
        let mut waiting: HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut last = Instant::now();
        while !waiting.is_empty() {
            let what = format!(
                "{} of {} pods {state} within {within:?} (still waiting for {})",
                names.len() - waiting.len(),
                names.len(),
                some_of(&waiting)
            );
            let e = self.next(deadline, &what).await?;
            if reached(&e) && waiting.remove(e.name.as_str()) {
                last = e.at;
            }
        }
        Ok(last)
    }

    pub(crate) fn stop(self) {
        self.reader.abort();
    }
}

/// A few names of a set, for messages.
fn some_of(names: &HashSet<&str>) -> String {
    let mut v: Vec<&str> = names.iter().copied().collect();
    v.sort_unstable();
    let more = v.len().saturating_sub(5);
    v.truncate(5);
    let mut s = v.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

/// Reads one watch event.
fn pod_event(event: &Value, at: Instant) -> PodEvent {
    let pod = &event["object"];
    let status = &pod["status"];
    let containers = status["containerStatuses"].as_array();
    let running = status["phase"] == "Running"
        && containers.is_some_and(|cs| {
            !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object())
        });
    PodEvent {
        name: pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        deleted: event["type"] == "DELETED",
        bound: pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        running,
        at,
    }
}

/// Which process runs the node's agent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum NodeKind {
    /// `gantry up`: the API server, the scheduler and the agent in one
    /// process.
    Up,
    /// `gantry agent`, joined to a separate `gantry server` with a token
    /// from `gantry token create`. No scheduler runs: pods name their node.
    Agent,
}

/// The names of everything a node creates, unique to this process.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    node: String,
    /// The bridge, also the nftables table's name (at most 15 bytes).
    bridge: String,
    pod_cidr: String,
    cluster_cidr: String,
    /// The overlay's VXLAN network identifier, unique on the machine.
    vni: u32,
    state_dir: PathBuf,
    /// The cgroup pods go under, in every hierarchy.
    cgroup_parent: String,
    /// The ports of the node's Ingress proxy (HTTP, HTTPS); `None`: off.
    pub(crate) ingress_ports: Option<(u16, u16)>,
}

impl Names {
    pub(crate) fn new(pid: u32, kind: NodeKind) -> Self {
        let (suffix, second) = match kind {
            NodeKind::Up => ("", 1),
            NodeKind::Agent => ("a", 2),
        };
        Self {
            node: format!("gantry-bench-{pid}{suffix}"),
            bridge: format!("gbench{}{suffix}", pid % 1000),
            pod_cidr: format!("10.250.{}.0/24", pid % 120 * 2 + second),
            cluster_cidr: "10.250.0.0/16".into(),
            vni: 10_000 + pid % 100_000 * 2 + second,
            state_dir: PathBuf::from(format!("/run/gantry-bench-{pid}{suffix}")),
            cgroup_parent: format!("/gantry-bench-{pid}{suffix}"),
            ingress_ports: None,
        }
    }
}

/// A `gantry` child process and the last lines of its stderr. Dropping it
/// kills the process.
struct GantryChild {
    /// `None` once stopped.
    child: Option<Child>,
    /// "gantry up", "gantry server" or "gantry agent", for messages.
    what: &'static str,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// Where every child's stderr is also copied, with `--log`.
type LogCopy = Option<Arc<Mutex<std::fs::File>>>;

impl GantryChild {
    fn spawn(
        launcher: &testkit::Launcher,
        mut command: Command,
        what: &'static str,
        rust_log: Option<&str>,
        copy: LogCopy,
    ) -> anyhow::Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match rust_log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let mut child = launcher
            .spawn(command)
            .with_context(|| format!("running {what}"))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            std::thread::Builder::new()
                .name("gantry-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        if let Some(f) = &copy {
                            let _ = writeln!(f.lock().expect("log file lock"), "[{what}] {line}");
                        }
                        let mut log = log.lock().expect("log lock");
                        if log.len() == LOG_TAIL_LINES {
                            log.pop_front();
                        }
                        log.push_back(line);
                    }
                })
                .with_context(|| format!("starting the thread that reads {what}'s stderr"))?;
        }
        Ok(Self {
            child: Some(child),
            what,
            log,
        })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        Ok(self
            .child
            .as_ref()
            .with_context(|| format!("{} is not running", self.what))?
            .id())
    }

    /// Fails, quoting its stderr, if the process has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child
                .try_wait()
                .with_context(|| format!("waiting for {}", self.what))?
        {
            bail!(
                "{} exited with {status}; its stderr:\n{}",
                self.what,
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().expect("log lock");
        if log.is_empty() {
            "(nothing)".into()
        } else {
            log.iter().cloned().collect::<Vec<_>>().join("\n")
        }
    }

    /// SIGKILL, and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGINT (as Ctrl-C), then waits; SIGKILL after `STOP_WITHIN`.
    async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let stopped = Instant::now();
        while child.try_wait()?.is_none() {
            if stopped.elapsed() > STOP_WITHIN {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{} did not stop within {STOP_WITHIN:?} of SIGINT",
                    self.what
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for GantryChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running node and everything it makes. Dropping it kills its
/// processes and removes every container, shim, mount, link, nftables
/// table, cgroup and directory of the node by force.
pub(crate) struct Node {
    kind: NodeKind,
    names: Names,
    /// `gantry up`, or the `gantry server` the agent joined.
    server: GantryChild,
    /// `gantry agent` (for `NodeKind::Agent`).
    agent: Option<GantryChild>,
    /// The admin's credentials, once the server has written them.
    creds: Option<Credentials>,
    /// Keeps the children's parent-death signal armed (see
    /// `testkit::Launcher`).
    _launcher: testkit::Launcher,
    /// The server's data directory; for `gantry up` also the node's.
    server_dir: Option<tempfile::TempDir>,
    /// The agent's data directory, for `NodeKind::Agent`.
    agent_dir: Option<tempfile::TempDir>,
}

impl Node {
    pub(crate) async fn start(
        kind: NodeKind,
        gantry: &Path,
        args: &Args,
        names: &Names,
        copy: LogCopy,
    ) -> anyhow::Result<Self> {
        if Path::new("/sys/class/net").join(&names.bridge).exists() {
            bail!(
                "a link named {} exists already (left by a killed run? `ip link del {0}; nft delete table ip {0}`)",
                names.bridge
            );
        }
        let tempdir = |prefix: &str| {
            tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(&args.dir)
                .with_context(|| format!("creating a data directory in {}", args.dir.display()))
        };
        let server_dir = tempdir("gantry-bench-pods-")?;
        let agent_dir = match kind {
            NodeKind::Up => None,
            NodeKind::Agent => Some(tempdir("gantry-bench-agent-")?),
        };
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)?));
        // A separate agent is reached at the machine's address (it gets
        // no serving certificate for loopback); `gantry up`'s on loopback.
        let agent_listen = match kind {
            NodeKind::Up => Ipv4Addr::LOCALHOST,
            NodeKind::Agent => Ipv4Addr::UNSPECIFIED,
        };
        let agent_listen = SocketAddr::from((agent_listen, free_port(agent_listen)?));
        let node_flags = |command: &mut Command| {
            command
                .arg("--node-name")
                .arg(&names.node)
                .arg("--agent-listen")
                .arg(agent_listen.to_string())
                .arg("--pod-cidr")
                .arg(&names.pod_cidr)
                .arg("--cluster-cidr")
                .arg(&names.cluster_cidr)
                .arg("--vxlan-vni")
                .arg(names.vni.to_string())
                .arg("--bridge")
                .arg(&names.bridge)
                .arg("--state-dir")
                .arg(&names.state_dir)
                .arg("--cgroup-parent")
                .arg(&names.cgroup_parent);
            let (http, https) = names.ingress_ports.unwrap_or((0, 0));
            command
                .arg("--ingress-http-port")
                .arg(http.to_string())
                .arg("--ingress-https-port")
                .arg(https.to_string());
        };
        let launcher = testkit::Launcher::new("gantry-bench-node")?;
        let mut command = Command::new(gantry);
        command
            .arg(if kind == NodeKind::Up { "up" } else { "server" })
            .arg("--data-dir")
            .arg(server_dir.path())
            .arg("--listen")
            .arg(listen.to_string());
        if kind == NodeKind::Up {
            node_flags(&mut command);
        }
        let what = if kind == NodeKind::Up {
            "gantry up"
        } else {
            "gantry server"
        };
        let server = GantryChild::spawn(
            &launcher,
            command,
            what,
            args.rust_log.as_deref(),
            copy.clone(),
        )?;
        // From here on, a failure drops a `Node`, which cleans up.
        let mut node = Self {
            kind,
            names: names.clone(),
            server,
            agent: None,
            creds: None,
            _launcher: launcher,
            server_dir: Some(server_dir),
            agent_dir,
        };
        node.creds = Some(node.wait_serving(listen).await?);
        if kind == NodeKind::Agent {
            let token = node.join_token(gantry).await?;
            let mut command = Command::new(gantry);
            command
                .arg("agent")
                .arg("--server")
                .arg(format!("https://{listen}"))
                .arg("--data-dir")
                .arg(node.data_dir())
                .env("GANTRY_TOKEN", token.trim());
            node_flags(&mut command);
            node.agent = Some(GantryChild::spawn(
                &node._launcher,
                command,
                "gantry agent",
                args.rust_log.as_deref(),
                copy,
            )?);
        }
        node.wait_node_ready().await?;
        node.import_image(gantry).await?;
        Ok(node)
    }

    pub(crate) fn creds(&self) -> anyhow::Result<&Credentials> {
        self.creds.as_ref().context("the server has not served yet")
    }

    /// The node's data directory (images, containers, the agent's socket).
    fn data_dir(&self) -> &Path {
        self.agent_dir
            .as_ref()
            .or(self.server_dir.as_ref())
            .expect("the data directories live as long as the node")
            .path()
    }

    fn server_dir(&self) -> &Path {
        self.server_dir
            .as_ref()
            .expect("the data directories live as long as the node")
            .path()
    }

    /// The node pods must name, where no scheduler binds them.
    fn pinned_node(&self) -> Option<&str> {
        (self.kind == NodeKind::Agent).then_some(self.names.node.as_str())
    }

    /// The pid of the server process (`gantry up` itself for a one-machine node).
    pub(crate) fn server_pid(&self) -> anyhow::Result<u32> {
        self.server.pid()
    }

    /// The process whose RSS is the agent's cost.
    fn measured(&self) -> &GantryChild {
        self.agent.as_ref().unwrap_or(&self.server)
    }

    /// Fails, quoting stderr, if a process of the node has exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        self.server.check_running()?;
        if let Some(agent) = self.agent.as_mut() {
            agent.check_running()?;
        }
        Ok(())
    }

    /// Polls until the credentials are on disk and `/readyz` answers.
    async fn wait_serving(&mut self, addr: SocketAddr) -> anyhow::Result<Credentials> {
        let started = Instant::now();
        let mut last = String::from("no attempt yet");
        while started.elapsed() < READY_WITHIN {
            self.check_running()?;
            let probe = async {
                let creds = Credentials::load(self.server_dir(), addr)?;
                let readyz = creds.connect().await?.get("/readyz").await?;
                if !readyz.status.is_success() {
                    bail!("/readyz answered {}", readyz.status);
                }
                anyhow::Ok(creds)
            };
            match probe.await {
                Ok(creds) => return Ok(creds),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(self.explain(anyhow::anyhow!(
            "{} on {addr} did not serve within {READY_WITHIN:?} (last: {last})",
            self.server.what
        )))
    }

    /// Polls until the Node is Ready and the agent's local socket exists.
    async fn wait_node_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last = String::from("no attempt yet");
        let conn = self.creds()?.connect().await?;
        let socket = self.data_dir().join("agent.sock");
        while started.elapsed() < READY_WITHIN {
            self.check_running()?;
            let probe = async {
                let node = conn
                    .get(&format!("/api/v1/nodes/{}", self.names.node))
                    .await?
                    .expect(&format!("GET node {}", self.names.node), StatusCode::OK)?;
                let ready = node["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if !ready {
                    bail!("node {} is not Ready yet", self.names.node);
                }
                if !socket.exists() {
                    bail!("{} does not exist yet", socket.display());
                }
                anyhow::Ok(())
            };
            match probe.await {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(self.explain(anyhow::anyhow!(
            "node {} was not Ready within {READY_WITHIN:?} (last: {last})",
            self.names.node
        )))
    }

    /// A join token from `gantry token create` on the server's directory.
    async fn join_token(&self, gantry: &Path) -> anyhow::Result<String> {
        let output = tokio::process::Command::new(gantry)
            .args(["token", "create", "--ttl", "1h", "--data-dir"])
            .arg(self.server_dir())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .await
            .context("running gantry token create")?;
        let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !output.status.success() || token.is_empty() {
            bail!(
                "gantry token create failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(token)
    }

    /// Writes the busybox test image and imports it into the node through
    /// `gantry image import` (the agent's local socket).
    async fn import_image(&mut self, gantry: &Path) -> anyhow::Result<()> {
        let image = testkit::images::busybox().context("building the busybox test image")?;
        self.import(gantry, &image, "busybox.tar").await
    }

    /// Writes a test image as `file` in the node's directory and imports it.
    pub(crate) async fn import(
        &mut self,
        gantry: &Path,
        image: &testkit::images::TestImage,
        file: &str,
    ) -> anyhow::Result<()> {
        let archive = self.data_dir().join(file);
        testkit::images::write_oci_archive(&[image], &archive, testkit::images::Compression::None)?;
        let output = tokio::process::Command::new(gantry)
            .arg("image")
            .arg("import")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg(&archive)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .await
            .context("running gantry image import")?;
        if !output.status.success() {
            bail!(
                "gantry image import {} failed ({}): {}",
                archive.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Creates the benchmark's namespace and starts watching its pods.
    pub(crate) async fn prepare(&mut self) -> anyhow::Result<PodWatch> {
        let conn = self.creds()?.connect().await?;
        conn.post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        )
        .await?
        .expect(
            &format!("creating namespace {NAMESPACE}"),
            StatusCode::CREATED,
        )?;
        PodWatch::start(self.creds()?).await
    }

    /// The directory of the busybox image's one layer in the node's image
    /// store (the anchor runs on it).
    fn image_layer(&self) -> anyhow::Result<PathBuf> {
        let images = self.data_dir().join("images");
        let refs_path = images.join("refs.json");
        let refs: Value = serde_json::from_slice(
            &std::fs::read(&refs_path)
                .with_context(|| format!("reading {}", refs_path.display()))?,
        )
        .with_context(|| format!("parsing {}", refs_path.display()))?;
        let dirs: Vec<u64> = refs["layers"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(_, l)| l["dir"].as_u64())
            .collect();
        let [dir] = dirs[..] else {
            bail!(
                "{} lists {} layers; only busybox's one layer was expected",
                refs_path.display(),
                dirs.len()
            );
        };
        Ok(images.join("layers").join(dir.to_string()))
    }

    /// Adds the node's state to an error: whether its processes still run
    /// and what they last wrote to stderr.
    pub(crate) fn explain(&mut self, e: anyhow::Error) -> anyhow::Error {
        let mut state = String::new();
        for child in std::iter::once(&mut self.server).chain(self.agent.as_mut()) {
            state.push_str(&match child.check_running() {
                Ok(()) => format!(
                    "{} is still running; its stderr:\n{}\n",
                    child.what,
                    child.log_tail()
                ),
                Err(exited) => format!("{exited:#}\n"),
            });
        }
        e.context(state)
    }

    fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_bytes(self.measured().pid()?)
    }

    /// The memory of the node's shims.
    fn shims(&self) -> ShimMemory {
        let pids = shim_pids(self.data_dir());
        let rss: u64 = pids.iter().filter_map(|p| rss_bytes(*p).ok()).sum();
        let (mut pss, mut private) = (0, 0);
        for (p, v) in pids.iter().filter_map(|p| smaps_rollup(*p)) {
            pss += p;
            private += v;
        }
        ShimMemory {
            count: pids.len(),
            rss: mib(rss),
            pss: mib(pss),
            private: mib(private),
        }
    }

    /// Deletes every pod left in the namespace through the API, waits until
    /// they are gone, stops the node's processes with SIGINT (as Ctrl-C
    /// does), agent first, and answers what the agent left behind. What a
    /// node keeps by design (bridge, nftables table, cgroup parent, state
    /// directory) is removed on drop either way.
    pub(crate) async fn shut_down(mut self) -> anyhow::Result<Vec<String>> {
        let deleted = self.delete_all_pods().await;
        if let Some(agent) = self.agent.as_mut() {
            agent.stop().await?;
        }
        self.server.stop().await?;
        deleted.map_err(|e| e.context("deleting the pods at the end"))?;
        Ok(leftovers(&self.names, self.data_dir()))
    }

    async fn delete_all_pods(&mut self) -> anyhow::Result<()> {
        let conn = self.creds()?.connect().await?;
        let path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
        let reply = conn.get(&path).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        let list = reply.expect("listing the pods left", StatusCode::OK)?;
        let names: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        eprintln!("gantry-bench pods: deleting the {} pods left", names.len());
        delete_pods(&conn, &names).await?;
        let deadline = Instant::now() + BATCH_WITHIN;
        loop {
            let list = conn
                .get(&path)
                .await?
                .expect("listing the pods left", StatusCode::OK)?;
            if list["items"].as_array().is_none_or(Vec::is_empty) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("pods were still there {BATCH_WITHIN:?} after being deleted");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The agent first, so that it starts nothing more; then the
        // server (their own drops would do it in field order).
        if let Some(agent) = self.agent.as_mut() {
            agent.kill();
        }
        self.server.kill();
        let node_dir = self.data_dir().to_owned();
        for problem in force_clean(&self.names, &node_dir) {
            eprintln!("gantry-bench pods: cleaning up: {problem}");
        }
        // The `TempDir`s remove the directories after this.
    }
}

/// What the agent should have removed itself: shims and containers still
/// there, mounts under the node's directories, veths on its bridge, pod
/// cgroups under its cgroup parent.
fn leftovers(names: &Names, data_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for pid in shim_pids(data_dir) {
        found.push(format!("shim process {pid}"));
    }
    for id in runc_list(&names.state_dir.join("runc")) {
        found.push(format!("runc container {id}"));
    }
    for m in mounts_under(&[data_dir, &names.state_dir]) {
        found.push(format!("mount {}", m.display()));
    }
    for link in links_on(&names.bridge) {
        found.push(format!("link {link} on bridge {}", names.bridge));
    }
    for dir in cgroup_dirs(&names.cgroup_parent) {
        // The parent itself is the node's; anything below it is a pod's.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    found.push(format!("cgroup {}", e.path().display()));
                }
            }
        }
    }
    found
}

/// Removes everything the node made, by force; answers what could not be
/// removed.
fn force_clean(names: &Names, data_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    // The shims first, so that none starts another runc; a `runc create`
    // one had under way finishes on its own, so runc's list is read after.
    for pid in shim_pids(data_dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let runc_root = names.state_dir.join("runc");
    for id in runc_list(&runc_root) {
        if let Err(e) = run_quiet(
            Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["delete", "--force", &id]),
        ) {
            problems.push(format!("runc delete --force {id}: {e:#}"));
        }
    }
    // Whatever runc did not know of (a container caught half-created)
    // still sits in the node's cgroups.
    kill_cgroup_processes(&names.cgroup_parent);
    for m in mounts_under(&[data_dir, &names.state_dir]) {
        if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            problems.push(format!("unmounting {}: {e}", m.display()));
        }
    }
    for link in links_on(&names.bridge) {
        let _ = run_quiet(Command::new("ip").args(["link", "del", &link]));
    }
    // The bridge and the overlay's VXLAN device beside it.
    for link in [names.bridge.clone(), format!("{}.vx", names.bridge)] {
        if Path::new("/sys/class/net").join(&link).exists()
            && let Err(e) = run_quiet(Command::new("ip").args(["link", "del", &link]))
        {
            problems.push(format!("deleting {link}: {e:#}"));
        }
    }
    // The pod network's table, and the Service proxy's and NetworkPolicy's beside it.
    for table in [
        names.bridge.clone(),
        format!("{}-svc", names.bridge),
        format!("{}-pol", names.bridge),
    ] {
        let table_exists = Command::new("nft")
            .args(["list", "table", "ip", &table])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if table_exists
            && let Err(e) = run_quiet(Command::new("nft").args(["delete", "table", "ip", &table]))
        {
            problems.push(format!("deleting nftables table {table}: {e:#}"));
        }
    }
    for dir in cgroup_dirs(&names.cgroup_parent) {
        if let Err(e) = remove_cgroup_tree(&dir) {
            problems.push(e);
        }
    }
    if names.state_dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&names.state_dir)
    {
        problems.push(format!("removing {}: {e}", names.state_dir.display()));
    }
    // The data directory may hold files owned by containers, read-only
    // layers and such: the `TempDir` removes what it can after this.
    problems
}

/// Runs a command, failing with its stderr.
fn run_quiet(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The containers in a runc state directory.
fn runc_list(root: &Path) -> Vec<String> {
    if !root.exists() {
        return Vec::new();
    }
    Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["list", "--quiet"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The pids of the `gantry shim` processes of containers under `data_dir`
/// (a shim's command line is `gantry shim DATA/containers/<id>`).
fn shim_pids(data_dir: &Path) -> Vec<u32> {
    let prefix = data_dir.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let ours = args.get(1) == Some(&&b"shim"[..])
                && args.get(2).is_some_and(|a| a.starts_with(prefix));
            ours.then_some(pid)
        })
        .collect()
}

/// The shims' memory, in MiB. VmRSS counts the pages the shims share (the
/// `gantry` binary's, the C library's) once per shim; PSS splits those
/// between the processes sharing them; private memory is each shim's own.
#[derive(Clone, Copy, Debug)]
struct ShimMemory {
    count: usize,
    rss: f64,
    pss: f64,
    private: f64,
}

/// A process's proportional set size and private memory (clean and dirty),
/// in bytes, from `smaps_rollup`.
fn smaps_rollup(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let kib: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some((
        field("Pss:")?,
        field("Private_Clean:")? + field("Private_Dirty:")?,
    ))
}

/// One line of `/proc/self/mountinfo`: the mount point and the file system
/// type.
fn mountinfo() -> Vec<(PathBuf, String)> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let point = fields.get(4)?;
            let dash = fields.iter().position(|f| *f == "-")?;
            let fs_type = fields.get(dash + 1)?;
            Some((PathBuf::from(unescape_mount(point)), (*fs_type).to_owned()))
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let Some(d) = octal {
            out.push(
                d.iter()
                    .fold(0u8, |v, b| v.wrapping_mul(8).wrapping_add(b - b'0')),
            );
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below any of `dirs`, deepest (latest) first.
fn mounts_under(dirs: &[&Path]) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| dirs.iter().any(|d| p.starts_with(d)))
        .collect();
    found.reverse();
    found
}

/// The links whose master is `bridge`.
fn links_on(bridge: &str) -> Vec<String> {
    let dir = Path::new("/sys/class/net").join(bridge).join("brif");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `cgroup_path` in every mounted cgroup hierarchy where it exists.
fn cgroup_dirs(cgroup_path: &str) -> Vec<PathBuf> {
    mountinfo()
        .into_iter()
        .filter(|(_, t)| t == "cgroup" || t == "cgroup2")
        .map(|(p, _)| p.join(cgroup_path.trim_start_matches('/')))
        .filter(|p| p.is_dir())
        .collect()
}

/// SIGKILLs every process in `cgroup_path` or below, in every hierarchy.
fn kill_cgroup_processes(cgroup_path: &str) {
    fn walk(dir: &Path, pids: &mut HashSet<i32>) {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), pids);
            }
        }
    }
    let mut pids = HashSet::new();
    for dir in cgroup_dirs(cgroup_path) {
        walk(&dir, &mut pids);
    }
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Removes a cgroup and the ones below it, deepest first.
fn remove_cgroup_tree(dir: &Path) -> Result<(), String> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path())?;
            }
        }
    }
    // A cgroup just emptied of processes can refuse removal for a moment.
    let mut last = None;
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "removing cgroup {}: {}",
        dir.display(),
        last.map_or_else(String::new, |e| e.to_string())
    ))
}

/// The anchor: a bare `runc run --detach` of `sleep 3600` on an overlay of
/// the same image layer the pods run on, in a bundle from `runc spec`.
/// Dropping it deletes its containers, unmounts the overlay and removes its
/// cgroups and directory.
struct RuncAnchor {
    dir: Option<tempfile::TempDir>,
    /// runc's state directory (`--root`), private to the anchor.
    root: PathBuf,
    bundle: PathBuf,
    rootfs: PathBuf,
    mounted: bool,
    /// The cgroup the containers go under, in every hierarchy.
    cgroup_parent: String,
    prefix: String,
    runs: usize,
}

impl RuncAnchor {
    fn new(parent: &Path, layer: &Path, pid: u32) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("gantry-bench-runc-")
            .tempdir_in(parent)
            .with_context(|| format!("creating the anchor's directory in {}", parent.display()))?;
        let base = dir.path().to_owned();
        let mut anchor = Self {
            dir: Some(dir),
            root: base.join("state"),
            bundle: base.join("bundle"),
            rootfs: base.join("bundle/rootfs"),
            mounted: false,
            cgroup_parent: format!("/gantry-bench-{pid}-runc"),
            prefix: format!("gantry-bench-{pid}"),
            runs: 0,
        };
        let (upper, work) = (base.join("upper"), base.join("work"));
        for d in [&anchor.root, &anchor.rootfs, &upper, &work] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        // The same kind of root file system a pod's container gets: an
        // overlay of the image's layer under a writable upper directory.
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            layer.display(),
            upper.display(),
            work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            &anchor.rootfs,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .with_context(|| format!("mounting an overlay of {} for the anchor", layer.display()))?;
        anchor.mounted = true;
        run_quiet(
            Command::new("runc")
                .args(["spec", "--bundle"])
                .arg(&anchor.bundle),
        )?;
        let config_path = anchor.bundle.join("config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path)?)
            .with_context(|| format!("parsing {}", config_path.display()))?;
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["sleep", "3600"]);
        config["root"]["path"] = json!(anchor.rootfs);
        config["root"]["readonly"] = json!(false);
        config["linux"]["cgroupsPath"] = json!(format!("{}/anchor", anchor.cgroup_parent));
        // `runc spec` already asks for a new network namespace; make sure.
        let namespaces = config["linux"]["namespaces"]
            .as_array_mut()
            .context("runc spec wrote no linux.namespaces")?;
        if !namespaces.iter().any(|n| n["type"] == "network") {
            namespaces.push(json!({"type": "network"}));
        }
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)
            .with_context(|| format!("writing {}", config_path.display()))?;
        Ok(anchor)
    }

    /// One `runc run --detach`, timed until it returns (the process is then
    /// running), then `runc delete --force`, untimed.
    async fn run_once(&mut self) -> anyhow::Result<Duration> {
        let id = format!("{}-{}", self.prefix, self.runs);
        self.runs += 1;
        // The container inherits runc's stdio: a file, so that nothing
        // waits on a pipe the container holds open.
        let log_path = self.bundle.join("runc.log");
        let log = std::fs::File::create(&log_path)?;
        let started = Instant::now();
        let status = tokio::process::Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(["run", "--detach", "--bundle"])
            .arg(&self.bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .await
            .context("running runc run")?;
        let took = started.elapsed();
        if !status.success() {
            bail!(
                "runc run --detach {id} failed ({status}): {}",
                std::fs::read_to_string(&log_path)
                    .unwrap_or_default()
                    .trim()
            );
        }
        let output = tokio::process::Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &id])
            .stdin(Stdio::null())
            .output()
            .await
            .context("running runc delete")?;
        if !output.status.success() {
            bail!(
                "runc delete --force {id} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(took)
    }

    /// Removes everything, failing on what could not be removed.
    fn close(mut self) -> anyhow::Result<()> {
        let problems = self.clean();
        if !problems.is_empty() {
            bail!("cleaning up the anchor: {}", problems.join("; "));
        }
        Ok(())
    }

    fn clean(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(dir) = self.dir.take() else {
            return problems;
        };
        for id in runc_list(&self.root) {
            if let Err(e) = run_quiet(
                Command::new("runc")
                    .arg("--root")
                    .arg(&self.root)
                    .args(["delete", "--force", &id]),
            ) {
                problems.push(format!("{e:#}"));
            }
        }
        if self.mounted {
            match nix::mount::umount2(&self.rootfs, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) => self.mounted = false,
                Err(e) => problems.push(format!("unmounting {}: {e}", self.rootfs.display())),
            }
        }
        for d in cgroup_dirs(&self.cgroup_parent) {
            if let Err(e) = remove_cgroup_tree(&d) {
                problems.push(e);
            }
        }
        if !self.mounted {
            drop(dir);
        } else {
            // Never remove files through a mount still in place.
            let _ = dir.keep();
        }
        problems
    }
}

impl Drop for RuncAnchor {
    fn drop(&mut self) {
        for problem in self.clean() {
            eprintln!("gantry-bench pods: cleaning up the anchor: {problem}");
        }
    }
}

/// runc's version line, for the header.
fn runc_version() -> anyhow::Result<String> {
    let output = Command::new("runc")
        .arg("--version")
        .output()
        .context("running runc --version (is runc installed?)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().next().unwrap_or("runc").trim().to_owned())
}

/// A port of `ip` nobody listens on right now.
pub(crate) fn free_port(ip: Ipv4Addr) -> anyhow::Result<u16> {
    let listener = TcpListener::bind((ip, 0))
        .with_context(|| format!("binding a port of {ip} to find a free one"))?;
    Ok(listener.local_addr()?.port())
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_mode_is_small() {
        let (quick, full) = (Plan::new(true), Plan::new(false));
        assert!(quick.rounds * quick.per_round < full.rounds * full.per_round);
        assert_eq!(full.rounds * full.per_round, 100);
        assert_eq!(full.node_pods, 110);
        assert!(quick.node_pods < full.node_pods);
    }

    #[test]
    fn names_fit_the_kernel() {
        for (pid, kind) in [1, 999, 4_194_304, u32::MAX]
            .into_iter()
            .flat_map(|p| [(p, NodeKind::Up), (p, NodeKind::Agent)])
        {
            let n = Names::new(pid, kind);
            // A link name has at most 15 bytes (IFNAMSIZ - 1).
            assert!(n.bridge.len() <= 15, "{}", n.bridge);
            // A /24 inside 10.250.0.0/16, never the first.
            assert_eq!(n.cluster_cidr, "10.250.0.0/16");
            let third: u8 = n
                .pod_cidr
                .strip_prefix("10.250.")
                .and_then(|r| r.strip_suffix(".0/24"))
                .and_then(|x| x.parse().ok())
                .unwrap_or_else(|| panic!("{} is not a /24 of 10.250.0.0/16", n.pod_cidr));
            assert!(third > 0, "{}", n.pod_cidr);
        }
    }

    #[test]
    fn reads_watch_events() {
        let at = Instant::now();
        let running = json!({"type": "MODIFIED", "object": {
            "metadata": {"name": "a"},
            "spec": {"nodeName": "n"},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "sleep", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
            ]},
        }});
        let e = pod_event(&running, at);
        assert!(e.running && e.bound && !e.deleted);
        assert_eq!(e.name, "a");

        // Running as a phase is not enough: every container must run.
        let waiting = json!({"type": "MODIFIED", "object": {
            "metadata": {"name": "a"},
            "spec": {"nodeName": "n"},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "sleep", "state": {"waiting": {"reason": "ContainerCreating"}}},
            ]},
        }});
        assert!(!pod_event(&waiting, at).running);

        let pending = json!({"type": "ADDED", "object": {
            "metadata": {"name": "b"}, "spec": {}, "status": {"phase": "Pending"},
        }});
        let e = pod_event(&pending, at);
        assert!(!e.running && !e.bound && !e.deleted);

        let deleted = json!({"type": "DELETED", "object": {"metadata": {"name": "b"}}});
        assert!(pod_event(&deleted, at).deleted);
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape_mount("/var/tmp/a\\040b"), "/var/tmp/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/tab\\011x\\"), "/tab\tx\\");
        assert_eq!(unescape_mount("/not\\99octal"), "/not\\99octal");
    }

    #[test]
    fn reads_a_process_memory() {
        let (pss, private) = smaps_rollup(std::process::id()).expect("our own smaps_rollup");
        let rss = rss_bytes(std::process::id()).expect("our own VmRSS");
        assert!(
            private > 0 && pss >= private,
            "pss {pss}, private {private}"
        );
        assert!(rss >= pss, "rss {rss}, pss {pss}");
    }

    #[test]
    fn names_a_few_of_many() {
        let names: HashSet<&str> = ["d", "a", "c", "b", "f", "e", "g"].into_iter().collect();
        assert_eq!(some_of(&names), "a, b, c, d, e and 2 more");
        let one: HashSet<&str> = ["x"].into_iter().collect();
        assert_eq!(some_of(&one), "x");
    }
}
