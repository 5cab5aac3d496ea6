//! `kubectl get`: the server-side tables (columns as a real 1.32 cluster
//! prints them, `-o wide`), the other output formats, selectors and
//! paging.

use crate::harness::*;

/// Columns of `kubectl get <resource>` and `-o wide` on a real cluster
/// (kubernetes/pkg/printers/internalversion/printers.go, 1.32).
const NAMESPACED_COLUMNS: &[(&str, &[&str], &[&str])] = &[
    (
        "pods",
        &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
    ),
    (
        "services",
        &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        &["SELECTOR"],
    ),
    (
        "deployments",
        &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        &["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    (
        "replicasets",
        &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        &["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    (
        "statefulsets",
        &["NAME", "READY", "AGE"],
        &["CONTAINERS", "IMAGES"],
    ),
    (
        "daemonsets",
        &[
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
        ],
        &["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    (
        "jobs",
        &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        &["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    (
        "cronjobs",
        &[
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ],
        &["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    ("configmaps", &["NAME", "DATA", "AGE"], &[]),
    ("secrets", &["NAME", "TYPE", "DATA", "AGE"], &[]),
    ("serviceaccounts", &["NAME", "SECRETS", "AGE"], &[]),
    (
        "ingresses",
        &["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        &[],
    ),
    ("networkpolicies", &["NAME", "POD-SELECTOR", "AGE"], &[]),
    (
        "persistentvolumeclaims",
        &[
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE",
        ],
        &["VOLUMEMODE"],
    ),
    (
        "poddisruptionbudgets",
        &[
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE",
        ],
        &[],
    ),
    (
        "horizontalpodautoscalers",
        &[
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE",
        ],
        &[],
    ),
    ("leases", &["NAME", "HOLDER", "AGE"], &[]),
    ("roles", &["NAME", "CREATED AT"], &[]),
    (
        "rolebindings",
        &["NAME", "ROLE", "AGE"],
        &["USERS", "GROUPS", "SERVICEACCOUNTS"],
    ),
    ("endpoints", &["NAME", "ENDPOINTS", "AGE"], &[]),
    (
        "endpointslices",
        &["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        &[],
    ),
    ("limitranges", &["NAME", "CREATED AT"], &[]),
    ("resourcequotas", &["NAME", "REQUEST", "LIMIT", "AGE"], &[]),
    (
        "replicationcontrollers",
        &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        &["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    (
        "podtemplates",
        &["NAME", "CONTAINERS", "IMAGES", "POD LABELS"],
        &[],
    ),
    (
        "controllerrevisions",
        &["NAME", "CONTROLLER", "REVISION", "AGE"],
        &[],
    ),
];

/// The same for cluster-scoped resources.
const CLUSTER_COLUMNS: &[(&str, &[&str], &[&str])] = &[
    (
        "ingressclasses",
        &["NAME", "CONTROLLER", "PARAMETERS", "AGE"],
        &[],
    ),
    (
        "persistentvolumes",
        &[
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE",
        ],
        &["VOLUMEMODE"],
    ),
    (
        "storageclasses",
        &[
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE",
        ],
        &[],
    ),
    (
        "priorityclasses",
        &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
        &[],
    ),
    ("clusterroles", &["NAME", "CREATED AT"], &[]),
    (
        "clusterrolebindings",
        &["NAME", "ROLE", "AGE"],
        &["USERS", "GROUPS", "SERVICEACCOUNTS"],
    ),
    (
        "nodes",
        &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        &[
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME",
        ],
    ),
    ("namespaces", &["NAME", "STATUS", "AGE"], &[]),
];

fn check_columns(run: impl Fn(&[&str]) -> String, columns: &[(&str, &[&str], &[&str])]) {
    for (resource, normal, wide) in columns {
        let t = Table::parse(&run(&["get", resource]));
        assert_eq!(t.columns, *normal, "columns of kubectl get {resource}");
        assert!(!t.rows.is_empty(), "{resource}: no rows");
        let t = Table::parse(&run(&["get", resource, "-o", "wide"]));
        let all: Vec<&str> = normal.iter().chain(wide.iter()).copied().collect();
        assert_eq!(t.columns, all, "columns of kubectl get {resource} -o wide");
    }
}

fn is_age(cell: &str) -> bool {
    let digits = cell.trim_end_matches(['s', 'm', 'h', 'd']);
    !cell.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || "smhd".contains(c))
}

#[test]
fn tables_of_namespaced_kinds_have_upstream_columns() {
    let s = Server::shared();
    let ns = s.namespace("tables");
    let kinds = include_str!("fixtures/kinds.yaml")
        .replace("namespace: t1", &format!("namespace: {}", ns.name));
    ns.apply(&kinds);
    check_columns(|args| ns.kubectl(args).ok(), NAMESPACED_COLUMNS);

    let get = |r: &str| Table::parse(&ns.kubectl(["get", r, "-o", "wide"]).ok());
    let pods = get("pods");
    assert_eq!(pods.row("web-0")[1..4], ["0/1", "Pending", "0"]);
    assert!(is_age(pods.cell("web-0", "AGE")), "{pods:?}");
    assert_eq!(pods.cell("web-0", "NODE"), "<none>");
    let svc = get("services");
    assert_eq!(svc.cell("web", "TYPE"), "ClusterIP");
    assert!(svc.cell("web", "CLUSTER-IP").starts_with("10."), "{svc:?}");
    assert_eq!(svc.cell("web", "EXTERNAL-IP"), "<none>");
    assert_eq!(svc.cell("web", "PORT(S)"), "80/TCP");
    assert_eq!(svc.cell("web", "SELECTOR"), "app=web");
    let deploy = get("deployments");
    assert_eq!(deploy.row("web")[1..4], ["0/2", "0", "0"]);
    assert_eq!(deploy.cell("web", "CONTAINERS"), "c");
    assert_eq!(deploy.cell("web", "IMAGES"), "nginx:1.25");
    assert_eq!(deploy.cell("web", "SELECTOR"), "app=web");
    assert_eq!(get("replicasets").cell("web-rs", "DESIRED"), "1");
    assert_eq!(get("statefulsets").cell("db", "READY"), "0/1");
    assert_eq!(get("daemonsets").cell("agent", "NODE SELECTOR"), "<none>");
    let jobs = get("jobs");
    assert_eq!(jobs.cell("once", "COMPLETIONS"), "0/1");
    assert!(
        jobs.cell("once", "SELECTOR")
            .starts_with("batch.kubernetes.io/controller-uid="),
        "{jobs:?}"
    );
    let cron = get("cronjobs");
    assert_eq!(
        cron.row("nightly")[1..6],
        ["0 3 * * *", "<none>", "False", "0", "<none>"]
    );
    assert_eq!(get("configmaps").cell("settings", "DATA"), "2");
    let secrets = get("secrets");
    assert_eq!(secrets.row("creds")[1..3], ["Opaque", "1"]);
    assert_eq!(get("serviceaccounts").cell("robot", "SECRETS"), "0");
    let ing = get("ingresses");
    assert_eq!(
        ing.row("web")[1..5],
        ["nginx", "web.example.test", "", "80"]
    );
    assert_eq!(
        get("networkpolicies").cell("deny", "POD-SELECTOR"),
        "app=web"
    );
    let pvc = get("persistentvolumeclaims");
    assert_eq!(pvc.cell("data", "STATUS"), "Pending");
    assert_eq!(pvc.cell("data", "VOLUMEMODE"), "Filesystem");
    let pdb = get("poddisruptionbudgets");
    assert_eq!(pdb.row("web")[1..4], ["1", "N/A", "0"]);
    let hpa = get("horizontalpodautoscalers");
    assert_eq!(hpa.cell("web", "REFERENCE"), "Deployment/web");
    assert_eq!(hpa.cell("web", "TARGETS"), "cpu: <unknown>/80%");
    assert_eq!(hpa.row("web")[3..5], ["1", "5"]);
    assert_eq!(get("leases").cell("leader", "HOLDER"), "me");
    let created = get("roles").cell("reader", "CREATED AT").to_owned();
    assert!(created.ends_with('Z') && created.contains('T'), "{created}");
    let rb = get("rolebindings");
    assert_eq!(rb.cell("reader", "ROLE"), "Role/reader");
    assert_eq!(rb.cell("reader", "SERVICEACCOUNTS"), "/robot");
    assert_eq!(get("endpoints").cell("web", "ENDPOINTS"), "10.1.0.5:8080");
    let slices = get("endpointslices");
    assert_eq!(slices.row("web-abc")[1..4], ["IPv4", "8080", "10.1.0.5"]);
    let rc = get("replicationcontrollers");
    assert_eq!(rc.cell("old", "SELECTOR"), "app=old");
    let tmpl = get("podtemplates");
    assert_eq!(tmpl.row("tmpl")[1..4], ["c", "busybox:1.36", "app=tmpl"]);
    assert_eq!(get("controllerrevisions").cell("db-1", "REVISION"), "1");

    // Events: -o wide interleaves its columns; core events and
    // events.k8s.io list the same objects.
    let wide = Table::parse(&ns.kubectl(["get", "events", "-o", "wide"]).ok());
    assert_eq!(
        wide.columns,
        [
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST SEEN",
            "COUNT",
            "NAME"
        ]
    );
    let ev = Table::parse(&ns.kubectl(["get", "events"]).ok());
    assert_eq!(
        ev.columns,
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert!(
        ev.rows
            .iter()
            .any(|r| r[1..5] == ["Normal", "Started", "pod/web-0", "Started container c"]),
        "{ev:?}"
    );
    let ev2 = Table::parse(&ns.kubectl(["get", "events.events.k8s.io"]).ok());
    assert_eq!(ev2.rows.len(), ev.rows.len());
}

#[test]
fn tables_of_cluster_scoped_kinds_have_upstream_columns() {
    let s = Server::shared();
    s.kubectl(["apply", "-f", "-"])
        .stdin(include_str!("fixtures/cluster.yaml"))
        .ok();
    check_columns(|args| s.kubectl(args).ok(), CLUSTER_COLUMNS);
    let get = |r: &str| Table::parse(&s.kubectl(["get", r, "-o", "wide"]).ok());
    let pv = get("persistentvolumes");
    assert_eq!(pv.row("pv1")[1..4], ["5Gi", "RWO", "Retain"]);
    let sc = get("storageclasses");
    assert_eq!(
        sc.row("fast")[1..5],
        ["example.test/fast", "Delete", "Immediate", "false"]
    );
    let pc = get("priorityclasses");
    assert_eq!(pc.cell("high", "VALUE"), "1000");
    assert_eq!(pc.cell("high", "PREEMPTIONPOLICY"), "PreemptLowerPriority");
    assert_eq!(
        get("clusterrolebindings").cell("e2e-reader", "USERS"),
        "alice"
    );
    let nodes = get("nodes");
    assert_eq!(nodes.cell("node-1", "STATUS"), "Unknown");
    assert_eq!(nodes.cell("node-1", "ROLES"), "worker");
    let ns = get("namespaces");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert_eq!(ns.cell(name, "STATUS"), "Active");
    }
    let ic = get("ingressclasses");
    assert_eq!(ic.cell("nginx", "CONTROLLER"), "example.test/ingress");
}

#[test]
fn output_formats() {
    let s = Server::shared();
    let ns = s.namespace("output");
    ns.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {tier: web, team: x}}\ndata: {k: v1}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, labels: {tier: db}}\ndata: {k: v2}\n",
    );
    let yaml = ns.kubectl(["get", "cm", "a", "-o", "yaml"]).ok();
    assert!(yaml.starts_with("apiVersion: v1\n"), "{yaml}");
    assert!(yaml.contains("kind: ConfigMap\n"), "{yaml}");
    assert!(yaml.contains("  k: v1\n"), "{yaml}");
    assert!(
        !yaml.contains("managedFields"),
        "kubectl hides managed fields"
    );

    // Lists select the two (the namespace also has its kube-root-ca.crt).
    let list = json(&ns.kubectl(["get", "cm", "-l", "tier", "-o", "json"]).ok());
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["kind"], "ConfigMap", "items carry kind");

    let out = ns
        .kubectl(["get", "cm", "a", "-o", "jsonpath={.data.k}"])
        .ok();
    assert_eq!(out, "v1");
    let out = ns
        .kubectl([
            "get",
            "cm",
            "-l",
            "tier",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.data.k}{"\n"}{end}"#,
        ])
        .ok();
    assert_eq!(out, "a=v1\nb=v2\n");

    let t = Table::parse(
        &ns.kubectl([
            "get",
            "cm",
            "-l",
            "tier",
            "-o",
            "custom-columns=NAME:.metadata.name,VALUE:.data.k,TIER:.metadata.labels.tier",
        ])
        .ok(),
    );
    assert_eq!(t.columns, ["NAME", "VALUE", "TIER"]);
    assert_eq!(t.rows, [["a", "v1", "web"], ["b", "v2", "db"]]);

    let out = ns.kubectl(["get", "cm", "-l", "tier", "-o", "name"]).ok();
    assert_eq!(out, "configmap/a\nconfigmap/b\n");

    let t = Table::parse(&ns.kubectl(["get", "cm", "--show-labels"]).ok());
    assert_eq!(t.columns, ["NAME", "DATA", "AGE", "LABELS"]);
    assert_eq!(t.cell("a", "LABELS"), "team=x,tier=web");
    let t = Table::parse(&ns.kubectl(["get", "cm", "-L", "tier"]).ok());
    assert_eq!(t.columns, ["NAME", "DATA", "AGE", "TIER"]);
    assert_eq!(t.cell("b", "TIER"), "db");

    let out = ns
        .kubectl([
            "get",
            "cm",
            "-l",
            "tier",
            "--sort-by=.data.k",
            "--no-headers",
            "-o",
            "custom-columns=N:.metadata.name",
        ])
        .ok();
    assert_eq!(out, "a\nb\n");
    let out = ns
        .kubectl([
            "get",
            "cm",
            "-l",
            "tier",
            "--sort-by=.metadata.labels.tier",
            "-o",
            "name",
        ])
        .ok();
    assert_eq!(out, "configmap/b\nconfigmap/a\n");

    // Several kinds and several names.
    let out = ns.kubectl(["get", "cm/a", "cm/b", "-o", "name"]).ok();
    assert_eq!(out, "configmap/a\nconfigmap/b\n");
    let t = Table::parse(&ns.kubectl(["get", "cm", "a", "b"]).ok());
    assert_eq!(t.rows.len(), 2);

    // All namespaces: the NAMESPACE column comes from each row's object.
    let t = Table::parse(&s.kubectl(["get", "cm", "-A", "-l", "team=x"]).ok());
    assert_eq!(t.columns, ["NAMESPACE", "NAME", "DATA", "AGE"]);
    assert_eq!(t.rows[0][..3], [ns.name.as_str(), "a", "1"]);
}

#[test]
fn label_selectors() {
    let s = Server::shared();
    let ns = s.namespace("labels");
    let mut manifest = String::new();
    for i in 1..=6 {
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        let extra = if i == 6 { ", special: \"true\"" } else { "" };
        manifest.push_str(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, labels: {{num: \"{i}\", parity: {parity}{extra}}}}}\n---\n"
        ));
    }
    ns.apply(&manifest);
    let select = |sel: &str| -> Vec<String> {
        let out = ns.kubectl(["get", "cm", "-l", sel, "-o", "name"]).ok();
        out.lines()
            .map(|l| l.trim_start_matches("configmap/").to_owned())
            .collect()
    };
    assert_eq!(select("parity=even"), ["c2", "c4", "c6"]);
    assert_eq!(select("parity==odd"), ["c1", "c3", "c5"]);
    // A negative requirement also matches objects without the label, such as
    // the namespace's CA.
    assert_eq!(
        select("parity!=odd"),
        ["c2", "c4", "c6", "kube-root-ca.crt"]
    );
    assert_eq!(select("num in (1,2,3),parity!=odd"), ["c2"]);
    assert_eq!(
        select("num notin (1,2,3)"),
        ["c4", "c5", "c6", "kube-root-ca.crt"]
    );
    assert_eq!(select("special"), ["c6"]);
    assert_eq!(select("!special,parity=even"), ["c2", "c4"]);
    assert_eq!(select("nosuch=label"), Vec::<String>::new());
    let err = ns.kubectl(["get", "cm", "-l", "a b c"]).fails();
    assert!(err.contains("unable to parse requirement"), "{err}");
    // Selectors work for deletes too.
    let out = ns.kubectl(["delete", "cm", "-l", "parity=odd"]).ok();
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_eq!(select("num"), ["c2", "c4", "c6"]);
}

#[test]
fn field_selectors() {
    let s = Server::shared();
    let ns = s.namespace("fields");
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p1}\nspec: {nodeName: node-a, containers: [{name: c, image: x}]}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: p2}\nspec: {containers: [{name: c, image: x}]}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: s1}\ntype: kubernetes.io/basic-auth\nstringData: {username: u, password: p}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: s2}\nstringData: {k: v}\n",
    );
    let select = |what: &str, sel: &str| -> String {
        ns.kubectl(["get", what, "--field-selector", sel, "-o", "name"])
            .ok()
    };
    assert_eq!(select("pods", "metadata.name=p1"), "pod/p1\n");
    assert_eq!(select("pods", "metadata.name!=p1"), "pod/p2\n");
    assert_eq!(select("pods", "spec.nodeName=node-a"), "pod/p1\n");
    assert_eq!(select("pods", "spec.nodeName="), "pod/p2\n");
    assert_eq!(
        select("pods", "status.phase=Pending,spec.nodeName!=node-a"),
        "pod/p2\n"
    );
    assert_eq!(
        select("secrets", "type=kubernetes.io/basic-auth"),
        "secret/s1\n"
    );
    let all = s
        .kubectl([
            "get",
            "pods",
            "-A",
            "--field-selector",
            &format!("metadata.namespace={}", ns.name),
            "-o",
            "name",
        ])
        .ok();
    assert_eq!(all, "pod/p1\npod/p2\n");
    let err = ns
        .kubectl(["get", "cm", "--field-selector", "data.x=1"])
        .fails();
    assert!(err.contains("field label not supported: data.x"), "{err}");
}

