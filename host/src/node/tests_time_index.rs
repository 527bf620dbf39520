//! Offsets by time through a real `Host`: exact answers (checked against a
//! brute-force search) on WAL data, on data only in the object store, and
//! after a restart, with timestamps that do not always grow.

use std::time::Duration;

use bytes::Bytes;
use bytesize::ByteSize;

use crate::{Host, Record, Settings};

const N: u64 = 5_000;

fn ts(i: u64) -> u64 {
    // Rising, with every 37th record a minute in the past.
    1_700_000_000_000 + i * 100 - if i.is_multiple_of(37) { 60_000 } else { 0 }
}

fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        data_dir: dir.into(),
        segment_bytes: ByteSize::kib(64),
        upload_chunk_bytes: ByteSize::kib(32),
        upload_min_bytes: ByteSize::b(1),
        upload_interval: Duration::ZERO,
        gc_grace: Duration::ZERO,
        ..Settings::default()
    }
}

async fn check_all(host: &Host, when: &str) {
    let targets = [
        0,
        ts(0),
        ts(1),
        ts(36) + 1,
        ts(1500),
        ts(2_220) - 1,
        ts(N - 1),
        ts(N - 1) + 1,
    ];
    for t in targets.into_iter().chain((0..N).step_by(333).map(ts)) {
        let want = (0..N).find(|i| ts(*i) >= t);
        let got = host.offset_for_timestamp("t", 0, t).await.unwrap();
        assert_eq!(got.map(|g| g.offset), want, "{when}: target {t}");
        if let Some(g) = got {
            assert_eq!(g.timestamp_ms, ts(g.offset), "{when}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_by_time_are_exact_on_wal_tiered_and_restarted_data() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(settings(dir.path())).await.unwrap();
    host.create_stream("t", 1).await.unwrap();
    for chunk in (0..N).collect::<Vec<_>>().chunks(250) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|i| Record {
                key: None,
                value: Bytes::from(format!("{i:0>64}")),
                headers: Vec::new(),
                timestamp_ms: ts(*i),
            })
            .collect();
        host.append("t", 0, &records).await.unwrap();
    }
    check_all(&host, "in the WAL").await;
    // Tier until most offsets are only in the object store.
    for _ in 0..2400 {
        if host.stream_status("t").unwrap()[0].wal_start_offset > N / 2 {
            break;
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let floor = host.stream_status("t").unwrap()[0].wal_start_offset;
    assert!(floor > N / 2, "tiering did not trim the WAL: {floor}");
    check_all(&host, "tiered").await;
    host.shutdown().await;
    drop(host);
    let host = Host::open(settings(dir.path())).await.unwrap();
    check_all(&host, "after a restart").await;
    host.shutdown().await;
}
