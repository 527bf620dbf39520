//! The log's side of tiering: what the uploader may read, what it reports
//! back, and trimming the WAL once data is in the object store.
//!
//! Invariants:
//! * the WAL is trimmed only below the first batch of any partition that a
//!   committed manifest does not cover, and only below entries whose
//!   completions have run (so no in-flight entry is cut);
//! * before a trim the metadata snapshot is stored with every partition's
//!   start and floor and every pipeline position, so a restart knows what
//!   the trimmed entries said.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::error::LogError;
use super::meta::{self, Retention};
use super::partition::{BatchRef, Partition};
use super::{Log, Stream};
use crate::wal::WalError;

/// One batch read back from the object store.
#[derive(Debug, Clone)]
pub struct ColdBatch {
    pub base_offset: u64,
    pub count: u32,
    pub payload: Bytes,
}

impl ColdBatch {
    pub fn end(&self) -> u64 {
        self.base_offset + self.count as u64
    }
}

/// What one cold read found.
#[derive(Debug, Clone, Default)]
pub struct ColdRead {
    /// Batches at or after the offset asked for, in offset order.
    pub batches: Vec<ColdBatch>,
    /// Offsets below this were covered: a compacted range may hold fewer
    /// records than offsets, or none at all, and the reader moves on from here.
    pub covered_until: u64,
}

/// Serves offsets that are no longer in the WAL.
#[async_trait::async_trait]
pub trait ColdStore: Send + Sync {
    /// Batches covering `offset` onwards (below `until`), about `max_bytes`
    /// of them, and how far that covers (beyond `offset` unless it fails).
    /// Errors are described for the reader.
    async fn read(
        &self,
        stream_id: u32,
        partition: u32,
        offset: u64,
        until: u64,
        max_bytes: usize,
    ) -> Result<ColdRead, String>;
}

/// A partition as the uploader sees it.
#[derive(Clone)]
pub struct TierPartition {
    pub stream: String,
    pub stream_id: u32,
    pub partition: u32,
    pub retention: Retention,
    pub compaction: Option<meta::Compaction>,
    pub state: Arc<Partition>,
}

impl Log {
    /// Attaches the object store reader (once).
    pub fn set_cold_store(&self, cold: Arc<dyn ColdStore>) {
        let _ = self.cold.set(cold);
    }

    /// Every partition of every stream.
    pub fn tier_partitions(&self) -> Vec<TierPartition> {
        self.tier_partitions_where(|_, _| true)
    }

    /// The partitions of one stream (none if there is no such stream).
    pub fn stream_tier_partitions(&self, name: &str) -> Vec<TierPartition> {
        let Some(s) = self.read_streams().get(name).cloned() else {
            return Vec::new();
        };
        (0..s.partitions.len() as u32)
            .filter_map(|i| tier_partition(&s, i))
            .collect()
    }

    /// The partitions of the streams `keep` selects by their retention and
    /// compaction policy.
    pub fn tier_partitions_where(
        &self,
        keep: impl Fn(&Retention, Option<&meta::Compaction>) -> bool,
    ) -> Vec<TierPartition> {
        let streams: Vec<Arc<Stream>> = self
            .read_streams()
            .values()
            .filter(|s| keep(&s.meta.retention, s.meta.compaction.as_ref()))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for s in streams {
            out.extend((0..s.partitions.len() as u32).filter_map(|i| tier_partition(&s, i)));
        }
        out
    }

    /// The partitions named by `keys` (stream id, partition) that still
    /// exist, in one pass over the streams.
    pub fn tier_partitions_of(&self, keys: &HashSet<(u32, u32)>) -> Vec<TierPartition> {
        if keys.is_empty() {
            return Vec::new();
        }
        let mut by_stream: HashMap<u32, Vec<u32>> = HashMap::new();
        for &(id, partition) in keys {
            by_stream.entry(id).or_default().push(partition);
        }
        let streams: Vec<Arc<Stream>> = self
            .read_streams()
            .values()
            .filter(|s| by_stream.contains_key(&s.meta.id))
            .cloned()
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for s in streams {
            if let Some(parts) = by_stream.get_mut(&s.meta.id) {
                parts.sort_unstable();
                out.extend(parts.iter().filter_map(|&i| tier_partition(&s, i)));
            }
        }
        out
    }

    /// Takes the partitions (stream id, partition) that indexed a durable
    /// batch since the last call: what the uploader has new work in.
    pub fn take_touched(&self) -> HashSet<(u32, u32)> {
        self.touched.take()
    }

    /// The partitions that took a durable batch since the last
    /// [`Log::take_touched`], leaving them for it.
    pub fn touched_keys(&self) -> HashSet<(u32, u32)> {
        self.touched.keys()
    }

    /// One partition, by stream id.
    pub fn tier_partition(&self, stream_id: u32, partition: u32) -> Option<TierPartition> {
        let s = self.read_streams().values().find(|s| s.meta.id == stream_id).cloned()?;
        tier_partition(&s, partition)
    }

