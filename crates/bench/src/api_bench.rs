//! `gantry-bench api`: the real `gantry server` on the embedded store next to
//! the same binary on a real single-member etcd (`--store etcd://`), driven
//! over HTTPS with the admin's client certificate, as kubectl and
//! controllers drive it.
//!
//! Both servers run side by side; each figure is measured on the embedded
//! server and then on the etcd one, so the machine's noise hits both alike.
//! The targets are issue 3's "Figures to reach" and apply to the embedded
//! column; the etcd column is the anchor.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use testkit::EtcdServer;

use crate::api_client::{Connection, Credentials};
use crate::gantry_process::{GantryServer, etcd_pid, rss_bytes};
use crate::report::{Better, Goal, Row, table};

/// Command-line arguments of `gantry-bench api`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Short mode for the test suite: 1,000 pods, 50 watch events, 2 s of
    /// creates.
    #[arg(long)]
    quick: bool,
    /// Exit with an error if a figure misses its target.
    #[arg(long)]
    check: bool,
    /// The `gantry` binary to run; by default the one next to gantry-bench.
    #[arg(long)]
    gantry: Option<PathBuf>,
    /// Directory (on the disk to measure) for the servers' data directories.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
}

/// How much of each figure to measure.
#[derive(Debug)]
struct Plan {
    /// Cold starts per store; the figure is their median.
    cold_starts: usize,
    /// How long the servers sit idle before their RSS is read.
    idle: Duration,
    /// Sequential creates (and as many updates) timed under churn.
    latency_ops: usize,
    /// Background writes per second during the latency figure.
    churn_per_sec: u32,
    /// Writes whose watch events are timed.
    watch_events: usize,
    /// Concurrent clients (connections) for the create rate and pod load.
    clients: usize,
    /// How long the 32-client creates run.
    create_for: Duration,
    /// Pods created before the LIST figure.
    pods: usize,
    /// Timed LISTs of all pods, per output format.
    lists: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                cold_starts: 2,
                idle: Duration::from_secs(2),
                latency_ops: 100,
                churn_per_sec: 20,
                watch_events: 50,
                clients: 32,
                create_for: Duration::from_secs(2),
                pods: 1_000,
                lists: 10,
            }
        } else {
            Self {
                cold_starts: 5,
                idle: Duration::from_secs(2),
                latency_ops: 1_000,
                churn_per_sec: 20,
                watch_events: 1_000,
                clients: 32,
                create_for: Duration::from_secs(10),
                pods: 10_000,
                lists: 30,
            }
        }
    }
}

/// The namespaces each figure writes in, so figures do not see each
/// other's objects.
const NS_LATENCY: &str = "bench-latency";
const NS_CHURN: &str = "bench-churn";
const NS_WATCH: &str = "bench-watch";
const NS_LOAD: &str = "bench-load";
const NS_PODS: &str = "bench-pods";

/// The size of each ConfigMap's one value, as in the store benchmark.
const PAYLOAD_BYTES: usize = 256;

/// What kubectl sends to get a Table.
const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// How long a watch event may take before the figure fails.
const EVENT_WITHIN: Duration = Duration::from_secs(10);

/// One server under test.
struct Subject {
    /// "embedded" or "etcd", for messages.
    name: &'static str,
    server: GantryServer,
    creds: Credentials,
    /// The connection sequential figures use.
    conn: Connection,
}

impl Subject {
    /// Adds the server's state to an error: whether it is still running and
    /// what it last wrote to stderr.
    fn explain(&mut self, figure: &str, e: anyhow::Error) -> anyhow::Error {
        let state = match self.server.check_running() {
            Ok(()) => format!("still running; its stderr:\n{}", self.server.log_tail()),
            Err(exited) => format!("{exited:#}"),
        };
        e.context(format!(
            "{figure} on the {} server failed; the server is {state}",
            self.name
        ))
    }
}

