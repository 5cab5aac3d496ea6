//! Requests answered on the spot: who am I (SelfSubjectReview), is this
//! token valid (TokenReview), may I (the access reviews), and a token for a
//! service account (`serviceaccounts/<name>/token`).
//!
//! Authorization is not enforced yet (every authenticated user may do
//! everything), so every access review answers allowed, with a reason that
//! says why; this changes with RBAC.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::Api;
use crate::auth::User;
use crate::rest::{Target, json_response, read, write};
use crate::satoken::{self, Claims, KubernetesClaims, ObjectRef};
use crate::status::{ApiError, ApiResult};

/// Why everything is allowed.
const ALLOWED_REASON: &str =
    "authorization is not enforced by this Gantry: every authenticated user may do everything";

/// Default token lifetime, as `kubectl create token` gets.
const DEFAULT_EXPIRATION: i64 = 3600;

fn user_info(user: &User) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    info
}

fn invalid(t: &Target, errors: &[kinds::FieldError]) -> ApiError {
    ApiError::invalid(&t.def.group, &t.def.kind, "", errors)
}

/// POST to one of the review resources.
pub(crate) async fn create(t: &Target, body: Bytes) -> ApiResult<Response> {
    let (mut obj, _warnings) = write::decode_new(t, &body)?;
    let strategy = &t.def.strategy;
    strategy.default(&mut obj);
    let errors = strategy.validate(&obj, None);
    if !errors.is_empty() {
        return Err(invalid(t, &errors));
    }
    let user = t.user.clone().unwrap_or_else(|| User {
        name: "system:apiserver".into(),
        uid: String::new(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    });
    let status = match t.def.kind.as_str() {
        "SelfSubjectReview" => json!({"userInfo": user_info(&user)}),
        "TokenReview" => {
            let token = obj
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or("");
            let audiences: Vec<String> = obj
                .pointer("/spec/audiences")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .filter(|a: &Vec<String>| !a.is_empty())
                .unwrap_or_else(|| vec![satoken::ISSUER.to_owned()]);
            let wanted: Vec<&str> = audiences.iter().map(String::as_str).collect();
            match authenticate_token(&t.api, token, &wanted).await {
                Some((user, audiences)) => json!({
                    "authenticated": true,
                    "user": user_info(&user),
                    "audiences": audiences,
                }),
                None => json!({"authenticated": false, "error": "invalid bearer token"}),
            }
        }
        "SelfSubjectRulesReview" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        _ => json!({"allowed": true, "reason": ALLOWED_REASON}),
    };
    obj["status"] = status;
    obj["metadata"]["creationTimestamp"] = Value::Null;
    Ok(json_response(http::StatusCode::CREATED, &obj))
}

/// Authenticates a bearer token: the static token file, then bootstrap
/// tokens, then service account tokens. Answers the user and the audiences
/// the token is for.
pub(crate) async fn authenticate_token(
    api: &Arc<Api>,
    token: &str,
    audiences: &[&str],
) -> Option<(User, Vec<String>)> {
    if let Some(user) = api.tokens.lookup(token) {
        return Some((user, audiences.iter().map(|a| a.to_string()).collect()));
    }
    if crate::bootstrap::parse_token(token).is_some() {
        let user = crate::bootstrap::authenticate(api, token).await?;
        return Some((user, audiences.iter().map(|a| a.to_string()).collect()));
    }
    if !satoken::looks_like_jwt(token) {
        return None;
    }
    let claims = api.signer.verify(token, audiences)?;
    // A token lives only as long as what it names.
    let k = &claims.kubernetes;
    let ns = k.namespace.as_str();
    exists(api, "serviceaccounts", Some(ns), &k.serviceaccount).await?;
    if let Some(pod) = &k.pod {
        exists(api, "pods", Some(ns), pod).await?;
    }
    if let Some(secret) = &k.secret {
        exists(api, "secrets", Some(ns), secret).await?;
    }
    if let Some(node) = &k.node {
        exists(api, "nodes", None, node).await?;
    }
    let user = claims.user();
    Some((user, claims.aud))
}

/// `Some` when the core object `r` exists with its uid.
async fn exists(api: &Arc<Api>, resource: &str, ns: Option<&str>, r: &ObjectRef) -> Option<()> {
    let t = Target::internal(api, "", "v1", resource, ns, Some(&r.name))?;
    let (obj, _) = read::read_object(&t, &t.key()).await.ok()??;
    (crate::meta::meta_str(&obj, "uid") == Some(r.uid.as_str()) && !crate::meta::is_deleting(&obj))
        .then_some(())
}

/// `serviceaccounts/<name>/token`: a signed token for the service account,
/// optionally bound to a pod, secret or node.
pub(crate) async fn token_request(t: &Target, body: Bytes) -> ApiResult<Response> {
    let format = crate::rest::body_format(t)?;
    let mut req = crate::codec::decode(&body, format)?.value;
    if !req.is_object() {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    for (field, want) in [
        ("apiVersion", "authentication.k8s.io/v1"),
        ("kind", "TokenRequest"),
    ] {
        match req.get(field).and_then(Value::as_str) {
            None | Some("") => req[field] = json!(want),
            Some(v) if v == want => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the data ({v}) does not match the expected {field} ({want})"
                )));
            }
        }
    }
    let errors = kinds::validate_token_request(&req);
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            t.name(),
            &errors,
        ));
    }
    let (sa, _) = read::read_object(t, &t.key())
        .await?
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", t.name()))?;
    let ns = t.namespace().unwrap_or("default").to_owned();
    let sa_ref = ObjectRef {
        name: t.name().to_owned(),
        uid: crate::meta::meta_str(&sa, "uid").unwrap_or("").to_owned(),
    };
    let mut claims_k8s = KubernetesClaims {
        namespace: ns.clone(),
        serviceaccount: sa_ref,
        ..KubernetesClaims::default()
    };
    if let Some(bound) = req.pointer("/spec/boundObjectRef").filter(|b| !b.is_null()) {
        let kind = bound.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = bound.get("name").and_then(Value::as_str).unwrap_or("");
        let (resource, in_ns) = match kind {
            "Pod" => ("pods", Some(ns.as_str())),
            "Secret" => ("secrets", Some(ns.as_str())),
            _ => ("nodes", None),
        };
        let target = Target::internal(&t.api, "", "v1", resource, in_ns, Some(name))
            .ok_or_else(ApiError::no_route)?;
        let (obj, _) = read::read_object(&target, &target.key())
            .await?
            .ok_or_else(|| ApiError::not_found("", resource, name))?;
        let uid = crate::meta::meta_str(&obj, "uid").unwrap_or("").to_owned();
        if let Some(want) = bound.get("uid").and_then(Value::as_str)
            && !want.is_empty()
            && want != uid
        {
            return Err(ApiError::conflict_because(
                "",
                resource,
                name,
                &format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        let r = Some(ObjectRef {
            name: name.to_owned(),
            uid,
        });
        match kind {
            "Pod" => claims_k8s.pod = r,
            "Secret" => claims_k8s.secret = r,
            _ => claims_k8s.node = r,
        }
    }
    let audiences: Vec<String> = req
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![satoken::ISSUER.to_owned()]);
    let seconds = req
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION);
    let now = chrono::Utc::now();
    let exp = now.timestamp() + seconds;
    let claims = Claims {
        aud: audiences.clone(),
        exp,
        iat: now.timestamp(),
        nbf: now.timestamp(),
        iss: satoken::ISSUER.into(),
        jti: uuid::Uuid::new_v4().to_string(),
        sub: format!("system:serviceaccount:{ns}:{}", t.name()),
        kubernetes: claims_k8s,
    };
    let token = t.api.signer.sign(&claims);
    let expiration = chrono::DateTime::from_timestamp(exp, 0)
        .unwrap_or(now)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    req["metadata"] = json!({"name": t.name(), "namespace": ns, "creationTimestamp": null});
    req["spec"]["audiences"] = json!(audiences);
    req["spec"]["expirationSeconds"] = json!(seconds);
    if req["spec"].get("boundObjectRef").is_none_or(Value::is_null) {
        req["spec"]["boundObjectRef"] = Value::Null;
    }
    req["status"] = json!({"token": token, "expirationTimestamp": expiration});
    Ok(json_response(http::StatusCode::CREATED, &req))
}
