//! Stream log tests on real files: durability of data and metadata across
//! reopen, dense offsets under concurrency, read limits, bad inputs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;

pub(super) fn rec(v: &str) -> Record {
    Record {
        key: Some(Bytes::from(format!("k-{v}"))),
        value: Some(Bytes::from(v.to_string())),
        headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
        timestamp_ms: 1_700_000_000_000,
    }
}

pub(super) fn open(dir: &Path) -> Log {
    Log::open(dir, Options::default()).unwrap()
}

pub(super) fn values(b: &ReadBatch) -> Vec<String> {
    b.records
        .iter()
        .map(|r| String::from_utf8(r.record.value_bytes().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn data_and_metadata_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_stream("orders", 3).await.unwrap();
    log.create_stream("gone", 1).await.unwrap();
    assert_eq!(
        log.append("orders", 1, &[rec("a"), rec("b")])
            .await
            .unwrap()
            .base_offset,
        0
    );
    assert_eq!(log.append("orders", 1, &[rec("c")]).await.unwrap().base_offset, 2);
    log.append("gone", 0, &[rec("old")]).await.unwrap();
    log.delete_stream("gone").await.unwrap();
    log.shutdown().await;

    for round in 0..2 {
        if round == 1 {
            // A lost snapshot is rebuilt from the WAL's control entries.
            std::fs::remove_file(meta::snapshot_path(dir.path())).unwrap();
        }
        let log = open(dir.path());
        let names: Vec<String> = log.list_streams().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["orders"]);
        let info = log.describe_stream("orders").unwrap();
        assert_eq!(info.partitions[1].end, 3);
        assert_eq!(info.partitions[0].end, 0);
        let got = log.read("orders", 1, 0, 100, 1 << 20).await.unwrap();
        assert_eq!(values(&got), vec!["a", "b", "c"]);
        assert_eq!(got.records[2].record, rec("c"));
        assert_eq!((got.next_offset, got.end_offset), (3, 3));
        log.shutdown().await;
    }

    // Re-creating a deleted name gives a fresh, empty stream with a new id.
    let log = open(dir.path());
    let again = log.create_stream("gone", 1).await.unwrap();
    assert!(again.id > 2);
    assert_eq!(again.partitions[0].end, 0);
    log.shutdown().await;
    let log = open(dir.path());
    assert_eq!(log.describe_stream("gone").unwrap().partitions[0].end, 0);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_dense_offsets_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path()));
    log.create_stream("s", 2).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..50 {
                let batch = [rec(&format!("{t}-{i}-0")), rec(&format!("{t}-{i}-1"))];
                got.push((
                    log.append("s", t % 2, &batch).await.unwrap().base_offset,
                    format!("{t}-{i}"),
                ));
            }
            got
        }));
    }
    let mut by_offset = std::collections::BTreeMap::new();
    for t in tasks {
        let got = t.await.unwrap();
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "one producer's batches out of order"
        );
        for (off, id) in got {
            by_offset.insert((id.split('-').next().unwrap().parse::<u32>().unwrap() % 2, off), id);
        }
    }
    for p in 0..2u32 {
        let all = log.read("s", p, 0, usize::MAX, usize::MAX).await.unwrap();
        assert_eq!(all.records.len(), 400);
        for (i, r) in all.records.iter().enumerate() {
            assert_eq!(r.offset, i as u64, "offsets must be dense");
            let id = &by_offset[&(p, r.offset - r.offset % 2)];
            assert_eq!(
                values(&ReadBatch {
                    records: vec![r.clone()],
                    ..all.clone()
                })[0],
                format!("{id}-{}", i % 2)
            );
        }
    }
}

