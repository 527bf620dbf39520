//! [schemathesis](https://pypi.org/project/schemathesis/) (PyPI), which
//! generates requests from an OpenAPI document and checks the answers, for
//! the schema test of the HTTP API.
//!
//! Where `st` comes from, in order: `SLUICE_SCHEMATHESIS` (a path to `st`);
//! else `<workspace>/.ci/schemathesis-venv/bin/st`, installed there
//! ([`SCHEMATHESIS_REQUIREMENT`]) on first use, once per checkout, the way
//! the other test venvs are (`.ci/run` builds the same venv up front).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::venv::Venv;

/// Environment variable naming the `st` executable to use.
pub const ST_VAR: &str = "SLUICE_SCHEMATHESIS";
/// What gets installed into `.ci/schemathesis-venv`. `.ci/run` reads the pin
/// from this line (keep it on one line), so this is the one place to change it.
pub const SCHEMATHESIS_REQUIREMENT: &str = "schemathesis==4.32.5";

const VENV: Venv = Venv {
    label: "schemathesis",
    name: "schemathesis",
    purpose: "the OpenAPI schema test",
    dir: ".ci/schemathesis-venv",
    lock: ".ci/schemathesis-venv.lock",
    requirements: &[SCHEMATHESIS_REQUIREMENT],
    probe: "bin/st",
    check: Some("import schemathesis"),
    alternatives: "or set SLUICE_SCHEMATHESIS to an `st` executable of schemathesis 4",
};

/// The `st` executable, installing schemathesis first if need be; panics
/// with one line saying why when it cannot be had.
pub fn st() -> &'static Path {
    static ST: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = ST.get_or_init(|| match std::env::var_os(ST_VAR) {
        Some(path) => Ok(PathBuf::from(path)),
        None => VENV.ensure(),
    });
    match found {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}
