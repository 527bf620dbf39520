//! WAL contract tests on real files: recovery yields exactly the committed
//! prefix after torn tails, flipped bytes and missing segments; appends are
//! acknowledged in LSN order under concurrent appenders; trim is persisted.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::tests_contract::{meta, payload, rt};
use super::*;

fn small_opts() -> Options {
    Options {
        segment_bytes: 4096,
        ..Options::default()
    }
}

/// An entry seen by recovery: (lsn, base_offset, payload).
type Seen = (u64, u64, Vec<u8>);

fn reopen(dir: &Path, opts: Options) -> (Wal, Recovered, Vec<Seen>) {
    let mut seen = Vec::new();
    let (wal, rec) = Wal::open(dir, opts, &mut |e| {
        seen.push((e.lsn, e.meta.base_offset, e.payload.to_vec()))
    })
    .unwrap();
    (wal, rec, seen)
}

/// Writes `sizes.len()` entries and returns where each landed.
fn write_entries(rt: &tokio::runtime::Runtime, dir: &Path, sizes: &[usize]) -> Vec<Appended> {
    rt.block_on(async {
        let (wal, _, _) = reopen(dir, small_opts());
        let mut out = Vec::new();
        for (i, len) in sizes.iter().enumerate() {
            out.push(wal.append(meta(i as u64), payload(i as u64, *len)).await.unwrap());
        }
        wal.shutdown().await;
        out
    })
}

fn segment_path(dir: &Path, first: u64) -> std::path::PathBuf {
    dir.join(segment::segment_name(first))
}

/// Recovery must return exactly entries `0..expected` with their contents.
fn assert_prefix(seen: &[Seen], sizes: &[usize], expected: usize) {
    assert_eq!(
        seen.len(),
        expected,
        "recovered {} entries, expected {}",
        seen.len(),
        expected
    );
    for (i, (lsn, base, data)) in seen.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1);
        assert_eq!(*base, i as u64);
        assert_eq!(data[..], payload(i as u64, sizes[i])[..]);
    }
}

