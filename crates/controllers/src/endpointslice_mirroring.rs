//! The EndpointSlice mirroring controller: a Service without a selector has
//! the Endpoints its users write by hand (addresses outside the cluster, a
//! database on a host); the Service proxy and cluster DNS read only
//! EndpointSlices, so those Endpoints are mirrored into EndpointSlices, as
//! kube-controller-manager's `endpointslicemirroring` controller does.
//!
//! An Endpoints object is mirrored while a Service of its name exists, has
//! no selector, and the Endpoints is not labelled
//! `endpointslice.kubernetes.io/skip-mirror: "true"` (nor a leader-election
//! record). Its slices are owned by the Endpoints, labelled with its labels,
//! the Service's name and this controller's, one per set of ports, ready
//! addresses ready and not-ready ones not; IPv4 addresses only, as
//! everywhere in the cluster. Otherwise its mirrored slices are deleted.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::endpointslice::{
    self as es, Group, MANAGED_BY, Owner, PortsKey, SERVICE_NAME, ports_key,
};
use crate::informers::Informers;
use crate::service_pods as sp;

/// This controller's name in `MANAGED_BY`, Kubernetes' own.
pub const CONTROLLER: &str = "endpointslicemirroring-controller.k8s.io";
/// The label that keeps an Endpoints object from being mirrored.
pub const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// The annotation of an Endpoints object used as a leader-election lock.
const LEADER: &str = "control-plane.alpha.kubernetes.io/leader";
/// How often every Service is looked at again without a change.
const RESYNC: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the Service has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: kube::Client,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let services = informers.get::<Service>().await;
    let endpoints = informers.get::<Endpoints>().await;
    let slices = informers.get::<EndpointSlice>().await;
    let ctx = Arc::new(Ctx {
        client: informers.client(),
        endpoints: endpoints.store(),
        slices: slices.store(),
    });
    // Keyed by Service: an Endpoints object (made, changed or deleted) wakes
    // the Service of its name, and so does a mirrored slice, so one edited or
    // deleted by hand is put back.
    let results = Controller::for_stream(services.stream(), services.store())
        .watches_stream(endpoints.stream(), |ep: Endpoints| {
            Some(ObjectRef::<Service>::new(&ep.name_any()).within(&ep.namespace()?))
        })
        .watches_stream(slices.stream(), |slice: EndpointSlice| {
            let name = es::managed_for(&slice, CONTROLLER)?;
            Some(ObjectRef::<Service>::new(name).within(&slice.namespace()?))
        })
        .run(reconcile, error_policy, Arc::clone(&ctx));
    // A Service gone: what was mirrored for it goes.
    sp::follow(results, "endpointslicemirroring", |ns, name| {
        let ctx = Arc::clone(&ctx);
        async move {
            let doomed = es::slices_of(&ctx.slices, &ns, &name, CONTROLLER);
            if let Err(e) = es::delete(&ctx.client, &ns, &doomed).await {
                tracing::debug!(service = %name, error = %e, "deleting mirrored slices");
            }
        }
    })
    .await;
    anyhow::bail!("the endpointslice mirroring controller ended")
}

