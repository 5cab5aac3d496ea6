//! `gantry-bench store`: the embedded store next to a real single-member etcd
//! (Debian's), both on the same disk with their default fsync policy (a
//! write is flushed before it is acknowledged).
//!
//! etcd is driven with `etcd-client` directly, not through Gantry's
//! `EtcdStore`, so the anchor is etcd at its best; its reads are serializable
//! (no consensus round), the fast kind. Each figure is the median of several
//! rounds, with the two stores measured alternately so that the machine's
//! noise hits both alike.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use store::{
    Compare, CompareOp, EmbeddedOptions, EmbeddedStore, KeyRange, PutRequest, RangeRequest, Store,
    TxnOp, TxnRequest, WatchRequest,
};
use testkit::EtcdServer;

use crate::report::{Better, Goal, Row, table};

/// Command-line arguments of `gantry-bench store`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Short mode for the test suite: one round of one second per figure.
    #[arg(long)]
    quick: bool,
    /// Exit with an error if a figure misses its target.
    #[arg(long)]
    check: bool,
    /// Directory (on the disk to measure) for both stores' data.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
}

const KEYS: usize = 1000;
const VALUE_BYTES: usize = 256;
const ETCD_CONNECTIONS: usize = 4;

/// One of the two stores under test.
enum Target {
    Embedded(Arc<EmbeddedStore>),
    Etcd(Vec<etcd_client::Client>),
}

impl Target {
    fn etcd(&self, client: usize) -> etcd_client::Client {
        match self {
            Target::Etcd(clients) => clients[client % clients.len()].clone(),
            Target::Embedded(_) => unreachable!("not an etcd target"),
        }
    }

    async fn put(&self, client: usize, key: String, value: Bytes) -> anyhow::Result<i64> {
        Ok(match self {
            Target::Embedded(s) => s.put(PutRequest::new(key, value)).await?.revision,
            Target::Etcd(_) => {
                let resp = self.etcd(client).put(key, value.to_vec(), None).await?;
                resp.header().map_or(0, |h| h.revision())
            }
        })
    }

    async fn get(&self, client: usize, key: String) -> anyhow::Result<()> {
        match self {
            Target::Embedded(s) => {
                let r = s.range(RangeRequest::key(key)).await?;
                anyhow::ensure!(r.count == 1, "key missing");
            }
            Target::Etcd(_) => {
                let opts = etcd_client::GetOptions::new().with_serializable();
                let r = self.etcd(client).get(key, Some(opts)).await?;
                anyhow::ensure!(r.count() == 1, "key missing");
            }
        }
        Ok(())
    }

    /// Compare-and-swap on `key` expected at `rev`; returns the new revision.
    async fn cas(&self, client: usize, key: String, rev: i64, value: Bytes) -> anyhow::Result<i64> {
        match self {
            Target::Embedded(s) => {
                let txn = TxnRequest::when(vec![Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    rev,
                )])
                .and_then(vec![TxnOp::Put(PutRequest::new(key, value))]);
                let r = s.txn(txn).await?;
                anyhow::ensure!(r.succeeded, "compare failed");
                Ok(r.revision)
            }
            Target::Etcd(_) => {
                use etcd_client::{Compare as C, CompareOp as O, Txn, TxnOp as T};
                let txn = Txn::new()
                    .when([C::mod_revision(key.clone(), O::Equal, rev)])
                    .and_then([T::put(key, value.to_vec(), None)]);
                let r = self.etcd(client).txn(txn).await?;
                anyhow::ensure!(r.succeeded(), "compare failed");
                Ok(r.header().map_or(0, |h| h.revision()))
            }
        }
    }
}

fn key(i: usize) -> String {
    format!("/bench/key/{:04}", i % KEYS)
}

/// Runs `clients` loops of `op` for `duration`; returns ops/s and latencies (µs).
async fn drive<F, Fut>(
    clients: usize,
    duration: Duration,
    op: F,
) -> anyhow::Result<(f64, Histogram<u64>)>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut i = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                op(c, c * 1_000_003 + i).await?;
                hist.record(t.elapsed().as_micros() as u64).expect("record");
                i += 1;
            }
            anyhow::Ok(hist)
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    for t in tasks {
        all.add(t.await??)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((all.len() as f64 / elapsed, all))
}

async fn writes(t: &Arc<Target>, clients: usize, d: Duration) -> anyhow::Result<f64> {
    let value = Bytes::from(vec![b'w'; VALUE_BYTES]);
    let t = Arc::clone(t);
    let (rate, _) = drive(clients, d, move |c, i| {
        let (t, value) = (Arc::clone(&t), value.clone());
        async move { t.put(c, key(i), value).await.map(|_| ()) }
    })
    .await?;
    Ok(rate)
}

async fn reads(t: &Arc<Target>, clients: usize, d: Duration) -> anyhow::Result<f64> {
    let t = Arc::clone(t);
    let (rate, _) = drive(clients, d, move |c, i| {
        let t = Arc::clone(&t);
        async move { t.get(c, key(i)).await }
    })
    .await?;
    Ok(rate)
}

