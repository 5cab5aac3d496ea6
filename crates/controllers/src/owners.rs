//! What the controllers that own objects share: controller references, and
//! adopting or releasing objects by rewriting their `ownerReferences`.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
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

/// The object of kind `O` that controls the object with `meta`, if its
/// controller is one.
pub fn controller_of<O: Resource<DynamicType = ()>>(meta: &ObjectMeta) -> Option<ObjectRef<O>> {
    let r = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))?;
    let group = O::group(&());
    let same_group = r.api_version.split_once('/').map_or("", |(g, _)| g) == group;
    (r.kind == O::kind(&()) && same_group)
        .then(|| ObjectRef::new(&r.name).within(meta.namespace.as_deref().unwrap_or_default()))
}

/// The owners of kind `O` a pod should wake: its controller if it has one,
/// else every `O` of its namespace that `would_adopt` it.
pub fn owners_to_wake<O>(
    owners: &Store<O>,
    pod: &Pod,
    would_adopt: impl Fn(&O, &Pod) -> bool,
) -> Vec<ObjectRef<O>>
where
    O: Resource<DynamicType = ()> + Clone + 'static,
{
    if controller_uid(&pod.metadata).is_some() {
        return controller_of(&pod.metadata).into_iter().collect();
    }
    owners
        .state()
        .iter()
        .filter(|o| o.meta().namespace == pod.metadata.namespace)
        .filter(|o| would_adopt(o, pod))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Adopts the live orphan pods of `owner`'s namespace that are `member`s and
/// releases the children that no longer are, then waits for the cache to
/// show it.
pub async fn claim_pods<O>(
    api: &Api<Pod>,
    pods: &Store<Pod>,
    owner: &O,
    member: impl Fn(&Pod) -> bool,
) -> Result<(), kube::Error>
where
    O: Resource<DynamicType = ()>,
{
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let mut claimed = Vec::new();
    for p in pods.state() {
        if p.metadata.namespace != owner.meta().namespace {
            continue;
        }
        let live = p.metadata.deletion_timestamp.is_none()
            && !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
        match controller_uid(&p.metadata) {
            None if live && member(&p) => adopt(api, p.as_ref(), owner).await?,
            Some(o) if o == uid && !member(&p) => release(api, p.as_ref(), &uid).await?,
            _ => continue,
        }
        claimed.push(p.uid().unwrap_or_default());
    }
    if !claimed.is_empty() {
        settle(pods, |now| {
            claimed.iter().all(|u| {
                now.iter()
                    .find(|p| p.metadata.uid.as_deref() == Some(u))
                    .is_none_or(|p| {
                        (controller_uid(&p.metadata) == Some(uid.as_str())) == member(p)
                    })
            })
        })
        .await;
    }
    Ok(())
}
