//! Upload planning: which WAL batches go into which segment object
//! ([`plan_chunks`]) and how one object is cut into multipart-upload parts
//! ([`part_sizes`]).
//!
//! Invariants:
//! * a chunk plan covers every item exactly once, in order, with no empty
//!   chunk; a chunk's total is within the bound unless it is a single item
//!   that alone exceeds it;
//! * a part plan describes `total` exactly (`full_parts * part_bytes +
//!   last_part == total`) without materialising one entry per part, every part
//!   but the last is `part_bytes >= max(min_part_bytes, 1)`, and the last part
//!   is non-zero unless there are no parts at all (`total == 0`);
//! * all sums are `u64` with saturating/checked arithmetic: no overflow panic
//!   for any input.

use std::ops::Range;

pub use crate::objstore::S3_MIN_PART_BYTES;

/// One WAL batch to upload; a plan takes them in offset order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanItem {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Number of records in the batch.
    pub count: u32,
    /// Encoded size of the batch in bytes.
    pub bytes: u64,
}

/// Groups `items` into consecutive index ranges whose byte totals are at most
/// `chunk_bytes` (0 is treated as 1). An item larger than `chunk_bytes` forms
/// a chunk on its own. Returns no chunks for no items.
pub fn plan_chunks(items: &[PlanItem], chunk_bytes: u64) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let n = first_chunk_len(items[start..].iter().map(|i| i.bytes), chunk_bytes);
        chunks.push(start..start + n);
        start += n;
    }
    chunks
}

/// How many of the leading `sizes` form the first chunk of a plan (see
/// [`plan_chunks`]): at least one if there is any, and no more than fit in
/// `chunk_bytes`. Reads the sizes lazily, so a backlog of any length costs
/// only the chunk it plans.
pub fn first_chunk_len(sizes: impl IntoIterator<Item = u64>, chunk_bytes: u64) -> usize {
    let limit = chunk_bytes.max(1);
    let mut sum = 0u64;
    let mut n = 0;
    for bytes in sizes {
        match sum.checked_add(bytes) {
            Some(next) if n == 0 || next <= limit => sum = next,
            _ => break,
        }
        n += 1;
    }
    n
}

/// How a multipart upload of some total is cut: `full_parts` parts of
/// `part_bytes`, then one final part of `last_part` bytes (`0 < last_part <=
/// part_bytes`), or no parts at all when both are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSizes {
    /// Size of every part before the last; `>= 1`.
    pub part_bytes: u64,
    /// Number of parts before the last one.
    pub full_parts: u64,
    /// Size of the last part; 0 only when there are no parts.
    pub last_part: u64,
}

impl PartSizes {
    /// Number of parts (0 only for an empty upload).
    pub fn count(&self) -> u64 {
        self.full_parts.saturating_add(u64::from(self.last_part > 0))
    }

    /// The total byte count described (saturating; exact for plans made by
    /// [`part_sizes`]).
    pub fn total(&self) -> u64 {
        self.full_parts
            .saturating_mul(self.part_bytes)
            .saturating_add(self.last_part)
    }

    /// Part sizes in upload order, computed lazily.
    pub fn iter(&self) -> impl Iterator<Item = u64> + use<> {
        let part = self.part_bytes;
        (0..self.full_parts)
            .map(move |_| part)
            .chain((self.last_part > 0).then_some(self.last_part))
    }

    /// Byte range of part `index` (0-based) within the upload, or `None`
    /// past the last part.
    pub fn range(&self, index: u64) -> Option<Range<u64>> {
        let start = index.checked_mul(self.part_bytes)?;
        if index < self.full_parts {
            Some(start..start.checked_add(self.part_bytes)?)
        } else if index == self.full_parts && self.last_part > 0 {
            Some(start..start.checked_add(self.last_part)?)
        } else {
            None
        }
    }
}

