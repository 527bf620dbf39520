//! Topic ids (Metadata v10+): librdkafka's DescribeTopics sees an id per
//! topic, the same after a kill -9 and restart, and a new one when a topic
//! is deleted and created again under its name; kafka-python describes
//! topics by id, and an unknown id is UNKNOWN_TOPIC_ID. DescribeCluster:
//! kafka-python's describe_cluster gets the brokers, cluster id and
//! controller Metadata gives. CreateTopics v7 answers a topic's id and
//! DeleteTopics v6 deletes by it (kafka-python); Fetch v13+ reads by id,
//! and an id of a deleted topic stays unknown. Authorized operations:
//! librdkafka asking gets what a Kafka broker without an authorizer gives
//! (the node has no ACLs), less what the node refuses on its own internal
//! topic; ACL requests are SECURITY_DISABLED, and ListTransactions lists
//! none.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_with_their_ids_and_deleted_by_them() {
    let server = Server::start().await;
    let c = client();
    let b = server.kafka();
    let exists = |name: &'static str| {
        let (c, url) = (c.clone(), server.url(&format!("/streams/{name}")));
        async move { c.get(url).send().await.expect("GET").status() == reqwest::StatusCode::OK }
    };

    // CreateTopics v7 answers the id Metadata gives the topic.
    let created = py(
        "kafkapython",
        "create_topic",
        &json!({"bootstrap": b, "topic": "byid", "partitions": 2}),
    );
    assert_eq!(created["ok"], true, "{created}");
    let id = created["topic_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let meta = {
        let b = b.clone();
        tokio::task::spawn_blocking(move || raw_topic_id(&b, "byid"))
            .await
            .expect("join")
    };
    assert_eq!(id, meta);

    // DeleteTopics v6 by an id no topic has: UNKNOWN_TOPIC_ID, nothing deleted.
    let unknown = "0123456789abcdef0123456789abcdef";
    let got = py("kafkapython", "delete_topic", &json!({"bootstrap": b, "id": unknown}));
    assert_eq!(got["ok"], false, "{got}");
    assert_eq!(got["topics"][0]["error_code"], 100, "{got}");
    assert_eq!(got["topics"][0]["topic_id"], unknown, "{got}");
    assert!(exists("byid").await);

    // By the topic's id: deleted, answered with its name.
    let got = py("kafkapython", "delete_topic", &json!({"bootstrap": b, "id": id}));
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["topics"][0]["name"], "byid", "{got}");
    assert_eq!(got["topics"][0]["topic_id"], json!(id), "{got}");
    assert!(!exists("byid").await, "deleted by id");

    // By name, answered with the topic's id.
    create_stream(&c, &server, "byname", 1).await;
    let named_id = {
        let b = b.clone();
        tokio::task::spawn_blocking(move || raw_topic_id(&b, "byname"))
            .await
            .expect("join")
    };
    let got = py(
        "kafkapython",
        "delete_topic",
        &json!({"bootstrap": b, "topic": "byname"}),
    );
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["topics"][0]["topic_id"], json!(named_id), "{got}");
    assert!(!exists("byname").await);

    // Both a name and an id: INVALID_REQUEST, nothing deleted.
    create_stream(&c, &server, "both", 1).await;
    let both_id = {
        let b = b.clone();
        tokio::task::spawn_blocking(move || raw_topic_id(&b, "both"))
            .await
            .expect("join")
    };
    let code = tokio::task::spawn_blocking(move || {
        use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
        use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
        let mut t = DeleteTopicState::default();
        t.name = Some(TopicName(kafka_protocol::protocol::StrBytes::from_static_str("both")));
        t.topic_id = uuid::Uuid::parse_str(&both_id).expect("uuid");
        let mut req = DeleteTopicsRequest::default();
        req.topics = vec![t];
        let mut s = crate::kafka_bad_input::Listener(b).connect();
        let r: DeleteTopicsResponse = crate::kafka_bad_input::call(&mut s, ApiKey::DeleteTopics, 6, &req);
        r.responses[0].error_code
    })
    .await
    .expect("join");
    assert_eq!(code, 42, "INVALID_REQUEST");
    assert!(exists("both").await);
}

