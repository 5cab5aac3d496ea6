//! The EndpointSlice controller: for each Service with a selector, IPv4
//! EndpointSlices owned by the Service listing the pods it selects, with
//! their readiness, at most `MAX_ENDPOINTS` to a slice, one set of ports to a
//! slice. Slices are changed in place where they can be, and one that would
//! be deleted while another is created is rewritten instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::informers::Informers;
use crate::service_pods::{self as sp, TRIGGER_TIME, TriggerTimes};

/// How often every Service is looked at again without a change.
const RESYNC: Duration = Duration::from_secs(30);
/// How long a reconcile waits for its cache to show its own writes.
const SETTLE: Duration = Duration::from_secs(10);
/// The most endpoints one slice holds (kube-controller-manager's default).
pub const MAX_ENDPOINTS: usize = 100;
/// The label naming the Service a slice belongs to.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in `MANAGED_BY`, Kubernetes' own: slices it made
/// are taken over and slices others manage are left alone.
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the Service has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    triggers: TriggerTimes,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let pods = informers.get::<Pod>().await;
    let services = informers.get::<Service>().await;
    let slices = informers.get::<EndpointSlice>().await;
    let ctx = Arc::new(Ctx {
        client: informers.client(),
        pods: pods.store(),
        slices: slices.store(),
        triggers: TriggerTimes::default(),
    });
    // A pod wakes the Services that select it now and those whose slices
    // list it (it may have stopped matching). A slice wakes its Service, so
    // one edited or deleted by hand is put back and one whose Service is gone
    // is deleted.
    let by_pod = (services.store(), slices.store());
    let results = Controller::for_stream(services.stream(), services.store())
        .watches_stream(pods.stream(), move |pod: Pod| {
            let (services, slices) = &by_pod;
            let mut refs = sp::services_selecting(services, &pod);
            refs.extend(listing(slices, &pod));
            refs
        })
        .watches_stream(slices.stream(), |slice: EndpointSlice| {
            let name = managed_for(&slice, CONTROLLER)?;
            Some(ObjectRef::<Service>::new(name).within(&slice.namespace()?))
        })
        .run(reconcile, error_policy, Arc::clone(&ctx));
    // A Service gone takes its slices with it.
    sp::follow(results, "endpointslice", |ns, name| {
        let ctx = Arc::clone(&ctx);
        async move {
            ctx.triggers.forget(&ns, &name);
            let doomed = slices_of(&ctx.slices, &ns, &name, CONTROLLER);
            if let Err(e) = delete(&ctx.client, &ns, &doomed).await {
                tracing::debug!(service = %name, error = %e, "deleting slices");
            }
        }
    })
    .await;
    anyhow::bail!("the endpointslice controller ended")
}

/// The name of the Service the slice is `controller`'s for.
pub(crate) fn managed_for<'a>(slice: &'a EndpointSlice, controller: &str) -> Option<&'a str> {
    let labels = slice.labels();
    if labels.get(MANAGED_BY).map(String::as_str) != Some(controller) {
        return None;
    }
    labels.get(SERVICE_NAME).map(String::as_str)
}

/// `controller`'s slices for the Service `ns/name`, by name.
pub(crate) fn slices_of(
    slices: &Store<EndpointSlice>,
    ns: &str,
    name: &str,
    controller: &str,
) -> Vec<Arc<EndpointSlice>> {
    let mut found: Vec<Arc<EndpointSlice>> = slices
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns) && managed_for(s, controller) == Some(name)
        })
        .collect();
    found.sort_by_key(|s| s.name_any());
    found
}

/// The Services of the pod's namespace whose slices list it.
fn listing(slices: &Store<EndpointSlice>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let uid = pod.uid();
    slices
        .state()
        .iter()
        .filter(|s| s.namespace() == pod.namespace())
        .filter(|s| {
            s.endpoints
                .iter()
                .any(|e| e.target_ref.as_ref().and_then(|r| r.uid.as_ref()) == uid.as_ref())
        })
        .filter_map(|s| Some(ObjectRef::new(managed_for(s, CONTROLLER)?).within(&s.namespace()?)))
        .collect()
}

