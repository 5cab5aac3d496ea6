//! Ingress on a `gantry up` node (issue 6): the agent's Ingress proxy serves the
//! Ingresses of the default class `gantry` on the node's ports (this server's slot's, so
//! that parallel clusters do not collide), reached with the real curl by host name:
//! plain HTTP, the redirect to HTTPS, HTTPS with the Secret's certificate over HTTP/1.1
//! and HTTP/2, an edit applied within a second, and a missing Secret reported as a
//! Warning Event while the other hosts keep working. The busybox httpd pods serve their
//! Deployment's colour, so every answer says which Service it came from.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

/// How long the pods may take to be ready and served.
const SERVED_WITHIN: Duration = Duration::from_secs(60);

fn colour(name: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:1.36
        command: [sh, -c, "mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe:
          httpGet: {{path: /, port: http}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"#
    )
}

/// The Ingress: `blue.test` (TLS, Secret `blue-tls`) to Service `blue` by port number,
/// `green.test` to `green_to` by port name.
fn web_ingress(green_to: &str) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  tls:
  - hosts: [blue.test]
    secretName: blue-tls
  rules:
  - host: blue.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: blue, port: {{number: 80}}}}}}}}
  - host: green.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {green_to}, port: {{name: http}}}}}}}}
"#
    )
}

/// What curl got: the status code, the HTTP version, the body, where it redirects to.
#[derive(Debug, PartialEq)]
struct Got {
    code: String,
    version: String,
    body: String,
    location: String,
    /// What curl said went wrong, if anything.
    error: String,
}

/// `curl` for `url` with `host:port` resolved to loopback, and `extra` flags.
fn curl(host: &str, port: u16, url: &str, extra: &[&str]) -> Got {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--resolve"])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(["-w", "\n%{http_code} %{http_version} %{redirect_url}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut tail = tail.split(' ');
    let mut next = || tail.next().unwrap_or_default().to_owned();
    Got {
        code: next(),
        version: next(),
        location: next(),
        body: body.trim().to_owned(),
        error: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

/// Asks until `check` holds for curl's answer, or fails after `within`.
#[track_caller]
fn until(
    within: Duration,
    what: &str,
    mut ask: impl FnMut() -> Got,
    check: impl Fn(&Got) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let got = ask();
        if check(&got) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: last answer {got:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ingress_serves_hosts_over_http_and_https_and_follows_edits() {
    let s = Server::node();
    let ns = s.namespace("ingress");
    let (http, https) = s.ingress_ports();

    // Self-signed and marked a CA, so that curl's OpenSSL takes it as a trust anchor.
    let mut params = rcgen::CertificateParams::new(vec!["blue.test".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let signing_key = rcgen::KeyPair::generate().unwrap();
    let made = params.self_signed(&signing_key).unwrap();
    let cert = s.file(&format!("{}-blue.crt", ns.name), made.pem());
    let key = s.file(
        &format!("{}-blue.key", ns.name),
        signing_key.serialize_pem(),
    );
    ns.kubectl([
        "create",
        "secret",
        "tls",
        "blue-tls",
        &format!("--cert={}", cert.display()),
        &format!("--key={}", key.display()),
    ])
    .ok();
    ns.apply(&colour("blue"));
    ns.apply(&colour("green"));
    ns.apply(&web_ingress("green"));
    for d in ["blue", "green"] {
        ns.kubectl([
            "rollout",
            "status",
            &format!("deploy/{d}"),
            "--timeout=120s",
        ])
        .ok();
    }

    // Plain HTTP by host name.
    let green = || {
        curl(
            "green.test",
            http,
            &format!("http://green.test:{http}/"),
            &[],
        )
    };
    until(SERVED_WITHIN, "green over http", green, |g| {
        g.code == "200" && g.body == "green"
    });
    // A TLS host: redirected to HTTPS, then served with its Secret's certificate (curl
    // checks it against that certificate), over HTTP/1.1 and HTTP/2.
    let got = curl(
        "blue.test",
        http,
        &format!("http://blue.test:{http}/a?b=c"),
        &[],
    );
    assert_eq!(got.code, "308", "{got:?}");
    assert_eq!(got.location, format!("https://blue.test:{https}/a?b=c"));
    let cacert = cert.display().to_string();
    let url = format!("https://blue.test:{https}/");
    let got = curl(
        "blue.test",
        https,
        &url,
        &["--cacert", &cacert, "--http1.1"],
    );
    assert_eq!(
        (got.code.as_str(), got.version.as_str(), got.body.as_str()),
        ("200", "1.1", "blue"),
        "{got:?}"
    );
    let got = curl("blue.test", https, &url, &["--cacert", &cacert, "--http2"]);
    assert_eq!(
        (got.code.as_str(), got.version.as_str(), got.body.as_str()),
        ("200", "2", "blue"),
        "{got:?}"
    );
    // HTTP/2 without TLS, with prior knowledge.
    let got = curl(
        "green.test",
        http,
        &format!("http://green.test:{http}/"),
        &["--http2-prior-knowledge"],
    );
    assert_eq!(
        (got.code.as_str(), got.version.as_str(), got.body.as_str()),
        ("200", "2", "green"),
        "{got:?}"
    );
    // An unknown host: 404.
    let got = curl(
        "nobody.test",
        http,
        &format!("http://nobody.test:{http}/"),
        &[],
    );
    assert_eq!(got.code, "404", "{got:?}");
    // The Ingress' status names the node.
    let ingress = ns.get("ingress/web");
    assert!(
        ingress["status"]["loadBalancer"]["ingress"][0]["ip"].is_string(),
        "{ingress}"
    );

    // An edit is served within a second of the API taking it.
    ns.apply(&web_ingress("blue"));
    let took = until(
        Duration::from_secs(1),
        "green.test to blue after the edit",
        green,
        |g| g.code == "200" && g.body == "blue",
    );
    eprintln!("the edit was served after {took:?}");

    // A second Ingress whose Secret is missing: a Warning Event on it, its host still
    // served over plain HTTP, and the first Ingress' hosts untouched.
    ns.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: broken
spec:
  tls:
  - hosts: [red.test]
    secretName: no-such-secret
  rules:
  - host: red.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: green, port: {number: 80}}}}
  - host: gone.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: no-such-service, port: {number: 80}}}}
"#,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = ns
            .kubectl([
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=broken",
            ])
            .ok();
        if events.contains("SecretNotFound") && events.contains("ServiceNotFound") {
            assert!(events.contains("Warning"), "{events}");
            assert!(events.contains("no-such-secret"), "{events}");
            break;
        }
        assert!(Instant::now() < deadline, "no warning events:\n{events}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let red = || curl("red.test", http, &format!("http://red.test:{http}/"), &[]);
    until(Duration::from_secs(5), "red over http", red, |g| {
        g.code == "200" && g.body == "green"
    });
    let got = curl("gone.test", http, &format!("http://gone.test:{http}/"), &[]);
    assert_eq!(got.code, "503", "{got:?}");
    let got = curl("blue.test", https, &url, &["--cacert", &cacert]);
    assert_eq!(
        (got.code.as_str(), got.body.as_str()),
        ("200", "blue"),
        "{got:?}"
    );
    let got = green();
    assert_eq!(
        (got.code.as_str(), got.body.as_str()),
        ("200", "blue"),
        "{got:?}"
    );
}
