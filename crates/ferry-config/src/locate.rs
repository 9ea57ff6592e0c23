//! Finding where a key sits in a file, for error positions.

use toml_edit::{Document, Item};

/// A parsed file kept for looking up spans.
pub(crate) struct SpannedFile {
    text: String,
    doc: Option<Document<String>>,
}

impl SpannedFile {
    /// Parses `text`, which must be valid TOML (see `Loader::load_file`), for key positions.
    pub(crate) fn new(text: String) -> Self {
        let doc = Document::parse(text.clone()).ok();
        Self { text, doc }
    }

    /// A file that is not valid TOML: byte offsets still map to lines, keys are not found.
    pub(crate) fn without_keys(text: String) -> Self {
        Self { text, doc: None }
    }

    /// The 1-based line and column of `path` (table names then keys), or of the deepest part of
    /// it that exists.
    pub(crate) fn position(&self, path: &[&str]) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut item: &Item = doc.as_item();
        let mut best = None;
        let mut rest = path;
        while let Some((segment, after)) = rest.split_first() {
            let Some(table) = item.as_table_like() else {
                break;
            };
            // A key holding dots (`librdkafka_options."linger.ms"`) may reach here split at
            // them: the rest of the path joined is then the key.
            let found = table
                .get_key_value(segment)
                .map(|found| (found, after))
                .or_else(|| {
                    let joined = rest.join(".");
                    table.get_key_value(&joined).map(|found| (found, &[] as &[&str]))
                });
            // A missing key (a required one, say) is blamed on the deepest table that exists.
            let Some(((key, value), after)) = found else {
                break;
            };
            best = key.span().or_else(|| value.span()).or(best);
            item = value;
            rest = after;
        }
        best.map(|span| self.line_column(span.start))
    }

    /// The 1-based line and column of a byte offset.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.len(), |nl| before.len() - nl - 1)
            + 1;
        (line, column)
    }
}

/// The 1-based line and column of a key in a configuration file, read again from disk: for
/// problems found after loading (when the pipeline is built) that should still point at the
/// line. `path` is table names then keys (`["sinks", "a", "buffer", "max_size"]`).
pub fn locate_key(file: &std::path::Path, path: &[&str]) -> Option<(usize, usize)> {
    let text = std::fs::read_to_string(file).ok()?;
    SpannedFile::new(text).position(path)
}

/// Splits a dotted key path as serde_path_to_error prints it (`encoding.codec`,
/// `librdkafka_options."client.id"`, `tags[0]`) into table keys.
pub(crate) fn split_key_path(path: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in path.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => keys.push(std::mem::take(&mut current)),
            '[' if !quoted => {
                keys.push(std::mem::take(&mut current));
                break;
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        keys.push(current);
    }
    keys.retain(|k| !k.is_empty());
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_tables_and_dotted_keys() {
        let file = SpannedFile::new("[sinks.out]\ntype = \"console\"\nencoding.codec = \"xml\"\n".into());
        assert_eq!(file.position(&["sinks", "out", "type"]), Some((2, 1)));
        assert_eq!(
            file.position(&["sinks", "out", "encoding", "codec"]),
            Some((3, 10))
        );
        assert_eq!(file.position(&["sinks", "out"]), Some((1, 8)));
    }

    #[test]
    fn splits_key_paths() {
        assert_eq!(split_key_path("encoding.codec"), ["encoding", "codec"]);
        assert_eq!(
            split_key_path("librdkafka_options.\"client.id\""),
            ["librdkafka_options", "client.id"]
        );
        assert_eq!(split_key_path("inputs[0]"), ["inputs"]);
    }
}
