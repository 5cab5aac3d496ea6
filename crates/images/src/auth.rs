//! Registry credentials: read from Docker config payloads (what
//! `kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg` secrets
//! hold) and matched to the registry of an image, as the kubelet's keyring
//! does.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use crate::ImageError;

/// A user name and password for one registry (or a part of one).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The registry the credential is for, as written in the Docker config:
    /// a host (`registry.example.com:5000`), optionally with a path prefix
    /// (`registry.example.com/team`) or a leading wildcard label
    /// (`*.example.com`); a scheme and Docker Hub's `/v1/` suffix are
    /// accepted and ignored.
    pub registry: String,
    /// The user name.
    pub username: String,
    /// The password (or token used as one).
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password: these end up in logs.
        f.debug_struct("Credential")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One entry of a Docker config's `auths` map.
#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// `base64(username:password)`.
    #[serde(default)]
    auth: Option<String>,
}

/// Reads the credentials in a Docker config payload: the
/// `.dockerconfigjson` form (`{"auths": {REGISTRY: ENTRY}}`) or the older
/// `.dockercfg` form (`{REGISTRY: ENTRY}`). An entry gives `username` and
/// `password`, or `auth` (base64 of `username:password`); entries with
/// neither (identity tokens) are skipped.
pub fn credentials_from_docker_config(json: &[u8]) -> Result<Vec<Credential>, ImageError> {
    let invalid = |reason: String| ImageError::invalid("docker config", reason);
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let auths = match value.get("auths") {
        Some(auths @ serde_json::Value::Object(_)) => auths.clone(),
        Some(_) => return Err(invalid("\"auths\" is not an object".to_owned())),
        None if value.is_object() => value,
        None => return Err(invalid("not a JSON object".to_owned())),
    };
    let entries: BTreeMap<String, AuthEntry> = serde_json::from_value(auths)
        .map_err(|e| invalid(format!("malformed registry entry: {e}")))?;
    let mut credentials = Vec::new();
    for (registry, entry) in entries {
        let (username, password) = match (entry.username, entry.password, entry.auth) {
            (Some(user), Some(password), _) if !user.is_empty() => (user, password),
            (_, _, Some(auth)) if !auth.is_empty() => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|e| invalid(format!("\"auth\" of {registry} is not base64: {e}")))?;
                let decoded = String::from_utf8(decoded)
                    .map_err(|_| invalid(format!("\"auth\" of {registry} is not UTF-8")))?;
                let Some((user, password)) = decoded.split_once(':') else {
                    return Err(invalid(format!(
                        "\"auth\" of {registry} is not username:password"
                    )));
                };
                (user.to_owned(), password.to_owned())
            }
            _ => continue,
        };
        credentials.push(Credential {
            registry,
            username,
            password,
        });
    }
    Ok(credentials)
}

/// A credential's registry split into the host it applies to and an
/// optional repository path prefix.
#[derive(Debug, PartialEq, Eq)]
struct Scope {
    host: String,
    path: String,
}

/// Parses a Docker config registry key: drops the scheme and the `/v1/` or
/// `/v2/` API suffix, folds Docker Hub's host names into `docker.io`.
fn scope_of(registry: &str) -> Scope {
    let rest = registry
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (host, path) = match rest.split_once('/') {
        Some((host, path)) => (host, path),
        None => (rest, ""),
    };
    let mut path = path.trim_matches('/');
    for api in ["v1", "v2"] {
        if path == api {
            path = "";
        }
    }
    Scope {
        host: canonical_host(&host.to_ascii_lowercase()).to_owned(),
        path: path.to_owned(),
    }
}

/// Docker Hub answers under several names; the references say `docker.io`.
fn canonical_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        other => other,
    }
}

/// Whether `pattern` (a host, maybe with `*` labels) matches `host`. Like
/// the kubelet, a wildcard stands for exactly one label, and ports must be
/// equal.
fn host_matches(pattern: &str, host: &str) -> bool {
    let split_port = |s: &str| -> (String, String) {
        match s.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
                (name.to_owned(), port.to_owned())
            }
            _ => (s.to_owned(), String::new()),
        }
    };
    let (pattern_name, pattern_port) = split_port(pattern);
    let (host_name, host_port) = split_port(host);
    if pattern_port != host_port {
        return false;
    }
    let pattern_labels: Vec<&str> = pattern_name.split('.').collect();
    let host_labels: Vec<&str> = host_name.split('.').collect();
    pattern_labels.len() == host_labels.len()
        && pattern_labels
            .iter()
            .zip(&host_labels)
            .all(|(p, h)| *p == "*" || p == h)
}

