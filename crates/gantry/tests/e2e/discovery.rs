//! Discovery, OpenAPI and version: what kubectl learns about the server
//! before it sends anything (`api-resources`, `api-versions`, `explain`,
//! `version`, `get all`).

use crate::harness::*;

/// One row of `kubectl api-resources`: name, short names, API version,
/// namespaced, kind, as a real 1.32 cluster prints them.
const UPSTREAM_RESOURCES: &[(&str, &str, &str, &str, &str)] = &[
    ("configmaps", "cm", "v1", "true", "ConfigMap"),
    ("endpoints", "ep", "v1", "true", "Endpoints"),
    ("events", "ev", "v1", "true", "Event"),
    ("limitranges", "limits", "v1", "true", "LimitRange"),
    ("namespaces", "ns", "v1", "false", "Namespace"),
    ("nodes", "no", "v1", "false", "Node"),
    (
        "persistentvolumeclaims",
        "pvc",
        "v1",
        "true",
        "PersistentVolumeClaim",
    ),
    ("persistentvolumes", "pv", "v1", "false", "PersistentVolume"),
    ("pods", "po", "v1", "true", "Pod"),
    ("podtemplates", "", "v1", "true", "PodTemplate"),
    (
        "replicationcontrollers",
        "rc",
        "v1",
        "true",
        "ReplicationController",
    ),
    ("resourcequotas", "quota", "v1", "true", "ResourceQuota"),
    ("secrets", "", "v1", "true", "Secret"),
    ("serviceaccounts", "sa", "v1", "true", "ServiceAccount"),
    ("services", "svc", "v1", "true", "Service"),
    (
        "customresourcedefinitions",
        "crd,crds",
        "apiextensions.k8s.io/v1",
        "false",
        "CustomResourceDefinition",
    ),
    (
        "controllerrevisions",
        "",
        "apps/v1",
        "true",
        "ControllerRevision",
    ),
    ("daemonsets", "ds", "apps/v1", "true", "DaemonSet"),
    ("deployments", "deploy", "apps/v1", "true", "Deployment"),
    ("replicasets", "rs", "apps/v1", "true", "ReplicaSet"),
    ("statefulsets", "sts", "apps/v1", "true", "StatefulSet"),
    (
        "horizontalpodautoscalers",
        "hpa",
        "autoscaling/v2",
        "true",
        "HorizontalPodAutoscaler",
    ),
    ("cronjobs", "cj", "batch/v1", "true", "CronJob"),
    ("jobs", "", "batch/v1", "true", "Job"),
    ("leases", "", "coordination.k8s.io/v1", "true", "Lease"),
    (
        "endpointslices",
        "",
        "discovery.k8s.io/v1",
        "true",
        "EndpointSlice",
    ),
    (
        "ingressclasses",
        "",
        "networking.k8s.io/v1",
        "false",
        "IngressClass",
    ),
    (
        "ingresses",
        "ing",
        "networking.k8s.io/v1",
        "true",
        "Ingress",
    ),
    (
        "networkpolicies",
        "netpol",
        "networking.k8s.io/v1",
        "true",
        "NetworkPolicy",
    ),
    (
        "poddisruptionbudgets",
        "pdb",
        "policy/v1",
        "true",
        "PodDisruptionBudget",
    ),
    (
        "clusterrolebindings",
        "",
        "rbac.authorization.k8s.io/v1",
        "false",
        "ClusterRoleBinding",
    ),
    (
        "clusterroles",
        "",
        "rbac.authorization.k8s.io/v1",
        "false",
        "ClusterRole",
    ),
    (
        "rolebindings",
        "",
        "rbac.authorization.k8s.io/v1",
        "true",
        "RoleBinding",
    ),
    ("roles", "", "rbac.authorization.k8s.io/v1", "true", "Role"),
    (
        "priorityclasses",
        "pc",
        "scheduling.k8s.io/v1",
        "false",
        "PriorityClass",
    ),
    (
        "storageclasses",
        "sc",
        "storage.k8s.io/v1",
        "false",
        "StorageClass",
    ),
];

