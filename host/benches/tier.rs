//! Benchmark of tiering: draining a WAL backlog into the object store after a
//! restart, and reading tiered data back from segment objects (cold reads).
//!
//! Run with `cargo bench -p sluice-host --features test-util --bench tier`. Set
//! `SLUICE_BENCH_QUICK=1` for a fast smoke run with much less data.
//!
//! Stores: the local file store as a node opens it (`objstore::open` with a
//! `file://` URL in a temp dir on the same disk as the WAL: `LocalFileSystem`
//! with fsync of every object and its directory), and moto (S3 protocol over
//! HTTP on 127.0.0.1; installed on first use, skipped with a note if it cannot be). Both
//! are wrapped in the pass-through call counter `objstore::faults::FaultyStore`.
//!
//! Per store, partitions (1, 4) and upload chunk (64 MiB, 4 MiB):
//! 1. a Host with uploads off takes a backlog of 1 KiB records (batches of
//!    128, 8 concurrent producers) and shuts down; a Host with eager uploads
//!    is opened on the same data dir and timed until `upload_backlog_bytes()`
//!    is 0 (polled every 10 ms), then until the WAL is trimmed;
//! 2. Hosts opened afresh read every partition from offset 0 with
//!    `Host::read` (1 MiB per read, one reader task per partition): once with
//!    a 1 MiB cold cache, then twice with a cache bigger than the data;
//! 3. with one partition, the first Host of step 2 first looks up the
//!    offset of a time 60% into the data (`Host::offset_for_timestamp`), as
//!    a Kafka ListOffsets by time after a restart does; the read pass then
//!    checks the answer. Before segments recorded their timestamps, that
//!    first lookup read the whole partition: the read pass is its cost.
//!
//! MB/s are decimal (10^6 B/s) of record values (1024 B per record).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use bytesize::ByteSize;
use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sluice_host::objstore::faults::{FaultyStore, Op};
use sluice_host::{Host, ReadLimits, Record, Settings};
use sluice_test_artifacts::moto::S3Server;

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 128;
const PRODUCERS: usize = 8;
const PARTITIONS: [u32; 2] = [1, 4];
const CHUNKS_MIB: [u64; 2] = [64, 4];
const READ_BYTES: usize = 1 << 20;
const SMALL_CACHE: u64 = 1 << 20;
const STREAM: &str = "bench";
const POLL: Duration = Duration::from_millis(10);
const DEADLINE: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    File,
    Moto,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Moto => "moto",
        }
    }
}

struct Upload {
    wal_bytes: u64,
    records: u64,
    open: Duration,
    first_read: Duration,
    drain: Duration,
    trimmed: Duration,
    segments: usize,
    puts: u64,
    parts: u64,
    ends: Vec<u64>,
}

/// The first lookup by time after a restart.
struct Lookup {
    wall: Duration,
    gets: u64,
    offset: u64,
}

struct ReadPass {
    cache: u64,
    pass: u32,
    records: u64,
    bytes: u64,
    wall: Duration,
    calls: u64,
    gets: u64,
    lookup: Option<Lookup>,
}

/// Record `j` of the `i`-th batch appended (all partitions) is stamped
/// `BASE_TS + i * RECORDS_PER_BATCH + j`.
const BASE_TS: u64 = 1_700_000_000_000;

