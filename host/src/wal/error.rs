//! Errors of the write-ahead log.

use std::path::PathBuf;

/// Why bytes on disk are not a valid WAL structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("bad magic number")]
    BadMagic,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    #[error("CRC mismatch")]
    BadCrc,
    #[error("entry length {0} out of range")]
    BadLength(u32),
    #[error("unknown entry kind {0}")]
    BadKind(u8),
    #[error("expected LSN {expected}, found {found}")]
    LsnGap { expected: u64, found: u64 },
    #[error("entry cut short by the end of the file")]
    Truncated,
    /// An object-store WAL object that cannot be replayed (see the message).
    #[error("{0}")]
    Object(String),
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL I/O error during {op} on `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An earlier write or sync failed; the log refuses further writes
    /// until the process restarts and recovers from what is on disk.
    #[error("WAL is failed after an earlier I/O error ({0}); restart to recover")]
    Poisoned(String),
    #[error("WAL is shut down")]
    Closed,
    #[error("WAL entry of {size} bytes exceeds the maximum of {max} bytes")]
    EntryTooLarge { size: usize, max: usize },
    #[error("WAL segment `{}` is corrupt at byte {pos}: {reason}", segment.display())]
    Corrupt {
        segment: PathBuf,
        pos: u64,
        reason: Corruption,
    },
    #[error("WAL LSN {lsn} is no longer in the log (trimmed)")]
    Trimmed { lsn: u64 },
    /// A call to the object store under an object-store WAL failed (after
    /// the store's retries).
    #[error("WAL object store call failed: {0}")]
    Remote(String),
    /// Another writer claimed a newer epoch of this object-store WAL: this
    /// one stopped writing and acknowledges nothing more.
    #[error("WAL writer of epoch {epoch} is fenced by a newer writer (epoch {newer}); restart to recover")]
    Fenced { epoch: u64, newer: u64 },
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WalError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
