//! Benchmark of the WAL produce path: durable appends (fdatasync) with group
//! commit, 1 KiB records, several concurrent producers.
//!
//! Run with `cargo bench -p sluice-host --bench produce`. Set
//! `SLUICE_BENCH_QUICK=1` for a fast smoke run with much less data.
//!
//! Prints the raw sequential-write speed of the disk (`dd ... conv=fdatasync`)
//! measured in the same directory, then one markdown table row per
//! configuration. MB/s are decimal (10^6 bytes/s), as `dd` prints them, and
//! count payload bytes only (not the WAL's entry headers).

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use sluice_host::bench::{EntryKind, EntryMeta, Wal, WalOptions as Options};

#[path = "common/dd.rs"]
mod dd;
#[path = "common/disk.rs"]
mod disk;
use dd::dd_reference;
use disk::{bench_base_dir, filesystem_of, percentile};

const RECORD_BYTES: usize = 1024;
const PRODUCERS: [usize; 4] = [1, 4, 16, 64];
const RECORDS_PER_ENTRY: [usize; 3] = [1, 16, 64];

struct Settings {
    /// Payload bytes appended per configuration (upper bound).
    bytes_per_config: u64,
    /// Time bound per configuration; whichever of the two is hit first.
    time_per_config: Duration,
    /// Size of the `dd` reference write, in MiB.
    dd_mib: u64,
}

impl Settings {
    fn from_env() -> (Settings, bool) {
        let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let settings = if quick {
            Settings {
                bytes_per_config: 32 << 20,
                time_per_config: Duration::from_secs(1),
                dd_mib: 64,
            }
        } else {
            Settings {
                bytes_per_config: 512 << 20,
                time_per_config: Duration::from_secs(5),
                dd_mib: 1024,
            }
        };
        (settings, quick)
    }
}

struct RunResult {
    wall: Duration,
    appends: u64,
    payload_bytes: u64,
    syncs: u64,
    /// Per-append latencies, sorted ascending.
    latencies: Vec<Duration>,
}

fn main() -> anyhow::Result<()> {
    let (settings, quick) = Settings::from_env();
    let base = bench_base_dir()?;
    let tmp = tempfile::Builder::new()
        .prefix("sluice-bench-produce-")
        .tempdir_in(&base)
        .with_context(|| format!("create temp dir in {}", base.display()))?;
    let dir = tmp.path();
    let fs = filesystem_of(dir)?;
    if fs.fstype == "tmpfs" || fs.fstype == "ramfs" {
        bail!(
            "{} is on {} (not a real disk); set CARGO_TARGET_TMPDIR",
            dir.display(),
            fs.fstype
        );
    }

    println!("# WAL produce benchmark{}", if quick { " (QUICK mode)" } else { "" });
    println!();
    println!("directory:  {}", dir.display());
    println!("filesystem: {} ({}) mounted on {}", fs.source, fs.fstype, fs.target);
    println!(
        "per config: up to {} MiB of payload or {:?}, whichever comes first",
        settings.bytes_per_config >> 20,
        settings.time_per_config
    );

    let dd_mbps = dd_reference(dir, settings.dd_mib)?;
    println!(
        "dd raw:     {dd_mbps:.1} MB/s ({} MiB, bs=1M, conv=fdatasync)",
        settings.dd_mib
    );
    println!();
    println!(
        "| producers | records/entry | entry | payload MiB | wall s | MB/s | % of dd | records/s | fsyncs \
         | appends/fsync | KiB/commit | p50 ms | p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    std::io::stdout().flush()?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build tokio runtime")?;
    for &producers in &PRODUCERS {
        for &records_per_entry in &RECORDS_PER_ENTRY {
            let sub = dir.join(format!("wal-p{producers}-r{records_per_entry}"));
            let r = rt.block_on(run_config(&sub, producers, records_per_entry, &settings))?;
            std::fs::remove_dir_all(&sub).with_context(|| format!("remove {}", sub.display()))?;
            print_row(producers, records_per_entry, &r, dd_mbps);
            std::io::stdout().flush()?;
        }
    }
    Ok(())
}

async fn run_config(
    dir: &Path,
    producers: usize,
    records_per_entry: usize,
    settings: &Settings,
) -> anyhow::Result<RunResult> {
    let (wal, _) = Wal::open(dir, Options::default(), &mut |_| {}).context("open WAL")?;
    let wal = Arc::new(wal);
    let entry_bytes = (records_per_entry * RECORD_BYTES) as u64;
    let payload = Bytes::from(vec![0xA5u8; records_per_entry * RECORD_BYTES]);
    let claimed = Arc::new(AtomicU64::new(0));
    let budget = settings.bytes_per_config;
    let syncs_before = wal.syncs();
    let start = Instant::now();
    let deadline = start + settings.time_per_config;

    let mut tasks = Vec::with_capacity(producers);
    for task_index in 0..producers {
        let wal = wal.clone();
        let payload = payload.clone();
        let claimed = claimed.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let mut i: u64 = 0;
            while Instant::now() < deadline && claimed.fetch_add(entry_bytes, Ordering::Relaxed) < budget {
                let meta = EntryMeta {
                    kind: EntryKind::Records,
                    stream: 1,
                    partition: task_index as u32,
                    base_offset: i,
                    count: records_per_entry as u32,
                };
                let t = Instant::now();
                wal.append(meta, payload.clone()).await?;
                latencies.push(t.elapsed());
                i += records_per_entry as u64;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.context("producer task panicked")??);
    }
    let wall = start.elapsed();
    let syncs = wal.syncs() - syncs_before;
    wal.shutdown().await;

    latencies.sort_unstable();
    let appends = latencies.len() as u64;
    Ok(RunResult {
        wall,
        appends,
        payload_bytes: appends * entry_bytes,
        syncs,
        latencies,
    })
}

fn print_row(producers: usize, records_per_entry: usize, r: &RunResult, dd_mbps: f64) {
    let secs = r.wall.as_secs_f64();
    let mbps = r.payload_bytes as f64 / secs / 1e6;
    let records = r.appends * records_per_entry as u64;
    let syncs = r.syncs.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {producers} | {records_per_entry} | {} KiB | {:.0} | {secs:.2} | {mbps:.1} | {:.0}% | {:.0} | {} | {:.1} | {:.0} \
         | {:.2} | {:.2} |",
        records_per_entry * RECORD_BYTES / 1024,
        r.payload_bytes as f64 / (1u64 << 20) as f64,
        mbps / dd_mbps * 100.0,
        records as f64 / secs,
        r.syncs,
        r.appends as f64 / syncs,
        r.payload_bytes as f64 / syncs / 1024.0,
        ms(percentile(&r.latencies, 0.50)),
        ms(percentile(&r.latencies, 0.99)),
    );
}
