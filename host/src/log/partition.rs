//! One partition's in-memory index: which batches hold which offsets.
//!
//! The index is derived state, rebuilt from the WAL on start-up. Invariants:
//! * `batches` is sorted by base offset and holds only durable batches;
//! * `end_offset` (the next offset a reader may wait for) only grows, and is
//!   the end of the last durable batch;
//! * `next_offset >= end_offset`: offsets handed to appends in flight.

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
}

impl BatchRef {
    pub fn end(&self) -> u64 {
        self.base_offset + self.count as u64
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub next_offset: u64,
    pub end_offset: u64,
    pub start_offset: u64,
    pub batches: Vec<BatchRef>,
}

#[derive(Debug, Default)]
pub struct Partition {
    pub state: Mutex<State>,
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
        st.end_offset = b.end();
        st.next_offset = st.next_offset.max(st.end_offset);
        st.batches.push(b);
        true
    }

    pub fn range(&self) -> Range {
        let st = self.lock();
        Range {
            start: st.start_offset,
            end: st.end_offset,
        }
    }

    /// Batches to read for `offset`, stopping once the estimated size reaches
    /// `max_bytes` or the records reach `max_records`. `Err(range)` when the
    /// offset is outside `start..=end`.
    pub fn plan(&self, offset: u64, max_records: usize, max_bytes: usize) -> Result<(Vec<BatchRef>, Range), Range> {
        let st = self.lock();
        let range = Range {
            start: st.start_offset,
            end: st.end_offset,
        };
        if offset < range.start || offset > range.end {
            return Err(range);
        }
        let first = st.batches.partition_point(|b| b.end() <= offset);
        let mut plan = Vec::new();
        let (mut records, mut bytes) = (0usize, 0usize);
        for b in &st.batches[first..] {
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
        Ok((plan, range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(base: u64, count: u32) -> BatchRef {
        BatchRef {
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
        let (plan, r) = p.plan(35, 12, usize::MAX).unwrap();
        assert_eq!((r.start, r.end), (0, 100));
        assert_eq!(plan.iter().map(|b| b.base_offset).collect::<Vec<_>>(), vec![30, 40]);
        let (plan, _) = p.plan(0, usize::MAX, 250).unwrap();
        assert_eq!(plan.len(), 3);
        assert!(p.plan(100, 10, 10).unwrap().0.is_empty());
        assert_eq!(p.plan(101, 10, 10).unwrap_err().end, 100);
    }
}
