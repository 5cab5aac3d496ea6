//! The Kubernetes API over HTTPS.
//!
//! [`ApiServer::start`] prepares the data directory (CA, serving and admin
//! certificates, `admin.kubeconfig`, the token file), binds the listener,
//! creates the objects every cluster has (the system namespaces, the
//! `kubernetes` Service) and serves until shut down. Requests go through
//! [`router`]: discovery, OpenAPI, health, and the REST engine in `rest`.

mod admission;
mod auth;
mod bootstrap;
mod cluster_keys;
mod codec;
mod compactor;
mod crds;
mod discovery;
mod eviction;
mod limitrange;
mod local;
mod meta;
mod namespaces;
mod node_proxy;
mod openapi;
mod quota;
mod registry;
mod request;
mod rest;
mod reviews;
mod satoken;
mod selectors;
mod server;
mod serviceaccount;
mod status;
mod storage;
mod storageclass;
mod table;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use parking_lot::RwLock;
use schema::SchemaSet;
use serde_json::Value;
use store::Store;
use tokio::net::TcpListener;

pub use admission::Ranges;
pub use auth::User;
pub use bootstrap::BootstrapToken;

use crate::auth::Tokens;
pub use crate::local::LocalService;
use crate::request::{Query, ResourcePath};
use crate::status::ApiError;

/// How to run the API server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The data directory: `pki/`, `admin.kubeconfig`, `tokens.csv`.
    pub data_dir: PathBuf,
    /// Extra names and addresses the serving certificate covers.
    pub extra_sans: Vec<String>,
    /// Service address ranges.
    pub ranges: Ranges,
    /// How often the store's history is compacted (kube-apiserver's
    /// `--etcd-compaction-interval`, five minutes); zero never compacts.
    pub compaction_interval: std::time::Duration,
    /// The `tolerationSeconds` every pod gets for the `not-ready` and
    /// `unreachable` NoExecute taints unless it says otherwise
    /// (`--default-not-ready-toleration-seconds`,
    /// `--default-unreachable-toleration-seconds`; 300 each).
    pub default_toleration_seconds: DefaultTolerations,
}

/// What the DefaultTolerationSeconds admission gives pods.
#[derive(Clone, Copy, Debug)]
pub struct DefaultTolerations {
    /// For `node.kubernetes.io/not-ready:NoExecute`.
    pub not_ready: i64,
    /// For `node.kubernetes.io/unreachable:NoExecute`.
    pub unreachable: i64,
}

impl Default for DefaultTolerations {
    fn default() -> Self {
        Self {
            not_ready: 300,
            unreachable: 300,
        }
    }
}

impl Config {
    /// A configuration listening on `listen` with data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            extra_sans: Vec::new(),
            ranges: Ranges::default(),
            compaction_interval: std::time::Duration::from_secs(300),
            default_toleration_seconds: DefaultTolerations::default(),
        }
    }
}

/// What the server failed to start with.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificates could not be created or loaded.
    #[error("certificates: {0}")]
    Pki(#[from] pki::PkiError),
    /// A file in the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The listening address could not be bound (taken by another process, say).
    #[error("listening on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("tls: {0}")]
    Tls(String),
    /// The store refused the bootstrap objects.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
}

/// What the server's handlers share.
pub(crate) struct Api {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: registry::Registry,
    pub(crate) config: Config,
    schemas: RwLock<Arc<SchemaSet>>,
    /// What the served CRDs looked like when last installed.
    pub(crate) served_crds: parking_lot::Mutex<Option<Value>>,
    pub(crate) openapi: openapi::OpenApi,
    tokens: Tokens,
    signer: satoken::Signer,
    builtin_groups: Vec<String>,
    /// How the server reaches node agents.
    kubelet: node_proxy::KubeletClient,
    /// The cluster CA, which signs joining nodes' certificates.
    ca: pki::Ca,
    /// Stored objects decoded and encoded once for all the watches of an event.
    pub(crate) event_objects: rest::shared::EventObjects,
}

impl Api {
    /// The schemas of every served kind.
    pub(crate) fn schemas(&self) -> Arc<SchemaSet> {
        Arc::clone(&self.schemas.read())
    }

    /// Serves `defs` with `schemas`: the built-ins plus the kinds of the
    /// established CRDs. The catalogue and the schemas change together.
    pub(crate) fn install(&self, defs: Vec<kinds::ResourceDef>, schemas: SchemaSet) {
        let mut current = self.schemas.write();
        self.registry.install(defs);
        *current = Arc::new(schemas);
    }

