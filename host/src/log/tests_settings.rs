//! Changes to a stream after creation (`settings.rs`): its settings
//! (retention, the minimum in-sync set, the Kafka batch limit, compaction
//! tuning), more partitions, records deleted below an offset. Each must
//! survive reopening from the snapshot, from the WAL alone, and on the
//! object WAL from an empty data dir.

use std::path::PathBuf;

use super::tests::{object_wal_options, open, open_blocking, rec, values};
use super::*;

#[tokio::test]
async fn a_changed_retention_survives_reopen_from_the_snapshot_and_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_stream("s", 1).await.unwrap();
    let set = |ms, bytes| meta::RetentionChange { ms, bytes };
    let info = log
        .set_retention("s", set(Some(Some(60_000)), None), false)
        .await
        .unwrap();
    assert_eq!(
        info.retention,
        meta::Retention {
            ms: Some(60_000),
            bytes: None
        }
    );
    // Only the named limit changes; `Some(None)` removes one.
    let info = log
        .set_retention("s", set(None, Some(Some(4096))), false)
        .await
        .unwrap();
    assert_eq!((info.retention.ms, info.retention.bytes), (Some(60_000), Some(4096)));
    let info = log.set_retention("s", set(Some(None), None), false).await.unwrap();
    assert_eq!((info.retention.ms, info.retention.bytes), (None, Some(4096)));
    // Validate-only answers the result and changes nothing.
    let dry = log.set_retention("s", set(Some(Some(1)), None), true).await.unwrap();
    assert_eq!(dry.retention.ms, Some(1));
    assert_eq!(log.describe_stream("s").unwrap().retention.ms, None);
    // Refused: zero, and a stream that is not there.
    let zero = log
        .set_retention("s", set(None, Some(Some(0))), false)
        .await
        .unwrap_err();
    assert!(matches!(zero, LogError::InvalidConfig(_)), "{zero}");
    let none = log.set_retention("nope", set(None, None), false).await.unwrap_err();
    assert!(matches!(none, LogError::StreamNotFound { .. }), "{none}");
    log.shutdown().await;
    for round in 0..2 {
        if round == 1 {
            std::fs::remove_file(meta::snapshot_path(dir.path())).unwrap();
        }
        let log = open(dir.path());
        let r = log.describe_stream("s").unwrap().retention;
        assert_eq!((r.ms, r.bytes), (None, Some(4096)), "round {round}");
        log.shutdown().await;
    }
}

