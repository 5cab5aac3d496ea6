//! Lease deadlines.
//!
//! Which leases exist, their TTLs and their keys are part of the durable
//! state (`mvcc.rs`). When each one expires is not: like etcd, a restart gives
//! every lease its full TTL again, and keep-alives only move deadlines in
//! memory. Expired leases are revoked through the writer, like any write, and
//! the writer re-checks the deadline first so a keep-alive that raced the
//! expiry wins.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::types::LeaseId;

/// How long to wait before asking the writer again to revoke an expired
/// lease whose revocation has not happened yet (for example because the disk
/// was full).
const RESUBMIT_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Deadline {
    at: Instant,
    /// When the expiry loop last asked for this lease's revocation.
    submitted: Option<Instant>,
}

/// The deadlines of every live lease.
#[derive(Debug, Default)]
pub(crate) struct Lessor {
    deadlines: Mutex<HashMap<LeaseId, Deadline>>,
}

impl Lessor {
    /// Starts the clock of a lease that was just granted (or loaded at start).
    pub(crate) fn granted(&self, id: LeaseId, ttl: i64, now: Instant) {
        self.deadlines.lock().insert(
            id,
            Deadline {
                at: now + ttl_duration(ttl),
                submitted: None,
            },
        );
    }

    /// Forgets a revoked lease.
    pub(crate) fn revoked(&self, id: LeaseId) {
        self.deadlines.lock().remove(&id);
    }

    /// Renews a lease for `ttl` seconds from `now`. Fails for an unknown
    /// lease and for one already past its deadline (its revocation is under
    /// way), as etcd does.
    pub(crate) fn renew(&self, id: LeaseId, ttl: i64, now: Instant) -> bool {
        match self.deadlines.lock().get_mut(&id) {
            Some(d) if d.at > now => {
                d.at = now + ttl_duration(ttl);
                d.submitted = None;
                true
            }
            _ => false,
        }
    }

    /// Time left before the lease expires, or `None` if it is unknown.
    pub(crate) fn remaining(&self, id: LeaseId, now: Instant) -> Option<Duration> {
        self.deadlines
            .lock()
            .get(&id)
            .map(|d| d.at.saturating_duration_since(now))
    }

    /// Whether the lease is past its deadline.
    pub(crate) fn is_expired(&self, id: LeaseId, now: Instant) -> bool {
        self.deadlines.lock().get(&id).is_some_and(|d| d.at <= now)
    }

    /// Leases past their deadline whose revocation has not been asked for
    /// recently; marks them as asked for.
    pub(crate) fn due(&self, now: Instant) -> Vec<LeaseId> {
        let mut due = Vec::new();
        for (id, d) in self.deadlines.lock().iter_mut() {
            if d.at <= now
                && d.submitted
                    .is_none_or(|s| now.duration_since(s) >= RESUBMIT_AFTER)
            {
                d.submitted = Some(now);
                due.push(*id);
            }
        }
        due.sort_unstable();
        due
    }
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_expire_renew_and_resubmit() {
        let lessor = Lessor::default();
        let t0 = Instant::now();
        lessor.granted(1, 2, t0);
        lessor.granted(2, 10, t0);
        assert!(lessor.due(t0 + Duration::from_secs(1)).is_empty());
        assert!(lessor.renew(1, 2, t0 + Duration::from_secs(1)));
        assert!(lessor.due(t0 + Duration::from_millis(2500)).is_empty());
        let t3 = t0 + Duration::from_secs(3);
        assert!(lessor.is_expired(1, t3));
        assert_eq!(lessor.due(t3), vec![1]);
        // Asked for once; not again until the resubmit delay has passed.
        assert!(lessor.due(t3 + Duration::from_millis(100)).is_empty());
        assert_eq!(lessor.due(t3 + RESUBMIT_AFTER), vec![1]);
        // An expired lease cannot be renewed.
        assert!(!lessor.renew(1, 2, t3));
        lessor.revoked(1);
        assert_eq!(lessor.remaining(1, t3), None);
        assert_eq!(lessor.remaining(2, t3), Some(Duration::from_secs(7)));
    }
}