/// Transaction latency (p50, p99 in ms): each client swaps its own key.
async fn txns(t: &Arc<Target>, clients: usize, d: Duration) -> anyhow::Result<(f64, f64)> {
    let value = Bytes::from(vec![b't'; VALUE_BYTES]);
    let mut revs = Vec::new();
    for c in 0..clients {
        revs.push(Arc::new(std::sync::atomic::AtomicI64::new(
            t.put(c, format!("/bench/txn/{c}"), value.clone()).await?,
        )));
    }
    let t = Arc::clone(t);
    let revs = Arc::new(revs);
    let (_, hist) = drive(clients, d, move |c, _| {
        let (t, value, revs) = (Arc::clone(&t), value.clone(), Arc::clone(&revs));
        async move {
            let rev = revs[c].load(std::sync::atomic::Ordering::Relaxed);
            let new = t.cas(c, format!("/bench/txn/{c}"), rev, value).await?;
            revs[c].store(new, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    })
    .await?;
    Ok((
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    ))
}

/// Watch delivery: one writer puts `n` keys one after another; a watcher
/// notes when each event arrives. Delivery is arrival minus the moment the
/// put was acknowledged (the commit), counted as 0 when the event came first.
/// Returns (p50, p99) in ms.
async fn watch_delivery(t: &Arc<Target>, n: usize) -> anyhow::Result<(f64, f64)> {
    let prefix = "/bench/watch/";
    let (arrived_tx, mut arrived_rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Instant)>();
    let ready = match &**t {
        Target::Embedded(s) => {
            let mut w = s.watch(WatchRequest::new(KeyRange::prefix(prefix))).await?;
            tokio::spawn(async move {
                while let Some(Ok(batch)) = w.next().await {
                    let now = Instant::now();
                    for e in batch.events {
                        let _ = arrived_tx.send((e.kv.mod_revision, now));
                    }
                }
            })
        }
        Target::Etcd(_) => {
            let opts = etcd_client::WatchOptions::new().with_prefix();
            let mut stream = t.etcd(0).watch(prefix, Some(opts)).await?;
            tokio::spawn(async move {
                while let Some(Ok(resp)) = stream.next().await {
                    let now = Instant::now();
                    for e in resp.events() {
                        if let Some(kv) = e.kv() {
                            let _ = arrived_tx.send((kv.mod_revision(), now));
                        }
                    }
                }
            })
        }
    };
    // Let the watch get established before writing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let value = Bytes::from(vec![b'e'; VALUE_BYTES]);
    let mut acked = std::collections::HashMap::with_capacity(n);
    for i in 0..n {
        let rev = t
            .put(0, format!("{prefix}{}", i % 100), value.clone())
            .await?;
        acked.insert(rev, Instant::now());
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while hist.len() < n as u64 {
        let Ok(Some((rev, at))) = tokio::time::timeout_at(deadline.into(), arrived_rx.recv()).await
        else {
            bail!("watch delivered {} of {n} events", hist.len());
        };
        if let Some(ack) = acked.get(&rev) {
            hist.record(at.saturating_duration_since(*ack).as_micros() as u64)?;
        }
    }
    ready.abort();
    Ok((
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    ))
}

/// Flushed 512-byte writes per second straight to a file in `dir`, one at a
/// time (`O_DIRECT | O_DSYNC` `pwrite`s into a preallocated file, the
/// cheapest durable write this disk offers): the ceiling for one client of
/// any store that flushes each write before acknowledging it.
fn flush_floor(dir: &std::path::Path, d: Duration) -> anyhow::Result<f64> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    const SECTOR: usize = 512;
    const SLOTS: u64 = 8192;
    let file = tempfile::NamedTempFile::new_in(dir)?;
    file.as_file().set_len(SLOTS * SECTOR as u64)?;
    file.as_file()
        .write_all_at(&vec![0; SLOTS as usize * SECTOR], 0)?;
    file.as_file().sync_all()?;
    let direct = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(file.path())
        .with_context(|| format!("opening {} for direct writes", file.path().display()))?;
    // O_DIRECT wants a sector-aligned buffer: take an aligned window of a
    // larger one.
    let raw = vec![b'f'; 2 * 4096];
    let start = raw.as_ptr().align_offset(4096);
    let buf = &raw[start..start + SECTOR];
    let began = Instant::now();
    let mut n = 0u64;
    while began.elapsed() < d {
        direct.write_all_at(buf, (n % SLOTS) * SECTOR as u64)?;
        n += 1;
    }
    Ok(n as f64 / began.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Measures `f` on both targets, alternating, `rounds` times; medians.
async fn both<F, Fut>(targets: &[Arc<Target>; 2], rounds: usize, f: F) -> anyhow::Result<(f64, f64)>
where
    F: Fn(Arc<Target>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<f64>>,
{
    let (mut ours, mut anchor) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(f(Arc::clone(&targets[0])).await?);
        anchor.push(f(Arc::clone(&targets[1])).await?);
    }
    Ok((median(ours), median(anchor)))
}

/// Like [`both`] for figures that come in (p50, p99) pairs.
async fn both_pair<F, Fut>(
    targets: &[Arc<Target>; 2],
    rounds: usize,
    f: F,
) -> anyhow::Result<((f64, f64), (f64, f64))>
where
    F: Fn(Arc<Target>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(f64, f64)>>,
{
    let (mut o50, mut o99, mut a50, mut a99) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (p50, p99) = f(Arc::clone(&targets[0])).await?;
        o50.push(p50);
        o99.push(p99);
        let (p50, p99) = f(Arc::clone(&targets[1])).await?;
        a50.push(p50);
        a99.push(p99);
    }
    Ok(((median(o50), median(o99)), (median(a50), median(a99))))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (rounds, d, events) = if args.quick {
        (1, Duration::from_millis(700), 200)
    } else {
        (3, Duration::from_secs(4), 2000)
    };
    let data = tempfile::Builder::new()
        .prefix("gantry-bench-store-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("creating a data directory in {}", args.dir.display()))?;
    let embedded = EmbeddedStore::open(data.path().join("embedded"), EmbeddedOptions::default())
        .await
        .context("opening the embedded store")?;
    let etcd = EtcdServer::start().context("starting etcd")?;
    let mut clients = Vec::new();
    for _ in 0..ETCD_CONNECTIONS {
        clients.push(etcd_client::Client::connect([etcd.endpoint()], None).await?);
    }
    let targets = [
        Arc::new(Target::Embedded(Arc::new(embedded))),
        Arc::new(Target::Etcd(clients)),
    ];
    // Both stores hold the keys the read test reads.
    for t in &targets {
        let value = Bytes::from(vec![b'r'; VALUE_BYTES]);
        for i in 0..KEYS {
            t.put(0, key(i), value.clone()).await?;
        }
    }

    let mut rows = Vec::new();
    let rate = |metric: &str, (ours, anchor): (f64, f64), target: f64| Row {
        metric: metric.to_owned(),
        ours,
        anchor,
        unit: "/s",
        better: Better::Higher,
        target: Some(Goal::Ratio(target)),
    };
    let mut floor = Vec::new();
    for (clients, target) in [(1, 5.0), (64, 2.0)] {
        if clients == 1 {
            for _ in 0..rounds {
                let dir = data.path().to_owned();
                floor.push(tokio::task::spawn_blocking(move || flush_floor(&dir, d)).await??);
            }
        }
        let r = both(
            &targets,
            rounds,
            |t| async move { writes(&t, clients, d).await },
        )
        .await?;
        rows.push(rate(&format!("writes, {clients} client(s)"), r, target));
    }
    for clients in [1, 64] {
        let r = both(
            &targets,
            rounds,
            |t| async move { reads(&t, clients, d).await },
        )
        .await?;
        rows.push(rate(
            &format!("serializable reads, {clients} client(s)"),
            r,
            10.0,
        ));
    }
    for clients in [1, 64] {
        let ((o50, o99), (a50, a99)) =
            both_pair(
                &targets,
                rounds,
                |t| async move { txns(&t, clients, d).await },
            )
            .await?;
        for (q, ours, anchor) in [("p50", o50, a50), ("p99", o99, a99)] {
            rows.push(Row {
                metric: format!("txn latency {q}, {clients} client(s)"),
                ours,
                anchor,
                unit: "ms",
                better: Better::Lower,
                target: None,
            });
        }
    }
    let ((o50, o99), (a50, a99)) = both_pair(&targets, rounds, |t| async move {
        watch_delivery(&t, events).await
    })
    .await?;
    rows.push(Row {
        metric: "watch delivery p50 (commit to event)".into(),
        ours: o50,
        anchor: a50,
        unit: "ms",
        better: Better::Lower,
        target: None,
    });
    rows.push(Row {
        metric: "watch delivery p99 (commit to event)".into(),
        ours: o99,
        anchor: a99,
        unit: "ms",
        better: Better::Lower,
        target: Some(Goal::AtMost(5.0)),
    });

    println!(
        "gantry-bench store{}: {} round(s) of {:?} per figure, {VALUE_BYTES}-byte values, {} cores, data in {}",
        if args.quick { " --quick" } else { "" },
        rounds,
        d,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.dir.display()
    );
    println!("anchor: {}", etcd_version());
    println!(
        "disk: {:.0} flushed 512-byte writes/s one at a time (O_DIRECT|O_DSYNC pwrite, median): the ceiling for 1 client\n",
        median(floor)
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

pub(crate) fn etcd_version() -> String {
    std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.replace("etcd Version: ", "etcd "))
        })
        .map(|v| format!("{v} (Debian etcd-server), single member, default fsync"))
        .unwrap_or_else(|| "etcd (version unknown)".into())
}
