//! `gantry-bench dns`: queries per second for Service names, as issue 6
//! asks (≥ 20,000/s), against the cluster DNS server of the `dns` crate
//! next to Debian's dnsmasq serving the same names from a hosts file, both
//! driven by Debian's `dnsperf` with the same query file, in alternating
//! rounds on the same machine.
//!
//! Ours runs in this process: a `dns::Server` on loopback with the records
//! of 1,000 ClusterIP Services (in 20 namespaces) built by `dns::Records`,
//! the records a cluster of that size gives it. dnsmasq is authoritative
//! for the same names (`--local=/cluster.local/`, `--addn-hosts`), with no
//! upstream. Before timing, a sample of names is asked of both and their
//! answers compared; a round whose answers are not all NOERROR fails.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use crate::report::{Better, Goal, Row, table};

/// What issue 6 asks of ours (queries/s for Service names).
const TARGET: f64 = 20_000.0;

/// Command-line arguments of `gantry-bench dns`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Short mode for the test suite: 1 round of 2 s per server.
    #[arg(long)]
    quick: bool,
    /// Exit with an error if a figure misses its target.
    #[arg(long)]
    check: bool,
    /// Services loaded into both servers.
    #[arg(long, default_value_t = 1_000)]
    services: usize,
}

/// A dnsperf run's figures.
#[derive(Debug, Clone, Copy)]
struct Perf {
    qps: f64,
    latency_ms: f64,
}

/// The dnsmasq child, killed and reaped on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(services: usize) -> Vec<(String, Ipv4Addr)> {
    (0..services)
        .map(|i| {
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 16, 0)) + i as u32 + 1);
            (format!("svc-{i}.ns-{}.svc.cluster.local", i % 20), ip)
        })
        .collect()
}

