//! Segment files: naming, creation and the shared table readers use.
//!
//! A segment is named by the LSN of its first entry, zero-padded so names
//! sort by LSN: `00000000000000000001.wal`. A new segment is written under a
//! temporary name with its header, synced, and renamed into place, so a file
//! with a final name always has a complete header.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::error::WalError;
use super::format::{SEGMENT_HEADER_LEN, SegmentHeader, encode_segment_header};
use crate::fsutil::now_ms;

pub const SEGMENT_SUFFIX: &str = ".wal";
/// Suffix given to files that recovery cut out of the log (kept, never read).
pub const DROPPED_SUFFIX: &str = ".dropped";
/// Suffix of a trimmed segment kept to be recycled as a later one; never
/// read as part of the log.
pub const SPARE_SUFFIX: &str = ".spare";

/// The name of a spare whose entries all have LSNs below `bound` (the first
/// LSN of the segment that followed it): a spare is recycled only into a
/// segment starting at `bound` or later, so none of its entries can ever
/// read as one of the new segment's.
pub fn spare_name(bound: u64) -> String {
    format!("{bound:020}{SPARE_SUFFIX}")
}

/// Parses a spare's name back into its bound.
pub fn parse_spare_name(name: &str) -> Option<u64> {
    parse_digits(name.strip_suffix(SPARE_SUFFIX)?)
}

/// The name recovery gives a file it moves or copies out of the log:
/// `<segment>.<stamp><extra>.dropped` (`extra` is `.at-<pos>` for the cut-off
/// bytes of a segment kept in part, empty for a whole segment).
pub fn dropped_path(dir: &Path, segment: &Path, stamp: u64, extra: &str) -> PathBuf {
    let mut name = segment.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{stamp}{extra}{DROPPED_SUFFIX}"));
    dir.join(name)
}

/// Writes `bytes`, cut off `segment` at `pos`, to a new `*.at-<pos>.dropped`
/// file and syncs it (the directory is the caller's to sync). Never writes
/// over an existing file.
pub fn save_dropped_bytes(dir: &Path, segment: &Path, stamp: u64, pos: u64, bytes: &[u8]) -> Result<PathBuf, WalError> {
    use std::io::Write;
    let to = dropped_path(dir, segment, stamp, &format!(".at-{pos}"));
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&to)
        .map_err(|e| WalError::io("save cut-off bytes", &to, e))?;
    out.write_all(bytes)
        .map_err(|e| WalError::io("save cut-off bytes", &to, e))?;
    out.sync_all().map_err(|e| WalError::io("sync cut-off bytes", &to, e))?;
    Ok(to)
}

pub fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name back into its first LSN.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    parse_digits(name.strip_suffix(SEGMENT_SUFFIX)?)
}

fn parse_digits(digits: &str) -> Option<u64> {
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Creates a segment durably and returns it opened for appending. Both
/// descriptors it needs (the directory's, for the sync, and the file's) are
/// taken before anything is written, so running out of them leaves nothing
/// on disk.
pub fn create_segment(dir: &Path, first_lsn: u64, trim_lsn: u64) -> Result<(PathBuf, File), WalError> {
    let dir_handle = File::open(dir).map_err(|e| WalError::io("open WAL directory", dir, e))?;
    let tmp = dir.join(format!("{}.tmp", segment_name(first_lsn)));
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| WalError::io("create segment", &tmp, e))?;
    let path = install_segment(&dir_handle, dir, &tmp, &f, first_lsn, trim_lsn, false)?;
    Ok((path, f))
}

/// Makes `file`, open under the temporary name `tmp`, the segment starting
/// at `first_lsn`: its header written at the start and synced, the file
/// renamed to its final name, the directory (`dir_handle`) synced. Returns
/// the final path. `recycled`: the file held an earlier segment, whose
/// bytes may follow the new one's entries (the header says so).
pub fn install_segment(
    dir_handle: &File,
    dir: &Path,
    tmp: &Path,
    file: &File,
    first_lsn: u64,
    trim_lsn: u64,
    recycled: bool,
) -> Result<PathBuf, WalError> {
    let header = encode_segment_header(&SegmentHeader {
        first_lsn,
        trim_lsn,
        created_ms: now_ms(),
        recycled,
    });
    file.write_all_at(&header, 0)
        .map_err(|e| WalError::io("write segment header", tmp, e))?;
    file.sync_all()
        .map_err(|e| WalError::io("sync segment header", tmp, e))?;
    let path = dir.join(segment_name(first_lsn));
    std::fs::rename(tmp, &path).map_err(|e| WalError::io("rename segment", &path, e))?;
    dir_handle
        .sync_all()
        .map_err(|e| WalError::io("sync WAL directory", dir, e))?;
    debug_assert_eq!(header.len(), SEGMENT_HEADER_LEN);
    Ok(path)
}

/// Read handles of the live segments, keyed by first LSN. The writer adds
/// segments as it rolls and removes them when it trims; readers holding an
/// `Arc<File>` of a removed segment can still finish their read.
#[derive(Debug, Default)]
pub struct SegmentTable {
    inner: RwLock<BTreeMap<u64, Arc<Segment>>>,
}

#[derive(Debug)]
pub struct Segment {
    pub path: PathBuf,
    pub file: File,
}

impl SegmentTable {
    pub fn insert(&self, first_lsn: u64, path: PathBuf) -> Result<(), WalError> {
        let file = File::open(&path).map_err(|e| WalError::io("open segment for reads", &path, e))?;
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.insert(first_lsn, Arc::new(Segment { path, file }));
        Ok(())
    }

    pub fn remove(&self, first_lsn: u64) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).remove(&first_lsn);
    }

    pub fn get(&self, first_lsn: u64) -> Option<Arc<Segment>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&first_lsn)
            .cloned()
    }

    /// First LSNs of all live segments, ascending.
    pub fn first_lsns(&self) -> Vec<u64> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

impl Segment {
    pub fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<(), WalError> {
        self.file
            .read_exact_at(buf, pos)
            .map_err(|e| WalError::io("read segment", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_lsn_and_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert!(segment_name(9) < segment_name(10));
        assert_eq!(parse_segment_name("00000000000000000001.wal.dropped"), None);
        assert_eq!(parse_segment_name("1.wal"), None);
        assert_eq!(parse_spare_name(&spare_name(77)), Some(77));
        assert_eq!(parse_segment_name(&spare_name(77)), None);
        assert_eq!(parse_spare_name(&segment_name(77)), None);
    }
}
