//! Pods run for real (issue 4): `gantry up` makes the machine a node, and
//! what kubectl applies runs as containers through runc, with the offline
//! test images (busybox, nginx) loaded into the node. Each test works in a
//! namespace of the shared node server.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// How long a pod may take to reach a state (pull-free, on a busy machine).
const POD_WAIT: Duration = Duration::from_secs(60);

/// Polls `what` until `done` holds, returning the last object.
#[track_caller]
pub(crate) fn wait_for(
    ns: &Namespace<'_>,
    what: &str,
    why: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + POD_WAIT;
    loop {
        let out = ns
            .kubectl(["get", what, "-o", "json", "--ignore-not-found"])
            .ok();
        if !out.trim().is_empty() {
            let v = json(&out);
            if done(&v) {
                return v;
            }
            if Instant::now() >= deadline {
                panic!("{what}: {why} did not happen within {POD_WAIT:?}; last seen:\n{v:#}");
            }
        } else if Instant::now() >= deadline {
            panic!("{what}: {why} did not happen within {POD_WAIT:?}; it is gone");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub(crate) fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or_default()
}

fn container<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["status"]["containerStatuses"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

/// The namespace's pods labelled `app=<app>` that are not being deleted.
pub(crate) fn live(ns: &Namespace<'_>, app: &str) -> Vec<Value> {
    ns.get("pods")["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

pub(crate) fn running(p: &Value) -> bool {
    phase(p) == "Running"
        && p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|l| l.iter().all(|c| c["state"]["running"].is_object()))
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|l| {
        l.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

const NGINX: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx:1.13.1
    ports: [{containerPort: 80, name: http}]
    readinessProbe:
      httpGet: {path: /, port: http}
      periodSeconds: 1
"#;

#[test]
fn a_pod_runs_and_its_logs_are_served() {
    let s = Server::node();
    let ns = s.namespace("run");
    let out = ns
        .kubectl([
            "run",
            "hello",
            "--image=busybox:1.36",
            "--restart=Never",
            "--",
            "sh",
            "-c",
            // stdout and stderr are separate pipes: the log keeps each
            // one's order, and across them the order of arrival.
            "echo hello; sleep 0.2; echo to-stderr >&2; sleep 0.2; echo bye",
        ])
        .ok();
    assert_eq!(out.trim(), "pod/hello created");
    let p = wait_for(&ns, "pod/hello", "Succeeded", |p| phase(p) == "Succeeded");
    let c = container(&p, "hello");
    assert_eq!(c["state"]["terminated"]["exitCode"], 0);
    assert_eq!(c["state"]["terminated"]["reason"], "Completed");
    assert!(
        c["imageID"].as_str().unwrap().contains("busybox@sha256:"),
        "{c}"
    );
    assert!(
        p["status"]["podIP"]
            .as_str()
            .unwrap()
            .starts_with("10.201."),
        "{p}"
    );
    assert_eq!(
        ns.kubectl(["logs", "hello"]).ok(),
        "hello\nto-stderr\nbye\n"
    );
    assert_eq!(ns.kubectl(["logs", "hello", "--tail=1"]).ok(), "bye\n");
    let stamped = ns.kubectl(["logs", "hello", "--timestamps"]).ok();
    let first = stamped.lines().next().unwrap();
    let (time, rest) = first.split_once(' ').unwrap();
    assert!(time.ends_with('Z') && time.contains('T'), "{first}");
    assert_eq!(rest, "hello");
    let t = Table::parse(&ns.kubectl(["get", "pods", "-o", "wide"]).ok());
    assert_eq!(t.cell("hello", "STATUS"), "Completed");
    assert_eq!(t.cell("hello", "NODE"), s.node_name());
    let events = ns
        .kubectl([
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=hello",
        ])
        .ok();
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(events.contains(reason), "no {reason} event:\n{events}");
    }
}

#[test]
fn logs_follow_a_running_container() {
    let s = Server::node();
    let ns = s.namespace("follow");
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ticker}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sh, -c, 'i=0; while [ $i -lt 4 ]; do echo tick $i; i=$((i+1)); sleep 1; done']\n  restartPolicy: Never\n",
    );
    wait_for(&ns, "pod/ticker", "started", |p| {
        container(p, "c")["state"]["running"].is_object() || phase(p) == "Succeeded"
    });
    let mut follow = ns.kubectl(["logs", "-f", "ticker"]).spawn();
    follow.expect_line(Duration::from_secs(20), |l| l == "tick 3");
    // Following ends when the container does.
    let (status, _) = follow.wait(Duration::from_secs(20));
    assert!(status.success());
}

#[test]
fn exec_runs_commands_with_exit_codes_and_stdin() {
    let s = Server::node();
    let ns = s.namespace("exec");
    ns.apply(NGINX);
    wait_for(&ns, "pod/web", "ready", ready);
    let out = ns
        .kubectl([
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo $(hostname) $HOSTNAME; id -u",
        ])
        .ok();
    assert_eq!(out, "web web\n0\n");
    let failed = ns
        .kubectl(["exec", "web", "--", "sh", "-c", "echo oops >&2; exit 3"])
        .run();
    assert_eq!(failed.status.code(), Some(3), "{failed}");
    assert!(failed.stderr.contains("oops"), "{failed}");
    let piped = ns
        .kubectl(["exec", "-i", "web", "--", "wc", "-c"])
        .stdin("twelve bytes")
        .ok();
    assert_eq!(piped.trim(), "12");
    // The SPDY protocol too, as older clients speak it.
    let spdy = ns
        .kubectl(["exec", "web", "--", "echo", "over spdy"])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .ok();
    assert_eq!(spdy, "over spdy\n");
    let missing = ns
        .kubectl(["exec", "web", "-c", "nope", "--", "true"])
        .fails();
    assert!(
        missing.contains("container nope is not valid for pod web"),
        "{missing}"
    );
}

#[test]
fn exec_with_a_terminal() {
    let s = Server::node();
    let ns = s.namespace("tty");
    ns.apply(NGINX);
    wait_for(&ns, "pod/web", "ready", ready);
    // kubectl wants a real terminal for -t: run it under a pty with a size.
    let script = r#"
import os, pty, sys, time, fcntl, termios, struct
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
time.sleep(2)
os.write(fd, b"tty; stty size; exit 7\n")
out = b""
deadline = time.time() + 20
while time.time() < deadline:
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\nEXIT %d\n" % os.waitstatus_to_exitcode(status))
"#;
    let path = s.file("exec_tty.py", script);
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(&path)
        .arg("kubectl")
        .args(["--kubeconfig"])
        .arg(s.kubeconfig())
        .arg("--cache-dir")
        .arg(s.kubectl_cache())
        .args(["-n", &ns.name, "exec", "-it", "web", "--", "sh"]);
    let out = process::run(cmd, None, Duration::from_secs(60));
    assert!(out.stdout.contains("/dev/pts/0"), "{out}");
    assert!(
        out.stdout.contains("33 101"),
        "the terminal size reaches the container: {out}"
    );
    assert!(out.stdout.contains("EXIT 7"), "{out}");
}

#[test]
fn port_forward_reaches_the_pod() {
    let s = Server::node();
    let ns = s.namespace("pf");
    ns.apply(NGINX);
    wait_for(&ns, "pod/web", "ready", ready);
    for websockets in ["true", "false"] {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut pf = ns
            .kubectl(["port-forward", "pod/web", &format!("{port}:80")])
            .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
            .spawn();
        pf.expect_line(Duration::from_secs(20), |l| {
            l.starts_with("Forwarding from 127.0.0.1")
        });
        for _ in 0..3 {
            let body = http_get(port);
            assert!(
                body.contains("Welcome to nginx!"),
                "websockets={websockets}: {body}"
            );
        }
    }
}

fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

#[test]
fn a_crashing_container_backs_off_and_keeps_its_previous_logs() {
    let s = Server::node();
    let ns = s.namespace("crash");
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: crash}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sh, -c, 'echo attempt; exit 2']\n",
    );
    let p = wait_for(&ns, "pod/crash", "a crash loop", |p| {
        container(p, "c")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && container(p, "c")["restartCount"].as_i64() >= Some(1)
    });
    let c = container(&p, "c");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 2);
    assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
    assert!(
        c["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=c pod=crash_"),
        "{c}"
    );
    assert_eq!(phase(&p), "Running", "a crash-looping pod stays Running");
    assert_eq!(
        ns.kubectl(["logs", "crash", "--previous"]).ok(),
        "attempt\n"
    );
    let t = Table::parse(&ns.kubectl(["get", "pod", "crash"]).ok());
    assert_eq!(t.cell("crash", "STATUS"), "CrashLoopBackOff");
    let events = ns
        .kubectl([
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=crash",
        ])
        .ok();
    assert!(
        events.contains("BackOff") || events.contains("Started"),
        "{events}"
    );
}

