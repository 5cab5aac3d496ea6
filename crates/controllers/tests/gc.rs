//! The garbage collector against a real API server (in-process, embedded
//! store), with the ReplicaSet controller beside it as in `gantry up`:
//! owners deleted in the background, with their dependents orphaned, and in
//! the foreground (a cycle of blocking owners too); dependents with several
//! owners, with an owner of the
//! same name but another uid, with a namespaced owner in another namespace
//! and with a cluster-scoped one; and a custom resource as the owner. No node
//! runs here, so pods go as soon as they are deleted unless a finalizer
//! holds them.

mod common;

use std::time::Duration;

use common::{server, wait_for};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Resource, ResourceExt};
use serde_json::json;

fn replicaset(name: &str, replicas: i32, pod_finalizers: &[&str]) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "finalizers": pod_finalizers},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

/// The pods labelled `app=<name>`, deleted or not.
async fn pods_of(pods: &Api<Pod>, name: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap()
        .items
}

/// An owner reference to `owner`.
fn owned_by<K: Resource<DynamicType = ()>>(owner: &K, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into(),
        kind: K::kind(&()).into(),
        name: owner.meta().name.clone().unwrap(),
        uid: owner.meta().uid.clone().unwrap(),
        block_owner_deletion: Some(block),
        controller: None,
    }
}

fn config_map(name: &str, owners: Vec<OwnerReference>) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.owner_references = Some(owners);
    cm
}

