//! Third-party Kafka clients for the tests of sluice's Kafka face: `kcat`
//! (the Debian package `kcat`, librdkafka inside), and a python3 that imports
//! [confluent-kafka](https://pypi.org/project/confluent-kafka/) (librdkafka
//! again, bundled in its wheel),
//! [kafka-python](https://pypi.org/project/kafka-python/) (pure Python) and
//! [aiokafka](https://pypi.org/project/aiokafka/) (asyncio, its own
//! producer, fetcher and group coordinator), and KafkaJS and
//! @platformatic/kafka ([`node_clients`], JavaScript, run by Node.js).
//! This module owns finding them and, on a fresh machine, installing them.
//!
//! The python ([`python`]), in order:
//! 1. `SLUICE_KAFKA_PYTHON`: a python (a path, or a name on `PATH`) that
//!    already imports the three packages; checked once per process.
//!    `.ci/run` sets it to its own `.ci/kafka-venv`.
//! 2. Otherwise `<workspace>/.ci/kafka-venv/bin/python3`, installing
//!    [`KAFKA_PY_REQUIREMENTS`] into that venv first if it is not complete
//!    (`python3 -m venv`, then `pip install`, then an import check), once per
//!    checkout, printing one line to stderr. As for moto's venv, installs
//!    take turns on a lock (`.ci/kafka-venv.lock`), and a venv whose install
//!    did not finish, or that fails the import check (made before a client
//!    was pinned), is rebuilt. This needs `python3` with its `venv` module
//!    (on Debian/Ubuntu the `python3-venv` package) and access to PyPI.
//!
//! `kcat` ([`kcat`]), in order: `SLUICE_KCAT` (a path, or a name on `PATH`);
//! `kcat` on `PATH`; else, when this process is root or `sudo -n` works,
//! `apt-get install -y kcat` (after `apt-get update` if that first attempt
//! fails), bounded by timeouts and serialized by `.ci/kcat-install.lock`.
//!
//! Kafka client tests never skip: [`python`] and [`kcat`] panic saying why
//! and what to install; [`try_python`] and [`try_kcat`] return that message
//! as an error instead. Each is looked for (and installed) once per process.
//!
//! ```no_run
//! use std::process::Command;
//! use sluice_test_artifacts::kafka_clients;
//!
//! let metadata = Command::new(kafka_clients::kcat()).args(["-b", "127.0.0.1:9092", "-L"]).output();
//! let produced = Command::new(kafka_clients::python()).arg("-c").arg("import confluent_kafka").status();
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::installer::{log_path, resolve_executable, run_logged, tail};
use crate::venv::Venv;

mod kcat;
pub mod node_clients;

/// Environment variable naming a python that already imports
/// `confluent_kafka` and `kafka`.
pub const PYTHON_VAR: &str = "SLUICE_KAFKA_PYTHON";
/// Environment variable naming the `kcat` executable.
pub const KCAT_VAR: &str = "SLUICE_KCAT";
/// What gets installed into `.ci/kafka-venv`. `.ci/run` reads the pins from
/// this line (keep it on one line), so this is the one place to change them.
#[rustfmt::skip]
pub const KAFKA_PY_REQUIREMENTS: &[&str] = &["confluent-kafka==2.16.1", "kafka-python==3.0.12", "aiokafka==0.14.0", "lz4==4.4.5", "python-snappy==0.7.3", "zstandard==0.25.0"];

/// The venv and its lock, relative to the workspace root.
const VENV_DIR: &str = ".ci/kafka-venv";
const VENV_LOCK: &str = ".ci/kafka-venv.lock";
/// What proves a python usable for the Kafka tests.
const IMPORT_CHECK: &str = "import confluent_kafka, kafka, aiokafka";
/// Bound on checking the python named by `SLUICE_KAFKA_PYTHON`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// What else a user can do, for error messages about the python.
const PYTHON_ALTERNATIVES: &str =
    "or set SLUICE_KAFKA_PYTHON to a python3 that imports confluent_kafka, kafka and aiokafka";

/// The Kafka clients' venv.
const KAFKA_VENV: Venv = Venv {
    label: "kafka-clients",
    name: "confluent-kafka, kafka-python and aiokafka",
    purpose: "the Kafka tests",
    dir: VENV_DIR,
    lock: VENV_LOCK,
    requirements: KAFKA_PY_REQUIREMENTS,
    probe: "bin/python3",
    check: Some(IMPORT_CHECK),
    alternatives: PYTHON_ALTERNATIVES,
};

/// A python3 that imports `confluent_kafka`, `kafka` and `aiokafka` (see
/// the module docs), found (and if need be installed) on first use.
///
/// # Panics
/// If there is none and it cannot be installed, with the reason and what to
/// do.
pub fn python() -> &'static Path {
    try_python().unwrap_or_else(|e| panic!("{e}"))
}

/// [`python`], or why there is none.
pub fn try_python() -> Result<&'static Path, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let result = find_python();
            if let Err(e) = &result {
                eprintln!("kafka-clients: {e}");
            }
            result
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// The `kcat` executable (see the module docs), found (and if need be
/// installed) on first use.
///
/// # Panics
/// If there is none and it cannot be installed, with the reason and what to
/// do.
pub fn kcat() -> &'static Path {
    try_kcat().unwrap_or_else(|e| panic!("{e}"))
}

