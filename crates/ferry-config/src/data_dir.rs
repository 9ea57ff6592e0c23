use std::path::{Path, PathBuf};

/// The system-wide default data directory, used when it exists and is writable.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/ferry";

/// No usable data directory.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The configured `data_dir` cannot be created or written.
    #[error("data_dir `{path}` is not a writable directory: {source}")]
    Configured {
        /// The configured path.
        path: PathBuf,
        /// Why it cannot be used.
        source: std::io::Error,
    },
    /// Neither default works.
    #[error(
        "no usable data directory: `{SYSTEM_DATA_DIR}` does not exist or is not writable, and `{fallback}` could not be created ({source}); set `data_dir` in the configuration"
    )]
    NoDefault {
        /// The per-user fallback that was tried.
        fallback: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// The data directory: `configured` when given (created if missing); otherwise
/// `/var/lib/ferry` when it exists and is writable, otherwise `$XDG_STATE_HOME/ferry`
/// (`~/.local/state/ferry`), created if missing.
pub fn resolve_data_dir(configured: Option<&Path>) -> Result<PathBuf, DataDirError> {
    if let Some(path) = configured {
        return ensure_writable(path)
            .map(|()| path.to_owned())
            .map_err(|source| DataDirError::Configured {
                path: path.to_owned(),
                source,
            });
    }
    let system = Path::new(SYSTEM_DATA_DIR);
    if system.is_dir() && ensure_writable(system).is_ok() {
        return Ok(system.to_owned());
    }
    let fallback = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from(".ferry-state"))
        .join("ferry");
    match ensure_writable(&fallback) {
        Ok(()) => Ok(fallback),
        Err(source) => Err(DataDirError::NoDefault { fallback, source }),
    }
}

fn ensure_writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".ferry-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_directory_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        assert_eq!(resolve_data_dir(Some(&dir)).unwrap(), dir);
        assert!(dir.is_dir());
    }

    #[test]
    fn unwritable_configured_directory_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = resolve_data_dir(Some(&file.join("sub"))).unwrap_err();
        assert!(err.to_string().contains("sub"), "{err}");
    }
}
