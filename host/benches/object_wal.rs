//! Benchmark of the object-store WAL (`wal = "object"`) next to the local
//! file WAL: produce throughput with concurrent producers, and the
//! acknowledgement latency of one-record appends from one producer.
//!
//! Run with `cargo bench -p sluice-host --bench object_wal`. Set
//! `SLUICE_BENCH_QUICK=1` for a fast smoke run.
//!
//! Configurations, each on a fresh `Host` (`Host::open_with_store`, the
//! embedding API) in its own data dir under `CARGO_TARGET_TMPDIR`, with
//! tiering off so that the store sees the WAL's calls only:
//! * `local`: segment files with fdatasync and group commit (baseline);
//! * `object` on the local file store as an embedded node opens it
//!   (`objstore::open(None, data_dir)`: `LocalFileSystem` under
//!   `<data-dir>/objects`, fsync of every object and its directory);
//! * `object` on moto (S3 protocol over HTTP on 127.0.0.1; skipped with a
//!   note when moto cannot be started);
//!
//! each object configuration at every `wal_object_interval` of the list
//! (250 ms, the default, and 10 ms); `wal_object_max_bytes` (8 MiB) and
//! `wal_objects_in_flight` (4) stay at their defaults. The store is wrapped
//! in [`Timed`], which times every PUT and LIST the node makes.
//!
//! Per configuration: 1 s of unreported warm-up (16 producers x 16
//! records), one throughput run per load (closed-loop producers: each waits
//! for its append's acknowledgement before sending the next), then the
//! latency run. Between configurations the data dir is deleted, followed by
//! `sync` and a 5 s pause. A full run takes about 2.5 minutes.
//!
//! Environment (all optional):
//! * `SLUICE_BENCH_LOADS`: comma-separated throughput loads,
//!   `<producers>x<records per batch>` (`16x16,256x16,64x1024`);
//! * `SLUICE_BENCH_INTERVALS_MS`: comma-separated intervals (`250,10`);
//! * `SLUICE_BENCH_SECS`: seconds per throughput run (5);
//! * `SLUICE_BENCH_LATENCY_SECS`: time bound of the latency run (10; it
//!   also stops after 1000 appends).
//!
//! MB/s are decimal (10^6 B/s) of record values (1024 B per record).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use bytesize::ByteSize;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as ObjPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions,
};
use sluice_host::config::WalKind;
use sluice_host::{Host, Record, Settings};
use sluice_test_artifacts::moto::S3Server;

const RECORD_BYTES: usize = 1024;
const STREAM: &str = "bench";
const PARTITIONS: u32 = 4;
/// Pause between configurations (see the loop in `main`).
const SETTLE: Duration = Duration::from_secs(5);

struct Plan {
    /// Throughput runs: (producers, records per batch).
    loads: Vec<(usize, usize)>,
    intervals: Vec<Duration>,
    throughput_time: Duration,
    warmup: Duration,
    latency_time: Duration,
    latency_max: usize,
}