/// [`kcat`], or why there is none.
pub fn try_kcat() -> Result<&'static Path, String> {
    static KCAT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    KCAT.get_or_init(|| {
        let result = kcat::find();
        if let Err(e) = &result {
            eprintln!("kafka-clients: {e}");
        }
        result
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// The version [`KAFKA_PY_REQUIREMENTS`] pins for PyPI package `package`
/// (e.g. `"confluent-kafka"`), if it pins one.
pub fn pinned_version(package: &str) -> Option<&'static str> {
    KAFKA_PY_REQUIREMENTS.iter().find_map(|requirement| {
        let (name, version) = requirement.split_once("==")?;
        (name.trim() == package).then(|| version.trim())
    })
}

/// `SLUICE_KAFKA_PYTHON` (checked), else the venv, installed if need be.
fn find_python() -> Result<PathBuf, String> {
    let Some(value) = std::env::var_os(PYTHON_VAR) else {
        let python = KAFKA_VENV.ensure()?;
        // A venv made before a client was pinned lacks it: made again.
        let mut cmd = Command::new(&python);
        cmd.arg("-c").arg(IMPORT_CHECK);
        let log = log_path("kafka-venv-check");
        let complete = run_logged(cmd, &log, CHECK_TIMEOUT).is_ok();
        let _ = std::fs::remove_file(&log);
        return match complete {
            true => Ok(python),
            false => KAFKA_VENV.reinstall(),
        };
    };
    let value = PathBuf::from(value);
    let python = resolve_executable(&value).ok_or_else(|| {
        format!(
            "python for the Kafka tests not found: {PYTHON_VAR}={} is neither an executable file nor on PATH; \
             unset it to install {} into {VENV_DIR} automatically, or point it at a python3 that has them",
            value.display(),
            KAFKA_PY_REQUIREMENTS.join(" ")
        )
    })?;
    let log = log_path("kafka-python-check");
    let mut cmd = Command::new(&python);
    cmd.arg("-c").arg(IMPORT_CHECK);
    let result = run_logged(cmd, &log, CHECK_TIMEOUT).map_err(|e| {
        format!(
            "{PYTHON_VAR}={}: `{} -c '{IMPORT_CHECK}'` {e}: {}\ninstall {} into it, or unset {PYTHON_VAR} to \
             install them into {VENV_DIR} automatically",
            value.display(),
            python.display(),
            tail(&log, 10),
            KAFKA_PY_REQUIREMENTS.join(" ")
        )
    });
    let _ = std::fs::remove_file(&log);
    result.map(|()| python)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.ci/run` reads the pins with sed from one line of exactly this shape.
    #[test]
    fn kafka_clients_requirements_stay_on_one_sed_readable_line() {
        let line = format!(
            "pub const KAFKA_PY_REQUIREMENTS: &[&str] = &[{}];",
            KAFKA_PY_REQUIREMENTS
                .iter()
                .map(|r| format!("\"{r}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(include_str!("mod.rs").lines().any(|l| l == line), "no line {line:?}");
        assert_eq!(pinned_version("confluent-kafka"), Some("2.16.1"));
        assert_eq!(pinned_version("kafka-python"), Some("3.0.12"));
        assert_eq!(pinned_version("kafka"), None);
    }

    #[test]
    fn kafka_clients_report_their_versions() {
        let out = Command::new(kcat()).arg("-V").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "`kcat -V` failed ({}): {text}", out.status);
        let version = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Version "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `Version` line in `kcat -V`: {text}"));
        let numbers: Vec<u32> = version.split('.').map(|n| n.parse().unwrap()).collect();
        // 1.7.0 is the first release named kcat (before: kafkacat).
        assert!(numbers >= vec![1, 7, 0], "kcat {version} is older than 1.7.0");
        assert!(text.contains("librdkafka"), "{text}");

        // Line 1: what the pins must match; line 2: the bundled librdkafka.
        let out = Command::new(python())
            .arg("-c")
            .arg(
                "import confluent_kafka, kafka, aiokafka; \
                 print(confluent_kafka.version(), kafka.__version__, aiokafka.__version__); \
                 print(confluent_kafka.libversion()[0])",
            )
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "python ({}) failed: {printed}{}",
            python().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines = printed.lines();
        let versions = lines.next().unwrap_or_default();
        let librdkafka = lines.next().unwrap_or("?");
        let expected = format!(
            "{} {} {}",
            pinned_version("confluent-kafka").unwrap(),
            pinned_version("kafka-python").unwrap(),
            pinned_version("aiokafka").unwrap()
        );
        assert_eq!(
            versions,
            expected,
            "versions printed by {} (confluent-kafka, kafka-python, aiokafka); a {VENV_DIR} made with \
             older pins is not updated: delete it to reinstall",
            python().display()
        );
        crate::installer::say(&format!(
            "kafka-clients: kcat {version} at {}; confluent-kafka, kafka-python and aiokafka {versions} \
             (librdkafka {librdkafka}) in {}",
            kcat().display(),
            python().display()
        ));
    }
}
