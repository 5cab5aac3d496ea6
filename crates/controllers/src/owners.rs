//! What the controllers that own objects share: controller references, and
//! adopting or releasing objects by rewriting their `ownerReferences`.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

/// How long a reconcile waits for its cache to show its own writes.
pub const SETTLE: Duration = Duration::from_secs(10);

/// The uid of the object's controller, if it has one.
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// The controller reference `owner` puts on the objects it makes.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Makes `owner` the controller of `obj` (adopt).
pub async fn adopt<O, K>(api: &Api<K>, obj: &K, owner: &O) -> Result<(), kube::Error>
where
    O: Resource<DynamicType = ()>,
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut refs = obj.meta().owner_references.clone().unwrap_or_default();
    refs.push(controller_ref(owner));
    set_owners(api, obj, refs).await
}

/// Removes the reference to `owner_uid` from `obj` (release).
pub async fn release<K>(api: &Api<K>, obj: &K, owner_uid: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let refs: Vec<OwnerReference> = obj
        .meta()
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != owner_uid)
        .cloned()
        .collect();
    set_owners(api, obj, refs).await
}

/// Sets an object's ownerReferences, if it has not changed since the cache
/// saw it (a conflict is an error: the next reconcile looks again).
async fn set_owners<K>(api: &Api<K>, obj: &K, refs: Vec<OwnerReference>) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch = json!({
        "metadata": {
            "ownerReferences": refs,
            "resourceVersion": obj.meta().resource_version,
        }
    });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone already: nothing to adopt or release.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Waits until `seen` holds for the cache (or `SETTLE` passes).
pub async fn settle<K>(store: &Store<K>, seen: impl Fn(&[Arc<K>]) -> bool)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !seen(&store.state()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the cache holds `uid` at resource version `rv` or later, or no
/// longer holds it.
pub fn caught_up<K: Resource>(objs: &[Arc<K>], uid: &str, rv: &str) -> bool {
    let Ok(want) = rv.parse::<u64>() else {
        return true;
    };
    objs.iter()
        .find(|o| o.meta().uid.as_deref() == Some(uid))
        .is_none_or(|o| {
            o.meta()
                .resource_version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|have| have >= want)
        })
}