impl Plan {
    fn from_env() -> anyhow::Result<(Plan, bool)> {
        let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        let num = |name: &str, s: &str| {
            s.trim()
                .parse::<u64>()
                .with_context(|| format!("{name}: bad number {s:?}"))
        };
        let (secs, latency_secs, latency_max) = if quick { ("2", "3", 200) } else { ("5", "10", 1000) };
        let loads = var("SLUICE_BENCH_LOADS", "16x16,256x16,64x1024")
            .split(',')
            .map(|l| {
                let (p, b) = l
                    .split_once('x')
                    .with_context(|| format!("SLUICE_BENCH_LOADS: bad load {l:?}"))?;
                Ok((
                    num("SLUICE_BENCH_LOADS", p)? as usize,
                    num("SLUICE_BENCH_LOADS", b)? as usize,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        let intervals = var("SLUICE_BENCH_INTERVALS_MS", "250,10")
            .split(',')
            .map(|s| Ok(Duration::from_millis(num("SLUICE_BENCH_INTERVALS_MS", s)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok((
            Plan {
                loads,
                intervals,
                throughput_time: Duration::from_secs(num("SLUICE_BENCH_SECS", &var("SLUICE_BENCH_SECS", secs))?),
                warmup: Duration::from_secs(1),
                latency_time: Duration::from_secs(num(
                    "SLUICE_BENCH_LATENCY_SECS",
                    &var("SLUICE_BENCH_LATENCY_SECS", latency_secs),
                )?),
                latency_max,
            },
            quick,
        ))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    File,
    Moto,
}

/// One configuration: the WAL kind, the store and the object interval.
#[derive(Clone, Copy)]
struct Config {
    wal: WalKind,
    store: Kind,
    interval: Duration,
}

impl Config {
    fn wal_name(&self) -> &'static str {
        match self.wal {
            WalKind::Local => "local",
            WalKind::Object => "object",
        }
    }

    fn store_name(&self) -> &'static str {
        match (self.wal, self.store) {
            (WalKind::Local, _) => "-",
            (_, Kind::File) => "file",
            (_, Kind::Moto) => "moto",
        }
    }

    fn interval_name(&self) -> String {
        match self.wal {
            WalKind::Local => "-".into(),
            WalKind::Object => format!("{} ms", self.interval.as_millis()),
        }
    }
}

/// A running configuration: the Host and its timed store.
struct Node {
    host: Host,
    store: Arc<Timed>,
}

/// The store calls made during one phase.
#[derive(Debug, Default)]
struct Calls {
    /// Durations of PUTs, sorted.
    puts: Vec<Duration>,
    /// Durations of LISTs (call until the listing is consumed), sorted.
    lists: Vec<Duration>,
}

impl Calls {
    fn put_secs(&self) -> f64 {
        self.puts.iter().map(Duration::as_secs_f64).sum()
    }
}

struct Throughput {
    producers: usize,
    batch: usize,
    records: u64,
    wall: Duration,
    /// `Wal::syncs()` difference: fsyncs (local WAL).
    syncs: u64,
    calls: Calls,
    latencies: Vec<Duration>,
}

struct Latency {
    latencies: Vec<Duration>,
    calls: Calls,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let (plan, quick) = Plan::from_env()?;
    let base = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;

    println!(
        "# Object-store WAL benchmark{}",
        if quick { " (QUICK mode)" } else { "" }
    );
    println!();
    println!("directory: {}", base.display());
    println!(
        "{RECORD_BYTES} B records, stream of {PARTITIONS} partitions (producer i appends to partition i mod \
         {PARTITIONS}); throughput: producers x records/batch {:?}, {:?} each; latency: one-record \
         appends from one producer, up to {} or {:?}; tiering off",
        plan.loads, plan.throughput_time, plan.latency_max, plan.latency_time
    );
    let moto = sluice_test_artifacts::moto::try_server();
    if moto.is_none() {
        println!("note: moto could not be started; the moto rows are skipped");
    }

    let mut configs = vec![Config {
        wal: WalKind::Local,
        store: Kind::File,
        interval: Duration::ZERO,
    }];
    for store in [Kind::File, Kind::Moto] {
        if store == Kind::Moto && moto.is_none() {
            continue;
        }
        for &interval in &plan.intervals {
            configs.push(Config {
                wal: WalKind::Object,
                store,
                interval,
            });
        }
    }

    let started = Instant::now();
    let mut throughput_rows = Vec::new();
    let mut latency_rows = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let tmp = tempfile::Builder::new()
            .prefix("sluice-bench-object-wal-")
            .tempdir_in(&base)?;
        eprintln!(
            "[{:>5.1}s] {} / {} / {}",
            started.elapsed().as_secs_f64(),
            config.wal_name(),
            config.store_name(),
            config.interval_name()
        );
        let node = open(config, moto, tmp.path()).await?;
        // Warm-up, not reported: connections, directories, allocator.
        throughput(&node, 16, 16, plan.warmup).await?;
        for &(producers, batch) in &plan.loads {
            let t = throughput(&node, producers, batch, plan.throughput_time).await?;
            eprintln!(
                "  {producers}x{batch}: Wal::syncs() +{}, object PUTs +{} (slowest {:.1} ms), append max {:.1} ms",
                t.syncs,
                t.calls.puts.len(),
                ms(t.calls.puts.last().copied().unwrap_or_default()),
                ms(t.latencies.last().copied().unwrap_or_default()),
            );
            throughput_rows.push(throughput_row(config, &t));
        }
        let l = latency(&node, plan.latency_max, plan.latency_time).await?;
        latency_rows.push(latency_row(config, &l));
        node.host.shutdown().await;
        drop(node);
        // Deleting gigabytes of segments (or objects) leaves journal work
        // and, on a `discard` mount, TRIMs that stalled the next
        // configuration's first fsyncs by up to 300 ms: let them settle.
        tmp.close()?;
        if i + 1 < configs.len() {
            let _ = std::process::Command::new("sync").status();
            tokio::time::sleep(SETTLE).await;
        }
    }
    eprintln!("[{:>5.1}s] done", started.elapsed().as_secs_f64());

    println!();
    println!("## Throughput (closed-loop producers)");
    println!();
    println!(
        "| WAL | store | interval | producers | batch | records/s | MB/s | commits | KiB/commit | PUT p50 ms \
         | LISTs/s | uploads in flight | append p50 ms | append p99 ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &throughput_rows {
        println!("{r}");
    }
    println!();
    println!("## Acknowledgement latency (one-record appends, one producer)");
    println!();
    println!(
        "| WAL | store | interval | appends | p50 ms | p99 ms | max ms | PUTs | PUT p50 ms | LISTs | LIST p50 ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &latency_rows {
        println!("{r}");
    }
    Ok(())
}

async fn open(config: &Config, moto: Option<&S3Server>, dir: &Path) -> anyhow::Result<Node> {
    let data_dir = dir.join("data");
    let (store, prefix): (Arc<dyn ObjectStore>, ObjPath) = match (config.store, moto) {
        (Kind::Moto, Some(server)) => {
            let bucket = server.unique_bucket("walbench");
            let s3 = sluice_host::objstore::s3_at(&server.endpoint, &bucket, "test", "test")?;
            (s3, ObjPath::from("node"))
        }
        // The embedded default: `<data-dir>/objects`, fsync on.
        _ => sluice_host::objstore::open(None, &data_dir)?,
    };
    let store = Arc::new(Timed {
        inner: store,
        calls: Arc::default(),
    });
    let settings = Settings {
        data_dir,
        wal: config.wal,
        wal_object_interval: if config.wal == WalKind::Object {
            config.interval
        } else {
            Settings::default().wal_object_interval
        },
        // Tiering off: the store sees the WAL's calls only.
        upload_min_bytes: ByteSize::tib(1),
        upload_interval: Duration::from_secs(3600),
        ..Settings::default()
    };
    let host = Host::open_with_store(settings, store.clone(), prefix).await?;
    host.create_stream(STREAM, PARTITIONS).await?;
    Ok(Node { host, store })
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; RECORD_BYTES])),
            ..Record::default()
        })
        .collect()
}

