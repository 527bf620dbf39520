//! Recycled segments: trimmed segments are kept as spares and reused, and
//! recovery reads a recycled file's earlier entries (or a torn write into
//! them, copied aside) after the last entry as the log's end, while
//! corruption with entries of the log after it is still cut.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::tests_contract::{meta, payload, rt};
use super::*;

const SEGMENT: u64 = 256 * 1024;
const LEN: usize = 8 * 1024;
/// Entries kept below the log's end at each trim.
const KEEP: u64 = 40;

fn opts(spares: usize) -> Options {
    Options {
        segment_bytes: SEGMENT,
        spare_segments: spares,
        ..Options::default()
    }
}

/// Entries recovered from `dir`: (LSN, payload).
fn reopen(dir: &Path, spares: usize) -> (Wal, Recovered, Vec<(u64, Vec<u8>)>) {
    let mut seen = Vec::new();
    let (wal, recovered) = Wal::open(dir, opts(spares), &mut |e| seen.push((e.lsn, e.payload.to_vec()))).unwrap();
    (wal, recovered, seen)
}

/// Entry `i` has LSN `i + 1` and payload `payload(i, LEN)`.
fn expected(from_lsn: u64, to_lsn: u64) -> Vec<(u64, Vec<u8>)> {
    (from_lsn..to_lsn).map(|l| (l, payload(l - 1, LEN).to_vec())).collect()
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

/// Appends entries `from..to`, trimming all but the last `KEEP` after each
/// and pausing so each recycling finishes before its roll.
fn append_trimming(wal: &Wal, from: u64, to: u64) {
    rt().block_on(async {
        for i in from..to {
            wal.append(meta(i), payload(i, LEN)).await.unwrap();
            wal.trim((i + 1).saturating_sub(KEEP)).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
    });
}

/// The last segment's path and its header's version.
fn last_segment(dir: &Path) -> (PathBuf, u32) {
    let mut segs = files_ending(dir, ".wal");
    segs.sort();
    let last = segs.pop().unwrap();
    let head = std::fs::read(&last).unwrap();
    (last, u32::from_le_bytes(head[8..12].try_into().unwrap()))
}

/// A WAL of 200 entries whose active segment is a recycled file with the
/// earlier segment's entries after its own.
fn recycled_wal(dir: &Path) {
    let (wal, _, _) = reopen(dir, 2);
    append_trimming(&wal, 0, 200);
    let recycled = wal.progress.recycled_rolls.load(Ordering::Relaxed);
    assert!(recycled >= 3, "only {recycled} rolls into recycled segments");
    assert!(files_ending(dir, ".spare").len() <= 2);
    rt().block_on(wal.shutdown());
    let (_, version) = last_segment(dir);
    assert_eq!(version, 2, "the active segment is not a recycled one");
}

#[test]
fn trimmed_segments_are_recycled_and_recover_past_their_old_entries() {
    let dir = tempfile::tempdir().unwrap();
    recycled_wal(dir.path());
    let (last, _) = last_segment(dir.path());

    let (wal, recovered, seen) = reopen(dir.path(), 2);
    assert!(recovered.cut.is_none(), "recovery cut the log: {:?}", recovered.cut);
    let file_len = std::fs::metadata(&last).unwrap().len();
    assert!(recovered.tail_len < file_len, "no old entries after the last one");
    assert_eq!(recovered.next_lsn, 201);
    assert_eq!(seen, expected(recovered.trim_lsn, 201));
    assert!(files_ending(dir.path(), ".dropped").is_empty());

    // Appends go on over the old entries, and recover again.
    append_trimming(&wal, 200, 260);
    rt().block_on(wal.shutdown());
    let (wal, recovered, seen) = reopen(dir.path(), 2);
    assert!(recovered.cut.is_none(), "recovery cut the log: {:?}", recovered.cut);
    assert_eq!(seen, expected(recovered.trim_lsn, 261));
    rt().block_on(wal.shutdown());
}

#[test]
fn a_torn_write_into_a_recycled_segment_is_its_end() {
    let dir = tempfile::tempdir().unwrap();
    recycled_wal(dir.path());
    let (wal, recovered, _) = reopen(dir.path(), 2);
    rt().block_on(wal.shutdown());
    // What a crash during the next group's write leaves: the header of
    // entry 201 and half its payload over the old entries.
    let mut entry = Vec::new();
    format::encode_entry(&mut entry, 201, &meta(200), &payload(200, LEN));
    let (last, _) = last_segment(dir.path());
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.write_all_at(&entry[..entry.len() / 2], recovered.tail_len).unwrap();
    drop(f);

    let file_len = std::fs::metadata(&last).unwrap().len();

    let (wal, again, seen) = reopen(dir.path(), 2);
    assert_eq!(again.next_lsn, 201);
    assert_eq!(again.tail_len, recovered.tail_len);
    assert_eq!(seen, expected(again.trim_lsn, 201));
    // The torn entry (it names the next LSN) is copied aside, as a torn
    // tail is in any segment; the file keeps its length and old bytes.
    let cut = again.cut.expect("the torn entry was not reported");
    assert_eq!(cut.pos, recovered.tail_len);
    assert_eq!(cut.dropped_files.len(), 1);
    let kept = std::fs::read(&cut.dropped_files[0]).unwrap();
    assert_eq!(kept.len(), entry.len());
    assert_eq!(kept[..entry.len() / 2], entry[..entry.len() / 2]);
    assert_eq!(std::fs::metadata(&last).unwrap().len(), file_len);
    rt().block_on(async {
        wal.append(meta(200), payload(200, LEN)).await.unwrap();
        wal.shutdown().await;
    });
    let (wal, _, seen) = reopen(dir.path(), 2);
    assert_eq!(seen.last(), Some(&(201, payload(200, LEN).to_vec())));
    rt().block_on(wal.shutdown());
}

#[test]
fn corruption_with_entries_after_it_in_a_recycled_segment_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    recycled_wal(dir.path());
    let (last, _) = last_segment(dir.path());
    let first_lsn: u64 = last.file_stem().unwrap().to_string_lossy().parse().unwrap();
    // A bit flipped in the payload of the segment's first entry.
    let at = (format::SEGMENT_HEADER_LEN + format::ENTRY_HEADER_LEN + 100) as u64;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&last).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
    drop(f);

    let (wal, recovered, seen) = reopen(dir.path(), 2);
    let cut = recovered.cut.expect("corruption followed by entries was not cut");
    assert_eq!(cut.pos, format::SEGMENT_HEADER_LEN as u64);
    assert!(!cut.dropped_files.is_empty());
    assert_eq!(recovered.next_lsn, first_lsn);
    assert_eq!(seen.last().map(|(l, _)| *l), Some(first_lsn - 1));
    rt().block_on(wal.shutdown());
}

