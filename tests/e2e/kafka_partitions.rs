//! Adding partitions to a topic with clients nobody here wrote
//! (confluent-kafka's and kafka-python's CreatePartitions), over HTTP and
//! with the CLI: the new partitions take records at once, a group member
//! subscribed before the growth is given them and consumes them, and the
//! count survives a kill -9. A smaller count is refused.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli_support::sluice;
use crate::kafka_groups::{Member, consumed};
use crate::kafka_support::{hex, kcat, py};
use crate::support::{self, Server};

async fn partitions(server: &Server) -> usize {
    let resp = support::client()
        .get(server.url("/streams/grow"))
        .send()
        .await
        .expect("GET");
    let (status, body) = support::json_of(resp).await;
    assert!(status.is_success(), "{body}");
    body["partitions"].as_array().map_or(0, Vec::len)
}

fn grow(lib: &str, b: &str, topic: &str, count: u32, validate_only: bool) -> Value {
    py(
        lib,
        "create_partitions",
        &json!({"bootstrap": b, "topic": topic, "count": count, "validate_only": validate_only}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_added_over_kafka_http_and_the_cli_and_consumers_follow() {
    let mut server = Server::start().await;
    let b = server.kafka();
    let c = support::client();
    support::create_stream(&c, &server, "grow", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let member = Member::start("confluent", &b, "g", "grow", &dir.path().join("m.jsonl"), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !member
        .events()
        .iter()
        .any(|e| e["ev"] == "assigned" && e["partitions"] == json!([0]))
    {
        assert!(Instant::now() < deadline, "never assigned: {}", member.stderr_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // confluent-kafka, then kafka-python; validate_only changes nothing.
    let dry = grow("confluent", &b, "grow", 6, true);
    assert_eq!(dry["ok"], true, "{dry}");
    assert_eq!(partitions(&server).await, 1);
    let out = grow("confluent", &b, "grow", 3, false);
    assert_eq!(out["ok"], true, "{out}");
    let out = grow("kafkapython", &b, "grow", 4, false);
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(partitions(&server).await, 4);
    for (lib, topic, count, code) in [
        ("confluent", "grow", 2, "INVALID_PARTITIONS"),
        ("confluent", "grow", 4, "INVALID_PARTITIONS"),
        ("confluent", "nope", 2, "UNKNOWN_TOPIC_OR_PART"),
    ] {
        let out = grow(lib, &b, topic, count, false);
        assert_eq!(out["ok"], false, "{topic} to {count}: {out}");
        assert!(
            out["error"].as_str().is_some_and(|e| e.contains(code)),
            "{topic} to {count}: {out}"
        );
    }

    // The new partitions take records at once, from any client.
    kcat(&["-b", &b, "-P", "-t", "grow", "-p", "3"], b"into three\n");
    support::produce(&c, &server, "grow", 2, &json!([{"value": "into two"}])).await;
    let got = py(
        "kafkapython",
        "consume",
        &json!({"bootstrap": b, "topic": "grow", "partition": 3, "offset": 0, "count": 1}),
    );
    assert_eq!(got["records"][0]["value"], hex(b"into three"), "{got}");

    // The member subscribed before the growth is given the new partitions
    // (librdkafka sees them on a metadata refresh) and consumes them.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let evs = member.events();
        let got = consumed(&evs);
        if got.contains(&(2, 0)) && got.contains(&(3, 0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member never consumed the new partitions: {evs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(member);

    // HTTP and the CLI.
    let resp = c
        .patch(server.url("/streams/grow"))
        .json(&json!({"partitions": 5}))
        .send()
        .await
        .expect("PATCH");
    let body = support::expect_json(resp, reqwest::StatusCode::OK).await;
    assert_eq!(body["partitions"].as_array().map(Vec::len), Some(5), "{body}");
    let fewer = c
        .patch(server.url("/streams/grow"))
        .json(&json!({"partitions": 2}))
        .send()
        .await
        .expect("PATCH");
    support::expect_error(fewer, reqwest::StatusCode::BAD_REQUEST, "invalid_config").await;
    let out = sluice(&server, &["stream", "alter", "grow", "-p", "6", "--output", "json"])
        .ok()
        .json();
    assert_eq!(out["partitions"].as_array().map(Vec::len), Some(6), "{out}");

    // Durable: kill -9, restart, the count and the records are there.
    server.kill();
    server.restart().await;
    assert_eq!(partitions(&server).await, 6);
    let meta = kcat(&["-b", &server.kafka(), "-L", "-t", "grow"], b"");
    assert!(meta.contains("topic \"grow\" with 6 partitions"), "{meta}");
    let got = py(
        "confluent",
        "consume",
        &json!({"bootstrap": server.kafka(), "topic": "grow", "partition": 2, "offset": 0, "count": 1}),
    );
    assert_eq!(got["records"][0]["value"], hex(b"into two"), "{got}");
}
