//! Joining machines: bootstrap tokens, the CA for the asking, and node
//! certificates.
//!
//! A bootstrap token is `<token-id>.<token-secret>` (6 and 16 characters of
//! `[a-z0-9]`) backed by the Secret `kube-system/bootstrap-token-<id>` of
//! type `bootstrap.kubernetes.io/token`, as Kubernetes defines it. It
//! authenticates, as Kubernetes' bootstrap token authenticator does, as
//! `system:bootstrap:<id>` in `system:bootstrappers` (plus the Secret's
//! `auth-extra-groups`) while the Secret exists, is not being deleted, has
//! not expired and says `usage-bootstrap-authentication: "true"`.
//!
//! A bootstrapper may do one thing: `POST /gantry/v1/nodes/<name>/certificates`
//! (not a Kubernetes path), sending two PKCS#10 requests made on the node,
//! so its private keys never leave it:
//!
//! ```json
//! {"clientRequest": "<PEM>", "servingRequest": "<PEM>"}
//! ```
//!
//! and getting back, signed by the cluster CA,
//!
//! ```json
//! {"clientCertificate": "<PEM>", "servingCertificate": "<PEM>", "caCertificate": "<PEM>"}
//! ```
//!
//! a client certificate for `system:node:<name>` in `system:nodes` (whatever
//! the request's subject says) and a serving certificate for the names the
//! serving request asks for, if they are the node's: its name, and
//! addresses that are neither loopback nor the API server's own. A node may
//! ask again for its own name with its client certificate (to renew, or
//! when its address changed), and the admins (`system:masters`) for any.
//! Besides, a bootstrapper may read discovery (as Kubernetes'
//! `system:discovery` role lets every authenticated user); any resource
//! request of its is refused with 403.
//!
//! `GET /cacerts` answers the cluster CA to anyone, as k3s does: a joining
//! machine fetches it without verification and checks it against the hash
//! its join token carries before it sends the token anywhere.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::Api;
use crate::auth::User;
use crate::request::{Query, ResourcePath};
use crate::rest::{Target, json_response, read};
use crate::status::ApiError;

/// The group every bootstrap token's user is in.
pub(crate) const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// The Secret type of bootstrap tokens.
const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Where node certificates are asked for: `<prefix><name>/certificates`.
const CERTIFICATES_PREFIX: &str = "/gantry/v1/nodes/";
/// The most a certificates request body may hold (two small PEM requests).
const MAX_REQUEST: usize = 64 * 1024;

/// A new bootstrap token, to be stored as the Secret
/// [`BootstrapToken::secret_object`] makes (`gantry token create`).
#[derive(Clone)]
pub struct BootstrapToken {
    /// The token id, 6 characters of `[a-z0-9]`, public: it names the Secret.
    pub id: String,
    /// The token secret, 16 characters of `[a-z0-9]`.
    pub secret: String,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl BootstrapToken {
    /// A token from the thread's cryptographically secure generator.
    pub fn generate() -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let mut pick = |n: usize| -> String {
            (0..n)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect()
        };
        Self {
            id: pick(6),
            secret: pick(16),
        }
    }

    /// Reads `<id>.<secret>`; `None` when the text is not shaped so.
    pub fn parse(text: &str) -> Option<Self> {
        parse_token(text).map(|(id, secret)| Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// `<id>.<secret>`, the bearer token.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The Secret `kube-system/bootstrap-token-<id>` that makes the token
    /// authenticate for `ttl` from now (for ever when `None`, or when the
    /// end is beyond what a date can say).
    pub fn secret_object(&self, ttl: Option<std::time::Duration>, description: &str) -> Value {
        let expiration = ttl
            .and_then(|ttl| chrono::Duration::from_std(ttl).ok())
            .and_then(|ttl| Utc::now().checked_add_signed(ttl));
        self.secret_object_until(expiration, description)
    }

    fn secret_object_until(&self, expiration: Option<DateTime<Utc>>, description: &str) -> Value {
        let mut data = json!({
            "token-id": self.id,
            "token-secret": self.secret,
            "usage-bootstrap-authentication": "true",
            "description": description,
        });
        if let Some(at) = expiration {
            data["expiration"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("bootstrap-token-{}", self.id), "namespace": "kube-system"},
            "type": SECRET_TYPE,
            "stringData": data,
        })
    }
}

/// The id and secret of a token shaped like a bootstrap token.
pub(crate) fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let shaped = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (shaped(id, 6) && shaped(secret, 16)).then_some((id, secret))
}

/// Why a bootstrap token Secret does not authenticate a token.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Deleting,
    WrongType,
    WrongSecret,
    Expired,
    NotForAuthentication,
    BadExtraGroup(String),
}

