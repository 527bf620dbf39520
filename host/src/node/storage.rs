//! What the node stores and where, as Kafka's DescribeLogDirs reports it:
//! the data directory, its volume's size and free space, and each
//! partition's stored bytes. Read-only; nothing here changes state.

use std::path::PathBuf;

use super::Host;
use crate::error::Error;

/// The volume holding the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub total_bytes: u64,
    /// Free bytes this node's process may use.
    pub usable_bytes: u64,
}

/// One partition's stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionBytes {
    pub partition: u32,
    /// Segment objects in the object store (once its manifest has been
    /// read since start-up) plus WAL bytes not yet uploaded.
    pub bytes: u64,
    /// Records on this node above what readers may see (on a replicated
    /// partition, the log end past the high watermark; else 0).
    pub unreplicated_records: u64,
}

impl Host {
    /// The data directory and its volume's space (`None` if the operating
    /// system cannot tell).
    pub fn data_dir_space(&self) -> (PathBuf, Option<DiskSpace>) {
        let dir = self.settings().data_dir.clone();
        let space = rustix::fs::statvfs(&dir).ok().and_then(|s| {
            Some(DiskSpace {
                total_bytes: s.f_blocks.checked_mul(s.f_frsize)?,
                usable_bytes: s.f_bavail.checked_mul(s.f_frsize)?,
            })
        });
        (dir, space)
    }

    /// Each partition of `stream` with its stored bytes.
    pub fn partition_bytes(&self, stream: &str) -> Result<Vec<PartitionBytes>, Error> {
        Ok(self
            .stream_status(stream)?
            .into_iter()
            .map(|p| PartitionBytes {
                partition: p.partition,
                bytes: p.tier.tiered_bytes.saturating_add(p.upload_lag_bytes),
                unreplicated_records: p
                    .replication
                    .as_ref()
                    .map_or(0, |r| r.log_end_offset.saturating_sub(r.high_watermark)),
            })
            .collect())
    }
}
