//! Joining machines: `gantry token create` on the server's machine prints a
//! join token; `gantry agent` on another machine joins with it and runs the
//! node agent there.
//!
//! The join token is `K10<ca-hash>::<id>.<secret>`, in k3s's shape: `K10`
//! names the format, `<ca-hash>` is the SHA-256 (lowercase hex) of the
//! cluster CA's PEM exactly as `GET /cacerts` serves it, and `<id>.<secret>`
//! is a Kubernetes bootstrap token, backed by the Secret
//! `kube-system/bootstrap-token-<id>` (see `apiserver::BootstrapToken`).
//!
//! Joining, in order: fetch `/cacerts` without verifying the server
//! (nothing secret is sent), compare its hash with the token's and stop on
//! a mismatch, before the token ever leaves the machine; then, over TLS
//! verified against that CA, send the bootstrap token and two certificate
//! signing requests made here (so the private keys never leave the node) to
//! `POST /gantry/v1/nodes/<name>/certificates`, and keep what comes back:
//!
//! - `DIR/agent.kubeconfig`: the server, the CA and the client certificate
//!   of `system:node:<name>` (group `system:nodes`); written last, so its
//!   presence means the machine has joined;
//! - `DIR/pki/ca.crt`, `DIR/pki/node-client.{crt,key}` (the same client
//!   certificate) and `DIR/pki/node-serving.{crt,key}` (the agent's serving
//!   certificate for its name and address, leaf then CA).
//!
//! A restart finds `agent.kubeconfig` and needs no token. When the node's
//! address changed or a certificate nears its end, the agent asks for new
//! ones with its own client certificate, which the same endpoint accepts
//! for the node's own name.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use apiserver::BootstrapToken;
use serde_json::{Value, json};

use crate::node;

/// What marks a join token's format.
const TOKEN_PREFIX: &str = "K10";
/// The agent's kubeconfig in its data directory.
const KUBECONFIG: &str = "agent.kubeconfig";
/// Ask for new certificates when one expires sooner than this.
const RENEW_BEFORE_DAYS: i64 = 30;
/// How long a join may wait for the server before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `gantry token create`.
#[derive(clap::Args, Debug)]
pub(crate) struct TokenCreateArgs {
    /// The server's data directory (its `admin.kubeconfig` is used).
    #[arg(long, default_value = "/var/lib/gantry")]
    data_dir: PathBuf,
    /// How long the token may be used to join: e.g. `24h`, `30m`, `1h30m`,
    /// `90s`; `0` never expires.
    #[arg(long, default_value = "24h")]
    ttl: String,
    /// What the token is for, kept in its Secret.
    #[arg(long, default_value = "a node join token made by gantry token create")]
    description: String,
}

/// `gantry agent`.
#[derive(clap::Args, Debug)]
pub(crate) struct AgentArgs {
    /// The API server to join, `https://host:port` (on a restart, the one in
    /// DIR/agent.kubeconfig is used).
    #[arg(long)]
    server: Option<String>,
    /// The join token `gantry token create` printed; needed only to join,
    /// not on a restart.
    #[arg(long, env = "GANTRY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where the agent keeps its kubeconfig, certificates, images, containers
    /// and pods.
    #[arg(long, default_value = "/var/lib/gantry")]
    data_dir: PathBuf,
    /// All pods' addresses in the cluster (the servers' `--cluster-cidr`).
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    /// The Services' cluster IPs (the servers' `--service-cluster-ip-range`): new
    /// connections to an address or port of it that no Service has are refused here.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: ipnet::Ipv4Net,
    #[command(flatten)]
    node: crate::NodeFlags,
}

/// A join token: the CA's hash and the bootstrap token.
#[derive(Debug, PartialEq, Eq)]
struct JoinToken {
    /// SHA-256 of the CA's PEM, lowercase hex.
    ca_hash: String,
    /// The bootstrap token.
    bearer: String,
}

impl JoinToken {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let bad = || {
            anyhow!(
                "the join token is not `K10<sha256 of the cluster CA>::<id>.<secret>` as `gantry token create` prints it"
            )
        };
        let rest = text.trim().strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
        let (hash, bearer) = rest.split_once("::").ok_or_else(bad)?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let bearer = BootstrapToken::parse(bearer).ok_or_else(bad)?.token();
        Ok(Self {
            ca_hash: hash.to_ascii_lowercase(),
            bearer,
        })
    }

    fn format(ca_pem: &str, token: &BootstrapToken) -> String {
        format!(
            "{TOKEN_PREFIX}{}::{}",
            pki::fingerprint(ca_pem),
            token.token()
        )
    }
}