fn error_policy(svc: Arc<Service>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(service = %svc.name_any(), %error, "endpointslice sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = svc.namespace().ok_or(Error::NoNamespace)?;
    let Some(pods) = sp::selected_pods(&ctx.pods, &svc) else {
        return Ok(Action::requeue(RESYNC));
    };
    let trigger = ctx.triggers.observe(&svc, &pods);
    let existing = slices_of(&ctx.slices, &ns, &svc.name_any(), CONTROLLER);
    let plan = plan(
        &Owner::service(&svc),
        wanted(&svc, &pods),
        &existing,
        trigger,
    );
    apply(&ctx.client, &ctx.slices, &ns, &plan).await?;
    Ok(Action::requeue(RESYNC))
}

/// Makes the plan's writes in namespace `ns`. Every write is tried; the next
/// reconcile must not start from a cache older than the writes that were
/// made, so those are waited for (up to `SETTLE`), and the first failure is
/// returned after.
pub(crate) async fn apply(
    client: &kube::Client,
    cache: &Store<EndpointSlice>,
    ns: &str,
    plan: &Plan,
) -> Result<(), kube::Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    let mut failure = None;
    let mut written = Vec::new();
    for slice in &plan.update {
        match api.replace(&slice.name_any(), &pp, slice).await {
            Ok(s) => written.push(s),
            Err(e) => failure = Some(e),
        }
    }
    for slice in &plan.create {
        match api.create(&pp, slice).await {
            Ok(s) => written.push(s),
            Err(e) => failure = Some(e),
        }
    }
    if let Err(e) = delete(client, ns, &plan.delete).await {
        failure = Some(e);
    }
    let deadline = tokio::time::Instant::now() + SETTLE;
    let seen = |s: &EndpointSlice| {
        cache
            .get(&ObjectRef::from_obj(s))
            .and_then(|c| c.resource_version())
            == s.resource_version()
    };
    let gone = |s: &Arc<EndpointSlice>| {
        cache
            .get(&ObjectRef::from_obj(s.as_ref()))
            .is_none_or(|c| c.uid() != s.uid())
    };
    while tokio::time::Instant::now() < deadline
        && !(written.iter().all(seen) && plan.delete.iter().all(gone))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    failure.map_or(Ok(()), Err)
}

/// Deletes the slices (those already gone are no failure).
pub(crate) async fn delete(
    client: &kube::Client,
    ns: &str,
    slices: &[Arc<EndpointSlice>],
) -> Result<(), kube::Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let mut failure = None;
    for s in slices {
        match api.delete(&s.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => failure = Some(e),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// A slice's ports as a comparable key, as the API stores them (an unnamed
/// port has the name "", the protocol defaults to TCP).
pub(crate) type PortsKey = Vec<(String, Option<i32>, String, Option<String>)>;

pub(crate) fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port,
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect()
}

/// An endpoint's identity: its address and the uid of the pod behind it.
fn endpoint_key(e: &Endpoint) -> (Option<String>, Option<String>) {
    (
        e.addresses.first().cloned(),
        e.target_ref.as_ref().and_then(|r| r.uid.clone()),
    )
}

/// The endpoints of pods offering one set of ports.
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub(crate) ports: Vec<EndpointPort>,
    pub(crate) endpoints: Vec<Endpoint>,
}

/// What a set of slices belongs to: their owner (a Service here, an
/// Endpoints object for the mirroring controller), their labels, the prefix
/// of new slices' names, and whether an owner with no endpoints keeps one
/// empty slice.
#[derive(Debug)]
pub(crate) struct Owner {
    pub(crate) owner: OwnerReference,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) keep_empty: bool,
}

impl Owner {
    fn service(svc: &Service) -> Self {
        Owner {
            owner: owner_ref(svc),
            namespace: svc.namespace(),
            labels: slice_labels(svc),
            keep_empty: true,
        }
    }
}

/// The Service's endpoints, grouped by the ports their pods offer: every pod
/// selected that has an IPv4 address and has not finished, terminating ones
/// too, in the order given.
fn wanted(svc: &Service, pods: &[Arc<Pod>]) -> BTreeMap<PortsKey, Group> {
    let publish = sp::publishes_not_ready(svc);
    let mut groups: BTreeMap<PortsKey, Group> = BTreeMap::new();
    for pod in pods {
        if !sp::is_listed(pod, true) {
            continue;
        }
        let Some(ip) = sp::ipv4(pod) else { continue };
        let ports: Vec<EndpointPort> = sp::ports(svc)
            .iter()
            .filter_map(|port| {
                Some(EndpointPort {
                    name: Some(port.name.clone().unwrap_or_default()),
                    port: Some(sp::target_port(pod, port)?),
                    protocol: Some(sp::protocol(port)),
                    app_protocol: port.app_protocol.clone(),
                })
            })
            .collect();
        // A terminating pod is never ready (unless the Service publishes
        // every address), but says whether it still serves.
        let serving = publish || sp::is_ready(pod);
        let terminating = sp::is_terminating(pod);
        let endpoint = Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(publish || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: sp::hostname(pod, svc),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(sp::target_ref(pod)),
            ..Endpoint::default()
        };
        let group = groups.entry(ports_key(&ports)).or_insert_with(|| Group {
            ports,
            endpoints: Vec::new(),
        });
        group.endpoints.push(endpoint);
    }
    groups
}

