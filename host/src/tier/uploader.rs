//! The background uploader: turns WAL batches into segment objects, commits
//! manifests, trims the WAL, and runs retention.
//!
//! One task visits partitions in turn and uploads at most one chunk
//! (≤ `upload_chunk_bytes`) per partition per round, then trims the WAL.
//! A round visits only the partitions that may have work: those that took
//! a durable batch since the last round (the log records them) and those
//! left with work by an earlier round (data waiting for `upload_interval`
//! or `upload_min_bytes`, a retry, an unknown manifest). Every partition is
//! visited at start-up and then once per `FULL_SCAN_EVERY`, as a safety
//! net; an idle partition costs nothing per tick.
//! A backlog of any size is therefore a sequence of bounded uploads, and the
//! node serves reads and appends from the WAL the whole time. A failing
//! partition records its error and is retried after an exponential backoff
//! (capped), without holding up the others; a fenced partition stops.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::manifest::{self, Manifest, SegmentMeta};
use super::plan;
use super::segment::{self, SegmentWriter};
use super::{PartState, Tier, TierError};
use crate::fsutil::now_ms;
use crate::log::TierPartition;

/// Longest wait before a failing partition is tried again.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// How often the backlog is reported in the log while it drains.
const BACKLOG_REPORT_EVERY: Duration = Duration::from_secs(5);
/// How often every partition is visited, whether or not it took data
/// (and retention runs over streams without a policy, for their garbage).
pub(super) const FULL_SCAN_EVERY: Duration = Duration::from_secs(60);