#[test]
fn a_container_over_its_memory_limit_is_oom_killed() {
    let s = Server::node();
    let ns = s.namespace("oom");
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: hog}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sh, -c, 'dd if=/dev/zero of=/dev/null bs=64M count=1']\n    resources: {limits: {memory: 16Mi}}\n",
    );
    let p = wait_for(&ns, "pod/hog", "Failed", |p| phase(p) == "Failed");
    let t = &container(&p, "c")["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{p}");
    assert_eq!(t["exitCode"], 137);
    let table = Table::parse(&ns.kubectl(["get", "pod", "hog"]).ok());
    assert_eq!(table.cell("hog", "STATUS"), "OOMKilled");
}

#[test]
fn an_exit_is_reported_as_it_happens() {
    // A pod whose containers run is passed over every 10 s only; the end of
    // a container wakes its worker at once.
    let s = Server::node();
    let ns = s.namespace("exits");
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: brief}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sh, -c, 'sleep 4; exit 3']\n",
    );
    wait_for(&ns, "pod/brief", "Running", |p| {
        container(p, "c")["state"]["running"].is_object()
    });
    let running = Instant::now();
    let p = wait_for(&ns, "pod/brief", "Failed", |p| phase(p) == "Failed");
    let took = running.elapsed();
    assert_eq!(container(&p, "c")["state"]["terminated"]["exitCode"], 3);
    assert!(
        took < Duration::from_secs(8),
        "the exit of a container that runs 4 s was reported {took:?} after it was seen running"
    );
}

