//! Admin changes to a three-node replicated stream with clients nobody here
//! wrote. DeleteRecords (confluent-kafka's and kafka-python's, sent to the
//! partition's leader): the answer comes once every replica starts at the
//! new offset; after a leader move the new leader deletes; a follower
//! refuses (421 `not_leader` over HTTP); a follower killed with kill -9
//! keeps its start. AlterConfigs and IncrementalAlterConfigs of retention,
//! and CreatePartitions, asked of any node, reach every node; a compacted
//! topic is replicated.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kafka_cluster::{named_stream_of, partition_offset, stream_of};
use crate::kafka_support::{offsets_of, py};
use crate::replication_support::{Cluster, NODES, STREAM, wait_for};
use crate::support;

fn delete(lib: &str, bootstrap: &str, before: i64) -> Value {
    py(
        lib,
        "delete_records",
        &json!({"bootstrap": bootstrap, "topic": STREAM, "partition": 0, "before": before}),
    )
}

async fn start_offset(cluster: &Cluster, id: u32) -> u64 {
    partition_offset(cluster, id, "start_offset").await
}

async fn starts(cluster: &Cluster) -> Vec<u64> {
    let mut out = Vec::new();
    for id in NODES {
        out.push(start_offset(cluster, id).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_clients_delete_records_on_every_replica_of_a_replicated_topic() {
    let mut cluster = Cluster::start("1MiB").await;
    let values: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
    cluster.produce(1, "all", &values).await;
    let bootstrap = cluster.kafka_bootstrap();

    let out = delete("confluent", &bootstrap, 10);
    assert_eq!(
        (out["ok"].as_bool(), out["low_watermark"].as_i64()),
        (Some(true), Some(10)),
        "{out}"
    );
    assert_eq!(starts(&cluster).await, vec![10, 10, 10]);

    // A follower does not delete.
    let resp = cluster
        .client
        .delete(
            cluster
                .node(3)
                .url(&format!("/streams/{STREAM}/partitions/0/records?before=12")),
        )
        .send()
        .await
        .expect("DELETE");
    support::expect_error(resp, StatusCode::MISDIRECTED_REQUEST, "not_leader").await;

    // After a move, the client finds the new leader; it deletes there.
    cluster.move_leader(2).await;
    let out = delete("kafkapython", &bootstrap, 20);
    assert_eq!(out["ok"], true, "{out}");
    assert!(out.to_string().contains("'low_watermark': 20"), "{out}");
    assert_eq!(starts(&cluster).await, vec![20, 20, 20]);

    // A follower's start is durable: kill -9, restart.
    cluster.node_mut(3).kill();
    cluster.node_mut(3).restart().await;
    assert_eq!(start_offset(&cluster, 3).await, 20);
    let below = cluster
        .client
        .get(format!("{}?offset=19", cluster.records_url(3)))
        .send()
        .await
        .expect("GET");
    support::expect_error(below, StatusCode::BAD_REQUEST, "offset_out_of_range").await;

    // Consumers from the earliest offset begin at the new start.
    let got = py(
        "confluent",
        "consume",
        &json!({"bootstrap": bootstrap, "topic": STREAM, "partition": 0, "offset": -2, "count": 2, "timeout": 10}),
    );
    let offsets = offsets_of(&got);
    assert_eq!(offsets, vec![20, 21], "{got}");
    cluster.wait_converged(2, Duration::from_secs(30)).await;
}

/// A replicated topic's retention changed with kafka-python's AlterConfigs
/// and confluent-kafka's IncrementalAlterConfigs, whichever node they ask:
/// every node has the new value, also after a kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_clients_change_a_replicated_topics_retention_on_every_node() {
    let mut cluster = Cluster::start("1MiB").await;
    let bootstrap = cluster.kafka_bootstrap();
    let out = py(
        "kafkapython",
        "alter_configs",
        &json!({"bootstrap": cluster.node(3).kafka(), "topic": STREAM,
                "configs": {"retention.ms": "3600000"}, "incremental": true}),
    );
    assert_eq!(out["result"]["topic"][STREAM], "'OK'", "{out}");
    let out = py(
        "confluent",
        "alter_configs",
        &json!({"bootstrap": bootstrap, "topic": STREAM, "set": {"retention.bytes": "1073741824"}}),
    );
    assert_eq!(out["ok"], true, "{out}");
    for id in NODES {
        let s = stream_of(&cluster, id).await;
        assert_eq!(
            (s["retention_ms"].as_u64(), s["retention_bytes"].as_u64()),
            (Some(3_600_000), Some(1 << 30)),
            "node {id}: {s}"
        );
    }
    cluster.node_mut(2).kill();
    cluster.node_mut(2).restart().await;
    let s = stream_of(&cluster, 2).await;
    assert_eq!(s["retention_ms"], 3_600_000, "{s}");
    let configs = py(
        "confluent",
        "describe_configs",
        &json!({"bootstrap": cluster.node(2).kafka(), "topic": STREAM}),
    );
    assert_eq!(configs["configs"]["retention.bytes"], "1073741824", "{configs}");
}

/// A replicated topic grown with confluent-kafka's and kafka-python's
/// CreatePartitions: every node has the new partitions, led round-robin;
/// librdkafka finds each one's leader and produces to it with acks=all,
/// and the records are on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_clients_add_partitions_to_a_replicated_topic() {
    let cluster = Cluster::start("1MiB").await;
    let bootstrap = cluster.kafka_bootstrap();
    let out = py(
        "confluent",
        "create_partitions",
        &json!({"bootstrap": bootstrap, "topic": STREAM, "count": 2}),
    );
    assert_eq!(out["ok"], true, "{out}");
    let out = py(
        "kafkapython",
        "create_partitions",
        &json!({"bootstrap": cluster.node(2).kafka(), "topic": STREAM, "count": 3}),
    );
    assert_eq!(out["ok"], true, "{out}");
    for id in NODES {
        let s = stream_of(&cluster, id).await;
        assert_eq!(
            s["replication"]["assignment"],
            json!([[1, 2, 3], [2, 3, 1], [3, 1, 2]]),
            "node {id}: {s}"
        );
    }
    let meta = py("confluent", "metadata", &json!({"bootstrap": bootstrap}));
    let leaders: Vec<&Value> = (0..3)
        .map(|p| &meta["topics"][STREAM][p.to_string()]["leader"])
        .collect();
    assert_eq!(leaders, vec![&json!(1), &json!(2), &json!(3)], "{meta}");

    let records: Vec<Value> = (0..30)
        .map(|i| json!({"value": crate::kafka_support::hex(format!("v{i}").as_bytes()), "partition": i % 3}))
        .collect();
    let out = py(
        "confluent",
        "produce",
        &json!({"bootstrap": bootstrap, "topic": STREAM, "records": records,
                "config": {"acks": "all", "enable.idempotence": true}}),
    );
    let results = out["results"].as_array().expect("results");
    assert!(
        results.len() == 30 && results.iter().all(|r| r["error"].is_null()),
        "{out}"
    );
    // Followers learn the high watermark with their next fetch.
    for id in NODES {
        wait_for(
            &format!("node {id} to show every record"),
            Duration::from_secs(30),
            || async {
                let s = stream_of(&cluster, id).await;
                let ends: Vec<Option<u64>> = (0..3).map(|p| s["partitions"][p]["end_offset"].as_u64()).collect();
                if ends == vec![Some(10); 3] {
                    Ok(())
                } else {
                    Err(s.to_string())
                }
            },
        )
        .await;
    }
}

/// A compacted topic with replication factor 3 (as Kafka Connect creates
/// its internal topics): created on every node, compacted on each, and
/// described as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_is_replicated_on_every_node() {
    let cluster = Cluster::start("1MiB").await;
    let bootstrap = cluster.kafka_bootstrap();
    let out = py(
        "confluent",
        "create_topic",
        &json!({"bootstrap": bootstrap, "topic": "connect-configs", "partitions": 1, "replication": 3,
                "config": {"cleanup.policy": "compact"}}),
    );
    assert_eq!(out["ok"], true, "{out}");
    for id in NODES {
        let resp = cluster
            .client
            .get(cluster.node(id).url("/streams/connect-configs"))
            .send()
            .await
            .expect("GET stream");
        let s = support::expect_json(resp, StatusCode::OK).await;
        assert_eq!(
            (&s["cleanup"], s["replication"]["factor"].as_u64()),
            (&json!("compact"), Some(3)),
            "node {id}: {s}"
        );
    }
    let configs = py(
        "confluent",
        "describe_configs",
        &json!({"bootstrap": cluster.node(3).kafka(), "topic": "connect-configs"}),
    );
    assert_eq!(configs["configs"]["cleanup.policy"], "compact", "{configs}");
}

