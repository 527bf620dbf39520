//! Acknowledgements in LSN order over uploads that finish in any order
//! (see docs/design/0004-object-wal.md). The object WAL keeps
//! several objects in flight; each holds the completions of its entries,
//! and an object's completions run only once it and every earlier object
//! are durable.
//!
//! Invariants: items are released in LSN order, each exactly once; nothing
//! is released while an earlier group is in flight; after a group fails,
//! it and every later group fail (their items are handed back for failing)
//! and nothing after the failure is ever released, which is exactly the
//! prefix recovery keeps (it stops at the first missing object).

use std::collections::BTreeMap;

struct Group<T> {
    last: u64,
    done: bool,
    items: Vec<T>,
}

/// Groups of items keyed by LSN ranges, released in LSN order.
pub struct InOrder<T> {
    /// First LSN not yet released.
    next: u64,
    groups: BTreeMap<u64, Group<T>>,
    /// Set once a group failed: the first LSN that will never be released.
    failed_at: Option<u64>,
    /// Groups released so far.
    released: u64,
}

impl<T> InOrder<T> {
    /// Nothing in flight; the next group starts at `next_lsn`.
    pub fn new(next_lsn: u64) -> Self {
        InOrder {
            next: next_lsn,
            groups: BTreeMap::new(),
            failed_at: None,
            released: 0,
        }
    }

    /// Adds the group `first..=last` (it must follow the previous one).
    /// After a failure the items come straight back (`Err`), to be failed:
    /// they can never be durable in order.
    pub fn push(&mut self, first: u64, last: u64, items: Vec<T>) -> Result<(), Vec<T>> {
        if self.failed_at.is_some() {
            return Err(items);
        }
        debug_assert!(last >= first);
        debug_assert_eq!(
            first,
            self.groups.last_key_value().map_or(self.next, |(_, g)| g.last + 1)
        );
        self.groups.insert(
            first,
            Group {
                last,
                done: false,
                items,
            },
        );
        Ok(())
    }

    /// The group starting at `first` is durable: returns whatever that
    /// makes releasable (maybe nothing, maybe several groups' items).
    pub fn complete(&mut self, first: u64) -> Vec<T> {
        if let Some(g) = self.groups.get_mut(&first) {
            g.done = true;
        }
        let mut out = Vec::new();
        while let Some(entry) = self.groups.first_entry() {
            if !entry.get().done || *entry.key() != self.next {
                break;
            }
            let g = entry.remove();
            self.next = g.last + 1;
            self.released += 1;
            out.extend(g.items);
        }
        out
    }

    /// The group starting at `first` failed for good: it and every later
    /// group are failed; earlier groups may still complete.
    pub fn fail(&mut self, first: u64) -> Vec<T> {
        self.failed_at = Some(self.failed_at.map_or(first, |f| f.min(first)));
        let later = self.groups.split_off(&first);
        later.into_values().flat_map(|g| g.items).collect()
    }

    /// Groups not yet released.
    pub fn in_flight(&self) -> usize {
        self.groups.len()
    }

    /// First LSN not yet released.
    pub fn next_lsn(&self) -> u64 {
        self.next
    }

    /// Groups released (acknowledged) so far.
    pub fn released(&self) -> u64 {
        self.released
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn later_uploads_wait_for_earlier_ones() {
        let mut q = InOrder::new(10);
        assert!(q.push(10, 12, vec![10, 11, 12]).is_ok());
        assert!(q.push(13, 13, vec![13]).is_ok());
        assert!(q.push(14, 15, vec![14, 15]).is_ok());
        assert_eq!(q.complete(14), Vec::<u64>::new(), "an earlier group is in flight");
        assert_eq!(q.complete(10), vec![10, 11, 12]);
        assert_eq!(
            q.complete(13),
            vec![13, 14, 15],
            "the finished later group follows at once"
        );
        assert_eq!((q.in_flight(), q.next_lsn(), q.released()), (0, 16, 3));
    }

    #[test]
    fn a_failure_fails_everything_after_it_and_releases_nothing_past_it() {
        let mut q = InOrder::new(0);
        for i in 0..4u64 {
            q.push(i * 10, i * 10 + 9, vec![i]).unwrap();
        }
        assert_eq!(q.complete(20), Vec::<u64>::new());
        assert_eq!(q.fail(10), vec![1, 2, 3], "the failed group and every later one");
        assert_eq!(q.complete(30), Vec::<u64>::new());
        assert_eq!(q.complete(0), vec![0], "an earlier group still completes");
        assert_eq!(q.push(40, 49, vec![4]), Err(vec![4]));
        assert_eq!(q.next_lsn(), 10);
    }

    proptest! {
        /// Any completion order, with or without one failure: items come
        /// out in order, once, only after every earlier group, and never
        /// from or past a failed group.
        #[test]
        fn releases_are_an_ordered_prefix(
            sizes in proptest::collection::vec(1u64..5, 1..30),
            order_seed in any::<u64>(),
            fail in proptest::option::of(0usize..30),
        ) {
            let n = sizes.len();
            let mut q = InOrder::new(0);
            let mut firsts = Vec::new();
            let mut lsn = 0;
            for s in &sizes {
                let items: Vec<u64> = (lsn..lsn + s).collect();
                q.push(lsn, lsn + s - 1, items).unwrap();
                firsts.push(lsn);
                lsn += s;
            }
            // A deterministic shuffle of the completion order.
            let mut order: Vec<usize> = (0..n).collect();
            let mut x = order_seed | 1;
            for i in (1..n).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let fail = fail.filter(|f| *f < n);
            let mut released = Vec::new();
            let mut failed = Vec::new();
            for (step, g) in order.iter().enumerate() {
                if Some(*g) == fail {
                    failed.extend(q.fail(firsts[*g]));
                    continue;
                }
                let got = q.complete(firsts[*g]);
                // Released only when every earlier group has completed.
                for item in &got {
                    let owner = firsts.iter().rposition(|f| f <= item).unwrap();
                    prop_assert!((0..owner).all(|e| order[..=step].contains(&e)));
                }
                released.extend(got);
            }
            let boundary = fail.map_or(lsn, |f| firsts[f]);
            let want: Vec<u64> = (0..boundary).collect();
            prop_assert_eq!(&released, &want, "released exactly the prefix, in order");
            prop_assert!(failed.iter().all(|i| *i >= boundary));
            prop_assert_eq!(released.len() + failed.len() + q.groups.values().map(|g| g.items.len()).sum::<usize>(), lsn as usize);
        }
    }
}
