//! Elections an admin asks for, on three nodes of one process: the
//! preferred replica leads again after a move; an unclean election does
//! nothing while the leader answers and, once it is down, hands the
//! partition to a follower that then takes acks=all appends; a preferred
//! replica that is down is reported, and a stream that is not replicated
//! needs no election.

use super::tests::{big, cluster, replicated, stop, wait_until};
use crate::node::{Acks, ElectionKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_and_unclean_elections() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, _) = cluster(dir.path(), 3).await;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    nodes[0].host.create_stream("solo", 1).await.unwrap();
    for i in 0..5 {
        nodes[0]
            .host
            .append_acks("s", 0, &[big(i, 100)], Acks::All)
            .await
            .unwrap();
    }
    let leader_on = |n: usize| nodes[n].host.replication_status("s", 0).map(|s| (s.leader, s.epoch));
    // Node 1 is the first replica and leads: nothing to do.
    let none = nodes[1]
        .host
        .elect_leader("s", 0, ElectionKind::Preferred)
        .await
        .unwrap();
    assert_eq!(none, None);
    assert_eq!(
        nodes[0]
            .host
            .elect_leader("solo", 0, ElectionKind::Preferred)
            .await
            .unwrap(),
        None
    );
    let err = nodes[1]
        .host
        .elect_leader("nope", 0, ElectionKind::Preferred)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "stream_not_found", "{err}");

    // Moved away, then back by a preferred election asked on node 3.
    nodes[1].host.move_leader("s", 0, 3, false).await.unwrap();
    let st = nodes[2]
        .host
        .elect_leader("s", 0, ElectionKind::Preferred)
        .await
        .unwrap();
    let st = st.expect("an election");
    assert_eq!((st.node, st.leader, st.epoch), (1, 1, 2), "{st:?}");
    for n in 0..3 {
        assert_eq!(leader_on(n), Some((1, 2)), "node {}", n + 1);
    }
    // The leader answers: no unclean election.
    let none = nodes[2].host.elect_leader("s", 0, ElectionKind::Unclean).await.unwrap();
    assert_eq!(none, None);

    // Both followers have heard from node 1 that they are in sync (each
    // learns it on its first fetch from the new leader), so the election
    // below has two candidates in sync and takes the first in order.
    for node in &nodes[1..] {
        let host = node.host.clone();
        wait_until("the followers in sync with node 1", async || {
            host.replication_status("s", 0)
                .is_some_and(|s| s.epoch == 2 && s.follower.is_some_and(|f| f.leader == 1 && f.in_sync))
        })
        .await;
    }
    // Node 1 dies: the preferred replica is unavailable; an unclean
    // election moves the partition to a follower: node 2 (in sync, first
    // in order), or node 3 if node 1 last counted only it in sync (a
    // follower that waits past `replica_lag_max` on a loaded machine).
    stop(nodes.remove(0)).await;
    let err = nodes[1]
        .host
        .elect_leader("s", 0, ElectionKind::Preferred)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "replica_unavailable", "{err}");
    let st = nodes[1].host.elect_leader("s", 0, ElectionKind::Unclean).await.unwrap();
    let st = st.expect("an election");
    assert!([2, 3].contains(&st.leader), "{st:?}");
    assert_eq!((st.epoch, st.log_end), (3, 5), "{st:?}");
    // nodes[0] is node 2, nodes[1] node 3.
    let (leader, follower) = if st.leader == 2 { (0, 1) } else { (1, 0) };
    let host = nodes[follower].host.clone();
    wait_until("the other follows the new leader", async || {
        host.replication_status("s", 0).is_some_and(|s| s.leader == st.leader)
    })
    .await;
    let a = nodes[leader]
        .host
        .append_acks("s", 0, &[big(5, 100)], Acks::All)
        .await
        .unwrap();
    assert_eq!(a.base_offset, 5);
    for n in nodes {
        stop(n).await;
    }
}