#[test]
fn chunked_lists_follow_continue_tokens() {
    let s = Server::shared();
    let ns = s.namespace("chunks");
    let manifest: String = (1..=12)
        .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i:02}}}\n---\n"))
        .collect();
    ns.apply(&manifest);
    let out = ns
        .kubectl(["get", "cm", "--chunk-size=5", "-o", "name", "-v=6"])
        .run();
    assert!(out.success(), "{out}");
    let names: Vec<&str> = out.stdout.lines().collect();
    let expected: Vec<String> = (1..=12)
        .map(|i| format!("configmap/c{i:02}"))
        .chain(["configmap/kube-root-ca.crt".to_owned()])
        .collect();
    assert_eq!(names, expected);
    let requests: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("GET https://") && l.contains("/configmaps?"))
        .collect();
    assert_eq!(
        requests.len(),
        3,
        "three pages of 5, 5 and 3:\n{}",
        out.stderr
    );
    assert!(requests[0].contains("limit=5") && !requests[0].contains("continue="));
    assert!(requests[1].contains("continue=") && requests[2].contains("continue="));

    // The raw pages: limit, continue, and remainingItemCount.
    let path = format!("/api/v1/namespaces/{}/configmaps?limit=5", ns.name);
    let page = s.get_json(&path);
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert_eq!(page["metadata"]["remainingItemCount"], 8);
    let token = page["metadata"]["continue"].as_str().unwrap();
    let page2 = s.get_json(&format!("{path}&continue={token}"));
    assert_eq!(page2["items"][0]["metadata"]["name"], "c06");
    // A token from another list is refused.
    let r = s.request(Request::new("GET", &format!("{path}&continue=bogus")));
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn describe_shows_objects() {
    let s = Server::shared();
    let ns = s.namespace("describe");
    ns.apply(include_str!("fixtures/web.yaml"));
    let out = ns.kubectl(["describe", "deployment", "web"]).ok();
    assert!(out.contains("Name:                   web"), "{out}");
    assert!(
        out.contains(&format!("Namespace:              {}", ns.name)),
        "{out}"
    );
    assert!(out.contains("Replicas:               2 desired"), "{out}");
    assert!(out.contains("Image:         nginx:1.25"), "{out}");
    let out = ns.kubectl(["describe", "configmap", "web-config"]).ok();
    assert!(out.contains("greeting:\n----\nhello"), "{out}");
    // describe finds a pod's events by field selector on its uid.
    let uid = ns.get("pod/web-0")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    ns.apply(&format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{name: web-0.1}}\n\
         involvedObject: {{kind: Pod, name: web-0, namespace: {}, uid: {uid}, apiVersion: v1}}\n\
         reason: Scheduled\nmessage: assigned to node-1\ntype: Normal\n\
         source: {{component: default-scheduler}}\ncount: 1\n\
         firstTimestamp: '2026-01-01T00:00:00Z'\nlastTimestamp: '2026-01-01T00:00:00Z'\n",
        ns.name
    ));
    let out = ns.kubectl(["describe", "pod", "web-0"]).ok();
    assert!(out.contains("Status:           Pending"), "{out}");
    let events = out.split_once("Events:").map(|(_, e)| e).unwrap_or("");
    assert!(
        events.lines().any(|l| l.contains("Normal  Scheduled")
            && l.contains("default-scheduler  assigned to node-1")),
        "{out}"
    );
    let t = Table::parse(
        &ns.kubectl([
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web-0,reason=Scheduled",
        ])
        .ok(),
    );
    assert_eq!(t.rows.len(), 1, "{t:?}");
    assert_eq!(t.rows[0][3], "pod/web-0");
    let t = Table::parse(&ns.kubectl(["events", "--for", "pod/web-0"]).ok());
    assert_eq!(
        t.rows[0][2..],
        ["Scheduled", "Pod/web-0", "assigned to node-1"]
    );
}

