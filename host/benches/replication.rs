//! Benchmark of replicated produce: three nodes in one process, each with its
//! own fsync'd data dir and HTTP port on 127.0.0.1 (followers fetch over
//! real HTTP), against one node without replication.
//!
//! Producers call `Host::append_acks` on the leader (the embedding API, so
//! the numbers measure the write path and replication, not an HTTP client).
//! Reported per configuration: records/s and MB/s with concurrent producers,
//! and the p50/p99 latency of one-record appends from a single producer.
//!
//! Run with `cargo bench -p sluice-host --bench replication`
//! (`SLUICE_BENCH_QUICK=1` for a short smoke run).

use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_host::config::ClusterSettings;
use sluice_host::{Acks, Replication, StreamConfig};
use sluice_host::{Host, Record, Settings};
use tokio::net::TcpListener;

const RECORD_BYTES: usize = 1024;
const BATCH_RECORDS: usize = 16;
const PRODUCERS: usize = 16;

struct Plan {
    throughput_time: Duration,
    latency_appends: usize,
}

async fn node(dir: &std::path::Path, id: u32, listener: TcpListener, nodes: &[(u32, String)]) -> Host {
    let cluster = (!nodes.is_empty()).then(|| ClusterSettings {
        node_id: id,
        secret: Some("bench-cluster-secret".into()),
        nodes: nodes.iter().map(|(n, a)| (n.to_string(), a.clone())).collect(),
        replication_max_bytes: bytesize::ByteSize::mib(1),
        fetch_wait: Duration::from_millis(500),
        ..ClusterSettings::default()
    });
    let settings = Settings {
        data_dir: dir.join(format!("node{id}")),
        listen: listener.local_addr().expect("addr"),
        cluster,
        ..Settings::default()
    };
    let host = Host::open(settings).await.expect("open node");
    let h = host.clone();
    tokio::spawn(async move {
        let _ = sluice_host::http::serve(&h, listener, std::future::pending()).await;
    });
    host
}

/// Starts `n` nodes (no cluster when `n == 1`) and creates stream `s`.
async fn start(dir: &std::path::Path, n: u32) -> Vec<Host> {
    let mut listeners = Vec::new();
    let mut nodes = Vec::new();
    for id in 1..=n {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        nodes.push((id, l.local_addr().expect("addr").to_string()));
        listeners.push(l);
    }
    if n == 1 {
        nodes.clear();
    }
    let mut hosts = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        hosts.push(node(dir, i as u32 + 1, l, &nodes).await);
    }
    let config = if n == 1 {
        StreamConfig::default()
    } else {
        StreamConfig {
            replication: Some(Replication {
                factor: n,
                assignment: vec![(1..=n).collect()],
                min_insync_replicas: None,
            }),
            ..StreamConfig::default()
        }
    };
    hosts[0]
        .create_stream_with("s", 1, config)
        .await
        .expect("create stream");
    hosts
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; RECORD_BYTES])),
            ..Record::default()
        })
        .collect()
}

async fn throughput(leader: &Host, acks: Acks, time: Duration) -> (f64, f64) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let h = leader.clone();
        tasks.push(tokio::spawn(async move {
            let batch = records(BATCH_RECORDS);
            let mut n = 0u64;
            while started.elapsed() < time {
                h.append_acks("s", 0, &batch, acks).await.expect("append");
                n += BATCH_RECORDS as u64;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("producer");
    }
    let secs = started.elapsed().as_secs_f64();
    let rps = total as f64 / secs;
    (rps, rps * RECORD_BYTES as f64 / 1e6)
}

async fn latency(leader: &Host, acks: Acks, n: usize) -> (Duration, Duration) {
    let one = records(1);
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        leader.append_acks("s", 0, &one, acks).await.expect("append");
        v.push(t.elapsed());
    }
    v.sort();
    (v[n / 2], v[(n * 99 / 100).min(n - 1)])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let plan = if quick {
        Plan {
            throughput_time: Duration::from_secs(2),
            latency_appends: 200,
        }
    } else {
        Plan {
            throughput_time: Duration::from_secs(10),
            latency_appends: 2000,
        }
    };
    let base = std::env::var_os("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    println!(
        "{RECORD_BYTES} B records; throughput: {PRODUCERS} producers x {BATCH_RECORDS}-record batches for {:?}; \
         latency: {} one-record appends from one producer",
        plan.throughput_time, plan.latency_appends
    );
    println!("| nodes | acks | records/s | MB/s | p50 | p99 |");
    println!("|---:|---|---:|---:|---:|---:|");
    for (n, acks) in [(1, Acks::Leader), (3, Acks::Leader), (3, Acks::All)] {
        let dir = tempfile::Builder::new()
            .prefix("sluice-bench-repl-")
            .tempdir_in(&base)
            .expect("temp dir");
        let hosts = start(dir.path(), n).await;
        let (rps, mbps) = throughput(&hosts[0], acks, plan.throughput_time).await;
        let (p50, p99) = latency(&hosts[0], acks, plan.latency_appends).await;
        println!(
            "| {n} | {} | {rps:.0} | {mbps:.1} | {} | {} |",
            if acks == Acks::All { "all" } else { "leader" },
            ms(p50),
            ms(p99)
        );
        for h in hosts {
            h.shutdown().await;
        }
    }
}
