//! Addresses for Services of type LoadBalancer, the part a cloud provider's service
//! controller (or MetalLB's controller on bare metal) plays: every such Service without an
//! address gets the lowest free one of the server's `--load-balancer-pool`, written to
//! `status.loadBalancer.ingress` (`ipMode: VIP`); the node agents then announce it and
//! serve it through the Service proxy. `spec.loadBalancerIP`, when set, is the address
//! asked for: it is given if it is in the pool and free, otherwise the Service gets a
//! Warning and waits. A Service that stops being a LoadBalancer (or is deleted) frees its
//! address; the taken set is recomputed from the Service cache on every pass, so the only
//! state is the addresses written but not yet seen in the cache, held under the lock the
//! allocation takes. Services with a `loadBalancerClass` other than ours are left to their
//! own implementation. Without a pool the controller does nothing: Services stay pending,
//! as on a cluster without a load balancer provider.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::sync::Mutex;

use crate::events::Events;
use crate::informers::Informers;

/// The `spec.loadBalancerClass` this controller serves (as well as Services with none).
pub const CLASS: &str = "gantry.dev/load-balancer";

/// One block of a pool: an inclusive range of addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Block {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }
}

impl FromStr for Block {
    type Err = String;

    /// `192.0.2.0/28` (its host addresses) or `192.0.2.10-192.0.2.20`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let parse = |x: &str| {
                x.trim()
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("{x:?} is not an IPv4 address"))
            };
            let (first, last) = (parse(a)?, parse(b)?);
            if first > last {
                return Err(format!("{s:?}: the range ends before it starts"));
            }
            return Ok(Self { first, last });
        }
        let net: Ipv4Net = s
            .parse()
            .map_err(|_| format!("{s:?} is neither a CIDR nor a range FIRST-LAST"))?;
        let mut hosts = net.hosts();
        let first = hosts
            .next()
            .ok_or_else(|| format!("{s:?} has no address"))?;
        let last = hosts.next_back().unwrap_or(first);
        Ok(Self { first, last })
    }
}

/// The addresses the controller hands out; empty turns it off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub pool: Vec<Block>,
}

impl Settings {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        self.pool.iter().any(|b| b.contains(ip))
    }

    /// The lowest address of the pool not in `taken`.
    pub fn lowest_free(&self, taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let mut blocks = self.pool.clone();
        blocks.sort_by_key(|b| b.first);
        blocks.iter().find_map(|b| {
            (u32::from(b.first)..=u32::from(b.last))
                .map(Ipv4Addr::from)
                .find(|ip| !taken.contains(ip))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct Ctx {
    client: kube::Client,
    services: Store<Service>,
    settings: Settings,
    events: Events,
    /// Addresses written but maybe not in the cache yet, by `namespace/name`; allocation
    /// holds this lock, so two Services are never given one address.
    in_flight: Mutex<BTreeMap<String, Ipv4Addr>>,
    /// Problems already reported, so a Service's every change does not repeat its event.
    reported: std::sync::Mutex<BTreeSet<(String, String)>>,
}

/// Runs the allocator until the task is dropped (or forever idle without a pool).
pub async fn run(informers: Informers, settings: Settings) -> anyhow::Result<()> {
    if settings.pool.is_empty() {
        return std::future::pending().await;
    }
    let services = informers.get::<Service>().await;
    let client = informers.client();
    let ctx = Arc::new(Ctx {
        events: Events::new(client.clone(), "service-lb-controller"),
        client,
        services: services.store(),
        settings,
        in_flight: Mutex::default(),
        reported: Default::default(),
    });
    Controller::for_stream(services.stream(), services.store())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "load balancer reconcile");
            }
            std::future::ready(())
        })
        .await;
    anyhow::bail!("the load balancer controller ended")
}