/// A topic a Kafka client creates in a cluster is replicated, so that
/// every node knows it: with the default replication factor (-1) it gets
/// `[cluster] default_replication_factor` replicas (here, unset: 3), and a
/// client that reaches another node reads it. With a factor of 1 each
/// partition lives on one node, and clients of any node still find it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_created_over_kafka_in_a_cluster_are_known_to_every_node() {
    let mut cluster = Cluster::start("1MiB").await;
    let out = py(
        "confluent",
        "create_topic",
        &json!({"bootstrap": cluster.node(1).kafka(), "topic": "dflt", "partitions": 2, "replication": -1}),
    );
    assert_eq!(out["ok"], true, "{out}");
    for id in NODES {
        let resp = cluster
            .client
            .get(cluster.node(id).url("/streams/dflt"))
            .send()
            .await
            .expect("GET stream");
        let s = support::expect_json(resp, StatusCode::OK).await;
        assert_eq!(s["replication"]["factor"].as_u64(), Some(3), "node {id}: {s}");
    }
    let values: Vec<Value> = (0..5)
        .map(|i| json!({"value": crate::kafka_support::hex(format!("v{i}").as_bytes()), "partition": 0}))
        .collect();
    let produced = py(
        "confluent",
        "produce",
        &json!({"bootstrap": cluster.node(2).kafka(), "topic": "dflt", "records": values, "config": {"acks": "all"}}),
    );
    let offsets: Vec<Value> = produced["results"]
        .as_array()
        .map(|r| r.iter().map(|x| x["offset"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(offsets, [0, 1, 2, 3, 4], "{produced}");
    let got = py(
        "confluent",
        "consume",
        &json!({"bootstrap": cluster.node(3).kafka(), "topic": "dflt", "partition": 0, "offset": 0, "count": 5, "timeout": 30}),
    );
    assert_eq!(got["records"].as_array().map(Vec::len), Some(5), "{got}");

    // Factor 1: each partition on one node, and every node knows the
    // topic and where each partition leads. Written through node 1 and read
    // through node 3, acks=all (capped at the one replica).
    let one = py(
        "confluent",
        "create_topic",
        &json!({"bootstrap": cluster.node(1).kafka(), "topic": "one", "partitions": 3, "replication": 1}),
    );
    assert_eq!(one["ok"], true, "{one}");
    let mut holders = Vec::new();
    for id in NODES {
        let resp = cluster
            .client
            .get(cluster.node(id).url("/streams/one"))
            .send()
            .await
            .expect("GET stream");
        let s = support::expect_json(resp, StatusCode::OK).await;
        assert_eq!(s["replication"]["factor"].as_u64(), Some(1), "node {id}: {s}");
        holders.push(s["replication"]["assignment"].clone());
    }
    assert!(holders.windows(2).all(|w| w[0] == w[1]), "one assignment: {holders:?}");
    let mut leaders: Vec<u64> = holders[0]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r[0].as_u64()).collect())
        .unwrap_or_default();
    leaders.sort_unstable();
    assert_eq!(leaders, [1, 2, 3], "round-robin, one replica each: {holders:?}");
    let values: Vec<Value> = (0..9)
        .map(|i| json!({"value": crate::kafka_support::hex(format!("o{i}").as_bytes()), "partition": i % 3}))
        .collect();
    let produced = py(
        "confluent",
        "produce",
        &json!({"bootstrap": cluster.node(1).kafka(), "topic": "one", "records": values, "config": {"acks": "all"}}),
    );
    let ok = produced["results"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|x| x["error"].is_null()).count());
    assert_eq!(ok, 9, "{produced}");
    for p in 0..3 {
        let got = py(
            "confluent",
            "consume",
            &json!({"bootstrap": cluster.node(3).kafka(), "topic": "one", "partition": p, "offset": 0, "count": 3, "timeout": 30}),
        );
        assert_eq!(got["records"].as_array().map(Vec::len), Some(3), "partition {p}: {got}");
    }
    // The node holding partition 2 goes down: the others take writes
    // through the nodes that are up; back, it has its partition's records.
    let down = holders[0][2][0]
        .as_u64()
        .and_then(|d| u32::try_from(d).ok())
        .expect("holder");
    let up = NODES.into_iter().find(|id| *id != down).expect("a node up");
    cluster.node_mut(down).kill();
    let others: Vec<Value> = (0..3u64)
        .filter(|p| *p != 2)
        .map(|p| json!({"value": crate::kafka_support::hex(b"while down"), "partition": p}))
        .collect();
    let produced = py(
        "confluent",
        "produce",
        &json!({"bootstrap": cluster.node(up).kafka(), "topic": "one", "records": others,
                "config": {"acks": "all", "message.timeout.ms": 20000}}),
    );
    let offsets: Vec<Value> = produced["results"]
        .as_array()
        .map(|r| r.iter().map(|x| x["offset"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(offsets, [3, 3], "{produced}");
    cluster.node_mut(down).restart().await;
    let got = py(
        "confluent",
        "consume",
        &json!({"bootstrap": cluster.node(up).kafka(), "topic": "one", "partition": 2, "offset": 0, "count": 3, "timeout": 30}),
    );
    assert_eq!(got["records"].as_array().map(Vec::len), Some(3), "{got}");
    // The broker configs say so, as Kafka's do.
    let configs = py(
        "confluent",
        "describe_configs",
        &json!({"bootstrap": cluster.node(2).kafka(), "broker": "2"}),
    );
    assert_eq!(configs["configs"]["default.replication.factor"], "3", "{configs}");
    assert_eq!(configs["configs"]["min.insync.replicas"], "2", "{configs}");
}

/// A topic's own `min.insync.replicas`, as Kafka Connect, Debezium or a
/// Strimzi topic set it at creation: every node keeps it, DescribeConfigs
/// gives it as set on the topic (a topic without one: the node's default),
/// and the leader enforces it. With one of three replicas down, acks=all
/// writes to a topic that needs all three are refused NOT_ENOUGH_REPLICAS,
/// while one that needs two takes them. Values no topic
/// could meet are refused INVALID_CONFIG. Changes reach every node, two
/// settings in one request together, and a later change of one keeps the
/// other on every node (nodes pass each other all settings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topics_own_min_insync_replicas_is_kept_on_every_node_and_enforced() {
    let mut cluster = Cluster::start("1MiB").await;
    let create = |topic: &str, min_insync: &str| {
        py(
            "confluent",
            "create_topic",
            &json!({"bootstrap": cluster.node(1).kafka(), "topic": topic, "partitions": 1, "replication": 3,
                    "config": {"min.insync.replicas": min_insync}}),
        )
    };
    for bad in ["4", "0", "two"] {
        let out = create("never", bad);
        assert_eq!(out["ok"], false, "{bad}: {out}");
        assert!(out["error"].to_string().contains("INVALID_CONFIG"), "{bad}: {out}");
    }
    assert_eq!(create("strict", "3")["ok"], true);
    assert_eq!(create("loose", "2")["ok"], true);
    for id in NODES {
        let resp = cluster
            .client
            .get(cluster.node(id).url("/streams/strict"))
            .send()
            .await
            .expect("GET stream");
        let s = support::expect_json(resp, StatusCode::OK).await;
        assert_eq!(s["replication"]["min_insync_replicas"], 3, "node {id}: {s}");
    }
    let described = |topic: &str| {
        py(
            "confluent",
            "describe_configs",
            &json!({"bootstrap": cluster.node(2).kafka(), "topic": topic, "detail": true}),
        )
    };
    let strict = described("strict");
    assert_eq!(strict["configs"]["min.insync.replicas"]["value"], "3", "{strict}");
    assert_eq!(
        strict["configs"]["min.insync.replicas"]["source"], 1,
        "TOPIC_CONFIG: {strict}"
    );
    let resp = cluster
        .client
        .post(cluster.node(1).url("/streams"))
        .json(&json!({"name": "dflt", "partitions": 1, "replication_factor": 3}))
        .send()
        .await
        .expect("POST /streams");
    support::expect_json(resp, StatusCode::CREATED).await;
    for (factor, min) in [(3, 4), (1, 2)] {
        let resp = cluster
            .client
            .post(cluster.node(1).url("/streams"))
            .json(&json!({"name": "never", "partitions": 1, "replication_factor": factor, "min_insync_replicas": min}))
            .send()
            .await
            .expect("POST /streams");
        let body = support::expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert!(body.to_string().contains("min_insync_replicas"), "{body}");
    }
    let dflt = described("dflt");
    assert_eq!(dflt["configs"]["min.insync.replicas"]["value"], "2", "{dflt}");
    assert_eq!(
        dflt["configs"]["min.insync.replicas"]["source"], 5,
        "DEFAULT_CONFIG: {dflt}"
    );

    // A follower of both goes down.
    let mut busy = Vec::new();
    for topic in ["strict", "loose"] {
        let s = named_stream_of(&cluster, 1, topic).await;
        busy.push(s["replication"]["assignment"][0][0].as_u64());
    }
    let down = NODES
        .into_iter()
        .find(|id| !busy.contains(&Some(u64::from(*id))))
        .expect("a node that leads neither");
    let up = NODES.into_iter().find(|id| *id != down).expect("a node up");
    cluster.node_mut(down).kill();
    let refused = write_all(&cluster.node(up).kafka(), "strict");
    assert!(
        refused["error"].to_string().contains("Not enough in-sync replicas"),
        "{refused}"
    );
    assert_eq!(write_all(&cluster.node(up).kafka(), "loose")["offset"], 0);

    // A change asked while a node is down is made on the nodes that are
    // up (the answer names the one down) and reaches it once it is back.
    let day = json!(86_400_000);
    let resp = cluster
        .client
        .patch(cluster.node(up).url("/streams/loose"))
        .json(&json!({"retention_ms": day}))
        .send()
        .await
        .expect("PATCH");
    let body = support::expect_error(resp, StatusCode::SERVICE_UNAVAILABLE, "replica_unavailable").await;
    assert!(body.to_string().contains(&format!("node {down}")), "{body}");
    let resp = cluster
        .client
        .patch(cluster.node(up).url("/streams/loose"))
        .json(&json!({"partitions": 2}))
        .send()
        .await
        .expect("PATCH");
    support::expect_error(resp, StatusCode::SERVICE_UNAVAILABLE, "replica_unavailable").await;
    for id in NODES.into_iter().filter(|id| *id != down) {
        let s = named_stream_of(&cluster, id, "loose").await;
        assert_eq!(
            (&s["retention_ms"], s["partitions"].as_array().map(Vec::len)),
            (&day, Some(2)),
            "node {id}: {s}"
        );
    }

    // Back up, the topic's minimum changes on every node, over Kafka and
    // over HTTP, and is enforced at its new value.
    cluster.node_mut(down).restart().await;
    wait_for(
        "the change it missed on the node that was down",
        Duration::from_secs(20),
        || async {
            let s = named_stream_of(&cluster, down, "loose").await;
            if s["retention_ms"] == day && s["partitions"].as_array().map(Vec::len) == Some(2) {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    )
    .await;
    let metrics = crate::kafka_support::metrics_text(cluster.node(down)).await;
    for what in ["settings", "partitions"] {
        let taken = metrics.lines().any(|l| {
            l.starts_with("sluice_cluster_sync_changes_total{")
                && l.contains(&format!("what=\"{what}\""))
                && l.contains("result=\"ok\"")
        });
        assert!(
            taken,
            "no {what} taken by the sync in node {down}'s /metrics:\n{metrics}"
        );
    }
    let alter = |set: Value| {
        py(
            "confluent",
            "alter_configs",
            &json!({"bootstrap": cluster.node(2).kafka(), "topic": "strict", "set": set}),
        )
    };
    let out = alter(json!({"min.insync.replicas": "4"}));
    assert!(out["error"].to_string().contains("INVALID_CONFIG"), "{out}");
    // Two settings in one request reach every node together.
    let both = alter(json!({"min.insync.replicas": "1", "max.message.bytes": "4000"}));
    assert_eq!(both["ok"], true, "{both}");
    assert_eq!(own_min_insync(&cluster, "strict").await, vec![json!(1); 3]);
    assert_eq!(
        on_every_node(&cluster, "strict", "/max_message_bytes").await,
        vec![json!(4000); 3]
    );
    let patch = |id: u32, body: Value| {
        cluster
            .client
            .patch(cluster.node(id).url("/streams/strict"))
            .json(&body)
            .send()
    };
    let resp = patch(3, json!({"min_insync_replicas": 4})).await.expect("PATCH");
    support::expect_error(resp, StatusCode::BAD_REQUEST, "invalid_config").await;
    let resp = patch(3, json!({"min_insync_replicas": null})).await.expect("PATCH");
    support::expect_json(resp, StatusCode::OK).await;
    assert_eq!(own_min_insync(&cluster, "strict").await, vec![Value::Null; 3]);
    // Nodes tell each other all settings: the other one stays everywhere.
    let max = on_every_node(&cluster, "strict", "/max_message_bytes").await;
    assert_eq!(max, vec![json!(4000); 3], "kept through another change");
    let resp = patch(1, json!({"min_insync_replicas": 2})).await.expect("PATCH");
    support::expect_json(resp, StatusCode::OK).await;
    assert_eq!(own_min_insync(&cluster, "strict").await, vec![json!(2); 3]);
    // Two changes asked of two nodes at the same moment: every node keeps
    // the same one, and a node whose own change lost says so.
    for round in 0..5u64 {
        let (a, b) = (1000 + round, 2000 + round);
        let (on_1, on_2) = tokio::join!(
            patch(1, json!({"max_message_bytes": a})),
            patch(2, json!({"max_message_bytes": b}))
        );
        let kept = on_every_node(&cluster, "strict", "/max_message_bytes").await;
        assert!(
            kept.iter().all(|v| *v == kept[0]),
            "round {round}: nodes differ: {kept:?}"
        );
        let mut applied = 0;
        for (asked, resp) in [(a, on_1), (b, on_2)] {
            let (status, body) = support::json_of(resp.expect("PATCH")).await;
            match status {
                StatusCode::OK => applied += 1,
                StatusCode::CONFLICT => {
                    assert_eq!(body["error"]["code"], "settings_conflict", "{body}");
                    assert_ne!(kept[0], json!(asked), "round {round}: a refused change was kept");
                }
                other => panic!("round {round}: {other} {body}"),
            }
        }
        assert!(applied >= 1, "round {round}: neither change was made");
        assert!(kept[0] == json!(a) || kept[0] == json!(b), "round {round}: {kept:?}");
    }
    cluster.node_mut(down).kill();
    let taken = write_all(&cluster.node(up).kafka(), "strict");
    assert!(taken["offset"].is_u64(), "{taken}");
}

/// One record written to partition 0 of `topic` with acks=all and no
/// retries: its offset, or the error.
fn write_all(bootstrap: &str, topic: &str) -> Value {
    let records = [json!({"value": crate::kafka_support::hex(b"while down"), "partition": 0})];
    let out = py(
        "confluent",
        "produce",
        &json!({"bootstrap": bootstrap, "topic": topic, "records": records,
                "config": {"acks": "all", "retries": 0, "message.timeout.ms": 20000}}),
    );
    out["results"][0].clone()
}

/// Each node's `min_insync_replicas` of `stream` (null: none of its own).
async fn own_min_insync(cluster: &Cluster, stream: &str) -> Vec<Value> {
    on_every_node(cluster, stream, "/replication/min_insync_replicas").await
}

/// What each node's `GET /streams/{stream}` holds at JSON `pointer` (null:
/// nothing there).
async fn on_every_node(cluster: &Cluster, stream: &str, pointer: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for id in NODES {
        let s = named_stream_of(cluster, id, stream).await;
        out.push(s.pointer(pointer).cloned().unwrap_or(Value::Null));
    }
    out
}
