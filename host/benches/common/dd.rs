//! The physical reference of the produce benchmarks: `dd conv=fdatasync`
//! in the benchmark's own directory, in the same run.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Writes `mib` MiB with `dd ... conv=fdatasync` in `dir` and returns MB/s
/// (10^6 bytes/s) computed from dd's own byte count and elapsed seconds.
pub fn dd_reference(dir: &Path, mib: u64) -> anyhow::Result<f64> {
    let file = dir.join("dd.bin");
    let out = Command::new("dd")
        .env("LC_ALL", "C")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .arg("bs=1M")
        .arg(format!("count={mib}"))
        .arg("conv=fdatasync")
        .output()
        .context("run dd")?;
    let _ = std::fs::remove_file(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("dd failed: {stderr}");
    }
    // e.g. "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 1.41 s, 762 MB/s"
    let line = stderr
        .lines()
        .find(|l| l.contains(" bytes") && l.contains("copied"))
        .with_context(|| format!("no summary line in dd output: {stderr}"))?;
    let bytes: f64 = line
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .with_context(|| format!("cannot parse bytes in {line:?}"))?;
    let secs: f64 = line
        .split(',')
        .find_map(|part| part.trim().strip_suffix(" s").and_then(|s| s.trim().parse().ok()))
        .with_context(|| format!("cannot parse seconds in {line:?}"))?;
    if secs <= 0.0 {
        bail!("dd reported a non-positive time: {line:?}");
    }
    Ok(bytes / secs / 1e6)
}
