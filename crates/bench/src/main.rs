//! `gantry-bench`: benchmark programs. Each prints Gantry's figures next to
//! those of the anchor the issue names, measured in the same run on the same
//! machine, with the target each ratio must reach.

mod api_bench;
mod api_client;
mod dns_bench;
mod gantry_process;
mod ingress_bench;
mod pods_bench;
mod report;
mod sched_bench;
mod store_bench;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gantry-bench",
    about = "Gantry's benchmarks, each next to its anchor"
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// The embedded store next to a real single-member etcd on the same disk.
    Store(store_bench::Args),
    /// The real `gantry server` on the embedded store next to the same
    /// binary on a real etcd (`--store etcd://`), over HTTPS.
    Api(api_bench::Args),
    /// Pods on the real `gantry up` node (pod start next to a bare `runc
    /// run`, and the node's memory with its maximum of pods). Needs root.
    Pods(pods_bench::Args),
    /// The scheduler against the real `gantry server`: Node objects without
    /// agents and pending pods, timed until every pod is bound.
    Scheduler(sched_bench::Args),
    /// The cluster DNS server with 1,000 Services next to dnsmasq serving
    /// the same names, both under dnsperf.
    Dns(dns_bench::Args),
    /// The node's Ingress proxy next to Debian's nginx as a reverse proxy to
    /// the same backend pods, both under wrk. Needs root.
    Ingress(ingress_bench::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.bench {
        Bench::Store(args) => runtime.block_on(store_bench::run(args)),
        // Ctrl-C drops the benchmark's future, and with it the servers it
        // started (their guards kill them and remove their directories).
        Bench::Api(args) => runtime.block_on(async {
            tokio::select! {
                result = api_bench::run(args) => result,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            }
        }),
        // The same for the node: its guards delete the containers and
        // remove the links, mounts and cgroups it made.
        Bench::Pods(args) => runtime.block_on(async {
            tokio::select! {
                result = pods_bench::run(args) => result,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            }
        }),
        Bench::Dns(args) => runtime.block_on(async {
            tokio::select! {
                result = dns_bench::run(args) => result,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            }
        }),
        Bench::Ingress(args) => runtime.block_on(async {
            tokio::select! {
                result = ingress_bench::run(args) => result,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            }
        }),
        Bench::Scheduler(args) => runtime.block_on(async {
            tokio::select! {
                result = sched_bench::run(args) => result,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            }
        }),
    }
}
