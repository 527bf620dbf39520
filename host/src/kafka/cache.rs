//! The fetch cache: record batches in Kafka's format, ready to send, so a
//! consumer reading what was just produced gets bytes without the node
//! converting stored records again (the role of Redpanda's batch cache and
//! of the page cache under Kafka's log files).
//!
//! Two ways in:
//! * A produced batch that reads back exactly as it was sent (see
//!   `batch::Produced::verbatim`) enters as the producer sent it, with its
//!   compression, once its append is acknowledged, with the offsets and
//!   leader epoch the log gave it. Produced batches always enter: the
//!   oldest entries (by insertion) leave to make room.
//! * A fetch answer the node converted from stored records enters only into
//!   free room, so a consumer reading old data never pushes out what
//!   producers just wrote.
//!
//! Invariants:
//! * Entries of a partition are keyed by the stream's id (never reused, so
//!   a stream deleted and created again under its name starts empty) and
//!   hold disjoint offset ranges; an insert overlapping an entry is dropped.
//! * Every entry belongs to the partition's current leader epoch: a lookup
//!   or insert under a newer epoch empties the partition first (a former
//!   leader's log may have been cut), one under an older epoch is ignored.
//! * A lookup answers only with whole batches entirely below the end the
//!   caller may serve (the high watermark), contiguous from the batch that
//!   holds the fetch offset; anything else is a miss and the caller reads
//!   the log.
//! * Streams with compaction and views are never cached (the caller checks:
//!   compaction removes records below the head, a view's records are its
//!   plugin's output).
//! * The bytes held never exceed `kafka_fetch_cache_bytes`; 0 turns the
//!   cache off.
//! * Partitions of deleted streams are forgotten by the listener's sweep
//!   (`retain_streams`, every `CACHE_SWEEP_EVERY`), not left to eviction.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

use super::batch::HEADER_LEN;

/// A partition's entries: stream id and partition number.
pub(crate) type Key = (u32, u32);

struct Entry {
    last: u64,
    bytes: Bytes,
    /// Insertion number, to tell this entry from a later one at the same
    /// offset when the eviction queue reaches it.
    seq: u64,
}

#[derive(Default)]
struct Part {
    epoch: i32,
    batches: BTreeMap<u64, Entry>,
}

#[derive(Default)]
struct Inner {
    parts: HashMap<Key, Part>,
    /// Entries in insertion order (some already gone): the eviction order.
    order: VecDeque<(Key, u64, u64)>,
    bytes: usize,
    entries: usize,
    next_seq: u64,
}

pub(crate) struct FetchCache {
    cap: usize,
    inner: Mutex<Inner>,
}

impl FetchCache {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The cache holds no invariant a panicking holder could break
        // halfway that a reader would trust: entries are whole inserts.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Caches a produced batch now at offsets `base ..= last` of `key`
    /// (under leader `epoch`), evicting the oldest entries to make room.
    /// `batch` is the batch as the producer sent it; its base offset and
    /// leader epoch are rewritten (neither is covered by its CRC).
    pub fn insert_produced(&self, key: Key, epoch: i32, base: u64, last: u64, batch: &[u8]) {
        if batch.len() < HEADER_LEN || batch.len() > self.cap {
            return;
        }
        let Ok(base_i64) = i64::try_from(base) else {
            return;
        };
        let mut bytes = BytesMut::from(batch);
        bytes[0..8].copy_from_slice(&base_i64.to_be_bytes());
        bytes[12..16].copy_from_slice(&epoch.to_be_bytes());
        let mut inner = self.lock();
        if !inner.admit_epoch(key, epoch) || inner.overlaps(key, base, last) {
            return;
        }
        while inner.bytes.saturating_add(bytes.len()) > self.cap {
            if !inner.evict_oldest() {
                return;
            }
        }
        inner.put(key, base, last, bytes.freeze());
        metrics::gauge!(crate::metrics::KAFKA_FETCH_CACHE_BYTES).set(inner.bytes as f64);
    }

    /// Forgets every partition of the streams `live` says are gone (a
    /// deleted stream's entries would otherwise stay until produced
    /// batches push them out).
    pub fn retain_streams(&self, live: impl Fn(u32) -> bool) {
        let mut inner = self.lock();
        let gone: Vec<Key> = inner.parts.keys().filter(|(id, _)| !live(*id)).copied().collect();
        if gone.is_empty() {
            return;
        }
        for key in gone {
            if let Some(part) = inner.parts.remove(&key) {
                inner.uncount(&part.batches);
            }
        }
        // Their places in the eviction order go too.
        inner.prune_order();
        metrics::gauge!(crate::metrics::KAFKA_FETCH_CACHE_BYTES).set(inner.bytes as f64);
    }

    /// Caches the batches of a converted fetch answer for `key` (written by
    /// `encode`, each batch naming its own offsets), only if all of them fit
    /// in free room and none overlaps an entry.
    pub fn insert_converted(&self, key: Key, epoch: i32, answer: &Bytes) {
        let Some(batches) = split_batches(answer) else {
            return;
        };
        if batches.is_empty() {
            return;
        }
        let mut inner = self.lock();
        if inner.bytes.saturating_add(answer.len()) > self.cap || !inner.admit_epoch(key, epoch) {
            return;
        }
        if batches.iter().any(|&(base, last, _)| inner.overlaps(key, base, last)) {
            return;
        }
        // Each batch in a buffer of its own: a slice would keep the whole
        // answer alive after its other batches were evicted.
        for (base, last, range) in batches {
            inner.put(key, base, last, Bytes::copy_from_slice(&answer[range]));
        }
        metrics::gauge!(crate::metrics::KAFKA_FETCH_CACHE_BYTES).set(inner.bytes as f64);
    }

