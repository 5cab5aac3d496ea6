//! Access reviews (`auth can-i`'s API), whoami and service account tokens,
//! through JSON: raw requests and the Python client. (kubectl's own
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