fn main() -> anyhow::Result<()> {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let backlog: u64 = if quick { 32 << 20 } else { 256 << 20 };
    let big_cache = 2 * backlog;
    let base = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;

    println!("# Tiering benchmark{}", if quick { " (QUICK mode)" } else { "" });
    println!();
    println!("directory: {}", base.display());
    println!(
        "backlog: {} MiB of 1 KiB records, {RECORDS_PER_BATCH} per batch; reads of {} KiB; caches {} KiB / {} MiB",
        backlog >> 20,
        READ_BYTES >> 10,
        SMALL_CACHE >> 10,
        big_cache >> 20
    );
    let moto = sluice_test_artifacts::moto::try_server();
    if moto.is_none() {
        println!("note: moto is not available; the S3-protocol rows are skipped");
    }
    let kinds: Vec<Kind> = [Kind::File, Kind::Moto]
        .into_iter()
        .filter(|k| *k != Kind::Moto || moto.is_some())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build tokio runtime")?;

    let mut reads = Vec::new();
    println!();
    println!(
        "| store | partitions | chunk | WAL MiB | open ms | first read ms | drain s | MB/s | trimmed s | segments | PUTs | parts |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &kind in &kinds {
        for &parts in &PARTITIONS {
            for &chunk in &CHUNKS_MIB {
                let tmp = tempfile::Builder::new()
                    .prefix("sluice-bench-tier-")
                    .tempdir_in(&base)?;
                let (store, prefix) = new_store(kind, moto, tmp.path())?;
                let run = Run {
                    data: tmp.path().join("data"),
                    store: FaultyStore::new(store.clone()),
                    prefix,
                    chunk: chunk << 20,
                };
                let up = rt.block_on(upload(&run, parts, backlog))?;
                print_upload(kind, parts, chunk, &up);
                let passes = [(SMALL_CACHE, 1), (big_cache, 2)];
                for (cache, passes) in passes {
                    let r = rt.block_on(read_back(&run, cache, passes, &up.ends))?;
                    reads.extend(r.into_iter().map(|r| (kind, parts, chunk, r)));
                }
                rt.block_on(clear(&store))?;
            }
        }
    }
    println!();
    println!(
        "| store | partitions | chunk | cache | pass | MiB | s | MB/s | records/s | reads | GETs | value KiB/GET |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, parts, chunk, r) in &reads {
        print_read(*kind, *parts, *chunk, r);
    }
    println!();
    println!("First lookup by time after a restart (1 partition), against reading the partition once:");
    println!();
    println!("| store | chunk | MiB | lookup ms | GETs | read s | GETs | lookup / read |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, _, chunk, r) in &reads {
        if let Some(l) = &r.lookup {
            println!(
                "| {} | {chunk} MiB | {:.0} | {:.1} | {} | {:.2} | {} | {:.4} |",
                kind.name(),
                r.bytes as f64 / (1u64 << 20) as f64,
                l.wall.as_secs_f64() * 1e3,
                l.gets,
                r.wall.as_secs_f64(),
                r.gets,
                l.wall.as_secs_f64() / r.wall.as_secs_f64(),
            );
        }
    }
    Ok(())
}

/// One configuration: a data dir, a (counted) store and the chunk size.
struct Run {
    data: PathBuf,
    store: Arc<FaultyStore>,
    prefix: ObjPath,
    chunk: u64,
}

impl Run {
    /// Opens a Host with uploads off (`eager` false) or at once.
    async fn open(&self, eager: bool, cold_cache: u64) -> anyhow::Result<Host> {
        let (min, interval) = match eager {
            true => (ByteSize::b(1), Duration::ZERO),
            false => (ByteSize::tib(1), Duration::from_secs(3600)),
        };
        let settings = Settings {
            data_dir: self.data.clone(),
            upload_chunk_bytes: ByteSize::b(self.chunk),
            upload_min_bytes: min,
            upload_interval: interval,
            cold_cache_bytes: ByteSize::b(cold_cache),
            ..Settings::default()
        };
        Ok(Host::open_with_store(settings, self.store.clone(), self.prefix.clone()).await?)
    }
}

/// A fresh store of the kind: a new bucket on moto, a new dir otherwise.
fn new_store(kind: Kind, moto: Option<&S3Server>, dir: &Path) -> anyhow::Result<(Arc<dyn ObjectStore>, ObjPath)> {
    if let (Kind::Moto, Some(server)) = (kind, moto) {
        let s3 = sluice_host::objstore::s3_at(&server.endpoint, &server.unique_bucket("bench"), "test", "test")?;
        return Ok((s3, ObjPath::from("node")));
    }
    let dir = dir.join("bucket");
    Ok(sluice_host::objstore::open(
        Some(&format!("file://{}", dir.display())),
        &dir,
    )?)
}

