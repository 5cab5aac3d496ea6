//! Bad input: each gets a `Status` with the right code, reason and causes,
//! kubectl prints it as it does for a real cluster, and nothing is stored.

use crate::harness::*;

#[track_caller]
fn refused(ns: &Namespace<'_>, manifest: &str) -> String {
    ns.kubectl(["create", "-f", "-"]).stdin(manifest).fails()
}

#[test]
fn malformed_yaml_and_json() {
    let s = Server::shared();
    let ns = s.namespace("malformed");
    // kubectl parses manifests itself and stops there.
    let err = refused(
        &ns,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad\ndata: [\n",
    );
    assert!(
        err.starts_with(r#"error: error parsing STDIN: error converting YAML to JSON"#),
        "{err}"
    );
    // The server sees malformed bodies only from other clients.
    let path = format!("/api/v1/namespaces/{}/configmaps", ns.name);
    for (ct, body) in [
        (
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x""#,
        ),
        (
            "application/yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n",
        ),
        ("application/json", "[1,2,3]"),
    ] {
        let r = s.request(Request::new("POST", &path).body(ct, body));
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let status = r.json();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "BadRequest");
        assert_eq!(status["code"], 400);
    }
    let r = s.request(Request::new("POST", &path).body("text/plain", "hello"));
    assert_eq!(r.status, 415, "{}", r.text());
    assert_eq!(r.json()["reason"], "UnsupportedMediaType");
    assert_eq!(
        without_root_ca(&ns.kubectl(["get", "cm", "-o", "name"]).ok()),
        ""
    );
}

#[test]
fn wrong_types_are_bad_requests() {
    let s = Server::shared();
    let ns = s.namespace("wrong-types");
    let err = refused(
        &ns,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: wt}\nspec:\n  replicas: three\n  \
         selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: x}]}}\n",
    );
    assert!(
        err.starts_with(r#"Error from server (BadRequest): error when creating "STDIN": Deployment in version "v1" cannot be handled as a Deployment: "#),
        "{err}"
    );
    assert!(err.contains("spec.replicas"), "{err}");
    // kubectl catches some wrong types itself; other clients' reach the
    // server.
    let err = refused(
        &ns,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: wt, labels: [a, b]}\n",
    );
    assert!(err.contains("cannot unmarshal array"), "{err}");
    let r = s.request(
        Request::new(
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", ns.name),
        )
        .body(
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"wt","labels":["a","b"]}}"#,
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with(r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: "#)
            && message.contains("metadata.labels"),
        "{message}"
    );
    assert!(!ns.exists("deployment/wt") && !ns.exists("cm/wt"));
}

#[test]
fn invalid_names_and_values_are_unprocessable() {
    let s = Server::shared();
    let ns = s.namespace("invalid");
    let err = refused(
        &ns,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
    );
    assert!(
        err.starts_with(r#"The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"#),
        "{err}"
    );
    let err = refused(
        &ns,
        "apiVersion: v1\nkind: Service\nmetadata: {name: a.b}\nspec: {ports: [{port: 80}]}\n",
    );
    assert!(
        err.contains(r#"The Service "a.b" is invalid: metadata.name: Invalid value: "a.b": a DNS-1035 label must consist of lower case alphanumeric characters or '-'"#),
        "{err}"
    );
    let err = refused(
        &ns,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {\"bad key\": \"1\"}\n",
    );
    assert!(
        err.starts_with(r#"The ConfigMap "x" is invalid: data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters"#),
        "{err}"
    );
    let err = refused(
        &ns,
        "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{port: 99999}]}\n",
    );
    assert!(err.starts_with("The Service \"svc\" is invalid: \n* spec.ports[0].port: Invalid value: 99999: must be between 1 and 65535, inclusive"), "{err}");
    let err = refused(
        &ns,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: neg}\nspec:\n  replicas: -1\n  \
         selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: x}]}}\n",
    );
    assert_eq!(
        err.trim(),
        r#"The Deployment "neg" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#
    );
    assert_eq!(
        without_root_ca(&ns.kubectl(["get", "all,cm", "-o", "name"]).ok()),
        ""
    );

    // The Status behind it: 422 Invalid, kind and name in details, one
    // cause per field.
    let r = s.request(
        Request::new("POST", &format!("/apis/apps/v1/namespaces/{}/deployments", ns.name)).body(
            "application/json",
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"neg"},"spec":{"replicas":-1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}"#,
        ),
    );
    assert_eq!(r.status, 422);
    let status = r.json();
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["kind"], "Deployment");
    assert_eq!(status["details"]["group"], "apps");
    assert_eq!(status["details"]["name"], "neg");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.replicas");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueInvalid"
    );
    assert_eq!(
        status["message"],
        r#"Deployment.apps "neg" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#
    );
}