/// The writes that make the Service's slices list what is wanted.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Slices to make (`generateName <owner>-`).
    pub(crate) create: Vec<EndpointSlice>,
    /// Existing slices rewritten whole, with their resourceVersion.
    pub(crate) update: Vec<EndpointSlice>,
    /// Existing slices to delete.
    pub(crate) delete: Vec<Arc<EndpointSlice>>,
}

/// A slice kept, with the endpoints it will hold.
struct Kept {
    slice: Arc<EndpointSlice>,
    endpoints: Vec<Endpoint>,
    /// Whether the endpoints differ from what the slice holds now.
    changed: bool,
}

/// Plans the writes from `existing` (the slices managed for `owner`) to
/// slices listing `wanted`:
/// - an existing slice of ports still wanted keeps the endpoints it has that
///   are still wanted, brought up to date; one left empty is deleted, as is
///   one of ports no longer wanted, one of another address type and one owned
///   by an older Service of the same name;
/// - the endpoints not yet placed fill slices already being rewritten, then
///   the other slices of their ports with room, then new slices;
/// - a slice that would be deleted is rewritten in place of one that would be
///   made;
/// - a Service with no endpoints at all has one empty slice, as in Kubernetes,
///   so that clients can tell "no endpoints" from "not yet synced" (unless
///   `owner.keep_empty` is false: then it has none).
///
/// Slices are written only when their endpoints, ports, labels or owner
/// change; a new trigger time is carried by what is written anyway.
pub(crate) fn plan(
    for_owner: &Owner,
    mut wanted: BTreeMap<PortsKey, Group>,
    existing: &[Arc<EndpointSlice>],
    trigger: Option<Timestamp>,
) -> Plan {
    let owner = &for_owner.owner;
    let labels = &for_owner.labels;
    let mut plan = Plan::default();
    let (mine, others): (Vec<_>, Vec<_>) = existing.iter().cloned().partition(|s| {
        s.address_type == "IPv4"
            && s.owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && r.uid == owner.uid)
    });
    plan.delete.extend(others);
    let empty = wanted.values().all(|g| g.endpoints.is_empty());
    if empty && !for_owner.keep_empty {
        plan.delete.extend(mine);
        return plan;
    }
    if empty {
        wanted.clear();
        wanted.insert(Vec::new(), Group::default());
    }

    // What each existing slice keeps.
    let mut placed = HashSet::new();
    let mut kept: BTreeMap<PortsKey, Vec<Kept>> = BTreeMap::new();
    let mut spare: Vec<Arc<EndpointSlice>> = Vec::new();
    for slice in mine {
        let key = ports_key(slice.ports.as_deref().unwrap_or_default());
        let Some(group) = wanted.get(&key) else {
            spare.push(slice);
            continue;
        };
        let by_key: HashMap<_, &Endpoint> = group
            .endpoints
            .iter()
            .map(|e| (endpoint_key(e), e))
            .collect();
        let endpoints: Vec<Endpoint> = slice
            .endpoints
            .iter()
            .filter_map(|e| {
                let k = endpoint_key(e);
                let want = by_key.get(&k)?;
                placed.insert(k).then(|| (*want).clone())
            })
            .collect();
        let is_placeholder = empty && kept.is_empty();
        if endpoints.is_empty() && !is_placeholder {
            spare.push(slice);
            continue;
        }
        let changed = endpoints != slice.endpoints;
        kept.entry(key).or_default().push(Kept {
            slice,
            endpoints,
            changed,
        });
    }

    // The endpoints not yet placed: first into slices being rewritten anyway,
    // then into the others with room, then into new ones.
    let mut new_slices: Vec<(Vec<EndpointPort>, Vec<Endpoint>)> = Vec::new();
    for (key, group) in &wanted {
        let mut rest = group
            .endpoints
            .iter()
            .filter(|e| !placed.contains(&endpoint_key(e)))
            .cloned()
            .peekable();
        let slices = kept.entry(key.clone()).or_default();
        slices.sort_by_key(|k| !k.changed);
        for k in slices.iter_mut() {
            while k.endpoints.len() < MAX_ENDPOINTS {
                let Some(e) = rest.next() else { break };
                k.endpoints.push(e);
                k.changed = true;
            }
        }
        let rest: Vec<Endpoint> = rest.collect();
        for chunk in rest.chunks(MAX_ENDPOINTS) {
            new_slices.push((group.ports.clone(), chunk.to_vec()));
        }
        if empty && slices.is_empty() {
            new_slices.push((Vec::new(), Vec::new()));
        }
    }

    for (key, slices) in kept {
        let ports = &wanted[&key].ports;
        for k in slices {
            let same_meta = k.slice.labels() == labels
                && k.slice.owner_references() == std::slice::from_ref(owner);
            if !k.changed && same_meta {
                continue;
            }
            plan.update.push(build(
                for_owner,
                Some(&k.slice),
                ports,
                k.endpoints,
                trigger,
            ));
        }
    }
    for (ports, endpoints) in new_slices {
        match spare.pop() {
            Some(old) => plan
                .update
                .push(build(for_owner, Some(&old), &ports, endpoints, trigger)),
            None => plan
                .create
                .push(build(for_owner, None, &ports, endpoints, trigger)),
        }
    }
    plan.delete.extend(spare);
    plan
}

