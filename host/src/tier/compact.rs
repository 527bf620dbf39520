//! Compaction runs over a partition's tiered segments, inside the tier's
//! task (so manifest commits never race the uploader's).
//!
//! A run: pass 1 reads the dirty segments (from the checkpoint on, older
//! than `min_compaction_lag`), asks the policy plugin for decisions, and
//! fills a bounded key map, stopping where it is full (`stop`); pass 2
//! rewrites every segment below `stop` keeping what
//! `compaction::decide::keep` says, each output object completed (or
//! aborted) before the next. Every `CHECKPOINT_BYTES` of rewritten input, a
//! manifest commit swaps the segments done so far and records how far the
//! run got (`resume`), so a run cut short by a crash or a store error
//! resumes there instead of starting over; the last commit moves
//! `cleaned_end` to `stop`. Replaced objects go to garbage (deleted after
//! `gc_grace`, so readers that planned with an older manifest finish).
//!
//! Invariants: a commit only ever drops records that are superseded by a
//! newer record of the same key below `stop` (or expired tombstones and
//! the older records of their key), all still present, so every committed
//! state is readable and complete; a plugin trap or a store error fails the
//! run with nothing further committed; offsets never change.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Tier;
use super::compact_io::Decider;
use super::manifest::{self, Garbage, Manifest, SegmentMeta};
use crate::compaction::decide::{fill, keep};
use crate::compaction::keymap::KeyMap;
use crate::fsutil::now_ms;
use crate::log::TierPartition;
use crate::log::meta::Compaction;

/// Input bytes rewritten between two checkpoint commits (small in tests).
const CHECKPOINT_BYTES: u64 = if cfg!(test) { 1 } else { 256 * 1024 * 1024 };

/// The checkpoint kept in the manifest's `compaction` field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    /// Offsets below this were compacted at least once.
    cleaned_end: u64,
    /// A run that committed part of its rewrite and has yet to finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resume: Option<Resume>,
}

impl Checkpoint {
    /// The checkpoint a manifest holds (none yet: nothing is clean).
    fn of(m: &Manifest) -> Checkpoint {
        m.compaction
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Resume {
    /// The run's `stop`: it compacts offsets below this.
    stop: u64,
    /// Segments ending at or below this are already rewritten.
    rewritten_until: u64,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = CompactionRunResult)]
pub struct RunResult {
    pub finished_ms: u64,
    /// The checkpoint after the run.
    pub cleaned_end: u64,
    /// Where the run picked up an interrupted run's rewrite (`None`: it
    /// started afresh).
    pub resumed_from: Option<u64>,
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Distinct keys in pass 1's map.
    pub keys: u64,
    /// Manifest commits the run made (checkpoints and the final one).
    pub commits: u64,
}

/// How far the running pass has got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = CompactionProgress)]
pub struct Progress {
    /// `scan` (pass 1: deciding keys) or `rewrite` (pass 2).
    pub phase: &'static str,
    /// The offset the pass has reached.
    pub offset: u64,
    /// The offset the pass ends at (pass 1: the dirty end; pass 2: `stop`).
    pub until: u64,
}

/// A partition's compaction, as `GET /streams/{name}/compaction` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CompactionStatus {
    /// The committed checkpoint: offsets below it were compacted at least
    /// once (from the manifest, so it survives restarts; `None` until the
    /// manifest has been read).
    pub cleaned_end: Option<u64>,
    pub running: bool,
    pub progress: Option<Progress>,
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

