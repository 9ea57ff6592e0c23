use std::fmt;
use std::path::PathBuf;

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file it is in.
    pub file: PathBuf,
    /// 1-based line and column, where known.
    pub position: Option<(usize, usize)>,
    /// The component's table, e.g. `sinks.out`, when the problem is inside one.
    pub component: Option<String>,
    /// The offending key, relative to the component (or top-level), e.g. `encoding.codec`.
    pub key: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        match (&self.component, &self.key) {
            (Some(component), Some(key)) => write!(f, "[{component}] key `{key}`: ")?,
            (Some(component), None) => write!(f, "[{component}]: ")?,
            (None, Some(key)) => write!(f, "key `{key}`: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a configuration, reported together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The individual problems.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, error) in self.0.iter().enumerate() {
            if i + 1 < n {
                writeln!(f, "  {error}")?;
            } else {
                write!(f, "  {error}")?;
            }
        }
        Ok(())
    }
}

/// Whether a key holds a secret whose value must never be shown.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.contains("password") || lower.contains("secret") || lower.ends_with("key_pass")
}

/// Hides every quoted or back-quoted value in a message about a secret key.
pub(crate) fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if c == '`' || c == '"' {
            out.push(c);
            out.push_str("***");
            for inner in chars.by_ref() {
                if inner == c {
                    break;
                }
            }
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_quoted_values() {
        assert_eq!(
            redact("invalid type: string \"hunter2\", expected `u64`"),
            "invalid type: string \"***\", expected `***`"
        );
        assert!(is_secret_key("sasl.password"));
        assert!(is_secret_key("tls.key_pass"));
        assert!(is_secret_key(
            "librdkafka_options.\"sasl.oauthbearer.client.secret\""
        ));
        assert!(!is_secret_key("sasl.username"));
    }
}
