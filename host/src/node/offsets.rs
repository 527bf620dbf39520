//! Finding offsets: the first record at or after a time (Kafka ListOffsets
//! by timestamp, `?timestamp=` on HTTP reads), the first holding the
//! largest timestamp, where the tiered and the WAL-held records meet, and
//! checks the faces share.

use super::{Host, ReadLimits};
use crate::error::Error;

/// Most records read per step while searching by time.
const SCAN_RECORDS: usize = 10_000;

/// What the search for an answer reads first, in records and bytes (then 4
/// times more per step, up to [`SCAN_RECORDS`] and `max_read_bytes`): the
/// answer is usually close to where it starts, often in the first batch
/// (cold reads fetch by bytes, at least one batch).
const FIRST_SCAN: (usize, usize) = (256, 256 * 1024);

/// Where a time search landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOffset {
    /// The first offset whose record's timestamp is at or after the time asked for.
    pub offset: u64,
    /// That record's timestamp.
    pub timestamp_ms: u64,
}

/// Where a partition's records live (Kafka ListOffsets EARLIEST_LOCAL and
/// LATEST_TIERED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierOffsets {
    /// The first offset the WAL holds (the partition's end when it holds
    /// none); below it records are only in the object store.
    pub local_start: u64,
    /// The end of the tiered records (`None`: no live record is tiered).
    pub tiered_end: Option<u64>,
}

impl Host {
    /// One partition's offsets, its stream's id and whether the stream is
    /// compacted: what a fetch or produce of one partition needs, at the
    /// cost of that partition alone.
    pub fn describe_partition(&self, stream: &str, partition: u32) -> Result<crate::log::PartitionInfo, Error> {
        Ok(self.inner.log.describe_partition(stream, partition)?)
    }

    /// The first record of `partition` with a timestamp at or after
    /// `timestamp_ms` (Kafka's ListOffsets rule: timestamps need not grow
    /// with offsets, the first match in offset order wins); `None` if no
    /// record is that recent. Uses the partition's time index
    /// (`time_index`), extended here with the records appended since.
    pub async fn offset_for_timestamp(
        &self,
        stream: &str,
        partition: u32,
        timestamp_ms: u64,
    ) -> Result<Option<TimeOffset>, Error> {
        // A view's offsets are its input's.
        let source = self.source_of(stream);
        let stream = source.as_deref().unwrap_or(stream);
        let (id, index) = self.caught_up_index(stream, partition).await?;
        let start = index.start_for(timestamp_ms);
        drop(index);
        self.first_at_or_after(stream, partition, id, start, timestamp_ms).await
    }