/// Starts the controllers and a ReplicaSet with `replicas` pods.
async fn running_replicaset(
    client: &kube::Client,
    name: &str,
    replicas: i32,
    pod_finalizers: &[&str],
) -> (ReplicaSet, Vec<Pod>) {
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rs = rss
        .create(
            &PostParams::default(),
            &replicaset(name, replicas, pod_finalizers),
        )
        .await
        .unwrap();
    wait_for(&format!("{replicas} pods of {name}"), || async {
        pods_of(&pods, name).await.len() == replicas as usize
    })
    .await;
    (rs, pods_of(&pods, name).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicaset_deleted_in_the_background_takes_its_pods() {
    let (_dir, _server, client) = server().await;
    let _controllers = tokio::spawn(controllers::run(client.clone()));
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (_, before) = running_replicaset(&client, "web", 3, &[]).await;
    // A pod of no one's stays.
    let mut loner = Pod::default();
    loner.metadata.name = Some("loner".into());
    loner.metadata.labels = Some([("app".to_string(), "loner".to_string())].into());
    loner.spec = before[0].spec.clone();
    pods.create(&PostParams::default(), &loner).await.unwrap();

    rss.delete("web", &DeleteParams::background())
        .await
        .unwrap();
    wait_for("the pods gone", || async {
        pods_of(&pods, "web").await.is_empty()
    })
    .await;
    assert!(rss.get_opt("web").await.unwrap().is_none());
    assert!(pods.get_opt("loner").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicaset_deleted_with_orphan_leaves_its_pods_unowned() {
    let (_dir, _server, client) = server().await;
    let _controllers = tokio::spawn(controllers::run(client.clone()));
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (_, before) = running_replicaset(&client, "web", 2, &[]).await;

    rss.delete("web", &DeleteParams::orphan()).await.unwrap();
    wait_for("the replicaset gone", || async {
        rss.get_opt("web").await.unwrap().is_none()
    })
    .await;
    // The same pods, live and unowned, and they stay so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = pods_of(&pods, "web").await;
    let uids = |ps: &[Pod]| {
        let mut u: Vec<String> = ps.iter().map(|p| p.uid().unwrap()).collect();
        u.sort();
        u
    };
    assert_eq!(uids(&after), uids(&before));
    for p in &after {
        assert!(p.owner_references().is_empty(), "{:?}", p.metadata);
        assert!(p.metadata.deletion_timestamp.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicaset_deleted_in_the_foreground_stays_until_its_pods_are_gone() {
    let (_dir, _server, client) = server().await;
    let _controllers = tokio::spawn(controllers::run(client.clone()));
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // The pods' own finalizer keeps them (deleted) until the test lets go.
    let (_, _) = running_replicaset(&client, "web", 2, &["example.com/hold"]).await;

    rss.delete("web", &DeleteParams::foreground())
        .await
        .unwrap();
    wait_for("the pods deleted", || async {
        pods_of(&pods, "web")
            .await
            .iter()
            .all(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rs = rss.get("web").await.unwrap();
    assert!(rs.metadata.deletion_timestamp.is_some());
    assert_eq!(rs.finalizers(), ["foregroundDeletion"]);

    // One pod released: the other still blocks.
    let held = pods_of(&pods, "web").await;
    let release = json!({"metadata": {"finalizers": null}});
    pods.patch(
        &held[0].name_any(),
        &PatchParams::default(),
        &Patch::Merge(&release),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rss.get_opt("web").await.unwrap().is_some());
    pods.patch(
        &held[1].name_any(),
        &PatchParams::default(),
        &Patch::Merge(&release),
    )
    .await
    .unwrap();
    wait_for("the replicaset gone", || async {
        rss.get_opt("web").await.unwrap().is_none()
    })
    .await;
    assert!(pods_of(&pods, "web").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_lose_only_references_to_owners_that_are_gone() {
    let (_dir, _server, client) = server().await;
    let _controllers = tokio::spawn(controllers::run(client.clone()));
    let pp = PostParams::default();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let a = cms.create(&pp, &config_map("a", vec![])).await.unwrap();
    let b = cms.create(&pp, &config_map("b", vec![])).await.unwrap();
    // Two owners; an owner named `b` but with another uid (a different
    // object); an owner `a` looked for in another namespace, where there
    // is none; and a cluster-scoped owner.
    cms.create(
        &pp,
        &config_map("both", vec![owned_by(&a, false), owned_by(&b, true)]),
    )
    .await
    .unwrap();
    let mut impostor = owned_by(&b, false);
    impostor.uid = "0d6fd4bd-59a4-4b8b-9d8b-2d7ba3a4c0aa".into();
    cms.create(&pp, &config_map("impostor", vec![impostor]))
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut other = Namespace::default();
    other.metadata.name = Some("other".into());
    namespaces.create(&pp, &other).await.unwrap();
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "other");
    elsewhere
        .create(&pp, &config_map("stray", vec![owned_by(&a, false)]))
        .await
        .unwrap();
    let mut owner_ns = Namespace::default();
    owner_ns.metadata.name = Some("owner".into());
    let owner_ns = namespaces.create(&pp, &owner_ns).await.unwrap();
    cms.create(
        &pp,
        &config_map("in-default", vec![owned_by(&owner_ns, false)]),
    )
    .await
    .unwrap();

    wait_for("the impostor's and the stray's deletion", || async {
        cms.get_opt("impostor").await.unwrap().is_none()
            && elsewhere.get_opt("stray").await.unwrap().is_none()
    })
    .await;

    cms.delete("a", &DeleteParams::background()).await.unwrap();
    wait_for("the reference to a gone", || async {
        cms.get("both").await.unwrap().owner_references().len() == 1
    })
    .await;
    let both = cms.get("both").await.unwrap();
    assert_eq!(both.owner_references()[0].uid, b.uid().unwrap());
    assert!(both.metadata.deletion_timestamp.is_none());
    // The cluster-scoped owner exists, so its dependent stays; then not.
    assert!(cms.get_opt("in-default").await.unwrap().is_some());
    namespaces
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    wait_for("the dependent of a cluster-scoped owner gone", || async {
        cms.get_opt("in-default").await.unwrap().is_none()
    })
    .await;

    // b has a namesake now: `both` names b's uid, so it goes with b.
    cms.delete("b", &DeleteParams::background()).await.unwrap();
    cms.create(&pp, &config_map("b", vec![])).await.unwrap();
    wait_for("both gone", || async {
        cms.get_opt("both").await.unwrap().is_none()
    })
    .await;
    assert!(cms.get_opt("b").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_map_owned_by_a_custom_resource_goes_with_it() {
    let (_dir, _server, client) = server().await;
    let _controllers = tokio::spawn(controllers::run(client.clone()));
    let pp = PostParams::default();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true
                }}
            }]
        }
    }))
    .unwrap();
    crds.create(&pp, &crd).await.unwrap();
    let resource = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let mut widget = DynamicObject::new("w", &resource);
    widget.data = json!({"spec": {"size": 3}});
    wait_for("the Widget kind served", || async {
        widgets.create(&pp, &widget).await.is_ok()
    })
    .await;
    let widget = widgets.get("w").await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owner = OwnerReference {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        name: "w".into(),
        uid: widget.uid().unwrap(),
        block_owner_deletion: None,
        controller: Some(true),
    };
    cms.create(&pp, &config_map("widget-config", vec![owner]))
        .await
        .unwrap();
    // Owned by a live Widget, it stays.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cms.get_opt("widget-config").await.unwrap().is_some());

    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    wait_for("the Widget's config map gone", || async {
        cms.get_opt("widget-config").await.unwrap().is_none()
    })
    .await;
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_of_blocking_owners_deleted_in_the_foreground_goes() {
    let (_dir, _server, client) = server().await;
    let _controllers = tokio::spawn(controllers::run(client.clone()));
    let pp = PostParams::default();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // a owns b and b owns a, each blocking the other's deletion.
    let a = cms.create(&pp, &config_map("a", vec![])).await.unwrap();
    let b = cms
        .create(&pp, &config_map("b", vec![owned_by(&a, true)]))
        .await
        .unwrap();
    let refs = json!({"metadata": {"ownerReferences": [owned_by(&b, true)]}});
    cms.patch("a", &PatchParams::default(), &Patch::Merge(&refs))
        .await
        .unwrap();

    cms.delete("a", &DeleteParams::foreground()).await.unwrap();
    wait_for("both gone", || async {
        cms.get_opt("a").await.unwrap().is_none() && cms.get_opt("b").await.unwrap().is_none()
    })
    .await;
}
