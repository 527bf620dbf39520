//! Compaction that is cut short resumes from its checkpoint (also across a
//! restart), and readers stay consistent while compaction rewrites segments
//! under them.
//!
//! The policy needs no dirty ratio, so the idle uploader also compacts on
//! its own: the tests hold tiering back while producing, or wait for what
//! compaction covers rather than for a number of runs.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sluice_test_artifacts as wasm;

use super::tests::{Store, eager, read_all, store, wait_for, with_tiering_held};
use crate::objstore::faults::{Fault, FaultyStore, Op};
use crate::{Compaction, Host, Record, StreamConfig};

/// Keys of the records (`offset % KEYS`), read by the `bad-policy` plugin.
const KEYS: u64 = 5;

fn policy() -> StreamConfig {
    StreamConfig {
        compaction: Some(Compaction {
            plugin: "policy".into(),
            plugin_version: None,
            config: Default::default(),
            delete: false,
            delete_retention_ms: 3_600_000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ppm: 0,
            memory_bytes: Compaction::MIN_MEMORY_BYTES,
        }),
        ..StreamConfig::default()
    }
}

/// Record `n`: key `k{n % KEYS}`, a value that names its offset, padded so
/// that a batch of ten fills most of a 4 KiB upload chunk.
fn rec(n: u64) -> Record {
    Record {
        key: Some(Bytes::from(format!("k{}", n % KEYS))),
        value: Some(Bytes::from(format!("v{n}:{}", "x".repeat(300)))),
        ..Record::default()
    }
}

async fn produce(host: &Host, from: u64, to: u64, per_batch: u64) {
    for b in (from..to).step_by(per_batch as usize) {
        let recs: Vec<Record> = (b..(b + per_batch).min(to)).map(rec).collect();
        host.append("s", 0, &recs).await.unwrap();
    }
}

async fn open(dir: &std::path::Path, store: Arc<FaultyStore>, prefix: object_store::path::Path) -> Host {
    let settings = crate::Settings {
        remote_timeout: Duration::from_millis(500),
        remote_retries: 1,
        ..eager(dir)
    };
    Host::open_with_store(settings, store, prefix).await.unwrap()
}

