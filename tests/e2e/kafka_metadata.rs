//! Topic ids (Metadata v10+): librdkafka's DescribeTopics sees an id per
//! topic, the same after a kill -9 and restart, and a new one when a topic
//! is deleted and created again under its name; kafka-python describes
//! topics by id, and an unknown id is UNKNOWN_TOPIC_ID. DescribeCluster:
//! kafka-python's describe_cluster gets the brokers, cluster id and
//! controller Metadata gives. Authorized operations: librdkafka asking
//! gets what a Kafka broker without an authorizer gives (the node has no
//! ACLs), less what the node refuses on its own internal topic.

use serde_json::{Value, json};

use crate::kafka_support::py;
use crate::support::{Server, client, create_stream};

/// Topic name -> id (32 hex digits) as confluent-kafka reports them.
fn ids(server: &Server, topics: &[&str]) -> serde_json::Map<String, Value> {
    let got = py(
        "confluent",
        "topic_ids",
        &json!({"bootstrap": server.kafka(), "topics": topics}),
    );
    got["ids"].as_object().cloned().unwrap_or_else(|| panic!("{got}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_have_stable_ids_and_can_be_described_by_them() {
    let mut server = Server::start().await;
    let c = client();
    create_stream(&c, &server, "ta", 2).await;
    create_stream(&c, &server, "tb", 3).await;
    let first = ids(&server, &["ta", "tb"]);
    let (ta, tb) = (
        first["ta"].as_str().unwrap_or_default(),
        first["tb"].as_str().unwrap_or_default(),
    );
    assert_eq!(ta.len(), 32, "{first:?}");
    assert_ne!(ta, "0".repeat(32), "not the nil id");
    assert_ne!(ta, tb);

    // By id, kafka-python's way; an id no topic has is UNKNOWN_TOPIC_ID.
    let unknown = "0123456789abcdef0123456789abcdef";
    let got = py(
        "kafkapython",
        "describe_topics",
        &json!({"bootstrap": server.kafka(), "ids": [ta, tb, unknown]}),
    );
    let topics = got["topics"].as_array().unwrap_or_else(|| panic!("{got}"));
    let summary: Vec<(Value, Value, Value, Value)> = topics
        .iter()
        // No name for an unknown id (null, which kafka-python shows as "").
        .map(|t| {
            let name = json!(t["name"].as_str().unwrap_or_default());
            (
                name,
                t["topic_id"].clone(),
                t["error_code"].clone(),
                t["partitions"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!("ta"), json!(ta), json!(0), json!(2)),
            (json!("tb"), json!(tb), json!(0), json!(3)),
            (json!(""), json!(unknown), json!(100), json!(0)),
        ],
        "{got}"
    );

    // The same ids after a kill -9 and restart.
    server.kill();
    server.restart().await;
    assert_eq!(ids(&server, &["ta", "tb"]), first);

    // Deleted and created again: a new topic, a new id.
    let resp = c.delete(server.url("/streams/ta")).send().await.expect("delete");
    assert!(resp.status().is_success(), "{}", resp.status());
    create_stream(&c, &server, "ta", 2).await;
    let again = ids(&server, &["ta", "tb"]);
    assert_ne!(again["ta"], first["ta"], "a recreated topic has a new id");
    assert_eq!(again["tb"], first["tb"]);
}

/// `topic`'s id as a raw Metadata v12 request to `kafka` answers it.
pub(crate) fn raw_topic_id(kafka: &str, topic: &str) -> String {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(kafka_protocol::protocol::StrBytes::from_string(topic.into())));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    let mut s = crate::kafka_bad_input::Listener(kafka.to_string()).connect();
    let r: MetadataResponse = crate::kafka_bad_input::call(&mut s, ApiKey::Metadata, 12, &req);
    let found = &r.topics[0];
    assert_eq!(found.error_code, 0, "{topic} on {kafka}");
    found.topic_id.simple().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_answers_what_metadata_does() {
    let server = Server::start().await;
    let got = py("kafkapython", "describe_cluster", &json!({"bootstrap": server.kafka()}));
    let meta = py("confluent", "metadata", &json!({"bootstrap": server.kafka()}));
    assert_eq!(got["cluster_id"], "sluice", "{got}");
    assert_eq!(got["controller_id"], 0, "{got}");
    assert_eq!(got["brokers"], meta["brokers"], "{got} {meta}");
    let asked =
        crate::kafka_support::metric_sum(&server, "sluice_kafka_requests_total", "api=\"describe_cluster\"").await;
    assert!(asked >= 1.0, "kafka-python used DescribeCluster: {asked}");

    // Controllers are not described.
    let kafka = server.kafka();
    let answer = tokio::task::spawn_blocking(move || {
        use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, DescribeClusterResponse};
        let mut req = DescribeClusterRequest::default();
        req.endpoint_type = 2;
        let mut s = crate::kafka_bad_input::Listener(kafka).connect();
        let r: DescribeClusterResponse = crate::kafka_bad_input::call(&mut s, ApiKey::DescribeCluster, 1, &req);
        (r.error_code, r.brokers.len())
    })
    .await
    .expect("join");
    assert_eq!(answer, (115, 0), "UNSUPPORTED_ENDPOINT_TYPE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_ask_get_the_authorized_operations_a_broker_without_acls_gives() {
    let server = Server::start().await;
    let c = client();
    create_stream(&c, &server, "ta", 1).await;
    // A commit creates the internal offsets topic.
    let committed = c
        .post(server.url("/groups/g1/offsets"))
        .json(&json!({"offsets": [{"stream": "ta", "partition": 0, "offset": 0}]}))
        .send()
        .await
        .expect("POST");
    assert!(committed.status().is_success(), "{committed:?}");
    let got = py(
        "confluent",
        "authorized",
        &json!({"bootstrap": server.kafka(), "topics": ["ta", "__consumer_offsets"], "group": "g1"}),
    );
    let all_on_cluster = json!([
        "ALTER",
        "ALTER_CONFIGS",
        "CLUSTER_ACTION",
        "CREATE",
        "DESCRIBE",
        "DESCRIBE_CONFIGS",
        "IDEMPOTENT_WRITE"
    ]);
    let all_on_topic = json!([
        "ALTER",
        "ALTER_CONFIGS",
        "CREATE",
        "DELETE",
        "DESCRIBE",
        "DESCRIBE_CONFIGS",
        "READ",
        "WRITE"
    ]);
    assert_eq!(got["cluster"], all_on_cluster, "{got}");
    assert_eq!(got["cluster_unasked"], Value::Null, "not given unless asked: {got}");
    assert_eq!(got["topics"]["ta"], all_on_topic, "{got}");
    assert_eq!(
        got["topics"]["__consumer_offsets"],
        json!(["DESCRIBE", "DESCRIBE_CONFIGS", "READ"]),
        "{got}"
    );
    assert_eq!(got["group"], json!(["DELETE", "DESCRIBE", "READ"]), "{got}");
}
