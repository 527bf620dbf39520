//! A compacted replicated stream: each node compacts its own copy, and a
//! follower that was down while its leader compacted and trimmed its WAL
//! catches up from the leader's compacted segments, gaps and all: it ends
//! where the leader ends, holds the latest value of every key, tiers its
//! own copy with those gaps, and keeps it across a restart. Before, the
//! follower refused the first batch after a gap and stopped.

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::net::TcpListener;

use super::tests::{Node, cluster_with, eager_tiering, replicated, start_with, stop, wait_until};
use crate::log::meta::Compaction;
use crate::node::{Acks, ReadLimits};
use crate::{Host, Record, Settings};

fn eager(s: &mut Settings) {
    eager_tiering(s);
}

fn keyed(i: usize) -> Record {
    Record {
        key: Some(Bytes::from(format!("k{}", i % 10))),
        value: Some(Bytes::from(format!("v{i}-{}", "x".repeat(900)))),
        ..Record::default()
    }
}

/// Latest value per key, and every offset, of what `h` serves.
async fn latest(h: &Host) -> (BTreeMap<Bytes, Bytes>, Vec<u64>) {
    let (mut map, mut offsets) = (BTreeMap::new(), Vec::new());
    let mut next = h.stream_status("s").unwrap()[0].start_offset;
    loop {
        let limits = ReadLimits {
            max_records: 50,
            max_bytes: 256 * 1024,
        };
        let b = h.read("s", 0, next, limits).await.unwrap();
        if b.records.is_empty() {
            return (map, offsets);
        }
        for r in b.records {
            offsets.push(r.offset);
            map.insert(r.record.key.clone().unwrap(), r.record.value.clone().unwrap());
        }
        next = b.next_offset;
    }
}

async fn start_node3(dir: &std::path::Path, addrs: &[(u32, String)]) -> Node {
    let l = TcpListener::bind(&addrs[2].1).await.unwrap();
    start_with(dir, 3, l, addrs, &eager).await
}

async fn caught_up(leader: &Host, n: &Host) {
    wait_until("node 3 ends where the leader ends", async || {
        let (l, f) = (leader.log().replica("s", 0).unwrap(), n.log().replica("s", 0).unwrap());
        f.log_end == l.log_end && f.state.high_watermark == l.log_end
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_through_its_leaders_compacted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = cluster_with(dir.path(), 3, &eager).await;
    let mut cfg = replicated(3);
    let mut compaction = Compaction::by_record_key(false);
    compaction.min_cleanable_dirty_ppm = 0;
    cfg.compaction = Some(compaction);
    nodes[0].host.create_stream_with("s", 1, cfg).await.unwrap();
    for n in &nodes {
        assert!(n.host.describe_stream("s").unwrap().compaction.is_some());
    }
    let leader = nodes[0].host.clone();
    leader.append_acks("s", 0, &[keyed(0)], Acks::All).await.unwrap();
    stop(nodes.pop().unwrap()).await;
    for i in 1..400 {
        leader.append_acks("s", 0, &[keyed(i)], Acks::All).await.unwrap();
    }
    // The leader tiers, trims its WAL and compacts what it tiered.
    wait_until("the leader compacts its tiered records", async || {
        leader.wake_uploader();
        leader.compact_stream("s").unwrap();
        let st = leader.compaction_status("s").unwrap();
        let tiered = leader.stream_status("s").unwrap()[0].tier.tiered_end;
        st[0].cleaned_end.is_some_and(|c| c + 20 >= tiered) && tiered > 300
    })
    .await;
    let (want, leader_offsets) = latest(&leader).await;
    assert!(
        leader_offsets.len() < 200,
        "the leader compacted nothing: {}",
        leader_offsets.len()
    );

    let n3 = start_node3(dir.path(), &addrs).await;
    caught_up(&leader, &n3.host).await;
    let (got, _) = latest(&n3.host).await;
    assert_eq!(got, want, "node 3's latest values differ from the leader's");
    let h3 = n3.host.clone();
    wait_until("node 3 tiers its own copy, gaps and all", async || {
        h3.wake_uploader();
        let st = &h3.stream_status("s").unwrap()[0];
        st.tier.tiered_end == st.end_offset
    })
    .await;
    assert_eq!(h3.stream_status("s").unwrap()[0].tier.last_error, None);

    // Down again, with all it held tiered: its WAL then starts after a
    // gap, above what it tiered, and reads step over that gap too.
    stop(n3).await;
    for i in 400..800 {
        leader.append_acks("s", 0, &[keyed(i)], Acks::All).await.unwrap();
    }
    let end = leader.log().replica("s", 0).unwrap().log_end;
    wait_until("the leader compacts its new records", async || {
        leader.wake_uploader();
        leader.compact_stream("s").unwrap();
        let cleaned = leader.compaction_status("s").unwrap()[0].cleaned_end;
        cleaned.is_some_and(|c| c + 20 >= end)
    })
    .await;
    let n3 = start_node3(dir.path(), &addrs).await;
    caught_up(&leader, &n3.host).await;
    let (want, _) = latest(&leader).await;
    let (got, _) = latest(&n3.host).await;
    assert_eq!(got, want, "after the second catch-up");

    // New records reach it; after a restart it still serves the same.
    leader.append_acks("s", 0, &[keyed(1000)], Acks::All).await.unwrap();
    caught_up(&leader, &n3.host).await;
    stop(n3).await;
    let n3 = start_node3(dir.path(), &addrs).await;
    caught_up(&leader, &n3.host).await;
    let (want, _) = latest(&leader).await;
    let (got, _) = latest(&n3.host).await;
    assert_eq!(got, want);
    nodes.push(n3);
    for n in nodes {
        stop(n).await;
    }
}
