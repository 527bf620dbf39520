//! Idempotent producers: the WAL trailer that names a batch's producer and
//! sequence numbers, and per (stream, partition, producer) the last batches
//! written, so a retried batch is answered with its first offsets instead of
//! being written twice.
//!
//! A batch from an idempotent producer is appended as one
//! `RecordsWithProducer` WAL entry: the records, then this 14-byte trailer.
//! The state is rebuilt at start-up from those entries (kill -9, and with the
//! object WAL an empty data dir, lose nothing the WAL still holds).
//!
//! ```text
//! +-------------+----------------+---------------+
//! | producer id | producer epoch | base sequence |
//! | i64         | i16            | i32           |
//! +-------------+----------------+---------------+
//! ```
//!
//! Rules (Kafka's): within an epoch, a batch must start at the sequence after
//! the last one written (wrapping past `i32::MAX` to 0); a batch equal to one
//! of the last [`REMEMBERED`] is a duplicate; anything else is out of order.
//! An older epoch is refused; a newer one must start at sequence 0. A
//! producer with no state here (never seen, or its entries are no longer in
//! the WAL) is accepted at any sequence. Invariant: the state changes only
//! when a batch is durable, in LSN order; checking and appending for one
//! producer and partition is serialized by [`ProducerTable::lock`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::LogError;

/// Length of the trailer in bytes.
pub const LEN: usize = 14;
/// Batches remembered per producer and partition (Kafka clients keep at
/// most five in flight).
pub const REMEMBERED: usize = 5;

/// The producer fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

pub fn encode(b: &ProducerBatch) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[0..8].copy_from_slice(&b.producer_id.to_le_bytes());
    out[8..10].copy_from_slice(&b.epoch.to_le_bytes());
    out[10..14].copy_from_slice(&b.base_sequence.to_le_bytes());
    out
}

/// Decodes the trailer at the end of an entry payload.
pub fn decode(payload: &[u8]) -> Option<ProducerBatch> {
    let t = payload.get(payload.len().checked_sub(LEN)?..)?;
    Some(ProducerBatch {
        producer_id: i64::from_le_bytes(t[0..8].try_into().ok()?),
        epoch: i16::from_le_bytes(t[8..10].try_into().ok()?),
        base_sequence: i32::from_le_bytes(t[10..14].try_into().ok()?),
    })
}

/// (stream id, partition, producer id).
type Key = (u32, u32, i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Written {
    first_seq: i32,
    last_seq: i32,
    base_offset: u64,
    count: u32,
}

#[derive(Debug, Default)]
struct State {
    epoch: i16,
    recent: VecDeque<Written>,
    /// Wall-clock ms of the last batch recorded (or of the replay that
    /// found it): the state expires `expiry` after it.
    last_ms: u64,
}

/// One producer's state on one partition, in the metadata snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProducerSnap {
    pub stream: u32,
    pub partition: u32,
    pub producer_id: i64,
    pub epoch: i16,
    /// (first sequence, last sequence, base offset, count), oldest first.
    pub batches: Vec<(i32, i32, u64, u32)>,
    /// When its last batch was recorded (ms since the epoch; 0: unknown,
    /// counted from the load).
    #[serde(default)]
    pub last_ms: u64,
}

/// A producer's state on one partition, as Kafka's DescribeProducers
/// reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The sequence number of its last record written (-1: none known).
    pub last_sequence: i32,
    /// Wall-clock ms when its last batch was written (or, after a restart,
    /// replayed).
    pub last_ms: u64,
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Append,
    /// Already written at `base_offset`.
    Duplicate {
        base_offset: u64,
        count: u32,
    },
}

/// The last sequence of a batch of `count` records starting at `first`.
fn last_seq(first: i32, count: u32) -> i32 {
    let span = (i64::from(count) - 1).max(0);
    ((i64::from(first) + span) % (i64::from(i32::MAX) + 1)) as i32
}

fn next_seq(last: i32) -> i32 {
    if last == i32::MAX { 0 } else { last + 1 }
}

