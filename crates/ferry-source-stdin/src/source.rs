use bytes::{Bytes, BytesMut};
use chrono::Utc;
use ferry_codecs::Decoder;
use ferry_core::rate_limit::WarnLimiter;
use ferry_core::{BoxError, LogEvent, SourceContext};
use tokio::sync::mpsc;

use crate::config::StdinSourceConfig;
use crate::lines::LineSplitter;

const READ_SIZE: usize = 256 * 1024;

/// Reads stdin on a thread of its own (a blocking read cannot be cancelled) and forwards its
/// batches until end of input or shutdown.
///
/// The thread does not hold the pipeline's sender: on shutdown this task returns and drops the
/// sender, so the pipeline can drain even while the thread is still stuck in `read`.
pub(crate) async fn run(config: StdinSourceConfig, cx: SourceContext) -> Result<(), BoxError> {
    let (tx, mut rx) = mpsc::channel::<Vec<LogEvent>>(2);
    let source_id = cx.id.clone();
    std::thread::Builder::new()
        .name(format!("stdin-{source_id}"))
        .spawn(move || read_stdin(config, source_id, tx))?;
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

fn read_stdin(config: StdinSourceConfig, source_id: String, tx: mpsc::Sender<Vec<LogEvent>>) {
    let host = Bytes::from(gethostname::gethostname().to_string_lossy().into_owned());
    let decoder = Decoder::new(&config.decoding);
    let undecodable = WarnLimiter::default();
    // Every undecodable line is counted; only some are logged as they happen.
    let undecodable_count = std::cell::Cell::new(0u64);
    let oversized = WarnLimiter::default();
    let mut splitter = LineSplitter::new(config.max_line_bytes);
    let mut lines = Vec::new();
    // Held so that nothing in the process reads standard input through std's buffer, which
    // would take bytes from under `read_into_spare`.
    let _stdin = std::io::stdin().lock();
    let emit = |lines: &mut Vec<Bytes>| -> bool {
        if lines.is_empty() {
            return true;
        }
        let now = Utc::now();
        let mut batch = Vec::with_capacity(lines.len());
        for line in lines.drain(..) {
            let (event, error) = decoder.decode_with_standard_fields(line, &host, now);
            if let Some(error) = error {
                undecodable_count.set(undecodable_count.get() + 1);
                if let Some(suppressed) = undecodable.check() {
                    tracing::warn!(source = %source_id, suppressed, "{error}");
                }
            }
            batch.push(event);
        }
        tx.blocking_send(batch).is_ok()
    };
    loop {
        let read = match read_into_spare(splitter.spare(READ_SIZE)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(source = %source_id, error = %e, "cannot read standard input; stopping this source");
                break;
            }
        };
        if read == 0 {
            break;
        }
        let cut = splitter.drain_lines(&mut lines);
        if cut > 0
            && let Some(suppressed) = oversized.check()
        {
            tracing::warn!(source = %source_id, lines = cut, suppressed, max_line_bytes = config.max_line_bytes, "line longer than max_line_bytes split into several events");
        }
        if !emit(&mut lines) {
            return;
        }
    }
    lines.extend(splitter.finish());
    emit(&mut lines);
    if undecodable_count.get() > 0 {
        tracing::warn!(source = %source_id, lines = undecodable_count.get(), "lines that were not JSON objects were kept whole as `message`");
    }
}
