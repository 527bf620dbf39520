//! [KafkaJS](https://www.npmjs.com/package/kafkajs): a Kafka client written
//! in JavaScript from the protocol up (no librdkafka), run by Node.js.
//!
//! Node ([`node`]): `SLUICE_NODE` (a path, or a name on `PATH`), else `node`
//! on `PATH`. The package ([`node_modules`]): `SLUICE_KAFKAJS` (a directory
//! whose `node_modules/kafkajs` is installed), else `<workspace>/.ci/kafkajs`,
//! where [`KAFKAJS_REQUIREMENT`] is installed with `npm install` once per
//! checkout. As for the venvs, installs take turns on a lock
//! (`.ci/kafkajs.lock`), and a directory holding the incomplete marker is an
//! interrupted install and is rebuilt. `.ci/run` installs the same way.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::installer::{lock, log_path, on_path, resolve_executable, run_logged, say, tail, workspace_root};
use crate::venv::INCOMPLETE_MARKER;

/// Environment variable naming the Node.js executable.
pub const NODE_VAR: &str = "SLUICE_NODE";
/// Environment variable naming a directory with `node_modules/kafkajs`.
pub const KAFKAJS_VAR: &str = "SLUICE_KAFKAJS";
/// What `npm install` gets. `.ci/run` reads the pin from this line (keep it
/// on one line), so this is the one place to change it.
pub const KAFKAJS_REQUIREMENT: &str = "kafkajs@2.2.4";

const DIR: &str = ".ci/kafkajs";
const LOCK: &str = ".ci/kafkajs.lock";
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

/// The `node_modules` directory holding `kafkajs` (for `NODE_PATH`),
/// installed on first use.
///
/// # Panics
/// If it is not there and cannot be installed, saying why.
pub fn node_modules() -> &'static Path {
    static DIR_FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR_FOUND
        .get_or_init(|| {
            let result = find_kafkajs();
            if let Err(e) = &result {
                eprintln!("kafkajs: {e}");
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
                "node not found: the KafkaJS tests need Node.js (Debian: `apt-get install nodejs npm`), \
                 or set {NODE_VAR}"
            )
        }),
    }
}

fn installed(dir: &Path) -> bool {
    dir.join("node_modules/kafkajs/package.json").is_file() && !dir.join(INCOMPLETE_MARKER).exists()
}

fn find_kafkajs() -> Result<PathBuf, String> {
    if let Some(v) = std::env::var_os(KAFKAJS_VAR) {
        let dir = PathBuf::from(v);
        return if installed(&dir) {
            Ok(dir.join("node_modules"))
        } else {
            Err(format!(
                "{KAFKAJS_VAR}={} has no node_modules/kafkajs; unset it to install {KAFKAJS_REQUIREMENT} into {DIR}",
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
    let cannot = |why: String| format!("cannot install {KAFKAJS_REQUIREMENT} for the KafkaJS tests: {why}");
    let _lock = lock(
        &workspace_root().join(LOCK),
        LOCK_TIMEOUT,
        "kafkajs",
        "installing kafkajs",
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
        "kafkajs: installing {KAFKAJS_REQUIREMENT} into {} (once per checkout; needs npm and its registry)",
        dir.display()
    ));
    let log = log_path("kafkajs-install");
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(dir)
        .arg(KAFKAJS_REQUIREMENT);
    run_logged(npm, &log, NPM_TIMEOUT).map_err(|e| {
        cannot(format!(
            "`npm install {KAFKAJS_REQUIREMENT}` {e}: {} (Debian: `apt-get install npm`)",
            tail(&log, 10)
        ))
    })?;
    let _ = std::fs::remove_file(&log);
    if !dir.join("node_modules/kafkajs/package.json").is_file() {
        return Err(cannot("npm succeeded but node_modules/kafkajs is missing".into()));
    }
    std::fs::remove_file(dir.join(INCOMPLETE_MARKER)).map_err(|e| cannot(format!("{}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.ci/run` reads the pin with sed from one line of exactly this shape.
    #[test]
    fn kafkajs_requirement_stays_on_one_sed_readable_line() {
        let line = format!("pub const KAFKAJS_REQUIREMENT: &str = \"{KAFKAJS_REQUIREMENT}\";");
        assert!(
            include_str!("kafkajs.rs").lines().any(|l| l == line),
            "no line {line:?}"
        );
    }
}