    /// Deleted streams whose objects have not been deleted yet.
    pub async fn streams_to_purge(&self) -> Vec<u32> {
        self.admin.lock().await.purge.clone()
    }

    /// Records that a deleted stream's objects are gone.
    pub async fn purged(&self, id: u32) -> Result<(), LogError> {
        let mut snap = self.admin.lock().await;
        if !snap.purge.contains(&id) {
            return Ok(());
        }
        let mut next = snap.clone();
        next.purge.retain(|p| *p != id);
        meta::store_snapshot(&self.data_dir, &next)?;
        *snap = next;
        Ok(())
    }

    /// The record payload of a WAL batch (from the cache or the WAL), without
    /// any progress trailer. Blocking on a cache miss.
    pub fn batch_payload(&self, stream_id: u32, partition: u32, b: &BatchRef) -> Result<Bytes, WalError> {
        load_payload(&self.cache, &self.wal, stream_id, partition, b)
    }

    /// Trims the WAL below everything that is in the object store. Returns
    /// the trim point in force.
    pub async fn trim_tiered(&self) -> Result<u64, LogError> {
        // Holding the metadata lock keeps control entries out while the
        // snapshot is taken, so it reflects every entry below the trim.
        let mut snap = self.admin.lock().await;
        let parts = self.tier_partitions();
        let mut trim = self.indexed_lsn.load(Ordering::Acquire);
        for p in &parts {
            if let Some(lsn) = p.state.trim_bound() {
                trim = trim.min(lsn);
            }
        }
        if trim <= self.wal.trim_lsn() {
            return Ok(self.wal.trim_lsn());
        }
        // Partitions lose their WAL batches below `trim`; record where each
        // now starts before the WAL forgets.
        let mut next = snap.clone();
        next.marks.clear();
        for p in &parts {
            let mut mark = p.state.mark();
            mark.floor = first_base_at_or_after(&p.state, trim);
            let marks = next.marks.entry(p.stream_id).or_default();
            if marks.len() <= p.partition as usize {
                marks.resize(p.partition as usize + 1, meta::PartitionMark::default());
            }
            marks[p.partition as usize] = mark;
        }
        for (pipeline, partition, offset) in self.progress.all() {
            next.set_progress(pipeline, partition, offset);
        }
        next.producers = self.producers.to_snapshot(|id| next.streams.contains_key(&id));
        meta::store_snapshot(&self.data_dir, &next)?;
        // An object-store WAL keeps this snapshot with the trim point: a
        // node restarted with an empty data dir needs what the trim removes.
        let checkpoint = if self.wal.is_object() {
            Some(Bytes::from(
                serde_json::to_vec(&next).map_err(|e| LogError::InvalidBatch(e.to_string()))?,
            ))
        } else {
            None
        };
        *snap = next;
        // Readers must plan these batches as cold before the WAL deletes
        // their segments: a read that planned earlier and finds a segment
        // gone re-plans, and then has to find them in the object store.
        for p in &parts {
            p.state.prune(trim);
        }
        Ok(self.wal.trim_with(trim, checkpoint).await?)
    }
}

/// Base offset of the partition's first batch at or after `lsn`, or its end.
fn first_base_at_or_after(p: &Partition, lsn: u64) -> u64 {
    let st = p.lock();
    let i = st.batches.partition_point(|b| b.lsn < lsn);
    st.batches.get(i).map_or(st.end_offset, |b| b.base_offset)
}

/// A batch's record bytes: from the cache, else read from the WAL without
/// its trailer. Blocking.
pub(crate) fn load_payload(
    cache: &super::cache::BatchCache,
    wal: &crate::wal::Wal,
    stream_id: u32,
    partition: u32,
    b: &BatchRef,
) -> Result<Bytes, WalError> {
    if let Some(p) = cache.get(&(stream_id, partition, b.base_offset)) {
        return Ok(p);
    }
    let p = wal.read(b.lsn, b.location)?;
    Ok(p.slice(..p.len().saturating_sub(b.trailer as usize)))
}

/// Partition `i` of stream `s` as the uploader sees it.
fn tier_partition(s: &Stream, i: u32) -> Option<TierPartition> {
    Some(TierPartition {
        stream: s.meta.name.clone(),
        stream_id: s.meta.id,
        partition: i,
        retention: s.meta.retention,
        compaction: s.meta.compaction.clone(),
        state: s.partitions.get(i as usize)?.clone(),
    })
}

/// Partitions (stream id, partition) that indexed a durable batch since
/// the uploader last took the set; one insert per batch completion.
#[derive(Debug, Default)]
pub(super) struct Touched(Mutex<HashSet<(u32, u32)>>);

impl Touched {
    pub(super) fn insert(&self, key: (u32, u32)) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
    }

    fn keys(&self) -> HashSet<(u32, u32)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn take(&self) -> HashSet<(u32, u32)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
