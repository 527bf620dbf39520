//! Benchmark of compaction: throughput and peak memory of compacting one
//! partition of JSON records keyed by `/id` (json-key policy) on the local
//! file store.
//!
//! Run with `cargo bench -p sluice-host --bench compaction`. Set
//! `SLUICE_BENCH_QUICK=1` for a fast smoke run with much less data.
//!
//! Every case runs in its own child process (this binary re-executed with
//! `SLUICE_BENCH_COMPACTION_CASE`), so heap and RSS are not left over from
//! another case. A case:
//! 1. creates a 1-partition stream with compaction (`min_cleanable_dirty_ppm`
//!    1 000 000: only forced runs, see below), appends a marker record
//!    without an `/id` (kept by json-key) at offset 0, lets it be tiered and
//!    compacted: that tiny clean segment keeps the dirty ratio below 100%,
//!    so no run starts on its own before the timed one;
//! 2. a Host with uploads off appends the records in batches of 1000: 100 B
//!    JSON values `{"id":"k0000123","v":N,"pad":"xx.."}`, keys assigned
//!    round-robin (record `i` has key `i % keys`), so the latest record of
//!    every key is among the last `keys` records;
//! 3. a Host with eager uploads drains them into segments of `CHUNK` bytes;
//! 4. timed: from `compact_stream` until the checkpoint `cleaned_end` reaches
//!    the partition's end, polling `compaction_status` every 10 ms (and
//!    waking the uploader); after each run that stops short (its key map was
//!    full), `compact_stream` is called again;
//! 5. every record is read back and checked to be the latest of its key.
//!
//! Memory: a counting global allocator (current and peak heap bytes, peak
//! reset right before step 4) and the process' peak RSS (`VmHWM` in
//! `/proc/self/status`, reset by writing `5` to `/proc/self/clear_refs`
//! after `malloc_trim`). Wasmtime's linear memories are mmapped: they count
//! in RSS, not in the heap. MB/s are decimal (10^6 B/s).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use sluice_host::CompactionStatus;
use sluice_host::bench::KeyMap;
use sluice_host::{Compaction, Host, ReadLimits, Record, Settings, StreamConfig};

const STREAM: &str = "bench";
const VALUE_BYTES: usize = 100;
const BATCH: u64 = 1000;
const POLL: Duration = Duration::from_millis(10);
const DEADLINE: Duration = Duration::from_secs(1800);
const CASE_ENV: &str = "SLUICE_BENCH_COMPACTION_CASE";
const RESULT_TAG: &str = "RESULT ";
const MIB: u64 = 1 << 20;

/// Counts live and peak heap bytes of the whole process.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are
// updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on to `System`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            match new_size.checked_sub(layout.size()) {
                Some(more) => grew(more),
                None => {
                    CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
                }
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Sets the heap peak to the current heap size and returns it.
fn reset_heap_peak() -> u64 {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now as u64
}

/// Hands freed heap back to the kernel, so RSS growth is not absorbed by
/// memory freed earlier.
fn malloc_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim takes any pad and only releases free memory.
        unsafe { malloc_trim(0) };
    }
}

/// A `kB` line of `/proc/self/status`, in bytes.
fn proc_status(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// Resets `VmHWM` to the current RSS; returns that RSS (`None` if not Linux).
fn reset_rss_peak() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    proc_status("VmRSS:")
}

#[derive(Clone, Copy, Debug)]
struct Case {
    records: u64,
    keys: u64,
    memory: u64,
}

/// What one case measured (sent from the child process as JSON).
#[derive(Serialize, Deserialize)]
struct Outcome {
    segments: usize,
    produce_s: f64,
    drain_s: f64,
    runs: usize,
    wall_s: f64,
    busy_s: f64,
    records_in: u64,
    bytes_in: u64,
    records_out: u64,
    bytes_out: u64,
    max_keys: u64,
    heap_base: u64,
    heap_peak: u64,
    heap_after: i64,
    rss_base: Option<u64>,
    rss_peak: Option<u64>,
    /// Per run: cleaned_end, records_in, records_out, keys, seconds.
    per_run: Vec<(u64, u64, u64, u64, f64)>,
}

