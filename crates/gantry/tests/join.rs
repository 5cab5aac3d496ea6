//! Joining a second machine, for real: `gantry up` on this machine, `gantry
//! token create`, and `gantry agent` on "another host", a network namespace
//! linked to this one by a veth pair, so the agent reaches the server (and
//! the server the agent) over that link only. Then kubectl sees two Ready
//! nodes and reaches a pod on the second one through the server's proxy.
//! Also: wrong, expired and tampered tokens are refused, and a server whose
//! CA does not match the token never sees the token.
//!
//! Needs root (network namespaces, bridges, nftables, cgroups, runc), and
//! `ip`, `nsenter`, `runc`, `kubectl` on the PATH. Everything a test makes
//! is named after the test process's id and removed by [`World`]'s drop,
//! even when the test fails.

#[allow(dead_code)]
#[path = "e2e/harness/process.rs"]
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process::Output;
use serde_json::Value;

const GANTRY: &str = env!("CARGO_BIN_EXE_gantry");
/// How long one command (kubectl, a refused join) may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(90);
/// How long a server or agent may take to say it is up.
const START_WITHIN: Duration = Duration::from_secs(60);

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the join test needs root (network namespaces, bridges, cgroups, runc)"
    );
}

/// Runs a command to completion within [`COMMAND_LIMIT`].
fn run(program: &str, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    command.args(args).env("RUST_BACKTRACE", "0");
    process::run(command, None, COMMAND_LIMIT)
}

/// Runs `ip` for setup, failing the test when it fails.
#[track_caller]
fn ip(args: &str) {
    let out = run("ip", &args.split_whitespace().collect::<Vec<_>>());
    assert!(out.success(), "{out}");
}

/// A free TCP port on every address.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|l| l.local_addr())
        .expect("binding port 0")
        .port()
}

/// A long-running gantry (server or agent) whose output goes to a log file.
/// Dropping it kills it.
struct Daemon {
    child: Child,
    log: PathBuf,
    what: String,
}

