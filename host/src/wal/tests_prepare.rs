//! Segments prepared ahead: the writer rolls into zero-filled files made on
//! their own thread, their entries recover like any others, and no
//! preparation outlives the writer or a crash.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::tests_contract::{meta, payload, rt};
use super::*;

const SEGMENT: u64 = 256 * 1024;
const LEN: usize = 8 * 1024;

fn opts() -> Options {
    Options {
        segment_bytes: SEGMENT,
        ..Options::default()
    }
}

fn open(dir: &Path) -> (Wal, Vec<Vec<u8>>) {
    let mut seen = Vec::new();
    let (wal, _) = Wal::open(dir, opts(), &mut |e| seen.push(e.payload.to_vec())).unwrap();
    (wal, seen)
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

fn expected(from: u64, to: u64) -> Vec<Vec<u8>> {
    (from..to).map(|i| payload(i, LEN).to_vec()).collect()
}

#[test]
fn rolls_into_prepared_segments_whose_entries_recover() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let (wal, seen) = open(dir.path());
    assert!(seen.is_empty());
    let mut waited = Vec::new();
    rt.block_on(async {
        for i in 0..120 {
            wal.append(meta(i), payload(i, LEN)).await.unwrap();
            // Give each preparation time to finish before its roll.
            for name in temp_files(dir.path()) {
                if !waited.contains(&name) {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    waited.push(name);
                }
            }
        }
    });
    let prepared = wal.progress.prepared_rolls.load(Ordering::Relaxed);
    assert!(prepared >= 2, "only {prepared} rolls into prepared segments");
    let segments = wal.segments().len();
    assert!(segments >= 4, "{segments} segments");
    rt.block_on(wal.shutdown());
    assert!(temp_files(dir.path()).is_empty(), "a preparation outlived the writer");

    // The active segment is a prepared one: its entries end in zeros.
    let (wal, seen) = open(dir.path());
    assert_eq!(seen, expected(0, 120));
    rt.block_on(async {
        for i in 120..130 {
            wal.append(meta(i), payload(i, LEN)).await.unwrap();
        }
        wal.shutdown().await;
    });
    let (wal, seen) = open(dir.path());
    assert_eq!(seen, expected(0, 130));
    rt.block_on(wal.shutdown());
}

#[test]
fn a_prepared_file_left_by_a_crash_is_removed_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let (wal, _) = open(dir.path());
    rt.block_on(async {
        for i in 0..5 {
            wal.append(meta(i), payload(i, LEN)).await.unwrap();
        }
        wal.shutdown().await;
    });
    // What a kill during a preparation leaves: a zero-filled temp file.
    let left = dir.path().join("prepared-1.wal.tmp");
    std::fs::write(&left, vec![0u8; SEGMENT as usize]).unwrap();
    let (wal, seen) = open(dir.path());
    assert_eq!(seen, expected(0, 5));
    assert!(!left.exists());
    rt.block_on(wal.shutdown());
}

#[test]
fn big_groups_roll_into_created_segments_and_recover() {
    // 256 KiB entries one at a time: groups above `PREPARE_BELOW`, whose
    // second write would cost more than a prepared file saves.
    const BIG: usize = 256 * 1024;
    const { assert!(BIG >= super::writer::PREPARE_BELOW) };
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let opts = Options {
        segment_bytes: 4 * 1024 * 1024,
        ..Options::default()
    };
    let (wal, _) = Wal::open(dir.path(), opts.clone(), &mut |_| {}).unwrap();
    let mut saw_preparation = false;
    rt.block_on(async {
        for i in 0..40 {
            wal.append(meta(i), payload(i, BIG)).await.unwrap();
            saw_preparation |= !temp_files(dir.path()).is_empty();
            if i % 4 == 3 {
                // Time enough for a preparation to finish before a roll.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    });
    assert!(wal.segments().len() >= 3, "{} segments", wal.segments().len());
    assert_eq!(wal.progress.prepared_rolls.load(Ordering::Relaxed), 0);
    assert!(!saw_preparation, "a segment was prepared for big groups");
    rt.block_on(wal.shutdown());
    let mut seen = Vec::new();
    let (wal, _) = Wal::open(dir.path(), opts, &mut |e| seen.push(e.payload.to_vec())).unwrap();
    let want: Vec<Vec<u8>> = (0..40).map(|i| payload(i, BIG).to_vec()).collect();
    assert!(seen == want, "recovered {} entries, not the 40 appended", seen.len());
    rt.block_on(wal.shutdown());
}
