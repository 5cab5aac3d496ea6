//! Network namespaces for the tests: made under a temporary directory, looked at with `ip`
//! and `nft` through `nsenter`, and removed in `Drop` even when a test fails.

use std::fs::File;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use net::{NetworkConfig, connect_in_netns, run_in_netns};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Fails the test early, and clearly, without the rights it needs.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the pod network tests need root (network namespaces, veth, nftables)"
    );
}

/// A network namespace that lives as a bind mount of a thread's namespace file, so it needs
/// no process; it goes (with every link in it) when the mount is removed on drop.
pub struct Netns {
    path: PathBuf,
    // Removed after the mount (fields drop after `drop` runs).
    _dir: TempDir,
}

impl Netns {
    /// A new, empty namespace (only `lo`, down).
    pub fn new(label: &str) -> Netns {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix(&format!("gantry-net-test-{}-", std::process::id()))
            .tempdir()
            .expect("temp dir");
        let path = dir.path().join(label);
        File::create(&path).expect("namespace file");
        let target = path.clone();
        std::thread::spawn(move || -> nix::Result<()> {
            // Only this thread moves; it ends right after.
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        })
        .join()
        .expect("namespace thread")
        .expect("unshare and bind-mount a network namespace");
        Netns { path, _dir: dir }
    }

    /// The namespace file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `ip <args>` inside, panicking on failure; returns stdout.
    pub fn ip(&self, args: &str) -> String {
        self.cmd("ip", args).expect("ip command")
    }

    /// Runs `program <args>` inside; Err holds stderr.
    pub fn cmd(&self, program: &str, args: &str) -> Result<String, String> {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .arg(program)
            .args(args.split_whitespace())
            .output()
            .expect("run nsenter");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {args}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `ip -j link show dev <name>` as JSON, or None when the link does not exist.
    pub fn link(&self, name: &str) -> Option<serde_json::Value> {
        let out = self.cmd("ip", &format!("-j link show dev {name}")).ok()?;
        let links: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
        links.get(0).cloned()
    }

    /// The MTU of link `name`.
    pub fn mtu(&self, name: &str) -> u64 {
        self.link(name).unwrap_or_else(|| panic!("no link {name}"))["mtu"]
            .as_u64()
            .unwrap()
    }

    /// The transmit and receive queues link `name` was made with.
    #[allow(dead_code)] // not every test binary looks
    pub fn queues(&self, name: &str) -> (u64, u64) {
        let out = self
            .cmd("ip", &format!("-d -j link show dev {name}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let links: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
        let count = |key: &str| {
            links[0][key]
                .as_u64()
                .unwrap_or_else(|| panic!("no {key} for {name} in {out}"))
        };
        (count("num_tx_queues"), count("num_rx_queues"))
    }

    /// The IPv4 addresses (`a.b.c.d/len`) of link `name`.
    pub fn ipv4_addresses(&self, name: &str) -> Vec<String> {
        let out = self.ip(&format!("-j -4 addr show dev {name}"));
        let links: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
        links[0]["addr_info"]
            .as_array()
            .map(|infos| {
                infos
                    .iter()
                    .map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The names of every link inside.
    pub fn link_names(&self) -> Vec<String> {
        let out = self.ip("-j link show");
        let links: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
        links
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }

    /// Runs the async `body` on a thread inside this namespace with a runtime of its own:
    /// what it sets up acts here, as the agent's does in the node's namespace.
    pub fn block_on<T: Send, Fut: Future<Output = T>>(
        &self,
        body: impl FnOnce() -> Fut + Send,
    ) -> T {
        run_in_netns(&self.path, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(body())
        })
        .expect("enter the namespace")
    }

    /// A TCP listener inside this namespace on `addr` (port 0: any), usable from any thread.
    pub fn listen(&self, addr: SocketAddr) -> tokio::net::TcpListener {
        let listener = run_in_netns(&self.path, || std::net::TcpListener::bind(addr))
            .expect("enter the namespace")
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        listener.set_nonblocking(true).unwrap();
        tokio::net::TcpListener::from_std(listener).expect("tokio listener")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = umount2(&self.path, MntFlags::MNT_DETACH) {
            eprintln!("unmounting {}: {e}", self.path.display());
        }
    }
}

/// A config for a test network with its state under `state`.
pub fn config(state: &Path, pod_cidr: &str) -> NetworkConfig {
    NetworkConfig {
        bridge: "gantry0".into(),
        pod_cidr: pod_cidr.parse().unwrap(),
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        mtu: None,
        state_dir: state.to_path_buf(),
        nft_table: "gantry".into(),
        overlay: None,
    }
}

/// Connects from inside `from` to `listener` at `addr`, says hello both ways and returns
/// the address the server saw the connection come from.
pub async fn round_trip(
    from: &Path,
    addr: SocketAddr,
    listener: &tokio::net::TcpListener,
) -> Result<SocketAddr, String> {
    let connect = async {
        let mut client = connect_in_netns(from, addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let (mut server, peer) = listener.accept().await.map_err(|e| e.to_string())?;
        client.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        server
            .read_exact(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.map_err(|e| e.to_string())?;
        client
            .read_exact(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"pong");
        Ok(peer)
    };
    tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| format!("timed out reaching {addr}"))?
}

/// `ip:port`.
pub fn sock(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// Waits until `check` holds, for up to five seconds (namespaces are cleaned up by the
/// kernel in the background).
#[allow(dead_code)] // not every test binary waits
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
