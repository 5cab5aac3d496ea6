//! Resource quantities (`500m`, `1Gi`, `2e3`) as Kubernetes reads, compares
//! and prints them.
//!
//! A quantity is kept as a whole number of nano-units, which is the finest
//! precision Kubernetes keeps, together with the notation it was written in:
//! Kubernetes prints a quantity back in the notation it came in, in its
//! canonical form (`1000m` becomes `1`, `1024Mi` becomes `1Gi`, `0.5`
//! becomes `500m`), and users see that form in every object they read.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Raw;

/// The message Kubernetes gives for a string that is not a quantity.
pub(crate) const PARSE_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

/// The notation a quantity was written in, which decides how it prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notation {
    /// Powers of 1000 with SI suffixes (`m`, `k`, `M`, ...), or none.
    DecimalSI,
    /// Powers of 1024 with IEC suffixes (`Ki`, `Mi`, ...).
    BinarySI,
    /// Powers of ten written as an exponent (`1e3`).
    DecimalExponent,
}

/// A parsed quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    /// The value in nano-units, rounded up (away from zero) when written
    /// more precisely, as Kubernetes rounds.
    nanos: i128,
    /// How the value prints.
    notation: Notation,
}

impl Quantity {
    /// A whole number in decimal notation.
    pub fn from_int(value: i64) -> Self {
        Self {
            nanos: i128::from(value) * NANO,
            notation: Notation::DecimalSI,
        }
    }

    /// The value in nano-units.
    pub fn nanos(self) -> i128 {
        self.nanos
    }

    /// The value in thousandths, rounded up, as Kubernetes' `MilliValue`.
    pub fn milli_value(self) -> i128 {
        ceil_div(self.nanos, 1_000_000)
    }

    /// Whether the value is below zero.
    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// The sum, printed in this quantity's notation.
    pub fn plus(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            notation: self.notation,
        }
    }

    /// The difference, printed in this quantity's notation.
    pub fn minus(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            notation: self.notation,
        }
    }

    /// The value rounded up to thousandths, as Kubernetes' defaulting of
    /// resource lists does.
    pub(crate) fn round_up_to_milli(self) -> Quantity {
        Quantity {
            nanos: ceil_div(self.nanos, 1_000_000) * 1_000_000,
            notation: self.notation,
        }
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// Division rounding away from zero, as Kubernetes rounds quantities.
fn ceil_div(value: i128, by: i128) -> i128 {
    let q = value / by;
    if value % by == 0 {
        q
    } else if value > 0 {
        q + 1
    } else {
        q - 1
    }
}

/// Parses a quantity as Kubernetes does; `None` when it is not one.
pub fn parse(text: &str) -> Option<Quantity> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    // The digits as one integer, and how many of them follow the point.
    let mut digits: i128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        digits = digits
            .checked_mul(10)?
            .checked_add(i128::from(c.to_digit(10)?))?;
    }
    let fraction_len = i32::try_from(fraction.len()).ok()?;
    let (base, exponent, notation) = parse_suffix(suffix)?;
    let nanos = if base == 2 {
        let scaled = digits
            .checked_mul(1i128.checked_shl(u32::try_from(exponent).ok()?)?)?
            .checked_mul(NANO)?;
        ceil_div(
            scaled,
            10i128.checked_pow(u32::try_from(fraction_len).ok()?)?,
        )
    } else {
        let shift = exponent + 9 - fraction_len;
        if shift >= 0 {
            digits.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?
        } else {
            ceil_div(digits, 10i128.checked_pow(u32::try_from(-shift).ok()?)?)
        }
    };
    Some(Quantity {
        nanos: if negative { -nanos } else { nanos },
        notation,
    })
}

/// The base, exponent and notation a suffix stands for.
fn parse_suffix(suffix: &str) -> Option<(u32, i32, Notation)> {
    let decimal = |e| Some((10, e, Notation::DecimalSI));
    let binary = |e| Some((2, e, Notation::BinarySI));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((10, exponent.parse().ok()?, Notation::DecimalExponent))
        }
    }
}

impl std::fmt::Display for Quantity {
    /// Kubernetes' canonical form of the quantity.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        // Binary notation only holds whole numbers of at least 1024; smaller
        // or fractional values print in decimal rather than lose precision.
        let binary = self.notation == Notation::BinarySI
            && magnitude >= 1024 * NANO as u128
            && magnitude.is_multiple_of(NANO as u128);
        if binary {
            let mut value = magnitude / NANO as u128;
            let mut power = 0;
            while value.is_multiple_of(1024) && power < 6 {
                value /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return write!(f, "{sign}{value}{suffix}");
        }
        // Decimal: the largest exponent, a multiple of three, that keeps the
        // mantissa whole.
        let mut mantissa = magnitude;
        let mut exponent: i32 = -9;
        while mantissa.is_multiple_of(1000) {
            mantissa /= 1000;
            exponent += 3;
        }
        let suffix = match (self.notation, exponent) {
            (_, 0) => String::new(),
            (Notation::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".into(),
            (_, -6) => "u".into(),
            (_, -3) => "m".into(),
            (_, 3) => "k".into(),
            (_, 6) => "M".into(),
            (_, 9) => "G".into(),
            (_, 12) => "T".into(),
            (_, 15) => "P".into(),
            (_, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        write!(f, "{sign}{mantissa}{suffix}")
    }
}

/// The canonical form of a quantity string, or the string itself when it
/// does not parse (validation reports it).
pub(crate) fn canonical(text: &str) -> String {
    parse(text).map_or_else(|| text.to_owned(), |q| q.to_string())
}

/// Rewrites every quantity of a resource list in canonical form, rounded
/// up to thousandths, as Kubernetes' defaulting of resource lists does.
pub(crate) fn default_resource_list(list: &mut Option<BTreeMap<String, Raw>>) {
    for value in list.iter_mut().flat_map(|l| l.values_mut()) {
        if let Some(q) = parse(&value.0) {
            value.0 = q.round_up_to_milli().to_string();
        }
    }
}

/// Rewrites every quantity of a resource list in canonical form.
pub(crate) fn canonicalize_list(list: &mut Option<BTreeMap<String, Raw>>) {
    for value in list.iter_mut().flat_map(|l| l.values_mut()) {
        value.0 = canonical(&value.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_match_kubernetes() {
        let cases = [
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("0.5", "500m"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1.5Ki", "1536"),
            ("100Ki", "100Ki"),
            ("0Mi", "0"),
            ("512", "512"),
            ("1e3", "1e3"),
            ("1500e0", "1500"),
            ("1G", "1G"),
            ("1000000000", "1G"),
            ("-100m", "-100m"),
            ("+2", "2"),
            ("1n", "1n"),
            ("10Gi", "10Gi"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(input), want, "{input}");
        }
    }

    #[test]
    fn malformed_quantities_do_not_parse() {
        for bad in ["", "abc", "1.2.3", "1Zi", "1 Gi", "-", ".", "1e", "1ee3"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn comparison_and_rounding() {
        let cpu = |s| parse(s).unwrap();
        assert!(cpu("500m") < cpu("1"));
        assert_eq!(cpu("1").cmp(&cpu("1000m")), Ordering::Equal);
        assert!(cpu("1Gi") > cpu("1G"));
        assert_eq!(cpu("0.0001").round_up_to_milli().to_string(), "1m");
        assert_eq!(cpu("250m").plus(cpu("250m")).to_string(), "500m");
        assert_eq!(cpu("1.5").milli_value(), 1500);
    }
}
