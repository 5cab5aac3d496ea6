//! Python scripts from `crates/gantry/tests/python/`, run with the official
//! client (`kubernetes==32.0.1`, the line that targets Kubernetes 1.32).
//!
//! The interpreter is `$GANTRY_PYTHON`, or the virtual environment
//! `./dev test` creates at `/var/cache/gantry/venv`. Each server gets its
//! own `TMPDIR`, because the dynamic client caches discovery there.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::{self, Output};
use super::server::Server;

/// Where `./dev` puts the virtual environment.
const DEFAULT_VENV_PYTHON: &str = "/var/cache/gantry/venv/bin/python";

/// How long one script may take.
const SCRIPT_LIMIT: Duration = Duration::from_secs(90);

/// The interpreter with the Kubernetes client installed; panics with what
/// to do when there is none.
pub fn interpreter() -> PathBuf {
    let path = std::env::var_os("GANTRY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV_PYTHON));
    assert!(
        path.exists(),
        "no Python with the Kubernetes client at {}: run `./dev test` (it creates the venv \
         and installs kubernetes==32.0.1) or set GANTRY_PYTHON to an interpreter that has it",
        path.display()
    );
    path
}

/// The directory of the test scripts.
pub fn scripts_dir() -> PathBuf {
    package_dir().join("tests/python")
}

/// A script run being put together.
#[derive(Debug)]
pub struct Python {
    command: Command,
}

impl Python {
    pub(super) fn new(server: &Server, script: &str) -> Self {
        let mut command = Command::new(interpreter());
        command
            .arg(scripts_dir().join(script))
            .current_dir(scripts_dir())
            .env("KUBECONFIG", server.kubeconfig())
            .env("TMPDIR", server.tmp_dir())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONPATH", scripts_dir());
        Self { command }
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

    /// Runs it and returns what happened.
    pub fn run(self) -> Output {
        process::run(self.command, None, SCRIPT_LIMIT)
    }

    /// Runs it, asserts it succeeded, and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        let out = self.run();
        assert!(out.success(), "python script failed:\n{out}");
        out.stdout
    }
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
