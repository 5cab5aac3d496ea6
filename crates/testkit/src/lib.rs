//! Test support shared by test suites and benchmarks. Never a dependency of
//! production code.
//!
//! [`EtcdServer`] runs Debian's etcd on free loopback ports in a temporary
//! directory, so tests of the etcd backend (and the benchmarks that compare
//! against etcd) each get a private, disposable server. [`Launcher`] starts
//! any child process so that it dies with the test process (the end-to-end
//! suite runs `gantry`, `kubectl` and Python that way).
//!
//! [`images`] builds container images offline from Debian's packages
//! (busybox, nginx) and writes them as archives; [`Registry`] runs Debian's
//! docker-registry on loopback (anonymous, basic or token auth, HTTP or
//! HTTPS) and pushes images into it.

mod etcd;
pub mod images;
mod process;
mod registry;

pub use etcd::EtcdServer;
pub use process::{Launcher, set_parent_death_signal};
pub use registry::{ManifestFormat, Registry, RegistryAuth, RegistryOptions};
