//! A network partition between a follower and its leader, with real
//! processes: node 3 reaches node 1 only through a proxy. While
//! confluent-kafka produces with acks=all (idempotent), the link goes
//! silent both ways with no connection closed; the leader drops node 3
//! from the in-sync set and keeps answering with nodes 1 and 2. The link
//! then heals for new connections only, the old ones left dead as a real
//! partition leaves them: node 3's calls on them must time out, and it
//! must reconnect, catch up and rejoin the in-sync set, holding the
//! leader's batches byte for byte, every value exactly once.

use std::time::Duration;

use serde_json::json;

use crate::fault_proxy::FaultProxy;
use crate::kafka_cluster::{end_offset, read_all};
use crate::kafka_support::Sequence;
use crate::replication_support::{Cluster, STREAM, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_follower_leaves_the_in_sync_set_and_catches_up_after_the_heal() {
    const COUNT: u64 = 6_000;
    let proxy = FaultProxy::bind().await;
    let via = proxy.addr();
    // Node 3's way to node 1 is the proxy; its calls time out after 2 s,
    // and two failed fetches in a row would stop it.
    let cluster = Cluster::start_edited("1MiB", |id, config| {
        if id != 3 {
            return config;
        }
        let mut out = String::new();
        for line in config.lines() {
            if line.starts_with("nodes = ") {
                let to_one = line
                    .split(", ")
                    .map(|part| {
                        let (key, _) = part.split_once(" = \"").expect("a node address");
                        if key.ends_with("\"1\"") {
                            format!("{key} = \"{via}\"")
                        } else {
                            part.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push_str(&to_one);
                if !to_one.ends_with('}') {
                    out.push_str(" }");
                }
            } else {
                out.push_str(line);
            }
            out.push('\n');
            if line == "[cluster]" {
                // A partition outlasts a few calls: they must not count
                // as a misbehaving leader's failures, which stop a follower.
                out.push_str("peer_timeout = \"2s\"\nfetch_failures_max = 2\n");
            }
        }
        out
    })
    .await;
    let node1 = cluster.node(1).base();
    proxy.set_target(node1.trim_start_matches("http://").to_string());

    let args = json!({
        "bootstrap": cluster.kafka_bootstrap(), "topic": STREAM, "count": COUNT, "pace_every": 10,
        "config": {"acks": "all", "enable.idempotence": true, "message.timeout.ms": 60000}
    });
    let producer = Sequence::spawn(&args);
    let until_end = |at_least: u64, what: &'static str| {
        let cluster = &cluster;
        wait_for(what, Duration::from_secs(60), move || async move {
            let end = end_offset(cluster, 1).await;
            if end >= at_least { Ok(end) } else { Err(end.to_string()) }
        })
    };
    until_end(COUNT / 5, "a fifth of the records on node 1").await;
    let in_sync = |want: serde_json::Value, what: &'static str| {
        let cluster = &cluster;
        wait_for(what, Duration::from_secs(30), move || {
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
    };
    in_sync(json!([1, 2, 3]), "all three in sync before the partition").await;

    proxy.partition();
    in_sync(json!([1, 2]), "node 3 out of the in-sync set").await;
    let out_at = end_offset(&cluster, 1).await;
    assert!(out_at < COUNT, "the producer finished before node 3 fell out");
    // acks=all goes on with nodes 1 and 2 while node 3 is cut off.
    until_end(out_at + 500, "acks=all answered without node 3").await;
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
