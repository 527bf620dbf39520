//! Views: reading a partition through a view (input read + the
//! `json-filter` plugin at read time) against reading the stream itself and
//! against the plugin alone on the same records, in the same run. The
//! physical limit of a view read is the stream read plus the plugin call;
//! the ratio to that sum shows what the view adds (plugin instantiation per
//! read, scans of filtered-out stretches, output offsets).
//!
//! Run with `cargo bench -p sluice-host --bench views`
//! (`SLUICE_BENCH_QUICK=1` for a smoke run).
//!
//! A partition of JSON records (~90 bytes, one in ten `"level":"error"`) is
//! read from start to end with `Host::read` in reads of 10,000 records and
//! of 100 records (small reads show the per-read instantiation), as:
//! the stream; a view keeping 10% (`value=error`); a view keeping all
//! (`op=exists`). Throughput is input records per second, median of runs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_host::bench::{Limits, Runtime, TransformPlugin};
use sluice_host::{Host, OffsetRecord, ReadLimits, Record, Settings, ViewSpec};

fn value(i: u64) -> String {
    let level = if i.is_multiple_of(10) { "error" } else { "info" };
    format!(
        r#"{{"level":"{level}","n":{i},"msg":"request served","user":"u{}"}}"#,
        i % 977
    )
}

/// Reads `name` partition 0 from start to end; returns (input records
/// passed over, output records, seconds).
async fn scan(host: &Host, name: &str, max_records: usize) -> anyhow::Result<(u64, u64, f64)> {
    let limits = ReadLimits {
        max_records,
        max_bytes: 64 << 20,
    };
    let started = Instant::now();
    let (mut offset, mut out) = (0u64, 0u64);
    loop {
        let b = host.read(name, 0, offset, limits).await?;
        out += b.records.len() as u64;
        if b.next_offset >= b.end_offset {
            return Ok((b.end_offset, out, started.elapsed().as_secs_f64()));
        }
        offset = b.next_offset;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let (records, runs) = if quick { (20_000u64, 3) } else { (200_000u64, 7) };
    let dir = tempfile::tempdir()?;
    let host = Host::open(Settings {
        data_dir: dir.path().into(),
        kafka_listen: None,
        max_read_records: 10_000,
        ..Settings::default()
    })
    .await?;
    let wasm = sluice_test_artifacts::read(sluice_test_artifacts::JSON_FILTER);
    host.put_plugin("jf", wasm.clone()).await?;
    host.create_stream("logs", 1).await?;
    for chunk in (0..records).collect::<Vec<_>>().chunks(2_000) {
        let batch: Vec<Record> = chunk
            .iter()
            .map(|i| Record {
                value: Some(Bytes::from(value(*i))),
                ..Record::default()
            })
            .collect();
        host.append("logs", 0, &batch).await?;
    }
    let view = |name: &str, config: &[(&str, &str)]| ViewSpec {
        name: name.into(),
        input: "logs".into(),
        plugin: "jf".into(),
        plugin_version: None,
        config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    host.create_view(view("errors", &[("field", "/level"), ("value", "error")]))
        .await?;
    host.create_view(view("all", &[("field", "/level"), ("op", "exists")]))
        .await?;

    // The plugin alone on the same records, in 10,000-record calls.
    let input: Vec<OffsetRecord> = (0..records)
        .map(|i| OffsetRecord {
            offset: i,
            record: Record {
                value: Some(Bytes::from(value(i))),
                ..Record::default()
            },
        })
        .collect();
    let runtime = std::sync::Arc::new(Runtime::new(Limits {
        memory_bytes: 256 << 20,
        call_timeout: Duration::from_secs(30),
    })?);
    let plugin = TransformPlugin::load(&runtime, "jf", &wasm)?;
    let mut alone = Vec::new();
    for _ in 0..runs {
        let mut inst = plugin.instantiate(&[("field".into(), "/level".into()), ("value".into(), "error".into())])?;
        let started = Instant::now();
        for chunk in input.chunks(10_000) {
            std::hint::black_box(inst.transform_with_offsets(chunk)?);
        }
        alone.push(started.elapsed().as_secs_f64());
    }
    let alone = median(alone);

    println!("{records} records of ~{} bytes", value(records / 2).len());
    println!(
        "plugin alone (10,000 per call): {:.0} records/s",
        records as f64 / alone
    );
    println!(
        "| read size | stream rec/s | view 10% rec/s | view 100% rec/s | view 10% / (stream + plugin) | view 100% / (stream + plugin) |"
    );
    for size in [10_000usize, 100] {
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..runs {
            for (i, name) in ["logs", "errors", "all"].iter().enumerate() {
                let (passed, out, secs) = scan(&host, name, size).await?;
                anyhow::ensure!(passed == records, "{name} read {passed} of {records}");
                let want = match *name {
                    "errors" => records / 10,
                    _ => records,
                };
                anyhow::ensure!(out == want, "{name} returned {out}, want {want}");
                times[i].push(secs);
            }
        }
        let [s, e, a] = times.map(median);
        let limit = s + alone;
        println!(
            "| {size} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |",
            records as f64 / s,
            records as f64 / e,
            records as f64 / a,
            limit / e,
            limit / a
        );
    }
    host.shutdown().await;
    Ok(())
}
