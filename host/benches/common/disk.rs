//! Where benchmarks write: a directory on a real disk (never a RAM file
//! system), and the latency percentiles they report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

/// Where to put the temp dir: `CARGO_TARGET_TMPDIR` (set by cargo when
/// building benches; inside the target dir), else the system temp dir, unless
/// that is a RAM file system, in which case the workspace `target/`.
pub fn bench_base_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = option_env!("CARGO_TARGET_TMPDIR") {
        let d = PathBuf::from(d);
        std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
        return Ok(d);
    }
    let tmp = std::env::temp_dir();
    let fs = filesystem_of(&tmp)?;
    if fs.fstype != "tmpfs" && fs.fstype != "ramfs" {
        return Ok(tmp);
    }
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tmp");
    std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    Ok(d)
}

pub struct FsInfo {
    pub source: String,
    pub fstype: String,
    pub target: String,
}

/// Asks `df` which file system `path` lives on.
pub fn filesystem_of(path: &Path) -> anyhow::Result<FsInfo> {
    let out = Command::new("df")
        .arg("--output=source,fstype,target")
        .arg(path)
        .output()
        .context("run df")?;
    if !out.status.success() {
        bail!("df {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).context("df printed no data line")?;
    let mut cols = line.split_whitespace();
    let mut next = || cols.next().map(str::to_owned).context("short df line");
    Ok(FsInfo {
        source: next()?,
        fstype: next()?,
        target: next()?,
    })
}

/// The `p` quantile (0..=1) of ascending latencies; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}
