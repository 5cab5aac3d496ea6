//! DefaultStorageClass admission, as Kubernetes': a new claim that names no class
//! (`spec.storageClassName` absent, and no beta class annotation) gets the default one,
//! the StorageClass annotated `storageclass.kubernetes.io/is-default-class: "true"` (the
//! newest, when several are). An empty `storageClassName` asks for no class and is kept.

use serde_json::{Value, json};
use store::RangeRequest;

use crate::rest::Target;
use crate::status::ApiResult;

const STORAGE_CLASSES: &str = "/registry/storage.k8s.io/storageclasses/";
const DEFAULT_CLASS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// Gives a new claim without a class the default class, if the cluster has one.
pub(crate) async fn admit(t: &Target, obj: &mut Value) -> ApiResult<()> {
    if !t.def.storage.group.is_empty() || t.def.storage.resource != "persistentvolumeclaims" {
        return Ok(());
    }
    let named = obj
        .pointer("/spec/storageClassName")
        .is_some_and(|c| !c.is_null())
        || obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(BETA_CLASS_ANNOTATION))
            .is_some();
    if named {
        return Ok(());
    }
    let classes = t
        .api
        .store
        .range(RangeRequest::prefix(STORAGE_CLASSES.to_owned()))
        .await?;
    let default = classes
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .filter(is_default)
        .max_by(|a, b| {
            let created = |c: &Value| {
                c.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            // Newest first, then by name, as Kubernetes picks among several defaults.
            (created(a), crate::meta::name(b).to_owned())
                .cmp(&(created(b), crate::meta::name(a).to_owned()))
        });
    if let Some(class) = default
        && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("storageClassName".into(), json!(crate::meta::name(&class)));
    }
    Ok(())
}

fn is_default(class: &Value) -> bool {
    let annotations = class.pointer("/metadata/annotations");
    DEFAULT_CLASS.iter().any(|key| {
        annotations
            .and_then(|a| a.get(*key))
            .and_then(Value::as_str)
            == Some("true")
    })
}
