//! The real `gantry` binary, started on a free loopback port in a temporary
//! directory.
//!
//! Each [`Server`] owns one directory holding the data directory, kubectl's
//! cache (kubectl caches discovery and the server version per host and
//! port, so every server gets its own), a `TMPDIR` for Python (whose
//! dynamic client caches discovery there) and scratch files. Dropping the
//! server kills gantry and removes the directory; gantry is also started
//! with a parent-death signal, so a killed test run takes it along.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::http::{self, Auth, Request, Response};
use super::kubectl::Kubectl;
use super::node::{self, Slot};
use super::python::Python;

/// How long gantry may take to answer `/readyz` after it is started.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// How long gantry may take to exit after SIGINT.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(10);

/// Which gantry command runs the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `gantry server --data-dir D --listen 127.0.0.1:P`.
    Server,
    /// `gantry up --data-dir D --listen 127.0.0.1:P`, the README's command,
    /// with node flags that keep it apart from other Gantrys.
    Up,
}

/// What to prepare before the first start.
#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    /// Contents of `<data-dir>/tokens.csv`, the static token file.
    pub tokens: Option<String>,
    /// `--store etcd://...`; the embedded store when `None`.
    pub store: Option<String>,
    /// `gantry server --controllers`: the scheduler and controllers too.
    pub controllers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::Server,
            tokens: None,
            store: None,
            controllers: false,
        }
    }
}

/// A running gantry.
pub struct Server {
    dir: tempfile::TempDir,
    /// The loopback port gantry listens on.
    port: AtomicU16,
    mode: Mode,
    store: Option<String>,
    controllers: bool,
    child: Mutex<Option<Child>>,
    launcher: testkit::Launcher,
    namespaces: Mutex<HashSet<String>>,
    /// The node's share of the machine, in `Up` mode.
    slot: Option<Slot>,
    agent_port: u16,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr())
            .field("dir", &self.dir.path())
            .finish()
    }
}

static SHARED: OnceLock<Server> = OnceLock::new();
static SHARED_NODE: OnceLock<Server> = OnceLock::new();

