//! Finding `kcat`, and installing the Debian package `kcat` with apt-get
//! when it is missing and this process may (root, or `sudo -n`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::KCAT_VAR;
use crate::installer::{
    RunError, is_executable, lock, log_path, on_path, resolve_executable, run_logged, say, workspace_root,
};

/// Lock file serializing installs by processes of this checkout, relative to
/// the workspace root (apt-get itself waits for other users of dpkg, see
/// [`DPKG_LOCK_WAIT`]).
const LOCK: &str = ".ci/kcat-install.lock";
/// Where Debian's package puts the binary, for when `PATH` lacks `/usr/bin`.
const DEBIAN_PATH: &str = "/usr/bin/kcat";
/// Bound on each apt-get run (install, update, install again) and on `sudo -n
/// true`; waiting for another process's install covers all three.
const APT_TIMEOUT: Duration = Duration::from_secs(300);
const SUDO_TIMEOUT: Duration = Duration::from_secs(30);
const LOCK_TIMEOUT: Duration = Duration::from_secs(3 * 300 + 60);
/// How long apt-get waits for dpkg's own lock, held by another apt run.
const DPKG_LOCK_WAIT: &str = "DPkg::Lock::Timeout=120";

/// What to do by hand, for error messages.
const MANUAL: &str = "install kcat (Debian/Ubuntu: `sudo apt-get install kcat`; macOS: `brew install kcat`), or \
     set SLUICE_KCAT to a kcat binary";

/// How apt-get can be run.
#[derive(Debug, Clone, Copy)]
enum Privilege {
    Root,
    Sudo,
}

/// `SLUICE_KCAT`, else `kcat` on `PATH`, else a fresh install with apt-get.
pub(super) fn find() -> Result<PathBuf, String> {
    if let Some(value) = std::env::var_os(KCAT_VAR) {
        let value = PathBuf::from(value);
        return resolve_executable(&value).ok_or_else(|| {
            format!(
                "kcat not found: {KCAT_VAR}={} is neither an executable file nor on PATH; unset it to use kcat \
                 from PATH (installed with apt-get if missing), or point it at a kcat binary",
                value.display()
            )
        });
    }
    match installed() {
        Some(kcat) => Ok(kcat),
        None => install(),
    }
}

fn installed() -> Option<PathBuf> {
    on_path("kcat").or_else(|| is_executable(Path::new(DEBIAN_PATH)).then(|| PathBuf::from(DEBIAN_PATH)))
}

/// Installs Debian's `kcat` (unless another process did while this one
/// waited for the lock) and returns its path.
fn install() -> Result<PathBuf, String> {
    let cannot =
        |why: &str| format!("kcat not found on PATH and cannot be installed for the Kafka tests: {why}; {MANUAL}");
    let log = log_path("kcat-install");
    let privilege = privilege(&log);
    // Only `sudo -n true` wrote to it so far: nothing worth keeping.
    let _ = std::fs::remove_file(&log);
    let privilege = privilege
        .ok_or_else(|| cannot("this process is not root and `sudo -n` needs a password (or there is no sudo)"))?;
    let _lock = lock(&workspace_root().join(LOCK), LOCK_TIMEOUT, "kcat", "installing kcat").map_err(|e| cannot(&e))?;
    if let Some(kcat) = installed() {
        return Ok(kcat);
    }
    say("kcat: installing the Debian package kcat with apt-get for the Kafka tests (once per machine)");
    let install = ["install", "-y", "kcat"];
    let mut result = apt(privilege, &install, &log);
    if let Err(first) = result {
        if matches!(first, AptError::Missing(_)) {
            return Err(cannot(&first.to_string()));
        }
        // Often just stale package lists (a fresh container has none).
        say("kcat: `apt-get install -y kcat` failed; running `apt-get update` and trying again");
        result = apt(privilege, &["update"], &log).and_then(|()| apt(privilege, &install, &log));
    }
    if let Err(e) = result {
        return Err(cannot(&format!("{e} (output in {})", log.display())));
    }
    let _ = std::fs::remove_file(&log);
    installed().ok_or_else(|| {
        cannot(&format!(
            "`apt-get install -y kcat` succeeded but there is no kcat on PATH nor at {DEBIAN_PATH}"
        ))
    })
}

/// Root, else passwordless sudo, else `None`.
fn privilege(log: &Path) -> Option<Privilege> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        return Some(Privilege::Root);
    }
    let mut sudo = Command::new("sudo");
    sudo.args(["-n", "true"]);
    run_logged(sudo, log, SUDO_TIMEOUT).ok().map(|()| Privilege::Sudo)
}

#[derive(Debug)]
enum AptError {
    /// apt-get (or sudo) could not be started.
    Missing(String),
    /// It ran and failed or timed out.
    Failed(String),
}

impl std::fmt::Display for AptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AptError::Missing(why) | AptError::Failed(why) => f.write_str(why),
        }
    }
}

/// `apt-get <args>`, non-interactive, as root or through `sudo -n`, with
/// its output appended to `log`, bounded by [`APT_TIMEOUT`].
fn apt(privilege: Privilege, args: &[&str], log: &Path) -> Result<(), AptError> {
    let mut cmd = match privilege {
        Privilege::Root => {
            let mut cmd = Command::new("apt-get");
            cmd.env("DEBIAN_FRONTEND", "noninteractive");
            cmd
        }
        Privilege::Sudo => {
            let mut cmd = Command::new("sudo");
            cmd.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            cmd
        }
    };
    cmd.args(["-o", DPKG_LOCK_WAIT]).args(args);
    let shown = format!("`apt-get {}`", args.join(" "));
    run_logged(cmd, log, APT_TIMEOUT).map_err(|e| match e {
        RunError::Spawn(e) => AptError::Missing(format!("{shown} could not be started ({e})")),
        e @ RunError::Failed(_) => AptError::Failed(format!("{shown} {e}")),
    })
}
