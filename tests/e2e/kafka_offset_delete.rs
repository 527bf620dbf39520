//! OffsetDelete through kafka-python's `delete_group_offsets`: a group's
//! committed offsets of some partitions go (durably: they stay gone after a
//! kill -9), while a member of the group consumes a topic its offsets
//! there stay (GROUP_SUBSCRIBED_TO_TOPIC) and the others still go; an
//! unknown group and an unknown partition get their error codes. The CLI
//! (`sluice group delete-offsets`, over HTTP) does the same.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli_support::sluice;
use crate::kafka_groups::Member;
use crate::kafka_support::py;
use crate::support::{self, Server};

fn delete(b: &str, group: &str, partitions: Value) -> Value {
    py(
        "kafkapython",
        "delete_group_offsets",
        &json!({"bootstrap": b, "group": group, "partitions": partitions}),
    )
}

/// The group's committed offsets as (stream, partition, offset).
async fn committed(server: &Server, group: &str) -> Vec<(String, u64, u64)> {
    let resp = support::client()
        .get(server.url(&format!("/groups/{group}")))
        .send()
        .await
        .expect("GET group");
    let view = support::expect_json(resp, StatusCode::OK).await;
    let mut out: Vec<_> = view["offsets"]
        .as_array()
        .unwrap_or_else(|| panic!("no offsets: {view}"))
        .iter()
        .map(|o| {
            (
                o["stream"].as_str().expect("stream").to_string(),
                o["partition"].as_u64().expect("partition"),
                o["offset"].as_u64().expect("offset"),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_deletes_group_offsets_except_of_topics_the_group_consumes() {
    let mut server = Server::start().await;
    let b = server.kafka();
    let c = support::client();
    for s in ["a", "b"] {
        support::create_stream(&c, &server, s, 1).await;
        let records: Vec<Value> = (0..10).map(|i| json!({"value": format!("{s}{i}")})).collect();
        support::produce(&c, &server, s, 0, &json!(records)).await;
    }
    let resp = c
        .post(server.url("/groups/g/offsets"))
        .json(&json!({"offsets": [{"stream": "a", "partition": 0, "offset": 4},
                                  {"stream": "b", "partition": 0, "offset": 7}]}))
        .send()
        .await
        .expect("commit");
    support::expect_json(resp, StatusCode::OK).await;

    // No members: the offset named goes, the other stays, through a kill.
    let out = delete(&b, "g", json!([["b", 0]]));
    assert_eq!(out, json!({"ok": true, "result": {"b-0": "NoError"}}));
    server.kill();
    server.restart().await;
    assert_eq!(committed(&server, "g").await, vec![("a".into(), 0, 4)]);

    // A member consuming `a`: its offsets there stay, `b`'s still go.
    let resp = c
        .post(server.url("/groups/g/offsets"))
        .json(&json!({"offsets": [{"stream": "b", "partition": 0, "offset": 7}]}))
        .send()
        .await
        .expect("commit");
    support::expect_json(resp, StatusCode::OK).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let stop = dir.path().join("stop");
    let member = Member::start_with(
        "confluent",
        json!({"bootstrap": b, "group": "g", "topic": "a", "out": dir.path().join("m.jsonl"),
               "stop_file": stop, "session_timeout_ms": 6000}),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !member.events().iter().any(|e| e["ev"] == "assigned") {
        assert!(Instant::now() < deadline, "never assigned: {}", member.stderr_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = delete(&b, "g", json!([["a", 0], ["b", 0], ["nope", 0], ["a", 5]]));
    assert_eq!(
        out["result"],
        json!({"a-0": "GroupSubscribedToTopicError", "b-0": "NoError",
               "nope-0": "UnknownTopicOrPartitionError", "a-5": "UnknownTopicOrPartitionError"}),
        "{out}"
    );
    let left = committed(&server, "g").await;
    assert!(
        left.len() == 1 && left[0].0 == "a",
        "a's offset stays, b's went: {left:?}"
    );
    // The same over HTTP and the CLI: refused whole while `a` is consumed.
    sluice(&server, &["group", "delete-offsets", "g", "a"]).fails(1, "(group_subscribed_to_topic, HTTP 409)");
    std::fs::write(&stop, b"").expect("stop the member");
    member.finish(Duration::from_secs(30));
    let run = sluice(
        &server,
        &[
            "group",
            "delete-offsets",
            "g",
            "a",
            "--partition",
            "0",
            "--output",
            "json",
        ],
    )
    .ok();
    assert_eq!(run.json()["offsets"], json!([]), "{run:?}");
    assert_eq!(committed(&server, "g").await, vec![]);
    sluice(&server, &["group", "delete-offsets", "g", "nope"]).fails(1, "stream_not_found");

    // A group nobody knows.
    let out = delete(&b, "nobody", json!([["a", 0]]));
    assert_eq!(out["ok"], false, "{out}");
    assert!(out["error"].as_str().unwrap_or("").contains("GroupIdNotFound"), "{out}");
}