fn services(names: &[(String, Ipv4Addr)]) -> anyhow::Result<Vec<Service>> {
    let services = names
        .iter()
        .map(|(name, ip)| {
            let mut parts = name.split('.');
            let (svc, ns) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            serde_json::from_value(json!({
                "metadata": {"name": svc, "namespace": ns},
                "spec": {"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
            }))
        })
        .collect::<Result<_, _>>()?;
    Ok(services)
}

fn records(services: &[Service]) -> anyhow::Result<dns::Records> {
    let refs: Vec<&Service> = services.iter().collect();
    let namespaces: Vec<String> = (0..20).map(|i| format!("ns-{i}")).collect();
    let ns_refs: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    Ok(dns::Records::build(
        &Name::from_ascii("cluster.local")?,
        5,
        1,
        dns::Objects {
            services: &refs,
            slices: &[],
            namespaces: &ns_refs,
        },
    ))
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_dnsmasq(dir: &Path, names: &[(String, Ipv4Addr)]) -> anyhow::Result<Dnsmasq> {
    let hosts = dir.join("hosts");
    let mut f = std::fs::File::create(&hosts)?;
    for (name, ip) in names {
        writeln!(f, "{ip} {name}")?;
    }
    drop(f);
    let port = free_udp_port()?;
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--local=/cluster.local/",
            "--cache-size=10000",
            "--user=root",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting dnsmasq (Debian's dnsmasq-base; ./dev installs it)")?;
    Ok(Dnsmasq {
        child,
        addr: ([127, 0, 0, 1], port).into(),
    })
}

/// Asks `server` for `name`'s A records, retrying while it starts.
fn resolve(server: SocketAddr, name: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
    let bytes = q.to_vec()?;
    let mut buf = [0u8; 4096];
    for _ in 0..50 {
        socket.send_to(&bytes, server)?;
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            let m = Message::from_bytes(&buf[..n])?;
            let mut ips: Vec<Ipv4Addr> = m
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            ips.sort();
            return Ok(ips);
        }
    }
    bail!("{server} did not answer {name}")
}

fn dnsperf(server: SocketAddr, queries: &Path, seconds: u64) -> anyhow::Result<Perf> {
    // One sending thread, 100 queries in flight: the generator takes one
    // core, the server under test the other.
    let out = Command::new("dnsperf")
        .args([
            "-s",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("-d")
        .arg(queries)
        .args([
            "-l",
            &seconds.to_string(),
            "-T",
            "1",
            "-c",
            "1",
            "-q",
            "100",
        ])
        .output()
        .context("running dnsperf (Debian's dnsperf; ./dev installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("dnsperf against {server} failed: {text}");
    }
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|rest| rest.trim().to_owned())
    };
    let codes = field("Response codes:").unwrap_or_default();
    if !codes.starts_with("NOERROR") || codes.contains(',') {
        bail!("{server} answered other than NOERROR: {codes}");
    }
    let qps: f64 = field("Queries per second:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no rate in dnsperf's output: {text}"))?;
    let latency: f64 = field("Average Latency (s):")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no latency in dnsperf's output: {text}"))?;
    Ok(Perf {
        qps,
        latency_ms: latency * 1000.0,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (rounds, seconds) = if args.quick { (1, 2) } else { (3, 10) };
    let dir = tempfile::Builder::new()
        .prefix(&format!("gantry-bench-dns-{}-", std::process::id()))
        .tempdir_in(std::env::temp_dir())?;
    let names = names(args.services);

    let server = dns::Server::start(dns::ServerConfig {
        upstreams: Some(Vec::new()),
        ..dns::ServerConfig::new("127.0.0.1:0".parse()?)
    })
    .await?;
    // What a change costs the server: the whole set rebuilt (median of 5).
    let objects = services(&names)?;
    let mut builds = Vec::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let r = records(&objects)?;
        builds.push(started.elapsed().as_secs_f64() * 1000.0);
        server.records().replace(r);
    }
    let build_ms = median(builds);
    let ours = server.local_addrs()[0];
    let anchor = start_dnsmasq(dir.path(), &names)?;

    let version = Command::new("dnsmasq").arg("--version").output()?;
    let version = String::from_utf8_lossy(&version.stdout)
        .lines()
        .next()
        .unwrap_or("dnsmasq")
        .to_owned();
    let perf_version = Command::new("dnsperf").arg("-h").output()?;
    let perf_version = String::from_utf8_lossy(&perf_version.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&perf_version.stderr).lines())
        .find_map(|l| l.trim().strip_prefix("Version "))
        .map(|v| format!("dnsperf {v}"))
        .unwrap_or_else(|| "dnsperf".into());

    // The same answers from both, or the comparison means nothing.
    let sample: Vec<(String, Ipv4Addr)> = names
        .iter()
        .step_by((names.len() / 20).max(1))
        .cloned()
        .collect();
    let check = sample.clone();
    let (o, a) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut o = Vec::new();
        let mut a = Vec::new();
        for (name, _) in &check {
            o.push(resolve(ours, name)?);
            a.push(resolve(anchor.addr, name)?);
        }
        Ok((o, a))
    })
    .await??;
    for (((name, ip), o), a) in sample.iter().zip(&o).zip(&a) {
        if o != &vec![*ip] || a != &vec![*ip] {
            bail!("{name}: ours answered {o:?}, dnsmasq {a:?}, expected {ip}");
        }
    }

    let queries = dir.path().join("queries");
    let mut f = std::fs::File::create(&queries)?;
    for (name, _) in &names {
        writeln!(f, "{name} A")?;
    }
    drop(f);

    println!(
        "gantry-bench dns: {rounds} round(s) of {seconds}s per server, {} Services ({} names), {} cores",
        args.services,
        names.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "records of {} Services built in {build_ms:.2} ms (a change rebuilds them all)",
        args.services
    );
    println!("anchor: {version}, authoritative for cluster.local from a hosts file, no upstream");
    println!(
        "load: {perf_version}, one thread, 100 queries in flight, each Service's A record in turn, over UDP on loopback"
    );
    println!();

    let mut ours_runs = Vec::new();
    let mut anchor_runs = Vec::new();
    for _ in 0..rounds {
        let q = queries.clone();
        let addr = anchor.addr;
        let (o, a) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Perf, Perf)> {
            Ok((dnsperf(ours, &q, seconds)?, dnsperf(addr, &q, seconds)?))
        })
        .await??;
        ours_runs.push(o);
        anchor_runs.push(a);
    }
    drop(anchor);
    server.shutdown().await;

    let qps = |runs: &[Perf]| median(runs.iter().map(|p| p.qps).collect());
    let latency = |runs: &[Perf]| median(runs.iter().map(|p| p.latency_ms).collect());
    let rows = [
        Row {
            metric: format!("queries/s, Service A records, {} Services", args.services),
            ours: qps(&ours_runs),
            anchor: qps(&anchor_runs),
            unit: "/s",
            better: Better::Higher,
            target: Some(Goal::AtLeast(TARGET)),
        },
        Row {
            metric: "average latency, 100 in flight".into(),
            ours: latency(&ours_runs),
            anchor: latency(&anchor_runs),
            unit: "ms",
            better: Better::Lower,
            target: None,
        },
    ];
    println!("{}", table("gantry dns", "dnsmasq", &rows));
    if args.check && rows.iter().any(|r| !r.met()) {
        bail!("a figure missed its target");
    }
    Ok(())
}