/// Reads a duration such as `24h`, `1h30m`, `90s` or Go's `24h0m0s`; `0`
/// means none (a token that never expires).
fn parse_ttl(text: &str) -> anyhow::Result<Option<Duration>> {
    let bad = || anyhow!("--ttl {text:?}: expected a duration such as 24h, 30m, 1h30m or 0");
    let text = text.trim();
    if text == "0" {
        return Ok(None);
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || text.is_empty() {
        return Err(bad());
    }
    if total == 0 {
        return Ok(None);
    }
    Ok(Some(Duration::from_secs(total)))
}

/// `gantry token create`: stores a bootstrap token and prints the join
/// token (only it, on stdout, for scripts).
pub(crate) async fn create_token(args: TokenCreateArgs) -> anyhow::Result<()> {
    let ttl = parse_ttl(&args.ttl)?;
    let kubeconfig = args.data_dir.join("admin.kubeconfig");
    let client = node::client_from(&kubeconfig).await?;
    // Hash what the server serves, which is what a joining agent checks.
    let ca_pem = client
        .request_text(get("/cacerts")?)
        .await
        .with_context(|| format!("fetching the cluster CA with {}", kubeconfig.display()))?;
    let mut attempt = 0;
    let (token, secret) = loop {
        attempt += 1;
        let token = BootstrapToken::generate();
        let secret = token.secret_object(ttl, &args.description);
        let request = http::Request::post("/api/v1/namespaces/kube-system/secrets")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(secret.to_string().into_bytes())?;
        match client.request_text(request).await {
            Ok(_) => break (token, secret),
            // Another token took this id; draw again.
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 5 => continue,
            Err(e) => return Err(e).context("creating the bootstrap token's Secret"),
        }
    };
    println!("{}", JoinToken::format(&ca_pem, &token));
    let until = match secret["stringData"]["expiration"].as_str() {
        Some(at) => format!("until {at}"),
        None => "for ever".into(),
    };
    eprintln!(
        "gantry: the token joins nodes {until}; deleting the Secret kube-system/bootstrap-token-{} revokes it",
        token.id
    );
    Ok(())
}

/// Who this node is in the cluster, from the join or the kubeconfig.
struct Membership {
    server_url: String,
    node_name: String,
    ca_pem: String,
}

/// `gantry agent`: joins (or rejoins) and runs the agent until SIGINT or
/// SIGTERM.
pub(crate) async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kubeconfig = dir.join(KUBECONFIG);
    let member = if kubeconfig.exists() {
        resume(&args, &kubeconfig)?
    } else {
        join(&args).await?
    };
    let url = &member.server_url;
    let name = &member.node_name;
    let server_addr = resolve(url).await?;
    let address = match (args.node.node_ip, args.node.agent_listen.ip()) {
        (Some(ip), _) => ip,
        (None, ip) if ip.is_unspecified() => node::local_address(Some(server_addr)),
        (None, ip) => ip,
    };
    let files = Files::new(&dir);
    if !files.current(name, address) {
        eprintln!("gantry: renewing the certificates of node {name} (address {address})");
        let client = node::client_from(&kubeconfig).await?;
        let certs = request_certificates(&client, url, name, address).await?;
        files.save(url, name, &member.ca_pem, &certs)?;
    }
    let client = node::client_from(&kubeconfig).await?;
    let serving = files.serving()?;
    let listen = args.node.agent_listen;
    let mut config = node::agent_config_with(serving, &member.ca_pem, &dir, name, address, listen)?;
    args.node.apply(&mut config, args.cluster_cidr, address)?;
    config.service_cidr = Some(args.service_cluster_ip_range);
    config.server = Some(server_addr);
    config.address = Some(address);
    check_pod_cidr(&client, name, &config).await?;
    let agent = agent::Agent::start(config, client)
        .await
        .context("starting the node agent")?;
    eprintln!(
        "gantry: node {name} ({address}) is in the cluster at {url}; its agent listens on {}. Ctrl-C stops (pods keep running).",
        agent.local_addr()
    );
    stopped().await;
    eprintln!("gantry: stopping");
    agent.stop();
    Ok(())
}

