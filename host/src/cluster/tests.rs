//! Replication between nodes of one process over real HTTP on 127.0.0.1:
//! batches larger than the fetch limit arrive whole and byte for byte,
//! `acks=all` waits for the followers, only the leader takes appends, and
//! a follower that stopped catches up.

use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;

use crate::config::ClusterSettings;
use crate::log::meta::{Replication, StreamConfig};
use crate::node::Acks;
use crate::{Host, Record, Settings};

pub(crate) struct Node {
    pub host: Host,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

pub(crate) async fn start(dir: &std::path::Path, id: u32, listener: TcpListener, nodes: &[(u32, String)]) -> Node {
    start_with(dir, id, listener, nodes, &|_| {}).await
}

pub(crate) async fn start_with(
    dir: &std::path::Path,
    id: u32,
    listener: TcpListener,
    nodes: &[(u32, String)],
    tweak: &dyn Fn(&mut Settings),
) -> Node {
    let mut settings = Settings {
        data_dir: dir.join(format!("node{id}")),
        listen: listener.local_addr().unwrap(),
        cluster: Some(ClusterSettings {
            node_id: id,
            secret: Some("test-cluster-secret".into()),
            nodes: nodes.iter().map(|(n, a)| (n.to_string(), a.clone())).collect(),
            replication_max_bytes: bytesize::ByteSize::kib(64),
            replica_lag_max: Duration::from_secs(2),
            acks_timeout: Duration::from_secs(10),
            fetch_wait: Duration::from_millis(200),
            ..ClusterSettings::default()
        }),
        ..Settings::default()
    };
    tweak(&mut settings);
    let host = Host::open(settings).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = host.clone();
    let task = tokio::spawn(async move {
        let _ = crate::http::serve(&h, listener, async move {
            let _ = rx.await;
        })
        .await;
    });
    Node {
        host,
        stop: Some(tx),
        task,
    }
}

pub(crate) async fn cluster(dir: &std::path::Path, n: u32) -> (Vec<Node>, Vec<(u32, String)>) {
    cluster_with(dir, n, &|_| {}).await
}

pub(crate) async fn cluster_with(
    dir: &std::path::Path,
    n: u32,
    tweak: &dyn Fn(&mut Settings),
) -> (Vec<Node>, Vec<(u32, String)>) {
    let mut listeners = Vec::new();
    let mut nodes = Vec::new();
    for id in 1..=n {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        nodes.push((id, l.local_addr().unwrap().to_string()));
        listeners.push(l);
    }
    let mut out = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        out.push(start_with(dir, i as u32 + 1, l, &nodes, tweak).await);
    }
    (out, nodes)
}

pub(crate) fn big(i: usize, len: usize) -> Record {
    let value: Vec<u8> = (0..len).map(|j| ((i * 31 + j) % 251) as u8).collect();
    Record {
        key: Some(Bytes::from(format!("k{i}"))),
        value: Some(Bytes::from(value)),
        ..Record::default()
    }
}

pub(crate) fn replicated(factor: u32) -> StreamConfig {
    StreamConfig {
        replication: Some(Replication {
            factor,
            assignment: vec![vec![1, 2, 3]],
            min_insync_replicas: None,
        }),
        ..StreamConfig::default()
    }
}

/// Small WAL segments and upload chunks, uploaded at once.
pub(crate) fn eager_tiering(s: &mut Settings) {
    s.segment_bytes = bytesize::ByteSize::kib(64);
    s.upload_chunk_bytes = bytesize::ByteSize::kib(16);
    s.upload_min_bytes = bytesize::ByteSize::b(1);
    s.upload_interval = Duration::ZERO;
    s.gc_grace = Duration::ZERO;
}

/// One record on stream `s` with every node in sync, then node 3 stops
/// (popped from `nodes`) and 300 batches of two 1,000-byte records follow.
pub(crate) async fn write_while_node3_is_down(nodes: &mut Vec<Node>) {
    nodes[0]
        .host
        .append_acks("s", 0, &[big(0, 1000)], Acks::All)
        .await
        .unwrap();
    stop(nodes.pop().unwrap()).await;
    for i in 1..300 {
        let recs = [big(i * 2, 1000), big(i * 2 + 1, 1000)];
        nodes[0].host.append_acks("s", 0, &recs, Acks::All).await.unwrap();
    }
}

