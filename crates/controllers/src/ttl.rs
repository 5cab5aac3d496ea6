//! The TTL-after-finished controller: deletes a Job `ttlSecondsAfterFinished`
//! seconds after it finished (the time of its Complete or Failed condition),
//! in the foreground, so that its pods go before it, as
//! kube-controller-manager does.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};

use crate::informers::Informers;
use crate::job::finished;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the Job has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: kube::Client,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let jobs = informers.get::<Job>().await;
    let ctx = Arc::new(Ctx {
        client: informers.client(),
    });
    Controller::for_stream(jobs.stream(), jobs.store())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "ttl-after-finished reconcile");
            }
            std::future::ready(())
        })
        .await;
    anyhow::bail!("the ttl-after-finished controller ended")
}

fn error_policy(job: Arc<Job>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(job = %job.name_any(), %error, "ttl-after-finished failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// How long until the Job is to be deleted (zero: now), or `None` if it
/// is not to be deleted (no TTL, not finished, or being deleted already).
fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let at = finished(job)?.as_second() + i64::from(ttl.max(0));
    Some(Duration::from_secs((at - now.as_second()).max(0) as u64))
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let Some(left) = time_left(&job, Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    if !left.is_zero() {
        return Ok(Action::requeue(left + Duration::from_millis(200)));
    }
    // The cache may be behind: the TTL could have been changed or removed.
    let api: Api<Job> = Api::namespaced(
        ctx.client.clone(),
        &job.namespace().ok_or(Error::NoNamespace)?,
    );
    let Some(fresh) = api.get_opt(&job.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if fresh.uid() != job.uid() {
        return Ok(Action::await_change());
    }
    match time_left(&fresh, Timestamp::now()) {
        Some(left) if left.is_zero() => {}
        Some(left) => return Ok(Action::requeue(left + Duration::from_millis(200))),
        None => return Ok(Action::await_change()),
    }
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: fresh.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    tracing::info!(job = %fresh.name_any(), "deleting a finished job whose TTL has passed");
    match api.delete(&fresh.name_any(), &dp).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