    /// The first record of `partition` holding its largest timestamp
    /// (Kafka's ListOffsets MAX_TIMESTAMP); `None` if it holds no record.
    /// Exact: when the record that held the largest timestamp the index saw
    /// was deleted since (retention, deleted records), the index is
    /// rebuilt; if the rebuilt one still names a record that is gone (a
    /// compacted segment's recorded maximum), the partition is read
    /// through.
    pub async fn max_timestamp(&self, stream: &str, partition: u32) -> Result<Option<TimeOffset>, Error> {
        let source = self.source_of(stream);
        let stream = source.as_deref().unwrap_or(stream);
        for _ in 0..2 {
            let (id, index) = self.caught_up_index(stream, partition).await?;
            let Some(max) = index.max() else {
                return Ok(None);
            };
            let start = index.start_for(max);
            drop(index);
            if let Some(found) = self.first_at_or_after(stream, partition, id, start, max).await? {
                return Ok(Some(found));
            }
            self.inner
                .time_index
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(id, partition));
        }
        let mut best: Option<TimeOffset> = None;
        self.scan(stream, partition, 0, false, |offset, ts| {
            if best.is_none_or(|b| ts > b.timestamp_ms) {
                best = Some(TimeOffset {
                    offset,
                    timestamp_ms: ts,
                });
            }
            false
        })
        .await?;
        Ok(best)
    }

    /// Where `partition`'s records stop being only in the object store and
    /// where its tiered records end.
    pub fn tier_offsets(&self, stream: &str, partition: u32) -> Result<TierOffsets, Error> {
        let source = self.source_of(stream);
        let stream = source.as_deref().unwrap_or(stream);
        let info = self.inner.log.describe_partition(stream, partition)?;
        let Some(p) = self.inner.log.tier_partition(info.stream_id, partition) else {
            return Err(crate::log::LogError::StreamNotFound { name: stream.into() }.into());
        };
        let mark = p.state.mark();
        let tiered_end = p.state.lock().tiered_end;
        Ok(TierOffsets {
            local_start: mark.floor.max(mark.start),
            tiered_end: (tiered_end > mark.start).then_some(tiered_end),
        })
    }

    /// The partition's time index, brought up to the partition's end: below
    /// its start nothing can be read, tiered segments come from the
    /// manifest, the rest is read. Returns the stream's id with it.
    async fn caught_up_index(
        &self,
        stream: &str,
        partition: u32,
    ) -> Result<(u32, tokio::sync::OwnedMutexGuard<super::time_index::TimeIndex>), Error> {
        let info = self.inner.log.describe_partition(stream, partition)?;
        let index = {
            let mut all = self.inner.time_index.lock().unwrap_or_else(|e| e.into_inner());
            all.entry((info.stream_id, partition)).or_default().clone()
        };
        let mut index = index.lock_owned().await;
        let start = info.range.start;
        index.skip_to(start);
        if self.only_tiered(info.stream_id, partition, index.covered()) {
            match self
                .inner
                .tier
                .time_spans(info.stream_id, partition, index.covered())
                .await
            {
                Ok(spans) => {
                    let mut spans = spans.into_iter().peekable();
                    // A segment cut by the partition's start recorded the
                    // maximum of records deleted since too: its live
                    // records are read instead.
                    let from = index.covered();
                    let cut = |s: &crate::tier::cold::TimeSpan| s.base_offset < from && s.base_offset < start;
                    if let Some(until) = spans.next_if(cut).map(|s| s.end_offset) {
                        self.scan(stream, partition, from, false, |offset, ts| {
                            if offset >= until {
                                return true;
                            }
                            index.observe(offset, ts);
                            false
                        })
                        .await?;
                    }
                    for s in spans {
                        index.observe_span(s.base_offset, s.end_offset, s.max_timestamp_ms);
                    }
                }
                // Reading the segments instead is slower but as exact.
                Err(e) => tracing::warn!(stream, partition, error = %e, "tiered timestamps unknown"),
            }
        }
        let covered = index.covered();
        self.scan(stream, partition, covered, false, |offset, ts| {
            index.observe(offset, ts);
            false
        })
        .await?;
        Ok((info.stream_id, index))
    }

    /// Whether `offset` is below the WAL's first batch: only in the object
    /// store (a lookup in what the WAL holds never asks the store).
    fn only_tiered(&self, id: u32, partition: u32, offset: u64) -> bool {
        self.inner
            .log
            .tier_partition(id, partition)
            .is_some_and(|p| offset < p.state.mark().floor)
    }

    /// The first record at or after `timestamp_ms`, searched from `start`
    /// (below it every record is older).
    async fn first_at_or_after(
        &self,
        stream: &str,
        partition: u32,
        id: u32,
        mut start: u64,
        timestamp_ms: u64,
    ) -> Result<Option<TimeOffset>, Error> {
        // In tiered data, skip to the batch that may hold the answer.
        if self.only_tiered(id, partition, start) {
            match self.inner.tier.time_start(id, partition, start, timestamp_ms).await {
                Ok(s) => start = start.max(s),
                Err(e) => tracing::warn!(stream, partition, error = %e, "tiered batch timestamps unknown"),
            }
        }
        let mut found = None;
        self.scan(stream, partition, start, true, |offset, ts| {
            if ts >= timestamp_ms {
                found = Some(TimeOffset {
                    offset,
                    timestamp_ms: ts,
                });
            }
            found.is_some()
        })
        .await?;
        Ok(found)
    }

    /// The offset the next record appended to `partition` will get (of a
    /// view: of its input).
    pub fn stream_end(&self, stream: &str, partition: u32) -> Result<u64, Error> {
        let source = self.source_of(stream);
        let stream = source.as_deref().unwrap_or(stream);
        // One partition's lookup: callers ask this per partition.
        Ok(self.inner.log.describe_partition(stream, partition)?.range.end)
    }

    /// Reads `partition` from `from` (or its start, if later) to its end,
    /// calling `each(offset, timestamp)` until it returns true; with
    /// `small_start`, the reads start at [`FIRST_SCAN`] and grow.
    async fn scan(
        &self,
        stream: &str,
        partition: u32,
        from: u64,
        small_start: bool,
        mut each: impl FnMut(u64, u64) -> bool,
    ) -> Result<(), Error> {
        let full = ReadLimits {
            max_records: SCAN_RECORDS,
            max_bytes: usize::try_from(self.settings().max_read_bytes.as_u64()).unwrap_or(usize::MAX),
        };
        let mut limits = match small_start {
            true => ReadLimits {
                max_records: FIRST_SCAN.0,
                max_bytes: FIRST_SCAN.1.min(full.max_bytes),
            },
            false => full,
        };
        let mut offset = from;
        loop {
            let batch = match self.read(stream, partition, offset, limits).await {
                Ok(b) => b,
                // Retention moved the start past `offset`: go on from it.
                Err(e) if e.code() == "offset_out_of_range" || e.code() == "trimmed" => {
                    let start = Some(self.inner.log.describe_partition(stream, partition)?.range.start);
                    match start {
                        Some(s) if s > offset => {
                            offset = s;
                            continue;
                        }
                        _ => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
            for r in &batch.records {
                if each(r.offset, r.record.timestamp_ms) {
                    return Ok(());
                }
            }
            if batch.records.is_empty() || batch.next_offset >= batch.end_offset {
                return Ok(());
            }
            offset = batch.next_offset;
            limits = ReadLimits {
                max_records: limits.max_records.saturating_mul(4).min(full.max_records),
                max_bytes: limits.max_bytes.saturating_mul(4).min(full.max_bytes),
            };
        }
    }

    /// Whether `presented` is the node's token (always true when no token is
    /// set). Compares in time independent of where the bytes differ.
    pub fn token_matches(&self, presented: &[u8]) -> bool {
        use sha2::{Digest, Sha256};
        match &self.settings().auth_token {
            None => true,
            Some(token) => {
                // Digests of equal length compared without an early exit:
                // the time taken says nothing about the token, its length
                // included.
                let (want, got) = (Sha256::digest(token.as_bytes()), Sha256::digest(presented));
                want.iter().zip(got.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
            }
        }
    }

    /// Checks a stream name against the rules streams are created with.
    pub fn check_stream_name(name: &str) -> Result<(), Error> {
        Ok(crate::log::meta::validate_name(name)?)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Host, Settings};

    #[tokio::test]
    async fn only_the_token_itself_matches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::open(Settings {
            data_dir: dir.path().into(),
            auth_token: Some("s3cret".into()),
            kafka_listen: None,
            ..Settings::default()
        })
        .await
        .expect("open");
        assert!(host.token_matches(b"s3cret"));
        for wrong in [&b""[..], b"s3cre", b"s3cret2", b"s3creT", b"S3CRET"] {
            assert!(!host.token_matches(wrong), "{wrong:?}");
        }
        host.shutdown().await;
    }
}

/// Where a leader epoch's records end (Kafka OffsetForLeaderEpoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    /// The partition's current leader epoch here (0 when not replicated).
    pub current: u32,
    /// The newest epoch at most the one asked for, and the offset where its
    /// records end; `None` when the one asked for is newer than `current`.
    pub found: Option<(u32, u64)>,
}

impl Host {
    /// Where the records of leader epoch `epoch` end on `stream` (of a
    /// view: its input) `partition`, as Kafka clients validate their
    /// position after a leader change: on a replicated partition from its
    /// leader's epoch history (`not_leader` elsewhere), otherwise a single
    /// epoch 0 that ends at the log's end.
    /// A replicated partition's leader epochs as `(epoch, first offset
    /// written in it)`, ascending: the epoch of the record at offset `o` is
    /// the last entry starting at or before `o`. Empty for a partition that
    /// is not replicated (all of its records are epoch 0).
    pub fn epoch_starts(&self, stream: &str, partition: u32) -> Vec<(u32, u64)> {
        self.inner
            .log
            .replica(stream, partition)
            .map(|view| view.state.leadership.history)
            .unwrap_or_default()
    }

    pub fn epoch_end(&self, stream: &str, partition: u32, epoch: u32) -> Result<EpochEnd, Error> {
        let source = self.source_of(stream);
        let stream = source.as_deref().unwrap_or(stream);
        let end = self.stream_end(stream, partition)?;
        let Ok(view) = self.inner.log.replica(stream, partition) else {
            let lead = crate::log::meta::Leadership::initial(0);
            return Ok(EpochEnd {
                current: 0,
                found: lead.epoch_end(epoch, end),
            });
        };
        let lead = &view.state.leadership;
        if Some(lead.leader) != self.inner.log.node_id() {
            return Err(self.not_leader(stream, partition, lead.leader));
        }
        Ok(EpochEnd {
            current: lead.epoch,
            found: lead.epoch_end(epoch, view.log_end),
        })
    }
}
