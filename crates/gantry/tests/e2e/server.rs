//! The server itself: `gantry up`, authentication (client certificates and
//! bearer tokens), TLS refusing plain HTTP and strangers, and restarts
//! keeping everything.

use std::path::Path;

use crate::harness::*;

/// Writes a kubeconfig for `server` (URL) trusting the CA file `ca`, with
/// `user` lines (already indented) as credentials.
fn kubeconfig(dir: &Path, name: &str, server: &str, ca: &Path, user: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n{user}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
        ca.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn gantry_up_says_what_to_do_and_serves() {
    let s = Server::start_with(Options {
        mode: Mode::Up,
        ..Options::default()
    });
    let log = s.log();
    assert!(log.contains("gantry: opening the store"), "{log}");
    assert!(log.contains("gantry: ready in"), "{log}");
    let export = format!(
        "export KUBECONFIG={}",
        s.data_dir().join("admin.kubeconfig").display()
    );
    assert!(log.contains(&export), "{log}");
    assert!(log.contains("kubectl get nodes"), "{log}");
    let t = Table::parse(&s.kubectl(["get", "namespaces"]).ok());
    let names: Vec<&str> = t.rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let svc = Table::parse(
        &s.kubectl(["get", "svc", "kubernetes", "-n", "default"])
            .ok(),
    );
    assert_eq!(svc.cell("kubernetes", "PORT(S)"), "443/TCP");
    assert!(s.stop(), "gantry up exits cleanly on Ctrl-C:\n{}", s.log());
    assert!(s.log().contains("gantry: stopping"));
}

#[test]
fn bearer_tokens_authenticate_and_others_are_refused() {
    let s = Server::start_with(Options {
        tokens: Some("# token,user,uid,groups\ns3cret-token,alice,1001,\"dev,ops\"\n".into()),
        ..Options::default()
    });
    let ca = s.data_dir().join("pki/ca.crt");
    let dir = s.files_dir();
    let good = kubeconfig(
        &dir,
        "token.kubeconfig",
        &s.url(),
        &ca,
        "    token: s3cret-token",
    );
    let out = s
        .kubectl(["get", "ns", "default", "-o", "name"])
        .kubeconfig(&good)
        .ok();
    assert_eq!(out.trim(), "namespace/default");
    s.kubectl(["apply", "-f", "-"])
        .kubeconfig(&good)
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: by-alice, namespace: default}\n")
        .ok();
    // Writes record who made them (the field manager defaults from the
    // user agent; the token's user is what authenticated).
    assert!(
        s.kubectl(["get", "cm", "by-alice", "-n", "default"])
            .run()
            .success()
    );

    // (kubectl words the 401 of discovery and of a request differently,
    // as against any cluster.)
    let bad = kubeconfig(&dir, "bad.kubeconfig", &s.url(), &ca, "    token: wrong");
    let err = s.kubectl(["get", "ns"]).kubeconfig(&bad).fails();
    assert!(err.trim().ends_with("error: You must be logged in to the server (the server has asked for the client to provide credentials)")
        || err.trim() == "error: You must be logged in to the server (Unauthorized)", "{err}");
    let err = s
        .kubectl(["get", "--raw", "/api/v1/namespaces"])
        .kubeconfig(&bad)
        .fails();
    assert_eq!(
        err.trim(),
        "error: You must be logged in to the server (Unauthorized)"
    );
    // Raw: 401 with a Status; /version, /healthz and /readyz stay public.
    let r = s.request_as(
        &Auth::Bearer("wrong".into()),
        Request::new("GET", "/api/v1/namespaces"),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "Unauthorized");
    let r = s.request_as(
        &Auth::Bearer("s3cret-token".into()),
        Request::new("GET", "/api/v1/namespaces"),
    );
    assert_eq!(r.status, 200);
    let r = s.request_as(
        &Auth::Anonymous,
        Request::new("GET", "/api/v1/namespaces").header("authorization", "bearer s3cret-token"),
    );
    assert_eq!(
        r.status, 200,
        "the scheme and header name are case-insensitive"
    );
    for path in ["/version", "/healthz", "/readyz", "/livez"] {
        assert_eq!(
            s.request_as(&Auth::Anonymous, Request::new("GET", path))
                .status,
            200,
            "{path}"
        );
    }
}