/// Runs one figure on both subjects, embedded first.
async fn both<T, F>(subjects: &mut [Subject; 2], figure: &str, mut f: F) -> anyhow::Result<[T; 2]>
where
    F: AsyncFnMut(&Subject) -> anyhow::Result<T>,
{
    eprintln!("gantry-bench api: {figure}");
    let mut out = Vec::with_capacity(2);
    for s in subjects.iter_mut() {
        match f(s).await {
            Ok(v) => out.push(v),
            Err(e) => return Err(s.explain(figure, e)),
        }
    }
    Ok(out
        .try_into()
        .unwrap_or_else(|_| unreachable!("two subjects")))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::new(args.quick);
    let gantry = match args.gantry {
        Some(path) => path,
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
    let etcd = EtcdServer::start().context("starting etcd")?;
    let specs = [None, Some(etcd.spec())];
    let names = ["embedded", "etcd"];

    // Cold starts, alternating between the stores; the last server of each
    // stays up for the other figures.
    eprintln!(
        "gantry-bench api: {} cold starts per store",
        plan.cold_starts
    );
    let mut cold: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut kept: [Option<(GantryServer, Credentials)>; 2] = [None, None];
    for _ in 0..plan.cold_starts {
        for i in 0..2 {
            let (server, creds, took) =
                GantryServer::start(&gantry, &args.dir, specs[i].as_deref())
                    .await
                    .with_context(|| format!("starting gantry on the {} store", names[i]))?;
            cold[i].push(took.as_secs_f64() * 1000.0);
            // Dropping the previous one kills it.
            kept[i] = Some((server, creds));
        }
    }
    let mut subjects = Vec::new();
    for (i, k) in kept.into_iter().enumerate() {
        let (server, creds) = k.expect("at least one cold start");
        let conn = creds.connect().await?;
        subjects.push(Subject {
            name: names[i],
            server,
            creds,
            conn,
        });
    }
    let mut subjects: [Subject; 2] = subjects
        .try_into()
        .unwrap_or_else(|_| unreachable!("two subjects"));

    // A few requests as a first kubectl command makes, then idle.
    both(&mut subjects, "namespaces and first requests", async |s| {
        for ns in [NS_LATENCY, NS_CHURN, NS_WATCH, NS_LOAD, NS_PODS] {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            s.conn
                .post("/api/v1/namespaces", &body)
                .await?
                .expect(&format!("creating namespace {ns}"), StatusCode::CREATED)?;
        }
        for path in ["/version", "/api", "/apis", "/api/v1/namespaces"] {
            s.conn
                .get(path)
                .await?
                .expect(&format!("GET {path}"), StatusCode::OK)?;
        }
        Ok(())
    })
    .await?;
    tokio::time::sleep(plan.idle).await;
    let idle_rss = both(&mut subjects, "idle RSS", async |s| {
        s.server.rss_bytes().map(mib)
    })
    .await?;
    let etcd_pid = etcd_pid(&etcd.data_dir());
    let etcd_idle_rss = etcd_pid.and_then(|p| rss_bytes(p).ok()).map(mib);

    let latency = both(
        &mut subjects,
        "create and update latency under churn",
        async |s| write_latency(s, &plan).await,
    )
    .await?;
    let watch = both(&mut subjects, "watch delivery", async |s| {
        watch_delivery(s, plan.watch_events).await
    })
    .await?;
    let creates = both(&mut subjects, "creates with 32 clients", async |s| {
        create_rate(s, plan.clients, plan.create_for).await
    })
    .await?;
    let pod_load = both(
        &mut subjects,
        &format!("creating {} pods", plan.pods),
        async |s| create_pods(s, plan.pods, plan.clients).await,
    )
    .await?;
    let list_json = both(&mut subjects, "LIST pods as JSON", async |s| {
        list_pods(s, plan.pods, plan.lists, "application/json").await
    })
    .await?;
    let list_table = both(&mut subjects, "LIST pods as a Table", async |s| {
        list_pods(s, plan.pods, plan.lists, ACCEPT_TABLE).await
    })
    .await?;
    let loaded_rss = both(&mut subjects, "RSS with pods", async |s| {
        s.server.rss_bytes().map(mib)
    })
    .await?;
    let etcd_loaded_rss = etcd_pid.and_then(|p| rss_bytes(p).ok()).map(mib);

    let pods = group(plan.pods);
    let churn = plan.churn_per_sec;
    let pair = |f: &dyn Fn(usize) -> f64| (f(0), f(1));
    let mut rows = Vec::new();
    let mut row = |metric: String,
                   (ours, anchor): (f64, f64),
                   unit: &'static str,
                   better: Better,
                   target: Option<Goal>| {
        rows.push(Row {
            metric,
            ours,
            anchor,
            unit,
            better,
            target,
        });
    };
    let lower = Better::Lower;
    row(
        format!("cold start to serving (median of {})", plan.cold_starts),
        pair(&|i| median(cold[i].clone())),
        "ms",
        lower,
        Some(Goal::AtMost(1000.0)),
    );
    row(
        "idle RSS".into(),
        pair(&|i| idle_rss[i]),
        "MiB",
        lower,
        Some(Goal::AtMost(60.0)),
    );
    for (verb, which) in [("create", 0), ("update", 1)] {
        row(
            format!("ConfigMap {verb} p50, {churn} writes/s churn"),
            pair(&|i| ms(&latency[i][which], 0.5)),
            "ms",
            lower,
            None,
        );
        row(
            format!("ConfigMap {verb} p99, {churn} writes/s churn"),
            pair(&|i| ms(&latency[i][which], 0.99)),
            "ms",
            lower,
            Some(Goal::AtMost(10.0)),
        );
    }
    for (what, lists, target) in [
        ("JSON", &list_json, Some(Goal::AtMost(200.0))),
        ("Table", &list_table, None),
    ] {
        row(
            format!("LIST {pods} pods as {what} p50"),
            pair(&|i| ms(&lists[i].0, 0.5)),
            "ms",
            lower,
            None,
        );
        row(
            format!("LIST {pods} pods as {what} p99"),
            pair(&|i| ms(&lists[i].0, 0.99)),
            "ms",
            lower,
            target,
        );
    }
    row(
        "watch delivery p50 (write sent to event)".into(),
        pair(&|i| ms(&watch[i].0, 0.5)),
        "ms",
        lower,
        None,
    );
    row(
        "watch delivery p99 (write sent to event)".into(),
        pair(&|i| ms(&watch[i].0, 0.99)),
        "ms",
        lower,
        Some(Goal::AtMost(5.0)),
    );
    row(
        "watch delivery p99 (write answered to event)".into(),
        pair(&|i| ms(&watch[i].1, 0.99)),
        "ms",
        lower,
        None,
    );
    row(
        format!("ConfigMap creates/s, {} clients", plan.clients),
        pair(&|i| creates[i].0),
        "/s",
        Better::Higher,
        Some(Goal::AtLeast(2000.0)),
    );
    row(
        format!("ConfigMap create p99, {} clients", plan.clients),
        pair(&|i| ms(&creates[i].1, 0.99)),
        "ms",
        lower,
        None,
    );
    row(
        format!("Pod creates/s, {} clients", plan.clients),
        pair(&|i| pod_load[i]),
        "/s",
        Better::Higher,
        None,
    );
    row(
        format!("RSS with {pods} pods"),
        pair(&|i| loaded_rss[i]),
        "MiB",
        lower,
        None,
    );

    println!(
        "gantry-bench api{}: {}, {} cores, data in {}",
        if args.quick { " --quick" } else { "" },
        gantry.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.dir.display()
    );
    println!(
        "anchor: the same binary with --store {}, on {}",
        etcd.spec(),
        crate::store_bench::etcd_version()
    );
    println!(
        "clients: HTTP/2 over TLS with the admin certificate, one connection per client; \
         {PAYLOAD_BYTES}-byte ConfigMaps; {} create/update pairs, {} watch events, {} LISTs per format",
        plan.latency_ops, plan.watch_events, plan.lists
    );
    if let (Some(idle), Some(loaded)) = (etcd_idle_rss, etcd_loaded_rss) {
        println!(
            "etcd's own RSS (not in the etcd column): {idle:.1} MiB idle, {loaded:.1} MiB with {pods} pods"
        );
    }
    println!(
        "LIST body sizes: JSON {:.1} MiB, Table {:.1} MiB (embedded)\n",
        mib(list_json[0].1 as u64),
        mib(list_table[0].1 as u64)
    );
    print!("{}", table("embedded", "etcd", &rows));
    let missed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.met())
        .map(|r| &r.metric[..])
        .collect();
    if args.check && !missed.is_empty() {
        bail!("targets missed: {}", missed.join(", "));
    }
    Ok(())
}

