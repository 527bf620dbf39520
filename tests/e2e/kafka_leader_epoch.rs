//! OffsetForLeaderEpoch: raw requests get each epoch's end from the
//! leader's history (and Kafka's error codes), fetches and offset lookups
//! naming another epoch than the leader's are refused (from Fetch v16
//! naming the leader and its endpoint, as Produce v10+ does to a node that
//! does not lead), and a librdkafka
//! consumer reading through a leader move validates its position and reads
//! every record once, in order.

use std::time::Duration;

use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use crate::kafka_bad_input::{Listener, call, raw_fetch};
use crate::kafka_support::{metric_sum, offsets_of, py};
use crate::replication_support::{Cluster, STREAM};

/// (error, epoch, end offset) per asked (topic, partition, current epoch,
/// epoch), over one OffsetForLeaderEpoch request of `version`.
fn ask(kafka: &str, version: i16, asks: &[(&str, i32, i32, i32)]) -> Vec<(i16, i32, i64)> {
    let mut s = Listener(kafka.to_string()).connect();
    let mut req = OffsetForLeaderEpochRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    for (topic, partition, current, epoch) in asks {
        let mut p = OffsetForLeaderPartition::default();
        p.partition = *partition;
        p.current_leader_epoch = *current;
        p.leader_epoch = *epoch;
        let mut t = OffsetForLeaderTopic::default();
        t.topic = TopicName(StrBytes::from_string(topic.to_string()));
        t.partitions = vec![p];
        req.topics.push(t);
    }
    let r: OffsetForLeaderEpochResponse = call(&mut s, ApiKey::OffsetForLeaderEpoch, version, &req);
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.error_code, p.leader_epoch, p.end_offset))
        })
        .collect()
}

/// The error of a Fetch of partition 0 naming `current` as the leader epoch.
fn fetch_error(kafka: &str, current: i32) -> i16 {
    raw_fetch(&mut Listener(kafka.to_string()).connect(), STREAM, 0, current).error_code
}

/// The error of a ListOffsets (v4) of partition 0's latest offset naming
/// `current` as the leader epoch.
fn list_offsets_error(kafka: &str, current: i32) -> i16 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
    let mut s = Listener(kafka.to_string()).connect();
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 0;
    p.current_leader_epoch = current;
    p.timestamp = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(StrBytes::from_static_str(STREAM));
    t.partitions = vec![p];
    let mut req = ListOffsetsRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.topics = vec![t];
    let r: ListOffsetsResponse = call(&mut s, ApiKey::ListOffsets, 4, &req);
    r.topics[0].partitions[0].error_code
}

/// A Fetch v16 (by topic id) of partition 0 of topic `id` naming
/// `current` as the leader epoch: the partition's error, the leader it
/// names (id, epoch) and the endpoints the answer gives ("id host:port").
fn fetch_v16(kafka: &str, id: &str, current: i32) -> (i16, (i32, i32), Vec<String>) {
    let r = crate::kafka_bad_input::raw_fetch_by_id(kafka, id, current, 16);
    let part = &r.responses[0].partitions[0];
    let leader = (part.current_leader.leader_id.0, part.current_leader.leader_epoch);
    let endpoints = r
        .node_endpoints
        .iter()
        .map(|e| format!("{} {}:{}", e.node_id.0, e.host.as_str(), e.port))
        .collect();
    (part.error_code, leader, endpoints)
}