/// Checks `secret` (the Secret object as stored, `data` in base64) against
/// the token's id and secret at `now`, and answers whom it authenticates.
fn check_secret(
    secret: &Value,
    id: &str,
    token_secret: &str,
    now: DateTime<Utc>,
) -> Result<User, Refusal> {
    if secret
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Err(Refusal::Deleting);
    }
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err(Refusal::WrongType);
    }
    let field = |key: &str| -> Option<String> {
        let b64 = secret.pointer(&format!("/data/{key}"))?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        String::from_utf8(bytes).ok()
    };
    // Compared in constant time, so the answer's timing says nothing of
    // how much of the secret was right.
    let stored = field("token-secret").unwrap_or_default();
    let same = stored.len() == token_secret.len()
        && stored
            .bytes()
            .zip(token_secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same || field("token-id").as_deref() != Some(id) {
        return Err(Refusal::WrongSecret);
    }
    if let Some(expiration) = field("expiration") {
        match DateTime::parse_from_rfc3339(expiration.trim()) {
            Ok(at) if at.with_timezone(&Utc) > now => {}
            // An expiration that cannot be read counts as past, as in
            // Kubernetes.
            _ => return Err(Refusal::Expired),
        }
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(Refusal::NotForAuthentication);
    }
    let mut groups = vec![BOOTSTRAPPERS.to_owned()];
    for group in field("auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        let rest = group.strip_prefix("system:bootstrappers:").unwrap_or("");
        let valid = !rest.is_empty()
            && rest.len() <= 256
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
            && !rest.ends_with([':', '-']);
        if !valid {
            return Err(Refusal::BadExtraGroup(group.to_owned()));
        }
        groups.push(group.to_owned());
    }
    groups.push("system:authenticated".into());
    Ok(User {
        name: format!("system:bootstrap:{id}"),
        uid: String::new(),
        groups,
    })
}

/// The user a bootstrap token stands for, if its Secret says it is valid.
pub(crate) async fn authenticate(api: &Arc<Api>, token: &str) -> Option<User> {
    let (id, secret) = parse_token(token)?;
    let name = format!("bootstrap-token-{id}");
    let t = Target::internal(api, "", "v1", "secrets", Some("kube-system"), Some(&name))?;
    let (obj, _) = read::read_object(&t, &t.key()).await.ok()??;
    match check_secret(&obj, id, secret, Utc::now()) {
        Ok(user) => Some(user),
        Err(why) => {
            tracing::debug!(token_id = id, ?why, "bootstrap token refused");
            None
        }
    }
}

/// Whether `user` authenticated with a bootstrap token.
pub(crate) fn is_bootstrapper(user: &User) -> bool {
    user.groups.iter().any(|g| g == BOOTSTRAPPERS)
}

/// The node a path asks certificates for, when it is the certificates
/// endpoint.
pub(crate) fn certificates_path(path: &str) -> Option<&str> {
    path.strip_prefix(CERTIFICATES_PREFIX)?
        .strip_suffix("/certificates")
        .filter(|name| !name.contains('/'))
}

/// The answer to a bootstrapper asking for a resource, in Kubernetes'
/// words for an RBAC refusal.
pub(crate) fn forbidden(
    user: &User,
    method: &Method,
    path: &ResourcePath,
    query: &Query,
) -> Response {
    let named = path.name.is_some();
    let verb = match *method {
        Method::GET | Method::HEAD
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") =>
        {
            "watch"
        }
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "use",
    };
    let resource = match &path.subresource {
        Some(sub) => format!("{}/{sub}", path.resource),
        None => path.resource.clone(),
    };
    let scope = match &path.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let why = format!(
        "User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}: a bootstrap token may only ask for node certificates (POST /gantry/v1/nodes/<name>/certificates)",
        user.name, path.group
    );
    ApiError::forbidden(
        &path.group,
        &path.resource,
        path.name.as_deref().unwrap_or(""),
        &why,
    )
    .into_response()
}

/// `GET /cacerts`: the cluster CA, PEM.
pub(crate) fn cacerts(api: &Api) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/x-pem-file")
        .body(Body::from(api.ca.cert_pem().to_owned()))
        .expect("static headers are valid")
}