impl Daemon {
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let what = process::describe(&command);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("opening a log file");
        command
            .env("RUST_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("duplicating a log file"))
            .stderr(file);
        testkit::set_parent_death_signal(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
        Self { child, log, what }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `text`.
    #[track_caller]
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if self.log().lines().any(|l| l.contains(text)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "`{}` exited ({status}) before saying {text:?}:\n{}",
                    self.what,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "`{}` did not say {text:?} within {START_WITHIN:?}:\n{}",
                self.what,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it as Ctrl-C does and waits for it to exit.
    fn interrupt(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("`{}` did not stop within 20s of SIGINT", self.what);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One node's share of the machine.
struct NodeSpec {
    name: String,
    bridge: String,
    /// The range the node asks for (`None`: the cluster assigns one), and
    /// the one it is to end up with either way.
    asks: Option<String>,
    pod_cidr: String,
    /// The overlay's network identifier (unique on this machine) and the
    /// node's address on the link between the hosts.
    vni: u32,
    node_ip: String,
    state_dir: PathBuf,
    cgroup_parent: String,
    data_dir: PathBuf,
    /// The host's network namespace; `None` for this machine (node a).
    netns: Option<String>,
}

impl NodeSpec {
    /// The node flags of `gantry up` and `gantry agent`.
    fn flags(&self, cluster_cidr: &str, agent_port: u16) -> Vec<String> {
        let mut flags: Vec<String> = match &self.asks {
            Some(range) => vec!["--pod-cidr".into(), range.clone()],
            None => Vec::new(),
        };
        flags.extend(
            [
                "--node-name",
                &self.name,
                "--agent-listen",
                &format!("0.0.0.0:{agent_port}"),
                "--node-ip",
                &self.node_ip,
                "--vxlan-vni",
                &self.vni.to_string(),
                "--cluster-cidr",
                cluster_cidr,
                "--bridge",
                &self.bridge,
                "--state-dir",
                &self.state_dir.display().to_string(),
                "--cgroup-parent",
                &self.cgroup_parent,
                "--data-dir",
                &self.data_dir.display().to_string(),
            ]
            .map(str::to_owned),
        );
        if self.netns.is_none() {
            // 80 and 443 of this machine may be taken; a host of its own has them free.
            flags.extend(
                ["--ingress-http-port", "0", "--ingress-https-port", "0"].map(str::to_owned),
            );
        }
        flags
    }
}

/// Everything one test makes: a temporary directory, the "other hosts" b
/// and c and a machine outside the cluster (network namespaces), the link
/// between them and this machine (a bridge in a namespace of its own, the
/// switch, with a veth pair to each), the nodes' bridges, cgroups and state,
/// and the gantry processes. Dropping it removes it all.
struct World {
    dir: tempfile::TempDir,
    /// Host b's network namespace.
    netns: String,
    /// The switch's network namespace, and the outside machine's.
    switch: String,
    outside: String,
    veth_host: String,
    /// This machine's address on the link, and host b's.
    host_ip: String,
    peer_ip: String,
    /// The outside machine's address on the link.
    outside_ip: String,
    /// Addresses of the link for load balancers: `FIRST-LAST`.
    load_balancer_pool: String,
    cluster_cidr: String,
    a: NodeSpec,
    b: NodeSpec,
    c: NodeSpec,
    daemons: Vec<Daemon>,
}

impl World {
    fn new() -> Self {
        require_root();
        let pid = std::process::id();
        let dir = tempfile::Builder::new()
            .prefix("gantry-join-")
            .tempdir()
            .expect("creating a temporary directory");
        // Ranges nothing on this machine uses yet.
        let taken = {
            let addrs = run("ip", &["-4", "-o", "addr"]).stdout;
            let routes = run("ip", &["-4", "route"]).stdout;
            format!("{addrs}\n{routes}")
        };
        let pick = |first: u32, count: u32, pattern: &dyn Fn(u32) -> String| {
            (0..count)
                .map(|i| first + (pid + i) % count)
                .find(|k| !taken.contains(&pattern(*k)))
                .expect("a free address range")
        };
        let x = pick(160, 30, &|k| format!("10.{k}."));
        let y = pick(0, 250, &|k| format!("198.18.{k}."));
        // Node a asks for the cluster's first range; b and c are given the next ones by
        // the cluster.
        let node = |side: &str, n: u32| NodeSpec {
            name: format!("join-{side}-{pid}"),
            bridge: format!("gj{side}{pid}"),
            asks: (n == 0).then(|| format!("10.{x}.{n}.0/24")),
            pod_cidr: format!("10.{x}.{n}.0/24"),
            vni: 20_000 + pid % 100_000,
            node_ip: format!("198.18.{y}.{}", n + 1),
            state_dir: dir.path().join(format!("run-{side}")),
            cgroup_parent: format!("/gantry-join-{side}-{pid}"),
            data_dir: dir.path().join(format!("data-{side}")),
            netns: match n {
                0 => None,
                1 => Some(format!("gantry-join-{pid}")),
                _ => Some(format!("gantry-join-{side}-{pid}")),
            },
        };
        let world = Self {
            netns: format!("gantry-join-{pid}"),
            switch: format!("gantry-join-sw-{pid}"),
            outside: format!("gantry-join-out-{pid}"),
            veth_host: format!("gjh{pid}"),
            host_ip: format!("198.18.{y}.1"),
            peer_ip: format!("198.18.{y}.2"),
            outside_ip: format!("198.18.{y}.100"),
            load_balancer_pool: format!("198.18.{y}.200-198.18.{y}.209"),
            cluster_cidr: format!("10.{x}.0.0/16"),
            a: node("a", 0),
            b: node("b", 1),
            c: node("c", 2),
            daemons: Vec::new(),
            dir,
        };
        // From here on, drop cleans up whatever was made. The link is a bridge in
        // a namespace of its own, so that frames between the hosts pass no rules of
        // this machine's (br_netfilter would show them to node a's tables).
        let sw = &world.switch;
        ip(&format!("netns add {sw}"));
        ip(&format!("-n {sw} link add br0 type bridge"));
        ip(&format!("-n {sw} link set br0 up"));
        ip(&format!(
            "link add {} type veth peer name pa netns {sw}",
            world.veth_host
        ));
        ip(&format!(
            "addr add {}/24 dev {}",
            world.host_ip, world.veth_host
        ));
        ip(&format!("link set {} up", world.veth_host));
        ip(&format!("-n {sw} link set dev pa master br0 up"));
        let hosts = [
            ("pb", &world.netns, &world.peer_ip),
            ("pc", world.c.netns.as_ref().unwrap(), &world.c.node_ip),
            ("pout", &world.outside, &world.outside_ip),
        ];
        for (port, ns, address) in hosts {
            ip(&format!("netns add {ns}"));
            ip(&format!(
                "-n {sw} link add {port} type veth peer name eth0 netns {ns}"
            ));
            ip(&format!("-n {sw} link set dev {port} master br0 up"));
            ip(&format!("-n {ns} addr add {address}/24 dev eth0"));
            ip(&format!("-n {ns} link set eth0 up"));
            ip(&format!("-n {ns} link set lo up"));
        }
        world
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `gantry <args>` in host b's network namespace.
    fn on_other_host(&self, args: &[String]) -> Command {
        on_host(&self.b, GANTRY, args)
    }

    /// kubectl as the admin.
    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_input(args, None)
    }

    fn kubectl_input(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new("kubectl");
        command
            .env("KUBECONFIG", self.a.data_dir.join("admin.kubeconfig"))
            .env("HOME", self.dir.path())
            .arg("--cache-dir")
            .arg(self.path("kubectl-cache"))
            .args(args);
        process::run(command, stdin.map(str::as_bytes), COMMAND_LIMIT)
    }

    #[track_caller]
    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.success(), "{out}");
        out.stdout
    }

    /// Removes what a pod or node left: runc containers, shims, cgroups,
    /// mounts.
    fn sweep_node(&self, node: &NodeSpec) {
        let runc_root = node.state_dir.join("runc");
        if runc_root.exists() {
            let list = Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["list", "-q"])
                .output();
            for id in list
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["delete", "--force", id.trim()])
                    .status();
            }
        }
        for mount in cgroup_mounts() {
            let top = mount.join(node.cgroup_parent.trim_start_matches('/'));
            if top.exists() {
                kill_and_remove(&top);
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The processes first, so nothing recreates what goes next.
        self.daemons.clear();
        self.sweep_node(&self.a);
        self.sweep_node(&self.b);
        self.sweep_node(&self.c);
        // Shims and anything else started from our directory.
        let root = self.dir.path().display().to_string();
        for _ in 0..3 {
            let mut found = false;
            for pid in processes_mentioning(&root) {
                found = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if !found {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut mounts = mounts_under(self.dir.path());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(Path::new(&m), nix::mount::MntFlags::MNT_DETACH);
        }
        // Node a's bridge and table are in this namespace; node b's go with
        // its namespace.
        let quiet = |program: &str, args: &[&str]| {
            let _ = Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet("nft", &["delete", "table", "ip", &self.a.bridge]);
        for table in ["svc", "pol"] {
            let table = format!("{}-{table}", self.a.bridge);
            quiet("nft", &["delete", "table", "ip", &table]);
        }
        let label = format!("lo:{}", agent::announcer_tag(&self.a.bridge));
        quiet("ip", &["-4", "addr", "flush", "dev", "lo", "label", &label]);
        quiet("ip", &["link", "del", &self.a.bridge]);
        quiet("ip", &["link", "del", &format!("{}.vx", self.a.bridge)]);
        quiet("ip", &["link", "del", &self.veth_host]);
        for ns in [
            &self.netns,
            self.c.netns.as_ref().unwrap(),
            &self.outside,
            &self.switch,
        ] {
            quiet("ip", &["netns", "del", ns]);
        }
    }
}

/// `program <args>` in a node's host's network namespace (the mount
/// namespace stays this one's, so cleanup sees the agent's mounts).
fn on_host(node: &NodeSpec, program: &str, args: &[String]) -> Command {
    match &node.netns {
        Some(ns) => {
            let mut command = Command::new("nsenter");
            command
                .arg(format!("--net=/run/netns/{ns}"))
                .arg("--")
                .arg(program)
                .args(args);
            command
        }
        None => {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    }
}

/// Where the cgroup hierarchies are mounted (v1 controllers and the unified
/// one).
fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split_whitespace().nth(4).map(PathBuf::from))
        .collect()
}

/// Kills every process in a cgroup tree, then removes it, deepest first.
fn kill_and_remove(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                kill_and_remove(&e.path());
            }
        }
    }
    for _ in 0..100 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("cleanup: could not remove cgroup {}", dir.display());
}

/// Mount points at or under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

/// Processes whose command line mentions `text`.
fn processes_mentioning(text: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(text))
                .unwrap_or(false)
        })
        .collect()
}

