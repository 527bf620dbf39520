//! DescribeLogDirs through kafka-python's admin client: the node's one log
//! directory (its data dir) with its volume's size, and each partition's
//! stored bytes, the same figure HTTP status gives (tiered plus not yet
//! uploaded); a request for some partitions gets just those, and topics
//! the node does not hold are left out.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kafka_support::py;
use crate::support::{self, Server};

fn log_dirs(b: &str, topics: Value) -> Value {
    let out = py(
        "kafkapython",
        "describe_log_dirs",
        &json!({"bootstrap": b, "topics": topics}),
    );
    assert_eq!(out["ok"], true, "{out}");
    let brokers = out["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1, "{out}");
    let dirs = brokers[0]["log_dirs"].as_array().expect("log_dirs");
    assert_eq!(dirs.len(), 1, "one log dir per node: {out}");
    dirs[0].clone()
}

/// (topic, partition) -> size, from a log dir's answer.
fn sizes(dir: &Value) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for t in dir["topics"].as_array().expect("topics") {
        for p in t["partitions"].as_array().expect("partitions") {
            let name = t["name"].as_str().expect("name").to_string();
            out.push((
                name,
                p["partition_index"].as_u64().expect("index"),
                p["partition_size"].as_u64().expect("size"),
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_describes_the_log_dir_and_partition_sizes() {
    let server = Server::start().await;
    let b = server.kafka();
    let c = support::client();
    support::create_stream(&c, &server, "ld", 2).await;
    let records: Vec<Value> = (0..200).map(|i| json!({"value": format!("{i:0>500}")})).collect();
    support::produce(&c, &server, "ld", 1, &json!(records)).await;

    let dir = log_dirs(&b, Value::Null);
    assert_eq!(dir["error_code"], 0, "{dir}");
    assert_eq!(dir["log_dir"].as_str(), server.data_dir().to_str(), "{dir}");
    let (total, usable) = (dir["total_bytes"].as_u64(), dir["usable_bytes"].as_u64());
    assert!(
        matches!((total, usable), (Some(t), Some(u)) if t > 0 && u <= t),
        "volume sizes: {dir}"
    );
    let resp = c.get(server.url("/streams/ld/status")).send().await.expect("status");
    let st = support::expect_json(resp, StatusCode::OK).await;
    let stored = |p: usize| {
        let p = &st["partitions"][p];
        p["upload_lag_bytes"].as_u64().expect("lag") + p["tier"]["tiered_bytes"].as_u64().expect("tiered")
    };
    let got: Vec<_> = sizes(&dir).into_iter().filter(|(t, _, _)| t == "ld").collect();
    assert_eq!(
        got,
        vec![("ld".into(), 0, stored(0)), ("ld".into(), 1, stored(1))],
        "{dir}"
    );
    assert_eq!(got[0].2, 0, "nothing written to partition 0");
    assert!(got[1].2 > 200 * 500, "200 values of 500 bytes: {dir}");

    // Just partition 1, and a topic this node does not hold.
    let dir = log_dirs(&b, json!({"ld": [1], "nope": [0]}));
    assert_eq!(sizes(&dir), vec![("ld".into(), 1, stored(1))], "{dir}");
}
