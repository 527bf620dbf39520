//! Changes to a replicated stream after its creation. Records deleted:
//! only a partition's leader deletes, and it answers once every in-sync
//! follower's log starts there too; a follower keeps that start across its
//! restart, and one that was down follows it when it comes back. A new
//! retention or new partitions, asked of any node, are set on every node
//! (new partitions replicated from their own leaders); a node that is down
//! is reported and takes the change from the others once it is back (the
//! stream sync), and asking again changes nothing more.

use super::tests::{Node, big, cluster, replicated, restart, stop, wait_until};
use crate::Host;
use crate::log::meta::{Retention, RetentionChange};
use crate::node::Acks;

fn start_of(h: &Host) -> u64 {
    h.log().replica("s", 0).unwrap().log_start
}

async fn write(nodes: &[Node], from: usize, batches: usize) {
    for i in from..from + batches {
        nodes[0]
            .host
            .append_acks("s", 0, &[big(i, 100)], Acks::All)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_deleted_on_the_leader_are_deleted_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = cluster(dir.path(), 3).await;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    write(&nodes, 0, 20).await;

    // A follower does not delete: its leader does.
    let refused = nodes[1].host.delete_records("s", 0, Some(10)).await.unwrap_err();
    assert_eq!(refused.code(), "not_leader", "{refused}");
    assert_eq!(start_of(&nodes[1].host), 0);

    // The leader answers once the in-sync followers start there too.
    assert_eq!(nodes[0].host.delete_records("s", 0, Some(10)).await.unwrap(), 10);
    for n in &nodes {
        assert_eq!(start_of(&n.host), 10);
        assert_eq!(n.host.stream_status("s").unwrap()[0].start_offset, 10);
    }
    let below = nodes[0].host.log().raw_batches("s", 0, 9, 1 << 20, 10).await;
    assert!(below.is_err(), "{below:?}");

    // A follower keeps its start across a restart.
    stop(nodes.remove(1)).await;
    nodes.insert(1, restart(dir.path(), 2, &addrs).await);
    assert_eq!(start_of(&nodes[1].host), 10);

    // A follower that is down drops out of the in-sync set and the
    // deletion is answered without it; back, it follows the leader's start.
    stop(nodes.pop().unwrap()).await;
    write(&nodes, 20, 5).await;
    assert_eq!(nodes[0].host.delete_records("s", 0, Some(15)).await.unwrap(), 15);
    assert_eq!(start_of(&nodes[1].host), 15);
    nodes.push(restart(dir.path(), 3, &addrs).await);
    let n3 = nodes[2].host.clone();
    wait_until("node 3 follows the leader's start", async || start_of(&n3) == 15).await;
    let leader_end = nodes[0].host.log().replica("s", 0).unwrap().log_end;
    wait_until("node 3 catches up", async || {
        n3.log().replica("s", 0).unwrap().log_end == leader_end
    })
    .await;
    for n in nodes {
        stop(n).await;
    }
}

fn retention_of(h: &Host) -> Retention {
    h.describe_stream("s").unwrap().retention
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_retention_asked_of_any_node_is_set_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = cluster(dir.path(), 3).await;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    let hour = Retention {
        ms: Some(3_600_000),
        bytes: None,
    };
    let set_ms = RetentionChange {
        ms: Some(hour.ms),
        bytes: None,
    };
    // Asked of a follower; validate_only changes nothing anywhere.
    let checked = nodes[1].host.set_retention("s", set_ms, true).await.unwrap();
    assert_eq!(checked.retention, hour);
    for n in &nodes {
        assert_eq!(retention_of(&n.host), Retention::default());
    }
    let info = nodes[1].host.set_retention("s", set_ms, false).await.unwrap();
    assert_eq!(info.retention, hour);
    for n in &nodes {
        assert_eq!(retention_of(&n.host), hour);
    }

    // Node 3 is down: the change is reported, made on nodes 1 and 2.
    stop(nodes.pop().unwrap()).await;
    let both = Retention {
        ms: Some(3_600_000),
        bytes: Some(1 << 30),
    };
    let set_bytes = RetentionChange {
        ms: None,
        bytes: Some(both.bytes),
    };
    let refused = nodes[0].host.set_retention("s", set_bytes, false).await.unwrap_err();
    assert_eq!(refused.code(), "replica_unavailable", "{refused}");
    assert_eq!(retention_of(&nodes[0].host), both);
    assert_eq!(retention_of(&nodes[1].host), both);

    // Back, node 3 takes it from the others (a round of the sync, which
    // also runs on its own), keeps it through a restart, and asking again
    // changes nothing more.
    nodes.push(restart(dir.path(), 3, &addrs).await);
    nodes[2].host.sync_streams().await;
    assert_eq!(retention_of(&nodes[2].host), both);
    nodes[0].host.set_retention("s", set_bytes, false).await.unwrap();
    for n in &nodes {
        assert_eq!(retention_of(&n.host), both);
    }
    stop(nodes.pop().unwrap()).await;
    let n3 = restart(dir.path(), 3, &addrs).await;
    assert_eq!(retention_of(&n3.host), both);
    nodes.push(n3);
    for n in nodes {
        stop(n).await;
    }
}

fn assignment_of(h: &Host) -> Vec<Vec<u32>> {
    h.describe_stream("s").unwrap().replication.unwrap().assignment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_added_on_any_node_are_added_and_replicated_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = cluster(dir.path(), 3).await;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();

    // A bad assignment, or validate_only, changes nothing anywhere.
    let bad = nodes[1]
        .host
        .add_partitions_assigned("s", 2, Some(vec![vec![1, 9, 2]]), false)
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "invalid_request", "{bad}");
    let dry = nodes[1].host.add_partitions("s", 3, true).await.unwrap();
    assert_eq!(dry.partitions.len(), 3);
    for n in &nodes {
        assert_eq!(assignment_of(&n.host), vec![vec![1, 2, 3]]);
    }

    // Asked of a follower: round-robin, as at creation, on every node.
    nodes[1].host.add_partitions("s", 3, false).await.unwrap();
    let placed = vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]];
    for n in &nodes {
        assert_eq!(assignment_of(&n.host), placed);
    }
    // Each new partition takes acks=all appends on its leader only, and
    // its followers hold them.
    for (p, leader) in [(1u32, 1usize), (2, 2)] {
        let appended = nodes[leader]
            .host
            .append_acks("s", p, &[big(p as usize, 100)], Acks::All)
            .await
            .unwrap();
        assert_eq!(appended.base_offset, 0);
        let other = (leader + 1) % 3;
        let refused = nodes[other]
            .host
            .append_acks("s", p, &[big(0, 10)], Acks::All)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "not_leader", "{refused}");
        for n in &nodes {
            assert_eq!(n.host.log().replica("s", p).unwrap().log_end, 1, "partition {p}");
        }
    }

    // Node 3 is down: reported, grown on nodes 1 and 2; once back, node 3
    // takes the partition from them (a round of the sync, which also runs
    // on its own), and a restart keeps the partitions and their leaders.
    stop(nodes.pop().unwrap()).await;
    let refused = nodes[0].host.add_partitions("s", 4, false).await.unwrap_err();
    assert_eq!(refused.code(), "replica_unavailable", "{refused}");
    assert_eq!(assignment_of(&nodes[0].host).len(), 4);
    assert_eq!(assignment_of(&nodes[1].host).len(), 4);
    nodes.push(restart(dir.path(), 3, &addrs).await);
    nodes[2].host.sync_streams().await;
    for n in &nodes {
        assert_eq!(assignment_of(&n.host), assignment_of(&nodes[0].host));
    }
    stop(nodes.pop().unwrap()).await;
    nodes.push(restart(dir.path(), 3, &addrs).await);
    assert_eq!(assignment_of(&nodes[2].host)[..3], placed[..]);
    nodes[2]
        .host
        .append_acks("s", 2, &[big(7, 100)], Acks::All)
        .await
        .unwrap();
    for n in nodes {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_plugins_are_checked_before_a_replicated_stream_changes() {
    use sluice_test_artifacts as wasm;
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _) = cluster(dir.path(), 3).await;
    // A count past `max_partitions` is refused before anything is sized by
    // it (the assignment used to be built first: billions of lists).
    let huge = nodes[0]
        .host
        .create_stream_with("big", u32::MAX, replicated(3))
        .await
        .unwrap_err();
    assert_eq!(huge.code(), "invalid_request", "{huge}");
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    let huge = nodes[1].host.add_partitions("s", u32::MAX, false).await.unwrap_err();
    assert_eq!(huge.code(), "invalid_request", "{huge}");

    // A compaction plugin must be on every node: each checks its own.
    let mut cfg = replicated(3);
    let mut policy = crate::log::meta::Compaction::by_record_key(false);
    policy.plugin = "keys".into();
    policy.config = vec![("pointer".into(), "/id".into())];
    cfg.compaction = Some(policy);
    nodes[0]
        .host
        .put_plugin("keys", wasm::read(wasm::JSON_KEY))
        .await
        .unwrap();
    let missing = nodes[0].host.create_stream_with("c", 1, cfg.clone()).await.unwrap_err();
    assert_eq!(missing.code(), "replica_unavailable", "{missing}");
    assert!(missing.to_string().contains("keys"), "{missing}");
    assert!(nodes[0].host.describe_stream("c").is_err());
    for n in &nodes[1..] {
        n.host.put_plugin("keys", wasm::read(wasm::JSON_KEY)).await.unwrap();
    }
    nodes[0].host.create_stream_with("c2", 1, cfg).await.unwrap();
    for n in &nodes {
        assert!(n.host.describe_stream("c2").unwrap().compaction.is_some());
    }
    for n in nodes {
        stop(n).await;
    }
}

