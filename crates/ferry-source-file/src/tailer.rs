//! The reading loop of one file source, on a thread of its own (file reads block).
//!
//! One loop does everything in turn, so no lock is needed: it takes in verdicts, runs
//! discovery when it is due, saves checkpoints at most once a second, and reads every file
//! that has something new, a bounded slice per file per pass so that hundreds of files share
//! the reader fairly. While downstream is full it keeps doing the first three (discovery in
//! particular keeps opening new files, so a rotation during a backlog loses nothing).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use ferry_codecs::Decoder;
use ferry_core::rate_limit::WarnLimiter;
use ferry_core::{
    BatchNotifier, DeliveryStatus, LogEvent, SourceErrorKind, SourceMetrics, SourceSender, Value,
};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{CheckpointStore, FileCheckpoint, Loaded};
use crate::config::{FileSourceConfig, ReadFrom};
use crate::framing::{Framing, Line};
use crate::identity::{Fingerprint, check_resume};
use crate::tracked::{FileKey, TrackedFile};

/// Bytes read from one file in one turn: large enough for throughput on one busy file, small
/// enough that a thousand files take turns quickly.
const READ_CHUNK: usize = 128 * 1024;
/// `*` in `exclude` stops at `/`, as in a shell.
const EXCLUDE_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};
/// How often checkpoints may be written.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// A verdict on one batch, sent by the batch's notifier.
#[derive(Debug)]
struct Ack {
    file: u64,
    seq: u64,
    bytes: u64,
    status: DeliveryStatus,
}

/// Why reading stopped.
enum Stop {
    Shutdown,
    Closed,
}

pub(crate) struct Tailer {
    id: String,
    config: FileSourceConfig,
    framing: Framing,
    decoder: Decoder,
    host: Bytes,
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
    out: Option<SourceSender>,
    shutdown: CancellationToken,
    runtime: tokio::runtime::Handle,
    store: CheckpointStore,
    /// Checkpoints loaded at start whose files were not opened yet.
    restored: HashMap<FileKey, FileCheckpoint>,
    first_start: bool,
    /// Files the first discovery of a first start found, read from their end when opened.
    start_at_end: HashSet<FileKey>,
    files: BTreeMap<u64, TrackedFile>,
    by_key: HashMap<FileKey, u64>,
    next_id: u64,
    /// Where the next read pass starts (round robin over file ids).
    cursor: u64,
    acks_tx: Option<Sender<Ack>>,
    acks_rx: Receiver<Ack>,
    unacked_bytes: u64,
    dirty: bool,
    next_save: Instant,
    next_discovery: Instant,
    discovered_once: bool,
    read_buf: BytesMut,
    warned_no_match: bool,
    warn_open: WarnLimiter,
    warn_full: WarnLimiter,
    warn_oversized: WarnLimiter,
    warn_undecodable: WarnLimiter,
    warn_save: WarnLimiter,
    counts: Counts,
    /// The source's counters (`/metrics` reads them, and so does the stop line).
    metrics: Arc<SourceMetrics>,
}

/// What the source did besides its `SourceMetrics`, logged when it stops.
#[derive(Debug, Default)]
struct Counts {
    restarted: u64,
}

impl Tailer {
    pub(crate) fn new(
        id: String,
        config: FileSourceConfig,
        store: CheckpointStore,
        loaded: Loaded,
        out: SourceSender,
        shutdown: CancellationToken,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let (acks_tx, acks_rx) = mpsc::channel();
        let restored = loaded
            .files
            .into_iter()
            .map(|c| {
                (
                    FileKey {
                        dev: c.dev,
                        ino: c.ino,
                    },
                    c,
                )
            })
            .collect();
        let now = Instant::now();
        Self {
            framing: Framing {
                max_line_bytes: config.max_line_bytes,
                strip_carriage_return: config.strip_carriage_return,
            },
            decoder: Decoder::new(&config.decoding),
            host: Bytes::from(gethostname::gethostname().to_string_lossy().into_owned()),
            include: config.include.clone(),
            // Validated when the configuration was loaded.
            exclude: config
                .exclude
                .iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect(),
            id,
            config,
            metrics: out.metrics().clone(),
            out: Some(out),
            shutdown,
            runtime,
            store,
            restored,
            first_start: !loaded.existed,
            start_at_end: HashSet::new(),
            files: BTreeMap::new(),
            by_key: HashMap::new(),
            next_id: 0,
            cursor: 0,
            acks_tx: Some(acks_tx),
            acks_rx,
            unacked_bytes: 0,
            dirty: false,
            next_save: now,
            next_discovery: now,
            discovered_once: false,
            read_buf: BytesMut::new(),
            warned_no_match: false,
            warn_open: WarnLimiter::default(),
            warn_full: WarnLimiter::default(),
            warn_oversized: WarnLimiter::default(),
            warn_undecodable: WarnLimiter::default(),
            warn_save: WarnLimiter::default(),
            counts: Counts::default(),
        }
    }

