//! Recovery: rebuild the log's state from the segment files on start-up.
//!
//! The recovered log is the longest valid, LSN-contiguous run of entries
//! starting at the trim point. What recovery tolerates and what it does:
//!
//! * zero bytes after the last entry (the writer writes zeros ahead of the
//!   active segment's end): the segment ends cleanly there, nothing is cut;
//! * a torn tail (entry cut short, or a bad CRC or zero header with only
//!   zeros after it, at the end): the segment is truncated at the start of
//!   that entry;
//! * corruption or an LSN gap in the middle: the same cut, and every later
//!   segment is renamed `*.dropped`; the cut-off bytes of the damaged segment
//!   are copied to a `*.dropped` file first. Nothing past the cut is served,
//!   and nothing is deleted: an operator can inspect it;
//! * a missing or damaged trim marker: the trim point is taken from the
//!   segment headers (each records the trim LSN at its creation), so data is
//!   never discarded because a marker is absent;
//! * segments wholly below the trim point are deleted (an interrupted trim is
//!   finished), except the last one, which fixes the next LSN;
//! * a recycled last segment (header version 2) is followed by its file's
//!   earlier contents: its first bad entry is its end (`recycled_tail.rs`),
//!   unless an entry of the log (good CRC, LSN from there on) starts
//!   anywhere after it, which makes it corruption in the middle, cut as
//!   above;
//! * spares (`*.spare`, trimmed segments kept for recycling) are handed to
//!   the writer if every entry they hold is below the next LSN, and removed
//!   otherwise.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::error::{Corruption, WalError};
use super::format::{
    ENTRY_HEADER_LEN, EntryMeta, SEGMENT_HEADER_LEN, decode_entry_header, decode_segment_header, decode_trim,
    entry_crc_ok,
};
use super::recycled_tail::RecycledTail;
use super::segment::{dropped_path, parse_segment_name, parse_spare_name, save_dropped_bytes};
use crate::fsutil::{now_ms, sync_dir};

/// Name of the trim marker file inside the WAL directory.
pub const TRIM_FILE: &str = "trim";

/// Where an entry lives on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// First LSN of the segment holding the entry.
    pub segment: u64,
    /// Byte position of the entry header in the segment.
    pub pos: u64,
    /// Total length of the entry, header included.
    pub len: u32,
}

/// An entry handed to the recovery visitor.
#[derive(Debug)]
pub struct RecoveredEntry<'a> {
    pub lsn: u64,
    pub meta: EntryMeta,
    pub payload: &'a [u8],
    pub location: Location,
}

/// Where and why recovery cut the log.
#[derive(Debug, Clone)]
pub struct Cut {
    pub segment: PathBuf,
    pub pos: u64,
    pub reason: Corruption,
    /// Files holding what was cut off (renamed or copied, never deleted).
    pub dropped_files: Vec<PathBuf>,
}

/// The outcome of recovery.
#[derive(Debug)]
pub struct Recovered {
    /// LSN the next appended entry gets.
    pub next_lsn: u64,
    /// Entries below this LSN are trimmed.
    pub trim_lsn: u64,
    /// Live segments, ascending by first LSN; the last is appended to.
    pub segments: Vec<(u64, PathBuf)>,
    /// Length of the last segment after any truncation.
    pub tail_len: u64,
    /// Entries handed to the visitor.
    pub entries: u64,
    pub cut: Option<Cut>,
    /// Spares the writer may recycle.
    pub spares: Vec<PathBuf>,
}

