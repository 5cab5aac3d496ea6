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

#[test]
fn set_commands_kustomize_and_wait_for_create() {
    let s = Server::shared();
    let ns = s.namespace("set-more");
    ns.apply(include_str!("fixtures/app-v1.yaml"));
    let out = ns
        .kubectl([
            "set",
            "resources",
            "deployment/app",
            "-c",
            "main",
            "--limits=cpu=200m,memory=512Mi",
        ])
        .ok();
    assert_eq!(
        out.trim(),
        "deployment.apps/app resource requirements updated"
    );
    let out = ns
        .kubectl(["set", "serviceaccount", "deployment/app", "robot"])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/app serviceaccount updated");
    let d = ns.get("deployment/app");
    let spec = &d["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["resources"],
        serde_json::json!({"limits": {"cpu": "200m", "memory": "512Mi"}})
    );
    assert_eq!(spec["serviceAccountName"], "robot");

    ns.apply(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\n",
    );
    let sa = format!("--serviceaccount={}:robot", ns.name);
    let out = ns
        .kubectl(["set", "subject", "rolebinding", "rb", "--user=bob", &sa])
        .ok();
    assert_eq!(
        out.trim(),
        "rolebinding.rbac.authorization.k8s.io/rb subjects updated"
    );
    let t = Table::parse(&ns.kubectl(["get", "rolebinding", "rb", "-o", "wide"]).ok());
    assert_eq!(t.cell("rb", "USERS"), "bob");
    assert_eq!(
        t.cell("rb", "SERVICEACCOUNTS"),
        format!("{}/robot", ns.name)
    );

    // kustomize runs in kubectl; the result is applied like any manifest.
    let dir = s.files_dir().join("kustomize");
    s.file(
        "kustomize/kustomization.yaml",
        "resources: [cm.yaml]\nnamePrefix: kz-\nlabels:\n- pairs: {via: kustomize}\n",
    );
    s.file(
        "kustomize/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    let out = ns.kubectl(["apply", "-k", dir.to_str().unwrap()]).ok();
    assert_eq!(out.trim(), "configmap/kz-a created");
    assert_eq!(ns.get("cm/kz-a")["metadata"]["labels"]["via"], "kustomize");

    // wait --for=create polls until the object appears.
    let waiter = ns
        .kubectl(["wait", "--for=create", "cm/later", "--timeout=20s"])
        .spawn();
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\n");
    let (status, lines) = waiter.wait(WAIT);
    assert!(status.success(), "{lines:?}");
    assert_eq!(lines, ["configmap/later condition met"]);
}
