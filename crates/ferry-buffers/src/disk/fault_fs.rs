//! A [`Filesystem`] for tests: the real files underneath, plus a model of what is durable, so
//! that a test can fail chosen operations and simulate a power loss.
//!
//! The model, per file (an "inode", which a rename moves between names):
//! - writes since the last fsync are pending; a successful `sync_data` makes them durable; a
//!   failed one loses them for good, as Linux does (it marks the pages clean, so a later fsync
//!   succeeds without writing them), although reads still return them;
//! - a name created, renamed or deleted is durable once its directory is fsynced;
//! - sled's files (its data file, opened with `open_ledger`, its snapshots and config) are
//!   durable together, as they are at each fsync of the data file through the seam: sled's own
//!   files must agree with one another, and the store only relies on that fsync.
//!
//! [`FaultFs::power_loss`] puts the real files into their durable state: names that were not
//! durable vanish (or come back), contents lose every pending write.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::fs::{Filesystem, RealFs, SegmentFile};

/// The operations a fault can be put on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// Writing to a segment.
    Write,
    /// fsyncing a segment or the segment directory.
    Sync,
    /// Reading a segment.
    Read,
    /// Creating, renaming, deleting or listing segment files.
    Name,
    /// A change to the ledger.
    Ledger,
    /// fsyncing the ledger's file.
    LedgerSync,
}

/// `ENOSPC`.
pub(crate) const NO_SPACE: i32 = 28;
/// `EIO`.
pub(crate) const IO_ERROR: i32 = 5;

#[derive(Debug)]
struct Fault {
    op: Op,
    errno: i32,
    /// Failures left; `None`: until healed.
    left: Option<u32>,
}

#[derive(Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    /// Writes since the last fsync, in order.
    pending: Vec<(u64, Vec<u8>)>,
    /// sled's file: durable as a whole at each fsync.
    ledger: bool,
}

#[derive(Debug, Default)]
struct State {
    faults: Vec<Fault>,
    /// The process "died": every operation fails, nothing more reaches the disk.
    crashed: bool,
    failures: HashMap<Op, u64>,
    next_inode: u64,
    inodes: HashMap<u64, Inode>,
    /// Current names of the files seen.
    names: HashMap<PathBuf, u64>,
    /// Names as of their directory's last fsync.
    durable_names: HashMap<PathBuf, u64>,
    /// Every name ever seen (what a power loss must look at).
    seen: HashSet<PathBuf>,
    /// The threads that changed the ledger, by name.
    ledger_threads: HashSet<String>,
    /// sled's directory, and its files as of the last fsync of its data file.
    ledger: Option<(PathBuf, HashMap<PathBuf, Vec<u8>>)>,
}

/// sled's files in `dir` (not the buffer's own: segments, lock, reserve).
fn sled_files(dir: &Path) -> HashMap<PathBuf, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name == "db" || name == "conf" || name.starts_with("snap.")
        })
        .filter_map(|e| Some((e.path(), std::fs::read(e.path()).ok()?)))
        .collect()
}

impl State {
    fn check(&mut self, op: Op) -> io::Result<()> {
        if self.crashed {
            return Err(io::Error::from_raw_os_error(IO_ERROR));
        }
        let Some(i) = self.faults.iter().position(|f| f.op == op) else {
            return Ok(());
        };
        let fault = &mut self.faults[i];
        let errno = fault.errno;
        if let Some(left) = &mut fault.left {
            *left -= 1;
            if *left == 0 {
                self.faults.remove(i);
            }
        }
        *self.failures.entry(op).or_default() += 1;
        Err(io::Error::from_raw_os_error(errno))
    }

    /// The inode at `path`, registered with its current content as durable if new to us.
    fn inode_at(&mut self, path: &Path, ledger: bool) -> u64 {
        if let Some(&inode) = self.names.get(path) {
            return inode;
        }
        let existing = std::fs::read(path).ok();
        let exists = existing.is_some();
        let inode = self.new_inode(existing.unwrap_or_default(), ledger);
        self.names.insert(path.to_owned(), inode);
        if exists {
            // What was there before the test touched it counts as durable.
            self.durable_names.insert(path.to_owned(), inode);
        }
        self.seen.insert(path.to_owned());
        inode
    }

    fn new_inode(&mut self, durable: Vec<u8>, ledger: bool) -> u64 {
        self.next_inode += 1;
        self.inodes.insert(
            self.next_inode,
            Inode {
                durable,
                pending: Vec::new(),
                ledger,
            },
        );
        self.next_inode
    }
}

/// The fault-injecting filesystem; clones share one state.
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultFs {
    state: Arc<Mutex<State>>,
}

impl FaultFs {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the next `times` operations `op` fail with `errno` (`None`: until [`heal`]).
    ///
    /// [`heal`]: FaultFs::heal
    pub(crate) fn fail(&self, op: Op, errno: i32, times: Option<u32>) {
        self.lock().faults.push(Fault {
            op,
            errno,
            left: times,
        });
    }

    /// Removes every fault.
    pub(crate) fn heal(&self) {
        self.lock().faults.clear();
    }

    /// How many times `op` failed by a fault.
    pub(crate) fn failures(&self, op: Op) -> u64 {
        self.lock().failures.get(&op).copied().unwrap_or(0)
    }

