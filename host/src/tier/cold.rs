//! Cold reads: serving offsets that live only in segment objects.
//!
//! A read finds the segment in the partition's manifest, fetches the
//! segment's index once (cached, bounded), then fetches just the needed
//! batches with one range GET and keeps them in a bounded batch cache.
//! Invariants: every byte read is CRC-checked (index and batches); memory is
//! bounded by `cold_cache_bytes` (batches) plus a quarter of it (indexes);
//! cached batches are keyed by the segment object they came from, so a batch
//! of a segment that compaction replaced can never be served with the new
//! segment's index (a reader that planned with the old manifest may still
//! fetch and cache it after the swap).

use std::sync::{Arc, Weak};

use super::manifest::{self, Manifest, SegmentMeta};
use super::segment::{self, IndexEntry};
use super::{Tier, TierError};
use crate::log::cache::FifoCache;
use crate::log::{ColdBatch, ColdRead, ColdStore, TierPartition};

/// Parsed segment indexes by segment key, bounded by their size.
pub type IndexCache = FifoCache<String, Arc<Vec<IndexEntry>>>;

/// (stream id, partition, segment object key, batch base offset).
pub type ColdKey = (u32, u32, Arc<str>, u64);

/// Batch payloads read from segment objects.
pub type ColdCache = FifoCache<ColdKey, bytes::Bytes>;

/// The log's handle on cold reads (weak, so the log does not keep the
/// tier alive).
pub(super) struct Cold(pub(super) Weak<Tier>);

#[async_trait::async_trait]
impl ColdStore for Cold {
    async fn read(
        &self,
        stream_id: u32,
        partition: u32,
        offset: u64,
        until: u64,
        max_bytes: usize,
    ) -> Result<ColdRead, String> {
        let tier = self.0.upgrade().ok_or("the tiering service has stopped")?;
        tier.read_cold(stream_id, partition, offset, until, max_bytes)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Tier {
    async fn read_cold(
        &self,
        stream_id: u32,
        partition: u32,
        offset: u64,
        until: u64,
        max_bytes: usize,
    ) -> Result<ColdRead, TierError> {
        let p = self
            .log
            .tier_partition(stream_id, partition)
            .ok_or_else(|| TierError::Config(format!("stream {stream_id} partition {partition} is gone")))?;
        let mut m = self.manifest(&p, false).await?;
        if m.find(offset).is_none() {
            // Our copy may be older than the store's (another round
            // uploaded since); look once more.
            m = self.reload_manifest(&p).await?;
        }
        let seg = m.find(offset).cloned().ok_or_else(|| TierError::Corrupt {
            path: manifest::partition_dir(stream_id, partition),
            reason: format!(
                "offset {offset} is in no segment ({}..{})",
                m.start_offset, m.end_offset
            ),
        })?;
        let index = self.segment_index(&p, &seg).await?;
        let first = index.partition_point(|e| e.end() <= offset);
        let mut out = Vec::new();
        let mut want: Vec<IndexEntry> = Vec::new();
        let mut bytes = 0usize;
        // How far this read covers: the segment's end if it runs out of
        // batches, else the end of the last batch taken.
        let mut covered = seg.end_offset.min(until);
        let seg_key: Arc<str> = Arc::from(seg.key.as_str());
        let cache_key = |base: u64| (stream_id, partition, seg_key.clone(), base);
        for e in &index[first..] {
            if e.base_offset >= until {
                break;
            }
            if (!out.is_empty() || !want.is_empty()) && bytes >= max_bytes {
                covered = e.base_offset;
                break;
            }
            bytes += e.len as usize;
            match self.cold_cache.get(&cache_key(e.base_offset)) {
                // A cached batch ends the run to fetch: fetch what came
                // before it, then take it.
                Some(payload) => {
                    out.extend(
                        self.fetch_cached(&p, &seg, &std::mem::take(&mut want), &cache_key)
                            .await?,
                    );
                    out.push(ColdBatch {
                        base_offset: e.base_offset,
                        count: e.count,
                        payload,
                    });
                }
                None => want.push(*e),
            }
        }
        out.extend(self.fetch_cached(&p, &seg, &want, &cache_key).await?);
        Ok(ColdRead {
            batches: out,
            covered_until: covered,
        })
    }

    async fn reload_manifest(&self, p: &TierPartition) -> Result<Arc<Manifest>, TierError> {
        let m = manifest::load(&self.remote, p.stream_id, p.partition)
            .await?
            .unwrap_or_else(|| Manifest::empty(p.stream_id, p.partition));
        // Never go back to an older version than one we hold.
        let held = self.with_part((p.stream_id, p.partition), |s| s.manifest.clone());
        match held {
            Some(h) if h.version >= m.version => Ok(h),
            _ => Ok(self.set_manifest(p, m)),
        }
    }

    pub(super) async fn segment_index(
        &self,
        p: &TierPartition,
        seg: &SegmentMeta,
    ) -> Result<Arc<Vec<IndexEntry>>, TierError> {
        let rel = manifest::segment_rel(p.stream_id, p.partition, &seg.key);
        if let Some(i) = self.index_cache.get(&rel) {
            return Ok(i);
        }
        let path = self.remote.path(&rel);
        let tail = self.remote.get_range(&path, seg.index_pos..seg.size).await?;
        let (footer, index) = segment::parse_tail(&tail).map_err(|reason| TierError::Corrupt {
            path: path.to_string(),
            reason,
        })?;
        if footer.first_offset != seg.base_offset || footer.end_offset != seg.end_offset {
            return Err(TierError::Corrupt {
                path: path.to_string(),
                reason: "footer disagrees with the manifest".into(),
            });
        }
        let index = Arc::new(index);
        self.index_cache.insert(rel, index.clone());
        Ok(index)
    }

    /// [`Tier::fetch`], keeping the batches in the cold cache.
    async fn fetch_cached(
        &self,
        p: &TierPartition,
        seg: &SegmentMeta,
        entries: &[IndexEntry],
        key: &impl Fn(u64) -> ColdKey,
    ) -> Result<Vec<ColdBatch>, TierError> {
        let batches = self.fetch(p, seg, entries).await?;
        for b in &batches {
            self.cold_cache.insert(key(b.base_offset), b.payload.clone());
        }
        Ok(batches)
    }

    /// Fetches consecutive batches with one range GET (not cached: a
    /// compaction scan must not push readers' batches out).
    pub(super) async fn fetch(
        &self,
        p: &TierPartition,
        seg: &SegmentMeta,
        entries: &[IndexEntry],
    ) -> Result<Vec<ColdBatch>, TierError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(Vec::new());
        };
        let path = self
            .remote
            .path(&manifest::segment_rel(p.stream_id, p.partition, &seg.key));
        let bytes = self.remote.get_range(&path, first.pos..last.byte_range().end).await?;
        let payloads = segment::split_batches(&bytes, entries).map_err(|reason| TierError::Corrupt {
            path: path.to_string(),
            reason,
        })?;
        Ok(entries
            .iter()
            .zip(payloads)
            .map(|(e, payload)| ColdBatch {
                base_offset: e.base_offset,
                count: e.count,
                payload,
            })
            .collect())
    }
}