/// The credential to use for `repository` on `registry`: among those whose
/// host matches, the one with the longest matching path prefix (so a
/// credential for `registry/team` wins over one for `registry`), the first
/// given when equal.
pub(crate) fn select_credential<'a>(
    credentials: &'a [Credential],
    registry: &str,
    repository: &str,
) -> Option<&'a Credential> {
    let host = canonical_host(&registry.to_ascii_lowercase()).to_owned();
    let mut best: Option<(&Credential, usize)> = None;
    for credential in credentials {
        let scope = scope_of(&credential.registry);
        if !host_matches(&scope.host, &host) {
            continue;
        }
        let path_matches = scope.path.is_empty()
            || repository == scope.path
            || repository.starts_with(&format!("{}/", scope.path));
        if !path_matches {
            continue;
        }
        let specificity = scope.path.len();
        if best.is_none_or(|(_, s)| specificity > s) {
            best = Some((credential, specificity));
        }
    }
    best.map(|(credential, _)| credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(registry: &str, username: &str) -> Credential {
        Credential {
            registry: registry.to_owned(),
            username: username.to_owned(),
            password: "pw".to_owned(),
        }
    }

    #[test]
    fn reads_dockerconfigjson_with_auth_or_username() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cr:et");
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{auth}", "email": "a@example.com"}},
                "127.0.0.1:5000": {{"username": "bob", "password": "hunter2"}},
                "tokens.example.com": {{"identitytoken": "xyz"}}
            }}}}"#
        );
        let creds = credentials_from_docker_config(json.as_bytes()).unwrap();
        assert_eq!(
            creds,
            vec![
                Credential {
                    registry: "127.0.0.1:5000".into(),
                    username: "bob".into(),
                    password: "hunter2".into()
                },
                Credential {
                    registry: "https://index.docker.io/v1/".into(),
                    username: "alice".into(),
                    password: "s3cr:et".into()
                },
            ]
        );
        assert!(!format!("{creds:?}").contains("hunter2"));
    }

    #[test]
    fn reads_legacy_dockercfg() {
        let auth = base64::engine::general_purpose::STANDARD.encode("carol:pw");
        let json = format!(r#"{{"registry.example.com": {{"auth": "{auth}"}}}}"#);
        let creds = credentials_from_docker_config(json.as_bytes()).unwrap();
        assert_eq!(creds, vec![cred("registry.example.com", "carol")]);
    }

    #[test]
    fn rejects_malformed_configs() {
        for bad in [
            "not json",
            "[1, 2]",
            r#"{"auths": 3}"#,
            r#"{"auths": {"r": {"auth": "%%%"}}}"#,
            r#"{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}"#,
        ] {
            let err = credentials_from_docker_config(bad.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("docker config"), "{bad}: {err}");
        }
    }

    #[test]
    fn matches_hosts_ports_wildcards_and_paths() {
        let creds = vec![
            cred("https://index.docker.io/v1/", "hub"),
            cred("127.0.0.1:5000", "local"),
            cred("*.example.com", "wild"),
            cred("registry.example.com/team", "team"),
        ];
        let pick = |registry: &str, repository: &str| {
            select_credential(&creds, registry, repository).map(|c| c.username.as_str())
        };
        assert_eq!(pick("docker.io", "library/busybox"), Some("hub"));
        assert_eq!(pick("127.0.0.1:5000", "x"), Some("local"));
        assert_eq!(pick("127.0.0.1:5001", "x"), None);
        assert_eq!(pick("registry.example.com", "other/app"), Some("wild"));
        assert_eq!(pick("registry.example.com", "team/app"), Some("team"));
        assert_eq!(pick("registry.example.com", "teams/app"), Some("wild"));
        assert_eq!(pick("a.b.example.com", "x"), None);
        assert_eq!(pick("quay.io", "x"), None);
    }
}
