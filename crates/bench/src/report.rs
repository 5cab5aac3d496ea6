//! The table every benchmark prints: our figure, the anchor's, their ratio,
//! and the target the ratio (or our figure) must meet.

use std::fmt::Write;

/// Which way a figure is better.
#[derive(Clone, Copy, Debug)]
pub enum Better {
    /// Rates: the ratio is ours / anchor.
    Higher,
    /// Latencies and sizes: the ratio is anchor / ours.
    Lower,
}

/// What a row's figure must reach.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    /// The ratio (see [`Better`]) must be at least this.
    Ratio(f64),
    /// Our figure must be at most this.
    AtMost(f64),
    /// Our figure must be at least this.
    AtLeast(f64),
}

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    pub metric: String,
    pub ours: f64,
    pub anchor: f64,
    pub unit: &'static str,
    pub better: Better,
    /// What the figure must reach; rows without one are for information.
    pub target: Option<Goal>,
}

impl Row {
    /// Whether the row meets its target (rows without one always do).
    pub fn met(&self) -> bool {
        match self.target {
            None => true,
            Some(Goal::Ratio(t)) => self.ratio() >= t,
            Some(Goal::AtMost(t)) => self.ours <= t,
            Some(Goal::AtLeast(t)) => self.ours >= t,
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
        let target = match r.target {
            None => "-".to_owned(),
            Some(Goal::Ratio(t)) => format!("≥ {t}×"),
            Some(Goal::AtMost(t)) => format!("≤ {} {}", fmt(t), r.unit),
            Some(Goal::AtLeast(t)) => format!("≥ {} {}", fmt(t), r.unit),
        };
        let verdict = match (r.target, r.met()) {
            (None, _) => "-",
            (Some(_), true) => "met",
            (Some(_), false) => "MISSED",
        };
        // A figure below the clock's resolution (0) has no meaningful ratio.
        let ratio = if r.ours > 0.0 && r.anchor > 0.0 {
            format!("{:.1}×", r.ratio())
        } else {
            "-".to_owned()
        };
        let _ = writeln!(
            out,
            "| {} | {} {} | {} {} | {ratio} | {} | {} |",
            r.metric,
            fmt(r.ours),
            r.unit,
            fmt(r.anchor),
            r.unit,
            target,
            verdict
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
                target: Some(Goal::Ratio(5.0)),
            },
            Row {
                metric: "p99".into(),
                ours: 6.0,
                anchor: 2.0,
                unit: "ms",
                better: Better::Lower,
                target: Some(Goal::AtMost(5.0)),
            },
            Row {
                metric: "creates/s".into(),
                ours: 2500.0,
                anchor: 900.0,
                unit: "/s",
                better: Better::Higher,
                target: Some(Goal::AtLeast(2000.0)),
            },
            Row {
                metric: "p50".into(),
                ours: 1.0,
                anchor: 2.0,
                unit: "ms",
                better: Better::Lower,
                target: None,
            },
            Row {
                metric: "lag".into(),
                ours: 0.0,
                anchor: 0.1,
                unit: "ms",
                better: Better::Lower,
                target: None,
            },
        ];
        let t = table("embedded", "etcd", &rows);
        assert!(
            t.contains("| writes/s | 4,100  | 550  | 7.5× | ≥ 5× | met |"),
            "{t}"
        );
        assert!(t.contains("MISSED"), "{t}");
        assert!(t.contains("| ≥ 2,000 /s | met |"), "{t}");
        assert!(t.contains("| 2.0× | - | - |"), "{t}");
        assert!(
            t.contains("| lag | 0.000 ms | 0.100 ms | - | - | - |"),
            "{t}"
        );
        assert!(rows[0].met() && !rows[1].met() && rows[2].met());
    }
}