/// A tiered segment's offsets and the largest timestamp in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSpan {
    pub base_offset: u64,
    pub end_offset: u64,
    /// At or above every record timestamp in `base_offset..end_offset`.
    pub max_timestamp_ms: u64,
}

impl Tier {
    /// The partition's tiered segments that end after `from`, in offset
    /// order, up to the first whose largest timestamp is not recorded
    /// (written before it was). Reads the manifest if this node has not yet.
    pub async fn time_spans(&self, stream_id: u32, partition: u32, from: u64) -> Result<Vec<TimeSpan>, TierError> {
        let Some(p) = self.log.tier_partition(stream_id, partition) else {
            return Ok(Vec::new());
        };
        let m = self.manifest(&p, false).await?;
        Ok(m.segments
            .iter()
            .filter(|s| s.end_offset > from)
            .map_while(|s| {
                Some(TimeSpan {
                    base_offset: s.base_offset,
                    end_offset: s.end_offset,
                    max_timestamp_ms: s.max_timestamp_ms?,
                })
            })
            .collect())
    }

    /// Where to start reading for the first record at or after
    /// `timestamp_ms`, given that none below `from` qualifies: the first
    /// batch at or after `from` in `from`'s segment whose largest timestamp
    /// is not older (from the segment's index, no batch read), or the
    /// segment's end if none is. `from` itself if it is not tiered.
    pub async fn time_start(
        &self,
        stream_id: u32,
        partition: u32,
        from: u64,
        timestamp_ms: u64,
    ) -> Result<u64, TierError> {
        let Some(p) = self.log.tier_partition(stream_id, partition) else {
            return Ok(from);
        };
        let m = self.manifest(&p, false).await?;
        let Some(seg) = m.find(from).cloned() else {
            return Ok(from);
        };
        let index = self.segment_index(&p, &seg).await?;
        let first = index.partition_point(|e| e.end() <= from);
        Ok(index[first..]
            .iter()
            .find(|e| e.max_timestamp_ms >= timestamp_ms)
            .map_or(seg.end_offset, |e| e.base_offset.max(from)))
    }
}
