//! The WAL commit path next to its peers: Sluice's WAL, okaywal and
//! raft-engine driven by the same closed-loop workload in one run, plus the
//! disk's own limits measured in the same directory.
//!
//! Run with `cargo bench -p sluice-host --bench wal_peers`
//! (`SLUICE_BENCH_QUICK=1` for a smoke run; `SLUICE_BENCH_ONLY=1x1,64x16,http`
//! runs only those `KiB x producers` configurations and the HTTP section;
//! `SLUICE_BENCH_SPARES=0` runs Sluice's WAL without recycled segments).
//! Each producer appends one entry
//! and waits until it is durable (fdatasync on every commit, in every
//! system), then appends the next. Per entry size (1 KiB, 64 KiB) and
//! producer count (1, 4, 16, 64) the three systems (and, at one producer,
//! the bare loop below) run back to back, in a
//! rotating order, `ROUNDS` times; the best round of each is reported (the
//! same treatment for all). Each run measures 3 s after 1 s of warm-up
//! (files created, Sluice's first segments rolled and trimmed), the same
//! for all, after the last run's files are removed, the filesystem synced
//! and the disk left idle for `SETTLE_FOR`. Sluice's WAL is trimmed whenever it has rolled
//! (okaywal checkpoints its files as they fill), so both reuse trimmed
//! files as they would in a node that keeps up. Payloads are pseudo-random, so raft-engine's
//! batch compression (left at its default) gains nothing a real payload
//! would not.
//!
//! Physical limits in the same run. First a survey, measured once: the
//! latency of one `pwrite` + `fdatasync` of 4 KiB into written blocks and
//! of an entry's size into a fallocated, a written and a growing file (the
//! written file is the fastest layout on the disks measured so far). Then,
//! at one producer, that loop (entry-size writes into written blocks, on an
//! OS thread) runs in the rotation as a fourth system, with the same warm-up,
//! window and best-of-rounds: one producer's limit is its rate (appends/s,
//! 1/mean latency: what a producer doing nothing but write and fdatasync
//! reaches), with 1/p50 beside it. A limit measured once, apart from the
//! systems, swung with the virtual disk's moods by more than the gaps it was
//! meant to show (6.3k/s in the survey, 10.4k/s for Sluice a minute later).
//! And `dd ... conv=fdatasync` for streaming writes.
//!
//! Last, the produce path on top: `wrk` posting one 1 KiB record per
//! request over 16 connections to a node served in this process, next to
//! Sluice's WAL at 16 producers in the same run (skipped without `wrk`), and
//! the same wrk on `GET /health`: the HTTP stack's own ceiling there.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use sluice_host::bench::{EntryKind, EntryMeta, Wal, WalOptions};

#[path = "common/dd.rs"]
mod dd;
#[path = "common/disk.rs"]
mod disk;
#[path = "common/http_wrk.rs"]
mod http_wrk;
#[path = "common/sync_limit.rs"]
mod sync_limit;
use dd::dd_reference;
use disk::{bench_base_dir, filesystem_of, percentile};
use sync_limit::{Limit, disk_loop, sync_limit};

const PRODUCERS: [usize; 4] = [1, 4, 16, 64];
const ENTRY_BYTES: [usize; 2] = [1024, 64 * 1024];
const ROUNDS: usize = 2;
/// The HTTP section: one record of this size per request, this many
/// connections.
const HTTP_RECORD: usize = 1024;
const HTTP_CONNECTIONS: usize = 16;
const SYSTEMS: [System; 4] = [System::Sluice, System::Okaywal, System::RaftEngine, System::Disk];
/// The disk left idle between two runs (after a sync of the filesystem).
const SETTLE_FOR: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Sluice,
    Okaywal,
    RaftEngine,
    /// One producer's physical limit, run in the rotation like a system:
    /// entry-size `pwrite` + `fdatasync` into written blocks, nothing else.
    Disk,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Sluice => "sluice",
            System::Okaywal => "okaywal 0.3",
            System::RaftEngine => "raft-engine 0.4",
            System::Disk => "write + fdatasync",
        }
    }

    /// Whether it runs at this concurrency (the bare loop is one
    /// producer's limit only).
    fn runs_at(self, producers: usize) -> bool {
        self != System::Disk || producers == 1
    }
}