/// Every stored batch of a partition on one node, from its start.
pub(crate) async fn batches(h: &Host, stream: &str) -> Vec<crate::log::replica::RawBatch> {
    let log = &h.log();
    let view = log.replica(stream, 0).unwrap();
    let end = view.log_end;
    let mut out = Vec::new();
    let mut at = view.log_start;
    while at < end {
        let got = log.raw_batches(stream, 0, at, 1 << 30, 1000).await.unwrap();
        at = got.last().unwrap().end();
        out.extend(got);
    }
    out
}

pub(crate) async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_replicate_byte_for_byte_and_acks_all_waits_for_followers() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _) = cluster(dir.path(), 3).await;
    let leader = &nodes[0].host;
    leader.create_stream_with("s", 1, replicated(3)).await.unwrap();
    for n in &nodes[1..] {
        let info = n.host.describe_stream("s").unwrap();
        assert_eq!(info.replication.unwrap().assignment, vec![vec![1, 2, 3]]);
    }
    // Records of 200 KiB with a 64 KiB fetch limit travel as fragments.
    let mut end = 0;
    for i in 0..6 {
        let recs: Vec<Record> = (0..(i % 3 + 1)).map(|j| big(i * 10 + j, 200 * 1024)).collect();
        let a = leader.append_acks("s", 0, &recs, Acks::All).await.unwrap();
        end = a.base_offset + a.count as u64;
        // acks=all: every in-sync follower holds the batch when it returns.
        for n in &nodes[1..] {
            assert!(n.host.log().replica("s", 0).unwrap().log_end >= end);
        }
    }
    // Small batches go many per fetch.
    for i in 0..50 {
        leader.append("s", 0, &[big(1000 + i, 100)]).await.unwrap();
    }
    end += 50;
    for n in &nodes[1..] {
        wait_until("followers reach the end", async || {
            n.host.log().replica("s", 0).unwrap().log_end == end
        })
        .await;
    }
    let want = batches(leader, "s").await;
    for n in &nodes[1..] {
        assert_eq!(batches(&n.host, "s").await, want, "a follower's batches differ");
    }
    // Readers on the leader see up to the high watermark: everything.
    wait_until("the high watermark reaches the end", async || {
        leader.describe_stream("s").unwrap().partitions[0].end == end
    })
    .await;
    let st = leader.replication_status("s", 0).unwrap();
    assert_eq!((st.is_leader, st.in_sync.len()), (true, 3), "{st:?}");
    let text = leader.render_metrics().await.unwrap();
    for want in ["sluice_isr_size{", "sluice_replica_lag_records{", r#"replica="3""#] {
        assert!(text.contains(want), "{want} missing from /metrics");
    }
    // Only the leader takes appends.
    let err = nodes[1].host.append("s", 0, &[big(0, 10)]).await.unwrap_err();
    assert_eq!(err.code(), "not_leader", "{err}");
    for mut n in nodes {
        let _ = n.stop.take().unwrap().send(());
        let _ = n.task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_follower_leaves_the_in_sync_set_and_catches_up_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = cluster(dir.path(), 3).await;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    nodes[0]
        .host
        .append_acks("s", 0, &[big(0, 1000)], Acks::All)
        .await
        .unwrap();
    // Stop node 3.
    let mut n3 = nodes.pop().unwrap();
    let _ = n3.stop.take().unwrap().send(());
    n3.task.await.unwrap();
    // acks=all completes once node 3 drops out of the in-sync set.
    for i in 1..20 {
        let recs: Vec<Record> = (0..3).map(|j| big(i * 3 + j, 100_000)).collect();
        nodes[0].host.append_acks("s", 0, &recs, Acks::All).await.unwrap();
    }
    let st = nodes[0].host.replication_status("s", 0).unwrap();
    assert_eq!(st.in_sync, vec![1, 2], "{st:?}");
    // Node 3 comes back on its old data dir and port, and catches up.
    let l = TcpListener::bind(&addrs[2].1).await.unwrap();
    let n3 = start(dir.path(), 3, l, &addrs).await;
    let end = nodes[0].host.log().replica("s", 0).unwrap().log_end;
    wait_until("node 3 catches up", async || {
        n3.host.log().replica("s", 0).unwrap().log_end == end
    })
    .await;
    assert_eq!(batches(&n3.host, "s").await, batches(&nodes[0].host, "s").await);
    wait_until("node 3 rejoins the in-sync set", async || {
        nodes[0].host.replication_status("s", 0).unwrap().in_sync == vec![1, 2, 3]
    })
    .await;
    nodes.push(n3);
    for mut n in nodes {
        let _ = n.stop.take().unwrap().send(());
        let _ = n.task.await;
    }
}

