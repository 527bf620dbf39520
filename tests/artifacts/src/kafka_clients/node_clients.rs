//! Kafka clients for Node.js, each written in JavaScript from the protocol
//! up (no librdkafka): [KafkaJS](https://www.npmjs.com/package/kafkajs) and
//! [@platformatic/kafka](https://www.npmjs.com/package/@platformatic/kafka)
//! (a newer client that speaks the newest versions: Fetch by topic id,
//! CreateTopics v7, DeleteTopics v6).
//!
//! Node ([`node`]): `SLUICE_NODE` (a path, or a name on `PATH`), else `node`
//! on `PATH`. The packages ([`node_modules`]): `SLUICE_NODE_KAFKA` (a
//! directory whose `node_modules` holds every one), else
//! `<workspace>/.ci/node-kafka`, where [`NODE_KAFKA_REQUIREMENTS`] are
//! installed with `npm install` once per checkout. As for the venvs,
//! installs take turns on a lock (`.ci/node-kafka.lock`), and a directory
//! holding the incomplete marker is an interrupted install and is rebuilt.
//! `.ci/run` installs the same way.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::installer::{lock, log_path, on_path, resolve_executable, run_logged, say, tail, workspace_root};
use crate::venv::INCOMPLETE_MARKER;

/// Environment variable naming the Node.js executable.
pub const NODE_VAR: &str = "SLUICE_NODE";
/// Environment variable naming a directory whose `node_modules` holds the
/// packages.
pub const NODE_KAFKA_VAR: &str = "SLUICE_NODE_KAFKA";
/// What `npm install` gets (@platformatic/kafka 1.x: its 2.x needs Node.js
/// 22). `.ci/run` reads the pins from this line (keep it on one line), so
/// this is the one place to change them.
pub const NODE_KAFKA_REQUIREMENTS: &[&str] = &["kafkajs@2.2.4", "@platformatic/kafka@1.35.0"];

const DIR: &str = ".ci/node-kafka";
const LOCK: &str = ".ci/node-kafka.lock";
const NPM_TIMEOUT: Duration = Duration::from_secs(600);
const LOCK_TIMEOUT: Duration = Duration::from_secs(900);

/// The Node.js executable.
///
/// # Panics
/// If there is none, saying what to install.
pub fn node() -> &'static Path {
    static NODE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    NODE.get_or_init(find_node).as_deref().unwrap_or_else(|e| panic!("{e}"))
}

/// The oldest Node.js @platformatic/kafka 1.35 runs on (its `engines`).
pub const PLATFORMATIC_NODE: (u32, u32) = (20, 19);

/// The Node.js executable, if it is at least `min` (major, minor); the
/// tests of a client that needs a newer one call this.
///
/// # Panics
/// If there is none, or it is older, saying what to install.
pub fn node_at_least(min: (u32, u32)) -> &'static Path {
    let node = node();
    let out = Command::new(node).arg("--version").output();
    let version = out
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    match parse_version(&version) {
        Some(v) if v >= min => node,
        _ => panic!(
            "{} is Node.js {version:?}; this client needs {}.{} or newer (set {NODE_VAR})",
            node.display(),
            min.0,
            min.1
        ),
    }
}

/// (major, minor) of `node --version`'s `v20.19.4`.
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().strip_prefix('v')?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The `node_modules` directory holding the packages (for `NODE_PATH`),
/// installed on first use.
///
/// # Panics
/// If it is not there and cannot be installed, saying why.
pub fn node_modules() -> &'static Path {
    static DIR_FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR_FOUND
        .get_or_init(|| {
            let result = find_packages();
            if let Err(e) = &result {
                eprintln!("node-kafka: {e}");
            }
            result
        })
        .as_deref()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn find_node() -> Result<PathBuf, String> {
    match std::env::var_os(NODE_VAR) {
        Some(v) => resolve_executable(Path::new(&v)).ok_or_else(|| {
            format!(
                "{NODE_VAR}={} is neither an executable file nor on PATH",
                v.to_string_lossy()
            )
        }),
        None => on_path("node").ok_or_else(|| {
            format!(
                "node not found: the Node.js Kafka client tests need Node.js (Debian: `apt-get install nodejs npm`), \
                 or set {NODE_VAR}"
            )
        }),
    }
}

