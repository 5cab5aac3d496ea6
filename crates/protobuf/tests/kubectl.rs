//! Bodies the real kubectl 1.32 sent (captured by
//! `testdata/kubectl/capture.py`), decoded and compared with the JSON kubectl
//! itself prints for the same object (`--dry-run=client -o json`), or, for
//! commands that cannot print it, with the JSON Kubernetes would hold.

use std::path::PathBuf;

use serde_json::{Value, json};

fn testdata() -> PathBuf {
    package_dir().join("testdata/kubectl")
}

fn decode(case: &str) -> Value {
    let body = std::fs::read(testdata().join(format!("{case}.pb")))
        .unwrap_or_else(|e| panic!("{case}.pb: {e}"));
    protobuf::decode(&body)
        .unwrap_or_else(|e| panic!("{case}: {e}"))
        .object
}

fn assert_json_eq(case: &str, got: &Value, want: &Value) {
    if got != want {
        panic!(
            "{case}: decoded\n{}\nbut kubectl prints\n{}",
            serde_json::to_string_pretty(got).unwrap(),
            serde_json::to_string_pretty(want).unwrap()
        );
    }
}

/// Every captured body that has kubectl's own JSON beside it.
#[test]
fn bodies_decode_to_the_json_kubectl_prints() {
    let mut cases: Vec<String> = std::fs::read_dir(testdata())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    for case in cases {
        let want: Value = serde_json::from_slice(
            &std::fs::read(testdata().join(format!("{case}.json"))).unwrap(),
        )
        .unwrap();
        assert_json_eq(&case, &decode(&case), &want);
    }
}

#[test]
fn deployment_as_kubectl_create_deployment_sends_it() {
    assert_json_eq(
        "create-deployment",
        &decode("create-deployment"),
        &json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {}
                    }]}
                },
                "strategy": {}
            },
            "status": {}
        }),
    );
    // A pointer keeps its zero: `--replicas=0` is not "unset".
    assert_eq!(
        decode("create-deployment-zero-replicas")["spec"]["replicas"],
        json!(0)
    );
}

#[test]
fn configmap_binary_data_is_base64() {
    let cm = decode("create-configmap");
    assert_eq!(cm["data"], json!({"a": "1", "empty": ""}));
    assert_eq!(cm["binaryData"], json!({"bin": "AP/+gEE="}));
}

#[test]
fn token_request() {
    assert_json_eq(
        "create-token",
        &decode("create-token"),
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            // The name and namespace travel in the URL only.
            "metadata": {"creationTimestamp": null},
            "spec": {"audiences": ["api"], "expirationSeconds": 600, "boundObjectRef": null},
            "status": {"token": "", "expirationTimestamp": null}
        }),
    );
}

#[test]
fn self_subject_access_review() {
    assert_json_eq(
        "auth-can-i",
        &decode("auth-can-i"),
        &json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"resourceAttributes": {
                "namespace": "kube-system",
                "verb": "get",
                "group": "apps",
                "resource": "deployments",
                "subresource": "scale",
                "name": "scale"
            }},
            "status": {"allowed": false}
        }),
    );
}

#[test]
fn certificate_approval_keeps_the_served_object() {
    let csr = decode("certificate-approve");
    assert_eq!(csr["metadata"]["resourceVersion"], "42");
    assert_eq!(csr["metadata"]["creationTimestamp"], "2026-11-23T10:00:00Z");
    assert_eq!(
        csr["spec"]["request"],
        "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K"
    );
    assert_eq!(csr["spec"]["expirationSeconds"], 86400);
    assert_eq!(
        csr["spec"]["extra"],
        json!({"scopes": ["a", "b"], "empty": null})
    );
    let conditions = csr["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0]["type"], "Approved");
    assert_eq!(conditions[0]["status"], "True");
    assert_eq!(conditions[0]["reason"], "KubectlApprove");
    assert!(
        conditions[0]["lastUpdateTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

/// The package's directory: the one the test runner names (cargo and nextest set
/// `CARGO_MANIFEST_DIR` when they run a test), else the one it was built from. A build
/// shared by checkouts at other paths (one `CARGO_TARGET_DIR`) may have been made in
/// another checkout.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}
