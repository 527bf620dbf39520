//! Replication across three real `sluice` processes on 127.0.0.1 (see
//! docs/design/0003-replication.md): large records travelling as fragments
//! while a follower restarts, a follower killed with kill -9 catching up
//! byte for byte, and `acks=all` records surviving kill -9 of the leader
//! followed by a manual leader move; and the CLI's replication commands.
//!
//! Replicas are compared byte for byte through `/internal/replication/read`,
//! which serves a node's stored batches in the fetch answer's format.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use reqwest::StatusCode;

use crate::replication_support::*;
use crate::support::{self, expect_json};

/// 5 MiB records with a 1 MiB replication limit (every batch travels as
/// fragments) replicate intact while a follower is killed and restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_records_replicate_through_a_follower_restart() {
    const RECORDS: u64 = 12;
    const LEN: usize = 5 * 1024 * 1024;
    let started = Instant::now();
    let mut cluster = Cluster::start("1MiB").await;

    for i in 0..RECORDS {
        if i == 4 {
            let r = cluster.replication(3).await;
            println!("killing node 3 at log end {}", r["log_end_offset"]);
            cluster.node_mut(3).kill();
        }
        if i == 8 {
            cluster.node_mut(3).restart().await;
            let r = cluster.replication(3).await;
            println!("restarted node 3 at log end {}", r["log_end_offset"]);
        }
        let offsets = cluster.produce(1, "leader", &[big_value(i, LEN)]).await;
        assert_eq!(offsets, vec![i], "record {i}");
    }
    println!("produced {RECORDS} records of {LEN} bytes in {:?}", started.elapsed());

    let end = cluster.wait_converged(1, Duration::from_secs(60)).await;
    assert_eq!(end, RECORDS);
    println!("replicas converged at {:?}", started.elapsed());

    let batches = cluster.assert_identical(1).await;
    assert_eq!(batches.len() as u64, RECORDS, "one batch per produce request");
    for b in &batches {
        assert_eq!(b.count, 1);
        assert!(
            b.bytes.len() > LEN,
            "batch at {} is smaller than its record",
            b.base_offset
        );
    }
    // Under a 1 MiB limit such a batch travels as fragments of 1 MiB.
    let (header, data) = raw_read(&cluster.client, cluster.node(3), 0, 1 << 20).await;
    let fragment = &header["fragment"];
    let total = batches[0].bytes.len() as u64;
    assert_eq!(fragment["total_len"], total, "{header}");
    assert_eq!(fragment["index"], 0, "{header}");
    assert_eq!(fragment["of"], total.div_ceil(1 << 20), "{header}");
    assert_eq!(header["batches"], json!([]), "{header}");
    assert!(
        data == batches[0].bytes[..1 << 20],
        "fragment 0 is not the batch's first MiB"
    );

    // The values are intact on the leader and on the restarted follower.
    for id in [1, 3] {
        for i in 0..RECORDS {
            let r = cluster
                .read_one(id, i)
                .await
                .unwrap_or_else(|| panic!("node {id}: no record at {i}"));
            assert_eq!(r["offset"], i, "node {id}");
            let got = r["value"]
                .as_str()
                .unwrap_or_else(|| panic!("node {id}: value at {i} is not text"));
            assert!(got == big_value(i, LEN), "node {id}: value at {i} differs");
        }
    }
    let follower = cluster.replication(3).await;
    assert_eq!(follower["follower"]["state"], "fetching", "{follower}");
    assert_eq!(follower["follower"]["failures"], 0, "{follower}");
    println!(
        "large_records_replicate_through_a_follower_restart took {:?}",
        started.elapsed()
    );
}

