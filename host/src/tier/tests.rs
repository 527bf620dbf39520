//! Tests of tiering through a real `Host`, on the in-memory store, the local
//! file store and a real S3-protocol server (moto), plus fault injection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytesize::ByteSize;
use object_store::ObjectStore;
use object_store::path::Path;

use crate::objstore::faults::{Fault, FaultyStore, Op};
use crate::{Host, PartitionStatus, ReadLimits, Record, Retention, Settings};

/// Settings that tier everything at once in tiny objects.
pub(super) fn eager(dir: &std::path::Path) -> Settings {
    Settings {
        data_dir: dir.into(),
        segment_bytes: ByteSize::kib(64),
        upload_chunk_bytes: ByteSize::kib(4),
        upload_min_bytes: ByteSize::b(1),
        upload_interval: Duration::ZERO,
        // Generous: moto is a Python server sharing two cores with the tests.
        remote_timeout: Duration::from_secs(5),
        remote_retries: 2,
        gc_grace: Duration::ZERO,
        ..Settings::default()
    }
}

pub(super) enum Store {
    Memory,
    File,
    S3,
}

/// A fresh store of the kind, or `None` (with a note) when moto is not
/// installed outside CI.
pub(super) fn store(kind: Store, dir: &std::path::Path) -> Option<(Arc<dyn ObjectStore>, Path)> {
    match kind {
        Store::Memory => Some((Arc::new(object_store::memory::InMemory::new()), Path::default())),
        Store::File => {
            let url = format!("file://{}", dir.join("bucket").display());
            crate::objstore::open(Some(&url), dir).ok()
        }
        Store::S3 => Some((crate::objstore::testing::moto_bucket("tier")?, Path::from("node-a"))),
    }
}

pub(super) fn rec(i: u64) -> Record {
    Record {
        key: Some(Bytes::from(format!("k{}", i % 7))),
        value: Some(Bytes::from(format!("value-{i}-{}", "x".repeat((i % 300) as usize)))),
        headers: vec![("n".into(), Some(Bytes::from(i.to_string())))],
        timestamp_ms: 1_700_000_000_000 + i,
    }
}

/// Runs `produce` with every segment upload held back, then lets tiering
/// go: it starts with all the data in the WAL and uploads a chunk per
/// round with no idle round in between. The idle uploader compacts what is
/// tiered (with a policy that asks for no dirty ratio, whenever it gets to
/// it), so this way no run, asked for or not, sees only part of the data,
/// however slowly the data comes in.
pub(super) async fn with_tiering_held<T>(faulty: &FaultyStore, produce: impl std::future::Future<Output = T>) -> T {
    let gate = faulty.hold_matching(Op::Put, "/segments/", None);
    let out = produce.await;
    gate.release();
    out
}

/// Waits (bounded) until `cond` holds for the stream's partition 0.
pub(super) async fn wait_for(host: &Host, stream: &str, what: &str, cond: impl Fn(&PartitionStatus) -> bool) {
    // Bounded, and generous for a loaded 2-core CI machine.
    for _ in 0..2400 {
        let st = host.stream_status(stream).unwrap();
        if cond(&st[0]) {
            return;
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "timed out waiting for {what}: {:?}",
        host.stream_status(stream).unwrap()
    );
}

pub(super) async fn read_all(host: &Host, stream: &str, from: u64) -> Vec<crate::OffsetRecord> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let b = host
            .read(
                stream,
                0,
                next,
                ReadLimits {
                    max_records: 97,
                    max_bytes: 64 * 1024,
                },
            )
            .await
            .unwrap();
        if b.records.is_empty() {
            return out;
        }
        next = b.next_offset;
        out.extend(b.records);
    }
}

pub(super) async fn produce(host: &Host, stream: &str, from: u64, batches: u64, per: u64) {
    for b in 0..batches {
        let recs: Vec<Record> = (0..per).map(|i| rec(from + b * per + i)).collect();
        let a = host.append(stream, 0, &recs).await.unwrap();
        assert_eq!(a.base_offset, from + b * per);
    }
}

pub(super) fn check(records: &[crate::OffsetRecord], from: u64, to: u64) {
    assert_eq!(records.len() as u64, to - from, "record count");
    for (r, want) in records.iter().zip(from..to) {
        assert_eq!(r.offset, want);
        assert_eq!(r.record, rec(want), "record {want}");
    }
}

