//! Watches: a chunked stream of `{"type": ..., "object": ...}\n` events.
//!
//! With `resourceVersion` unset or "0" the stream starts with one ADDED
//! event per existing object (kubectl's `get -w` relies on it), read at one
//! revision, and continues from the next; with a version it continues from
//! just after it, or ends with a 410 Expired ERROR event when that history is
//! compacted. Under selectors an object moving into the selection is ADDED
//! and one moving out is DELETED, as Kubernetes reports them. Bookmarks
//! (when asked for) carry the last version sent, which is always safe to
//! resume from.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use rand::Rng;
use serde_json::{Value, json};
use store::{EventKind, KeyRange, Revision, WatchRequest};
use tokio::sync::mpsc;

use super::Target;
use super::read::{self, Selection};
use crate::codec::{self, METADATA_CONTENT_TYPE, Output, TABLE_CONTENT_TYPE};
use crate::status::{ApiError, ApiResult};
use crate::table::{self, Include};

/// How often a bookmark is sent when asked for.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// Starts a watch.
pub(crate) async fn watch(t: Target) -> ApiResult<Response> {
    let selection = Selection::parse(&t)?;
    let output = t.output();
    let include = Include::parse(t.query.get("includeObject"))?;
    let bookmarks = t.query.flag("allowWatchBookmarks");
    let timeout = match t.query.int("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        // Kubernetes spreads open-ended watches over 30-60 minutes.
        _ => Duration::from_secs(rand::rng().random_range(1800..3600)),
    };
    let start_rv: Option<Revision> = match t.query.text("resourceVersion") {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    // A single object watched by its path is the same as a name selector.
    let selection = match &t.path.name {
        Some(name) => Selection {
            labels: selection.labels,
            fields: crate::selectors::FieldSelector::parse(
                &format!("metadata.name={name}"),
                &["metadata.name".to_owned()],
            )?,
        },
        None => selection,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut stream = Stream {
        t,
        selection,
        output,
        include,
        tx,
        columns_sent: false,
    };
    // The initial events are read before answering, so a bad request still
    // gets a proper error status.
    let (initial, from) = match start_rv {
        None => {
            let page = read::read_page(&stream.t, &stream.selection, 0).await?;
            (page.items, page.revision + 1)
        }
        Some(rv) => (Vec::new(), rv + 1),
    };
    let prefix = crate::storage::prefix(&stream.t.def.storage, stream.t.namespace());
    let mut store_watch = stream
        .t
        .api
        .store
        .watch(
            WatchRequest::new(KeyRange::prefix(prefix))
                .from_revision(from)
                .with_prev_kv(),
        )
        .await?;
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_rv = from - 1;
        for kv in initial {
            last_rv = last_rv.max(kv.mod_revision);
            let Ok(obj) = read::decode(&kv) else { continue };
            if !stream.send("ADDED", obj).await {
                return;
            }
        }
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick(), if bookmarks => {
                    if !stream.bookmark(last_rv).await { return; }
                }
                _ = stream.tx.closed() => return,
                item = store_watch.next() => match item {
                    Some(Ok(batch)) => {
                        for event in batch.events {
                            last_rv = last_rv.max(event.kv.mod_revision);
                            if !stream.event(event).await { return; }
                        }
                    }
                    Some(Err(store::StoreError::Compacted { requested, compacted })) => {
                        let detail = compacted.map_or(String::new(), |c| format!(" ({c})"));
                        let status = ApiError::expired(format!("too old resource version: {}{detail}", requested - 1)).to_status();
                        stream.raw("ERROR", status).await;
                        return;
                    }
                    Some(Err(e)) => {
                        stream.raw("ERROR", ApiError::from(e).to_status()).await;
                        return;
                    }
                    None => return,
                }
            }
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    }));
    let content_type = match output {
        Output::Json => "application/json",
        Output::Table => TABLE_CONTENT_TYPE,
        Output::Metadata => METADATA_CONTENT_TYPE,
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .expect("static headers are valid"))
}