fn error_policy(svc: Arc<Service>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(service = %svc.name_any(), %error, "endpointslice mirroring failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = svc.namespace().ok_or(Error::NoNamespace)?;
    let name = svc.name_any();
    let existing = es::slices_of(&ctx.slices, &ns, &name, CONTROLLER);
    let endpoints = ctx
        .endpoints
        .get(&ObjectRef::<Endpoints>::new(&name).within(&ns))
        .filter(|ep| mirrors(&svc, ep));
    let plan = match endpoints {
        Some(ep) => es::plan(&owner(&ep), wanted(&ep), &existing, None),
        None => es::Plan {
            delete: existing,
            ..es::Plan::default()
        },
    };
    es::apply(&ctx.client, &ctx.slices, &ns, &plan).await?;
    Ok(Action::requeue(RESYNC))
}

/// Whether the Endpoints object of `svc`'s name is to be mirrored.
fn mirrors(svc: &Service, ep: &Endpoints) -> bool {
    sp::selector(svc).is_none()
        && ep.labels().get(SKIP_MIRROR).map(String::as_str) != Some("true")
        && !ep.annotations().contains_key(LEADER)
}

/// What the mirrored slices belong to: the Endpoints object, with its labels
/// (but the two reserved ones, which say whose they are).
fn owner(ep: &Endpoints) -> Owner {
    let mut labels = ep.labels().clone();
    labels.insert(SERVICE_NAME.into(), ep.name_any());
    labels.insert(MANAGED_BY.into(), CONTROLLER.into());
    Owner {
        owner: OwnerReference {
            api_version: "v1".into(),
            kind: "Endpoints".into(),
            name: ep.name_any(),
            uid: ep.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        namespace: ep.namespace(),
        labels,
        keep_empty: false,
    }
}

/// The Endpoints' addresses grouped by their subsets' ports: subsets with
/// the same ports share slices.
fn wanted(ep: &Endpoints) -> BTreeMap<PortsKey, Group> {
    let mut groups: BTreeMap<PortsKey, Group> = BTreeMap::new();
    for subset in ep.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let group = groups.entry(ports_key(&ports)).or_insert_with(|| Group {
            ports,
            endpoints: Vec::new(),
        });
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        group
            .endpoints
            .extend(ready.chain(not_ready).filter_map(|(a, r)| endpoint(a, r)));
    }
    groups
}

/// One address as an endpoint; None for one that is not IPv4.
fn endpoint(address: &EndpointAddress, ready: bool) -> Option<Endpoint> {
    // Parsed and written again, in case it is written unusually.
    let ip: Ipv4Addr = address.ip.trim().parse().ok()?;
    Some(Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: None,
            terminating: None,
        }),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        node_name: address.node_name.clone(),
        target_ref: address.target_ref.clone(),
        ..Endpoint::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(selector: Option<serde_json::Value>) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "d", "uid": "svc-uid"},
            "spec": {"ports": [{"port": 5432}], "selector": selector}
        }))
        .unwrap()
    }

    fn endpoints(labels: serde_json::Value, subsets: serde_json::Value) -> Endpoints {
        serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "d", "uid": "ep-uid", "labels": labels},
            "subsets": subsets
        }))
        .unwrap()
    }

    #[test]
    fn mirrors_only_endpoints_of_services_without_a_selector() {
        let ep = endpoints(json!({}), json!([]));
        assert!(mirrors(&service(None), &ep));
        assert!(mirrors(&service(Some(json!({}))), &ep));
        assert!(!mirrors(&service(Some(json!({"app": "db"}))), &ep));
        let skipped = endpoints(json!({SKIP_MIRROR: "true"}), json!([]));
        assert!(!mirrors(&service(None), &skipped));
        let mut lock = ep.clone();
        lock.metadata.annotations = Some(BTreeMap::from([(LEADER.into(), "{}".into())]));
        assert!(!mirrors(&service(None), &lock));
    }

    #[test]
    fn subsets_become_slices_per_set_of_ports() {
        let ep = endpoints(
            json!({"team": "data"}),
            json!([
                {"addresses": [{"ip": "192.0.2.10", "hostname": "primary"}, {"ip": "fd00::1"}],
                 "notReadyAddresses": [{"ip": "192.0.2.11"}],
                 "ports": [{"name": "pg", "port": 5432}]},
                {"addresses": [{"ip": "192.0.2.12"}], "ports": [{"name": "pg", "port": 5432}]},
                {"addresses": [{"ip": "192.0.2.20"}], "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}
            ]),
        );
        let plan = es::plan(&owner(&ep), wanted(&ep), &[], None);
        assert_eq!((plan.update.len(), plan.delete.len()), (0, 0));
        let mut slices: Vec<serde_json::Value> = plan
            .create
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect();
        slices.sort_by_key(|s| s["ports"][0]["port"].as_i64());
        assert_eq!(slices.len(), 2);
        let (dns, pg) = (&slices[0], &slices[1]);
        assert_eq!(
            dns["ports"],
            json!([{"name": "dns", "port": 53, "protocol": "UDP"}])
        );
        assert_eq!(dns["endpoints"][0]["addresses"], json!(["192.0.2.20"]));
        assert_eq!(
            pg["ports"],
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}])
        );
        let listed: Vec<(String, bool)> = pg["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["addresses"][0].as_str().unwrap().to_owned(),
                    e["conditions"]["ready"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("192.0.2.10".to_owned(), true),
                ("192.0.2.11".to_owned(), false),
                ("192.0.2.12".to_owned(), true)
            ]
        );
        assert_eq!(pg["endpoints"][0]["hostname"], "primary");
        let meta = &pg["metadata"];
        assert_eq!(meta["generateName"], "db-");
        assert_eq!(meta["namespace"], "d");
        assert_eq!(
            meta["labels"],
            json!({"team": "data", SERVICE_NAME: "db", MANAGED_BY: CONTROLLER})
        );
        assert_eq!(meta["ownerReferences"][0]["kind"], "Endpoints");
        assert_eq!(meta["ownerReferences"][0]["uid"], "ep-uid");

        // Mirrored again unchanged: nothing to write. Emptied: the slices go.
        let made: Vec<Arc<EndpointSlice>> = plan
            .create
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                s.metadata.name = Some(format!("db-{i}"));
                Arc::new(s)
            })
            .collect();
        let again = es::plan(&owner(&ep), wanted(&ep), &made, None);
        assert_eq!(
            (again.create.len(), again.update.len(), again.delete.len()),
            (0, 0, 0)
        );
        let empty = endpoints(json!({"team": "data"}), json!([]));
        let gone = es::plan(&owner(&empty), wanted(&empty), &made, None);
        assert_eq!(
            (gone.create.len(), gone.update.len(), gone.delete.len()),
            (0, 0, 2)
        );
    }
}
