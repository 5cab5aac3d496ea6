//! ControllerRevisions, the template history StatefulSets and DaemonSets
//! keep (kube-controller-manager's `history` package): one revision per
//! distinct pod template, numbered in the order the templates were last
//! used, which is what `kubectl rollout history` lists and `rollout undo`
//! patches back onto its owner.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::owners::{controller_ref, controller_uid, settle};

/// The label kube-controller-manager keeps a StatefulSet revision's hash in.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// The label on pods (and DaemonSet revisions) naming their revision.
pub const POD_REVISION_LABEL: &str = "controller-revision-hash";

/// What a revision records: the patch that puts its template back on the
/// owner (the same shape kubectl computes for `rollout undo`).
pub fn patch_data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    if let Some(o) = t.as_object_mut() {
        o.insert("$patch".into(), json!("replace"));
    }
    json!({ "spec": { "template": t } })
}

/// The pod template a revision records.
pub fn template_of(revision: &ControllerRevision) -> PodTemplateSpec {
    let mut t = revision
        .data
        .as_ref()
        .and_then(|d| d.0.pointer("/spec/template"))
        .cloned()
        .unwrap_or_default();
    if let Some(o) = t.as_object_mut() {
        o.remove("$patch");
    }
    serde_json::from_value(t).unwrap_or_default()
}

/// kube-controller-manager's hash of a revision's data: 32-bit FNV-1 of
/// the data's bytes and the collision count's digits, its decimal digits
/// spelled with characters that make no words.
pub fn data_hash(data: &Value, collisions: i32) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let bytes = data.to_string().into_bytes();
    for b in bytes.iter().chain(collisions.to_string().as_bytes()) {
        h = h.wrapping_mul(0x0100_0193);
        h ^= u32::from(*b);
    }
    safe_encode(&h.to_string())
}

/// apimachinery's `rand.SafeEncodeString`.
pub fn safe_encode(s: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// The name of the revision with hash `hash` of owner `owner`.
pub fn revision_name(owner: &str, hash: &str) -> String {
    let prefix: String = owner.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// One owner's history after [`sync`]: its revisions, oldest first, the
/// one that records its template now, and the collision count to write
/// back to its status.
pub struct History {
    pub revisions: Vec<ControllerRevision>,
    pub update: ControllerRevision,
    pub collision_count: i32,
}

/// What differs between the owners that keep a history.
pub struct Naming {
    /// The hash naming a revision of `data` at a collision count.
    pub hash: fn(&Value, i32) -> String,
    /// The label the hash is also written to.
    pub hash_label: &'static str,
}

/// The revisions `owner` controls, oldest first.
pub fn owned<K: Resource>(store: &Store<ControllerRevision>, owner: &K) -> Vec<ControllerRevision> {
    let ns = owner.meta().namespace.clone();
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let mut revs: Vec<ControllerRevision> = store
        .state()
        .iter()
        .filter(|r| r.metadata.namespace == ns)
        .filter(|r| controller_uid(&r.metadata) == Some(uid.as_str()))
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .map(|r| ControllerRevision::clone(r))
        .collect();
    revs.sort_by(|a, b| {
        (a.revision, &a.metadata.creation_timestamp, a.name_any()).cmp(&(
            b.revision,
            &b.metadata.creation_timestamp,
            b.name_any(),
        ))
    });
    revs
}

/// Makes sure a revision records `template`, the newest one: an old
/// revision with the same data is renumbered past the others (which is how
/// `rollout undo` shows up in the history), otherwise one is made.
pub async fn sync<K>(
    client: &kube::Client,
    store: &Store<ControllerRevision>,
    owner: &K,
    template: &PodTemplateSpec,
    collision_count: i32,
    naming: &Naming,
) -> Result<History, kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let mut revisions = owned(store, owner);
    let data = patch_data(template);
    let newest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let mut collision_count = collision_count;
    let equal = revisions
        .iter()
        .rposition(|r| r.data.as_ref().map(|d| &d.0) == Some(&data));
    let update = match equal {
        Some(i) if revisions[i].revision == newest => revisions[i].clone(),
        Some(i) => {
            let renumbered = api
                .patch(
                    &revisions[i].name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "revision": newest + 1 })),
                )
                .await?;
            revisions[i] = renumbered.clone();
            renumbered
        }
        None => {
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            loop {
                let hash = (naming.hash)(&data, collision_count);
                labels.insert(naming.hash_label.into(), hash.clone());
                let owner_name = owner.meta().name.clone().unwrap_or_default();
                let rev = ControllerRevision {
                    metadata: ObjectMeta {
                        name: Some(revision_name(&owner_name, &hash)),
                        namespace: Some(ns.clone()),
                        labels: Some(labels.clone()),
                        annotations: owner.meta().annotations.clone(),
                        owner_references: Some(vec![controller_ref(owner)]),
                        ..ObjectMeta::default()
                    },
                    data: Some(RawExtension(data.clone())),
                    revision: newest + 1,
                };
                match api.create(&PostParams::default(), &rev).await {
                    Ok(made) => {
                        revisions.push(made.clone());
                        break made;
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        let there = api.get(&rev.name_any()).await?;
                        if there.data.as_ref().map(|d| &d.0) == Some(&data)
                            && controller_uid(&there.metadata) == owner.meta().uid.as_deref()
                        {
                            revisions.push(there.clone());
                            break there;
                        }
                        collision_count += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    };
    let (uid, rv) = (update.uid().unwrap_or_default(), update.resource_version());
    settle(store, |revs: &[Arc<ControllerRevision>]| {
        rv.as_deref()
            .is_none_or(|rv| crate::owners::caught_up(revs, &uid, rv))
            && revs
                .iter()
                .any(|r| r.uid().as_deref() == Some(uid.as_str()))
    })
    .await;
    revisions.sort_by_key(|r| r.revision);
    Ok(History {
        revisions,
        update,
        collision_count,
    })
}

/// Deletes the oldest revisions beyond `limit` that no pod and neither
/// current nor update revision uses.
pub async fn truncate(
    client: &kube::Client,
    history: &History,
    live: &std::collections::HashSet<String>,
    limit: i32,
) -> Result<(), kube::Error> {
    let old: Vec<&ControllerRevision> = history
        .revisions
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let extra = old.len().saturating_sub(limit.max(0) as usize);
    for r in old.into_iter().take(extra) {
        let api: Api<ControllerRevision> =
            Api::namespaced(client.clone(), &r.namespace().unwrap_or_default());
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_to_the_template() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        let data = patch_data(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let rev = ControllerRevision {
            data: Some(RawExtension(data.clone())),
            ..ControllerRevision::default()
        };
        assert_eq!(template_of(&rev), t);
        assert_ne!(data_hash(&data, 0), data_hash(&data, 1));
        assert!(
            data_hash(&data, 0)
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert_eq!(revision_name("web", "abc"), "web-abc");
    }
}
