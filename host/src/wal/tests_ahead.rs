//! Zeros written ahead of the active segment's end: recovery reads them as
//! the segment's clean end and the writer writes over them after a restart;
//! a write torn inside them is a torn tail; full segments hold exactly their
//! entries.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::Corruption;
use super::format::encode_entry;
use super::tests_contract::{meta, payload, rt};
use super::writer::ZERO_AHEAD;
use super::*;

/// Opens the WAL in `dir`, returning the recovered payloads in LSN order.
fn open(dir: &Path, opts: &Options) -> (Wal, Recovered, Vec<Vec<u8>>) {
    let mut seen = Vec::new();
    let (wal, rec) = Wal::open(dir, opts.clone(), &mut |e| seen.push(e.payload.to_vec())).unwrap();
    (wal, rec, seen)
}

/// Appends entries `from..to` (payloads of `len` bytes) and shuts down.
fn append(rt: &tokio::runtime::Runtime, wal: Wal, from: u64, to: u64, len: usize) -> Vec<Appended> {
    rt.block_on(async {
        let mut out = Vec::new();
        for i in from..to {
            out.push(wal.append(meta(i), payload(i, len)).await.unwrap());
        }
        wal.shutdown().await;
        out
    })
}

fn path_of(dir: &Path, segment: u64) -> PathBuf {
    dir.join(segment::segment_name(segment))
}

fn end_of(a: &Appended) -> u64 {
    a.location.pos + a.location.len as u64
}

fn expected(from: u64, to: u64, len: usize) -> Vec<Vec<u8>> {
    (from..to).map(|i| payload(i, len).to_vec()).collect()
}

#[test]
fn zeros_ahead_are_a_clean_end_and_are_written_over_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default();
    let rt = rt();
    let (wal, _, _) = open(dir.path(), &opts);
    let first = append(&rt, wal, 0, 10, 100);
    let last = *first.last().unwrap();
    let path = path_of(dir.path(), last.location.segment);
    let file_len = fs::metadata(&path).unwrap().len();
    assert!(
        file_len >= end_of(&last) + ZERO_AHEAD / 2,
        "{file_len} bytes on disk, entries end at {}",
        end_of(&last)
    );
    let on_disk = fs::read(&path).unwrap();
    assert!(on_disk[end_of(&last) as usize..].iter().all(|&b| b == 0));

    let (wal, rec, seen) = open(dir.path(), &opts);
    assert!(rec.cut.is_none(), "zeros ahead were cut: {:?}", rec.cut);
    assert_eq!(rec.tail_len, end_of(&last));
    assert_eq!(seen, expected(0, 10, 100));
    let second = append(&rt, wal, 10, 20, 100);
    assert_eq!(
        second[0].location.pos,
        end_of(&last),
        "the next entry follows the last one"
    );
    assert_eq!(second[0].location.segment, last.location.segment);

    let (wal, rec, seen) = open(dir.path(), &opts);
    assert!(rec.cut.is_none());
    assert_eq!(seen, expected(0, 20, 100));
    for a in first.iter().chain(&second) {
        assert!(wal.read(a.lsn, a.location).is_ok());
    }
}

#[test]
fn a_full_segment_holds_exactly_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 64 * 1024,
        ..Options::default()
    };
    let rt = rt();
    let (wal, _, _) = open(dir.path(), &opts);
    let acks = append(&rt, wal, 0, 300, 700);
    let mut segments: Vec<u64> = acks.iter().map(|a| a.location.segment).collect();
    segments.dedup();
    assert!(segments.len() >= 3, "only {} segments", segments.len());
    let active = *segments.last().unwrap();
    for seg in &segments {
        let end = acks
            .iter()
            .filter(|a| a.location.segment == *seg)
            .map(end_of)
            .max()
            .unwrap();
        let len = fs::metadata(path_of(dir.path(), *seg)).unwrap().len();
        if *seg == active {
            assert_eq!(len, opts.segment_bytes.min(end + ZERO_AHEAD).max(end));
        } else {
            assert_eq!(len, end, "full segment {seg} keeps bytes after its entries");
        }
    }
    let (_, rec, seen) = open(dir.path(), &opts);
    assert!(rec.cut.is_none());
    assert_eq!(seen, expected(0, 300, 700));
}

/// A WAL with entries 0..5 of 300 bytes, shut down; returns its last ack.
fn five_entries() -> (tempfile::TempDir, Options, tokio::runtime::Runtime, Appended) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default();
    let rt = rt();
    let (wal, _, _) = open(dir.path(), &opts);
    let last = *append(&rt, wal, 0, 5, 300).last().unwrap();
    (dir, opts, rt, last)
}

#[test]
fn a_write_torn_inside_the_zeros_is_cut_as_a_torn_tail() {
    let (dir, opts, rt, last) = five_entries();
    let path = path_of(dir.path(), last.location.segment);
    // The next entry, of which only the first half reached the disk.
    let mut entry = Vec::new();
    encode_entry(&mut entry, last.lsn + 1, &meta(5), &payload(5, 2000));
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&entry[..entry.len() / 2], end_of(&last)).unwrap();
    drop(f);

    let (wal, rec, seen) = open(dir.path(), &opts);
    let cut = rec.cut.expect("the torn entry is cut");
    assert_eq!((cut.pos, cut.reason), (end_of(&last), Corruption::Truncated));
    assert_eq!(seen, expected(0, 5, 300));
    let saved: Vec<u8> = cut.dropped_files.iter().flat_map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(
        &saved[..entry.len() / 2],
        &entry[..entry.len() / 2],
        "the cut-off bytes are kept"
    );
    assert_eq!(wal.next_lsn(), last.lsn + 1);
    let more = append(&rt, wal, 5, 8, 300);
    assert_eq!(more[0].location.pos, end_of(&last));
    let (_, rec, seen) = open(dir.path(), &opts);
    assert!(rec.cut.is_none());
    assert_eq!(seen, expected(0, 8, 300));
}

#[test]
fn bytes_after_the_zeros_are_cut_not_taken_for_an_end() {
    let (dir, opts, _rt, last) = five_entries();
    let path = path_of(dir.path(), last.location.segment);
    let len = fs::metadata(&path).unwrap().len();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(b"junk", len - 4).unwrap();
    drop(f);

    let (_, rec, seen) = open(dir.path(), &opts);
    let cut = rec.cut.expect("bytes after the zeros are cut");
    assert_eq!(cut.pos, end_of(&last));
    assert_eq!(seen, expected(0, 5, 300));
    let saved: u64 = cut.dropped_files.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    assert_eq!(saved, len - end_of(&last));
}