fn error_policy(svc: Arc<Service>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(service = %key(&svc), %error, "assigning a load balancer address failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

fn key(svc: &Service) -> String {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

/// Whether this controller gives `svc` its address.
pub fn is_ours(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec
            .load_balancer_class
            .as_deref()
            .is_none_or(|c| c == CLASS)
        && svc.metadata.deletion_timestamp.is_none()
}

/// The IPv4 addresses in a Service's `status.loadBalancer.ingress`.
pub fn status_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Ctx {
    /// Publishes a Warning about `svc` once per reason and subject.
    async fn warn_once(&self, svc: &Service, reason: &str, note: String) {
        let k = (
            format!("{}/{}", key(svc), svc.uid().unwrap_or_default()),
            note.clone(),
        );
        if !self.reported.lock().expect("not poisoned").insert(k) {
            return;
        }
        tracing::warn!(service = %key(svc), reason, "{note}");
        self.events
            .publish(svc, EventType::Warning, reason, note)
            .await;
    }

    async fn write_status(&self, svc: &Service, ip: Option<Ipv4Addr>) -> Result<(), kube::Error> {
        let ingress = match ip {
            Some(ip) => json!([{"ip": ip.to_string(), "ipMode": "VIP"}]),
            None => json!(null),
        };
        // The cache's resourceVersion: a Service changed meanwhile makes this a conflict,
        // and the next round looks again.
        let patch = json!({
            "metadata": {"resourceVersion": svc.resource_version()},
            "status": {"loadBalancer": {"ingress": ingress}},
        });
        let api: Api<Service> =
            Api::namespaced(self.client.clone(), &svc.namespace().unwrap_or_default());
        api.patch_status(
            &svc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .map(drop)
    }
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let me = key(&svc);
    let mine = status_ips(&svc);
    let held: Vec<Ipv4Addr> = mine
        .iter()
        .copied()
        .filter(|ip| ctx.settings.contains(*ip))
        .collect();
    if !is_ours(&svc) {
        ctx.in_flight.lock().await.remove(&me);
        // Give back what we gave it; another implementation's addresses are not ours.
        let not_ours_class = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_class.as_deref())
            .is_some_and(|c| c != CLASS);
        if !held.is_empty() && !not_ours_class && svc.metadata.deletion_timestamp.is_none() {
            match ctx.write_status(&svc, None).await {
                Ok(()) => {
                    tracing::info!(service = %me, ?held, "released its load balancer address")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    return Ok(Action::requeue(Duration::from_millis(200)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(Action::await_change());
    }

    let mut in_flight = ctx.in_flight.lock().await;
    let others: Vec<Arc<Service>> = ctx
        .services
        .state()
        .into_iter()
        .filter(|s| key(s) != me && is_ours(s))
        .collect();
    // Forget writes the cache has caught up with, and Services that are gone.
    in_flight.retain(|k, ip| {
        if k == &me {
            return !mine.contains(ip);
        }
        others
            .iter()
            .any(|o| &key(o) == k && !status_ips(o).contains(ip))
    });
    let mut taken: BTreeSet<Ipv4Addr> = others.iter().flat_map(|s| status_ips(s)).collect();
    taken.extend(
        in_flight
            .iter()
            .filter(|(k, _)| *k != &me)
            .map(|(_, ip)| *ip),
    );
    let requested: Option<Ipv4Addr> = match svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => match s.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                let note = format!("spec.loadBalancerIP {s:?} is not an IPv4 address");
                ctx.warn_once(&svc, "AllocationFailed", note).await;
                return Ok(Action::await_change());
            }
        },
    };
    // Already served, and still what was asked for: nothing to do. An address another
    // Service also shows (a restore, a race lost elsewhere) goes to the older one.
    if let [ip] = held.as_slice()
        && requested.is_none_or(|r| r == *ip)
        && (!taken.contains(ip) || older_than_rivals(&svc, *ip, &others))
    {
        return Ok(Action::await_change());
    }
    if in_flight
        .get(&me)
        .is_some_and(|ip| requested.is_none_or(|r| r == *ip))
    {
        return Ok(Action::await_change());
    }
    let ip = match requested {
        Some(r) if !ctx.settings.contains(r) => {
            let note = format!("the requested address {r} is not in the load balancer pool");
            ctx.warn_once(&svc, "AllocationFailed", note).await;
            return Ok(Action::await_change());
        }
        Some(r) if taken.contains(&r) => {
            let note = format!("the requested address {r} is already in use by another Service");
            ctx.warn_once(&svc, "AllocationFailed", note).await;
            return Ok(Action::requeue(Duration::from_secs(10)));
        }
        Some(r) => r,
        None => match ctx.settings.lowest_free(&taken) {
            Some(ip) => ip,
            None => {
                let note = "no address of the load balancer pool is free".to_owned();
                ctx.warn_once(&svc, "AllocationFailed", note).await;
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
        },
    };
    match ctx.write_status(&svc, Some(ip)).await {
        Ok(()) => {
            in_flight.insert(me.clone(), ip);
            tracing::info!(service = %me, %ip, "assigned a load balancer address");
            ctx.events
                .publish(
                    svc.as_ref(),
                    EventType::Normal,
                    "IPAllocated",
                    format!("Assigned IP [\"{ip}\"]"),
                )
                .await;
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `svc` was made before every other Service that shows `ip`.
fn older_than_rivals(svc: &Service, ip: Ipv4Addr, others: &[Arc<Service>]) -> bool {
    let born = |s: &Service| (s.metadata.creation_timestamp.clone().map(|t| t.0), key(s));
    others
        .iter()
        .filter(|o| status_ips(o).contains(&ip))
        .all(|o| born(svc) < born(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn pools_are_cidrs_or_ranges() {
        let b: Block = "192.0.2.0/30".parse().unwrap();
        assert_eq!((b.first, b.last), (ip("192.0.2.1"), ip("192.0.2.2")));
        let b: Block = "192.0.2.7/32".parse().unwrap();
        assert_eq!((b.first, b.last), (ip("192.0.2.7"), ip("192.0.2.7")));
        let b: Block = "192.0.2.10 - 192.0.2.12".parse().unwrap();
        assert_eq!((b.first, b.last), (ip("192.0.2.10"), ip("192.0.2.12")));
        assert!("192.0.2.12-192.0.2.10".parse::<Block>().is_err());
        assert!("192.0.2.0/33".parse::<Block>().is_err());
        assert!("lb".parse::<Block>().is_err());
    }

    #[test]
    fn the_lowest_free_address_across_blocks() {
        let settings = Settings {
            pool: vec![
                "198.51.100.5-198.51.100.6".parse().unwrap(),
                "192.0.2.0/30".parse().unwrap(),
            ],
        };
        let mut taken = BTreeSet::new();
        assert_eq!(settings.lowest_free(&taken), Some(ip("192.0.2.1")));
        taken.insert(ip("192.0.2.1"));
        taken.insert(ip("192.0.2.2"));
        assert_eq!(settings.lowest_free(&taken), Some(ip("198.51.100.5")));
        taken.insert(ip("198.51.100.5"));
        taken.insert(ip("198.51.100.6"));
        assert_eq!(settings.lowest_free(&taken), None);
        assert!(settings.contains(ip("198.51.100.6")));
        assert!(!settings.contains(ip("192.0.2.3")));
    }
}
