//! The read path: plans each offset as hot (WAL batches, from the cache or
//! positional reads) or cold (the object store), walks the stored batches
//! record by record and stops at the read's limits (a batch is decoded only
//! as far as the read takes it). Records come out decoded
//! ([`Log::read`]) or as runs of stored record bodies ([`Log::read_runs`],
//! for faces that re-encode them without building records first).
//!
//! Walking batches is CPU work: more than `WALK_ON_WORKER_BYTES` of them (or
//! any read from the WAL files) is walked on a blocking thread, so a read
//! of a huge batch never stalls the async workers other requests share.
//!
//! Invariants: at least one record is returned when one exists, even if it
//! alone exceeds `max_bytes`, so a consumer always makes progress; a batch
//! trimmed between planning and reading is planned again (a bounded number
//! of times), and then found in the object store.

use bytes::Bytes;
use sluice_wire::{RecordView, WireError, decode_record};

use super::error::LogError;
use super::partition::{BatchRef, Plan};
use super::{Log, OffsetRecord, ReadBatch, Stream, partition_of};
use crate::wal::WalError;

/// Consecutive records as stored: `count` record bodies (`sluice_wire`'s
/// encoding, back to back) with offsets `first_offset..first_offset+count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRun {
    pub first_offset: u64,
    pub count: u32,
    pub bodies: Bytes,
}

