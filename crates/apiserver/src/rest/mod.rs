//! The generic REST engine: every verb implemented once, for every kind.
//!
//! A request is first resolved to a [`Target`] (which resource, namespace,
//! object, subresource), then handed to `read` (get, list), `watch`, or
//! `write` (create, update, patch, delete) and `subresource`. Kind-specific
//! behaviour comes only from the resource's `kinds::Strategy`.

pub(crate) mod read;
pub(crate) mod shared;
pub(crate) mod subresource;
pub(crate) mod watch;
pub(crate) mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use kinds::ResourceDef;
use serde_json::{Value, json};

use crate::Api;
use crate::codec::{self, BodyFormat, Output};
use crate::request::{Query, ResourcePath};
use crate::status::{ApiError, ApiResult};

/// Everything a handler needs about one resource request.
pub(crate) struct Target {
    pub(crate) api: Arc<Api>,
    pub(crate) def: Arc<ResourceDef>,
    pub(crate) path: ResourcePath,
    pub(crate) query: Query,
    pub(crate) headers: HeaderMap,
    /// Who asks; `None` for the server's own requests.
    pub(crate) user: Option<crate::auth::User>,
}

impl Target {
    /// A request the server makes of itself (bootstrap, namespace
    /// termination).
    pub(crate) fn internal(
        api: &Arc<Api>,
        group: &str,
        version: &str,
        resource: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Option<Self> {
        let def = api
            .registry
            .catalog()
            .get(group, version, resource)
            .cloned()?;
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Some(Self {
            api: Arc::clone(api),
            def,
            path: ResourcePath {
                group: group.to_owned(),
                version: version.to_owned(),
                resource: resource.to_owned(),
                namespace: namespace.map(str::to_owned),
                name: name.map(str::to_owned),
                subresource: None,
            },
            query: Query::parse(Some("fieldManager=gantry-apiserver")),
            headers,
            user: None,
        })
    }

    /// The namespace the request is about (None for cluster-scoped
    /// resources and for lists across all namespaces).
    pub(crate) fn namespace(&self) -> Option<&str> {
        if self.def.namespaced {
            self.path.namespace.as_deref()
        } else {
            None
        }
    }

    /// The object name; handlers call this only on object paths.
    pub(crate) fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or("")
    }

    /// The store key of the named object.
    pub(crate) fn key(&self) -> String {
        crate::storage::key(&self.def.storage, self.namespace(), self.name())
    }

    /// The definition of this resource's storage version, which strategies
    /// and schemas are taken from.
    pub(crate) fn storage_def(&self) -> Arc<ResourceDef> {
        if self.def.conversion.is_none() {
            return Arc::clone(&self.def);
        }
        self.api
            .registry
            .catalog()
            .storage_def(&self.def.storage)
            .cloned()
            .unwrap_or_else(|| Arc::clone(&self.def))
    }

    /// `apps/v1`, the version objects are stored in.
    pub(crate) fn storage_api_version(&self) -> String {
        let s = &self.def.storage;
        if s.group.is_empty() {
            s.version.clone()
        } else {
            format!("{}/{}", s.group, s.version)
        }
    }

    /// A stored object as the client's version shows it.
    pub(crate) fn to_served(&self, obj: Value) -> Value {
        to_served(&self.def, obj)
    }

    /// What the client accepts back.
    pub(crate) fn output(&self) -> Output {
        codec::output(self.header("accept"))
    }

    /// A request header, or "".
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The field manager of a write: `?fieldManager=`, or the first word of
    /// the client's User-Agent, as Kubernetes defaults it.
    pub(crate) fn field_manager(&self) -> String {
        if let Some(m) = self.query.text("fieldManager") {
            return m.to_owned();
        }
        let agent = self.header("user-agent");
        let first = agent.split('/').next().unwrap_or("").trim();
        if first.is_empty() {
            "unknown".into()
        } else {
            first.chars().take(128).collect()
        }
    }

    /// Field-selector labels the resource supports.
    pub(crate) fn selectable_fields(&self) -> Vec<String> {
        let mut fields = vec!["metadata.name".to_owned(), "metadata.namespace".to_owned()];
        let strategy = &self.storage_def().strategy;
        fields.extend(
            strategy
                .selectable_fields(&json!({"metadata": {}}))
                .into_iter()
                .map(|(k, _)| k),
        );
        fields
    }

