//! Compaction runs over a partition's tiered segments, inside the tier's
//! task (so manifest commits never race the uploader's).
//!
//! A run: pass 1 reads the dirty segments (from the checkpoint on, older
//! than `min_compaction_lag`), asks the policy plugin for decisions, and
//! fills a bounded key map, stopping where it is full; pass 2 rewrites every
//! segment below that point keeping what `compaction::decide::keep` says,
//! each output object written and completed (or aborted) before the next;
//! one manifest commit swaps the segments and moves the checkpoint. The old
//! objects go to garbage (deleted after `gc_grace`). Invariants: nothing is
//! committed unless the whole run succeeded, so a failure (store, plugin
//! trap or timeout) leaves the data as it was; offsets never change.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::manifest::{self, Garbage, SegmentMeta};
use super::segment::{IndexEntry, SegmentWriter};
use super::{Tier, TierError};
use crate::compaction::decide::{fill, keep};
use crate::compaction::keymap::KeyMap;
use crate::fsutil::now_ms;
use crate::log::meta::Compaction;
use crate::log::{OffsetRecord, TierPartition, record};
use crate::plugin::{CompactionInstance, Decision};

/// Records decided per plugin call (small in tests, to cross batch and
/// segment boundaries).
const DECIDE_BATCH: usize = if cfg!(test) { 7 } else { 1000 };

/// The checkpoint kept in the manifest's `compaction` field.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// Offsets below this were compacted at least once.
    cleaned_end: u64,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunResult {
    pub finished_ms: u64,
    /// The checkpoint after the run.
    pub cleaned_end: u64,
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Distinct keys in pass 1's map.
    pub keys: u64,
}

/// A partition's compaction, as `GET /streams/{name}/compaction` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactionStatus {
    pub running: bool,
    pub runs: u64,
    pub last_result: Option<RunResult>,
    pub last_error: Option<String>,
}

impl Tier {
    /// Where compaction plugins are found (set once by the host).
    pub fn set_plugins(&self, plugins: Arc<crate::plugin::Registry>) {
        let _ = self.plugins.set(plugins);
    }