#[test]
fn tables_follow_the_status() {
    let s = Server::shared();
    let ns = s.namespace("status-tables");
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: node-1, containers: [{name: a, image: x}, {name: b, image: x}]}\n---\n\
         apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template: {spec: {restartPolicy: Never, containers: [{name: c, image: x}]}}\n",
    );
    let status = |what: &str, patch: &str| {
        ns.kubectl([
            "patch",
            what,
            "--subresource=status",
            "--type=merge",
            "-p",
            patch,
        ])
        .ok();
    };
    status(
        "pod/p",
        r#"{"status":{"phase":"Running","podIP":"10.244.0.5","podIPs":[{"ip":"10.244.0.5"}],"containerStatuses":[
            {"name":"a","ready":true,"restartCount":3,"image":"x","imageID":"","started":true,"state":{"running":{"startedAt":"2026-01-01T00:00:00Z"}},
             "lastState":{"terminated":{"exitCode":1,"reason":"Error","finishedAt":"2026-01-01T00:00:00Z"}}},
            {"name":"b","ready":false,"restartCount":0,"image":"x","imageID":"","state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}"#,
    );
    let t = Table::parse(&ns.kubectl(["get", "pod", "p", "-o", "wide"]).ok());
    assert_eq!(t.row("p")[1..3], ["1/2", "CrashLoopBackOff"]);
    let restarts = t.cell("p", "RESTARTS");
    assert!(
        restarts.starts_with("3 (") && restarts.ends_with(" ago)"),
        "{restarts}"
    );
    assert_eq!(t.cell("p", "IP"), "10.244.0.5");
    assert_eq!(t.cell("p", "NODE"), "node-1");

    status(
        "job/j",
        r#"{"status":{"startTime":"2026-01-01T00:00:00Z","completionTime":"2026-01-01T00:00:30Z","succeeded":1,
            "conditions":[{"type":"Complete","status":"True","lastTransitionTime":"2026-01-01T00:00:30Z"}]}}"#,
    );
    let t = Table::parse(&ns.kubectl(["get", "job", "j"]).ok());
    assert_eq!(t.row("j")[1..4], ["Complete", "1/1", "30s"]);

    let node = format!("{}-node", ns.name);
    s.kubectl(["apply", "-f", "-"])
        .stdin(format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n"
        ))
        .ok();
    s.kubectl([
        "patch",
        "node",
        &node,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"ok",
            "lastHeartbeatTime":"2026-01-01T00:00:00Z","lastTransitionTime":"2026-01-01T00:00:00Z"}],
            "addresses":[{"type":"InternalIP","address":"192.168.1.5"}],
            "nodeInfo":{"kubeletVersion":"v1.32.0","osImage":"Debian GNU/Linux 12","kernelVersion":"6.1.0","containerRuntimeVersion":"runc://1.1.5",
              "architecture":"amd64","operatingSystem":"linux","bootID":"","machineID":"","systemUUID":"","kubeProxyVersion":""}}}"#,
    ])
    .ok();
    let out = s.kubectl(["cordon", &node]).ok();
    assert_eq!(out.trim(), format!("node/{node} cordoned"));
    let t = Table::parse(&s.kubectl(["get", "node", &node, "-o", "wide"]).ok());
    assert_eq!(t.cell(&node, "STATUS"), "Ready,SchedulingDisabled");
    assert_eq!(t.cell(&node, "VERSION"), "v1.32.0");
    assert_eq!(t.cell(&node, "INTERNAL-IP"), "192.168.1.5");
    assert_eq!(t.cell(&node, "OS-IMAGE"), "Debian GNU/Linux 12");
    assert_eq!(t.cell(&node, "CONTAINER-RUNTIME"), "runc://1.1.5");
    s.kubectl(["uncordon", &node]).ok();
    let t = Table::parse(&s.kubectl(["get", "node", &node]).ok());
    assert_eq!(t.cell(&node, "STATUS"), "Ready");
}