/// A follower killed with kill -9 while `acks=all` producers write: acks
/// keep succeeding once it leaves the in-sync set; restarted, it catches up
/// and holds the leader's batches byte for byte, and rejoins the set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_follower_catches_up_byte_for_byte() {
    const REQUESTS: usize = 120;
    const PER_REQUEST: usize = 5;
    let started = Instant::now();
    let mut cluster = Cluster::start("1MiB").await;

    let done = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (client, url, done) = (cluster.client.clone(), cluster.records_url(1), done.clone());
        tokio::spawn(async move {
            let mut slow = Duration::ZERO;
            for r in 0..REQUESTS {
                let values: Vec<String> = (0..PER_REQUEST).map(|j| small_value(r * PER_REQUEST + j)).collect();
                let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
                let t = Instant::now();
                let resp = client
                    .post(format!("{url}?acks=all"))
                    .json(&records)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("request {r}: {e}"));
                let ack = expect_json(resp, StatusCode::OK).await;
                let offsets = support::check_ack(&ack, PER_REQUEST).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(offsets[0], (r * PER_REQUEST) as u64, "request {r}");
                slow = slow.max(t.elapsed());
                done.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            slow
        })
    };
    let reached = |n: usize| {
        let done = done.clone();
        async move {
            wait_for(
                &format!("{n} acknowledged requests"),
                Duration::from_secs(40),
                || async {
                    let d = done.load(Ordering::SeqCst);
                    if d >= n { Ok(()) } else { Err(format!("{d} so far")) }
                },
            )
            .await
        }
    };

    reached(40).await;
    cluster.node_mut(2).kill();
    println!("killed node 2 after {} requests", done.load(Ordering::SeqCst));
    reached(80).await;
    // Node 2 is out of the in-sync set: that is how the acks went on.
    let lead = cluster.replication(1).await;
    assert_eq!(lead["in_sync"], json!([1, 3]), "{lead}");
    let replica2 = lead["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .find(|r| r["node"] == 2)
        .cloned()
        .expect("replica 2");
    assert_eq!(replica2["in_sync"], false, "{lead}");
    assert!(replica2["lag"].as_u64().expect("lag") > 0, "{lead}");
    cluster.node_mut(2).restart().await;
    println!("restarted node 2 after {} requests", done.load(Ordering::SeqCst));
    let slowest = producer.await.expect("producer task");
    println!("all {REQUESTS} acks=all requests succeeded; slowest took {slowest:?}");
    assert!(slowest < Duration::from_secs(15), "an ack took {slowest:?}");

    let end = cluster.wait_converged(1, Duration::from_secs(30)).await;
    assert_eq!(end, (REQUESTS * PER_REQUEST) as u64);
    let lead = cluster.replication(1).await;
    let replicas = lead["replicas"].as_array().expect("replicas");
    assert!(replicas.iter().all(|r| r["in_sync"] == true && r["lag"] == 0), "{lead}");
    let batches = cluster.assert_identical(1).await;
    assert_eq!(batches.len(), REQUESTS, "one batch per produce request");

    // Node 2 serves every record, in order, at its offset.
    let got = support::read_all(&cluster.client, cluster.node(2), STREAM, 0, "").await;
    assert_eq!(got.len(), REQUESTS * PER_REQUEST);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r["offset"], i as u64);
        assert_eq!(r["value"], small_value(i), "node 2, offset {i}");
    }
    let follower = cluster.replication(2).await;
    assert_eq!(follower["follower"]["state"], "fetching", "{follower}");
    assert_eq!(follower["follower"]["in_sync"], true, "{follower}");
    println!(
        "a_killed_follower_catches_up_byte_for_byte took {:?}",
        started.elapsed()
    );
}

