//! Keeps a server's records true to the cluster: watches of Services,
//! EndpointSlices and Namespaces (kube-rs reflectors), and a rebuild of the
//! whole `Records` after each burst of changes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};

use crate::records::{Objects, Records};
use crate::server::RecordsHandle;

/// How long a burst of changes is gathered before one rebuild: small next
/// to the second within which an answer must follow a change.
const COALESCE: Duration = Duration::from_millis(20);

/// What one watch said.
enum Change {
    /// Its first list is complete (again, after a relist).
    Listed,
    /// An object was applied or deleted.
    Changed,
    /// Part of a list still arriving, or an error being retried.
    Nothing,
}

fn changes<K>(api: Api<K>, writer: reflector::store::Writer<K>) -> impl Stream<Item = Change> + Send
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
        .default_backoff()
        .map(|event| match event {
            Ok(Event::InitDone) => Change::Listed,
            Ok(Event::Apply(_) | Event::Delete(_)) => Change::Changed,
            Ok(Event::Init | Event::InitApply(_)) => Change::Nothing,
            Err(e) => {
                tracing::warn!(error = %e, "cluster dns watch failed; retrying");
                Change::Nothing
            }
        })
}

/// Follows the cluster through `client` and replaces `records` after every
/// change, until the future is dropped. The first records are published
/// once Services, EndpointSlices and Namespaces have all been listed.
pub async fn follow(client: kube::Client, records: RecordsHandle) {
    let (services, services_w) = reflector::store::<Service>();
    let (slices, slices_w) = reflector::store::<EndpointSlice>();
    let (namespaces, namespaces_w) = reflector::store::<Namespace>();
    let streams = vec![
        changes(Api::<Service>::all(client.clone()), services_w)
            .map(|c| (0, c))
            .boxed(),
        changes(Api::<EndpointSlice>::all(client.clone()), slices_w)
            .map(|c| (1, c))
            .boxed(),
        changes(Api::<Namespace>::all(client), namespaces_w)
            .map(|c| (2, c))
            .boxed(),
    ];
    let mut stream = futures::stream::select_all(streams);
    let mut listed = [false; 3];
    let mut serial = 0u32;
    let note = |listed: &mut [bool; 3], (i, change): (usize, Change)| match change {
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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(0);
        serial = now.max(serial.wrapping_add(1));
        records.replace(build(&records, serial, &services, &slices, &namespaces));
    }
}

fn build(
    handle: &RecordsHandle,
    serial: u32,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    namespaces: &Store<Namespace>,
) -> Records {
    let started = std::time::Instant::now();
    let services = services.state();
    let slices = slices.state();
    let namespaces = namespaces.state();
    let service_refs: Vec<&Service> = services.iter().map(|s| s.as_ref()).collect();
    let slice_refs: Vec<&EndpointSlice> = slices.iter().map(|s| s.as_ref()).collect();
    let names: Vec<&str> = namespaces
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let records = Records::build(
        handle.zone(),
        handle.ttl(),
        serial,
        Objects {
            services: &service_refs,
            slices: &slice_refs,
            namespaces: &names,
        },
    );
    tracing::debug!(
        services = services.len(),
        slices = slices.len(),
        took = ?started.elapsed(),
        "cluster dns records rebuilt"
    );
    records
}
