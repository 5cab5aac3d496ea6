//! The `gantry` binary: parses the command line and wires the crates
//! together. No logic of its own lives here.

mod api_endpoint;
mod cluster_dns;
mod images_cli;
mod join;
mod node;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use store::{RangeRequest, StoreSpec};

#[derive(Parser)]
#[command(name = "gantry", version, about = "A container cloud in one program")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a one-machine Gantry on the embedded store: the API server, the
    /// scheduler, the controllers (ReplicaSets, Deployments, Endpoints and EndpointSlices so
    /// far), and this machine as a node.
    Up {
        /// Where Gantry keeps its state.
        #[arg(long, default_value = "/var/lib/gantry")]
        data_dir: PathBuf,
        /// Where the API server listens.
        #[arg(long, default_value = "0.0.0.0:6443")]
        listen: SocketAddr,
        /// More names or addresses for the serving certificate (those other
        /// machines reach the server by, for `gantry agent --server`).
        #[arg(long = "tls-san")]
        tls_sans: Vec<String>,
        #[command(flatten)]
        cluster: ClusterFlags,
        #[command(flatten)]
        node: NodeFlags,
    },
    /// Join this machine to a cluster as a node, with a token from `gantry
    /// token create`, and run its agent.
    Agent(join::AgentArgs),
    /// Tokens that let machines join.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run the Kubernetes API server.
    Server {
        /// Where certificates, kubeconfig and (for the embedded store) data live.
        #[arg(long, default_value = "/var/lib/gantry")]
        data_dir: PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "0.0.0.0:6443")]
        listen: SocketAddr,
        /// The store: `etcd://host:port[,host:port...]`, or the embedded
        /// store in DATA_DIR/store when omitted.
        #[arg(long)]
        store: Option<String>,
        /// More names or addresses for the serving certificate.
        #[arg(long = "tls-san")]
        tls_sans: Vec<String>,
        /// Also run the scheduler and the controllers. With several servers,
        /// one of them at a time leads, elected through Leases in
        /// kube-system.
        #[arg(long)]
        controllers: bool,
        #[command(flatten)]
        cluster: ClusterFlags,
    },
    /// Inspect a store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The node's images.
    Image {
        #[command(subcommand)]
        command: images_cli::ImageCommand,
    },
    /// A container's shim (started by the agent, not by hand).
    #[command(hide = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// How the cluster treats nodes that stop reporting (kube-apiserver's and
/// kube-controller-manager's flags of the same names).
#[derive(clap::Args, Clone, Debug)]
struct ClusterFlags {
    /// How long a node may go without a heartbeat before it is NotReady
    /// (Unknown), e.g. `50s`.
    #[arg(long, default_value = "50s", value_parser = seconds)]
    node_monitor_grace_period: std::time::Duration,
    /// How long pods stay on a node that is not ready, unless they say.
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// How long pods stay on an unreachable node, unless they say.
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// The address pods reach the API server at, through the `kubernetes`
    /// Service (10.96.0.1). By default the listen address, or this
    /// machine's address when listening on all.
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// Where the cluster DNS server listens, UDP and TCP (e.g.
    /// `10.0.0.5:53`). By default this machine's address at port 53, or a
    /// free port there when 53 is taken; the kube-dns Service (10.96.0.10)
    /// leads to it either way.
    #[arg(long)]
    dns_listen: Option<SocketAddr>,
    /// All pods' addresses in the cluster; each node's pod range is taken
    /// from it.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    /// The prefix length of each node's pod range (/24: 254 pods).
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// Services' cluster IPs (kube-apiserver's flag): the first address is
    /// the `kubernetes` Service's, the tenth kube-dns's.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: ipnet::Ipv4Net,
    /// Addresses for Services of type LoadBalancer, a CIDR (`192.0.2.0/28`)
    /// or a range (`192.0.2.10-192.0.2.20`); repeat or separate with commas.
    /// None: such Services stay pending.
    #[arg(long, value_delimiter = ',')]
    load_balancer_pool: Vec<controllers::loadbalancer::Block>,
}

