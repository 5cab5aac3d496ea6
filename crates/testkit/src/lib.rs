//! Test support shared by test suites and benchmarks. Never a dependency of
//! production code.
//!
//! [`EtcdServer`] runs Debian's etcd on free loopback ports in a temporary
//! directory, so tests of the etcd backend (and the benchmarks that compare
//! against etcd) each get a private, disposable server.

mod etcd;

pub use etcd::EtcdServer;