    /// Asks for a compaction of every partition of a stream at the next
    /// round, whatever its dirty ratio.
    pub fn request_compaction(&self, stream_id: u32) {
        self.compact_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream_id);
        self.wake();
    }

    pub fn compaction_status(&self, stream_id: u32, partition: u32) -> CompactionStatus {
        self.with_part((stream_id, partition), |s| s.compaction.clone())
    }

    /// Runs compaction where it is due; called from the tier's task.
    pub(super) async fn compaction_round(&self) {
        let requested: Vec<u32> = self
            .compact_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for p in self.log.tier_partitions() {
            let Some(cfg) = p.compaction.clone() else { continue };
            let forced = requested.contains(&p.stream_id);
            let key = (p.stream_id, p.partition);
            if self.with_part(key, |s| s.fenced) {
                continue;
            }
            self.with_part(key, |s| s.compaction.running = true);
            let result = self.compact_partition(&p, &cfg, forced).await;
            self.with_part(key, |s| {
                let c = &mut s.compaction;
                c.running = false;
                match &result {
                    Ok(Some(r)) => {
                        c.runs += 1;
                        c.last_result = Some(r.clone());
                        c.last_error = None;
                    }
                    Ok(None) => {}
                    Err(e) => c.last_error = Some(e.clone()),
                }
            });
            if let Err(e) = result {
                tracing::warn!(stream = %p.stream, partition = p.partition, error = %e, "compaction failed");
            }
        }
    }

    /// One run; `None` when nothing was due.
    async fn compact_partition(
        &self,
        p: &TierPartition,
        cfg: &Compaction,
        forced: bool,
    ) -> Result<Option<RunResult>, String> {
        let current = self.manifest(p, true).await.map_err(|e| e.to_string())?;
        let cp: Checkpoint = current
            .compaction
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let now = now_ms();
        let ripe = |s: &SegmentMeta| now.saturating_sub(s.created_ms) >= cfg.min_compaction_lag_ms;
        let dirty: Vec<SegmentMeta> = current
            .segments
            .iter()
            .filter(|s| s.end_offset > cp.cleaned_end && ripe(s))
            .cloned()
            .collect();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
        let total = current.bytes().max(1);
        let ratio_ppm = (dirty_bytes as u128 * 1_000_000 / total as u128) as u32;
        if dirty.is_empty() || (!forced && ratio_ppm < cfg.min_cleanable_dirty_ppm) {
            return Ok(None);
        }
        let plugins = self.plugins.get().ok_or("no plugin registry attached")?.clone();
        let (name, version, config) = (cfg.plugin.clone(), cfg.plugin_version, cfg.config.clone());
        let inst = tokio::task::spawn_blocking(move || {
            plugins
                .compaction(&name, version)
                .map_err(|e| e.to_string())?
                .instantiate(&config)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let mut run = Run {
            inst: Some(inst),
            result: RunResult::default(),
        };
        // Pass 1.
        let mut map = KeyMap::with_memory(cfg.memory_bytes);
        let mut stop = dirty.last().map_or(cp.cleaned_end, |s| s.end_offset);
        'pass1: for seg in &dirty {
            let mut c = self.cursor(p, seg).await?;
            while let Some((records, decisions)) = self.next_decided(p, &mut c, &mut run).await? {
                let it = records
                    .iter()
                    .zip(&decisions)
                    .filter(|(r, _)| r.offset >= cp.cleaned_end);
                if let Some(full_at) = fill(&mut map, it.map(|(r, d)| (r.offset, d))) {
                    stop = full_at;
                    break 'pass1;
                }
            }
        }
        // Pass 2: rewrite every segment that starts below the stop, one
        // object at a time, each completed (or aborted) before the next.
        let mut next = (*current).clone();
        let mut replaced = Vec::new();
        for (i, seg) in current.segments.iter().enumerate() {
            if seg.base_offset >= stop {
                break;
            }
            let expired = now.saturating_sub(seg.created_ms) > cfg.delete_retention_ms;
            let mut out = self.compacted_writer(p, seg, current.version + 1);
            let mut c = self.cursor(p, seg).await?;
            let written: Result<(), String> = async {
                while let Some((records, decisions)) = self.next_decided(p, &mut c, &mut run).await? {
                    run.result.records_in += records.len() as u64;
                    for (r, d) in records.into_iter().zip(decisions) {
                        if r.offset >= stop || keep(&map, r.offset, &d, expired) {
                            run.result.records_out += 1;
                            out.push(r).await?;
                        }
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = written {
                out.abort().await;
                return Err(e);
            }
            let new = out.finish().await?;
            run.result.bytes_in += seg.size;
            run.result.bytes_out += new.size;
            replaced.push(seg.key.clone());
            next.segments[i] = new;
        }
        next.compaction = serde_json::to_value(Checkpoint { cleaned_end: stop }).ok();
        next.garbage.extend(replaced.iter().map(|k| Garbage {
            key: k.clone(),
            since_ms: now,
        }));
        let committed = manifest::commit(&self.remote, &current, next)
            .await
            .map_err(|e| e.to_string())?;
        self.set_manifest(p, committed);
        // Cached batches of the replaced segments are stale now.
        self.cold_cache
            .remove_where(|k| k.0 == p.stream_id && k.1 == p.partition && k.2 < stop);
        run.result.cleaned_end = stop;
        run.result.keys = map.len() as u64;
        run.result.finished_ms = now_ms();
        tracing::info!(
            stream = %p.stream, partition = p.partition, records_in = run.result.records_in,
            records_out = run.result.records_out, cleaned_end = stop, "compaction run done"
        );
        Ok(Some(run.result))
    }

    /// The next batch of a segment's records (at most `DECIDE_BATCH`) with
    /// the plugin's decisions; `None` at the segment's end. Holds at most one
    /// fetch group (4 MiB) plus one decision batch in memory.
    async fn next_decided(
        &self,
        p: &TierPartition,
        c: &mut Cursor,
        run: &mut Run,
    ) -> Result<Option<(Vec<OffsetRecord>, Vec<Decision>)>, String> {
        while c.pending.len() < DECIDE_BATCH && c.next < c.index.len() {
            let mut group = Vec::new();
            let mut bytes = 0u64;
            while c.next < c.index.len() && (group.is_empty() || bytes < FETCH_GROUP_BYTES) {
                let e = c.index[c.next];
                bytes += e.len as u64;
                group.push(e);
                c.next += 1;
            }
            for b in self.fetch(p, &c.seg, &group).await.map_err(|e| e.to_string())? {
                let recs = record::decode_batch(&b.payload, b.base_offset, b.count).map_err(|e| e.to_string())?;
                c.pending.extend(recs);
            }
        }
        if c.pending.is_empty() {
            return Ok(None);
        }
        let rest = c.pending.split_off(c.pending.len().min(DECIDE_BATCH));
        let batch = std::mem::replace(&mut c.pending, rest);
        let batch: Vec<OffsetRecord> = batch.into_iter().collect();
        let decisions = run.decide(&batch).await?;
        Ok(Some((batch, decisions)))
    }

    async fn cursor(&self, p: &TierPartition, seg: &SegmentMeta) -> Result<Cursor, String> {
        Ok(Cursor {
            index: self.segment_index(p, seg).await.map_err(|e| e.to_string())?,
            seg: seg.clone(),
            next: 0,
            pending: std::collections::VecDeque::new(),
        })
    }

    /// Starts the compacted copy of `seg`.
    fn compacted_writer(&self, p: &TierPartition, seg: &SegmentMeta, version: u64) -> CompactedWriter {
        let name = format!("{:020}-{:020}-c{version}.seg", seg.base_offset, seg.end_offset);
        let rel = manifest::segment_rel(p.stream_id, p.partition, &name);
        CompactedWriter {
            upload: self.remote.upload(self.remote.path(&rel)),
            writer: SegmentWriter::with_gaps(seg.base_offset),
            run: Vec::new(),
            run_bytes: 0,
            seg: seg.clone(),
            name,
        }
    }
}

/// Bytes of batches fetched with one range GET while compacting.
const FETCH_GROUP_BYTES: u64 = 4 * 1024 * 1024;
/// Largest batch the compacted copy writes (small in tests).
const OUT_BATCH_BYTES: usize = if cfg!(test) { 64 } else { 1024 * 1024 };

/// A position in one segment's batches.
struct Cursor {
    seg: SegmentMeta,
    index: Arc<Vec<IndexEntry>>,
    next: usize,
    pending: std::collections::VecDeque<OffsetRecord>,
}

/// Writes the kept records of one segment, streaming: consecutive offsets
/// form a batch (at most `OUT_BATCH_BYTES`), a gap starts a new one.
struct CompactedWriter {
    upload: super::store::Upload,
    writer: SegmentWriter,
    run: Vec<OffsetRecord>,
    run_bytes: usize,
    seg: SegmentMeta,
    name: String,
}

impl CompactedWriter {
    async fn push(&mut self, r: OffsetRecord) -> Result<(), String> {
        let follows = self.run.last().is_some_and(|l| l.offset + 1 == r.offset);
        if !self.run.is_empty() && (!follows || self.run_bytes >= OUT_BATCH_BYTES) {
            self.flush().await?;
        }
        self.run_bytes += r.record.size();
        self.run.push(r);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), String> {
        let Some(first) = self.run.first().map(|r| r.offset) else {
            return Ok(());
        };
        let recs: Vec<_> = self.run.drain(..).map(|r| r.record).collect();
        self.run_bytes = 0;
        let payload = record::encode_batch(&recs)?;
        let bytes = self.writer.push(first, recs.len() as u32, &payload)?;
        self.upload.write(&bytes).await.map_err(|e| e.to_string())
    }

    async fn finish(mut self) -> Result<SegmentMeta, String> {
        self.flush().await?;
        let (tail, footer) = self.writer.finish_at(self.seg.end_offset);
        self.upload.write(&tail).await.map_err(|e| e.to_string())?;
        let size = self.upload.finish().await.map_err(|e: TierError| e.to_string())?;
        Ok(SegmentMeta {
            key: self.name,
            size,
            index_pos: footer.index_pos,
            ..self.seg
        })
    }

    async fn abort(mut self) {
        self.upload.abort().await;
    }
}

/// The plugin instance of one run (moved to a blocking thread per call).
struct Run {
    inst: Option<CompactionInstance>,
    result: RunResult,
}

impl Run {
    async fn decide(&mut self, records: &[OffsetRecord]) -> Result<Vec<Decision>, String> {
        let mut inst = self.inst.take().ok_or("the plugin instance was lost")?;
        let batch = records.to_vec();
        let (inst, r) = tokio::task::spawn_blocking(move || {
            let r = inst.decide(&batch);
            (inst, r)
        })
        .await
        .map_err(|e| e.to_string())?;
        self.inst = Some(inst);
        r.map_err(|e| e.to_string())
    }
}