#[test]
fn append_and_recover_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let sizes: Vec<usize> = (0..200).map(|i| 10 + (i * 7) % 300).collect();
    let acks = write_entries(&rt, dir.path(), &sizes);
    assert!(acks.windows(2).all(|w| w[1].lsn == w[0].lsn + 1));
    let (wal, rec, seen) = reopen(dir.path(), small_opts());
    assert!(
        rec.segments.len() > 5,
        "expected several segments, got {}",
        rec.segments.len()
    );
    assert!(rec.cut.is_none());
    assert_prefix(&seen, &sizes, sizes.len());
    assert_eq!(wal.next_lsn(), 201);
    // Reads by location return the same bytes.
    for (i, a) in acks.iter().enumerate() {
        assert_eq!(wal.read(a.lsn, a.location).unwrap(), payload(i as u64, sizes[i]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Cutting any segment at any byte loses exactly the entries that are
    /// not wholly before the cut (and everything in later segments).
    #[test]
    fn torn_write_recovers_exact_prefix(sizes in proptest::collection::vec(0usize..600, 1..60),
                                        seg_pick in any::<prop::sample::Index>(),
                                        cut_pick in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let rt = rt();
        let acks = write_entries(&rt, dir.path(), &sizes);
        let segs: Vec<u64> = { let mut s: Vec<u64> = acks.iter().map(|a| a.location.segment).collect(); s.dedup(); s };
        let seg = segs[seg_pick.index(segs.len())];
        let path = segment_path(dir.path(), seg);
        let len = fs::metadata(&path).unwrap().len();
        let cut = cut_pick.index(len as usize) as u64;
        OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();
        let expected = acks.iter().take_while(|a| a.location.segment < seg
            || (a.location.segment == seg && a.location.pos + a.location.len as u64 <= cut)).count();
        let (wal, rec, seen) = reopen(dir.path(), small_opts());
        assert_prefix(&seen, &sizes, expected);
        prop_assert_eq!(wal.next_lsn(), expected as u64 + 1);
        // Only a cut exactly at an entry boundary of the last segment, or in
        // the zeros written ahead after its last entry, goes unnoticed: it is
        // indistinguishable from a shorter log.
        let written_end = acks.iter().filter(|a| a.location.segment == seg)
            .map(|a| a.location.pos + a.location.len as u64).max().unwrap();
        let clean_end = seg == *segs.last().unwrap()
            && (cut >= written_end || acks.iter().any(|a| a.location.segment == seg && a.location.pos == cut));
        prop_assert!(rec.cut.is_some() || clean_end);
        // The log accepts new appends right after the cut and keeps them.
        rt.block_on(async {
            let a = wal.append(meta(expected as u64), payload(expected as u64, 5)).await.unwrap();
            assert_eq!(a.lsn, expected as u64 + 1);
            wal.shutdown().await;
        });
        let (_, rec2, seen2) = reopen(dir.path(), small_opts());
        prop_assert!(rec2.cut.is_none());
        prop_assert_eq!(seen2.len(), expected + 1);
    }

    /// Flipping any byte of any segment loses the damaged entry (or, for a
    /// header, segment) and everything after it, and nothing before it.
    #[test]
    fn flipped_byte_recovers_exact_prefix(sizes in proptest::collection::vec(1usize..400, 1..40),
                                          seg_pick in any::<prop::sample::Index>(),
                                          byte_pick in any::<prop::sample::Index>(),
                                          mask in 1u8..=255) {
        let dir = tempfile::tempdir().unwrap();
        let rt = rt();
        let acks = write_entries(&rt, dir.path(), &sizes);
        let segs: Vec<u64> = { let mut s: Vec<u64> = acks.iter().map(|a| a.location.segment).collect(); s.dedup(); s };
        let seg = segs[seg_pick.index(segs.len())];
        let path = segment_path(dir.path(), seg);
        let mut bytes = fs::read(&path).unwrap();
        let at = byte_pick.index(bytes.len());
        bytes[at] ^= mask;
        fs::write(&path, &bytes).unwrap();
        let expected = acks.iter().take_while(|a| a.location.segment < seg
            || (a.location.segment == seg && a.location.pos + a.location.len as u64 <= at as u64)).count();
        let (_, rec, seen) = reopen(dir.path(), small_opts());
        assert_prefix(&seen, &sizes, expected);
        prop_assert!(rec.cut.is_some());
        // Nothing was deleted: the cut-off data sits in `.dropped` files.
        let dropped: u64 = rec.cut.unwrap().dropped_files.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
        let later: u64 = acks[expected..].iter().map(|a| a.location.len as u64).sum();
        prop_assert!(dropped >= later, "dropped files hold {} bytes, cut entries {}", dropped, later);
    }
}

#[test]
fn missing_middle_segment_drops_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let sizes = vec![300usize; 80];
    let acks = write_entries(&rt, dir.path(), &sizes);
    let mut segs: Vec<u64> = acks.iter().map(|a| a.location.segment).collect();
    segs.dedup();
    assert!(segs.len() >= 4);
    fs::remove_file(segment_path(dir.path(), segs[2])).unwrap();
    let expected = acks.iter().filter(|a| a.location.segment < segs[2]).count();
    let (wal, rec, seen) = reopen(dir.path(), small_opts());
    assert_prefix(&seen, &sizes, expected);
    let cut = rec.cut.expect("gap must be reported");
    assert!(matches!(cut.reason, Corruption::LsnGap { .. }), "{:?}", cut.reason);
    assert_eq!(cut.dropped_files.len(), segs.len() - 3);
    assert_eq!(wal.next_lsn(), expected as u64 + 1);
    rt.block_on(wal.shutdown());
    // A second recovery is stable: same prefix, no new cut.
    let (_, rec2, seen2) = reopen(dir.path(), small_opts());
    assert!(rec2.cut.is_none());
    assert_eq!(seen2.len(), expected);
}

#[test]
fn concurrent_appends_are_acknowledged_in_lsn_order() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (wal, _, _) = reopen(dir.path(), Options::default());
        let wal = Arc::new(wal);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let wal = wal.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..200u64 {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let order = order.clone();
                    wal.reserve(64).await.unwrap().append(
                        meta(t * 1000 + i),
                        payload(i, 64),
                        Box::new(move |r| {
                            let a = r.unwrap();
                            order.lock().unwrap().push(a.lsn);
                            let _ = tx.send(a.lsn);
                        }),
                    );
                    mine.push(rx.await.unwrap());
                }
                mine
            }));
        }
        for t in tasks {
            let mine = t.await.unwrap();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "one appender saw LSNs out of order"
            );
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.len(), 3200);
        assert_eq!(
            order,
            (1..=3200).collect::<Vec<u64>>(),
            "acknowledgements not in LSN order"
        );
        assert!(
            wal.syncs() < 3200,
            "group commit should share syncs ({} syncs)",
            wal.syncs()
        );
        wal.shutdown().await;
    });
}

