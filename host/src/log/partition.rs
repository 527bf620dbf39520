//! One partition's in-memory index: which batches hold which offsets.
//!
//! The index is derived state, rebuilt from the WAL on start-up. Invariants:
//! * `batches` is sorted by base offset and holds only durable batches;
//! * `end_offset` is the end of the last durable batch; it only grows,
//!   except when a follower truncates records that diverged from its leader;
//! * `next_offset >= end_offset`: offsets handed to appends in flight;
//! * `batches` are the WAL-resident batches; offsets from `start_offset` up
//!   to the first of them live only in the object store (cold), and
//!   `tiered_end` (a batch boundary) is where the committed manifest ends;
//! * on a replicated partition readers and the uploader see only offsets
//!   below the high watermark (what every in-sync replica holds), so a
//!   record a consumer saw survives a leader change.

use std::sync::Mutex;

use crate::wal::Location;
use crate::wal::format::ENTRY_HEADER_LEN;

/// Bytes each record takes in a batch besides key, value and headers.
const MIN_RECORD_FRAMING: usize = 18;

/// Where one durable batch lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRef {
    pub base_offset: u64,
    pub count: u32,
    pub lsn: u64,
    pub location: Location,
    /// Bytes at the end of the entry payload that are not records (a
    /// pipeline progress trailer), cut off when reading.
    pub trailer: u8,
    /// The idempotent producer that wrote it (replication passes it on).
    pub producer: Option<super::producers::ProducerBatch>,
}

impl BatchRef {
    pub fn end(&self) -> u64 {
        self.base_offset + self.count as u64
    }

    /// Bytes of its record batch (the WAL entry without header or trailer).
    pub fn payload_len(&self) -> u64 {
        (self.location.len as u64).saturating_sub((ENTRY_HEADER_LEN + self.trailer as usize) as u64)
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub next_offset: u64,
    pub end_offset: u64,
    pub start_offset: u64,
    pub batches: Vec<BatchRef>,
    pub tiered_end: u64,
    /// Set on a replicated partition.
    pub replica: Option<ReplicaState>,
    /// A batch was committed past the end: a gap its compacted leader left
    /// (only a follower of a compacted stream takes one). Reads step over
    /// gaps only then; elsewhere a hole is an error, not data to skip.
    pub gapped: bool,
}

/// A replicated partition's leadership and high watermark on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub leadership: super::meta::Leadership,
    /// Offsets below this are on every in-sync replica (the leader's
    /// computation, or what the leader last told this follower).
    pub high_watermark: u64,
}

impl State {
    /// Where a read from `offset` goes to the object store: below the WAL's
    /// first batch, unless `offset` lies in a gap before it that nothing
    /// tiered covers (a compacted leader's, on a follower): readers step
    /// over that gap to the batch.
    fn cold_until(&self, offset: u64) -> Option<u64> {
        let hot_start = self.batches.first().map_or(self.end_offset, |b| b.base_offset);
        let in_gap = self.gapped && !self.batches.is_empty() && offset >= self.tiered_end;
        (offset < hot_start && !in_gap).then_some(hot_start)
    }

    /// The end readers see: the high watermark on a replicated partition
    /// (never below what is already tiered), else the end of the log.
    pub fn visible_end(&self) -> u64 {
        match &self.replica {
            None => self.end_offset,
            Some(r) => r.high_watermark.max(self.tiered_end).min(self.end_offset),
        }
    }
}

/// What a read of one offset needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Batches in the WAL (or its cache), in offset order.
    Hot(Vec<BatchRef>),
    /// The offset is only in the object store; read it there, up to `until`.
    Cold { until: u64 },
}

/// Data not yet in the object store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    pub records: u64,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct Partition {
    pub state: Mutex<State>,
    /// The end offset, published after every commit (long-polling readers
    /// wait on it).
    appended: tokio::sync::watch::Sender<u64>,
}

