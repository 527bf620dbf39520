//! Retention against a failing store: a round whose manifest commit fails
//! deletes nothing the live manifest still names, even with no grace period.

use super::manifest;
use super::tests::{Store, check, eager, on_every_store, produce, read_all, store, wait_for};
use crate::objstore::faults::{Fault, FaultyStore, Op};
use crate::{Host, Retention};

async fn a_failed_retention_commit_deletes_nothing_still_named(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let faulty = FaultyStore::new(store.clone());
    // `eager`: gc_grace 0, so dropped objects may go as soon as the drop
    // is committed, and not before.
    let host = Host::open_with_store(eager(dir.path()), faulty.clone(), prefix.clone())
        .await
        .unwrap();
    let retention = Retention {
        ms: Some(200),
        bytes: None,
    };
    let short = host.create_stream_with("short", 1, retention.into()).await.unwrap();
    // One batch, one segment, committed as version 2 (after the claim); the
    // commit that would drop it (version 3) fails until cleared.
    let part_dir = manifest::partition_dir(short.id, 0);
    faulty.inject_matching(
        Op::Put,
        &format!("{part_dir}/manifest/{:020}.json", 3),
        Fault::Error,
        None,
    );
    produce(&host, "short", 0, 1, 200).await;
    wait_for(&host, "short", "the drop's commit to fail", |p| {
        p.tier.tiered_end == 200
            && p.tier
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("injected fault"))
    })
    .await;
    // The live manifest still names the segment: its object is there, and
    // the records read back (from the store: the WAL was trimmed).
    let remote = crate::objstore::Remote::new(store.clone(), prefix.clone(), Default::default());
    let segments = remote.list(&format!("{part_dir}/segments")).await.unwrap();
    assert_eq!(segments.len(), 1, "{segments:?}");
    assert_eq!(host.stream_status("short").unwrap()[0].wal_start_offset, 200);
    check(&read_all(&host, "short", 0).await, 0, 200);
    // Once commits work again the drop lands, then the object goes.
    faulty.clear();
    wait_for(&host, "short", "time retention", |p| {
        p.start_offset == 200 && p.tier.segments == 0
    })
    .await;
    host.shutdown().await;
}

on_every_store!(a_failed_retention_commit_deletes_nothing_still_named);