#[test]
fn spares_outlive_a_restart_but_not_a_wiped_log() {
    let dir = tempfile::tempdir().unwrap();
    recycled_wal(dir.path());
    let spares = files_ending(dir.path(), ".spare");
    assert!(!spares.is_empty());
    let (wal, recovered, _) = reopen(dir.path(), 2);
    assert_eq!(recovered.spares.len(), spares.len());
    rt().block_on(wal.shutdown());

    // The log wiped but its spares left: their entries (LSNs up to ~200)
    // would sit after a new log's LSN 1, so they are removed.
    for p in files_ending(dir.path(), ".wal") {
        std::fs::remove_file(p).unwrap();
    }
    std::fs::remove_file(dir.path().join(recovery::TRIM_FILE)).unwrap();
    let (wal, recovered, seen) = reopen(dir.path(), 2);
    assert!(seen.is_empty());
    assert_eq!(recovered.next_lsn, FIRST_LSN);
    assert!(recovered.spares.is_empty());
    assert!(files_ending(dir.path(), ".spare").is_empty());
    rt().block_on(wal.shutdown());
}

#[test]
fn without_spares_trimmed_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = reopen(dir.path(), 0);
    append_trimming(&wal, 0, 120);
    assert_eq!(wal.progress.recycled_rolls.load(Ordering::Relaxed), 0);
    assert!(files_ending(dir.path(), ".spare").is_empty());
    rt().block_on(wal.shutdown());
    let (wal, recovered, seen) = reopen(dir.path(), 0);
    assert!(recovered.cut.is_none());
    assert_eq!(seen, expected(recovered.trim_lsn, 121));
    rt().block_on(wal.shutdown());
}

/// A recycled WAL built once; each case works on a copy.
fn template() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        recycled_wal(dir.path());
        dir
    })
    .path()
}

fn copy_of(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, .. Default::default() })]

    /// A byte flipped in the payload of any entry of a recycled last
    /// segment loses that entry and those after it, nothing before, and
    /// keeps them aside: corruption, not the end of the log.
    #[test]
    fn a_damaged_entry_in_a_recycled_segment_is_cut_and_kept(
        pick in proptest::prelude::any::<proptest::sample::Index>(),
        at in 0usize..LEN,
        mask in 1u8..=255,
    ) {
        let dir = copy_of(template());
        let (last, _) = last_segment(dir.path());
        let first: u64 = last.file_stem().unwrap().to_string_lossy().parse().unwrap();
        let (wal, before, _) = reopen(dir.path(), 2);
        rt().block_on(wal.shutdown());
        // Entries in the last segment: LSNs first..201, all LEN bytes.
        let n = (before.next_lsn - first) as usize;
        proptest::prop_assume!(n > 0);
        let k = pick.index(n);
        let entry_len = (format::ENTRY_HEADER_LEN + LEN) as u64;
        let pos = format::SEGMENT_HEADER_LEN as u64 + k as u64 * entry_len;
        let byte = pos + format::ENTRY_HEADER_LEN as u64 + at as u64;
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&last).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, byte).unwrap();
        f.write_all_at(&[b[0] ^ mask], byte).unwrap();
        drop(f);

        let damaged = first + k as u64;
        let (wal, rec, seen) = reopen(dir.path(), 2);
        proptest::prop_assert_eq!(rec.next_lsn, damaged);
        proptest::prop_assert_eq!(&seen, &expected(rec.trim_lsn, damaged));
        let cut = rec.cut.expect("a damaged entry was not reported");
        proptest::prop_assert_eq!(cut.pos, pos);
        let kept: u64 = cut.dropped_files.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        proptest::prop_assert!(kept >= (before.next_lsn - damaged) * entry_len);
        rt().block_on(wal.shutdown());
    }
}
