//! Replication between nodes of one process over real HTTP on 127.0.0.1:
//! batches larger than the fetch limit arrive whole and byte for byte,
//! `acks=all` waits for the followers, only the leader takes appends, and
//! a follower that stopped catches up.

use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;

use crate::config::ClusterSettings;
use crate::host::Acks;
use crate::log::meta::{Replication, StreamConfig};
use crate::{Host, Record, Settings};

pub(crate) struct Node {
    pub host: Host,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

pub(crate) async fn start(dir: &std::path::Path, id: u32, listener: TcpListener, nodes: &[(u32, String)]) -> Node {
    let settings = Settings {
        data_dir: dir.join(format!("node{id}")),
        listen: listener.local_addr().unwrap(),
        cluster: Some(ClusterSettings {
            node_id: id,
            nodes: nodes.iter().map(|(n, a)| (n.to_string(), a.clone())).collect(),
            replication_max_bytes: bytesize::ByteSize::kib(64),
            replica_lag_max: Duration::from_secs(2),
            acks_timeout: Duration::from_secs(10),
            fetch_wait: Duration::from_millis(200),
            ..ClusterSettings::default()
        }),
        ..Settings::default()
    };
    let host = Host::open(settings).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = host.clone();
    let task = tokio::spawn(async move {
        let _ = h
            .serve(listener, async move {
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
    let mut listeners = Vec::new();
    let mut nodes = Vec::new();
    for id in 1..=n {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        nodes.push((id, l.local_addr().unwrap().to_string()));
        listeners.push(l);
    }
    let mut out = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        out.push(start(dir, i as u32 + 1, l, &nodes).await);
    }
    (out, nodes)
}

fn big(i: usize, len: usize) -> Record {
    let value: Vec<u8> = (0..len).map(|j| ((i * 31 + j) % 251) as u8).collect();
    Record {
        key: Some(Bytes::from(format!("k{i}"))),
        value: Bytes::from(value),
        ..Record::default()
    }
}

fn replicated(factor: u32) -> StreamConfig {
    StreamConfig {
        replication: Some(Replication {
            factor,
            assignment: vec![vec![1, 2, 3]],
        }),
        ..StreamConfig::default()
    }
}

/// Every stored batch of a partition on one node, from offset 0.
pub(crate) async fn batches(h: &Host, stream: &str) -> Vec<crate::log::replica::RawBatch> {
    let log = &h.log();
    let end = log.replica(stream, 0).unwrap().log_end;
    let mut out = Vec::new();
    let mut at = 0;
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
