//! Benchmark of the Kafka face against its physical limit and the HTTP face,
//! in one run on one disk: 1 KiB records produced with acks=all by kcat
//! (librdkafka, its default batching) and over HTTP (4 connections, 500
//! records per request), `dd ... conv=fdatasync` in the same directory, and
//! a kcat consumer reading everything back (hot: the WAL in the page cache,
//! and as much as `kafka_fetch_cache_bytes` holds in the fetch cache of the
//! listener kcat produced through; alternating with reads through a second
//! listener without a cache), with librdkafka's default fetch sizes and
//! with 16 MiB per partition, the
//! HTTP-produced records once (converted from the log: they enter the cache
//! only when read), and again after the node moved it all to the object
//! store and restarted with the cache off (tiered). The other fetch rows are
//! the median of three reads.
//! `SLUICE_BENCH_FETCH_CACHE_MIB` sets the cache's size. The same records
//! are also produced by a librdkafka C producer that costs less CPU than
//! kcat (`common/rdkafka_producer.c`, built with `cc` when librdkafka's
//! headers are installed); `SLUICE_BENCH_ONLY=produce` stops after the
//! produce rows, and `SLUICE_BENCH_NO_TIER=1` keeps the node from tiering
//! while records arrive (by default it uploads every 16 MiB, to the file
//! store on the same disk, which doubles what is written).
//!
//! Run with `cargo bench -p sluice-host --bench kafka` (needs `kcat` on
//! PATH); `SLUICE_BENCH_QUICK=1` for a smoke run with less data. MB/s are
//! decimal and count record values only.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use sluice_host::{Host, Settings};

#[path = "common/cpu.rs"]
mod cpu;
use cpu::process_cpu_seconds;
#[path = "common/dd.rs"]
mod dd;
#[path = "common/rdkafka.rs"]
mod rdkafka;

const VALUE_BYTES: usize = 1024;

fn main() -> anyhow::Result<()> {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let records: u64 = if quick { 20_000 } else { 300_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(records))
}

