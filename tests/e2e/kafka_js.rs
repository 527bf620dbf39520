//! The Kafka face with KafkaJS: a client written in JavaScript from the
//! protocol up, sharing no code with librdkafka or kafka-python. Its admin
//! client creates the topic and finds offsets by time, its idempotent
//! producer writes with acks=all and gzip, its consumers read what HTTP
//! wrote, and two members of one group split the topic and commit.

use serde_json::{Value, json};

use crate::kafka_support::{hex, js};
use crate::support::{self, Server};

const BASE_TS: u64 = 1_700_000_000_000;

async fn http_records(server: &Server, partition: u32) -> Vec<Value> {
    let url = format!(
        "{}?offset=0&max_records=1000",
        support::records_url(server, "js", partition)
    );
    let resp = support::client().get(url).send().await.expect("GET records");
    let (status, body) = support::json_of(resp).await;
    assert!(status.is_success(), "{body}");
    body["records"].as_array().expect("records").clone()
}

fn text_hex(v: &Value) -> Option<String> {
    v.as_str().map(|s| hex(s.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_produces_consumes_and_shares_a_group_across_faces() {
    let server = Server::start().await;
    let b = server.kafka();

    // Admin: create (a second create says it exists), then offsets.
    let adm = js("admin", &json!({"bootstrap": b, "topic": "js", "create": 2}));
    assert_eq!(
        (adm["created"].as_bool(), adm["again"].as_bool()),
        (Some(true), Some(false)),
        "{adm}"
    );
    assert_eq!(adm["offsets"], json!([[0, 0, 0], [1, 0, 0]]), "{adm}");

    // Idempotent producer, acks=all, gzip: 20 records to partition 0 with
    // keys, headers, timestamps 1 s apart, and a null value at 7.
    let sent: Vec<Value> = (0..20u64)
        .map(|i| {
            json!({"partition": 0, "key": hex(format!("key-{i}").as_bytes()),
                   "value": (i != 7).then(|| hex(format!("value-{i}").as_bytes())),
                   "headers": [["n", hex(i.to_string().as_bytes())]], "timestamp": BASE_TS + i * 1000})
        })
        .collect();
    let out = js(
        "produce",
        &json!({"bootstrap": b, "topic": "js", "compression": "gzip", "records": sent}),
    );
    let offsets: Vec<u64> = out["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>(), "{out}");

    // Over HTTP, byte for byte.
    let records = http_records(&server, 0).await;
    assert_eq!(records.len(), 20);
    for (i, (r, s)) in records.iter().zip(&sent).enumerate() {
        assert_eq!(r["offset"], i as u64);
        assert_eq!(text_hex(&r["key"]), s["key"].as_str().map(str::to_string), "{r}");
        assert_eq!(text_hex(&r["value"]), s["value"].as_str().map(str::to_string), "{r}");
        assert_eq!(text_hex(&r["headers"]["n"]), Some(hex(i.to_string().as_bytes())), "{r}");
        assert_eq!(r["timestamp"], BASE_TS + i as u64 * 1000, "{r}");
    }

    // HTTP -> KafkaJS on partition 1, from the middle.
    let c = support::client();
    let from_http: Vec<Value> = (0..6)
        .map(|i| json!({"key": format!("h{i}"), "value": format!("from http {i}"), "headers": {"via": "http"}}))
        .collect();
    support::produce(&c, &server, "js", 1, &json!(from_http)).await;
    let got = js(
        "consume",
        &json!({"bootstrap": b, "topic": "js", "partition": 1, "offset": 2, "count": 4}),
    );
    let got = got["records"].as_array().expect("records");
    assert_eq!(got.len(), 4, "{got:?}");
    for (n, r) in got.iter().enumerate() {
        let i = n + 2;
        assert_eq!(r["offset"], i as u64);
        assert_eq!(r["key"], hex(format!("h{i}").as_bytes()));
        assert_eq!(r["value"], hex(format!("from http {i}").as_bytes()));
        assert_eq!(r["headers"], json!([["via", hex(b"http")]]));
    }

    // Offsets by time: the first record at or after BASE_TS + 10.5 s is 11.
    let adm = js(
        "admin",
        &json!({"bootstrap": b, "topic": "js", "timestamp": BASE_TS + 10_500}),
    );
    assert_eq!(adm["offsets"], json!([[0, 0, 20], [1, 0, 6]]), "{adm}");
    assert_eq!(adm["by_time"][0], json!([0, 11]), "{adm}");

    // Two members of one group: they end up holding one partition each,
    // consume all 26 records, and their commits reach the ends.
    let g = js(
        "group",
        &json!({"bootstrap": b, "topic": "js", "group": "jsg", "members": 2, "partitions": 2, "count": 26}),
    );
    let members = g["members"].as_array().expect("members");
    let mut held: Vec<u64> = members
        .iter()
        .flat_map(|m| {
            m["assigned"]
                .as_array()
                .expect("assigned")
                .iter()
                .map(|p| p.as_u64().expect("p"))
        })
        .collect();
    held.sort_unstable();
    assert_eq!(held, vec![0, 1], "each partition held once: {g}");
    let mut consumed: Vec<(u64, u64)> = members
        .iter()
        .flat_map(|m| m["consumed"].as_array().expect("consumed").iter())
        .map(|po| (po[0].as_u64().expect("p"), po[1].as_u64().expect("o")))
        .collect();
    consumed.sort_unstable();
    consumed.dedup();
    let want: Vec<(u64, u64)> = (0..20).map(|o| (0, o)).chain((0..6).map(|o| (1, o))).collect();
    assert_eq!(consumed, want, "every record consumed: {g}");
    assert_eq!(g["committed"], json!([[0, 20], [1, 6]]), "{g}");
    assert_eq!(g["state"], "Empty", "{g}");
    // The same commits over HTTP.
    let resp = c.get(server.url("/groups/jsg")).send().await.expect("GET group");
    let (status, view) = support::json_of(resp).await;
    assert!(status.is_success(), "{view}");
    let mut committed: Vec<(u64, u64)> = view["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| (o["partition"].as_u64().expect("p"), o["offset"].as_u64().expect("o")))
        .collect();
    committed.sort_unstable();
    assert_eq!(committed, vec![(0, 20), (1, 6)], "{view}");
}

/// KafkaJS's admin client changes a topic after creation: retention
/// (AlterConfigs), more partitions, records deleted below an offset; a
/// smaller partition count is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_admin_alters_grows_and_deletes_records() {
    let server = Server::start().await;
    let c = support::client();
    support::create_stream(&c, &server, "js", 1).await;
    let records: Vec<Value> = (0..10).map(|i| json!({"value": format!("r{i}")})).collect();
    support::produce(&c, &server, "js", 0, &json!(records)).await;
    let out = js(
        "manage",
        &json!({"bootstrap": server.kafka(), "topic": "js", "retention_ms": 3_600_000,
                "partitions": 3, "delete_before": 4}),
    );
    assert_eq!(out["configs"]["retention.ms"], "3600000", "{out}");
    assert_eq!(out["offsets"], json!([[0, 4, 10], [1, 0, 0], [2, 0, 0]]), "{out}");
    assert!(out["shrink"].as_str().is_some_and(|e| e.contains("partition")), "{out}");
    let resp = c.get(server.url("/streams/js")).send().await.expect("GET");
    let (status, body) = support::json_of(resp).await;
    assert!(status.is_success(), "{body}");
    assert_eq!(body["retention_ms"], 3_600_000, "{body}");
    assert_eq!(body["partitions"][0]["start_offset"], 4, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_transactions_are_refused_and_write_nothing() {
    let server = Server::start().await;
    let c = support::client();
    support::create_stream(&c, &server, "js", 1).await;
    let out = js("transactional", &json!({"bootstrap": server.kafka(), "topic": "js"}));
    assert_eq!(out["refused"], true, "{out}");
    assert!(
        http_records(&server, 0).await.is_empty(),
        "a refused transaction wrote records"
    );
}