impl Server {
    /// The server tests in this process share; each test works in its own
    /// namespace. It is stopped and its directory removed when the process
    /// exits.
    pub fn shared() -> &'static Server {
        SHARED.get_or_init(|| {
            let server = Server::start();
            register_exit_cleanup();
            server
        })
    }

    /// The node server (`gantry up`, images loaded) tests in this process
    /// share; each test works in its own namespace.
    pub fn node() -> &'static Server {
        SHARED_NODE.get_or_init(|| {
            let server = Server::start_with(Options {
                mode: Mode::Up,
                ..Options::default()
            });
            register_exit_cleanup();
            server.import_test_images();
            server
        })
    }

    /// Builds the offline test images (busybox, nginx) and loads them into
    /// the node.
    pub fn import_test_images(&self) {
        let dir = self.dir.path().join("images");
        let files = testkit::images::write_all(&dir).expect("building the test images");
        for f in files {
            let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
                .args(["image", "import", "--data-dir"])
                .arg(self.data_dir())
                .arg(&f)
                .output()
                .expect("running gantry image import");
            assert!(
                out.status.success(),
                "gantry image import {}: {}",
                f.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Starts a private `gantry server`.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// Starts a private gantry as `options` say.
    pub fn start_with(options: Options) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gantry-e2e-")
            .tempdir()
            .expect("creating a temporary directory");
        for sub in ["data", "kubectl-cache", "tmp", "files"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("creating test directories");
        }
        if let Some(tokens) = &options.tokens {
            std::fs::write(dir.path().join("data/tokens.csv"), tokens).expect("writing tokens");
        }
        let slot = (options.mode == Mode::Up).then(Slot::claim);
        let server = Self {
            port: AtomicU16::new(free_port()),
            slot,
            agent_port: free_port(),
            mode: options.mode,
            store: options.store,
            controllers: options.controllers,
            child: Mutex::new(None),
            launcher: testkit::Launcher::new("gantry-launcher").expect("launcher thread"),
            namespaces: Mutex::default(),
            dir,
        };
        // A free port is found by binding port 0 and letting go, so another
        // process can take it before gantry binds it; then try another.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match server.launch() {
                Ok(()) => return server,
                Err(e) if attempt < 3 && e.contains("Address already in use") => {
                    server.port.store(free_port(), Ordering::Relaxed);
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Starts the gantry process and waits until it is ready.
    fn launch(&self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the server log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
        command
            .arg(match self.mode {
                Mode::Server => "server",
                Mode::Up => "up",
            })
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(self.addr().to_string())
            .args(self.store.iter().flat_map(|s| ["--store", s.as_str()]))
            .args(self.controllers.then_some("--controllers"))
            .args(self.node_flags())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicating the log file"))
            .stderr(log);
        let child = self
            .launcher
            .spawn(command)
            .map_err(|e| format!("cannot run gantry: {e:#}"))?;
        *self.child.lock().unwrap() = Some(child);
        self.wait_ready().map_err(|e| {
            self.kill();
            format!(
                "gantry on {} did not become ready: {e}\n--- {} ---\n{}",
                self.addr(),
                self.log_path().display(),
                self.log()
            )
        })?;
        // Keep a copy of the kubeconfig this start wrote, so tests can
        // compare it with the next start's.
        std::fs::copy(self.data_dir().join("admin.kubeconfig"), self.kubeconfig())
            .map_err(|e| format!("copying the admin kubeconfig: {e}"))?;
        Ok(())
    }

    /// `gantry up`'s node flags: this server's slot, ports and directories.
    fn node_flags(&self) -> Vec<String> {
        let Some(slot) = &self.slot else {
            return Vec::new();
        };
        vec![
            "--node-name".into(),
            self.node_name(),
            "--agent-listen".into(),
            format!("127.0.0.1:{}", self.agent_port),
            "--pod-cidr".into(),
            slot.pod_cidr(),
            "--cluster-cidr".into(),
            node::CLUSTER_CIDR.into(),
            "--service-cluster-ip-range".into(),
            slot.service_cidr(),
            "--load-balancer-pool".into(),
            slot.load_balancer_pool(),
            // Servers of one machine each have their own overlay.
            "--vxlan-vni".into(),
            (100 + slot.n).to_string(),
            "--bridge".into(),
            slot.bridge(),
            "--state-dir".into(),
            self.state_dir().display().to_string(),
            "--cgroup-parent".into(),
            slot.cgroup_parent(),
            "--ingress-http-port".into(),
            slot.ingress_ports().0.to_string(),
            "--ingress-https-port".into(),
            slot.ingress_ports().1.to_string(),
        ]
    }

    /// The node's slot on this machine (`Up` mode).
    pub fn slot(&self) -> &node::Slot {
        self.slot.as_ref().expect("a node server")
    }

    /// The ports the node's Ingress proxy serves HTTP and HTTPS on (`Up` mode).
    pub fn ingress_ports(&self) -> (u16, u16) {
        self.slot.as_ref().expect("a node server").ingress_ports()
    }

    /// The node's name (`Up` mode).
    pub fn node_name(&self) -> String {
        format!("e2e-node-{}", self.slot.as_ref().map_or(0, |s| s.n))
    }

    /// The node's volatile state directory (`Up` mode).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// What a pod left on the machine after its deletion: processes,
    /// mounts, cgroups, its sandbox, its veth.
    pub fn pod_leftovers(&self, pod_uid: &str) -> Vec<String> {
        let slot = self.slot.as_ref().expect("a node server");
        node::leftovers(slot, &[&self.data_dir()], &self.state_dir(), pod_uid)
    }

    /// Kills gantry and removes what its node left on the machine.
    fn kill_and_sweep(&self) {
        self.kill();
        if let Some(slot) = &self.slot {
            node::sweep(slot, &[&self.data_dir()], &self.state_dir());
        }
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = self.child.lock().unwrap().as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("gantry exited with {status}"));
            }
            if let Ok(ca) = std::fs::read_to_string(self.data_dir().join("pki/ca.crt"))
                && let Ok(r) = http::send_tls(
                    self.addr(),
                    &ca,
                    &Auth::Anonymous,
                    &Request::new("GET", "/readyz"),
                )
                && r.status == 200
                // `gantry up` is ready once its node is, which it says.
                && (self.mode != Mode::Up || self.log().contains("gantry: ready in"))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready within {READY_WITHIN:?}"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Kills gantry with SIGKILL, as a crash would.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops gantry as Ctrl-C would (SIGINT) and waits for it to exit;
    /// returns whether it exited successfully.
    pub fn stop(&self) -> bool {
        let Some(mut child) = self.child.lock().unwrap().take() else {
            return true;
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("gantry did not exit within {STOP_WITHIN:?} of SIGINT");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Starts gantry again on the same port and data directory.
    pub fn restart(&self) {
        self.stop();
        if let Err(e) = self.launch() {
            panic!("{e}");
        }
    }

    /// The address gantry listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port.load(Ordering::Relaxed)))
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr())
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The admin kubeconfig gantry wrote (a copy taken when it started).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// kubectl's cache directory for this server.
    pub fn kubectl_cache(&self) -> PathBuf {
        self.dir.path().join("kubectl-cache")
    }

    /// The `TMPDIR` of Python processes.
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// Where gantry's output goes.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("gantry.log")
    }

    /// Everything gantry printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Writes a scratch file and returns its path.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join("files").join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating a scratch directory");
        }
        std::fs::write(&path, contents).expect("writing a scratch file");
        path
    }

    /// The scratch directory.
    pub fn files_dir(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> String {
        read(&self.data_dir().join("pki/ca.crt"))
    }

    /// The admin's credentials, as in the kubeconfig.
    pub fn admin(&self) -> Auth {
        Auth::Certificate {
            cert_pem: read(&self.data_dir().join("pki/admin.crt")),
            key_pem: read(&self.data_dir().join("pki/admin.key")),
        }
    }

    /// Sends a raw HTTPS request as the admin.
    pub fn request(&self, request: Request) -> Response {
        self.request_as(&self.admin(), request)
    }

    /// Sends a raw HTTPS request with other credentials.
    pub fn request_as(&self, auth: &Auth, request: Request) -> Response {
        let what = format!("{} {}", request.method, request.path);
        http::send_tls(self.addr(), &self.ca_pem(), auth, &request)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// A kubectl command against this server.
    pub fn kubectl<I, S>(&self, args: I) -> Kubectl
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Kubectl::new(self).args(args)
    }

    /// A Python script from `tests/python/` against this server.
    pub fn python(&self, script: &str) -> Python {
        Python::new(self, script)
    }

    /// Creates a namespace for one test, named after `prefix` and unique in
    /// this server.
    pub fn namespace(&self, prefix: &str) -> Namespace<'_> {
        let name = {
            let mut used = self.namespaces.lock().unwrap();
            let mut name = prefix.to_owned();
            let mut n = 1;
            while !used.insert(name.clone()) {
                n += 1;
                name = format!("{prefix}-{n}");
            }
            name
        };
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let r = self.request(
            Request::new("POST", "/api/v1/namespaces").body("application/json", body.to_string()),
        );
        assert_eq!(r.status, 201, "creating namespace {name}: {}", r.text());
        // As Kubernetes' e2e framework waits for a new namespace's service
        // account: the server adds `default` and `kube-root-ca.crt` a moment
        // after the namespace, and tests that list a namespace expect them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for path in [
            format!("/api/v1/namespaces/{name}/serviceaccounts/default"),
            format!("/api/v1/namespaces/{name}/configmaps/kube-root-ca.crt"),
        ] {
            while self.request(Request::new("GET", &path)).status != 200 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{path} did not appear within 10 s of its namespace"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        Namespace { server: self, name }
    }

    /// GETs a path as the admin and returns the JSON (asserting 200).
    pub fn get_json(&self, path: &str) -> Value {
        let r = self.request(Request::new("GET", path));
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Kill gantry before its directory goes, so it never writes into a
        // directory being removed; the `TempDir` then removes it.
        self.kill_and_sweep();
    }
}