#[test]
fn trim_is_persisted_and_survives_a_lost_marker() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let sizes = vec![200usize; 100];
    let acks = write_entries(&rt, dir.path(), &sizes);
    let trim_at = 60u64;
    rt.block_on(async {
        let (wal, _, _) = reopen(dir.path(), small_opts());
        let before = wal.segments().len();
        assert_eq!(wal.trim(trim_at).await.unwrap(), trim_at);
        assert!(wal.segments().len() < before, "trim must delete whole segments");
        // Appending after the trim rolls new segments that record the trim LSN.
        for i in 100..140u64 {
            wal.append(meta(i), payload(i, 200)).await.unwrap();
        }
        wal.shutdown().await;
    });
    let (_, rec, seen) = reopen(dir.path(), small_opts());
    assert_eq!(rec.trim_lsn, trim_at);
    assert_eq!(seen.first().map(|s| s.0), Some(trim_at));
    assert_eq!(seen.last().map(|s| s.0), Some(140));
    // The segment holding LSN `trim_at` is still there.
    let seg_of_trim = acks[trim_at as usize - 1].location.segment;
    assert!(segment_path(dir.path(), seg_of_trim).exists());

    // Losing the marker must not lose data: the headers still carry the trim.
    fs::remove_file(dir.path().join(recovery::TRIM_FILE)).unwrap();
    let (_, rec, seen2) = reopen(dir.path(), small_opts());
    assert_eq!(rec.trim_lsn, trim_at);
    assert_eq!(seen2, seen);
}

#[test]
fn read_detects_corruption_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let acks = write_entries(&rt, dir.path(), &[100, 100, 100]);
    let (wal, _, _) = reopen(dir.path(), small_opts());
    let loc = acks[1].location;
    let path = segment_path(dir.path(), loc.segment);
    let mut bytes = fs::read(&path).unwrap();
    bytes[loc.pos as usize + 60] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let err = wal.read(acks[1].lsn, loc).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::Corrupt {
                reason: Corruption::BadCrc,
                ..
            }
        ),
        "{err}"
    );
    assert!(wal.read(acks[0].lsn, acks[0].location).is_ok());
    rt.block_on(wal.shutdown());
}

