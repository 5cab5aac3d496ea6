//! Controllers: each watches the objects it is responsible for and acts
//! through the API until what exists is what was asked for. See
//! ARCHITECTURE.md (`crates/controllers`).

pub mod gc;
pub mod informers;
pub mod replicaset;
pub mod selector;

/// Runs every controller until the task is dropped; returns if one stops.
pub async fn run(client: kube::Client) -> anyhow::Result<()> {
    let informers = informers::Informers::new(client.clone());
    tokio::select! {
        r = replicaset::run(informers) => r,
        r = gc::run(client) => r,
    }
}