#[test]
fn missing_required_fields() {
    let s = Server::shared();
    let ns = s.namespace("required");
    let err = refused(
        &ns,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: nosel}\nspec:\n  \
         template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: x}]}}\n",
    );
    assert!(
        err.starts_with("The Deployment \"nosel\" is invalid: \n* spec.selector: Required value"),
        "{err}"
    );
    let err = refused(
        &ns,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: empty}\nspec: {}\n",
    );
    assert_eq!(
        err.trim(),
        r#"The Pod "empty" is invalid: spec.containers: Required value"#
    );
    let err = refused(
        &ns,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\nspec: {containers: [{name: c}]}\n",
    );
    assert!(
        err.contains("spec.containers[0].image: Required value"),
        "{err}"
    );
    let err = refused(
        &ns,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {a: b}}\n",
    );
    assert!(
        err.contains("name or generateName is required")
            || err.contains("metadata.name: Required value"),
        "{err}"
    );
    let err = refused(
        &ns,
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: cj}\nspec:\n  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: x}]}}}}\n",
    );
    assert!(err.contains("spec.schedule: Required value"), "{err}");
    assert_eq!(ns.kubectl(["get", "all", "-o", "name"]).ok(), "");
}

#[test]
fn unknown_and_duplicate_fields_under_each_validation_mode() {
    let s = Server::shared();
    let ns = s.namespace("field-validation");
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: uf}\nfoo: 1\ndata: {x: '1'}\nspec: {bar: 2}\n";
    // Strict (kubectl's default): 400, nothing stored.
    let err = ns.kubectl(["apply", "-f", "-"]).stdin(manifest).fails();
    assert_eq!(
        err.trim(),
        r#"Error from server (BadRequest): error when creating "STDIN": ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "foo", unknown field "spec""#
    );
    assert!(!ns.exists("cm/uf"));
    // Nested unknown fields are named by path.
    let err = ns
        .kubectl(["create", "-f", "-"])
        .stdin(
            include_str!("fixtures/web.yaml").replace("replicas: 2", "replicas: 2\n  replcas: 3"),
        )
        .fails();
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.replcas""#),
        "{err}"
    );
    // Warn: created, one warning per field.
    let out = ns
        .kubectl(["apply", "--validate=warn", "-f", "-"])
        .stdin(manifest)
        .run();
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.trim(), "configmap/uf created");
    assert!(
        out.stderr.contains(r#"Warning: unknown field "foo""#),
        "{out}"
    );
    assert!(
        out.stderr.contains(r#"Warning: unknown field "spec""#),
        "{out}"
    );
    // Ignore: dropped silently.
    let out = ns
        .kubectl(["create", "--validate=false", "-f", "-"])
        .stdin(manifest.replace("name: uf", "name: uf2"))
        .run();
    assert!(out.success() && out.stderr.is_empty(), "{out}");
    let cm = ns.get("cm/uf2");
    assert!(cm.get("foo").is_none() && cm.get("spec").is_none(), "{cm}");

    // Duplicate fields (kubectl's YAML parser merges them, so raw JSON).
    let path = format!(
        "/api/v1/namespaces/{}/configmaps?fieldValidation=Strict",
        ns.name
    );
    let r = s.request(Request::new("POST", &path).body(
        "application/json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1"},"data":{"b":"2"}}"#,
    ));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "data""#
    );
    // Without the parameter the server warns (the Python client's case).
    let path = format!("/api/v1/namespaces/{}/configmaps", ns.name);
    let r = s.request(Request::new("POST", &path).body(
        "application/json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"warned"},"bogus":true}"#,
    ));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("warning"),
        Some(r#"299 - "unknown field \"bogus\"""#)
    );
}