#[test]
fn api_resources_lists_every_builtin_kind_with_short_names() {
    let s = Server::shared();
    let t = Table::parse(&s.kubectl(["api-resources"]).ok());
    assert_eq!(
        t.columns,
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    for (name, short, version, namespaced, kind) in UPSTREAM_RESOURCES {
        let row = t
            .rows
            .iter()
            .find(|r| r[0] == *name && r[2] == *version)
            .unwrap_or_else(|| panic!("api-resources lacks {name} in {version}: {t:#?}"));
        assert_eq!(
            row[1..],
            [*short, *version, *namespaced, *kind],
            "api-resources row of {name}"
        );
    }
    // Both Event kinds are listed, each under its own group.
    assert!(
        t.rows
            .iter()
            .any(|r| r[0] == "events" && r[2] == "events.k8s.io/v1" && r[1] == "ev")
    );
}

#[test]
fn api_resources_wide_shows_verbs_and_categories() {
    let s = Server::shared();
    let t = Table::parse(&s.kubectl(["api-resources", "-o", "wide"]).ok());
    assert_eq!(
        t.columns,
        [
            "NAME",
            "SHORTNAMES",
            "APIVERSION",
            "NAMESPACED",
            "KIND",
            "VERBS",
            "CATEGORIES"
        ]
    );
    let row = |name: &str, version: &str| {
        t.rows
            .iter()
            .find(|r| r[0] == name && r[2] == version)
            .unwrap_or_else(|| panic!("no {name} {version}"))
            .clone()
    };
    let all_verbs = "create,delete,deletecollection,get,list,patch,update,watch";
    for (name, version) in [
        ("pods", "v1"),
        ("services", "v1"),
        ("deployments", "apps/v1"),
        ("replicasets", "apps/v1"),
        ("statefulsets", "apps/v1"),
        ("daemonsets", "apps/v1"),
        ("jobs", "batch/v1"),
        ("cronjobs", "batch/v1"),
    ] {
        let r = row(name, version);
        assert_eq!(r[6], "all", "{name} is in category all");
    }
    assert_eq!(row("pods", "v1")[5], all_verbs);
    assert_eq!(
        row("configmaps", "v1")[6],
        "",
        "configmaps are in no category"
    );
    // Namespaces cannot be deleted as a collection.
    assert_eq!(
        row("namespaces", "v1")[5],
        "create,delete,get,list,patch,update,watch"
    );
}

#[test]
fn api_resources_filters_by_group_and_scope() {
    let s = Server::shared();
    let apps = s
        .kubectl(["api-resources", "--api-group=apps", "-o", "name"])
        .ok();
    assert_eq!(
        apps.lines().collect::<Vec<_>>(),
        [
            "controllerrevisions.apps",
            "daemonsets.apps",
            "deployments.apps",
            "replicasets.apps",
            "statefulsets.apps"
        ]
    );
    let cluster = s
        .kubectl(["api-resources", "--namespaced=false", "-o", "name"])
        .ok();
    for name in [
        "namespaces",
        "nodes",
        "persistentvolumes",
        "storageclasses.storage.k8s.io",
    ] {
        assert!(cluster.lines().any(|l| l == name), "{name} in:\n{cluster}");
    }
    assert!(!cluster.lines().any(|l| l == "pods"), "{cluster}");
}

#[test]
fn api_versions_lists_groups_including_the_old_ones() {
    let s = Server::shared();
    let out = s.kubectl(["api-versions"]).ok();
    let versions: Vec<&str> = out.lines().collect();
    for v in [
        "v1",
        "apps/v1",
        "autoscaling/v1",
        "autoscaling/v2",
        "batch/v1",
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
        "events.k8s.io/v1",
        "networking.k8s.io/v1",
        "policy/v1",
        "rbac.authorization.k8s.io/v1",
        "scheduling.k8s.io/v1",
        "storage.k8s.io/v1",
        "apiextensions.k8s.io/v1",
        // Served so that manifests written for older Kubernetes apply.
        "apps/v1beta1",
        "apps/v1beta2",
        "extensions/v1beta1",
    ] {
        assert!(versions.contains(&v), "api-versions lacks {v}:\n{out}");
    }
    let mut sorted = versions.clone();
    sorted.sort();
    assert_eq!(versions, sorted, "kubectl sorts api-versions");
}

#[test]
fn version_reports_a_1_32_server() {
    let s = Server::shared();
    let out = s.kubectl(["version", "-o", "json"]).ok();
    let v = json(&out);
    assert_eq!(v["serverVersion"]["major"], "1");
    assert_eq!(v["serverVersion"]["minor"], "32");
    let git = v["serverVersion"]["gitVersion"].as_str().unwrap();
    assert!(git.starts_with("v1.32."), "{git}");
    // The Python client reads /version/ (trailing slash) and needs all nine
    // fields.
    let raw = s.get_json("/version/");
    for field in [
        "major",
        "minor",
        "gitVersion",
        "gitCommit",
        "gitTreeState",
        "buildDate",
        "goVersion",
        "compiler",
        "platform",
    ] {
        assert!(raw[field].is_string(), "/version/ lacks {field}: {raw}");
    }
}

#[test]
fn aggregated_discovery_is_served_when_asked_for() {
    let s = Server::shared();
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let r = s.request(Request::new("GET", "/apis").header("Accept", accept));
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.contains("as=APIGroupDiscoveryList") && ct.contains("v=v2"),
        "{ct}"
    );
    let doc = r.json();
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    let apps = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .expect("apps group");
    assert_eq!(apps["versions"][0]["version"], "v1", "preferred first");
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .expect("deployments");
    assert_eq!(deploy["responseKind"]["kind"], "Deployment");
    assert!(
        deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["subresource"] == "scale" && s["responseKind"]["kind"] == "Scale")
    );
    // Without the aggregated Accept, the legacy forms.
    let legacy = s.get_json("/apis");
    assert_eq!(legacy["kind"], "APIGroupList");
    let core = s.get_json("/api/v1");
    assert_eq!(core["kind"], "APIResourceList");
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["singularName"].is_string())
    );
}

