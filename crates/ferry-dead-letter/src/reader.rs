//! Finding and reading dead-letter files, and the directory lock that keeps a running ferry
//! and a replay apart.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use fs2::FileExt as _;

use crate::error::io;
use crate::{DeadLetter, DeadLetterError, DeadLetterReason, LOCK_FILE, LineError};

const FILE_PREFIX: &str = "dead-letters-";
const FILE_SUFFIX: &str = ".jsonl";

/// The name of dead-letter file number `number`: `dead-letters-000042.jsonl`.
pub(crate) fn file_name(number: u64) -> String {
    format!("{FILE_PREFIX}{number:06}{FILE_SUFFIX}")
}

/// The number in a dead-letter file's name; `None` for any other file.
pub(crate) fn file_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One dead-letter file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterFile {
    /// Its path.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// Every dead-letter file in `dir`, oldest first (by the number in its name). A missing
/// directory holds none.
pub fn list_files(dir: &Path) -> Result<Vec<DeadLetterFile>, DeadLetterError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let Some(number) = entry.file_name().to_str().and_then(file_number) else {
            continue;
        };
        let path = entry.path();
        let metadata = entry.metadata().map_err(io(&path))?;
        if metadata.is_file() {
            files.push((
                number,
                DeadLetterFile {
                    path,
                    bytes: metadata.len(),
                },
            ));
        }
    }
    files.sort_by_key(|(number, _)| *number);
    Ok(files.into_iter().map(|(_, file)| file).collect())
}

/// The letters of one file in order. A line that does not parse (the torn last line of a
/// process that crashed while writing, or a line edited by hand) is an `Err` carrying its line
/// number; the lines around it are still read. Empty lines are skipped.
pub fn read_file(path: &Path) -> Result<Vec<Result<DeadLetter, LineError>>, DeadLetterError> {
    let file = File::open(path).map_err(io(path))?;
    let mut reader = BufReader::new(file);
    let mut letters = Vec::new();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io(path))?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        letters.push(DeadLetter::from_json_line(&line).map_err(|e| LineError {
            line: number,
            reason: match e {
                DeadLetterError::Parse { reason, .. } => reason,
                other => other.to_string(),
            },
        }));
    }
    Ok(letters)
}

/// What a dead-letter directory holds, for `ferry dead-letter list`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirSummary {
    /// Dead-letter files.
    pub files: usize,
    /// Letters that could be read.
    pub letters: u64,
    /// Total size of the files.
    pub bytes: u64,
    /// The earliest `time` of a letter.
    pub oldest: Option<DateTime<Utc>>,
    /// The latest `time` of a letter.
    pub newest: Option<DateTime<Utc>>,
    /// Letters per reason.
    pub reasons: BTreeMap<DeadLetterReason, u64>,
    /// Lines that could not be read, with their file.
    pub unreadable: Vec<(PathBuf, LineError)>,
}

/// Reads every file in `dir` and sums it up. A missing directory is empty.
pub fn summarize(dir: &Path) -> Result<DirSummary, DeadLetterError> {
    let mut summary = DirSummary::default();
    for file in list_files(dir)? {
        summary.files += 1;
        summary.bytes += file.bytes;
        for letter in read_file(&file.path)? {
            match letter {
                Ok(letter) => {
                    summary.letters += 1;
                    *summary.reasons.entry(letter.reason).or_default() += 1;
                    summary.oldest = Some(summary.oldest.map_or(letter.time, |t| t.min(letter.time)));
                    summary.newest = Some(summary.newest.map_or(letter.time, |t| t.max(letter.time)));
                }
                Err(e) => summary.unreadable.push((file.path.clone(), e)),
            }
        }
    }
    Ok(summary)
}