    /// Whether a resource is a built-in kind (strategic merge patch works
    /// only for those).
    pub(crate) fn is_builtin(&self, def: &kinds::ResourceDef) -> bool {
        self.builtin_groups.contains(&def.group)
    }
}

/// A running API server.
pub struct ApiServer {
    local_addr: SocketAddr,
    router: Router,
    kubeconfig: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.local_addr)
            .finish()
    }
}

impl ApiServer {
    /// Prepares the data directory, binds, bootstraps and starts serving.
    pub async fn start(config: Config, store: Arc<dyn Store>) -> Result<Self, StartError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StartError::Io { path, source }
        };
        std::fs::create_dir_all(&config.data_dir).map_err(io(&config.data_dir))?;
        let listen = |source| StartError::Listen {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(listen)?;
        let local_addr = listener.local_addr().map_err(listen)?;

        let pki_dir = config.data_dir.join("pki");
        cluster_keys::sync(store.as_ref(), &pki_dir).await?;
        let (ca, _) = pki::Ca::load_or_create(&pki_dir)?;
        let (dns, ips) = serving_names(&config, local_addr);
        let serving = ca.server_cert("apiserver", &dns, &ips)?;
        let admin = load_or_issue_admin(&ca, &pki_dir)?;
        let host = match local_addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let server_url = format!("https://{host}:{}", local_addr.port());
        let kubeconfig = config.data_dir.join("admin.kubeconfig");
        pki::write_kubeconfig(&kubeconfig, &server_url, ca.cert_pem(), "admin", &admin)?;
        let tokens_path = config.data_dir.join("tokens.csv");
        let tokens = Tokens::load(&tokens_path).map_err(io(&tokens_path))?;
        let signer = satoken::Signer::new(&pki::SigningKey::load_or_create(&pki_dir)?)
            .map_err(StartError::Tls)?;
        let tls = server::tls_config(&serving.cert_pem, &serving.key_pem, ca.cert_pem())
            .map_err(StartError::Tls)?;
        // The identity agents see: a client of the cluster CA, issued anew
        // at each start (it is never written down).
        let kubelet_identity =
            ca.issue_client("kube-apiserver-kubelet-client", &["system:masters"])?;
        let kubelet = node_proxy::KubeletClient::new(ca.cert_pem(), &kubelet_identity)
            .map_err(StartError::Tls)?;

        let builtin = kinds::builtin();
        let mut builtin_groups: Vec<String> = builtin.iter().map(|r| r.group.clone()).collect();
        builtin_groups.dedup();
        let api = Arc::new(Api {
            store,
            registry: registry::Registry::new(builtin),
            config,
            schemas: RwLock::new(Arc::new(kinds::openapi::definitions().clone())),
            served_crds: parking_lot::Mutex::new(None),
            openapi: openapi::OpenApi::default(),
            tokens,
            signer,
            builtin_groups,
            kubelet,
            ca,
            event_objects: Default::default(),
        });
        namespaces::bootstrap(&api)
            .await
            .map_err(|e| StartError::Bootstrap(e.to_string()))?;
        crds::load(&api)
            .await
            .map_err(|e| StartError::Bootstrap(e.to_string()))?;
        // Build the OpenAPI documents now, off the request path, so the
        // first kubectl command does not wait for them.
        {
            let api = Arc::clone(&api);
            tokio::task::spawn_blocking(move || {
                let catalog = api.registry.catalog();
                api.openapi.documents(&catalog, &api.schemas());
            });
        }
        tokio::spawn(namespaces::run_finalizer(Arc::clone(&api)));
        tokio::spawn(crds::run(Arc::clone(&api)));
        if !api.config.compaction_interval.is_zero() {
            tokio::spawn(compactor::run(
                Arc::clone(&api.store),
                api.config.compaction_interval,
            ));
        }

        let router = router(Arc::clone(&api));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, tls, router.clone(), async move {
            let _ = rx.await;
        }));
        tracing::info!(%server_url, "API server serving");
        Ok(Self {
            local_addr,
            router,
            kubeconfig,
            shutdown: Some(tx),
            task,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The in-process door for `user` in `groups` (`system:authenticated`
    /// is added): requests served without a socket, as that user. It keeps
    /// answering after `shutdown`, which only stops the listener.
    pub fn local_service(&self, user: &str, groups: &[&str]) -> LocalService {
        LocalService::new(self.router.clone(), user, groups)
    }

    /// The admin kubeconfig it wrote.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// The names the serving certificate covers: loopback, the machine's host
/// name, the in-cluster names of the `kubernetes` Service, and its address.
fn serving_names(config: &Config, addr: SocketAddr) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec![
        "localhost".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
        "kubernetes.default.svc.cluster.local".to_owned(),
    ];
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim();
        if !name.is_empty() && !dns.iter().any(|d| d == name) {
            dns.push(name.to_owned());
        }
    }
    let mut ips: Vec<IpAddr> = vec![
        "127.0.0.1".parse().expect("literal"),
        "::1".parse().expect("literal"),
        IpAddr::V4(config.ranges.api_service_ip()),
    ];
    if !addr.ip().is_unspecified() && !ips.contains(&addr.ip()) {
        ips.push(addr.ip());
    }
    for extra in &config.extra_sans {
        match extra.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !dns.contains(extra) => dns.push(extra.clone()),
            Err(_) => {}
        }
    }
    (dns, ips)
}

