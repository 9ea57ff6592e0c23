use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use ferry_codecs::Decoder;
use ferry_core::rate_limit::WarnLimiter;
use ferry_core::{BoxError, LogEvent, SourceContext, SourceErrorKind, SourceMetrics};
use tokio::sync::mpsc;

use crate::config::StdinSourceConfig;
use crate::lines::LineSplitter;

const READ_SIZE: usize = 256 * 1024;

/// Batches read ahead of the pipeline: small, so backpressure reaches the read at once.
const READ_AHEAD_BATCHES: usize = 2;

/// Standard input is read by one thread for the life of the process, not one per source
/// instance: a reload (SIGHUP) stops the running stdin source and starts a new one, and a
/// blocking `read` cannot be cancelled. What the thread has read but no source has taken yet
/// waits in its channel for the next instance, so a reload loses no line.
struct StdinReader {
    /// The receiving end, held by the running stdin source and given back when it stops.
    batches: Mutex<Option<mpsc::Receiver<Vec<LogEvent>>>>,
    /// The settings of the latest instance; the thread picks them up at its next read.
    settings: Arc<ReaderSettings>,
}

/// What the reading thread needs from the running source's configuration.
struct ReaderSettings {
    /// The configuration, the source's ID and its metrics.
    current: Mutex<(StdinSourceConfig, String, Arc<SourceMetrics>)>,
    /// Bumped on every change, so the thread checks one atomic per read, not a lock.
    generation: AtomicU64,
}

static READER: Mutex<Option<Arc<StdinReader>>> = Mutex::new(None);

/// The process's stdin reader, started on first use with `config`, or updated to it.
fn reader(
    config: &StdinSourceConfig,
    source_id: &str,
    metrics: &Arc<SourceMetrics>,
) -> std::io::Result<Arc<StdinReader>> {
    let mut slot = READER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(reader) = slot.as_ref() {
        let mut current = reader
            .settings
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = (config.clone(), source_id.to_owned(), metrics.clone());
        reader.settings.generation.fetch_add(1, Ordering::Release);
        return Ok(reader.clone());
    }
    let (tx, rx) = mpsc::channel::<Vec<LogEvent>>(READ_AHEAD_BATCHES);
    let settings = Arc::new(ReaderSettings {
        current: Mutex::new((config.clone(), source_id.to_owned(), metrics.clone())),
        generation: AtomicU64::new(0),
    });
    let thread_settings = settings.clone();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_stdin(&thread_settings, tx))?;
    let reader = Arc::new(StdinReader {
        batches: Mutex::new(Some(rx)),
        settings,
    });
    *slot = Some(reader.clone());
    Ok(reader)
}

/// Gives the receiver back to the process's reader when the source stops, however it stops.
struct Lease {
    reader: Arc<StdinReader>,
    batches: Option<mpsc::Receiver<Vec<LogEvent>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(batches) = self.batches.take() {
            *self
                .reader
                .batches
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(batches);
        }
    }
}

