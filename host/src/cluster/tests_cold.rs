//! A follower that was down while its leader tiered the data and trimmed
//! its WAL catches up from the leader's object store: the leader serves
//! the fetch from cold segments, the follower's batches still equal the
//! leader's byte for byte, and it learns the idempotent producers of the
//! batches the leader still remembers, so after a move to it a retry is
//! still answered with its first offsets.

use tokio::net::TcpListener;

use super::tests::{
    batches, big, cluster_with, eager_tiering as eager, replicated, start_with, stop, wait_until,
    write_while_node3_is_down,
};
use crate::node::{Acks, ProducerBatch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_from_the_leaders_object_store() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = cluster_with(dir.path(), 3, &eager).await;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    // 600 KiB in 300 batches: many WAL segments, all tiered once node 3
    // has left the in-sync set. Then an idempotent producer's batches,
    // and more, so that the WAL trim passes them too.
    write_while_node3_is_down(&mut nodes).await;
    let leader = nodes[0].host.clone();
    let producer = |seq: i32| ProducerBatch {
        producer_id: 77,
        epoch: 0,
        base_sequence: seq,
    };
    let idem = |i: usize| [big(1000 + i * 2, 500), big(1001 + i * 2, 500)];
    let mut last = None;
    for i in 0..3 {
        let seq = i32::try_from(i * 2).unwrap();
        let a = leader
            .append_idempotent("s", 0, &idem(i), producer(seq), Acks::All)
            .await
            .unwrap();
        last = Some(a);
    }
    let last = last.unwrap();
    for i in 0..100 {
        leader
            .append_acks("s", 0, &[big(2000 + i, 1000)], Acks::All)
            .await
            .unwrap();
    }
    wait_until("the leader tiers and trims its WAL past the producer", async || {
        leader.wake_uploader();
        let st = &leader.stream_status("s").unwrap()[0];
        st.wal_start_offset > last.base_offset + 2 && st.tier.tiered_end > last.base_offset + 2
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
    assert_eq!(want.len(), 403);
    assert_eq!(
        batches(&n3.host, "s").await,
        want,
        "node 3's batches differ from the leader's"
    );

    // Node 3 leads; the producer's last batch comes again (its answer
    // was lost): the same offsets, nothing written twice.
    let st = n3.host.move_leader("s", 0, 3, false).await.unwrap();
    assert_eq!(st.leader, 3, "{st:?}");
    let active = n3.host.describe_producers("s", 0).unwrap();
    let seen: Vec<_> = active
        .iter()
        .map(|p| (p.producer_id, p.epoch, p.last_sequence))
        .collect();
    assert_eq!(seen, [(77, 0, 5)], "the new leader knows the producer");
    let err = leader.describe_producers("s", 0).unwrap_err();
    assert_eq!(err.code(), "not_leader", "{err}");
    let again = n3
        .host
        .append_idempotent("s", 0, &idem(2), producer(4), Acks::All)
        .await
        .unwrap();
    assert_eq!(again, last, "the retry is answered with its first offsets");
    assert_eq!(n3.host.stream_end("s", 0).unwrap(), end, "and not written again");
    let gap = n3
        .host
        .append_idempotent("s", 0, &idem(4), producer(8), Acks::All)
        .await
        .unwrap_err();
    assert_eq!(gap.code(), "out_of_order_sequence", "{gap}");
    nodes.push(n3);
    for n in nodes {
        stop(n).await;
    }
}