    pub(super) fn compaction_requested(&self) -> bool {
        !self
            .compact_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    pub fn compaction_status(&self, stream_id: u32, partition: u32) -> CompactionStatus {
        self.with_part((stream_id, partition), |s| {
            let cleaned_end = s.manifest.as_deref().map(|m| Checkpoint::of(m).cleaned_end);
            CompactionStatus {
                cleaned_end,
                ..s.compaction.clone()
            }
        })
    }

    /// Runs compaction where it is due; called from the tier's task.
    pub(super) async fn compaction_round(&self) {
        let requested: Vec<u32> = self
            .compact_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for p in self.log.tier_partitions_where(|_, c| c.is_some()) {
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
                c.progress = None;
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
            match &result {
                Ok(Some(_)) => crate::metrics::add(&p.stream, crate::metrics::StreamCounter::CompactionRuns, 1),
                Ok(None) => {}
                Err(_) => crate::metrics::add(&p.stream, crate::metrics::StreamCounter::CompactionErrors, 1),
            }
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
        let cp = Checkpoint::of(&current);
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
        let due = forced || cp.resume.is_some() || ratio_ppm >= cfg.min_cleanable_dirty_ppm;
        if dirty.is_empty() || !due {
            return Ok(None);
        }
        let mut decider = self.decider(cfg).await?;
        let mut result = RunResult::default();
        let (map, stop) = self.scan(p, cfg, &dirty, cp, &mut decider).await?;
        if stop <= cp.cleaned_end {
            return Err(format!(
                "the key map ({} bytes) cannot hold the keys of one decision batch",
                cfg.memory_bytes
            ));
        }
        // Resume an interrupted rewrite only if it compacts the same range
        // (the map can only cover as much or more after a partial rewrite).
        let resume_at = match cp.resume {
            Some(r) if r.stop == stop => {
                result.resumed_from = Some(r.rewritten_until);
                r.rewritten_until
            }
            _ => 0,
        };
        let mut current = current;
        let mut next = (*current).clone();
        let mut replaced: Vec<String> = Vec::new();
        let mut since_commit = 0u64;
        for i in 0..current.segments.len() {
            let seg = current.segments[i].clone();
            if seg.base_offset >= stop {
                break;
            }
            if seg.end_offset <= resume_at {
                continue;
            }
            let expired = now.saturating_sub(seg.created_ms) > cfg.delete_retention_ms;
            let mut out = self.compacted_writer(p, &seg, current.version + 1);
            let mut c = self.cursor(p, &seg).await?;
            let written: Result<(), String> = async {
                while let Some((records, decisions)) = self.next_decided(p, &mut c, &mut decider).await? {
                    result.records_in += records.len() as u64;
                    if let Some(last) = records.last() {
                        self.progress(p, "rewrite", last.offset + 1, stop);
                    }
                    for (r, d) in records.into_iter().zip(decisions) {
                        if r.offset >= stop || keep(&map, r.offset, &d, expired) {
                            result.records_out += 1;
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
            result.bytes_in += seg.size;
            result.bytes_out += new.size;
            since_commit += seg.size;
            replaced.push(seg.key.clone());
            next.segments[i] = new;
            let last = current.segments.get(i + 1).is_none_or(|s| s.base_offset >= stop);
            if since_commit >= CHECKPOINT_BYTES && !last {
                let resume = Resume {
                    stop,
                    rewritten_until: seg.end_offset,
                };
                let cp = Checkpoint {
                    cleaned_end: cp.cleaned_end,
                    resume: Some(resume),
                };
                current = self.commit_rewrite(p, &current, next, cp, &mut replaced, now).await?;
                next = (*current).clone();
                result.commits += 1;
                since_commit = 0;
            }
        }
        let done = Checkpoint {
            cleaned_end: stop,
            resume: None,
        };
        self.commit_rewrite(p, &current, next, done, &mut replaced, now).await?;
        result.commits += 1;
        result.cleaned_end = stop;
        result.keys = map.len() as u64;
        result.finished_ms = now_ms();
        if dirty.last().is_some_and(|s| s.end_offset > stop) {
            // The map filled up: the rest is for the next round, at once.
            self.request_compaction(p.stream_id);
        }
        tracing::info!(
            stream = %p.stream, partition = p.partition, records_in = result.records_in,
            records_out = result.records_out, cleaned_end = stop, "compaction run done"
        );
        Ok(Some(result))
    }

    /// A fresh instance of the stream's policy plugin.
    async fn decider(&self, cfg: &Compaction) -> Result<Decider, String> {
        if cfg.is_record_key() {
            return Ok(Decider::RecordKey {
                empty_is_tombstone: cfg.empty_is_tombstone(),
            });
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
        Ok(Decider::new(inst))
    }

    /// Pass 1: the latest offset per key over the dirty records, and the
    /// offset the map covers up to (`stop`; the dirty end if all fit, never
    /// past an interrupted run's stop).
    async fn scan(
        &self,
        p: &TierPartition,
        cfg: &Compaction,
        dirty: &[SegmentMeta],
        cp: Checkpoint,
        decider: &mut Decider,
    ) -> Result<(KeyMap, u64), String> {
        // A stream created before the node's cap was lowered still gets
        // no more than the cap; a refused allocation fails this run only.
        let memory = cfg.memory_bytes.min(self.opts.max_compaction_memory_bytes);
        let mut map = KeyMap::try_with_memory(crate::compaction::map_bytes(memory))?;
        let dirty_end = dirty.last().map_or(cp.cleaned_end, |s| s.end_offset);
        let mut stop = cp.resume.map_or(dirty_end, |r| r.stop.min(dirty_end));
        for seg in dirty.iter().take_while(|s| s.base_offset < stop) {
            let mut c = self.cursor(p, seg).await?;
            while let Some((records, decisions)) = self.next_decided(p, &mut c, decider).await? {
                if let Some(last) = records.last() {
                    self.progress(p, "scan", last.offset + 1, stop);
                }
                let it = records
                    .iter()
                    .zip(&decisions)
                    .filter(|(r, _)| r.offset >= cp.cleaned_end && r.offset < stop);
                if let Some(full_at) = fill(&mut map, it.map(|(r, d)| (r.offset, d))) {
                    return Ok((map, full_at));
                }
            }
        }
        stop = stop.max(cp.cleaned_end);
        Ok((map, stop))
    }

    /// Commits a rewrite step: the new segments, the checkpoint, and the
    /// replaced objects as garbage; drops their cached batches.
    async fn commit_rewrite(
        &self,
        p: &TierPartition,
        current: &Manifest,
        mut next: Manifest,
        cp: Checkpoint,
        replaced: &mut Vec<String>,
        now: u64,
    ) -> Result<Arc<Manifest>, String> {
        next.compaction = serde_json::to_value(cp).ok();
        next.garbage.extend(replaced.iter().map(|k| Garbage {
            key: k.clone(),
            since_ms: now,
        }));
        let committed = manifest::commit(&self.remote, current, next)
            .await
            .map_err(|e| e.to_string())?;
        let committed = self.set_manifest(p, committed);
        let gone: std::collections::HashSet<String> = replaced.drain(..).collect();
        self.cold_cache
            .remove_where(|k| k.0 == p.stream_id && k.1 == p.partition && gone.contains(&*k.2));
        Ok(committed)
    }

    fn progress(&self, p: &TierPartition, phase: &'static str, offset: u64, until: u64) {
        self.with_part((p.stream_id, p.partition), |s| {
            s.compaction.progress = Some(Progress { phase, offset, until })
        });
    }
}
