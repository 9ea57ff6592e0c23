//! The files a sink has open, least recently used first out.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::FileSinkError;

/// Open files by path, with when each was last written.
#[derive(Debug, Default)]
pub(crate) struct OpenFiles {
    files: HashMap<PathBuf, (File, Instant)>,
    max_open: usize,
}

impl OpenFiles {
    pub(crate) fn new(max_open: usize) -> Self {
        Self {
            files: HashMap::new(),
            max_open,
        }
    }

    /// Appends `bytes` to `path`, opening it (and creating its directories) when needed.
    pub(crate) fn append(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        if !self.files.contains_key(path) {
            if self.files.len() >= self.max_open {
                // Every open file was fsynced at the end of the previous batch: closing loses
                // nothing.
                if let Some(oldest) = self
                    .files
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(p, _)| p.clone())
                {
                    self.files.remove(&oldest);
                }
            }
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
            {
                fs::create_dir_all(parent)?;
            }
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            self.files.insert(path.to_owned(), (file, Instant::now()));
        }
        let (file, used) = self
            .files
            .get_mut(path)
            .ok_or_else(|| io::Error::other("file vanished"))?;
        *used = Instant::now();
        file.write_all(bytes)
    }

    /// Makes what was appended to `path` durable.
    pub(crate) fn sync(&mut self, path: &Path) -> io::Result<()> {
        match self.files.get(path) {
            Some((file, _)) => file.sync_data(),
            None => Ok(()),
        }
    }

    /// Forgets `path` (after an error: the next attempt opens it afresh).
    pub(crate) fn close(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// Closes the files idle for `timeout` or longer; returns how many.
    pub(crate) fn close_idle(&mut self, timeout: Duration) -> usize {
        let before = self.files.len();
        self.files.retain(|_, (_, used)| used.elapsed() < timeout);
        before - self.files.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }
}

/// Checks that files can be created in `dir` (creating it if missing).
pub(crate) fn check_writable(dir: &Path) -> Result<(), FileSinkError> {
    let unwritable = |source| FileSinkError::UnwritableDir {
        dir: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(unwritable)?;
    let probe = dir.join(format!(".ferry-healthcheck-{}", std::process::id()));
    File::create(&probe).map_err(unwritable)?;
    fs::remove_file(&probe).map_err(unwritable)
}