/// The slice holding `endpoints` on `ports`: `base` rewritten, or a new one.
fn build(
    for_owner: &Owner,
    base: Option<&EndpointSlice>,
    ports: &[EndpointPort],
    endpoints: Vec<Endpoint>,
    trigger: Option<Timestamp>,
) -> EndpointSlice {
    let mut meta = match base {
        Some(b) => b.metadata.clone(),
        None => ObjectMeta {
            generate_name: Some(format!("{}-", for_owner.owner.name)),
            namespace: for_owner.namespace.clone(),
            ..ObjectMeta::default()
        },
    };
    meta.labels = Some(for_owner.labels.clone());
    meta.owner_references = Some(vec![for_owner.owner.clone()]);
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => annotations.insert(TRIGGER_TIME.into(), sp::format_time(t)),
        None => annotations.remove(TRIGGER_TIME),
    };
    if annotations.is_empty() {
        meta.annotations = None;
    }
    EndpointSlice {
        metadata: meta,
        address_type: "IPv4".into(),
        endpoints,
        ports: (!ports.is_empty()).then(|| ports.to_vec()),
    }
}

/// The Service's labels (but its own of the reserved two), the headless mark
/// when it has no cluster IP, the Service's name and this controller's.
fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = sp::published_labels(svc);
    labels.insert(SERVICE_NAME.into(), svc.name_any());
    labels.insert(MANAGED_BY.into(), CONTROLLER.into());
    labels
}

