//! Fetch sessions (KIP-227) with a client that uses them by default:
//! kafka-python opens a session and then sends incremental fetches, which
//! name only partitions whose offsets moved and are answered only for
//! partitions with news. Over six partitions read one record at a time, with
//! records produced while it reads, it gets every record once, in order,
//! logs incremental answers, and never reports an answer it had to reject.

use std::collections::BTreeMap;

use serde_json::json;

use crate::kafka_support::{hex, metric_sum, py};
use crate::support::{Server, client, expect_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_reads_everything_through_incremental_fetches() {
    let server = Server::start().await;
    let resp = client()
        .post(server.url("/streams"))
        .json(&json!({"name": "fs", "partitions": 6}))
        .send()
        .await
        .expect("create");
    expect_json(resp, reqwest::StatusCode::CREATED).await;
    // 10 records on each partition, each bigger than the fetch size the
    // consumer asks for per partition: one record per partition per fetch.
    let value = |p: u64, i: u64| format!("p{p}-r{i}-{}", "x".repeat(600));
    for p in 0..6 {
        let records: Vec<_> = (0..10).map(|i| json!({"value": value(p, i)})).collect();
        for r in records {
            let resp = client()
                .post(server.url(&format!("/streams/fs/partitions/{p}/records")))
                .json(&json!([r]))
                .send()
                .await
                .expect("produce");
            expect_json(resp, reqwest::StatusCode::OK).await;
        }
    }
    let got = py(
        "kafkapython",
        "session_consume",
        &json!({"bootstrap": server.kafka(), "topic": "fs", "partitions": 6, "first": 60, "more": 12}),
    );
    let sessions = &got["sessions"];
    assert_eq!(sessions["problems"], json!([]), "{sessions}");
    assert!(sessions["full_created"].as_u64() >= Some(1), "{sessions}");
    assert!(sessions["incremental"].as_u64() >= Some(9), "{sessions}");
    // Every record once, in offset order per partition, as produced.
    let mut by_partition: BTreeMap<u64, Vec<(u64, String)>> = BTreeMap::new();
    for r in got["records"].as_array().expect("records") {
        let p = r["partition"].as_u64().expect("partition");
        let o = r["offset"].as_u64().expect("offset");
        by_partition
            .entry(p)
            .or_default()
            .push((o, r["value"].as_str().unwrap_or_default().to_string()));
    }
    assert_eq!(by_partition.len(), 6, "{got}");
    for (p, records) in by_partition {
        let mut want: Vec<(u64, String)> = (0..10).map(|i| (i, hex(value(p, i).as_bytes()))).collect();
        want.extend(
            (0..12u64)
                .filter(|i| i % 6 == p)
                .enumerate()
                .map(|(k, i)| (10 + k as u64, hex(format!("more-{i}").as_bytes()))),
        );
        assert_eq!(records, want, "partition {p}");
    }
    assert!(metric_sum(&server, "sluice_kafka_fetch_sessions", "").await >= 1.0);
}