/// The admin's client certificate, issued once and kept.
fn load_or_issue_admin(ca: &pki::Ca, dir: &Path) -> Result<pki::Issued, StartError> {
    let cert = dir.join("admin.crt");
    let key = dir.join("admin.key");
    if let (Ok(cert_pem), Ok(key_pem)) = (
        std::fs::read_to_string(&cert),
        std::fs::read_to_string(&key),
    ) && cert_pem.contains(ca.cert_pem().trim())
    {
        let leaf_end = cert_pem
            .find(ca.cert_pem().trim())
            .unwrap_or(cert_pem.len());
        return Ok(pki::Issued {
            cert_pem: cert_pem[..leaf_end].to_owned(),
            key_pem,
        });
    }
    let admin = ca.issue_client("admin", &["system:masters"])?;
    let write = |path: &Path, text: &str, mode: u32| -> Result<(), StartError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(|source| StartError::Io {
                path: path.to_owned(),
                source,
            })?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|source| StartError::Io {
            path: path.to_owned(),
            source,
        })
    };
    // The stored certificate is followed by its CA, so a CA change is seen.
    write(
        &cert,
        &format!("{}{}", admin.cert_pem, ca.cert_pem()),
        0o644,
    )?;
    write(&key, &admin.key_pem, 0o600)?;
    Ok(admin)
}

/// The router: discovery, OpenAPI, health, version and the REST engine.
pub(crate) fn router(api: Arc<Api>) -> Router {
    Router::new().fallback(handle).with_state(api)
}

async fn handle(state: State<Arc<Api>>, req: Request) -> Response {
    // The request line is kept only when someone listens for it: no
    // allocation on the hot path otherwise.
    if !tracing::enabled!(target: "apiserver::requests", tracing::Level::DEBUG) {
        return serve_request(state, req).await;
    }
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = serve_request(state, req).await;
    tracing::debug!(target: "apiserver::requests", %method, %path, status = response.status().as_u16(), ms = started.elapsed().as_secs_f64() * 1000.0, "served");
    response
}

