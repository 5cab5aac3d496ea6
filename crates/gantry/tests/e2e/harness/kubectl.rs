//! The real kubectl (`/usr/bin/kubectl`, 1.32) against a test server.
//!
//! Every command gets the server's admin kubeconfig and its own
//! `--cache-dir`: kubectl (and the version dispatcher in front of it) cache
//! discovery and `/version` per host and port, and a stale cache from an
//! earlier server on the same port would change what is being tested.

use std::process::Command;
use std::time::Duration;

use super::process::{self, Background, Output};
use super::server::Server;

/// How long one kubectl command may take.
const KUBECTL_LIMIT: Duration = Duration::from_secs(60);

/// The kubectl binary: `$KUBECTL`, or `kubectl` on the PATH.
fn binary() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned())
}

/// A kubectl command being put together.
#[derive(Debug)]
pub struct Kubectl {
    command: Command,
    stdin: Option<Vec<u8>>,
    limit: Duration,
}

impl Kubectl {
    pub(super) fn new(server: &Server) -> Self {
        let mut command = Command::new(binary());
        command
            .env("KUBECONFIG", server.kubeconfig())
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .env_remove("KUBE_EDITOR")
            .env("HOME", server.files_dir())
            // kubectl edit keeps refused edits in the temporary directory.
            .env("TMPDIR", server.tmp_dir())
            .arg("--cache-dir")
            .arg(server.kubectl_cache());
        Self {
            command,
            stdin: None,
            limit: KUBECTL_LIMIT,
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for a in args {
            self.command.arg(a.as_ref());
        }
        self
    }

    /// Feeds `input` to stdin (for `-f -`).
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    /// Uses another kubeconfig.
    pub fn kubeconfig(self, path: &std::path::Path) -> Self {
        self.env("KUBECONFIG", path)
    }

    /// Runs it and returns what happened, success or not.
    pub fn run(self) -> Output {
        process::run(self.command, self.stdin.as_deref(), self.limit)
    }

    /// Runs it, asserts it succeeded, and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        let out = self.run();
        assert!(out.success(), "kubectl failed:\n{out}");
        out.stdout
    }

    /// Runs it, asserts it failed, and returns stderr.
    #[track_caller]
    pub fn fails(self) -> String {
        let out = self.run();
        assert!(!out.success(), "kubectl should have failed:\n{out}");
        out.stderr
    }

    /// Starts it in the background (for `get -w`).
    pub fn spawn(self) -> Background {
        Background::spawn(self.command)
    }
}