#[test]
fn get_reads_subresources() {
    let s = Server::shared();
    let ns = s.namespace("get-subresource");
    ns.apply(include_str!("fixtures/web.yaml"));
    let out = ns
        .kubectl([
            "get",
            "deployment",
            "web",
            "--subresource=scale",
            "-o",
            "jsonpath={.kind} {.spec.replicas} {.status.selector}",
        ])
        .ok();
    assert_eq!(out, "Scale 2 app=web");
    // The Scale's own table, as Kubernetes prints it.
    let t = Table::parse(
        &ns.kubectl(["get", "deployment", "web", "--subresource=scale"])
            .ok(),
    );
    assert_eq!(t.columns, ["NAME", "DESIRED", "AVAILABLE", "AGE"]);
    assert_eq!(t.row("web")[1..3], ["2", "0"]);
    let out = ns
        .kubectl([
            "get",
            "deployment",
            "web",
            "--subresource=status",
            "-o",
            "jsonpath={.kind} {.metadata.name}",
        ])
        .ok();
    assert_eq!(out, "Deployment web");
}

#[test]
fn lists_longer_than_kubectls_default_page() {
    let s = Server::shared();
    let ns = s.namespace("long-list");
    let path = format!("/api/v1/namespaces/{}/configmaps", ns.name);
    for i in 0..520 {
        let body =
            format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c{i:03}"}}}}"#);
        let r = s.request(Request::new("POST", &path).body("application/json", body));
        assert_eq!(r.status, 201, "{}", r.text());
    }
    // kubectl pages by 500.
    let out = ns.kubectl(["get", "cm", "--no-headers", "-v=6"]).run();
    assert!(out.success(), "{out}");
    // And the namespace's kube-root-ca.crt.
    assert_eq!(out.stdout.lines().count(), 521);
    let pages = out
        .stderr
        .lines()
        .filter(|l| l.contains("/configmaps?") && l.contains("limit=500"))
        .count();
    assert_eq!(pages, 2, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[519].starts_with("c519 "), "{}", lines[519]);
    assert!(
        lines[520].starts_with("kube-root-ca.crt "),
        "{}",
        lines[520]
    );
    // Without a limit, one list holds them all.
    let list = s.get_json(&path);
    assert_eq!(list["items"].as_array().unwrap().len(), 521);
    // And a collection delete removes them all (the CA comes back).
    let r = s.request(Request::new("DELETE", &path));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        without_root_ca(&ns.kubectl(["get", "cm", "-o", "name"]).ok()),
        ""
    );
}

