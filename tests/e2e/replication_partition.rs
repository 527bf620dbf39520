//! Network partitions between followers and their leader, with real
//! processes: followers reach node 1 only through a proxy while
//! confluent-kafka produces with acks=all (idempotent). The link goes
//! silent both ways with no connection closed, then heals for new
//! connections only, the old ones left dead as a real partition leaves
//! them: a follower's calls on them must time out, and it must reconnect,
//! catch up and rejoin the in-sync set, holding the leader's batches byte
//! for byte, every value exactly once. With one follower cut off, acks=all
//! goes on with the other; with both, acks=all is refused until they are
//! back.

use std::time::Duration;

use serde_json::json;

use crate::fault_proxy::FaultProxy;
use crate::kafka_cluster::{end_offset, read_all, wait_end_at_least};
use crate::kafka_support::Sequence;
use crate::replication_support::{Cluster, STREAM, wait_for};
use crate::support::expect_error;

/// `config` with node 1's address in `nodes` replaced by `via`, and
/// `extra` lines added to `[cluster]`.
fn route_node_1_via(config: &str, via: &str, extra: &str) -> String {
    let mut out = String::new();
    for line in config.lines() {
        if line.starts_with("nodes = ") {
            let routed = line
                .split(", ")
                .map(|part| match part.split_once(" = \"") {
                    Some((key, _)) if key.ends_with("\"1\"") => format!("{key} = \"{via}\""),
                    _ => part.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&routed);
            if !routed.ends_with('}') {
                out.push_str(" }");
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
        if line == "[cluster]" {
            out.push_str(extra);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_follower_leaves_the_in_sync_set_and_catches_up_after_the_heal() {
    const COUNT: u64 = 6_000;
    // Node 3's calls time out after 2 s, and two failed fetches in a row
    // would stop it (a partition outlasts a few calls: they must not count
    // as a misbehaving leader's failures).
    let (proxy, cluster, producer) = start(&[3], COUNT).await;
    wait_in_sync(&cluster, json!([1, 2, 3]), "all three in sync before the partition").await;

    proxy.partition();
    wait_in_sync(&cluster, json!([1, 2]), "node 3 out of the in-sync set").await;
    let out_at = end_offset(&cluster, 1).await;
    assert!(out_at < COUNT, "the producer finished before node 3 fell out");
    // acks=all goes on with nodes 1 and 2 while node 3 is cut off.
    wait_end_at_least(&cluster, out_at + 500, "acks=all answered without node 3").await;
    let r3 = cluster.replication(3).await;
    let lagging = r3["log_end_offset"].as_u64().expect("log_end_offset");
    assert!(
        lagging < end_offset(&cluster, 1).await,
        "node 3 kept up through a partition: {r3}"
    );

    proxy.heal_new_connections_only();
    producer.finish(COUNT).await;
    let end = cluster.wait_converged(1, Duration::from_secs(60)).await;
    cluster.assert_identical(1).await;
    let values = read_all(&cluster, 3).await;
    assert_eq!(values.len() as u64, end, "node 3's records");
    assert!(
        values.iter().copied().eq(0..COUNT),
        "node 3 does not hold every value once, in order ({} records)",
        values.len()
    );
    println!("node 3 fell out at {out_at}, was at {lagging} in the partition, caught up to {end}");
}

/// A cluster whose nodes `routed` reach node 1 through a new proxy (their
/// calls time out after 2 s; two failed fetches in a row stop them), and a
/// confluent-kafka producer sending `count` values with acks=all
/// (idempotent), a fifth of them on node 1 already.
async fn start(routed: &[u32], count: u64) -> (FaultProxy, Cluster, Sequence) {
    let proxy = FaultProxy::bind().await;
    let via = proxy.addr();
    let cluster = Cluster::start_edited("1MiB", |id, config| {
        if routed.contains(&id) {
            route_node_1_via(&config, &via, "peer_timeout = \"2s\"\nfetch_failures_max = 2\n")
        } else {
            config
        }
    })
    .await;
    proxy.set_target(cluster.node(1).base().trim_start_matches("http://").to_string());
    let args = json!({
        "bootstrap": cluster.kafka_bootstrap(), "topic": STREAM, "count": count, "pace_every": 10,
        "config": {"acks": "all", "enable.idempotence": true, "message.timeout.ms": 60000}
    });
    let producer = Sequence::spawn(&args);
    wait_end_at_least(&cluster, count / 5, "a fifth of the records on node 1").await;
    (proxy, cluster, producer)
}

/// The leader's `in_sync` set is `want` within 30 s.
async fn wait_in_sync(cluster: &Cluster, want: serde_json::Value, what: &str) {
    wait_for(what, Duration::from_secs(30), || {
        let want = want.clone();
        async move {
            let r = cluster.replication(1).await;
            if r["in_sync"] == want {
                Ok(())
            } else {
                Err(r.to_string())
            }
        }
    })
    .await
}

/// Both followers reach the leader only through the proxy, so a partition
/// cuts the leader off from all of them while the producer still reaches
/// it: acks=all is then refused (`not_enough_replicas`), the idempotent
/// producer retries, and once the followers are back every value is on
/// all three replicas exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_its_followers_answers_acks_all_only_once_they_are_back() {
    const COUNT: u64 = 4_000;
    let (proxy, cluster, producer) = start(&[2, 3], COUNT).await;
    wait_in_sync(&cluster, json!([1, 2, 3]), "all three in sync before the partition").await;

    proxy.partition();
    wait_in_sync(&cluster, json!([1]), "both followers out of the in-sync set").await;
    // With one replica in sync (min_insync_replicas 2), acks=all is refused
    // before anything is written.
    let resp = cluster
        .client
        .post(format!("{}?acks=all", cluster.records_url(1)))
        .json(&json!([{"value": "refused"}]))
        .send()
        .await
        .expect("produce during the partition");
    expect_error(resp, reqwest::StatusCode::SERVICE_UNAVAILABLE, "not_enough_replicas").await;
    assert!(
        end_offset(&cluster, 1).await < COUNT,
        "the producer finished before the partition"
    );

    proxy.heal_new_connections_only();
    producer.finish(COUNT).await;
    let end = cluster.wait_converged(1, Duration::from_secs(60)).await;
    cluster.assert_identical(1).await;
    for id in [2, 3] {
        let values = read_all(&cluster, id).await;
        assert!(
            values.iter().copied().eq(0..COUNT),
            "node {id} does not hold every value once, in order ({} records, end {end})",
            values.len()
        );
    }
}