#[tokio::test]
async fn read_limits_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_stream("s", 1).await.unwrap();
    for i in 0..10 {
        log.append("s", 0, &[rec(&format!("{i:03}"))]).await.unwrap();
    }
    let b = log.read("s", 0, 3, 4, 1 << 20).await.unwrap();
    assert_eq!(values(&b), vec!["003", "004", "005", "006"]);
    assert_eq!(b.next_offset, 7);
    // max_bytes smaller than one record still returns one record.
    assert_eq!(log.read("s", 0, 5, 100, 1).await.unwrap().records.len(), 1);
    let size = rec("000").size();
    assert_eq!(log.read("s", 0, 0, 100, size * 3).await.unwrap().records.len(), 3);
    // At the end: empty, not an error. Past it: out of range.
    let end = log.read("s", 0, 10, 100, 100).await.unwrap();
    assert!(end.records.is_empty());
    assert_eq!(end.next_offset, 10);
    assert!(matches!(
        log.read("s", 0, 11, 1, 1).await,
        Err(LogError::OffsetOutOfRange { end: 10, .. })
    ));
    assert!(matches!(
        log.read("s", 0, u64::MAX, 1, 1).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Reads after reopen come from the files, not the cache.
    log.shutdown().await;
    let log = open(dir.path());
    assert_eq!(
        values(&log.read("s", 0, 8, 10, 1 << 20).await.unwrap()),
        vec!["008", "009"]
    );
    log.shutdown().await;
}

#[tokio::test]
async fn bad_inputs_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert!(matches!(
        log.create_stream("a/b", 1).await,
        Err(LogError::InvalidName { .. })
    ));
    assert!(matches!(
        log.create_stream("a", 0).await,
        Err(LogError::InvalidPartitions { .. })
    ));
    assert!(matches!(
        log.create_stream("a", 5000).await,
        Err(LogError::InvalidPartitions { .. })
    ));
    log.create_stream("a", 2).await.unwrap();
    assert!(matches!(
        log.create_stream("a", 2).await,
        Err(LogError::StreamExists { .. })
    ));
    assert!(matches!(log.append("a", 0, &[]).await, Err(LogError::InvalidBatch(_))));
    assert!(matches!(
        log.append("a", 2, &[rec("x")]).await,
        Err(LogError::PartitionNotFound { partitions: 2, .. })
    ));
    assert!(matches!(
        log.append("nope", 0, &[rec("x")]).await,
        Err(LogError::StreamNotFound { .. })
    ));
    assert!(matches!(
        log.delete_stream("nope").await,
        Err(LogError::StreamNotFound { .. })
    ));
    let huge = Record {
        value: Some(Bytes::from(vec![0u8; 65 * 1024 * 1024])),
        ..Default::default()
    };
    assert!(matches!(
        log.append("a", 0, &[huge]).await,
        Err(LogError::BatchTooLarge { .. })
    ));
    // Nothing above consumed an offset.
    assert_eq!(log.append("a", 0, &[rec("x")]).await.unwrap().base_offset, 0);
    log.shutdown().await;
}

#[tokio::test]
async fn an_abandoned_append_still_becomes_visible() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_stream("s", 1).await.unwrap();
    // Poll the append once (it is queued), then drop it like a client that hung up.
    let _ = tokio::time::timeout(Duration::ZERO, log.append("s", 0, &[rec("orphan")])).await;
    let next = log.append("s", 0, &[rec("after")]).await.unwrap();
    assert_eq!(next.base_offset, 1);
    let all = log.read("s", 0, 0, 10, 1 << 20).await.unwrap();
    assert_eq!(values(&all), vec!["orphan", "after"]);
    log.shutdown().await;
}

#[tokio::test]
async fn pipeline_positions_survive_reopen_from_the_wal_alone() {
    use meta::PipelineMeta;
    use progress::Progress;
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_stream("in", 2).await.unwrap();
    log.create_stream("out", 1).await.unwrap();
    let m = PipelineMeta {
        id: 0,
        name: "p".into(),
        input: "in".into(),
        output: "out".into(),
        plugin: "x".into(),
        plugin_version: None,
        config: vec![],
        batch_records: 10,
        paused: false,
        created_ms: 0,
    };
    let id = log.create_pipeline(m).await.unwrap().id;
    let at = |partition, next_offset| Progress {
        pipeline: id,
        input_partition: partition,
        next_offset,
    };
    log.append_output("out", 0, &[rec("o1")], at(0, 5)).await.unwrap();
    log.append_output("out", 0, &[], at(1, 7)).await.unwrap(); // no output: a control entry
    log.append_output("out", 0, &[], at(0, 9)).await.unwrap();
    log.append_output("out", 0, &[rec("o2")], at(1, 8)).await.unwrap();
    assert_eq!((log.pipeline_position(id, 0), log.pipeline_position(id, 1)), (9, 8));
    log.shutdown().await;
    for round in 0..2 {
        if round == 1 {
            std::fs::remove_file(meta::snapshot_path(dir.path())).unwrap();
        }
        let log = open(dir.path());
        assert_eq!(
            (log.pipeline_position(id, 0), log.pipeline_position(id, 1)),
            (9, 8),
            "round {round}"
        );
        let out = log.read("out", 0, 0, 10, 1 << 20).await.unwrap();
        assert_eq!(
            values(&out),
            vec!["o1", "o2"],
            "the progress trailer is not part of the records"
        );
        log.shutdown().await;
    }
}

