//! Which objects an object-store WAL replays on recovery (see
//! docs/design/0004-object-wal.md), as pure decisions over what a listing
//! and the objects' headers say, so every rule is tested without a store.
//!
//! Rules, in order:
//! 1. **Zombies:** an object of epoch `e` whose first LSN is at or above the
//!    start LSN claimed by any newer epoch was written by a fenced writer
//!    after the takeover; it is ignored (it was never acknowledged).
//! 2. **Trim:** the trim point is the largest trim LSN in any valid header
//!    (a trim is only recorded for data already durable elsewhere, so a
//!    later header's claim is true even past a gap). Objects wholly below
//!    it are dead: ignored, and deletable. A failed delete therefore never
//!    resurrects trimmed data.
//! 3. **Prefix:** from the trim point on, objects must chain without a gap
//!    (`first_lsn == previous last_lsn + 1`, the first one covering the
//!    trim point, or the log's first LSN when nothing was trimmed); replay stops at the first gap, unreadable header or
//!    overlap, and everything after it is ignored (never acknowledged:
//!    acknowledgements wait for every earlier object). An unreadable object
//!    is dead only if a readable object keyed after it starts at or below
//!    the trim point; otherwise the chain stops there and it is kept.

use super::error::Corruption;
use super::object_format::ObjectHeader;

/// An object as listed: its key's LSN and epoch, and its header as read
/// (or why it could not be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub first_lsn: u64,
    pub epoch: u64,
    pub header: Result<ObjectHeader, Corruption>,
}

/// A writer's epoch and the first LSN it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub epoch: u64,
    pub start_lsn: u64,
}

/// What recovery replays and what it leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Entries below this are not live.
    pub trim_lsn: u64,
    /// Objects to replay, in LSN order (keys).
    pub replay: Vec<String>,
    /// The LSN the next write gets.
    pub next_lsn: u64,
    /// Wholly below the trim point: safe to delete.
    pub dead: Vec<String>,
    /// Written by a fenced writer after a newer epoch took over.
    pub zombies: Vec<String>,
    /// Where replay stopped and why, with every object ignored from there.
    pub cut: Option<(String, String)>,
    pub ignored: Vec<String>,
}