#[tokio::test]
async fn a_streams_settings_change_together_and_survive_reopen_from_the_snapshot_and_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options {
        node_id: Some(1),
        ..Options::default()
    };
    let log = Log::open(dir.path(), opts()).unwrap();
    let replicated = meta::StreamConfig {
        replication: Some(meta::Replication {
            factor: 3,
            assignment: vec![vec![1, 2, 3]],
            min_insync_replicas: Some(3),
        }),
        retention: meta::Retention {
            ms: Some(60_000),
            bytes: None,
        },
        ..meta::StreamConfig::default()
    };
    log.create_stream_with("r", 1, replicated).await.unwrap();
    log.create_stream("alone", 1).await.unwrap();
    let own = |info: StreamInfo| {
        let min = info.replication.and_then(|r| r.min_insync_replicas);
        (min, info.max_message_bytes, info.retention.ms)
    };
    let set = |min, max| meta::SettingsChange {
        min_insync_replicas: min,
        max_message_bytes: max,
        ..Default::default()
    };
    assert_eq!(own(log.describe_stream("r").unwrap()), (Some(3), None, Some(60_000)));
    // Validate-only answers the result and changes nothing.
    let dry = log.set_settings("r", set(Some(Some(1)), Some(Some(900))), true).await;
    assert_eq!(own(dry.unwrap()), (Some(1), Some(900), Some(60_000)));
    assert_eq!(own(log.describe_stream("r").unwrap()), (Some(3), None, Some(60_000)));
    let cleared = log.set_settings("r", set(Some(None), None), false).await.unwrap();
    assert_eq!(own(cleared), (None, None, Some(60_000)));
    let both = log.set_settings("r", set(Some(Some(2)), Some(Some(900))), false).await;
    assert_eq!(own(both.unwrap()), (Some(2), Some(900), Some(60_000)));
    // Refused, with nothing changed: a minimum of none, more than the
    // replicas, and on a stream of one replica anything above 1; a batch
    // limit of 0 (also when the other change is fine).
    for (stream, min, max) in [("r", 0, None), ("r", 4, None), ("alone", 2, None), ("r", 1, Some(0))] {
        let e = log
            .set_settings(stream, set(Some(Some(min)), max.map(Some)), false)
            .await;
        let e = e.unwrap_err();
        assert!(matches!(e, LogError::InvalidConfig(_)), "{stream} {min}: {e}");
    }
    assert_eq!(
        own(log.describe_stream("r").unwrap()),
        (Some(2), Some(900), Some(60_000))
    );
    let alone = log
        .set_settings("alone", set(Some(Some(1)), Some(Some(5))), false)
        .await;
    assert_eq!(
        own(alone.unwrap()),
        (None, Some(5), None),
        "one replica keeps no minimum"
    );
    // A compacted stream's tuning changes; on others it is refused.
    let compacted = meta::StreamConfig {
        compaction: Some(meta::Compaction::by_record_key(false)),
        ..meta::StreamConfig::default()
    };
    log.create_stream_with("c", 1, compacted).await.unwrap();
    let tune = |lag| meta::SettingsChange {
        compaction: meta::TuningChange {
            min_compaction_lag_ms: Some(lag),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = log.set_settings("alone", tune(5), false).await.unwrap_err();
    assert!(e.to_string().contains("not compacted"), "{e}");
    let tuned = log.set_settings("c", tune(5), false).await.unwrap();
    let lag = |info: StreamInfo| {
        info.compaction
            .map(|c| (c.min_compaction_lag_ms, c.delete_retention_ms))
    };
    let day = meta::Compaction::DEFAULT_DELETE_RETENTION_MS;
    assert_eq!(lag(tuned), Some((5, day)), "the others stay");
    log.shutdown().await;
    for round in 0..2 {
        if round == 1 {
            std::fs::remove_file(meta::snapshot_path(dir.path())).unwrap();
        }
        let log = Log::open(dir.path(), opts()).unwrap();
        let r = own(log.describe_stream("r").unwrap());
        assert_eq!(r, (Some(2), Some(900), Some(60_000)), "round {round}");
        let alone = own(log.describe_stream("alone").unwrap());
        assert_eq!(alone, (None, Some(5), None), "round {round}");
        assert_eq!(lag(log.describe_stream("c").unwrap()), Some((5, day)), "round {round}");
        log.shutdown().await;
    }
}

#[tokio::test]
async fn added_partitions_take_records_and_survive_reopen_from_the_snapshot_and_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_stream("s", 1).await.unwrap();
    log.append("s", 0, &[rec("p0")]).await.unwrap();
    // Validate-only and refusals change nothing.
    assert_eq!(log.add_partitions("s", 3, true).await.unwrap().partitions.len(), 3);
    assert_eq!(log.describe_stream("s").unwrap().partitions.len(), 1);
    for (n, what) in [(1, "same count"), (0, "fewer")] {
        let e = log.add_partitions("s", n, false).await.unwrap_err();
        assert!(matches!(e, LogError::InvalidConfig(_)), "{what}: {e}");
    }
    let too_many = log
        .add_partitions("s", Options::default().max_partitions + 1, false)
        .await;
    assert!(
        matches!(too_many, Err(LogError::InvalidPartitions { .. })),
        "{too_many:?}"
    );
    let grown = log.add_partitions("s", 3, false).await.unwrap();
    assert_eq!(
        grown.partitions.iter().map(|p| p.end).collect::<Vec<_>>(),
        vec![1, 0, 0]
    );
    log.append("s", 2, &[rec("p2-a"), rec("p2-b")]).await.unwrap();
    log.shutdown().await;
    for round in 0..2 {
        if round == 1 {
            std::fs::remove_file(meta::snapshot_path(dir.path())).unwrap();
        }
        let log = open(dir.path());
        let ends: Vec<u64> = log
            .describe_stream("s")
            .unwrap()
            .partitions
            .iter()
            .map(|p| p.end)
            .collect();
        assert_eq!(ends, vec![1, 0, 2], "round {round}");
        assert_eq!(
            values(&log.read("s", 2, 0, 10, 1 << 20).await.unwrap()),
            vec!["p2-a", "p2-b"]
        );
        assert_eq!(values(&log.read("s", 0, 0, 10, 1 << 20).await.unwrap()), vec!["p0"]);
        log.shutdown().await;
    }
}

