//! A follower that was down while its leader's retention moved the
//! partition's start past the follower's end: everything it held is gone
//! on the leader too, so its log goes on at the leader's start (a WAL
//! control entry, kept across its restart), it catches up byte for byte,
//! and its own tiering starts its manifest there. Before, the leader
//! answered its fetches with `offset_out_of_range` until it stopped trying.

use tokio::net::TcpListener;

use super::tests::{
    Node, batches, big, cluster_with, eager_tiering as eager, replicated, start_with, stop, wait_until,
    write_while_node3_is_down,
};
use crate::Host;
use crate::node::Acks;

async fn caught_up(leader: &Host, n: &Host) {
    wait_until("the follower catches up", async || {
        let l = leader.log().replica("s", 0).unwrap();
        let f = n.log().replica("s", 0).unwrap();
        (f.log_start, f.log_end) == (l.log_start, l.log_end)
    })
    .await;
    assert_eq!(batches(n, "s").await, batches(leader, "s").await, "batches differ");
}

async fn start_node3(dir: &std::path::Path, addrs: &[(u32, String)]) -> Node {
    let l = TcpListener::bind(&addrs[2].1).await.unwrap();
    start_with(dir, 3, l, addrs, &eager).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_its_leaders_start_goes_on_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = cluster_with(dir.path(), 3, &eager).await;
    let mut cfg = replicated(3);
    cfg.retention.bytes = Some(100 * 1024);
    nodes[0].host.create_stream_with("s", 1, cfg).await.unwrap();
    write_while_node3_is_down(&mut nodes).await;
    let leader = nodes[0].host.clone();
    wait_until("the leader's retention moves its start past node 3's end", async || {
        leader.wake_uploader();
        leader.stream_status("s").unwrap()[0].start_offset > 100
    })
    .await;

    let n3 = start_node3(dir.path(), &addrs).await;
    caught_up(&leader, &n3.host).await;
    // New records reach it, and its own tiering starts at the new start.
    for i in 300..320 {
        nodes[0]
            .host
            .append_acks("s", 0, &[big(i * 2, 1000)], Acks::All)
            .await
            .unwrap();
    }
    caught_up(&leader, &n3.host).await;
    let h3 = n3.host.clone();
    wait_until("node 3 tiers what it holds", async || {
        h3.wake_uploader();
        let st = &h3.stream_status("s").unwrap()[0];
        st.tier.tiered_end == st.end_offset && st.tier.tiered_start >= st.start_offset
    })
    .await;
    let st = &h3.stream_status("s").unwrap()[0];
    assert_eq!(st.tier.last_error, None, "{st:?}");

    // The restart is durable: after its own restart it still starts there.
    stop(n3).await;
    let n3 = start_node3(dir.path(), &addrs).await;
    nodes[0]
        .host
        .append_acks("s", 0, &[big(999, 1000)], Acks::All)
        .await
        .unwrap();
    caught_up(&leader, &n3.host).await;
    nodes.push(n3);
    for n in nodes {
        stop(n).await;
    }
}