    /// Tails until shutdown, then waits for the verdicts on what was sent and saves the last
    /// checkpoints.
    pub(crate) fn run(mut self) {
        let stop = loop {
            if self.shutdown.is_cancelled() {
                break Stop::Shutdown;
            }
            self.housekeeping();
            if self.unacked_bytes >= self.config.max_unacked_bytes {
                // Memory follows what is in flight, not what waits on disk.
                self.wait_for_acks(self.config.poll_interval());
                continue;
            }
            match self.read_pass() {
                Ok(true) => {}
                Ok(false) => self.wait_for_acks(self.config.poll_interval()),
                Err(stop) => break stop,
            }
        };
        if matches!(stop, Stop::Closed) {
            tracing::debug!(source = %self.id, "the pipeline stopped accepting events");
        }
        self.drain();
    }

    /// Stops sending, and saves checkpoints as the verdicts on what was sent come in, until
    /// every batch is accounted for.
    fn drain(&mut self) {
        self.out = None;
        self.acks_tx = None;
        loop {
            match self.acks_rx.recv_timeout(SAVE_INTERVAL) {
                Ok(ack) => self.take_ack(ack),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.save_if_due();
        }
        self.save();
        let m = self.metrics.snapshot();
        tracing::info!(source = %self.id, lines = m.received_events, bytes = m.received_bytes, split_lines = m.error(SourceErrorKind::SplitLine), undecodable = m.error(SourceErrorKind::Undecodable), files_read_again = self.counts.restarted, files_followed = self.files.len(), "file source stopped; checkpoints saved");
    }

    fn housekeeping(&mut self) {
        while let Ok(ack) = self.acks_rx.try_recv() {
            self.take_ack(ack);
        }
        if Instant::now() >= self.next_discovery {
            self.discover();
            self.next_discovery = Instant::now() + self.config.discovery_interval();
        }
        self.save_if_due();
    }

    fn wait_for_acks(&mut self, timeout: Duration) {
        let timeout = timeout.min(self.next_discovery.saturating_duration_since(Instant::now()));
        if let Ok(ack) = self.acks_rx.recv_timeout(timeout) {
            self.take_ack(ack);
        }
    }

    fn take_ack(&mut self, ack: Ack) {
        self.unacked_bytes = self.unacked_bytes.saturating_sub(ack.bytes);
        let Some(file) = self.files.get_mut(&ack.file) else {
            return;
        };
        let before = file.ledger.committed();
        if let Some(offset) = file.ledger.settle(ack.seq, ack.status)
            && !file.errored_reported
        {
            file.errored_reported = true;
            tracing::warn!(source = %self.id, file = %file.path.display(), offset, "lines were not confirmed by the sink (it failed or dropped them); this file's checkpoint stays before them, so they are read again at the next start");
        }
        if file.ledger.committed() != before {
            self.dirty = true;
        }
    }

    /// One turn for every file, starting where the last pass stopped. Returns whether any file
    /// produced lines.
    fn read_pass(&mut self) -> Result<bool, Stop> {
        let ids: Vec<u64> = self
            .files
            .range(self.cursor..)
            .chain(self.files.range(..self.cursor))
            .map(|(&id, _)| id)
            .collect();
        let mut produced = false;
        let mut lines = Vec::new();
        for id in ids {
            if self.unacked_bytes >= self.config.max_unacked_bytes {
                self.cursor = id;
                return Ok(true);
            }
            let Some(file) = self.files.get_mut(&id) else {
                continue;
            };
            lines.clear();
            let outcome = match file.read(&mut self.read_buf, READ_CHUNK, &self.framing, &mut lines) {
                Ok(outcome) => outcome,
                Err(e) => {
                    self.metrics.add_errors(SourceErrorKind::Read, 1);
                    if let Some(suppressed) = self.warn_open.check() {
                        tracing::warn!(source = %self.id, file = %file.path.display(), error = %e, suppressed, "cannot read file; trying again later");
                    }
                    continue;
                }
            };
            if let Some(why) = outcome.restarted {
                tracing::info!(source = %self.id, file = %file.path.display(), "file was {why}; reading it again from its start");
                self.counts.restarted += 1;
                self.dirty = true;
            }
            self.metrics
                .add_errors(SourceErrorKind::SplitLine, outcome.cut.oversized as u64);
            if outcome.cut.oversized > 0
                && let Some(suppressed) = self.warn_oversized.check()
            {
                tracing::warn!(source = %self.id, file = %file.path.display(), lines = outcome.cut.oversized, suppressed, max_line_bytes = self.config.max_line_bytes, "line longer than max_line_bytes split into several events");
            }
            if lines.is_empty() && outcome.bytes == 0 && !file.attached {
                // Rotated away or deleted: once it stayed quiet long enough, its unfinished
                // last line is all that is left, then the file itself.
                if file.quiet_since_detached(self.config.rotate_wait()) {
                    if let Some(last) = file.take_last_line(&self.framing) {
                        lines.push(last);
                    } else if file.ledger.is_settled() {
                        self.forget(id);
                        continue;
                    }
                }
            }
            if lines.is_empty() {
                continue;
            }
            produced = true;
            let batch = self.batch(id, &mut lines);
            self.cursor = id + 1;
            self.send(batch)?;
        }
        Ok(produced)
    }

    /// Turns one file's lines into events sharing one notifier.
    fn batch(&mut self, id: u64, lines: &mut Vec<Line>) -> Vec<LogEvent> {
        let Some(file) = self.files.get_mut(&id) else {
            return Vec::new();
        };
        let bytes: u64 = lines.iter().map(|l| l.bytes.len() as u64 + 1).sum();
        self.metrics.add_bytes(bytes);
        let seq = file.ledger.record(file.line_offset);
        self.unacked_bytes += bytes;
        let acks = self.acks_tx.clone();
        let notifier = BatchNotifier::with_callback(move |status| {
            if let Some(acks) = acks {
                // The tailer may be gone (process exiting): nobody is left to tell.
                let _ = acks.send(Ack {
                    file: id,
                    seq,
                    bytes,
                    status,
                });
            }
        });
        let now = Utc::now();
        let mut undecodable = 0;
        let mut events = Vec::with_capacity(lines.len());
        for line in lines.drain(..) {
            let (mut event, error) = self
                .decoder
                .decode_with_standard_fields(line.bytes, &self.host, now);
            if error.is_some() {
                undecodable += 1;
            }
            if !self.config.file_key.is_empty() {
                event.insert_if_absent(&self.config.file_key, Value::Bytes(file.path_value.clone()));
            }
            if !self.config.offset_key.is_empty() {
                event.insert_if_absent(
                    &self.config.offset_key,
                    Value::Integer(i64::try_from(line.offset).unwrap_or(i64::MAX)),
                );
            }
            event.attach_notifier(&notifier);
            events.push(event);
        }
        self.metrics.add_errors(SourceErrorKind::Undecodable, undecodable);
        if undecodable > 0
            && let Some(suppressed) = self.warn_undecodable.check()
        {
            tracing::warn!(source = %self.id, file = %file.path.display(), lines = undecodable, suppressed, "lines that were not JSON objects were kept whole as `message`");
        }
        events
    }

    /// Sends one batch, doing housekeeping while downstream is full.
    fn send(&mut self, batch: Vec<LogEvent>) -> Result<(), Stop> {
        let mut batch = Some(batch);
        loop {
            let Some(out) = &self.out else {
                return Err(Stop::Closed);
            };
            let shutdown = &self.shutdown;
            let wake = tokio::time::Instant::from_std(
                self.next_discovery
                    .min(self.next_save.max(Instant::now() + Duration::from_millis(10))),
            );
            let sent = self.runtime.block_on(async {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => Some(Err(Stop::Shutdown)),
                    permit = out.reserve() => Some(match permit {
                        Ok(permit) => {
                            permit.send(batch.take().unwrap_or_default());
                            Ok(())
                        }
                        Err(_) => Err(Stop::Closed),
                    }),
                    () = tokio::time::sleep_until(wake) => None,
                }
            });
            match sent {
                Some(result) => return result,
                None => self.housekeeping(),
            }
        }
    }