/// Records acknowledged with `acks=all` survive kill -9 of the leader and a
/// manual move of the leadership to a follower; the old leader, restarted,
/// follows the new one and ends up with its batches byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_records_survive_leader_kill_and_move() {
    const BEFORE: usize = 30;
    const AFTER: usize = 10;
    const PER_REQUEST: usize = 3;
    let started = Instant::now();
    let mut cluster = Cluster::start("1MiB").await;

    let mut acked: Vec<(u64, String)> = Vec::new();
    for r in 0..BEFORE {
        let values: Vec<String> = (0..PER_REQUEST).map(|j| small_value(r * PER_REQUEST + j)).collect();
        let offsets = cluster.produce(1, "all", &values).await;
        acked.extend(offsets.into_iter().zip(values));
    }
    let acked_end = acked.len() as u64;
    assert_eq!(acked.last().map(|a| a.0 + 1), Some(acked_end));

    cluster.node_mut(1).kill();
    let moved = cluster.move_leader(2).await;
    assert_eq!(moved["node"], 2, "{moved}");
    assert_eq!(moved["leader"], 2, "{moved}");
    assert_eq!(moved["epoch"], 1, "{moved}");
    assert_eq!(
        moved["log_end"], acked_end,
        "node 2 holds every acknowledged record: {moved}"
    );
    println!("moved the leadership to node 2 at {:?}: {moved}", started.elapsed());

    // Node 3 follows node 2 now, node 2 takes appends, node 3 does not.
    wait_for("node 3 to follow node 2", Duration::from_secs(10), || async {
        let r = cluster.replication(3).await;
        if r["leader"] == 2 && r["epoch"] == 1 {
            Ok(())
        } else {
            Err(r.to_string())
        }
    })
    .await;
    cluster.expect_not_leader(3).await;

    // Readers of node 2 see exactly the acknowledged records (once its high
    // watermark has moved past them), at their offsets.
    wait_for(
        "node 2 to show the acknowledged records",
        Duration::from_secs(15),
        || async {
            let r = cluster.replication(2).await;
            if r["high_watermark"].as_u64() >= Some(acked_end) {
                Ok(())
            } else {
                Err(r.to_string())
            }
        },
    )
    .await;
    let got = support::read_all(&cluster.client, cluster.node(2), STREAM, 0, "").await;
    let got: Vec<(u64, String)> = got
        .iter()
        .map(|r| {
            (
                r["offset"].as_u64().expect("offset"),
                r["value"].as_str().expect("text value").to_string(),
            )
        })
        .collect();
    assert_eq!(got, acked, "node 2 does not serve exactly the acknowledged records");

    // acks=all on the new leader: succeeds (once node 1 has left the set).
    for r in 0..AFTER {
        let n = BEFORE + r;
        let values: Vec<String> = (0..PER_REQUEST).map(|j| small_value(n * PER_REQUEST + j)).collect();
        let offsets = cluster.produce(2, "all", &values).await;
        assert_eq!(offsets[0], (n * PER_REQUEST) as u64, "request {n}");
        acked.extend(offsets.into_iter().zip(values));
    }
    let lead = cluster.replication(2).await;
    assert_eq!(lead["is_leader"], true, "{lead}");
    assert_eq!(lead["in_sync"], json!([2, 3]), "{lead}");

    // The old leader comes back as a follower of node 2.
    cluster.node_mut(1).restart().await;
    let r = cluster.replication(1).await;
    assert_eq!(r["leader"], 2, "restarted node 1 does not know node 2 leads: {r}");
    assert_eq!(r["is_leader"], false, "{r}");
    cluster.expect_not_leader(1).await;

    let end = cluster.wait_converged(2, Duration::from_secs(30)).await;
    assert_eq!(end, acked.len() as u64);
    cluster.assert_identical(2).await;
    let r = cluster.replication(1).await;
    assert_eq!(r["epoch"], 1, "{r}");
    assert_eq!(r["follower"]["leader"], 2, "{r}");
    assert_eq!(r["follower"]["state"], "fetching", "{r}");
    let got = support::read_all(&cluster.client, cluster.node(1), STREAM, 0, "").await;
    assert_eq!(got.len(), acked.len());
    for (r, (offset, value)) in got.iter().zip(&acked) {
        assert_eq!((&r["offset"], &r["value"]), (&json!(offset), &json!(value)));
    }
    println!(
        "acks_all_records_survive_leader_kill_and_move took {:?}",
        started.elapsed()
    );
}

