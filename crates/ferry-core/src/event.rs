use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::fields::Fields;
use crate::finalization::{BatchNotifier, DeliveryStatus, EventFinalizer};
use crate::path::{FieldPath, PathSegment};
use crate::raw_json::RawJsonObject;
use crate::value::Value;

/// The field holding the log line itself.
pub const MESSAGE: &str = "message";
/// The field holding the event's time (ingestion time unless the input carried one).
pub const TIMESTAMP: &str = "timestamp";
/// The field holding the name of the host the event came from.
pub const HOST: &str = "host";

/// One log event: ordered fields plus the acknowledgement handle of this copy.
///
/// An event decoded from a JSON line may still be that line ([`LogEvent::from_raw_json`]):
/// its fields are built on first access, and until something changes them an encoder may
/// copy the line instead ([`LogEvent::raw_json`]).
#[derive(Clone, Debug, Default)]
pub struct LogEvent {
    body: Body,
    finalizer: EventFinalizer,
}

#[derive(Clone, Debug)]
enum Body {
    Fields(Fields),
    /// Unchanged since decoding; `expanded` caches the fields once something read them.
    RawJson {
        object: Box<RawJsonObject>,
        expanded: OnceLock<Fields>,
    },
}

impl Default for Body {
    fn default() -> Self {
        Body::Fields(Fields::new())
    }
}

impl LogEvent {
    /// About how many bytes the event's data takes: a raw JSON line by its length plus what
    /// was appended, decoded fields by [`Fields::approximate_size`]. Cheap: no field of a raw
    /// line is parsed for it.
    pub fn approximate_size(&self) -> usize {
        match &self.body {
            Body::Fields(fields) => fields.approximate_size(),
            Body::RawJson { object, .. } => object.line().len() + object.appended().approximate_size(),
        }
    }

    /// An event with the given fields and no acknowledgement tracking.
    pub fn from_fields(fields: Fields) -> Self {
        Self {
            body: Body::Fields(fields),
            finalizer: EventFinalizer::default(),
        }
    }

    /// An event that is a JSON object line, expanded into fields only when read.
    pub fn from_raw_json(object: RawJsonObject) -> Self {
        Self {
            body: Body::RawJson {
                object: Box::new(object),
                expanded: OnceLock::new(),
            },
            finalizer: EventFinalizer::default(),
        }
    }

    /// The JSON line this event still is, unchanged since it was decoded.
    pub fn raw_json(&self) -> Option<&RawJsonObject> {
        match &self.body {
            Body::RawJson { object, .. } => Some(object),
            Body::Fields(_) => None,
        }
    }

    /// An event whose only field is `message`.
    pub fn from_message(message: impl Into<Bytes>) -> Self {
        let mut fields = Fields::with_capacity(4);
        fields.insert(MESSAGE, Value::Bytes(message.into()));
        Self::from_fields(fields)
    }

    /// The top-level fields.
    pub fn fields(&self) -> &Fields {
        match &self.body {
            Body::Fields(fields) => fields,
            Body::RawJson { object, expanded } => expanded.get_or_init(|| object.expand()),
        }
    }

    /// The top-level fields, mutable. A raw JSON event becomes a plain one: its line no longer
    /// says what the event holds.
    pub fn fields_mut(&mut self) -> &mut Fields {
        if let Body::RawJson { object, expanded } = &mut self.body {
            let fields = expanded.take().unwrap_or_else(|| object.expand());
            self.body = Body::Fields(fields);
        }
        match &mut self.body {
            Body::Fields(fields) => fields,
            Body::RawJson { .. } => unreachable!("expanded just above"),
        }
    }

    /// Takes the fields out, leaving the finalizer in place.
    pub fn into_parts(mut self) -> (Fields, EventFinalizer) {
        let fields = std::mem::take(self.fields_mut());
        let finalizer = std::mem::take(&mut self.finalizer);
        (fields, finalizer)
    }