async fn wait_status(
    host: &Host,
    done: impl Fn(&super::compact::CompactionStatus) -> bool,
) -> super::compact::CompactionStatus {
    for _ in 0..2400 {
        let st = host.compaction_status("s").unwrap()[0].clone();
        if done(&st) {
            return st;
        }
        host.wake_uploader();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("compaction never got there: {:?}", host.compaction_status("s"));
}

/// Every record read is the one written at its offset, and for each key the
/// latest record below `end` is there.
fn check_complete(read: &[crate::OffsetRecord], end: u64) {
    let offsets: HashSet<u64> = read.iter().map(|r| r.offset).collect();
    for r in read {
        assert_eq!(r.record, rec(r.offset), "offset {} holds another record", r.offset);
    }
    for latest in end.saturating_sub(KEYS)..end {
        assert!(
            offsets.contains(&latest),
            "the latest record of a key ({latest}) is missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_from_its_checkpoint_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some((inner, prefix)) = store(Store::Memory, dir.path()) else {
        return;
    };
    let faulty = FaultyStore::new(inner);
    let host = open(dir.path(), faulty.clone(), prefix.clone()).await;
    host.put_plugin("policy", wasm::read(wasm::BAD_POLICY)).await.unwrap();
    host.create_stream_with("s", 1, policy()).await.unwrap();
    const N: u64 = 200;
    // The fourth compacted object cannot be written: three rewritten
    // segments are committed as checkpoints, then the run fails. Whichever
    // run comes first (asked for, or the idle uploader's) sees all N
    // records.
    faulty.fail_after_matching(Op::Put, "-c", 3, Fault::Error, None);
    with_tiering_held(&faulty, produce(&host, 0, N, 10)).await;
    wait_for(&host, "s", "tiered", |p| p.tier.tiered_end == N).await;
    let segments = host.stream_status("s").unwrap()[0].tier.segments;
    assert!(segments >= 6, "the test needs several segments, got {segments}");
    host.compact_stream("s").unwrap();
    let st = wait_status(&host, |s| s.last_error.is_some()).await;
    assert!(
        st.last_error.as_deref().is_some_and(|e| e.contains("injected")),
        "{st:?}"
    );
    assert_eq!(st.runs, 0, "{st:?}");
    let partial = read_all(&host, "s", 0).await;
    check_complete(&partial, N);
    assert!(
        (partial.len() as u64) < N,
        "the checkpoints committed part of the rewrite: {} records",
        partial.len()
    );
    assert!(partial.len() as u64 > KEYS, "the rest is not compacted yet");
    host.shutdown().await;

    // After a restart the next run picks up where the rewrite stopped.
    faulty.clear();
    let host = open(dir.path(), faulty.clone(), prefix).await;
    host.compact_stream("s").unwrap();
    let st = wait_status(&host, |s| s.runs >= 1 || s.last_error.is_some()).await;
    assert_eq!(st.last_error, None, "{st:?}");
    let r = st.last_result.clone().unwrap();
    let resumed = r.resumed_from.expect("the run resumes the interrupted one");
    assert!(resumed > 0 && resumed < N, "{r:?}");
    assert_eq!(
        r.records_in,
        N - resumed,
        "segments done before are not rewritten again: {r:?}"
    );
    assert_eq!(r.cleaned_end, N);
    let after = read_all(&host, "s", 0).await;
    assert_eq!(
        after.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (N - KEYS..N).collect::<Vec<_>>()
    );
    check_complete(&after, N);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_stay_consistent_while_compaction_rewrites_segments() {
    let dir = tempfile::tempdir().unwrap();
    let Some((inner, prefix)) = store(Store::Memory, dir.path()) else {
        return;
    };
    let faulty = FaultyStore::new(inner);
    // Slow reads widen the window in which a reader holds an older manifest
    // while a run commits a newer one.
    faulty.inject(Op::Get, Fault::Delay(Duration::from_millis(2)), None);
    let host = Arc::new(open(dir.path(), faulty.clone(), prefix).await);
    host.put_plugin("policy", wasm::read(wasm::BAD_POLICY)).await.unwrap();
    host.create_stream_with("s", 1, policy()).await.unwrap();
    // What every reader may rely on: offsets below this were appended.
    let appended = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Reads each reader finished so far.
    let done: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::default()).collect();
    let mut readers = Vec::new();
    for finished in &done {
        let (host, appended, stop, finished) = (host.clone(), appended.clone(), stop.clone(), finished.clone());
        readers.push(tokio::spawn(async move {
            // Offsets a read returned and a later read no longer did.
            let mut gone: HashSet<u64> = HashSet::new();
            let mut last: Vec<u64> = Vec::new();
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let end = appended.load(Ordering::Acquire);
                let read = read_all(&host, "s", 0).await;
                let offsets: Vec<u64> = read.iter().map(|r| r.offset).collect();
                assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets go back: {offsets:?}");
                check_complete(&read, end);
                let now: HashSet<u64> = offsets.iter().copied().collect();
                for o in &offsets {
                    assert!(!gone.contains(o), "offset {o} vanished and came back");
                }
                gone.extend(last.iter().filter(|o| !now.contains(o)));
                last = offsets;
                reads += 1;
                finished.store(reads, Ordering::Release);
                // Reads served from memory never yield; leave the runtime to
                // the uploader and the test.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            reads
        }));
    }
    // Rounds of new data, each tiered and compacted while the readers read.
    let mut end = 0;
    for round in 1..=4u64 {
        let before: Vec<u64> = done.iter().map(|d| d.load(Ordering::Acquire)).collect();
        // Rounds of 55 in batches of 10: the latest five (…50 to …54) start
        // where a replaced batch started, so a batch cached from the old
        // object would be served in place of the compacted one. (A run on
        // part of a round would not rewrite it so; none sees part of one.)
        with_tiering_held(&faulty, produce(&host, end, end + 55, 10)).await;
        end += 55;
        appended.store(end, Ordering::Release);
        wait_for(&host, "s", "tiered", |p| p.tier.tiered_end == end).await;
        host.compact_stream("s").unwrap();
        // The run asked for, or one the idle uploader started first.
        let st = wait_status(&host, |s| s.cleaned_end == Some(end) || s.last_error.is_some()).await;
        assert_eq!(st.last_error, None, "{st:?}");
        // Each reader read all through the round: one read at least began
        // after the round did (the one after the read then running).
        for i in 0.. {
            if done
                .iter()
                .zip(&before)
                .all(|(d, b)| d.load(Ordering::Acquire) >= b + 2)
            {
                break;
            }
            assert!(i < 2400, "the readers did not read during round {round}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let reads = r.await.unwrap();
        assert!(reads >= 8, "each reader read during every round ({reads} reads)");
    }
    let after = read_all(&host, "s", 0).await;
    assert_eq!(
        after.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (end - KEYS..end).collect::<Vec<_>>()
    );
}
