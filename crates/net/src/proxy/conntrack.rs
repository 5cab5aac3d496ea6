//! Deleting the conntrack entries of UDP endpoints that went away.
//!
//! A UDP "connection" lives in conntrack as long as packets keep coming, and every packet
//! of it is translated to the endpoint it first got, so a client sending steadily (a DNS
//! resolver reusing its socket) would keep sending to a removed endpoint forever. As
//! kube-proxy does, the entries translated to such an endpoint are deleted once the rules no
//! longer pick it; the next packet then makes a new entry through the rules. Done with
//! Debian's `conntrack` tool, in the calling thread's network namespace.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use super::rules::Ruleset;

/// Set once the tool was found missing, so that the warning is said once.
static MISSING_TOLD: AtomicBool = AtomicBool::new(false);

/// Deletes the entries of every UDP endpoint `previous` used that `desired` no longer uses
/// for the same Service port, and returns how many were deleted. Failures are logged, not
/// returned: the rules are already applied, and a stale entry ends by itself once the
/// client pauses for conntrack's UDP timeout.
pub(crate) fn delete_stale(previous: &Ruleset, desired: &Ruleset) -> usize {
    let mut deleted = 0;
    for (id, old) in &previous.udp {
        let kept = desired.udp.get(id).map(|new| &new.endpoints);
        for endpoint in &old.endpoints {
            if kept.is_some_and(|kept| kept.contains(endpoint)) {
                continue;
            }
            for (address, port) in &old.frontends {
                match delete(*address, *port, *endpoint) {
                    Ok(n) => deleted += n,
                    Err(message) => {
                        tracing::warn!(service = %id, %endpoint, "conntrack: {message}");
                    }
                }
            }
        }
    }
    deleted
}

/// `conntrack -D -p udp [--orig-dst ADDRESS] --orig-port-dst PORT --reply-src ENDPOINT`:
/// the entries of clients that sent to the Service's address (or, for a node port, to any
/// address at that port) and were answered by the endpoint.
fn delete(address: Option<Ipv4Addr>, port: u16, endpoint: Ipv4Addr) -> Result<usize, String> {
    let mut command = Command::new("conntrack");
    command.args(["-D", "-p", "udp"]);
    if let Some(address) = address {
        command.args(["--orig-dst", &address.to_string()]);
    }
    command
        .args(["--orig-port-dst", &port.to_string()])
        .args(["--reply-src", &endpoint.to_string()]);
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !MISSING_TOLD.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "conntrack is not installed: UDP clients may keep reaching removed endpoints"
                );
            }
            return Ok(0);
        }
        Err(e) => return Err(format!("running conntrack: {e}")),
    };
    // "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted." on stderr,
    // with exit status 1 when the count is 0.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let count = stderr
        .split_once("):")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok());
    match count {
        Some(n) => Ok(n),
        None => Err(format!("conntrack -D failed: {}", stderr.trim())),
    }
}