async fn run(records: u64) -> anyhow::Result<()> {
    let root = tempfile::Builder::new()
        .prefix("sluice-bench-kafka-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let dd_mbps = dd::dd_reference(root.path(), ((records * VALUE_BYTES as u64) >> 20).max(64))?;
    let mut settings = Settings {
        data_dir: root.path().join("data"),
        ..Settings::default()
    };
    if let Some(mib) = std::env::var("SLUICE_BENCH_FETCH_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.kafka_fetch_cache_bytes = bytesize::ByteSize::mib(mib);
    }
    // The produce path alone: no tiering while the bench runs (the tiered
    // row below restarts with eager tiering as before).
    if std::env::var("SLUICE_BENCH_NO_TIER").is_ok_and(|v| !v.is_empty() && v != "0") {
        settings.upload_min_bytes = bytesize::ByteSize::gib(1024);
        settings.upload_interval = Duration::from_secs(3600);
    }
    let cache_mib = settings.kafka_fetch_cache_bytes.as_u64() >> 20;
    let host = Host::open(settings).await?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let kafka = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (http_addr, kafka_addr) = (http.local_addr()?, kafka.local_addr()?);
    tokio::spawn(sluice_host::kafka::serve(host.clone(), kafka));
    // A second listener without a fetch cache: every fetch converts stored
    // records, for an A/B within the run.
    let uncached = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let u = uncached.local_addr()?.to_string();
    tokio::spawn(sluice_host::kafka::serve_with_cache(host.clone(), uncached, 0));
    let serving = host.clone();
    tokio::spawn(async move { sluice_host::http::serve(&serving, http, std::future::pending()).await });
    host.create_stream("kafka", 1).await?;
    host.create_stream("http", 1).await?;
    host.create_stream("one", 1).await?;
    host.create_stream("rdkafka", 1).await?;

    let lines = root.path().join("records.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&lines)?);
        for i in 0..records {
            let mut v = format!("{i:012}").into_bytes();
            v.resize(VALUE_BYTES, b'x');
            f.write_all(&v)?;
            f.write_all(b"\n")?;
        }
    }
    let bytes = records as f64 * VALUE_BYTES as f64;
    let b = kafka_addr.to_string();

    let node_cpu = process_cpu_seconds();
    let started = Instant::now();
    let client_cpu = kcat(&[
        "-b",
        &b,
        "-P",
        "-t",
        "kafka",
        "-p",
        "0",
        "-X",
        "acks=all",
        "-l",
        &lines.display().to_string(),
    ])?;
    let kafka_produce = started.elapsed();
    let node_cpu = process_cpu_seconds() - node_cpu;
    let stored = host.describe_stream("kafka")?.partitions[0].end;
    if stored != records {
        bail!("kcat produced {stored} of {records} records");
    }

    let cpu_line = |who: &str, took: Duration, client: f64, node: f64| {
        println!(
            "{who}: {:.2} s wall; CPU: client {client:.2} s, node {node:.2} s ({:.0}% of the 2 cores)",
            took.as_secs_f64(),
            100.0 * (client + node) / (2.0 * took.as_secs_f64())
        )
    };
    let mbps = |d: Duration| bytes / d.as_secs_f64() / 1e6;
    let rps = |d: Duration| records as f64 / d.as_secs_f64();
    let row = |name: &str, d: Duration| {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0}% |",
            rps(d),
            mbps(d),
            100.0 * mbps(d) / dd_mbps
        )
    };
    // CPU lines, the table's head and its Kafka produce rows.
    let produce_rows = |lean: Option<(Duration, f64, f64)>| {
        cpu_line("Kafka produce, kcat", kafka_produce, client_cpu, node_cpu);
        if let Some((took, client, node)) = lean {
            cpu_line("Kafka produce, librdkafka C producer", took, client, node);
        }
        println!("| path | records/s | MB/s | vs dd |");
        println!("|---|---:|---:|---:|");
        if let Some((took, _, _)) = lean {
            row("Kafka produce, librdkafka C producer, acks=all", took);
        }
        row("Kafka produce, kcat (librdkafka), acks=all", kafka_produce);
    };
    if std::env::var("SLUICE_BENCH_ONLY").is_ok_and(|v| v == "produce") {
        let lean = lean_produce(&host, root.path(), &b, records)?;
        println!("{records} records of {VALUE_BYTES} B; dd conv=fdatasync: {dd_mbps:.0} MB/s");
        produce_rows(lean);
        host.shutdown().await;
        return Ok(());
    }

    let started = Instant::now();
    http_produce(&format!("http://{http_addr}"), records).await?;
    let http_produce = started.elapsed();

    // kcat's own start and end-of-partition detection, measured on a
    // one-record partition (best of three) and taken off the fetch times.
    host.append(
        "one",
        0,
        &[sluice_host::Record {
            key: None,
            value: Some(bytes::Bytes::from_static(b"x")),
            headers: Vec::new(),
            timestamp_ms: 1,
        }],
    )
    .await?;
    let mut fixed = Duration::MAX;
    for _ in 0..3 {
        fixed = fixed.min(consume(&b, "one", 1, &[])?);
    }
    let big = [
        "-X",
        "fetch.max.bytes=67108864",
        "-X",
        "max.partition.fetch.bytes=16777216",
    ];
    // Cached and converted reads alternate, three of each per row.
    let mut default_runs = (Vec::new(), Vec::new());
    let mut big_runs = (Vec::new(), Vec::new());
    for _ in 0..3 {
        default_runs.0.push(consume(&b, "kafka", records, &[])?);
        default_runs.1.push(consume(&u, "kafka", records, &[])?);
        big_runs.0.push(consume(&b, "kafka", records, &big)?);
        big_runs.1.push(consume(&u, "kafka", records, &big)?);
    }
    let fetch_default = median(default_runs.0).saturating_sub(fixed);
    let fetch_default_converted = median(default_runs.1).saturating_sub(fixed);
    let fetch_big = median(big_runs.0).saturating_sub(fixed);
    let fetch_big_converted = median(big_runs.1).saturating_sub(fixed);
    let fetch_http = consume(&b, "http", records, &[])?.saturating_sub(fixed);
    // After the hot reads: its records would push kcat's out of the cache.
    let lean = lean_produce(&host, root.path(), &b, records)?;

    // Tiered: the node restarts with eager tiering until the WAL no longer
    // holds the topic, then kcat reads it back from the object store (the
    // embedded file store on the same disk).
    host.shutdown().await;
    drop(host);
    let settings = Settings {
        data_dir: root.path().join("data"),
        upload_min_bytes: bytesize::ByteSize::b(1),
        upload_interval: Duration::ZERO,
        // Reads come from the object store, not from the fetch cache.
        kafka_fetch_cache_bytes: bytesize::ByteSize::b(0),
        ..Settings::default()
    };
    let host = Host::open(settings).await?;
    let kafka = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let b = kafka.local_addr()?.to_string();
    tokio::spawn(sluice_host::kafka::serve(host.clone(), kafka));
    let deadline = Instant::now() + Duration::from_secs(600);
    while host.stream_status("kafka")?[0].wal_start_offset < records {
        if Instant::now() > deadline {
            bail!("tiering did not move the topic out of the WAL in 10 minutes");
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fetch_tiered = median(vec![
        consume(&b, "kafka", records, &big)?,
        consume(&b, "kafka", records, &big)?,
        consume(&b, "kafka", records, &big)?,
    ])
    .saturating_sub(fixed);

    println!(
        "{records} records of {VALUE_BYTES} B; dd conv=fdatasync: {dd_mbps:.0} MB/s; kcat's fixed consume time \
         {:.2} s (taken off the fetch rows); fetch cache {cache_mib} MiB",
        fixed.as_secs_f64()
    );
    produce_rows(lean);
    for (name, d) in [
        ("HTTP produce, 4 connections x 500 records", http_produce),
        (
            "Kafka fetch, kcat defaults (1 MiB per partition), hot, fetch cache",
            fetch_default,
        ),
        (
            "Kafka fetch, kcat defaults, hot, no cache (converted)",
            fetch_default_converted,
        ),
        (
            "Kafka fetch, kcat, max.partition.fetch.bytes=16MiB, hot, fetch cache",
            fetch_big,
        ),
        (
            "Kafka fetch, kcat, 16 MiB, hot, no cache (converted)",
            fetch_big_converted,
        ),
        (
            "Kafka fetch of the HTTP-produced records (converted), first read, kcat defaults, hot",
            fetch_http,
        ),
        (
            "Kafka fetch, kcat, max.partition.fetch.bytes=16MiB, tiered (file store)",
            fetch_tiered,
        ),
    ] {
        row(name, d);
    }
    host.shutdown().await;
    Ok(())
}

/// The same records to a topic of their own from a producer that costs less
/// than kcat (`common/rdkafka_producer.c`); (wall time, its CPU seconds,
/// the node's), or `None` when it cannot be built here.
fn lean_produce(
    host: &Host,
    dir: &std::path::Path,
    bootstrap: &str,
    records: u64,
) -> anyhow::Result<Option<(Duration, f64, f64)>> {
    let exe = match rdkafka::build(dir) {
        Ok(exe) => exe,
        Err(e) => {
            println!("librdkafka C producer skipped: {e:#}");
            return Ok(None);
        }
    };
    let node_cpu = process_cpu_seconds();
    let (took, client_cpu) = rdkafka::produce(&exe, bootstrap, "rdkafka", records, VALUE_BYTES)?;
    let node_cpu = process_cpu_seconds() - node_cpu;
    let stored = host.describe_stream("rdkafka")?.partitions[0].end;
    if stored != records {
        bail!("rdkafka_producer produced {stored} of {records} records");
    }
    Ok(Some((took, client_cpu, node_cpu)))
}

/// The middle run (run-to-run spread here is large).
fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs.get(runs.len() / 2).copied().unwrap_or_default()
}

