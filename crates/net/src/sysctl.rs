//! The kernel settings the pod network needs, per network namespace.

use std::fs;

use crate::NetError;

/// IPv4 forwarding, without which nothing leaves or reaches a pod but the node itself.
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Turns on IPv4 forwarding in the calling thread's network namespace (`/proc/sys/net`
/// resolves to the namespace of the thread that opens it).
pub(crate) fn enable_ip_forward() -> Result<(), NetError> {
    let current = fs::read_to_string(IP_FORWARD).map_err(|e| NetError::io(IP_FORWARD, e))?;
    if current.trim() == "1" {
        return Ok(());
    }
    fs::write(IP_FORWARD, "1\n").map_err(|e| NetError::io(IP_FORWARD, e))
}
