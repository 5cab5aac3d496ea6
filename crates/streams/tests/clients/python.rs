//! The official Python client (`kubernetes==32.0.1`): its `stream` (exec
//! over WebSocket with `v4.channel.k8s.io`) and `portforward` (the v4
//! channel protocol with the port number first on each channel).
//!
//! The interpreter is `$GANTRY_PYTHON`, or the virtual environment
//! `./dev test` creates at `/var/cache/gantry/venv`.

use std::path::PathBuf;
use std::time::Duration;

use crate::kubectl::EchoServer;
use crate::server::TestServer;

fn interpreter() -> PathBuf {
    let path = std::env::var_os("GANTRY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/gantry/venv/bin/python"));
    assert!(
        path.exists(),
        "no Python with the Kubernetes client at {}: run `./dev test` or set GANTRY_PYTHON",
        path.display()
    );
    path
}

async fn run(script: &str, args: &[String]) -> serde_json::Value {
    let script = package_dir().join("tests/clients/python").join(script);
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(interpreter())
            .arg(&script)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the script did not finish in 90 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed: {}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr),
        stdout
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_exec() {
    let server = TestServer::start().await;
    let seen = run("exec.py", &[server.kubeconfig().display().to_string()]).await;
    assert_eq!(seen["stdout"], "out\n");
    assert_eq!(seen["stderr"], "err\n");
    assert_eq!(seen["success_code"], 0);
    assert_eq!(seen["failure_code"], 3);
    assert_eq!(seen["interactive"], "got-abc\n");
    assert_eq!(seen["preloaded"], "preloaded\n");
    assert!(
        server.protocols().iter().all(|p| p == "v4.channel.k8s.io"),
        "{:?}",
        server.protocols()
    );
    server.wait_idle(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_port_forward() {
    let server = TestServer::start().await;
    let (a, b) = (EchoServer::start().await, EchoServer::start().await);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let seen = run(
        "portforward.py",
        &[
            server.kubeconfig().display().to_string(),
            a.port.to_string(),
            b.port.to_string(),
            closed.to_string(),
        ],
    )
    .await;
    assert_eq!(seen[a.port.to_string()], true, "{seen}");
    assert_eq!(seen[b.port.to_string()], true, "{seen}");
    assert_eq!(seen["closed_eof"], true, "{seen}");
    let error = seen["closed_error"].as_str().unwrap();
    assert!(
        error.contains(&format!("error forwarding port {closed}")),
        "{error}"
    );
    assert_eq!(server.protocols(), ["v4.channel.k8s.io"]);
    server.wait_idle(Duration::from_secs(10)).await;
}

/// The package's directory: the one the test runner names (cargo and nextest set
/// `CARGO_MANIFEST_DIR` when they run a test), else the one it was built from. A build
/// shared by checkouts at other paths (one `CARGO_TARGET_DIR`) may have been made in
/// another checkout.
fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    )
}
