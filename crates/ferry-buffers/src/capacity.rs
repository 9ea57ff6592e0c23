//! The start-up check that the disk buffers sharing a volume can all fill up without filling
//! it: the sum of their `max_size` must not exceed the volume's capacity. A volume that fills
//! for other reasons is still handled at run time (see [`crate::disk`]).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::BufferError;

/// One disk buffer that a volume may not hold all of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferShare {
    /// The configuration key of its size, `sinks.<id>.buffer.max_size`.
    pub key: String,
    /// Its `max_size` in bytes.
    pub max_size: u64,
}

/// Checks that the disk buffers on each volume fit in it. `buffers` lists each disk buffer as
/// (sink id, buffer directory, `max_size`); the directories need not exist yet. The error names
/// the keys of every buffer on the volume that is too small, their sizes and its capacity.
pub fn check_capacity(buffers: &[(&str, &Path, u64)]) -> Result<(), BufferError> {
    // Per volume (device number): a directory on it, and its buffers.
    let mut volumes: Vec<(u64, PathBuf, Vec<BufferShare>)> = Vec::new();
    for &(sink, dir, max_size) in buffers {
        let existing = nearest_existing(dir);
        let device = std::fs::metadata(&existing)
            .map_err(|source| BufferError::Io {
                path: existing.clone(),
                source,
            })?
            .dev();
        let share = BufferShare {
            key: format!("sinks.{sink}.buffer.max_size"),
            max_size,
        };
        match volumes.iter_mut().find(|(d, _, _)| *d == device) {
            Some((_, _, shares)) => shares.push(share),
            None => volumes.push((device, existing, vec![share])),
        }
    }
    for (_, path, buffers) in volumes {
        let capacity = fs2::total_space(&path).map_err(|source| BufferError::Io {
            path: path.clone(),
            source,
        })?;
        let total = buffers.iter().fold(0u64, |sum, b| sum.saturating_add(b.max_size));
        if total > capacity {
            return Err(BufferError::CapacityExceeded {
                volume: path,
                capacity,
                total,
                buffers,
            });
        }
    }
    Ok(())
}

/// `dir`, or its nearest ancestor that exists (a buffer directory is made on first use).
fn nearest_existing(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|p| p.exists())
        .map_or_else(|| PathBuf::from("/"), Path::to_owned)
}

/// How [`BufferError::CapacityExceeded`] lists the buffers.
pub(crate) fn describe(buffers: &[BufferShare]) -> String {
    buffers
        .iter()
        .map(|b| format!("{} = {}", b.key, b.max_size))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_that_together_exceed_their_volume_are_an_error_naming_keys_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let capacity = fs2::total_space(dir.path()).unwrap();
        let half = capacity / 2 + 1;
        let a = dir.path().join("buffers").join("a");
        let b = dir.path().join("buffers").join("b");
        let err = check_capacity(&[("a", &a, half), ("b", &b, half)]).unwrap_err();
        let text = err.to_string();
        for expected in [
            format!("sinks.a.buffer.max_size = {half}"),
            format!("sinks.b.buffer.max_size = {half}"),
            format!("{} bytes", 2 * half),
            format!("{capacity} bytes"),
        ] {
            assert!(text.contains(&expected), "{text} lacks {expected}");
        }
        assert!(matches!(err, BufferError::CapacityExceeded { total, .. } if total == 2 * half));
    }

    #[test]
    fn buffers_that_fit_are_fine_and_their_directories_need_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let capacity = fs2::total_space(dir.path()).unwrap();
        let a = dir.path().join("not").join("yet").join("a");
        check_capacity(&[("a", &a, capacity / 4), ("b", dir.path(), capacity / 4)]).unwrap();
        check_capacity(&[]).unwrap();
    }
}