/// The condition `Ready` of each node, by name.
fn ready_nodes(nodes: &Value) -> Vec<(String, bool)> {
    nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let name = n["metadata"]["name"].as_str().unwrap_or("").to_owned();
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (name, ready)
        })
        .collect()
}

/// The join token with one character of its CA hash changed.
fn tamper(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    chars[3] = if chars[3] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

#[test]
fn a_second_machine_joins_with_a_token_and_runs_pods() {
    let mut w = World::new();
    let url = w.start_server(&[]);
    let token = w.create_token();
    let ca = std::fs::read_to_string(w.a.data_dir.join("pki/ca.crt")).unwrap();
    let (pin, bearer) = token
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::"))
        .unwrap_or_else(|| panic!("not a join token: {token:?}"));
    assert_eq!(pin, pki::fingerprint(&ca), "the token pins the cluster CA");
    let id = &bearer[..6];
    let secret: Value = serde_json::from_str(&w.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "secret",
        &format!("bootstrap-token-{id}"),
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(secret["type"], "bootstrap.kubernetes.io/token");
    for key in [
        "token-id",
        "token-secret",
        "expiration",
        "usage-bootstrap-authentication",
        "description",
    ] {
        assert!(secret["data"][key].is_string(), "no {key} in {secret:#}");
    }

    // A bootstrap token is good for nothing but node certificates.
    let as_bootstrapper = w.kubectl(&[
        "--kubeconfig",
        "/dev/null",
        "--server",
        &url,
        "--certificate-authority",
        &w.a.data_dir.join("pki/ca.crt").display().to_string(),
        "--token",
        bearer,
        "get",
        "pods",
    ]);
    assert!(!as_bootstrapper.success(), "{as_bootstrapper}");
    assert!(
        as_bootstrapper.stderr.contains("Forbidden")
            && as_bootstrapper
                .stderr
                .contains(&format!("system:bootstrap:{id}")),
        "{as_bootstrapper}"
    );

    // Refused joins leave nothing behind and say why.
    let refused_join = |token: &str, dir: &str| {
        let mut args = vec![
            "agent".to_owned(),
            "--server".into(),
            url.clone(),
            "--token".into(),
            token.to_owned(),
        ];
        let mut spec_flags = w.b.flags(&w.cluster_cidr, 10250);
        let at = spec_flags.iter().position(|f| f == "--data-dir").unwrap();
        spec_flags[at + 1] = w.path(dir).display().to_string();
        args.extend(spec_flags);
        let mut command = w.on_other_host(&args);
        command.env("RUST_BACKTRACE", "0");
        let out = process::run(command, None, COMMAND_LIMIT);
        assert!(!out.success(), "{out}");
        assert!(
            !w.path(dir).join("agent.kubeconfig").exists(),
            "a refused join wrote a kubeconfig: {out}"
        );
        out
    };
    let unknown = format!("K10{pin}::zzzzzz.zzzzzzzzzzzzzzzz");
    let out = refused_join(&unknown, "refused-unknown");
    assert!(out.stderr.contains("refused the join token"), "{out}");
    let out = refused_join(&tamper(&token), "refused-tampered");
    assert!(
        out.stderr.contains("the join token pins") && out.stderr.contains("was not sent"),
        "{out}"
    );
    let short = run(
        GANTRY,
        &[
            "token",
            "create",
            "--ttl",
            "1s",
            "--data-dir",
            &w.a.data_dir.display().to_string(),
        ],
    );
    assert!(short.success(), "{short}");
    std::thread::sleep(Duration::from_millis(2500));
    let out = refused_join(short.stdout.trim(), "refused-expired");
    assert!(out.stderr.contains("refused the join token"), "{out}");

    // The other host joins over the link.
    w.join_b(&url, &token);
    let agent_log = w.daemons[1].log();
    assert!(
        agent_log.contains(&format!("({})", w.peer_ip)),
        "{agent_log}"
    );
    for file in [
        "agent.kubeconfig",
        "pki/ca.crt",
        "pki/node-client.crt",
        "pki/node-client.key",
        "pki/node-serving.crt",
        "pki/node-serving.key",
    ] {
        assert!(w.b.data_dir.join(file).exists(), "no {file}");
    }
    assert_eq!(
        std::fs::read_to_string(w.b.data_dir.join("pki/ca.crt")).unwrap(),
        ca
    );

    w.import_busybox(&w.a);
    w.import_busybox(&w.b);
    let nodes = w.wait_nodes(&[(&w.a.name, true), (&w.b.name, true)], START_WITHIN);
    let b = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["metadata"]["name"] == w.b.name.as_str())
        .unwrap();
    let internal = b["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .unwrap();
    assert_eq!(internal["address"], w.peer_ip.as_str());

    let pod = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: on-b
  namespace: default
spec:
  nodeSelector:
    kubernetes.io/hostname: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "echo hello from {node}; mkdir /www; echo b > /www/index.html; httpd -p 8080 -h /www; exec sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: on-a
  namespace: default
spec:
  nodeSelector:
    kubernetes.io/hostname: {node_a}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "mkdir /www; echo a > /www/index.html; exec httpd -f -p 8080 -h /www"]
"#,
        node = w.b.name,
        node_a = w.a.name,
    );
    let applied = w.kubectl_input(&["apply", "-f", "-"], Some(&pod));
    assert!(applied.success(), "{applied}");
    let waited = w.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/on-b",
        "pod/on-a",
        "--timeout=120s",
    ]);
    assert!(
        waited.success(),
        "{waited}\n--- agent ---\n{}",
        w.daemons[1].log()
    );
    let node = w.kubectl_ok(&["get", "pod", "on-b", "-o", "jsonpath={.spec.nodeName}"]);
    assert_eq!(node, w.b.name);
    let ip = w.kubectl_ok(&["get", "pod", "on-b", "-o", "jsonpath={.status.podIP}"]);
    assert!(
        ip.starts_with(&w.b.pod_cidr[..w.b.pod_cidr.len() - 4]),
        "{ip}"
    );
    let logs = w.kubectl_ok(&["logs", "on-b"]);
    assert_eq!(logs.trim(), format!("hello from {}", w.b.name));

    // The cluster gave b the range after a's, and b's Node tells the other
    // nodes where its VXLAN endpoint is.
    let cidr = w.kubectl_ok(&["get", "node", &w.b.name, "-o", "jsonpath={.spec.podCIDR}"]);
    assert_eq!(cidr, w.b.pod_cidr);
    let vtep = w.kubectl_ok(&[
        "get",
        "node",
        &w.b.name,
        "-o",
        r"jsonpath={.metadata.annotations.gantry\.dev/vtep-ip}",
    ]);
    assert_eq!(vtep, w.peer_ip);
    // Pods on the two hosts reach each other by pod address, both ways,
    // through the VXLAN overlay over the link.
    let ip_a = w.kubectl_ok(&["get", "pod", "on-a", "-o", "jsonpath={.status.podIP}"]);
    for (from, to, says) in [("on-b", &ip_a, "a"), ("on-a", &ip, "b")] {
        let url = format!("http://{to}:8080/");
        // busybox's `wget -T` crashes (Debian 12's 1.35); `timeout` bounds it instead.
        let got = w.kubectl(&["exec", from, "--", "timeout", "5", "wget", "-qO-", &url]);
        assert!(
            got.success() && got.stdout.trim() == says,
            "{from} to {url}: {got}\n--- host a ---\n{}\n--- host b ---\n{}",
            run("ip", &["route"]).stdout,
            run("ip", &["-n", &w.netns, "route"]).stdout,
        );
    }
    let exec = w.kubectl_ok(&[
        "exec",
        "on-b",
        "--",
        "sh",
        "-c",
        "echo $((6*7)) $(hostname)",
    ]);
    assert_eq!(exec.trim(), "42 on-b");

    // A restart needs no token: the kubeconfig is kept, and the pod is
    // still reached through the restarted agent.
    w.daemons[1].interrupt();
    w.daemons.pop();
    let mut args = vec!["agent".to_owned()];
    args.extend(w.b.flags(&w.cluster_cidr, 10250));
    let mut again = Daemon::spawn(w.on_other_host(&args), w.path("agent-b-again.log"));
    again.wait_for("is in the cluster");
    assert!(!again.log().contains("joined"), "{}", again.log());
    w.daemons.push(again);
    let exec = w.kubectl_ok(&["exec", "on-b", "--", "cat", "/proc/1/cmdline"]);
    assert!(exec.starts_with("sleep\u{0}3600"), "{exec:?}");

    // Without a serving certificate that fits (as after a change of
    // address), the node asks for new ones with its own client certificate,
    // and the server then trusts the agent's new one.
    w.daemons[1].interrupt();
    w.daemons.pop();
    let serving = w.b.data_dir.join("pki/node-serving.crt");
    let old = std::fs::read_to_string(&serving).unwrap();
    std::fs::remove_file(&serving).unwrap();
    let mut renewed = Daemon::spawn(w.on_other_host(&args), w.path("agent-b-renewed.log"));
    renewed.wait_for("is in the cluster");
    assert!(
        renewed.log().contains("renewing the certificates"),
        "{}",
        renewed.log()
    );
    w.daemons.push(renewed);
    assert_ne!(std::fs::read_to_string(&serving).unwrap(), old);
    let logs = w.kubectl_ok(&["logs", "on-b"]);
    assert_eq!(logs.trim(), format!("hello from {}", w.b.name));

    let deleted = w.kubectl(&["delete", "pod", "on-b", "on-a", "--timeout=60s"]);
    assert!(deleted.success(), "{deleted}");
}