pub(crate) async fn stop(mut n: Node) {
    let _ = n.stop.take().unwrap().send(());
    let _ = n.task.await;
}

pub(crate) async fn restart(dir: &std::path::Path, id: u32, addrs: &[(u32, String)]) -> Node {
    let l = TcpListener::bind(&addrs[id as usize - 1].1).await.unwrap();
    start(dir, id, l, addrs).await
}

async fn values(h: &Host) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let limits = crate::ReadLimits {
            max_records: 1000,
            max_bytes: 1 << 30,
        };
        let r = h.read("s", 0, at, limits).await.unwrap();
        if r.records.is_empty() {
            return out;
        }
        at = r.next_offset;
        out.extend(r.records.into_iter().map(|r| r.record.value.unwrap_or_default()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_move_keeps_every_record_and_fences_the_old_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _) = cluster(dir.path(), 3).await;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    for i in 0..10 {
        nodes[0].host.append("s", 0, &[big(i, 5000)]).await.unwrap();
    }
    // Asked on node 2, moved to node 3.
    let st = nodes[1].host.move_leader("s", 0, 3, false).await.unwrap();
    assert_eq!((st.node, st.leader, st.epoch, st.log_end), (3, 3, 1, 10), "{st:?}");
    let err = nodes[0].host.append("s", 0, &[big(99, 10)]).await.unwrap_err();
    assert_eq!(err.code(), "not_leader", "the old leader must refuse appends: {err}");
    assert!(err.message().contains("node 3"), "{err}");
    for i in 10..20 {
        nodes[2]
            .host
            .append_acks("s", 0, &[big(i, 5000)], Acks::All)
            .await
            .unwrap();
    }
    for n in &nodes {
        wait_until("every node holds 20 records", async || {
            n.host.log().replica("s", 0).unwrap().log_end == 20
        })
        .await;
    }
    let want = batches(&nodes[2].host, "s").await;
    for n in &nodes[..2] {
        assert_eq!(batches(&n.host, "s").await, want);
        let st = n.host.replication_status("s", 0).unwrap();
        assert_eq!((st.leader, st.epoch), (3, 1), "{st:?}");
    }
    // A move to a node that is not a replica, or to the leader itself.
    let err = nodes[0].host.move_leader("s", 0, 9, false).await.unwrap_err();
    assert_eq!(err.code(), "invalid_request", "{err}");
    let same = nodes[0].host.move_leader("s", 0, 3, false).await.unwrap();
    assert_eq!(same.epoch, 1, "a move to the current leader changes nothing");
    for n in nodes {
        stop(n).await;
    }
}