    /// Lets go of a file that was read to its end and is settled. A file whose checkpoint is
    /// held back by lines the sink did not take keeps its checkpoint, so that a restart can
    /// find it again (beside its last path) and send them.
    fn forget(&mut self, id: u64) {
        if let Some(mut file) = self.files.remove(&id) {
            tracing::debug!(source = %self.id, file = %file.path.display(), "done with a rotated or deleted file");
            self.by_key.remove(&file.key);
            if file.ledger.is_stuck() {
                let _ = file.refresh_fingerprints();
                self.restored.insert(file.key, checkpoint_of(&file));
            }
            self.dirty = true;
        }
    }

    /// Matches the globs again: new files are opened, renamed ones followed, and files no
    /// longer found are marked to be read to their end.
    fn discover(&mut self) {
        let found = self.matching_files();
        if found.is_empty() && !self.warned_no_match {
            self.warned_no_match = true;
            tracing::warn!(source = %self.id, include = ?self.include, "no file matches include yet; still looking");
        }
        let mut matched = HashSet::new();
        let mut new_files = Vec::new();
        let mut reopen = Vec::new();
        for (path, meta) in found {
            let key = FileKey::of(&meta);
            matched.insert(key);
            match self.by_key.get(&key).and_then(|id| self.files.get_mut(id)) {
                Some(file) => {
                    file.attach();
                    if file.path != path {
                        tracing::info!(source = %self.id, from = %file.path.display(), to = %path.display(), "file was renamed; following it");
                        file.renamed(path);
                        self.dirty = true;
                    }
                    if file.handle.is_none() && meta.len() != file.line_offset {
                        reopen.push(file.id);
                    }
                }
                None => new_files.push((path, key)),
            }
        }
        self.detach_unmatched(&matched);
        for id in reopen {
            if self.make_room() {
                self.reopen(id);
            }
        }
        if !self.discovered_once && self.first_start && self.config.read_from == ReadFrom::End {
            // Applies to what the first discovery found, even if a file waits for a slot.
            self.start_at_end = new_files.iter().map(|(_, key)| *key).collect();
        }
        let mut waiting = 0;
        for (path, key) in new_files {
            if !self.make_room() {
                waiting += 1;
                continue;
            }
            self.open_new(path, key);
        }
        if waiting > 0
            && let Some(suppressed) = self.warn_full.check()
        {
            tracing::warn!(source = %self.id, waiting, max_open_files = self.config.max_open_files, suppressed, "files wait for a free slot: every open file still has unread or unconfirmed lines");
        }
        self.rescue_rotated(&matched);
        if !self.discovered_once {
            self.discovered_once = true;
            self.dirty = true;
        }
    }