#[test]
fn probes_restart_and_gate_readiness() {
    let s = Server::node();
    let ns = s.namespace("probes");
    ns.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: live
    image: busybox:1.36
    command: [sh, -c, 'sleep 3600']
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
  - name: ready
    image: busybox:1.36
    command: [sh, -c, 'sleep 3600']
    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: 1
    startupProbe:
      tcpSocket: {port: 1}
      periodSeconds: 1
      failureThreshold: 1000
"#,
    );
    // Liveness fails (no /tmp/healthy): the container is restarted.
    let p = wait_for(&ns, "pod/probed", "a liveness restart", |p| {
        container(p, "live")["restartCount"].as_i64() >= Some(1)
    });
    assert!(!ready(&p));
    let events = ns
        .kubectl([
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=probed",
        ])
        .ok();
    assert!(events.contains("Liveness probe failed"), "{events}");
    assert!(
        events.contains("failed liveness probe, will be restarted"),
        "{events}"
    );
    // The startup probe never passes (nothing listens on port 1), so the
    // readiness probe does not run and the container is not started.
    assert_eq!(container(&p, "ready")["started"], false);
    assert_eq!(container(&p, "ready")["ready"], false);
}

#[test]
fn readiness_follows_the_probe() {
    let s = Server::node();
    let ns = s.namespace("ready");
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: r}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sh, -c, 'sleep 3600']\n    readinessProbe:\n      exec: {command: [cat, /tmp/ready]}\n      periodSeconds: 1\n",
    );
    let p = wait_for(&ns, "pod/r", "running", running);
    assert!(!ready(&p));
    ns.kubectl(["exec", "r", "--", "touch", "/tmp/ready"]).ok();
    wait_for(&ns, "pod/r", "ready", ready);
    ns.kubectl(["exec", "r", "--", "rm", "/tmp/ready"]).ok();
    wait_for(&ns, "pod/r", "unready", |p| !ready(p));
    let t = Table::parse(&ns.kubectl(["get", "pod", "r"]).ok());
    assert_eq!(t.cell("r", "READY"), "0/1");
}

