//! Records deleted on a replicated partition: only its leader deletes,
//! and it answers once every in-sync follower's log starts there too; a
//! follower keeps that start across its restart, and one that was down
//! follows it when it comes back.

use super::tests::{Node, big, cluster, replicated, restart, stop, wait_until};
use crate::Host;
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
