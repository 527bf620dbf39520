//! Fetch byte limits as Kafka counts them: a partition's answer holds at
//! most `partition_max_bytes` of record batches (headers included), the
//! first partition with records always at least one record however big,
//! any other partition nothing when its first record does not fit; and a
//! fetch session reads first the partitions a full answer left out, so
//! none starves behind busier ones; and the node's `kafka_fetch_max_bytes`
//! caps an answer whatever the client asks. Raw Fetch v11 frames check the
//! answers; kafka-python with tiny fetch sizes reads every record.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use crate::kafka_bad_input::{Listener, call};
use crate::kafka_support::py;
use crate::support::{Server, ServerOptions, client, create_stream, produce};

/// `(partition, offset, partition_max_bytes)` of topic `topic`, in order.
fn fetch(l: &Listener, topic: &str, parts: &[(i32, i64, i32)], max_bytes: i32, session: (i32, i32)) -> FetchResponse {
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.into()));
    t.partitions = parts
        .iter()
        .map(|&(partition, offset, max)| {
            let mut p = FetchPartition::default();
            p.partition = partition;
            p.fetch_offset = offset;
            p.partition_max_bytes = max;
            p
        })
        .collect();
    let mut req = FetchRequest::default();
    req.max_wait_ms = 0;
    req.min_bytes = 0;
    req.max_bytes = max_bytes;
    (req.session_id, req.session_epoch) = session;
    req.topics = if parts.is_empty() { vec![] } else { vec![t] };
    call(&mut l.connect(), ApiKey::Fetch, 11, &req)
}

/// A partition's answer in `r`, if there is one.
fn answer(r: &FetchResponse, partition: i32) -> Option<&PartitionData> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == partition)
}