/// A node that joined before: everything is in its kubeconfig and `pki/`.
fn resume(args: &AgentArgs, kubeconfig: &Path) -> anyhow::Result<Membership> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let server_url = config
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .with_context(|| format!("{}: no server", kubeconfig.display()))?;
    let node_name = config
        .auth_infos
        .first()
        .and_then(|a| a.name.strip_prefix("system:node:"))
        .map(str::to_owned)
        .with_context(|| format!("{}: not a node's kubeconfig", kubeconfig.display()))?;
    if let Some(server) = &args.server
        && server.trim_end_matches('/') != server_url
    {
        bail!(
            "{} joins {server_url}, not {server}: remove it to join another cluster",
            kubeconfig.display()
        );
    }
    if let Some(wanted) = &args.node.node_name
        && *wanted != node_name
    {
        bail!(
            "{} is node {node_name}'s, not {wanted}'s: remove it to join as another node",
            kubeconfig.display()
        );
    }
    let ca_path = args.data_dir.join("pki/ca.crt");
    let ca_pem = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("reading {}", ca_path.display()))?;
    Ok(Membership {
        server_url,
        node_name,
        ca_pem,
    })
}

/// The first start: check the server's CA against the token, then trade
/// the token for certificates.
async fn join(args: &AgentArgs) -> anyhow::Result<Membership> {
    let kubeconfig = args.data_dir.join(KUBECONFIG);
    let server = args.server.as_deref().with_context(|| {
        format!(
            "--server is needed to join a cluster ({} does not exist yet)",
            kubeconfig.display()
        )
    })?;
    let token = args.token.as_deref().with_context(|| {
        format!(
            "--token is needed to join a cluster ({} does not exist yet); make one with `gantry token create` on the server",
            kubeconfig.display()
        )
    })?;
    let token = JoinToken::parse(token)?;
    let url = server_url(server)?;
    let name = args.node.node_name.clone().unwrap_or_else(node::hostname);
    let problems = kinds_name_problems(&name);
    if !problems.is_empty() {
        bail!("invalid node name {name:?}: {problems}");
    }

    // Nothing secret goes over this unverified connection: the CA is public
    // and is only trusted once it matches the token's hash.
    let mut config = kube::Config::new(url.parse().context("--server")?);
    config.accept_invalid_certs = true;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(CONNECT_TIMEOUT);
    config.default_retry = false;
    let anonymous = kube::Client::try_from(config).context("making an HTTPS client")?;
    eprintln!("gantry: fetching the cluster CA from {url} (checked against the token's hash)");
    let ca_pem = anonymous
        .request_text(get("/cacerts")?)
        .await
        .map_err(|e| unreachable(e, &url))?;
    let hash = pki::fingerprint(&ca_pem);
    if hash != token.ca_hash {
        bail!(
            "the cluster CA served by {url} has hash {hash}, but the join token pins {}: this is not the cluster the token was made for, or the token is damaged (the token was not sent)",
            token.ca_hash
        );
    }

    let mut config = kube::Config::new(url.parse().context("--server")?);
    config.root_cert = Some(
        pki::certificates_der(&ca_pem)
            .map_err(|e| anyhow!("the cluster CA served by {url}: {e}"))?,
    );
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.default_retry = false;
    config.headers.push((
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {}", token.bearer))?,
    ));
    let bootstrap = kube::Client::try_from(config).context("making an HTTPS client")?;
    let server_addr = resolve(&url).await?;
    let address = match args.node.agent_listen.ip() {
        ip if ip.is_unspecified() => node::local_address(Some(server_addr)),
        ip => ip,
    };
    let certs = request_certificates(&bootstrap, &url, &name, address).await?;
    Files::new(&args.data_dir).save(&url, &name, &ca_pem, &certs)?;
    eprintln!("gantry: joined {url} as node {name}");
    Ok(Membership {
        server_url: url,
        node_name: name,
        ca_pem,
    })
}

/// The problems with `name` as a node name (an RFC 1123 subdomain), as one
/// sentence; empty when there are none.
fn kinds_name_problems(name: &str) -> String {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        String::new()
    } else {
        "a node name is lower case letters, digits, '-' and '.', starting and ending with a letter or digit (give one with --node-name)".into()
    }
}

/// `https://host:port` without a trailing slash.
fn server_url(server: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(server).with_context(|| format!("--server {server:?}"))?;
    if parsed.scheme() != "https" || parsed.host_str().is_none() {
        bail!("--server {server:?}: expected https://host:port");
    }
    Ok(server.trim_end_matches('/').to_owned())
}

