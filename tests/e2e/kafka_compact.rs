//! Kafka's `cleanup.policy=compact` with clients nobody here wrote:
//! kafka-python creates the topic, confluent-kafka produces keyed updates
//! and a tombstone (a null value), the node tiers and compacts with its
//! built-in record-key policy, and a consumer reads back exactly the latest
//! record per key at its original offset. A record without a key is
//! refused, over Kafka and over HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kafka_support::{hex, py};
use crate::support::{self, Server, ServerOptions, expect_json};

/// Tiering as soon as records arrive, in small segments, so compaction has
/// closed segments to work on within a test.
pub const CONFIG: &str = r#"
upload_min_bytes = "1B"
upload_interval = "0s"
upload_chunk_bytes = "8KiB"
segment_bytes = "64KiB"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_the_latest_record_per_key() {
    let server = Server::start_with(ServerOptions {
        config: Some(CONFIG.into()),
        ..ServerOptions::default()
    })
    .await;
    let b = server.kafka();
    let created = py(
        "kafkapython",
        "create_topic",
        &json!({"bootstrap": b, "topic": "users", "partitions": 1, "config": {"cleanup.policy": "compact"}}),
    );
    assert_eq!(created["ok"], true, "{created}");

    // 200 updates of 10 keys, then k3 deleted with a null value. Produced
    // apart: the updates' batch reads back as sent, so it is what a fetch
    // cache would hold if compacted topics were served from it.
    let updates: Vec<Value> = (0..200u64)
        .map(|n| json!({"key": hex(format!("k{}", n % 10).as_bytes()), "value": hex(format!("v{n}").as_bytes()), "partition": 0}))
        .collect();
    let tombstone = vec![json!({"key": hex(b"k3"), "value": null, "partition": 0})];
    let mut results = Vec::new();
    for part in [&updates, &tombstone] {
        let out = py(
            "confluent",
            "produce",
            &json!({"bootstrap": b, "topic": "users", "records": part}),
        );
        results.extend(out["results"].as_array().expect("results").iter().cloned());
    }
    let records: Vec<Value> = updates.into_iter().chain(tombstone).collect();
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for (r, res) in records.iter().zip(&results) {
        let offset = res["offset"].as_i64().expect("offset");
        let key = r["key"].as_str().expect("key").to_string();
        latest.insert(key, (offset, r["value"].as_str().map(str::to_string)));
    }

    let c = support::client();
    let mut cleaned = None;
    for _ in 0..1200 {
        let _ = c.post(server.url("/streams/users/compact")).send().await;
        let st = expect_json(
            c.get(server.url("/streams/users/compaction"))
                .send()
                .await
                .expect("GET"),
            StatusCode::OK,
        )
        .await;
        cleaned = st["partitions"][0]["cleaned_end"].as_u64();
        if cleaned == Some(201) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cleaned, Some(201), "never compacted through the end");

    let got = py(
        "confluent",
        "consume",
        &json!({"bootstrap": b, "topic": "users", "partition": 0, "offset": 0, "count": latest.len(), "timeout": 30}),
    );
    let got: Vec<(i64, String, Option<String>)> = got["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            let key = r["key"].as_str().expect("key").to_string();
            (
                r["offset"].as_i64().expect("offset"),
                key,
                r["value"].as_str().map(str::to_string),
            )
        })
        .collect();
    let mut want: Vec<(i64, String, Option<String>)> = latest.into_iter().map(|(k, (o, v))| (o, k, v)).collect();
    want.sort();
    assert_eq!(
        got, want,
        "the latest per key at its offset; k3's tombstone reads back null"
    );

    // A record without a key could never be compacted away: refused over
    // Kafka (INVALID_RECORD, as Kafka refuses it) and over HTTP, and
    // nothing of either batch is written.
    let keyless = py(
        "confluent",
        "produce",
        &json!({"bootstrap": b, "topic": "users", "records": [{"value": hex(b"no key"), "partition": 0}]}),
    );
    let error = keyless["results"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("INVALID_RECORD"), "{keyless}");
    let resp = c
        .post(support::records_url(&server, "users", 0))
        .json(&json!({"records": [{"key": "k1", "value": "v"}, {"value": "no key"}]}))
        .send()
        .await
        .expect("POST");
    let body = support::expect_error(resp, StatusCode::BAD_REQUEST, "key_required").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("record 1")),
        "{body}"
    );
    let info = expect_json(
        c.get(server.url("/streams/users")).send().await.expect("GET"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(info["partitions"][0]["end_offset"], 201, "{info}");
}
