//! Errors as Kubernetes reports them: a `Status` object with an HTTP code,
//! a reason clients switch on, a message, and details (the object's name and
//! kind, and for invalid objects one cause per field).
//!
//! The message templates follow Kubernetes word for word, because kubectl
//! prints them (and for `Invalid` rebuilds its own text from the details).

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use kinds::FieldError;
use serde_json::{Value, json};

/// One cause of an error, as in a Status' `details.causes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldManagerConflict`, ...
    pub reason: String,
    /// The cause's message, without the field.
    pub message: String,
    /// The field, such as `spec.replicas`.
    pub field: String,
}

/// An error answered to a client. Boxed, so that results stay small on the
/// common path where nothing goes wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError(Box<ErrorFields>);

/// What an [`ApiError`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFields {
    /// HTTP status code.
    pub code: u16,
    /// Status reason (`NotFound`, `Invalid`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details.name`.
    pub name: Option<String>,
    /// `details.group`.
    pub group: Option<String>,
    /// `details.kind`: the resource for NotFound/AlreadyExists/Conflict, the
    /// kind for Invalid, as Kubernetes does.
    pub kind: Option<String>,
    /// `details.causes`.
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds`.
    pub retry_after: Option<u32>,
}

/// Shorthand for results of request handling.
pub type ApiResult<T> = Result<T, ApiError>;

/// `resource.group` or `resource` for the core group, as Kubernetes names a
/// group-resource in messages (`deployments.apps "web" not found`).
pub fn group_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

impl std::ops::Deref for ApiError {
    type Target = ErrorFields;

    fn deref(&self) -> &ErrorFields {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorFields {
        &mut self.0
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorFields {
            code,
            reason,
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after: None,
        }))
    }

    fn about(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.group = Some(group.to_owned());
        self.kind = Some(kind.to_owned());
        if !name.is_empty() {
            self.name = Some(name.to_owned());
        }
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 429 TooManyRequests, with how long to wait (0: not said).
    pub fn too_many_requests(message: impl Into<String>, retry_after: u32) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message);
        e.retry_after = (retry_after > 0).then_some(retry_after);
        e
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let gr = group_resource(group, resource);
        let what = if name.is_empty() {
            gr.clone()
        } else {
            format!("{gr} \"{name}\"")
        };
        Self::new(403, "Forbidden", format!("{what} is forbidden: {why}"))
            .about(group, resource, name)
    }

    /// 403 Forbidden for a request as a path, in Kubernetes' words for
    /// non-resource requests.
    pub fn forbidden_path(user: &str, verb: &str, path: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\": {why}"),
        )
    }

    /// 404 NotFound for an object.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", group_resource(group, resource)),
        )
        .about(group, resource, name)
    }

    /// 404 for a path that names no resource.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(verb: &str, group: &str, resource: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "{verb} is not supported on resources of kind \"{}\"",
                group_resource(group, resource)
            ),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!(
                "{} \"{name}\" already exists",
                group_resource(group, resource)
            ),
        )
        .about(group, resource, name)
    }

    /// 409 Conflict: the object changed since the client read it.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                group_resource(group, resource)
            ),
        )
        .about(group, resource, name)
    }

    /// 409 Conflict with a specific reason (such as a precondition).
    pub fn conflict_because(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                group_resource(group, resource)
            ),
        )
        .about(group, resource, name)
    }

    /// 410 Expired: a resourceVersion below the compaction point.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str, supported: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                supported.join(", ")
            ),
        )
        .with_message_prefix(if content_type.is_empty() {
            String::new()
        } else {
            format!("{content_type}: ")
        })
    }

    fn with_message_prefix(mut self, prefix: String) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    /// 422 Invalid: `Kind.group "name" is invalid: field: ...`, with one
    /// cause per field error.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified = group_resource(group, kind);
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let list = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {list}"),
        )
        .about(group, kind, name);
        e.causes = errors
            .iter()
            .map(|f| Cause {
                reason: f.kind.cause_reason().to_owned(),
                message: f.message(),
                field: f.field.clone(),
            })
            .collect();
        e
    }

    /// 500 InternalError.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    /// 503 ServiceUnavailable (the store cannot be reached).
    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", message.to_string());
        e.retry_after = Some(1);
        e
    }

    /// 504 Timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// 501 NotImplemented, for features Gantry does not have.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(501, "NotImplemented", message)
    }

    /// The Status object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = &self.group {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &self.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !self.causes.is_empty() {
            details.insert(
                "causes".into(),
                Value::Array(
                    self.causes
                        .iter()
                        .map(
                            |c| json!({"reason": c.reason, "message": c.message, "field": c.field}),
                        )
                        .collect(),
                ),
            );
        }
        if let Some(after) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(after));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        use store::StoreError as S;
        match e {
            S::Compacted { requested, .. } => {
                ApiError::expired(format!("too old resource version: {requested}"))
            }
            S::FutureRevision { requested } => {
                let mut e = ApiError::timeout(format!(
                    "Too large resource version: {requested}, current: unknown"
                ));
                e.causes.push(Cause {
                    reason: "ResourceVersionTooLarge".into(),
                    message: "Too large resource version".into(),
                    field: String::new(),
                });
                e.retry_after = Some(1);
                e
            }
            S::RequestTooLarge { limit, .. } => ApiError::too_large(limit),
            S::Unavailable { .. } | S::Closed(_) | S::NoSpace { .. } => ApiError::unavailable(e),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            self.to_status().to_string(),
        )
            .into_response();
        if let Some(after) = self.retry_after
            && let Ok(v) = http::HeaderValue::from_str(&after.to_string())
        {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        resp
    }
}

/// A successful delete or other action answered with a Status.
pub fn success(details: Option<(&str, &str, &str, &str)>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
    });
    if let Some((name, group, kind, uid)) = details {
        status["details"] = json!({"name": name, "group": group, "kind": kind, "uid": uid});
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_kubernetes() {
        assert_eq!(
            ApiError::not_found("apps", "deployments", "nosuch").message,
            "deployments.apps \"nosuch\" not found"
        );
        assert_eq!(
            ApiError::already_exists("", "configmaps", "ae1").message,
            "configmaps \"ae1\" already exists"
        );
        let invalid = ApiError::invalid(
            "apps",
            "Deployment",
            "x",
            &[FieldError::invalid(
                "spec.replicas",
                "-1",
                "must be greater than or equal to 0",
            )],
        );
        assert_eq!(
            invalid.message,
            "Deployment.apps \"x\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let s = invalid.to_status();
        assert_eq!(s["details"]["kind"], "Deployment");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");
        assert_eq!(
            s["details"]["causes"][0]["message"],
            "Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(s["code"], 422);
        let two = ApiError::invalid(
            "",
            "ConfigMap",
            "c",
            &[
                FieldError::required("metadata.name", ""),
                FieldError::required("data", ""),
            ],
        );
        assert!(
            two.message
                .ends_with("[metadata.name: Required value, data: Required value]")
        );
    }
}
