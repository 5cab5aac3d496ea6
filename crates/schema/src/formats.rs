//! String formats, as the apiextensions API server checks them on custom
//! resources.
//!
//! Kubernetes keeps only the formats its validator knows (`date-time`,
//! `byte`, `uuid`, `ipv4`, ...) and drops every other one from a CRD's
//! schema before validating, so `int32`, `int64` and unknown formats are
//! never checked: [`is_valid`] answers `None` for them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `s` is a valid value of `format`; `None` when Kubernetes does
/// not check the format.
pub(crate) fn is_valid(format: &str, s: &str) -> Option<bool> {
    // Kubernetes normalises format names by dropping dashes: `date-time`
    // and `datetime` are one format.
    let normalised: String = format.chars().filter(|c| *c != '-').collect();
    let valid = match normalised.as_str() {
        "datetime" => is_date_time(s),
        "date" => is_date(s),
        "byte" => is_base64(s),
        "password" => true,
        "uuid" => is_uuid(s, None),
        "uuid3" => is_uuid(s, Some(b'3')),
        "uuid4" => is_uuid(s, Some(b'4')),
        "uuid5" => is_uuid(s, Some(b'5')),
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "mac" => is_mac(s),
        "hostname" => is_hostname(s),
        "email" => is_email(s),
        "uri" => is_uri(s),
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "hexcolor" => is_hex_color(s),
        "rgbcolor" => is_rgb_color(s),
        "duration" => is_duration(s),
        "isbn" => is_isbn10(s) || is_isbn13(s),
        "isbn10" => is_isbn10(s),
        "isbn13" => is_isbn13(s),
        "creditcard" => is_credit_card(s),
        "ssn" => is_ssn(s),
        _ => return None,
    };
    Some(valid)
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD`, with a month and day that exist.
fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 || !digits(y) || !digits(m) || !digits(d) {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>())
    else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// RFC 3339 (`2006-01-02T15:04:05Z`, with optional fraction and a `Z` or
/// numeric offset), the forms Kubernetes' date-time parser accepts,
/// including a space or lowercase `t` as separator and no offset.
fn is_date_time(s: &str) -> bool {
    if s.len() < 19 {
        return false;
    }
    let (date, rest) = s.split_at(10);
    if !is_date(date) {
        return false;
    }
    let mut chars = rest.chars();
    if !matches!(chars.next(), Some('T' | 't' | ' ')) {
        return false;
    }
    let rest = chars.as_str();
    let (clock, mut zone) = rest.split_at(8.min(rest.len()));
    if !is_clock(clock) {
        return false;
    }
    if let Some(fraction) = zone.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return false;
        }
        zone = &fraction[end..];
    }
    match zone {
        "" | "Z" | "z" => true,
        _ => {
            let Some(offset) = zone.strip_prefix(['+', '-']) else {
                return false;
            };
            let (h, m) = match offset.split_once(':') {
                Some(hm) => hm,
                None if offset.len() == 4 => offset.split_at(2),
                None => return false,
            };
            h.len() == 2
                && m.len() == 2
                && digits(h)
                && digits(m)
                && h.parse::<u32>().is_ok_and(|h| h < 24)
                && m.parse::<u32>().is_ok_and(|m| m < 60)
        }
    }
}

/// `hh:mm:ss`.
fn is_clock(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let [h, m, sec] = parts.as_slice() else {
        return false;
    };
    let field =
        |x: &str, max: u32| x.len() == 2 && digits(x) && x.parse::<u32>().is_ok_and(|v| v <= max);
    // 60 seconds allows a leap second.
    field(h, 23) && field(m, 59) && field(sec, 60)
}

/// Standard base64 with padding, as Go's `base64.StdEncoding` decodes it
/// (line breaks are ignored).
fn is_base64(s: &str) -> bool {
    let body: Vec<u8> = s.bytes().filter(|b| *b != b'\n' && *b != b'\r').collect();
    if !body.len().is_multiple_of(4) {
        return false;
    }
    let padding = body.iter().rev().take_while(|b| **b == b'=').count();
    if padding > 2 {
        return false;
    }
    body[..body.len() - padding]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// A UUID, dashes optional, any case; `version` pins the version digit
/// (and for 4 and 5 the variant).
fn is_uuid(s: &str, version: Option<u8>) -> bool {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    // Dashes, when present, must sit at the usual places.
    if s.len() != 32 {
        let groups: Vec<usize> = s.split('-').map(str::len).collect();
        if groups != [8, 4, 4, 4, 12] {
            return false;
        }
    }
    match version {
        None => true,
        Some(v) => {
            hex[12] == v
                && (v == b'3' || matches!(hex[16].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b'))
        }
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = prefix.parse::<u8>() else {
        return false;
    };
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => bits <= 32 && digits(prefix),
        Ok(IpAddr::V6(_)) => bits <= 128 && digits(prefix),
        Err(_) => false,
    }
}

/// A MAC address as Go's `net.ParseMAC` reads it: 6, 8 or 20 octets
/// separated by `:` or `-`, or groups of four hex digits separated by `.`.
fn is_mac(s: &str) -> bool {
    let octets = |sep: char| {
        let parts: Vec<&str> = s.split(sep).collect();
        matches!(parts.len(), 6 | 8 | 20)
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let dotted = {
        let parts: Vec<&str> = s.split('.').collect();
        matches!(parts.len(), 3 | 4 | 10)
            && parts
                .iter()
                .all(|p| p.len() == 4 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    octets(':') || octets('-') || dotted
}

/// A host name (RFC 1123 labels, at most 255 characters).
fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// An address of the form `local@domain` (optionally `Name <local@domain>`).
fn is_email(s: &str) -> bool {
    let address = match (s.find('<'), s.strip_suffix('>')) {
        (Some(start), Some(inner)) => &inner[start + 1..],
        _ => s,
    };
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !address.contains(char::is_whitespace)
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

/// An absolute URI (`scheme:...`) or an absolute path, as Go's
/// `url.ParseRequestURI` accepts.
fn is_uri(s: &str) -> bool {
    if s.is_empty() || s.contains(char::is_whitespace) {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    match s.split_once(':') {
        Some((scheme, rest)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty()
        }
        None => false,
    }
}

fn is_hex_color(s: &str) -> bool {
    let hex = s.strip_prefix('#').unwrap_or(s);
    matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `rgb(r, g, b)` with components from 0 to 255.
fn is_rgb_color(s: &str) -> bool {
    let Some(inner) = s.strip_prefix("rgb(").and_then(|r| r.strip_suffix(')')) else {
        return false;
    };
    let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| digits(p) && p.parse::<u32>().is_ok_and(|v| v <= 255))
}

/// A duration: Go's form (`1h30m`, `250ms`) or the spaced form with unit
/// words (`3 days`, `2 hours`) that Kubernetes' validator also accepts.
fn is_duration(s: &str) -> bool {
    const UNITS: [&str; 9] = ["ns", "us", "µs", "ms", "s", "m", "h", "d", "w"];
    const WORDS: [&str; 16] = [
        "nanosecond",
        "nanoseconds",
        "microsecond",
        "microseconds",
        "millisecond",
        "milliseconds",
        "second",
        "seconds",
        "minute",
        "minutes",
        "hour",
        "hours",
        "day",
        "days",
        "week",
        "weeks",
    ];
    let spaced = s.split_once(char::is_whitespace).is_some_and(|(n, unit)| {
        digits(n) && {
            let unit = unit.trim();
            WORDS.contains(&unit) || UNITS.contains(&unit)
        }
    });
    if spaced {
        return true;
    }
    // Go: an optional sign, then one or more number-unit pairs.
    let mut rest = s.strip_prefix(['+', '-']).unwrap_or(s);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." {
            return false;
        }
        rest = &rest[number_end..];
        let Some(unit) = UNITS
            .iter()
            .filter(|u| rest.starts_with(**u))
            .max_by_key(|u| u.len())
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

fn isbn_digits(s: &str) -> Vec<u8> {
    s.bytes().filter(|b| *b != b'-' && *b != b' ').collect()
}

fn is_isbn10(s: &str) -> bool {
    let d = isbn_digits(s);
    if d.len() != 10 {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in d.iter().enumerate() {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'X' | b'x' if i == 9 => 10,
            _ => return false,
        };
        sum += v * (10 - i as u32);
    }
    sum.is_multiple_of(11)
}

fn is_isbn13(s: &str) -> bool {
    let d = isbn_digits(s);
    if d.len() != 13 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    sum.is_multiple_of(10)
}

/// A card number of a known issuer's length and prefix (any non-digits
/// mixed in are ignored, as Kubernetes' validator does).
fn is_credit_card(s: &str) -> bool {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    let starts = |p: &str| d.starts_with(p);
    match d.len() {
        13 => starts("4"),
        14 => ["300", "301", "302", "303", "304", "305", "36", "38"]
            .iter()
            .any(|p| starts(p)),
        15 => starts("34") || starts("37") || starts("2131") || starts("1800"),
        16 => {
            starts("4")
                || ["51", "52", "53", "54", "55"].iter().any(|p| starts(p))
                || starts("6011")
                || starts("65")
                || starts("35")
        }
        _ => false,
    }
}

/// `123-45-6789`, dashes or spaces optional.
fn is_ssn(s: &str) -> bool {
    let b = s.as_bytes();
    let d: Vec<u8> = b.iter().copied().filter(u8::is_ascii_digit).collect();
    if d.len() != 9 {
        return false;
    }
    match b.len() {
        9 => true,
        10 => matches!(b[3], b'-' | b' ') || matches!(b[5], b'-' | b' '),
        11 => matches!(b[3], b'-' | b' ') && matches!(b[6], b'-' | b' '),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_accept_and_reject_like_kubernetes() {
        let table: &[(&str, &str, Option<bool>)] = &[
            ("date-time", "2024-02-29T23:59:60.123+01:00", Some(true)),
            ("date-time", "2024-02-29T10:00:00Z", Some(true)),
            ("date-time", "2024-02-29 10:00:00", Some(true)),
            ("date-time", "2023-02-29T10:00:00Z", Some(false)),
            ("date-time", "2024-01-01", Some(false)),
            ("datetime", "nope", Some(false)),
            ("date", "2024-12-31", Some(true)),
            ("date", "2024-13-01", Some(false)),
            ("byte", "aGVsbG8=", Some(true)),
            ("byte", "aGVsbG8", Some(false)),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", Some(true)),
            ("uuid", "123E4567E89B12D3A456426614174000", Some(true)),
            ("uuid", "123e4567-e89b-12d3-a456", Some(false)),
            ("uuid4", "123e4567-e89b-42d3-a456-426614174000", Some(true)),
            ("uuid4", "123e4567-e89b-12d3-a456-426614174000", Some(false)),
            ("ipv4", "10.0.0.1", Some(true)),
            ("ipv4", "10.0.0.256", Some(false)),
            ("ipv6", "fe80::1", Some(true)),
            ("cidr", "10.0.0.0/8", Some(true)),
            ("cidr", "10.0.0.0/33", Some(false)),
            ("mac", "00:1a:2b:3c:4d:5e", Some(true)),
            ("mac", "00:1a:2b", Some(false)),
            ("hostname", "example.com", Some(true)),
            ("hostname", "-bad.com", Some(false)),
            ("email", "a@example.com", Some(true)),
            ("email", "example.com", Some(false)),
            ("uri", "https://example.com/x", Some(true)),
            ("uri", "/just/a/path", Some(true)),
            ("uri", "relative/path", Some(false)),
            ("duration", "1h30m", Some(true)),
            ("duration", "3 days", Some(true)),
            ("duration", "soon", Some(false)),
            ("hexcolor", "#ff00AA", Some(true)),
            ("rgbcolor", "rgb(1, 2, 300)", Some(false)),
            ("isbn10", "0321751043", Some(true)),
            ("isbn13", "978-0321751041", Some(true)),
            ("ssn", "123-45-6789", Some(true)),
            ("creditcard", "4111 1111 1111 1111", Some(true)),
            ("bsonobjectid", "507f1f77bcf86cd799439011", Some(true)),
            ("password", "anything", Some(true)),
            ("int32", "not checked", None),
            ("int64", "x", None),
            ("made-up", "x", None),
        ];
        for (format, value, expected) in table {
            assert_eq!(is_valid(format, value), *expected, "{format} {value}");
        }
    }
}