#[test]
fn bodies_over_3_mib_are_too_large() {
    let s = Server::shared();
    let ns = s.namespace("too-large");
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  blob: {}\n",
        "x".repeat(3 * 1024 * 1024 + 100)
    );
    let path = s.file("big.yaml", &big);
    let path = path.to_str().unwrap();
    let err = ns.kubectl(["create", "-f", path]).fails();
    assert_eq!(
        err.trim(),
        format!(
            r#"Error from server (RequestEntityTooLarge): error when creating "{path}": Request entity too large: limit is 3145728"#
        )
    );
    assert!(!ns.exists("cm/big"));
    let r = s.request(
        Request::new(
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", ns.name),
        )
        .body("application/yaml", big.clone()),
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["reason"], "RequestEntityTooLarge");
    // Just under the limit is fine (the object itself is under 1 MiB of
    // data in etcd terms, but Gantry's only limit is the request body).
    let small = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: fits}}\ndata:\n  blob: {}\n",
        "x".repeat(512 * 1024)
    );
    ns.kubectl(["create", "-f", "-"]).stdin(small).ok();
}

#[test]
fn unknown_kinds_and_versions() {
    let s = Server::shared();
    let ns = s.namespace("unknown-kinds");
    let err = refused(&ns, "apiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n");
    assert_eq!(
        err.trim(),
        "error: resource mapping not found for name: \"g\" namespace: \"\" from \"STDIN\": no matches for kind \"Gizmo\" in version \"v1\"\nensure CRDs are installed first"
    );
    let err = refused(
        &ns,
        "apiVersion: apps/v9\nkind: Deployment\nmetadata: {name: g}\n",
    );
    assert!(
        err.contains(r#"no matches for kind "Deployment" in version "apps/v9""#),
        "{err}"
    );
    let err = ns.kubectl(["get", "gizmos"]).fails();
    assert_eq!(
        err.trim(),
        r#"error: the server doesn't have a resource type "gizmos""#
    );
    for path in [
        "/apis/apps/v9/deployments".to_owned(),
        "/apis/nosuch.example.com/v1/things".to_owned(),
        format!("/api/v1/namespaces/{}/gizmos", ns.name),
        "/api/v2/pods".to_owned(),
    ] {
        let r = s.request(Request::new("GET", &path));
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.json()["reason"], "NotFound", "{path}");
    }
    let err = s
        .kubectl(["get", "--raw", "/apis/apps/v9/deployments"])
        .fails();
    assert_eq!(
        err.trim(),
        "Error from server (NotFound): the server could not find the requested resource"
    );
}

#[test]
fn not_found_already_exists_and_wrong_namespace() {
    let s = Server::shared();
    let ns = s.namespace("statuses");
    let err = ns.kubectl(["get", "cm", "nosuch"]).fails();
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): configmaps "nosuch" not found"#
    );
    let err = ns.kubectl(["get", "deployment", "nosuch"]).fails();
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): deployments.apps "nosuch" not found"#
    );
    let r = s.request(Request::new(
        "GET",
        &format!("/apis/apps/v1/namespaces/{}/deployments/nosuch", ns.name),
    ));
    assert_eq!(r.status, 404);
    let status = r.json();
    assert_eq!(
        status["details"],
        serde_json::json!({"name": "nosuch", "group": "apps", "kind": "deployments"})
    );
    let err = s
        .kubectl(["-n", "nosuch-ns", "create", "-f", "-"])
        .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
        .fails();
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): error when creating "STDIN": namespaces "nosuch-ns" not found"#
    );
    // A body naming another namespace than the URL.
    let r = s.request(
        Request::new(
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", ns.name),
        )
        .body(
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}"#,
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // A body of another kind than the URL.
    let r = s.request(
        Request::new(
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", ns.name),
        )
        .body(
            "application/json",
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#,
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // A verb the resource does not have.
    let r = s.request(Request::new(
        "PUT",
        &format!("/api/v1/namespaces/{}/configmaps", ns.name),
    ));
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.json()["reason"], "MethodNotAllowed");
    assert_eq!(
        without_root_ca(&ns.kubectl(["get", "cm", "-o", "name"]).ok()),
        ""
    );
}