#[test]
fn bad_input_is_reported_on_the_pod_and_the_node_stays_ready() {
    let s = Server::node();
    let ns = s.namespace("bad");
    ns.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec:
  containers:
  - {name: c, image: "127.0.0.1:1/nothing/here:1"}
---
apiVersion: v1
kind: Pod
metadata: {name: nocmd}
spec:
  containers:
  - {name: c, image: "busybox:1.36", command: [/no/such/binary]}
---
apiVersion: v1
kind: Pod
metadata: {name: novolume}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [sleep, "3600"]
    volumeMounts: [{name: cfg, mountPath: /cfg}]
  volumes:
  - name: cfg
    configMap: {name: missing}
---
apiVersion: v1
kind: Pod
metadata: {name: noenv}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [sleep, "3600"]
    env:
    - name: X
      valueFrom: {secretKeyRef: {name: missing, key: k}}
"#,
    );
    let reason = |p: &Value| {
        container(p, "c")["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let p = wait_for(&ns, "pod/noimage", "ErrImagePull", |p| {
        matches!(reason(p).as_str(), "ErrImagePull" | "ImagePullBackOff")
    });
    assert!(
        container(&p, "c")["state"]["waiting"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1:1"),
        "{p}"
    );
    let p = wait_for(&ns, "pod/nocmd", "RunContainerError", |p| {
        matches!(reason(p).as_str(), "RunContainerError" | "CrashLoopBackOff")
    });
    let last = &container(&p, "c")["lastState"]["terminated"];
    assert_eq!(last["reason"], "StartError", "{p}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/binary"),
        "{p}"
    );
    let p = wait_for(&ns, "pod/noenv", "CreateContainerConfigError", |p| {
        reason(p) == "CreateContainerConfigError"
    });
    assert_eq!(
        container(&p, "c")["state"]["waiting"]["message"],
        "secret \"missing\" not found"
    );
    wait_for(&ns, "pod/novolume", "a FailedMount event", |_| {
        ns.kubectl([
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=novolume,reason=FailedMount",
            "-o",
            "name",
        ])
        .ok()
        .contains("event")
    });
    let p = ns.get("pod/novolume");
    assert_eq!(reason(&p), "ContainerCreating");
    let events = ns
        .kubectl([
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=novolume",
        ])
        .ok();
    assert!(
        events.contains("configmap \"missing\" not found"),
        "{events}"
    );
    // The missing ConfigMap appears: the pod starts.
    ns.kubectl(["create", "configmap", "missing", "--from-literal=a=1"])
        .ok();
    wait_for(&ns, "pod/novolume", "running", running);
    let node = s
        .kubectl(["get", "node", &s.node_name(), "-o", "json"])
        .ok();
    let node = json(&node);
    let cond = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(cond["status"], "True");
}

