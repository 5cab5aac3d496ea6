//! Other kubectl commands that only need the API: `run`, `proxy`,
//! `apply view-last-applied`, `api-resources` filters, `config`.

use crate::harness::*;

#[test]
fn run_creates_a_pod_from_json() {
    let s = Server::shared();
    let ns = s.namespace("run");
    // Unlike the other generators, kubectl run POSTs JSON.
    let out = ns
        .kubectl([
            "run",
            "web",
            "--image=nginx:1.25",
            "--restart=Never",
            "--labels=app=web",
            "--port=80",
        ])
        .ok();
    assert_eq!(out.trim(), "pod/web created");
    let pod = ns.get("pod/web");
    assert_eq!(pod["spec"]["containers"][0]["image"], "nginx:1.25");
    assert_eq!(
        pod["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["metadata"]["labels"]["app"], "web");
    let out = ns
        .kubectl([
            "run",
            "tmp",
            "--image=busybox:1.36",
            "--dry-run=server",
            "-o",
            "jsonpath={.spec.containers[0].name} {.spec.dnsPolicy}",
        ])
        .ok();
    assert_eq!(out, "tmp ClusterFirst");
    assert!(!ns.exists("pod/tmp"));
    let err = ns.kubectl(["run", "web", "--image=nginx:1.25"]).fails();
    assert!(err.contains(r#"pods "web" already exists"#), "{err}");
}

#[test]
fn proxy_serves_the_api_over_plain_http() {
    let s = Server::shared();
    let ns = s.namespace("proxy");
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: via-proxy}\n");
    let mut proxy = s
        .kubectl(["proxy", "--port=0", "--address=127.0.0.1"])
        .spawn();
    let line = proxy.expect_line(WAIT, |l| l.starts_with("Starting to serve on 127.0.0.1:"));
    let addr: std::net::SocketAddr = line
        .trim_start_matches("Starting to serve on ")
        .parse()
        .unwrap();
    let r = http::send_plain(
        addr,
        &Request::new(
            "GET",
            &format!("/api/v1/namespaces/{}/configmaps/via-proxy", ns.name),
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["metadata"]["name"], "via-proxy");
    let r = http::send_plain(addr, &Request::new("GET", "/version")).unwrap();
    assert_eq!(r.json()["minor"], "32");
    drop(proxy);
}

#[test]
fn view_and_set_last_applied() {
    let s = Server::shared();
    let ns = s.namespace("last-applied");
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n");
    let out = ns
        .kubectl(["apply", "view-last-applied", "configmap/cfg", "-o", "json"])
        .ok();
    let last = json(&out);
    assert_eq!(last["data"]["a"], "1");
    let out = ns
        .kubectl(["apply", "set-last-applied", "-f", "-"])
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '2'}\n")
        .ok();
    assert_eq!(out.trim(), "configmap/cfg configured");
    let out = ns
        .kubectl(["apply", "view-last-applied", "configmap/cfg", "-o", "json"])
        .ok();
    assert_eq!(json(&out)["data"]["a"], "2");
    assert_eq!(
        ns.get("cm/cfg")["data"]["a"],
        "1",
        "only the annotation changed"
    );
    // create --save-config records it too.
    ns.kubectl(["create", "--save-config", "-f", "-"])
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: saved}\n")
        .ok();
    let out = ns
        .kubectl(["apply", "view-last-applied", "configmap/saved"])
        .ok();
    assert!(out.contains("name: saved"), "{out}");
}
