//! What a request asks for: the resource path and the query parameters.

use std::collections::HashMap;

use crate::status::{ApiError, ApiResult};

/// A resource request decoded from its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group ("" for `/api`).
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural resource, such as `pods`.
    pub resource: String,
    /// Namespace, when the path names one.
    pub namespace: Option<String>,
    /// Object name, when the path names one.
    pub name: Option<String>,
    /// Subresource, such as `status`.
    pub subresource: Option<String>,
}

/// Subresources of a namespace that read as such rather than as a resource
/// inside the namespace (`/api/v1/namespaces/x/status`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl ResourcePath {
    /// Decodes the part after `/api/` or `/apis/`: for the core group
    /// `v1/...`, for others `<group>/<version>/...`. Returns `None` for paths
    /// naming no resource (discovery documents).
    pub fn parse(core: bool, rest: &str) -> Option<Self> {
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        let (group, version, mut parts) = if core {
            let (v, rest) = parts.split_first()?;
            (String::new(), (*v).to_owned(), rest.to_vec())
        } else {
            if parts.len() < 2 {
                return None;
            }
            (
                parts[0].to_owned(),
                parts[1].to_owned(),
                parts[2..].to_vec(),
            )
        };
        if parts.is_empty() {
            return None;
        }
        let mut namespace = None;
        if parts[0] == "namespaces" && parts.len() > 1 {
            namespace = Some(parts[1].to_owned());
            if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
                parts = parts[2..].to_vec();
            }
        }
        let resource = parts.first()?.to_string();
        let (name, subresource) =
            if resource == "namespaces" && namespace.is_some() && parts.len() >= 2 {
                // `/namespaces/<name>[/status|finalize]`: the namespace itself.
                let name = namespace.take();
                (name, parts.get(2).map(|s| s.to_string()))
            } else {
                (
                    parts.get(1).map(|s| s.to_string()),
                    parts.get(2).map(|s| s.to_string()),
                )
            };
        if parts.len() > 3 {
            return None;
        }
        Some(Self {
            group,
            version,
            resource,
            namespace,
            name,
            subresource,
        })
    }
}

/// Query parameters, with Kubernetes' readings of their values.
#[derive(Clone, Debug, Default)]
pub struct Query {
    params: HashMap<String, Vec<String>>,
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.entry(decode(k)).or_default().push(decode(v));
        }
        Self { params }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// Every value of `name` (`command=ls&command=-l`).
    pub fn all(&self, name: &str) -> &[String] {
        self.params.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A boolean parameter: present and anything but `0` or `false`
    /// (any case, so Python's `True` counts), like Kubernetes.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    /// A non-empty string parameter.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// An integer parameter; a malformed one is a 400.
    pub fn int(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.text(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid value {v:?} for query parameter {name}: not an integer"
                ))
            }),
        }
    }

    /// Whether `dryRun=All` was asked (the only value Kubernetes accepts).
    pub fn dry_run(&self) -> ApiResult<bool> {
        let values = self.all("dryRun");
        for v in values {
            if v != "All" {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: \"{v}\": supported values: \"All\""
                )));
            }
        }
        Ok(!values.is_empty())
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space,
/// `%XX` a byte); malformed escapes are kept as they are.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(core: bool, rest: &str) -> ResourcePath {
        ResourcePath::parse(core, rest).unwrap()
    }

    #[test]
    fn parses_kubernetes_paths() {
        let pods = p(true, "v1/namespaces/default/pods");
        assert_eq!(
            (pods.resource.as_str(), pods.namespace.as_deref(), pods.name),
            ("pods", Some("default"), None)
        );
        let log = p(true, "v1/namespaces/default/pods/web/log");
        assert_eq!(
            (log.name.as_deref(), log.subresource.as_deref()),
            (Some("web"), Some("log"))
        );
        let ns = p(true, "v1/namespaces/kube-system");
        assert_eq!(
            (ns.resource.as_str(), ns.name.as_deref(), ns.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let fin = p(true, "v1/namespaces/x/finalize");
        assert_eq!(
            (
                fin.resource.as_str(),
                fin.name.as_deref(),
                fin.subresource.as_deref()
            ),
            ("namespaces", Some("x"), Some("finalize"))
        );
        let all = p(true, "v1/namespaces");
        assert_eq!((all.resource.as_str(), all.name), ("namespaces", None));
        let nodes = p(true, "v1/nodes/n1/status");
        assert_eq!(
            (
                nodes.resource.as_str(),
                nodes.name.as_deref(),
                nodes.subresource.as_deref()
            ),
            ("nodes", Some("n1"), Some("status"))
        );
        let scale = p(false, "apps/v1/namespaces/d/deployments/web/scale");
        assert_eq!(
            (
                scale.group.as_str(),
                scale.version.as_str(),
                scale.subresource.as_deref()
            ),
            ("apps", "v1", Some("scale"))
        );
        let every = p(false, "apps/v1/deployments");
        assert_eq!(every.namespace, None);
        assert!(ResourcePath::parse(false, "apps/v1").is_none());
        assert!(ResourcePath::parse(true, "v1").is_none());
        assert!(ResourcePath::parse(true, "v1/namespaces/a/pods/b/c/d").is_none());
    }

    #[test]
    fn reads_query_values_like_kubernetes() {
        let q = Query::parse(Some(
            "watch=True&limit=500&labelSelector=app%3Dweb&x=&command=ls&command=-l&off=false&zero=0",
        ));
        assert!(q.flag("watch"));
        assert!(q.flag("x"));
        assert!(!q.flag("off"));
        assert!(!q.flag("zero"));
        assert!(!q.flag("missing"));
        assert_eq!(q.int("limit").unwrap(), Some(500));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        assert_eq!(q.all("command"), ["ls", "-l"]);
        assert!(Query::parse(Some("limit=x")).int("limit").is_err());
        assert!(Query::parse(Some("dryRun=All")).dry_run().unwrap());
        assert!(Query::parse(Some("dryRun=Some")).dry_run().is_err());
        let odd = Query::parse(Some("a=%zz&b=%4&c=%C3%A9%"));
        assert_eq!(odd.get("a"), Some("%zz"));
        assert_eq!(odd.get("b"), Some("%4"));
        assert_eq!(odd.get("c"), Some("é%"));
    }
}
