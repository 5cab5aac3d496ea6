//! The tests themselves.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use runtime::logs::{LogOptions, Stream};
use runtime::{
    ContainerStatus, ExecSpec, Mount, MountSource, Propagation, Resources, Runtime, RuntimeError,
    UserSpec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Test;
use crate::harness::{
    Env, cgroup_dirs, config, logs, mounts_under, runc_list, shim_pid, wait_exit, wait_log,
};

macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|| Box::pin($name()) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) as Test)),*]
    };
}

pub fn all() -> Vec<(&'static str, Test)> {
    tests![
        sandbox_namespaces_are_pinned_and_removed,
        exit_codes_signals_and_logs,
        create_errors_leave_nothing_behind,
        prepared_containers_start_or_leave_nothing,
        memory_limit_gets_the_container_oom_killed,
        limits_reach_cgroups_and_remove_leaves_nothing,
        users_capabilities_and_mounts,
        exec_with_pipes_tty_and_timeout,
        attach_with_pipes_and_tty,
        logs_rotate_follow_and_split_long_lines,
        containers_survive_a_killed_agent_and_are_adopted,
        a_lost_shim_is_reported_and_cleaned_up,
        exits_and_lost_shims_wake_their_watchers,
    ]
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn sandbox_namespaces_are_pinned_and_removed() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-a", "web-0", false).unwrap();
    let netns = sandbox.netns.clone().expect("a network namespace");
    let host_net = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    let pod_net = std::fs::metadata(&netns).unwrap().ino();
    assert_ne!(
        host_net, pod_net,
        "the pod has a network namespace of its own"
    );
    assert_ne!(
        std::fs::metadata("/proc/self/ns/uts").unwrap().ino(),
        std::fs::metadata(&sandbox.utsns).unwrap().ino()
    );
    // Creating again finds the same namespaces.
    let again = rt.create_sandbox("pod-a", "web-0", false).unwrap();
    assert_eq!(again, sandbox);
    assert_eq!(
        std::fs::metadata(again.netns.unwrap()).unwrap().ino(),
        pod_net
    );
    // The hostname is set inside the UTS namespace only.
    let uts = sandbox.utsns.clone();
    let name = std::thread::spawn(move || {
        let file = std::fs::File::open(uts).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWUTS).unwrap();
        nix::unistd::gethostname().unwrap().into_string().unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(name, "web-0");
    assert_ne!(
        nix::unistd::gethostname().unwrap().into_string().unwrap(),
        "web-0"
    );

    let host = rt.create_sandbox("pod-b", "node-1", true).unwrap();
    assert_eq!(host.netns, None);
    // A container of the host-network pod sees the host's interfaces.
    let interfaces = |text: &str| text.lines().filter(|l| l.contains(':')).count();
    let host_count = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    env.run(env.spec("hostnet", &host, &["cat", "/proc/net/dev"]))
        .await;
    wait_exit(rt, "hostnet", secs(20)).await;
    assert_eq!(
        interfaces(&logs(rt, "hostnet", LogOptions::default()).await),
        host_count
    );
    rt.remove_container("hostnet").await.unwrap();
    let listed: Vec<String> = rt
        .list_sandboxes()
        .unwrap()
        .into_iter()
        .map(|s| s.pod_uid)
        .collect();
    assert_eq!(listed, vec!["pod-a", "pod-b"]);

    rt.remove_sandbox("pod-a").unwrap();
    assert!(
        mounts_under(&sandbox.dir).is_empty(),
        "{:?}",
        mounts_under(&sandbox.dir)
    );
    assert!(!sandbox.dir.exists());
    assert!(rt.sandbox("pod-a").is_none());
    rt.remove_sandbox("pod-a").unwrap();
    rt.remove_sandbox("pod-b").unwrap();
    assert!(rt.list_sandboxes().unwrap().is_empty());
    assert!(rt.create_sandbox("../x", "h", false).is_err());
}

async fn exit_codes_signals_and_logs() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-exit", "exit-host", false).unwrap();

    let spec = env.spec(
        "echo",
        &sandbox,
        &[
            "sh",
            "-c",
            "echo hello; echo oops >&2; hostname; printf partial; exit 3",
        ],
    );
    let log_path = spec.log_path.clone();
    let record = rt.create_container(spec).await.unwrap();
    assert_eq!(record.id, "echo");
    assert_eq!(rt.status("echo").unwrap(), ContainerStatus::Created);
    rt.start_container("echo").await.unwrap();
    match wait_exit(rt, "echo", secs(20)).await {
        ContainerStatus::Exited {
            exit_code,
            signal,
            started_at,
            finished_at,
            oom_killed,
        } => {
            assert_eq!((exit_code, signal, oom_killed), (3, None, false));
            assert!(started_at.unwrap() <= finished_at);
        }
        other => panic!("{other:?}"),
    }
    let raw = std::fs::read_to_string(&log_path).unwrap();
    assert!(raw.lines().any(|l| l.ends_with(" stdout F hello")), "{raw}");
    assert!(raw.lines().any(|l| l.ends_with(" stderr F oops")), "{raw}");
    assert!(
        raw.lines().any(|l| l.ends_with(" stdout P partial")),
        "{raw}"
    );
    // The first field is an RFC 3339 time with nanoseconds.
    let first = raw.lines().next().unwrap().split(' ').next().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(first).is_ok(),
        "{first}"
    );
    let shown = logs(rt, "echo", LogOptions::default()).await;
    assert!(
        shown.contains("hello\n") && shown.contains("oops\n") && shown.contains("exit-host\n"),
        "{shown}"
    );
    // The cut-off line is shown without a newline (stderr may come after it: the two
    // streams are read independently).
    assert!(
        shown.contains("partial") && !shown.contains("partial\n"),
        "{shown}"
    );

    // SIGTERM reaches a process that handles it.
    let id = env
        .run(env.spec(
            "term",
            &sandbox,
            &[
                "sh",
                "-c",
                "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done",
            ],
        ))
        .await;
    wait_log(rt, &id, "ready").await;
    match rt.status(&id).unwrap() {
        ContainerStatus::Running { pid, .. } => {
            assert!(Path::new(&format!("/proc/{pid}")).exists())
        }
        other => panic!("{other:?}"),
    }
    rt.kill(&id, Signal::SIGTERM).await.unwrap();
    assert!(matches!(
        wait_exit(rt, &id, secs(10)).await,
        ContainerStatus::Exited {
            exit_code: 7,
            signal: None,
            ..
        }
    ));

    // SIGKILL ends it with 128 + 9, not counted as an OOM kill.
    let id = env
        .run(env.spec("killed", &sandbox, &["sleep", "1000"]))
        .await;
    rt.kill(&id, Signal::SIGKILL).await.unwrap();
    assert!(matches!(
        wait_exit(rt, &id, secs(10)).await,
        ContainerStatus::Exited {
            exit_code: 137,
            signal: Some(9),
            oom_killed: false,
            ..
        }
    ));
    // Killing an exited container is fine.
    rt.kill(&id, Signal::SIGKILL).await.unwrap();
    assert!(matches!(
        rt.start_container(&id).await,
        Err(RuntimeError::NotRunning(_))
    ));
}