#[tokio::test]
async fn deleted_records_stay_deleted_across_reopen_from_the_snapshot_and_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_stream("s", 2).await.unwrap();
    let batch: Vec<Record> = (0..10).map(|i| rec(&format!("v{i}"))).collect();
    log.append("s", 0, &batch).await.unwrap();
    assert_eq!(log.delete_records("s", 0, Some(4)).await.unwrap(), 4);
    // Never back; past the end refused; `None` is the end.
    assert_eq!(log.delete_records("s", 0, Some(2)).await.unwrap(), 4);
    let past = log.delete_records("s", 0, Some(11)).await.unwrap_err();
    assert!(matches!(past, LogError::OffsetOutOfRange { .. }), "{past}");
    assert_eq!(log.delete_records("s", 1, None).await.unwrap(), 0);
    let below = log.read("s", 0, 3, 10, 1 << 20).await.unwrap_err();
    assert!(matches!(below, LogError::OffsetOutOfRange { start: 4, .. }), "{below}");
    assert_eq!(
        values(&log.read("s", 0, 4, 2, 1 << 20).await.unwrap()),
        vec!["v4", "v5"]
    );
    // A stream compacted without `delete` refuses: its records go by key.
    let config = meta::StreamConfig {
        compaction: Some(meta::Compaction::by_record_key(false)),
        ..meta::StreamConfig::default()
    };
    log.create_stream_with("c", 1, config).await.unwrap();
    let compacted = log.delete_records("c", 0, None).await.unwrap_err();
    assert!(matches!(compacted, LogError::InvalidConfig(_)), "{compacted}");
    log.shutdown().await;
    for round in 0..2 {
        if round == 1 {
            std::fs::remove_file(meta::snapshot_path(dir.path())).unwrap();
        }
        let log = open(dir.path());
        let info = log.describe_stream("s").unwrap();
        assert_eq!(
            (info.partitions[0].start, info.partitions[0].end),
            (4, 10),
            "round {round}"
        );
        assert_eq!(values(&log.read("s", 0, 4, 1, 1 << 20).await.unwrap()), vec!["v4"]);
        // Later deletions go on from there, up to the end.
        if round == 1 {
            assert_eq!(log.delete_records("s", 0, None).await.unwrap(), 10);
        }
        log.shutdown().await;
    }
    let log = open(dir.path());
    let p = &log.describe_stream("s").unwrap().partitions[0];
    assert_eq!((p.start, p.end), (10, 10));
    log.shutdown().await;
}