/// A raw sessionless Fetch (v13+: by topic id) of `id`, partition 0, from
/// offset 0: the answering topic's id, the partition's error code and the
/// offsets of the records it carries.
fn fetch_by_id(kafka: &str, id: &str, version: i16) -> (String, i16, Vec<i64>) {
    let r = crate::kafka_bad_input::raw_fetch_by_id(kafka, id, -1, version);
    let topic = &r.responses[0];
    let part = &topic.partitions[0];
    let (_, offsets) = crate::kafka_fetch_limits::records(part);
    (topic.topic_id.simple().to_string(), part.error_code, offsets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_names_topics_by_id_and_never_reads_a_new_incarnation_under_an_old_id() {
    let server = Server::start().await;
    let c = client();
    let b = server.kafka();
    create_stream(&c, &server, "f", 1).await;
    crate::support::produce(
        &c,
        &server,
        "f",
        0,
        &json!([{"value": "a"}, {"value": "b"}, {"value": "c"}]),
    )
    .await;
    let (b2, first) = (b.clone(), {
        let b = b.clone();
        tokio::task::spawn_blocking(move || raw_topic_id(&b, "f"))
            .await
            .expect("join")
    });
    let id = first.clone();
    let got = tokio::task::spawn_blocking(move || [13, 17].map(|v| fetch_by_id(&b2, &id, v)))
        .await
        .expect("join");
    for answer in &got {
        assert_eq!(answer, &(first.clone(), 0, vec![0, 1, 2]), "by id, answered by id");
    }

    // Deleted and created again: the old id is UNKNOWN_TOPIC_ID (not the
    // new topic of that name); the new id reads the new topic.
    let resp = c.delete(server.url("/streams/f")).send().await.expect("delete");
    assert!(resp.status().is_success(), "{}", resp.status());
    create_stream(&c, &server, "f", 1).await;
    crate::support::produce(&c, &server, "f", 0, &json!([{"value": "new"}])).await;
    let (b2, old) = (b.clone(), first.clone());
    let (stale, fresh) = tokio::task::spawn_blocking(move || {
        let new_id = raw_topic_id(&b2, "f");
        (fetch_by_id(&b2, &old, 13), fetch_by_id(&b2, &new_id, 13))
    })
    .await
    .expect("join");
    assert_eq!(stale, (first.clone(), 100, vec![]), "UNKNOWN_TOPIC_ID");
    assert_ne!(fresh.0, first);
    assert_eq!((fresh.1, fresh.2), (0, vec![0]));
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

/// The node has no authorizer: ACL requests are answered SECURITY_DISABLED,
/// as a Kafka broker without one answers them, so admin tools report ACLs
/// as not enabled instead of failing on an API the node does not offer.
/// It refuses transactions, so it lists none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_and_transaction_requests_are_answered_as_a_broker_without_them_answers() {
    let server = Server::start().await;
    let b = server.kafka();
    let described = py("kafkapython", "describe_acls", &json!({"bootstrap": b}));
    let error = described["error"].as_str().unwrap_or_else(|| panic!("{described}"));
    assert!(error.starts_with("SecurityDisabledError"), "{described}");
    assert!(error.contains("No Authorizer is configured"), "{described}");
    // librdkafka: creating and deleting fail with the code; describing
    // gives no ACLs (it does not report the answer's error).
    let got = py("confluent", "acls", &json!({"bootstrap": b, "topic": "t"}));
    assert_eq!(got["describe"], "ok", "{got}");
    assert_eq!(got["create"]["code"], 54, "{got}");
    assert_eq!(got["delete"]["code"], 54, "{got}");

    let listed = py(
        "kafkapython",
        "list_transactions",
        &json!({"bootstrap": b, "states": ["Ongoing"]}),
    );
    assert_eq!(listed["brokers"], json!({"0": []}), "{listed}");
}