    /// The value at `path`.
    pub fn get_path(&self, path: &FieldPath) -> Option<&Value> {
        let mut segments = path.segments().iter();
        let mut current = match segments.next()? {
            PathSegment::Field(name) => self.fields().get(name)?,
            PathSegment::Index(_) => return None,
        };
        for segment in segments {
            current = match (segment, current) {
                (PathSegment::Field(name), Value::Object(fields)) => fields.get(name)?,
                (PathSegment::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// Sets the value at `path`, creating the maps and array slots on the way; an existing value
    /// of another kind in the way is replaced. Returns the previous value.
    pub fn insert_path(&mut self, path: &FieldPath, value: Value) -> Option<Value> {
        let segments = path.segments();
        let Some((PathSegment::Field(first), rest)) = segments.split_first() else {
            return None;
        };
        let top = self.fields_mut();
        if rest.is_empty() {
            return top.insert(first.as_str(), value);
        }
        if top.get(first).is_none() {
            top.insert(first.as_str(), container_for(&rest[0]));
        }
        let mut current = top.get_mut(first)?;
        for (i, segment) in rest.iter().enumerate() {
            let last = i + 1 == rest.len();
            let next = rest.get(i + 1);
            match segment {
                PathSegment::Field(name) => {
                    if !matches!(current, Value::Object(_)) {
                        *current = Value::Object(Fields::new());
                    }
                    let Value::Object(fields) = current else {
                        return None;
                    };
                    if last {
                        return fields.insert(name.as_str(), value);
                    }
                    if fields.get(name).is_none() {
                        fields.insert(name.as_str(), next.map(container_for).unwrap_or_default());
                    }
                    current = fields.get_mut(name)?;
                }
                PathSegment::Index(index) => {
                    if !matches!(current, Value::Array(_)) {
                        *current = Value::Array(Vec::new());
                    }
                    let Value::Array(items) = current else { return None };
                    if items.len() <= *index {
                        items.resize(*index + 1, Value::Null);
                    }
                    if last {
                        return Some(std::mem::replace(&mut items[*index], value));
                    }
                    if matches!(items[*index], Value::Null) {
                        items[*index] = next.map(container_for).unwrap_or_default();
                    }
                    current = &mut items[*index];
                }
            }
        }
        None
    }

    /// Removes the value at `path`; returns it.
    pub fn remove_path(&mut self, path: &FieldPath) -> Option<Value> {
        let segments = path.segments();
        let (last, parents) = segments.split_last()?;
        if parents.is_empty() {
            return match last {
                PathSegment::Field(name) => self.fields_mut().remove(name),
                PathSegment::Index(_) => None,
            };
        }
        let mut current = match &parents[0] {
            PathSegment::Field(name) => self.fields_mut().get_mut(name)?,
            PathSegment::Index(_) => return None,
        };
        for segment in &parents[1..] {
            current = match (segment, current) {
                (PathSegment::Field(name), Value::Object(fields)) => fields.get_mut(name)?,
                (PathSegment::Index(i), Value::Array(items)) => items.get_mut(*i)?,
                _ => return None,
            };
        }
        match (last, current) {
            (PathSegment::Field(name), Value::Object(fields)) => fields.remove(name),
            (PathSegment::Index(i), Value::Array(items)) if *i < items.len() => Some(items.remove(*i)),
            _ => None,
        }
    }

    /// The `message` field's bytes, when it is a string.
    pub fn message(&self) -> Option<&Bytes> {
        self.fields().get(MESSAGE).and_then(Value::as_bytes)
    }

    /// The `timestamp` field, when it holds a timestamp (read without expanding a raw JSON
    /// event).
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        match &self.body {
            Body::RawJson { object, .. } => object.timestamp(),
            Body::Fields(fields) => fields.get(TIMESTAMP).and_then(Value::as_timestamp).copied(),
        }
    }

    /// Adds a top-level field unless the event already has one by that name (decoded fields
    /// win). A raw JSON event stays raw when its line cannot hold the name: the field is
    /// appended after the line's own, and nothing is parsed.
    pub fn insert_if_absent(&mut self, name: &str, value: Value) {
        if let Body::RawJson { object, expanded } = &mut self.body
            && !object.appended().contains(name)
            && !line_may_hold_key(object.line(), name)
        {
            object.append(name, value);
            // A cache built before this field was added would not show it.
            expanded.take();
            return;
        }
        let fields = self.fields_mut();
        if !fields.contains(name) {
            fields.insert(name, value);
        }
    }

    /// Attaches this copy to `notifier`'s batch (replacing any earlier handle, which is then
    /// settled as `Errored`).
    pub fn attach_notifier(&mut self, notifier: &Arc<BatchNotifier>) {
        self.finalizer = EventFinalizer::new(notifier.clone());
    }

    /// Whether a source waits for this copy's verdict.
    pub fn is_tracked(&self) -> bool {
        self.finalizer.is_tracked()
    }

    /// Takes the acknowledgement handle out, leaving an untracked one: for a sink that keeps
    /// the handle until the destination answers but lets go of the event's fields.
    pub fn take_finalizer(&mut self) -> EventFinalizer {
        std::mem::take(&mut self.finalizer)
    }

    /// Settles this copy and drops it.
    pub fn settle(mut self, status: DeliveryStatus) {
        self.finalizer.settle(status);
    }
}

impl PartialEq for LogEvent {
    /// Events are equal when their fields are; acknowledgement handles are not data.
    fn eq(&self, other: &Self) -> bool {
        self.fields() == other.fields()
    }
}

/// Whether a JSON line may have a key `name`: it holds `"name"`, or a `\u` escape (which
/// could spell the name's letters). A false "maybe" only costs a parse.
fn line_may_hold_key(line: &[u8], name: &str) -> bool {
    // Runs twice per event of a file source: no allocation, just scans.
    let name = name.as_bytes();
    let quoted_at =
        |at: usize| at > 0 && line.get(at - 1) == Some(&b'"') && line.get(at + name.len()) == Some(&b'"');
    memchr::memmem::find_iter(line, name).any(quoted_at) || memchr::memmem::find(line, b"\\u").is_some()
}

fn container_for(next: &PathSegment) -> Value {
    match next {
        PathSegment::Field(_) => Value::Object(Fields::new()),
        PathSegment::Index(_) => Value::Array(Vec::new()),
    }
}

#[cfg(test)]
mod insert_if_absent_tests {
    use super::*;

    fn raw(line: &'static str) -> LogEvent {
        let scanned = RawJsonObject::scan(Bytes::from_static(line.as_bytes())).expect("a JSON object");
        LogEvent::from_raw_json(scanned.object)
    }

    #[test]
    fn a_raw_line_without_the_key_stays_raw_and_gains_the_field() {
        let mut e = raw(r#"{"a":1}"#);
        e.insert_if_absent("file", Value::Integer(7));
        assert!(e.raw_json().is_some());
        assert_eq!(e.fields().get("file"), Some(&Value::Integer(7)));
    }

    #[test]
    fn decoded_fields_win_even_when_spelled_with_escapes() {
        let mut e = raw(r#"{"file":"mine"}"#);
        e.insert_if_absent("file", Value::Integer(7));
        assert_eq!(
            e.fields().get("file"),
            Some(&Value::Bytes(Bytes::from_static(b"mine")))
        );
        let mut e = raw(r#"{"fil\u0065":"mine"}"#);
        e.insert_if_absent("file", Value::Integer(7));
        assert_eq!(
            e.fields().get("file"),
            Some(&Value::Bytes(Bytes::from_static(b"mine")))
        );
        let mut e = LogEvent::from_message("x");
        e.insert_if_absent("message", Value::Integer(7));
        assert_eq!(e.message(), Some(&Bytes::from_static(b"x")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> FieldPath {
        s.parse().unwrap()
    }

    #[test]
    fn insert_path_builds_nested_maps_and_arrays() {
        let mut e = LogEvent::default();
        e.insert_path(&path("a.b[1].c"), Value::from("x"));
        assert_eq!(e.get_path(&path("a.b[1].c")), Some(&Value::from("x")));
        assert_eq!(e.get_path(&path("a.b[0]")), Some(&Value::Null));
        assert_eq!(e.get_path(&path("a.b[2]")), None);
        assert_eq!(e.get_path(&path("a.x")), None);
    }

    #[test]
    fn insert_path_replaces_scalars_in_the_way() {
        let mut e = LogEvent::from_message("hi");
        e.insert_path(&path("message.inner"), Value::from(1));
        assert_eq!(e.get_path(&path("message.inner")), Some(&Value::from(1)));
    }

    #[test]
    fn remove_path_removes_nested_values() {
        let mut e = LogEvent::default();
        e.insert_path(&path("a.b"), Value::from(1));
        e.insert_path(&path("a.c[0]"), Value::from(2));
        assert_eq!(e.remove_path(&path("a.b")), Some(Value::from(1)));
        assert_eq!(e.remove_path(&path("a.c[0]")), Some(Value::from(2)));
        assert_eq!(e.remove_path(&path("a.b")), None);
        assert!(e.get_path(&path("a")).is_some());
    }

    #[test]
    fn standard_fields_are_typed() {
        let now = Utc::now();
        let mut e = LogEvent::from_message("line");
        e.fields_mut().insert(TIMESTAMP, Value::from(now));
        assert_eq!(e.message().map(|b| &b[..]), Some(&b"line"[..]));
        assert_eq!(e.timestamp(), Some(now));
    }
}
