//! Upload planning: how many WAL batches go into the next segment object
//! ([`first_chunk_len`]).
//!
//! Invariants: the first chunk holds at least one batch if there is any; its
//! total is within the bound unless it is a single batch that alone exceeds
//! it; sums are checked, so no input overflows.

/// How many of the leading `sizes` form the next chunk: at least one if
/// there is any, and no more than fit in `chunk_bytes` (0 counts as 1). Reads the sizes lazily, so a backlog of any length costs
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

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::*;
    use proptest::prelude::*;

    /// One WAL batch to upload.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct PlanItem {
        base_offset: u64,
        count: u32,
        bytes: u64,
    }

    /// A whole backlog cut into chunks by repeated [`first_chunk_len`], as
    /// the uploader does one round at a time.
    fn plan_chunks(items: &[PlanItem], chunk_bytes: u64) -> Vec<Range<usize>> {
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < items.len() {
            let n = first_chunk_len(items[start..].iter().map(|i| i.bytes), chunk_bytes);
            chunks.push(start..start + n);
            start += n;
        }
        chunks
    }

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

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


    }
}
