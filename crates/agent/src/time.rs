//! Times as the Kubernetes API writes them.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, RFC 3339 to the second (`Time`).
pub(crate) fn now() -> String {
    rfc3339(SystemTime::now())
}

/// Now, RFC 3339 to the microsecond (`MicroTime`).
pub(crate) fn micro_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A time, RFC 3339 to the second.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 time.
pub(crate) fn parse(s: &str) -> Option<SystemTime> {
    DateTime::parse_from_rfc3339(s).ok().map(SystemTime::from)
}
