//! Watches through kubectl: `get -w` streaming table rows, watch events,
//! and the reflector-based commands (`wait`, `rollout status`,
//! `delete` waiting for the object to go).

use crate::harness::*;

fn cm(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: '{value}', n: '{value}'}}\n"
    )
}

#[test]
fn get_watch_streams_rows_of_a_list() {
    let s = Server::shared();
    let ns = s.namespace("watch-list");
    ns.apply(&cm("first", "1"));
    let mut watch = ns.kubectl(["get", "cm", "-w"]).spawn();
    watch.expect_line(WAIT, |l| l.starts_with("NAME") && l.contains("DATA"));
    watch.expect_line(WAIT, |l| l.starts_with("first "));

    ns.apply(&cm("second", "2"));
    let row = watch.expect_line(WAIT, |l| l.starts_with("second "));
    assert!(row.split_whitespace().nth(1) == Some("2"), "{row}");

    ns.kubectl(["label", "cm", "first", "seen=yes"]).ok();
    watch.expect_line(WAIT, |l| l.starts_with("first "));

    ns.kubectl(["delete", "cm", "second"]).ok();
    watch.expect_line(WAIT, |l| l.starts_with("second "));
    // Only the first event carried column definitions: one header.
    let headers = watch
        .seen()
        .iter()
        .filter(|l| l.starts_with("NAME"))
        .count();
    assert_eq!(headers, 1, "{:?}", watch.seen());
}

#[test]
fn get_watch_of_one_object_shows_its_changes() {
    let s = Server::shared();
    let ns = s.namespace("watch-one");
    ns.apply(&cm("only", "1"));
    ns.apply(&cm("other", "1"));
    let mut watch = ns
        .kubectl(["get", "cm", "only", "-w", "-v=6"])
        .args(["-o", "custom-columns=NAME:.metadata.name,K:.data.k"])
        .spawn();
    watch.expect_line(WAIT, |l| l.starts_with("only") && l.ends_with(" 1"));
    // The watch is open once kubectl logs its answer.
    watch.expect_err_line(WAIT, |l| l.contains("watch=true") && l.contains(" 200 OK"));
    // kubectl drops the first watch event, taking it for the synthetic
    // ADDED a watch from resourceVersion 0 starts with; were there none,
    // it would drop this change instead.
    ns.kubectl(["patch", "cm", "only", "-p", r#"{"data":{"k":"2"}}"#])
        .ok();
    watch.expect_line(WAIT, |l| l.starts_with("only") && l.ends_with(" 2"));
    ns.kubectl(["patch", "cm", "other", "-p", r#"{"data":{"k":"9"}}"#])
        .ok();
    ns.kubectl(["patch", "cm", "only", "-p", r#"{"data":{"k":"3"}}"#])
        .ok();
    watch.expect_line(WAIT, |l| l.starts_with("only") && l.ends_with(" 3"));
    assert!(
        watch.seen().iter().all(|l| !l.starts_with("other")),
        "{:?}",
        watch.seen()
    );
}

#[test]
fn watch_events_are_typed() {
    let s = Server::shared();
    let ns = s.namespace("watch-events");
    let mut watch = ns
        .kubectl([
            "get",
            "cm",
            "-w",
            "--output-watch-events",
            "-o",
            r#"jsonpath={.type} {.object.metadata.name} {.object.data.k}{"\n"}"#,
        ])
        .spawn();
    // Nothing exists yet: the first event is ours.
    ns.apply(&cm("ev", "1"));
    watch.expect_line(WAIT, |l| l == "ADDED ev 1");
    ns.kubectl(["patch", "cm", "ev", "-p", r#"{"data":{"k":"2"}}"#])
        .ok();
    watch.expect_line(WAIT, |l| l == "MODIFIED ev 2");
    ns.kubectl(["delete", "cm", "ev"]).ok();
    watch.expect_line(WAIT, |l| l == "DELETED ev 2");
}

#[test]
fn watch_ends_when_its_timeout_runs_out() {
    let s = Server::shared();
    let ns = s.namespace("watch-timeout");
    ns.apply(&cm("a", "1"));
    let watch = ns
        .kubectl(["get", "cm", "-w", "--request-timeout=2s", "-o", "name"])
        .spawn();
    let (status, lines) = watch.wait(WAIT);
    assert!(lines.contains(&"configmap/a".to_owned()), "{lines:?}");
    // kubectl ends the watch itself; what matters is that it ends.
    let _ = status;
}

#[test]
fn wait_for_a_jsonpath_value_and_for_deletion() {
    let s = Server::shared();
    let ns = s.namespace("wait");
    ns.apply(&cm("w", "1"));
    let waiter = ns
        .kubectl([
            "wait",
            "cm/w",
            "--for=jsonpath={.data.k}=2",
            "--timeout=30s",
        ])
        .spawn();
    ns.kubectl(["patch", "cm", "w", "-p", r#"{"data":{"k":"2"}}"#])
        .ok();
    let (status, lines) = waiter.wait(WAIT);
    assert!(status.success(), "{lines:?}");
    assert_eq!(lines, ["configmap/w condition met"]);

    let waiter = ns
        .kubectl(["wait", "cm/w", "--for=delete", "--timeout=30s"])
        .spawn();
    ns.kubectl(["delete", "cm", "w", "--wait=false"]).ok();
    let (status, lines) = waiter.wait(WAIT);
    assert!(status.success(), "{lines:?}");
}

#[test]
fn wait_for_a_condition_set_through_the_status_subresource() {
    let s = Server::shared();
    let ns = s.namespace("wait-condition");
    ns.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]}\n");
    let waiter = ns
        .kubectl(["wait", "pod/p", "--for=condition=Ready", "--timeout=30s"])
        .spawn();
    let status = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    ns.kubectl([
        "patch",
        "pod",
        "p",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ])
    .ok();
    let (code, lines) = waiter.wait(WAIT);
    assert!(code.success(), "{lines:?}");
    assert_eq!(lines, ["pod/p condition met"]);
    let t = Table::parse(&ns.kubectl(["get", "pod", "p"]).ok());
    assert_eq!(t.cell("p", "STATUS"), "Running");
}

#[test]
fn rollout_status_follows_the_deployment_status() {
    let s = Server::shared();
    let ns = s.namespace("rollout-status");
    ns.apply(include_str!("fixtures/web.yaml"));
    let status = ns
        .kubectl(["rollout", "status", "deployment/web", "--timeout=30s"])
        .spawn();
    // Play the deployment controller: report both replicas updated and
    // available for the current generation.
    let patch = r#"{"status":{"observedGeneration":1,"replicas":2,"updatedReplicas":2,"readyReplicas":2,"availableReplicas":2}}"#;
    ns.kubectl([
        "patch",
        "deployment",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    ])
    .ok();
    let (code, lines) = status.wait(WAIT);
    assert!(code.success(), "{lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some(r#"deployment "web" successfully rolled out"#)
    );
    let t = Table::parse(&ns.kubectl(["get", "deployment", "web"]).ok());
    assert_eq!(t.row("web")[1..4], ["2/2", "2", "2"]);
}