/// One system's run of one configuration.
struct Run {
    appends: u64,
    wall: Duration,
    /// Per-append latencies, ascending.
    latencies: Vec<Duration>,
    /// fdatasync calls, where the system counts them (Sluice): appends per
    /// sync shows how many producers each group commit took.
    syncs: Option<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.appends as f64 / self.wall.as_secs_f64()
    }
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let per_run = if quick {
        Window {
            warmup: Duration::from_millis(200),
            measure: Duration::from_millis(500),
        }
    } else {
        Window {
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(3),
        }
    };
    let base = bench_base_dir()?;
    let tmp = tempfile::Builder::new()
        .prefix("sluice-bench-wal-peers-")
        .tempdir_in(&base)
        .with_context(|| format!("create temp dir in {}", base.display()))?;
    let dir = tmp.path();
    let fs = filesystem_of(dir)?;
    if fs.fstype == "tmpfs" || fs.fstype == "ramfs" {
        bail!("{} is on {} (not a real disk)", dir.display(), fs.fstype);
    }
    println!(
        "# WAL commit path: Sluice, okaywal, raft-engine{}",
        if quick { " (QUICK)" } else { "" }
    );
    println!();
    println!("filesystem: {} ({}) mounted on {}", fs.source, fs.fstype, fs.target);
    println!(
        "per run: {:?} measured after {:?} of warm-up, best of {ROUNDS} rounds per system, rotating order",
        per_run.measure, per_run.warmup
    );
    let samples = if quick { 200 } else { 2000 };
    for &entry in &ENTRY_BYTES {
        println!("durable writes of {} KiB entries, one at a time:", entry / 1024);
        let limit = sync_limit(dir, entry, samples)?;
        println!(
            "  -> fastest loop of this survey: {:.0} appends/s (1/p50 of the fastest p50: {:.0}/s); the limit in the table is the loop run beside the systems",
            limit.by_loop, limit.by_p50
        );
    }
    let dd_mbps = dd_reference(dir, if quick { 64 } else { 1024 })?;
    println!("dd conv=fdatasync: {dd_mbps:.1} MB/s");
    println!();
    println!(
        "| entry | producers | system | appends/s | MB/s | p50 ms | p99 ms | appends/sync | sluice / best peer | sluice / limit |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    std::io::stdout().flush()?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build tokio runtime")?;
    let mut order = 0usize;
    // Sluice's WAL at the HTTP section's concurrency, for its ratio.
    let mut wal_at_http_load: Option<f64> = None;
    for &entry in &ENTRY_BYTES {
        let payload = Bytes::from(pseudo_random(entry));
        for &producers in &PRODUCERS {
            if !selected(&format!("{}x{producers}", entry / 1024)) {
                continue;
            }
            let mut best: Vec<Option<Run>> = SYSTEMS.iter().map(|_| None).collect();
            for _ in 0..ROUNDS {
                for k in 0..SYSTEMS.len() {
                    let i = (order + k) % SYSTEMS.len();
                    if !SYSTEMS[i].runs_at(producers) {
                        continue;
                    }
                    let sub = dir.join(format!("{}-{entry}-{producers}", SYSTEMS[i].name().replace(' ', "_")));
                    let run = match SYSTEMS[i] {
                        System::Sluice => rt.block_on(sluice(&sub, producers, &payload, per_run))?,
                        System::Okaywal => okaywal(&sub, producers, &payload, per_run)?,
                        System::RaftEngine => raft_engine(&sub, producers, &payload, per_run)?,
                        System::Disk => disk_loop(&sub, &payload, per_run)?,
                    };
                    std::fs::remove_dir_all(&sub).with_context(|| format!("remove {}", sub.display()))?;
                    settle(dir)?;
                    if best[i].as_ref().is_none_or(|b| run.rate() > b.rate()) {
                        best[i] = Some(run);
                    }
                }
                order += 1;
            }
            let rates: Vec<f64> = best.iter().map(|r| r.as_ref().map_or(0.0, Run::rate)).collect();
            if entry == HTTP_RECORD && producers == HTTP_CONNECTIONS {
                wal_at_http_load = Some(rates[0]);
            }
            let peer = rates[1].max(rates[2]);
            // One producer's limit: the bare loop's best round, and 1/p50
            // of it (the survey above, measured once, is printed for
            // reference only). It runs at one producer only.
            let limit = best[3].as_ref().map(|r| Limit {
                by_loop: r.rate(),
                by_p50: 1.0 / percentile(&r.latencies, 0.50).as_secs_f64().max(1e-9),
            });
            for (i, run) in best.iter().enumerate() {
                let Some(run) = run else { continue };
                let is_sluice = SYSTEMS[i] == System::Sluice;
                let vs_peer = if is_sluice {
                    format!("{:.2}x", run.rate() / peer)
                } else {
                    String::new()
                };
                let vs_limit = if let (true, Some(limit)) = (is_sluice, limit) {
                    format!(
                        "{:.0}% ({:.0}% of 1/p50)",
                        run.rate() / limit.by_loop * 100.0,
                        run.rate() / limit.by_p50 * 100.0
                    )
                } else if is_sluice && entry >= 64 * 1024 {
                    format!("{:.0}% of dd", run.rate() * entry as f64 / 1e6 / dd_mbps * 100.0)
                } else {
                    String::new()
                };
                let per_sync = run.syncs.map_or(String::new(), |s| {
                    format!("{:.1}", run.appends as f64 / s.max(1) as f64)
                });
                println!(
                    "| {} KiB | {producers} | {} | {:.0} | {:.1} | {:.3} | {:.3} | {per_sync} | {vs_peer} | {vs_limit} |",
                    entry / 1024,
                    SYSTEMS[i].name(),
                    run.rate(),
                    run.rate() * entry as f64 / 1e6,
                    ms(percentile(&run.latencies, 0.50)),
                    ms(percentile(&run.latencies, 0.99)),
                );
            }
            std::io::stdout().flush()?;
        }
    }
    if selected("http") {
        http_section(&rt, dir, per_run, wal_at_http_load)?;
    }
    Ok(())
}