/// Forwards what the stdin thread reads until end of input or shutdown.
///
/// The thread does not hold the pipeline's sender: on shutdown this task returns and drops the
/// sender, so the pipeline can drain even while the thread is still stuck in `read`.
pub(crate) async fn run(config: StdinSourceConfig, cx: SourceContext) -> Result<(), BoxError> {
    let reader = reader(&config, &cx.id, &cx.metrics)?;
    let batches = reader
        .batches
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .ok_or("standard input is already read by another stdin source; a configuration can have only one")?;
    let mut lease = Lease {
        reader,
        batches: Some(batches),
    };
    let Some(rx) = lease.batches.as_mut() else {
        return Ok(());
    };
    loop {
        tokio::select! {
            biased;
            batch = rx.recv() => match batch {
                Some(batch) => {
                    if cx.out.send_batch(batch).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            () = cx.shutdown.cancelled() => {
                // Forward what was already read, then stop.
                while let Ok(batch) = rx.try_recv() {
                    if cx.out.send_batch(batch).await.is_err() {
                        break;
                    }
                }
                tracing::debug!(source = %cx.id, "stdin source stopped by shutdown");
                break;
            }
        }
    }
    Ok(())
}

/// Reads standard input into the spare capacity of `buf`, without zero-filling it first (a
/// 256 KiB memset per read, ~1% of a pipeline's CPU), and returns how many bytes came (0 at
/// end of input). Straight from the file descriptor: `Read::read` needs initialised memory.
fn read_into_spare(buf: &mut BytesMut) -> std::io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: read(2) writes at most `spare.len()` bytes into memory this function borrows
    // exclusively, and returns how many it wrote.
    let read = unsafe { libc::read(libc::STDIN_FILENO, spare.as_mut_ptr().cast(), spare.len()) };
    let read = usize::try_from(read).map_err(|_| std::io::Error::last_os_error())?;
    // SAFETY: those `read` bytes past the current length were just written by the kernel.
    unsafe { buf.set_len(buf.len() + read) };
    Ok(read)
}

fn read_stdin(settings: &ReaderSettings, tx: mpsc::Sender<Vec<LogEvent>>) {
    let host = Bytes::from(gethostname::gethostname().to_string_lossy().into_owned());
    let (mut config, mut source_id, mut metrics) = settings
        .current
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut generation = settings.generation.load(Ordering::Acquire);
    let mut decoder = Decoder::new(&config.decoding);
    let undecodable = WarnLimiter::default();
    // Every undecodable line is counted; only some are logged as they happen.
    let mut undecodable_count = 0u64;
    let oversized = WarnLimiter::default();
    // Counted for the line logged when the source stops: every bad line has a number there.
    let mut lines_read = 0u64;
    let mut cuts = 0u64;
    let mut splitter = LineSplitter::new(config.max_line_bytes);
    let mut lines = Vec::new();
    // Held so that nothing in the process reads standard input through std's buffer, which
    // would take bytes from under `read_into_spare`.
    let _stdin = std::io::stdin().lock();
    let mut emit =
        |lines: &mut Vec<Bytes>, decoder: &Decoder, source_id: &str, metrics: &SourceMetrics| -> bool {
            if lines.is_empty() {
                return true;
            }
            let now = Utc::now();
            lines_read += lines.len() as u64;
            let mut batch = Vec::with_capacity(lines.len());
            let mut failed = 0;
            for line in lines.drain(..) {
                let (event, error) = decoder.decode_with_standard_fields(line, &host, now);
                if let Some(error) = error {
                    failed += 1;
                    if let Some(suppressed) = undecodable.check() {
                        tracing::warn!(source = %source_id, suppressed, "{error}");
                    }
                }
                batch.push(event);
            }
            undecodable_count += failed;
            metrics.add_errors(SourceErrorKind::Undecodable, failed);
            tx.blocking_send(batch).is_ok()
        };
    loop {
        let read = match read_into_spare(splitter.spare(READ_SIZE)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                metrics.add_errors(SourceErrorKind::Read, 1);
                tracing::error!(source = %source_id, error = %e, "cannot read standard input; stopping this source");
                break;
            }
        };
        if read == 0 {
            break;
        }
        if settings.generation.load(Ordering::Acquire) != generation {
            (config, source_id, metrics) = settings
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            generation = settings.generation.load(Ordering::Acquire);
            decoder = Decoder::new(&config.decoding);
            splitter.set_max_line_bytes(config.max_line_bytes);
        }
        metrics.add_bytes(read as u64);
        let cut = splitter.drain_lines(&mut lines);
        metrics.add_errors(SourceErrorKind::SplitLine, cut as u64);
        cuts += cut as u64;
        if cut > 0
            && let Some(suppressed) = oversized.check()
        {
            tracing::warn!(source = %source_id, lines = cut, suppressed, max_line_bytes = config.max_line_bytes, "line longer than max_line_bytes split into several events");
        }
        if !emit(&mut lines, &decoder, &source_id, &metrics) {
            return;
        }
    }
    lines.extend(splitter.finish());
    emit(&mut lines, &decoder, &source_id, &metrics);
    if undecodable_count > 0 {
        tracing::warn!(source = %source_id, lines = undecodable_count, "lines that were not JSON objects were kept whole as `message`");
    }
    // `events` counts what was sent on; a line cut N times became N + 1 of them.
    tracing::info!(source = %source_id, events = lines_read, split_cuts = cuts, undecodable = undecodable_count, max_line_bytes = config.max_line_bytes, "stdin source reached end of input");
}
