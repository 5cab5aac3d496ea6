//! The stream protocols against real clients: kubectl 1.32 and the official
//! Python client, talking to a small HTTPS server (`server`) that hands
//! their upgrades to this crate.

mod kubectl;
mod python;
mod raw;
mod server;
