use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{on_path, run_command, step};

/// The tansu version the tests and demo are checked against (see ../shared/BROKER.md).
pub const TANSU_VERSION: &str = "0.6.0";

/// Debian packages the build and the tests need: cmake and pkg-config build librdkafka,
/// libssl-dev gives TLS, libcurl4-openssl-dev the libcurl librdkafka's OIDC client links
/// (the Kafka sink's default `oidc` feature; without it, still a header librdkafka 2.12
/// includes), stunnel4 and openssl the TLS tests.
const DEBIAN_PACKAGES: &[&str] = &[
    "cmake",
    "pkg-config",
    "libssl-dev",
    "libcurl4-openssl-dev",
    "stunnel4",
    "openssl",
];

/// What the tests need, once installed.
pub struct Tools {
    pub tansu: PathBuf,
}

/// Installs what is missing; quick when everything is there.
pub fn install() -> Result<Tools> {
    debian_packages(DEBIAN_PACKAGES)?;
    Ok(Tools { tansu: tansu()? })
}

/// Installs the Debian packages of `wanted` that are not installed yet.
fn debian_packages(wanted: &[&str]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !on_path("apt-get") {
        bail!("missing packages {missing:?} and no apt-get to install them; install them by hand");
    }
    step(&format!("installing Debian packages: {}", missing.join(" ")));
    run_command(&mut apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&missing);
    run_command(&mut install)
}

/// `apt-get ARGS`, through sudo when not root.
fn apt(args: &[&str]) -> Command {
    let sudo = !is_root() && on_path("sudo");
    let mut cmd = if sudo {
        Command::new("sudo")
    } else {
        Command::new("apt-get")
    };
    if sudo {
        cmd.arg("apt-get");
    }
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The tansu binary: `$FERRY_TANSU` if set, else the cached build, built on first use (about
/// 15 minutes on 2 cores; the result is kept outside the repository and reused).
pub fn tansu() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("FERRY_TANSU") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("FERRY_TANSU={} is not a file", path.display());
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let root = PathBuf::from(home).join(format!(".cache/ferry/tansu-{TANSU_VERSION}"));
    let binary = root.join("bin/tansu");
    if binary.is_file() {
        return Ok(binary);
    }
    step(&format!(
        "building the tansu {TANSU_VERSION} broker into {} (once; about 15 minutes)",
        root.display()
    ));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let scratch = std::env::temp_dir().join("ferry-tansu-build");
    run_command(
        Command::new(cargo)
            .args([
                "install",
                "tansu",
                "--version",
                TANSU_VERSION,
                "--features",
                "dynostore,libsql",
                "--locked",
                "--root",
            ])
            .arg(&root)
            .env("CARGO_TARGET_DIR", &scratch),
    )?;
    // The build tree is large and only needed once.
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(binary)
}

/// The font the benchmark chart's labels use (Debian's fonts-dejavu-core).
pub fn chart_font() -> Result<()> {
    if std::path::Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").is_file() {
        return Ok(());
    }
    step("installing fonts-dejavu-core (labels of docs/benchmarks.png)");
    run_command(&mut apt(&["install", "-y", "-qq", "fonts-dejavu-core"]))
}

/// Debian's kcat (installed on first use) links librdkafka 2.0.2, which cannot talk to tansu:
/// the directory of the [`newer_librdkafka`] it runs with on `LD_LIBRARY_PATH`.
pub fn kcat_librdkafka() -> Result<PathBuf> {
    if !on_path("kcat") {
        step("installing kcat (Debian package)");
        run_command(&mut apt(&["install", "-y", "-qq", "kcat"]))?;
    }
    newer_librdkafka()
}

/// rsyslogd with its `imfile` and `omkafka` modules (Debian's `rsyslog` and `rsyslog-kafka`),
/// for the file benchmark, and the directory of the librdkafka its omkafka must run with:
/// Debian's omkafka links librdkafka 2.0.2 like Debian's kcat, so it gets the same
/// [`newer_librdkafka`] on `LD_LIBRARY_PATH` (the dynamic loader honours it for the modules
/// rsyslogd loads with `dlopen`, and their dependencies).
///
/// Installing the package on a machine whose init system starts services also starts a
/// system rsyslogd; the bench runs its own daemon beside it (own configuration, pid file and
/// work directory), which a system daemon does not disturb.
pub fn rsyslog() -> Result<(PathBuf, PathBuf)> {
    debian_packages(&["rsyslog", "rsyslog-kafka"])?;
    let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("the rsyslog package is installed but rsyslogd is not in /usr/sbin or /sbin")?;
    Ok((rsyslogd, newer_librdkafka()?))
}

/// A directory holding `librdkafka.so.1` from the confluent-kafka wheel (librdkafka 2.12),
/// installed on first use: Debian's librdkafka 2.0.2 fails the ApiVersions handshake with
/// tansu 0.6.0, so Debian's Kafka clients run with this on `LD_LIBRARY_PATH`.
pub fn newer_librdkafka() -> Result<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?);
    let lib_dir = home.join(".cache/ferry/librdkafka");
    let link = lib_dir.join("librdkafka.so.1");
    if link.exists() {
        return Ok(lib_dir);
    }
    let wheel_dir = home.join(".cache/ferry/confluent-kafka");
    step("installing librdkafka 2.12 for kcat and omkafka (PyPI confluent-kafka wheel)");
    run_command(
        Command::new("python3")
            .args(["-m", "pip", "install", "-q", "--target"])
            .arg(&wheel_dir)
            .arg("confluent-kafka==2.12.0"),
    )?;
    let libs = wheel_dir.join("confluent_kafka.libs");
    let so = std::fs::read_dir(&libs)
        .with_context(|| format!("{} is missing", libs.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("librdkafka"))
        })
        .context("no librdkafka in the wheel")?;
    std::fs::create_dir_all(&lib_dir)?;
    std::os::unix::fs::symlink(so, &link)?;
    Ok(lib_dir)
}
