//! `/openapi/v3`: the index and one document per group/version, generated
//! by `kinds` from the catalogue (and, later, CRD schemas).
//!
//! Documents are built once per catalogue, off the request path, and
//! served with Kubernetes' caching contract: each document's URL carries a
//! hash of its bytes, a request with an outdated hash is redirected to the
//! current URL, and `If-None-Match` answers 304, so kubectl does not
//! download megabytes on every command.
//!
//! `/openapi/v2` is served as JSON to clients that accept JSON. kubectl
//! asks for protobuf only and parses whatever comes back as protobuf (JSON
//! fails), so it gets an empty protobuf document (no paths, no
//! definitions). With a complete v3 kubectl needs v2 only where v3 has no
//! answer: to validate a `v1/List` manifest and kinds no group serves.
//! Upstream's client-side validation skips kinds the v2 document does not
//! describe, so the empty document lets a List be created and an unknown
//! kind end in kubectl's own "no matches for kind" error, as on a real
//! cluster; a 404 failed both with "failed to download openapi".

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use kinds::openapi::V3Document;
use parking_lot::Mutex;

use crate::registry::Catalog;

/// The documents of one catalogue.
pub(crate) struct Documents {
    /// The catalogue they describe.
    catalog: Arc<Catalog>,
    index: Vec<u8>,
    index_etag: String,
    by_path: HashMap<String, V3Document>,
    /// The Swagger 2.0 document, built on first request.
    v2: std::sync::OnceLock<(Vec<u8>, String)>,
}

/// The cache of documents for the current catalogue.
#[derive(Default)]
pub(crate) struct OpenApi {
    current: Mutex<Option<Arc<Documents>>>,
}

impl OpenApi {
    /// The documents for `catalog`, built if needed (blocking; callers run
    /// it off the async workers).
    pub(crate) fn documents(
        &self,
        catalog: &Arc<Catalog>,
        defs: &schema::SchemaSet,
    ) -> Arc<Documents> {
        if let Some(docs) = self.current.lock().as_ref()
            && Arc::ptr_eq(&docs.catalog, catalog)
        {
            return Arc::clone(docs);
        }
        let resources: Vec<kinds::ResourceDef> =
            catalog.resources().iter().map(|r| (**r).clone()).collect();
        let docs = kinds::openapi::openapi_v3_documents(&resources, defs);
        let index = kinds::openapi::index_of(&docs).to_string().into_bytes();
        let index_etag = format!("\"{}\"", kinds::openapi::document_hash(&index));
        let built = Arc::new(Documents {
            catalog: Arc::clone(catalog),
            index,
            index_etag,
            by_path: docs.into_iter().map(|d| (d.path.clone(), d)).collect(),
            v2: std::sync::OnceLock::new(),
        });
        *self.current.lock() = Some(Arc::clone(&built));
        built
    }
}

fn not_modified(etag: &str) -> Response {
    Response::builder()
        .status(StatusCode::NOT_MODIFIED)
        .header(http::header::ETAG, etag)
        .body(Body::empty())
        .expect("static headers are valid")
}

impl Documents {
    /// The Swagger 2.0 document and its ETag.
    pub(crate) fn v2(&self, defs: &schema::SchemaSet) -> &(Vec<u8>, String) {
        self.v2.get_or_init(|| {
            let resources: Vec<kinds::ResourceDef> = self
                .catalog
                .resources()
                .iter()
                .map(|r| (**r).clone())
                .collect();
            let body = kinds::openapi::openapi_v2(&resources, defs)
                .to_string()
                .into_bytes();
            let etag = format!("\"{}\"", kinds::openapi::document_hash(&body));
            (body, etag)
        })
    }
}

/// Whether an `Accept` header takes JSON (or anything).
pub(crate) fn accepts_json(accept: &str) -> bool {
    accept.is_empty()
        || accept.split(',').any(|part| {
            let media = part.split(';').next().unwrap_or("").trim();
            matches!(media, "application/json" | "application/*" | "*/*")
        })
}

