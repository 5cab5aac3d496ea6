//! Controllers: each watches the objects it is responsible for and acts
//! through the API until what exists is what was asked for. See
//! ARCHITECTURE.md (`crates/controllers`).

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslice_mirroring;
pub mod events;
pub mod gc;
pub mod informers;
pub mod job;
pub mod leader;
pub mod loadbalancer;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod owners;
pub mod podgc;
pub mod replicaset;
pub mod resourcequota;
pub mod revisions;
pub use kinds::selector;
mod service_pods;
pub mod statefulset;
pub mod taint_eviction;
pub mod ttl;
pub mod volumes;

/// How the controller manager is set up (kube-controller-manager's flags).
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// How nodes are judged alive.
    pub nodes: nodelifecycle::Settings,
    /// How nodes get their pod ranges.
    pub pod_ranges: nodeipam::Settings,
    /// The addresses LoadBalancer Services get.
    pub load_balancers: loadbalancer::Settings,
}

/// Runs every controller with the default settings until the task is
/// dropped; returns if one stops.
pub async fn run(client: kube::Client) -> anyhow::Result<()> {
    run_with(client, Config::default()).await
}

/// Runs every controller until the task is dropped; returns if one stops.
pub async fn run_with(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let informers = informers::Informers::new(client.clone());
    tokio::try_join!(
        replicaset::run(informers.clone()),
        deployment::run(informers.clone()),
        endpoints::run(informers.clone()),
        endpointslice::run(informers.clone()),
        endpointslice_mirroring::run(informers.clone()),
        statefulset::run(informers.clone()),
        daemonset::run(informers.clone()),
        nodelifecycle::run(informers.clone(), config.nodes),
        nodeipam::run(informers.clone(), config.pod_ranges),
        loadbalancer::run(informers.clone(), config.load_balancers),
        taint_eviction::run(informers.clone()),
        podgc::run(informers.clone()),
        job::run(informers.clone()),
        cronjob::run(informers.clone()),
        ttl::run(informers.clone()),
        resourcequota::run(informers.clone()),
        disruption::run(informers.clone()),
        volumes::run(informers.clone()),
        gc::run(client),
    )?;
    Ok(())
}