#[test]
fn init_containers_env_and_volumes() {
    let s = Server::node();
    let ns = s.namespace("vols");
    ns.kubectl([
        "create",
        "configmap",
        "cfg",
        "--from-literal=greeting=hello",
        "--from-literal=color=blue",
    ])
    .ok();
    ns.kubectl([
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=hunter2",
    ])
    .ok();
    ns.apply(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: full
  labels: {app: full}
spec:
  initContainers:
  - name: first
    image: busybox:1.36
    command: [sh, -c, 'echo first > /work/order']
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: busybox:1.36
    command: [sh, -c, 'echo second >> /work/order']
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: busybox:1.36
    command: [sh, -c, 'sleep 3600']
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: sec, key: password}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: COMBINED, value: "$(GREETING)-$(POD_NAME)"}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: cfg}}
    resources: {limits: {memory: 64Mi}}
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    - {name: info, mountPath: /etc/info}
    - {name: mem, mountPath: /mem}
    - {name: token, mountPath: /var/run/secrets/tokens}
  volumes:
  - {name: work, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 8Mi}}
  - {name: cfg, configMap: {name: cfg}}
  - {name: sec, secret: {secretName: sec}}
  - name: info
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
  - name: token
    projected:
      sources: [{serviceAccountToken: {path: token, expirationSeconds: 3600}}]
"#,
    );
    let p = wait_for(&ns, "pod/full", "running", running);
    let inits = p["status"]["initContainerStatuses"].as_array().unwrap();
    assert!(
        inits
            .iter()
            .all(|c| c["state"]["terminated"]["reason"] == "Completed"),
        "{p}"
    );
    let sh = |cmd: &str| ns.kubectl(["exec", "full", "--", "sh", "-c", cmd]).ok();
    assert_eq!(sh("cat /work/order"), "first\nsecond\n");
    let ip = p["status"]["podIP"].as_str().unwrap();
    assert_eq!(
        sh("echo $POD_NAME $POD_IP $GREETING $PASSWORD $MEM $COMBINED $CFG_color"),
        format!("full {ip} hello hunter2 64 hello-full blue\n")
    );
    assert_eq!(
        sh("cat /etc/cfg/greeting /etc/sec/password"),
        "hellohunter2"
    );
    assert_eq!(sh("cat /etc/info/labels"), "app=\"full\"");
    assert!(
        sh("df /mem | tail -1").contains("8192"),
        "{}",
        sh("df /mem")
    );
    let token = sh("cat /var/run/secrets/tokens/token");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert!(
        sh("touch /etc/cfg/x 2>&1 || echo refused").contains("refused"),
        "configMap volumes are read-only"
    );
    // An update of the ConfigMap appears in the volume in place.
    ns.kubectl([
        "create",
        "configmap",
        "cfg",
        "--from-literal=greeting=bonjour",
        "--dry-run=client",
        "-o",
        "yaml",
    ])
    .ok();
    ns.kubectl([
        "patch",
        "configmap",
        "cfg",
        "-p",
        r#"{"data":{"greeting":"bonjour"}}"#,
    ])
    .ok();
    let deadline = Instant::now() + Duration::from_secs(40);
    while sh("cat /etc/cfg/greeting") != "bonjour" {
        assert!(
            Instant::now() < deadline,
            "the ConfigMap update did not reach the volume"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // That refresh of the volumes (the same pass writes them all, the token's last) kept
    // the token: it is renewed at 80% of its hour, not on every refresh.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        sh("cat /var/run/secrets/tokens/token"),
        token,
        "the projected token changed before it was due for renewal"
    );
}

#[test]
fn deletion_is_graceful_and_leaves_nothing_behind() {
    let s = Server::node();
    let ns = s.namespace("delete");
    ns.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, 'trap "echo got TERM; exit 0" TERM; while true; do sleep 0.2; done']
    lifecycle:
      preStop:
        exec: {command: [sh, -c, 'echo prestop > /proc/1/fd/1']}
