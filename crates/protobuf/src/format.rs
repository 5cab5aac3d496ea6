//! Times and durations printed as Go prints them in Kubernetes' JSON.

/// Seconds since the Unix epoch of Go's zero time (0001-01-01T00:00:00Z),
/// which Kubernetes prints as `null`.
pub(crate) const GO_ZERO_TIME: i64 = -62_135_596_800;

/// `2026-11-23T10:00:00Z` (meta/v1 `Time`, RFC 3339 in UTC), or with
/// `micros` `2026-11-23T10:00:00.000000Z` (`MicroTime`). `None` when the
/// year is outside 0..=9999, which Go refuses to print.
pub(crate) fn rfc3339(seconds: i64, micros: Option<u32>) -> Option<String> {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    Some(match micros {
        None => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
        Some(us) => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{us:06}Z"),
    })
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration in nanoseconds as Go's `time.Duration.String` prints it:
/// `5m0s`, `1h0m0s`, `1.5s`, `300ms`, `0s`.
pub(crate) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let negative = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Below one second: a single unit with a fraction.
        let (unit, scale) = match u {
            0..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        out.push_str(&fraction(u, scale));
        out.push_str(unit);
    } else {
        let seconds_part = fraction(u % 60_000_000_000, 9);
        u /= 60_000_000_000;
        let mut head = String::new();
        if u > 0 {
            let minutes = u % 60;
            u /= 60;
            if u > 0 {
                head = format!("{u}h");
            }
            head.push_str(&format!("{minutes}m"));
        }
        out.push_str(&head);
        out.push_str(&seconds_part);
        out.push('s');
    }
    if negative {
        out.insert(0, '-');
    }
    out
}

/// `v / 10^scale` with the fraction's trailing zeros (and a bare point)
/// dropped, as Go's `fmtFrac` and `fmtInt` do.
fn fraction(v: u64, scale: u32) -> String {
    let divisor = 10u64.pow(scale);
    let (int, frac) = (v / divisor, v % divisor);
    if frac == 0 {
        return int.to_string();
    }
    let digits = format!("{frac:0width$}", width = scale as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_like_go() {
        assert_eq!(rfc3339(0, None).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_795_428_000, None).unwrap(),
            "2026-11-23T10:00:00Z"
        );
        assert_eq!(
            rfc3339(1_795_428_000, Some(1_500)).unwrap(),
            "2026-11-23T10:00:00.001500Z"
        );
        assert_eq!(rfc3339(-1, None).unwrap(), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(951_782_400, None).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(GO_ZERO_TIME, None).unwrap(), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_800, None), None);
    }

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (300_000_000, "300ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (300_000_000_000, "5m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_400_500_000_000, "1h30m0.5s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
    }
}