/// Cuts an upload of `total` bytes into parts of `part_bytes` (raised to at
/// least `min_part_bytes` and 1), the last part possibly smaller.
pub fn part_sizes(total: u64, part_bytes: u64, min_part_bytes: u64) -> PartSizes {
    let part = part_bytes.max(min_part_bytes).max(1);
    if total == 0 {
        return PartSizes {
            part_bytes: part,
            full_parts: 0,
            last_part: 0,
        };
    }
    let (whole, rem) = (total / part, total % part);
    if rem == 0 {
        // `whole >= 1` because total > 0 and rem == 0.
        PartSizes {
            part_bytes: part,
            full_parts: whole - 1,
            last_part: part,
        }
    } else {
        PartSizes {
            part_bytes: part,
            full_parts: whole,
            last_part: rem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;

    fn items(sizes: &[u64]) -> Vec<PlanItem> {
        let mut offset = 0;
        sizes
            .iter()
            .map(|&bytes| {
                let item = PlanItem {
                    base_offset: offset,
                    count: 1,
                    bytes,
                };
                offset += 1;
                item
            })
            .collect()
    }

    fn chunk_total(items: &[PlanItem], r: &Range<usize>) -> u128 {
        items[r.clone()].iter().map(|i| u128::from(i.bytes)).sum()
    }

    /// Checks every plan invariant; used by the unit tests and properties.
    fn check_plan(items: &[PlanItem], chunk_bytes: u64, plan: &[Range<usize>]) {
        let limit = u128::from(chunk_bytes.max(1));
        let mut next = 0;
        for r in plan {
            assert_eq!(r.start, next, "chunks must be consecutive");
            assert!(r.end > r.start, "empty chunk {r:?}");
            assert!(
                r.len() == 1 || chunk_total(items, r) <= limit,
                "chunk {r:?} over {limit}"
            );
            next = r.end;
        }
        assert_eq!(next, items.len(), "chunks must cover all items");
    }

    #[test]
    fn chunks_over_more_than_4_gib() {
        let items = items(&[MIB; 10_000]);
        let plan = plan_chunks(&items, 512 * MIB);
        check_plan(&items, 512 * MIB, &plan);
        assert_eq!(plan.len(), 20); // 19 full chunks of 512 items and one of 272
        assert!(plan[..19].iter().all(|r| r.len() == 512));
        assert_eq!(plan[19], 9728..10_000);
    }

    #[test]
    fn oversized_item_goes_alone() {
        let items = items(&[10, 5 * GIB, 10, 10, u64::MAX, u64::MAX, 1]);
        let plan = plan_chunks(&items, 25);
        check_plan(&items, 25, &plan);
        assert_eq!(plan, vec![0..1, 1..2, 2..4, 4..5, 5..6, 6..7]);
    }

    #[test]
    fn chunk_edge_cases() {
        assert!(plan_chunks(&[], 10).is_empty());
        // chunk_bytes 0 acts as 1: zero-byte items still pack together.
        let items = items(&[0, 0, 1, 1, 0]);
        assert_eq!(plan_chunks(&items, 0), vec![0..3, 3..5]);
        // Sums beyond u64 do not overflow.
        let items = self::items(&[u64::MAX - 1, 1, 1]);
        assert_eq!(plan_chunks(&items, u64::MAX), vec![0..2, 2..3]);
    }

    #[test]
    fn parts_of_large_totals() {
        for (total, part) in [
            ((1 << 31) + 1, 8 * MIB),
            ((1 << 32) + 7, 64 * MIB),
            (5 * GIB, 100 * MIB),
            (17 * TIB, GIB),
        ] {
            let p = part_sizes(total, part, S3_MIN_PART_BYTES);
            assert_eq!(p.part_bytes, part);
            assert_eq!(p.total(), total);
            assert_eq!(p.count(), total.div_ceil(part));
            assert!(p.last_part > 0 && p.last_part <= part);
            let range = p.range(p.count() - 1).unwrap();
            assert_eq!((range.end, range.end - range.start), (total, p.last_part));
            assert_eq!(p.range(p.count()), None);
        }
        assert_eq!(part_sizes((1 << 31) + 1, 8 * MIB, S3_MIN_PART_BYTES).last_part, 1);
        assert_eq!(part_sizes(5 * GIB, 100 * MIB, 0).last_part, 20 * MIB);
        let exact = part_sizes(17 * TIB, GIB, S3_MIN_PART_BYTES);
        assert_eq!((exact.full_parts, exact.last_part), (17 * 1024 - 1, GIB));
    }

    #[test]
    fn part_size_clamping_and_empty() {
        let empty = part_sizes(0, 1, S3_MIN_PART_BYTES);
        assert_eq!((empty.count(), empty.iter().count(), empty.range(0)), (0, 0, None));
        let clamped = part_sizes(12 * MIB, 1, S3_MIN_PART_BYTES);
        assert_eq!(clamped.iter().collect::<Vec<_>>(), vec![5 * MIB, 5 * MIB, 2 * MIB]);
        assert_eq!(part_sizes(3, 0, 0).iter().collect::<Vec<_>>(), vec![1, 1, 1]);
        let small = part_sizes(MIB, 8 * MIB, S3_MIN_PART_BYTES);
        assert_eq!(small.iter().collect::<Vec<_>>(), vec![MIB]);
        let max = part_sizes(u64::MAX, u64::MAX / 2, 0);
        assert_eq!((max.full_parts, max.last_part, max.total()), (2, 1, u64::MAX));
        assert_eq!(max.range(2), Some(u64::MAX - 1..u64::MAX));
    }

    proptest! {
        #[test]
        fn prop_chunks_cover_in_order_within_bound(
            sizes in prop::collection::vec(prop_oneof![0..4096u64, 0..u64::MAX], 0..200),
            chunk_bytes in prop_oneof![0..8192u64, Just(u64::MAX)],
        ) {
            let items = items(&sizes);
            let plan = plan_chunks(&items, chunk_bytes);
            check_plan(&items, chunk_bytes, &plan);
            // Greedy: a chunk closes only because the next item would not fit.
            for w in plan.windows(2) {
                let grown = chunk_total(&items, &(w[0].start..w[1].start + 1));
                prop_assert!(grown > u128::from(chunk_bytes.max(1)));
            }
        }

        #[test]
        fn prop_parts_arithmetic_exact(total: u64, part in 0..u64::MAX, min in 0..(64 * MIB)) {
            let p = part_sizes(total, part, min);
            let exact = u128::from(p.full_parts) * u128::from(p.part_bytes) + u128::from(p.last_part);
            prop_assert_eq!(exact, u128::from(total));
            prop_assert!(p.part_bytes >= min.max(1) && p.part_bytes >= part);
            prop_assert_eq!(p.last_part == 0, total == 0);
            prop_assert!(p.last_part <= p.part_bytes);
        }

        #[test]
        fn prop_parts_iterate_to_total(total in 0..(1u64 << 20), part in 0..4096u64, min in 0..1024u64) {
            let p = part_sizes(total, part, min);
            let parts: Vec<u64> = p.iter().collect();
            prop_assert_eq!(parts.iter().sum::<u64>(), total);
            prop_assert_eq!(parts.len() as u64, p.count());
            if let Some((_, full)) = parts.split_last() {
                prop_assert!(full.iter().all(|&s| s == p.part_bytes && s >= min));
            }
            prop_assert!(parts.iter().all(|&s| s > 0));
            let mut offset = 0;
            for (i, &s) in parts.iter().enumerate() {
                prop_assert_eq!(p.range(i as u64), Some(offset..offset + s));
                offset += s;
            }
        }
    }
}
