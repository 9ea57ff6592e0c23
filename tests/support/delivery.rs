//! Event generators and delivery checks shared by the end-to-end tests: every line a test
//! writes is unique, so what comes back says exactly what was lost and what came twice.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::Record;

/// `TAG-NNNNNNN` for each number in `range`: `tag.len() + 9` bytes per line with its newline.
pub fn numbered_lines(tag: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{tag}-{i:07}")).collect()
}

/// Appends `lines` to `path` (created if missing), each with its newline.
pub fn append_lines(path: &Path, lines: &[String]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    file.write_all(text.as_bytes()).expect("append");
}

/// How the lines that came back compare with the lines sent.
#[derive(Debug, PartialEq, Eq)]
pub struct Tally {
    pub expected: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub unexpected: usize,
}

impl Tally {
    /// Compares what came back (`received`, in any order) with `expected`.
    pub fn of<'a>(expected: &[String], received: impl IntoIterator<Item = &'a str>) -> Self {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut total = 0;
        for line in received {
            *seen.entry(line).or_default() += 1;
            total += 1;
        }
        let wanted: HashSet<&str> = expected.iter().map(String::as_str).collect();
        Self {
            expected: expected.len(),
            lost: expected.iter().filter(|l| !seen.contains_key(l.as_str())).count(),
            duplicated: total - seen.len(),
            unexpected: seen.keys().filter(|k| !wanted.contains(*k)).count(),
        }
    }

    /// [`Tally::of`] over Kafka records' payloads.
    pub fn of_records(expected: &[String], records: &[Record]) -> Self {
        Self::of(expected, records.iter().map(Record::payload_str))
    }

    /// What a perfect delivery of `expected` lines looks like.
    pub fn exactly_once(expected: usize) -> Self {
        Self {
            expected,
            lost: 0,
            duplicated: 0,
            unexpected: 0,
        }
    }
}