impl Default for Partition {
    fn default() -> Self {
        Partition {
            state: Mutex::default(),
            appended: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// Offsets a partition holds, for describe and read answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Partition {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a durable batch. Batches arrive in offset order; one below
    /// the end (a replay duplicate) is ignored and reported as `false`.
    pub fn commit(&self, b: BatchRef) -> bool {
        let mut st = self.lock();
        if b.base_offset < st.end_offset {
            return false;
        }
        st.gapped |= b.base_offset > st.end_offset;
        st.end_offset = b.end();
        st.next_offset = st.next_offset.max(st.end_offset);
        st.batches.push(b);
        self.appended.send_replace(st.visible_end());
        true
    }

    /// Sets a replicated partition's leadership (the high watermark stays).
    pub fn set_replica(&self, leadership: super::meta::Leadership) {
        let mut st = self.lock();
        match &mut st.replica {
            Some(r) => r.leadership = leadership,
            None => {
                st.replica = Some(ReplicaState {
                    leadership,
                    high_watermark: 0,
                })
            }
        }
        self.publish(&st);
    }

    /// Replication state and the log's end, read together.
    pub fn replica(&self) -> Option<(ReplicaState, u64)> {
        let st = self.lock();
        st.replica.clone().map(|r| (r, st.end_offset))
    }

    /// Raises the high watermark to `hw` (capped at the log's end; only a
    /// truncation lowers it); readers waiting for it wake up. Returns the
    /// value in force.
    pub fn set_high_watermark(&self, hw: u64) -> u64 {
        let mut st = self.lock();
        let end = st.end_offset;
        let Some(r) = &mut st.replica else { return end };
        r.high_watermark = r.high_watermark.max(hw).min(end);
        let hw = r.high_watermark;
        self.publish(&st);
        hw
    }

    /// Batches to send a follower from `offset` (a batch boundary, or inside
    /// the first batch), up to the log's end, high watermark or not: about
    /// `max_bytes` of them (one at least) and at most `max_batches`.
    pub fn plan_raw(&self, offset: u64, max_bytes: u64, max_batches: usize) -> Result<Plan, Range> {
        let st = self.lock();
        if offset < st.start_offset || offset > st.end_offset {
            return Err(Range {
                start: st.start_offset,
                end: st.end_offset,
            });
        }
        if let Some(until) = st.cold_until(offset) {
            return Ok(Plan::Cold { until });
        }
        let first = st.batches.partition_point(|b| b.end() <= offset);
        let mut bytes = 0u64;
        let plan = st.batches[first..]
            .iter()
            .take(max_batches.max(1))
            .take_while(|b| {
                let fits = bytes == 0 || bytes + b.location.len as u64 <= max_bytes;
                bytes += b.location.len as u64;
                fits
            })
            .copied()
            .collect();
        Ok(Plan::Hot(plan))
    }

    /// Publishes the end readers see after a change to the high watermark
    /// or the log's end (long-polling readers wake up).
    pub fn publish(&self, st: &State) {
        self.appended.send_replace(st.visible_end());
    }

    /// A watch of the end readers see.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Drops every batch that holds an offset at or after `offset` (a
    /// batch straddling it goes whole); returns the new end. The caller
    /// never truncates below the WAL's first batch (tiered data stays).
    pub fn truncate(&self, offset: u64) -> u64 {
        let mut st = self.lock();
        let floor = st.batches.first().map_or(st.end_offset, |b| b.base_offset);
        let keep = st.batches.partition_point(|b| b.end() <= offset);
        st.batches.truncate(keep);
        let end = st.batches.last().map_or(floor, BatchRef::end).min(st.end_offset);
        st.end_offset = end;
        st.next_offset = end;
        if let Some(r) = &mut st.replica {
            r.high_watermark = r.high_watermark.min(end);
            r.leadership.truncate(end);
        }
        self.publish(&st);
        end
    }

    /// Resolves once the partition's end is past `offset`; at once unless
    /// `offset` is exactly the end (a reader ahead of the end gets its
    /// out-of-range answer without waiting).
    pub async fn wait_past(&self, offset: u64) {
        let mut rx = self.appended.subscribe();
        if self.range().end != offset {
            return;
        }
        // The sender lives as long as the partition (we hold it), so this
        // only ends when the end moves past `offset`.
        let _ = rx.wait_for(|end| *end > offset).await;
    }

    /// The offsets readers see (up to the high watermark when replicated).
    /// Resolves once the log's end (not the high watermark) is past
    /// `offset`, or at once if it is not exactly at `offset`.
    pub async fn wait_log_end_past(&self, offset: u64) {
        let mut rx = self.appended.subscribe();
        loop {
            let end = self.log_end();
            if end != offset {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn range(&self) -> Range {
        let st = self.lock();
        Range {
            start: st.start_offset,
            end: st.visible_end(),
        }
    }

    /// The end of the log on this node, high watermark or not.
    pub fn log_end(&self) -> u64 {
        self.lock().end_offset
    }

    /// Batches to read for `offset`, stopping once the estimated size reaches
    /// `max_bytes` or the records reach `max_records`. `Err(range)` when the
    /// offset is outside `start..=end`.
    pub fn plan(&self, offset: u64, max_records: usize, max_bytes: usize) -> Result<(Plan, Range), Range> {
        let st = self.lock();
        let range = Range {
            start: st.start_offset,
            end: st.visible_end(),
        };
        if offset < range.start || offset > range.end {
            return Err(range);
        }
        if let Some(until) = st.cold_until(offset) {
            return Ok((Plan::Cold { until }, range));
        }
        let first = st.batches.partition_point(|b| b.end() <= offset);
        let mut plan = Vec::new();
        let (mut records, mut bytes) = (0usize, 0usize);
        for b in st.batches[first..].iter().take_while(|b| b.end() <= range.end) {
            plan.push(*b);
            records += (b.end() - offset.max(b.base_offset)) as usize;
            // A lower bound of the batch's record bytes (key+value+headers):
            // the entry minus its header and the fixed per-record framing.
            let framing = ENTRY_HEADER_LEN + MIN_RECORD_FRAMING * b.count as usize;
            bytes += (b.location.len as usize).saturating_sub(framing);
            if records >= max_records || bytes >= max_bytes {
                break;
            }
        }
        Ok((Plan::Hot(plan), range))
    }

    /// Restores what the snapshot says after the WAL was trimmed. The start
    /// may lie above the floor (records deleted in the WAL's range); replay
    /// ends with [`Partition::settle_start`].
    pub fn restore(&self, mark: super::meta::PartitionMark) {
        let mut st = self.lock();
        st.start_offset = st.start_offset.max(mark.start);
        st.end_offset = st.end_offset.max(mark.floor);
        st.next_offset = st.next_offset.max(mark.floor);
        st.tiered_end = st.tiered_end.max(mark.floor);
    }

    /// Deletes the records below `offset` (at most the end): nothing below
    /// it is readable any more. Never moves the start back.
    pub fn delete_before(&self, offset: u64) -> u64 {
        let mut st = self.lock();
        st.start_offset = st.start_offset.max(offset.min(st.end_offset));
        st.start_offset
    }

    /// A follower's log restarts at `offset`, above its end (its leader's
    /// start moved past it): every record it held is dropped, and nothing
    /// below `offset` is readable. Never moves the end back.
    pub fn reset_to(&self, offset: u64) {
        let mut st = self.lock();
        if offset <= st.end_offset {
            return;
        }
        st.batches.clear();
        st.start_offset = offset;
        st.end_offset = offset;
        st.next_offset = st.next_offset.max(offset);
        self.publish(&st);
    }

    /// After replay: a start past what the WAL still holds (its tail was
    /// cut) comes back to the end, so the range stays `start <= end`.
    pub fn settle_start(&self) {
        let mut st = self.lock();
        st.start_offset = st.start_offset.min(st.end_offset);
    }

    pub fn mark(&self) -> super::meta::PartitionMark {
        let st = self.lock();
        super::meta::PartitionMark {
            start: st.start_offset,
            floor: st.batches.first().map_or(st.end_offset, |b| b.base_offset),
        }
    }

    /// The first WAL batches from `tiered_end` on, visible to readers:
    /// `choose` sees them all (under the partition's lock, so it must be
    /// quick) and says how many to take. Tiering decides what a chunk holds.
    pub fn untiered(&self, choose: impl FnOnce(&[BatchRef]) -> usize) -> Vec<BatchRef> {
        let st = self.lock();
        let first = st.batches.partition_point(|b| b.end() <= st.tiered_end);
        let visible = st.batches[first..].partition_point(|b| b.end() <= st.visible_end());
        let rest = &st.batches[first..first + visible];
        let n = choose(rest).min(rest.len());
        rest[..n].to_vec()
    }

    /// Records and WAL bytes above `tiered_end`.
    pub fn lag(&self) -> Lag {
        let st = self.lock();
        let first = st.batches.partition_point(|b| b.end() <= st.tiered_end);
        let rest = &st.batches[first..];
        Lag {
            records: st.end_offset.saturating_sub(st.tiered_end),
            bytes: rest.iter().map(|b| b.location.len as u64).sum(),
        }
    }

    /// Notes that a committed manifest covers offsets below `end` (and that
    /// nothing below `start` is readable any more).
    pub fn set_tiered(&self, start: u64, end: u64) {
        let mut st = self.lock();
        st.tiered_end = st.tiered_end.max(end);
        let hot_start = st.batches.first().map_or(st.end_offset, |b| b.base_offset);
        st.start_offset = st.start_offset.max(start.min(hot_start));
    }

    /// The LSN of the first batch not yet in the object store, if any: the
    /// WAL may be trimmed up to it.
    pub fn trim_bound(&self) -> Option<u64> {
        let st = self.lock();
        let first = st.batches.partition_point(|b| b.end() <= st.tiered_end);
        st.batches.get(first).map(|b| b.lsn)
    }

    /// Forgets batches below `trim_lsn` (all tiered, see `trim_bound`).
    pub fn prune(&self, trim_lsn: u64) {
        let mut st = self.lock();
        let n = st.batches.partition_point(|b| b.lsn < trim_lsn);
        st.batches.drain(..n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(base: u64, count: u32) -> BatchRef {
        BatchRef {
            producer: None,
            base_offset: base,
            count,
            lsn: base + 1,
            trailer: 0,
            location: Location {
                segment: 1,
                pos: 0,
                len: 40 + 180 + 100,
            },
        }
    }

    #[test]
    fn plan_finds_the_batch_holding_the_offset_and_respects_limits() {
        let p = Partition::default();
        for i in 0..10 {
            assert!(p.commit(b(i * 10, 10)));
        }
        assert!(!p.commit(b(50, 10)), "replayed duplicate accepted");
        let hot = |(plan, _)| match plan {
            Plan::Hot(v) => v.iter().map(|b: &BatchRef| b.base_offset).collect::<Vec<_>>(),
            Plan::Cold { .. } => panic!("cold plan"),
        };
        let (plan, r) = p.plan(35, 12, usize::MAX).unwrap();
        assert_eq!((r.start, r.end), (0, 100));
        assert_eq!(hot((plan, r)), vec![30, 40]);
        assert_eq!(hot(p.plan(0, usize::MAX, 250).unwrap()).len(), 3);
        assert!(hot(p.plan(100, 10, 10).unwrap()).is_empty());
        assert_eq!(p.plan(101, 10, 10).unwrap_err().end, 100);
    }

    #[test]
    fn tiering_moves_the_hot_start_and_trim_bound() {
        let p = Partition::default();
        for i in 0..10 {
            assert!(p.commit(b(i * 10, 10)));
        }
        assert_eq!(p.trim_bound(), Some(1));
        assert_eq!(p.untiered(|b| b.len()).len(), 10, "every batch is offered");
        assert_eq!(p.untiered(|_| 3).len(), 3);
        assert_eq!(p.untiered(|_| 99).len(), 10, "never more than there are");
        p.set_tiered(0, 30);
        assert_eq!(p.lag().records, 70);
        assert_eq!(p.trim_bound(), Some(31), "first untiered batch (base 30) has lsn 31");
        p.prune(31);
        assert_eq!(p.mark().floor, 30);
        assert_eq!(p.plan(5, 10, 10).unwrap().0, Plan::Cold { until: 30 });
        assert!(matches!(p.plan(30, 10, 10).unwrap().0, Plan::Hot(_)));
        p.set_tiered(20, 100);
        assert_eq!(p.range().start, 20);
        assert_eq!(p.trim_bound(), None);
        assert_eq!(p.plan(19, 10, 10).unwrap_err().start, 20);
    }
}