/// The CLI creates a replicated stream, produces with `--acks all`, shows
/// leaders and the in-sync set, sets and clears a stream's own minimum
/// in-sync set, and moves a leader; a produce to the old
/// leader fails naming the new one. Elections: a preferred one brings the
/// moved partition back and leaves the other; with its leader killed, a
/// preferred election reports that partition failed (and the command
/// fails) and an unclean one fails over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_produces_to_and_moves_a_replicated_stream() {
    use crate::cli_support::{sluice, sluice_in};
    let mut cluster = Cluster::start("1MiB").await;
    // Its name's default assignment starts at node 1: partition 0 on
    // nodes 1, 2, 3 (led by 1), partition 1 on 2, 3, 1.
    let (n1, n3) = (cluster.node(1), cluster.node(3));
    let created = sluice(
        n1,
        &[
            "stream",
            "create",
            "from-cli",
            "-p",
            "2",
            "--replication-factor",
            "3",
            "--min-insync-replicas",
            "3",
            "--output",
            "json",
        ],
    )
    .ok();
    assert_eq!(created.json()["replication"]["factor"], 3, "{created:#?}");
    let described = sluice(n3, &["stream", "describe", "from-cli"]).ok();
    assert!(
        described
            .stdout
            .contains("3 per partition, min in-sync 3 (the stream's)"),
        "{described:#?}"
    );
    let altered = sluice(n3, &["stream", "alter", "from-cli", "--min-insync-replicas", "none"]).ok();
    assert!(altered.stdout.contains("min in-sync the node's"), "{altered:#?}");
    sluice(n3, &["stream", "alter", "from-cli", "--min-insync-replicas", "0"]).fails(2, "at least 1");
    sluice(n3, &["stream", "alter", "from-cli", "--min-insync-replicas", "4"]).fails(1, "more than the 3 replicas");
    // The stream's own Kafka batch limit: set on every node, then cleared.
    let altered = sluice(n3, &["stream", "alter", "from-cli", "--max-message-bytes", "2KiB"]).ok();
    assert!(altered.stdout.contains("max batch:  2.0 KiB"), "{altered:#?}");
    let on_n1 = sluice(n1, &["stream", "describe", "from-cli", "--output", "json"]).ok();
    assert_eq!(on_n1.json()["max_message_bytes"], 2048, "{on_n1:#?}");
    sluice(n3, &["stream", "alter", "from-cli", "--max-message-bytes", "0"]).fails(2, "at least 1");
    let cleared = sluice(n3, &["stream", "alter", "from-cli", "--max-message-bytes", "none"]).ok();
    assert!(!cleared.stdout.contains("max batch"), "{cleared:#?}");
    sluice_in(n1, &["produce", "from-cli", "--acks", "all"], "a\nb\nc\n").ok();
    let status = sluice(n1, &["status", "from-cli"]).ok();
    assert!(status.stdout.contains("node 1 (epoch 0)"), "{status:#?}");
    assert!(
        status.stdout.contains("1,2,3"),
        "in-sync set of partition 0: {status:#?}"
    );
    let moved = sluice(n3, &["stream", "leader", "from-cli", "-p", "0", "--node", "3"]).ok();
    assert!(
        moved.stdout.contains("node 3 leads at epoch 1 (log end 3)"),
        "{moved:#?}"
    );
    sluice_in(n1, &["produce", "from-cli", "--acks", "all"], "d\n").fails(1, "node 3");
    sluice_in(n3, &["produce", "from-cli", "--acks", "all"], "d\n").ok();
    let read = sluice(n3, &["consume", "from-cli", "--output", "json"]).ok();
    assert_eq!(crate::cli_support::values(&read), vec!["a", "b", "c", "d"]);
    sluice(n1, &["stream", "create", "bad", "--replication-factor", "0"]).fails(2, "replication-factor");

    // Partition 0 (replicas 1, 2, 3) goes back to node 1; partition 1's
    // first replica already leads.
    let elected = sluice(n3, &["stream", "elect", "from-cli"]).ok();
    assert!(elected.stdout.contains("node 1 leads at epoch 2"), "{elected:#?}");
    assert!(elected.stdout.contains("no election needed"), "{elected:#?}");
    let again = sluice(n3, &["stream", "elect", "from-cli", "--output", "json"])
        .ok()
        .json();
    assert_eq!(
        (again[0]["elected"].as_bool(), again[1]["elected"].as_bool()),
        (Some(false), Some(false)),
        "{again}"
    );
    let bad = cluster
        .client
        .post(n3.url("/streams/from-cli/partitions/0/elect"))
        .json(&json!({"type": "sideways"}))
        .send()
        .await
        .expect("POST .../elect");
    support::expect_error(bad, StatusCode::BAD_REQUEST, "invalid_request").await;
    cluster.node_mut(1).kill();
    let n2 = cluster.node(2);
    let failed = sluice(n2, &["stream", "elect", "from-cli"]).fails(1, "1 of 2 partition(s) of `from-cli` done");
    assert!(failed.stdout.contains("failed:"), "{failed:#?}");
    let over = sluice(n2, &["stream", "elect", "from-cli", "-p", "0", "--unclean"]).ok();
    // Either follower may win (the one node 1 last counted in sync first;
    // under load it may have dropped either for a moment).
    let winner = [2, 3]
        .into_iter()
        .find(|id| over.stdout.contains(&format!("node {id} leads at epoch 3")))
        .unwrap_or_else(|| panic!("no follower leads at epoch 3: {over:#?}"));
    let leader = cluster.node(winner);
    sluice_in(leader, &["produce", "from-cli", "-p", "0", "--acks", "all"], "e\n").ok();
}