/// Sequential ConfigMap creates, each followed by an update of the object
/// just created, while another connection writes `churn_per_sec` other
/// ConfigMaps a second. Returns the create and update latencies (µs).
async fn write_latency(s: &Subject, plan: &Plan) -> anyhow::Result<[Histogram<u64>; 2]> {
    let churn_conn = s.creds.connect().await?;
    let period = Duration::from_secs(1) / plan.churn_per_sec;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let churn = tokio::spawn(async move {
        let path = collection(NS_CHURN, "configmaps");
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut written = 0usize;
        loop {
            tokio::select! {
                _ = &mut stopped => return anyhow::Ok(written),
                _ = tick.tick() => {
                    let name = format!("churn-{written}");
                    churn_conn
                        .post(&path, &config_map(&name, 'c'))
                        .await?
                        .expect(&format!("churn: creating ConfigMap {name}"), StatusCode::CREATED)?;
                    written += 1;
                }
            }
        }
    });
    // Let the churn reach its pace first.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let path = collection(NS_LATENCY, "configmaps");
    let mut create = Histogram::<u64>::new(3)?;
    let mut update = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    for i in 0..plan.latency_ops {
        let name = format!("latency-{i}");
        let t = Instant::now();
        let mut object = s
            .conn
            .post(&path, &config_map(&name, 'a'))
            .await?
            .expect(&format!("creating ConfigMap {name}"), StatusCode::CREATED)?;
        create.record(micros(t))?;
        object["data"]["payload"] = json!("b".repeat(PAYLOAD_BYTES));
        let t = Instant::now();
        s.conn
            .put(&format!("{path}/{name}"), &object)
            .await?
            .expect(&format!("updating ConfigMap {name}"), StatusCode::OK)?;
        update.record(micros(t))?;
    }
    let elapsed = started.elapsed() + Duration::from_millis(500);
    let _ = stop.send(());
    let written = churn.await??;
    let pace = written as f64 / elapsed.as_secs_f64();
    if pace < 0.8 * f64::from(plan.churn_per_sec) {
        eprintln!(
            "gantry-bench api: warning: the churn on {} reached only {pace:.1} writes/s",
            s.name
        );
    }
    Ok([create, update])
}

