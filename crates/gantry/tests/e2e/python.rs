//! The official Python client (`kubernetes==32.0.1`) against gantry: the
//! scripts in `crates/gantry/tests/python/` assert what they see and print
//! `ok` when they get to the end.

use crate::harness::*;

#[track_caller]
fn run_script(server: &Server, script: &str, args: &[&str]) {
    let out = server.python(script).args(args).ok();
    assert_eq!(
        out.lines().last(),
        Some("ok"),
        "{script} did not finish:\n{out}"
    );
}

#[test]
fn python_crud_and_errors() {
    let s = Server::shared();
    let ns = s.namespace("py-crud");
    run_script(s, "crud.py", &[&ns.name]);
}

#[test]
fn python_lists_selectors_and_pages() {
    let s = Server::shared();
    let ns = s.namespace("py-lists");
    run_script(s, "lists.py", &[&ns.name]);
}

#[test]
fn python_watch() {
    let s = Server::shared();
    let ns = s.namespace("py-watch");
    run_script(s, "watching.py", &[&ns.name]);
}

#[test]
fn python_models_of_every_kind() {
    let s = Server::shared();
    let ns = s.namespace("py-models");
    let kinds = include_str!("fixtures/kinds.yaml")
        .replace("namespace: t1", &format!("namespace: {}", ns.name));
    ns.apply(&kinds);
    s.kubectl(["apply", "-f", "-"])
        .stdin(include_str!("fixtures/cluster.yaml"))
        .ok();
    run_script(s, "models.py", &[&ns.name]);
}

#[test]
fn python_dynamic_client() {
    let s = Server::shared();
    let ns = s.namespace("py-dynamic");
    run_script(s, "dynamic_client.py", &[&ns.name]);
}

#[test]
fn python_bearer_token() {
    let s = Server::start_with(Options {
        tokens: Some("py-token,bob,2002\n".into()),
        ..Options::default()
    });
    let ns = s.namespace("py-token");
    let ca = s.data_dir().join("pki/ca.crt");
    run_script(
        &s,
        "bearer.py",
        &[&ns.name, "py-token", ca.to_str().unwrap(), &s.url()],
    );
    assert!(ns.exists("cm/by-token"));
}

#[test]
fn python_namespaces_dry_runs_limits_and_events() {
    let s = Server::shared();
    let ns = s.namespace("py-ns");
    run_script(s, "namespaces.py", &[&ns.name]);
}
