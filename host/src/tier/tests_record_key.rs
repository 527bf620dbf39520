//! The built-in record-key compaction policy through a real node: the
//! latest record per key stays at its offset, an empty value deletes its
//! key's older records (only a null one under Kafka's rule, which keeps an
//! empty value as a value), a record without a key is refused (it could
//! never be compacted away) and refuses its whole batch; and the node's own
//! `__consumer_offsets` is compacted with it, so it stays about as big as
//! the live offsets and a restart reads the same offsets back.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::tests::{Store, eager, read_all, store, wait_for, with_tiering_held};
use crate::objstore::faults::FaultyStore;
use crate::{Compaction, Host, OffsetCommit, Record, StreamConfig};

fn keyed(key: Option<&str>, value: &str) -> Record {
    Record {
        key: key.map(|k| Bytes::from(k.to_string())),
        value: Some(Bytes::from(value.to_string())),
        ..Record::default()
    }
}

async fn wait_compacted(host: &Host, stream: &str, through: u64) {
    for _ in 0..2400 {
        let st = host.compaction_status(stream).expect("status")[0].clone();
        assert!(st.last_error.is_none(), "{st:?}");
        if st.cleaned_end.is_some_and(|c| c >= through) {
            return;
        }
        let _ = host.compact_stream(stream);
        host.wake_uploader();
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "never compacted through {through}: {:?}",
        host.compaction_status(stream)
    );
}

#[tokio::test]
async fn the_record_key_policy_keeps_the_latest_per_key_and_honours_tombstones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((store, prefix)) = store(Store::Memory, dir.path()) else {
        return;
    };
    let faulty = FaultyStore::new(store);
    let host = Host::open_with_store(eager(dir.path()), faulty.clone(), prefix)
        .await
        .expect("open");
    let mut c = Compaction::by_record_key(false);
    c.min_cleanable_dirty_ppm = 0;
    let cfg = StreamConfig {
        compaction: Some(c),
        ..StreamConfig::default()
    };
    host.create_stream_with("users", 1, cfg).await.expect("create");
    // 300 updates of 7 keys, keyless batches tried now and then (refused,
    // with the keyed record beside them), then k3 deleted.
    let mut latest: BTreeMap<String, (u64, String)> = BTreeMap::new();
    with_tiering_held(&faulty, async {
        for n in 0..300u64 {
            if n % 50 == 49 {
                let batch = [keyed(Some("k0"), "beside"), keyed(None, &format!("note {n}"))];
                let refused = host.append("users", 0, &batch).await;
                assert!(matches!(&refused, Err(e) if e.code() == "key_required"), "{refused:?}");
                continue;
            }
            let (key, value) = match n {
                299 => ("k3".to_string(), String::new()),
                n => (format!("k{}", n % 7), format!("v{n}")),
            };
            let a = host
                .append("users", 0, &[keyed(Some(&key), &value)])
                .await
                .expect("append");
            latest.insert(key, (a.base_offset, value));
        }
    })
    .await;
    let end = host.describe_stream("users").expect("describe").partitions[0].end;
    assert_eq!(end, 294, "the refused batches wrote nothing");
    wait_for(&host, "users", "everything tiered", |p| p.upload_lag_records == 0).await;
    wait_compacted(&host, "users", 294).await;
    let got: Vec<(u64, String)> = read_all(&host, "users", 0)
        .await
        .into_iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.record.value_bytes().to_vec()).expect("utf8"),
            )
        })
        .collect();
    let mut want: Vec<(u64, String)> = latest.into_values().collect();
    want.sort();
    assert_eq!(got, want, "the latest per key (k3's tombstone too)");
    host.shutdown().await;
}

/// Once tombstones expire (a zero `delete_retention`), what each rule
/// leaves of: k1 set then emptied, k2 set then nulled. Kafka's rule keeps
/// k1's empty value; the older rule deletes k1 too.
#[tokio::test]
async fn kafkas_rule_keeps_an_empty_value_and_deletes_on_null() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((store, prefix)) = store(Store::Memory, dir.path()) else {
        return;
    };
    let host = Host::open_with_store(eager(dir.path()), store, prefix)
        .await
        .expect("open");
    let null = Record {
        key: Some(Bytes::from("k2")),
        value: None,
        ..Record::default()
    };
    let records = [
        keyed(Some("k1"), "a"),
        keyed(Some("k2"), "b"),
        keyed(Some("k1"), ""),
        null,
    ];
    for (name, mut c) in [
        ("kafka", Compaction::kafka_record_key(false)),
        ("legacy", Compaction::by_record_key(false)),
    ] {
        c.min_cleanable_dirty_ppm = 0;
        c.delete_retention_ms = 0;
        let cfg = StreamConfig {
            compaction: Some(c),
            ..StreamConfig::default()
        };
        host.create_stream_with(name, 1, cfg).await.expect("create");
        host.append(name, 0, &records).await.expect("append");
    }
    let mut left = BTreeMap::new();
    for name in ["kafka", "legacy"] {
        wait_for(&host, name, "everything tiered", |p| p.upload_lag_records == 0).await;
        wait_compacted(&host, name, 4).await;
        let got: Vec<(u64, Option<Bytes>)> = read_all(&host, name, 0)
            .await
            .into_iter()
            .map(|r| (r.offset, r.record.value.clone()))
            .collect();
        left.insert(name, got);
    }
    assert_eq!(left["kafka"], vec![(2, Some(Bytes::new()))], "{left:?}");
    assert_eq!(left["legacy"], vec![], "{left:?}");
    host.shutdown().await;
}

#[tokio::test]
async fn the_offsets_stream_is_compacted_by_key_and_reloads_the_same_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((store, prefix)) = store(Store::Memory, dir.path()) else {
        return;
    };
    let open = |store: std::sync::Arc<dyn object_store::ObjectStore>, prefix| {
        Host::open_with_store(eager(dir.path()), FaultyStore::new(store), prefix)
    };
    let host = open(store.clone(), prefix.clone()).await.expect("open");
    host.create_stream("t", 3).await.expect("create");
    let stream = "__consumer_offsets";
    for n in 0..200u64 {
        let c = OffsetCommit {
            stream: "t".into(),
            partition: (n % 3) as u32,
            offset: n,
            leader_epoch: -1,
            metadata: None,
        };
        let r = host.commit_offsets(&format!("g{}", n % 2), &[c]).await.expect("commit");
        assert!(r.iter().all(Result::is_ok));
    }
    let before = host.committed_offsets("g0").await.expect("g0");
    assert_eq!(before.len(), 3);
    let info = host.describe_stream(stream).expect("offsets stream");
    assert!(
        info.compaction.as_ref().is_some_and(Compaction::is_record_key),
        "{info:?}"
    );
    wait_for(&host, stream, "offsets tiered", |p| p.upload_lag_records == 0).await;
    wait_compacted(&host, stream, 200).await;
    let left = read_all(&host, stream, 0).await.len();
    assert!(left <= 6, "{left} records left of 200 commits on 6 keys");
    host.shutdown().await;
    drop(host);

    let host = open(store, prefix).await.expect("reopen");
    assert_eq!(host.committed_offsets("g0").await.expect("g0"), before);
    assert_eq!(host.committed_offsets("g1").await.expect("g1").len(), 3);
    host.shutdown().await;
}