#[test]
fn a_fetch_request_from_another_build_parses() {
    let older = r#"{"stream":"s","created_ms":1,"partition":0,"replica":2,"fetch_offset":5,
        "leader_epoch":1,"last_epoch":null,"wait_ms":0,"max_bytes":10}"#;
    let req: super::wire::FetchRequest = serde_json::from_str(older).unwrap();
    assert_eq!(req.log_start, None);
    let newer = older.replace(
        "\"max_bytes\":10",
        "\"max_bytes\":10,\"log_start\":3,\"something_new\":true",
    );
    let req: super::wire::FetchRequest = serde_json::from_str(&newer).unwrap();
    assert_eq!(req.log_start, Some(3));
}

/// Settings changes and the stream sync from a build before stamps (none
/// given: unset) and from a later one (fields unknown here: ignored).
#[test]
fn settings_and_sync_messages_from_another_build_parse() {
    let older = r#"{"name":"s","created_ms":1,"settings":{"retention":{"ms":5}}}"#;
    let spec: crate::node::SettingsSpec = serde_json::from_str(older).unwrap();
    assert!(spec.stamp.is_unset());
    let newer = r#"{"name":"s","created_ms":1,"settings":{"retention":{"ms":5}},
        "stamp":{"version":2,"node":3},"something_new":1}"#;
    let spec: crate::node::SettingsSpec = serde_json::from_str(newer).unwrap();
    assert_eq!((spec.stamp.version, spec.stamp.node), (2, 3));
    let ask = r#"{"streams":[{"name":"s","created_ms":1,"partitions":2,"later":[]}],"later":0}"#;
    let ask: crate::node::SyncAsk = serde_json::from_str(ask).unwrap();
    assert_eq!((ask.streams[0].partitions, ask.streams[0].stamp.is_unset()), (2, true));
}

