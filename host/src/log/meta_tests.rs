//! Tests of stream metadata: control entries, the snapshot and names.

use super::*;
use crate::log::stream_config::CompactionTuning;

#[test]
fn stream_config_is_checked_in_one_place() {
    let compaction = Compaction {
        plugin: "p".into(),
        plugin_version: None,
        config: Vec::new(),
        delete: false,
        delete_retention_ms: 0,
        min_compaction_lag_ms: 0,
        min_cleanable_dirty_ppm: 500_000,
        memory_bytes: Compaction::DEFAULT_MEMORY_BYTES,
    };
    let ok = StreamConfig {
        compaction: Some(compaction.clone()),
        ..StreamConfig::default()
    };
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(StreamConfig::default().validate(), Ok(()));
    let bad = |c: StreamConfig, needle: &str| {
        let err = c.validate().unwrap_err();
        assert!(err.contains(needle), "{err}");
    };
    let retention = |ms, bytes| Retention { ms, bytes };
    bad(retention(Some(0), None).into(), "retention must be positive");
    bad(retention(None, Some(0)).into(), "retention must be positive");
    let with = |f: &dyn Fn(&mut Compaction)| {
        let mut c = compaction.clone();
        f(&mut c);
        StreamConfig {
            compaction: Some(c),
            ..StreamConfig::default()
        }
    };
    bad(
        with(&|c| c.min_cleanable_dirty_ppm = 1_000_001),
        "min_cleanable_dirty_ratio",
    );
    bad(with(&|c| c.memory_bytes = 1), "compaction_memory_bytes");
    let mut retained = ok.clone();
    retained.retention = retention(Some(1000), None);
    bad(retained, "compact,delete");
    let with_min = |factor, min_insync_replicas| StreamConfig {
        replication: Some(Replication {
            factor,
            assignment: Vec::new(),
            min_insync_replicas,
        }),
        ..StreamConfig::default()
    };
    let replicated = |factor| with_min(factor, None);
    bad(replicated(0), "replication_factor");
    assert_eq!(replicated(3).validate(), Ok(()));
    // A stream's own minimum in-sync set: 1 to its factor.
    for m in [1, 3] {
        assert_eq!(with_min(3, Some(m)).validate(), Ok(()), "{m}");
    }
    bad(with_min(3, Some(0)), "at least 1");
    bad(with_min(3, Some(4)), "more than the 3 replicas");
    let mut both = replicated(3);
    both.compaction = Some(compaction);
    assert_eq!(both.validate(), Ok(()));
    // The built-in policy takes only its tombstone rule.
    let built_in = |config: &[(&str, &str)]| StreamConfig {
        compaction: Some(Compaction {
            config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Compaction::by_record_key(false)
        }),
        ..StreamConfig::default()
    };
    for rule in ["null", "null_or_empty"] {
        assert_eq!(built_in(&[("tombstone", rule)]).validate(), Ok(()));
    }
    bad(built_in(&[("tombstone", "empty")]), "tombstone");
    bad(built_in(&[("pointer", "/id")]), "tombstone");
    assert!(!Compaction::kafka_record_key(true).empty_is_tombstone());
    assert!(Compaction::by_record_key(true).empty_is_tombstone());
}

#[test]
fn snapshot_round_trip_and_apply() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load_snapshot(dir.path()).is_none());
    let mut s = Snapshot::new();
    let m = StreamMeta {
        id: 4,
        name: "a".into(),
        partitions: 2,
        created_ms: 1,
        retention: Retention::default(),
        compaction: None,
        replication: None,
        max_message_bytes: None,
        settings_stamp: SettingsStamp::default(),
    };
    s.apply(10, &ControlOp::CreateStream(m));
    s.apply(11, &ControlOp::DeleteStream { id: 4 });
    assert_eq!(s.next_stream_id, 5);
    assert!(s.streams.is_empty());
    store_snapshot(dir.path(), &s).unwrap();
    assert_eq!(load_snapshot(dir.path()), Some(s));
    std::fs::write(snapshot_path(dir.path()), b"{not json").unwrap();
    assert!(load_snapshot(dir.path()).is_none());
}

#[test]
fn epoch_history_answers_where_an_epoch_ends() {
    let mut l = Leadership::initial(1);
    assert_eq!(l.last_epoch(0), None);
    assert_eq!(l.last_epoch(5), Some(0));
    l.begin(1, 2, 10);
    l.begin(3, 1, 25);
    assert_eq!(l.history, vec![(0, 0), (1, 10), (3, 25)]);
    assert_eq!(l.last_epoch(10), Some(0));
    assert_eq!(l.last_epoch(11), Some(1));
    assert_eq!(l.last_epoch(40), Some(3));
    assert_eq!(l.end_of_epoch(0, 40), Some(10));
    assert_eq!(l.end_of_epoch(1, 40), Some(25));
    assert_eq!(
        l.end_of_epoch(2, 40),
        Some(25),
        "an epoch that wrote nothing ends where the next begins"
    );
    assert_eq!(l.end_of_epoch(3, 40), Some(40));
    assert_eq!(l.end_of_epoch(4, 40), None, "the asker knows a newer epoch");
    l.truncate(10);
    assert_eq!(l.history, vec![(0, 0)]);
    l.begin(4, 3, 8);
    assert_eq!(l.history, vec![(0, 0), (4, 8)]);
    assert_eq!((l.epoch, l.leader), (4, 3));
}