/// Scans `dir` and calls `visit` for each entry at or above the trim point,
/// in LSN order.
pub fn recover(dir: &Path, visit: &mut dyn FnMut(RecoveredEntry<'_>)) -> Result<Recovered, WalError> {
    fs::create_dir_all(dir).map_err(|e| WalError::io("create WAL directory", dir, e))?;
    let (mut segments, spares) = list_segments(dir)?;
    let trim_file = fs::read(dir.join(TRIM_FILE)).ok().and_then(|b| decode_trim(&b));

    // Headers, up to the first unreadable one; trim = max over marker and headers.
    let mut headers = Vec::with_capacity(segments.len());
    let mut bad_header: Option<(usize, Corruption)> = None;
    for (i, (lsn, path)) in segments.iter().enumerate() {
        match read_segment_header(path)? {
            Ok(h) if h.first_lsn == *lsn => headers.push(h),
            Ok(h) => {
                bad_header = Some((
                    i,
                    Corruption::LsnGap {
                        expected: *lsn,
                        found: h.first_lsn,
                    },
                ));
                break;
            }
            Err(c) => {
                bad_header = Some((i, c));
                break;
            }
        }
    }
    let trim_lsn = headers.iter().map(|h| h.trim_lsn).chain(trim_file).max().unwrap_or(0);

    // Finish an interrupted trim: drop segments wholly below the trim point.
    let mut removed = 0;
    while removed + 1 < headers.len() && headers[removed + 1].first_lsn <= trim_lsn {
        let path = &segments[removed].1;
        fs::remove_file(path).map_err(|e| WalError::io("remove trimmed segment", path, e))?;
        removed += 1;
    }
    if removed > 0 {
        sync_dir(dir).map_err(|e| WalError::io("sync WAL directory", dir, e))?;
        segments.drain(..removed);
        headers.drain(..removed);
        bad_header = bad_header.map(|(i, c)| (i - removed, c));
    }

    let mut expected = trim_lsn.max(super::FIRST_LSN);
    let mut entries = 0u64;
    let mut cut_at: Option<(usize, u64, Corruption)> = None;
    let mut tail_len = 0u64;
    // The end of a recycled last segment, when a write of the next entry
    // was torn there.
    let mut torn: Option<Cut> = None;
    for (i, (seg_lsn, path)) in segments.iter().enumerate() {
        if let Some((bad, reason)) = &bad_header
            && *bad == i
        {
            cut_at = Some((i, 0, reason.clone()));
            break;
        }
        let first = *seg_lsn;
        // The first live segment may start below the trim point; any other
        // must continue exactly where the previous one ended.
        let contiguous = if i == 0 { first <= expected } else { first == expected };
        if !contiguous {
            cut_at = Some((i, 0, Corruption::LsnGap { expected, found: first }));
            break;
        }
        expected = first;
        let scanned = scan_segment(path, first, trim_lsn, &mut expected, &mut entries, visit)?;
        let recycled_last = i + 1 == segments.len() && headers.get(i).is_some_and(|h| h.recycled);
        match scanned {
            Ok(len) => tail_len = len,
            Err((pos, reason)) => {
                if recycled_last {
                    let tail = RecycledTail::open(path)?;
                    if !tail.live_entry_after(pos, expected)? {
                        tail_len = pos;
                        torn = tail.keep_torn_entry(dir, pos, expected, reason)?;
                        continue;
                    }
                }
                cut_at = Some((i, pos, reason));
                break;
            }
        }
    }

    let cut = match cut_at {
        None => torn,
        Some((i, pos, reason)) => {
            let c = cut_segments(dir, &segments, i, pos, reason)?;
            segments.truncate(if pos == 0 { i } else { i + 1 });
            if pos > 0 {
                tail_len = pos;
            } else if let Some((_, last)) = segments.last() {
                tail_len = fs::metadata(last)
                    .map_err(|e| WalError::io("stat segment", last, e))?
                    .len();
            }
            Some(c)
        }
    };
    // A spare's entries are all below its bound: recycled into a segment
    // that starts below it (the log was wiped but the spare kept), one of
    // them could read as an entry of the new segment.
    let mut kept = Vec::new();
    for (bound, path) in spares {
        if bound <= expected {
            kept.push(path);
        } else {
            fs::remove_file(&path).map_err(|e| WalError::io("remove spare segment", &path, e))?;
        }
    }
    Ok(Recovered {
        next_lsn: expected,
        trim_lsn,
        segments,
        tail_len,
        entries,
        cut,
        spares: kept,
    })
}

/// The segments (first LSN, path), ascending, and the spares (bound, path).
type Listing = (Vec<(u64, PathBuf)>, Vec<(u64, PathBuf)>);

fn list_segments(dir: &Path) -> Result<Listing, WalError> {
    let mut out = Vec::new();
    let mut spares = Vec::new();
    let rd = fs::read_dir(dir).map_err(|e| WalError::io("list WAL directory", dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| WalError::io("list WAL directory", dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(lsn) = parse_segment_name(name) {
            out.push((lsn, ent.path()));
        } else if let Some(bound) = parse_spare_name(name) {
            spares.push((bound, ent.path()));
        } else if name.ends_with(".tmp") {
            // A segment or marker that never got its final name: it holds no
            // acknowledged entry (entries are written only after the rename).
            let p = ent.path();
            fs::remove_file(&p).map_err(|e| WalError::io("remove temp file", &p, e))?;
        }
    }
    out.sort_by_key(|(lsn, _)| *lsn);
    Ok((out, spares))
}

fn read_segment_header(path: &Path) -> Result<Result<super::format::SegmentHeader, Corruption>, WalError> {
    let mut f = File::open(path).map_err(|e| WalError::io("open segment", path, e))?;
    let mut raw = [0u8; SEGMENT_HEADER_LEN];
    match f.read_exact(&mut raw) {
        Ok(()) => Ok(decode_segment_header(&raw)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(Err(Corruption::Truncated)),
        Err(e) => Err(WalError::io("read segment header", path, e)),
    }
}

/// Scans one segment's entries. `Ok(Ok(len))`: clean to the end of file;
/// `Ok(Err((pos, why)))`: the first bad entry starts at `pos`.
fn scan_segment(
    path: &Path,
    seg_lsn: u64,
    trim_lsn: u64,
    expected: &mut u64,
    entries: &mut u64,
    visit: &mut dyn FnMut(RecoveredEntry<'_>),
) -> Result<Result<u64, (u64, Corruption)>, WalError> {
    let f = File::open(path).map_err(|e| WalError::io("open segment", path, e))?;
    let file_len = f.metadata().map_err(|e| WalError::io("stat segment", path, e))?.len();
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut skip = [0u8; SEGMENT_HEADER_LEN];
    r.read_exact(&mut skip)
        .map_err(|e| WalError::io("read segment", path, e))?;
    let mut pos = SEGMENT_HEADER_LEN as u64;
    let mut payload = Vec::new();
    let rest_is_zero = |r: &mut BufReader<File>| rest_is_zero(r).map_err(|e| WalError::io("read segment", path, e));
    loop {
        if pos == file_len {
            return Ok(Ok(pos));
        }
        if file_len - pos < ENTRY_HEADER_LEN as u64 {
            return Ok(if rest_is_zero(&mut r)? {
                Ok(pos)
            } else {
                Err((pos, Corruption::Truncated))
            });
        }
        let mut raw = [0u8; ENTRY_HEADER_LEN];
        r.read_exact(&mut raw)
            .map_err(|e| WalError::io("read segment", path, e))?;
        if raw.iter().all(|&b| b == 0) {
            // Zeros written ahead: the clean end, unless a torn write left
            // bytes after them.
            return Ok(if rest_is_zero(&mut r)? {
                Ok(pos)
            } else {
                Err((pos, Corruption::Truncated))
            });
        }
        let header = match decode_entry_header(&raw) {
            Ok(h) => h,
            Err(c) => return Ok(Err((pos, c))),
        };
        if file_len - pos - (ENTRY_HEADER_LEN as u64) < header.payload_len as u64 {
            return Ok(Err((pos, Corruption::Truncated)));
        }
        payload.resize(header.payload_len, 0);
        r.read_exact(&mut payload)
            .map_err(|e| WalError::io("read segment", path, e))?;
        if !entry_crc_ok(&header, &raw, &payload) {
            // Written only in part into the zeros ahead: a torn tail.
            let reason = if rest_is_zero(&mut r)? {
                Corruption::Truncated
            } else {
                Corruption::BadCrc
            };
            return Ok(Err((pos, reason)));
        }
        // An entry at u64::MAX would leave no next LSN: refused like a gap.
        if header.lsn != *expected || header.lsn == u64::MAX {
            return Ok(Err((
                pos,
                Corruption::LsnGap {
                    expected: *expected,
                    found: header.lsn,
                },
            )));
        }
        let len = (ENTRY_HEADER_LEN + header.payload_len) as u32;
        if header.lsn >= trim_lsn {
            *entries += 1;
            visit(RecoveredEntry {
                lsn: header.lsn,
                meta: header.meta,
                payload: &payload,
                location: Location {
                    segment: seg_lsn,
                    pos,
                    len,
                },
            });
        }
        *expected += 1;
        pos += len as u64;
    }
}

/// Whether everything `r` has left to read is zero bytes.
fn rest_is_zero(r: &mut impl Read) -> std::io::Result<bool> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) if chunk[..n].iter().all(|&b| b == 0) => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Cuts the log at (`segments[i]`, `pos`): keeps what precedes, moves the rest aside.
fn cut_segments(
    dir: &Path,
    segments: &[(u64, PathBuf)],
    i: usize,
    pos: u64,
    reason: Corruption,
) -> Result<Cut, WalError> {
    let stamp = now_ms();
    let aside = |p: &Path| dropped_path(dir, p, stamp, "");
    let mut dropped = Vec::new();
    let seg_path = &segments[i].1;
    if pos == 0 {
        let to = aside(seg_path);
        fs::rename(seg_path, &to).map_err(|e| WalError::io("move damaged segment aside", seg_path, e))?;
        dropped.push(to);
    } else {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(seg_path)
            .map_err(|e| WalError::io("open segment for cut", seg_path, e))?;
        let len = f
            .metadata()
            .map_err(|e| WalError::io("stat segment", seg_path, e))?
            .len();
        if len > pos {
            let mut rest = Vec::with_capacity((len - pos) as usize);
            use std::io::{Seek, SeekFrom};
            f.seek(SeekFrom::Start(pos))
                .map_err(|e| WalError::io("seek segment", seg_path, e))?;
            f.read_to_end(&mut rest)
                .map_err(|e| WalError::io("read segment tail", seg_path, e))?;
            dropped.push(save_dropped_bytes(dir, seg_path, stamp, pos, &rest)?);
        }
        f.set_len(pos)
            .map_err(|e| WalError::io("truncate segment", seg_path, e))?;
        f.sync_all()
            .map_err(|e| WalError::io("sync truncated segment", seg_path, e))?;
    }
    for (_, later) in &segments[i + 1..] {
        let to = aside(later);
        fs::rename(later, &to).map_err(|e| WalError::io("move later segment aside", later, e))?;
        dropped.push(to);
    }
    sync_dir(dir).map_err(|e| WalError::io("sync WAL directory", dir, e))?;
    let torn_tail = i + 1 == segments.len() && pos > 0 && reason == Corruption::Truncated;
    if torn_tail {
        tracing::warn!(segment = %seg_path.display(), pos, "WAL recovery cut a torn tail (an unacknowledged write)");
    } else {
        tracing::error!(
            segment = %seg_path.display(), pos, %reason, dropped = dropped.len(),
            "WAL recovery cut the log; entries after the cut are not served and were moved aside"
        );
    }
    Ok(Cut {
        segment: seg_path.clone(),
        pos,
        reason,
        dropped_files: dropped,
    })
}
