//! Deleting a partition's records below an offset with clients nobody here
//! wrote (confluent-kafka's and kafka-python's DeleteRecords), over HTTP
//! and with the CLI: the start (low watermark) moves, consumers reading
//! from the earliest offset begin there, nothing below is served, and the
//! start survives a kill -9.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli_support::sluice;
use crate::kafka_support::{hex, py};
use crate::support::{self, Server};

fn delete(lib: &str, b: &str, topic: &str, before: i64) -> Value {
    py(
        lib,
        "delete_records",
        &json!({"bootstrap": b, "topic": topic, "partition": 0, "before": before}),
    )
}

/// The offsets a confluent-kafka consumer reads from the earliest offset.
fn earliest(b: &str, count: usize) -> Vec<u64> {
    let got = py(
        "confluent",
        "consume",
        &json!({"bootstrap": b, "topic": "d", "partition": 0, "offset": -2, "count": count, "timeout": 10}),
    );
    got["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["offset"].as_u64().expect("offset"))
        .collect()
}

async fn start_offset(server: &Server) -> u64 {
    let resp = support::client()
        .get(server.url("/streams/d"))
        .send()
        .await
        .expect("GET");
    let body = support::expect_json(resp, StatusCode::OK).await;
    body["partitions"][0]["start_offset"].as_u64().expect("start_offset")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_deleted_below_an_offset_over_kafka_http_and_the_cli() {
    let mut server = Server::start().await;
    let b = server.kafka();
    let c = support::client();
    support::create_stream(&c, &server, "d", 1).await;
    let records: Vec<Value> = (0..20).map(|i| json!({"value": format!("r{i}")})).collect();
    support::produce(&c, &server, "d", 0, &json!(records)).await;

    let out = delete("confluent", &b, "d", 5);
    assert_eq!(
        (out["ok"].as_bool(), out["low_watermark"].as_i64()),
        (Some(true), Some(5)),
        "{out}"
    );
    let out = delete("kafkapython", &b, "d", 8);
    assert_eq!(out["ok"], true, "{out}");
    assert!(out.to_string().contains("'low_watermark': 8"), "{out}");
    // Past the end, and an unknown topic, are refused; nothing moves.
    let out = delete("confluent", &b, "d", 21);
    assert!(
        out["error"].as_str().is_some_and(|e| e.contains("OFFSET_OUT_OF_RANGE")),
        "{out}"
    );
    assert_eq!(start_offset(&server).await, 8);
    assert_eq!(earliest(&b, 3), vec![8, 9, 10]);
    let got = py(
        "kafkapython",
        "consume",
        &json!({"bootstrap": b, "topic": "d", "partition": 0, "offset": 8, "count": 1}),
    );
    assert_eq!(got["records"][0]["value"], hex(b"r8"), "{got}");

    // HTTP, then the CLI; reads below the start are refused.
    let resp = c
        .delete(server.url("/streams/d/partitions/0/records?before=12"))
        .send()
        .await
        .expect("DELETE");
    let body = support::expect_json(resp, StatusCode::OK).await;
    assert_eq!(body["start_offset"], 12, "{body}");
    let below = c
        .get(format!("{}?offset=11", support::records_url(&server, "d", 0)))
        .send()
        .await
        .expect("GET");
    support::expect_error(below, StatusCode::BAD_REQUEST, "offset_out_of_range").await;
    let past = c
        .delete(server.url("/streams/d/partitions/0/records?before=99"))
        .send()
        .await
        .expect("DELETE");
    support::expect_error(past, StatusCode::BAD_REQUEST, "offset_out_of_range").await;
    let out = sluice(
        &server,
        &["stream", "delete-records", "d", "--before", "15", "--output", "json"],
    )
    .ok()
    .json();
    assert_eq!(out["start_offset"], 15, "{out}");

    // Durable: kill -9, restart; Kafka's earliest is still 15.
    server.kill();
    server.restart().await;
    assert_eq!(start_offset(&server).await, 15);
    assert_eq!(earliest(&server.kafka(), 2), vec![15, 16]);
    // -1 deletes everything readers see.
    let out = delete("confluent", &server.kafka(), "d", -1);
    assert_eq!(out["low_watermark"], 20, "{out}");
}