/// The answer's batch bytes and record offsets.
pub(crate) fn records(p: &PartitionData) -> (usize, Vec<i64>) {
    let mut bytes: Bytes = p.records.clone().unwrap_or_default();
    let len = bytes.len();
    let offsets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes)
        .expect("record batches")
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| r.offset)
        .collect();
    (len, offsets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_limits_count_batch_bytes_and_sessions_rotate() {
    let server = Server::start().await;
    let c = client();
    create_stream(&c, &server, "lim", 2).await;
    // Partition 0: twenty five-byte records. Partition 1: a 1,000-byte
    // record, then three small ones.
    let small: Vec<_> = (0..20).map(|i| json!({"value": format!("v{i:04}")})).collect();
    produce(&c, &server, "lim", 0, &json!(small)).await;
    let big = json!([{"value": "B".repeat(1000)}, {"value": "s1"}, {"value": "s2"}, {"value": "s3"}]);
    produce(&c, &server, "lim", 1, &big).await;
    let l = Listener(server.kafka());
    let sessionless = (0, -1);
    let (full, lone, left_out, rotated, next) = tokio::task::spawn_blocking(move || {
        // 256 bytes of batch: more than one record, fewer than twenty (the
        // payload alone, 100 bytes, would let all twenty through).
        let full = fetch(&l, "lim", &[(0, 0, 256)], 1 << 20, sessionless);
        // The big record comes alone when its partition is first, and
        // leaves no room in an answer of 1,100 bytes ...
        let lone = fetch(&l, "lim", &[(1, 0, 256), (0, 0, 256)], 1100, sessionless);
        // ... and not at all behind one that answered.
        let left_out = fetch(&l, "lim", &[(0, 0, 256), (1, 0, 256)], 1 << 20, sessionless);
        // A session whose answer's 120 bytes go to partition 0 ...
        let opened = fetch(&l, "lim", &[(0, 0, 1 << 20), (1, 1, 1 << 20)], 120, (0, 0));
        let id = opened.session_id;
        assert!(id > 0, "a session opened");
        let (_, first) = records(answer(&opened, 0).expect("partition 0 answered"));
        assert!(!first.is_empty(), "partition 0 read first");
        let p1 = answer(&opened, 1).map(records).map(|(_, o)| o).unwrap_or_default();
        assert!(p1.is_empty(), "no room left for partition 1: {p1:?}");
        // ... reads partition 1 first at its next fetch.
        let moved = (first.last().copied().unwrap_or(0) + 1) as i32;
        let rotated = fetch(&l, "lim", &[(0, i64::from(moved), 1 << 20)], 120, (id, 1));
        let next = fetch(&l, "lim", &[], 120, (id, 2));
        (full, lone, left_out, rotated, next)
    })
    .await
    .expect("join");

    let (len, offsets) = records(answer(&full, 0).expect("answered"));
    assert!(len <= 256, "{len} bytes for a 256-byte limit");
    assert!(offsets.len() > 1 && offsets.len() < 20, "{offsets:?}");
    assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());

    let (len, offsets) = records(answer(&lone, 1).expect("answered"));
    assert_eq!(offsets, [0], "the big record alone");
    assert!(len > 1000 && len <= 1100, "{len}");
    let (_, offsets) = records(answer(&lone, 0).expect("answered"));
    assert!(offsets.is_empty(), "the big record filled the answer: {offsets:?}");

    let (_, offsets) = records(answer(&left_out, 0).expect("answered"));
    assert!(!offsets.is_empty());
    let (_, offsets) = records(answer(&left_out, 1).expect("answered"));
    assert!(
        offsets.is_empty(),
        "a big record behind an answered partition: {offsets:?}"
    );

    let (_, offsets) = records(answer(&rotated, 1).expect("partition 1 answered first"));
    assert_eq!(
        offsets.first(),
        Some(&1),
        "partition 1 from its fetch offset: {offsets:?}"
    );
    // Both partitions got their turn: the next answer is partition 0's.
    let (_, offsets) = records(answer(&next, 0).expect("partition 0 answered"));
    assert!(!offsets.is_empty());

    // kafka-python with fetches far smaller than the big record reads
    // every record of both partitions, in order.
    for (partition, count) in [(0, 20), (1, 4)] {
        let got = py(
            "kafkapython",
            "consume",
            &json!({"bootstrap": server.kafka(), "topic": "lim", "partition": partition, "offset": 0,
                    "count": count, "config": {"max_partition_fetch_bytes": 64, "fetch_max_bytes": 64}}),
        );
        let offsets: Vec<u64> = got["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter_map(|r| r["offset"].as_u64())
            .collect();
        assert_eq!(
            offsets,
            (0..count).collect::<Vec<u64>>(),
            "partition {partition}: {got}"
        );
    }
}

/// A node capping answers at 2 KiB: a client asking for 1 MiB from each of
/// two partitions of 600-byte records gets at most 2 KiB, from the first
/// partition only, and reads on from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_caps_what_one_fetch_answer_carries() {
    let server = Server::start_with(ServerOptions {
        config: Some("kafka_fetch_max_bytes = \"2KiB\"\n".into()),
        ..ServerOptions::default()
    })
    .await;
    let c = client();
    create_stream(&c, &server, "cap", 2).await;
    let values: Vec<_> = (0..10)
        .map(|i| json!({"value": format!("{i}{}", "x".repeat(599))}))
        .collect();
    produce(&c, &server, "cap", 0, &json!(values)).await;
    produce(&c, &server, "cap", 1, &json!(values)).await;
    let l = Listener(server.kafka());
    let (first, second) = tokio::task::spawn_blocking(move || {
        let parts = [(0, 0, 1 << 20), (1, 0, 1 << 20)];
        let first = fetch(&l, "cap", &parts, 1 << 20, (0, -1));
        let second = fetch(&l, "cap", &[(0, 3, 1 << 20), (1, 0, 1 << 20)], 1 << 20, (0, -1));
        (first, second)
    })
    .await
    .expect("join");
    let (len, offsets) = records(answer(&first, 0).expect("answered"));
    assert!(len <= 2048, "{len} bytes over the node's 2 KiB cap");
    assert_eq!(offsets, [0, 1, 2], "three 600-byte records fit in 2 KiB");
    let (_, offsets) = records(answer(&first, 1).expect("answered"));
    assert!(offsets.is_empty(), "no room left: {offsets:?}");
    let (len, offsets) = records(answer(&second, 0).expect("answered"));
    assert!(len <= 2048, "{len}");
    assert_eq!(offsets, [3, 4, 5]);
}