"#,
    );
    let p = wait_for(&ns, "pod/graceful", "running", running);
    let uid = p["metadata"]["uid"].as_str().unwrap().to_owned();
    assert!(
        !s.pod_leftovers(&uid).is_empty(),
        "a running pod has processes and mounts"
    );
    let mut logs = ns.kubectl(["logs", "-f", "graceful"]).spawn();
    let started = Instant::now();
    ns.kubectl(["delete", "pod", "graceful"]).ok();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the container handled TERM, no need to wait out the grace period: {took:?}"
    );
    logs.expect_line(Duration::from_secs(10), |l| l == "prestop");
    logs.expect_line(Duration::from_secs(10), |l| l == "got TERM");
    assert!(!ns.exists("pod/graceful"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = s.pod_leftovers(&uid);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn restarting_gantry_adopts_running_containers() {
    // A private node: this test kills it.
    let s = Server::start_with(Options {
        mode: Mode::Up,
        ..Options::default()
    });
    s.import_test_images();
    let ns = s.namespace("adopt");
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: steady}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done']\n",
    );
    let before = wait_for(&ns, "pod/steady", "running", running);
    let id = container(&before, "c")["containerID"].clone();
    s.kill();
    std::thread::sleep(Duration::from_secs(1));
    s.restart();
    // The same container, never restarted, still logging.
    let after = wait_for(&ns, "pod/steady", "running after the restart", running);
    assert_eq!(container(&after, "c")["containerID"], id);
    assert_eq!(container(&after, "c")["restartCount"], 0);
    let first = ns.kubectl(["logs", "steady", "--tail=1"]).ok();
    std::thread::sleep(Duration::from_secs(2));
    let later = ns.kubectl(["logs", "steady", "--tail=1"]).ok();
    assert_ne!(first, later, "still running after the agent came back");
    // And it is still under control: exec works, deletion cleans up.
    assert_eq!(
        ns.kubectl(["exec", "steady", "--", "echo", "hi"]).ok(),
        "hi\n"
    );
    let uid = after["metadata"]["uid"].as_str().unwrap().to_owned();
    ns.kubectl(["delete", "pod", "steady", "--grace-period=1"])
        .ok();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !s.pod_leftovers(&uid).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            s.pod_leftovers(&uid)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_python_client_execs_and_forwards() {
    let s = Server::node();
    let ns = s.namespace("py");
    ns.apply(NGINX);
    wait_for(&ns, "pod/web", "ready", ready);
    let out = s.python("pod_streams.py").args([&ns.name, "web"]).ok();
    assert!(out.contains("exec: hello from python"), "{out}");
    assert!(out.contains("portforward: Welcome to nginx!"), "{out}");
}

#[test]
fn attach_reaches_a_running_container() {
    let s = Server::node();
    let ns = s.namespace("attach");
    ns.apply(
        // stdinOnce: the end of the attached session's input is the end
        // of the container's, so the loop ends and so does attach.
        "apiVersion: v1\nkind: Pod\nmetadata: {name: talker}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: busybox:1.36\n    stdin: true\n    stdinOnce: true\n    command: [sh, -c, 'while read line; do echo heard $line; done; echo bye']\n",
    );
    wait_for(&ns, "pod/talker", "running", running);
    let out = ns
        .kubectl(["attach", "-i", "talker"])
        .stdin("one\ntwo\n")
        .run();
    assert!(
        out.stdout.contains("heard one") && out.stdout.contains("heard two"),
        "{out}"
    );
}

#[test]
fn images_are_pulled_from_a_registry_with_pull_secrets() {
    let s = Server::node();
    let ns = s.namespace("pull");
    let registry = testkit::Registry::start_with(testkit::RegistryOptions {
        auth: testkit::RegistryAuth::Basic(vec![("puller".into(), "s3cret".into())]),
        tls: false,
    })
    .expect("starting a registry");
    let image = testkit::images::busybox().expect("the busybox image");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(registry.push_image(&image, "team/tools:1.0", testkit::ManifestFormat::Docker))
        .expect("pushing the image");
    let reference = registry.reference("team/tools:1.0");
    let pod = |name: &str, secret: bool| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n{}  containers:\n  - name: c\n    image: {reference}\n    imagePullPolicy: Always\n    command: [echo, pulled]\n",
            if secret {
                "  imagePullSecrets: [{name: regcred}]\n"
            } else {
                ""
            }
        )
    };
    // Without credentials the registry refuses: ErrImagePull, then back-off.
    ns.apply(&pod("denied", false));
    let p = wait_for(&ns, "pod/denied", "ErrImagePull", |p| {
        matches!(
            container(p, "c")["state"]["waiting"]["reason"].as_str(),
            Some("ErrImagePull" | "ImagePullBackOff")
        )
    });
    let message = container(&p, "c")["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains(&reference), "{message}");
    // With a docker-registry secret it is pulled and runs.
    ns.kubectl([
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", registry.host()),
        "--docker-username=puller",
        "--docker-password=s3cret",
    ])
    .ok();
    ns.apply(&pod("allowed", true));
    let p = wait_for(&ns, "pod/allowed", "Succeeded", |p| phase(p) == "Succeeded");
    assert!(
        container(&p, "c")["imageID"]
            .as_str()
            .unwrap()
            .contains("team/tools@sha256:"),
        "{p}"
    );
    assert_eq!(ns.kubectl(["logs", "allowed"]).ok(), "pulled\n");
    let events = ns
        .kubectl([
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=allowed",
        ])
        .ok();
    assert!(events.contains("Successfully pulled image"), "{events}");
}