    /// Field-selector values of one object.
    pub(crate) fn field_values(&self, obj: &Value) -> Vec<(String, String)> {
        let mut fields = vec![
            (
                "metadata.name".to_owned(),
                crate::meta::name(obj).to_owned(),
            ),
            (
                "metadata.namespace".to_owned(),
                crate::meta::meta_str(obj, "namespace")
                    .unwrap_or("")
                    .to_owned(),
            ),
        ];
        fields.extend(self.storage_def().strategy.selectable_fields(obj));
        fields
    }
}

/// A stored object (storage version) as `def`'s version shows it.
pub(crate) fn to_served(def: &ResourceDef, obj: Value) -> Value {
    let mut obj = match &def.conversion {
        Some(conversion) => conversion.from_storage(obj),
        None => obj,
    };
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(def.group_version()));
        map.insert("kind".into(), Value::String(def.kind.clone()));
    }
    obj
}

/// The verb a request means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    fn of(method: &Method, named: bool, watch: bool) -> Option<Self> {
        Some(match (method.as_str(), named) {
            ("GET", _) if watch => Verb::Watch,
            ("GET", true) => Verb::Get,
            ("GET", false) => Verb::List,
            ("POST", _) => Verb::Create,
            ("PUT", true) => Verb::Update,
            ("PATCH", true) => Verb::Patch,
            ("DELETE", true) => Verb::Delete,
            ("DELETE", false) => Verb::DeleteCollection,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// Handles a request for a resource path.
pub(crate) async fn handle(
    api: Arc<Api>,
    path: ResourcePath,
    method: Method,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
    user: crate::auth::User,
) -> Response {
    let result = dispatch(api, path, method, query, headers, body, user).await;
    match result {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(
    api: Arc<Api>,
    path: ResourcePath,
    method: Method,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
    user: crate::auth::User,
) -> ApiResult<Response> {
    let catalog = api.registry.catalog();
    let def = catalog
        .get(&path.group, &path.version, &path.resource)
        .cloned()
        .ok_or_else(ApiError::no_route)?;
    if def.namespaced && path.namespace.is_none() && path.name.is_some() {
        // A namespaced object named without a namespace.
        return Err(ApiError::no_route());
    }
    let watch = query.flag("watch");
    let verb = Verb::of(&method, path.name.is_some(), watch)
        .ok_or_else(|| ApiError::method_not_allowed(method.as_str(), &def.group, &def.plural))?;
    let target = Target {
        api,
        def,
        path,
        query,
        headers,
        user: Some(user),
    };
    if let Some(sub) = target.path.subresource.clone() {
        return subresource::handle(target, &sub, &method, body).await;
    }
    if !target.def.verbs.iter().any(|v| v == verb.name()) {
        return Err(ApiError::method_not_allowed(
            verb.name(),
            &target.def.group,
            &target.def.plural,
        ));
    }
    match verb {
        Verb::Get => read::get(&target).await,
        Verb::List => read::list(&target).await,
        Verb::Watch => watch::watch(target).await,
        Verb::Create
            if matches!(
                target.def.group.as_str(),
                "authentication.k8s.io" | "authorization.k8s.io"
            ) =>
        {
            crate::reviews::create(&target, body).await
        }
        Verb::Create => write::create(&target, body).await,
        Verb::Update => write::update(&target, body, None).await,
        Verb::Patch => write::patch(&target, body, None).await,
        Verb::Delete => write::delete(&target, body).await,
        Verb::DeleteCollection => write::delete_collection(&target, body).await,
    }
}

/// A JSON response.
pub(crate) fn json_response(code: StatusCode, value: &Value) -> Response {
    bytes_response(code, "application/json", value.to_string().into_bytes())
}

/// A response with a body and content type.
pub(crate) fn bytes_response(code: StatusCode, content_type: &str, body: Vec<u8>) -> Response {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("static headers are valid")
}

/// Adds `Warning: 299 - "<text>"` headers, as Kubernetes reports unknown
/// fields under `fieldValidation=Warn`.
pub(crate) fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let quoted = serde_json::Value::String(w.clone()).to_string();
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - {quoted}")) {
            response.headers_mut().append(http::header::WARNING, v);
        }
    }
    response
}

/// Reads the body format from the Content-Type, refusing unknown ones.
pub(crate) fn body_format(target: &Target) -> ApiResult<BodyFormat> {
    let ct = target.header("content-type");
    BodyFormat::of(ct).ok_or_else(|| {
        ApiError::unsupported_media_type(
            ct,
            &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ],
        )
    })
}