/// A leader change that skips epochs (a forged `u32::MAX`, whose `+ 1`
/// used to wrap and refuse every later move) is refused and changes
/// nothing; the partition still moves afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_that_skips_epochs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _) = cluster(dir.path(), 3).await;
    let info = nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    for forged in [u32::MAX, 2] {
        let change = crate::node::LeaderChange {
            stream: "s".into(),
            created_ms: info.created_ms,
            partition: 0,
            leader: 2,
            epoch: forged,
            drain_until: None,
        };
        let err = nodes[1].host.apply_leader(change).await.unwrap_err();
        assert_eq!(err.code(), "invalid_request", "{err}");
        let st = nodes[1].host.replication_status("s", 0).unwrap();
        assert_eq!((st.leader, st.epoch), (1, 0), "{st:?}");
    }
    let st = nodes[0].host.move_leader("s", 0, 2, false).await.unwrap();
    assert_eq!((st.leader, st.epoch), (2, 1), "{st:?}");
    for n in nodes {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leaders_unreplicated_tail_is_truncated_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = cluster(dir.path(), 3).await;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    for i in 0..5 {
        nodes[0]
            .host
            .append_acks("s", 0, &[big(i, 3000)], Acks::All)
            .await
            .unwrap();
    }
    // Followers stop; the leader takes acks=leader records only it holds.
    let n3 = nodes.pop().unwrap();
    let n2 = nodes.pop().unwrap();
    stop(n3).await;
    stop(n2).await;
    for i in 100..103 {
        nodes[0].host.append("s", 0, &[big(i, 3000)]).await.unwrap();
    }
    let n1 = nodes.pop().unwrap();
    stop(n1).await;
    // Nodes 2 and 3 come back; node 1 is down. Restarted, node 2 cannot
    // know it was in sync, so the move needs `force`.
    let n2 = restart(dir.path(), 2, &addrs).await;
    let n3 = restart(dir.path(), 3, &addrs).await;
    let err = n3.host.move_leader("s", 0, 2, false).await.unwrap_err();
    assert!(err.message().contains("in-sync"), "{err}");
    let st = n3.host.move_leader("s", 0, 2, true).await.unwrap();
    assert_eq!((st.leader, st.epoch, st.log_end), (2, 1, 5), "{st:?}");
    for i in 5..9 {
        n2.host.append_acks("s", 0, &[big(i, 3000)], Acks::All).await.unwrap();
    }
    // Node 1 returns believing it leads: it learns of epoch 1, truncates
    // the three records nobody else has, and follows node 2.
    let n1 = restart(dir.path(), 1, &addrs).await;
    let st = n1.host.replication_status("s", 0).unwrap();
    assert_eq!((st.leader, st.epoch), (2, 1), "{st:?}");
    wait_until("node 1 equals node 2", async || {
        n1.host.log().replica("s", 0).unwrap().log_end == 9
            && batches(&n1.host, "s").await == batches(&n2.host, "s").await
    })
    .await;
    let want: Vec<Bytes> = (0..9).map(|i| big(i, 3000).value.unwrap_or_default()).collect();
    assert_eq!(values(&n2.host).await, want, "acknowledged records on the new leader");
    // Node 1 after a restart still has the truncation.
    stop(n1).await;
    let n1 = restart(dir.path(), 1, &addrs).await;
    assert_eq!(batches(&n1.host, "s").await, batches(&n2.host, "s").await);
    for n in [n1, n2, n3] {
        stop(n).await;
    }
}

/// Default assignments: consecutive distinct replicas per partition, the
/// same for the same name, and streams' first leaders spread over the
/// nodes by name rather than all on the first node.
#[test]
fn default_assignments_rotate_per_partition_and_spread_streams_over_nodes() {
    let ids = [1, 2, 3];
    assert_eq!(
        super::placement::round_robin(&ids, 0, 4, 2),
        vec![vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 2]]
    );
    assert_eq!(
        super::placement::round_robin(&ids, 2, 2, 3),
        vec![vec![3, 1, 2], vec![1, 2, 3]]
    );
    assert_eq!(
        super::placement::round_robin(&ids, usize::MAX, 2, 1),
        vec![vec![1], vec![2]],
        "no overflow at the top"
    );
    let first_leader = |name: &str| {
        let start = crc32c::crc32c(name.as_bytes()) as usize;
        super::placement::round_robin(&ids, start, 1, 3)[0][0]
    };
    assert_eq!(first_leader("orders"), first_leader("orders"));
    let mut leaders: Vec<u32> = (0..30).map(|i| first_leader(&format!("topic-{i}"))).collect();
    leaders.sort_unstable();
    leaders.dedup();
    assert_eq!(leaders, ids, "30 streams' first leaders cover every node");
}