/// Decides recovery from a listing (any order), the epoch claims and the
/// trim point persisted apart from the objects (`trim_floor`, 0 if none).
pub fn plan(mut listed: Vec<Listed>, claims: &[Claim], trim_floor: u64) -> Plan {
    let mut out = Plan::default();
    listed.sort_by_key(|l| (l.first_lsn, l.epoch));
    // 1. Zombies.
    listed.retain(|l| {
        let zombie = claims.iter().any(|c| c.epoch > l.epoch && l.first_lsn >= c.start_lsn);
        if zombie {
            out.zombies.push(l.key.clone());
        }
        !zombie
    });
    // 2. Trim point.
    out.trim_lsn = listed
        .iter()
        .filter_map(|l| l.header.as_ref().ok())
        .map(|h| h.trim_lsn)
        .fold(trim_floor, u64::max);
    // The chain must reach back to here: the trim point, or the log's
    // first LSN. (An object WAL written before LSN 0 was ruled out may
    // start at 0; such a chain fits too, and is replayed whole.)
    let start = out.trim_lsn.max(super::FIRST_LSN);
    out.next_lsn = start;
    // A readable object starting at or below the trim point proves every
    // object keyed before it holds only trimmed entries.
    let covered_below = listed
        .iter()
        .filter(|l| l.header.as_ref().is_ok_and(|h| h.first_lsn == l.first_lsn) && l.first_lsn <= out.trim_lsn)
        .map(|l| l.first_lsn)
        .max();
    // 3. The chain from the trim point.
    let mut expected: Option<u64> = None;
    let mut stopped = false;
    for l in listed {
        if stopped {
            out.ignored.push(l.key);
            continue;
        }
        let h = match &l.header {
            Ok(h) if h.first_lsn == l.first_lsn && h.epoch == l.epoch => *h,
            Ok(_) => {
                out.cut = Some((l.key.clone(), "its header does not match its key".into()));
                stopped = true;
                out.ignored.push(l.key);
                continue;
            }
            // Dead only if a readable later object starts at or below the
            // trim point; otherwise it may hold live entries: stop (and
            // keep it) rather than delete it.
            Err(_) if expected.is_none() && covered_below.is_some_and(|c| c > l.first_lsn) => {
                out.dead.push(l.key);
                continue;
            }
            Err(e) => {
                out.cut = Some((l.key.clone(), format!("unreadable header: {e}")));
                stopped = true;
                out.ignored.push(l.key);
                continue;
            }
        };
        if h.last_lsn < out.trim_lsn {
            out.dead.push(l.key);
            continue;
        }
        let fits = match expected {
            None => h.first_lsn <= start,
            Some(e) => h.first_lsn == e,
        };
        if !fits {
            let want = expected.unwrap_or(start);
            out.cut = Some((
                l.key.clone(),
                format!("expected LSN {want}, the object starts at {}", h.first_lsn),
            ));
            stopped = true;
            out.ignored.push(l.key);
            continue;
        }
        expected = Some(h.last_lsn + 1);
        out.next_lsn = h.last_lsn + 1;
        out.replay.push(l.key);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::FIRST_LSN;
    use crate::wal::object_format::object_key;

    fn obj(first: u64, last: u64, epoch: u64, trim: u64) -> Listed {
        Listed {
            key: object_key(first, epoch),
            first_lsn: first,
            epoch,
            header: Ok(ObjectHeader {
                epoch,
                first_lsn: first,
                last_lsn: last,
                trim_lsn: trim,
                entries: (last - first + 1) as u32,
                created_ms: 0,
            }),
        }
    }

    fn keys(v: &[(u64, u64)]) -> Vec<String> {
        v.iter().map(|(l, e)| object_key(*l, *e)).collect()
    }

    #[test]
    fn a_clean_chain_replays_whole_in_lsn_order() {
        let p = plan(vec![obj(11, 20, 1, 0), obj(1, 10, 1, 0), obj(21, 21, 1, 0)], &[], 0);
        assert_eq!(p.replay, keys(&[(1, 1), (11, 1), (21, 1)]));
        assert_eq!((p.trim_lsn, p.next_lsn, p.cut), (0, 22, None));
        // A new log starts at the first LSN, never at 0.
        let empty = plan(Vec::new(), &[], 0);
        assert_eq!((empty.next_lsn, empty.replay.len(), empty.cut), (FIRST_LSN, 0, None));
        // A log whose first object is missing is cut there, not started later.
        let p = plan(vec![obj(2, 10, 1, 0)], &[], 0);
        assert!(p.replay.is_empty(), "{p:?}");
        assert!(p.cut.as_ref().is_some_and(|c| c.1.contains("expected LSN 1")), "{p:?}");
        // A log from when object WALs began at LSN 0 is replayed whole.
        let p = plan(vec![obj(0, 10, 1, 0), obj(11, 11, 1, 0)], &[], 0);
        assert_eq!((p.replay.len(), p.next_lsn, p.cut), (2, 12, None));
    }

    #[test]
    fn a_missing_object_in_the_middle_drops_everything_after_it() {
        let p = plan(vec![obj(0, 10, 1, 0), obj(21, 30, 1, 0), obj(31, 40, 1, 0)], &[], 0);
        assert_eq!(p.replay, keys(&[(0, 1)]));
        assert_eq!(p.next_lsn, 11);
        assert!(p.cut.as_ref().unwrap().1.contains("expected LSN 11"), "{:?}", p.cut);
        assert_eq!(p.ignored, keys(&[(21, 1), (31, 1)]));
    }

    #[test]
    fn a_corrupt_header_stops_replay_there() {
        let mut bad = obj(11, 20, 1, 0);
        bad.header = Err(Corruption::BadCrc);
        let p = plan(vec![obj(0, 10, 1, 0), bad, obj(21, 30, 1, 0)], &[], 0);
        assert_eq!(p.replay, keys(&[(0, 1)]));
        assert!(p.cut.unwrap().1.contains("CRC"));
        // Unreadable but below the trim point: dead, not a reason to stop.
        let mut dead = obj(0, 10, 1, 0);
        dead.header = Err(Corruption::Truncated);
        let p = plan(vec![dead.clone(), obj(11, 20, 1, 11)], &[], 0);
        assert_eq!((p.replay, p.dead, p.cut), (keys(&[(11, 1)]), keys(&[(0, 1)]), None));
        // ... unless it may hold live entries: then the chain stops there,
        // and the object is kept (ignored), never deleted.
        let p = plan(vec![dead, obj(11, 20, 1, 5)], &[], 0);
        assert!(p.replay.is_empty() && p.cut.is_some(), "{p:?}");
        assert!(p.dead.is_empty() && p.ignored.contains(&object_key(0, 1)), "{p:?}");
        // A header that names another LSN than its key does not pass either.
        let mut lying = obj(11, 20, 1, 0);
        lying.first_lsn = 12;
        lying.key = object_key(12, 1);
        let p = plan(vec![obj(0, 10, 1, 0), lying], &[], 0);
        assert_eq!(p.replay, keys(&[(0, 1)]));
    }

    #[test]
    fn a_trim_whose_deletes_failed_does_not_resurrect_trimmed_data() {
        // Objects 0..=10 and 11..=20 were trimmed (trim 21 is in the newest
        // header) but their deletes failed.
        let p = plan(vec![obj(0, 10, 1, 0), obj(11, 20, 1, 5), obj(21, 30, 1, 21)], &[], 0);
        assert_eq!(p.trim_lsn, 21);
        assert_eq!(p.replay, keys(&[(21, 1)]));
        assert_eq!(p.dead, keys(&[(0, 1), (11, 1)]));
        assert_eq!(p.next_lsn, 31);
        // The trim point inside an object: that object is still replayed
        // (entries below the trim are skipped by the replay, not here).
        let p = plan(vec![obj(0, 10, 1, 0), obj(11, 20, 1, 15)], &[], 0);
        assert_eq!(p.replay, keys(&[(11, 1)]));
        // Everything trimmed and deleted: the next write continues at the trim.
        let p = plan(vec![obj(11, 20, 1, 21)], &[], 0);
        assert_eq!((p.replay.len(), p.next_lsn), (0, 21));
        // An object starting above the trim with the one before it missing.
        let p = plan(vec![obj(30, 40, 1, 21)], &[], 0);
        assert!(p.replay.is_empty() && p.cut.is_some(), "{p:?}");
        // A trim persisted apart from the headers (a checkpoint) counts too,
        // even when no object written after it carries it.
        let p = plan(vec![obj(0, 10, 1, 0), obj(11, 20, 1, 0)], &[], 11);
        assert_eq!(
            (p.trim_lsn, p.replay.clone(), p.dead.clone()),
            (11, keys(&[(11, 1)]), keys(&[(0, 1)]))
        );
        assert_eq!(p.next_lsn, 21);
    }

    #[test]
    fn a_fenced_writers_late_objects_are_ignored() {
        // Epoch 2 took over at LSN 21; epoch 1 kept writing 21..=25 (never
        // acknowledged), and epoch 2 wrote 21..=30.
        let claims = [
            Claim { epoch: 1, start_lsn: 0 },
            Claim {
                epoch: 2,
                start_lsn: 21,
            },
        ];
        let listed = vec![
            obj(0, 20, 1, 0),
            obj(21, 25, 1, 0),
            obj(21, 30, 2, 0),
            obj(31, 31, 2, 0),
        ];
        let p = plan(listed, &claims, 0);
        assert_eq!(p.zombies, keys(&[(21, 1)]));
        assert_eq!(p.replay, keys(&[(0, 1), (21, 2), (31, 2)]));
        assert_eq!(p.next_lsn, 32);
        // Before epoch 2 wrote anything, epoch 1's late object is still a zombie.
        let p = plan(vec![obj(0, 20, 1, 0), obj(21, 25, 1, 0)], &claims, 0);
        assert_eq!((p.replay, p.next_lsn), (keys(&[(0, 1)]), 21));
    }
}