/// The sink directories under `root` (`<data_dir>/dead_letters`), sorted by sink ID. A missing
/// root holds none.
pub fn sink_dirs(root: &Path) -> Result<Vec<(String, PathBuf)>, DeadLetterError> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(root)(e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(root))?;
        let path = entry.path();
        if path.is_dir() {
            dirs.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Holds a dead-letter directory's lock; released when dropped.
#[derive(Debug)]
pub struct DirLock {
    // The lock lives as long as this handle: closing the file releases it.
    _file: File,
    dir: PathBuf,
}

impl DirLock {
    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Takes `dir`'s lock (`<dir>/ferry-dead-letter.lock`), so that a running ferry and a replay
/// never touch the same files. [`DeadLetterError::Locked`] when another holder has it; the
/// directory must exist.
pub fn lock_dir(dir: &Path) -> Result<DirLock, DeadLetterError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    if file.try_lock_exclusive().is_err() {
        return Err(DeadLetterError::Locked { dir: dir.to_owned() });
    }
    Ok(DirLock {
        _file: file,
        dir: dir.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeadLetterReason;
    use std::io::Write as _;

    fn letter(reason: DeadLetterReason, secs: i64) -> DeadLetter {
        DeadLetter {
            time: DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
            sink: "kafka".into(),
            topic: "logs".into(),
            reason,
            cause: "because".into(),
            key: None,
            payload: b"hello".to_vec(),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        assert_eq!(file_name(42), "dead-letters-000042.jsonl");
        assert_eq!(file_number(&file_name(42)), Some(42));
        assert_eq!(file_number(&file_name(1_234_567)), Some(1_234_567));
        for other in [
            "dead-letters-.jsonl",
            "dead-letters-12.json",
            "x-1.jsonl",
            "dead-letters-+1.jsonl",
        ] {
            assert_eq!(file_number(other), None, "{other}");
        }
    }

    #[test]
    fn files_are_listed_by_number_and_a_missing_dir_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_files(&dir.path().join("nope")).unwrap().is_empty());
        for n in [10, 2, 1_000_000] {
            fs::write(dir.path().join(file_name(n)), b"x").unwrap();
        }
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        fs::write(dir.path().join(LOCK_FILE), b"").unwrap();
        let names: Vec<_> = list_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "dead-letters-000002.jsonl",
                "dead-letters-000010.jsonl",
                "dead-letters-1000000.jsonl"
            ]
        );
    }

    #[test]
    fn a_torn_last_line_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(1));
        let mut file = File::create(&path).unwrap();
        let first = letter(DeadLetterReason::TooLarge, 0);
        let second = letter(DeadLetterReason::Shutdown, 1);
        file.write_all(&first.to_json_line()).unwrap();
        file.write_all(b"\n").unwrap();
        file.write_all(&second.to_json_line()).unwrap();
        let torn = letter(DeadLetterReason::Shutdown, 2).to_json_line();
        file.write_all(&torn[..torn.len() / 2]).unwrap();
        drop(file);
        let read = read_file(&path).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].as_ref().unwrap(), &first);
        assert_eq!(read[1].as_ref().unwrap(), &second);
        let err = read[2].as_ref().unwrap_err();
        assert_eq!(err.line, 4, "the blank line is counted but skipped");
        assert!(!err.reason.is_empty());
    }

    #[test]
    fn summary_counts_reasons_times_and_unreadable_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Vec::new();
        a.extend(letter(DeadLetterReason::TooLarge, 5).to_json_line());
        a.extend(letter(DeadLetterReason::UnknownTopic, 1).to_json_line());
        fs::write(dir.path().join(file_name(1)), &a).unwrap();
        let mut b = letter(DeadLetterReason::UnknownTopic, 9).to_json_line();
        b.extend(b"{\"time\":");
        fs::write(dir.path().join(file_name(2)), &b).unwrap();
        let summary = summarize(dir.path()).unwrap();
        assert_eq!(summary.files, 2);
        assert_eq!(summary.letters, 3);
        assert_eq!(summary.bytes, (a.len() + b.len()) as u64);
        assert_eq!(summary.oldest, Some(letter(DeadLetterReason::Template, 1).time));
        assert_eq!(summary.newest, Some(letter(DeadLetterReason::Template, 9).time));
        assert_eq!(summary.reasons[&DeadLetterReason::UnknownTopic], 2);
        assert_eq!(summary.reasons[&DeadLetterReason::TooLarge], 1);
        assert_eq!(summary.unreadable.len(), 1);
        assert_eq!(summary.unreadable[0].1.line, 2);
    }

    #[test]
    fn the_lock_excludes_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_dir(dir.path()).unwrap();
        assert_eq!(lock.dir(), dir.path());
        assert!(matches!(
            lock_dir(dir.path()),
            Err(DeadLetterError::Locked { .. })
        ));
        drop(lock);
        lock_dir(dir.path()).unwrap();
    }
}
