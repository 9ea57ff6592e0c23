//! `cargo xtask new-sink` / `new-source` in a copy of the workspace: the generated crates
//! pass their own tests and clippy unchanged, and the runner links them with the one line the
//! scaffold added (its test of every component's example sees them registered).

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_e2e::root;

/// Copies the workspace's sources (not `target/`, not dot-directories) to `to`.
fn copy_workspace(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "target" || name.starts_with('.') {
            continue;
        }
        let target = to.join(&*name);
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_workspace(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command) -> String {
    let output = cmd.output().expect("cargo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn generated_components_build_pass_their_tests_and_are_linked_by_one_line() {
    let copy = tempfile::tempdir().unwrap();
    copy_workspace(&root(), copy.path());
    let before = std::fs::read_to_string(copy.path().join("crates/ferry/Cargo.toml")).unwrap();
    for (kind, name) in [("new-sink", "probe_out"), ("new-source", "probe_in")] {
        run(cargo()
            .args(["run", "-q", "-p", "xtask", "--", kind, name, "--root"])
            .arg(copy.path())
            .current_dir(root()));
    }
    // Outside their own crates, the two components changed one line each.
    let after = std::fs::read_to_string(copy.path().join("crates/ferry/Cargo.toml")).unwrap();
    let added: Vec<&str> = after
        .lines()
        .filter(|l| !before.lines().any(|b| b == *l))
        .collect();
    assert_eq!(
        added,
        [
            "ferry-sink-probe-out = { path = \"../ferry-sink-probe-out\" }",
            "ferry-source-probe-in = { path = \"../ferry-source-probe-in\" }",
        ]
    );
    assert!(copy.path().join("docs/sinks/probe_out.md").is_file());

    // The shared target directory keeps dependencies built once; the copy's own crates get
    // artifacts of their own, and no binary is built (the real ferry binary stays).
    let target: PathBuf = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let crates = ["-p", "ferry-sink-probe-out", "-p", "ferry-source-probe-in"];
    run(cargo()
        .args(["clippy", "-q", "--all-targets"])
        .args(crates)
        .args(["--", "-D", "warnings"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(copy.path()));
    run(cargo()
        .args(["fmt", "--check"])
        .args(crates)
        .current_dir(copy.path()));
    let tests = run(cargo()
        .args(["test", "-q"])
        .args(crates)
        .args(["-p", "ferry", "--", "--nocapture"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(copy.path()));
    // With `-q`, the progress dots of other tests may share the line.
    let registered = tests
        .lines()
        .find_map(|l| l.split_once("registered components:").map(|(_, names)| names))
        .unwrap_or_else(|| panic!("the runner's example test did not run:\n{tests}"));
    for name in ["probe_out", "probe_in"] {
        assert!(
            registered.split_whitespace().any(|n| n == name),
            "{name} not linked: {registered}"
        );
    }
}