/// An eager host on a fresh store of `kind` whose stream `t` (one
/// partition) holds 600 records, all tiered; `None` (with a note) when the
/// store is not available.
pub(super) async fn tiered_600(kind: Store, dir: &std::path::Path) -> Option<(Host, Arc<dyn ObjectStore>, Path)> {
    let (store, prefix) = store(kind, dir)?;
    let host = Host::open_with_store(eager(dir), store.clone(), prefix.clone())
        .await
        .unwrap();
    host.create_stream("t", 1).await.unwrap();
    produce(&host, "t", 0, 60, 10).await;
    wait_for(&host, "t", "everything tiered", |p| p.tier.tiered_end == 600).await;
    Some((host, store, prefix))
}

/// Uploads, trims the WAL, reads cold data back, restarts, continues.
async fn round_trip(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((host, store, prefix)) = tiered_600(kind, dir.path()).await else {
        return;
    };
    wait_for(&host, "t", "WAL trimmed", |p| p.wal_start_offset > 0).await;
    let st = host.stream_status("t").unwrap()[0].clone();
    assert!(st.tier.segments > 5, "4 KiB chunks make many segments: {st:?}");
    // Every object is within the chunk size unless it holds a single batch
    // (10 records here) that alone is larger.
    let remote = crate::objstore::Remote::new(store.clone(), prefix.clone(), Default::default());
    let m = super::manifest::load(&remote, 1, 0).await.unwrap().unwrap();
    for seg in &m.segments {
        let single = seg.end_offset - seg.base_offset <= 10;
        assert!(seg.size <= 4096 || single, "segment over the chunk size: {seg:?}");
        // `rec(i)` is stamped `1_700_000_000_000 + i`.
        let newest = 1_700_000_000_000 + seg.end_offset - 1;
        assert_eq!(seg.max_timestamp_ms, Some(newest), "{seg:?}");
    }
    assert_eq!((st.upload_lag_records, st.tier.last_error.clone()), (0, None));
    check(&read_all(&host, "t", 0).await, 0, 600);
    check(&read_all(&host, "t", 123).await, 123, 600);
    host.shutdown().await;
    drop(host);

    let host = Host::open_with_store(eager(dir.path()), store, prefix).await.unwrap();
    let st = host.stream_status("t").unwrap()[0].clone();
    assert_eq!((st.start_offset, st.end_offset), (0, 600), "{st:?}");
    produce(&host, "t", 600, 5, 10).await;
    check(&read_all(&host, "t", 0).await, 0, 650);
    wait_for(&host, "t", "new data tiered", |p| p.tier.tiered_end == 650).await;
    host.shutdown().await;
}

