//! GET and LIST.
//!
//! A list reads one consistent revision of the store: the current one, the
//! one a client names with `resourceVersion` + `resourceVersionMatch=Exact`,
//! or the one its `continue` token carries, so that every page of a paged
//! list shows the same moment. Lists without selectors or conversions are
//! assembled from the stored bytes; the rest are parsed and filtered.

use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use store::{KeyRange, KeyValue, RangeRequest, Revision};

use super::{Target, bytes_response, json_response};
use crate::codec::{
    self, METADATA_CONTENT_TYPE, METADATA_LIST_CONTENT_TYPE, Output, TABLE_CONTENT_TYPE,
};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::storage;
use crate::table::{self, Include};

/// Reads the named object (storage version, resourceVersion set).
pub(crate) async fn read_object(t: &Target, key: &str) -> ApiResult<Option<(Value, Revision)>> {
    let resp = t.api.store.range(RangeRequest::key(key.to_owned())).await?;
    match resp.kvs.into_iter().next() {
        Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// Decodes a stored key-value.
pub(crate) fn decode(kv: &KeyValue) -> ApiResult<Value> {
    storage::decode(&kv.value, kv.mod_revision).map_err(|e| {
        ApiError::internal(format!(
            "stored object {} is not valid JSON: {e}",
            String::from_utf8_lossy(&kv.key)
        ))
    })
}

/// GET of one object.
pub(crate) async fn get(t: &Target) -> ApiResult<Response> {
    let (obj, _) = read_object(t, &t.key())
        .await?
        .ok_or_else(|| ApiError::not_found(&t.def.group, &t.def.plural, t.name()))?;
    respond_object(t, obj, StatusCode::OK)
}

/// Answers with one object (stored form), as JSON or as a one-row Table.
pub(crate) fn respond_object(t: &Target, stored: Value, code: StatusCode) -> ApiResult<Response> {
    match t.output() {
        Output::Json => Ok(json_response(code, &t.to_served(stored))),
        Output::Metadata => Ok(bytes_response(
            code,
            METADATA_CONTENT_TYPE,
            codec::partial_metadata(&stored).to_string().into_bytes(),
        )),
        Output::Table => {
            let include = Include::parse(t.query.get("includeObject"))?;
            let rv = storage_rv(&stored);
            let row = table::row(
                &t.storage_def(),
                &t.def,
                stored,
                include,
                crate::meta::now_unix(),
            );
            let body = table::table(Some(table::columns(&t.storage_def())), vec![row], &rv, None);
            Ok(bytes_response(
                code,
                TABLE_CONTENT_TYPE,
                body.to_string().into_bytes(),
            ))
        }
    }
}

fn storage_rv(obj: &Value) -> String {
    crate::meta::meta_str(obj, "resourceVersion")
        .unwrap_or("")
        .to_owned()
}

/// A continue token: where the next page starts, at which revision. The
/// shape follows Kubernetes' (base64 of `{"v","rv","start"}`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Continue {
    pub(crate) revision: Revision,
    pub(crate) start: String,
}

impl Continue {
    fn encode(&self) -> String {
        let doc = json!({"v": "meta.k8s.io/v1", "rv": self.revision, "start": self.start});
        base64::engine::general_purpose::URL_SAFE.encode(doc.to_string())
    }

    fn decode(token: &str, prefix: &str) -> ApiResult<Self> {
        let bad = || ApiError::bad_request("continue key is not valid: malformed token");
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(token)
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
            .map_err(|_| bad())?;
        let doc: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        let revision = doc.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
        let start = doc.get("start").and_then(Value::as_str).ok_or_else(bad)?;
        // A token for another resource or namespace would read the wrong keys.
        if !start.starts_with(prefix) {
            return Err(bad());
        }
        Ok(Self {
            revision,
            start: start.to_owned(),
        })
    }
}

/// The selectors of a list or watch.
pub(crate) struct Selection {
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Selection {
    /// Reads `labelSelector` and `fieldSelector`.
    pub(crate) fn parse(t: &Target) -> ApiResult<Self> {
        Ok(Self {
            labels: LabelSelector::parse(t.query.get("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(
                t.query.get("fieldSelector").unwrap_or(""),
                &t.selectable_fields(),
            )?,
        })
    }

    /// Whether no selector was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether a stored object matches.
    pub(crate) fn matches(&self, t: &Target, obj: &Value) -> bool {
        self.labels.matches(&crate::meta::labels(obj))
            && (self.fields.is_empty() || self.fields.matches(&t.field_values(obj)))
    }
}

/// One page of a list.
pub(crate) struct Page {
    /// Matching items, in key order.
    pub(crate) items: Vec<KeyValue>,
    /// The revision the page was read at.
    pub(crate) revision: Revision,
    /// Token for the next page.
    pub(crate) next: Option<String>,
    /// Items after this page, when known (no selectors).
    pub(crate) remaining: Option<i64>,
}

/// Reads one page of matching objects.
pub(crate) async fn read_page(t: &Target, selection: &Selection, limit: i64) -> ApiResult<Page> {
    let prefix = storage::prefix(&t.def.storage, t.namespace());
    let end = store::prefix_end(prefix.as_bytes())
        .ok_or_else(|| ApiError::internal("resource prefix has no end"))?;
    let paging = t.query.text("continue").is_some();
    let (mut start, mut revision) = match t.query.text("continue") {
        Some(token) => {
            let c = Continue::decode(token, &prefix)?;
            (c.start, c.revision)
        }
        None => (prefix.clone(), requested_revision(t).await?),
    };
    // A selector on the name narrows the read to one key.
    if let Some(name) = selection.fields.required("metadata.name")
        && t.namespace().is_some() == t.def.namespaced
    {
        let key = storage::key(&t.def.storage, t.namespace(), name);
        let resp = t
            .api
            .store
            .range(RangeRequest::key(key).at_revision(revision))
            .await
            .map_err(|e| expired_list(e, revision, paging))?;
        let items = resp
            .kvs
            .into_iter()
            .filter(|kv| decode(kv).is_ok_and(|obj| selection.matches(t, &obj)))
            .collect();
        let revision = if revision == 0 {
            resp.revision
        } else {
            revision
        };
        return Ok(Page {
            items,
            revision,
            next: None,
            remaining: None,
        });
    }
    let mut items = Vec::new();
    loop {
        // Read a chunk; with selectors more than `limit` may be needed.
        let chunk = if limit > 0 {
            (limit - items.len() as i64).max(1)
        } else {
            0
        };
        let chunk = if selection.is_empty() || chunk == 0 {
            chunk
        } else {
            chunk.max(256)
        };
        let resp = t
            .api
            .store
            .range(
                RangeRequest::new(KeyRange::span(start.clone(), end.clone()))
                    .at_revision(revision)
                    .with_limit(chunk),
            )
            .await
            .map_err(|e| expired_list(e, revision, paging))?;
        if revision == 0 {
            revision = resp.revision;
        }
        let more = resp.more;
        let count = resp.count;
        let mut last_key = None;
        let mut filled = false;
        let total = resp.kvs.len();
        for (i, kv) in resp.kvs.into_iter().enumerate() {
            last_key = Some(kv.key.clone());
            if selection.is_empty() || decode(&kv).is_ok_and(|obj| selection.matches(t, &obj)) {
                items.push(kv);
            }
            if limit > 0 && items.len() as i64 >= limit {
                filled = i + 1 < total || more;
                break;
            }
        }
        let Some(last) = last_key else {
            break;
        };
        let mut next_start = last.to_vec();
        next_start.push(0);
        let next_start = String::from_utf8_lossy(&next_start).into_owned();
        if filled {
            let remaining = selection.is_empty().then(|| count - items.len() as i64);
            return Ok(Page {
                items,
                revision,
                next: Some(
                    Continue {
                        revision,
                        start: next_start,
                    }
                    .encode(),
                ),
                remaining,
            });
        }
        if !more {
            break;
        }
        start = next_start;
    }
    Ok(Page {
        items,
        revision,
        next: None,
        remaining: None,
    })
}

/// A store error while reading a list, with Kubernetes' messages for an
/// expired continue token (`paging`) and an expired `resourceVersion`.
fn expired_list(e: store::StoreError, revision: Revision, paging: bool) -> ApiError {
    match e {
        store::StoreError::Compacted { .. } if paging => ApiError::expired(format!(
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter, or use the continue token \
             in this response to retrieve the remainder of the results. (resource version {revision})"
        )),
        store::StoreError::Compacted { .. } => {
            ApiError::expired("The resourceVersion for the provided list is too old.")
        }
        other => other.into(),
    }
}

/// The revision a list reads at: 0 (current) unless the client asked for
/// an exact one; a `resourceVersion` newer than the store is refused.
async fn requested_revision(t: &Target) -> ApiResult<Revision> {
    let Some(rv) = t.query.text("resourceVersion") else {
        return Ok(0);
    };
    let n: Revision = rv
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
    match t.query.text("resourceVersionMatch") {
        Some("Exact") => Ok(n),
        None | Some("NotOlderThan") => {
            if n > 0 && t.api.store.current_revision().await? < n {
                return Err(store::StoreError::FutureRevision { requested: n }.into());
            }
            Ok(0)
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
        ))),
    }
}

/// LIST.
pub(crate) async fn list(t: &Target) -> ApiResult<Response> {
    let selection = Selection::parse(t)?;
    let limit = t.query.int("limit")?.unwrap_or(0).max(0);
    let page = read_page(t, &selection, limit).await?;
    let rv = page.revision.to_string();
    match t.output() {
        Output::Table => {
            let include = Include::parse(t.query.get("includeObject"))?;
            let now = crate::meta::now_unix();
            let storage_def = t.storage_def();
            let def = std::sync::Arc::clone(&t.def);
            // Thousands of rows are CPU work: keep them off the async
            // workers, which serve every other request meanwhile.
            let body = tokio::task::spawn_blocking(move || -> ApiResult<Vec<u8>> {
                let mut rows = Vec::with_capacity(page.items.len());
                for kv in &page.items {
                    let stored = decode(kv)?;
                    rows.push(table::row(&storage_def, &def, stored, include, now));
                }
                let body = table::table(
                    Some(table::columns(&storage_def)),
                    rows,
                    &rv,
                    page.next.as_deref(),
                );
                Ok(serde_json::to_vec(&body).expect("JSON values always serialize"))
            })
            .await
            .map_err(|e| ApiError::internal(format!("building the table: {e}")))??;
            Ok(bytes_response(StatusCode::OK, TABLE_CONTENT_TYPE, body))
        }
        Output::Metadata => {
            let mut items = Vec::with_capacity(page.items.len());
            for kv in &page.items {
                let partial = codec::partial_metadata(&decode(kv)?);
                items.push(Bytes::from(partial.to_string()));
            }
            let body = storage::list_bytes(
                "meta.k8s.io/v1",
                "PartialObjectMetadataList",
                page.revision,
                page.next.as_deref(),
                page.remaining,
                items.into_iter().map(|b| (b, None)),
            );
            Ok(bytes_response(
                StatusCode::OK,
                METADATA_LIST_CONTENT_TYPE,
                body,
            ))
        }
        Output::Json if t.def.conversion.is_none() => {
            // Stored bytes are already this version: splice, don't parse.
            let body = storage::list_bytes(
                &t.def.group_version(),
                &format!("{}List", t.def.kind),
                page.revision,
                page.next.as_deref(),
                page.remaining,
                page.items
                    .into_iter()
                    .map(|kv| (kv.value, Some(kv.mod_revision))),
            );
            Ok(bytes_response(StatusCode::OK, "application/json", body))
        }
        Output::Json => {
            let mut items = Vec::with_capacity(page.items.len());
            for kv in &page.items {
                items.push(Bytes::from(t.to_served(decode(kv)?).to_string()));
            }
            // Converted items carry their revision already.
            let body = storage::list_bytes(
                &t.def.group_version(),
                &format!("{}List", t.def.kind),
                page.revision,
                page.next.as_deref(),
                page.remaining,
                items.into_iter().map(|b| (b, None)),
            );
            Ok(bytes_response(StatusCode::OK, "application/json", body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_stay_in_their_prefix() {
        let c = Continue {
            revision: 42,
            start: "/registry/core/pods/default/web\u{0}".into(),
        };
        let token = c.encode();
        assert_eq!(
            Continue::decode(&token, "/registry/core/pods/default/").unwrap(),
            c
        );
        assert!(Continue::decode(&token, "/registry/core/secrets/").is_err());
        assert!(Continue::decode("!!!", "/").is_err());
    }
}
