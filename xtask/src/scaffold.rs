//! `cargo xtask new-sink NAME` / `new-source NAME`: a component crate that builds, registers
//! itself and passes its own tests as generated, wired into the runner with one line.
//!
//! The templates live in `xtask/templates/{sink,source}/` (compiled in, so the task works from
//! any directory); `__TYPE__`, `__KEBAB__` and `__CAMEL__` are replaced by the name's forms.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Which kind of component to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sink,
    Source,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Sink => "sink",
            Kind::Source => "source",
        }
    }

    /// (path inside the crate, template text)
    fn templates(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Sink => &[
                ("Cargo.toml", include_str!("../templates/sink/Cargo.toml.tmpl")),
                ("src/lib.rs", include_str!("../templates/sink/src/lib.rs.tmpl")),
                (
                    "src/config.rs",
                    include_str!("../templates/sink/src/config.rs.tmpl"),
                ),
                (
                    "src/error.rs",
                    include_str!("../templates/sink/src/error.rs.tmpl"),
                ),
                ("src/sink.rs", include_str!("../templates/sink/src/sink.rs.tmpl")),
                (
                    "src/tests.rs",
                    include_str!("../templates/sink/src/tests.rs.tmpl"),
                ),
            ],
            Kind::Source => &[
                ("Cargo.toml", include_str!("../templates/source/Cargo.toml.tmpl")),
                ("src/lib.rs", include_str!("../templates/source/src/lib.rs.tmpl")),
                (
                    "src/config.rs",
                    include_str!("../templates/source/src/config.rs.tmpl"),
                ),
                (
                    "src/source.rs",
                    include_str!("../templates/source/src/source.rs.tmpl"),
                ),
                (
                    "src/tests.rs",
                    include_str!("../templates/source/src/tests.rs.tmpl"),
                ),
            ],
        }
    }

    fn doc_template(self) -> &'static str {
        match self {
            Kind::Sink => include_str!("../templates/sink/doc.md.tmpl"),
            Kind::Source => include_str!("../templates/source/doc.md.tmpl"),
        }
    }
}

/// The forms of a component name.
#[derive(Debug, PartialEq, Eq)]
struct Names {
    /// `type = "..."`: `my_sink`.
    type_name: String,
    /// In the crate name: `my-sink`.
    kebab: String,
    /// In type names: `MySink`.
    camel: String,
}

impl Names {
    fn parse(name: &str) -> Result<Self> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.ends_with('_')
            && !name.contains("__");
        if !valid {
            bail!(
                "`{name}` is not a usable component name: use lowercase letters, digits and single underscores, starting with a letter (e.g. `http` or `object_store`)"
            );
        }
        let camel = name
            .split('_')
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Ok(Self {
            type_name: name.to_owned(),
            kebab: name.replace('_', "-"),
            camel,
        })
    }

    fn render(&self, template: &str) -> String {
        template
            .replace("__TYPE__", &self.type_name)
            .replace("__KEBAB__", &self.kebab)
            .replace("__CAMEL__", &self.camel)
    }
}

/// `new-sink` / `new-source` with their arguments: `NAME [--root DIR]`.
pub fn run(kind: Kind, args: &[&str]) -> Result<()> {
    let (name, root) = match args {
        [name] => (*name, crate::util::root()),
        [name, "--root", dir] => (*name, PathBuf::from(dir)),
        _ => bail!(
            "usage: cargo xtask new-{0} NAME [--root WORKSPACE]\n\nGenerates crates/ferry-{0}-NAME and links it into the runner.",
            kind.word()
        ),
    };
    let created = generate(kind, name, &root)?;
    let names = Names::parse(name)?;
    println!("created {}", created.display());
    println!(
        "linked it into the runner: crates/ferry/Cargo.toml has `ferry-{}-{} = {{ path = ... }}`",
        kind.word(),
        names.kebab
    );
    println!("next:");
    println!(
        "  cargo test -p ferry-{}-{}      # its own tests pass as generated",
        kind.word(),
        names.kebab
    );
    println!(
        "  cargo run -p ferry -- list     # `{}` is listed",
        names.type_name
    );
    println!("  then replace the generated behaviour; docs/extending.md explains the contract");
    Ok(())
}