/// wrk against a node next to the WAL alone at the same concurrency (run
/// here if the table above did not).
fn http_section(rt: &tokio::runtime::Runtime, dir: &Path, per_run: Window, wal: Option<f64>) -> anyhow::Result<()> {
    let wal = match wal {
        Some(w) => w,
        None => {
            let sub = dir.join("sluice-http-reference");
            let payload = Bytes::from(pseudo_random(HTTP_RECORD));
            let run = rt.block_on(sluice(&sub, HTTP_CONNECTIONS, &payload, per_run))?;
            std::fs::remove_dir_all(&sub).with_context(|| format!("remove {}", sub.display()))?;
            run.rate()
        }
    };
    let sub = dir.join("http");
    std::fs::create_dir_all(&sub).with_context(|| format!("create {}", sub.display()))?;
    let run = rt.block_on(http_wrk::http_produce(&sub, HTTP_CONNECTIONS, per_run.measure * 2))?;
    std::fs::remove_dir_all(&sub).with_context(|| format!("remove {}", sub.display()))?;
    println!();
    match run {
        None => println!("HTTP produce: skipped (no `wrk` on PATH; Debian package `wrk`)"),
        Some(runs) => {
            let (r, h) = (&runs.produce, &runs.health);
            println!(
                "HTTP produce (wrk, {HTTP_CONNECTIONS} connections, one {} KiB record per request): {:.0} requests/s, p50 {:.3} ms, p99 {:.3} ms = {:.0}% of Sluice's WAL at {HTTP_CONNECTIONS} producers ({wal:.0} appends/s)",
                HTTP_RECORD / 1024,
                r.requests_per_s,
                r.p50_ms,
                r.p99_ms,
                r.requests_per_s / wal * 100.0
            );
            println!(
                "HTTP alone (the same wrk on GET /health of that node): {:.0} requests/s, p50 {:.3} ms = {:.0}% of the WAL at {HTTP_CONNECTIONS}; produce = {:.0}% of it",
                h.requests_per_s,
                h.p50_ms,
                h.requests_per_s / wal * 100.0,
                r.requests_per_s / h.requests_per_s * 100.0
            );
        }
    }
    Ok(())
}

/// Between two runs: the last run's files are removed; the filesystem's
/// work on that (journal commits, freed blocks) is flushed and the disk
/// left alone for a moment, so no system runs in the wake of another.
fn settle(dir: &Path) -> anyhow::Result<()> {
    let d = std::fs::File::open(dir).with_context(|| format!("open {}", dir.display()))?;
    rustix::fs::syncfs(&d).context("syncfs")?;
    std::thread::sleep(SETTLE_FOR);
    Ok(())
}