/// The server's socket address (the first its name resolves to).
async fn resolve(url: &str) -> anyhow::Result<SocketAddr> {
    let parsed = url::Url::parse(url).with_context(|| format!("server {url}"))?;
    let host = parsed
        .host_str()
        .with_context(|| format!("server {url}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to no address"))
}

fn get(path: &str) -> anyhow::Result<http::Request<Vec<u8>>> {
    Ok(http::Request::get(path).body(Vec::new())?)
}

/// The certificates the server signed for this node.
struct NodeCerts {
    client: pki::Issued,
    serving: pki::Issued,
}

/// Makes two keys and requests here, and has the server sign them.
async fn request_certificates(
    client: &kube::Client,
    url: &str,
    name: &str,
    address: IpAddr,
) -> anyhow::Result<NodeCerts> {
    let user = format!("system:node:{name}");
    let client_request =
        pki::NewRequest::generate(&user, &[], &[]).context("making the client key")?;
    let serving_request = pki::NewRequest::generate(name, &[name.to_owned()], &[address])
        .context("making the serving key")?;
    let body = json!({
        "clientRequest": client_request.csr_pem,
        "servingRequest": serving_request.csr_pem,
    });
    let request = http::Request::post(format!("/gantry/v1/nodes/{name}/certificates"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string().into_bytes())?;
    let answer = client
        .request_text(request)
        .await
        .map_err(|e| refused(e, url))?;
    let answer: Value = serde_json::from_str(&answer)
        .with_context(|| format!("the certificates {url} answered are not JSON"))?;
    let field = |key: &str| -> anyhow::Result<String> {
        answer
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("{url} answered no {key}"))
    };
    let ca = field("caCertificate")?;
    Ok(NodeCerts {
        client: pki::Issued {
            cert_pem: field("clientCertificate")?,
            key_pem: client_request.key_pem,
        },
        serving: pki::Issued {
            // The chain the agent serves: leaf, then CA.
            cert_pem: format!("{}{ca}", field("servingCertificate")?),
            key_pem: serving_request.key_pem,
        },
    })
}

/// Words for a refused or failed request to the server.
fn refused(e: kube::Error, url: &str) -> anyhow::Error {
    match e {
        kube::Error::Api(s) if s.code == 401 => anyhow!(
            "the API server at {url} refused the join token: it is unknown, expired or revoked (make a new one with `gantry token create` on the server)"
        ),
        kube::Error::Api(s) => anyhow!(
            "the API server at {url} refused the node's certificates ({}): {}",
            s.code,
            s.message
        ),
        other => unreachable(other, url),
    }
}

/// Words for a server that could not be reached, or not trusted.
fn unreachable(e: kube::Error, url: &str) -> anyhow::Error {
    // The innermost cause says it best ("Connection refused", a TLS
    // alert); the layers above it repeat "client error (Connect)".
    let detail = anyhow::Error::new(e).root_cause().to_string();
    let hint = if detail.contains("NotValidForName") {
        " (the server's certificate does not name this address: start the server with --tls-san for it)"
    } else {
        ""
    };
    anyhow!("cannot reach the API server at {url}: {detail}{hint}")
}

/// The node's files in its data directory.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn pki(&self, file: &str) -> PathBuf {
        self.dir.join("pki").join(file)
    }

    /// Whether the certificates on disk still serve: the serving one names
    /// this node and address, and neither ends within a month.
    fn current(&self, name: &str, address: IpAddr) -> bool {
        let read = |f: &str| std::fs::read_to_string(self.pki(f)).unwrap_or_default();
        let soon = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
            + RENEW_BEFORE_DAYS * 86_400;
        let client_ok = pki::expires_at(&read("node-client.crt")).is_some_and(|at| at > soon);
        let serving_ok = pki::covers_for(
            &read("node-serving.crt"),
            &[name.to_owned()],
            &[address],
            RENEW_BEFORE_DAYS,
        ) && self.pki("node-serving.key").exists();
        client_ok && serving_ok
    }

    /// The serving certificate and key.
    fn serving(&self) -> anyhow::Result<pki::Issued> {
        let read = |f: &str| {
            let path = self.pki(f);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        Ok(pki::Issued {
            cert_pem: read("node-serving.crt")?,
            key_pem: read("node-serving.key")?,
        })
    }

    /// Writes the certificates and keys, then the kubeconfig (last: its
    /// presence means the node has joined).
    fn save(&self, url: &str, name: &str, ca_pem: &str, certs: &NodeCerts) -> anyhow::Result<()> {
        pki::write_cert(&self.pki("ca.crt"), ca_pem)?;
        pki::write_key(&self.pki("node-client.key"), &certs.client.key_pem)?;
        pki::write_cert(&self.pki("node-client.crt"), &certs.client.cert_pem)?;
        pki::write_key(&self.pki("node-serving.key"), &certs.serving.key_pem)?;
        pki::write_cert(&self.pki("node-serving.crt"), &certs.serving.cert_pem)?;
        let kubeconfig = self.dir.join(KUBECONFIG);
        pki::write_kubeconfig(
            &kubeconfig,
            url,
            ca_pem,
            &format!("system:node:{name}"),
            &certs.client,
        )
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
        Ok(())
    }
}

