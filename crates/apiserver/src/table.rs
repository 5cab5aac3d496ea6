//! `meta.k8s.io/v1` Tables: what `kubectl get` prints.
//!
//! Cells come from the kind's strategy (computed here, ages included, since
//! kubectl prints cells as given). Each row carries the object's metadata
//! (or the whole object, or nothing, per `includeObject`), which kubectl
//! reads for the NAMESPACE column, `--show-labels` and `-L`.

use kinds::ResourceDef;
use serde_json::{Value, json};

use crate::status::{ApiError, ApiResult};

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
    /// Nothing.
    None,
}

impl Include {
    /// Reads `includeObject`.
    pub fn parse(value: Option<&str>) -> ApiResult<Self> {
        match value.unwrap_or("") {
            "" | "Metadata" => Ok(Include::Metadata),
            "Object" => Ok(Include::Object),
            "None" => Ok(Include::None),
            other => Err(ApiError::bad_request(format!(
                "includeObject must be one of Object, Metadata or None, got {other:?}"
            ))),
        }
    }
}

/// The column definitions of a kind.
pub fn columns(def: &ResourceDef) -> Value {
    Value::Array(
        def.strategy
            .columns()
            .into_iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.ty,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect(),
    )
}

/// One row: cells from the storage-version object, plus what the client
/// asked to include, in the version it asked for (`served`).
pub fn row(
    storage_def: &ResourceDef,
    served: &ResourceDef,
    stored: Value,
    include: Include,
    now: i64,
) -> Value {
    let cells = storage_def.strategy.row(&stored, now);
    let mut row = json!({"cells": cells});
    match include {
        // Conversion never changes metadata: no need to convert for it.
        Include::Metadata => {
            let mut stored = stored;
            let metadata = stored
                .get_mut("metadata")
                .map(Value::take)
                .unwrap_or_else(|| json!({}));
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
            });
        }
        Include::Object => row["object"] = crate::rest::to_served(served, stored),
        Include::None => {}
    }
    row
}

/// A Table with `rows`; `columns` is `None` in watch events after the first.
pub fn table(
    columns: Option<Value>,
    rows: Vec<Value>,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    });
    if let Some(columns) = columns {
        t["columnDefinitions"] = columns;
    }
    t["rows"] = Value::Array(rows);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_metadata_for_kubectl() {
        let def = kinds::builtin()
            .into_iter()
            .find(|r| r.plural == "configmaps")
            .unwrap();
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default", "labels": {"a": "b"},
                         "creationTimestamp": "2026-11-23T10:00:00Z"},
            "data": {"x": "1"}
        });
        let now = kinds::table::parse_time("2026-11-23T10:02:05Z").unwrap();
        let r = row(&def, &def, obj.clone(), Include::Metadata, now);
        assert_eq!(r["cells"][0], "c");
        assert_eq!(r["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(r["object"]["metadata"]["labels"]["a"], "b");
        assert!(
            row(&def, &def, obj.clone(), Include::None, now)
                .get("object")
                .is_none()
        );
        let t = table(Some(columns(&def)), vec![r], "5", None);
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert!(Include::parse(Some("Everything")).is_err());
    }
}
