//! The sparse time index of a partition: where to start looking for the
//! first record at or after a time (Kafka ListOffsets by timestamp, and
//! `?timestamp=` on HTTP reads).
//!
//! It keeps points: an offset and the largest timestamp of all records below
//! it (or a value above that). Those maxima never decrease along the
//! offsets, so a binary search finds the last point whose records are all
//! older than the time asked for; the answer is at or after it and, unless
//! compaction removed records since, before the next point. Points come
//! from two sources:
//! * tiered segments whose manifest entry records their largest timestamp:
//!   one point per segment boundary, without reading the segment;
//! * records read through the normal read path (WAL, cache or object store
//!   for older segments): one point every [`EVERY`] records.
//!
//! Derived state, never stored: it is built on first use and extended by
//! later lookups with the records appended since. After a restart it is
//! rebuilt the same way — from the manifest for tiered data, by reading the
//! rest. A lookup reads from its point to the answer: at most about
//! [`EVERY`] records in read data; in tiered data, from the first batch
//! whose largest timestamp (in the segment's index) is recent enough.
//! Retention and compaction only remove records, which can only lower a
//! prefix maximum: the points stay safe lower bounds for where to start, so
//! answers stay exact; compaction can only make the read after the point
//! longer.

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
    /// A record or span was observed.
    observed: bool,
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
        self.observed = true;
        self.covered = offset.saturating_add(1);
        self.since_point += 1;
    }

    /// Takes a tiered span `base..end` whose records are all at or below
    /// `max_timestamp_ms` as observed, if it starts at or before
    /// `covered()` and ends after it (else it is ignored).
    pub(super) fn observe_span(&mut self, base: u64, end: u64, max_timestamp_ms: u64) {
        if base > self.covered || end <= self.covered {
            return;
        }
        if self.covered > 0 && self.points.last().is_none_or(|(o, _)| *o < self.covered) {
            self.points.push((self.covered, self.max));
        }
        self.max = self.max.max(max_timestamp_ms);
        self.observed = true;
        self.covered = end;
        // The next record or span starts a point where this span ends.
        self.since_point = EVERY;
    }

    /// Moves `covered()` up to `start` (records below a partition's start
    /// can no longer be read, so no answer lies there).
    pub(super) fn skip_to(&mut self, start: u64) {
        self.covered = self.covered.max(start);
    }

    /// An offset below which every record is older than `timestamp_ms`.
    pub(super) fn start_for(&self, timestamp_ms: u64) -> u64 {
        let i = self.points.partition_point(|(_, max)| *max < timestamp_ms);
        match i {
            0 => 0,
            i => self.points[i - 1].0,
        }
    }

    /// The largest timestamp observed (`None` before any record). Records
    /// deleted since may have held it: at least every live record's.
    pub(super) fn max(&self) -> Option<u64> {
        self.observed.then_some(self.max)
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
        idx.observe(3, u64::MAX); // already covered: ignored
        assert_eq!(idx.covered(), n);
        assert_eq!(idx.max(), Some(ts(n - 1)));
        assert_eq!(TimeIndex::default().max(), None);
    }

    #[test]
    fn spans_give_points_at_their_bounds_and_records_follow() {
        let mut idx = TimeIndex::default();
        idx.skip_to(100); // records below 100 were deleted
        idx.observe_span(0, 50, 9); // wholly below: ignored
        idx.observe_span(200, 300, 9); // leaves a hole: ignored
        assert_eq!(idx.covered(), 100);
        // Segments 100..1000 (times up to 500) and 1000..2000 (up to 900).
        idx.observe_span(50, 1_000, 500);
        idx.observe_span(1_000, 2_000, 900);
        idx.observe_span(1_500, 1_800, 5_000); // already covered: ignored
        assert_eq!(idx.covered(), 2_000);
        for o in 2_000..2_010 {
            idx.observe(o, 1_000 + o);
        }
        assert_eq!(idx.start_for(400), 100, "may lie in the first segment");
        assert_eq!(idx.start_for(501), 1_000, "the first segment is older");
        assert_eq!(idx.start_for(900), 1_000);
        assert_eq!(idx.start_for(901), 2_000, "both segments are older");
        assert_eq!(idx.start_for(u64::MAX), 2_000);
        assert_eq!(idx.points(), 3);
    }
}
