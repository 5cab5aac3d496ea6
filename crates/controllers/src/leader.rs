//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's
//! leaderelection does it, so that with several servers one scheduler and
//! one set of controllers act.
//!
//! A candidate takes the Lease when nobody holds it or when the holder has
//! not renewed it for `leaseDurationSeconds` of the candidate's own clock
//! (the time is measured from when the candidate last saw the record change,
//! never from the timestamps written in it, so clocks need not agree). The
//! leader renews every `RETRY`; if it cannot renew within `RENEW_DEADLINE`
//! it stops its work and becomes a candidate again. Writes use the Lease's
//! resourceVersion, so two candidates never both win. A leader that stops
//! cleanly gives the Lease up at once.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

/// How long a Lease not renewed stays the holder's (kube-controller-manager
/// uses 15 s; ours is shorter so a handover after a crash takes at most
/// `LEASE + 2 * RETRY`, 10 s: a candidate sees the last renewal up to one
/// `RETRY` late, and notices the expiry up to one `RETRY` late).
pub const LEASE: Duration = Duration::from_secs(8);
/// How long the leader keeps working without a successful renewal.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(6);
/// How often the leader renews and candidates try.
pub const RETRY: Duration = Duration::from_secs(1);

/// One candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// The record last seen, and when (by our clock) it last changed.
    seen: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    /// A candidate `identity` for the Lease `namespace/name`.
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            seen: None,
        }
    }

    /// Takes or renews the Lease if that is allowed now; returns whether we
    /// hold it.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let mine = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE.as_secs() as i32),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        };
        let current = match self.api.get_opt(&self.name).await? {
            Some(l) => l,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(mine.clone()),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => {
                        self.seen = Some((mine, Instant::now()));
                        Ok(true)
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                };
            }
        };
        let record = current.spec.clone().unwrap_or_default();
        // Note when the record last changed, by our clock.
        let observed = match &self.seen {
            Some((old, at)) if *old == record => *at,
            _ => Instant::now(),
        };
        self.seen = Some((record.clone(), observed));
        let holder = record.holder_identity.as_deref().unwrap_or_default();
        let held_by_us = holder == self.identity;
        let duration = record
            .lease_duration_seconds
            .map_or(LEASE, |s| Duration::from_secs(s.max(0) as u64));
        if !holder.is_empty() && !held_by_us && observed.elapsed() < duration {
            return Ok(false);
        }
        let mut spec = mine;
        if held_by_us {
            spec.acquire_time = record.acquire_time.clone();
            spec.lease_transitions = record.lease_transitions;
        } else {
            spec.lease_transitions = Some(record.lease_transitions.unwrap_or(0) + 1);
        }
        let mut lease = current;
        lease.spec = Some(spec.clone());
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.seen = Some((spec, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if we hold it, so another candidate takes it now.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        self.seen = None;
        Ok(())
    }

    /// Waits until we hold the Lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::debug!(lease = %self.name, error = %e, "leader election"),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Renews the Lease every `RETRY`; returns once a renewal has not
    /// succeeded for `RENEW_DEADLINE` or someone else holds it.
    pub async fn keep(&mut self) {
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(RETRY).await;
            match tokio::time::timeout(2 * RETRY, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last = Instant::now(),
                Ok(Ok(false)) => return,
                Ok(Err(e)) => tracing::debug!(lease = %self.name, error = %e, "renewing the lease"),
                Err(_) => tracing::debug!(lease = %self.name, "renewing the lease timed out"),
            }
            if last.elapsed() >= RENEW_DEADLINE {
                return;
            }
        }
    }
}

/// Runs `work` whenever this candidate leads: it waits for the Lease, runs
/// `work()` while renewing it, and drops the work (and waits again) if the
/// Lease is lost. Returns when `stop` completes (giving the Lease up, so
/// another candidate leads at once) or when the work itself returns.
pub async fn run_elected<F, Fut>(
    mut elector: Elector,
    stop: impl Future<Output = ()>,
    mut work: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = elector.acquire() => {}
            () = &mut stop => return Ok(()),
        }
        tracing::info!(lease = %elector.name, identity = %elector.identity, "became the leader");
        let result = tokio::select! {
            r = work() => Some(r),
            () = elector.keep() => None,
            () = &mut stop => Some(Ok(())),
        };
        match result {
            Some(r) => {
                if let Err(e) = elector.release().await {
                    tracing::debug!(lease = %elector.name, error = %e, "giving the lease up");
                }
                return r;
            }
            None => {
                tracing::warn!(lease = %elector.name, "lost the lease; stopping until elected again");
            }
        }
    }
}
