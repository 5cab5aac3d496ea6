//! The resource quota controller: keeps `status.hard` (a copy of
//! `spec.hard`) and `status.used` of every ResourceQuota true, recounting
//! the namespace's objects through `kinds::usage`, the same counting the
//! API server's quota admission charges with. Deletions and finished pods
//! give their usage back here.
//!
//! The quota is read fresh before the objects are listed, and the status is
//! written conditioned on that read: usage that admission charged in
//! between makes the write conflict and the count is taken again, so a
//! recount never erases a charge for an object it did not see.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::Value;

use crate::informers::{Informers, Kind};

/// How often each quota is counted again without a change it heard of
/// (objects of `count/<resource>.<group>` are not watched).
const RESYNC: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

struct Ctx {
    client: kube::Client,
}

/// Runs the controller until the task is dropped.
pub async fn run(informers: Informers) -> anyhow::Result<()> {
    let quotas = informers.get::<ResourceQuota>().await;
    let ctx = Arc::new(Ctx {
        client: informers.client(),
    });
    let store = quotas.store();
    // A change to a counted object wakes every quota of its namespace.
    Controller::for_stream(quotas.stream(), quotas.store())
        .watches_stream(informers.get::<Pod>().await.stream(), wake(&store))
        .watches_stream(informers.get::<Service>().await.stream(), wake(&store))
        .watches_stream(informers.get::<ConfigMap>().await.stream(), wake(&store))
        .watches_stream(informers.get::<Secret>().await.stream(), wake(&store))
        .watches_stream(
            informers.get::<PersistentVolumeClaim>().await.stream(),
            wake(&store),
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "resourcequota reconcile");
            }
            std::future::ready(())
        })
        .await;
    anyhow::bail!("the resourcequota controller ended")
}

fn wake<K: Kind>(
    quotas: &Store<ResourceQuota>,
) -> impl Fn(K) -> Vec<ObjectRef<ResourceQuota>> + Send + Sync + 'static {
    let quotas = quotas.clone();
    move |obj: K| {
        let ns = obj.namespace();
        quotas
            .state()
            .iter()
            .filter(|q| q.namespace() == ns)
            .map(|q| ObjectRef::from_obj(q.as_ref()))
            .collect()
    }
}

fn error_policy(quota: Arc<ResourceQuota>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(quota = %quota.name_any(), %error, "resourcequota sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// Where the objects of `group`/`resource` are listed.
async fn api_resource(
    client: &kube::Client,
    group: &str,
    resource: &str,
) -> Result<Option<ApiResource>, Error> {
    if group.is_empty() {
        let kind = match resource {
            "pods" => "Pod",
            "services" => "Service",
            "configmaps" => "ConfigMap",
            "secrets" => "Secret",
            "persistentvolumeclaims" => "PersistentVolumeClaim",
            "replicationcontrollers" => "ReplicationController",
            "resourcequotas" => "ResourceQuota",
            "limitranges" => "LimitRange",
            "events" => "Event",
            "serviceaccounts" => "ServiceAccount",
            "endpoints" => "Endpoints",
            "podtemplates" => "PodTemplate",
            _ => return Ok(None),
        };
        return Ok(Some(ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: kind.into(),
            plural: resource.into(),
        }));
    }
    let Ok(found) = kube::discovery::group(client, group).await else {
        return Ok(None);
    };
    Ok(found
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.plural == resource)
        .map(|(r, _)| r))
}

/// The usage of every resource `hard` names, counted over the namespace's
/// objects the quota's scopes select.
async fn count(
    client: &kube::Client,
    quota: &Value,
    ns: &str,
    hard: &BTreeMap<String, Quantity>,
) -> Result<BTreeMap<String, Quantity>, Error> {
    let mut sums: kinds::usage::Usage = hard
        .keys()
        .map(|k| (k.clone(), kinds::Quantity::from_int(0)))
        .collect();
    let mut sources: Vec<(String, String)> = hard
        .keys()
        .filter_map(|k| kinds::usage::counted_by(k))
        .collect();
    sources.sort();
    sources.dedup();
    for (group, resource) in sources {
        let Some(ar) = api_resource(client, &group, &resource).await? else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        for obj in api.list(&ListParams::default()).await? {
            let obj = serde_json::to_value(&obj)?;
            if !kinds::usage::in_scope(quota, &group, &resource, &obj) {
                continue;
            }
            for (k, q) in kinds::usage::usage(&group, &resource, &obj) {
                if let Some(sum) = sums.get_mut(&k) {
                    *sum = sum.plus(q);
                }
            }
        }
    }
    Ok(sums
        .into_iter()
        .map(|(k, q)| (k, Quantity(q.to_string())))
        .collect())
}

async fn reconcile(cached: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(mut quota) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    if quota.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let hard: BTreeMap<String, Quantity> = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let used = count(&ctx.client, &serde_json::to_value(&quota)?, &ns, &hard).await?;
    let status = ResourceQuotaStatus {
        hard: Some(hard),
        used: Some(used),
    };
    if quota.status.as_ref() != Some(&status) {
        quota.status = Some(status);
        match api
            .replace_status(&name, &PostParams::default(), &quota)
            .await
        {
            Ok(_) => {}
            // Admission charged the quota meanwhile: count again.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(50)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::requeue(RESYNC))
}