#[test]
fn a_failed_sync_fails_the_group_then_refuses_appends_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let opts = small_opts();
    let faults = opts.faults.clone();
    rt.block_on(async {
        let (wal, _) = Wal::open(dir.path(), opts, &mut |_| {}).unwrap();
        assert_eq!(wal.append(meta(0), payload(0, 10)).await.unwrap().lsn, 1);
        faults.fail_syncs(true);
        let err = wal.append(meta(1), payload(1, 10)).await.unwrap_err();
        assert!(
            matches!(
                &err,
                WalError::Io {
                    op: "fdatasync segment",
                    ..
                }
            ),
            "{err}"
        );
        faults.fail_syncs(false);
        // Fail-stop: after a failed sync nothing more is accepted, even though
        // syncing would work again, so no later entry can sit after a hole.
        let err = wal.append(meta(2), payload(2, 10)).await.unwrap_err();
        assert!(matches!(err, WalError::Poisoned(_)), "{err}");
        // Readiness sees why.
        assert!(
            wal.failure().is_some_and(|w| w.contains("fdatasync")),
            "{:?}",
            wal.failure()
        );
        wal.shutdown().await;
    });
    // Recovery decides from the disk: the acknowledged entry is there; the
    // one whose sync failed may be (its outcome was unknown), nothing else.
    let (wal, rec, seen) = reopen(dir.path(), small_opts());
    assert!(rec.cut.is_none());
    assert!(seen.len() == 1 || seen.len() == 2, "{} entries", seen.len());
    assert_prefix(&seen, &[10, 10], seen.len());
    rt.block_on(async {
        let a = wal.append(meta(9), payload(9, 10)).await.unwrap();
        assert_eq!(a.lsn, seen.len() as u64 + 1, "appends resume after a restart");
        wal.shutdown().await;
    });
}

/// Out of file descriptors when a segment must roll: the roll is put off,
/// appends go on in the current segment and are acknowledged, the WAL is
/// not failed; once descriptors are back the next group rolls, and
/// recovery finds every entry.
#[test]
fn a_segment_roll_without_file_descriptors_is_put_off_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let opts = small_opts();
    let faults = opts.faults.clone();
    rt.block_on(async {
        let (wal, _) = Wal::open(dir.path(), opts, &mut |_| {}).unwrap();
        faults.fail_segment_creates(true);
        // 20 entries of 1 KiB: five times the 4 KiB segment size.
        for i in 0..20u64 {
            let a = wal
                .append(meta(i), payload(i, 1024))
                .await
                .expect("acknowledged without a roll");
            assert_eq!(a.lsn, i + 1);
        }
        assert_eq!(wal.segments().len(), 1, "no new segment while descriptors are short");
        assert!(wal.failure().is_none(), "{:?}", wal.failure());
        faults.fail_segment_creates(false);
        for i in 20..30u64 {
            wal.append(meta(i), payload(i, 1024)).await.expect("append");
        }
        assert!(wal.segments().len() >= 2, "rolls resumed: {:?}", wal.segments());
        wal.shutdown().await;
    });
    let (wal, rec, seen) = reopen(dir.path(), small_opts());
    assert!(rec.cut.is_none());
    assert_prefix(&seen, &[1024; 30], 30);
    rt.block_on(wal.shutdown());
}

#[test]
fn the_queue_is_bounded_by_bytes_and_a_lone_big_entry_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let opts = Options {
            queue_bytes: 64 * 1024,
            ..Options::default()
        };
        let (wal, _, _) = reopen(dir.path(), opts);
        // A held reservation of the whole budget makes the next one wait.
        let held = wal.reserve(64 * 1024).await.unwrap();
        assert_eq!(wal.queued_bytes(), 64 * 1024);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(100), wal.reserve(1)).await;
        assert!(waited.is_err(), "a reservation past the byte budget did not wait");
        // Its append completing gives the budget back.
        let (tx, rx) = tokio::sync::oneshot::channel();
        held.append(
            meta(0),
            payload(0, 64 * 1024),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await.unwrap().unwrap();
        assert_eq!(wal.queued_bytes(), 0);
        // An entry bigger than the whole budget goes through alone.
        wal.append(meta(1), payload(1, 200 * 1024)).await.unwrap();
        assert_eq!(wal.queued_bytes(), 0);
        wal.shutdown().await;
    });
}
