//! The `gantry` binary: parses the command line and wires the crates
//! together. No logic of its own lives here.

use std::net::SocketAddr;
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
    /// Run a one-machine Gantry on the embedded store.
    Up {
        /// Where Gantry keeps its state.
        #[arg(long, default_value = "/var/lib/gantry")]
        data_dir: PathBuf,
        /// Where the API server listens.
        #[arg(long, default_value = "0.0.0.0:6443")]
        listen: SocketAddr,
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
    },
    /// Inspect a store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
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

fn main() -> anyhow::Result<()> {
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
            Command::Up { data_dir, listen } => {
                serve(data_dir, listen, None, Vec::new(), true).await
            }
            Command::Server {
                data_dir,
                listen,
                store,
                tls_sans,
            } => serve(data_dir, listen, store, tls_sans, false).await,
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
    chatty: bool,
) -> anyhow::Result<()> {
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
    let server = apiserver::ApiServer::start(config, Arc::clone(&store))
        .await
        .context("starting the API server")?;
    let kubeconfig = server.kubeconfig().display().to_string();
    say(format!("ready in {:.2}s", started.elapsed().as_secs_f64()));
    if chatty {
        eprintln!();
        eprintln!("  export KUBECONFIG={kubeconfig}");
        eprintln!("  kubectl get namespaces");
        eprintln!();
        eprintln!(
            "gantry: the node agent (running pods) is not part of this build yet. Ctrl-C stops."
        );
    } else {
        eprintln!(
            "gantry: serving on {} (kubeconfig {kubeconfig})",
            server.local_addr()
        );
    }
    tokio::signal::ctrl_c().await?;
    say("stopping".into());
    server.shutdown().await;
    drop(store);
    Ok(())
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