/// The first entries of a new object-store WAL come back on a node whose
/// data dir is empty (stateless restart after kill -9), and on one that
/// kept its data dir but lost the metadata snapshot. A log that numbered
/// its first entry 0 lost the first stream here: an absent snapshot's
/// `as_of_lsn` of 0 was taken to cover it.
/// Options of a log whose WAL is in a fresh in-memory object store.
pub(super) fn object_wal_options() -> Options {
    use crate::objstore::{Remote, RemoteOptions};
    let remote = Remote::new(
        Arc::new(object_store::memory::InMemory::new()),
        object_store::path::Path::from("node"),
        RemoteOptions::default(),
    );
    Options {
        wal_backend: WalBackend::Object {
            remote,
            opts: wal::object::ObjectOptions {
                interval: Duration::from_millis(2),
                ..Default::default()
            },
        },
        ..Options::default()
    }
}

/// Opens a log off the async workers (an object WAL blocks while it opens).
pub(super) async fn open_blocking(dir: PathBuf, opts: Options) -> Log {
    tokio::task::spawn_blocking(move || Log::open(&dir, opts))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_entries_of_an_object_wal_survive_an_empty_data_dir() {
    let opts = object_wal_options();
    let open = |dir: PathBuf| open_blocking(dir, opts.clone());
    let first = tempfile::tempdir().unwrap();
    let log = open(first.path().to_path_buf()).await;
    log.create_stream("s", 1).await.unwrap();
    assert_eq!(log.append("s", 0, &[rec("a")]).await.unwrap().base_offset, 0);
    log.create_stream("t", 1).await.unwrap();
    log.append("t", 0, &[rec("b")]).await.unwrap();
    // No shutdown: the process is gone, the next writer fences this one.
    drop(log);

    // 1. An empty data dir.
    let wiped = tempfile::tempdir().unwrap();
    let log = open(wiped.path().to_path_buf()).await;
    assert_both_back(&log).await;
    log.shutdown().await;
    // 2. The first data dir, without its snapshot.
    std::fs::remove_file(meta::snapshot_path(first.path())).unwrap();
    let log = open(first.path().to_path_buf()).await;
    assert_both_back(&log).await;
    log.shutdown().await;
}

/// Streams `s` and `t` exist, each with its one record (`a`, `b`).
async fn assert_both_back(log: &Log) {
    let names: Vec<String> = log.list_streams().into_iter().map(|s| s.name).collect();
    assert_eq!(names.len(), 2, "streams after restart: {names:?}");
    for (name, value) in [("s", "a"), ("t", "b")] {
        assert!(names.iter().any(|n| n == name), "stream {name} lost: {names:?}");
        let got = log.read(name, 0, 0, 10, 1 << 20).await.unwrap();
        assert_eq!(values(&got), vec![value], "{name}");
        assert_eq!(got.end_offset, 1, "{name}");
    }
}

#[test]
fn a_snapshot_as_of_lsn_0_covers_nothing() {
    let mut snap = meta::Snapshot::new();
    assert!(!snap.covers(0) && !snap.covers(wal::FIRST_LSN));
    snap.as_of_lsn = 5;
    assert!(snap.covers(0) && snap.covers(5) && !snap.covers(6));
}

/// Record runs say exactly what a decoded read says: same records, same
/// next offset, for reads starting inside batches and cut by either limit.
#[tokio::test]
async fn record_runs_match_decoded_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_stream("s", 1).await.unwrap();
    for b in 0..6 {
        let batch: Vec<Record> = (0..(b + 1) * 3).map(|i| rec(&format!("{b}-{i:03}"))).collect();
        log.append("s", 0, &batch).await.unwrap();
    }
    let end = log.describe_stream("s").unwrap().partitions[0].end;
    for offset in 0..end {
        for (max_records, max_bytes) in [(1, 1 << 20), (7, 1 << 20), (1000, 40), (1000, 1), (1000, 1 << 20)] {
            let decoded = log.read("s", 0, offset, max_records, max_bytes).await.unwrap();
            let runs = log.read_runs("s", 0, offset, max_records, max_bytes).await.unwrap();
            assert_eq!(runs.next_offset, decoded.next_offset);
            assert_eq!(
                (runs.start_offset, runs.end_offset),
                (decoded.start_offset, decoded.end_offset)
            );
            let mut from_runs = Vec::new();
            for run in &runs.runs {
                let got = record::decode_batch(&run.bodies, run.first_offset, run.count).unwrap();
                from_runs.extend(got);
            }
            assert_eq!(
                from_runs, decoded.records,
                "offset {offset}, limits {max_records}/{max_bytes}"
            );
        }
    }
}

