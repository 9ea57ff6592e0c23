//! # ferry-topology
//!
//! Builds the pipeline a [`ferry_config::Config`] describes and runs it to the end:
//!
//! ```text
//! source ──▶ fan-out ──▶ buffer (per sink) ──▶ sink ──▶ destination
//!    ▲                                            │
//!    └──────────── acknowledgements ◀─────────────┘
//! ```
//!
//! - Every sink is built and, unless disabled, health-checked before any source starts. A
//!   failed check is logged and the run goes on, unless [`RunOptions::require_healthy`] is set:
//!   then [`run`] returns [`RunOutcome::Unhealthy`] before any input is read.
//! - Channels are bounded everywhere; a full sink buffer (`when_full = "block"`) makes the
//!   fan-out wait, which makes the source wait.
//! - Shutdown begins at end of input (every source finished), at the first SIGINT/SIGTERM, or
//!   when a sink fails: sources stop, the fan-outs end, buffers drain, sinks flush. All of it
//!   must finish within [`RunOptions::shutdown_timeout`]. Then the sinks' deadline token fires:
//!   memory-buffered sinks write what they still hold to their dead-letter destination and
//!   the run ends [`RunOutcome::Unfinished`] with their count; disk-buffered sinks leave it on
//!   disk for the next start, and the run still counts as completed. A second signal ends the
//!   run at once ([`RunOutcome::Aborted`]).
//! - SIGHUP asks the caller's [`ReloadCheck`] to load the configuration again. When it
//!   loads, the pipeline drains exactly as at shutdown and [`run`] returns
//!   [`RunOutcome::Reload`], so the caller builds and runs the new one in the same process
//!   (checkpoints, disk buffers and standard input carry over); when it does not, the reason
//!   is logged and the run goes on.
//! - A sink that fails ends the run in order: the other sinks drain what they have (within
//!   the deadline), the failed sink's buffer refuses further events (counted in `dropped`),
//!   and the run ends [`RunOutcome::SinkFailed`] naming the sink and the cause.
//! - One summary line per sink is logged every [`RunOptions::summary_interval`] and once at
//!   exit (`final summary`): received, delivered, retried, rejected, dropped, buffered,
//!   in flight.
//! - When the configuration has an `[api]` table, its address is bound while the pipeline is
//!   built (a port in use is a [`BuildError`] naming `api.address`), and the HTTP endpoint
//!   (`/metrics`, `/health`, see `ferry-api`) serves from the start of [`run`] to its end.

mod build;
mod run;
mod signals;
mod summary;

pub use build::{Buffers, BuildError, Pipeline, build_pipeline, check_health, check_offline};
pub use run::{ReloadCheck, RunOptions, RunOutcome, run};
pub use signals::{Request, Signals};
