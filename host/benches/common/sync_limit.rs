//! One producer's physical limit for the WAL bench: the survey of bare
//! `pwrite` + `fdatasync` loops over the ways a log can lay out its file
//! (measured once, printed), and the loop that runs in the rotation beside
//! the systems (entry-size writes into written blocks), whose rate is the
//! limit the table reports.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;

use super::disk::percentile;
use super::{Run, Window, ms, pseudo_random, threads};

/// The bare loop's file: written blocks that its writes cycle through.
const DISK_LOOP_REGION: usize = 64 << 20;

pub struct SyncLatency {
    p50: Duration,
    p99: Duration,
    /// Writes per second over the whole loop (1/mean latency).
    rate: f64,
}

/// One producer's limit: the fastest loop's rate, and 1/p50 of the
/// fastest p50, in appends/s.
#[derive(Clone, Copy)]
pub struct Limit {
    pub by_loop: f64,
    pub by_p50: f64,
}

/// How a file is prepared for the synced writes of [`sync_latency`].
#[derive(Clone, Copy)]
pub enum Prepared {
    /// Every block written (zeros) and synced beforehand.
    Written,
    /// Blocks reserved with `fallocate`, never written.
    Allocated,
    /// Nothing: each write extends the file.
    Growing,
}

/// `n` writes of `len` bytes at successive offsets, each followed by
/// `fdatasync`, into a file prepared as `how`.
pub fn sync_latency(dir: &Path, how: Prepared, len: usize, n: usize) -> anyhow::Result<SyncLatency> {
    let path = dir.join("fsync.bin");
    let block = pseudo_random(len);
    let file = std::fs::File::create(&path).context("create fsync.bin")?;
    let total = (len * n) as u64;
    match how {
        Prepared::Written => file.write_all_at(&vec![0u8; len * n], 0).context("write zeros")?,
        Prepared::Allocated => {
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, total).context("fallocate")?
        }
        Prepared::Growing => {}
    }
    file.sync_all().context("sync prepared file")?;
    let mut lat = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        file.write_all_at(&block, (i * len) as u64).context("pwrite")?;
        file.sync_data().context("fdatasync")?;
        lat.push(t.elapsed());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path).context("remove fsync.bin")?;
    lat.sort_unstable();
    Ok(SyncLatency {
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        rate,
    })
}

/// The fastest durable write of `entry` bytes this disk offers one
/// producer, over the ways a log can lay out its file (and, for entries of
/// at most 4 KiB, a 4 KiB write into written blocks); prints each.
pub fn sync_limit(dir: &Path, entry: usize, n: usize) -> anyhow::Result<Limit> {
    let patterns = [
        ("4 KiB into written blocks", Prepared::Written, 4096),
        ("entry-size appends, fallocated file", Prepared::Allocated, entry),
        ("entry-size appends, written file", Prepared::Written, entry),
        ("entry-size appends, growing file", Prepared::Growing, entry),
    ];
    let mut best = Duration::MAX;
    let mut best_rate = 0f64;
    for (name, how, len) in patterns.into_iter().filter(|p| p.2 == entry || entry <= 4096) {
        let l = sync_latency(dir, how, len, n)?;
        println!(
            "  {name} ({} B) + fdatasync: p50 {:.3} ms, p99 {:.3} ms, {:.0} writes/s",
            len,
            ms(l.p50),
            ms(l.p99),
            l.rate
        );
        best = best.min(l.p50);
        best_rate = best_rate.max(l.rate);
    }
    Ok(Limit {
        by_loop: best_rate,
        by_p50: 1.0 / best.as_secs_f64(),
    })
}

/// One producer's limit in the rotation: entry-size `pwrite` + `fdatasync`
/// at successive offsets of a file whose blocks are written, with bytes
/// that are not zeros as a recycled file's are (cycling through
/// `DISK_LOOP_REGION`), on an OS thread: a log with nothing but its writes.
pub fn disk_loop(dir: &Path, payload: &Bytes, per_run: Window) -> anyhow::Result<Run> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join("loop.bin");
    let file = std::fs::File::create(&path).context("create loop.bin")?;
    let len = payload.len();
    let region = DISK_LOOP_REGION.max(len) / len * len;
    let filler = pseudo_random(1 << 20);
    let mut at = 0;
    while at < region {
        let n = filler.len().min(region - at);
        file.write_all_at(&filler[..n], at as u64).context("write loop.bin")?;
        at += n;
    }
    file.sync_all().context("sync loop.bin")?;
    let next = AtomicU64::new(0);
    let payload = payload.clone();
    threads(1, per_run, move |_| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let offset = (i as usize * len) % region;
        file.write_all_at(&payload, offset as u64).context("pwrite")?;
        file.sync_data().context("fdatasync")?;
        Ok(())
    })
}
