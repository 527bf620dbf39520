//! The Kafka face with @platformatic/kafka: a client written in JavaScript
//! from the protocol up that speaks the newest versions, so it reads by
//! topic id (Fetch v17), creates with CreateTopics v7 and deletes with
//! DeleteTopics v6. Its admin client creates the topic and learns the id
//! Metadata gives; its idempotent producer (acks=all) and HTTP each write a
//! partition; a classic group and a consumer-protocol group each read both,
//! byte for byte, and commit; DescribeGroups describes the consumer-protocol
//! group as Kafka does; deleting the topic over Kafka removes the stream.

use serde_json::{Value, json};

use crate::kafka_support::{hex, platformatic};
use crate::support::{self, Server};

const BASE_TS: u64 = 1_700_000_000_000;

/// Six records for `partition` as the client script takes them (hex), all
/// with keys, a header and timestamps 1 s apart.
fn records(partition: u64, via: &str) -> Vec<Value> {
    (0..6u64)
        .map(|i| {
            json!({"partition": partition, "key": hex(format!("{via}-k{i}").as_bytes()),
                   "value": hex(format!("{via} value {i}").as_bytes()),
                   "headers": [["via", hex(via.as_bytes())]], "timestamp": BASE_TS + i * 1000})
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platformatic_reads_by_topic_id_and_creates_writes_and_deletes_across_faces() {
    let server = Server::start().await;
    let b = server.kafka();
    let c = support::client();

    // CreateTopics v7: the id it answers is the one Metadata gives.
    let created = platformatic("create", &json!({"bootstrap": b, "topic": "pk", "partitions": 2}));
    assert_eq!(created["partitions"], 2, "{created}");
    let meta_id = {
        let b = b.clone();
        tokio::task::spawn_blocking(move || crate::kafka_metadata::raw_topic_id(&b, "pk"))
            .await
            .expect("join")
    };
    assert_eq!(created["id"], json!(meta_id), "{created}");

    // HTTP writes partition 0; the idempotent producer partition 1.
    let http_sent = records(0, "http");
    let over_http: Vec<Value> = (0..6u64)
        .map(|i| {
            json!({"key": format!("http-k{i}"), "value": format!("http value {i}"),
                   "headers": {"via": "http"}, "timestamp": BASE_TS + i * 1000})
        })
        .collect();
    support::produce(&c, &server, "pk", 0, &json!(over_http)).await;
    let kafka_sent = records(1, "kafka");
    let out = platformatic(
        "produce",
        &json!({"bootstrap": b, "topic": "pk", "records": kafka_sent}),
    );
    assert_eq!(
        out["results"],
        json!((0..6).map(|o| json!({"partition": 1, "offset": o})).collect::<Vec<_>>()),
        "{out}"
    );
    // Over HTTP, byte for byte.
    let url = format!("{}?offset=0&max_records=100", support::records_url(&server, "pk", 1));
    let (status, body) = support::json_of(c.get(url).send().await.expect("GET")).await;
    assert!(status.is_success(), "{body}");
    let read: Vec<Value> = body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            json!({"partition": 1, "key": r["key"].as_str().map(|k| hex(k.as_bytes())),
                   "value": r["value"].as_str().map(|v| hex(v.as_bytes())),
                   "headers": [["via", r["headers"]["via"].as_str().map(|v| hex(v.as_bytes()))]],
                   "timestamp": r["timestamp"]})
        })
        .collect();
    assert_eq!(read, kafka_sent, "{body}");

    // Both kinds of group read everything, by topic id, byte for byte.
    let want: Vec<Value> = http_sent
        .iter()
        .chain(&kafka_sent)
        .zip((0..6).chain(0..6))
        .map(|(r, offset)| {
            let mut r = r.clone();
            r["offset"] = json!(offset);
            r
        })
        .collect();
    for (group, protocol, state) in [("classic-g", "classic", "STABLE"), ("consumer-g", "consumer", "DEAD")] {
        let got = platformatic(
            "consume",
            &json!({"bootstrap": b, "topic": "pk", "group": group, "protocol": protocol, "expect": 12}),
        );
        let mut records = got["records"].as_array().unwrap_or_else(|| panic!("{got}")).clone();
        records.sort_by_key(|r| (r["partition"].as_u64(), r["offset"].as_u64()));
        assert_eq!(records, want, "{protocol}: {got}");
        assert_eq!(got["committed"], json!([6, 6]), "{protocol}: {got}");
        // DescribeGroups is for classic groups; a consumer-protocol group
        // is Dead to it (as Kafka answers up to v5), not an error.
        assert_eq!(got["described"]["state"], state, "{protocol}: {got}");
    }

    // DeleteTopics v6: the stream is gone.
    let deleted = platformatic("remove", &json!({"bootstrap": b, "topic": "pk"}));
    assert_eq!(deleted["ok"], true, "{deleted}");
    let resp = c.get(server.url("/streams/pk")).send().await.expect("GET");
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
}
