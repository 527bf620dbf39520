//! Compaction through a real node: json-key decides, tiered segments are
//! rewritten, the latest record per key stays at its offset, tombstones
//! delete older records, and a policy that traps leaves the data untouched.
//!
//! The policies here need no dirty ratio, so besides the runs a test asks
//! for, the idle uploader compacts on its own, as soon as a second after
//! start: where a run must see all the data, it is produced with tiering
//! held back ([`with_tiering_held`]); elsewhere every run, asked for or
//! not, must come out the same.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use sluice_test_artifacts as wasm;

use super::tests::{Store, eager, read_all, store, wait_for, with_tiering_held};
use crate::objstore::faults::{Fault, FaultyStore, Op};
use crate::{Compaction, Host, Record, StreamConfig};

fn compaction(plugin: &str, config: &[(&str, &str)]) -> Compaction {
    Compaction {
        plugin: plugin.into(),
        plugin_version: None,
        config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        delete: false,
        delete_retention_ms: 3_600_000,
        min_compaction_lag_ms: 0,
        min_cleanable_dirty_ppm: 0,
        memory_bytes: Compaction::MIN_MEMORY_BYTES,
    }
}

fn json_rec(v: String) -> Record {
    Record {
        value: Some(Bytes::from(v)),
        ..Record::default()
    }
}

