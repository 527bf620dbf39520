//! A follower that was down while its leader tiered the data and trimmed
//! its WAL catches up from the leader's object store: the leader serves
//! the fetch from cold segments, and the follower's batches still equal
//! the leader's byte for byte.

use tokio::net::TcpListener;

use super::tests::{
    batches, cluster_with, eager_tiering as eager, replicated, start_with, stop, wait_until, write_while_node3_is_down,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_from_the_leaders_object_store() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = cluster_with(dir.path(), 3, &eager).await;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    // 600 KiB in 300 batches: many WAL segments, all tiered once node 3
    // has left the in-sync set.
    write_while_node3_is_down(&mut nodes).await;
    let leader = nodes[0].host.clone();
    wait_until("the leader tiers and trims its WAL", async || {
        leader.wake_uploader();
        let st = &leader.stream_status("s").unwrap()[0];
        st.wal_start_offset > 100 && st.tier.tiered_end > 100
    })
    .await;
    let l = TcpListener::bind(&addrs[2].1).await.unwrap();
    let n3 = start_with(dir.path(), 3, l, &addrs, &eager).await;
    let end = leader.log().replica("s", 0).unwrap().log_end;
    wait_until("node 3 catches up", async || {
        n3.host.log().replica("s", 0).unwrap().log_end == end
    })
    .await;
    let want = batches(&leader, "s").await;
    assert_eq!(want.len(), 300);
    assert_eq!(
        batches(&n3.host, "s").await,
        want,
        "node 3's batches differ from the leader's"
    );
    nodes.push(n3);
    for n in nodes {
        stop(n).await;
    }
}
