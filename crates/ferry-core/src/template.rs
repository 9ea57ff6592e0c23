use std::borrow::Cow;
use std::fmt::Write;
use std::str::FromStr;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};

use crate::event::LogEvent;
use crate::path::{FieldPath, PathError};
use crate::value::Value;

/// A string with `{{ field.path }}` placeholders and strftime specifiers, parsed once and
/// rendered per event: `logs-{{ unit }}-%Y-%m-%d` becomes `logs-nginx-2026-11-25`.
///
/// Time specifiers are taken from the event's `timestamp` field, or from the current time when
/// the event has none. `%%` is a literal percent sign.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug)]
enum Part {
    Literal(String),
    Field(FieldPath),
    Time(Vec<Item<'static>>),
}

/// Why a template string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateParseError {
    /// `{{` without a closing `}}`.
    #[error("unclosed `{{{{` in template `{template}`")]
    Unclosed {
        /// The template text.
        template: String,
    },
    /// `{{ }}` with a path that does not parse.
    #[error("in template `{template}`: {source}")]
    BadPath {
        /// The template text.
        template: String,
        /// The path error.
        source: PathError,
    },
    /// A `%` specifier chrono does not know.
    #[error("invalid strftime specifier in template `{template}`")]
    BadStrftime {
        /// The template text.
        template: String,
    },
}

/// Why a template could not be rendered for one event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The event lacks a field the template needs (or it is null).
    #[error("missing field `{field}` required by template `{template}`")]
    MissingField {
        /// The missing field's path.
        field: String,
        /// The template text.
        template: String,
    },
}

impl Template {
    /// The text the template was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether rendering gives the same text for every event.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The field paths the template reads.
    pub fn fields(&self) -> impl Iterator<Item = &FieldPath> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(path) => Some(path),
            _ => None,
        })
    }

    /// Renders the template for `event`; static templates borrow instead of allocating.
    pub fn render(&self, event: &LogEvent) -> Result<Cow<'_, str>, TemplateError> {
        match self.parts.as_slice() {
            [] => Ok(Cow::Borrowed("")),
            [Part::Literal(text)] => Ok(Cow::Borrowed(text)),
            _ => {
                let mut out = String::with_capacity(self.source.len() + 16);
                self.render_into(event, &mut out)?;
                Ok(Cow::Owned(out))
            }
        }
    }

    /// Appends the rendering for `event` to `out` (which is left unchanged on error).
    pub fn render_into(&self, event: &LogEvent, out: &mut String) -> Result<(), TemplateError> {
        let start = out.len();
        let mut now: Option<DateTime<Utc>> = None;
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(path) => match event.get_path(path) {
                    None | Some(Value::Null) => {
                        out.truncate(start);
                        return Err(TemplateError::MissingField {
                            field: path.to_string(),
                            template: self.source.clone(),
                        });
                    }
                    Some(value) => value.write_display(out),
                },
                Part::Time(items) => {
                    let time = match event.timestamp() {
                        Some(t) => t,
                        None => *now.get_or_insert_with(Utc::now),
                    };
                    let _ = write!(out, "{}", time.format_with_items(items.iter()));
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Template {
    type Err = TemplateParseError;

    fn from_str(source: &str) -> Result<Self, Self::Err> {
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match rest.find("{{") {
                Some(open) => {
                    push_text(&mut parts, &rest[..open], source)?;
                    let after = &rest[open + 2..];
                    let close = after.find("}}").ok_or_else(|| TemplateParseError::Unclosed {
                        template: source.to_owned(),
                    })?;
                    let path = after[..close].trim().parse::<FieldPath>().map_err(|e| {
                        TemplateParseError::BadPath {
                            template: source.to_owned(),
                            source: e,
                        }
                    })?;
                    parts.push(Part::Field(path));
                    rest = &after[close + 2..];
                }
                None => {
                    push_text(&mut parts, rest, source)?;
                    rest = "";
                }
            }
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }
}

fn push_text(parts: &mut Vec<Part>, text: &str, template: &str) -> Result<(), TemplateParseError> {
    if text.is_empty() {
        return Ok(());
    }
    if !text.contains('%') {
        parts.push(Part::Literal(text.to_owned()));
        return Ok(());
    }
    let items = StrftimeItems::new(text)
        .parse_to_owned()
        .map_err(|_| TemplateParseError::BadStrftime {
            template: template.to_owned(),
        })?;
    parts.push(Part::Time(items));
    Ok(())
}

impl<'de> serde::Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TIMESTAMP;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn event() -> LogEvent {
        let mut e = LogEvent::from_message("hello");
        e.insert_path(&"unit".parse().unwrap(), Value::from("nginx"));
        e.insert_path(&"k8s.pod[0]".parse().unwrap(), Value::from("web-1"));
        e.insert_path(&"status".parse().unwrap(), Value::from(503));
        let ts = Utc.with_ymd_and_hms(2026, 11, 25, 13, 4, 5).unwrap();
        e.fields_mut().insert(TIMESTAMP, Value::from(ts));
        e
    }

    fn render(t: &str) -> Result<String, TemplateError> {
        let t: Template = t.parse().unwrap();
        t.render(&event()).map(Cow::into_owned)
    }

    #[test]
    fn renders_fields_and_dates_from_the_event_timestamp() {
        assert_eq!(render("logs-{{unit}}-%Y-%m-%d").unwrap(), "logs-nginx-2026-11-25");
        assert_eq!(render("{{ k8s.pod[0] }}/{{status}}").unwrap(), "web-1/503");
        assert_eq!(render("100%% {{unit}}").unwrap(), "100% nginx");
    }

    #[test]
    fn static_templates_borrow() {
        let t: Template = "plain-topic".parse().unwrap();
        assert!(t.is_static());
        assert!(matches!(
            t.render(&event()).unwrap(),
            Cow::Borrowed("plain-topic")
        ));
    }

    #[test]
    fn missing_field_names_the_field() {
        let err = render("logs-{{ service.name }}").unwrap_err();
        assert_eq!(
            err,
            TemplateError::MissingField {
                field: "service.name".into(),
                template: "logs-{{ service.name }}".into()
            }
        );
        assert!(err.to_string().contains("service.name"));
    }

    #[test]
    fn parse_errors_are_typed() {
        assert!(matches!(
            "a-{{unit".parse::<Template>(),
            Err(TemplateParseError::Unclosed { .. })
        ));
        assert!(matches!(
            "a-{{}}".parse::<Template>(),
            Err(TemplateParseError::BadPath { .. })
        ));
        assert!(matches!(
            "a-%Q".parse::<Template>(),
            Err(TemplateParseError::BadStrftime { .. })
        ));
    }

    proptest! {
        #[test]
        fn text_without_markup_renders_verbatim(text in "[a-zA-Z0-9 _.\\-/]{0,40}") {
            let t: Template = text.parse().unwrap();
            prop_assert!(t.is_static());
            prop_assert_eq!(t.render(&event()).unwrap(), text);
        }

        #[test]
        fn field_placeholders_render_the_field(value in "[a-zA-Z0-9 ._-]{1,20}", prefix in "[a-z-]{0,8}") {
            let mut e = LogEvent::default();
            e.insert_path(&"f".parse().unwrap(), Value::from(value.as_str()));
            let t: Template = format!("{prefix}{{{{f}}}}").parse().unwrap();
            prop_assert_eq!(t.render(&e).unwrap(), format!("{prefix}{value}"));
        }
    }
}
