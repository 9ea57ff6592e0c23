//! A table of broken configurations: each must fail with an error that names the offending
//! key (and the component), so a user can go straight to the line.

use std::path::Path;

use ferry_config::{ConfigErrors, load_str};
// Link the components whose types the table uses (see DECISIONS 16: unnamed crates are not
// linked, and their registrations would be missing).
use ferry_sink_console as _;
use ferry_sink_kafka as _;
use ferry_source_demo as _;
use ferry_source_stdin as _;

const GOOD_SOURCE: &str = "[sources.in]\ntype = \"stdin\"\n";
const GOOD_SINK: &str = "[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n";

fn env(name: &str) -> Option<String> {
    match name {
        "SET" => Some("value".into()),
        _ => None,
    }
}

fn errors_of(text: &str) -> ConfigErrors {
    match load_str(Path::new("bad.toml"), text, &env) {
        Ok(config) => panic!("expected an error, got {config:?} for:\n{text}"),
        Err(e) => e,
    }
}

/// (what is wrong, the config text, the key the error must name, a phrase it must contain)
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "unknown source type",
        "[sources.in]\ntype = \"stdn\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n",
        "type",
        "known source types: `demo`, `stdin`",
    ),
    (
        "unknown sink type",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"kafak\"\ninputs = [\"in\"]\n",
        "type",
        "known sink types",
    ),
    (
        "sink type used as source",
        "[sources.in]\ntype = \"console\"\n",
        "type",
        "is a sink",
    ),
    (
        "missing type",
        "[sources.in]\ndecoding.codec = \"json\"\n",
        "type",
        "missing",
    ),
    (
        "type not a string",
        "[sources.in]\ntype = 5\n",
        "type",
        "expected a string",
    ),
    (
        "unknown key in source",
        "[sources.in]\ntype = \"stdin\"\nmax_line_byte = 10\n",
        "max_line_byte",
        "unknown key",
    ),
    (
        "unknown key in sink",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\ntarget_stream = \"stdout\"\n",
        "target_stream",
        "unknown key",
    ),
    (
        "unknown nested key",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding.kodec = \"json\"\n",
        "encoding.kodec",
        "unknown key",
    ),
    (
        "bad codec value",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding.codec = \"xml\"\n",
        "encoding.codec",
        "text",
    ),
    (
        "bad decoding codec",
        "[sources.in]\ntype = \"stdin\"\ndecoding.codec = \"csv\"\n",
        "decoding.codec",
        "json",
    ),
    (
        "wrong value type",
        "[sources.in]\ntype = \"stdin\"\nmax_line_bytes = \"big\"\n",
        "max_line_bytes",
        "invalid type",
    ),
    (
        "negative where unsigned",
        "[sources.in]\ntype = \"demo\"\ncount = -5\n",
        "count",
        "invalid value",
    ),
    (
        "bad buffer type",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nbuffer.type = \"ram\"\n",
        "buffer.type",
        "memory",
    ),
    (
        "bad when_full",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nbuffer.when_full = \"drop_oldest\"\n",
        "buffer.when_full",
        "drop_newest",
    ),
    (
        "zero max_events",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nbuffer.max_events = 0\n",
        "buffer.max_events",
        "at least 1",
    ),
    (
        "disk buffer without max_size",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nbuffer.type = \"disk\"\n",
        "buffer.max_size",
        "required",
    ),
    (
        "only and except together",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding.only_fields = [\"a\"]\nencoding.except_fields = [\"b\"]\n",
        "encoding.except_fields",
        "only_fields",
    ),
    (
        "malformed field path",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding.only_fields = [\"a..b\"]\n",
        "encoding.only_fields",
        "invalid field path",
    ),
    (
        "missing inputs",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\n",
        "inputs",
        "missing",
    ),
    (
        "empty inputs",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = []\n",
        "inputs",
        "at least one source",
    ),
    (
        "unknown input",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"inn\"]\n",
        "inputs",
        "unknown input `inn`",
    ),
    (
        "sink as input",
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n[sinks.two]\ntype = \"console\"\ninputs = [\"out\"]\n",
        "inputs",
        "is a sink",
    ),
    (
        "unknown top-level key",
        "dta_dir = \"/tmp\"\n[sources.in]\ntype = \"stdin\"\n",
        "dta_dir",
        "unknown top-level key",
    ),
    (
        "data_dir not a string",
        "data_dir = 3\n",
        "data_dir",
        "directory path",
    ),
    (
        "no sinks",
        "[sources.in]\ntype = \"stdin\"\n",
        "sinks",
        "no sinks",
    ),
    (
        "api address without a port",
        "[api]\naddress = \"127.0.0.1\"\n[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n",
        "api.address",
        "IP address and a port",
    ),
    (
        "api address a host name",
        "[api]\naddress = \"localhost:8686\"\n",
        "api.address",
        "found `localhost:8686`",
    ),
    (
        "unknown key in api",
        "[api]\nadress = \"127.0.0.1:8686\"\n",
        "api.adress",
        "unknown key",
    ),
    ("api not a table", "api = true\n", "api", "expected a table"),
    (
        "bad demo rate",
        "[sources.in]\ntype = \"demo\"\nrate = -1.0\n",
        "rate",
        "events per second",
    ),
];

#[test]
fn every_bad_config_names_its_key() {
    assert!(CASES.len() >= 20);
    let mut failures = Vec::new();
    for (what, text, key, phrase) in CASES {
        let errors = errors_of(text);
        let hit = errors.errors().iter().any(|e| {
            e.key.as_deref() == Some(*key)
                && e.to_string().contains(phrase)
                && e.to_string().contains("bad.toml")
        });
        if !hit {
            failures.push(format!(
                "{what}: expected key `{key}` with \"{phrase}\", got:\n{errors}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn errors_carry_line_and_column() {
    let errors = errors_of(
        "[sources.in]\ntype = \"stdin\"\n\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding.codec = \"xml\"\n",
    );
    let e = &errors.errors()[0];
    assert_eq!(e.position, Some((7, 10)), "{e}");
    assert_eq!(e.component.as_deref(), Some("sinks.out"));
    assert!(
        e.to_string()
            .starts_with("bad.toml:7:10: [sinks.out] key `encoding.codec`: "),
        "{e}"
    );
}

#[test]
fn all_problems_are_reported_together() {
    let text = "[sources.in]\ntype = \"stdn\"\n[sources.b]\ntype = \"demo\"\nrat = 1\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding.codec = \"xml\"\n";
    let errors = errors_of(text);
    let keys: Vec<_> = errors.errors().iter().filter_map(|e| e.key.clone()).collect();
    assert!(keys.contains(&"type".to_owned()), "{errors}");
    assert!(keys.contains(&"rat".to_owned()), "{errors}");
    assert!(keys.contains(&"encoding.codec".to_owned()), "{errors}");
}

#[test]
fn missing_environment_variable_names_it_and_its_line() {
    let errors = errors_of(
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"${SOURCE_ID}\"]\n",
    );
    let e = &errors.errors()[0];
    assert!(e.message.contains("SOURCE_ID"), "{e}");
    assert_eq!(e.position.map(|p| p.0), Some(5));
}

#[test]
fn secrets_never_appear_in_errors() {
    // Each case's message would hold the secret if nothing hid it: serde quotes a wrong value
    // it met, and a secret may land in an ordinary key through the same `${VAR}`.
    let kafka = "[sources.in]\ntype = \"stdin\"\n[sinks.k]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"b:9092\"\ntopic = \"t\"\n";
    let cases = [
        // A wrong-typed password: "invalid type: integer `20240607`".
        (format!("{kafka}sasl.password = 20240607\n"), "20240607"),
        (format!("{kafka}tls.key_pass = 20240607\n"), "20240607"),
        (
            format!("{kafka}librdkafka_options.\"ssl.key.password\" = 20240607\n"),
            "20240607",
        ),
        // A password from the environment that also reached an enum: "unknown variant".
        (
            format!("{kafka}sasl.password = \"${{SECRET}}\"\ncompression = \"${{SECRET}}\"\n"),
            "hunter2-secret",
        ),
        // The same with a generic secret-named key (the rule is not Kafka's own).
        (
            "[sources.in]\ntype = \"stdin\"\nmy_secret = \"hunter2-secret\"\ndecoding.codec = \"hunter2-secret\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n".to_owned(),
            "hunter2-secret",
        ),
    ];
    let env = |name: &str| (name == "SECRET").then(|| "hunter2-secret".to_owned());
    for (text, secret) in cases {
        let errors = match load_str(Path::new("bad.toml"), &text, &env) {
            Ok(config) => panic!("expected an error, got {config:?} for:\n{text}"),
            Err(e) => e,
        };
        let shown = errors.to_string();
        assert!(!shown.contains(secret), "{shown}");
        assert!(
            shown.contains("***"),
            "the value is hidden, not left out: {shown}"
        );
    }
}

#[test]
fn good_config_loads_with_env_and_defaults() {
    let text = format!("data_dir = \"/tmp/${{SET}}\"\n{GOOD_SOURCE}{GOOD_SINK}");
    let config = load_str(Path::new("good.toml"), &text, &env).unwrap();
    assert_eq!(config.data_dir.as_deref(), Some(Path::new("/tmp/value")));
    assert_eq!(config.sources[0].id, "in");
    assert_eq!(config.sinks[0].config.inputs(), ["in"]);
    assert_eq!(config.sinks[0].config.buffer().max_events, 500);
}

#[test]
fn several_files_form_one_config_and_ids_must_be_unique() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(&a, GOOD_SOURCE).unwrap();
    std::fs::write(&b, GOOD_SINK).unwrap();
    let config = ferry_config::load_files(&[a.clone(), b.clone()]).unwrap();
    assert_eq!((config.sources.len(), config.sinks.len()), (1, 1));

    std::fs::write(&b, format!("{GOOD_SOURCE}{GOOD_SINK}")).unwrap();
    let errors = ferry_config::load_files(&[a, b]).unwrap_err();
    let text = errors.to_string();
    assert!(
        text.contains("b.toml") && text.contains("already used") && text.contains("a.toml"),
        "{text}"
    );
}

#[test]
fn api_is_off_without_its_table_and_defaults_its_address() {
    let text = format!("{GOOD_SOURCE}{GOOD_SINK}");
    let config = load_str(Path::new("ok.toml"), &text, &env).expect("valid");
    assert_eq!(config.api, None);
    let config = load_str(Path::new("ok.toml"), &format!("[api]\n{text}"), &env).expect("valid");
    assert_eq!(
        config.api.map(|a| a.address.to_string()).as_deref(),
        Some(ferry_config::DEFAULT_API_ADDRESS)
    );
    let config = load_str(
        Path::new("ok.toml"),
        &format!("[api]\naddress = \"[::1]:9000\"\n{text}"),
        &env,
    )
    .expect("valid");
    assert_eq!(
        config.api.map(|a| a.address.to_string()).as_deref(),
        Some("[::1]:9000")
    );
}

#[test]
fn api_may_be_set_in_one_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(&a, format!("[api]\n{GOOD_SOURCE}")).unwrap();
    std::fs::write(&b, format!("[api]\naddress = \"127.0.0.1:9000\"\n{GOOD_SINK}")).unwrap();
    let errors = ferry_config::load_files(&[a, b]).unwrap_err();
    let error = &errors.errors()[0];
    assert_eq!(error.key.as_deref(), Some("api"));
    let text = error.to_string();
    assert!(
        text.contains("b.toml") && text.contains("already set in") && text.contains("a.toml"),
        "{text}"
    );
}

#[test]
fn an_error_deep_in_tables_is_one_line_with_a_plain_expectation() {
    // toml appends "in `key`" to its message and every table on the way out wraps it again:
    // the user saw the message, blank lines and a trail of fragments.
    for (text, key, phrase) in [
        (
            "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n[sinks.out.buffer]\nmax_events = -5\n",
            "buffer.max_events",
            "expected a whole number, 0 or more",
        ),
        (
            "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nbuffer.type = \"disk\"\nbuffer.max_size = \"10MB\"\n",
            "buffer.max_size",
            "expected a whole number of bytes, 0 or more, without a unit",
        ),
    ] {
        let errors = errors_of(text);
        let shown = errors.to_string();
        assert_eq!(shown.lines().count(), 2, "{shown}");
        assert!(!shown.contains("in `"), "{shown}");
        let e = &errors.errors()[0];
        assert_eq!(e.key.as_deref(), Some(key), "{shown}");
        assert!(e.message.contains(phrase), "{shown}");
    }
}
