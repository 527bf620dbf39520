//! Safety of replication around leader changes and restarts: a move under
//! concurrent producers keeps every acknowledged record, a leader that was
//! moved away from while it was down steps down once its peers answer (and
//! acknowledges nothing alone meanwhile), and a restart keeps the high
//! watermark readers saw.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::tests::{batches, big, cluster, replicated, restart, stop, wait_until};
use crate::node::Acks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_under_concurrent_producers_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _) = cluster(dir.path(), 3).await;
    let leader = nodes[0].host.clone();
    leader.create_stream_with("s", 1, replicated(3)).await.unwrap();
    let acked: Arc<Mutex<Vec<(u64, Bytes)>>> = Arc::default();
    let mut producers = Vec::new();
    for p in 0..6 {
        let (h, acked) = (leader.clone(), acked.clone());
        producers.push(tokio::spawn(async move {
            for i in 0.. {
                let rec = big(p * 100_000 + i, 200);
                match h.append("s", 0, std::slice::from_ref(&rec)).await {
                    Ok(a) => acked
                        .lock()
                        .unwrap()
                        .push((a.base_offset, rec.value.unwrap_or_default())),
                    Err(e) => {
                        assert_eq!(e.code(), "not_leader", "{e}");
                        return;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = nodes[2].host.move_leader("s", 0, 2, false).await.unwrap();
    for p in producers {
        p.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "the producers ran: {}", acked.len());
    assert!(
        acked.iter().all(|(o, _)| *o < st.log_end),
        "an append was acknowledged at or past the new leader's start {}",
        st.log_end
    );
    let new = &nodes[1].host;
    wait_until("the new leader's high watermark covers its start", async || {
        new.describe_stream("s").unwrap().partitions[0].end >= st.log_end
    })
    .await;
    for (offset, value) in &acked {
        let r = new
            .read(
                "s",
                0,
                *offset,
                crate::ReadLimits {
                    max_records: 1,
                    max_bytes: 1 << 20,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            r.records[0].record.value_bytes(),
            &value[..],
            "offset {offset} on the new leader"
        );
    }
    new.append_acks("s", 0, &[big(7, 10)], Acks::All).await.unwrap();
    for n in &nodes {
        wait_until("every node equals the new leader", async || {
            batches(&n.host, "s").await == batches(new, "s").await
        })
        .await;
    }
    for n in nodes {
        stop(n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leader_steps_down_and_a_restart_keeps_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = cluster(dir.path(), 3).await;
    nodes[0].host.create_stream_with("s", 1, replicated(3)).await.unwrap();
    for i in 0..5 {
        nodes[0]
            .host
            .append_acks("s", 0, &[big(i, 100)], Acks::All)
            .await
            .unwrap();
    }
    // Node 1 stops; node 2 takes over and writes more.
    let n3 = nodes.pop().unwrap();
    let n2 = nodes.pop().unwrap();
    stop(nodes.pop().unwrap()).await;
    n2.host.move_leader("s", 0, 2, false).await.unwrap();
    n2.host.append_acks("s", 0, &[big(5, 100)], Acks::All).await.unwrap();
    stop(n2).await;
    stop(n3).await;
    // Node 1 comes back alone, still believing it leads: it keeps the high
    // watermark readers saw, and acks=all cannot succeed with it alone.
    let n1 = restart(dir.path(), 1, &addrs).await;
    assert_eq!(n1.host.describe_stream("s").unwrap().partitions[0].end, 5);
    let r = n1.host.read("s", 0, 4, crate::ReadLimits::default()).await.unwrap();
    assert_eq!(r.records[0].record.value, big(4, 100).value);
    let refused = n1
        .host
        .append_acks("s", 0, &[big(99, 100)], Acks::All)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "not_enough_replicas", "{refused}");
    // Its peers return: it learns of epoch 1, follows node 2 and drops what
    // only it holds.
    let n2 = restart(dir.path(), 2, &addrs).await;
    let n3 = restart(dir.path(), 3, &addrs).await;
    wait_until("node 1 follows node 2", async || {
        n1.host
            .replication_status("s", 0)
            .is_some_and(|s| (s.leader, s.epoch) == (2, 1))
    })
    .await;
    wait_until("node 1 equals node 2", async || {
        batches(&n1.host, "s").await == batches(&n2.host, "s").await
    })
    .await;
    let err = n1.host.append("s", 0, &[big(100, 10)]).await.unwrap_err();
    assert_eq!(err.code(), "not_leader", "{err}");
    for n in [n1, n2, n3] {
        stop(n).await;
    }
}