const NONE: i16 = 0;
const UNKNOWN_TOPIC: i16 = 3;
const NOT_LEADER: i16 = 6;
const FENCED: i16 = 74;
const UNKNOWN_EPOCH: i16 = 75;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_end_where_the_history_says_and_a_consumer_validates_through_a_move() {
    let cluster = Cluster::start("1MiB").await;
    let values: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    cluster.produce(1, "all", &values).await;
    let (n1, n2) = (cluster.node(1).kafka(), cluster.node(2).kafka());
    for version in [2, 4] {
        assert_eq!(
            ask(
                &n1,
                version,
                &[(STREAM, 0, 0, 0), (STREAM, 0, -1, 3), (STREAM, 0, 1, 0)]
            ),
            vec![(NONE, 0, 100), (NONE, -1, -1), (UNKNOWN_EPOCH, -1, -1)]
        );
    }
    assert_eq!(
        ask(&n1, 3, &[("nope", 0, -1, 0), (STREAM, -1, -1, 0), (STREAM, 1, -1, 0)]),
        vec![(UNKNOWN_TOPIC, -1, -1); 3]
    );

    // A consumer reads the first 100, then the leadership moves to node 2
    // at offset 100 and 100 more records follow there.
    let bootstrap = cluster.kafka_bootstrap();
    let consumer = tokio::task::spawn_blocking(move || {
        py(
            "confluent",
            "consume",
            &json!({"bootstrap": bootstrap, "topic": STREAM, "partition": 0, "offset": 0, "count": 200,
                    "timeout": 60, "config": {"topic.metadata.refresh.interval.ms": 1000,
                                              "fetch.wait.max.ms": 100}}),
        )
    });
    // librdkafka fetches the next offset once it has a batch: a second
    // fetch means it holds the first 100 records, at epoch 0, so the move
    // below happens under a consumer with a position to validate (a
    // consumer slow to start would otherwise begin at the new leader).
    let started = std::time::Instant::now();
    while metric_sum(cluster.node(1), "sluice_kafka_requests_total", "api=\"fetch\"").await < 2.0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the consumer never fetched"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let moved = cluster.move_leader(2).await;
    assert_eq!(moved["leader"], 2, "{moved}");
    let more: Vec<String> = (100..200).map(|i| i.to_string()).collect();
    cluster.produce(2, "all", &more).await;

    assert_eq!(
        ask(&n2, 4, &[(STREAM, 0, 1, 0), (STREAM, 0, 1, 1), (STREAM, 0, 0, 1)]),
        vec![(NONE, 0, 100), (NONE, 1, 200), (FENCED, -1, -1)]
    );
    assert_eq!(ask(&n1, 4, &[(STREAM, 0, -1, 0)]), vec![(NOT_LEADER, -1, -1)]);
    // Fetches naming another epoch than the leader's are refused.
    let fetched: Vec<i16> = [-1, 0, 1, 2].iter().map(|e| fetch_error(&n2, *e)).collect();
    assert_eq!(fetched, vec![NONE, FENCED, NONE, UNKNOWN_EPOCH]);
    // From v16 such an answer, and one from a node that does not lead,
    // names the leader and where it listens (KIP-951).
    let id = crate::kafka_metadata::raw_topic_id(&n2, STREAM);
    let to_leader = vec![format!("2 {n2}")];
    assert_eq!(fetch_v16(&n1, &id, -1), (NOT_LEADER, (2, 1), to_leader.clone()));
    assert_eq!(fetch_v16(&n2, &id, 0), (FENCED, (2, 1), to_leader));
    assert_eq!(fetch_v16(&n2, &id, 1), (NONE, (-1, -1), vec![]));
    let produce_to_n1 = |version| {
        let batch = crate::kafka_bad_input::producer_batch(5, -1, -1, -1).freeze();
        let mut s = Listener(n1.clone()).connect();
        let r = crate::kafka_bad_input::produce_at(&mut s, STREAM, 0, batch, 1, version);
        let p = &r.responses[0].partition_responses[0];
        let endpoints: Vec<String> = r
            .node_endpoints
            .iter()
            .map(|e| format!("{} {}:{}", e.node_id.0, e.host.as_str(), e.port))
            .collect();
        (
            p.error_code,
            (p.current_leader.leader_id.0, p.current_leader.leader_epoch),
            endpoints,
        )
    };
    assert_eq!(produce_to_n1(10), (NOT_LEADER, (2, 1), vec![format!("2 {n2}")]));
    assert_eq!(produce_to_n1(9), (NOT_LEADER, (-1, -1), vec![]));
    let listed: Vec<i16> = [-1, 0, 1, 2].iter().map(|e| list_offsets_error(&n2, *e)).collect();
    assert_eq!(listed, vec![NONE, FENCED, NONE, UNKNOWN_EPOCH]);

    let got = consumer.await.expect("consumer task");
    let offsets = offsets_of(&got);
    assert_eq!(offsets, (0..200).collect::<Vec<u64>>());

    // Records carry the epoch they were written in, not the leader's
    // current one: 0 below offset 100, 1 from there, from the new leader
    // (raw batches and librdkafka's view of them).
    let written_in = |o: i64| i32::from(o >= 100);
    let raw = tokio::task::spawn_blocking({
        let n2 = n2.clone();
        move || {
            let mut s = Listener(n2).connect();
            let mut labelled = Vec::new();
            while labelled.len() < 200 {
                let p = raw_fetch(&mut s, STREAM, labelled.len() as i64, -1);
                let mut records = p.records.clone().unwrap_or_default();
                let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).expect("batches");
                let before = labelled.len();
                labelled.extend(
                    sets.iter()
                        .flat_map(|set| &set.records)
                        .filter(|r| r.offset >= before as i64)
                        .map(|r| (r.offset, r.partition_leader_epoch)),
                );
                assert!(labelled.len() > before, "no progress at {before}");
            }
            labelled
        }
    })
    .await
    .expect("raw fetches");
    assert_eq!(raw, (0..200).map(|o| (o, written_in(o))).collect::<Vec<_>>());
    let again = tokio::task::spawn_blocking(move || {
        py(
            "confluent",
            "consume",
            &json!({"bootstrap": n2, "topic": STREAM, "partition": 0, "offset": 0, "count": 200, "timeout": 60}),
        )
    })
    .await
    .expect("consumer task");
    let epochs: Vec<(i64, i32)> = again["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["offset"].as_i64().unwrap_or(-1),
                r["leader_epoch"].as_i64().unwrap_or(-1) as i32,
            )
        })
        .collect();
    assert_eq!(epochs, (0..200).map(|o| (o, written_in(o))).collect::<Vec<_>>());
    let asked = metric_sum(
        cluster.node(2),
        "sluice_kafka_requests_total",
        "api=\"offset_for_leader_epoch\"",
    )
    .await;
    // One of them is this test's own.
    println!("node 2 answered {asked} OffsetForLeaderEpoch requests");
    assert!(asked >= 2.0, "the consumer never validated its position: {asked}");
}
