//! The read path: plans each offset as hot (WAL batches, from the cache or
//! positional reads) or cold (the object store), decodes, and stops at the
//! read's limits.
//!
//! Invariants: at least one record is returned when one exists, even if it
//! alone exceeds `max_bytes`, so a consumer always makes progress; a batch
//! trimmed between planning and reading is planned again (a bounded number
//! of times), and then found in the object store.

use bytes::Bytes;

use super::error::LogError;
use super::partition::{BatchRef, Plan};
use super::{Log, OffsetRecord, ReadBatch, Stream, partition_of, record};
use crate::wal::WalError;

impl Log {
    /// Reads up to `max_records` records (and about `max_bytes` bytes; at
    /// least one record if any is available) starting at `offset`. Offsets
    /// no longer in the WAL are read from the object store.
    pub async fn read(
        &self,
        stream: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch, LogError> {
        let max_records = max_records.max(1);
        let s = self.stream(stream)?;
        let part = partition_of(&s, partition)?;
        let mut acc = Acc {
            records: Vec::new(),
            bytes: 0,
            next: offset,
            max_records,
            max_bytes,
        };
        // A batch trimmed from the WAL between planning and reading is
        // planned again (it is in the object store by then); bounded.
        let mut replans = 0;
        loop {
            let (plan, range) = part
                .plan(
                    acc.next,
                    max_records - acc.records.len(),
                    max_bytes.saturating_sub(acc.bytes),
                )
                .map_err(|r| LogError::OffsetOutOfRange {
                    stream: stream.into(),
                    partition,
                    offset,
                    start: r.start,
                    end: r.end,
                })?;
            let done = match plan {
                Plan::Hot(plan) if plan.is_empty() => true,
                Plan::Hot(plan) => match self.read_planned(&s, partition, &plan, &mut acc).await {
                    Err(LogError::Wal(WalError::Trimmed { .. })) if replans < 8 => {
                        replans += 1;
                        false
                    }
                    r => r?,
                },
                Plan::Cold { until } => self.read_cold(&s, partition, until, &mut acc).await?,
            };
            if done {
                ::metrics::counter!(crate::metrics::READ_RECORDS, "stream" => stream.to_string())
                    .increment(acc.records.len() as u64);
                return Ok(ReadBatch {
                    next_offset: acc.next,
                    records: acc.records,
                    start_offset: range.start,
                    end_offset: range.end,
                });
            }
        }
    }

    /// Reads offsets `acc.next..until` from the object store; returns whether
    /// a limit was reached.
    async fn read_cold(&self, s: &Stream, partition: u32, until: u64, acc: &mut Acc) -> Result<bool, LogError> {
        let err = |offset, reason: String| LogError::ColdRead {
            stream: s.meta.name.clone(),
            partition,
            offset,
            reason,
        };
        let cold = self
            .cold
            .get()
            .ok_or_else(|| err(acc.next, "no object store is attached".into()))?;
        let want = acc.max_bytes.saturating_sub(acc.bytes);
        let read = cold
            .read(s.meta.id, partition, acc.next, until, want)
            .await
            .map_err(|e| err(acc.next, e))?;
        let before = acc.next;
        for b in read.batches {
            let decoded = record::decode_batch(&b.payload, b.base_offset, b.count).map_err(|e| LogError::Corrupt {
                stream: s.meta.name.clone(),
                partition,
                offset: b.base_offset,
                reason: e.to_string(),
            })?;
            if acc.push(decoded.into_iter().filter(|r| r.offset < until)) {
                return Ok(true);
            }
            acc.next = acc.next.max(b.end().min(until));
        }
        // Offsets covered without records (removed by compaction) are skipped.
        acc.next = acc.next.max(read.covered_until.min(until));
        if acc.next == before {
            return Err(err(before, "the object store returned no data for this offset".into()));
        }
        Ok(acc.full())
    }

    /// Fetches and decodes planned batches into `acc`; returns whether a
    /// limit was reached.
    async fn read_planned(
        &self,
        s: &Stream,
        partition: u32,
        plan: &[BatchRef],
        acc: &mut Acc,
    ) -> Result<bool, LogError> {
        let id = s.meta.id;
        // All cached (a tailing reader): no blocking task at all.
        let cached: Option<Vec<Bytes>> = plan
            .iter()
            .map(|b| self.cache.get(&(id, partition, b.base_offset)))
            .collect();
        let payloads = match cached {
            Some(p) => p,
            None => {
                let (wal, cache, plan) = (self.wal.clone(), self.cache.clone(), plan.to_vec());
                tokio::task::spawn_blocking(move || {
                    plan.iter()
                        .map(|b| super::tiering::load_payload(&cache, &wal, id, partition, b))
                        .collect::<Result<Vec<Bytes>, WalError>>()
                })
                .await
                .map_err(|e| WalError::Poisoned(format!("read task failed: {e}")))??
            }
        };
        for (b, payload) in plan.iter().zip(payloads) {
            let decoded = record::decode_batch(&payload, b.base_offset, b.count).map_err(|e| LogError::Corrupt {
                stream: s.meta.name.clone(),
                partition,
                offset: b.base_offset,
                reason: e.to_string(),
            })?;
            if acc.push(decoded) {
                return Ok(true);
            }
            acc.next = acc.next.max(b.end());
        }
        Ok(acc.full())
    }
}

/// Records gathered by one read, and its limits.
struct Acc {
    records: Vec<OffsetRecord>,
    bytes: usize,
    /// Offset to read from next.
    next: u64,
    max_records: usize,
    max_bytes: usize,
}

impl Acc {
    /// Takes records at or after `next` until a limit is reached (then
    /// returns true). At least one record is taken, whatever its size.
    fn push(&mut self, decoded: impl IntoIterator<Item = OffsetRecord>) -> bool {
        for r in decoded {
            if r.offset < self.next {
                continue;
            }
            let size = r.record.size();
            if self.records.len() >= self.max_records
                || (!self.records.is_empty() && self.bytes + size > self.max_bytes)
            {
                return true;
            }
            self.bytes += size;
            self.next = r.offset + 1;
            self.records.push(r);
        }
        false
    }

    fn full(&self) -> bool {
        self.records.len() >= self.max_records || self.bytes >= self.max_bytes
    }
}