    /// The names of the threads that changed the ledger.
    pub(crate) fn ledger_threads(&self) -> HashSet<String> {
        self.lock().ledger_threads.clone()
    }

    /// The process dies: from now on every operation fails and nothing reaches the disk.
    pub(crate) fn crash(&self) {
        self.lock().crashed = true;
    }

    /// Power is lost (call once the buffer's threads are gone): the real files are put into
    /// their durable state, and the model starts afresh from it.
    pub(crate) fn power_loss(&self) {
        let mut state = self.lock();
        for path in &state.seen {
            match state.durable_names.get(path) {
                Some(inode) => {
                    let content = &state.inodes[inode].durable;
                    std::fs::write(path, content).expect("restore a file's durable content");
                }
                None => match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => panic!("remove {}: {e}", path.display()),
                },
            }
        }
        // After the files seen above: sled's data file is one of them.
        if let Some((dir, files)) = &state.ledger {
            for (path, _) in sled_files(dir) {
                if !files.contains_key(&path) {
                    std::fs::remove_file(&path).expect("remove a sled file that was not durable");
                }
            }
            for (path, content) in files {
                std::fs::write(path, content).expect("restore a sled file");
            }
        }
        *state = State::default();
    }
}

struct FaultFile {
    fs: FaultFs,
    inode: u64,
    real: Box<dyn SegmentFile>,
}

impl SegmentFile for FaultFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.fs.lock();
        state.check(Op::Write)?;
        self.real.write_all_at(buf, offset)?;
        if let Some(inode) = state.inodes.get_mut(&self.inode) {
            inode.pending.push((offset, buf.to_vec()));
        }
        Ok(())
    }

    fn read_at(&self, offset: u64, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        self.fs.lock().check(Op::Read)?;
        self.real.read_at(offset, len, out)
    }

    fn len(&self) -> io::Result<u64> {
        self.fs.lock().check(Op::Read)?;
        self.real.len()
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.fs.lock();
        let ledger = state.inodes.get(&self.inode).is_some_and(|i| i.ledger);
        let result = state.check(if ledger { Op::LedgerSync } else { Op::Sync });
        let state = &mut *state;
        let Some(inode) = state.inodes.get_mut(&self.inode) else {
            return result;
        };
        let pending = std::mem::take(&mut inode.pending);
        // A failed fsync loses the pending writes: dropped here, never applied.
        result?;
        if inode.ledger {
            // sled wrote its files directly: what they hold now is durable.
            if let Some((dir, files)) = &mut state.ledger {
                *files = sled_files(dir);
            }
        } else {
            for (offset, bytes) in pending {
                let end = offset as usize + bytes.len();
                if inode.durable.len() < end {
                    inode.durable.resize(end, 0);
                }
                inode.durable[offset as usize..end].copy_from_slice(&bytes);
            }
        }
        Ok(())
    }
}

impl Filesystem for FaultFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.lock().check(Op::Name)?;
        RealFs.create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let mut state = self.lock();
        state.check(Op::Name)?;
        state.inode_at(path, false);
        let real = RealFs.create(path)?;
        // Modelled as a new file under the old name: until the directory is fsynced, a power
        // loss brings back the old one.
        let inode = state.new_inode(Vec::new(), false);
        state.names.insert(path.to_owned(), inode);
        Ok(Box::new(FaultFile {
            fs: self.clone(),
            inode,
            real,
        }))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let mut state = self.lock();
        state.check(Op::Name)?;
        let real = RealFs.open_rw(path)?;
        let inode = state.inode_at(path, false);
        Ok(Box::new(FaultFile {
            fs: self.clone(),
            inode,
            real,
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let mut state = self.lock();
        state.check(Op::Read)?;
        let real = RealFs.open_read(path)?;
        let inode = state.inode_at(path, false);
        Ok(Box::new(FaultFile {
            fs: self.clone(),
            inode,
            real,
        }))
    }

    fn open_ledger(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let mut state = self.lock();
        let real = RealFs.open_read(path)?;
        let inode = state.inode_at(path, true);
        if state.ledger.is_none() {
            // What sled holds when the model first sees it counts as durable.
            let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
            let files = sled_files(&dir);
            state.ledger = Some((dir, files));
        }
        Ok(Box::new(FaultFile {
            fs: self.clone(),
            inode,
            real,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.check(Op::Name)?;
        let inode = state.inode_at(from, false);
        // A file the rename replaces is registered first, so a power loss can bring it back.
        if to.exists() {
            state.inode_at(to, false);
        }
        RealFs.rename(from, to)?;
        state.names.remove(from);
        state.names.insert(to.to_owned(), inode);
        state.seen.insert(to.to_owned());
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.check(Op::Name)?;
        state.inode_at(path, false);
        RealFs.remove_file(path)?;
        state.names.remove(path);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.check(Op::Sync)?;
        let in_dir = |p: &Path| p.parent() == Some(path);
        state.durable_names.retain(|p, _| !in_dir(p));
        let current: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        state.durable_names.extend(current);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.lock().check(Op::Name)?;
        RealFs.list(dir)
    }

    fn ledger_write(&self) -> io::Result<()> {
        let mut state = self.lock();
        let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
        state.ledger_threads.insert(thread);
        state.check(Op::Ledger)
    }
}
