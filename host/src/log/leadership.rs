//! A replicated partition's leadership: its leader, epoch, and the epoch
//! history (Kafka's leader-epoch cache) that truncation, the replication
//! fetch and Kafka's OffsetForLeaderEpoch read.
//!
//! Invariant: `history` is ascending in both epoch and start offset, and
//! holds no epoch newer than `epoch`.

use serde::{Deserialize, Serialize};

/// Who leads a replicated partition, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leadership {
    pub leader: u32,
    pub epoch: u32,
    /// `(epoch, first offset written in it)`, ascending in both: the epoch
    /// of the record at offset `o` is the last entry with a start `<= o`.
    pub history: Vec<(u32, u64)>,
}

impl Leadership {
    /// The first leadership of a partition: its first replica, epoch 0.
    pub fn initial(leader: u32) -> Self {
        Leadership {
            leader,
            epoch: 0,
            history: vec![(0, 0)],
        }
    }

    /// The epoch of the last record below `end` (`None` when empty).
    pub fn last_epoch(&self, end: u64) -> Option<u32> {
        self.history
            .iter()
            .rev()
            .find(|(_, start)| *start < end)
            .map(|(e, _)| *e)
    }

    /// Where the records of `epoch` end in a log ending at `end`: the start
    /// of the first later epoch, or `end` for the newest. `None` for an
    /// epoch newer than the current one (the asker is ahead of us).
    pub fn end_of_epoch(&self, epoch: u32, end: u64) -> Option<u64> {
        self.epoch_end(epoch, end).map(|(_, ends)| ends)
    }

    /// Kafka's OffsetForLeaderEpoch on a log ending at `end`: the newest
    /// epoch at most `epoch` this history knows (or `epoch` itself when it
    /// predates the history) and where it ends, the start of the first
    /// later epoch (`end` for the current one). `None` for an epoch newer
    /// than the current one.
    pub fn epoch_end(&self, epoch: u32, end: u64) -> Option<(u32, u64)> {
        if epoch > self.epoch {
            return None;
        }
        if epoch == self.epoch {
            return Some((epoch, end));
        }
        let floor = self.history.iter().rev().find(|(e, _)| *e <= epoch).map(|(e, _)| *e);
        let ends = self
            .history
            .iter()
            .find(|(e, _)| *e > epoch)
            .map_or(end, |(_, start)| (*start).min(end));
        Some((floor.unwrap_or(epoch), ends))
    }

    /// Starts `epoch` with `leader` at offset `start`.
    pub fn begin(&mut self, epoch: u32, leader: u32, start: u64) {
        self.history.retain(|(e, s)| *e < epoch && *s <= start);
        self.history.push((epoch, start));
        self.epoch = epoch;
        self.leader = leader;
    }

    /// Forgets epochs that started at or after `offset` (a truncation).
    pub fn truncate(&mut self, offset: u64) {
        self.history.retain(|(_, s)| *s < offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_ends_follow_kafkas_leader_epoch_cache() {
        // Epoch 0 wrote 0..100, epoch 1 nothing, epoch 3 from 100 on (2
        // never led); the log ends at 150.
        let mut l = Leadership::initial(1);
        l.begin(1, 2, 100);
        l.begin(3, 1, 100);
        assert_eq!(l.history, vec![(0, 0), (1, 100), (3, 100)]);
        assert_eq!(l.epoch_end(3, 150), Some((3, 150)));
        assert_eq!(l.epoch_end(0, 150), Some((0, 100)));
        assert_eq!(l.epoch_end(1, 150), Some((1, 100)));
        // An epoch it never had: the one before it, ending where the next began.
        assert_eq!(l.epoch_end(2, 150), Some((1, 100)));
        // Newer than the current epoch: unknown.
        assert_eq!(l.epoch_end(4, 150), None);
        // A history that starts later (its older epochs truncated away).
        let late = Leadership {
            leader: 1,
            epoch: 6,
            history: vec![(5, 40), (6, 90)],
        };
        assert_eq!(late.epoch_end(2, 120), Some((2, 40)));
        assert_eq!(late.epoch_end(5, 120), Some((5, 90)));
        // The current epoch ends at the log's end, also with no entry of its own.
        let bare = Leadership {
            leader: 1,
            epoch: 2,
            history: vec![(0, 0)],
        };
        assert_eq!(bare.epoch_end(2, 30), Some((2, 30)));
        assert_eq!(bare.epoch_end(1, 30), Some((0, 30)));
    }
}