/// Whether `SLUICE_BENCH_ONLY` (a list of `KiBxproducers` and `http`,
/// e.g. `1x1,64x16`) selects this part; everything runs without it.
fn selected(part: &str) -> bool {
    match std::env::var("SLUICE_BENCH_ONLY") {
        Ok(only) if !only.trim().is_empty() => only.split(',').any(|c| c.trim() == part),
        _ => true,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Bytes that do not compress (xorshift).
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sluice's WAL: producers are tasks on a multi-thread runtime, as in the
/// node.
async fn sluice(dir: &Path, producers: usize, payload: &Bytes, per_run: Window) -> anyhow::Result<Run> {
    let mut opts = WalOptions::default();
    if let Ok(spares) = std::env::var("SLUICE_BENCH_SPARES") {
        opts.spare_segments = spares.parse().context("SLUICE_BENCH_SPARES")?;
    }
    let (wal, _) = Wal::open(dir, opts, &mut |_| {}).context("open Sluice WAL")?;
    let wal = Arc::new(wal);
    let (measured_from, deadline) = per_run.bounds();
    let mut tasks = Vec::with_capacity(producers);
    for p in 0..producers {
        let (wal, payload) = (wal.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            let mut offset = 0u64;
            while Instant::now() < deadline {
                let meta = EntryMeta {
                    kind: EntryKind::Records,
                    stream: 1,
                    partition: p as u32,
                    base_offset: offset,
                    count: 1,
                };
                let t = Instant::now();
                wal.append(meta, payload.clone()).await?;
                if t >= measured_from {
                    lat.push(t.elapsed());
                }
                offset += 1;
            }
            anyhow::Ok(lat)
        }));
    }
    // Trimmed as it fills, as okaywal checkpoints its files: what a node
    // whose tiering keeps up does, so both reach their steady state of
    // recycled files within a run.
    let trimming = {
        let wal = wal.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                if wal.segments().len() >= 2 {
                    wal.trim(wal.next_lsn()).await?;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(())
        })
    };
    tokio::time::sleep_until(measured_from.into()).await;
    let syncs_before = wal.syncs();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.context("producer task panicked")??);
    }
    let wall = measured_from.elapsed();
    trimming.await.context("trimming task panicked")??;
    let syncs = wal.syncs() - syncs_before;
    wal.shutdown().await;
    let mut run = finish(latencies, wall);
    run.syncs = Some(syncs);
    Ok(run)
}

/// Runs `producers` OS threads, each looping `append` until the deadline.
fn threads(
    producers: usize,
    per_run: Window,
    append: impl Fn(usize) -> anyhow::Result<()> + Send + Sync + 'static,
) -> anyhow::Result<Run> {
    let append = Arc::new(append);
    let failed = Arc::new(AtomicBool::new(false));
    let (measured_from, deadline) = per_run.bounds();
    let handles: Vec<_> = (0..producers)
        .map(|p| {
            let (append, failed) = (append.clone(), failed.clone());
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut lat = Vec::with_capacity(4096);
                while Instant::now() < deadline && !failed.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if let Err(e) = append(p) {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    if t >= measured_from {
                        lat.push(t.elapsed());
                    }
                }
                Ok(lat)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for h in handles {
        match h.join() {
            Ok(lat) => latencies.extend(lat?),
            Err(_) => bail!("producer thread panicked"),
        }
    }
    Ok(finish(latencies, measured_from.elapsed()))
}

/// One system's run: `warmup` unmeasured (files created, first segments
/// rolled and trimmed), then `measure` measured.
#[derive(Clone, Copy, Debug)]
struct Window {
    warmup: Duration,
    measure: Duration,
}

impl Window {
    /// When measuring starts and when the run ends, from now.
    fn bounds(self) -> (Instant, Instant) {
        let from = Instant::now() + self.warmup;
        (from, from + self.measure)
    }
}

fn finish(mut latencies: Vec<Duration>, wall: Duration) -> Run {
    latencies.sort_unstable();
    Run {
        appends: latencies.len() as u64,
        wall,
        latencies,
        syncs: None,
    }
}

/// okaywal: one entry with one chunk per append; `commit` returns once the
/// entry is synced (okaywal batches concurrent commits into one sync).
fn okaywal(dir: &Path, producers: usize, payload: &Bytes, per_run: Window) -> anyhow::Result<Run> {
    let wal = okaywal::WriteAheadLog::recover(dir, okaywal::LogVoid).context("open okaywal")?;
    let payload = payload.clone();
    let log = wal.clone();
    let run = threads(producers, per_run, move |_| {
        let mut entry = log.begin_entry()?;
        entry.write_chunk(&payload)?;
        entry.commit()?;
        Ok(())
    })?;
    wal.shutdown().context("shut okaywal down")?;
    Ok(run)
}

/// raft-engine: one batch holding one key-value put per append (each
/// producer its own region and key, overwritten so memory stays flat),
/// written with `sync = true` (raft-engine groups concurrent writers).
fn raft_engine(dir: &Path, producers: usize, payload: &Bytes, per_run: Window) -> anyhow::Result<Run> {
    let cfg = raft_engine::Config {
        dir: dir.to_string_lossy().into_owned(),
        ..Default::default()
    };
    let engine = Arc::new(raft_engine::Engine::open(cfg).context("open raft-engine")?);
    let payload = payload.to_vec();
    let log = engine.clone();
    let run = threads(producers, per_run, move |p| {
        let mut batch = raft_engine::LogBatch::default();
        batch.put(p as u64 + 1, b"k".to_vec(), payload.clone())?;
        log.write(&mut batch, true)?;
        Ok(())
    })?;
    drop(engine);
    Ok(run)
}
