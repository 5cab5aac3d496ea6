//! `gantry-bench scheduler`: the scheduler's throughput, as issue 5 asks:
//! 1,000 and 5,000 Node objects (no agents behind them) and 10,000 pending
//! pods, then the scheduler started and timed until every pod is bound.
//!
//! The server is the real `gantry server` on the embedded store, a process
//! of its own; the scheduler is the `scheduler` crate `gantry up` runs, here
//! in this process, binding through the API and publishing its events as it
//! does on a node. The anchor is a figure, not a run: kube-scheduler's own
//! CI floor (680 pods/s, its `SchedulingBasic` 5,000-node test on much
//! larger machines); there is no kube-scheduler binary on these machines.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use http::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::api_client::{Connection, Credentials};
use crate::gantry_process::GantryServer;
use crate::report::{Better, Goal, Row, table};

/// kube-scheduler's CI floor for scheduling throughput (pods/s).
const KUBE_SCHEDULER_FLOOR: f64 = 680.0;
/// What issue 5 asks of ours (pods/s).
const TARGET: f64 = 1_000.0;
/// How long all pods may take to be bound before the run is abandoned.
const BIND_WITHIN: Duration = Duration::from_secs(300);

/// Command-line arguments of `gantry-bench scheduler`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Short mode for the test suite: 100 and 500 nodes, 1,000 pods.
    #[arg(long)]
    quick: bool,
    /// Exit with an error if a figure misses its target.
    #[arg(long)]
    check: bool,
    /// The `gantry` binary to run; by default the one next to gantry-bench.
    #[arg(long)]
    gantry: Option<PathBuf>,
    /// Directory for the server's data directory.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
}

/// Concurrent connections used to create the nodes and pods.
const CLIENTS: usize = 32;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let gantry = match &args.gantry {
        Some(g) => g.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("gantry-bench has no directory")?
            .join("gantry"),
    };
    let (node_counts, pods) = if args.quick {
        (vec![100, 500], 1_000)
    } else {
        (vec![1_000, 5_000], 10_000)
    };
    let mut rows = Vec::new();
    for nodes in node_counts {
        let rate = one_run(&gantry, &args, nodes, pods).await?;
        rows.push(Row {
            metric: format!("pods bound/s, {nodes} nodes, {pods} pending pods"),
            ours: rate,
            anchor: KUBE_SCHEDULER_FLOOR,
            unit: "pods/s",
            better: Better::Higher,
            target: (!args.quick).then_some(Goal::AtLeast(TARGET)),
        });
    }
    println!(
        "gantry-bench scheduler{}: {}, {} cores",
        if args.quick { " --quick" } else { "" },
        gantry.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    print!("{}", table("gantry", "kube-scheduler CI floor", &rows));
    let missed: Vec<String> = rows
        .iter()
        .filter(|r| !r.met())
        .map(|r| r.metric.clone())
        .collect();
    if args.check && !missed.is_empty() {
        bail!("targets missed: {}", missed.join(", "));
    }
    Ok(())
}

/// One server, `nodes` nodes, `pods` pending pods; returns pods bound per
/// second from the scheduler's start to the last binding seen.
async fn one_run(
    gantry: &std::path::Path,
    args: &Args,
    nodes: usize,
    pods: usize,
) -> anyhow::Result<f64> {
    let (server, creds, _) = GantryServer::start(gantry, &args.dir, None).await?;
    eprintln!("gantry-bench scheduler: {nodes} nodes, {pods} pods");
    create_all(&creds, nodes, "/api/v1/nodes", node).await?;
    create_all(&creds, pods, "/api/v1/namespaces/default/pods", pod).await?;

    let client = kube_client(&server).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Watch first, so no binding is missed; count those bound already.
    let mut events = watcher(api, watcher::Config::default()).boxed();
    let mut bound = HashSet::new();
    let mut listed = false;
    while !listed {
        match events.try_next().await? {
            Some(watcher::Event::InitApply(p)) => note(&mut bound, &p),
            Some(watcher::Event::InitDone) => listed = true,
            Some(_) => {}
            None => bail!("the pod watch ended"),
        }
    }
    if !bound.is_empty() {
        bail!(
            "{} pods were bound before the scheduler started",
            bound.len()
        );
    }
    let started = Instant::now();
    let scheduler = tokio::spawn(scheduler::run(client));
    let mut last = started;
    while bound.len() < pods {
        let event = tokio::time::timeout_at((started + BIND_WITHIN).into(), events.try_next())
            .await
            .with_context(|| {
                format!(
                    "only {} of {pods} pods bound within {BIND_WITHIN:?}",
                    bound.len()
                )
            })??;
        match event {
            Some(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                let before = bound.len();
                note(&mut bound, &p);
                if bound.len() > before {
                    last = Instant::now();
                }
            }
            Some(_) => {}
            None => bail!("the pod watch ended"),
        }
        if scheduler.is_finished() {
            bail!("the scheduler stopped: {:?}", scheduler.await);
        }
    }
    scheduler.abort();
    drop(server);
    let secs = (last - started).as_secs_f64();
    eprintln!("gantry-bench scheduler: {pods} pods bound on {nodes} nodes in {secs:.2} s");
    Ok(pods as f64 / secs)
}

fn note(bound: &mut HashSet<String>, p: &Pod) {
    let placed = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if placed {
        bound.insert(p.metadata.name.clone().unwrap_or_default());
    }
}

/// A node as an agent would register it, with room for many small pods.
fn node(i: usize) -> Value {
    let name = format!("node-{i:05}");
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
        }},
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    })
}

/// A pending pod with small requests, as in kube-scheduler's basic test.
fn pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i:05}"), "labels": {"app": "bench"}},
        "spec": {"containers": [{
            "name": "c", "image": "busybox:1.36",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        }]},
    })
}

/// Creates `n` objects made by `make` at `path`, over `CLIENTS` connections.
async fn create_all(
    creds: &Credentials,
    n: usize,
    path: &str,
    make: fn(usize) -> Value,
) -> anyhow::Result<()> {
    let mut conns: Vec<Connection> = Vec::new();
    for _ in 0..CLIENTS {
        conns.push(creds.connect().await?);
    }
    futures::stream::iter(0..n)
        .map(|i| {
            let conn = conns[i % CLIENTS].clone();
            async move {
                let reply = conn.post(path, &make(i)).await?;
                reply.expect(&format!("POST {path}"), StatusCode::CREATED)?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CLIENTS * 2)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn kube_client(server: &GantryServer) -> anyhow::Result<kube::Client> {
    // kube's TLS asks for the process-wide provider; `gantry` picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = server.data_dir().join("admin.kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}