/// The package name of a requirement (`name@version`, the name maybe
/// scoped: `@scope/name@version`).
fn package(requirement: &str) -> &str {
    match requirement.rfind('@') {
        Some(at) if at > 0 => &requirement[..at],
        _ => requirement,
    }
}

fn installed(dir: &Path) -> bool {
    NODE_KAFKA_REQUIREMENTS
        .iter()
        .all(|r| dir.join("node_modules").join(package(r)).join("package.json").is_file())
        && !dir.join(INCOMPLETE_MARKER).exists()
}

fn find_packages() -> Result<PathBuf, String> {
    let wanted = NODE_KAFKA_REQUIREMENTS.join(" ");
    if let Some(v) = std::env::var_os(NODE_KAFKA_VAR) {
        let dir = PathBuf::from(v);
        return if installed(&dir) {
            Ok(dir.join("node_modules"))
        } else {
            Err(format!(
                "{NODE_KAFKA_VAR}={} lacks one of {wanted}; unset it to install them into {DIR}",
                dir.display()
            ))
        };
    }
    let dir = workspace_root().join(DIR);
    if !installed(&dir) {
        install(&dir)?;
    }
    Ok(dir.join("node_modules"))
}

fn install(dir: &Path) -> Result<(), String> {
    let wanted = NODE_KAFKA_REQUIREMENTS.join(" ");
    let cannot = |why: String| format!("cannot install {wanted} for the Node.js Kafka client tests: {why}");
    let _lock = lock(
        &workspace_root().join(LOCK),
        LOCK_TIMEOUT,
        "node-kafka",
        "installing the Node.js Kafka clients",
    )
    .map_err(cannot)?;
    if installed(dir) {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| cannot(format!("cannot remove {}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| cannot(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::write(dir.join(INCOMPLETE_MARKER), "").map_err(|e| cannot(format!("{}: {e}", dir.display())))?;
    say(&format!(
        "node-kafka: installing {wanted} into {} (once per checkout; needs npm and its registry)",
        dir.display()
    ));
    let log = log_path("node-kafka-install");
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(dir)
        .args(NODE_KAFKA_REQUIREMENTS);
    run_logged(npm, &log, NPM_TIMEOUT).map_err(|e| {
        cannot(format!(
            "`npm install {wanted}` {e}: {} (Debian: `apt-get install npm`)",
            tail(&log, 10)
        ))
    })?;
    let _ = std::fs::remove_file(&log);
    std::fs::remove_file(dir.join(INCOMPLETE_MARKER)).map_err(|e| cannot(format!("{}: {e}", dir.display())))?;
    if !installed(dir) {
        return Err(cannot(
            "npm succeeded but a package is missing from node_modules".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.ci/run` reads the pins with sed from one line of exactly this shape.
    #[test]
    fn node_requirements_stay_on_one_sed_readable_line() {
        let quoted: Vec<String> = NODE_KAFKA_REQUIREMENTS.iter().map(|r| format!("\"{r}\"")).collect();
        let line = format!("pub const NODE_KAFKA_REQUIREMENTS: &[&str] = &[{}];", quoted.join(", "));
        assert!(
            include_str!("node_clients.rs").lines().any(|l| l == line),
            "no line {line:?}"
        );
    }

    #[test]
    fn node_versions_parse_to_major_and_minor() {
        assert_eq!(parse_version("v20.20.2\n"), Some((20, 20)));
        assert_eq!(parse_version("v18.19.0"), Some((18, 19)));
        assert_eq!(parse_version("20.1"), None);
        assert!(Some((18, 19)) < Some(PLATFORMATIC_NODE));
    }

    #[test]
    fn package_names_drop_the_version_and_keep_the_scope() {
        assert_eq!(package("kafkajs@2.2.4"), "kafkajs");
        assert_eq!(package("@platformatic/kafka@1.35.0"), "@platformatic/kafka");
        assert_eq!(package("@platformatic/kafka"), "@platformatic/kafka");
    }
}
