//! What the agent asks for ([`ContainerSpec`]) and the OCI bundle configuration made of it.
//!
//! `oci_config` is pure: the facts it needs from the host (resolved user ids, host devices
//! for privileged containers, whether swap can be limited, the last capability) are
//! passed in, so the configuration is tested without root.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder,
    Mount as OciMount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder, get_default_mounts,
};

use crate::sandbox::Sandbox;
use crate::user::{ResolvedUser, UserSpec};

/// Everything needed to create one container. Plain data: the agent maps a Pod's container
/// onto it; this crate knows nothing of Kubernetes objects.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// The container's id, chosen by the agent: letters, digits, `_`, `+`, `-`, `.`; it names
    /// the container's directory, its runc state and its cgroup.
    pub id: String,
    /// Stored in `record.json` and returned by `list_containers` (pod uid, namespace, name,
    /// container name, attempt, ...), so the agent can match containers to pods after a restart.
    pub labels: BTreeMap<String, String>,
    /// The pod's sandbox, whose network, IPC and UTS namespaces the container joins.
    pub sandbox: Sandbox,
    /// The image's layer directories, top first (overlayfs' `lowerdir` order).
    pub layers: Vec<PathBuf>,
    /// Mount the root file system read-only.
    pub readonly_rootfs: bool,
    /// The command and its arguments (image entrypoint and cmd already merged).
    pub argv: Vec<String>,
    /// The environment, in order.
    pub env: Vec<(String, String)>,
    /// The working directory; empty means `/`.
    pub cwd: String,
    /// The user and groups to run as.
    pub user: UserSpec,
    /// Capabilities to add, by Kubernetes name (`NET_ADMIN`, `CAP_NET_ADMIN`, or `ALL`).
    pub capabilities_add: Vec<String>,
    /// Capabilities to drop, by Kubernetes name (`ALL` drops the default set).
    pub capabilities_drop: Vec<String>,
    /// All capabilities, the host's devices, no masked or read-only paths, `/sys` writable.
    pub privileged: bool,
    /// Set `no_new_privs`, so setuid binaries and file capabilities grant nothing.
    pub no_new_privileges: bool,
    /// Volumes, `/etc/hosts`, `/etc/resolv.conf`, the termination log, tmpfs mounts.
    pub mounts: Vec<Mount>,
    /// cgroup limits and the OOM score adjustment.
    pub resources: Resources,
    /// Give the container a terminal (its output is then one stream, logged as stdout).
    pub tty: bool,
    /// Keep the container's stdin open for attach.
    pub stdin: bool,
    /// Close the container's stdin when the first attach session that took stdin ends.
    pub stdin_once: bool,
    /// The CRI-format log file the shim writes (the agent picks one per attempt).
    pub log_path: PathBuf,
    /// Rotate the log at this size, keeping one older file (`<log>.1`); 0 means 10 MiB.
    pub log_max_bytes: u64,
}

/// A mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where in the container.
    pub destination: PathBuf,
    /// What is mounted there.
    pub source: MountSource,
    /// Mount it read-only.
    pub readonly: bool,
    /// How mounts made later on either side propagate (bind mounts only).
    pub propagation: Propagation,
}

/// The source of a [`Mount`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host file or directory, bind-mounted recursively.
    Bind(PathBuf),
    /// A fresh tmpfs, limited to `size_bytes` if given.
    Tmpfs {
        /// The tmpfs size limit.
        size_bytes: Option<u64>,
    },
}

/// Kubernetes' mount propagation modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Neither side sees the other's later mounts (`rprivate`).
    #[default]
    Private,
    /// The container sees mounts the host makes later (`rslave`).
    HostToContainer,
    /// Both see each other's (`rshared`); needs a privileged container in Kubernetes.
    Bidirectional,
}

