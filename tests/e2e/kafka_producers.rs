//! DescribeProducers from kafka-python's admin client: the idempotent
//! producers of confluent-kafka and kafka-python are listed on the
//! partitions they wrote, each with its epoch and last sequence, and the
//! same after a kill -9; HTTP producers are not; an unknown partition is
//! an error.

use serde_json::{Value, json};

use crate::kafka_support::{hex, py};
use crate::support::{self, Server};

fn records(n: usize, partition: u32) -> Value {
    let r: Vec<Value> = (0..n)
        .map(|i| json!({"value": hex(format!("v{i}").as_bytes()), "partition": partition}))
        .collect();
    json!(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producers_are_described_through_a_kill() {
    let mut server = Server::start().await;
    let c = support::client();
    support::create_stream(&c, &server, "p", 2).await;
    support::produce(&c, &server, "p", 1, &json!([{"value": "over http"}])).await;
    let b = server.kafka();
    let config = json!({"enable.idempotence": true, "acks": "all"});
    let out = py(
        "confluent",
        "produce",
        &json!({"bootstrap": b, "topic": "p", "records": records(20, 0), "config": config}),
    );
    assert_eq!(out["results"].as_array().map(Vec::len), Some(20), "{out}");
    let out = py(
        "kafkapython",
        "produce",
        &json!({"bootstrap": b, "topic": "p", "records": records(5, 1),
                "config": {"enable_idempotence": true, "acks": "all"}}),
    );
    assert_eq!(out["results"].as_array().map(Vec::len), Some(5), "{out}");

    let describe = |b: &str| {
        py(
            "kafkapython",
            "describe_producers",
            &json!({"bootstrap": b, "partitions": [["p", 0], ["p", 1], ["p", 5]]}),
        )["producers"]
            .clone()
    };
    let before = describe(&b);
    let row = |key: &str| {
        let rows = before[key].as_array().unwrap_or_else(|| panic!("{key}: {before}"));
        assert_eq!(rows.len(), 1, "one producer on {key}: {before}");
        rows[0].clone()
    };
    let (p0, p1) = (row("p:0"), row("p:1"));
    assert_eq!(
        (&p0[1], &p0[2]),
        (&json!(0), &json!(19)),
        "epoch, last sequence: {before}"
    );
    assert_eq!((&p1[1], &p1[2]), (&json!(0), &json!(4)), "{before}");
    assert_ne!(p0[0], p1[0], "two producers: {before}");
    assert!(p0[3].as_i64().is_some_and(|t| t > 1_600_000_000_000), "{before}");
    assert_eq!(before["p:5"]["error"], "UnknownTopicOrPartitionError", "{before}");

    // The state is durable: the same producers after a kill -9.
    server.kill();
    server.restart().await;
    let after = describe(&server.kafka());
    for key in ["p:0", "p:1"] {
        // Id, epoch, last sequence (the time is the replay's after a restart).
        let ids = |v: &Value| {
            v[key].as_array().map(|rows| {
                rows.iter()
                    .map(|p| [p[0].clone(), p[1].clone(), p[2].clone()])
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(ids(&after), ids(&before), "{key}: {after}");
    }
}