fn cases(quick: bool) -> Vec<Case> {
    let (records, keys, memory) = match quick {
        true => (50_000, [500, 50_000], [64 * MIB, 16 * MIB]),
        false => (1_000_000, [10_000, 1_000_000], [64 * MIB, 24 * MIB]),
    };
    let mut out = Vec::new();
    for keys in keys {
        for memory in memory {
            out.push(Case { records, keys, memory });
        }
    }
    out
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let chunk = if quick { MIB } else { 16 * MIB };
    let base = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
    let all = cases(quick);
    if let Ok(i) = std::env::var(CASE_ENV) {
        let case = *all.get(i.parse::<usize>()?).context("no such case")?;
        let out = run_case(case, chunk, &base)?;
        println!("{RESULT_TAG}{}", serde_json::to_string(&out)?);
        return Ok(());
    }

    println!("# Compaction benchmark{}", if quick { " (QUICK mode)" } else { "" });
    println!();
    println!("directory: {}", base.display());
    println!(
        "{VALUE_BYTES} B JSON values, keys round-robin, appends of {BATCH}, segments of {} MiB, 1 partition, file store",
        chunk / MIB
    );
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for (i, case) in all.iter().enumerate() {
        eprintln!("case {i}: {case:?}");
        let out = std::process::Command::new(&exe)
            .env(CASE_ENV, i.to_string())
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("run the case in a child process")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success(), "case {case:?} failed ({}): {stdout}", out.status);
        let json = stdout
            .lines()
            .find_map(|l| l.strip_prefix(RESULT_TAG))
            .context("the case printed no result")?;
        rows.push((*case, serde_json::from_str::<Outcome>(json)?));
    }
    print_tables(&rows);
    Ok(())
}

fn settings(data: &Path, chunk: u64, eager: bool) -> Settings {
    let (min, interval) = match eager {
        true => (ByteSize::b(1), Duration::ZERO),
        false => (ByteSize::tib(1), Duration::from_secs(3600)),
    };
    Settings {
        data_dir: data.to_path_buf(),
        upload_chunk_bytes: ByteSize::b(chunk),
        upload_min_bytes: min,
        upload_interval: interval,
        ..Settings::default()
    }
}

