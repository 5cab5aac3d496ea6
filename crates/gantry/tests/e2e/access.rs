//! Access reviews (`auth can-i`'s API), whoami and service account tokens,
//! through JSON: raw requests and the Python client; and the credentials
//! every pod gets for in-cluster clients. (kubectl's own
//! commands for these POST protobuf; see `pending.rs`.)

use crate::harness::*;

#[test]
fn access_reviews_and_whoami() {
    let s = Server::shared();
    let ns = s.namespace("reviews");
    let review = s.file(
        "ssar.json",
        format!(
            r#"{{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview",
               "spec":{{"resourceAttributes":{{"verb":"create","resource":"pods","namespace":"{}"}}}}}}"#,
            ns.name
        ),
    );
    let out = s
        .kubectl([
            "create",
            "--raw",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "-f",
            review.to_str().unwrap(),
        ])
        .ok();
    let answer = json(&out);
    assert_eq!(answer["kind"], "SelfSubjectAccessReview");
    assert_eq!(answer["status"]["allowed"], true);
    let r = s.request(
        Request::new("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews").body(
            "application/json",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#,
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["status"]["userInfo"]["username"], "admin");
    let t = Table::parse(
        &s.kubectl(["api-resources", "--api-group=authorization.k8s.io"])
            .ok(),
    );
    assert!(
        t.rows.iter().any(|r| r[0] == "selfsubjectaccessreviews"),
        "{t:?}"
    );
}

#[test]
fn service_account_tokens_from_json_requests() {
    let s = Server::shared();
    let ns = s.namespace("sa-tokens");
    ns.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot}\n");
    let r = s.request(
        Request::new(
            "POST",
            &format!("/api/v1/namespaces/{}/serviceaccounts/robot/token", ns.name),
        )
        .body(
            "application/json",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":600}}"#,
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["status"]["token"].as_str().unwrap().to_owned();
    let robot = Auth::Bearer(token.clone());
    let r = s.request_as(
        &robot,
        Request::new("GET", &format!("/api/v1/namespaces/{}/configmaps", ns.name)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // kubectl with the token in its kubeconfig.
    let kubeconfig = s.file(
        "robot.kubeconfig",
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{}', certificate-authority: '{}'}}\n\
             users:\n- name: robot\n  user: {{token: '{token}'}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: robot}}\n\
             current-context: x\n",
            s.url(),
            s.data_dir().join("pki/ca.crt").display()
        ),
    );
    let out = s
        .kubectl(["get", "sa", "-n", &ns.name, "-o", "name"])
        .kubeconfig(&kubeconfig)
        .ok();
    // Every namespace also gets a `default` account, made a moment after it.
    assert!(
        out.lines().any(|l| l == "serviceaccount/robot"),
        "the token's kubeconfig lists: {out}"
    );
    // Gone with its service account.
    ns.kubectl(["delete", "sa", "robot"]).ok();
    let r = s.request_as(&robot, Request::new("GET", "/api/v1/namespaces"));
    assert_eq!(r.status, 401, "{}", r.text());
}

#[test]
fn python_access_reviews_and_tokens() {
    let s = Server::shared();
    let ns = s.namespace("py-access");
    let out = s.python("access.py").args([&ns.name]).ok();
    assert_eq!(out.lines().last(), Some("ok"), "{out}");
}

/// What in-cluster clients read: a pod gets its service account's token, the
/// cluster CA and its namespace at the well-known path, and the token works.
#[test]
fn pods_get_their_service_account_credentials() {
    use crate::pods::{running, wait_for};
    const DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let s = Server::node();
    let ns = s.namespace("sa-mount");
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers:\n\
         \x20 - {name: c, image: busybox:1.36, command: [sleep, '3600']}\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata: {name: without}\nspec:\n\
         \x20 automountServiceAccountToken: false\n  containers:\n\
         \x20 - {name: c, image: busybox:1.36, command: [sleep, '3600']}\n",
    );
    let pod = wait_for(&ns, "pod/client", "running", running);
    let volume = pod["spec"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["projected"].is_object()))
        .unwrap_or_else(|| panic!("no projected volume: {pod:#}"));
    assert!(
        volume["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("kube-api-access-")),
        "{volume:#}"
    );
    let cat = |file: &str| {
        ns.kubectl(["exec", "client", "--", "cat", &format!("{DIR}/{file}")])
            .ok()
    };
    assert_eq!(cat("namespace"), ns.name);
    let ca = std::fs::read_to_string(s.data_dir().join("pki/ca.crt")).unwrap();
    assert_eq!(cat("ca.crt").trim(), ca.trim());
    let token = cat("token");
    let r = s.request_as(
        &Auth::Bearer(token.trim().to_owned()),
        Request::new("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews").body(
            "application/json",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#,
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let user = &r.json()["status"]["userInfo"];
    assert_eq!(
        user["username"],
        format!("system:serviceaccount:{}:default", ns.name),
        "{user:#}"
    );
    // A pod that says no has nothing there.
    wait_for(&ns, "pod/without", "running", running);
    let listed = ns.kubectl(["exec", "without", "--", "ls", DIR]).run();
    assert!(!listed.status.success(), "{listed}");
    // The token is bound to its pod: deleted, it no longer authenticates.
    ns.kubectl(["delete", "pod", "client", "--grace-period=1"])
        .ok();
    let r = s.request_as(
        &Auth::Bearer(token.trim().to_owned()),
        Request::new("GET", "/api/v1/namespaces"),
    );
    assert_eq!(r.status, 401, "{}", r.text());

    // The CA ConfigMap is the publisher's: deleted, it comes back.
    ns.kubectl(["delete", "configmap", "kube-root-ca.crt"]).ok();
    let back = wait_for(&ns, "configmap/kube-root-ca.crt", "published again", |cm| {
        cm["data"]["ca.crt"].is_string()
    });
    assert_eq!(back["data"]["ca.crt"].as_str().unwrap().trim(), ca.trim());
}