/// `POST /gantry/v1/nodes/<name>/certificates`.
pub(crate) async fn certificates(
    api: &Arc<Api>,
    user: &User,
    node: &str,
    method: &Method,
    body: Body,
) -> Response {
    match issue(api, user, node, method, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn issue(
    api: &Arc<Api>,
    user: &User,
    node: &str,
    method: &Method,
    body: Body,
) -> Result<Response, ApiError> {
    let path = format!("{CERTIFICATES_PREFIX}{node}/certificates");
    let in_group = |g: &str| user.groups.iter().any(|have| have == g);
    let allowed = is_bootstrapper(user)
        || in_group("system:masters")
        || (in_group("system:nodes") && user.name == format!("system:node:{node}"));
    if !allowed {
        return Err(ApiError::forbidden_path(
            &user.name,
            "create",
            &path,
            "only bootstrap tokens, the node itself and admins may ask for a node's certificates",
        ));
    }
    if *method != Method::POST {
        return Err(ApiError::method_not_allowed(
            &method.as_str().to_lowercase(),
            "",
            "nodes/certificates",
        ));
    }
    let problems = kinds::validation::dns1123_subdomain(node);
    if !problems.is_empty() {
        return Err(ApiError::bad_request(format!(
            "invalid node name {node:?}: {}",
            problems.join("; ")
        )));
    }
    let body = axum::body::to_bytes(body, MAX_REQUEST)
        .await
        .map_err(|_| ApiError::too_large(MAX_REQUEST))?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))?;
    let csr = |field: &str| -> Result<pki::SigningRequest, ApiError> {
        let pem = request.get(field).and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request(format!("{field}: a PEM certificate request is required"))
        })?;
        pki::SigningRequest::from_pem(pem)
            .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
    };
    let client_request = csr("clientRequest")?;
    let serving_request = csr("servingRequest")?;
    let (dns, ips) = serving_names(api, node, &serving_request)?;

    let ca = &api.ca;
    let signing = |e: pki::PkiError| {
        ApiError::internal(format!("signing the certificates of node {node}: {e}"))
    };
    let client = ca
        .sign_client_request(
            &client_request,
            &format!("system:node:{node}"),
            &["system:nodes"],
        )
        .map_err(signing)?;
    let serving = ca
        .sign_server_request(&serving_request, node, &dns, &ips)
        .map_err(signing)?;
    tracing::info!(node, by = %user.name, ?ips, "issued node certificates");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "clientCertificate": client,
            "servingCertificate": serving,
            "caCertificate": ca.cert_pem(),
        }),
    ))
}

