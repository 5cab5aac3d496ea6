//! The table every benchmark prints: our figure, the anchor's, their ratio,
//! and the target the ratio (or our figure) must meet.

use std::fmt::Write;

/// Which way a figure is better.
#[derive(Clone, Copy, Debug)]
pub enum Better {
    /// Rates: ours / anchor must be at least the target.
    Higher,
    /// Latencies: ours must be at most the target (an absolute bound).
    Lower,
}

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    pub metric: String,
    pub ours: f64,
    pub anchor: f64,
    pub unit: &'static str,
    pub better: Better,
    /// For `Higher`, the minimum ratio; for `Lower`, the maximum of ours.
    pub target: Option<f64>,
}

impl Row {
    /// Whether the row meets its target (rows without one always do).
    pub fn met(&self) -> bool {
        match (self.better, self.target) {
            (_, None) => true,
            (Better::Higher, Some(t)) => self.ratio() >= t,
            (Better::Lower, Some(t)) => self.ours <= t,
        }
    }

    fn ratio(&self) -> f64 {
        match self.better {
            Better::Higher => self.ours / self.anchor,
            Better::Lower => self.anchor / self.ours.max(1e-9),
        }
    }
}

/// Renders rows as a Markdown table, ready to paste into BENCHMARKS.md.
pub fn table(ours: &str, anchor: &str, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| metric | {ours} | {anchor} | ratio | target | verdict |\n|---|---:|---:|---:|---|---|"
    );
    for r in rows {
        let target = match (r.better, r.target) {
            (_, None) => "-".to_owned(),
            (Better::Higher, Some(t)) => format!("≥ {t}×"),
            (Better::Lower, Some(t)) => format!("≤ {} {}", fmt(t), r.unit),
        };
        let _ = writeln!(
            out,
            "| {} | {} {} | {} {} | {:.1}× | {} | {} |",
            r.metric,
            fmt(r.ours),
            r.unit,
            fmt(r.anchor),
            r.unit,
            r.ratio(),
            target,
            if r.met() { "met" } else { "MISSED" }
        );
    }
    out
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        let n = v.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_judges_rows() {
        let rows = [
            Row {
                metric: "writes/s".into(),
                ours: 4100.0,
                anchor: 550.0,
                unit: "",
                better: Better::Higher,
                target: Some(5.0),
            },
            Row {
                metric: "p99".into(),
                ours: 6.0,
                anchor: 2.0,
                unit: "ms",
                better: Better::Lower,
                target: Some(5.0),
            },
        ];
        let t = table("embedded", "etcd", &rows);
        assert!(
            t.contains("| writes/s | 4,100  | 550  | 7.5× | ≥ 5× | met |"),
            "{t}"
        );
        assert!(t.contains("MISSED"), "{t}");
        assert!(rows[0].met() && !rows[1].met());
    }
}
