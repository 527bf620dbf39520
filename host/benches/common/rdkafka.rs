//! A librdkafka producer with less client cost than kcat: the bench's own
//! `rdkafka_producer.c` (in the manner of librdkafka's rdkafka_performance),
//! built here with the system C compiler against the system librdkafka
//! (Debian: `librdkafka-dev`). Optional: without a compiler or the headers
//! the bench says so and skips its row.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/common/rdkafka_producer.c");

/// Builds the producer into `dir`; `Err` says why it cannot be built.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let exe = dir.join("rdkafka_producer");
    let out = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(SOURCE)
        .arg("-lrdkafka")
        .output()
        .context("run cc")?;
    if !out.status.success() {
        bail!(
            "cc {SOURCE} -lrdkafka failed (install librdkafka-dev): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(exe)
}

/// Produces `count` records of `size` bytes to partition 0 of `topic` with
/// acks=all; (wall time, the producer's CPU seconds).
pub fn produce(exe: &Path, bootstrap: &str, topic: &str, count: u64, size: usize) -> anyhow::Result<(Duration, f64)> {
    let started = Instant::now();
    let out = Command::new(exe)
        .args([bootstrap, topic, &count.to_string(), &size.to_string()])
        .output()
        .context("run rdkafka_producer")?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("rdkafka_producer: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let cpu = text
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| format!("no CPU time in rdkafka_producer's output {text:?}"))?;
    Ok((took, cpu))
}
