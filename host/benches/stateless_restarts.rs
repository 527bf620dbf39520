//! Start-up time of a stateless node (`wal = "object"`) over many restarts.
//!
//! Run with `cargo bench -p sluice-host --bench stateless_restarts`
//! (`SLUICE_BENCH_RESTARTS`, default 50).
//!
//! For each store (the file store, and moto over S3 when it can be
//! started), a node opens on a fresh, empty data dir every time, as after a
//! lost disk: `Host::open_with_store` on the same store and prefix. Start 0
//! creates a stream and appends 100 records of 1 KiB; every later start
//! only recovers and shuts down, so the data stays the same and what could
//! grow is the cost per earlier start (epoch claims and starts).
//!
//! Reported per store: the open time of start 1 and of the last start,
//! medians of the first and last five, their ratio, and how many files
//! `wal/epochs/` holds at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use bytesize::ByteSize;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjPath;
use sluice_host::config::WalKind;
use sluice_host::{Host, Record, Settings};

const STREAM: &str = "bench";

fn records(start: usize) -> Vec<Record> {
    (0..100)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{}", start * 100 + i))),
            value: Some(Bytes::from(vec![b'x'; 1024])),
            headers: Vec::new(),
            timestamp_ms: 1_700_000_000_000,
        })
        .collect()
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort_unstable();
    s[s.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Row {
    store: &'static str,
    opens: Vec<Duration>,
    epoch_files: usize,
}

async fn run(
    store_name: &'static str,
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    restarts: usize,
) -> anyhow::Result<Row> {
    let base = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&base)?;
    let mut opens = Vec::new();
    for start in 0..=restarts {
        let dir = tempfile::Builder::new()
            .prefix("sluice-bench-restarts-")
            .tempdir_in(&base)?;
        let settings = Settings {
            data_dir: dir.path().join("data"),
            wal: WalKind::Object,
            wal_object_interval: Duration::from_millis(10),
            upload_min_bytes: ByteSize::tib(1),
            upload_interval: Duration::from_secs(3600),
            ..Settings::default()
        };
        let t = Instant::now();
        let host = Host::open_with_store(settings, store.clone(), prefix.clone())
            .await
            .with_context(|| format!("start {start}"))?;
        let took = t.elapsed();
        if start == 0 {
            host.create_stream(STREAM, 1).await?;
            host.append(STREAM, 0, &records(start)).await?;
        } else {
            opens.push(took);
        }
        host.shutdown().await;
        drop(host);
        eprintln!("{store_name}: start {start}: open {:.1} ms", ms(took));
    }
    // The newest writer's clean-up runs in the background: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let epochs = prefix.clone().join("wal").join("epochs");
    let epoch_files = store.list(Some(&epochs)).collect::<Vec<_>>().await.len();
    Ok(Row {
        store: store_name,
        opens,
        epoch_files,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let restarts: usize = std::env::var("SLUICE_BENCH_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .max(10);
    let mut rows = Vec::new();
    let files = tempfile::tempdir()?;
    let (file_store, prefix) = sluice_host::objstore::open(None, files.path())?;
    rows.push(run("file", file_store, prefix, restarts).await?);
    match sluice_test_artifacts::moto::try_server() {
        Some(server) => {
            let bucket = server.unique_bucket("restarts");
            let s3 = sluice_host::objstore::s3_at(&server.endpoint, &bucket, "test", "test")?;
            rows.push(run("moto", s3, ObjPath::from("node"), restarts).await?);
        }
        None => println!("note: moto could not be started; the moto row is skipped"),
    }
    println!("# Stateless restarts (`wal = \"object\"`, empty data dir at every start)");
    println!();
    println!(
        "| store | start 1 ms | start {restarts} ms | median 1-5 ms | median last 5 ms | last / first (medians) | files in wal/epochs/ |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let first = median(&r.opens[..5]);
        let last = median(&r.opens[r.opens.len() - 5..]);
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} |",
            r.store,
            ms(r.opens[0]),
            ms(r.opens[r.opens.len() - 1]),
            ms(first),
            ms(last),
            last.as_secs_f64() / first.as_secs_f64(),
            r.epoch_files
        );
    }
    Ok(())
}