    /// Files the globs no longer match. A path that still leads to the file keeps it attached
    /// (a glob can fail to read a directory for a moment); a closed file that moved away but
    /// still has unread bytes is opened again, even beyond the cap, since nothing else could
    /// find it; a closed file with nothing left is let go.
    fn detach_unmatched(&mut self, matched: &HashSet<FileKey>) {
        let unmatched: Vec<u64> = self
            .files
            .values()
            .filter(|f| !matched.contains(&f.key))
            .map(|f| f.id)
            .collect();
        for id in unmatched {
            let Some((path, key)) = self.files.get(&id).map(|f| (f.path.clone(), f.key)) else {
                continue;
            };
            let still_there =
                fs::metadata(&path).is_ok_and(|m| FileKey::of(&m) == key) && !self.exclude_matches(&path);
            let Some(file) = self.files.get_mut(&id) else {
                continue;
            };
            if still_there {
                file.attach();
                continue;
            }
            file.detach();
            if file.handle.is_some() {
                continue;
            }
            let moved = find_inode(&file.path, file.key);
            let unread = moved
                .as_ref()
                .and_then(|p| fs::metadata(p).ok())
                .is_some_and(|m| m.len() > file.line_offset);
            match moved {
                Some(path) if unread => {
                    tracing::info!(source = %self.id, from = %file.path.display(), to = %path.display(), "a closed file moved away with unread lines; reading them");
                    file.renamed(path);
                    self.reopen(id);
                    if let Some(file) = self.files.get_mut(&id) {
                        file.detach();
                    }
                }
                _ => self.forget(id),
            }
        }
    }