/// Reads `topic` partition 0 from the start to its end with kcat; the wall
/// time, after checking that `records` records came back.
fn consume(bootstrap: &str, topic: &str, records: u64, extra: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new("kcat")
        .args([
            "-b",
            bootstrap,
            "-C",
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%o\n",
        ])
        // The end is detected by an empty fetch: do not long-poll for it.
        .args(["-X", "fetch.wait.max.ms=5"])
        .args(extra)
        .stdout(Stdio::piped())
        .output()
        .context("run kcat")?;
    let took = started.elapsed();
    let fetched = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
    if fetched != records {
        bail!("kcat fetched {fetched} of {records} records from {topic}");
    }
    Ok(took)
}

/// Runs kcat; returns the CPU seconds (user + system) it used, as bash's
/// `times` reports them for its children.
fn kcat(args: &[&str]) -> anyhow::Result<f64> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"kcat "$@" || exit $?; times"#)
        .arg("kcat")
        .args(args)
        .output()
        .context("run kcat through bash (is kcat on PATH?)")?;
    if !out.status.success() {
        bail!("kcat {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // `times`: the shell's user and system time, then its children's.
    let text = String::from_utf8_lossy(&out.stdout);
    let children = text.lines().last().context("no `times` output")?;
    let seconds = |t: &str| -> Option<f64> {
        let (m, s) = t.trim_end_matches('s').split_once('m')?;
        Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
    };
    let cpu: Option<f64> = children.split_whitespace().map(seconds).sum();
    cpu.with_context(|| format!("cannot parse `times` output {children:?}"))
}

/// The same records over HTTP: 4 connections, 500 records per request.
async fn http_produce(base: &str, records: u64) -> anyhow::Result<()> {
    const PER_REQUEST: u64 = 500;
    const CONNECTIONS: u64 = 4;
    let client = reqwest::Client::new();
    let url = format!("{base}/streams/http/partitions/0/records");
    let tasks = (0..CONNECTIONS).map(|c| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let mut start = c * PER_REQUEST;
            while start < records {
                let body: Vec<_> = (start..(start + PER_REQUEST).min(records))
                    .map(|i| {
                        let mut v = format!("{i:012}");
                        v.extend(std::iter::repeat_n('x', VALUE_BYTES - v.len()));
                        json!({ "value": v })
                    })
                    .collect();
                let resp = client.post(&url).json(&body).send().await?;
                if !resp.status().is_success() {
                    bail!("HTTP produce: {}", resp.status());
                }
                start += PER_REQUEST * CONNECTIONS;
            }
            Ok(())
        })
    });
    for t in futures::future::join_all(tasks).await {
        t??;
    }
    Ok(())
}