/// A stand-in server that serves a CA of its own at `/cacerts` and keeps the
/// head of every request it gets.
struct FakeServer {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl FakeServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = pki::Ca::load_or_create(dir.path()).unwrap();
        let ip: std::net::IpAddr = Ipv4Addr::LOCALHOST.into();
        let serving = ca
            .issue_server("fake", &["localhost".into()], &[ip])
            .unwrap();
        let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
            pki::certificates_der(&serving.cert_pem)
                .unwrap()
                .into_iter()
                .map(Into::into)
                .collect();
        let key = rustls_pemfile::private_key(&mut serving.key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let ca_pem = ca.cert_pem().to_owned();
        {
            let heads = Arc::clone(&heads);
            let ca_pem = ca_pem.clone();
            // Ends with the test process.
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let _ = answer(stream, &config, &heads, &ca_pem);
                }
            });
        }
        Self {
            port,
            heads,
            ca_pem,
            _dir: dir,
        }
    }
}

/// Serves one connection: `/cacerts` answers the CA, anything else 401.
fn answer(
    stream: std::net::TcpStream,
    config: &Arc<rustls::ServerConfig>,
    heads: &Mutex<Vec<String>>,
    ca_pem: &str,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let mut reader = BufReader::new(&mut tls);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    heads.lock().unwrap().push(head.clone());
    let (status, body) = if head.starts_with("GET /cacerts ") {
        ("200 OK", ca_pem.to_owned())
    } else {
        (
            "401 Unauthorized",
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#.to_owned(),
        )
    };
    write!(
        tls,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.flush()?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}

#[test]
fn a_token_is_never_sent_to_a_server_whose_ca_it_does_not_pin() {
    let fake = FakeServer::start();
    let dir = tempfile::Builder::new()
        .prefix("gantry-join-fake-")
        .tempdir()
        .unwrap();
    let pid = std::process::id();
    let attempt = |pin: &str, sub: &str| {
        let token = format!("K10{pin}::abcdef.0123456789abcdef");
        // Node flags of its own, though the join fails before any is used.
        let data = dir.path().join(sub);
        let out = run(
            GANTRY,
            &[
                "agent",
                "--server",
                &format!("https://127.0.0.1:{}", fake.port),
                "--token",
                &token,
                "--data-dir",
                &data.display().to_string(),
                "--node-name",
                &format!("join-fake-{pid}"),
                "--agent-listen",
                "127.0.0.1:0",
                "--bridge",
                &format!("gjf{pid}"),
                "--pod-cidr",
                "10.159.0.0/24",
                "--cluster-cidr",
                "10.159.0.0/16",
                "--state-dir",
                &dir.path().join("run").display().to_string(),
                "--cgroup-parent",
                &format!("/gantry-join-fake-{pid}"),
            ],
        );
        assert!(!out.success(), "{out}");
        assert!(!data.join("agent.kubeconfig").exists());
        let heads = std::mem::take(&mut *fake.heads.lock().unwrap());
        (out, heads)
    };
    let carries_token = |head: &String| {
        head.to_lowercase().contains("authorization:") || head.contains("0123456789abcdef")
    };

    // The token pins another CA than the one this server serves.
    let other = pki::fingerprint("some other cluster's CA");
    let (out, heads) = attempt(&other, "mismatch");
    assert!(
        out.stderr.contains("the join token pins") && out.stderr.contains("was not sent"),
        "{out}"
    );
    assert!(!heads.is_empty(), "the agent never asked for /cacerts");
    assert!(
        heads.iter().all(|h| h.starts_with("GET /cacerts ")),
        "{heads:#?}"
    );
    assert!(!heads.iter().any(carries_token), "{heads:#?}");

    // Control: when the pin matches, the token does go out (and this
    // server refuses it), so the check above can see a token.
    let (out, heads) = attempt(&pki::fingerprint(&fake.ca_pem), "match");
    assert!(out.stderr.contains("refused the join token"), "{out}");
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("POST /gantry/v1/nodes/") && carries_token(h)),
        "{heads:#?}"
    );
}

