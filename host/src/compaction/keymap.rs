//! Pass 1's map of key hash -> latest offset, bounded by memory.
//!
//! Keys are hashed to 128 bits (two independent 64-bit SipHash values): with
//! 64 bits, 1M keys collide with probability about 1 in 37 million, and a
//! collision would merge two keys and lose a record; 128 bits make that
//! negligible. The table is allocated once at its full size, so its memory
//! never grows past what [`KeyMap::with_memory`] was given.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// 128-bit hash of a compaction key.
pub type KeyHash = u128;

/// The latest record seen for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latest {
    pub offset: u64,
    pub tombstone: bool,
}

/// The map is full: a new key does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Bytes one slot of the table takes: the 16-byte hash, the value padded to
/// 16 bytes, and hashbrown's control byte.
const SLOT_BYTES: u64 = 16 + 16 + 1;

pub fn hash_key(key: &[u8]) -> KeyHash {
    let half = |domain: u8| {
        // `DefaultHasher::new()` is keyed with zeros: stable within a run,
        // which is all the map needs (it is never stored).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        domain.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    ((half(0) as u128) << 64) | half(1) as u128
}

pub struct KeyMap {
    map: HashMap<KeyHash, Latest>,
    max_keys: usize,
}

impl KeyMap {
    /// A map whose table fits in `bytes` (at least one key).
    #[cfg(test)]
    pub fn with_memory(bytes: u64) -> KeyMap {
        match Self::try_with_memory(bytes) {
            Ok(map) => map,
            Err(e) => panic!("{e}"),
        }
    }

    /// A map whose table fits in `bytes` (at least one key), allocated now;
    /// an allocation the system refuses is an error, not an abort.
    pub fn try_with_memory(bytes: u64) -> Result<KeyMap, String> {
        let max_keys = max_keys_for(bytes);
        let mut map = HashMap::new();
        map.try_reserve(max_keys)
            .map_err(|e| format!("cannot allocate the compaction key map ({bytes} bytes for {max_keys} keys): {e}"))?;
        Ok(KeyMap { map, max_keys })
    }

    /// Records `offset` as the latest for `key` (offsets arrive in order).
    /// A key not yet in a full map is refused.
    pub fn record(&mut self, key: &[u8], offset: u64, tombstone: bool) -> Result<(), Full> {
        let h = hash_key(key);
        if let Some(l) = self.map.get_mut(&h) {
            *l = Latest { offset, tombstone };
            return Ok(());
        }
        if self.map.len() >= self.max_keys {
            return Err(Full);
        }
        self.map.insert(h, Latest { offset, tombstone });
        Ok(())
    }

    pub fn latest(&self, key: &[u8]) -> Option<Latest> {
        self.map.get(&hash_key(key)).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Bytes the table has allocated (slots times slot size).
    pub fn allocated_bytes(&self) -> u64 {
        buckets_for(self.map.capacity()) * SLOT_BYTES
    }
}

/// Buckets hashbrown allocates for `capacity` (7/8 load, powers of two).
fn buckets_for(capacity: usize) -> u64 {
    if capacity < 8 {
        return if capacity < 4 { 4 } else { 8 };
    }
    ((capacity as u64).saturating_mul(8) / 7).next_power_of_two()
}

/// The most keys whose table fits in `bytes`.
fn max_keys_for(bytes: u64) -> usize {
    let slots = (bytes / SLOT_BYTES).max(4);
    // Largest power of two of slots that fits, used at 7/8.
    let buckets = 1u64 << (63 - slots.leading_zeros());
    usize::try_from(buckets * 7 / 8).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_the_system_refuses_is_an_error_not_an_abort() {
        let err = KeyMap::try_with_memory(u64::MAX / 2)
            .err()
            .expect("no machine has this memory");
        assert!(err.contains("cannot allocate the compaction key map"), "{err}");
    }

    #[test]
    fn keeps_the_latest_offset_and_refuses_new_keys_when_full() {
        let mut m = KeyMap::with_memory(64 * 1024);
        let max = m.max_keys();
        assert!(max >= 896, "64 KiB holds 1024 slots of 33 bytes at 7/8 load: {max}");
        for i in 0..max as u64 {
            m.record(format!("k{i}").as_bytes(), i, false).unwrap();
        }
        assert_eq!(m.record(b"one more", 1, false), Err(Full));
        // Known keys still update when full.
        m.record(b"k7", 10_000, true).unwrap();
        assert_eq!(
            m.latest(b"k7"),
            Some(Latest {
                offset: 10_000,
                tombstone: true
            })
        );
        assert_eq!(m.latest(b"k8").map(|l| l.offset), Some(8));
        assert_eq!(m.latest(b"absent"), None);
        assert_eq!(m.len(), max);
    }

    #[test]
    fn the_table_stays_within_its_memory_bound() {
        for bytes in [1u64, 1000, 64 * 1024, 1 << 20, 10 << 20, 64 << 20] {
            let mut m = KeyMap::with_memory(bytes);
            let before = m.allocated_bytes();
            for i in 0..m.max_keys() as u64 {
                m.record(&i.to_le_bytes(), i, false).unwrap();
            }
            assert_eq!(m.allocated_bytes(), before, "the table grew for {bytes} bytes");
            assert!(before <= bytes.max(4 * SLOT_BYTES), "{before} > {bytes}");
            // Power-of-two tables use at least a third of the bound.
            if bytes >= 1000 {
                assert!(before * 3 >= bytes, "{before} of {bytes}");
            }
        }
    }

    #[test]
    fn hashes_are_128_bits_and_distinct_for_similar_keys() {
        let a = hash_key(b"user-1");
        let b = hash_key(b"user-2");
        assert_ne!(a, b);
        assert_ne!(a >> 64, a & u64::MAX as u128, "halves must be independent");
        assert_eq!(hash_key(b""), hash_key(b""));
    }
}
