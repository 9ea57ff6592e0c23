use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferry_core::component::registered_components;
use ferry_core::{ComponentKind, ConfigIssue, SinkConfig, SourceConfig};
use serde::de::DeserializeOwned;

use crate::api::ApiConfig;
use crate::error::{ConfigError, ConfigErrors, is_secret_key, redact};
use crate::interpolate::interpolate;
use crate::locate::{SpannedFile, split_key_path};

/// One configured component: its ID, the file it came from, and its parsed configuration.
#[derive(Debug)]
pub struct Component<T: ?Sized> {
    /// The key of its `[sources.ID]` / `[sinks.ID]` table.
    pub id: String,
    /// The file defining it.
    pub file: PathBuf,
    /// Its configuration.
    pub config: Box<T>,
}

/// A validated configuration: every source and sink parsed, every input resolved.
#[derive(Debug, Default)]
pub struct Config {
    /// The top-level `data_dir`, if set (see [`crate::resolve_data_dir`]).
    pub data_dir: Option<PathBuf>,
    /// Where `data_dir` is set (file, line and column), for errors found when it is used.
    pub data_dir_set_at: Option<(PathBuf, Option<(usize, usize)>)>,
    /// The top-level `[api]` table, if present: then the HTTP endpoint runs.
    pub api: Option<ApiConfig>,
    /// The sources, in file order.
    pub sources: Vec<Component<dyn SourceConfig>>,
    /// The sinks, in file order.
    pub sinks: Vec<Component<dyn SinkConfig>>,
}

const TOP_LEVEL_KEYS: &str = "`data_dir`, `api`, `sources`, `sinks`";