/// Processes whose working directory is `dir` or below it: a shim works in its container's
/// directory.
fn processes_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        // A removed directory reads as "<path> (deleted)".
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd"))
            && cwd.to_string_lossy().starts_with(&*dir.to_string_lossy())
        {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

async fn prepared_containers_start_or_leave_nothing() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-prep", "prep", false).unwrap();
    let root = env.dir.path().join("containers");

    // Prepared: the bundle is there and the shim waits; runc has made nothing yet.
    let prepared = rt
        .prepare_run(env.spec("later", &sandbox, &["sleep", "30"]))
        .await
        .unwrap();
    assert_eq!(prepared.id(), "later");
    assert!(root.join("later/config.json").exists());
    assert!(root.join("later/shim.json").exists());
    assert!(
        runc_list(&env.runc_root()).is_empty(),
        "runc ran before start"
    );
    assert!(
        !processes_in(&root.join("later")).is_empty(),
        "no shim waits for the start"
    );
    let record = prepared.start().await.unwrap();
    assert_eq!(record.id, "later");
    assert!(matches!(
        rt.status("later").unwrap(),
        ContainerStatus::Running { .. }
    ));
    rt.remove_container("later").await.unwrap();

    // Abandoned: the shim exits having run nothing, and nothing is left.
    let prepared = rt
        .prepare_run(env.spec("never", &sandbox, &["sleep", "30"]))
        .await
        .unwrap();
    prepared.abandon().await;
    assert!(!root.join("never").exists(), "the directory is left");
    let deadline = Instant::now() + secs(5);
    while !processes_in(&root.join("never")).is_empty() {
        assert!(Instant::now() < deadline, "the shim did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cgroup_dirs(&env.cgroup("pod-prep", "never")).is_empty());
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
    assert!(runc_list(&env.runc_root()).is_empty());
    assert!(rt.list_containers().unwrap().is_empty());
}

async fn create_errors_leave_nothing_behind() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-err", "err", false).unwrap();
    let root = env.dir.path().join("containers");

    let err = rt
        .create_container(env.spec("missing", &sandbox, &["/no/such/binary", "x"]))
        .await
        .unwrap_err();
    match &err {
        RuntimeError::Runc {
            op: "create",
            message,
            ..
        } => {
            assert!(
                message.contains("/no/such/binary") && message.contains("no such file"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let err = rt
        .create_container(env.spec("notinpath", &sandbox, &["nonexistent-command"]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("executable file not found"),
        "{err}"
    );
    // Created and started in one runc process, the same failure says so.
    match rt
        .run_container(env.spec("runmissing", &sandbox, &["/no/such/binary"]))
        .await
        .unwrap_err()
    {
        RuntimeError::Runc {
            op: "run", message, ..
        } => assert!(message.contains("/no/such/binary"), "{message}"),
        other => panic!("{other:?}"),
    }
    let mut spec = env.spec("ghost", &sandbox, &["true"]);
    spec.user = UserSpec {
        image_user: "ghost".to_owned(),
        ..Default::default()
    };
    match rt.create_container(spec).await.unwrap_err() {
        RuntimeError::InvalidSpec { message, .. } => {
            assert!(message.contains("unable to find user ghost"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let mut spec = env.spec("badcap", &sandbox, &["true"]);
    spec.capabilities_add = vec!["NOT_A_CAP".to_owned()];
    assert!(matches!(
        rt.create_container(spec).await,
        Err(RuntimeError::InvalidSpec { .. })
    ));

    for id in ["missing", "notinpath", "runmissing", "ghost", "badcap"] {
        assert!(!root.join(id).exists(), "{id} left its directory");
        assert!(
            cgroup_dirs(&env.cgroup("pod-err", id)).is_empty(),
            "{id} left its cgroup"
        );
    }
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
    assert!(runc_list(&env.runc_root()).is_empty());
    assert!(rt.list_containers().unwrap().is_empty());

    rt.create_container(env.spec("dup", &sandbox, &["true"]))
        .await
        .unwrap();
    assert!(matches!(
        rt.create_container(env.spec("dup", &sandbox, &["true"]))
            .await,
        Err(RuntimeError::AlreadyExists(_))
    ));
    assert!(matches!(
        rt.create_container(env.spec("bad/id", &sandbox, &["true"]))
            .await,
        Err(RuntimeError::InvalidId(_))
    ));
    assert!(matches!(
        rt.status("nothing"),
        Err(RuntimeError::NotFound(_))
    ));
}

async fn memory_limit_gets_the_container_oom_killed() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-oom", "oom", false).unwrap();
    let mut spec = env.spec(
        "hog",
        &sandbox,
        &[
            "sh",
            "-c",
            "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
        ],
    );
    spec.resources.memory_limit = Some(16 << 20);
    env.run(spec).await;
    match wait_exit(rt, "hog", secs(20)).await {
        ContainerStatus::Exited {
            exit_code,
            signal,
            oom_killed,
            ..
        } => assert_eq!((exit_code, signal, oom_killed), (137, Some(9), true)),
        other => panic!("{other:?}"),
    }
}

async fn limits_reach_cgroups_and_remove_leaves_nothing() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-lim", "lim", false).unwrap();
    let mut spec = env.spec("limited", &sandbox, &["sleep", "1000"]);
    spec.resources = Resources {
        cpu_shares: Some(256),
        cpu_quota: Some(20_000),
        cpu_period: Some(100_000),
        memory_limit: Some(64 << 20),
        pids_limit: Some(50),
        oom_score_adj: Some(500),
    };
    env.run(spec).await;
    let cg = env.cgroup("pod-lim", "limited");
    let read = |controller: &str, file: &str| {
        let path = Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(cg.trim_start_matches('/'))
            .join(file);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_owned()
    };
    assert_eq!(read("cpu", "cpu.shares"), "256");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(read("pids", "pids.max"), "50");
    let pid = match rt.status("limited").unwrap() {
        ContainerStatus::Running { pid, .. } => pid,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .unwrap()
            .trim(),
        "500"
    );
    assert!(
        read("pids", "cgroup.procs")
            .lines()
            .any(|l| l == pid.to_string())
    );
    let dir = env.dir.path().join("containers/limited");
    assert_eq!(
        mounts_under(&dir),
        vec![dir.join("rootfs").to_string_lossy().into_owned()]
    );
    assert_eq!(runc_list(&env.runc_root()), vec!["limited"]);

    rt.remove_container("limited").await.unwrap();
    assert!(mounts_under(&dir).is_empty());
    assert!(!dir.exists());
    assert!(cgroup_dirs(&cg).is_empty(), "{:?}", cgroup_dirs(&cg));
    assert!(runc_list(&env.runc_root()).is_empty());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the process is gone"
    );
    assert!(rt.list_containers().unwrap().is_empty());
    rt.remove_container("limited").await.unwrap();

    rt.remove_sandbox("pod-lim").unwrap();
    assert!(cgroup_dirs(&format!("{}/podpod-lim", env.cgroup_parent)).is_empty());
}

async fn users_capabilities_and_mounts() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-sec", "sec-host", false).unwrap();
    let data = env.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in"), "from host").unwrap();
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();

    let script = "id -u; id -g; id -G; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; \
                  touch /probe 2>/dev/null && echo rootfs-writable || echo rootfs-readonly; \
                  cat /data/in; echo; echo written > /data/out; \
                  grep -c ' /proc/keys ' /proc/self/mountinfo; grep ' /scratch ' /proc/self/mountinfo; \
                  cat /proc/net/dev | grep -c ':'; pwd";
    let mut spec = env.spec("user", &sandbox, &["sh", "-c", script]);
    spec.user = UserSpec {
        image_user: "app".to_owned(),
        supplemental_groups: vec![4242],
        ..Default::default()
    };
    spec.readonly_rootfs = true;
    spec.no_new_privileges = true;
    spec.cwd = "/home/app".to_owned();
    spec.mounts = vec![
        Mount {
            destination: "/data".into(),
            source: MountSource::Bind(data.clone()),
            readonly: false,
            propagation: Propagation::Private,
        },
        Mount {
            destination: "/scratch".into(),
            source: MountSource::Tmpfs {
                size_bytes: Some(1 << 20),
            },
            readonly: false,
            propagation: Propagation::Private,
        },
    ];
    env.run(spec).await;
    assert!(matches!(
        wait_exit(rt, "user", secs(20)).await,
        ContainerStatus::Exited { exit_code: 0, .. }
    ));
    let out = logs(rt, "user", LogOptions::default()).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 12, "{out}");
    assert_eq!(lines[0], "1000", "{out}");
    assert_eq!(lines[1], "1000", "{out}");
    let groups: Vec<&str> = lines[2].split(' ').collect();
    assert!(groups.contains(&"10") && groups.contains(&"4242"), "{out}");
    assert!(
        out.contains("CapBnd:\t00000000a80425fb"),
        "Docker's default set: {out}"
    );
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("rootfs-readonly"), "{out}");
    assert!(out.contains("from host"), "{out}");
    assert_eq!(
        std::fs::read_to_string(data.join("out")).unwrap(),
        "written\n"
    );
    assert!(lines.contains(&"1"), "/proc/keys is masked: {out}");
    assert!(out.contains("size=1024k"), "{out}");
    // Only the loopback device: the pod's own network namespace.
    let keys_at = lines.iter().position(|l| *l == "1").unwrap();
    assert_eq!(
        lines[keys_at + 2],
        "1",
        "one interface in the pod's netns: {out}"
    );
    assert_eq!(*lines.last().unwrap(), "/home/app");

    let mut spec = env.spec(
        "caps",
        &sandbox,
        &["sh", "-c", "grep CapEff /proc/self/status"],
    );
    spec.capabilities_drop = vec!["ALL".to_owned()];
    spec.capabilities_add = vec!["NET_ADMIN".to_owned()];
    env.run(spec).await;
    wait_exit(rt, "caps", secs(20)).await;
    assert!(
        logs(rt, "caps", LogOptions::default())
            .await
            .contains("CapEff:\t0000000000001000")
    );

    let mut spec = env.spec(
        "priv",
        &sandbox,
        &["sh", "-c", "grep CapEff /proc/self/status; grep -c ' /proc/keys ' /proc/self/mountinfo; grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f6"],
    );
    spec.privileged = true;
    env.run(spec).await;
    wait_exit(rt, "priv", secs(20)).await;
    let out = logs(rt, "priv", LogOptions::default()).await;
    // All the capabilities the runtime has itself.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    assert!(out.contains(&format!("CapEff:\t{bounding}")), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "0", "nothing masked: {out}");
    assert!(lines[2].starts_with("rw"), "/sys writable: {out}");
}

async fn exec_with_pipes_tty_and_timeout() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-exec", "exec", false).unwrap();
    let mut spec = env.spec("target", &sandbox, &["sleep", "1000"]);
    spec.env.push(("FOO".to_owned(), "bar".to_owned()));
    env.run(spec).await;

    // Pipes, stdin, the container's environment, an exit code.
    let mut p = rt
        .exec(
            "target",
            ExecSpec {
                argv: vec![
                    "sh".into(),
                    "-c".into(),
                    "read x; echo \"got $x $FOO $EXTRA\"; echo err >&2; exit 5".into(),
                ],
                env: vec![("EXTRA".to_owned(), "more".to_owned())],
                tty: false,
                stdin: true,
            },
        )
        .await
        .unwrap();
    let mut stdin = p.stdin.take().unwrap();
    stdin.write_all(b"hi\n").await.unwrap();
    drop(stdin);
    let (mut out, mut err) = (String::new(), String::new());
    let (mut so, mut se) = (p.stdout.take().unwrap(), p.stderr.take().unwrap());
    let (a, b) = tokio::join!(so.read_to_string(&mut out), se.read_to_string(&mut err));
    a.unwrap();
    b.unwrap();
    assert_eq!(p.wait().await.unwrap(), 5);
    assert_eq!(out, "got hi bar more\n");
    assert_eq!(err, "err\n");

    // A terminal, resized twice.
    let mut p = rt
        .exec(
            "target",
            ExecSpec {
                argv: vec!["sh".into()],
                env: vec![],
                tty: true,
                stdin: true,
            },
        )
        .await
        .unwrap();
    let mut stdin = p.stdin.take().unwrap();
    let mut output = p.stdout.take().unwrap();
    assert!(p.stderr.is_none());
    let mut seen = String::new();
    read_until_contains(&mut output, &mut seen, "# ").await;
    // runc applies a resize when it handles the SIGWINCH, shortly after; ask until it has.
    for (width, height) in [(100u16, 30u16), (120, 40)] {
        p.resize(width, height).unwrap();
        let want = format!("{height} {width}");
        let deadline = Instant::now() + secs(10);
        while !seen.contains(&want) {
            assert!(Instant::now() < deadline, "no {want:?} in {seen:?}");
            stdin.write_all(b"stty size\n").await.unwrap();
            let _ = tokio::time::timeout(
                Duration::from_millis(300),
                read_until_contains(&mut output, &mut seen, &want),
            )
            .await;
        }
    }
    stdin.write_all(b"exit 3\n").await.unwrap();
    assert_eq!(p.wait().await.unwrap(), 3);

    // exec_output: combined output and the code.
    let (code, out) = rt
        .exec_output(
            "target",
            vec![
                "sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 2".into(),
            ],
            secs(10),
        )
        .await
        .unwrap();
    assert_eq!(code, 2);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("out\n") && out.contains("err\n"), "{out}");

    // A timeout kills the process.
    let started = Instant::now();
    let err = rt
        .exec_output(
            "target",
            vec!["sleep".into(), "77".into()],
            Duration::from_millis(800),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ExecTimeout { .. }), "{err}");
    assert!(started.elapsed() < secs(5));
    let (_, ps) = rt
        .exec_output(
            "target",
            vec!["ps".into(), "-o".into(), "args".into()],
            secs(10),
        )
        .await
        .unwrap();
    let ps = String::from_utf8(ps).unwrap();
    assert!(
        ps.contains("sleep 1000") && !ps.contains("sleep 77"),
        "{ps}"
    );

    // A command that does not exist is runc's error.
    let err = rt
        .exec_output("target", vec!["/no/such".into()], secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::Runc { op: "exec", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("/no/such"), "{err}");
    // No temporary files are left in the container's directory.
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path().join("containers/target"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("exec-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    rt.kill("target", Signal::SIGKILL).await.unwrap();
    wait_exit(rt, "target", secs(10)).await;
    assert!(matches!(
        rt.exec_output("target", vec!["true".into()], secs(5)).await,
        Err(RuntimeError::NotRunning(_))
    ));
}

async fn read_until_contains(output: &mut runtime::ExecReader, seen: &mut String, want: &str) {
    let deadline = Instant::now() + secs(10);
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, output.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {want:?} in {seen:?}"))
            .unwrap();
        assert!(n > 0, "output ended without {want:?}: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn attach_with_pipes_and_tty() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-attach", "attach", false).unwrap();

    let mut spec = env.spec(
        "echoer",
        &sandbox,
        &[
            "sh",
            "-c",
            "while read l; do echo \"echo:$l\"; echo \"err:$l\" >&2; done; echo bye; exit 4",
        ],
    );
    spec.stdin = true;
    spec.stdin_once = true;
    env.run(spec).await;
    let (out1, mut in1) = rt.attach("echoer", true).await.unwrap().split();
    let watcher = rt.attach("echoer", false).await.unwrap();
    assert!(!watcher.tty());
    let (mut out2, _in2) = watcher.split();
    in1.write_stdin(b"one\n").await.unwrap();
    let collect = |mut out: runtime::AttachOutput| async move {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some((stream, data)) = tokio::time::timeout(secs(10), out.next())
            .await
            .unwrap()
            .unwrap()
        {
            match stream {
                Stream::Stdout => stdout.extend(data),
                Stream::Stderr => stderr.extend(data),
            }
            if String::from_utf8_lossy(&stdout).contains("bye") {
                // Keep reading: the stream ends by itself once the container exits.
            }
        }
        (
            String::from_utf8(stdout).unwrap(),
            String::from_utf8(stderr).unwrap(),
        )
    };
    // Both sessions see the first line before stdin closes.
    let mut first = Vec::new();
    while !String::from_utf8_lossy(&first).contains("echo:one") {
        let (stream, data) = tokio::time::timeout(secs(10), out2.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if stream == Stream::Stdout {
            first.extend(data);
        }
    }
    in1.close_stdin().await.unwrap();
    let ((o1, e1), (o2, _)) = tokio::join!(collect(out1), collect(out2));
    assert!(o1.contains("echo:one") && o1.ends_with("bye\n"), "{o1:?}");
    assert!(e1.contains("err:one"), "{e1:?}");
    assert!(o2.ends_with("bye\n"), "{o2:?}");
    assert!(matches!(
        wait_exit(rt, "echoer", secs(10)).await,
        ContainerStatus::Exited { exit_code: 4, .. }
    ));
    assert!(matches!(
        rt.attach("echoer", true).await,
        Err(RuntimeError::NotRunning(_))
    ));
    let log = logs(rt, "echoer", LogOptions::default()).await;
    assert!(
        log.contains("echo:one\n") && log.contains("err:one\n") && log.contains("bye\n"),
        "{log}"
    );

    // A terminal: input, resize, output as one stream.
    let mut spec = env.spec("shell", &sandbox, &["sh"]);
    spec.tty = true;
    spec.stdin = true;
    env.run(spec).await;
    let session = rt.attach("shell", true).await.unwrap();
    assert!(session.tty());
    let (mut out, mut input) = session.split();
    input.resize(90, 20).await.unwrap();
    input
        .write_stdin(b"stty size; echo $((6*7))\n")
        .await
        .unwrap();
    let mut seen = String::new();
    while !(seen.contains("20 90") && seen.contains("42")) {
        let (stream, data) = tokio::time::timeout(secs(10), out.next())
            .await
            .unwrap_or_else(|_| panic!("{seen:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("ended: {seen:?}"));
        assert_eq!(stream, Stream::Stdout);
        seen.push_str(&String::from_utf8_lossy(&data));
    }
    input.write_stdin(b"exit 6\n").await.unwrap();
    while tokio::time::timeout(secs(10), out.next())
        .await
        .unwrap()
        .unwrap()
        .is_some()
    {}
    assert!(matches!(
        wait_exit(rt, "shell", secs(10)).await,
        ContainerStatus::Exited { exit_code: 6, .. }
    ));
    let log = logs(rt, "shell", LogOptions::default()).await;
    assert!(
        log.contains("42"),
        "the terminal's output is logged: {log:?}"
    );
}

async fn logs_rotate_follow_and_split_long_lines() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-logs", "logs", false).unwrap();

    let mut spec = env.spec(
        "many",
        &sandbox,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo \"line $i\"; i=$((i+1)); done",
        ],
    );
    spec.log_max_bytes = 4096;
    let log_path = spec.log_path.clone();
    env.run(spec).await;
    wait_exit(rt, "many", secs(20)).await;
    assert!(
        runtime::logs::rotated_path(&log_path).exists(),
        "the log rotated"
    );
    assert!(std::fs::metadata(&log_path).unwrap().len() <= 4096);
    let all = logs(rt, "many", LogOptions::default()).await;
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(*lines.last().unwrap(), "line 299");
    let first: usize = lines[0].strip_prefix("line ").unwrap().parse().unwrap();
    assert!(
        first > 0 && lines.len() > 60,
        "two files' worth: {} lines from {first}",
        lines.len()
    );
    for (k, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("line {}", first + k));
    }
    let tail = logs(
        rt,
        "many",
        LogOptions {
            tail_lines: Some(3),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(tail, "line 297\nline 298\nline 299\n");
    let stamped = logs(
        rt,
        "many",
        LogOptions {
            tail_lines: Some(2),
            timestamps: true,
            ..Default::default()
        },
    )
    .await;
    for line in stamped.lines() {
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{line}");
        assert!(rest.starts_with("line 29"), "{line}");
    }
    let limited = logs(
        rt,
        "many",
        LogOptions {
            tail_lines: Some(1),
            limit_bytes: Some(4),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(limited, "line");

    // since: only what came after the pause.
    env.run(env.spec(
        "paced",
        &sandbox,
        &["sh", "-c", "echo before; sleep 1; echo after"],
    ))
    .await;
    wait_exit(rt, "paced", secs(20)).await;
    let raw = std::fs::read_to_string(env.dir.path().join("logs/paced.log")).unwrap();
    let after_time = raw
        .lines()
        .find(|l| l.ends_with(" after"))
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let since: std::time::SystemTime = chrono::DateTime::parse_from_rfc3339(after_time)
        .unwrap()
        .with_timezone(&chrono::Utc)
        .into();
    let recent = logs(
        rt,
        "paced",
        LogOptions {
            since: Some(since - Duration::from_millis(500)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(recent, "after\n");

    // A line longer than 16 KiB is split into partial records and joined again.
    env.run(env.spec(
        "long",
        &sandbox,
        &["sh", "-c", "head -c 20000 /dev/zero | tr '\\0' x; echo"],
    ))
    .await;
    wait_exit(rt, "long", secs(20)).await;
    let raw = std::fs::read_to_string(env.dir.path().join("logs/long.log")).unwrap();
    let tags: Vec<(&str, usize)> = raw
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.splitn(4, ' ').collect();
            (parts[2], parts[3].len())
        })
        .collect();
    let total: usize = tags.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 20000);
    assert_eq!(tags.last().unwrap().0, "F");
    assert!(tags.iter().all(|(_, n)| *n <= 16384));
    assert!(
        tags.iter().any(|(t, n)| *t == "P" && *n == 16384),
        "{tags:?}"
    );
    let joined = logs(rt, "long", LogOptions::default()).await;
    assert_eq!(joined, format!("{}\n", "x".repeat(20000)));

    // follow: wakes on new output, ends when the container has exited.
    env.run(env.spec(
        "ticker",
        &sandbox,
        &["sh", "-c", "for i in 1 2 3 4; do echo n$i; sleep 0.3; done"],
    ))
    .await;
    let mut reader = rt
        .logs(
            "ticker",
            LogOptions {
                follow: true,
                ..Default::default()
            },
        )
        .unwrap();
    let started = Instant::now();
    let mut got = String::new();
    let mut arrivals = Vec::new();
    while let Some(chunk) = tokio::time::timeout(secs(10), reader.next())
        .await
        .unwrap()
        .unwrap()
    {
        got.push_str(&String::from_utf8(chunk).unwrap());
        arrivals.push(started.elapsed());
    }
    assert_eq!(got, "n1\nn2\nn3\nn4\n");
    assert!(
        arrivals.len() >= 3,
        "output came as it was written: {arrivals:?}"
    );
    assert!(started.elapsed() < secs(5));
}

/// The stand-in agent, killed and reaped when a failing test leaves it behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stand-in agent of the adoption test: makes two containers, says so, then waits to
/// be killed.
pub fn agent_child(args: &[OsString]) -> std::process::ExitCode {
    // Dies with the test process, should that be killed before it kills us.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let dir = PathBuf::from(&args[0]);
    let parent = args[1].to_string_lossy().into_owned();
    let layer = PathBuf::from(&args[2]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let runtime = Runtime::new(config(&dir, &parent)).unwrap();
        let sandbox = runtime.create_sandbox("pod-adopt", "adopt", false).unwrap();
        for (id, script) in [
            (
                "long",
                "trap 'exit 9' TERM; while true; do echo tick; sleep 0.2; done",
            ),
            ("short", "sleep 1; echo done; exit 2"),
        ] {
            let spec = runtime::ContainerSpec {
                id: id.to_owned(),
                labels: [("pod".to_owned(), "adopt".to_owned())].into(),
                sandbox: sandbox.clone(),
                layers: vec![layer.clone()],
                argv: vec!["sh".into(), "-c".into(), script.into()],
                env: vec![("PATH".to_owned(), "/bin:/usr/bin".to_owned())],
                log_path: dir.join("logs").join(format!("{id}.log")),
                ..Default::default()
            };
            runtime.create_container(spec).await.unwrap();
            runtime.start_container(id).await.unwrap();
        }
    });
    println!("ready");
    loop {
        std::thread::sleep(secs(60));
    }
}

async fn containers_survive_a_killed_agent_and_are_adopted() {
    let env = Env::new();
    let mut child = KillOnDrop(
        std::process::Command::new(std::env::current_exe().unwrap())
            .arg("agent-child")
            .arg(env.dir.path())
            .arg(&env.cgroup_parent)
            .arg(&env.layer)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        Signal::SIGKILL,
    )
    .unwrap();
    child.0.wait().unwrap();
    // The shims hold nothing of the agent's: its stdout reaches end of file.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        let _ = tx.send(rest);
    });
    assert_eq!(
        rx.recv_timeout(secs(5))
            .expect("the agent's stdout was closed"),
        ""
    );

    // A new runtime over the same directories finds both containers.
    let rt = Runtime::new(config(env.dir.path(), &env.cgroup_parent)).unwrap();
    let ids: Vec<String> = rt
        .list_containers()
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"long".to_owned()) && ids.contains(&"short".to_owned()));
    assert!(
        rt.list_containers()
            .unwrap()
            .iter()
            .all(|c| c.labels.get("pod").map(String::as_str) == Some("adopt"))
    );
    assert_eq!(rt.list_sandboxes().unwrap().len(), 1);
    let pid = match rt.status("long").unwrap() {
        ContainerStatus::Running { pid, .. } => pid,
        other => panic!("{other:?}"),
    };
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // The short one exited after the agent died; its shim recorded it.
    assert!(matches!(
        wait_exit(&rt, "short", secs(10)).await,
        ContainerStatus::Exited { exit_code: 2, .. }
    ));
    assert!(
        logs(&rt, "short", LogOptions::default())
            .await
            .contains("done\n")
    );
    // The long one keeps logging.
    let count = || async {
        logs(&rt, "long", LogOptions::default())
            .await
            .matches("tick")
            .count()
    };
    let before = count().await;
    tokio::time::sleep(secs(1)).await;
    assert!(count().await > before, "still running and logging");
    rt.kill("long", Signal::SIGTERM).await.unwrap();
    assert!(matches!(
        wait_exit(&rt, "long", secs(10)).await,
        ContainerStatus::Exited {
            exit_code: 9,
            signal: None,
            ..
        }
    ));
    for id in ["long", "short"] {
        rt.remove_container(id).await.unwrap();
    }
    rt.remove_sandbox("pod-adopt").unwrap();
    assert!(rt.list_containers().unwrap().is_empty());
    assert!(mounts_under(env.dir.path()).is_empty());
    assert!(cgroup_dirs(&env.cgroup_parent).iter().all(|d| {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .all(|e| !e.path().is_dir())
    }));
}

async fn a_lost_shim_is_reported_and_cleaned_up() {
    let env = Env::new();
    let rt = &env.runtime;
    let sandbox = rt.create_sandbox("pod-lost", "lost", false).unwrap();
    env.run(env.spec("orphan", &sandbox, &["sleep", "1000"]))
        .await;
    let pid = match rt.status("orphan").unwrap() {
        ContainerStatus::Running { pid, .. } => pid,
        other => panic!("{other:?}"),
    };
    let dir = env.dir.path().join("containers/orphan");
    let shim = shim_pid(&dir);
    assert_ne!(
        std::fs::read_to_string(format!("/proc/{shim}/stat"))
            .unwrap()
            .split(' ')
            .nth(3)
            .unwrap(),
        std::process::id().to_string(),
        "the shim is not the agent's child"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + secs(10);
    while !matches!(rt.status("orphan").unwrap(), ContainerStatus::Unknown(_)) {
        assert!(Instant::now() < deadline, "{:?}", rt.status("orphan"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the container outlives its shim"
    );
    rt.remove_container("orphan").await.unwrap();
    assert!(!dir.exists());
    assert!(mounts_under(&dir).is_empty());
    assert!(cgroup_dirs(&env.cgroup("pod-lost", "orphan")).is_empty());
    assert!(runc_list(&env.runc_root()).is_empty());
    let deadline = Instant::now() + secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "the container's process is gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The exit watcher wakes on an exit and on a shim's loss, at once for a container that
/// already ended, never for a status read, and forgets a container once it is removed.
async fn exits_and_lost_shims_wake_their_watchers() {
    let env = Env::new();
    let rt = &env.runtime;
    let exits = rt.exit_watcher().unwrap();
    let sandbox = rt.create_sandbox("pod-exits", "exits", false).unwrap();
    let woken = |n: &std::sync::Arc<tokio::sync::Notify>, within: Duration| {
        let n = std::sync::Arc::clone(n);
        async move { tokio::time::timeout(within, n.notified()).await.is_ok() }
    };

    env.run(env.spec("ends", &sandbox, &["sh", "-c", "sleep 1; exit 3"]))
        .await;
    let ends = std::sync::Arc::new(tokio::sync::Notify::new());
    exits.watch("ends", &ends).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            rt.status("ends").unwrap(),
            ContainerStatus::Running { .. }
        ));
    }
    assert!(
        !woken(&ends, Duration::from_millis(300)).await,
        "woken while the container runs"
    );
    let began = Instant::now();
    assert!(woken(&ends, secs(5)).await, "not woken by the exit");
    assert!(
        matches!(
            rt.status("ends").unwrap(),
            ContainerStatus::Exited { exit_code: 3, .. }
        ),
        "woken before the exit was recorded: {:?} after {:?}",
        rt.status("ends"),
        began.elapsed()
    );
    // Watching a container that already ended wakes at once.
    let late = std::sync::Arc::new(tokio::sync::Notify::new());
    exits.watch("ends", &late).unwrap();
    assert!(woken(&late, Duration::from_millis(100)).await);

    env.run(env.spec("orphaned", &sandbox, &["sleep", "1000"]))
        .await;
    let orphaned = std::sync::Arc::new(tokio::sync::Notify::new());
    exits.watch("orphaned", &orphaned).unwrap();
    assert!(!woken(&orphaned, Duration::from_millis(200)).await);
    let shim = shim_pid(&env.dir.path().join("containers/orphaned"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), Signal::SIGKILL).unwrap();
    assert!(
        woken(&orphaned, secs(5)).await,
        "not woken by the shim's loss"
    );
    assert!(matches!(
        rt.status("orphaned").unwrap(),
        ContainerStatus::Unknown(_)
    ));

    assert_eq!(exits.watched(), 2);
    rt.remove_container("ends").await.unwrap();
    rt.remove_container("orphaned").await.unwrap();
    let deadline = Instant::now() + secs(5);
    while exits.watched() > 0 {
        assert!(
            Instant::now() < deadline,
            "removed containers are still watched"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        exits.watch("ends", &late).is_err(),
        "a removed container cannot be watched"
    );
    rt.remove_sandbox("pod-exits").unwrap();
}
