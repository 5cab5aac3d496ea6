//! `gantry-bench ingress`: requests per second and p99 latency through the node's Ingress
//! proxy, next to Debian's nginx as a reverse proxy to the same backend pods, both driven
//! by Debian's `wrk` with the same connections and duration, in alternating rounds, as
//! issue 6 asks (ours ≥ nginx's requests/s, p99 ≤ nginx's).
//!
//! The real `gantry up` runs with its Ingress ports on free ports; the backends are pods of
//! the nginx test image (its welcome page) behind a Service and an Ingress for the host
//! `bench.test`. nginx runs from a temporary configuration: `worker_processes 2`, an
//! upstream of the same pods' addresses with `keepalive`, HTTP/1.1 to them and the same
//! forwarded headers ours sets. Before timing, both must answer the welcome page.
//!
//! In the same run, the Service proxy's cost (issue 6: at most 10% of throughput): wrk
//! from the node against the ClusterIP of a Service whose only endpoint is the first
//! backend pod, next to wrk against that pod's address directly, in alternating rounds.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::StatusCode;
use serde_json::json;

use crate::pods_bench::{self, NAMESPACE, Node, NodeKind, free_port};
use crate::report::{Better, Goal, Row, table};

/// The host the Ingress serves.
const HOST: &str = "bench.test";
/// How long the backends may take to run and be routed.
const READY_WITHIN: Duration = Duration::from_secs(90);

/// Command-line arguments of `gantry-bench ingress`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Short mode for the test suite: one round of 3 s per proxy.
    #[arg(long)]
    quick: bool,
    /// Exit with an error if a figure misses its target.
    #[arg(long)]
    check: bool,
    /// The `gantry` binary to run; by default the one next to gantry-bench.
    #[arg(long)]
    gantry: Option<PathBuf>,
    /// Directory for the node's data directory and nginx's configuration.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Backend pods.
    #[arg(long, default_value_t = 2)]
    backends: usize,
    /// wrk's open connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of each wrk run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Rounds (one run of each proxy per round); the median round counts.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// RUST_LOG for `gantry up`.
    #[arg(long)]
    rust_log: Option<String>,
}

/// One wrk run's figures.
#[derive(Clone, Copy, Debug)]
struct Run {
    requests_per_second: f64,
    p99_ms: f64,
    /// Requests answered in the run.
    requests: u64,
    /// CPU time (user and system) the proxy used per request, in µs, where it is measured.
    cpu_us: Option<f64>,
}

/// Whose CPU time a run is charged: the threads of a process whose names start with a
/// prefix (the ingress proxy's workers in `gantry up`), or a process and its children
/// (nginx's master and workers).
#[derive(Clone, Copy, Debug)]
enum Meter {
    Threads(u32, &'static str),
    Tree(u32),
    None,
}

impl Meter {
    /// The CPU time used so far, in clock ticks; `None` when nothing is measured.
    fn ticks(self) -> Option<u64> {
        match self {
            Meter::None => None,
            Meter::Threads(pid, prefix) => {
                let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
                Some(
                    tasks
                        .flatten()
                        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
                        .filter_map(|stat| {
                            let (name, fields) = split_stat(&stat)?;
                            name.starts_with(prefix).then(|| cpu_of(&fields))
                        })
                        .sum(),
                )
            }
            Meter::Tree(pid) => {
                let procs = std::fs::read_dir("/proc").ok()?;
                Some(
                    procs
                        .flatten()
                        .filter_map(|p| {
                            let id: u32 = p.file_name().to_str()?.parse().ok()?;
                            let stat = std::fs::read_to_string(p.path().join("stat")).ok()?;
                            let (_, fields) = split_stat(&stat)?;
                            let parent: u32 = fields.get(1)?.parse().ok()?;
                            (id == pid || parent == pid).then(|| cpu_of(&fields))
                        })
                        .sum(),
                )
            }
        }
    }
}

/// A `/proc/…/stat` line's command name and the fields after it (state first).
fn split_stat(stat: &str) -> Option<(&str, Vec<&str>)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let fields = stat.get(close + 2..)?.split_whitespace().collect();
    Some((stat.get(open + 1..close)?, fields))
}