/// Writes the crate, its docs page and the runner's dependency line; returns the crate's
/// directory.
pub fn generate(kind: Kind, name: &str, root: &Path) -> Result<PathBuf> {
    let names = Names::parse(name)?;
    let crate_name = format!("ferry-{}-{}", kind.word(), names.kebab);
    let dir = root.join("crates").join(&crate_name);
    if dir.exists() {
        bail!("{} already exists; pick another name or remove it", dir.display());
    }
    let runner_manifest = root.join("crates/ferry/Cargo.toml");
    let manifest = fs::read_to_string(&runner_manifest).with_context(|| {
        format!(
            "reading {} (is --root a Ferry workspace?)",
            runner_manifest.display()
        )
    })?;
    let manifest = add_dependency(&manifest, &crate_name)?;
    for (path, template) in kind.templates() {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&target, names.render(template))
            .with_context(|| format!("writing {}", target.display()))?;
    }
    let doc = root
        .join("docs")
        .join(format!("{}s", kind.word()))
        .join(format!("{}.md", names.type_name));
    if !doc.exists() {
        if let Some(parent) = doc.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&doc, names.render(kind.doc_template()))
            .with_context(|| format!("writing {}", doc.display()))?;
    }
    fs::write(&runner_manifest, manifest)
        .with_context(|| format!("writing {}", runner_manifest.display()))?;
    // The name's length moves line breaks: let rustfmt lay the code out as the workspace does.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::util::run_command(
        std::process::Command::new(cargo)
            .args(["fmt", "-p", &crate_name])
            .current_dir(root),
    )?;
    Ok(dir)
}

/// The runner's manifest with `crate_name` added after its last component dependency.
fn add_dependency(manifest: &str, crate_name: &str) -> Result<String> {
    let line = format!("{crate_name} = {{ path = \"../{crate_name}\" }}");
    if manifest.lines().any(|l| l.starts_with(&format!("{crate_name} "))) {
        bail!("crates/ferry/Cargo.toml already depends on {crate_name}");
    }
    let mut lines: Vec<&str> = manifest.lines().collect();
    let section = lines
        .iter()
        .position(|l| l.trim() == "[dependencies]")
        .context("crates/ferry/Cargo.toml has no [dependencies] table")?;
    let mut insert_at = section + 1;
    for (i, l) in lines.iter().enumerate().skip(section + 1) {
        if l.starts_with('[') {
            break;
        }
        if l.starts_with("ferry-source-") || l.starts_with("ferry-sink-") {
            insert_at = i + 1;
        }
    }
    lines.insert(insert_at, &line);
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_every_form_and_bad_names_are_refused() {
        let names = Names::parse("object_store").expect("valid");
        assert_eq!(
            (
                names.type_name.as_str(),
                names.kebab.as_str(),
                names.camel.as_str()
            ),
            ("object_store", "object-store", "ObjectStore")
        );
        for bad in ["", "Http", "9lives", "a-b", "trailing_", "dou__ble"] {
            assert!(Names::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_dependency_line_goes_after_the_other_components() {
        let manifest = "[package]\nname = \"ferry\"\n\n[dependencies]\nferry-source-demo.workspace = true\nferry-sink-kafka.workspace = true\n\nanyhow.workspace = true\n";
        let updated = add_dependency(manifest, "ferry-sink-http").expect("added");
        assert_eq!(
            updated,
            "[package]\nname = \"ferry\"\n\n[dependencies]\nferry-source-demo.workspace = true\nferry-sink-kafka.workspace = true\nferry-sink-http = { path = \"../ferry-sink-http\" }\n\nanyhow.workspace = true\n"
        );
        assert!(add_dependency(&updated, "ferry-sink-http").is_err());
    }
}
