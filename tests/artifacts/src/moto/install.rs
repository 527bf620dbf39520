//! Finding moto's server binary, and installing it into `.ci/moto-venv`
//! (once per checkout, guarded by a lock file; see [`crate::venv`]) when
//! there is none.

use std::path::PathBuf;

use super::{ALTERNATIVES, BINARY_VAR, MOTO_REQUIREMENT, VENV, VENV_LOCK};
use crate::installer::{is_executable, on_path};
use crate::venv::Venv;

pub(super) use crate::installer::say;

/// moto's venv.
const MOTO_VENV: Venv = Venv {
    label: "moto",
    name: "moto",
    purpose: "the S3 tests",
    dir: VENV,
    lock: VENV_LOCK,
    requirements: &[MOTO_REQUIREMENT],
    probe: "bin/moto_server",
    check: None,
    alternatives: ALTERNATIVES,
};

/// `SLUICE_MOTO_SERVER`, else a complete `.ci/moto-venv`, else `moto_server`
/// on `PATH`, else a fresh install into `.ci/moto-venv`.
pub(super) fn find_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(BINARY_VAR) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "moto_server not found: {BINARY_VAR}={} is not an executable file; unset it to install moto \
                 into {VENV} automatically, or point it at a moto_server",
                path.display()
            ))
        };
    }
    if let Some(binary) = MOTO_VENV.installed() {
        return Ok(binary);
    }
    match on_path("moto_server") {
        Some(binary) => Ok(binary),
        None => MOTO_VENV.install(),
    }
}