/// utime + stime from the fields after the command name.
fn cpu_of(fields: &[&str]) -> u64 {
    [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum()
}

pub async fn run(mut args: Args) -> anyhow::Result<()> {
    if args.quick {
        args.seconds = 3;
        args.rounds = 1;
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("gantry-bench ingress runs pods: it must run as root");
    }
    for (tool, package) in [("wrk", "wrk"), ("nginx", "nginx")] {
        if Command::new(tool).arg("-v").output().is_err() {
            bail!("{tool} not found: install Debian's {package} (./dev test does)");
        }
    }
    let gantry = match &args.gantry {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("finding gantry-bench's own path")?
            .with_file_name("gantry"),
    };
    let mut names = pods_bench::Names::new(std::process::id(), NodeKind::Up);
    let (http, https) = (
        free_port(Ipv4Addr::UNSPECIFIED)?,
        free_port(Ipv4Addr::UNSPECIFIED)?,
    );
    names.ingress_ports = Some((http, https));
    eprintln!("gantry-bench ingress: starting gantry up (ingress on port {http})");
    let node_args = pods_bench::Args::for_node(
        Some(gantry.clone()),
        args.dir.clone(),
        args.rust_log.clone(),
    );
    let mut node = Node::start(NodeKind::Up, &gantry, &node_args, &names, None).await?;
    let result = async {
        let image = testkit::images::nginx().context("building the nginx test image")?;
        node.import(&gantry, &image, "nginx.tar").await?;
        node.prepare().await?.stop();
        let (backends, cluster_ip) = start_backends(&mut node, args.backends).await?;
        let gantry_pid = node.server_pid()?;
        let proxies = measure(&args, http, gantry_pid, &backends).await?;
        let service = measure_cluster_ip(&args, cluster_ip, backends[0]).await?;
        Ok::<_, anyhow::Error>((proxies, service))
    }
    .await;
    let result = match result {
        Ok(r) => Ok(r),
        Err(e) => Err(node.explain(e)),
    };
    let leftovers = node.shut_down().await;
    let ((ours, nginx), (through_service, direct)) = result?;
    let leftovers = leftovers?;
    if !leftovers.is_empty() {
        bail!("the node left these behind:\n  {}", leftovers.join("\n  "));
    }

    println!(
        "gantry-bench ingress{}: {} backend pods (nginx), wrk -t2 -c{} -d{}s, median of {} \
         round(s), {} cores",
        if args.quick { " --quick" } else { "" },
        args.backends,
        args.connections,
        args.seconds,
        args.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let rows = vec![
        Row {
            metric: "requests/s".into(),
            ours: ours.requests_per_second,
            anchor: nginx.requests_per_second,
            unit: "/s",
            better: Better::Higher,
            target: Some(Goal::Ratio(1.0)),
        },
        Row {
            metric: "p99 latency".into(),
            ours: ours.p99_ms,
            anchor: nginx.p99_ms,
            unit: "ms",
            better: Better::Lower,
            target: Some(Goal::Ratio(1.0)),
        },
        Row {
            metric: "proxy CPU per request".into(),
            ours: ours.cpu_us.unwrap_or(0.0),
            anchor: nginx.cpu_us.unwrap_or(0.0),
            unit: "µs",
            better: Better::Lower,
            target: None,
        },
    ];
    print!("{}", table("gantry ingress", "nginx", &rows));
    let service_rows = vec![
        Row {
            metric: "requests/s, one pod".into(),
            ours: through_service.requests_per_second,
            anchor: direct.requests_per_second,
            unit: "/s",
            better: Better::Higher,
            target: Some(Goal::Ratio(0.9)),
        },
        Row {
            metric: "p99 latency, one pod".into(),
            ours: through_service.p99_ms,
            anchor: direct.p99_ms,
            unit: "ms",
            better: Better::Lower,
            target: None,
        },
    ];
    println!();
    print!("{}", table("via ClusterIP", "pod IP", &service_rows));
    let missed: Vec<String> = rows
        .iter()
        .chain(&service_rows)
        .filter(|r| !r.met())
        .map(|r| r.metric.clone())
        .collect();
    if args.check && !missed.is_empty() {
        bail!("targets missed: {}", missed.join(", "));
    }
    Ok(())
}

/// Creates the backend pods, their Service and the Ingress, and the Service `first` of
/// the first pod alone; waits until the pods run and answers their addresses (the first
/// pod's first) and `first`'s ClusterIP.
async fn start_backends(
    node: &mut Node,
    n: usize,
) -> anyhow::Result<(Vec<SocketAddr>, SocketAddr)> {
    let conn = node.creds()?.connect().await?;
    let ns = format!("/api/v1/namespaces/{NAMESPACE}");
    for i in 0..n {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": format!("backend-{i}"),
                "labels": {"app": "bench-backend", "backend": i.to_string()},
            },
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "nginx",
                    "image": "nginx:1.13.1",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                }],
            },
        });
        conn.post(&format!("{ns}/pods"), &pod)
            .await?
            .expect("creating a backend pod", StatusCode::CREATED)?;
    }
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "backend"},
        "spec": {"selector": {"app": "bench-backend"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    });
    conn.post(&format!("{ns}/services"), &service)
        .await?
        .expect("creating the Service", StatusCode::CREATED)?;
    let first = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "first"},
        "spec": {"selector": {"app": "bench-backend", "backend": "0"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    });
    let first = conn
        .post(&format!("{ns}/services"), &first)
        .await?
        .expect("creating the Service of the first pod", StatusCode::CREATED)?;
    let cluster_ip: Ipv4Addr = first["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .with_context(|| format!("no IPv4 clusterIP in {first}"))?;
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "bench"},
        "spec": {"rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "backend", "port": {"number": 80}}}}]}}]},
    });
    conn.post(
        &format!("/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/ingresses"),
        &ingress,
    )
    .await?
    .expect("creating the Ingress", StatusCode::CREATED)?;

    let started = Instant::now();
    loop {
        let list = conn
            .get(&format!("{ns}/pods?labelSelector=app%3Dbench-backend"))
            .await?
            .expect("listing the backend pods", StatusCode::OK)?;
        let mut ready: Vec<(bool, SocketAddr)> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .filter_map(|p| {
                let ip: Ipv4Addr = p["status"]["podIP"].as_str()?.parse().ok()?;
                Some((
                    p["metadata"]["name"] != "backend-0",
                    SocketAddr::from((ip, 80)),
                ))
            })
            .collect();
        if ready.len() == n {
            ready.sort();
            let addrs = ready.into_iter().map(|(_, a)| a).collect();
            return Ok((addrs, SocketAddr::from((cluster_ip, 80))));
        }
        if started.elapsed() > READY_WITHIN {
            node.check_running()?;
            bail!(
                "{} of {n} backend pods ready after {READY_WITHIN:?}",
                ready.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status line of `GET /` with `Host: bench.test` at `addr`, or why not.
fn probe(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {HOST}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or_default().to_owned())
}

/// Waits until `addr` answers 200 with the welcome page.
async fn until_served(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let last = probe(addr);
        if last.as_ref().is_ok_and(|l| l.contains(" 200 ")) {
            return Ok(());
        }
        if started.elapsed() > READY_WITHIN {
            bail!("{what} at {addr} did not answer 200 (last: {last:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// nginx as a reverse proxy, stopped and reaped on drop (its directory with it).
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    /// SIGTERM, nginx's fast shutdown: the master stops its workers, then exits (a
    /// SIGKILL would leave the workers running). SIGKILL if it has not gone within 5 s.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(
    dir: &std::path::Path,
    backends: &[SocketAddr],
    connections: usize,
) -> anyhow::Result<Nginx> {
    let dir = tempfile::Builder::new()
        .prefix("gantry-bench-nginx-")
        .tempdir_in(dir)?;
    let port = free_port(Ipv4Addr::LOCALHOST)?;
    let root = dir.path().display();
    let servers: String = backends
        .iter()
        .map(|b| format!("        server {b};\n"))
        .collect();
    let conf = format!(
        "worker_processes 2;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream backends {{
{servers}        keepalive {connections};
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    Ok(Nginx {
        child,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        _dir: dir,
    })
}

/// Runs wrk against both proxies in alternating rounds; answers the median round of each,
/// with the CPU each proxy used (gantry's `ingress-*` threads, nginx's processes).
async fn measure(
    args: &Args,
    http: u16,
    gantry_pid: u32,
    backends: &[SocketAddr],
) -> anyhow::Result<(Run, Run)> {
    let ours = SocketAddr::from((Ipv4Addr::LOCALHOST, http));
    until_served(ours, "gantry's ingress").await?;
    let nginx = start_nginx(&args.dir, backends, args.connections)?;
    until_served(nginx.addr, "nginx").await?;
    alternate(
        args,
        ("ours", ours, Meter::Threads(gantry_pid, "ingress-")),
        ("nginx", nginx.addr, Meter::Tree(nginx.child.id())),
    )
}

/// Runs wrk from the node against the ClusterIP of the first pod's Service and against
/// that pod directly, in alternating rounds; answers the median round of each.
async fn measure_cluster_ip(
    args: &Args,
    cluster_ip: SocketAddr,
    pod: SocketAddr,
) -> anyhow::Result<(Run, Run)> {
    until_served(cluster_ip, "the first pod's ClusterIP").await?;
    alternate(
        args,
        ("ClusterIP", cluster_ip, Meter::None),
        ("pod IP", pod, Meter::None),
    )
}

/// A short untimed warm-up of each (pools filled, pages cached), then `args.rounds`
/// rounds of one wrk run against each; answers the median round of each.
fn alternate(
    args: &Args,
    (a_name, a, a_meter): (&str, SocketAddr, Meter),
    (b_name, b, b_meter): (&str, SocketAddr, Meter),
) -> anyhow::Result<(Run, Run)> {
    wrk(a, 1, args.connections, Meter::None)?;
    wrk(b, 1, args.connections, Meter::None)?;
    let (mut firsts, mut seconds) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let x = wrk(a, args.seconds, args.connections, a_meter)?;
        let y = wrk(b, args.seconds, args.connections, b_meter)?;
        eprintln!(
            "gantry-bench ingress: round {}: {a_name} {:.0}/s p99 {:.2} ms, {b_name} {:.0}/s p99 {:.2} ms",
            round + 1,
            x.requests_per_second,
            x.p99_ms,
            y.requests_per_second,
            y.p99_ms
        );
        firsts.push(x);
        seconds.push(y);
    }
    Ok((median_run(firsts), median_run(seconds)))
}

/// The run of median requests/s.
fn median_run(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    runs[runs.len() / 2]
}

/// One wrk run against `addr`; the CPU `meter` counts over the run is charged to its
/// requests.
fn wrk(addr: SocketAddr, seconds: u64, connections: usize, meter: Meter) -> anyhow::Result<Run> {
    let before = meter.ticks();
    let output = Command::new("wrk")
        .args(["-t2", "--latency", "-H"])
        .arg(format!("Host: {HOST}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let after = meter.ticks();
    let mut run = parse_wrk(&text).with_context(|| format!("reading wrk's output:\n{text}"))?;
    if let (Some(before), Some(after)) = (before, after)
        && run.requests > 0
    {
        let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        let seconds = after.saturating_sub(before) as f64 / per_second;
        run.cpu_us = Some(seconds * 1e6 / run.requests as f64);
    }
    Ok(run)
}

/// Requests/s and the 99th percentile from `wrk --latency`'s output; a run with errors
/// or non-2xx answers fails.
fn parse_wrk(text: &str) -> anyhow::Result<Run> {
    if let Some(line) = text.lines().find(|l| {
        l.trim_start().starts_with("Non-2xx") || l.trim_start().starts_with("Socket errors")
    }) {
        bail!("the run had errors: {}", line.trim());
    }
    let requests_per_second: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .context("no Requests/sec line")?
        .trim()
        .parse()?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .context("no 99% line")?
        .trim();
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .context("no `requests in` line")?
        .0
        .parse()?;
    Ok(Run {
        requests_per_second,
        p99_ms: millis(p99)?,
        requests,
        cpu_us: None,
    })
}

/// A wrk duration (`512.00us`, `1.23ms`, `1.01s`, `2.00m`) in milliseconds.
fn millis(text: &str) -> anyhow::Result<f64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse()?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => bail!("unknown unit in {text:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let text = "Running 3s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms    1.04ms  23.44ms   90.12%
    Req/Sec    21.55k     1.50k   24.33k    71.67%
  Latency Distribution
     50%    1.31ms
     75%    1.79ms
     90%    2.45ms
     99%  512.00us
  128714 requests in 3.00s, 104.37MB read
Requests/sec:  42870.45
Transfer/sec:     34.77MB
";
        let run = parse_wrk(text).unwrap();
        assert_eq!(run.requests_per_second, 42870.45);
        assert_eq!(run.p99_ms, 0.512);
        assert_eq!(run.requests, 128714);
        assert!(
            parse_wrk(&text.replace(
                "Requests/sec",
                "  Non-2xx or 3xx responses: 3\nRequests/sec"
            ))
            .is_err()
        );
        assert_eq!(millis("1.01s").unwrap(), 1010.0);
    }

    #[test]
    fn reads_cpu_time_from_proc_stat() {
        // A command name may hold spaces and parentheses; utime and stime are the 14th
        // and 15th fields.
        let stat = "4242 (nginx: (worker)) S 4240 4240 4240 0 -1 4194624 50 0 0 0 \
                    317 205 0 0 20 0 1 0 123 456 789";
        let (name, fields) = split_stat(stat).unwrap();
        assert_eq!(name, "nginx: (worker)");
        assert_eq!(fields[1], "4240");
        assert_eq!(cpu_of(&fields), 522);
        // This process's own threads, by a prefix every thread name has.
        let me = Meter::Threads(std::process::id(), "");
        assert!(me.ticks().is_some());
        assert_eq!(Meter::None.ticks(), None);
    }
}