/// A whole number of seconds, with or without an `s`.
fn seconds(text: &str) -> Result<std::time::Duration, String> {
    text.strip_suffix('s')
        .unwrap_or(text)
        .parse::<u64>()
        .map(std::time::Duration::from_secs)
        .map_err(|_| format!("{text:?} is not a number of seconds like `50s`"))
}

/// How this machine runs as a node.
#[derive(clap::Args, Clone, Debug)]
struct NodeFlags {
    /// The node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Where the agent's API (logs, exec, port-forward) listens.
    #[arg(long, default_value = "0.0.0.0:10250")]
    agent_listen: SocketAddr,
    /// The address the server and other nodes reach this node at: its
    /// InternalIP and VXLAN endpoint (default: the agent's listen address,
    /// or where the route to the server leaves from).
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
    /// This node's pod addresses (default: a range the cluster assigns
    /// from its cluster CIDR).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// The VXLAN network identifier of the pod network across hosts, the
    /// same on every node (0: no overlay; pods reach only this node's pods).
    #[arg(long, default_value_t = 1)]
    vxlan_vni: u32,
    /// The UDP port of the VXLAN overlay, the same on every node.
    #[arg(long, default_value_t = net::DEFAULT_VXLAN_PORT)]
    vxlan_port: u16,
    /// The bridge pods attach to (also names the nftables table).
    #[arg(long, default_value = "gantry0")]
    bridge: String,
    /// Volatile state: namespaces, runc's state.
    #[arg(long, default_value = "/run/gantry")]
    state_dir: PathBuf,
    /// The cgroup pods go under.
    #[arg(long, default_value = "/gantry")]
    cgroup_parent: String,
    /// Registries to reach over plain HTTP (`host:port`).
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// The port the node's Ingress proxy serves plain HTTP on (0: none).
    #[arg(long, default_value_t = 80)]
    ingress_http_port: u16,
    /// The port the node's Ingress proxy serves HTTPS on (0: none).
    #[arg(long, default_value_t = 443)]
    ingress_https_port: u16,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a bootstrap token and print the join token for `gantry agent
    /// --token`.
    Create(join::TokenCreateArgs),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Open a store and print its revision and size; a damaged store fails
    /// here with the file at fault.
    Status {
        /// The data directory whose embedded store to open.
        #[arg(long, default_value = "/var/lib/gantry", conflicts_with = "store")]
        data_dir: PathBuf,
        /// A store to open instead: `etcd://host:port[,host:port]` or a path.
        #[arg(long)]
        store: Option<String>,
    },
}

/// mimalloc in place of glibc's malloc: the API server's and the agent's work is
/// mostly building and dropping JSON trees, where glibc spent about a third of
/// the CPU of a pod status PATCH in malloc and free (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // A shim must not start threads before it forks: it runs before
    // anything else.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "shim") {
        runtime::shim_main(args.collect());
    }
    // Two TLS providers are linked in (the registry client brings its
    // own): the process uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Up {
                data_dir,
                listen,
                tls_sans,
                cluster,
                node,
            } => serve(data_dir, listen, None, tls_sans, true, cluster, Some(node)).await,
            Command::Agent(args) => join::run_agent(args).await,
            Command::Token {
                command: TokenCommand::Create(args),
            } => join::create_token(args).await,
            Command::Server {
                data_dir,
                listen,
                store,
                tls_sans,
                controllers,
                cluster,
            } => {
                serve(
                    data_dir,
                    listen,
                    store,
                    tls_sans,
                    controllers,
                    cluster,
                    None,
                )
                .await
            }
            Command::Image { command } => images_cli::run(command).await,
            Command::Shim { .. } => unreachable!("the shim runs before the runtime starts"),
            Command::Store {
                command: StoreCommand::Status { data_dir, store },
            } => {
                let spec = match store {
                    Some(s) => StoreSpec::parse(&s)?,
                    None => StoreSpec::Embedded(data_dir.join("store")),
                };
                status(&spec).await
            }
        }
    })
}

