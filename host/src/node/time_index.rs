//! The sparse time index of a partition: where to start looking for the
//! first record at or after a time (Kafka ListOffsets by timestamp, and
//! `?timestamp=` on HTTP reads).
//!
//! Every [`EVERY`] records it keeps a point: an offset and the largest
//! timestamp of all records below it. Those maxima never decrease along the
//! offsets, so a binary search finds the last point whose records are all
//! older than the time asked for; the answer is at or after it and, unless
//! compaction removed records since, before the next point — a lookup reads
//! at most about [`EVERY`] records.
//!
//! Derived state, never stored: it is built on first use by reading the
//! partition through the normal read path (WAL, cache or object store, so
//! tiering is covered) and extended by later lookups with the records
//! appended since. After a restart it is rebuilt the same way. Retention and
//! compaction only remove records, which can only lower a prefix maximum:
//! the points stay safe lower bounds for where to start, so answers stay
//! exact; compaction can only make the read after the point longer.

/// Records between two points.
pub(super) const EVERY: u64 = 1024;

#[derive(Debug, Default)]
pub(super) struct TimeIndex {
    /// (offset, largest timestamp of the records below it), offsets increasing.
    points: Vec<(u64, u64)>,
    /// Records below this offset have been observed.
    covered: u64,
    /// Largest timestamp observed.
    max: u64,
    /// Records observed since the last point.
    since_point: u64,
}

impl TimeIndex {
    /// The offset from which every record not yet observed follows.
    pub(super) fn covered(&self) -> u64 {
        self.covered
    }

    /// Observes the next record (offsets strictly increasing).
    pub(super) fn observe(&mut self, offset: u64, timestamp_ms: u64) {
        if offset < self.covered {
            return;
        }
        if self.since_point >= EVERY {
            self.points.push((offset, self.max));
            self.since_point = 0;
        }
        self.max = self.max.max(timestamp_ms);
        self.covered = offset.saturating_add(1);
        self.since_point += 1;
    }

    /// An offset below which every record is older than `timestamp_ms`.
    pub(super) fn start_for(&self, timestamp_ms: u64) -> u64 {
        let i = self.points.partition_point(|(_, max)| *max < timestamp_ms);
        match i {
            0 => 0,
            i => self.points[i - 1].0,
        }
    }

    #[cfg(test)]
    pub(super) fn points(&self) -> usize {
        self.points.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_is_a_safe_lower_bound_close_to_the_answer() {
        // Timestamps mostly rising with some out of order.
        let ts = |o: u64| 1_000 + o * 10 - if o.is_multiple_of(97) { 500 } else { 0 };
        let mut idx = TimeIndex::default();
        let n = 10 * EVERY + 17;
        for o in 0..n {
            idx.observe(o, ts(o));
        }
        assert_eq!(idx.points(), 10);
        for target in [0, 999, 1_000, 5_555, 50_000, 1_000 + (n - 1) * 10, u64::MAX] {
            let start = idx.start_for(target);
            let first = (0..n).find(|o| ts(*o) >= target);
            // Nothing before `start` matches, and the match is close after it.
            assert!((0..start).all(|o| ts(o) < target), "target {target}");
            if let Some(first) = first {
                assert!(
                    first >= start && first - start <= EVERY,
                    "target {target}: {start}..{first}"
                );
            }
        }
        idx.observe(3, 0); // already covered: ignored
        assert_eq!(idx.covered(), n);
    }
}