#[test]
fn security_context_hooks_and_termination_messages() {
    let s = Server::node();
    let ns = s.namespace("secure");
    let host_dir = s.files_dir().join("shared-host-dir");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "host data").unwrap();
    ns.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: locked}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}}
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, 'while [ ! -f /tmp/hook ]; do sleep 0.1; done; id; cat /proc/self/status | grep CapEff; touch /ro-test 2>&1 || echo readonly; cat /host/from-host; echo; cat /tmp/hook; echo all done > /dev/termination-log; exit 5']
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {{drop: [ALL]}}
    lifecycle:
      postStart:
        exec: {{command: [sh, -c, 'echo hooked > /tmp/hook']}}
    volumeMounts:
    - {{name: host, mountPath: /host, readOnly: true}}
    - {{name: tmp, mountPath: /tmp}}
  volumes:
  - name: host
    hostPath: {{path: {}, type: Directory}}
  - {{name: tmp, emptyDir: {{}}}}
"#,
        host_dir.display()
    ));
    let p = wait_for(&ns, "pod/locked", "Failed", |p| phase(p) == "Failed");
    let t = &container(&p, "c")["state"]["terminated"];
    assert_eq!(t["exitCode"], 5);
    assert_eq!(
        t["message"], "all done\n",
        "the termination message file: {p}"
    );
    let logs = ns.kubectl(["logs", "locked"]).ok();
    assert!(
        logs.contains("uid=1000 gid=3000 groups=3000,4000")
            || logs.contains("uid=1000 gid=3000 groups=4000"),
        "{logs}"
    );
    assert!(logs.contains("CapEff:\t0000000000000000"), "{logs}");
    assert!(logs.contains("readonly"), "{logs}");
    assert!(logs.contains("host data"), "{logs}");
    assert!(logs.contains("hooked"), "the postStart hook ran: {logs}");
    let events = ns
        .kubectl([
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=locked",
        ])
        .ok();
    assert!(!events.contains("FailedPostStartHook"), "{events}");
    // A pod asking for a host path that is not there waits with a message.
    ns.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nohost}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sleep, '3600']\n    volumeMounts: [{name: h, mountPath: /h}]\n  volumes:\n  - name: h\n    hostPath: {path: /nonexistent/gantry-e2e, type: Directory}\n",
    );
    wait_for(&ns, "pod/nohost", "a FailedMount event", |_| {
        ns.kubectl([
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=nohost,reason=FailedMount",
        ])
        .ok()
        .contains("hostPath type check failed")
    });
}
