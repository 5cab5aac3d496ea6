//! `gantry image import|ls`: through the running agent's local socket when
//! there is one (it holds the image store), else on the store directly.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[derive(Subcommand, Debug)]
pub(crate) enum ImageCommand {
    /// Load OCI-layout or docker-archive tarballs into the node's images.
    Import {
        /// The node's data directory.
        #[arg(long, default_value = "/var/lib/gantry")]
        data_dir: PathBuf,
        /// Tarballs to load.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the node's images.
    #[command(alias = "list")]
    Ls {
        /// The node's data directory.
        #[arg(long, default_value = "/var/lib/gantry")]
        data_dir: PathBuf,
    },
}

pub(crate) async fn run(command: ImageCommand) -> anyhow::Result<()> {
    match command {
        ImageCommand::Import { data_dir, files } => {
            for file in files {
                let path =
                    std::fs::canonicalize(&file).with_context(|| format!("{}", file.display()))?;
                let images = match agent_request(
                    &data_dir,
                    "POST",
                    &format!("/images/import?{}", query("path", &path)),
                )
                .await?
                {
                    Some(v) => v["images"].as_array().cloned().unwrap_or_default(),
                    None => {
                        let store = open(&data_dir)?;
                        store
                            .import(&path)
                            .await
                            .with_context(|| format!("importing {}", path.display()))?
                            .iter()
                            .map(agent::local::image_json)
                            .collect()
                    }
                };
                for i in images {
                    let names: Vec<&str> = i["names"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!(
                        "imported {} ({})",
                        names.join(", "),
                        i["id"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        ImageCommand::Ls { data_dir } => {
            let images = match agent_request(&data_dir, "GET", "/images").await? {
                Some(v) => v["images"].as_array().cloned().unwrap_or_default(),
                None => open(&data_dir)?
                    .list()
                    .iter()
                    .map(agent::local::image_json)
                    .collect(),
            };
            println!("{:<50} {:<20} {:>10}", "IMAGE", "ID", "SIZE");
            for i in images {
                let id = i["id"].as_str().unwrap_or_default();
                let short = id.strip_prefix("sha256:").unwrap_or(id);
                let size = i["size"].as_u64().unwrap_or(0);
                let names: Vec<&str> = i["names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let names = if names.is_empty() {
                    vec!["<none>"]
                } else {
                    names
                };
                for n in names {
                    println!(
                        "{n:<50} {:<20} {:>10}",
                        &short[..short.len().min(12)],
                        human(size)
                    );
                }
            }
            Ok(())
        }
    }
}

fn query(key: &str, path: &Path) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(key, &path.to_string_lossy())
        .finish()
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1}GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}kB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

fn open(data_dir: &Path) -> anyhow::Result<images::ImageStore> {
    let dir = data_dir.join("images");
    images::ImageStore::open(&dir)
        .with_context(|| format!("opening the image store in {}", dir.display()))
}

/// Sends a request to the running agent; `None` when no agent listens.
async fn agent_request(data_dir: &Path, method: &str, uri: &str) -> anyhow::Result<Option<Value>> {
    let socket = data_dir.join(agent::local::SOCKET);
    let Ok(stream) = tokio::net::UnixStream::connect(&socket).await else {
        return Ok(None);
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("talking to the agent at {}", socket.display()))?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::HOST, "agent")
        .body(Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await.context("asking the agent")?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let value: Value = serde_json::from_slice(&body).context("reading the agent's answer")?;
    if !status.is_success() {
        bail!("{}", value["error"].as_str().unwrap_or("the agent refused"));
    }
    Ok(Some(value))
}