/// cgroup limits; `None` leaves a limit unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// `cpu.shares` (v1), from the CPU request.
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period, from the CPU limit.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds (100000 by default in the kernel).
    pub cpu_period: Option<u64>,
    /// Memory limit in bytes; exceeding it gets the container OOM-killed.
    pub memory_limit: Option<i64>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
    /// `/proc/<pid>/oom_score_adj` of the container's processes.
    pub oom_score_adj: Option<i32>,
}

/// Facts about the host that the configuration depends on.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostFacts {
    /// The user, resolved in the container's `/etc/passwd` and `/etc/group`.
    pub user: ResolvedUser,
    /// `<parent>/pod<uid>/<id>`.
    pub cgroup_path: String,
    /// The host's devices, given to privileged containers.
    pub host_devices: Vec<LinuxDevice>,
    /// Whether the memory cgroup can limit swap (`memory.memsw.*` exists).
    pub swap_limit: bool,
    /// The capabilities the runtime itself may hand out: its bounding set (`CapBnd`), the
    /// meaning of "all" for privileged containers and `ALL` (as containerd's current set).
    pub host_caps: u64,
    /// The open files limit for the container: as high as 2^20, but not above what the
    /// runtime's own hard limit allows (raising it needs CAP_SYS_RESOURCE).
    pub nofile: u64,
}

/// Capability names by number, as the kernel numbers them.
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The default set of runc's, Docker's and containerd's CRI plugin.
const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

fn capability(name: &str) -> Result<Capability, String> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    bare.parse::<Capability>()
        .map_err(|_| format!("unknown capability {name:?}"))
}

/// The capability set after Kubernetes' rules, in containerd's order: `ALL` in add
/// grants everything, `ALL` in drop clears the set, then single adds, then single drops.
pub(crate) fn capabilities(
    spec: &ContainerSpec,
    host_caps: u64,
) -> Result<HashSet<Capability>, String> {
    let all = || -> Result<HashSet<Capability>, String> {
        CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(bit, _)| host_caps & (1u64 << bit) != 0)
            .map(|(_, c)| capability(c))
            .collect()
    };
    if spec.privileged {
        return all();
    }
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut set: HashSet<Capability> = DEFAULT_CAPABILITIES
        .iter()
        .map(|c| capability(c))
        .collect::<Result<_, _>>()?;
    if spec.capabilities_add.iter().any(is_all) {
        set = all()?;
    }
    if spec.capabilities_drop.iter().any(is_all) {
        set.clear();
    }
    for c in spec.capabilities_add.iter().filter(|c| !is_all(c)) {
        set.insert(capability(c)?);
    }
    for c in spec.capabilities_drop.iter().filter(|c| !is_all(c)) {
        set.remove(&capability(c)?);
    }
    Ok(set)
}

fn build_err(e: impl std::fmt::Display) -> String {
    format!("build config.json: {e}")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The device cgroup rules of a non-privileged container: nothing but the usual character
/// devices (runc creates the nodes) and the container's own ptys.
fn default_device_rules() -> Result<Vec<LinuxDeviceCgroup>, String> {
    let rule = |allow: bool,
                typ: Option<LinuxDeviceType>,
                major: Option<i64>,
                minor: Option<i64>,
                access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .access(access);
        if let Some(t) = typ {
            b = b.typ(t);
        }
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().map_err(build_err)
    };
    let c = Some(LinuxDeviceType::C);
    Ok(vec![
        rule(false, None, None, None, "rwm")?,
        rule(true, c, Some(1), Some(3), "rwm")?, // null
        rule(true, c, Some(1), Some(5), "rwm")?, // zero
        rule(true, c, Some(1), Some(7), "rwm")?, // full
        rule(true, c, Some(1), Some(8), "rwm")?, // random
        rule(true, c, Some(1), Some(9), "rwm")?, // urandom
        rule(true, c, Some(5), Some(0), "rwm")?, // tty
        rule(true, c, Some(5), Some(1), "rwm")?, // console
        rule(true, c, Some(5), Some(2), "rwm")?, // ptmx
        rule(true, c, Some(136), None, "rwm")?,  // the container's ptys
    ])
}