impl World {
    /// `gantry up` on this machine as node a, reachable from the other host,
    /// with `extra` flags; returns the server's URL on the link.
    fn start_server(&mut self, extra: &[&str]) -> String {
        let server_port = free_port();
        let agent_port = free_port();
        let mut up = Command::new(GANTRY);
        up.args([
            "up",
            "--listen",
            &format!("0.0.0.0:{server_port}"),
            "--tls-san",
            &self.host_ip,
        ])
        .args(extra)
        .args(self.a.flags(&self.cluster_cidr, agent_port));
        let mut server = Daemon::spawn(up, self.path("server.log"));
        server.wait_for("ready in");
        self.daemons.push(server);
        format!("https://{}:{server_port}", self.host_ip)
    }

    /// A join token from `gantry token create`.
    fn create_token(&self) -> String {
        let created = run(
            GANTRY,
            &[
                "token",
                "create",
                "--data-dir",
                &self.a.data_dir.display().to_string(),
            ],
        );
        assert!(created.success(), "{created}");
        created.stdout.trim().to_owned()
    }

    /// Joins the other host as node b and waits until its agent is up.
    fn join_b(&mut self, url: &str, token: &str) {
        self.join(&self.b.name.clone(), url, token);
    }

    /// Joins host b or c (by node name) and waits until its agent is up.
    fn join(&mut self, name: &str, url: &str, token: &str) {
        let node = [&self.b, &self.c]
            .into_iter()
            .find(|n| n.name == name)
            .expect("host b or c");
        let mut args = vec![
            "agent".to_owned(),
            "--server".into(),
            url.to_owned(),
            "--token".into(),
            token.to_owned(),
        ];
        args.extend(node.flags(&self.cluster_cidr, 10250));
        let log = self.path(&format!("agent-{}.log", node.name));
        let mut agent = Daemon::spawn(on_host(node, GANTRY, &args), log);
        agent.wait_for("is in the cluster");
        self.daemons.push(agent);
    }

