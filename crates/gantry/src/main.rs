//! The `gantry` binary: parses the command line and wires the crates
//! together. No logic of its own lives here.

use std::path::PathBuf;

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
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Up { data_dir } => up(data_dir).await,
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

async fn up(data_dir: PathBuf) -> anyhow::Result<()> {
    let spec = StoreSpec::Embedded(data_dir.join("store"));
    eprintln!(
        "gantry: opening the store in {}",
        data_dir.join("store").display()
    );
    let store = store::open(&spec)
        .await
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let revision = store.current_revision().await?;
    eprintln!(
        "gantry: store ready at revision {revision} ({})",
        store.describe()
    );
    eprintln!("gantry: this build has the store only; the API server comes next. Ctrl-C stops.");
    tokio::signal::ctrl_c().await?;
    eprintln!("gantry: stopping");
    Ok(())
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
