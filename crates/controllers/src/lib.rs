//! Controllers: each watches the objects it is responsible for and acts
//! through the API until what exists is what was asked for. See
//! ARCHITECTURE.md (`crates/controllers`).

pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod gc;
pub mod informers;
pub mod leader;
pub mod owners;
pub mod replicaset;
pub mod resourcequota;
pub mod selector;
mod service_pods;

/// Runs every controller until the task is dropped; returns if one stops.
pub async fn run(client: kube::Client) -> anyhow::Result<()> {
    let informers = informers::Informers::new(client.clone());
    tokio::try_join!(
        replicaset::run(informers.clone()),
        deployment::run(informers.clone()),
        endpoints::run(informers.clone()),
        endpointslice::run(informers.clone()),
        resourcequota::run(informers.clone()),
        disruption::run(informers.clone()),
        gc::run(client),
    )?;
    Ok(())
}
