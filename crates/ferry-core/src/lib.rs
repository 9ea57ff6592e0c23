//! # ferry-core
//!
//! The vocabulary every Ferry crate shares:
//!
//! - [`LogEvent`]: an ordered map of fields ([`Fields`]) to [`Value`]s, with nested access
//!   through a parsed [`FieldPath`] (`a.b`, `a.b[0]`, `a."dotted.key"`) and the standard fields
//!   `message`, `timestamp` and `host`. Strings are stored as [`bytes::Bytes`], so a source can
//!   hand out slices of the buffer it read without copying them.
//! - [`Template`]: a parsed `{{ field.path }}` / strftime template (`logs-{{unit}}-%Y-%m-%d`)
//!   rendered per event; a missing field is a typed [`TemplateError`] naming it.
//! - Acknowledgements ([`finalization`]): a source attaches a [`BatchNotifier`] to the events it
//!   emits; every copy of every event carries an [`EventFinalizer`], and the source learns one
//!   [`DeliveryStatus`] for the whole batch once every copy has been settled. A finalizer dropped
//!   without a verdict counts as [`DeliveryStatus::Errored`]: losing track of an event can never
//!   be mistaken for delivering it.
//! - The component contract ([`component`]): [`SourceConfig`] and [`SinkConfig`] are `typetag`
//!   trait objects keyed by `type = "..."`, and every component also submits a
//!   [`ComponentDescriptor`] through `inventory` so the runner can list and validate components
//!   without knowing their crates.
//!
//! ```
//! use ferry_core::{LogEvent, Template, Value};
//!
//! let mut event = LogEvent::from_message("GET /index.html 200");
//! event.insert_path(&"unit".parse().unwrap(), Value::from("nginx"));
//! let topic: Template = "logs-{{ unit }}".parse().unwrap();
//! assert_eq!(topic.render(&event).unwrap(), "logs-nginx");
//! ```

pub mod buffer_config;
pub mod component;
mod event;
mod fields;
pub mod finalization;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub use health::SinkHealth;
pub mod extra_metrics;
mod json_object;
mod json_scan;
pub use extra_metrics::{ExtraFamily, ExtraKind, ExtraMetrics, ExtraSample};
pub mod latency;
pub mod metrics;
pub use latency::{LATENCY_BUCKETS_US, LatencyHistogram, LatencySnapshot};
pub use metrics::{SinkErrorKind, SinkMetrics, SinkMetricsSnapshot, monotonic_us};
pub mod source_metrics;
pub use source_metrics::{SourceErrorKind, SourceMetrics, SourceMetricsSnapshot};
mod path;
pub mod rate_limit;
pub mod raw_json;
pub mod registration;
mod rfc3339;
mod sensitive;
mod template;
mod value;

pub use buffer_config::{BufferConfig, BufferType, WhenFull};
pub use component::{
    ComponentDescriptor, ComponentKind, ConfigIssue, EventStream, Healthcheck, ReplayReport, ReplayRequest,
    SendClosed, SendPermit, SinkConfig, SinkContext, SinkRunner, SourceConfig, SourceContext, SourceSender,
    SourceTask, registered_components,
};
pub use event::{HOST, LogEvent, MESSAGE, TIMESTAMP};
pub use fields::Fields;
pub use finalization::{BatchNotifier, BatchStatusReceiver, DeliveryStatus, EventFinalizer};
pub use json_object::parse_json_object;
pub use path::{FieldPath, PathError, PathSegment};
pub use raw_json::RawJsonObject;
pub use sensitive::Sensitive;
pub use template::{Template, TemplateError, TemplateParseError};
pub use value::Value;

/// The error type components return from `build` and health checks: each component crate has
/// its own typed error enum, boxed here so the topology can carry any of them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
