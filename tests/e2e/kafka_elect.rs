//! Leader elections from Kafka admin clients nobody here wrote, on three
//! node processes: confluent-kafka's PREFERRED election moves a partition
//! back to its first replica after a move, and is not needed once it leads;
//! with the leader killed (kill -9), it reports the preferred replica
//! unavailable, the other nodes' Metadata leaves the dead node out and the
//! partition without a leader, and kafka-python's UNCLEAN election hands
//! the partition to a follower (the one most likely to hold everything)
//! that takes acks=all produce; restarted, the first replica is listed again,
//! follows, catches up and leads again through kafka-python's PREFERRED
//! election over all partitions, holding every record once, in order. An
//! election that is not needed is ELECTION_NOT_NEEDED, or left out when
//! all partitions were asked for without a list.

use std::time::Duration;

use serde_json::{Value, json};

use crate::kafka_cluster::read_all;
use crate::kafka_support::py;
use crate::replication_support::{Cluster, NODES, STREAM, wait_for};

fn elect(lib: &str, bootstrap: &str, kind: &str, partitions: Value) -> Value {
    py(
        lib,
        "elect_leaders",
        &json!({"bootstrap": bootstrap, "type": kind, "partitions": partitions}),
    )
}

/// Waits until every node in `on` names `leader` for partition 0 and it
/// counts all of `in_sync` in sync.
async fn wait_leader(cluster: &Cluster, on: &[u32], leader: u32, in_sync: Value) {
    wait_for("the leader everywhere", Duration::from_secs(30), || async {
        for id in on {
            let r = cluster.replication(*id).await;
            if r["leader"] != leader {
                return Err(format!("node {id}: {r}"));
            }
        }
        let r = cluster.replication(leader).await;
        match r["in_sync"] == in_sync {
            true => Ok(()),
            false => Err(format!("leader {leader}: {r}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_clients_elect_preferred_and_unclean_leaders() {
    let mut cluster = Cluster::start("1MiB").await;
    let values: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    cluster.produce(1, "all", &values).await;
    let all = cluster.kafka_bootstrap();
    let ours = json!([[STREAM, 0]]);
    let key = format!("{STREAM}:0");

    cluster.move_leader(3).await;
    let out = elect("confluent", &all, "preferred", ours.clone());
    assert_eq!(out["results"], json!({&key: null}), "elected: {out}");
    wait_leader(&cluster, &NODES, 1, json!([1, 2, 3])).await;
    let out = elect("confluent", &all, "preferred", ours.clone());
    assert_eq!(out["results"][&key], "ELECTION_NOT_NEEDED", "{out}");

    // Node 1 dies. Its followers' bootstrap list: nodes 2 and 3.
    cluster.node_mut(1).kill();
    let live = format!("{},{}", cluster.node(2).kafka(), cluster.node(3).kafka());
    let out = elect("confluent", &live, "preferred", ours.clone());
    assert_eq!(out["results"][&key], "PREFERRED_LEADER_NOT_AVAILABLE", "{out}");
    // Nodes 2 and 3 find node 1 down (their fetches are refused): their
    // Metadata lists it no more and the partition has no leader, so no
    // client tries node 1 (kafka-python's admin client gives up when it
    // does).
    wait_for("node 1 left out of Metadata", Duration::from_secs(30), || async {
        let md = py("confluent", "metadata", &json!({"bootstrap": live}));
        let ids: Vec<Value> = md["brokers"]
            .as_array()
            .map(|b| b.iter().map(|n| n[0].clone()).collect())
            .unwrap_or_default();
        match (ids == [json!(2), json!(3)], &md["topics"][STREAM]["0"]["leader"]) {
            (true, Value::Number(n)) if n.as_i64() == Some(-1) => Ok(()),
            _ => Err(md.to_string()),
        }
    })
    .await;
    let metrics = cluster
        .client
        .get(cluster.node(2).url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    for want in [
        r#"sluice_cluster_peer_down{node="1"} 1"#,
        r#"sluice_cluster_peer_down{node="3"} 0"#,
    ] {
        assert!(metrics.contains(want), "{want} missing from node 2's /metrics");
    }
    let out = elect("kafkapython", &live, "unclean", ours.clone());
    assert_eq!(out["results"], json!({&key: 0}), "elected: {out}");
    // Either follower may win: the one node 1 last counted in sync goes
    // first (under load it may have dropped either for a moment), then the
    // longer log, then the assignment's order.
    let new = wait_for("one new leader on nodes 2 and 3", Duration::from_secs(30), || async {
        let (r2, r3) = (cluster.replication(2).await, cluster.replication(3).await);
        match (r2["leader"].as_u64(), r3["leader"].as_u64()) {
            (Some(a), Some(b)) if a == b && (a == 2 || a == 3) => Ok(a as u32),
            _ => Err(format!("node 2: {r2}, node 3: {r3}")),
        }
    })
    .await;
    wait_leader(&cluster, &[2, 3], new, json!([2, 3])).await;
    let more: Vec<String> = (20..30).map(|i| i.to_string()).collect();
    assert_eq!(cluster.produce(new, "all", &more).await.first(), Some(&20));
    // The leader answers: no unclean election.
    let out = elect("confluent", &live, "unclean", ours.clone());
    assert_eq!(out["results"][&key], "ELECTION_NOT_NEEDED", "{out}");

    // Node 1 comes back, follows the new leader, then leads again.
    cluster.node_mut(1).restart().await;
    wait_leader(&cluster, &NODES, new, json!([1, 2, 3])).await;
    let out = elect("kafkapython", &all, "preferred", Value::Null);
    assert_eq!(out["results"], json!({&key: 0}), "all partitions: {out}");
    wait_leader(&cluster, &NODES, 1, json!([1, 2, 3])).await;
    // librdkafka sends no list (all partitions): only elections that were
    // needed are listed. kafka-python lists every partition itself.
    let out = elect("confluent", &all, "preferred", Value::Null);
    assert_eq!(out["results"], json!({}), "nothing to elect: {out}");
    let out = elect("kafkapython", &all, "preferred", Value::Null);
    assert_eq!(out["results"], json!({&key: 84}), "ELECTION_NOT_NEEDED: {out}");
    let want: Vec<u64> = (0..30).collect();
    for id in NODES {
        assert_eq!(read_all(&cluster, id).await, want, "node {id}");
    }
}
