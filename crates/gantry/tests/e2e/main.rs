//! End-to-end tests: the real `gantry` binary driven by the real kubectl
//! (1.32) and the real Python client (`kubernetes==32.0.1`), checking what
//! issues 3 and 4 promise: that both work unchanged, as against a real
//! cluster, and that the pods they create run (`pods`, on a `gantry up`
//! node; as root); and, of issue 5, the controllers so far (`controllers`, `gc`,
//! `endpoints`).
//!
//! Most tests share one server per process ([`harness::Server::shared`])
//! and work in a namespace of their own; tests about the server itself
//! (authentication, TLS, restarts) start a private one. Under nextest every
//! test is a process of its own, so each gets a fresh server either way.

mod harness;

mod access;
mod apply;
mod batch;
mod commands;
mod controllers;
mod crds;
mod delete;
mod discovery;
mod dns;
mod endpoints;
mod errors;
mod etcd;
mod gc;
mod get;
mod ingress;
mod legacy;
mod modify;
mod netpol;
mod pods;
mod policy;
mod python;
mod semantics;
mod server;
mod services;
mod typed;
mod watch;
mod workloads;
