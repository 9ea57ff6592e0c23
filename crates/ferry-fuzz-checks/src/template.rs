//! Template parsing and rendering.

use std::borrow::Cow;

use bytes::Bytes;
use chrono::DateTime;
use ferry_core::{FieldPath, LogEvent, TIMESTAMP, Template, TemplateError, Value, parse_json_object};

/// `data` is a template, a newline, and the event to render it for: a JSON object line (its
/// fields), or any other bytes (the event's `message`). Parsing may fail but must not panic; a
/// parsed template must render the same text every time (the event carries a timestamp, so the
/// clock plays no part), re-parse from its own text into the same rendering, keep what
/// `render_into` appends to, and name in a missing-field error a path it reads.
pub fn template(data: &[u8]) {
    let (text, event) = match data.iter().position(|&b| b == b'\n') {
        Some(newline) => (&data[..newline], &data[newline + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    for path in text
        .split("{{")
        .skip(1)
        .filter_map(|rest| rest.split("}}").next())
    {
        check_path(path.trim());
    }
    let Ok(template) = text.parse::<Template>() else {
        return;
    };
    assert_eq!(template.as_str(), text);
    for path in template.fields() {
        check_path(&path.to_string());
    }
    let event = event_from(event);

    let first = template.render(&event);
    assert_eq!(first, template.render(&event), "two renderings differ");
    let again: Template = text.parse().expect("a template's own text parses again");
    assert_eq!(
        first,
        again.render(&event),
        "the re-parsed template renders differently"
    );

    let mut out = String::from("prefix:");
    let into = template.render_into(&event, &mut out);
    match (&first, into) {
        (Ok(text), Ok(())) => assert_eq!(out, format!("prefix:{text}")),
        (Err(a), Err(b)) => {
            assert_eq!(a, &b);
            assert_eq!(
                out, "prefix:",
                "a failed render_into must leave its output unchanged"
            );
        }
        (a, b) => panic!("render {a:?} but render_into {b:?}"),
    }

    match first {
        Ok(rendered) => {
            if template.is_static() {
                assert_eq!(rendered, text, "a static template renders as written");
                assert!(
                    matches!(rendered, Cow::Borrowed(_)),
                    "a static template must not allocate"
                );
            }
        }
        Err(TemplateError::MissingField {
            field,
            template: source,
        }) => {
            assert_eq!(source, text);
            assert!(
                template.fields().any(|path| path.to_string() == field),
                "the error names `{field}`, which the template does not read"
            );
        }
    }
}

/// A path prints as text that parses back into the same path.
fn check_path(text: &str) {
    if let Ok(path) = text.parse::<FieldPath>() {
        let shown = path.to_string();
        let back: FieldPath = shown
            .parse()
            .unwrap_or_else(|e| panic!("`{shown}` (from `{text}`): {e}"));
        assert_eq!(back, path, "`{text}` printed as `{shown}`");
    }
}

/// The event for the bytes after the template, always with a timestamp: time specifiers then
/// read it rather than the clock.
fn event_from(data: &[u8]) -> LogEvent {
    let line = Bytes::copy_from_slice(data);
    let mut event = match parse_json_object(&line) {
        Ok(fields) => LogEvent::from_fields(fields),
        Err(_) => LogEvent::from_message(line),
    };
    if event.timestamp().is_none() {
        let fixed = DateTime::from_timestamp(1_764_000_000, 123_456_789).expect("a valid time");
        event.fields_mut().insert(TIMESTAMP, Value::Timestamp(fixed));
    }
    event
}