fn owner_ref(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.name_any(),
        uid: svc.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn svc() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "d", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
        }))
        .unwrap()
    }

    /// `n` running, ready pods serving `http` on 8080, named p000, p001, ...
    fn pods(range: std::ops::Range<usize>, ready: bool) -> Vec<Arc<Pod>> {
        range
            .map(|i| {
                Arc::new(
                    serde_json::from_value(json!({
                        "metadata": {"name": format!("p{i:03}"), "namespace": "d", "uid": format!("u{i}")},
                        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
                        "status": {"phase": "Running", "podIP": format!("10.0.{}.{}", i / 200, i % 200 + 1), "conditions": [
                            {"type": "Ready", "status": if ready { "True" } else { "False" }}
                        ]}
                    }))
                    .unwrap(),
                )
            })
            .collect()
    }

    /// Plans and "writes" the plan: created slices get names, updated ones
    /// replace theirs, deleted ones go. Returns the plan's (create, update,
    /// delete) counts and the slices after.
    fn step(
        pods: &[Arc<Pod>],
        slices: Vec<Arc<EndpointSlice>>,
    ) -> ((usize, usize, usize), Vec<Arc<EndpointSlice>>) {
        let s = svc();
        let p = plan(&Owner::service(&s), wanted(&s, pods), &slices, None);
        let counts = (p.create.len(), p.update.len(), p.delete.len());
        let mut after: Vec<Arc<EndpointSlice>> = slices
            .into_iter()
            .filter(|x| !p.delete.iter().any(|d| d.name_any() == x.name_any()))
            .filter(|x| !p.update.iter().any(|u| u.name_any() == x.name_any()))
            .collect();
        after.extend(p.update.into_iter().map(Arc::new));
        for (i, mut c) in p.create.into_iter().enumerate() {
            c.metadata.name = Some(format!("web-new{}-{i}", after.len()));
            after.push(Arc::new(c));
        }
        after.sort_by_key(|s| s.name_any());
        (counts, after)
    }

    fn sizes(slices: &[Arc<EndpointSlice>]) -> Vec<usize> {
        let mut n: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
        n.sort();
        n
    }

    #[test]
    fn slices_of_at_most_a_hundred() {
        let (counts, slices) = step(&pods(0..250, true), Vec::new());
        assert_eq!(counts, (3, 0, 0));
        assert_eq!(sizes(&slices), [50, 100, 100]);
        let s = &slices[0];
        assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(s.labels()[SERVICE_NAME], "web");
        assert_eq!(s.labels()[MANAGED_BY], CONTROLLER);
        assert_eq!(s.labels()["team"], "a");
        let owner = &s.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Service", "svc-uid", Some(true))
        );
        assert_eq!(
            serde_json::to_value(&s.ports).unwrap(),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        let e = serde_json::to_value(&s.endpoints[0]).unwrap();
        assert_eq!(
            e["conditions"],
            json!({"ready": true, "serving": true, "terminating": false})
        );
        assert_eq!(e["nodeName"], "n1");
        assert_eq!(e["targetRef"]["kind"], "Pod");

        // Nothing changed: nothing written.
        let (counts, again) = step(&pods(0..250, true), slices.clone());
        assert_eq!(counts, (0, 0, 0));
        assert_eq!(again.len(), 3);

        // Down to 120 pods: the slices that lost pods are rewritten, one left
        // empty is deleted.
        let (counts, fewer) = step(&pods(0..120, true), slices);
        assert_eq!(counts.2, 1, "{counts:?}");
        assert_eq!(sizes(&fewer).iter().sum::<usize>(), 120);
        assert_eq!(fewer.len(), 2);

        // Up to 130: the new ones go into a slice with room, not a new one.
        let (counts, more) = step(&pods(0..130, true), fewer);
        assert_eq!(counts, (0, 1, 0));
        assert_eq!(sizes(&more).iter().sum::<usize>(), 130);
    }

    #[test]
    fn readiness_and_terminating() {
        let mut list = pods(0..2, false);
        let mut dying = (*pods(2..3, true)[0]).clone();
        dying.metadata.deletion_timestamp =
            serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap();
        list.push(Arc::new(dying));
        let (_, slices) = step(&list, Vec::new());
        let conditions: Vec<Value> = slices[0]
            .endpoints
            .iter()
            .map(|e| serde_json::to_value(&e.conditions).unwrap())
            .collect();
        assert_eq!(
            conditions,
            [
                json!({"ready": false, "serving": false, "terminating": false}),
                json!({"ready": false, "serving": false, "terminating": false}),
                json!({"ready": false, "serving": true, "terminating": true}),
            ]
        );
        // Becoming ready is one rewrite of the slice.
        let (counts, slices) = step(&pods(0..2, true), slices);
        assert_eq!(counts, (0, 1, 0));
        assert_eq!(slices[0].endpoints.len(), 2);
    }

    #[test]
    fn no_endpoints_keeps_one_empty_slice_and_reuses_it() {
        let (counts, slices) = step(&[], Vec::new());
        assert_eq!(counts, (1, 0, 0));
        assert!(slices[0].endpoints.is_empty());
        assert_eq!(slices[0].ports, None);
        assert_eq!(step(&[], slices.clone()).0, (0, 0, 0));
        // Pods arrive: the empty slice is rewritten rather than replaced.
        let (counts, slices) = step(&pods(0..3, true), slices);
        assert_eq!(counts, (0, 1, 0));
        assert_eq!(sizes(&slices), [3]);
        // And back to none: the same slice is emptied.
        let (counts, slices) = step(&[], slices);
        assert_eq!(counts, (0, 1, 0));
        assert_eq!(sizes(&slices), [0]);
        assert_eq!(slices[0].ports, None);
    }

    #[test]
    fn duplicates_and_foreign_slices_are_cleaned_up() {
        let (_, mut slices) = step(&pods(0..3, true), Vec::new());
        // A second copy of the same slice (as a stale cache could make).
        let mut copy = (*slices[0]).clone();
        copy.metadata.name = Some("web-copy".into());
        slices.push(Arc::new(copy));
        // A slice of an older Service of the same name.
        let mut old = (*slices[0]).clone();
        old.metadata.name = Some("web-old".into());
        old.metadata.owner_references.as_mut().unwrap()[0].uid = "older".into();
        slices.push(Arc::new(old));
        let (counts, after) = step(&pods(0..3, true), slices);
        assert_eq!(counts, (0, 0, 2));
        assert_eq!(sizes(&after), [3]);
    }
}
