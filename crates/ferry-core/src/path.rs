use std::fmt;
use std::str::FromStr;

use compact_str::CompactString;

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A field of a map.
    Field(CompactString),
    /// An element of an array.
    Index(usize),
}

/// A parsed path into an event's fields: `message`, `a.b`, `a.b[0]`, `a."dotted.key".c`.
///
/// Paths are parsed once, when the configuration is read, and then used for every event, so
/// the per-event cost is a walk of the segments and never a parse.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<PathSegment>,
}

/// Why a path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field path `{path}`: {reason}")]
pub struct PathError {
    /// The text that was parsed.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FieldPath {
    /// A path of one top-level field.
    pub fn field(name: &str) -> Self {
        Self {
            segments: vec![PathSegment::Field(name.into())],
        }
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[PathSegment] {
        &self.segments
    }

    /// The top-level field name when the path is a single plain field.
    pub fn as_single_field(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [PathSegment::Field(name)] => Some(name),
            _ => None,
        }
    }

    /// Whether `self` is `other` or lies inside it (`a.b` starts with `a`).
    pub fn starts_with(&self, other: &FieldPath) -> bool {
        self.segments.starts_with(&other.segments)
    }
}

impl FromStr for FieldPath {
    type Err = PathError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| PathError {
            path: text.to_owned(),
            reason,
        };
        let mut segments = Vec::new();
        let mut chars = text.chars().peekable();
        // `expect_field` is true at the start and after a dot: a field name must follow.
        let mut expect_field = true;
        while let Some(&c) = chars.peek() {
            match c {
                '"' if expect_field => {
                    chars.next();
                    let mut name = CompactString::default();
                    loop {
                        match chars.next() {
                            Some('\\') => match chars.next() {
                                Some(escaped) => name.push(escaped),
                                None => return Err(fail("unterminated quoted field name")),
                            },
                            Some('"') => break,
                            Some(other) => name.push(other),
                            None => return Err(fail("unterminated quoted field name")),
                        }
                    }
                    segments.push(PathSegment::Field(name));
                    expect_field = false;
                }
                '[' => {
                    if expect_field && !segments.is_empty() {
                        return Err(fail("a field name must follow `.`"));
                    }
                    chars.next();
                    let mut digits = String::new();
                    for d in chars.by_ref() {
                        if d == ']' {
                            break;
                        }
                        digits.push(d);
                    }
                    let index = digits
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| fail("an index must be a non-negative integer in `[...]`"))?;
                    segments.push(PathSegment::Index(index));
                    expect_field = false;
                }
                '.' => {
                    if expect_field {
                        return Err(fail("empty field name"));
                    }
                    chars.next();
                    expect_field = true;
                }
                _ if expect_field => {
                    let mut name = CompactString::default();
                    while let Some(&c) = chars.peek() {
                        if matches!(c, '.' | '[' | '"') {
                            break;
                        }
                        name.push(c);
                        chars.next();
                    }
                    let trimmed = name.trim();
                    if trimmed.is_empty() {
                        return Err(fail("empty field name"));
                    }
                    segments.push(PathSegment::Field(trimmed.into()));
                    expect_field = false;
                }
                _ => return Err(fail("expected `.` or `[` between segments")),
            }
        }
        if expect_field {
            return Err(fail(if segments.is_empty() {
                "the path is empty"
            } else {
                "the path ends with `.`"
            }));
        }
        Ok(Self { segments })
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                PathSegment::Field(name) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let plain = !name.is_empty()
                        && !name.contains(['.', '[', ']', '"', '\\'])
                        && name.trim() == name.as_str();
                    if plain {
                        f.write_str(name)?;
                    } else {
                        f.write_str("\"")?;
                        for c in name.chars() {
                            if matches!(c, '"' | '\\') {
                                f.write_str("\\")?;
                            }
                            write!(f, "{c}")?;
                        }
                        f.write_str("\"")?;
                    }
                }
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for FieldPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field(name: &str) -> PathSegment {
        PathSegment::Field(name.into())
    }

    #[test]
    fn parses_nested_fields_and_indexes() {
        let path: FieldPath = "a.b[0][12].c".parse().unwrap();
        assert_eq!(
            path.segments(),
            [
                field("a"),
                field("b"),
                PathSegment::Index(0),
                PathSegment::Index(12),
                field("c")
            ]
        );
    }

    #[test]
    fn quoted_segments_may_hold_dots() {
        let path: FieldPath = r#"kubernetes."app.name".v"#.parse().unwrap();
        assert_eq!(
            path.segments(),
            [field("kubernetes"), field("app.name"), field("v")]
        );
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in [
            "", ".", "a.", ".a", "a..b", "a[x]", "a[-1]", "\"open", "a.[0]", "a\"b\"",
        ] {
            assert!(bad.parse::<FieldPath>().is_err(), "{bad:?} should not parse");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(names in proptest::collection::vec("[a-z.\"\\\\ _\\[\\]]{1,6}", 1..4), index in proptest::option::of(0usize..5)) {
            let mut segments: Vec<PathSegment> = names.iter().map(|n| field(n)).collect();
            if let Some(i) = index { segments.push(PathSegment::Index(i)); }
            // Names that are only whitespace or padded are normalised by the plain-name parser,
            // which is why Display quotes them.
            let path = FieldPath { segments };
            let reparsed: FieldPath = path.to_string().parse().unwrap();
            prop_assert_eq!(reparsed, path);
        }
    }
}
