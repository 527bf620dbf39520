//! Installing pinned PyPI packages into a Python venv of the workspace
//! (`.ci/moto-venv`, `.ci/kafka-venv`), once per checkout, for tests.
//!
//! A [`Venv`] names the directory, its lock file, the pip requirements and a
//! probe: an executable inside the venv whose presence (with no
//! [`INCOMPLETE_MARKER`]) proves the install complete. Processes installing
//! at the same time take turns on the lock (an OS file lock, so a killed
//! installer never leaves it held); a venv whose install did not finish is
//! rebuilt. `.ci/run` builds the same venvs with the same marker convention.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::installer::{RunError, is_executable, lock, log_path, run_logged, say, workspace_root};

/// Present inside a venv from before its creation until its install
/// succeeded; a venv holding it is an interrupted install and is rebuilt (by
/// `.ci/run` too, which checks the same name).
pub(crate) const INCOMPLETE_MARKER: &str = ".sluice-install-incomplete";
/// Bounds on installing: creating the venv, `pip install`, and waiting for
/// another process's install (longer than one install).
const VENV_TIMEOUT: Duration = Duration::from_secs(120);
const PIP_TIMEOUT: Duration = Duration::from_secs(600);
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
const LOCK_TIMEOUT: Duration = Duration::from_secs(900);

/// One venv of pinned packages, and how to talk about it in messages.
#[derive(Debug)]
pub(crate) struct Venv {
    /// Prefix of progress lines, e.g. `moto`.
    pub label: &'static str,
    /// What gets installed, in messages: `cannot install {name} for {purpose}`.
    pub name: &'static str,
    /// Who needs it, e.g. `the S3 tests`.
    pub purpose: &'static str,
    /// The venv, relative to the workspace root.
    pub dir: &'static str,
    /// Lock file serializing installs, relative to the workspace root.
    pub lock: &'static str,
    /// Arguments to `pip install`.
    pub requirements: &'static [&'static str],
    /// Executable inside the venv (e.g. `bin/moto_server`) that the install
    /// provides; what [`Venv::installed`] and [`Venv::ensure`] return.
    pub probe: &'static str,
    /// Python source the venv's python must run successfully after `pip
    /// install` before the install counts as complete (e.g. imports).
    pub check: Option<&'static str>,
    /// What else a user can do, appended to error messages.
    pub alternatives: &'static str,
}

impl Venv {
    /// The venv's absolute path.
    pub fn path(&self) -> PathBuf {
        workspace_root().join(self.dir)
    }

    /// The probe if the venv is complete. Safe without the lock: the
    /// installer puts [`INCOMPLETE_MARKER`] in place before creating the venv
    /// and removes it only once the install succeeded.
    pub fn installed(&self) -> Option<PathBuf> {
        let venv = self.path();
        let probe = venv.join(self.probe);
        (is_executable(&probe) && !venv.join(INCOMPLETE_MARKER).exists()).then_some(probe)
    }

    /// The probe of a complete venv, installing it first if need be.
    pub fn ensure(&self) -> Result<PathBuf, String> {
        match self.installed() {
            Some(probe) => Ok(probe),
            None => self.install(),
        }
    }

    /// Installs the requirements into the venv (unless another process did
    /// while this one waited for the lock) and returns the probe.
    pub fn install(&self) -> Result<PathBuf, String> {
        self.install_if(|v| v.installed().is_none())
    }

    /// Makes the venv again, as [`Venv::install`], when its `check` fails
    /// (made before a requirement was added, say), unless another process
    /// did while this one waited for the lock.
    pub fn reinstall(&self) -> Result<PathBuf, String> {
        self.install_if(|v| match (v.installed(), v.check) {
            (Some(probe), Some(check)) => {
                let mut python = Command::new(probe);
                python.arg("-c").arg(check);
                let log = log_path(&format!("{}-check", v.label));
                let failed = run_logged(python, &log, CHECK_TIMEOUT).is_err();
                let _ = std::fs::remove_file(&log);
                failed
            }
            _ => true,
        })
    }