fn bind_mount(
    destination: PathBuf,
    source: PathBuf,
    options: Vec<String>,
) -> Result<OciMount, String> {
    MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .map_err(build_err)
}

/// The mounts: runc's defaults (the sandbox's shm at `/dev/shm`; `/sys` and the cgroups
/// writable when privileged), then the spec's, each replacing a default at its destination.
pub(crate) fn mounts(spec: &ContainerSpec) -> Result<Vec<OciMount>, String> {
    let mut list: Vec<OciMount> = get_default_mounts();
    for m in &mut list {
        let destination = m.destination().clone();
        if spec.privileged
            && (destination == Path::new("/sys") || destination == Path::new("/sys/fs/cgroup"))
            && let Some(options) = m.options_mut()
        {
            options.retain(|o| o != "ro");
            options.push("rw".to_owned());
        }
    }
    if !spec.sandbox.dir.as_os_str().is_empty() {
        let shm = bind_mount(
            "/dev/shm".into(),
            spec.sandbox.shm(),
            strings(&["rbind", "rprivate", "nosuid", "nodev", "noexec"]),
        )?;
        replace_mount(&mut list, shm);
    }
    for m in &spec.mounts {
        let mut options = Vec::new();
        let built = match &m.source {
            MountSource::Bind(source) => {
                options.push("rbind".to_owned());
                options.push(
                    match m.propagation {
                        Propagation::Private => "rprivate",
                        Propagation::HostToContainer => "rslave",
                        Propagation::Bidirectional => "rshared",
                    }
                    .to_owned(),
                );
                if m.readonly {
                    options.push("ro".to_owned());
                }
                bind_mount(m.destination.clone(), source.clone(), options)?
            }
            MountSource::Tmpfs { size_bytes } => {
                options.extend(strings(&["nosuid", "nodev", "mode=1777"]));
                if let Some(size) = size_bytes {
                    options.push(format!("size={size}"));
                }
                if m.readonly {
                    options.push("ro".to_owned());
                }
                MountBuilder::default()
                    .destination(m.destination.clone())
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(options)
                    .build()
                    .map_err(build_err)?
            }
        };
        replace_mount(&mut list, built);
    }
    Ok(list)
}

fn replace_mount(list: &mut Vec<OciMount>, mount: OciMount) {
    list.retain(|m| m.destination() != mount.destination());
    list.push(mount);
}

