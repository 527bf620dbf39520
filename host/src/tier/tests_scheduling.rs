//! The uploader's schedule: a round visits only partitions that may have
//! work, so idle partitions cost nothing per tick however many there are.

use std::time::Duration;

use super::tests::{Store, eager, produce, store, wait_for};
use crate::Host;

const PARTITIONS: u32 = 512;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partitions_are_not_visited_every_round() {
    let dir = tempfile::tempdir().unwrap();
    let (store, prefix) = store(Store::Memory, dir.path()).unwrap();
    let host = Host::open_with_store(eager(dir.path()), store, prefix).await.unwrap();
    host.create_stream("t", PARTITIONS).await.unwrap();
    // The first round after the stream exists reads every manifest; once
    // all are known, the idle partitions leave the uploader's work list.
    for _ in 0..400 {
        if host.stream_status("t").unwrap().iter().all(|p| p.tier.known) {
            break;
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(host.stream_status("t").unwrap().iter().all(|p| p.tier.known));
    host.wake_uploader();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Twenty rounds (woken, and a tick of 250 ms) over idle partitions.
    let before = host.uploader_visits();
    for _ in 0..20 {
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle = host.uploader_visits() - before;
    assert!(
        idle < u64::from(PARTITIONS),
        "{idle} visits in 20 idle rounds over {PARTITIONS} partitions"
    );

    // New data in one partition is visited and tiered, without a visit to
    // every other partition for it.
    let before = host.uploader_visits();
    produce(&host, "t", 0, 3, 10).await;
    wait_for(&host, "t", "the new data tiered", |p| p.tier.tiered_end == 30).await;
    let busy = host.uploader_visits() - before;
    assert!(
        busy < u64::from(PARTITIONS),
        "{busy} visits to tier one partition of {PARTITIONS}"
    );
    assert_eq!(host.stream_status("t").unwrap()[0].upload_lag_records, 0);
    host.shutdown().await;
}

/// The backlog (and with it the upload-lag metric) counts every partition
/// with data to upload: right after a restart, before the first round has
/// visited them, and while a round is busy uploading one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_counts_every_lagging_partition_after_a_restart_and_during_a_round() {
    let dir = tempfile::tempdir().unwrap();
    let (store, prefix) = store(Store::Memory, dir.path()).unwrap();
    let faulty = crate::objstore::faults::FaultyStore::new(store);
    let lazy = crate::Settings {
        upload_min_bytes: bytesize::ByteSize::gib(1),
        upload_interval: Duration::from_secs(3600),
        ..eager(dir.path())
    };
    let host = Host::open_with_store(lazy, faulty.clone(), prefix.clone())
        .await
        .unwrap();
    host.create_stream("t", 3).await.unwrap();
    for p in 0..3 {
        let recs: Vec<_> = (0..50).map(super::tests::rec).collect();
        host.append("t", p, &recs).await.unwrap();
    }
    let backlog = host.upload_backlog_bytes();
    assert!(backlog > 0);
    host.shutdown().await;
    drop(host);

    // Segment uploads wait at a gate: the first round stops at its first.
    let gate = faulty.hold_matching(crate::objstore::faults::Op::Put, "/segments/", None);
    let host = Host::open_with_store(eager(dir.path()), faulty.clone(), prefix)
        .await
        .unwrap();
    assert_eq!(host.upload_backlog_bytes(), backlog, "right after the restart");
    for _ in 0..400 {
        if gate.arrived() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(gate.arrived(), 1, "the round is uploading");
    assert_eq!(host.upload_backlog_bytes(), backlog, "during the round");
    gate.release();
    for _ in 0..400 {
        if host.upload_backlog_bytes() == 0 {
            break;
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(host.upload_backlog_bytes(), 0);
    let st = host.stream_status("t").unwrap();
    assert!(st.iter().all(|p| p.tier.tiered_end == 50), "{st:?}");
    host.shutdown().await;
}