/// Refuses a pod range that overlaps another node's: the default
/// `--pod-cidr` is the server's node's too.
async fn check_pod_cidr(
    client: &kube::Client,
    name: &str,
    config: &agent::AgentConfig,
) -> anyhow::Result<()> {
    let nodes: Value = client
        .request(get("/api/v1/nodes")?)
        .await
        .context("listing the cluster's nodes")?;
    let Some(mine) = config.pod_cidr else {
        // The cluster assigns one, free by construction.
        return Ok(());
    };
    for other in nodes["items"].as_array().into_iter().flatten() {
        let other_name = other["metadata"]["name"].as_str().unwrap_or("");
        let Some(range) = other["spec"]["podCIDR"].as_str() else {
            continue;
        };
        if other_name == name {
            continue;
        }
        let Some(theirs) = parse_like(&mine, range) else {
            continue;
        };
        if mine.contains(&theirs.network()) || theirs.contains(&mine.network()) {
            bail!(
                "this node's pod range {mine} overlaps node {other_name}'s ({theirs}): give it a range of its own inside the cluster's with --pod-cidr"
            );
        }
    }
    Ok(())
}

/// `text` parsed as the type of `_like` (the agent's CIDR type, without
/// naming its crate here).
fn parse_like<T: std::str::FromStr>(_like: &T, text: &str) -> Option<T> {
    text.parse().ok()
}

/// Resolves on SIGINT or SIGTERM.
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tokens_pin_the_ca_and_carry_a_bootstrap_token() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let text = JoinToken::format("the CA", &token);
        assert_eq!(
            text,
            format!("K10{}::abcdef.0123456789abcdef", pki::fingerprint("the CA"))
        );
        let parsed = JoinToken::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(parsed.ca_hash, pki::fingerprint("the CA"));
        assert_eq!(parsed.bearer, "abcdef.0123456789abcdef");
        let upper = text.replace(
            &pki::fingerprint("the CA"),
            &pki::fingerprint("the CA").to_uppercase(),
        );
        assert_eq!(JoinToken::parse(&upper).unwrap(), parsed);
        for bad in [
            "abcdef.0123456789abcdef".to_owned(),
            text.replacen("K10", "K11", 1),
            text.replace("::", ":"),
            text.replace("abcdef.", "abcdef"),
            format!("K10{}::abcdef.0123456789abcdef", "ab".repeat(31)),
            format!("K10{}::abcdef.0123456789abcdef", "zz".repeat(32)),
        ] {
            let err = JoinToken::parse(&bad).unwrap_err();
            assert!(
                err.to_string().contains("gantry token create"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn ttls_read_as_kubeadm_writes_them() {
        let secs = |s: &str| parse_ttl(s).unwrap().map(|d| d.as_secs());
        assert_eq!(secs("24h"), Some(86_400));
        assert_eq!(secs("24h0m0s"), Some(86_400));
        assert_eq!(secs("1h30m"), Some(5400));
        assert_eq!(secs("90s"), Some(90));
        assert_eq!(secs("2d"), Some(172_800));
        assert_eq!(secs("0"), None);
        assert_eq!(secs("0s"), None);
        for bad in ["", "h", "24", "1x", "-1h", "1.5h", "99999999999999999999h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_names_are_rfc_1123_subdomains() {
        assert!(kinds_name_problems("node-b.example").is_empty());
        for bad in ["", "Node", "-a", "a-", "a..b", "a_b"] {
            assert!(!kinds_name_problems(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn servers_are_https_urls() {
        assert_eq!(
            server_url("https://10.0.0.1:6443/").unwrap(),
            "https://10.0.0.1:6443"
        );
        assert!(server_url("http://10.0.0.1:6443").is_err());
        assert!(server_url("10.0.0.1:6443").is_err());
    }
}