    fn exclude_matches(&self, path: &Path) -> bool {
        self.exclude
            .iter()
            .any(|p| p.matches_path_with(path, EXCLUDE_OPTIONS))
    }

    /// Regular files matching `include` and not `exclude`, one path per file.
    fn matching_files(&self) -> Vec<(PathBuf, fs::Metadata)> {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for pattern in &self.include {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for path in paths.flatten() {
                if self.exclude_matches(&path) {
                    continue;
                }
                let Ok(meta) = fs::metadata(&path) else {
                    continue;
                };
                if meta.is_file() && seen.insert(FileKey::of(&meta)) {
                    found.push((path, meta));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// Whether another file may be opened, closing an idle, fully acknowledged one if needed.
    fn make_room(&mut self) -> bool {
        let open = self.files.values().filter(|f| f.handle.is_some()).count();
        if open < self.config.max_open_files {
            return true;
        }
        // Only a file still reachable by its path can be closed and found again later.
        let idle = self
            .files
            .values()
            .filter(|f| {
                f.attached && f.handle.is_some() && f.at_eof && f.partial.is_empty() && f.ledger.is_settled()
            })
            .min_by_key(|f| f.last_data)
            .map(|f| f.id);
        let Some(id) = idle else {
            return false;
        };
        if let Some(file) = self.files.get_mut(&id) {
            let _ = file.refresh_fingerprints();
            file.handle = None;
        }
        true
    }

    fn reopen(&mut self, id: u64) {
        let Some(file) = self.files.get_mut(&id) else {
            return;
        };
        let handle = match File::open(&file.path) {
            Ok(handle) => handle,
            Err(e) => {
                self.metrics.add_errors(SourceErrorKind::Read, 1);
                if let Some(suppressed) = self.warn_open.check() {
                    tracing::warn!(source = %self.id, file = %file.path.display(), error = %e, suppressed, "cannot open file; trying again at the next discovery");
                }
                return;
            }
        };
        let Ok(meta) = handle.metadata() else {
            return;
        };
        if FileKey::of(&meta) != file.key {
            // Replaced between the glob and the open: the next discovery sorts it out.
            return;
        }
        let resume = check_resume(&handle, meta.len(), file.line_offset, file.head, file.marker.1);
        file.handle = Some(handle);
        file.at_eof = false;
        match resume {
            Ok(Ok(())) => {}
            Ok(Err(changed)) => {
                tracing::info!(source = %self.id, file = %file.path.display(), "{changed}; reading it again from its start");
                file.restart();
                self.dirty = true;
            }
            Err(_) => file.handle = None,
        }
    }

    /// Starts following a file not followed yet: from its checkpoint if it has one that still
    /// fits, else from its start (or its end, on a first start with `read_from = "end"`).
    fn open_new(&mut self, path: PathBuf, key: FileKey) {
        let handle = match File::open(&path) {
            Ok(handle) => handle,
            Err(e) => {
                self.metrics.add_errors(SourceErrorKind::Read, 1);
                if let Some(suppressed) = self.warn_open.check() {
                    tracing::warn!(source = %self.id, file = %path.display(), error = %e, suppressed, "cannot open file; trying again at the next discovery");
                }
                return;
            }
        };
        let Ok(meta) = handle.metadata() else {
            return;
        };
        if FileKey::of(&meta) != key {
            return;
        }
        let size = meta.len();
        let mut marker = None;
        let offset = match self.restored.remove(&key) {
            Some(checkpoint) => {
                match check_resume(
                    &handle,
                    size,
                    checkpoint.offset,
                    checkpoint.head,
                    checkpoint.marker,
                ) {
                    Ok(Ok(())) => {
                        marker = Some((checkpoint.offset, checkpoint.marker));
                        checkpoint.offset
                    }
                    Ok(Err(changed)) => {
                        tracing::info!(source = %self.id, file = %path.display(), "{changed}; reading it from its start");
                        0
                    }
                    Err(_) => 0,
                }
            }
            None if self.start_at_end.remove(&key) => size,
            None => 0,
        };
        let Ok(head) = Fingerprint::head(&handle, size) else {
            return;
        };
        self.track(path, key, handle, offset, head, true);
        if let Some(marker) = marker
            && let Some(file) = self.by_key.get(&key).and_then(|id| self.files.get_mut(id))
        {
            file.marker = marker;
        }
    }

    fn track(
        &mut self,
        path: PathBuf,
        key: FileKey,
        handle: File,
        offset: u64,
        head: Fingerprint,
        attached: bool,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        tracing::debug!(source = %self.id, file = %path.display(), offset, "following file");
        let mut file = TrackedFile::new(id, key, path, handle, offset, head);
        file.attached = attached;
        self.by_key.insert(key, id);
        self.files.insert(id, file);
        self.dirty = true;
    }

    /// A file rotated away while Ferry was stopped is no longer matched, but its unsent lines
    /// are still on disk, usually beside its old name: look for its inode there. Checkpoints
    /// of files that are matched but wait for a slot are kept; the others are dropped once
    /// their file is nowhere to be found.
    fn rescue_rotated(&mut self, matched: &HashSet<FileKey>) {
        let lost: Vec<FileKey> = self
            .restored
            .keys()
            .filter(|k| !matched.contains(k))
            .copied()
            .collect();
        for key in lost {
            let Some(checkpoint) = self.restored.get(&key).cloned() else {
                continue;
            };
            let Some(path) = find_inode(Path::new(&checkpoint.path), key) else {
                tracing::debug!(source = %self.id, file = %checkpoint.path, "file of a checkpoint is gone");
                self.restored.remove(&key);
                self.dirty = true;
                continue;
            };
            if !self.make_room() {
                continue;
            }
            self.restored.remove(&key);
            self.dirty = true;
            let Ok(handle) = File::open(&path) else {
                continue;
            };
            let Ok(meta) = handle.metadata() else {
                continue;
            };
            if FileKey::of(&meta) != key || meta.len() <= checkpoint.offset {
                continue;
            }
            if let Ok(Ok(())) = check_resume(
                &handle,
                meta.len(),
                checkpoint.offset,
                checkpoint.head,
                checkpoint.marker,
            ) {
                tracing::info!(source = %self.id, file = %path.display(), was = %checkpoint.path, "found a file rotated while stopped; reading its remaining lines");
                self.track(path, key, handle, checkpoint.offset, checkpoint.head, false);
                if let Some(file) = self.by_key.get(&key).and_then(|id| self.files.get_mut(id)) {
                    file.marker = (checkpoint.offset, checkpoint.marker);
                }
            }
        }
    }

    fn save_if_due(&mut self) {
        if self.dirty && Instant::now() >= self.next_save {
            self.save();
        }
    }

    fn save(&mut self) {
        self.next_save = Instant::now() + SAVE_INTERVAL;
        let mut entries = Vec::with_capacity(self.files.len() + self.restored.len());
        for file in self.files.values_mut() {
            if let Err(e) = file.refresh_fingerprints() {
                tracing::debug!(source = %self.id, file = %file.path.display(), error = %e, "cannot read fingerprints");
            }
            entries.push(checkpoint_of(file));
        }
        entries.extend(self.restored.values().cloned());
        match self.store.save(&entries) {
            Ok(()) => self.dirty = false,
            Err(e) => {
                self.metrics.add_errors(SourceErrorKind::Checkpoint, 1);
                if let Some(suppressed) = self.warn_save.check() {
                    tracing::warn!(source = %self.id, error = %e, suppressed, "cannot save checkpoints; trying again in a second (a restart meanwhile sends some lines again)");
                }
            }
        }
    }
}

/// What the checkpoint file records for `file`.
fn checkpoint_of(file: &TrackedFile) -> FileCheckpoint {
    let committed = file.ledger.committed();
    FileCheckpoint {
        dev: file.key.dev,
        ino: file.key.ino,
        path: file.path.to_string_lossy().into_owned(),
        offset: committed,
        head: file.head,
        // A marker taken at another offset says nothing about this one.
        marker: if file.marker.0 == committed {
            file.marker.1
        } else {
            Fingerprint::default()
        },
    }
}

/// A file with identity `key` in the directory of `old`, if any.
fn find_inode(old: &Path, key: FileKey) -> Option<PathBuf> {
    if let Ok(meta) = fs::metadata(old)
        && FileKey::of(&meta) == key
    {
        return Some(old.to_owned());
    }
    let dir = old.parent()?;
    fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let meta = entry.metadata().ok()?;
        (meta.is_file() && FileKey::of(&meta) == key).then(|| entry.path())
    })
}