/// On the object WAL, every change comes back into an empty data dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_survives_an_empty_data_dir_on_the_object_wal() {
    let opts = object_wal_options();
    let open_object = |dir: PathBuf| open_blocking(dir, opts.clone());
    let first = tempfile::tempdir().unwrap();
    let log = open_object(first.path().to_path_buf()).await;
    log.create_stream("s", 1).await.unwrap();
    let batch: Vec<Record> = (0..5).map(|i| rec(&format!("v{i}"))).collect();
    log.append("s", 0, &batch).await.unwrap();
    let change = meta::RetentionChange {
        ms: Some(Some(60_000)),
        bytes: None,
    };
    log.set_retention("s", change, false).await.unwrap();
    log.add_partitions("s", 2, false).await.unwrap();
    log.append("s", 1, &[rec("p1")]).await.unwrap();
    assert_eq!(log.delete_records("s", 0, Some(3)).await.unwrap(), 3);
    // No shutdown: the process is gone.
    drop(log);

    let wiped = tempfile::tempdir().unwrap();
    let log = open_object(wiped.path().to_path_buf()).await;
    let info = log.describe_stream("s").unwrap();
    assert_eq!(info.retention.ms, Some(60_000));
    let ranges: Vec<(u64, u64)> = info.partitions.iter().map(|p| (p.start, p.end)).collect();
    assert_eq!(ranges, vec![(3, 5), (0, 1)]);
    assert_eq!(
        values(&log.read("s", 0, 3, 10, 1 << 20).await.unwrap()),
        vec!["v3", "v4"]
    );
    assert_eq!(values(&log.read("s", 1, 0, 10, 1 << 20).await.unwrap()), vec!["p1"]);
    log.shutdown().await;
}

/// Changes of a replicated stream's settings made on different nodes at
/// the same moment: every node keeps the newest stamp it was told of,
/// whatever the order they arrive in, so all nodes end alike.
#[tokio::test]
async fn stamped_settings_keep_the_newest_change_in_any_order_and_survive_reopen() {
    let replicated = || meta::StreamConfig {
        replication: Some(meta::Replication {
            factor: 3,
            assignment: vec![vec![1, 2, 3]],
            min_insync_replicas: None,
        }),
        ..meta::StreamConfig::default()
    };
    let max = |bytes: u64| meta::SettingsChange {
        max_message_bytes: Some(Some(bytes)),
        ..Default::default()
    };
    let stamp = |version, node| meta::SettingsStamp { version, node };
    let changes = [(stamp(1, 1), 1000), (stamp(1, 2), 2000), (stamp(2, 1), 3000)];
    // Every order of three changes ends with the newest.
    let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for order in orders {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), Options::default()).unwrap();
        log.create_stream_with("r", 1, replicated()).await.unwrap();
        assert!(log.stream_meta("r").unwrap().settings_stamp.is_unset());
        let mut newest = meta::SettingsStamp::default();
        for i in order {
            let (s, bytes) = changes[i];
            let out = log.set_settings_stamped("r", max(bytes), s).await.unwrap();
            assert_eq!(out.applied, s >= newest, "{order:?}: {s:?} after {newest:?}");
            newest = newest.max(s);
            let kept = changes.iter().find(|(c, _)| *c == newest).unwrap().1;
            assert_eq!(out.info.max_message_bytes, Some(kept), "{order:?}");
        }
        // The same change again is a repeat, not a refusal.
        let again = log.set_settings_stamped("r", max(3000), stamp(2, 1)).await.unwrap();
        assert!(again.applied);
        // A newer change that breaks the creation rule changes nothing.
        let too_many = meta::SettingsChange {
            min_insync_replicas: Some(Some(4)),
            ..Default::default()
        };
        let e = log.set_settings_stamped("r", too_many, stamp(9, 1)).await.unwrap_err();
        assert!(matches!(e, LogError::InvalidConfig(_)), "{e}");
        assert_eq!(log.stream_meta("r").unwrap().settings_stamp, stamp(2, 1));
        log.shutdown().await;
        for round in 0..2 {
            if round == 1 {
                std::fs::remove_file(meta::snapshot_path(dir.path())).unwrap();
            }
            let log = Log::open(dir.path(), Options::default()).unwrap();
            let m = log.stream_meta("r").unwrap();
            assert_eq!(
                (m.max_message_bytes, m.settings_stamp),
                (Some(3000), stamp(2, 1)),
                "round {round}"
            );
            // Still refused after reopening: an older change.
            let old = log.set_settings_stamped("r", max(1000), stamp(1, 2)).await.unwrap();
            assert!(!old.applied);
            log.shutdown().await;
        }
    }
}
