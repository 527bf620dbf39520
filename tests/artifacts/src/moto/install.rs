//! Finding moto's server binary, and installing it into `.ci/moto-venv`
//! (once per checkout, guarded by a lock file) when there is none.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    ALTERNATIVES, BINARY_VAR, INCOMPLETE_MARKER, LOCK_TIMEOUT, MOTO_REQUIREMENT, PIP_TIMEOUT, VENV, VENV_LOCK,
    VENV_TIMEOUT,
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
    let venv = workspace_root().join(VENV);
    if let Some(binary) = venv_binary(&venv) {
        return Ok(binary);
    }
    let on_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| is_executable(candidate));
    match on_path {
        Some(binary) => Ok(binary),
        None => install(&venv),
    }
}

/// The venv's `moto_server` if the venv is complete. Safe without the lock:
/// the installer puts [`INCOMPLETE_MARKER`] in place before `pip install`
/// creates `moto_server`, and removes it only once the install succeeded.
fn venv_binary(venv: &Path) -> Option<PathBuf> {
    let binary = venv.join("bin/moto_server");
    (is_executable(&binary) && !venv.join(INCOMPLETE_MARKER).exists()).then_some(binary)
}

/// Installs [`MOTO_REQUIREMENT`] into `venv` (unless another process did
/// while this one waited for the lock) and returns its `moto_server`.
fn install(venv: &Path) -> Result<PathBuf, String> {
    let lock_path = workspace_root().join(VENV_LOCK);
    let _lock = lock(&lock_path)?;
    if let Some(binary) = venv_binary(venv) {
        return Ok(binary);
    }
    if venv.exists() {
        std::fs::remove_dir_all(venv)
            .map_err(|e| format!("cannot remove the unfinished moto install {}: {e}", venv.display()))?;
    }
    say(&format!(
        "moto: installing {MOTO_REQUIREMENT} into {} for the S3 tests (once per checkout; needs python3 and PyPI)",
        venv.display()
    ));
    let log_path = std::env::temp_dir().join(format!("sluice-moto-install-{}.log", std::process::id()));
    let result = create_venv(venv, &log_path);
    if result.is_ok() {
        let _ = std::fs::remove_file(&log_path);
    } else {
        // Leave nothing half-made behind; the log stays for the message.
        let _ = std::fs::remove_dir_all(venv);
    }
    result
}

fn create_venv(venv: &Path, log_path: &Path) -> Result<PathBuf, String> {
    let venv_cmd = format!("python3 -m venv {}", venv.display());
    let mut python = Command::new("python3");
    python.arg("-m").arg("venv").arg(venv);
    match run_logged(python, log_path, VENV_TIMEOUT) {
        Ok(()) => {}
        Err(RunError::Spawn(e)) => {
            return Err(format!(
                "cannot install moto for the S3 tests: python3 not found ({e}); install python3 with its venv \
                 module (on Debian/Ubuntu: `apt-get install python3-venv`), {ALTERNATIVES}"
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot install moto for the S3 tests: `{venv_cmd}` {e} (output in {}); python3 needs its venv \
                 module (on Debian/Ubuntu: `apt-get install python3-venv`), {ALTERNATIVES}",
                log_path.display()
            ));
        }
    }
    std::fs::write(venv.join(INCOMPLETE_MARKER), "").map_err(|e| format!("cannot write to {}: {e}", venv.display()))?;
    let mut pip = Command::new(venv.join("bin/python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        MOTO_REQUIREMENT,
    ]);
    if let Err(e) = run_logged(pip, log_path, PIP_TIMEOUT) {
        return Err(format!(
            "cannot install moto for the S3 tests: `pip install '{MOTO_REQUIREMENT}'` into {} {e} (output in {}); \
             check access to PyPI and retry, {ALTERNATIVES}",
            venv.display(),
            log_path.display()
        ));
    }
    let binary = venv.join("bin/moto_server");
    if !is_executable(&binary) {
        return Err(format!(
            "cannot install moto for the S3 tests: `pip install '{MOTO_REQUIREMENT}'` succeeded but {} is missing, \
             {ALTERNATIVES}",
            binary.display()
        ));
    }
    std::fs::remove_file(venv.join(INCOMPLETE_MARKER))
        .map_err(|e| format!("cannot finish the moto install in {}: {e}", venv.display()))?;
    Ok(binary)
}

/// Takes the exclusive OS lock on `path` (created if need be), waiting at most
/// [`LOCK_TIMEOUT`]; the lock goes with the returned file, or with the
/// process if it dies.
fn lock(path: &Path) -> Result<File, String> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| {
            format!(
                "cannot install moto for the S3 tests: cannot open {}: {e}, {ALTERNATIVES}",
                path.display()
            )
        })?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "cannot install moto for the S3 tests: another process has held {} for {LOCK_TIMEOUT:?} \
                 (installing moto); stop it or retry, {ALTERNATIVES}",
                path.display()
            ));
        }
        if !said {
            say(&format!(
                "moto: waiting for another process installing moto ({})",
                path.display()
            ));
            said = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One line to the real stderr, not the test harness's captured output, so
/// that it shows even when the test passes.
pub(super) fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[derive(Debug)]
enum RunError {
    /// The program could not be started.
    Spawn(std::io::Error),
    /// It ran and failed, timed out, or could not be waited for.
    Failed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "could not be started ({e})"),
            RunError::Failed(why) => f.write_str(why),
        }
    }
}

/// Runs `cmd` with stdout and stderr appended to `log_path`, for at most
/// `timeout` (then kills it).
fn run_logged(mut cmd: Command, log_path: &Path, timeout: Duration) -> Result<(), RunError> {
    let open = || {
        File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| RunError::Failed(format!("could not be run: cannot open {}: {e}", log_path.display())))
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .spawn()
        .map_err(RunError::Spawn)?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(RunError::Failed(format!("failed ({status})"))),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::Failed(format!("did not finish within {timeout:?}")));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(RunError::Failed(format!("could not be waited for ({e})"))),
        }
    }
}

fn workspace_root() -> PathBuf {
    // This crate lives at <root>/tests/artifacts.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