async fn failing_and_hanging_store_delays_uploads_but_loses_nothing(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((inner, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let faulty = FaultyStore::new(inner);
    let settings = Settings {
        remote_timeout: Duration::from_secs(1),
        remote_retries: 1,
        // Every cold read goes to the store.
        cold_cache_bytes: ByteSize::b(0),
        ..eager(dir.path())
    };
    let host = Host::open_with_store(settings, faulty.clone(), prefix.clone())
        .await
        .unwrap();
    host.create_stream("t", 1).await.unwrap();
    faulty.inject(Op::Put, Fault::Error, None);
    produce(&host, "t", 0, 20, 10).await;
    wait_for(&host, "t", "an error in status", |p| p.tier.last_error.is_some()).await;
    assert_eq!(host.stream_status("t").unwrap()[0].tier.tiered_end, 0);
    // Appends and hot reads go on while the store fails.
    produce(&host, "t", 200, 5, 10).await;
    check(&read_all(&host, "t", 0).await, 0, 250);
    faulty.clear();
    faulty.inject(Op::Put, Fault::Hang, Some(3));
    faulty.inject(Op::List, Fault::Delay(Duration::from_millis(30)), Some(5));
    wait_for(&host, "t", "uploads to resume", |p| p.tier.tiered_end == 250).await;
    assert!(faulty.calls(Op::Put) > 3);
    wait_for(&host, "t", "WAL trimmed", |p| p.wal_start_offset == 250).await;
    check(&read_all(&host, "t", 0).await, 0, 250);
    // A store that hangs on every read fails cold reads in bounded time.
    faulty.inject(Op::Get, Fault::Hang, None);
    let started = std::time::Instant::now();
    let err = host
        .read("t", 0, 0, ReadLimits::default())
        .await
        .map(|b| b.records.len());
    let err = err.expect_err("read of cold data from a hanging store");
    assert_eq!(err.code(), "object_store_unavailable", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a hanging store must fail reads in bounded time"
    );
    faulty.clear();
    check(&read_all(&host, "t", 0).await, 0, 250);
    host.shutdown().await;
}

async fn a_second_writer_fences_the_first(kind: Store) {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(kind, dir_a.path()) else {
        return;
    };
    let a = Host::open_with_store(eager(dir_a.path()), store.clone(), prefix.clone())
        .await
        .unwrap();
    a.create_stream("t", 1).await.unwrap();
    produce(&a, "t", 0, 3, 10).await;
    wait_for(&a, "t", "a tiers", |p| p.tier.tiered_end == 30).await;
    let epoch_a = a.stream_status("t").unwrap()[0].tier.epoch;

    // B (same stream id, same partition, same store) claims a newer epoch.
    let b = Host::open_with_store(eager(dir_b.path()), store.clone(), prefix.clone())
        .await
        .unwrap();
    b.create_stream("t", 1).await.unwrap();
    produce(&b, "t", 0, 4, 10).await;
    wait_for(&b, "t", "b fails: a's offsets are not its own", |p| {
        p.tier.epoch > epoch_a
    })
    .await;

    produce(&a, "t", 30, 2, 10).await;
    wait_for(&a, "t", "a fenced", |p| p.tier.fenced).await;
    let st = a.stream_status("t").unwrap()[0].clone();
    assert!(st.tier.last_error.unwrap().contains("fenced"));
    assert_eq!(st.tier.tiered_end, 30, "a stale writer committed nothing");
    // A keeps its data (in the WAL) readable.
    check(&read_all(&a, "t", 0).await, 0, 50);
    a.shutdown().await;
    b.shutdown().await;
}

async fn a_backlog_of_many_chunks_drains_and_reads_back(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let lazy = Settings {
        upload_min_bytes: ByteSize::gib(1),
        upload_interval: Duration::from_secs(3600),
        ..eager(dir.path())
    };
    let Some((store, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let host = Host::open_with_store(lazy, store.clone(), prefix.clone())
        .await
        .unwrap();
    host.create_stream("t", 1).await.unwrap();
    produce(&host, "t", 0, 100, 20).await;
    let backlog = host.upload_backlog_bytes();
    assert!(backlog > 30 * 4096, "backlog of {backlog} bytes is not > 30 chunks");
    host.shutdown().await;
    drop(host);
    let host = Host::open_with_store(eager(dir.path()), store, prefix.clone())
        .await
        .unwrap();
    check(&read_all(&host, "t", 0).await, 0, 2000);
    wait_for(&host, "t", "the backlog to drain", |p| p.upload_lag_records == 0).await;
    assert_eq!(host.upload_backlog_bytes(), 0);
    let st = host.stream_status("t").unwrap()[0].clone();
    assert!(st.tier.segments > 30, "4 KiB chunks: {st:?}");
    check(&read_all(&host, "t", 0).await, 0, 2000);
    host.shutdown().await;
}

async fn retention_by_bytes_drops_old_segments_and_their_objects(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let host = Host::open_with_store(eager(dir.path()), store.clone(), prefix.clone())
        .await
        .unwrap();
    let retention = Retention {
        bytes: Some(16 * 1024),
        ms: None,
    };
    host.create_stream_with("t", 1, retention.into()).await.unwrap();
    produce(&host, "t", 0, 60, 10).await;
    wait_for(&host, "t", "retention to move the start", |p| {
        p.tier.tiered_end == 600 && p.start_offset > 0 && p.tier.tiered_bytes <= 16 * 1024
    })
    .await;
    let st = host.stream_status("t").unwrap()[0].clone();
    let err = host.read("t", 0, 0, ReadLimits::default()).await.unwrap_err();
    assert_eq!(err.code(), "offset_out_of_range");
    check(&read_all(&host, "t", st.start_offset).await, st.start_offset, 600);
    // Dropped objects are deleted (grace 0): only the kept ones remain.
    let mut left = 0;
    for _ in 0..200 {
        left = crate::objstore::Remote::new(store.clone(), prefix.clone(), Default::default())
            .list("streams")
            .await
            .unwrap()
            .iter()
            .filter(|m| m.location.as_ref().ends_with(".seg"))
            .count();
        if left <= st.tier.segments + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        left <= st.tier.segments + 1,
        "{left} objects for {} segments",
        st.tier.segments
    );
    host.shutdown().await;
}

async fn unreferenced_objects_are_swept_and_named_ones_kept(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let host = Host::open_with_store(eager(dir.path()), store.clone(), prefix.clone())
        .await
        .unwrap();
    host.create_stream("t", 1).await.unwrap();
    produce(&host, "t", 0, 30, 10).await;
    wait_for(&host, "t", "everything tiered", |p| p.tier.tiered_end == 300).await;
    let remote = crate::objstore::Remote::new(store.clone(), prefix.clone(), Default::default());
    let seg_dir = format!("{}/segments", super::manifest::partition_dir(1, 0));
    // An upload whose manifest commit never happened leaves an orphan.
    let orphan = remote.path(&format!("{seg_dir}/00000000000000000300-00000000000000000310-e9.seg"));
    remote.put(&orphan, Bytes::from_static(b"orphan")).await.unwrap();
    let mut gone = false;
    for _ in 0..2400 {
        if remote.get(&orphan).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "orphan segment object never swept");
    let m = super::manifest::load(&remote, 1, 0).await.unwrap().unwrap();
    let listed = remote.list(&seg_dir).await.unwrap().len();
    assert_eq!(listed, m.segments.len(), "named segments must stay");
    check(&read_all(&host, "t", 0).await, 0, 300);
    host.shutdown().await;
}

async fn time_retention_runs_after_a_restart_without_new_data(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let faulty = FaultyStore::new(store.clone());
    let host = Host::open_with_store(eager(dir.path()), faulty.clone(), prefix.clone())
        .await
        .unwrap();
    host.create_stream("keep", 1).await.unwrap();
    let retention = Retention {
        ms: Some(300),
        bytes: None,
    };
    let short = host.create_stream_with("short", 1, retention.into()).await.unwrap();
    // "short" must still be whole at the restart, however long this takes
    // (its segment may expire before): its one batch is one segment,
    // committed as manifest version 2 after the claim; the commit that
    // would drop it (version 3) fails here, and so does any delete of its
    // objects (retention deletes what it drops at once, with no grace
    // period).
    let short_dir = super::manifest::partition_dir(short.id, 0);
    faulty.inject_matching(
        Op::Put,
        &format!("{short_dir}/manifest/{:020}.json", 3),
        Fault::Error,
        None,
    );
    faulty.inject_matching(Op::Delete, &format!("{short_dir}/"), Fault::Error, None);
    produce(&host, "keep", 0, 20, 10).await;
    produce(&host, "short", 0, 1, 200).await;
    wait_for(&host, "keep", "keep tiered", |p| {
        p.tier.tiered_end == 200 && p.wal_start_offset == 200
    })
    .await;
    wait_for(&host, "short", "short tiered", |p| p.tier.tiered_end == 200).await;
    host.shutdown().await;
    drop(host);
    let remote = crate::objstore::Remote::new(store.clone(), prefix.clone(), Default::default());
    let m = super::manifest::load(&remote, short.id, 0).await.unwrap().unwrap();
    assert_eq!((m.start_offset, m.end_offset, m.segments.len()), (0, 200, 1), "{m:?}");

    let host = Host::open_with_store(eager(dir.path()), store, prefix.clone())
        .await
        .unwrap();
    // Idle partitions learn their tiered range from the store.
    wait_for(&host, "keep", "tiered range known after restart", |p| {
        p.tier.tiered_end == 200 && p.tier.segments > 0
    })
    .await;
    check(&read_all(&host, "keep", 0).await, 0, 200);
    // Segments older than 300 ms are dropped though nothing new arrives.
    wait_for(&host, "short", "time retention", |p| {
        p.start_offset == 200 && p.tier.segments == 0
    })
    .await;
    assert_eq!(
        host.read("short", 0, 0, ReadLimits::default())
            .await
            .unwrap_err()
            .code(),
        "offset_out_of_range"
    );
    assert_eq!(read_all(&host, "short", 200).await.len(), 0);
    produce(&host, "short", 200, 1, 10).await;
    check(&read_all(&host, "short", 200).await, 200, 210);
    host.shutdown().await;
}

async fn a_deleted_streams_objects_are_deleted_even_across_a_restart(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let remote = crate::objstore::Remote::new(store.clone(), prefix.clone(), Default::default());
    // Deletes fail until the restart, so the purge must survive it.
    let faulty = FaultyStore::new(store.clone());
    let host = Host::open_with_store(eager(dir.path()), faulty.clone(), prefix.clone())
        .await
        .unwrap();
    host.create_stream("gone", 1).await.unwrap();
    host.create_stream("kept", 1).await.unwrap();
    produce(&host, "gone", 0, 10, 10).await;
    produce(&host, "kept", 0, 10, 10).await;
    wait_for(&host, "gone", "gone tiered", |p| p.tier.tiered_end == 100).await;
    wait_for(&host, "kept", "kept tiered", |p| p.tier.tiered_end == 100).await;
    let before = remote.list("streams/0000000002").await.unwrap().len();
    faulty.inject(Op::Delete, Fault::Error, None);
    host.delete_stream("gone").await.unwrap();
    host.shutdown().await;
    drop(host);
    assert!(!remote.list("streams/0000000001").await.unwrap().is_empty());

    let host = Host::open_with_store(eager(dir.path()), store, prefix.clone())
        .await
        .unwrap();
    let mut left = usize::MAX;
    for _ in 0..2400 {
        left = remote.list("streams/0000000001").await.unwrap().len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(left, 0, "objects of the deleted stream remain");
    assert!(remote.list("streams/0000000002").await.unwrap().len() >= before.min(2));
    check(&read_all(&host, "kept", 0).await, 0, 100);
    host.shutdown().await;
}

async fn a_segment_written_but_not_committed_is_retried_and_swept(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((inner, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let faulty = FaultyStore::new(inner);
    let host = Host::open_with_store(eager(dir.path()), faulty.clone(), prefix.clone())
        .await
        .unwrap();
    host.create_stream("t", 1).await.unwrap();
    produce(&host, "t", 0, 3, 10).await;
    wait_for(&host, "t", "first upload", |p| p.tier.tiered_end == 30).await;
    // Segment puts succeed, manifest commits fail: partial progress only.
    // They fail until the failure was seen (a few failures in a row could
    // come and go between two looks at the status).
    faulty.inject_matching(Op::Put, "/manifest/", Fault::Error, None);
    produce(&host, "t", 30, 10, 10).await;
    wait_for(&host, "t", "a failed commit", |p| p.tier.last_error.is_some()).await;
    assert_eq!(host.stream_status("t").unwrap()[0].tier.tiered_end, 30);
    faulty.clear();
    wait_for(&host, "t", "commits to resume", |p| {
        p.tier.tiered_end == 130 && p.wal_start_offset == 130
    })
    .await;
    check(&read_all(&host, "t", 0).await, 0, 130);
    let remote = crate::objstore::Remote::new(faulty.inner().clone(), prefix.clone(), Default::default());
    let m = super::manifest::load(&remote, 1, 0).await.unwrap().unwrap();
    let seg_dir = format!("{}/segments", super::manifest::partition_dir(1, 0));
    let mut listed = usize::MAX;
    for _ in 0..2400 {
        listed = remote.list(&seg_dir).await.unwrap().len();
        if listed == m.segments.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(listed, m.segments.len(), "uncommitted segment objects were not swept");
    host.shutdown().await;
}

/// Runs each scenario on the in-memory store, the local file store and a
/// real S3-protocol server.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::Store;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(Store::Memory).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn file() {
                super::$name(Store::File).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3_protocol_server() {
                super::$name(Store::S3).await;
            }
        }
    )*};
}
pub(super) use on_every_store;

on_every_store!(
    round_trip,
    failing_and_hanging_store_delays_uploads_but_loses_nothing,
    a_second_writer_fences_the_first,
    a_backlog_of_many_chunks_drains_and_reads_back,
    retention_by_bytes_drops_old_segments_and_their_objects,
    unreferenced_objects_are_swept_and_named_ones_kept,
    time_retention_runs_after_a_restart_without_new_data,
    a_deleted_streams_objects_are_deleted_even_across_a_restart,
    a_segment_written_but_not_committed_is_retried_and_swept,
);