/// Appends `bytes` of record values to the stream from `PRODUCERS` tasks,
/// batch `i` to partition `i % parts`. Returns the records appended.
async fn produce(host: &Host, parts: u32, bytes: u64) -> anyhow::Result<u64> {
    let value = Bytes::from(vec![0x5a; RECORD_BYTES]);
    let batches = bytes / (RECORDS_PER_BATCH * RECORD_BYTES) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let (host, value, next) = (host.clone(), value.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= batches {
                    return anyhow::Ok(());
                }
                let batch: Vec<Record> = (0..RECORDS_PER_BATCH as u64)
                    .map(|j| Record {
                        key: None,
                        value: Some(value.clone()),
                        headers: Vec::new(),
                        timestamp_ms: BASE_TS + i * RECORDS_PER_BATCH as u64 + j,
                    })
                    .collect();
                host.append(STREAM, (i % u64::from(parts)) as u32, &batch).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(batches * RECORDS_PER_BATCH as u64)
}

/// Polls until `done` holds (bounded by `DEADLINE`).
async fn wait(what: &str, mut done: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let start = Instant::now();
    while !done()? {
        if start.elapsed() > DEADLINE {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Builds a backlog with uploads off, restarts with eager uploads and times
/// the first read, the drain and the WAL trim.
async fn upload(run: &Run, parts: u32, backlog: u64) -> anyhow::Result<Upload> {
    let lazy = run.open(false, SMALL_CACHE).await?;
    lazy.create_stream(STREAM, parts).await?;
    let records = produce(&lazy, parts, backlog).await?;
    let wal_bytes = lazy.upload_backlog_bytes();
    ensure!(
        lazy.stream_status(STREAM)?.iter().all(|p| p.tier.segments == 0),
        "uploads were not off"
    );
    lazy.shutdown().await;
    drop(lazy);

    let store = &run.store;
    let (puts0, parts0) = (store.calls(Op::Put), store.calls(Op::MultipartPart));
    let t0 = Instant::now();
    let host = run.open(true, SMALL_CACHE).await?;
    let open = t0.elapsed();
    let t1 = Instant::now();
    let limits = ReadLimits {
        max_records: 1,
        max_bytes: READ_BYTES,
    };
    let first = host.read(STREAM, 0, 0, limits).await?;
    ensure!(first.records.len() == 1, "first read returned nothing");
    let first_read = t1.elapsed();
    wait("the backlog to drain", || Ok(host.upload_backlog_bytes() == 0)).await?;
    let drain = t1.elapsed();
    wait("the WAL to be trimmed", || {
        Ok(host
            .stream_status(STREAM)?
            .iter()
            .all(|p| p.wal_start_offset == p.end_offset))
    })
    .await?;
    let trimmed = t1.elapsed();
    let status = host.stream_status(STREAM)?;
    let bad = status
        .iter()
        .find(|p| p.tier.last_error.is_some() || p.tier.tiered_end != p.end_offset);
    ensure!(bad.is_none(), "not fully tiered: {bad:?}");
    host.shutdown().await;
    Ok(Upload {
        wal_bytes,
        records,
        open,
        first_read,
        drain,
        trimmed,
        segments: status.iter().map(|p| p.tier.segments).sum(),
        puts: store.calls(Op::Put) - puts0,
        parts: store.calls(Op::MultipartPart) - parts0,
        ends: status.iter().map(|p| p.end_offset).collect(),
    })
}

/// Opens a fresh Host with `cache` bytes of cold cache and reads every
/// partition `passes` times.
async fn read_back(run: &Run, cache: u64, passes: u32, ends: &[u64]) -> anyhow::Result<Vec<ReadPass>> {
    let (host, store) = (run.open(true, cache).await?, &run.store);
    // Let the uploader learn the manifests (as it does after any restart), so
    // the passes time data, not the first manifest load.
    wait("manifests to load", || {
        Ok(host
            .stream_status(STREAM)?
            .iter()
            .all(|p| p.tier.tiered_end == p.end_offset))
    })
    .await?;
    // A time 60% into the data; one partition only, so the read pass below
    // is what the lookup used to cost.
    let total: u64 = ends.iter().sum();
    let target = (ends.len() == 1 && cache == SMALL_CACHE).then_some(BASE_TS + total * 6 / 10);
    let mut lookup = None;
    if let Some(t) = target {
        let gets0 = store.calls(Op::Get);
        let t0 = Instant::now();
        let found = host.offset_for_timestamp(STREAM, 0, t).await?;
        let wall = t0.elapsed();
        let found = found.context("no record at or after the time looked up")?;
        lookup = Some(Lookup {
            wall,
            gets: store.calls(Op::Get) - gets0,
            offset: found.offset,
        });
    }
    let mut out = Vec::new();
    for pass in 1..=passes {
        let gets0 = store.calls(Op::Get);
        let t = Instant::now();
        let tasks: Vec<_> = ends
            .iter()
            .enumerate()
            .map(|(p, &end)| tokio::spawn(read_partition(host.clone(), p as u32, end, target)))
            .collect();
        let (mut records, mut bytes, mut calls) = (0, 0, 0);
        for task in tasks {
            let (r, b, c, first) = task.await??;
            (records, bytes, calls) = (records + r, bytes + b, calls + c);
            if let Some(l) = &lookup {
                ensure!(
                    first == Some(l.offset),
                    "lookup by time answered {}, the read found {first:?}",
                    l.offset
                );
            }
        }
        out.push(ReadPass {
            cache,
            pass,
            records,
            bytes,
            wall: t.elapsed(),
            calls,
            gets: store.calls(Op::Get) - gets0,
            lookup: if pass == 1 { lookup.take() } else { None },
        });
    }
    host.shutdown().await;
    Ok(out)
}

/// Reads offsets `0..end` of one partition; returns records, value bytes,
/// `Host::read` calls and the first offset stamped at or after `target`.
async fn read_partition(
    host: Host,
    partition: u32,
    end: u64,
    target: Option<u64>,
) -> anyhow::Result<(u64, u64, u64, Option<u64>)> {
    let limits = ReadLimits {
        max_records: 10_000,
        max_bytes: READ_BYTES,
    };
    let (mut next, mut bytes, mut calls, mut first) = (0u64, 0u64, 0u64, None);
    while next < end {
        let b = host.read(STREAM, partition, next, limits).await?;
        calls += 1;
        ensure!(
            !b.records.is_empty(),
            "partition {partition}: no records at {next} (end {end})"
        );
        for r in &b.records {
            let ok = r.offset == next && r.record.value_bytes().len() == RECORD_BYTES;
            ensure!(
                ok,
                "partition {partition}: unexpected record {} where {next} was due",
                r.offset
            );
            bytes += r.record.value_bytes().len() as u64;
            if first.is_none() && target.is_some_and(|t| r.record.timestamp_ms >= t) {
                first = Some(r.offset);
            }
            next += 1;
        }
    }
    Ok((end, bytes, calls, first))
}

/// Deletes every object of the store (moto keeps them in its memory).
async fn clear(store: &Arc<dyn ObjectStore>) -> anyhow::Result<()> {
    let metas: Vec<_> = store.list(None).collect().await;
    for m in metas {
        store.delete(&m?.location).await?;
    }
    Ok(())
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn print_upload(kind: Kind, parts: u32, chunk: u64, u: &Upload) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {} | {parts} | {chunk} MiB | {:.0} | {:.0} | {:.1} | {:.2} | {:.1} | {:.2} | {} | {} | {} |",
        kind.name(),
        u.wal_bytes as f64 / (1u64 << 20) as f64,
        ms(u.open),
        ms(u.first_read),
        u.drain.as_secs_f64(),
        mb_per_s(u.records * RECORD_BYTES as u64, u.drain),
        u.trimmed.as_secs_f64(),
        u.segments,
        u.puts,
        u.parts,
    );
}

fn print_read(kind: Kind, parts: u32, chunk: u64, r: &ReadPass) {
    let per_get = match r.gets {
        0 => "–".to_string(),
        n => format!("{:.0}", r.bytes as f64 / n as f64 / 1024.0),
    };
    println!(
        "| {} | {parts} | {chunk} MiB | {} MiB | {} | {:.0} | {:.2} | {:.1} | {:.0} | {} | {} | {per_get} |",
        kind.name(),
        r.cache >> 20,
        r.pass,
        r.bytes as f64 / (1u64 << 20) as f64,
        r.wall.as_secs_f64(),
        mb_per_s(r.bytes, r.wall),
        r.records as f64 / r.wall.as_secs_f64(),
        r.calls,
        r.gets,
    );
}