/// Loads and validates the given files as one configuration, reading environment variables
/// from the process environment.
pub fn load_files(paths: &[PathBuf]) -> Result<Config, ConfigErrors> {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::read_to_string(path) {
            Ok(text) => inputs.push((path.clone(), text)),
            Err(e) => errors.push(ConfigError {
                file: path.clone(),
                position: None,
                component: None,
                key: None,
                message: format!("cannot read the file: {e}"),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    load_texts(inputs, &|name| std::env::var(name).ok())
}

/// Loads and validates one configuration text; `file` names it in errors and `env` supplies
/// environment variables.
pub fn load_str(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load_texts(vec![(file.to_owned(), text.to_owned())], env)
}

struct Loader {
    config: Config,
    errors: Vec<ConfigError>,
    /// Where each ID was first defined, to report duplicates across files and kinds.
    defined: HashMap<String, (PathBuf, ComponentKind)>,
    /// Each file's spans, for positions in the checks that span files.
    spans: HashMap<PathBuf, SpannedFile>,
    /// The file that set `[api]`, to report a second one.
    api_file: Option<PathBuf>,
    /// Every defined source ID, parsed or not (a broken source is not also an unknown input).
    source_ids: Vec<String>,
    /// Every sink's `inputs` as written, parsed or not, so input problems are reported in the
    /// same run as the sink's other problems: (file, sink ID, inputs).
    sink_inputs: Vec<(PathBuf, String, Vec<String>)>,
    /// The values of every secret key, hidden from every message at the end: a secret that
    /// reached another key too (the same `${VAR}` used twice, a value pasted in the wrong
    /// place) must not be shown there either.
    secrets: Vec<String>,
}

fn load_texts(
    inputs: Vec<(PathBuf, String)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut loader = Loader {
        config: Config::default(),
        errors: Vec::new(),
        defined: HashMap::new(),
        spans: HashMap::new(),
        api_file: None,
        source_ids: Vec::new(),
        sink_inputs: Vec::new(),
        secrets: Vec::new(),
    };
    let first_file = inputs.first().map(|(p, _)| p.clone()).unwrap_or_default();
    for (file, raw) in inputs {
        loader.load_file(&file, &raw, env);
    }
    loader.check_graph(&first_file);
    if loader.errors.is_empty() {
        Ok(loader.config)
    } else {
        let mut errors = loader.errors;
        for error in &mut errors {
            for secret in &loader.secrets {
                if error.message.contains(secret.as_str()) {
                    error.message = error.message.replace(secret.as_str(), "***");
                }
            }
        }
        Err(ConfigErrors(errors))
    }
}

impl Loader {
    fn error(
        &mut self,
        file: &Path,
        position: Option<(usize, usize)>,
        component: Option<String>,
        key: Option<String>,
        message: String,
    ) {
        let message = match &key {
            Some(key) if is_secret_key(key) => redact(&message),
            _ => message,
        };
        self.errors.push(ConfigError {
            file: file.to_owned(),
            position,
            component,
            key,
            message,
        });
    }

    fn load_file(&mut self, file: &Path, raw: &str, env: &dyn Fn(&str) -> Option<String>) {
        let text = match interpolate(raw, env) {
            Ok(text) => text,
            Err(errors) => {
                for e in errors {
                    // The key written on the variable's line, so the error names it too.
                    let key = raw
                        .lines()
                        .nth(e.line().saturating_sub(1))
                        .and_then(|line| line.split_once('='))
                        .map(|(key, _)| key.trim().to_owned())
                        .filter(|key| !key.is_empty() && !key.starts_with('#') && !key.starts_with('['));
                    self.error(file, Some((e.line(), 1)), None, key, e.to_string());
                }
                return;
            }
        };
        // toml_edit (for the spans of keys) is asked only about text the toml crate accepted:
        // on some invalid documents toml_edit 0.23 panics ("all items have spans", found by
        // fuzzing), and a syntax error's position comes from toml's own error anyway.
        let table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(e) => {
                let e: toml::de::Error = e;
                let spans = SpannedFile::without_keys(text.clone());
                let position = e.span().map(|s| spans.line_column(s.start));
                self.error(
                    file,
                    position,
                    None,
                    None,
                    format!("not valid TOML: {}", e.message()),
                );
                return;
            }
        };
        let spans = SpannedFile::new(text);
        collect_secrets(&toml::Value::Table(table.clone()), "", &mut self.secrets);
        self.load_table(file, &spans, table);
        self.spans.insert(file.to_owned(), spans);
    }

    fn load_table(&mut self, file: &Path, spans: &SpannedFile, table: toml::Table) {
        for (key, value) in table {
            match key.as_str() {
                "data_dir" => match value {
                    toml::Value::String(dir) => {
                        self.config.data_dir = Some(PathBuf::from(dir));
                        self.config.data_dir_set_at = Some((file.to_owned(), spans.position(&["data_dir"])));
                    }
                    other => self.error(
                        file,
                        spans.position(&["data_dir"]),
                        None,
                        Some(key.clone()),
                        format!("expected a directory path string, found {}", other.type_str()),
                    ),
                },
                "api" => self.load_api(file, spans, value),
                "sources" => self.load_components(file, spans, ComponentKind::Source, value),
                "sinks" => self.load_components(file, spans, ComponentKind::Sink, value),
                _ => self.error(
                    file,
                    spans.position(&[&key]),
                    None,
                    Some(key.clone()),
                    format!("unknown top-level key; expected one of {TOP_LEVEL_KEYS}"),
                ),
            }
        }
    }

    fn load_api(&mut self, file: &Path, spans: &SpannedFile, value: toml::Value) {
        if let Some(first) = &self.api_file {
            let message = format!(
                "`[api]` is already set in {}; it may be set in one file only",
                first.display()
            );
            self.error(file, spans.position(&["api"]), None, Some("api".into()), message);
            return;
        }
        self.api_file = Some(file.to_owned());
        if !value.is_table() {
            let message = format!(
                "expected a table (`[api]` with `address = \"{}\"`), found {}",
                crate::api::DEFAULT_API_ADDRESS,
                value.type_str()
            );
            self.error(file, spans.position(&["api"]), None, Some("api".into()), message);
            return;
        }
        match serde_path_to_error::deserialize::<_, ApiConfig>(value) {
            Ok(api) => self.config.api = Some(api),
            Err(e) => {
                let path = e.path().to_string();
                let (key, message) = describe_serde_error(&path, &first_line(e.inner()));
                let mut lookup = vec!["api".to_owned()];
                if let Some(key) = &key {
                    lookup.extend(split_key_path(key));
                }
                let lookup: Vec<&str> = lookup.iter().map(String::as_str).collect();
                let key = match key {
                    Some(key) => format!("api.{key}"),
                    None => "api".to_owned(),
                };
                self.error(file, spans.position(&lookup), None, Some(key), message);
            }
        }
    }

    fn load_components(&mut self, file: &Path, spans: &SpannedFile, kind: ComponentKind, value: toml::Value) {
        let table_name = kind.table();
        let toml::Value::Table(components) = value else {
            self.error(
                file,
                spans.position(&[table_name]),
                None,
                Some(table_name.to_owned()),
                format!(
                    "expected a table of {table_name} (`[{table_name}.ID]`), found {}",
                    value.type_str()
                ),
            );
            return;
        };
        for (id, body) in components {
            let component = format!("{table_name}.{id}");
            let at = |key: &[&str]| {
                let mut path = vec![table_name, id.as_str()];
                path.extend_from_slice(key);
                spans.position(&path)
            };
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                self.error(
                    file,
                    at(&[]),
                    Some(component.clone()),
                    None,
                    "a component ID may hold only letters, digits, `_` and `-`".into(),
                );
                continue;
            }
            let toml::Value::Table(body) = body else {
                self.error(
                    file,
                    at(&[]),
                    Some(component),
                    None,
                    format!("expected a table, found {}", body.type_str()),
                );
                continue;
            };
            if let Some((first_file, first_kind)) = self.defined.get(&id) {
                let message = format!(
                    "ID `{id}` is already used by the {} defined in {}; component IDs must be unique",
                    first_kind.as_str(),
                    first_file.display()
                );
                self.error(file, at(&[]), Some(component), None, message);
                continue;
            }
            self.defined.insert(id.clone(), (file.to_owned(), kind));
            match kind {
                ComponentKind::Source => self.source_ids.push(id.clone()),
                ComponentKind::Sink => {
                    if let Some(toml::Value::Array(inputs)) = body.get("inputs") {
                        let inputs = inputs
                            .iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect();
                        self.sink_inputs.push((file.to_owned(), id.clone(), inputs));
                    }
                }
            }
            let Some(type_name) = self.check_type(file, &at(&["type"]), &component, kind, &body) else {
                continue;
            };
            match kind {
                ComponentKind::Source => {
                    if let Some(config) = self
                        .parse_component::<Box<dyn SourceConfig>>(file, spans, &component, &type_name, body)
                    {
                        self.report_issues(file, spans, &component, config.validate());
                        self.config.sources.push(Component {
                            id,
                            file: file.to_owned(),
                            config,
                        });
                    }
                }
                ComponentKind::Sink => {
                    if let Some(config) =
                        self.parse_component::<Box<dyn SinkConfig>>(file, spans, &component, &type_name, body)
                    {
                        self.report_issues(file, spans, &component, config.validate());
                        self.config.sinks.push(Component {
                            id,
                            file: file.to_owned(),
                            config,
                        });
                    }
                }
            }
        }
    }

    /// Checks `type` against the registered components; returns it when it is known.
    fn check_type(
        &mut self,
        file: &Path,
        position: &Option<(usize, usize)>,
        component: &str,
        kind: ComponentKind,
        body: &toml::Table,
    ) -> Option<String> {
        let known: Vec<&str> = registered_components()
            .into_iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.type_name)
            .collect();
        let listing = known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let type_name = match body.get("type") {
            None => {
                self.error(
                    file,
                    *position,
                    Some(component.to_owned()),
                    Some("type".into()),
                    format!(
                        "missing; set it to one of the known {} types: {listing}",
                        kind.as_str()
                    ),
                );
                return None;
            }
            Some(toml::Value::String(t)) => t.clone(),
            Some(other) => {
                self.error(
                    file,
                    *position,
                    Some(component.to_owned()),
                    Some("type".into()),
                    format!(
                        "expected a string naming the {} type ({listing}), found {}",
                        kind.as_str(),
                        other.type_str()
                    ),
                );
                return None;
            }
        };
        if known.contains(&type_name.as_str()) {
            return Some(type_name);
        }
        let other_kind = registered_components()
            .into_iter()
            .any(|d| d.kind != kind && d.type_name == type_name);
        let hint = if other_kind {
            format!(
                " (`{type_name}` is a {}, not a {})",
                if kind == ComponentKind::Source {
                    "sink"
                } else {
                    "source"
                },
                kind.as_str()
            )
        } else {
            String::new()
        };
        self.error(
            file,
            *position,
            Some(component.to_owned()),
            Some("type".into()),
            format!(
                "unknown {} type `{type_name}`{hint}; known {} types: {listing}",
                kind.as_str(),
                kind.as_str()
            ),
        );
        None
    }

    fn parse_component<T: DeserializeOwned>(
        &mut self,
        file: &Path,
        spans: &SpannedFile,
        component: &str,
        type_name: &str,
        body: toml::Table,
    ) -> Option<T> {
        // typetag reads the tag and then streams the rest of the table through; with `type`
        // first nothing is buffered, so serde_path_to_error can follow every key.
        let mut ordered = toml::Table::new();
        ordered.insert("type".into(), toml::Value::String(type_name.to_owned()));
        ordered.extend(body.into_iter().filter(|(k, _)| k != "type"));
        match serde_path_to_error::deserialize::<_, T>(toml::Value::Table(ordered)) {
            Ok(config) => Some(config),
            Err(e) => {
                let path = e.path().to_string();
                let (key, message) = describe_serde_error(&path, &first_line(e.inner()));
                let mut lookup: Vec<String> = component.splitn(2, '.').map(str::to_owned).collect();
                if let Some(key) = &key {
                    lookup.extend(split_key_path(key));
                }
                let lookup: Vec<&str> = lookup.iter().map(String::as_str).collect();
                self.error(
                    file,
                    spans.position(&lookup),
                    Some(component.to_owned()),
                    key,
                    message,
                );
                None
            }
        }
    }

    fn report_issues(&mut self, file: &Path, spans: &SpannedFile, component: &str, issues: Vec<ConfigIssue>) {
        for issue in issues {
            let mut lookup: Vec<String> = component.splitn(2, '.').map(str::to_owned).collect();
            lookup.extend(split_key_path(&issue.key));
            let lookup: Vec<&str> = lookup.iter().map(String::as_str).collect();
            let position = spans.position(&lookup);
            self.error(
                file,
                position,
                Some(component.to_owned()),
                Some(issue.key),
                issue.message,
            );
        }
    }

    /// Checks that sinks have inputs and that every input names a source.
    fn check_graph(&mut self, first_file: &Path) {
        let sources = &self.source_ids;
        let listing = if sources.is_empty() {
            "none are configured".to_owned()
        } else {
            format!(
                "known sources: {}",
                sources
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut problems = Vec::new();
        for (file, sink, inputs) in &self.sink_inputs {
            let component = format!("sinks.{sink}");
            if inputs.is_empty() {
                problems.push((
                    file.clone(),
                    sink.clone(),
                    component.clone(),
                    format!("must name at least one source ({listing})"),
                ));
            }
            for input in inputs {
                if !sources.contains(input) {
                    let what = if self.sink_inputs.iter().any(|(_, s, _)| s == input) {
                        format!("`{input}` is a sink; inputs must be sources ({listing})")
                    } else {
                        format!("unknown input `{input}` ({listing})")
                    };
                    problems.push((file.clone(), sink.clone(), component.clone(), what));
                }
            }
        }
        for (file, sink, component, message) in problems {
            let position = self
                .spans
                .get(&file)
                .and_then(|s| s.position(&["sinks", &sink, "inputs"]));
            self.error(&file, position, Some(component), Some("inputs".into()), message);
        }
        if self.errors.is_empty() {
            if self.config.sources.is_empty() {
                self.error(
                    first_file,
                    None,
                    None,
                    Some("sources".into()),
                    "no sources are configured; add a `[sources.ID]` table".into(),
                );
            }
            if self.config.sinks.is_empty() {
                self.error(
                    first_file,
                    None,
                    None,
                    Some("sinks".into()),
                    "no sinks are configured; add a `[sinks.ID]` table".into(),
                );
            }
        }
    }
}

/// The string values under secret keys (see [`is_secret_key`]) anywhere in `value`. Values
/// shorter than 3 characters are left out: hiding every "a" in a message would hide nothing
/// worth hiding and garble the message.
fn collect_secrets(value: &toml::Value, key: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) if is_secret_key(key) && s.len() >= 3 => out.push(s.clone()),
        toml::Value::Table(table) => {
            for (k, v) in table {
                collect_secrets(v, &format!("{key}.{k}"), out);
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                collect_secrets(item, key, out);
            }
        }
        _ => {}
    }
}