fn run_case(case: Case, chunk: u64, base: &Path) -> anyhow::Result<Outcome> {
    let tmp = tempfile::Builder::new()
        .prefix("sluice-bench-compaction-")
        .tempdir_in(base)?;
    let data = tmp.path().join("data");
    let bucket = tmp.path().join("bucket");
    let (store, prefix) = sluice_host::objstore::open(Some(&format!("file://{}", bucket.display())), &bucket)?;
    let open = |eager: bool| {
        let (store, prefix) = (store.clone(), prefix.clone());
        let s = settings(&data, chunk, eager);
        async move { anyhow::Ok(Host::open_with_store(s, store, prefix).await?) }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build tokio runtime")?;
    rt.block_on(async {
        // 1. The stream and its clean marker segment.
        let host = open(true).await?;
        host.put_plugin("keys", sluice_test_artifacts::read(sluice_test_artifacts::JSON_KEY))
            .await?;
        let cfg = StreamConfig {
            compaction: Some(Compaction {
                plugin: "keys".into(),
                plugin_version: None,
                config: vec![("pointer".into(), "/id".into())],
                delete: false,
                delete_retention_ms: Compaction::DEFAULT_DELETE_RETENTION_MS,
                min_compaction_lag_ms: 0,
                min_cleanable_dirty_ppm: 1_000_000,
                memory_bytes: case.memory,
            }),
            ..StreamConfig::default()
        };
        host.create_stream_with(STREAM, 1, cfg).await?;
        let marker = Record {
            value: Some(Bytes::from_static(br#"{"note":"bench marker, no id"}"#)),
            ..Record::default()
        };
        host.append(STREAM, 0, &[marker]).await?;
        wait(&host, "the marker to be tiered", |p| p.tier.tiered_end == 1).await?;
        host.compact_stream(STREAM)?;
        let st = wait_compaction(&host, |c| c.runs >= 1 || c.last_error.is_some()).await?;
        ensure!(cleaned_end(&st) == 1, "marker compaction: {st:?}");
        host.shutdown().await;

        // 2. The records, with uploads off.
        let host = open(false).await?;
        let t = Instant::now();
        produce(&host, case).await?;
        let produce_s = t.elapsed().as_secs_f64();
        host.shutdown().await;
        eprintln!("  produced {} records in {produce_s:.2} s", case.records);

        // 3. Drain them into segments.
        let end = case.records + 1;
        let t = Instant::now();
        let host = open(true).await?;
        wait(&host, "the records to be tiered", |p| {
            p.tier.tiered_end == end && p.wal_start_offset == end
        })
        .await?;
        let drain_s = t.elapsed().as_secs_f64();
        // Two compaction rounds' time (the tier checks once a second): no
        // run may start before we ask for one.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let st = compaction_status(&host)?;
        ensure!(st.runs == 0 && !st.running, "a run started on its own: {st:?}");
        let segments = host.stream_status(STREAM)?[0].tier.segments;
        eprintln!("  tiered in {drain_s:.2} s ({segments} segments); compacting");

        // A restarted node compiles a plugin on first use (once per process,
        // several MiB of compiler heap): compile it now, so the peak below
        // is the run's own. Same bytes, so the same policy.
        host.put_plugin("keys", sluice_test_artifacts::read(sluice_test_artifacts::JSON_KEY))
            .await?;

        // 4. Timed compaction.
        malloc_trim();
        let rss_base = reset_rss_peak();
        let heap_base = reset_heap_peak();
        let t0 = Instant::now();
        host.compact_stream(STREAM)?;
        let (mut per_run, mut started, mut last_end) = (Vec::new(), None, t0);
        let mut results = Vec::new();
        loop {
            let now = Instant::now();
            ensure!(
                now - t0 < DEADLINE,
                "compaction did not finish: {:?}",
                compaction_status(&host)?
            );
            let st = compaction_status(&host)?;
            if let Some(e) = &st.last_error {
                bail!("compaction failed: {e}");
            }
            if st.runs as usize > results.len() {
                let r = st.last_result.clone().context("a run without a result")?;
                ensure!(st.runs as usize == results.len() + 1, "missed a run: {st:?}");
                // A run shorter than one poll is timed from the previous one.
                let secs = (now - started.unwrap_or(last_end)).as_secs_f64();
                per_run.push((r.cleaned_end, r.records_in, r.records_out, r.keys, secs));
                eprintln!("  run {}: cleaned_end {} of {end}, {secs:.2} s", st.runs, r.cleaned_end);
                (started, last_end) = (None, now);
                let done = r.cleaned_end == end;
                results.push(r);
                if done {
                    break;
                }
                host.compact_stream(STREAM)?;
            } else if st.running {
                started.get_or_insert(now);
            } else {
                // `running` is also set by a round that finds nothing due.
                started = None;
            }
            host.wake_uploader();
            tokio::time::sleep(POLL).await;
        }
        let wall_s = t0.elapsed().as_secs_f64();
        let heap_peak = PEAK.load(Ordering::Relaxed) as u64 - heap_base;
        let heap_after = CURRENT.load(Ordering::Relaxed) as i64 - heap_base as i64;
        let rss_peak = rss_base.and(proc_status("VmHWM:"));
        let sum = |f: fn(&sluice_host::bench::RunResult) -> u64| results.iter().map(f).sum::<u64>();
        let out = Outcome {
            segments,
            produce_s,
            drain_s,
            runs: results.len(),
            wall_s,
            busy_s: per_run.iter().map(|r| r.4).sum(),
            records_in: sum(|r| r.records_in),
            bytes_in: sum(|r| r.bytes_in),
            records_out: results.last().map_or(0, |r| r.records_out),
            bytes_out: results.last().map_or(0, |r| r.bytes_out),
            max_keys: results.iter().map(|r| r.keys).max().unwrap_or(0),
            heap_base,
            heap_peak,
            heap_after,
            rss_base,
            rss_peak,
            per_run,
        };

        // 5. Only the latest record of every key (and the marker) is left.
        verify(&host, case).await?;
        host.shutdown().await;
        Ok(out)
    })
}

/// The `i`th record's value: exactly `VALUE_BYTES` of JSON.
fn value(i: u64, keys: u64) -> Bytes {
    let head = format!("{{\"id\":\"k{:07}\",\"v\":{i},\"pad\":\"", i % keys);
    let pad = VALUE_BYTES.saturating_sub(head.len() + 2);
    Bytes::from(format!("{head}{}\"}}", "x".repeat(pad)))
}

async fn produce(host: &Host, case: Case) -> anyhow::Result<()> {
    let mut i = 0;
    while i < case.records {
        let n = BATCH.min(case.records - i);
        let batch: Vec<Record> = (i..i + n)
            .map(|i| Record {
                value: Some(value(i, case.keys)),
                ..Record::default()
            })
            .collect();
        host.append(STREAM, 0, &batch).await?;
        i += n;
    }
    Ok(())
}

/// Reads the whole partition: the marker at 0, then exactly the last record
/// of every key (round-robin keys: the last `keys` records), intact.
async fn verify(host: &Host, case: Case) -> anyhow::Result<()> {
    let end = case.records + 1;
    let first = end - case.keys.min(case.records);
    let mut expect = std::iter::once(0).chain(first..end);
    let limits = ReadLimits {
        max_records: 10_000,
        max_bytes: 1 << 20,
    };
    let mut next = 0;
    while next < end {
        let b = host.read(STREAM, 0, next, limits).await?;
        ensure!(b.next_offset > next, "read at {next} made no progress");
        for r in &b.records {
            let want = expect.next();
            ensure!(Some(r.offset) == want, "offset {} where {want:?} was due", r.offset);
            if r.offset > 0 {
                ensure!(
                    r.record.value_bytes() == value(r.offset - 1, case.keys),
                    "offset {} changed",
                    r.offset
                );
            }
        }
        next = b.next_offset;
    }
    ensure!(expect.next().is_none(), "records missing after compaction");
    Ok(())
}

fn compaction_status(host: &Host) -> anyhow::Result<CompactionStatus> {
    host.compaction_status(STREAM)?
        .into_iter()
        .next()
        .context("no partition")
}

fn cleaned_end(st: &CompactionStatus) -> u64 {
    st.last_result.as_ref().map_or(0, |r| r.cleaned_end)
}

/// Polls the partition's status until `done` holds (bounded by `DEADLINE`).
async fn wait(host: &Host, what: &str, done: impl Fn(&sluice_host::PartitionStatus) -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let st = host.stream_status(STREAM)?;
        let p = st.first().context("no partition")?;
        if let Some(e) = &p.tier.last_error {
            bail!("tiering failed while waiting for {what}: {e}");
        }
        if done(p) {
            return Ok(());
        }
        ensure!(start.elapsed() < DEADLINE, "timed out waiting for {what}: {p:?}");
        host.wake_uploader();
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_compaction(host: &Host, done: impl Fn(&CompactionStatus) -> bool) -> anyhow::Result<CompactionStatus> {
    let start = Instant::now();
    loop {
        let st = compaction_status(host)?;
        if done(&st) {
            return Ok(st);
        }
        ensure!(start.elapsed() < DEADLINE, "timed out waiting for compaction: {st:?}");
        host.wake_uploader();
        tokio::time::sleep(POLL).await;
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

fn print_tables(rows: &[(Case, Outcome)]) {
    println!();
    println!("Setup per case (not timed):");
    println!();
    println!("| records | keys | memory | map max keys | map table MiB | segments | produce s | drain s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (c, o) in rows {
        let map = KeyMap::try_with_memory(sluice_host::bench::map_bytes(c.memory)).expect("key map");
        println!(
            "| {} | {} | {} MiB | {} | {:.1} | {} | {:.2} | {:.2} |",
            c.records,
            c.keys,
            c.memory / MIB,
            map.max_keys(),
            mib(map.allocated_bytes()),
            o.segments,
            o.produce_s,
            o.drain_s
        );
    }
    println!();
    println!("Runs (cleaned_end, records in, records out, keys, s):");
    println!();
    for (c, o) in rows {
        let runs: Vec<String> = o
            .per_run
            .iter()
            .map(|r| format!("({}, {}, {}, {}, {:.2})", r.0, r.1, r.2, r.3, r.4))
            .collect();
        println!("- {} keys, {} MiB: {}", c.keys, c.memory / MIB, runs.join(" "));
    }
    println!();
    println!(
        "| records | keys | memory | runs | wall s | busy s | records/s | Σ records in | in rec/s | in MB/s | records out | MB out | max keys/run | heap peak MiB | peak / memory | peak − map MiB | RSS growth MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (c, o) in rows {
        let map = KeyMap::try_with_memory(sluice_host::bench::map_bytes(c.memory))
            .expect("key map")
            .allocated_bytes();
        let rss = match (o.rss_base, o.rss_peak) {
            (Some(b), Some(p)) => format!("{:.1}", mib(p.saturating_sub(b))),
            _ => "n/a".into(),
        };
        let ratio = o.heap_peak as f64 / c.memory as f64;
        let verdict = if o.heap_peak <= c.memory { "under" } else { "OVER" };
        println!(
            "| {} | {} | {} MiB | {} | {:.2} | {:.2} | {:.0} | {} | {:.0} | {:.1} | {} | {:.1} | {} | {:.1} | {:.0}% ({verdict}) | {:.1} | {rss} |",
            c.records,
            c.keys,
            c.memory / MIB,
            o.runs,
            o.wall_s,
            o.busy_s,
            c.records as f64 / o.wall_s,
            o.records_in,
            o.records_in as f64 / o.wall_s,
            o.bytes_in as f64 / o.wall_s / 1e6,
            o.records_out,
            o.bytes_out as f64 / 1e6,
            o.max_keys,
            mib(o.heap_peak),
            ratio * 100.0,
            (o.heap_peak as f64 - map as f64) / MIB as f64,
        );
    }
    println!();
    for (c, o) in rows {
        println!(
            "heap {} keys / {} MiB: base {:.1} MiB, retained after {:.1} MiB; RSS base {}",
            c.keys,
            c.memory / MIB,
            mib(o.heap_base),
            o.heap_after as f64 / MIB as f64,
            o.rss_base.map_or("n/a".into(), |b| format!("{:.1} MiB", mib(b)))
        );
    }
}