/// Builds config.json for `spec`.
pub(crate) fn oci_config(spec: &ContainerSpec, host: &HostFacts) -> Result<Spec, String> {
    if spec.argv.is_empty() {
        return Err("no command given".to_owned());
    }
    let caps = capabilities(spec, host.host_caps)?;
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(build_err)?;
    let user = UserBuilder::default()
        .uid(host.user.uid)
        .gid(host.user.gid)
        .additional_gids(host.user.additional_gids.clone())
        .umask(0o022u32)
        .build()
        .map_err(build_err)?;
    let rlimits = vec![
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(host.nofile)
            .soft(host.nofile)
            .build()
            .map_err(build_err)?,
    ];
    let cwd = if spec.cwd.is_empty() {
        "/".to_owned()
    } else {
        spec.cwd.clone()
    };
    let mut process = ProcessBuilder::default()
        .terminal(spec.tty)
        .user(user)
        .args(spec.argv.clone())
        .env(
            spec.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )
        .cwd(cwd)
        .no_new_privileges(spec.no_new_privileges)
        .capabilities(capabilities)
        .rlimits(rlimits)
        .build()
        .map_err(build_err)?;
    process.set_oom_score_adj(spec.resources.oom_score_adj);

    // New mount and PID namespaces per container; the pod's others joined by path. No
    // network namespace entry at all means the host's network.
    let namespace = |typ: LinuxNamespaceType, path: Option<&PathBuf>| {
        let mut b = LinuxNamespaceBuilder::default().typ(typ);
        if let Some(p) = path {
            b = b.path(p.clone());
        }
        b.build().map_err(build_err)
    };
    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Pid, None)?,
        namespace(LinuxNamespaceType::Mount, None)?,
    ];
    if !spec.sandbox.ipcns.as_os_str().is_empty() {
        namespaces.push(namespace(
            LinuxNamespaceType::Ipc,
            Some(&spec.sandbox.ipcns),
        )?);
    }
    if !spec.sandbox.utsns.as_os_str().is_empty() {
        namespaces.push(namespace(
            LinuxNamespaceType::Uts,
            Some(&spec.sandbox.utsns),
        )?);
    }
    if let Some(netns) = &spec.sandbox.netns {
        namespaces.push(namespace(LinuxNamespaceType::Network, Some(netns))?);
    }

    let r = &spec.resources;
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(v) = r.cpu_shares {
        cpu = cpu.shares(v);
    }
    if let Some(v) = r.cpu_quota {
        cpu = cpu.quota(v);
    }
    if let Some(v) = r.cpu_period {
        cpu = cpu.period(v);
    }
    let mut memory = LinuxMemoryBuilder::default();
    if let Some(limit) = r.memory_limit {
        memory = memory.limit(limit);
        // No swapping around the limit: a container over its limit is OOM-killed, as the
        // kubelet arranges it.
        if host.swap_limit {
            memory = memory.swap(limit);
        }
    }
    let device_rules = if spec.privileged {
        vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .access("rwm")
                .build()
                .map_err(build_err)?,
        ]
    } else {
        default_device_rules()?
    };
    let mut resources = LinuxResourcesBuilder::default()
        .devices(device_rules)
        .cpu(cpu.build().map_err(build_err)?)
        .memory(memory.build().map_err(build_err)?);
    if let Some(limit) = r.pids_limit {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .map_err(build_err)?,
        );
    }

    let propagation = if spec
        .mounts
        .iter()
        .any(|m| m.propagation == Propagation::Bidirectional)
    {
        "rshared"
    } else if spec
        .mounts
        .iter()
        .any(|m| m.propagation == Propagation::HostToContainer)
    {
        "rslave"
    } else {
        "rprivate"
    };
    let (masked, readonly): (Vec<String>, Vec<String>) = if spec.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            oci_spec::runtime::get_default_maskedpaths()
                .into_iter()
                .chain(["/sys/devices/virtual/powercap".to_owned()])
                .collect(),
            oci_spec::runtime::get_default_readonly_paths(),
        )
    };
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(build_err)?)
        .cgroups_path(PathBuf::from(&host.cgroup_path))
        .devices(if spec.privileged {
            host.host_devices.clone()
        } else {
            Vec::new()
        })
        .masked_paths(masked)
        .readonly_paths(readonly)
        .rootfs_propagation(propagation)
        .build()
        .map_err(build_err)?;
    let root = RootBuilder::default()
        .path("rootfs")
        .readonly(spec.readonly_rootfs)
        .build()
        .map_err(build_err)?;
    let mut config = SpecBuilder::default()
        .version("1.0.2-dev")
        .process(process)
        .root(root)
        .mounts(mounts(spec)?)
        .linux(linux)
        .build()
        .map_err(build_err)?;
    // The UTS namespace is the pod's, already named; runc refuses a hostname when joining.
    config.set_hostname(None);
    config.set_annotations(None);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_CAPS: u64 = (1 << 41) - 1;

    fn base() -> ContainerSpec {
        ContainerSpec {
            id: "c1".to_owned(),
            argv: vec!["sh".to_owned()],
            sandbox: Sandbox {
                pod_uid: "p".to_owned(),
                netns: Some("/run/x/net".into()),
                ipcns: "/run/x/ipc".into(),
                utsns: "/run/x/uts".into(),
                dir: "/run/x".into(),
            },
            ..Default::default()
        }
    }

    fn names(set: &HashSet<Capability>) -> Vec<String> {
        let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn capabilities_follow_kubernetes_rules() {
        let spec = base();
        assert_eq!(capabilities(&spec, ALL_CAPS).unwrap().len(), 14);
        let spec = ContainerSpec {
            capabilities_drop: vec!["ALL".into()],
            capabilities_add: vec!["NET_ADMIN".into(), "CAP_SYS_TIME".into()],
            ..base()
        };
        assert_eq!(
            names(&capabilities(&spec, ALL_CAPS).unwrap()),
            vec!["NET_ADMIN", "SYS_TIME"]
        );
        let spec = ContainerSpec {
            capabilities_add: vec!["ALL".into()],
            capabilities_drop: vec!["chown".into()],
            ..base()
        };
        let caps = capabilities(&spec, ALL_CAPS).unwrap();
        assert_eq!(caps.len(), 40);
        assert!(!caps.contains(&Capability::Chown));
        let spec = ContainerSpec {
            capabilities_add: vec!["NOT_A_CAP".into()],
            ..base()
        };
        assert!(
            capabilities(&spec, ALL_CAPS)
                .unwrap_err()
                .contains("NOT_A_CAP")
        );
        let spec = ContainerSpec {
            privileged: true,
            ..base()
        };
        assert_eq!(capabilities(&spec, (1 << 38) - 1).unwrap().len(), 38);
    }

    #[test]
    fn config_joins_the_sandbox_and_sets_limits() {
        let spec = ContainerSpec {
            resources: Resources {
                cpu_shares: Some(512),
                cpu_quota: Some(50_000),
                cpu_period: Some(100_000),
                memory_limit: Some(64 << 20),
                pids_limit: Some(100),
                oom_score_adj: Some(999),
            },
            readonly_rootfs: true,
            mounts: vec![Mount {
                destination: "/dev/shm".into(),
                source: MountSource::Tmpfs {
                    size_bytes: Some(1 << 20),
                },
                readonly: false,
                propagation: Propagation::Private,
            }],
            ..base()
        };
        let host = HostFacts {
            cgroup_path: "/gantry/podp/c1".to_owned(),
            host_caps: ALL_CAPS,
            nofile: 1024,
            swap_limit: true,
            ..Default::default()
        };
        let json = serde_json::to_value(oci_config(&spec, &host).unwrap()).unwrap();
        assert!(json.get("hostname").is_none());
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(json["linux"]["cgroupsPath"], "/gantry/podp/c1");
        assert_eq!(json["linux"]["resources"]["cpu"]["shares"], 512);
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(json["linux"]["resources"]["memory"]["swap"], 64 << 20);
        assert_eq!(json["linux"]["resources"]["pids"]["limit"], 100);
        assert_eq!(json["process"]["oomScoreAdj"], 999);
        let ns = json["linux"]["namespaces"].as_array().unwrap();
        assert!(
            ns.iter()
                .any(|n| n["type"] == "network" && n["path"] == "/run/x/net")
        );
        assert!(
            ns.iter()
                .any(|n| n["type"] == "pid" && n.get("path").is_none())
        );
        let shm: Vec<_> = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] == "/dev/shm")
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0]["type"], "tmpfs");
        assert!(
            json["linux"]["maskedPaths"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == "/proc/kcore")
        );
    }

    #[test]
    fn privileged_unmasks_and_opens_sys() {
        let spec = ContainerSpec {
            privileged: true,
            ..base()
        };
        let json = serde_json::to_value(
            oci_config(
                &spec,
                &HostFacts {
                    host_caps: ALL_CAPS,
                    nofile: 1024,
                    ..Default::default()
                },
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(json["linux"]["maskedPaths"], serde_json::json!([]));
        let sys = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap();
        assert!(!sys["options"].as_array().unwrap().iter().any(|o| o == "ro"));
        assert_eq!(json["linux"]["resources"]["devices"][0]["allow"], true);
    }
}