/// Watch delivery: a watch on one namespace's ConfigMaps, then `n`
/// sequential creates there. Returns, per event, the time from just before
/// the create was sent and from when its response arrived (0 when the
/// event came first), in µs.
async fn watch_delivery(s: &Subject, n: usize) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let path = collection(NS_WATCH, "configmaps");
    let list = s
        .conn
        .get(&format!("{path}?limit=1"))
        .await?
        .expect("listing the watched ConfigMaps", StatusCode::OK)?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .context("the list has no resourceVersion")?
        .to_owned();
    // The watcher has a connection of its own, as a controller would.
    let watch_conn = s.creds.connect().await?;
    let mut body = watch_conn
        .stream(&format!("{path}?watch=1&resourceVersion={rv}"))
        .await?;
    let (tx, mut events) =
        tokio::sync::mpsc::unbounded_channel::<anyhow::Result<(String, Instant)>>();
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let arrived = Instant::now();
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.send(Err(anyhow::Error::from(e).context("reading the watch")));
                    return;
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let event = match serde_json::from_slice::<Value>(&line) {
                    Ok(event) if event["type"] != "ERROR" => event,
                    _ => {
                        let _ = tx.send(Err(anyhow::anyhow!(
                            "bad watch event: {}",
                            String::from_utf8_lossy(&line)
                        )));
                        return;
                    }
                };
                let name = event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(Ok((name, arrived)));
            }
        }
        let _ = tx.send(Err(anyhow::anyhow!("the watch ended")));
    });

    let mut from_sent = Histogram::<u64>::new(3)?;
    let mut from_answered = Histogram::<u64>::new(3)?;
    for i in 0..n {
        let name = format!("watched-{i}");
        let sent = Instant::now();
        s.conn
            .post(&path, &config_map(&name, 'w'))
            .await?
            .expect(&format!("creating ConfigMap {name}"), StatusCode::CREATED)?;
        let answered = Instant::now();
        let arrived = loop {
            let (seen, at) = tokio::time::timeout(EVENT_WITHIN, events.recv())
                .await
                .with_context(|| format!("no watch event for {name} within {EVENT_WITHIN:?}"))?
                .context("the watch reader stopped")??;
            if seen == name {
                break at;
            }
        };
        from_sent.record(arrived.saturating_duration_since(sent).as_micros() as u64)?;
        from_answered.record(arrived.saturating_duration_since(answered).as_micros() as u64)?;
    }
    reader.abort();
    drop(watch_conn);
    Ok((from_sent, from_answered))
}

