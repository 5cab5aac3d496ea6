//! Keeps the proxy's table true to the cluster: watches of Ingresses, IngressClasses,
//! Services, EndpointSlices and TLS Secrets (kube-rs reflectors), a rebuild of the whole
//! table after each burst of changes, Warning Events for the problems a build finds, and
//! the node's address in the status of the Ingresses it serves.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};

use crate::proxy::TableHandle;
use crate::routes::{self, Objects, Served, Warning};

/// How long a burst of changes is gathered before one rebuild.
const COALESCE: Duration = Duration::from_millis(20);

/// How `follow` runs.
#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// The table the proxy reads.
    pub table: TableHandle,
    /// This node's name, in the Events' reporting instance.
    pub node_name: String,
    /// The address written into `status.loadBalancer.ingress` of the Ingresses served;
    /// `None`: status is left alone.
    pub address: Option<IpAddr>,
}

/// What one watch said.
enum Change {
    /// Its first list is complete (again, after a relist).
    Listed,
    /// An object was applied or deleted.
    Changed,
    /// Part of a list still arriving, or an error being retried.
    Nothing,
}

fn changes<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
) -> impl Stream<Item = Change> + Send
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    reflector::reflector(writer, watcher::watcher(api, config))
        .default_backoff()
        .map(|event| match event {
            Ok(Event::InitDone) => Change::Listed,
            Ok(Event::Apply(_) | Event::Delete(_)) => Change::Changed,
            Ok(Event::Init | Event::InitApply(_)) => Change::Nothing,
            Err(e) => {
                tracing::warn!(error = %e, "ingress watch failed; retrying");
                Change::Nothing
            }
        })
}

/// The watch caches a table is built from.
struct Caches {
    ingresses: Store<Ingress>,
    classes: Store<IngressClass>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
}

/// Follows the cluster through `client` and replaces the table after every change, until
/// the future is dropped. The first table is published once all five kinds are listed.
pub async fn follow(client: kube::Client, config: FollowConfig) {
    let (ingresses, ingresses_w) = reflector::store::<Ingress>();
    let (classes, classes_w) = reflector::store::<IngressClass>();
    let (services, services_w) = reflector::store::<Service>();
    let (slices, slices_w) = reflector::store::<EndpointSlice>();
    let (secrets, secrets_w) = reflector::store::<Secret>();
    let all = watcher::Config::default;
    let streams = vec![
        changes(Api::all(client.clone()), all(), ingresses_w)
            .map(|c| (0, c))
            .boxed(),
        changes(Api::all(client.clone()), all(), classes_w)
            .map(|c| (1, c))
            .boxed(),
        changes(Api::all(client.clone()), all(), services_w)
            .map(|c| (2, c))
            .boxed(),
        changes(Api::all(client.clone()), all(), slices_w)
            .map(|c| (3, c))
            .boxed(),
        // Only certificates: the cluster's other Secrets are none of the proxy's business.
        changes(
            Api::all(client.clone()),
            all().fields("type=kubernetes.io/tls"),
            secrets_w,
        )
        .map(|c| (4, c))
        .boxed(),
    ];
    let caches = Caches {
        ingresses,
        classes,
        services,
        slices,
        secrets,
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "gantry-ingress".into(),
            instance: Some(config.node_name.clone()),
        },
    );
    let mut reported: HashSet<Warning> = HashSet::new();
    let mut stream = futures::stream::select_all(streams);
    let mut listed = [false; 5];
    let note = |listed: &mut [bool; 5], (i, change): (usize, Change)| match change {
        Change::Listed => {
            listed[i] = true;
            true
        }
        Change::Changed => true,
        Change::Nothing => false,
    };
    while let Some(item) = stream.next().await {
        if !note(&mut listed, item) || !listed.iter().all(|l| *l) {
            continue;
        }
        let gather = tokio::time::sleep(COALESCE);
        tokio::pin!(gather);
        loop {
            tokio::select! {
                _ = &mut gather => break,
                item = stream.next() => match item {
                    Some(item) => { note(&mut listed, item); }
                    None => return,
                },
            }
        }
        let built = build(&caches);
        config.table.replace(built.table);
        report(&recorder, &mut reported, built.warnings).await;
        if let Some(address) = config.address {
            write_status(&client, &caches.ingresses, &built.served, address).await;
        }
    }
}

fn refs<K>(v: &[std::sync::Arc<K>]) -> Vec<&K> {
    v.iter().map(|a| a.as_ref()).collect()
}

fn build(caches: &Caches) -> routes::Built {
    let started = std::time::Instant::now();
    let ingresses = caches.ingresses.state();
    let classes = caches.classes.state();
    let services = caches.services.state();
    let slices = caches.slices.state();
    let secrets = caches.secrets.state();
    let ingress_refs: Vec<&Ingress> = refs(&ingresses);
    let class_refs: Vec<&IngressClass> = refs(&classes);
    let service_refs: Vec<&Service> = refs(&services);
    let slice_refs: Vec<&EndpointSlice> = refs(&slices);
    let secret_refs: Vec<&Secret> = refs(&secrets);
    let built = routes::build(&Objects {
        ingresses: &ingress_refs,
        classes: &class_refs,
        services: &service_refs,
        slices: &slice_refs,
        secrets: &secret_refs,
    });
    tracing::debug!(
        ingresses = built.served.len(),
        warnings = built.warnings.len(),
        took = ?started.elapsed(),
        "ingress table rebuilt"
    );
    built
}

/// Publishes the warnings not reported before, and forgets those no longer found, so a
/// problem that comes back is reported again.
async fn report(recorder: &Recorder, reported: &mut HashSet<Warning>, warnings: Vec<Warning>) {
    let current: HashSet<Warning> = warnings.into_iter().collect();
    for w in current.difference(reported) {
        tracing::warn!(ingress = %format!("{}/{}", w.namespace, w.name), reason = w.reason, "{}", w.message);
        let reference = ObjectReference {
            api_version: Some("networking.k8s.io/v1".into()),
            kind: Some("Ingress".into()),
            namespace: Some(w.namespace.clone()),
            name: Some(w.name.clone()),
            uid: w.uid.clone(),
            ..ObjectReference::default()
        };
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: w.reason.into(),
            note: Some(w.message.clone()),
            action: "Sync".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "ingress: publishing an event");
        }
    }
    *reported = current;
}

/// Adds `address` to `status.loadBalancer.ingress` of every Ingress served that lacks it.
async fn write_status(
    client: &kube::Client,
    cache: &Store<Ingress>,
    served: &[Served],
    address: IpAddr,
) {
    let ip = address.to_string();
    for s in served {
        let key = reflector::ObjectRef::<Ingress>::new(&s.name).within(&s.namespace);
        let Some(ingress) = cache.get(&key) else {
            continue;
        };
        let mut ips: Vec<String> = ingress
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.clone())
            .collect();
        if ips.contains(&ip) {
            continue;
        }
        ips.push(ip.clone());
        ips.sort();
        let entries: Vec<serde_json::Value> =
            ips.iter().map(|ip| serde_json::json!({"ip": ip})).collect();
        let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": entries}}});
        let api: Api<Ingress> = Api::namespaced(client.clone(), &s.namespace);
        if let Err(e) = api
            .patch_status(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(ingress = %format!("{}/{}", s.namespace, s.name), error = %e, "ingress: writing status");
        }
    }
}