    /// Whole cached batches from the one holding `offset`, contiguous, all
    /// below `end`, up to `budget` bytes (the first batch always, however
    /// big, when `first`), each its own buffer. `None`: the log must be
    /// read.
    pub fn get(&self, key: Key, epoch: i32, offset: u64, end: u64, budget: usize, first: bool) -> Option<Vec<Bytes>> {
        if self.cap == 0 {
            return None;
        }
        let found = self.find(key, epoch, offset, end, budget, first);
        let result = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!(crate::metrics::KAFKA_FETCH_CACHE, "result" => result).increment(1);
        found
    }

    fn find(&self, key: Key, epoch: i32, offset: u64, end: u64, budget: usize, first: bool) -> Option<Vec<Bytes>> {
        let mut inner = self.lock();
        // A lookup never adds a partition: fetches of partitions nothing
        // was cached for leave no trace.
        if !inner.parts.contains_key(&key) || !inner.admit_epoch(key, epoch) {
            return None;
        }
        let part = inner.parts.get(&key)?;
        let (&holder_base, holder) = part.batches.range(..=offset).next_back()?;
        if holder.last < offset {
            return None;
        }
        let mut picked: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        let mut next = offset;
        let mut at = Some((holder_base, holder));
        while let Some((base, e)) = at {
            if base > next || e.last >= end {
                break;
            }
            let fits = total.saturating_add(e.bytes.len()) <= budget;
            let must = picked.is_empty() && first;
            if !(fits || must) {
                break;
            }
            total = total.saturating_add(e.bytes.len());
            picked.push(e.bytes.clone());
            next = e.last.saturating_add(1);
            at = part.batches.range(next..).next().map(|(&b, e)| (b, e));
        }
        (!picked.is_empty()).then_some(picked)
    }
}

impl Inner {
    /// Brings `key`'s epoch to `epoch` (emptying it if newer); false when
    /// `epoch` is older than the partition's.
    fn admit_epoch(&mut self, key: Key, epoch: i32) -> bool {
        let part = self.parts.entry(key).or_default();
        if epoch < part.epoch {
            return false;
        }
        if epoch > part.epoch {
            let dropped = std::mem::take(&mut part.batches);
            part.epoch = epoch;
            self.uncount(&dropped);
        }
        true
    }

    /// Takes entries just removed from their partition off the totals.
    fn uncount(&mut self, removed: &BTreeMap<u64, Entry>) {
        for e in removed.values() {
            self.bytes = self.bytes.saturating_sub(e.bytes.len());
            self.entries = self.entries.saturating_sub(1);
        }
    }

    /// Drops eviction-queue places whose entry is gone.
    fn prune_order(&mut self) {
        let parts = &self.parts;
        self.order
            .retain(|(k, b, s)| parts.get(k).and_then(|p| p.batches.get(b)).is_some_and(|e| e.seq == *s));
    }

    fn overlaps(&self, key: Key, base: u64, last: u64) -> bool {
        let Some(part) = self.parts.get(&key) else {
            return false;
        };
        part.batches
            .range(..=last)
            .next_back()
            .is_some_and(|(_, e)| e.last >= base)
    }

    fn put(&mut self, key: Key, base: u64, last: u64, bytes: Bytes) {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.bytes = self.bytes.saturating_add(bytes.len());
        self.entries = self.entries.saturating_add(1);
        self.parts
            .entry(key)
            .or_default()
            .batches
            .insert(base, Entry { last, bytes, seq });
        self.order.push_back((key, base, seq));
        // Entries dropped by an epoch change stay queued; keep the queue
        // near the number of live entries.
        if self.order.len() > self.entries.saturating_mul(2).saturating_add(1024) {
            self.prune_order();
        }
    }

    /// Removes the oldest live entry; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((key, base, seq)) = self.order.pop_front() {
            let Some(part) = self.parts.get_mut(&key) else {
                continue;
            };
            if part.batches.get(&base).is_some_and(|e| e.seq == seq) {
                if let Some(e) = part.batches.remove(&base) {
                    self.bytes = self.bytes.saturating_sub(e.bytes.len());
                    self.entries = self.entries.saturating_sub(1);
                }
                if part.batches.is_empty() && part.epoch == 0 {
                    self.parts.remove(&key);
                }
                return true;
            }
        }
        false
    }
}

/// The batches of an answer `encode` wrote: (base offset, last offset,
/// byte range) each. `None` if the bytes are not whole batches.
fn split_batches(answer: &Bytes) -> Option<Vec<(u64, u64, std::ops::Range<usize>)>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < answer.len() {
        let h = answer.get(at..at.checked_add(HEADER_LEN)?)?;
        let base = u64::try_from(i64::from_be_bytes(h[0..8].try_into().ok()?)).ok()?;
        let length = usize::try_from(i32::from_be_bytes(h[8..12].try_into().ok()?)).ok()?;
        let last_delta = u64::try_from(i32::from_be_bytes(h[23..27].try_into().ok()?)).ok()?;
        let end = at.checked_add(12)?.checked_add(length)?;
        if end > answer.len() {
            return None;
        }
        out.push((base, base.checked_add(last_delta)?, at..end));
        at = end;
    }
    Some(out)
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
