//! Retention and garbage collection of tiered data.
//!
//! Retention drops whole segments from the front of a partition (by their
//! age, while the partition holds more bytes than allowed, and those wholly
//! below its start once its records there were deleted) with one
//! manifest commit; the dropped objects go on the manifest's garbage list
//! and are deleted after `gc_grace`, so a reader that planned with the old
//! manifest can still finish. Objects of deleted streams are deleted too.
//! A periodic sweep deletes segment objects that no manifest names (an
//! upload whose manifest commit failed) once they are older than the grace
//! period, and old manifest versions.
//! Invariants: data is dropped only from the object store, never from the
//! WAL; the manifest commit comes before any delete.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::manifest::{self, Garbage, Manifest};
use super::{Tier, TierError};
use crate::fsutil::now_ms;
use crate::log::TierPartition;

/// Old manifest versions kept for inspection.
const KEEP_VERSIONS: u64 = 10;

impl Tier {
    /// Applies retention to the partitions of streams with a retention
    /// policy; with `full`, to every partition (garbage of streams without
    /// a policy, the periodic sweep).
    pub(super) async fn retention_round(&self, full: bool) {
        let deleted = std::mem::take(&mut *self.deleted.lock().unwrap_or_else(|p| p.into_inner()));
        let parts = if full {
            self.log.tier_partitions()
        } else {
            let mut parts = self
                .log
                .tier_partitions_where(|r, _| r.ms.is_some() || r.bytes.is_some());
            let known: std::collections::HashSet<(u32, u32)> =
                parts.iter().map(|p| (p.stream_id, p.partition)).collect();
            let rest = deleted.difference(&known).copied().collect();
            parts.extend(self.log.tier_partitions_of(&rest));
            parts
        };
        for p in parts {
            let key = (p.stream_id, p.partition);
            let (claimed, fenced) = self.with_part(key, |s| (s.claimed, s.fenced));
            let has_retention = p.retention.ms.is_some() || p.retention.bytes.is_some() || deleted.contains(&key);
            // Partitions this node writes are swept; ones with a retention
            // policy are claimed for it even when no new data arrives.
            if fenced || !(claimed || has_retention && p.state.range().end > 0) {
                continue;
            }
            if let Err(e) = self.apply_retention(&p).await {
                self.record_failure(&p, e);
            }
        }
        self.forget_deleted_streams().await;
    }

    /// Notes that `partition`'s records were deleted below some offset: the
    /// next retention round drops its segments wholly below it.
    pub fn records_deleted(&self, stream_id: u32, partition: u32) {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((stream_id, partition));
        self.wake();
    }

    /// Drops expired segments and deletes garbage past its grace period.
    pub(super) async fn apply_retention(&self, p: &TierPartition) -> Result<(), TierError> {
        let current = self.manifest(p, true).await?;
        let now = now_ms();
        let grace = self.opts.gc_grace.as_millis() as u64;
        let mut next: Manifest = (*current).clone();
        let mut total: u64 = next.bytes();
        let mut drop = 0;
        // Records below the partition's start were deleted (DeleteRecords).
        let start = p.state.range().start;
        for s in &next.segments {
            let expired = p.retention.ms.is_some_and(|ms| now.saturating_sub(s.created_ms) > ms);
            let oversize = p.retention.bytes.is_some_and(|b| total > b);
            let deleted = s.end_offset <= start;
            if !expired && !oversize && !deleted {
                break;
            }
            total = total.saturating_sub(s.size);
            drop += 1;
        }
        for s in next.segments.drain(..drop) {
            next.garbage.push(Garbage {
                key: s.key,
                since_ms: now,
            });
        }
        next.start_offset = next.segments.first().map_or(next.end_offset, |s| s.base_offset);
        // Only garbage the committed manifest already lists may go now:
        // what this round drops stays named by the live manifest until the
        // commit below lands (with no grace period it goes next round).
        let due: Vec<Garbage> = current
            .garbage
            .iter()
            .filter(|g| now.saturating_sub(g.since_ms) >= grace)
            .cloned()
            .collect();
        for g in &due {
            let path = self
                .remote
                .path(&manifest::segment_rel(p.stream_id, p.partition, &g.key));
            self.remote.delete(&path).await?;
        }
        next.garbage.retain(|g| !due.contains(g));
        if next == *current {
            return self.sweep(p, &current).await;
        }
        if drop > 0 {
            tracing::info!(
                stream = %p.stream, partition = p.partition, segments = drop, start = next.start_offset,
                "retention dropped segments"
            );
        }
        let committed = manifest::commit(&self.remote, &current, next).await?;
        let committed: Arc<Manifest> = self.set_manifest(p, committed);
        self.sweep(p, &committed).await
    }

    /// Deletes unreferenced segment objects past the grace period and old
    /// manifest versions; runs at most once per grace period (1 s..10 min).
    async fn sweep(&self, p: &TierPartition, current: &Manifest) -> Result<(), TierError> {
        let every = self
            .opts
            .gc_grace
            .clamp(Duration::from_secs(1), Duration::from_secs(600));
        let key = (p.stream_id, p.partition);
        if self.with_part(key, |s| s.last_sweep.is_some_and(|t| t.elapsed() < every)) {
            return Ok(());
        }
        let dir = format!("{}/segments", manifest::partition_dir(p.stream_id, p.partition));
        let cutoff_ms = now_ms().saturating_sub(self.opts.gc_grace.as_millis() as u64);
        let mut deleted = 0;
        for m in self.remote.list(&dir).await? {
            let Some(name) = m.location.filename() else { continue };
            let named = current.segments.iter().any(|s| s.key == name) || current.garbage.iter().any(|g| g.key == name);
            let modified_ms = u64::try_from(m.last_modified.timestamp_millis()).unwrap_or(0);
            if !named && modified_ms <= cutoff_ms {
                self.remote.delete(&m.location).await?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::info!(stream = %p.stream, partition = p.partition, deleted, "unreferenced segment objects deleted");
        }
        manifest::prune_versions(&self.remote, current, KEEP_VERSIONS).await?;
        self.with_part(key, |s| s.last_sweep = Some(Instant::now()));
        Ok(())
    }

    /// Deletes the objects of deleted streams (the list survives restarts
    /// in the metadata snapshot).
    async fn forget_deleted_streams(&self) {
        for id in self.log.streams_to_purge().await {
            let dir = format!("streams/{id:010}");
            let result = async {
                for m in self.remote.list(&dir).await? {
                    self.remote.delete(&m.location).await?;
                }
                Ok::<_, TierError>(())
            }
            .await;
            match result {
                Ok(()) => {
                    self.lock_parts().retain(|(sid, _), _| *sid != id);
                    match self.log.purged(id).await {
                        Ok(()) => tracing::info!(stream_id = id, "objects of a deleted stream removed"),
                        Err(e) => tracing::warn!(stream_id = id, error = %e, "recording a purge failed"),
                    }
                }
                Err(e) => tracing::warn!(stream_id = id, error = %e, "removing a deleted stream's objects failed"),
            }
        }
    }
}