/// The names a node's serving certificate may carry: its own name and
/// addresses of its own. Loopback and the API server's addresses and names
/// are refused, so a joining machine cannot get a certificate clients of
/// the API server would accept for the server.
fn serving_names(
    api: &Api,
    node: &str,
    request: &pki::SigningRequest,
) -> Result<(Vec<String>, Vec<IpAddr>), ApiError> {
    let dns = request.dns_names();
    if let Some(other) = dns.iter().find(|d| *d != node) {
        return Err(ApiError::bad_request(format!(
            "servingRequest: node {node} may not have a serving certificate for {other:?} (only for its name)"
        )));
    }
    let ips = request.ip_addresses();
    if ips.is_empty() {
        return Err(ApiError::bad_request(format!(
            "servingRequest: no address of node {node} to serve on"
        )));
    }
    let (_, server_ips) = crate::serving_names(&api.config, api.config.listen);
    if let Some(ip) = ips.iter().find(|ip| {
        ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || server_ips.contains(ip)
    }) {
        return Err(ApiError::bad_request(format!(
            "servingRequest: node {node} may not have a serving certificate for {ip} (loopback, unspecified or the API server's)"
        )));
    }
    Ok((vec![node.to_owned()], ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(fields: &[(&str, &str)]) -> Value {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let data: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(b64(v))))
            .collect();
        json!({
            "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
            "type": SECRET_TYPE,
            "data": data,
        })
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    const GOOD: &[(&str, &str)] = &[
        ("token-id", "abcdef"),
        ("token-secret", "0123456789abcdef"),
        ("expiration", "2030-01-02T00:00:00Z"),
        ("usage-bootstrap-authentication", "true"),
    ];

    /// What the API server makes of `stringData` on the way in.
    fn as_stored(mut secret: Value) -> Value {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let strings = secret
            .as_object_mut()
            .unwrap()
            .remove("stringData")
            .unwrap();
        let data: serde_json::Map<String, Value> = strings
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), json!(b64(v.as_str().unwrap()))))
            .collect();
        secret["data"] = Value::Object(data);
        secret
    }

    #[test]
    fn generated_tokens_authenticate_until_they_expire() {
        let token = BootstrapToken::generate();
        let text = token.token();
        let (id, secret) = parse_token(&text).unwrap();
        assert_eq!(BootstrapToken::parse(&token.token()).unwrap().id, token.id);
        let soon = token.secret_object(Some(std::time::Duration::from_secs(60)), "d");
        let at = soon["stringData"]["expiration"].as_str().unwrap();
        let at = DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&Utc);
        assert!(at > Utc::now() && at <= Utc::now() + chrono::Duration::seconds(61));
        assert_eq!((id, secret), (token.id.as_str(), token.secret.as_str()));
        assert_ne!(BootstrapToken::generate().token(), token.token());
        let expires = now() + chrono::Duration::hours(1);
        let object = as_stored(token.secret_object_until(Some(expires), "joining"));
        assert_eq!(
            object["metadata"]["name"],
            format!("bootstrap-token-{}", token.id)
        );
        let user = check_secret(&object, id, secret, now()).unwrap();
        assert_eq!(user.name, format!("system:bootstrap:{id}"));
        assert_eq!(
            check_secret(&object, id, secret, expires + chrono::Duration::seconds(1)),
            Err(Refusal::Expired)
        );
        let forever = as_stored(token.secret_object_until(None, "joining"));
        assert!(check_secret(&forever, id, secret, now() + chrono::Duration::days(9999)).is_ok());
        assert!(!format!("{token:?}").contains(&token.secret));
    }

    #[test]
    fn tokens_are_shaped_as_kubernetes_says() {
        assert_eq!(
            parse_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "abcdef0123456789abcdef",
            "abcde.0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdeff",
            "abcdef.0123456789abcde_",
            "eyJhbGciOi.x.y",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_valid_secret_authenticates_a_bootstrapper() {
        let user = check_secret(&secret(GOOD), "abcdef", "0123456789abcdef", now()).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(user.groups, [BOOTSTRAPPERS, "system:authenticated"]);
        assert!(is_bootstrapper(&user));
        // No expiration: valid until deleted.
        let forever: Vec<_> = GOOD
            .iter()
            .filter(|(k, _)| *k != "expiration")
            .copied()
            .collect();
        assert!(check_secret(&secret(&forever), "abcdef", "0123456789abcdef", now()).is_ok());
        let mut extra = GOOD.to_vec();
        extra.push(("auth-extra-groups", "system:bootstrappers:workers"));
        let user = check_secret(&secret(&extra), "abcdef", "0123456789abcdef", now()).unwrap();
        assert_eq!(
            user.groups,
            [
                BOOTSTRAPPERS,
                "system:bootstrappers:workers",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn invalid_secrets_refuse() {
        let with = |key: &str, value: &str| {
            let mut fields: Vec<_> = GOOD.iter().filter(|(k, _)| *k != key).copied().collect();
            fields.push((key, value));
            secret(&fields)
        };
        let check = |s: &Value, token_secret: &str| {
            check_secret(s, "abcdef", token_secret, now()).unwrap_err()
        };
        assert_eq!(
            check(&secret(GOOD), "0123456789abcdee"),
            Refusal::WrongSecret
        );
        assert_eq!(
            check(&with("token-id", "zzzzzz"), "0123456789abcdef"),
            Refusal::WrongSecret
        );
        assert_eq!(
            check(
                &with("expiration", "2029-12-31T23:59:59Z"),
                "0123456789abcdef"
            ),
            Refusal::Expired
        );
        assert_eq!(
            check(&with("expiration", "tomorrow"), "0123456789abcdef"),
            Refusal::Expired
        );
        assert_eq!(
            check(
                &with("usage-bootstrap-authentication", "false"),
                "0123456789abcdef"
            ),
            Refusal::NotForAuthentication
        );
        assert_eq!(
            check(
                &with("auth-extra-groups", "system:masters"),
                "0123456789abcdef"
            ),
            Refusal::BadExtraGroup("system:masters".into())
        );
        let mut opaque = secret(GOOD);
        opaque["type"] = json!("Opaque");
        assert_eq!(check(&opaque, "0123456789abcdef"), Refusal::WrongType);
        let mut deleting = secret(GOOD);
        deleting["metadata"]["deletionTimestamp"] = json!("2029-12-31T00:00:00Z");
        assert_eq!(check(&deleting, "0123456789abcdef"), Refusal::Deleting);
    }

    #[test]
    fn only_the_certificates_path_names_a_node() {
        assert_eq!(
            certificates_path("/gantry/v1/nodes/n1/certificates"),
            Some("n1")
        );
        assert_eq!(
            certificates_path("/gantry/v1/nodes/n1/x/certificates"),
            None
        );
        assert_eq!(certificates_path("/gantry/v1/nodes/n1"), None);
        assert_eq!(certificates_path("/api/v1/nodes/n1/certificates"), None);
    }
}
