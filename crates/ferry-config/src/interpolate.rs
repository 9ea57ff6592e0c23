/// A `${VAR}` that could not be substituted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// The variable is unset and the reference gives no default.
    #[error(
        "environment variable `{name}` is not set (line {line}); set it, or give a default with `${{{name}:-default}}`"
    )]
    Missing {
        /// The variable's name.
        name: String,
        /// 1-based line of the reference.
        line: usize,
    },
    /// `${` without its `}`, or an invalid name inside.
    #[error(
        "malformed variable reference `{text}` (line {line}); write `${{NAME}}`, `$NAME`, `${{NAME:-default}}`, or `$$` for a literal `$`"
    )]
    Malformed {
        /// The reference as written.
        text: String,
        /// 1-based line of the reference.
        line: usize,
    },
}

impl InterpolationError {
    /// The 1-based line of the reference.
    pub fn line(&self) -> usize {
        match self {
            InterpolationError::Missing { line, .. } | InterpolationError::Malformed { line, .. } => *line,
        }
    }
}

/// Substitutes environment variables in `text`:
/// `${NAME}` and `$NAME` (the value), `${NAME:-default}` (the default when unset or empty),
/// `$$` (a literal `$`). A `$` followed by anything else stays as it is.
/// Every problem is reported, not just the first.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<InterpolationError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut line = 1;
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        let before = &rest[..dollar];
        line += before.matches('\n').count();
        out.push_str(before);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            let Some(close) = braced.find('}') else {
                let text = format!("${{{}", braced.lines().next().unwrap_or(""));
                errors.push(InterpolationError::Malformed { text, line });
                out.push_str(&rest[dollar..]);
                rest = "";
                break;
            };
            let inner = &braced[..close];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !is_name(name) {
                errors.push(InterpolationError::Malformed {
                    text: format!("${{{inner}}}"),
                    line,
                });
            } else {
                match (lookup(name), default) {
                    (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => errors.push(InterpolationError::Missing {
                        name: name.to_owned(),
                        line,
                    }),
                }
            }
            line += inner.matches('\n').count();
            rest = &braced[close + 1..];
        } else {
            let name_len = after
                .char_indices()
                .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
                .map_or(after.len(), |(i, _)| i);
            if name_len == 0 {
                out.push('$');
            } else {
                let name = &after[..name_len];
                match lookup(name) {
                    Some(value) => out.push_str(&value),
                    None => errors.push(InterpolationError::Missing {
                        name: name.to_owned(),
                        line,
                    }),
                }
            }
            rest = &after[name_len..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("kafka:9092".into()),
            "EMPTY" => Some(String::new()),
            "DOLLAR" => Some("$NOT_EXPANDED".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_every_form() {
        assert_eq!(
            interpolate("a=${HOST} b=$HOST", env).unwrap(),
            "a=kafka:9092 b=kafka:9092"
        );
        assert_eq!(
            interpolate("${NOPE:-x:y} ${EMPTY:-d} ${HOST:-d}", env).unwrap(),
            "x:y d kafka:9092"
        );
        assert_eq!(interpolate("cost $$5 $ 1 $-", env).unwrap(), "cost $5 $ 1 $-");
        assert_eq!(
            interpolate("$HOST.suffix $HOST9", env).unwrap_err()[0],
            InterpolationError::Missing {
                name: "HOST9".into(),
                line: 1
            }
        );
    }

    #[test]
    fn values_are_not_expanded_again() {
        assert_eq!(interpolate("${DOLLAR}", env).unwrap(), "$NOT_EXPANDED");
    }

    #[test]
    fn reports_every_missing_variable_with_its_line() {
        let errors = interpolate("a = 1\nb = \"${ONE}\"\n\nc = \"$TWO\"\n", env).unwrap_err();
        assert_eq!(
            errors,
            [
                InterpolationError::Missing {
                    name: "ONE".into(),
                    line: 2
                },
                InterpolationError::Missing {
                    name: "TWO".into(),
                    line: 4
                },
            ]
        );
        assert!(errors[0].to_string().contains("`ONE`"));
    }

    #[test]
    fn malformed_references() {
        assert!(matches!(
            interpolate("x = \"${OPEN\"", env).unwrap_err()[0],
            InterpolationError::Malformed { .. }
        ));
        assert!(matches!(
            interpolate("${1BAD}", env).unwrap_err()[0],
            InterpolationError::Malformed { .. }
        ));
    }

    proptest! {
        #[test]
        fn text_without_dollars_is_unchanged(text in "[^$]{0,64}") {
            prop_assert_eq!(interpolate(&text, env).unwrap(), text);
        }

        #[test]
        fn double_dollar_always_escapes(parts in proptest::collection::vec("[^$]{0,8}", 1..6)) {
            // Joining with `$$` must give back the parts joined with a single `$`, whatever
            // follows the escape (even text that looks like a name or a brace).
            let text = parts.join("$$");
            prop_assert_eq!(interpolate(&text, |_| None).unwrap(), parts.join("$"));
        }

        #[test]
        fn values_are_inserted_verbatim(value in ".{0,20}") {
            let v = value.clone();
            prop_assert_eq!(interpolate("<${V}>", move |_| Some(v.clone())).unwrap(), format!("<{value}>"));
        }
    }
}