async fn throughput(node: &Node, producers: usize, batch: usize, time: Duration) -> anyhow::Result<Throughput> {
    let syncs0 = node.host.log().wal().syncs();
    let mark = node.store.mark();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..producers {
        let h = node.host.clone();
        tasks.push(tokio::spawn(async move {
            let batch = records(batch);
            let partition = i as u32 % PARTITIONS;
            let mut latencies = Vec::with_capacity(1024);
            while started.elapsed() < time {
                let t = Instant::now();
                h.append(STREAM, partition, &batch).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.context("producer task panicked")??);
    }
    let wall = started.elapsed();
    let syncs = node.host.log().wal().syncs() - syncs0;
    latencies.sort_unstable();
    Ok(Throughput {
        producers,
        batch,
        records: latencies.len() as u64 * batch as u64,
        wall,
        syncs,
        calls: node.store.since(mark),
        latencies,
    })
}

async fn latency(node: &Node, max: usize, time: Duration) -> anyhow::Result<Latency> {
    let mark = node.store.mark();
    let one = records(1);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(max);
    while latencies.len() < max && started.elapsed() < time {
        let t = Instant::now();
        node.host.append(STREAM, 0, &one).await?;
        latencies.push(t.elapsed());
    }
    latencies.sort_unstable();
    Ok(Latency {
        latencies,
        calls: node.store.since(mark),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The p50 of `v` in ms, or `-` when there is none.
fn p50(v: &[Duration]) -> String {
    match v.is_empty() {
        true => "-".into(),
        false => format!("{:.2}", ms(percentile(v, 0.50))),
    }
}

fn throughput_row(c: &Config, t: &Throughput) -> String {
    let secs = t.wall.as_secs_f64();
    let rps = t.records as f64 / secs;
    // Group commits: fsyncs for the local WAL, objects (PUTs) otherwise.
    let commits = match c.wal {
        WalKind::Local => t.syncs,
        WalKind::Object => t.calls.puts.len() as u64,
    };
    let (lists, in_flight) = match c.wal {
        WalKind::Local => ("-".to_string(), "-".to_string()),
        WalKind::Object => (
            format!("{:.1}", t.calls.lists.len() as f64 / secs),
            // Little's law: total upload time over wall time.
            format!("{:.2}", t.calls.put_secs() / secs),
        ),
    };
    format!(
        "| {} | {} | {} | {} | {} | {rps:.0} | {:.1} | {commits} | {:.0} | {} | {lists} | {in_flight} \
         | {:.2} | {:.2} |",
        c.wal_name(),
        c.store_name(),
        c.interval_name(),
        t.producers,
        t.batch,
        rps * RECORD_BYTES as f64 / 1e6,
        (t.records as f64 * RECORD_BYTES as f64) / commits.max(1) as f64 / 1024.0,
        p50(&t.calls.puts),
        ms(percentile(&t.latencies, 0.50)),
        ms(percentile(&t.latencies, 0.99)),
    )
}

fn latency_row(c: &Config, l: &Latency) -> String {
    format!(
        "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
        c.wal_name(),
        c.store_name(),
        c.interval_name(),
        l.latencies.len(),
        ms(percentile(&l.latencies, 0.50)),
        ms(percentile(&l.latencies, 0.99)),
        ms(l.latencies.last().copied().unwrap_or_default()),
        l.calls.puts.len(),
        p50(&l.calls.puts),
        l.calls.lists.len(),
        p50(&l.calls.lists),
    )
}

/// A pass-through store that records how long every PUT and LIST takes.
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn ObjectStore>,
    calls: Arc<Mutex<Calls>>,
}

impl Timed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the next phase starts (counts of calls so far).
    fn mark(&self) -> (usize, usize) {
        let c = self.lock();
        (c.puts.len(), c.lists.len())
    }

    /// The calls finished since `mark`, sorted.
    fn since(&self, (puts, lists): (usize, usize)) -> Calls {
        let c = self.lock();
        let mut out = Calls {
            puts: c.puts[puts..].to_vec(),
            lists: c.lists[lists..].to_vec(),
        };
        out.puts.sort_unstable();
        out.lists.sort_unstable();
        out
    }

    /// `s`, recording the time from now until it ends.
    fn timed_list(
        &self,
        s: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let (calls, started) = (self.calls.clone(), Instant::now());
        let mut end = Some(calls);
        s.chain(futures::stream::poll_fn(move |_| {
            if let Some(calls) = end.take() {
                calls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .lists
                    .push(started.elapsed());
            }
            Poll::Ready(None)
        }))
        .boxed()
    }
}

impl fmt::Display for Timed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timed({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Timed {
    async fn put_opts(
        &self,
        location: &ObjPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let started = Instant::now();
        let r = self.inner.put_opts(location, payload, opts).await;
        self.lock().puts.push(started.elapsed());
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &ObjPath, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &ObjPath, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.timed_list(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjPath>,
        offset: &ObjPath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.timed_list(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&ObjPath>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &ObjPath, to: &ObjPath, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &ObjPath, to: &ObjPath, options: RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
