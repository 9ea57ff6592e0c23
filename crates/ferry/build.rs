//! Links every component crate the runner depends on.
//!
//! rustc does not link a dependency that no code names, and then the registrations inside it
//! never run. This script names each `ferry-source-*` and `ferry-sink-*` dependency of
//! Cargo.toml (`use ferry_sink_kafka as _;`), so that adding a component to the runner takes
//! one dependency line and nothing else. It follows Cargo's rules for when a dependency
//! exists: `[target.'cfg(...)'.dependencies]` become `#[cfg(...)]` lines, a target triple
//! table counts only when building for that triple, and an optional dependency counts only
//! when a feature enabling it is on.

use std::path::PathBuf;

#[path = "build/components.rs"]
mod components;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let manifest_path = manifest_dir.join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", manifest_path.display());
    println!("cargo:rerun-if-changed=build/components.rs");
    let text = std::fs::read_to_string(&manifest_path).expect("Cargo.toml is readable");
    let target = std::env::var("TARGET").unwrap_or_default();
    let feature_on = |feature: &str| {
        let var = format!("CARGO_FEATURE_{}", feature.to_uppercase().replace('-', "_"));
        println!("cargo:rerun-if-env-changed={var}");
        std::env::var_os(var).is_some()
    };
    let code = components::generate(&text, &target, &feature_on).expect("Cargo.toml is valid TOML");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("components.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