/// The message of a deserialization error without the key trail toml appends to it.
///
/// toml's `Display` adds "in `key`" after the message, and every table the error crosses on
/// its way out (typetag, serde_path_to_error) wraps the text it got in a new message, so a
/// value two tables deep arrives as the message, blank lines and "in `mechanism`", "in
/// `sasl`". The key path is reported separately, so only the first line says anything.
fn first_line(error: &toml::de::Error) -> String {
    error
        .message()
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("invalid value")
        .to_owned()
}

/// Turns a serde error at `path` into the key to blame and a message that says what was
/// expected. Unknown-field errors are reported at the unknown key itself.
fn describe_serde_error(path: &str, message: &str) -> (Option<String>, String) {
    // Index suffixes (`only_fields[0]`) point inside a value; the key is what the user wrote.
    let path = match path.find('[') {
        Some(i) => &path[..i],
        None => path,
    };
    let at_path = if path == "." || path.is_empty() {
        None
    } else {
        Some(path.to_owned())
    };
    let child = |field: &str| match &at_path {
        // serde_path_to_error already includes an unknown field in the path; a missing one
        // is not.
        Some(p) if p == field || p.ends_with(&format!(".{field}")) => p.clone(),
        Some(p) => format!("{p}.{field}"),
        None => field.to_owned(),
    };
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let expected = expected.trim_start_matches(", ");
        return (Some(child(field)), format!("unknown key; {expected}"));
    }
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return (Some(child(field)), "missing; this key is required".to_owned());
    }
    let message = plain_expectation(message, at_path.as_deref().unwrap_or(""));
    (at_path, message)
}

/// Rewrites serde's "expected u64" (a Rust type name) as what a user writes, with the unit a
/// key's name implies: a size or a duration written with a unit ("10MB", "5s") is the usual
/// mistake, and the message should say which number to write instead.
fn plain_expectation(message: &str, key: &str) -> String {
    let Some((before, rust_type)) = message.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let (noun, range) = match rust_type {
        "u8" | "u16" | "u32" | "u64" | "usize" => ("a whole number", ", 0 or more"),
        "i8" | "i16" | "i32" | "i64" | "isize" => ("a whole number", ""),
        "f32" | "f64" => ("a number", ""),
        _ => return message.to_owned(),
    };
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let unit = if leaf.ends_with("_ms") {
        " of milliseconds"
    } else if leaf.ends_with("bytes") || leaf.ends_with("_size") {
        " of bytes"
    } else {
        ""
    };
    let example = match unit {
        " of milliseconds" => ", without a unit (`5000` is 5 s)",
        " of bytes" => ", without a unit (`104857600` is 100 MiB)",
        _ => "",
    };
    format!("{before}, expected {noun}{unit}{range}{example}")
}