#[test]
fn metadata_only_requests_get_partial_object_metadata() {
    let s = Server::shared();
    let ns = s.namespace("partial");
    ns.kubectl(["create", "configmap", "c", "--from-literal=k=v"])
        .ok();
    let accept = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    let list_accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    let base = format!("/api/v1/namespaces/{}/configmaps", ns.name);
    let get =
        |path: &str, accept: &str| s.request(Request::new("GET", path).header("Accept", accept));

    let r = get(&format!("{base}/c"), accept);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some(accept));
    let one = r.json();
    assert_eq!(one["kind"], "PartialObjectMetadata");
    assert_eq!(one["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(one["metadata"]["name"], "c");
    assert!(one["metadata"]["resourceVersion"].is_string());
    assert!(one.get("data").is_none(), "{one:#}");

    let r = get(&base, list_accept);
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert!(list["metadata"]["resourceVersion"].is_string());
    // `c` and the namespace's kube-root-ca.crt.
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0], one);

    let r = get(&format!("{base}?watch=true&timeoutSeconds=1"), accept);
    assert_eq!(r.status, 200, "{}", r.text());
    let events: Vec<serde_json::Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // `c` and the namespace's kube-root-ca.crt, in name order.
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"], one);

    // Plain JSON is still the whole object.
    let r = get(&format!("{base}/c"), "application/json");
    assert_eq!(r.json()["data"]["k"], "v");
}