    /// Loads the busybox test image into a node's image store.
    fn import_busybox(&self, node: &NodeSpec) {
        let busybox = self.path("busybox.tar");
        if !busybox.exists() {
            testkit::images::write_oci_archive(
                &[&testkit::images::busybox().expect("building the busybox image")],
                &busybox,
                testkit::images::Compression::None,
            )
            .expect("writing busybox.tar");
        }
        let imported = run(
            GANTRY,
            &[
                "image",
                "import",
                "--data-dir",
                &node.data_dir.display().to_string(),
                &busybox.display().to_string(),
            ],
        );
        assert!(imported.success(), "{imported}");
    }

    /// Waits until kubectl lists exactly these nodes with these Ready
    /// states; returns the nodes as JSON.
    fn wait_nodes(&self, want: &[(&str, bool)], within: Duration) -> Value {
        let mut want: Vec<(String, bool)> =
            want.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect();
        want.sort();
        let deadline = Instant::now() + within;
        loop {
            let nodes: Value =
                serde_json::from_str(&self.kubectl_ok(&["get", "nodes", "-o", "json"])).unwrap();
            let mut ready = ready_nodes(&nodes);
            ready.sort();
            if ready == want {
                return nodes;
            }
            assert!(
                Instant::now() < deadline,
                "nodes not {want:?} within {within:?}: {ready:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The pods of `selector` in default: (name, node, ready, terminating).
fn pods_of(w: &World, selector: &str) -> Vec<(String, String, bool, bool)> {
    let pods: Value =
        serde_json::from_str(&w.kubectl_ok(&["get", "pods", "-l", selector, "-o", "json"]))
            .unwrap();
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_owned(),
                ready,
                !p["metadata"]["deletionTimestamp"].is_null(),
            )
        })
        .collect()
}

/// Polls `f` every half second until it holds; panics naming `what`.
#[track_caller]
fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
    start.elapsed()
}

#[test]
fn a_killed_node_goes_not_ready_and_its_pods_are_made_again_elsewhere() {
    let mut w = World::new();
    // Shorter than Kubernetes' 50 s and 300 s, so the test takes a minute.
    let url = w.start_server(&[
        "--node-monitor-grace-period",
        "20s",
        "--default-unreachable-toleration-seconds",
        "3",
    ]);
    let token = w.create_token();
    w.join_b(&url, &token);
    w.import_busybox(&w.a);
    w.import_busybox(&w.b);
    let (a, b) = (w.a.name.clone(), w.b.name.clone());
    w.wait_nodes(&[(&a, true), (&b, true)], START_WITHIN);

    // One replica on each node.
    let deployment = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: movers
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: movers}
  template:
    metadata:
      labels: {app: movers}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels: {app: movers}
      containers:
      - name: main
        image: busybox:1.36
        command: ["sleep", "3600"]
"#;
    let applied = w.kubectl_input(&["apply", "-f", "-"], Some(deployment));
    assert!(applied.success(), "{applied}");
    let status = w.kubectl(&["rollout", "status", "deployment/movers", "--timeout=120s"]);
    assert!(status.success(), "{status}");
    let before = pods_of(&w, "app=movers");
    let mut nodes: Vec<&str> = before.iter().map(|p| p.1.as_str()).collect();
    nodes.sort();
    let mut both = vec![a.as_str(), b.as_str()];
    both.sort();
    assert_eq!(nodes, both, "{before:?}");
    let on_b = before.iter().find(|p| p.1 == b).unwrap().0.clone();

    // Node b's agent dies (its containers keep running, as on a machine
    // cut off from the network).
    drop(w.daemons.pop());
    let killed = Instant::now();
    w.wait_nodes(&[(&a, true), (&b, false)], Duration::from_secs(60));
    let not_ready_after = killed.elapsed();
    let table = w.kubectl_ok(&["get", "node", &b]);
    assert!(table.contains("NotReady"), "{table}");
    let taints = w.kubectl_ok(&["get", "node", &b, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );

    // Its pod is evicted after its 3 s toleration, and made again on a.
    eventually(
        "a second ready replica on node a",
        Duration::from_secs(90),
        || {
            let now = pods_of(&w, "app=movers");
            now.iter().filter(|p| p.1 == a && p.2 && !p.3).count() == 2
        },
    );
    let moved_after = killed.elapsed();
    let evicted: Value =
        serde_json::from_str(&w.kubectl_ok(&["get", "pod", &on_b, "-o", "json"])).unwrap();
    assert!(
        !evicted["metadata"]["deletionTimestamp"].is_null(),
        "{evicted:#}"
    );
    assert!(
        evicted["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "DisruptionTarget" && c["reason"] == "DeletionByTaintManager"),
        "{evicted:#}"
    );
    let ready = w.kubectl_ok(&[
        "get",
        "deployment",
        "movers",
        "-o",
        "jsonpath={.status.availableReplicas}",
    ]);
    assert_eq!(ready, "2");

    // The node is removed for good: the pod no kubelet will finish goes.
    w.kubectl_ok(&["delete", "node", &b]);
    eventually(
        "the evicted pod to be collected",
        Duration::from_secs(60),
        || !pods_of(&w, "app=movers").iter().any(|p| p.0 == on_b),
    );
    eprintln!(
        "node {b} killed: NotReady after {:.1}s, its pod running again on {a} after {:.1}s",
        not_ready_after.as_secs_f64(),
        moved_after.as_secs_f64()
    );
}

/// The three hosts' workload: `web`, three busybox httpd pods (one per node,
/// each serving its own name) behind a LoadBalancer Service and an Ingress
/// for `web.test` with TLS; and two client pods, `granted` on node b (the
/// label a NetworkPolicy will let in) and `stranger` on node a.
fn three_host_workload(a: &str, b: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {{matchLabels: {{app: web}}}}
      containers:
      - name: httpd
        image: busybox:1.36
        command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe:
          httpGet: {{path: /, port: http}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, namespace: default}}
spec:
  tls:
  - hosts: [web.test]
    secretName: web-tls
  rules:
  - host: web.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: granted
  namespace: default
  labels: {{access: granted}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {b}}}
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: "busybox:1.36", command: [sleep, "3600"]}}
---
apiVersion: v1
kind: Pod
metadata:
  name: stranger
  namespace: default