#[test]
fn openapi_v3_documents_are_cached_by_etag_and_hash() {
    let s = Server::shared();
    let index = s.get_json("/openapi/v3");
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("apps/v1 in the OpenAPI v3 index")
        .to_owned();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    let r = s.request(Request::new("GET", &url).header("Accept", "application/json"));
    assert_eq!(r.status, 200);
    let etag = r.header("etag").expect("an ETag").to_owned();
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(
        doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object(),
        "Deployment schema"
    );
    let again = s.request(Request::new("GET", &url).header("If-None-Match", &etag));
    assert_eq!(
        again.status, 304,
        "a matching If-None-Match is answered 304"
    );
    let stale = s.request(Request::new("GET", "/openapi/v3/apis/apps/v1?hash=0123"));
    assert_eq!(
        stale.status, 301,
        "a wrong hash redirects to the current one"
    );

    // v2: JSON for clients that take it; kubectl, which asks for protobuf
    // only and parses whatever comes as protobuf, gets protobuf.
    let v2 = s.request(Request::new("GET", "/openapi/v2").header("Accept", "application/json"));
    assert_eq!(v2.status, 200);
    assert_eq!(v2.json()["swagger"], "2.0");
    let pb = s.request(Request::new("GET", "/openapi/v2").header(
        "Accept",
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    ));
    assert_eq!(pb.status, 200);
    assert!(
        pb.header("content-type")
            .unwrap_or("")
            .ends_with("+protobuf"),
        "{:?}",
        pb.headers
    );
    assert_eq!(
        &pb.body[..5],
        b"\x0a\x032.0",
        "swagger: 2.0 as protobuf field 1"
    );
}

#[test]
fn explain_reads_the_openapi_documents() {
    let s = Server::shared();
    let out = s.kubectl(["explain", "deployment.spec.replicas"]).ok();
    assert!(out.contains("GROUP:      apps"), "{out}");
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(out.contains("FIELD: replicas <integer>"), "{out}");
    assert!(out.contains("Number of desired pods"), "{out}");

    let out = s.kubectl(["explain", "pods"]).ok();
    assert!(out.contains("KIND:       Pod"), "{out}");
    assert!(out.contains("spec\t<PodSpec>"), "{out}");
    assert!(out.contains("status\t<PodStatus>"), "{out}");

    let out = s.kubectl(["explain", "pod.spec.containers.ports"]).ok();
    assert!(out.contains("containerPort\t<integer> -required-"), "{out}");

    let out = s.kubectl(["explain", "cronjobs.spec", "--recursive"]).ok();
    assert!(out.contains("schedule\t<string> -required-"), "{out}");
    assert!(
        out.contains("jobTemplate\t<JobTemplateSpec> -required-"),
        "{out}"
    );

    let out = s
        .kubectl([
            "explain",
            "ingress.spec.rules.http.paths.backend.service.port",
        ])
        .ok();
    assert!(out.contains("number\t<integer>"), "{out}");

    let err = s.kubectl(["explain", "gizmos"]).fails();
    assert!(
        err.contains(r#"the server doesn't have a resource type "gizmos""#),
        "{err}"
    );
}

#[test]
fn get_all_expands_the_all_category() {
    let s = Server::shared();
    let ns = s.namespace("get-all");
    ns.apply(include_str!("fixtures/web.yaml"));
    let out = ns.kubectl(["get", "all", "-o", "name"]).ok();
    let mut names: Vec<&str> = out.lines().collect();
    names.sort();
    assert_eq!(
        names,
        ["deployment.apps/web", "pod/web-0", "service/web"],
        "get all lists pods, services and workloads but not the ConfigMap"
    );
    let out = ns.kubectl(["get", "all"]).ok();
    assert!(out.contains("pod/web-0"), "{out}");
    assert!(out.contains("deployment.apps/web"), "{out}");
}
