//! The end of a recycled segment. A segment written into a recycled file
//! (header version 2) is followed by the file's earlier contents: entries
//! with LSNs below the segment's first, and pieces of entries cut in the
//! middle. Recovery's first bad entry there is the log's end, unless an
//! entry of the log starts after it (then it is corruption in the middle,
//! which `recovery.rs` cuts as in any segment).
//!
//! Invariants:
//! * Old entries can never pass for entries of the log: a spare becomes a
//!   segment only at or above its bound (`segment.rs`), so all of them have
//!   LSNs below the one expected.
//! * Nothing the log may have acknowledged is written over unseen: a bad
//!   entry at the end whose header names the expected LSN (a torn write,
//!   or the last entry damaged) is copied to a `*.dropped` file first and
//!   reported as a cut; old bytes are left in place, and the file keeps its
//!   length (its blocks are what recycling is for).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{Corruption, WalError};
use super::format::{ENTRY_HEADER_LEN, decode_entry_header, entry_crc_ok};
use super::recovery::Cut;
use super::segment::save_dropped_bytes;
use crate::fsutil::{now_ms, sync_dir};

/// Bytes of a bad last entry kept aside at most (its header claims more).
const KEEP_AT_MOST: u64 = 256 * 1024 * 1024;

/// The recycled last segment, opened once for both questions recovery asks
/// about its first bad entry.
pub struct RecycledTail {
    path: PathBuf,
    f: File,
    len: u64,
}

impl RecycledTail {
    pub fn open(path: &Path) -> Result<Self, WalError> {
        let f = File::open(path).map_err(|e| WalError::io("open segment", path, e))?;
        let len = f.metadata().map_err(|e| WalError::io("stat segment", path, e))?.len();
        Ok(Self {
            path: path.to_path_buf(),
            f,
            len,
        })
    }

    fn read_at(&self, buf: &mut [u8], at: u64, what: &'static str) -> Result<(), WalError> {
        self.f
            .read_exact_at(buf, at)
            .map_err(|e| WalError::io(what, &self.path, e))
    }

    /// Whether an entry of the log (known kind, good CRC, an LSN from
    /// `from_lsn` on) starts anywhere after `pos`: then the bad entry at
    /// `pos` is corruption with the log going on after it, not the end of
    /// the log followed by the file's earlier entries (all below the
    /// segment's first LSN) or a torn write into them.
    pub fn live_entry_after(&self, pos: u64, from_lsn: u64) -> Result<bool, WalError> {
        const WINDOW: usize = 1 << 20;
        let len = self.len;
        // The rest of the file holds fewer entries than this.
        let span = len.saturating_sub(pos) / ENTRY_HEADER_LEN as u64 + 1;
        let mut buf = vec![0u8; WINDOW + ENTRY_HEADER_LEN];
        let mut payload = Vec::new();
        let mut at = pos.saturating_add(1);
        while at.saturating_add(ENTRY_HEADER_LEN as u64) <= len {
            let n = usize::try_from(len - at).unwrap_or(usize::MAX).min(buf.len());
            self.read_at(&mut buf[..n], at, "read segment")?;
            let starts = n + 1 - ENTRY_HEADER_LEN;
            for off in 0..starts {
                let Ok(raw) = <&[u8; ENTRY_HEADER_LEN]>::try_from(&buf[off..off + ENTRY_HEADER_LEN]) else {
                    continue;
                };
                let lsn = u64::from_le_bytes([raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]]);
                if lsn < from_lsn || lsn - from_lsn >= span {
                    continue;
                }
                let Ok(header) = decode_entry_header(raw) else {
                    continue;
                };
                let start = at + (off + ENTRY_HEADER_LEN) as u64;
                if len - start < header.payload_len as u64 {
                    continue;
                }
                payload.resize(header.payload_len, 0);
                self.read_at(&mut payload, start, "read segment")?;
                if entry_crc_ok(&header, raw, &payload) {
                    return Ok(true);
                }
            }
            at += starts as u64;
        }
        Ok(false)
    }

    /// If the bad entry at `pos` (the log's end) has a readable header
    /// naming `lsn`, the next LSN of the log, copies its bytes (up to the
    /// length its header claims, within the file) to
    /// `<segment>.<ms>.at-<pos>.dropped` in `dir` and returns that cut. Old
    /// entries and unreadable bytes there are the file's earlier contents:
    /// `None`.
    pub fn keep_torn_entry(&self, dir: &Path, pos: u64, lsn: u64, reason: Corruption) -> Result<Option<Cut>, WalError> {
        let len = self.len;
        let mut raw = [0u8; ENTRY_HEADER_LEN];
        let header_end = pos.saturating_add(ENTRY_HEADER_LEN as u64);
        if header_end > len {
            return Ok(None);
        }
        self.read_at(&mut raw, pos, "read segment")?;
        let claimed = match decode_entry_header(&raw) {
            Ok(h) if h.lsn == lsn => (h.payload_len as u64).saturating_add(ENTRY_HEADER_LEN as u64),
            _ => return Ok(None),
        };
        let keep = claimed.min(len - pos).min(KEEP_AT_MOST);
        let mut bytes = vec![0u8; usize::try_from(keep).unwrap_or(0)];
        self.read_at(&mut bytes, pos, "read segment tail")?;
        let to = save_dropped_bytes(dir, &self.path, now_ms(), pos, &bytes)?;
        sync_dir(dir).map_err(|e| WalError::io("sync WAL directory", dir, e))?;
        tracing::warn!(
            segment = %self.path.display(), pos, %reason,
            "WAL recovery ended the log at a torn or damaged entry in a recycled segment; its bytes were copied aside"
        );
        Ok(Some(Cut {
            segment: self.path.clone(),
            pos,
            reason,
            dropped_files: vec![to],
        }))
    }
}