#[test]
fn names_are_checked() {
    assert!(validate_name("orders.v1-eu_2").is_ok());
    for bad in ["", "..", "a/b", "sp ace", &"x".repeat(129), "é"] {
        assert!(validate_name(bad).is_err(), "{bad:?} accepted");
    }
}

/// The settings entries as docs/FORMATS.md gives them decode and apply:
/// `set_settings` holds all settings as they are afterwards, and an
/// earlier build's `set_retention` is still replayed.
#[test]
fn settings_entries_decode_as_documented_and_apply() {
    let mut s = Snapshot::new();
    let create = r#"{"op":"create_stream","id":1,"name":"orders","partitions":1,"created_ms":5,
        "replication":{"factor":3,"assignment":[[1,2,3]]},"compaction":{"plugin":"sluice:record-key",
        "delete":true,"delete_retention_ms":1,"min_compaction_lag_ms":2,"min_cleanable_dirty_ppm":3,
        "memory_bytes":16777216}}"#;
    let set = r#"{"op":"set_settings","id":1,"settings":{"retention":{"ms":3600000},"min_insync_replicas":2,
        "max_message_bytes":2000,"compaction":{"delete_retention_ms":86400000,"min_compaction_lag_ms":0,
        "min_cleanable_dirty_ppm":500000}},"stamp":{"version":4,"node":2}}"#;
    let legacy = r#"{"op":"set_retention","id":1,"retention":{"bytes":4096}}"#;
    for (lsn, entry) in [create, set].into_iter().enumerate() {
        let op: ControlOp = serde_json::from_str(entry).unwrap();
        s.apply(lsn as u64 + 1, &op);
    }
    let m = &s.streams[&1];
    let want = StreamSettings {
        retention: Retention {
            ms: Some(3_600_000),
            bytes: None,
        },
        min_insync_replicas: Some(2),
        max_message_bytes: Some(2000),
        compaction: Some(CompactionTuning {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ppm: 500_000,
        }),
    };
    let stamp = SettingsStamp { version: 4, node: 2 };
    assert_eq!((m.settings(), m.settings_stamp), (want, stamp));
    let written = serde_json::to_value(ControlOp::SetSettings {
        id: 1,
        settings: want,
        stamp,
    })
    .unwrap();
    assert_eq!(written, serde_json::from_str::<serde_json::Value>(set).unwrap());
    // The snapshot keeps the stamp; a stream without one writes none.
    let snap = serde_json::to_value(&s.streams[&1]).unwrap();
    assert_eq!(snap["settings_stamp"], serde_json::json!({"version": 4, "node": 2}));
    let unstamped = ControlOp::SetSettings {
        id: 1,
        settings: want,
        stamp: SettingsStamp::default(),
    };
    assert!(serde_json::to_value(&unstamped).unwrap().get("stamp").is_none());
    s.apply(3, &serde_json::from_str(legacy).unwrap());
    let m = &s.streams[&1];
    assert_eq!(
        m.retention,
        Retention {
            ms: None,
            bytes: Some(4096)
        }
    );
    assert_eq!(m.max_message_bytes, Some(2000), "a retention entry leaves the rest");
    assert_eq!(m.settings_stamp, stamp, "and the stamp");
}

/// Deleting a replicated stream leaves its name and creation time in the
/// snapshot (at most `DELETED_KEPT`, the oldest dropped first), so a node
/// that missed the delete can be told; a stream of this node alone leaves
/// nothing.
#[test]
fn deleted_replicated_streams_are_remembered_within_a_bound() {
    let mut s = Snapshot::new();
    let stream = |id: u32, replicated: bool| StreamMeta {
        id,
        name: format!("s{id}"),
        partitions: 1,
        created_ms: u64::from(id) * 10,
        retention: Retention::default(),
        compaction: None,
        replication: replicated.then(|| Replication {
            factor: 3,
            assignment: vec![vec![1, 2, 3]],
            min_insync_replicas: None,
        }),
        max_message_bytes: None,
        settings_stamp: SettingsStamp::default(),
    };
    let mut lsn = 0;
    let mut apply = |s: &mut Snapshot, op: ControlOp| {
        lsn += 1;
        s.apply(lsn, &op);
    };
    apply(&mut s, ControlOp::CreateStream(stream(1, false)));
    apply(&mut s, ControlOp::DeleteStream { id: 1 });
    assert!(s.deleted.is_empty(), "a stream of this node alone");
    let total = DELETED_KEPT as u32 + 2;
    for id in 2..2 + total {
        apply(&mut s, ControlOp::CreateStream(stream(id, true)));
        apply(&mut s, ControlOp::DeleteStream { id });
    }
    assert_eq!(s.deleted.len(), DELETED_KEPT);
    let oldest = DeletedStream {
        name: "s4".into(),
        created_ms: 40,
    };
    assert_eq!(s.deleted.first(), Some(&oldest), "the two oldest were dropped");
    let back: Snapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back.deleted, s.deleted);
}