spec:
  nodeSelector: {{kubernetes.io/hostname: {a}}}
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: "busybox:1.36", command: [sleep, "3600"]}}
"#
    )
}

/// Lets only pods labelled `access: granted` reach the web pods.
const ONLY_GRANTED: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-granted, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {access: granted}}}]
    ports: [{protocol: TCP, port: 8080}]
"#;

impl World {
    /// The body of `curl -sS <args>` (at most 3 s) run on the machine
    /// outside the cluster, or why not.
    fn curl_outside(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.outside,
                "curl",
                "-sS",
                "--max-time",
                "3",
            ])
            .args(args)
            .output()
            .expect("running curl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// The body of `GET url` from inside pod `pod` (busybox wget, at most
    /// 3 s), or why not.
    fn get_in_pod(&self, pod: &str, url: &str) -> Result<String, String> {
        // busybox's `wget -T` crashes (Debian 12's 1.35); `timeout` bounds it instead.
        let got = self.kubectl(&["exec", pod, "--", "timeout", "3", "wget", "-qO-", url]);
        if got.success() {
            Ok(got.stdout.trim().to_owned())
        } else {
            Err(got.to_string())
        }
    }

    /// The web pods: name → (node, pod address).
    fn web_pods(&self) -> BTreeMap<String, (String, String)> {
        let pods: Value =
            serde_json::from_str(&self.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "json"]))
                .unwrap();
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                (
                    text(&p["metadata"]["name"]),
                    (text(&p["spec"]["nodeName"]), text(&p["status"]["podIP"])),
                )
            })
            .collect()
    }

    /// The ready addresses in the EndpointSlices of Service `web`.
    fn web_endpoints(&self) -> BTreeSet<String> {
        let slices: Value = serde_json::from_str(&self.kubectl_ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "json",
        ]))
        .unwrap();
        slices["items"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] != false)
            .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect()
    }
}

/// Issue 6's end-to-end picture on three hosts (this machine and two
/// network namespaces on one link) and a machine outside the cluster: pod
/// to pod across hosts, pod to Service by DNS name, to the API server's
/// port through the `kubernetes` Service and to the outside machine through a
/// Service without a selector, NodePort, LoadBalancer and Ingress with TLS
/// by host name from outside, a NetworkPolicy denying and allowing, and a
/// host removed with its endpoints gone.
#[test]
fn three_hosts_serve_by_name_from_inside_and_outside_and_lose_one() {
    let mut w = World::new();
    let dns = format!("{}:0", w.host_ip);
    let pool = w.load_balancer_pool.clone();
    let host_ip = w.host_ip.clone();
    let url = w.start_server(&[
        "--dns-listen",
        &dns,
        "--load-balancer-pool",
        &pool,
        "--advertise-address",
        &host_ip,
    ]);
    let token = w.create_token();
    let (a, b, c) = (w.a.name.clone(), w.b.name.clone(), w.c.name.clone());
    w.join(&b, &url, &token);
    w.join(&c, &url, &token);
    for node in [&w.a, &w.b, &w.c] {
        w.import_busybox(node);
    }
    w.wait_nodes(&[(&a, true), (&b, true), (&c, true)], START_WITHIN);

    // Self-signed and marked a CA, so that curl's OpenSSL takes it as a trust anchor.
    let mut params = rcgen::CertificateParams::new(vec!["web.test".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (w.path("web.crt"), w.path("web.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    w.kubectl_ok(&[
        "create",
        "secret",
        "tls",
        "web-tls",
        &format!("--cert={}", cert_file.display()),
        &format!("--key={}", key_file.display()),
    ]);
    let applied = w.kubectl_input(&["apply", "-f", "-"], Some(&three_host_workload(&a, &b)));
    assert!(applied.success(), "{applied}");
    let status = w.kubectl(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    assert!(status.success(), "{status}");
    let waited = w.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/granted",
        "pod/stranger",
        "--timeout=120s",
    ]);
    assert!(waited.success(), "{waited}");
    let web = w.web_pods();
    let names: BTreeSet<String> = web.keys().cloned().collect();
    let nodes: BTreeSet<&str> = web.values().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        nodes,
        BTreeSet::from([a.as_str(), b.as_str(), c.as_str()]),
        "{web:?}"
    );

    // Pod to pod across hosts: from node a to every web pod by its address.
    for (name, (_, ip)) in &web {
        let got = w.get_in_pod("stranger", &format!("http://{ip}:8080/"));
        assert_eq!(
            got.as_deref(),
            Ok(name.as_str()),
            "stranger to {name} at {ip}"
        );
    }

    // Pod to Service by DNS name (full and through the search path), balanced
    // over the pods of all three hosts.
    let mut seen = BTreeSet::new();
    let took = eventually(
        "the Service by name reaching every pod",
        Duration::from_secs(60),
        || {
            for url in ["http://web.default.svc.cluster.local/", "http://web/"] {
                if let Ok(body) = w.get_in_pod("granted", url) {
                    assert!(names.contains(&body), "{url} answered {body:?}");
                    seen.insert(body);
                }
            }
            seen == names
        },
    );
    eprintln!(
        "all three pods answered web by name within {:.1}s",
        took.as_secs_f64()
    );

    // The API server from a pod on another host, where in-cluster clients
    // find it: the variables every container gets name the `kubernetes`
    // Service, which leads to the advertised address (a TCP connection by
    // name and by address: busybox's built-in TLS offers only CBC cipher
    // suites, which rustls does not take, so its wget cannot do the HTTPS).
    let found = w.kubectl_ok(&[
        "exec",
        "granted",
        "--",
        "sh",
        "-c",
        "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT",
    ]);
    assert_eq!(found.trim(), "10.96.0.1:443");
    for target in ["kubernetes.default.svc 443", "10.96.0.1 443"] {
        eventually(
            &format!("a connection to {target} from a pod"),
            Duration::from_secs(30),
            || {
                w.kubectl(&[
                    "exec",
                    "granted",
                    "--",
                    "sh",
                    "-c",
                    &format!("nc -w 3 {target} </dev/null"),
                ])
                .success()
            },
        );
    }

    // A machine outside the cluster behind a Service without a selector: its
    // Endpoints, written by hand, are mirrored into the slice the proxy reads.
    let www = w.path("outside-www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "outside machine\n").unwrap();
    let mut httpd = Command::new("ip");
    httpd
        .args([
            "netns", "exec", &w.outside, "busybox", "httpd", "-f", "-p", "8080", "-h",
        ])
        .arg(&www);
    let _outside_httpd = Daemon::spawn(httpd, w.path("outside-httpd.log"));
    let external = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: outside, namespace: default}}
