//! Derived state through a real `Host`, on WAL data, on data only in the
//! object store, and after a restart: offsets by time (exact answers,
//! checked against a brute-force search, with timestamps that do not always
//! grow) and idempotent producers' state once the WAL entries that carried
//! it are trimmed.

use std::time::Duration;

use bytes::Bytes;
use bytesize::ByteSize;

use crate::node::{Acks, ProducerBatch};
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

/// Waits (bounded) until the WAL no longer holds offsets below `floor`.
async fn tier_past(host: &Host, stream: &str, floor: u64) {
    for _ in 0..2400 {
        if host.stream_status(stream).unwrap()[0].wal_start_offset >= floor {
            return;
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "tiering did not trim the WAL past {floor}: {:?}",
        host.stream_status(stream)
    );
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

/// A host on `dir` with stream `t` holding records `0..N` at `ts(i)`,
/// appended `per` at a time.
async fn filled(dir: &std::path::Path, per: usize) -> Host {
    let host = Host::open(settings(dir)).await.unwrap();
    fill(&host, per).await;
    host
}

/// Creates stream `t` and appends records `0..N` at `ts(i)`, `per` at a time.
async fn fill(host: &Host, per: usize) {
    host.create_stream("t", 1).await.unwrap();
    for chunk in (0..N).collect::<Vec<_>>().chunks(per) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|i| Record {
                key: None,
                value: Some(Bytes::from(format!("{i:0>64}"))),
                headers: Vec::new(),
                timestamp_ms: ts(*i),
            })
            .collect();
        host.append("t", 0, &records).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_by_time_are_exact_on_wal_tiered_and_restarted_data() {
    let dir = tempfile::tempdir().unwrap();
    let host = filled(dir.path(), 250).await;
    check_all(&host, "in the WAL").await;
    // Tier until most offsets are only in the object store.
    tier_past(&host, "t", N / 2 + 1).await;
    check_all(&host, "tiered").await;
    host.shutdown().await;
    drop(host);
    let host = Host::open(settings(dir.path())).await.unwrap();
    check_all(&host, "after a restart").await;
    host.shutdown().await;
}

/// Segment objects in `dir`'s embedded store: (offsets, path).
fn segment_files(dir: &std::path::Path) -> Vec<(std::ops::Range<u64>, std::path::PathBuf)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.join("objects")];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                todo.push(path);
            } else if let Some(stem) = name.strip_suffix(".seg") {
                let mut parts = stem.split('-');
                let base = parts.next().unwrap().parse().unwrap();
                let end = parts.next().unwrap().parse().unwrap();
                out.push((base..end, path));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_lookup_by_time_reads_only_the_batch_holding_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    // 25 records per batch, so each tiered segment holds several.
    let host = filled(dir.path(), 25).await;
    tier_past(&host, "t", N / 2 + 1).await;
    host.shutdown().await;
    drop(host);
    // The answer: three quarters into the segment holding offset 1,500
    // (never a record stamped in the past, so it is its own answer).
    let segments = segment_files(dir.path());
    let (range, path) = segments.iter().find(|(r, _)| r.contains(&1_500)).unwrap();
    let answer = range.start + (range.end - range.start) * 3 / 4;
    let answer = if answer.is_multiple_of(37) { answer + 1 } else { answer };
    // Every segment before it is gone, and every batch of its own segment
    // before the answer's fails its checksum: the lookup must find its
    // way from the manifest and the segment's index alone.
    let before: Vec<_> = segments.iter().filter(|(r, _)| r.end <= range.start).collect();
    assert!(before.len() > 3, "{segments:?}");
    for (_, p) in before {
        std::fs::remove_file(p).unwrap();
    }
    let mut obj = std::fs::read(path).unwrap();
    let f = obj.len() - crate::tier::segment::FOOTER_LEN;
    let index_pos = u64::from_le_bytes(obj[f + 32..f + 40].try_into().unwrap()) as usize;
    let (_, index) = crate::tier::segment::parse_tail(&obj[index_pos..]).unwrap();
    let spoiled: Vec<_> = index.iter().filter(|e| e.end() <= answer).collect();
    assert!(spoiled.len() > 2, "{index:?}");
    for e in spoiled {
        obj[e.pos as usize + crate::tier::segment::BATCH_HEADER_LEN] ^= 0xFF;
    }
    std::fs::write(path, obj).unwrap();
    let host = Host::open(settings(dir.path())).await.unwrap();
    let got = host.offset_for_timestamp("t", 0, ts(answer)).await.unwrap();
    assert_eq!(got.map(|g| g.offset), Some(answer));
    // Offsets still in the WAL are found the same way.
    let got = host.offset_for_timestamp("t", 0, ts(N - 2)).await.unwrap();
    assert_eq!(got.map(|g| g.offset), Some(N - 2));
    // A spoiled batch is still reported when it is read.
    let err = host
        .offset_for_timestamp("t", 0, ts(range.start) - 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "object_store_unavailable", "{err:?}");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_retry_is_recognised_after_its_wal_entries_are_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(settings(dir.path())).await.unwrap();
    host.create_stream("p", 1).await.unwrap();
    let pid = host.allocate_producer_id();
    let batch = |seq: i32| {
        let records: Vec<Record> = (0..100)
            .map(|i| Record {
                key: None,
                value: Some(Bytes::from(vec![b'v'; 200 + i])),
                headers: Vec::new(),
                timestamp_ms: 1,
            })
            .collect();
        let producer = ProducerBatch {
            producer_id: pid,
            epoch: 0,
            base_sequence: seq,
        };
        (records, producer)
    };
    let mut last = None;
    for i in 0..20 {
        let (records, producer) = batch(i * 100);
        last = Some(
            host.append_idempotent("p", 0, &records, producer, Acks::Leader)
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    // Plain appends after it, so the trim can pass its entry.
    for _ in 0..20 {
        let (records, _) = batch(0);
        host.append("p", 0, &records).await.unwrap();
    }
    tier_past(&host, "p", last.base_offset + u64::from(last.count)).await;
    host.shutdown().await;
    drop(host);
    let host = Host::open(settings(dir.path())).await.unwrap();
    let end = host.stream_end("p", 0).unwrap();
    let (records, producer) = batch(19 * 100);
    let again = host
        .append_idempotent("p", 0, &records, producer, Acks::Leader)
        .await
        .unwrap();
    assert_eq!(again, last, "the retry is answered with the original offsets");
    assert_eq!(host.stream_end("p", 0).unwrap(), end, "and not written again");
    let (records, producer) = batch(21 * 100);
    let gap = host.append_idempotent("p", 0, &records, producer, Acks::Leader).await;
    assert_eq!(gap.unwrap_err().code(), "out_of_order_sequence");
    let (records, producer) = batch(20 * 100);
    host.append_idempotent("p", 0, &records, producer, Acks::Leader)
        .await
        .unwrap();
    assert!(host.allocate_producer_id() > pid);
    host.shutdown().await;
}

/// With the object store's manifests out of reach (every listing held), a
/// lookup by time in what the WAL holds still answers: it never asks the
/// store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_in_what_the_wal_holds_never_asks_the_object_store() {
    use crate::objstore::faults::{FaultyStore, Op};
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStore::new(std::sync::Arc::new(object_store::memory::InMemory::new()));
    let gate = faulty.hold_matching(Op::List, "/manifest", None);
    let host = Host::open_with_store(settings(dir.path()), faulty.clone(), Default::default())
        .await
        .unwrap();
    fill(&host, 100).await;
    // The uploader is stuck listing the partition's manifests.
    for _ in 0..400 {
        if gate.arrived() > 0 {
            break;
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gate.arrived() > 0, "the uploader never listed the manifests");
    let got = tokio::time::timeout(Duration::from_secs(20), host.offset_for_timestamp("t", 0, ts(500)))
        .await
        .expect("the lookup waited for the object store")
        .unwrap();
    assert_eq!(got.map(|g| g.offset), Some(500));
    gate.release();
    host.shutdown().await;
}

/// A record far ahead of the others (a clock jump) at `i` = 700, two a
/// little less far with the same time at 1,500 and 2,500, the rest rising.
fn jumpy(i: u64) -> u64 {
    let base = 1_700_000_000_000;
    match i {
        700 => base + 50_000_000,
        1_500 | 2_500 => base + 40_000_000,
        _ => base + i * 10,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_timestamp_stays_exact_when_its_record_is_deleted() {
    const M: u64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(settings(dir.path())).await.unwrap();
    host.create_stream("m", 1).await.unwrap();
    for chunk in (0..M).collect::<Vec<_>>().chunks(100) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|i| Record {
                value: Some(Bytes::from(format!("{i:0>64}"))),
                timestamp_ms: jumpy(*i),
                ..Record::default()
            })
            .collect();
        host.append("m", 0, &records).await.unwrap();
    }
    // The first record holding the largest timestamp of `from..M`.
    let want = |from: u64| {
        let max = (from..M).map(jumpy).max().unwrap();
        (from..M).find(|i| jumpy(*i) == max).unwrap()
    };
    let got = async |host: &Host| {
        let g = host.max_timestamp("m", 0).await.unwrap().unwrap();
        assert_eq!(g.timestamp_ms, jumpy(g.offset));
        g.offset
    };
    assert_eq!(got(&host).await, 700, "in the WAL");
    tier_past(&host, "m", 2_000).await;
    let status = host.stream_status("m").unwrap()[0].clone();
    let t = host.tier_offsets("m", 0).unwrap();
    assert_eq!(t.local_start, status.wal_start_offset);
    assert_eq!(t.tiered_end, Some(status.tier.tiered_end));
    assert_eq!(got(&host).await, 700, "tiered");
    // The index saw 700's timestamp; once 700 is gone the answer moves on.
    host.delete_records("m", 0, Some(701)).await.unwrap();
    assert_eq!(got(&host).await, want(701));
    assert_eq!(want(701), 1_500, "the first of two");
    host.shutdown().await;
    drop(host);
    let host = Host::open(settings(dir.path())).await.unwrap();
    assert_eq!(got(&host).await, 1_500, "after a restart");
    host.delete_records("m", 0, Some(1_501)).await.unwrap();
    assert_eq!(got(&host).await, want(1_501));
    assert_eq!(want(1_501), 2_500);
    // Nothing left: no answer, and nothing is tiered any more.
    host.delete_records("m", 0, None).await.unwrap();
    assert_eq!(host.max_timestamp("m", 0).await.unwrap(), None);
    assert_eq!(host.tier_offsets("m", 0).unwrap().tiered_end, None);
    host.shutdown().await;
}