async fn serve(
    data_dir: PathBuf,
    listen: SocketAddr,
    store: Option<String>,
    tls_sans: Vec<String>,
    controllers: bool,
    cluster: ClusterFlags,
    node: Option<NodeFlags>,
) -> anyhow::Result<()> {
    let chatty = node.is_some();
    let started = Instant::now();
    let say = |msg: String| {
        if chatty {
            eprintln!("gantry: {msg}");
        }
    };
    let spec = match store {
        Some(s) => StoreSpec::parse(&s)?,
        None => StoreSpec::Embedded(data_dir.join("store")),
    };
    say(format!("opening the store ({})", describe(&spec)));
    let store = store::open(&spec)
        .await
        .with_context(|| format!("opening the store {}", describe(&spec)))?;
    say(format!("starting the API server on {listen}"));
    let mut config = apiserver::Config::new(listen, &data_dir);
    config.extra_sans = tls_sans;
    if let Some(ip) = cluster.advertise_address {
        config.extra_sans.push(ip.to_string());
    }
    let services = cluster.service_cluster_ip_range;
    if !(12..=28).contains(&services.prefix_len()) {
        anyhow::bail!(
            "--service-cluster-ip-range {services}: the prefix must be /12 to /28 \
             (at most 2^20 addresses, and room for the kube-dns address)"
        );
    }
    config.ranges.service_base = services.network();
    config.ranges.service_prefix = services.prefix_len();
    config.default_toleration_seconds = apiserver::DefaultTolerations {
        not_ready: cluster.default_not_ready_toleration_seconds,
        unreachable: cluster.default_unreachable_toleration_seconds,
    };
    let server = apiserver::ApiServer::start(config, Arc::clone(&store))
        .await
        .context("starting the API server")?;
    let kubeconfig = server.kubeconfig().display().to_string();
    let node_name = node
        .as_ref()
        .map(|n| n.node_name.clone().unwrap_or_else(node::hostname));
    let api_endpoint = api_endpoint::start(
        &server,
        &data_dir,
        api_endpoint::advertised(cluster.advertise_address, server.local_addr()),
        node_name.clone(),
        &say,
    )
    .await?;
    let dns = cluster_dns::start(&server, &data_dir, cluster.dns_listen, node_name, &say).await?;
    let mut control_plane = None;
    if controllers {
        let who = node
            .as_ref()
            .and_then(|n| n.node_name.clone())
            .unwrap_or_else(node::hostname);
        control_plane = Some(start_control_plane(&data_dir, &server, &who, &cluster, &say).await?);
    }
    let mut agent = None;
    if let Some(flags) = node {
        agent = Some(
            start_node(
                &data_dir,
                &server,
                flags,
                (cluster.cluster_cidr, cluster.service_cluster_ip_range),
                &say,
            )
            .await?,
        );
    }
    say(format!("ready in {:.2}s", started.elapsed().as_secs_f64()));
    if chatty {
        eprintln!();
        eprintln!("  export KUBECONFIG={kubeconfig}");
        eprintln!("  kubectl get nodes");
        eprintln!("  kubectl run hello --image=busybox:1.36 --restart=Never -- echo hello");
        eprintln!();
        eprintln!(
            "gantry: no registry is reachable offline: load images with `gantry image import FILE`. Ctrl-C stops (pods keep running)."
        );
    } else {
        eprintln!(
            "gantry: serving on {} (kubeconfig {kubeconfig})",
            server.local_addr()
        );
    }
    tokio::signal::ctrl_c().await?;
    say("stopping".into());
    if let Some(a) = agent {
        a.stop();
    }
    if let Some(c) = control_plane {
        c.stop().await;
    }
    dns.stop().await;
    api_endpoint.stop().await;
    server.shutdown().await;
    drop(store);
    Ok(())
}

/// The scheduler and the controllers, each running while this server holds
/// its Lease.
struct ControlPlane {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ControlPlane {
    /// Stops both and gives their Leases up, so another server leads now.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), t).await;
        }
    }
}