/// A namespace one test works in.
#[derive(Debug)]
pub struct Namespace<'a> {
    pub server: &'a Server,
    pub name: String,
}

impl Namespace<'_> {
    /// A kubectl command with `-n <namespace>`.
    pub fn kubectl<I, S>(&self, args: I) -> Kubectl
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.server.kubectl(["-n", &self.name]).args(args)
    }

    /// `kubectl apply -f -` of `yaml` in this namespace; returns stdout.
    pub fn apply(&self, yaml: &str) -> String {
        self.kubectl(["apply", "-f", "-"]).stdin(yaml).ok()
    }

    /// `kubectl get <what> -o json` in this namespace.
    pub fn get(&self, what: &str) -> Value {
        let out = self.kubectl(["get", what, "-o", "json"]).ok();
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("kubectl printed no JSON ({e}): {out}"))
    }

    /// Whether `kubectl get <what>` finds the object.
    pub fn exists(&self, what: &str) -> bool {
        let out = self
            .kubectl(["get", what, "-o", "name", "--ignore-not-found"])
            .ok();
        !out.trim().is_empty()
    }
}

/// Stops the shared server when the process exits. Test harnesses never
/// drop statics, and under `cargo test` every test of the binary runs in
/// one process, so the shared server lives until `exit`.
#[allow(unsafe_code)]
fn register_exit_cleanup() {
    extern "C" fn cleanup() {
        let _ = std::panic::catch_unwind(|| {
            for server in [SHARED.get(), SHARED_NODE.get()].into_iter().flatten() {
                server.kill_and_sweep();
                let _ = std::fs::remove_dir_all(server.dir.path());
                // Statics are never dropped, so neither is their slot.
                if let Some(slot) = &server.slot {
                    slot.release();
                }
            }
        });
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `atexit` only records the function pointer; `cleanup` is
        // a plain `extern "C"` function that catches every panic, so no
        // unwinding crosses the C boundary when `exit` calls it.
        let rc = unsafe { libc::atexit(cleanup) };
        assert_eq!(rc, 0, "atexit failed");
    });
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
