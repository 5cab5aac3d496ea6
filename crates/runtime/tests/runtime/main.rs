//! The runtime against the real runc, as root: sandboxes, containers, shims, exec, attach,
//! logs, adoption after the agent is killed.
//!
//! A custom main (`harness = false`): the same binary is the shim (`<exe> shim <dir>`, as
//! `gantry shim` is in production) and the stand-in agent killed in the adoption test
//! (`<exe> agent-child ...`); otherwise it runs the tests through libtest-mimic, which
//! speaks libtest's command line, so `cargo test` and nextest both drive it.

mod harness;
mod tests;

use std::ffi::OsString;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use libtest_mimic::{Arguments, Failed, Trial};

fn main() -> std::process::ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("shim") => runtime::shim_main(args[2..].to_vec()),
        Some("agent-child") => return tests::agent_child(&args[2..]),
        _ => {}
    }
    let arguments = Arguments::from_args();
    let trials = tests::all()
        .into_iter()
        .map(|(name, test)| Trial::test(name, move || run(test)))
        .collect();
    libtest_mimic::run(&arguments, trials).exit_code()
}

/// A test: an async function run on a runtime of its own.
pub type Test = fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

fn run(test: Test) -> Result<(), Failed> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("the runtime tests need root (namespaces, mounts, cgroups, runc)".into());
    }
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(test());
    }));
    result.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "test panicked".to_owned());
        Failed::from(message)
    })
}