/// What the stream sync answers another node: newer settings, partitions
/// beyond its count, and deletes, each only of the same stream (name and
/// creation time); a stream this node never held, or held at another
/// creation time, is never answered as deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_answers_only_newer_changes_of_the_same_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _) = cluster(dir.path(), 3).await;
    let host = &nodes[1].host;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    nodes[0].host.create_stream_with("g", 1, replicated(3)).await.unwrap();
    let created = |name: &str| host.stream_created_ms(name).unwrap();
    let (s_at, g_at) = (created("s"), created("g"));
    let ask = |streams: serde_json::Value| -> crate::node::SyncAsk {
        serde_json::from_value(serde_json::json!({ "streams": streams })).unwrap()
    };
    // Nothing newer than what the asker holds.
    let same = ask(serde_json::json!([{"name": "g", "created_ms": g_at, "partitions": 1}]));
    assert_eq!(host.sync_answer(&same).await, crate::node::SyncAnswer::default());

    let hour = RetentionChange {
        ms: Some(Some(3_600_000)),
        bytes: None,
    };
    nodes[0].host.set_retention("g", hour, false).await.unwrap();
    nodes[0].host.add_partitions("g", 3, false).await.unwrap();
    nodes[0].host.delete_stream("s").await.unwrap();
    let behind = ask(serde_json::json!([
        {"name": "g", "created_ms": g_at, "partitions": 2},
        {"name": "s", "created_ms": s_at, "partitions": 1},
        {"name": "s", "created_ms": s_at + 1, "partitions": 1},
        {"name": "never", "created_ms": 5, "partitions": 1},
    ]));
    let answer = host.sync_answer(&behind).await;
    assert_eq!(answer.settings.len(), 1, "{answer:?}");
    assert_eq!(answer.settings[0].settings.retention.ms, Some(3_600_000));
    let grown = &answer.partitions;
    assert_eq!(grown.len(), 1, "{answer:?}");
    assert_eq!((grown[0].partitions, grown[0].assignment.len()), (3, 1));
    let all = host.describe_stream("g").unwrap().replication.unwrap().assignment;
    assert_eq!(grown[0].assignment[..], all[2..]);
    let deleted: Vec<(&str, u64)> = answer.deleted.iter().map(|d| (d.name.as_str(), d.created_ms)).collect();
    assert_eq!(deleted, vec![("s", s_at)], "only the incarnation this node deleted");
    // A stamp as new as its own: nothing to take.
    let stamp = host.log().stream_meta("g").unwrap().settings_stamp;
    let current = ask(serde_json::json!([{"name": "g", "created_ms": g_at, "partitions": 3, "stamp": stamp}]));
    assert_eq!(host.sync_answer(&current).await, crate::node::SyncAnswer::default());
    for n in nodes {
        stop(n).await;
    }
}