/// ConfigMap creates from `clients` connections for `duration`; returns
/// creates/s and the latencies (µs).
async fn create_rate(
    s: &Subject,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(s.creds.connect().await?);
    }
    let path = Arc::new(collection(NS_LOAD, "configmaps"));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for (c, conn) in conns.into_iter().enumerate() {
        let path = Arc::clone(&path);
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3)?;
            let mut i = 0;
            while Instant::now() < deadline {
                let name = format!("load-{c}-{i}");
                let t = Instant::now();
                conn.post(&path, &config_map(&name, 'l'))
                    .await?
                    .expect(&format!("creating ConfigMap {name}"), StatusCode::CREATED)?;
                hist.record(micros(t))?;
                i += 1;
            }
            anyhow::Ok(hist)
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    for t in tasks {
        all.add(t.await??)?;
    }
    Ok((all.len() as f64 / started.elapsed().as_secs_f64(), all))
}

/// Creates `n` pods from `clients` connections; returns pods/s.
async fn create_pods(s: &Subject, n: usize, clients: usize) -> anyhow::Result<f64> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(s.creds.connect().await?);
    }
    let path = Arc::new(collection(NS_PODS, "pods"));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for conn in conns {
        let (path, next) = (Arc::clone(&path), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                conn.post(&path, &pod(i))
                    .await?
                    .expect(&format!("creating pod web-{i:05}"), StatusCode::CREATED)?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Lists the pods `reads` times, reading each whole body, after one untimed
/// read that checks all `n` are there. Returns the latencies (µs) and the
/// body's size.
async fn list_pods(
    s: &Subject,
    n: usize,
    reads: usize,
    accept: &str,
) -> anyhow::Result<(Histogram<u64>, usize)> {
    let path = collection(NS_PODS, "pods");
    let what = format!("LIST {path} ({accept})");
    let first = s
        .conn
        .send(Method::GET, &path, accept, Default::default())
        .await?;
    let size = first.body.len();
    let list = first.expect(&what, StatusCode::OK)?;
    let found = list["items"]
        .as_array()
        .or(list["rows"].as_array())
        .map_or(0, Vec::len);
    if found != n {
        bail!("{what}: {found} items, expected {n}");
    }
    let mut hist = Histogram::<u64>::new(3)?;
    for _ in 0..reads {
        let t = Instant::now();
        let reply = s
            .conn
            .send(Method::GET, &path, accept, Default::default())
            .await?;
        hist.record(micros(t))?;
        if reply.status != StatusCode::OK || reply.body.len() < size / 2 {
            reply.expect(&what, StatusCode::OK)?;
            bail!("{what}: the body shrank below half its first size");
        }
    }
    Ok((hist, size))
}

/// The path of a namespaced collection in the core group.
fn collection(namespace: &str, plural: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/{plural}")
}

/// A ConfigMap with one value of `PAYLOAD_BYTES` copies of `fill`.
fn config_map(name: &str, fill: char) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "gantry-bench"}},
        "data": {"payload": fill.to_string().repeat(PAYLOAD_BYTES)},
    })
}

/// A Pod as a Deployment's template would make it: one container with an
/// image, a port, an environment variable, requests and limits, and a
/// readiness probe; labels a Service and a Deployment would select on.
fn pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("web-{i:05}"),
            "labels": {
                "app.kubernetes.io/name": "web",
                "app.kubernetes.io/component": "frontend",
                "pod-template-hash": format!("7d9f{:02x}", i % 16),
            },
            "annotations": {"gantry-bench/index": i.to_string()},
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "registry.k8s.io/nginx-slim:0.27",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "LOG_LEVEL", "value": "info"}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http"},
                    "periodSeconds": 10,
                },
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    })
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

/// A quantile of a histogram of µs, in ms.
fn ms(hist: &Histogram<u64>, quantile: f64) -> f64 {
    hist.value_at_quantile(quantile) as f64 / 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// 10000 as "10,000".
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(10_000), "10,000");
        assert_eq!(group(500), "500");
    }

    #[test]
    fn quick_mode_is_small() {
        let quick = Plan::new(true);
        let full = Plan::new(false);
        assert!(quick.pods < full.pods && quick.watch_events < full.watch_events);
        assert_eq!(full.pods, 10_000);
        assert_eq!(full.churn_per_sec, 20);
    }
}