impl Tier {
    pub(super) async fn run(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let mut last_report = Instant::now() - BACKLOG_REPORT_EVERY;
        let mut last_retention = Instant::now();
        let mut last_scan: Option<Instant> = None;
        let mut last_full_retention = Instant::now();
        // The first round trims too: what an earlier run (or another node
        // on the same store) already tiered leaves the WAL index at once.
        let mut first = true;
        loop {
            if *stop.borrow() {
                return;
            }
            let full = last_scan.is_none_or(|t| t.elapsed() >= FULL_SCAN_EVERY);
            if full {
                last_scan = Some(Instant::now());
            }
            let uploaded = self.round(&stop, full).await;
            if uploaded > 0 || std::mem::take(&mut first) {
                if let Err(e) = self.log.trim_tiered().await {
                    tracing::warn!(error = %e, "WAL trim after upload failed");
                }
                if last_report.elapsed() >= BACKLOG_REPORT_EVERY {
                    let backlog = self.backlog_bytes();
                    if backlog > 0 {
                        tracing::info!(backlog_bytes = backlog, "tiering backlog draining");
                    }
                    last_report = Instant::now();
                }
                if *stop.borrow() {
                    return;
                }
                continue;
            }
            if last_retention.elapsed() >= self.opts.tick * 4 {
                let full = last_full_retention.elapsed() >= FULL_SCAN_EVERY;
                if full {
                    last_full_retention = Instant::now();
                }
                self.retention_round(full).await;
                self.compaction_round().await;
                last_retention = Instant::now();
            } else if self.compaction_requested() {
                // Asked for, or a run that filled its key map left the rest
                // of the partition for the next round: no need to wait.
                self.compaction_round().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.opts.tick) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Bytes in the WAL not yet in the object store, over all partitions.
    /// Only partitions the uploader keeps as active can hold any (and those
    /// that took data since its last round); [`Tier::start`] makes every
    /// partition recovery left with such data active.
    pub fn backlog_bytes(&self) -> u64 {
        self.lagging()
            .iter()
            .fold(0u64, |sum, (_, _, lag)| sum.saturating_add(lag.bytes))
    }

    /// Partitions with data not yet in the object store, with how much.
    /// Only partitions the uploader keeps as active can have any (and those
    /// that took data since its last round): O(those), not O(partitions).
    pub fn lagging(&self) -> Vec<(String, u32, crate::log::partition::Lag)> {
        let mut keys = self.active_keys();
        keys.extend(self.log.touched_keys());
        let mut out: Vec<_> = self
            .log
            .tier_partitions_of(&keys)
            .into_iter()
            .map(|p| (p.stream, p.partition, p.state.lag()))
            .filter(|(_, _, lag)| lag.records > 0)
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }

    /// Partitions whose tiering is fenced or whose last attempt failed, by
    /// stream name, with what is wrong; one pass over the tier's own state
    /// without touching the partitions.
    pub fn problems(&self) -> Vec<(String, u32, String)> {
        let troubled: std::collections::HashMap<(u32, u32), String> = self
            .parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(k, s)| {
                let problem = if s.fenced {
                    "tiering is fenced (another node writes its objects)".to_string()
                } else {
                    format!("tiering failed: {}", s.last_error.as_ref()?)
                };
                Some((*k, problem))
            })
            .collect();
        let keys: HashSet<(u32, u32)> = troubled.keys().copied().collect();
        let mut out: Vec<_> = self
            .log
            .tier_partitions_of(&keys)
            .into_iter()
            .filter_map(|p| {
                let problem = troubled.get(&(p.stream_id, p.partition))?.clone();
                Some((p.stream, p.partition, problem))
            })
            .collect();
        out.sort();
        out
    }

    /// Makes the partitions with data not yet uploaded active (at start:
    /// recovery indexes batches without marking them touched).
    pub(super) fn activate_lagging(&self) {
        let lagging: Vec<_> = self
            .log
            .tier_partitions()
            .into_iter()
            .filter(|p| p.state.lag().records > 0)
            .map(|p| (p.stream_id, p.partition))
            .collect();
        self.active.lock().unwrap_or_else(|p| p.into_inner()).extend(lagging);
    }

    /// The partitions the next round visits (see the module doc).
    fn active_keys(&self) -> HashSet<(u32, u32)> {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One pass over the partitions that may have work (all of them when
    /// `full`); returns how many chunks were uploaded.
    ///
    /// A partition stays in `active` until a visit finds it without work,
    /// so [`Tier::lagging`] sees every partition with data to upload during
    /// the round too (before, those not yet visited dropped out of the
    /// backlog and the upload-lag metric while a round ran).
    async fn round(&self, stop: &tokio::sync::watch::Receiver<bool>, full: bool) -> usize {
        let touched = self.log.take_touched();
        let parts = {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            active.extend(touched);
            (!full).then(|| active.clone())
        };
        let parts = match parts {
            None => self.log.tier_partitions(),
            Some(keys) => self.log.tier_partitions_of(&keys),
        };
        // Partitions that no longer exist (a deleted stream) leave `active`.
        let live: HashSet<(u32, u32)> = parts.iter().map(|p| (p.stream_id, p.partition)).collect();
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k| live.contains(k));
        let mut uploaded = 0;
        let mut rest = parts.into_iter();
        while let Some(p) = rest.next() {
            if *stop.borrow() {
                // Whatever was not visited keeps its claim on the next run.
                let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
                active.insert((p.stream_id, p.partition));
                active.extend(rest.map(|p| (p.stream_id, p.partition)));
                break;
            }
            self.visits.fetch_add(1, Ordering::Relaxed);
            self.visit(&p, &mut uploaded).await;
            let work = self.has_work(&p);
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            if work {
                active.insert((p.stream_id, p.partition));
            } else {
                active.remove(&(p.stream_id, p.partition));
            }
        }
        uploaded
    }

    /// Whether a later round must visit `p` even if it takes no new data:
    /// untiered data, a retry, or a manifest not read yet (unless fenced).
    fn has_work(&self, p: &TierPartition) -> bool {
        let (fenced, retry, known) = self.with_part((p.stream_id, p.partition), |s| {
            (s.fenced, s.retry_at.is_some(), s.manifest.is_some())
        });
        !fenced && (retry || !known || p.state.lag().records > 0)
    }

    /// Uploads the partition's next chunk if it is due, unless it is fenced
    /// or waiting to be retried; counts an upload in `uploaded`.
    async fn visit(&self, p: &TierPartition, uploaded: &mut usize) {
        let key = (p.stream_id, p.partition);
        let skip = self.with_part(key, |s| s.fenced || s.retry_at.is_some_and(|t| Instant::now() < t));
        if skip {
            return;
        }
        match self.sync_partition(p).await {
            Ok(did) => {
                self.with_part(key, |s| {
                    s.failures = 0;
                    s.retry_at = None;
                    if did {
                        s.last_error = None;
                    }
                });
                *uploaded += did as usize;
            }
            Err(e) => self.record_failure(p, e),
        }
    }

    pub(super) fn record_failure(&self, p: &TierPartition, e: TierError) {
        metrics::counter!(crate::metrics::UPLOAD_ERRORS).increment(1);
        let fenced = matches!(e, TierError::Fenced { .. });
        let msg = e.to_string();
        let delay = self.with_part((p.stream_id, p.partition), |s| {
            s.failures = s.failures.saturating_add(1);
            let delay = self
                .opts
                .remote
                .backoff
                .saturating_mul(1u32 << s.failures.min(16))
                .min(MAX_RETRY_DELAY);
            s.retry_at = Some(Instant::now() + delay);
            s.fenced |= fenced;
            s.last_error = Some(msg.clone());
            delay
        });
        tracing::warn!(
            stream = %p.stream, partition = p.partition, error = %msg, fenced,
            retry_in_ms = delay.as_millis() as u64, "tiering failed"
        );
    }

    /// The partition's manifest, loaded (and, with `claim`, owned by this
    /// node under a new epoch) on first use.
    pub(super) async fn manifest(&self, p: &TierPartition, claim: bool) -> Result<Arc<Manifest>, TierError> {
        let key = (p.stream_id, p.partition);
        let (known, claimed) = self.with_part(key, |s| (s.manifest.clone(), s.claimed));
        if let Some(m) = known.as_ref().filter(|_| claimed || !claim) {
            return Ok(m.clone());
        }
        let m = if claim {
            manifest::claim(&self.remote, p.stream_id, p.partition).await?
        } else {
            manifest::load(&self.remote, p.stream_id, p.partition)
                .await?
                .unwrap_or_else(|| Manifest::empty(p.stream_id, p.partition))
        };
        let m = Arc::new(m);
        self.with_part(key, |s| {
            s.manifest = Some(m.clone());
            s.claimed |= claim;
        });
        p.state.set_tiered(m.start_offset, m.end_offset);
        Ok(m)
    }

    pub(super) fn set_manifest(&self, p: &TierPartition, m: Manifest) -> Arc<Manifest> {
        let m = Arc::new(m);
        p.state.set_tiered(m.start_offset, m.end_offset);
        self.with_part((p.stream_id, p.partition), |s| s.manifest = Some(m.clone()));
        m
    }

    /// Uploads the partition's next chunk if it is due. Returns whether it did.
    async fn sync_partition(&self, p: &TierPartition) -> Result<bool, TierError> {
        let lag = p.state.lag();
        let key = (p.stream_id, p.partition);
        let (known, waited) = self.with_part(key, |s: &mut PartState| {
            if lag.records == 0 {
                s.pending_since = None;
            }
            (s.manifest.is_some(), s.pending_since)
        });
        let due = match waited {
            _ if lag.records == 0 => false,
            _ if lag.bytes >= self.opts.upload_min_bytes => true,
            Some(since) => since.elapsed() >= self.opts.upload_interval,
            None => {
                self.with_part(key, |s| s.pending_since = Some(Instant::now()));
                self.opts.upload_interval.is_zero()
            }
        };
        if !due {
            // Learn the tiered range of partitions with nothing to upload yet
            // too (for status and cold reads), without claiming them.
            if !known {
                self.manifest(p, false).await?;
            }
            return Ok(false);
        }
        let current = self.manifest(p, true).await?;
        // Size the chunk as the object will be: payloads plus each batch's
        // header and index entry, plus the footer.
        let per_batch = (segment::BATCH_HEADER_LEN + segment::INDEX_ENTRY_LEN) as u64;
        let budget = self.opts.upload_chunk_bytes.saturating_sub(segment::FOOTER_LEN as u64);
        let batches = p
            .state
            .untiered(|rest| plan::first_chunk_len(rest.iter().map(|b| b.payload_len() + per_batch), budget));
        let Some(first) = batches.first() else {
            return Ok(false);
        };
        if first.base_offset > current.end_offset && p.state.range().start >= first.base_offset {
            // The partition restarted above what the store holds (a
            // follower's log goes on at its leader's start): nothing below
            // is readable, so the manifest starts there too, its segments
            // garbage.
            let mut next = (*current).clone();
            let now = now_ms();
            for s in next.segments.drain(..) {
                next.garbage.push(manifest::Garbage {
                    key: s.key,
                    since_ms: now,
                });
            }
            next.start_offset = first.base_offset;
            next.end_offset = first.base_offset;
            let committed = manifest::commit(&self.remote, &current, next).await?;
            self.set_manifest(p, committed);
            return Ok(true);
        }
        // A compacted stream's follower may hold gaps its leader's
        // compaction left (see `Log::append_replica`): its segments start
        // where the store ends and keep the gaps, as compacted ones do.
        let gapped = p.compaction.is_some() && p.state.replica().is_some();
        if first.base_offset != current.end_offset && !(gapped && first.base_offset > current.end_offset) {
            return Err(TierError::Corrupt {
                path: self
                    .remote
                    .path(&manifest::partition_dir(p.stream_id, p.partition))
                    .to_string(),
                reason: format!(
                    "offsets {}..{} are neither in the object store nor in the WAL",
                    current.end_offset, first.base_offset
                ),
            });
        }
        let end = batches.last().map_or(first.base_offset, |b| b.end());
        let base = current.end_offset;
        let name = format!("{base:020}-{end:020}-e{}.seg", current.epoch);
        let rel = manifest::segment_rel(p.stream_id, p.partition, &name);
        let path = self.remote.path(&rel);
        let mut upload = self.remote.upload(path);
        let mut writer = match gapped {
            true => SegmentWriter::with_gaps(base),
            false => SegmentWriter::new(),
        };
        for b in &batches {
            let log = self.log.clone();
            let (sid, part, bref) = (p.stream_id, p.partition, *b);
            let payload = tokio::task::spawn_blocking(move || log.batch_payload(sid, part, &bref))
                .await
                .map_err(|e| TierError::Wal(crate::wal::WalError::Poisoned(format!("read task failed: {e}"))));
            let payload = match payload.and_then(|r| r.map_err(TierError::Wal)) {
                Ok(p) => p,
                Err(e) => {
                    upload.abort().await;
                    return Err(e);
                }
            };
            let bytes = match writer.push(b.base_offset, b.count, &payload) {
                Ok(bytes) => bytes,
                Err(reason) => {
                    upload.abort().await;
                    return Err(TierError::Corrupt { path: rel, reason });
                }
            };
            self.limiter.acquire(bytes.len() as u64).await;
            upload.write(&bytes).await?;
        }
        let max_timestamp_ms = writer.max_timestamp();
        let (tail, footer) = writer.finish();
        self.limiter.acquire(tail.len() as u64).await;
        upload.write(&tail).await?;
        let size = upload.finish().await?;
        let mut next = (*current).clone();
        next.end_offset = end;
        next.segments.push(SegmentMeta {
            key: name,
            base_offset: base,
            end_offset: end,
            size,
            index_pos: footer.index_pos,
            created_ms: now_ms(),
            max_timestamp_ms,
        });
        let committed = manifest::commit(&self.remote, &current, next).await?;
        tracing::debug!(
            stream = %p.stream, partition = p.partition, base, end, size,
            "segment uploaded"
        );
        self.set_manifest(p, committed);
        metrics::counter!(crate::metrics::UPLOADS).increment(1);
        metrics::counter!(crate::metrics::UPLOAD_BYTES).increment(size);
        self.with_part(key, |s| {
            s.last_upload_ms = Some(now_ms());
            s.pending_since = None;
        });
        Ok(true)
    }
}