    /// Under the lock: installs if `needed` still says so, else returns the
    /// probe.
    fn install_if(&self, needed: impl Fn(&Venv) -> bool) -> Result<PathBuf, String> {
        let lock_path = workspace_root().join(self.lock);
        let _lock = lock(
            &lock_path,
            LOCK_TIMEOUT,
            self.label,
            &format!("installing {}", self.name),
        )
        .map_err(|e| self.cannot(&e))?;
        if !needed(self)
            && let Some(probe) = self.installed()
        {
            return Ok(probe);
        }
        let venv = self.path();
        if venv.exists() {
            std::fs::remove_dir_all(&venv).map_err(|e| {
                format!(
                    "cannot remove the unfinished {} install {}: {e}",
                    self.name,
                    venv.display()
                )
            })?;
        }
        say(&format!(
            "{}: installing {} into {} for {} (once per checkout; needs python3 and PyPI)",
            self.label,
            self.requirements.join(" "),
            venv.display(),
            self.purpose
        ));
        let log_path = log_path(&format!("{}-install", self.label));
        let result = self.create(&venv, &log_path);
        if result.is_ok() {
            let _ = std::fs::remove_file(&log_path);
        } else {
            // Leave nothing half-made behind; the log stays for the message.
            let _ = std::fs::remove_dir_all(&venv);
        }
        result
    }

    /// `cannot install {name} for {purpose}: {why}, {alternatives}`.
    fn cannot(&self, why: &str) -> String {
        format!(
            "cannot install {} for {}: {why}, {}",
            self.name, self.purpose, self.alternatives
        )
    }

    fn create(&self, venv: &Path, log_path: &Path) -> Result<PathBuf, String> {
        // The marker goes in first, so that no one takes the venv for
        // complete while it is being made (`python3 -m venv` accepts an
        // existing directory).
        std::fs::create_dir_all(venv).map_err(|e| self.cannot(&format!("cannot create {}: {e}", venv.display())))?;
        std::fs::write(venv.join(INCOMPLETE_MARKER), "")
            .map_err(|e| self.cannot(&format!("cannot write to {}: {e}", venv.display())))?;
        let venv_cmd = format!("python3 -m venv {}", venv.display());
        let mut python = Command::new("python3");
        python.arg("-m").arg("venv").arg(venv);
        match run_logged(python, log_path, VENV_TIMEOUT) {
            Ok(()) => {}
            Err(RunError::Spawn(e)) => {
                return Err(self.cannot(&format!(
                    "python3 not found ({e}); install python3 with its venv module (on Debian/Ubuntu: \
                     `apt-get install python3-venv`)"
                )));
            }
            Err(e) => {
                return Err(self.cannot(&format!(
                    "`{venv_cmd}` {e} (output in {}); python3 needs its venv module (on Debian/Ubuntu: \
                     `apt-get install python3-venv`)",
                    log_path.display()
                )));
            }
        }
        let pip_cmd = format!(
            "pip install {}",
            self.requirements
                .iter()
                .map(|r| format!("'{r}'"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut pip = Command::new(venv.join("bin/python"));
        pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(self.requirements);
        if let Err(e) = run_logged(pip, log_path, PIP_TIMEOUT) {
            return Err(self.cannot(&format!(
                "`{pip_cmd}` into {} {e} (output in {}); check access to PyPI and retry",
                venv.display(),
                log_path.display()
            )));
        }
        let probe = venv.join(self.probe);
        if !is_executable(&probe) {
            return Err(self.cannot(&format!("`{pip_cmd}` succeeded but {} is missing", probe.display())));
        }
        if let Some(check) = self.check {
            let mut python = Command::new(venv.join("bin/python"));
            python.arg("-c").arg(check);
            if let Err(e) = run_logged(python, log_path, CHECK_TIMEOUT) {
                return Err(self.cannot(&format!(
                    "`{pip_cmd}` succeeded but `python -c '{check}'` {e} (output in {})",
                    log_path.display()
                )));
            }
        }
        std::fs::remove_file(venv.join(INCOMPLETE_MARKER))
            .map_err(|e| format!("cannot finish the {} install in {}: {e}", self.name, venv.display()))?;
        Ok(probe)
    }
}
