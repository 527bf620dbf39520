//! A Kafka client on a three-node replicated stream: confluent-kafka
//! (librdkafka) produces with acks=all while the leadership moves from node
//! 1 to node 2; the client follows the move (NOT_LEADER_OR_FOLLOWER, then
//! Metadata) and every acknowledged record is on the new leader.

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kafka_support::py;
use crate::replication_support::{Cluster, STREAM, wait_for};
use crate::support::expect_json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_from_a_kafka_client_follows_a_leader_move() {
    const COUNT: u64 = 3_000;
    let cluster = Cluster::start("1MiB").await;
    let bootstrap = cluster.kafka_bootstrap();
    // Metadata from any node names node 1 as the leader, all three as replicas.
    let meta = py("confluent", "metadata", &json!({"bootstrap": bootstrap}));
    assert_eq!(meta["topics"][STREAM]["0"]["leader"], 1, "{meta}");
    assert_eq!(meta["topics"][STREAM]["0"]["replicas"], json!([1, 2, 3]), "{meta}");
    assert_eq!(meta["brokers"].as_array().map(Vec::len), Some(3), "{meta}");
    // Every node gives the replicated topic the same id.
    let ids: Vec<String> = [1, 2, 3]
        .iter()
        .map(|n| crate::kafka_metadata::raw_topic_id(&cluster.node(*n).kafka(), STREAM))
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0] && *i != "0".repeat(32)), "{ids:?}");

    let args = json!({
        "bootstrap": bootstrap, "topic": STREAM, "count": COUNT, "pace_every": 10,
        "config": {"acks": "all", "enable.idempotence": true, "message.timeout.ms": 60000,
                   "topic.metadata.refresh.interval.ms": 1000, "retry.backoff.ms": 50}
    });
    let producer = crate::kafka_support::Sequence::spawn(&args);
    wait_end_at_least(&cluster, COUNT / 3, "a third of the records on node 1").await;
    let moved = cluster.move_leader(2).await;
    assert_eq!(moved["leader"], 2, "{moved}");
    let moved_at = moved["log_end"].as_u64().expect("log_end");
    assert!(moved_at < COUNT, "the producer finished before the move: {moved}");

    producer.finish(COUNT).await;

    // Every acknowledged value is on the new leader, first occurrences in
    // the order produced.
    let values = read_all(&cluster, 2).await;
    let mut seen = vec![false; COUNT as usize];
    let mut next = 0u64;
    let mut duplicates = 0;
    for v in &values {
        if seen[*v as usize] {
            duplicates += 1;
            continue;
        }
        assert_eq!(*v, next, "value {v} came before {next}");
        seen[*v as usize] = true;
        next += 1;
    }
    assert_eq!(next, COUNT, "{} of {COUNT} acknowledged values on node 2", next);
    println!(
        "moved at offset {moved_at}; node 2 holds {} records, {duplicates} duplicates (retries across the move)",
        values.len()
    );
}

pub(crate) async fn end_offset(cluster: &Cluster, id: u32) -> u64 {
    partition_offset(cluster, id, "end_offset").await
}

/// `offset` (`start_offset`, `end_offset`) of partition 0 as node `id` has it.
pub(crate) async fn partition_offset(cluster: &Cluster, id: u32, offset: &str) -> u64 {
    let body = stream_of(cluster, id).await;
    body["partitions"][0][offset]
        .as_u64()
        .unwrap_or_else(|| panic!("{offset}: {body}"))
}

/// `GET /streams/{STREAM}` on node `id`.
pub(crate) async fn stream_of(cluster: &Cluster, id: u32) -> Value {
    named_stream_of(cluster, id, STREAM).await
}

/// Node `id`'s `GET /streams/{name}`.
pub(crate) async fn named_stream_of(cluster: &Cluster, id: u32, name: &str) -> Value {
    let resp = cluster
        .client
        .get(cluster.node(id).url(&format!("/streams/{name}")))
        .send()
        .await
        .expect("GET stream");
    expect_json(resp, StatusCode::OK).await
}

/// Waits (60 s at most) until node 1's log ends at `at_least` or later;
/// returns that end.
pub(crate) async fn wait_end_at_least(cluster: &Cluster, at_least: u64, what: &str) -> u64 {
    wait_for(what, Duration::from_secs(60), || async {
        let end = end_offset(cluster, 1).await;
        if end >= at_least { Ok(end) } else { Err(end.to_string()) }
    })
    .await
}

pub(crate) async fn read_all(cluster: &Cluster, id: u32) -> Vec<u64> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let url = format!("{}?offset={offset}&max_records=10000", cluster.records_url(id));
        let resp = cluster.client.get(url).send().await.expect("GET records");
        let page = expect_json(resp, StatusCode::OK).await;
        let records = page["records"].as_array().expect("records");
        if records.is_empty() {
            return out;
        }
        for r in records {
            let raw = match &r["value"] {
                Value::String(s) => s.clone().into_bytes(),
                v => base64::engine::general_purpose::STANDARD
                    .decode(v["base64"].as_str().expect("base64"))
                    .expect("base64"),
            };
            out.push(String::from_utf8(raw).expect("utf8").parse().expect("a number"));
        }
        offset = page["next_offset"].as_u64().expect("next_offset");
    }
}

/// A retried idempotent batch sent to the new leader after a move is
/// answered with the offsets the old leader gave it: followers keep the
/// producer state replication brings them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_recognises_a_producer_retry() {
    use crate::kafka_bad_input::{Listener, offset_of, produce_acks, producer_batch};
    let cluster = Cluster::start("1MiB").await;
    let (one, two) = (Listener(cluster.node(1).kafka()), Listener(cluster.node(2).kafka()));
    let pid = 9_001;
    let first = tokio::task::spawn_blocking(move || {
        let mut s = one.connect();
        let a = offset_of(&produce_acks(
            &mut s,
            STREAM,
            0,
            producer_batch(10, pid, 0, 0).freeze(),
            -1,
        ));
        let b = offset_of(&produce_acks(
            &mut s,
            STREAM,
            0,
            producer_batch(11, pid, 0, 1).freeze(),
            -1,
        ));
        (a, b)
    })
    .await
    .expect("join");
    assert_eq!(first, ((0, 0), (0, 1)));
    cluster.wait_converged(1, Duration::from_secs(20)).await;
    let moved = cluster.move_leader(2).await;
    assert_eq!(moved["leader"], 2, "{moved}");
    let after = tokio::task::spawn_blocking(move || {
        let mut s = two.connect();
        let retry = offset_of(&produce_acks(
            &mut s,
            STREAM,
            0,
            producer_batch(11, pid, 0, 1).freeze(),
            1,
        ));
        let gap = offset_of(&produce_acks(
            &mut s,
            STREAM,
            0,
            producer_batch(12, pid, 0, 5).freeze(),
            1,
        ));
        let next = offset_of(&produce_acks(
            &mut s,
            STREAM,
            0,
            producer_batch(12, pid, 0, 2).freeze(),
            1,
        ));
        (retry, gap.0, next)
    })
    .await
    .expect("join");
    assert_eq!(
        after,
        ((0, 1), 45, (0, 2)),
        "retry answered from the old leader's offsets"
    );
    let end = cluster.wait_converged(2, Duration::from_secs(20)).await;
    assert_eq!(end, 3, "the retry was not written again");
}