async fn wait_runs(host: &Host, stream: &str, runs: u64) -> crate::tier::compact::CompactionStatus {
    for _ in 0..2400 {
        let st = host.compaction_status(stream).unwrap()[0].clone();
        if st.runs >= runs || st.last_error.is_some() {
            return st;
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("compaction never ran: {:?}", host.compaction_status(stream));
}

async fn latest_per_key_survives(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let faulty = FaultyStore::new(store);
    let host = Host::open_with_store(eager(dir.path()), faulty.clone(), prefix)
        .await
        .unwrap();
    host.put_plugin("keys", wasm::read(wasm::JSON_KEY)).await.unwrap();
    let cfg = StreamConfig {
        compaction: Some(compaction(
            "keys",
            &[("pointer", "/id"), ("tombstone_when", "/deleted")],
        )),
        ..StreamConfig::default()
    };
    host.create_stream_with("users", 1, cfg).await.unwrap();
    // 400 updates of 10 keys, then k3 deleted, plus records without the key
    // field; read back before anything is tiered (or compacted).
    let before = with_tiering_held(&faulty, async {
        for b in 0..40u64 {
            let recs: Vec<Record> = (0..10u64)
                .map(|i| {
                    let n = b * 10 + i;
                    if n % 97 == 0 {
                        json_rec(format!("{{\"note\":{n}}}"))
                    } else {
                        json_rec(format!("{{\"id\":\"k{}\",\"v\":{n}}}", n % 10))
                    }
                })
                .collect();
            host.append("users", 0, &recs).await.unwrap();
        }
        host.append("users", 0, &[json_rec(r#"{"id":"k3","deleted":true}"#.into())])
            .await
            .unwrap();
        read_all(&host, "users", 0).await
    })
    .await;
    assert_eq!(before.len(), 401);
    wait_for(&host, "users", "all tiered", |p| p.tier.tiered_end == 401).await;
    let latest = |recs: &[crate::OffsetRecord]| {
        let mut m = BTreeMap::new();
        for r in recs {
            let v: serde_json::Value = serde_json::from_slice(r.record.value_bytes()).unwrap();
            if let Some(id) = v["id"].as_str() {
                m.insert(id.to_string(), (r.offset, r.record.value.clone()));
            }
        }
        m
    };
    host.compact_stream("users").unwrap();
    let st = wait_runs(&host, "users", 1).await;
    assert_eq!(st.last_error, None, "{st:?}");
    let r = st.last_result.clone().unwrap();
    assert_eq!((r.records_in, r.cleaned_end), (401, 401), "{st:?}");
    let after = read_all(&host, "users", 0).await;
    // Latest per key (k3's is the tombstone), plus every record without a key.
    let no_key: Vec<u64> = (0..400).filter(|n| n % 97 == 0).collect();
    assert_eq!(
        after.len(),
        10 + no_key.len(),
        "{:?}",
        after.iter().map(|r| r.offset).collect::<Vec<_>>()
    );
    assert_eq!(r.records_out, after.len() as u64);
    assert_eq!(latest(&after), latest(&before), "consumers see the same latest values");
    for r in &after {
        let same = before.iter().find(|b| b.offset == r.offset).unwrap();
        assert_eq!(same.record, r.record, "offset {} changed", r.offset);
    }
    // Offsets by time skip what compaction removed and stay exact (the
    // compacted segment's index and manifest entry are searched).
    for t in after.iter().map(|r| r.record.timestamp_ms).chain([0, u64::MAX]) {
        let want = after.iter().find(|r| r.record.timestamp_ms >= t).map(|r| r.offset);
        let got = host.offset_for_timestamp("users", 0, t).await.unwrap();
        assert_eq!(got.map(|g| g.offset), want, "target {t}");
    }
    // So does the first record with the largest timestamp.
    let top = after.iter().map(|r| r.record.timestamp_ms).max();
    let want = after
        .iter()
        .find(|r| Some(r.record.timestamp_ms) == top)
        .map(|r| r.offset);
    let got = host.max_timestamp("users", 0).await.unwrap();
    assert_eq!(got.map(|g| g.offset), want);
    // New data after compaction still appends and reads normally.
    let a = host
        .append("users", 0, &[json_rec(r#"{"id":"k1","v":9999}"#.into())])
        .await
        .unwrap();
    assert_eq!(a.base_offset, 401);
    assert_eq!(read_all(&host, "users", 401).await.len(), 1);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_per_key_survives_memory() {
    latest_per_key_survives(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_per_key_survives_s3_protocol_server() {
    latest_per_key_survives(Store::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_policy_fails_the_run_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(Store::Memory, dir.path()) else {
        return;
    };
    let host = Host::open_with_store(eager(dir.path()), store, prefix).await.unwrap();
    host.put_plugin("bad", wasm::read(wasm::BAD_POLICY)).await.unwrap();
    let cfg = StreamConfig {
        compaction: Some(compaction("bad", &[])),
        ..StreamConfig::default()
    };
    host.create_stream_with("s", 1, cfg).await.unwrap();
    let recs: Vec<Record> = ["a", "b", "panic", "c"]
        .iter()
        .map(|v| Record {
            key: Some(Bytes::from_static(b"same")),
            value: Some(Bytes::from(v.to_string())),
            ..Record::default()
        })
        .collect();
    host.append("s", 0, &recs).await.unwrap();
    wait_for(&host, "s", "tiered", |p| p.tier.tiered_end == 4).await;
    host.compact_stream("s").unwrap();
    let st = wait_runs(&host, "s", 1).await;
    let err = st.last_error.clone().expect("a trap must fail the run");
    assert!(err.contains("bad"), "the error names the plugin: {err}");
    assert_eq!(st.runs, 0);
    assert_eq!(read_all(&host, "s", 0).await.len(), 4, "data untouched");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_hanging_store_fails_the_run_in_bounded_time_then_it_succeeds() {
    use crate::objstore::faults::{Fault, FaultyStore, Op};
    let dir = tempfile::tempdir().unwrap();
    let Some((inner, prefix)) = store(Store::Memory, dir.path()) else {
        return;
    };
    let faulty = FaultyStore::new(inner);
    let settings = crate::Settings {
        remote_timeout: Duration::from_millis(300),
        remote_retries: 1,
        cold_cache_bytes: bytesize::ByteSize::b(0),
        ..eager(dir.path())
    };
    let host = Host::open_with_store(settings, faulty.clone(), prefix).await.unwrap();
    host.put_plugin("bad", wasm::read(wasm::BAD_POLICY)).await.unwrap();
    let cfg = StreamConfig {
        compaction: Some(compaction("bad", &[])),
        ..StreamConfig::default()
    };
    host.create_stream_with("s", 1, cfg).await.unwrap();
    // Writing compacted objects fails, from the start: no run, asked for
    // or not, gets through before the store recovers.
    faulty.inject_matching(Op::Put, "-c", Fault::Error, None);
    for b in 0..20u64 {
        let recs: Vec<Record> = (0..10u64)
            .map(|i| Record {
                key: Some(Bytes::from(format!("k{}", (b * 10 + i) % 5))),
                value: Some(Bytes::from(format!("v{}", b * 10 + i))),
                ..Record::default()
            })
            .collect();
        host.append("s", 0, &recs).await.unwrap();
    }
    wait_for(&host, "s", "tiered", |p| p.tier.tiered_end == 200).await;
    host.compact_stream("s").unwrap();
    let st = wait_runs(&host, "s", 1).await;
    assert!(
        st.last_error.as_deref().is_some_and(|e| e.contains("injected")),
        "{st:?}"
    );
    assert_eq!(read_all(&host, "s", 0).await.len(), 200, "nothing committed");
    // Reads of segments hang: the run fails after its timeouts, not never.
    faulty.clear();
    faulty.inject(Op::Get, Fault::Hang, None);
    host.compact_stream("s").unwrap();
    let started = std::time::Instant::now();
    let mut st = host.compaction_status("s").unwrap()[0].clone();
    for _ in 0..2400 {
        st = host.compaction_status("s").unwrap()[0].clone();
        if st.last_error.as_deref().is_some_and(|e| e.contains("timed out")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        st.last_error.as_deref().is_some_and(|e| e.contains("timed out")),
        "{st:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a hanging store must fail the run in bounded time"
    );
    // The store recovers: the next run compacts to the latest per key.
    faulty.clear();
    host.compact_stream("s").unwrap();
    let mut st = host.compaction_status("s").unwrap()[0].clone();
    for _ in 0..2400 {
        st = host.compaction_status("s").unwrap()[0].clone();
        if st.runs >= 1 {
            break;
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!((st.runs, st.last_error.clone()), (1, None), "{st:?}");
    let after = read_all(&host, "s", 0).await;
    assert_eq!(
        after.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![195, 196, 197, 198, 199]
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_keys_than_the_map_holds_compact_in_several_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(Store::Memory, dir.path()) else {
        return;
    };
    let settings = crate::Settings {
        upload_chunk_bytes: bytesize::ByteSize::kib(128),
        ..eager(dir.path())
    };
    let faulty = FaultyStore::new(store);
    let host = Host::open_with_store(settings, faulty.clone(), prefix).await.unwrap();
    host.put_plugin("bad", wasm::read(wasm::BAD_POLICY)).await.unwrap();
    let cfg = StreamConfig {
        compaction: Some(compaction("bad", &[])),
        ..StreamConfig::default()
    };
    host.create_stream_with("s", 1, cfg).await.unwrap();
    // 20 000 records over 16 000 keys; a 1 MiB map holds 14 336 keys.
    const N: u64 = 20_000;
    const KEYS: u64 = 16_000;
    let map = crate::compaction::map_bytes(Compaction::MIN_MEMORY_BYTES);
    assert!(crate::compaction::KeyMap::with_memory(map).max_keys() < KEYS as usize);
    // The first run sees every record (none compacts part of them first,
    // which could leave the rest few enough keys for one run).
    with_tiering_held(&faulty, async {
        for b in 0..N / 1000 {
            let recs: Vec<Record> = (0..1000u64)
                .map(|i| {
                    let n = b * 1000 + i;
                    Record {
                        key: Some(Bytes::from(format!("{}", n % KEYS))),
                        value: Some(Bytes::from(format!("v{n}"))),
                        ..Record::default()
                    }
                })
                .collect();
            host.append("s", 0, &recs).await.unwrap();
        }
    })
    .await;
    wait_for(&host, "s", "tiered", |p| p.tier.tiered_end == N).await;
    host.compact_stream("s").unwrap();
    let mut st = host.compaction_status("s").unwrap()[0].clone();
    for _ in 0..4800 {
        st = host.compaction_status("s").unwrap()[0].clone();
        if st.last_result.as_ref().is_some_and(|r| r.cleaned_end == N) || st.last_error.is_some() {
            break;
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(st.last_error, None, "{st:?}");
    assert!(st.runs >= 2, "the first run stops where its map is full: {st:?}");
    let r = st.last_result.clone().unwrap();
    assert_eq!(r.cleaned_end, N, "{st:?}");
    assert!(r.keys <= 14_336, "{st:?}");
    let after = read_all(&host, "s", 0).await;
    let offsets: Vec<u64> = after.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (N - KEYS..N).collect::<Vec<_>>(), "latest per key only");
    for r in &after {
        assert_eq!(r.record.value, Some(Bytes::from(format!("v{}", r.offset))));
    }
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tombstones_go_and_take_their_key_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(Store::Memory, dir.path()) else {
        return;
    };
    // A segment's age counts from just before its manifest commit, which
    // takes at least 5 ms here: every run, asked for or one the idle
    // uploader starts right after the upload, finds the tombstone older
    // than its retention of 0 ms.
    let faulty = FaultyStore::new(store);
    faulty.inject_matching(Op::Put, "/manifest/", Fault::Delay(Duration::from_millis(5)), None);
    let host = Host::open_with_store(eager(dir.path()), faulty, prefix).await.unwrap();
    host.put_plugin("keys", wasm::read(wasm::JSON_KEY)).await.unwrap();
    let mut c = compaction("keys", &[("pointer", "/id"), ("tombstone_when", "/deleted")]);
    c.delete_retention_ms = 0;
    let cfg = StreamConfig {
        compaction: Some(c),
        ..StreamConfig::default()
    };
    host.create_stream_with("u", 1, cfg).await.unwrap();
    let recs: Vec<Record> = [
        r#"{"id":"a","v":1}"#,
        r#"{"id":"b","v":1}"#,
        r#"{"id":"a","deleted":true}"#,
        r#"{"id":"b","v":2}"#,
    ]
    .iter()
    .map(|v| json_rec(v.to_string()))
    .collect();
    host.append("u", 0, &recs).await.unwrap();
    wait_for(&host, "u", "tiered", |p| p.tier.tiered_end == 4).await;
    host.compact_stream("u").unwrap();
    let st = wait_runs(&host, "u", 1).await;
    assert_eq!(st.last_error, None, "{st:?}");
    let after = read_all(&host, "u", 0).await;
    assert_eq!(
        after.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![3],
        "only b's latest stays"
    );
    host.shutdown().await;
}