/// The outcome of [`Log::read_runs`]: like [`ReadBatch`], with runs of
/// stored record bodies instead of decoded records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRead {
    pub runs: Vec<RecordRun>,
    pub next_offset: u64,
    pub start_offset: u64,
    pub end_offset: u64,
}

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
        let (acc, range) = self
            .read_into(stream, partition, offset, max_records, max_bytes, false)
            .await?;
        Ok(ReadBatch {
            next_offset: acc.next,
            records: acc.records,
            start_offset: range.start,
            end_offset: range.end,
        })
    }

    /// Reads like [`Log::read`] (same limits, same records), returning the
    /// stored record bodies instead of decoded records.
    pub async fn read_runs(
        &self,
        stream: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RunRead, LogError> {
        let (acc, range) = self
            .read_into(stream, partition, offset, max_records, max_bytes, true)
            .await?;
        Ok(RunRead {
            next_offset: acc.next,
            runs: acc.runs,
            start_offset: range.start,
            end_offset: range.end,
        })
    }

    async fn read_into(
        &self,
        stream: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
        runs: bool,
    ) -> Result<(Acc, std::ops::Range<u64>), LogError> {
        let max_records = max_records.max(1);
        let s = self.stream(stream)?;
        let part = partition_of(&s, partition)?;
        let mut acc = Acc {
            records: Vec::new(),
            runs: Vec::new(),
            keep_runs: runs,
            taken: 0,
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
                .plan(acc.next, max_records - acc.taken, max_bytes.saturating_sub(acc.bytes))
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
                crate::metrics::add(stream, crate::metrics::StreamCounter::ReadRecords, acc.taken as u64);
                return Ok((acc, range.start..range.end));
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
        let total = read
            .batches
            .iter()
            .fold(0u64, |sum, b| sum.saturating_add(b.payload.len() as u64));
        let full = if total < WALK_ON_WORKER_BYTES {
            take_cold(&s.meta.name, partition, &read.batches, until, acc)?
        } else {
            let (name, batches) = (s.meta.name.clone(), read.batches);
            let mut owned = std::mem::take(acc);
            let (owned, res) = tokio::task::spawn_blocking(move || {
                let res = take_cold(&name, partition, &batches, until, &mut owned);
                (owned, res)
            })
            .await
            .map_err(|e| WalError::Poisoned(format!("read task failed: {e}")))?;
            *acc = owned;
            res?
        };
        if full {
            return Ok(true);
        }
        // Offsets covered without records (removed by compaction) are skipped.
        acc.next = acc.next.max(read.covered_until.min(until));
        if acc.next == before {
            return Err(err(before, "the object store returned no data for this offset".into()));
        }
        Ok(acc.full())
    }

    /// Fetches and decodes planned batches into `acc`; returns whether a
    /// limit was reached. Cached batches under [`WALK_ON_WORKER_BYTES`] are
    /// walked here; anything read from the WAL, or bigger, on a blocking
    /// thread, so no reader stalls the async workers.
    async fn read_planned(
        &self,
        s: &Stream,
        partition: u32,
        plan: &[BatchRef],
        acc: &mut Acc,
    ) -> Result<bool, LogError> {
        let id = s.meta.id;
        // All cached (a tailing reader): no blocking task when small.
        let cached: Option<Vec<Bytes>> = plan
            .iter()
            .map(|b| self.cache.get(&(id, partition, b.base_offset)))
            .collect();
        let total = plan.iter().fold(0u64, |sum, b| sum.saturating_add(b.payload_len()));
        if let Some(payloads) = &cached
            && total < WALK_ON_WORKER_BYTES
        {
            return take_planned(&s.meta.name, partition, plan, payloads, acc);
        }
        let (wal, cache, plan) = (self.wal.clone(), self.cache.clone(), plan.to_vec());
        let name = s.meta.name.clone();
        let mut owned = std::mem::take(acc);
        let (owned, res) = tokio::task::spawn_blocking(move || {
            let payloads = match cached {
                Some(p) => Ok(p),
                None => plan
                    .iter()
                    .map(|b| super::tiering::load_payload(&cache, &wal, id, partition, b))
                    .collect::<Result<Vec<Bytes>, WalError>>()
                    .map_err(LogError::from),
            };
            let res = payloads.and_then(|p| take_planned(&name, partition, &plan, &p, &mut owned));
            (owned, res)
        })
        .await
        .map_err(|e| WalError::Poisoned(format!("read task failed: {e}")))?;
        *acc = owned;
        res
    }
}

/// Cached batches smaller than this (together) are walked on the async
/// worker that serves the read; bigger ones on a blocking thread.
const WALK_ON_WORKER_BYTES: u64 = 1024 * 1024;

/// Takes records from batches read from the object store into `acc`, up to
/// `until`; returns whether a limit was reached.
fn take_cold(
    stream: &str,
    partition: u32,
    batches: &[super::ColdBatch],
    until: u64,
    acc: &mut Acc,
) -> Result<bool, LogError> {
    for b in batches {
        if acc.push_checked(stream, partition, &b.payload, b.base_offset, b.count, until)? {
            return Ok(true);
        }
        acc.next = acc.next.max(b.end().min(until));
    }
    Ok(false)
}

/// Takes records from the planned batches' payloads into `acc`; returns
/// whether a limit was reached.
fn take_planned(
    stream: &str,
    partition: u32,
    plan: &[BatchRef],
    payloads: &[Bytes],
    acc: &mut Acc,
) -> Result<bool, LogError> {
    for (b, payload) in plan.iter().zip(payloads) {
        if acc.push_checked(stream, partition, payload, b.base_offset, b.count, u64::MAX)? {
            return Ok(true);
        }
        acc.next = acc.next.max(b.end());
    }
    Ok(acc.full())
}

/// Records gathered by one read, and its limits.
#[derive(Default)]
pub(super) struct Acc {
    /// Decoded records (unless `keep_runs`).
    records: Vec<OffsetRecord>,
    /// Stored record bodies (if `keep_runs`).
    runs: Vec<RecordRun>,
    keep_runs: bool,
    /// Records taken so far.
    taken: usize,
    bytes: usize,
    /// Offset to read from next.
    next: u64,
    max_records: usize,
    max_bytes: usize,
}

/// Bytes a record counts for in read limits, as [`super::Record::size`].
fn view_size(v: &RecordView<'_>) -> usize {
    v.key.map_or(0, <[u8]>::len) + v.value.len() + v.headers().iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
}

impl Acc {
    /// Walks the batch `payload` (`count` records from `base_offset`),
    /// taking records at or after `next` and before `until` until a limit is
    /// reached (then returns true). At least one record is taken, whatever
    /// its size. Records past the point where the read stops are not
    /// decoded; a batch walked to its end must end exactly there.
    pub(super) fn push(
        &mut self,
        payload: &Bytes,
        base_offset: u64,
        count: u32,
        until: u64,
    ) -> Result<bool, WireError> {
        let mut pos = 0usize;
        // The run taken from this batch: first offset, its byte start, the
        // byte end of the last record taken, records.
        let mut run: Option<(u64, usize, usize, u32)> = None;
        let mut stopped = None;
        for i in 0..count {
            let offset = base_offset.saturating_add(u64::from(i));
            if offset >= until {
                stopped = Some(false);
                break;
            }
            if offset >= self.next && self.taken >= self.max_records {
                stopped = Some(true);
                break;
            }
            let start = pos;
            let v = decode_record(payload, &mut pos, i)?;
            if offset < self.next {
                continue;
            }
            let size = view_size(&v);
            if self.taken > 0 && self.bytes.saturating_add(size) > self.max_bytes {
                stopped = Some(true);
                break;
            }
            self.bytes = self.bytes.saturating_add(size);
            self.taken += 1;
            self.next = offset.saturating_add(1);
            if self.keep_runs {
                let r = run.get_or_insert((offset, start, pos, 0));
                r.2 = pos;
                r.3 += 1;
            } else {
                self.records.push(OffsetRecord {
                    offset,
                    record: super::record::from_view(payload, &v),
                });
            }
        }
        // A batch walked to its end must end exactly there.
        if stopped.is_none() && pos != payload.len() {
            return Err(WireError::Trailing {
                extra: payload.len() - pos,
            });
        }
        if let Some((first_offset, start, end, count)) = run {
            self.runs.push(RecordRun {
                first_offset,
                count,
                bodies: payload.slice(start..end),
            });
        }
        Ok(stopped == Some(true))
    }

    /// [`Acc::push`], a batch that does not decode reported as corrupt.
    fn push_checked(
        &mut self,
        stream: &str,
        partition: u32,
        payload: &Bytes,
        base_offset: u64,
        count: u32,
        until: u64,
    ) -> Result<bool, LogError> {
        self.push(payload, base_offset, count, until)
            .map_err(|e| LogError::Corrupt {
                stream: stream.to_string(),
                partition,
                offset: base_offset,
                reason: e.to_string(),
            })
    }

    fn full(&self) -> bool {
        self.taken >= self.max_records || self.bytes >= self.max_bytes
    }
}

/// An empty accumulator for tests of [`Acc::push`].
#[cfg(test)]
pub(super) fn tests_acc(max_records: usize) -> Acc {
    Acc {
        records: Vec::new(),
        runs: Vec::new(),
        keep_runs: false,
        taken: 0,
        bytes: 0,
        next: 0,
        max_records,
        max_bytes: usize::MAX,
    }
}