/// A read stops decoding where it stops taking records: a damaged record
/// later in a batch does not fail a read that ends before it.
#[test]
fn reads_decode_only_as_far_as_they_take() {
    let records: Vec<Record> = (0..4).map(|i| rec(&i.to_string())).collect();
    let good = record::encode_batch(&records).unwrap();
    // Cut inside the second record.
    let second = record::encode_batch(&records[..1]).unwrap().len();
    let cut = Bytes::copy_from_slice(&good[..second + 3]);
    let acc = read::tests_acc;
    let mut one = acc(1);
    assert_eq!(one.push(&cut, 0, 4, u64::MAX), Ok(true));
    let mut all = acc(10);
    assert!(all.push(&cut, 0, 4, u64::MAX).is_err());
}

/// A follower takes exactly the next offsets from its leader: a batch that
/// would leave a gap, or repeat what it holds, is refused and stores nothing.
#[tokio::test]
async fn a_replica_batch_must_start_at_the_partitions_end() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        node_id: Some(2),
        ..Options::default()
    };
    let log = Log::open(dir.path(), opts).unwrap();
    let config = meta::StreamConfig {
        replication: Some(meta::Replication {
            factor: 2,
            assignment: vec![vec![1, 2]],
            min_insync_replicas: None,
        }),
        ..meta::StreamConfig::default()
    };
    log.create_stream_with("r", 1, config).await.unwrap();
    let batch = |base: u64| crate::log::replica::RawBatch {
        base_offset: base,
        count: 2,
        payload: record::encode_batch(&[rec("a"), rec("b")]).unwrap(),
        producer: None,
    };
    let gap = log.append_replica("r", 0, vec![batch(5)]).await.unwrap_err();
    assert!(matches!(gap, LogError::ReplicaMismatch { .. }), "{gap}");
    log.append_replica("r", 0, vec![batch(0)]).await.unwrap();
    let again = log.append_replica("r", 0, vec![batch(0)]).await.unwrap_err();
    assert!(matches!(again, LogError::ReplicaMismatch { .. }), "{again}");
    assert_eq!(log.replica("r", 0).unwrap().log_end, 2);
    log.shutdown().await;
}

/// The node's stream and partition caps refuse a creation that would pass
/// them, with a clear error, and leave room once streams are deleted.
#[tokio::test]
async fn stream_and_total_partition_caps_hold() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_streams: 2,
        max_total_partitions: 5,
        ..Options::default()
    };
    let log = Log::open(dir.path(), opts).unwrap();
    log.create_stream("a", 3).await.unwrap();
    let err = log.create_stream("b", 3).await.unwrap_err();
    assert!(matches!(err, LogError::NodeFull { .. }), "{err}");
    assert!(err.to_string().contains("max_total_partitions"), "{err}");
    log.create_stream("b", 2).await.unwrap();
    let err = log.create_stream("c", 1).await.unwrap_err();
    assert!(err.to_string().contains("max_streams"), "{err}");
    assert_eq!(log.list_streams().len(), 2);
    log.delete_stream("b").await.unwrap();
    log.create_stream("c", 2).await.unwrap();
    log.shutdown().await;
}

/// A read that must walk a big batch (to its last record) does the walk on
/// a blocking thread: on a one-thread runtime, another task keeps running
/// while the read is in progress. Walked on the async worker, the ticker
/// would get no turn until the read returned.
#[tokio::test(flavor = "current_thread")]
async fn a_big_batch_is_walked_off_the_async_worker() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_stream("s", 1).await.unwrap();
    let records: Vec<Record> = (0..300_000).map(|i| rec(&format!("{i:07}"))).collect();
    let last = records.len() as u64 - 1;
    log.append("s", 0, &records).await.unwrap();

    let reading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker = {
        let (reading, ticks) = (reading.clone(), ticks.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                if reading.load(std::sync::atomic::Ordering::SeqCst) {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        })
    };
    let mut walked = 0;
    for _ in 0..5 {
        reading.store(true, std::sync::atomic::Ordering::SeqCst);
        let b = log.read("s", 0, last, 10, 1 << 20).await.unwrap();
        reading.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(values(&b), vec![format!("{last:07}")]);
        walked += 1;
    }
    ticker.abort();
    let ticks = ticks.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        ticks >= 5,
        "{ticks} ticks during {walked} reads of a 300,000-record batch"
    );
    log.shutdown().await;
}