#[test]
fn tls_refuses_plain_http_and_strangers() {
    let s = Server::start();
    let ca = s.data_dir().join("pki/ca.crt");
    let dir = s.files_dir();
    let admin = "    client-certificate: {dir}/pki/admin.crt\n    client-key: {dir}/pki/admin.key"
        .replace("{dir}", &s.data_dir().display().to_string());

    // Plain HTTP to the HTTPS port.
    let plain = kubeconfig(
        &dir,
        "plain.kubeconfig",
        &format!("http://{}", s.addr()),
        &ca,
        &admin,
    );
    let err = s.kubectl(["get", "ns"]).kubeconfig(&plain).fails();
    assert!(
        err.trim().ends_with(
            "Error from server (BadRequest): the server rejected our request for an unknown reason"
        ),
        "{err}"
    );
    let r = http::send_plain(s.addr(), &Request::new("GET", "/api/v1/namespaces")).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "Client sent an HTTP request to an HTTPS server.\n"
    );

    // A client that trusts another CA refuses the server.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = pki::Ca::load_or_create(other.path()).unwrap();
    let other_ca_path = other.path().join("ca.crt");
    let wrong_ca = kubeconfig(
        &dir,
        "wrong-ca.kubeconfig",
        &s.url(),
        &other_ca_path,
        &admin,
    );
    let err = s.kubectl(["get", "ns"]).kubeconfig(&wrong_ca).fails();
    assert!(
        err.contains("x509: certificate signed by unknown authority"),
        "{err}"
    );

    // A client certificate from another CA is refused by the server.
    let stranger = other_ca
        .issue_client("mallory", &["system:masters"])
        .unwrap();
    std::fs::write(dir.join("mallory.crt"), &stranger.cert_pem).unwrap();
    std::fs::write(dir.join("mallory.key"), &stranger.key_pem).unwrap();
    let mallory = format!(
        "    client-certificate: {0}/mallory.crt\n    client-key: {0}/mallory.key",
        dir.display()
    );
    let forged = kubeconfig(&dir, "forged.kubeconfig", &s.url(), &ca, &mallory);
    let out = s.kubectl(["get", "ns"]).kubeconfig(&forged).run();
    assert!(!out.success(), "{out}");
    assert!(!out.stdout.contains("default"), "{out}");

    // The serving certificate names localhost too.
    let localhost = kubeconfig(
        &dir,
        "localhost.kubeconfig",
        &format!("https://localhost:{}", s.addr().port()),
        &ca,
        &admin,
    );
    let out = s
        .kubectl(["get", "ns", "default", "-o", "name"])
        .kubeconfig(&localhost)
        .ok();
    assert_eq!(out.trim(), "namespace/default");
}

#[test]
fn restarts_keep_objects_certificates_and_versions() {
    let s = Server::start();
    let ns = s.namespace("persisted");
    ns.apply(include_str!("fixtures/web.yaml"));
    ns.kubectl(["scale", "deployment", "web", "--replicas=5"])
        .ok();
    let before = ns.get("deployment/web");
    let kubeconfig = std::fs::read_to_string(s.kubeconfig()).unwrap();
    let ca = s.ca_pem();

    // A clean stop (Ctrl-C) and start.
    s.restart();
    assert_eq!(s.ca_pem(), ca, "the CA is kept");
    assert_eq!(std::fs::read_to_string(s.kubeconfig()).unwrap(), kubeconfig);
    let after = ns.get("deployment/web");
    assert_eq!(after, before);
    // The fixture's four objects and the namespace's `kube-root-ca.crt`.
    let names = ns.kubectl(["get", "all,cm", "-o", "name"]).ok();
    assert_eq!(names.lines().count(), 5, "{names}");
    assert!(
        names.lines().any(|l| l == "configmap/kube-root-ca.crt"),
        "{names}"
    );

    // A crash (SIGKILL) right after a write loses nothing acknowledged.
    ns.kubectl(["label", "deployment", "web", "crash=test"])
        .ok();
    let labelled = ns.get("deployment/web");
    s.kill();
    s.restart();
    assert_eq!(ns.get("deployment/web"), labelled);
    // Versions keep growing, so clients' watches and caches stay valid.
    ns.kubectl(["annotate", "deployment", "web", "after=restart"])
        .ok();
    let rv = |d: &serde_json::Value| -> u64 {
        d["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(rv(&ns.get("deployment/web")) > rv(&labelled));
    // The deleted stays deleted.
    ns.kubectl(["delete", "cm", "web-config"]).ok();
    s.restart();
    assert!(!ns.exists("cm/web-config"));
}