/// Starts the scheduler and the controllers, each behind leader election
/// (Leases `kube-scheduler` and `kube-controller-manager` in kube-system, as
/// Kubernetes names them), as in-process clients of `server`.
async fn start_control_plane(
    data_dir: &std::path::Path,
    server: &apiserver::ApiServer,
    who: &str,
    cluster: &ClusterFlags,
    say: &impl Fn(String),
) -> anyhow::Result<ControlPlane> {
    let settings = controllers::Config {
        nodes: controllers::nodelifecycle::Settings {
            grace_period: cluster.node_monitor_grace_period,
            ..Default::default()
        },
        pod_ranges: controllers::nodeipam::Settings {
            cluster_cidr: Some(cluster.cluster_cidr),
            node_mask: cluster.node_cidr_mask_size,
        },
        load_balancers: controllers::loadbalancer::Settings {
            pool: cluster.load_balancer_pool.clone(),
        },
    };
    settings
        .pod_ranges
        .validate()
        .map_err(|e| anyhow::anyhow!("--node-cidr-mask-size: {e}"))?;
    // Host, port and data directory: the same for every start of this
    // server, so one restarted after a crash takes its own Leases back at
    // once instead of waiting for them to run out.
    let identity = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::fs::canonicalize(data_dir)
            .unwrap_or_else(|_| data_dir.to_path_buf())
            .hash(&mut h);
        format!(
            "{who}_{}_{:08x}",
            server.local_addr().port(),
            h.finish() as u32
        )
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (lease, user) in [
        ("kube-scheduler", "system:kube-scheduler"),
        ("kube-controller-manager", "system:kube-controller-manager"),
    ] {
        say(format!(
            "starting the {} (elected through the Lease kube-system/{lease})",
            if lease == "kube-scheduler" {
                "scheduler"
            } else {
                "controllers"
            }
        ));
        let client = node::local_client(server, (user, &[]));
        let elector =
            controllers::leader::Elector::new(client.clone(), "kube-system", lease, &identity);
        let mut stopped = stopped.clone();
        let until_stopped = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let scheduler = lease == "kube-scheduler";
        let settings = settings.clone();
        tasks.push(tokio::spawn(async move {
            let result = controllers::leader::run_elected(elector, until_stopped, || {
                let client = client.clone();
                let settings = settings.clone();
                async move {
                    if scheduler {
                        scheduler::run(client).await
                    } else {
                        controllers::run_with(client, settings).await
                    }
                }
            })
            .await;
            if let Err(e) = result {
                tracing::error!(lease, error = %e, "stopped");
            }
        }));
    }
    Ok(ControlPlane { stop, tasks })
}

/// Starts this machine's agent beside the API server.
async fn start_node(
    data_dir: &std::path::Path,
    server: &apiserver::ApiServer,
    flags: NodeFlags,
    (cluster_cidr, service_cidr): (ipnet::Ipv4Net, ipnet::Ipv4Net),
    say: &impl Fn(String),
) -> anyhow::Result<agent::Agent> {
    let (ca, _) =
        pki::Ca::load_or_create(&data_dir.join("pki")).context("loading the cluster CA")?;
    let name = flags.node_name.clone().unwrap_or_else(node::hostname);
    say(format!("starting the node agent ({name})"));
    let client = node::local_client(server, (&format!("system:node:{name}"), &["system:nodes"]));
    // An agent bound to one address is reached there; otherwise at the
    // address the machine's main route leaves from.
    let address = match (flags.node_ip, flags.agent_listen.ip()) {
        (Some(ip), _) => ip,
        (None, ip) if ip.is_unspecified() => node::local_address(None),
        (None, ip) => ip,
    };
    let mut config = node::agent_config(&ca, data_dir, &name, address, flags.agent_listen)?;
    // Ingresses are served on every address of a `gantry up` machine.
    flags.apply(&mut config, cluster_cidr, IpAddr::from([0, 0, 0, 0]))?;
    config.service_cidr = Some(service_cidr);
    config.labels.insert(
        "node-role.kubernetes.io/control-plane".into(),
        String::new(),
    );
    agent::Agent::start(config, client)
        .await
        .context("starting the node agent")
}

fn describe(spec: &StoreSpec) -> String {
    match spec {
        StoreSpec::Embedded(dir) => format!("embedded, {}", dir.display()),
        StoreSpec::Etcd(endpoints) => format!("etcd at {}", endpoints.join(",")),
    }
}

async fn status(spec: &StoreSpec) -> anyhow::Result<()> {
    let store = store::open(spec).await.context("opening the store")?;
    let revision = store.current_revision().await?;
    let keys = store
        .range(RangeRequest::prefix("").count_only())
        .await?
        .count;
    println!("{}", store.describe());
    println!("revision: {revision}");
    println!("keys: {keys}");
    Ok(())
}