spec:
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: outside, namespace: default}}
subsets:
- addresses: [{{ip: "{ip}"}}]
  ports: [{{name: http, port: 8080}}]
"#,
        ip = w.outside_ip
    );
    let applied = w.kubectl_input(&["apply", "-f", "-"], Some(&external));
    assert!(applied.success(), "{applied}");
    eventually(
        "the outside machine through its Service",
        Duration::from_secs(30),
        || w.get_in_pod("granted", "http://outside/").as_deref() == Ok("outside machine"),
    );

    // From outside: the node port of every joined host, the load balancer
    // address (announced by one node), and the Ingress by host name with the
    // Secret's certificate on each joined host's port 443.
    let node_port = w.kubectl_ok(&[
        "get",
        "service",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    for host in [&w.b.node_ip, &w.c.node_ip] {
        let url = format!("http://{host}:{node_port}/");
        eventually(
            &format!("{url} from outside"),
            Duration::from_secs(30),
            || w.curl_outside(&[&url]).is_ok_and(|b| names.contains(&b)),
        );
    }
    let mut lb = String::new();
    eventually("a load balancer address", Duration::from_secs(30), || {
        lb = w.kubectl_ok(&[
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ]);
        !lb.is_empty()
    });
    let lb_url = format!("http://{lb}/");
    eventually(
        &format!("{lb_url} from outside"),
        Duration::from_secs(30),
        || w.curl_outside(&[&lb_url]).is_ok_and(|b| names.contains(&b)),
    );
    let cacert = cert_file.display().to_string();
    for host in [&w.b.node_ip, &w.c.node_ip] {
        let resolve = format!("web.test:443:{host}");
        eventually(
            &format!("https://web.test/ at {host}"),
            Duration::from_secs(30),
            || {
                w.curl_outside(&[
                    "--resolve",
                    &resolve,
                    "--cacert",
                    &cacert,
                    "https://web.test/",
                ])
                .is_ok_and(|b| names.contains(&b))
            },
        );
    }

    // A NetworkPolicy lets only `granted` (node b) in, on every host; taken
    // away, `stranger` (node a) is let in again.
    let applied = w.kubectl_input(&["apply", "-f", "-"], Some(ONLY_GRANTED));
    assert!(applied.success(), "{applied}");
    for (name, (_, ip)) in &web {
        let url = format!("http://{ip}:8080/");
        eventually(
            &format!("stranger refused by {name}"),
            Duration::from_secs(30),
            || w.get_in_pod("stranger", &url).is_err(),
        );
        assert_eq!(w.get_in_pod("granted", &url).as_deref(), Ok(name.as_str()));
    }
    w.kubectl_ok(&["delete", "networkpolicy", "only-granted"]);
    for (name, (_, ip)) in &web {
        let url = format!("http://{ip}:8080/");
        eventually(
            &format!("stranger let in by {name}"),
            Duration::from_secs(30),
            || w.get_in_pod("stranger", &url).is_ok(),
        );
    }

    // Host c goes away for good: its agent dies and its Node is deleted. Its
    // pod's address leaves the Service's endpoints, a new pod takes its place
    // on a or b, and the Service by name answers only from live pods.
    let (gone, (_, gone_ip)) = web.iter().find(|(_, (n, _))| *n == c).unwrap();
    drop(w.daemons.pop());
    w.kubectl_ok(&["delete", "node", &c]);
    let removed = Instant::now();
    eventually(
        "the removed host's endpoint gone and three again",
        Duration::from_secs(120),
        || {
            let endpoints = w.web_endpoints();
            !endpoints.contains(gone_ip) && endpoints.len() == 3
        },
    );
    eprintln!(
        "host {c} removed: its endpoint replaced within {:.1}s",
        removed.elapsed().as_secs_f64()
    );
    let live: BTreeSet<String> = w.web_pods().into_keys().collect();
    assert!(!live.contains(gone), "{live:?}");
    let mut seen = BTreeSet::new();
    eventually(
        "the Service by name reaching the live pods",
        Duration::from_secs(60),
        || {
            if let Ok(body) = w.get_in_pod("granted", "http://web/") {
                assert!(
                    live.contains(&body),
                    "web answered {body:?}, not one of {live:?}"
                );
                seen.insert(body);
            }
            seen == live
        },
    );
}
