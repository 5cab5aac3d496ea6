//! The end-to-end harness: the real `gantry` binary ([`Server`]), the real
//! kubectl ([`Kubectl`]) and the real Python client ([`Python`]), plus a raw
//! HTTPS client ([`http`]) for what those clients hide.

#![allow(dead_code)]

pub mod http;
pub mod kubectl;
pub mod node;
pub mod process;
pub mod python;
pub mod server;

use std::time::Duration;

pub use http::{Auth, Request};
pub use server::{Mode, Namespace, Options, Server};

/// How long to wait for something asynchronous (a watch event, a
/// namespace to finish terminating) before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// kubectl's `-o name` lines without `configmap/kube-root-ca.crt`, the cluster CA
/// every namespace has (and gets back a moment after it is deleted).
pub fn without_root_ca(out: &str) -> String {
    out.lines()
        .filter(|l| *l != "configmap/kube-root-ca.crt")
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Parses JSON printed by a client, panicking with the text when it is not.
#[track_caller]
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// A table as kubectl prints it: the header's column names, and each row's
/// cells cut at the header's column positions (so empty cells stay empty).
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Parses kubectl's human-readable output. Columns are separated by at
    /// least two spaces, and names such as `NOMINATED NODE` have one.
    #[track_caller]
    pub fn parse(text: &str) -> Self {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = lines
            .next()
            .unwrap_or_else(|| panic!("no table in output:\n{text}"));
        let starts = column_starts(header);
        let cut = |line: &str| -> Vec<String> {
            let chars: Vec<char> = line.chars().collect();
            starts
                .iter()
                .enumerate()
                .map(|(i, &start)| {
                    let end = starts.get(i + 1).copied().unwrap_or(chars.len());
                    let end = end.min(chars.len());
                    if start >= end {
                        String::new()
                    } else {
                        chars[start..end]
                            .iter()
                            .collect::<String>()
                            .trim()
                            .to_owned()
                    }
                })
                .collect()
        };
        let columns = cut(header);
        let rows = lines.map(cut).collect();
        Self { columns, rows }
    }

    /// The row whose first cell (or, with `-A`, second) is `name`.
    #[track_caller]
    pub fn row(&self, name: &str) -> &[String] {
        let col = self.column("NAME");
        self.rows
            .iter()
            .find(|r| r[col] == name)
            .unwrap_or_else(|| panic!("no row {name} in {self:#?}"))
    }

    /// The index of a column.
    #[track_caller]
    pub fn column(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns))
    }

    /// The cell of row `name` in column `column`.
    #[track_caller]
    pub fn cell(&self, name: &str, column: &str) -> &str {
        &self.row(name)[self.column(column)]
    }
}

fn column_starts(header: &str) -> Vec<usize> {
    let chars: Vec<char> = header.chars().collect();
    let mut starts = Vec::new();
    let mut spaces = 2;
    for (i, c) in chars.iter().enumerate() {
        if *c == ' ' {
            spaces += 1;
        } else {
            if spaces >= 2 {
                starts.push(i);
            }
            spaces = 0;
        }
    }
    starts
}
