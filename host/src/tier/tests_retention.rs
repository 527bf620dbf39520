//! Retention against a failing store: a round whose manifest commit fails
//! deletes nothing the live manifest still names, even with no grace period.

use super::manifest;
use super::tests::{Store, check, eager, on_every_store, produce, read_all, store, tiered_600, wait_for};
use crate::ReadLimits;
use crate::node::{Compaction, RetentionChange, StreamConfig};
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

/// A retention set after the data was tiered drops what it no longer keeps,
/// and a compacted stream keeps refusing one.
async fn a_retention_set_later_applies_to_data_already_tiered(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((host, ..)) = tiered_600(kind, dir.path()).await else {
        return;
    };
    assert_eq!(host.stream_status("t").unwrap()[0].start_offset, 0);
    let change = RetentionChange {
        ms: None,
        bytes: Some(Some(16 * 1024)),
    };
    let info = host.set_retention("t", change, false).await.unwrap();
    assert_eq!(info.retention.bytes, Some(16 * 1024));
    wait_for(&host, "t", "the new retention to move the start", |p| {
        p.start_offset > 0 && p.tier.tiered_bytes <= 16 * 1024
    })
    .await;
    let st = host.stream_status("t").unwrap()[0].clone();
    check(&read_all(&host, "t", st.start_offset).await, st.start_offset, 600);

    host.create_stream_with(
        "c",
        1,
        StreamConfig {
            compaction: Some(Compaction::by_record_key(false)),
            ..StreamConfig::default()
        },
    )
    .await
    .unwrap();
    let err = host.set_retention("c", change, false).await.unwrap_err();
    assert_eq!(err.code(), "invalid_config", "{err}");
    let err = host
        .set_retention("__consumer_offsets", change, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_request", "{err}");
    host.shutdown().await;
}

on_every_store!(a_retention_set_later_applies_to_data_already_tiered);

/// Records deleted below an offset: tiered segments wholly below it are
/// dropped on a retention pass (the stream has no retention of its own),
/// and the start holds through a restart after the WAL was trimmed.
async fn deleted_records_drop_their_tiered_segments(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((host, store, prefix)) = tiered_600(kind, dir.path()).await else {
        return;
    };
    let before = host.stream_status("t").unwrap()[0].tier.segments;
    assert_eq!(host.delete_records("t", 0, Some(450)).await.unwrap(), 450);
    wait_for(&host, "t", "segments below 450 dropped", |p| {
        p.start_offset == 450 && p.tier.segments < before
    })
    .await;
    check(&read_all(&host, "t", 450).await, 450, 600);
    let err = host.read("t", 0, 449, ReadLimits::default()).await.unwrap_err();
    assert_eq!(err.code(), "offset_out_of_range");
    host.shutdown().await;
    let host = Host::open_with_store(eager(dir.path()), store, prefix).await.unwrap();
    assert_eq!(host.stream_status("t").unwrap()[0].start_offset, 450);
    check(&read_all(&host, "t", 450).await, 450, 600);
    host.shutdown().await;
}

on_every_store!(deleted_records_drop_their_tiered_segments);
