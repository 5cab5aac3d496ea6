//! Pieces of `kubectl get` tables shared by every kind.

use serde_json::Value;

use crate::Column;

/// A column shown by default.
pub fn column(name: &str, ty: &str, description: &str) -> Column {
    Column {
        name: name.to_owned(),
        ty: ty.to_owned(),
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: description.to_owned(),
        priority: 0,
    }
}

/// A column shown only with `-o wide`.
pub fn wide(name: &str, ty: &str, description: &str) -> Column {
    Column {
        priority: 1,
        ..column(name, ty, description)
    }
}

/// The `Name` column every table starts with.
pub fn name_column() -> Column {
    column(
        "Name",
        "string",
        "Name must be unique within a namespace. Is required when creating resources, although \
         some resources may allow a client to request the generation of an appropriate name \
         automatically.",
    )
}

/// The `Age` column.
pub fn age_column() -> Column {
    column(
        "Age",
        "string",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    )
}

/// The object's name, for the `Name` column.
pub fn name(obj: &Value) -> Value {
    obj.pointer("/metadata/name")
        .cloned()
        .unwrap_or_else(|| Value::String(String::new()))
}

/// The object's age at `now` (seconds since the epoch), for the `Age` column.
pub fn age(obj: &Value, now: i64) -> Value {
    Value::String(since(obj.pointer("/metadata/creationTimestamp"), now))
}

/// How long ago an RFC 3339 timestamp was, as `kubectl` prints it
/// (`<unknown>` when absent).
pub fn since(timestamp: Option<&Value>, now: i64) -> String {
    match timestamp.and_then(Value::as_str).and_then(parse_time) {
        Some(at) => human_duration(now - at),
        None => "<unknown>".into(),
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp.
pub fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp())
}

/// A duration in seconds as Kubernetes prints ages: `45s`, `5m3s`, `3h`,
/// `2d4h`, `3y12d`. Up to a second in the future counts as now; further
/// is `<invalid>`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Joins strings with commas, or `<none>` when there are none, as
/// `kubectl` prints lists in cells.
pub fn join_or_none<I: IntoIterator<Item = String>>(items: I) -> String {
    let joined: Vec<String> = items.into_iter().collect();
    if joined.is_empty() {
        "<none>".into()
    } else {
        joined.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (2 * 365 * 86400, "2y"),
            (2 * 365 * 86400 + 3 * 86400, "2y3d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn cells_from_objects() {
        let obj = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-23T10:00:00Z"}});
        let now = parse_time("2026-11-23T10:05:00Z").unwrap();
        assert_eq!(name(&obj), "web");
        assert_eq!(age(&obj, now), "5m");
        assert_eq!(since(None, now), "<unknown>");
        assert_eq!(join_or_none(Vec::new()), "<none>");
    }
}