/// `GET /openapi/v2` for a client that takes JSON.
pub(crate) fn v2(docs: &Documents, defs: &schema::SchemaSet, if_none_match: &str) -> Response {
    let (body, etag) = docs.v2(defs);
    if if_none_match == etag {
        return not_modified(etag);
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ETAG, etag)
        .body(Body::from(body.clone()))
        .expect("static headers are valid")
}

/// `GET /openapi/v3`.
pub(crate) fn index(docs: &Documents, if_none_match: &str) -> Response {
    if if_none_match == docs.index_etag {
        return not_modified(&docs.index_etag);
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ETAG, &docs.index_etag)
        .body(Body::from(docs.index.clone()))
        .expect("static headers are valid")
}

/// `GET /openapi/v3/<path>?hash=...`.
pub(crate) fn document(
    docs: &Documents,
    path: &str,
    hash: Option<&str>,
    if_none_match: &str,
) -> Response {
    let Some(doc) = docs.by_path.get(path) else {
        return crate::status::ApiError::no_route().into_response_value();
    };
    let etag = format!("\"{}\"", doc.hash);
    if let Some(hash) = hash
        && hash != doc.hash
    {
        return Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header(
                http::header::LOCATION,
                format!("/openapi/v3/{path}?hash={}", doc.hash),
            )
            .body(Body::empty())
            .expect("static headers are valid");
    }
    if if_none_match == etag {
        return not_modified(&etag);
    }
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ETAG, &etag)
        .header(http::header::VARY, "Accept");
    if hash.is_some() {
        // The URL names this exact document: it never changes.
        builder = builder
            .header(http::header::CACHE_CONTROL, "public, immutable")
            .header(http::header::EXPIRES, "Fri, 31 Dec 2100 00:00:00 GMT");
    }
    builder
        .body(Body::from(doc.body.clone()))
        .expect("static headers are valid")
}

impl crate::status::ApiError {
    /// The error as a response (for places outside the REST engine).
    pub(crate) fn into_response_value(self) -> Response {
        axum::response::IntoResponse::into_response(self)
    }
}

/// The media type upstream answers `/openapi/v2` with. (kubectl asks for
/// `...spec.v2@v1.0+protobuf`, but `@` is not allowed in a Content-Type
/// and client-go's media-type parser refuses it.)
const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `GET /openapi/v2` for kubectl (protobuf only): an `openapi_v2.Document`
/// (gnostic) holding only `swagger: "2.0"` and `info`.
pub(crate) fn v2_protobuf() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, OPENAPI_V2_PROTOBUF)
        .body(Body::from(empty_v2_document()))
        .expect("static headers are valid")
}

/// `Document{swagger = 1: "2.0", info = 2: Info{title = 1, version = 2}}`.
fn empty_v2_document() -> Vec<u8> {
    let mut info = Vec::new();
    length_delimited(&mut info, 1, b"Kubernetes");
    length_delimited(&mut info, 2, b"v1.32.0");
    let mut doc = Vec::new();
    length_delimited(&mut doc, 1, b"2.0");
    length_delimited(&mut doc, 2, &info);
    doc
}

/// Appends a protobuf length-delimited field (wire type 2).
fn length_delimited(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(field << 3 | 2);
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_v2_document_is_protobuf() {
        let doc = empty_v2_document();
        assert_eq!(&doc[..5], b"\x0a\x032.0");
        assert_eq!(doc[5], 0x12, "field 2, length-delimited");
        assert_eq!(usize::from(doc[6]), doc.len() - 7);
        assert_eq!(&doc[7..19], b"\x0a\x0aKubernetes");
    }

    #[test]
    fn v2_goes_only_to_clients_that_take_json() {
        assert!(accepts_json("application/json"));
        assert!(accepts_json(""));
        assert!(accepts_json("*/*"));
        assert!(accepts_json(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json;q=0.5"
        ));
        assert!(!accepts_json(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        ));
    }
}