/// Deleting a replicated stream while a node is down deletes it on the
/// nodes that answer and names the node down; once back, that node
/// deletes its copy on its own (it takes the delete from the others), and
/// deleting again finds no copy anywhere. A stream of one node alone that
/// shares a name is never deleted by another node's delete. Creating a replicated stream while a node is
/// down fails and leaves no copy on the nodes that took it, so creating it
/// again once the node is back succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_a_down_node_misses_are_finished_later_or_taken_back() {
    let mut cluster = Cluster::start("1MiB").await;
    let c = cluster.client.clone();
    let url = |cluster: &Cluster, id: u32, name: &str| cluster.node(id).url(&format!("/streams/{name}"));
    cluster.node_mut(3).kill();
    let resp = c.delete(url(&cluster, 1, STREAM)).send().await.expect("DELETE");
    let body = support::expect_error(resp, StatusCode::SERVICE_UNAVAILABLE, "replica_unavailable").await;
    assert!(body.to_string().contains("node 3"), "{body}");
    for id in [1, 2] {
        let resp = c.get(url(&cluster, id, STREAM)).send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "node {id}");
    }
    let late = json!({"name": "late", "partitions": 2, "replication_factor": 2});
    let resp = c
        .post(cluster.node(1).url("/streams"))
        .json(&late)
        .send()
        .await
        .expect("POST");
    let body = support::expect_error(resp, StatusCode::SERVICE_UNAVAILABLE, "replica_unavailable").await;
    assert!(body.to_string().contains("the others deleted it again"), "{body}");
    for id in [1, 2] {
        let resp = c.get(url(&cluster, id, "late")).send().await.expect("GET");
        assert_eq!(
            resp.status(),
            StatusCode::NOT_FOUND,
            "node {id} kept a half-made stream"
        );
    }
    cluster.node_mut(3).restart().await;
    wait_for(
        "node 3 to delete the copy it kept while down",
        Duration::from_secs(20),
        || async {
            let resp = c
                .get(url(&cluster, 3, STREAM))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            match resp.status() {
                StatusCode::NOT_FOUND => Ok(()),
                other => Err(format!("GET answered {other}")),
            }
        },
    )
    .await;
    let resp = c
        .post(cluster.node(2).url("/streams"))
        .json(&late)
        .send()
        .await
        .expect("POST");
    let made = support::expect_json(resp, StatusCode::CREATED).await;
    for id in NODES {
        let resp = c.get(url(&cluster, id, "late")).send().await.expect("GET");
        let got = support::expect_json(resp, StatusCode::OK).await;
        assert_eq!(got["created_ms"], made["created_ms"], "node {id}: {got}");
    }

    // Node 2 has a stream of its own named like one node 1 is asked to
    // delete: it stays.
    support::create_stream(&c, cluster.node(2), "solo", 1).await;
    let resp = c.delete(url(&cluster, 1, "solo")).send().await.expect("DELETE");
    support::expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;
    let resp = c.get(url(&cluster, 2, "solo")).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK, "another node's own stream stays");

    // Deleting again finds no copy on any node.
    let resp = c.delete(url(&cluster, 2, STREAM)).send().await.expect("DELETE");
    support::expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;
}
