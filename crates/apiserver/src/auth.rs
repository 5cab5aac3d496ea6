//! Who is asking: a verified client certificate (common name = user,
//! organizations = groups, as Kubernetes reads them) or a bearer token from
//! the token file (Kubernetes' static token file format:
//! `token,user,uid,"group1,group2"`).
//!
//! Service account tokens (signed JWTs) are checked in `satoken` and
//! `reviews`, bootstrap tokens (`<id>.<secret>`) in `bootstrap`.
//!
//! Authorization (RBAC) is not enforced yet: every authenticated user may
//! do everything. Unauthenticated requests are refused with 401.

use std::collections::HashMap;
use std::path::Path;

use http::HeaderMap;

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User name.
    pub name: String,
    /// User uid (may be empty).
    pub uid: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
}

impl User {
    pub(crate) fn new(name: &str, uid: &str, groups: impl IntoIterator<Item = String>) -> Self {
        let mut groups: Vec<String> = groups.into_iter().collect();
        groups.push("system:authenticated".into());
        Self {
            name: name.to_owned(),
            uid: uid.to_owned(),
            groups,
        }
    }
}

/// Reads the user a client certificate (DER, already verified against the
/// cluster CA by TLS) stands for.
pub fn user_from_certificate(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned));
    Some(User::new(&name, "", groups))
}

/// Bearer tokens and whom they authenticate.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    users: HashMap<String, User>,
}

impl Tokens {
    /// Reads a token file; a missing file means no tokens.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        Ok(Self::parse(&text))
    }

    /// Parses the CSV format: `token,user,uid[,"group1,group2"]`.
    pub fn parse(text: &str) -> Self {
        let mut users = HashMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(4, ',');
            let (Some(token), Some(user), uid) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let groups = fields
                .next()
                .map(|g| g.trim().trim_matches('"'))
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned);
            users.insert(
                token.trim().to_owned(),
                User::new(user.trim(), uid.unwrap_or("").trim(), groups),
            );
        }
        Self { users }
    }

    /// The user a static token stands for.
    pub fn lookup(&self, token: &str) -> Option<User> {
        self.users.get(token).cloned()
    }
}

/// The token of an `Authorization: Bearer` header. Header names and the
/// scheme are case-insensitive (the Python client sends lowercase).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_and_bearer_headers() {
        let tokens = Tokens::parse("# comment\nabc,alice,1,\"dev,ops\"\nxyz,bob,2\n");
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer abc".parse().unwrap());
        let alice = bearer(&headers).and_then(|t| tokens.lookup(t)).unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
        headers.insert("authorization", "bearer xyz".parse().unwrap());
        assert_eq!(
            bearer(&headers)
                .and_then(|t| tokens.lookup(t))
                .unwrap()
                .name,
            "bob"
        );
        headers.insert("authorization", "Bearer nope".parse().unwrap());
        assert!(bearer(&headers).and_then(|t| tokens.lookup(t)).is_none());
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer(&headers).and_then(|t| tokens.lookup(t)).is_none());
    }

    #[test]
    fn certificates_name_user_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = pki::Ca::load_or_create(dir.path()).unwrap();
        let issued = ca.issue_client("admin", &["system:masters"]).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
        let user = user_from_certificate(&pem.contents).unwrap();
        assert_eq!(user.name, "admin");
        assert_eq!(user.groups, ["system:masters", "system:authenticated"]);
    }
}
