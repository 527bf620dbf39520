//! The compaction rules, as pure functions over plugin decisions: pass 1
//! fills the key map, pass 2 decides record by record what stays.
//!
//! Invariants: offsets are never changed (kept records keep theirs, removed
//! ones leave gaps); a record is removed only when a newer record with its
//! key exists, it is marked `drop`, or it is a tombstone older than
//! `delete_retention`; `keep-always` records are never removed.

use super::keymap::{Full, KeyMap};
use crate::plugin::Decision;

/// Pass 1: records the keys of decisions in offset order. Returns the
/// offset of the first record whose key did not fit (compaction then covers
/// only the offsets below it), or `None` if all fitted.
pub fn fill<'a>(map: &mut KeyMap, decided: impl IntoIterator<Item = (u64, &'a Decision)>) -> Option<u64> {
    for (offset, d) in decided {
        let r = match d {
            Decision::Key(k) => map.record(k, offset, false),
            Decision::Tombstone(k) => map.record(k, offset, true),
            Decision::KeepAlways | Decision::Drop => Ok(()),
        };
        if r == Err(Full) {
            return Some(offset);
        }
    }
    None
}

/// Pass 2: whether the record at `offset` stays. `expired` says whether a
/// tombstone here is older than `delete_retention`.
pub fn keep(map: &KeyMap, offset: u64, decision: &Decision, expired: bool) -> bool {
    let newest = |k: &[u8]| map.latest(k).is_none_or(|l| l.offset <= offset);
    match decision {
        Decision::KeepAlways => true,
        Decision::Drop => false,
        Decision::Key(k) => newest(k),
        Decision::Tombstone(k) => !expired && newest(k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Decision {
        Decision::Key(k.as_bytes().to_vec())
    }

    fn tomb(k: &str) -> Decision {
        Decision::Tombstone(k.as_bytes().to_vec())
    }

    /// Offsets that survive one full compaction of `log` (tombstones older
    /// than `expired_below` expire).
    fn compact(log: &[Decision], memory: u64, expired_below: u64) -> (Vec<u64>, Option<u64>) {
        let mut map = KeyMap::with_memory(memory);
        let stop = fill(&mut map, log.iter().enumerate().map(|(o, d)| (o as u64, d)));
        let end = stop.unwrap_or(log.len() as u64);
        let kept = (0..end)
            .filter(|&o| keep(&map, o, &log[o as usize], o < expired_below))
            .chain(end..log.len() as u64)
            .collect();
        (kept, stop)
    }

    #[test]
    fn latest_per_key_keep_always_and_drop() {
        let log = [
            key("a"),
            key("b"),
            Decision::KeepAlways,
            key("a"),
            Decision::Drop,
            key("c"),
            key("b"),
        ];
        let (kept, stop) = compact(&log, 1 << 20, 0);
        assert_eq!(stop, None);
        assert_eq!(kept, vec![2, 3, 5, 6], "offsets preserved, latest per key");
    }

    #[test]
    fn tombstones_delete_older_records_and_expire_themselves() {
        let log = [key("a"), key("b"), tomb("a"), key("b"), tomb("b"), key("b")];
        // Young tombstones stay; older records of their keys go.
        let (kept, _) = compact(&log, 1 << 20, 0);
        assert_eq!(kept, vec![2, 5]);
        // Once expired, the latest tombstone goes too; a newer value of the
        // key (offset 5) is untouched.
        let (kept, _) = compact(&log, 1 << 20, u64::MAX);
        assert_eq!(kept, vec![5]);
    }

    #[test]
    fn a_full_map_compacts_only_the_prefix_it_covers() {
        // The smallest map holds 3 keys: the 4th distinct key stops pass 1.
        let mut map = KeyMap::with_memory(1);
        assert_eq!(map.max_keys(), 3);
        let log = [key("a"), key("b"), key("a"), key("c"), key("d"), key("a")];
        let stop = fill(&mut map, log.iter().enumerate().map(|(o, d)| (o as u64, d)));
        assert_eq!(stop, Some(4));
        let (kept, _) = compact(&log, 1, 0);
        // Below 4: a@0 superseded by a@2; a@5 is beyond the covered prefix,
        // so a@2 stays until the next round.
        assert_eq!(kept, vec![1, 2, 3, 4, 5]);
        // The next round, starting at the stop, finishes the job.
        let mut next = KeyMap::with_memory(1);
        assert_eq!(fill(&mut next, [(2u64, &log[2]), (4, &log[4]), (5, &log[5])]), None);
        assert!(!keep(&next, 2, &log[2], false), "a@2 now superseded by a@5");
    }
}