#[derive(Debug)]
pub struct ProducerTable {
    states: Mutex<HashMap<Key, State>>,
    locks: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// The highest producer id seen (written or handed out).
    max_id: Mutex<i64>,
    /// A producer's state on a partition is dropped this long (ms) after
    /// its last batch there.
    expiry_ms: AtomicU64,
    /// When expired states were last looked for.
    last_sweep_ms: AtomicU64,
}

impl Default for ProducerTable {
    fn default() -> Self {
        ProducerTable {
            states: Mutex::default(),
            locks: Mutex::default(),
            max_id: Mutex::default(),
            expiry_ms: AtomicU64::new(DEFAULT_EXPIRY_MS),
            last_sweep_ms: AtomicU64::new(0),
        }
    }
}

/// Kafka's default `producer.id.expiration.ms`: a day.
const DEFAULT_EXPIRY_MS: u64 = 24 * 3600 * 1000;
/// Expired states are looked for at most this often (on a write).
const SWEEP_EVERY_MS: u64 = 60_000;

impl ProducerTable {
    /// Serializes check-and-append for one producer on one partition.
    pub fn lock(&self, key: Key) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(key).or_default().clone()
    }

    pub fn check(&self, key: Key, b: &ProducerBatch, count: u32) -> Result<Check, LogError> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = states.get(&key) else {
            return Ok(Check::Append);
        };
        let refuse = |reason: String| LogError::ProducerSequence {
            producer_id: b.producer_id,
            reason,
        };
        if b.epoch < s.epoch {
            return Err(LogError::ProducerFenced {
                producer_id: b.producer_id,
                epoch: b.epoch,
                current: s.epoch,
            });
        }
        if b.epoch > s.epoch {
            return if b.base_sequence == 0 {
                Ok(Check::Append)
            } else {
                Err(refuse(format!(
                    "a new epoch {} must start at sequence 0, not {}",
                    b.epoch, b.base_sequence
                )))
            };
        }
        let last = last_seq(b.base_sequence, count);
        if let Some(w) = s
            .recent
            .iter()
            .find(|w| w.first_seq == b.base_sequence && w.last_seq == last)
        {
            return Ok(Check::Duplicate {
                base_offset: w.base_offset,
                count: w.count,
            });
        }
        match s.recent.back() {
            Some(w) if b.base_sequence != next_seq(w.last_seq) => Err(refuse(format!(
                "sequence {} does not follow {} (the last written)",
                b.base_sequence, w.last_seq
            ))),
            _ => Ok(Check::Append),
        }
    }

    /// Records a durable batch (appends, and recovery in LSN order). A
    /// batch already recorded (recovery replaying entries the snapshot
    /// already reflects) changes nothing.
    pub fn record(&self, key: Key, b: &ProducerBatch, base_offset: u64, count: u32) {
        self.record_at(key, b, base_offset, count, crate::fsutil::now_ms());
    }

    /// [`ProducerTable::record`] at wall-clock time `now_ms`.
    pub fn record_at(&self, key: Key, b: &ProducerBatch, base_offset: u64, count: u32, now_ms: u64) {
        if now_ms.saturating_sub(self.last_sweep_ms.load(Ordering::Relaxed)) >= SWEEP_EVERY_MS {
            self.last_sweep_ms.store(now_ms, Ordering::Relaxed);
            self.expire(now_ms);
        }
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let s = states.entry(key).or_default();
        s.last_ms = s.last_ms.max(now_ms);
        let written = Written {
            first_seq: b.base_sequence,
            last_seq: last_seq(b.base_sequence, count),
            base_offset,
            count,
        };
        if b.epoch == s.epoch && s.recent.contains(&written) {
            return;
        }
        if b.epoch != s.epoch {
            s.epoch = b.epoch;
            s.recent.clear();
        }
        s.recent.push_back(written);
        while s.recent.len() > REMEMBERED {
            s.recent.pop_front();
        }
        let mut max = self.max_id.lock().unwrap_or_else(|e| e.into_inner());
        *max = (*max).max(b.producer_id);
    }

    /// The producer of each batch this table still remembers on one
    /// partition whose first offset is in `from..until`, by first offset
    /// (with its record count): what a read from tiered segments, which
    /// keep no producer fields, can give back to a follower.
    pub fn remembered_in(
        &self,
        stream: u32,
        partition: u32,
        from: u64,
        until: u64,
    ) -> HashMap<u64, (ProducerBatch, u32)> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = HashMap::new();
        for ((s_id, p, producer_id), s) in states.iter() {
            if (*s_id, *p) != (stream, partition) {
                continue;
            }
            for w in s.recent.iter().filter(|w| (from..until).contains(&w.base_offset)) {
                let b = ProducerBatch {
                    producer_id: *producer_id,
                    epoch: s.epoch,
                    base_sequence: w.first_seq,
                };
                out.insert(w.base_offset, (b, w.count));
            }
        }
        out
    }

    /// The producers with unexpired state on one partition, by id.
    pub fn active(&self, stream: u32, partition: u32, now_ms: u64) -> Vec<ActiveProducer> {
        let expiry = self.expiry_ms.load(Ordering::Relaxed);
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<ActiveProducer> = states
            .iter()
            .filter(|((s_id, p, _), s)| {
                (*s_id, *p) == (stream, partition) && s.last_ms.saturating_add(expiry) >= now_ms
            })
            .map(|((_, _, producer_id), s)| ActiveProducer {
                producer_id: *producer_id,
                epoch: s.epoch,
                last_sequence: s.recent.back().map_or(-1, |w| w.last_seq),
                last_ms: s.last_ms,
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Sets how long a producer's state outlives its last batch.
    pub fn set_expiry(&self, expiry: std::time::Duration) {
        let ms = u64::try_from(expiry.as_millis()).unwrap_or(u64::MAX);
        self.expiry_ms.store(ms, Ordering::Relaxed);
    }

    /// Drops the states whose last batch is older than the expiry, and the
    /// locks nobody holds for them.
    pub fn expire(&self, now_ms: u64) {
        let expiry = self.expiry_ms.load(Ordering::Relaxed);
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.retain(|_, s| s.last_ms.saturating_add(expiry) >= now_ms);
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|key, lock| states.contains_key(key) || Arc::strong_count(lock) > 1);
    }

    /// Every producer's state, for the metadata snapshot, leaving out
    /// streams for which `keep` is false (deleted ones) and expired states.
    pub fn to_snapshot(&self, keep: impl Fn(u32) -> bool) -> Vec<ProducerSnap> {
        self.expire(crate::fsutil::now_ms());
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<ProducerSnap> = states
            .iter()
            .filter(|((stream, _, _), _)| keep(*stream))
            .map(|((stream, partition, producer_id), s)| ProducerSnap {
                stream: *stream,
                partition: *partition,
                producer_id: *producer_id,
                epoch: s.epoch,
                batches: s
                    .recent
                    .iter()
                    .map(|w| (w.first_seq, w.last_seq, w.base_offset, w.count))
                    .collect(),
                last_ms: s.last_ms,
            })
            .collect();
        out.sort_by_key(|p| (p.stream, p.partition, p.producer_id));
        out
    }

    /// The state a snapshot kept.
    pub fn from_snapshot(snaps: &[ProducerSnap]) -> ProducerTable {
        let table = ProducerTable::default();
        {
            let mut states = table.states.lock().unwrap_or_else(|e| e.into_inner());
            let mut max = table.max_id.lock().unwrap_or_else(|e| e.into_inner());
            for p in snaps {
                let recent = p
                    .batches
                    .iter()
                    .map(|(first_seq, last_seq, base_offset, count)| Written {
                        first_seq: *first_seq,
                        last_seq: *last_seq,
                        base_offset: *base_offset,
                        count: *count,
                    })
                    .collect();
                let last_ms = if p.last_ms == 0 {
                    crate::fsutil::now_ms()
                } else {
                    p.last_ms
                };
                let state = State {
                    epoch: p.epoch,
                    recent,
                    last_ms,
                };
                states.insert((p.stream, p.partition, p.producer_id), state);
                *max = (*max).max(p.producer_id);
            }
        }
        table
    }

    /// A producer id never handed out or written before: above every id
    /// seen, and above the clock in microseconds-ish units (`now_ms` × 1024),
    /// so ids stay unique across restarts that lost all producer state.
    pub fn allocate_id(&self, now_ms: u64) -> i64 {
        let mut max = self.max_id.lock().unwrap_or_else(|e| e.into_inner());
        let clock = i64::try_from(now_ms).unwrap_or(i64::MAX / 1024).saturating_mul(1024);
        let id = clock.max(max.saturating_add(1));
        *max = id;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(epoch: i16, seq: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 9,
            epoch,
            base_sequence: seq,
        }
    }

    #[test]
    fn retries_are_duplicates_gaps_are_refused_old_epochs_fenced() {
        let t = ProducerTable::default();
        let k = (1, 0, 9);
        assert_eq!(t.check(k, &b(0, 0), 3).unwrap(), Check::Append);
        t.record(k, &b(0, 0), 100, 3);
        assert_eq!(t.check(k, &b(0, 3), 2).unwrap(), Check::Append);
        t.record(k, &b(0, 3), 103, 2);
        assert_eq!(
            t.check(k, &b(0, 0), 3).unwrap(),
            Check::Duplicate {
                base_offset: 100,
                count: 3
            }
        );
        assert!(matches!(
            t.check(k, &b(0, 6), 1),
            Err(LogError::ProducerSequence { .. })
        ));
        assert!(matches!(
            t.check(k, &b(0, 4), 1),
            Err(LogError::ProducerSequence { .. })
        ));
        t.record(k, &b(1, 0), 105, 1);
        assert!(matches!(t.check(k, &b(0, 5), 1), Err(LogError::ProducerFenced { .. })));
        assert!(matches!(
            t.check(k, &b(2, 7), 1),
            Err(LogError::ProducerSequence { .. })
        ));
        assert_eq!(t.check(k, &b(2, 0), 1).unwrap(), Check::Append);
        // Unknown producers start anywhere; wrap-around follows i32::MAX.
        let k2 = (1, 0, 10);
        assert_eq!(t.check(k2, &b(0, i32::MAX - 1), 2).unwrap(), Check::Append);
        t.record(k2, &b(0, i32::MAX - 1), 0, 2);
        assert_eq!(t.check(k2, &b(0, 0), 1).unwrap(), Check::Append);
        assert_eq!(decode(&encode(&b(3, 77))), Some(b(3, 77)));
        // Idle past the expiry: forgotten (any sequence is accepted again),
        // while a producer that wrote since stays.
        t.set_expiry(std::time::Duration::from_secs(60));
        t.record_at(k2, &b(0, 1), 5, 1, 10_000_000_000_000);
        t.expire(10_000_000_000_000 + 30_000);
        assert!(matches!(
            t.check(k2, &b(0, 9), 1),
            Err(LogError::ProducerSequence { .. })
        ));
        // Described: k2 only (k's last write is long past the expiry).
        let active = t.active(1, 0, 10_000_000_000_000 + 30_000);
        assert_eq!(active.iter().map(|p| p.producer_id).collect::<Vec<_>>(), [10]);
        assert_eq!((active[0].epoch, active[0].last_sequence), (0, 1));
        assert!(t.active(1, 1, 0).is_empty(), "another partition");
        t.expire(10_000_000_000_000 + 61_000);
        assert_eq!(t.check(k2, &b(0, 9), 1).unwrap(), Check::Append);
        assert_eq!(t.check(k, &b(2, 7), 1).unwrap(), Check::Append, "k expired long ago");
        assert!(t.allocate_id(1) > 10);
        let a = t.allocate_id(5);
        assert!(t.allocate_id(5) > a);
    }
}