async fn serve_request(State(api): State<Arc<Api>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = Query::parse(parts.uri.query());
    let headers = parts.headers.clone();
    let method = parts.method.clone();

    // Public endpoints, as Kubernetes' public-info-viewer role allows.
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => return text(StatusCode::OK, "ok"),
        "/version" | "/version/" => {
            return json(StatusCode::OK, &discovery::version(), "application/json");
        }
        // What a joining machine checks against its token's hash.
        "/cacerts" if method == Method::GET => return bootstrap::cacerts(&api),
        _ => {}
    }
    let cert_user = parts
        .extensions
        .get::<server::CertUser>()
        .and_then(|c| c.0.clone());
    let user = match cert_user {
        Some(user) => Some(user),
        None => match auth::bearer(&headers) {
            Some(token) => reviews::authenticate_token(&api, token, &[satoken::ISSUER])
                .await
                .map(|(user, _)| user),
            None => None,
        },
    };
    // Everyone authenticated may do everything until RBAC is enforced.
    let Some(user) = user else {
        return ApiError::unauthorized().into_response();
    };
    if let Some(node) = bootstrap::certificates_path(&path) {
        return bootstrap::certificates(&api, &user, node, &method, body).await;
    }

    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let if_none_match = headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let catalog = api.registry.catalog();
    let trimmed = path.trim_end_matches('/');
    if method == Method::GET {
        match trimmed {
            "/api" => {
                return match discovery::wants_aggregated(&accept) {
                    Some(v) => json(
                        StatusCode::OK,
                        &discovery::aggregated(&catalog, true, v),
                        aggregated_type(v),
                    ),
                    None => json(
                        StatusCode::OK,
                        &discovery::api_versions(&server_address(&api)),
                        "application/json",
                    ),
                };
            }
            "/apis" => {
                return match discovery::wants_aggregated(&accept) {
                    Some(v) => json(
                        StatusCode::OK,
                        &discovery::aggregated(&catalog, false, v),
                        aggregated_type(v),
                    ),
                    None => json(
                        StatusCode::OK,
                        &discovery::api_group_list(&catalog),
                        "application/json",
                    ),
                };
            }
            "/openapi/v2" => {
                if !openapi::accepts_json(&accept) {
                    return openapi::v2_protobuf();
                }
                let docs = openapi_documents(&api).await;
                let api = Arc::clone(&api);
                return tokio::task::spawn_blocking(move || {
                    openapi::v2(&docs, &api.schemas(), &if_none_match)
                })
                .await
                .expect("building the OpenAPI v2 document does not panic");
            }
            "/openapi/v3" => {
                let docs = openapi_documents(&api).await;
                return openapi::index(&docs, &if_none_match);
            }
            _ => {}
        }
        if let Some(doc) = trimmed.strip_prefix("/openapi/v3/") {
            let docs = openapi_documents(&api).await;
            return openapi::document(&docs, doc, query.get("hash"), &if_none_match);
        }
        if let Some(rest) = trimmed.strip_prefix("/api/")
            && !rest.contains('/')
        {
            return match discovery::resource_list(&catalog, "", rest) {
                Some(list) => json(StatusCode::OK, &list, "application/json"),
                None => ApiError::no_route().into_response(),
            };
        }
        if let Some(rest) = trimmed.strip_prefix("/apis/") {
            let parts: Vec<&str> = rest.split('/').collect();
            match parts.as_slice() {
                [group] => {
                    return match discovery::group_document(&catalog, group) {
                        Some(doc) => json(StatusCode::OK, &doc, "application/json"),
                        None => ApiError::no_route().into_response(),
                    };
                }
                [group, version] => {
                    return match discovery::resource_list(&catalog, group, version) {
                        Some(list) => json(StatusCode::OK, &list, "application/json"),
                        None => ApiError::no_route().into_response(),
                    };
                }
                _ => {}
            }
        }
    }
    let resource = if let Some(rest) = path.strip_prefix("/api/") {
        ResourcePath::parse(true, rest)
    } else if let Some(rest) = path.strip_prefix("/apis/") {
        ResourcePath::parse(false, rest)
    } else {
        None
    };
    let Some(resource) = resource else {
        return ApiError::no_route().into_response();
    };
    // A bootstrap token is good for discovery (as Kubernetes' system:discovery
    // role allows every authenticated user) and its certificates, nothing else.
    if bootstrap::is_bootstrapper(&user) {
        return bootstrap::forbidden(&user, &method, &resource, &query);
    }
    if node_proxy::handles(&resource) {
        return node_proxy::proxy(api, resource, parts, body).await;
    }
    let body = match axum::body::to_bytes(body, codec::MAX_BODY + 1).await {
        Ok(b) if b.len() > codec::MAX_BODY => {
            return ApiError::too_large(codec::MAX_BODY).into_response();
        }
        Ok(b) => b,
        Err(_) => return ApiError::too_large(codec::MAX_BODY).into_response(),
    };
    rest::handle(api, resource, method, query, headers, body, user).await
}

async fn openapi_documents(api: &Arc<Api>) -> Arc<openapi::Documents> {
    let api = Arc::clone(api);
    tokio::task::spawn_blocking(move || {
        let catalog = api.registry.catalog();
        api.openapi.documents(&catalog, &api.schemas())
    })
    .await
    .expect("building OpenAPI documents does not panic")
}

fn aggregated_type(version: &str) -> &'static str {
    if version == "v2" {
        discovery::AGGREGATED_V2
    } else {
        discovery::AGGREGATED_V2BETA1
    }
}

fn server_address(api: &Api) -> String {
    format!("127.0.0.1:{}", api.config.listen.port())
}

fn json(code: StatusCode, value: &Value, content_type: &str) -> Response {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Body::from(value.to_string()))
        .expect("static headers are valid")
}

fn text(code: StatusCode, body: &str) -> Response {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(body.to_owned()))
        .expect("static headers are valid")
}
