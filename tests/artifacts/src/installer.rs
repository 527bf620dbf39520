//! Pieces shared by the installers of test tools ([`crate::venv`] for moto
//! and the Python Kafka clients, and `kcat`'s apt install): an OS file lock
//! with a deadline, running a command with its output in a log file and a
//! timeout, progress lines on the real stderr, and finding executables.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Takes the exclusive OS lock on `path` (created, with its directory, if
/// need be), waiting at most `timeout`; the lock goes with the returned file,
/// or with the process if it dies. While waiting it says once
/// `"{label}: waiting for another process {doing} ({path})"`.
///
/// Errors say what went wrong without a prefix; callers add what they were
/// trying to do.
pub(crate) fn lock(path: &Path, timeout: Duration, label: &str, doing: &str) -> Result<File, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let deadline = Instant::now() + timeout;
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
                "another process has held {} for {timeout:?} ({doing}); stop it or retry",
                path.display()
            ));
        }
        if !said {
            say(&format!(
                "{label}: waiting for another process {doing} ({})",
                path.display()
            ));
            said = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One line to the real stderr, not the test harness's captured output, so
/// that it shows even when the test passes.
pub(crate) fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[derive(Debug)]
pub(crate) enum RunError {
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
pub(crate) fn run_logged(mut cmd: Command, log_path: &Path, timeout: Duration) -> Result<(), RunError> {
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

/// A fresh log file path in the temporary directory, unique to this process
/// and `tag` (e.g. `moto-install`).
pub(crate) fn log_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sluice-{tag}-{}.log", std::process::id()))
}

/// The last `lines` lines of the file at `path` (empty if it cannot be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let last: Vec<&str> = text.lines().rev().take(lines).collect();
    last.into_iter().rev().collect::<Vec<_>>().join("\n")
}

pub(crate) fn workspace_root() -> PathBuf {
    // This crate lives at <root>/tests/artifacts.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first executable `name` in a directory of `PATH`.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// An executable named by an environment variable: a path (anything with a
/// `/`), else a name looked up on `PATH`.
pub(crate) fn resolve_executable(value: &Path) -> Option<PathBuf> {
    if value.as_os_str().as_encoded_bytes().contains(&b'/') {
        is_executable(value).then(|| value.to_path_buf())
    } else {
        on_path(value.to_str()?)
    }
}