/// The sending half of one watch.
struct Stream {
    t: Target,
    selection: Selection,
    output: Output,
    include: Include,
    tx: mpsc::Sender<Bytes>,
    columns_sent: bool,
}

impl Stream {
    /// Sends one store event, turned into what this watcher sees. The decoded and
    /// served forms come from the server's [`super::shared::EventObjects`], shared with every other
    /// watch of the same event.
    async fn event(&mut self, event: store::Event) -> bool {
        let shared = &self.t.api.event_objects;
        let stamped = event.kv.mod_revision;
        let prev = event
            .prev_kv
            .as_ref()
            .and_then(|p| Some((p, shared.decoded(p, stamped)?)));
        let prev_matches = prev
            .as_ref()
            .is_some_and(|(_, p)| self.selection.matches(&self.t, p));
        match event.kind {
            EventKind::Delete => match prev {
                Some((kv, obj)) if prev_matches => {
                    self.send_stored("DELETED", kv, stamped, obj).await
                }
                _ => true,
            },
            EventKind::Put => {
                let Some(obj) = shared.decoded(&event.kv, stamped) else {
                    return true;
                };
                let matches = self.selection.matches(&self.t, &obj);
                let kind = match (prev.is_some() && prev_matches, matches) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    // Left the selection: the watcher sees it go.
                    (true, false) => "DELETED",
                    (false, false) => return true,
                };
                self.send_stored(kind, &event.kv, stamped, obj).await
            }
        }
    }

    /// Sends an event about the stored version `kv` (`obj`, decoded with `stamped` as its
    /// resource version); in JSON its served bytes are shared with the other watches.
    async fn send_stored(
        &mut self,
        kind: &str,
        kv: &store::KeyValue,
        stamped: Revision,
        obj: Arc<Value>,
    ) -> bool {
        if self.output != Output::Json {
            return self.send(kind, Arc::unwrap_or_clone(obj)).await;
        }
        let object = self
            .t
            .api
            .event_objects
            .served_json(kv, stamped, &self.t.def, &obj);
        self.tx.send(event_line(kind, &object)).await.is_ok()
    }

    /// Sends an event about a stored object.
    async fn send(&mut self, kind: &str, stored: Value) -> bool {
        let object = match self.output {
            Output::Json => self.t.to_served(stored),
            Output::Metadata => codec::partial_metadata(&stored),
            Output::Table => {
                let storage_def = self.t.storage_def();
                let rv = crate::meta::meta_str(&stored, "resourceVersion")
                    .unwrap_or("")
                    .to_owned();
                let row = table::row(
                    &storage_def,
                    &self.t.def,
                    stored,
                    self.include,
                    crate::meta::now_unix(),
                );
                // Only the first event's table carries the columns.
                let columns = (!self.columns_sent).then(|| table::columns(&storage_def));
                self.columns_sent = true;
                table::table(columns, vec![row], &rv, None)
            }
        };
        self.raw(kind, object).await
    }

    async fn bookmark(&mut self, rv: Revision) -> bool {
        let (kind, api_version) = match self.output {
            Output::Metadata => ("PartialObjectMetadata".into(), "meta.k8s.io/v1".into()),
            _ => (self.t.def.kind.clone(), self.t.def.group_version()),
        };
        let object = json!({
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {"resourceVersion": rv.to_string()},
        });
        self.raw("BOOKMARK", object).await
    }

    async fn raw(&mut self, kind: &str, object: Value) -> bool {
        let object = serde_json::to_vec(&object).expect("a JSON value serializes");
        self.tx.send(event_line(kind, &object)).await.is_ok()
    }
}

/// One line of a JSON watch: `{"type":<kind>,"object":<object>}` and a newline, around
/// an object already serialized. `kind` is one of the fixed event types, which need no
/// escaping.
fn event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}
