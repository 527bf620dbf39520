//! Per-partition manifests: the object store's record of which segment
//! objects hold a partition's tiered offsets.
//!
//! A manifest is written as numbered versions under
//! `streams/<stream id>/<partition>/manifest/<version:020>.json`, each created
//! with create-if-absent; the highest version is current. Invariants:
//! * a version is never overwritten, so two writers cannot both commit the
//!   same successor: the loser re-reads and finds itself fenced when the
//!   winner holds a newer epoch;
//! * segments are listed in offset order, contiguous from `start_offset` to
//!   `end_offset` (retention moves `start_offset` by dropping whole segments);
//! * a writer claims a partition by committing a version with a higher epoch;
//!   a writer whose epoch is below the current one's never commits again.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::TierError;
use crate::fsutil::now_ms;
use crate::objstore::Remote;

/// One segment object a manifest names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Key relative to the partition's directory.
    pub key: String,
    pub base_offset: u64,
    pub end_offset: u64,
    pub size: u64,
    /// Where the index starts (the footer ends the object).
    pub index_pos: u64,
    /// When the segment was written (ms since the epoch); time retention
    /// measures from here, so it is append time, not producer time.
    pub created_ms: u64,
    /// At or above every record timestamp in the segment (a compacted copy
    /// that kept no record keeps its original's); absent in segments
    /// written before it was recorded. Offsets by time skip whole segments
    /// with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timestamp_ms: Option<u64>,
}

/// An object no longer named by the manifest, deleted after a grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Garbage {
    pub key: String,
    pub since_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u64,
    pub epoch: u64,
    pub stream_id: u32,
    pub partition: u32,
    pub start_offset: u64,
    pub end_offset: u64,
    pub segments: Vec<SegmentMeta>,
    /// Resumable compaction state, owned by the compactor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<serde_json::Value>,
    #[serde(default)]
    pub garbage: Vec<Garbage>,
    pub written_ms: u64,
}

impl Manifest {
    pub fn empty(stream_id: u32, partition: u32) -> Manifest {
        Manifest {
            version: 0,
            epoch: 0,
            stream_id,
            partition,
            start_offset: 0,
            end_offset: 0,
            segments: Vec::new(),
            compaction: None,
            garbage: Vec::new(),
            written_ms: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Checks the invariants a reader relies on.
    pub fn validate(&self) -> Result<(), String> {
        let first = self.segments.first().map_or(self.end_offset, |s| s.base_offset);
        if first != self.start_offset {
            return Err(format!("data starts at {first}, manifest at {}", self.start_offset));
        }
        let mut next = first;
        for s in &self.segments {
            if s.base_offset != next || s.end_offset <= s.base_offset || s.index_pos > s.size {
                return Err(format!("segment {} breaks the offset chain at {next}", s.key));
            }
            next = s.end_offset;
        }
        if next != self.end_offset {
            return Err(format!("segments end at {next}, manifest at {}", self.end_offset));
        }
        Ok(())
    }

    /// The segment holding `offset`, if tiered.
    pub fn find(&self, offset: u64) -> Option<&SegmentMeta> {
        let i = self.segments.partition_point(|s| s.end_offset <= offset);
        self.segments.get(i).filter(|s| s.base_offset <= offset)
    }
}

/// Where a partition's objects live.
pub fn partition_dir(stream_id: u32, partition: u32) -> String {
    format!("streams/{stream_id:010}/{partition:05}")
}

/// Where a segment named `key` (as listed in a manifest) lives.
pub fn segment_rel(stream_id: u32, partition: u32, key: &str) -> String {
    format!("{}/segments/{key}", partition_dir(stream_id, partition))
}

fn version_rel(stream_id: u32, partition: u32, version: u64) -> String {
    format!("{}/manifest/{version:020}.json", partition_dir(stream_id, partition))
}

/// Reads the current manifest (`None` if the partition has none yet).
pub async fn load(remote: &Remote, stream_id: u32, partition: u32) -> Result<Option<Manifest>, TierError> {
    // A version can vanish between list and get (garbage collection of old
    // versions), so look again a bounded number of times.
    for _ in 0..3 {
        let dir = format!("{}/manifest", partition_dir(stream_id, partition));
        let newest = remote
            .list(&dir)
            .await?
            .iter()
            .filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse::<u64>().ok())
            .max();
        let Some(version) = newest else {
            return Ok(None);
        };
        let path = remote.path(&version_rel(stream_id, partition, version));
        let Some(bytes) = remote.get(&path).await? else {
            continue;
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| TierError::Corrupt {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        m.validate().map_err(|reason| TierError::Corrupt {
            path: path.to_string(),
            reason,
        })?;
        return Ok(Some(m));
    }
    Err(TierError::Corrupt {
        path: remote.path(&partition_dir(stream_id, partition)).to_string(),
        reason: "current manifest keeps disappearing".into(),
    })
}

/// Commits `next` as the successor of `current` (whose version it must
/// carry plus one). Fenced when another writer got there first.
pub async fn commit(remote: &Remote, current: &Manifest, mut next: Manifest) -> Result<Manifest, TierError> {
    next.version = current.version + 1;
    next.written_ms = now_ms();
    next.validate().map_err(|reason| TierError::Corrupt {
        path: partition_dir(next.stream_id, next.partition),
        reason,
    })?;
    let path = remote.path(&version_rel(next.stream_id, next.partition, next.version));
    let body = serde_json::to_vec_pretty(&next).map_err(|e| TierError::Corrupt {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    if remote.put_if_absent(&path, Bytes::from(body)).await? {
        return Ok(next);
    }
    // Someone holds this version. If it is ours (an earlier attempt whose
    // answer was lost), we committed; otherwise we lost to another writer.
    let theirs = match remote.get(&path).await? {
        Some(b) => serde_json::from_slice::<Manifest>(&b).ok(),
        None => None,
    };
    match theirs {
        Some(t) if t == next => Ok(next),
        Some(t) => Err(TierError::Fenced {
            path: path.to_string(),
            ours: next.epoch,
            theirs: t.epoch,
        }),
        None => Err(TierError::Fenced {
            path: path.to_string(),
            ours: next.epoch,
            theirs: next.epoch,
        }),
    }
}

/// Takes ownership of a partition: commits a version whose epoch is above
/// every earlier one. Returns the committed manifest.
pub async fn claim(remote: &Remote, stream_id: u32, partition: u32) -> Result<Manifest, TierError> {
    let current = load(remote, stream_id, partition)
        .await?
        .unwrap_or_else(|| Manifest::empty(stream_id, partition));
    let mut next = current.clone();
    next.epoch = current.epoch + 1;
    commit(remote, &current, next).await
}

/// Deletes manifest versions older than the newest `keep`.
pub async fn prune_versions(remote: &Remote, current: &Manifest, keep: u64) -> Result<usize, TierError> {
    let dir = format!("{}/manifest", partition_dir(current.stream_id, current.partition));
    let floor = current.version.saturating_sub(keep);
    let mut deleted = 0;
    for m in remote.list(&dir).await? {
        let v = m
            .location
            .filename()
            .and_then(|f| f.strip_suffix(".json")?.parse::<u64>().ok());
        if v.is_some_and(|v| v < floor) {
            remote.delete(&m.location).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}
