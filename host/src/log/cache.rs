//! Byte-bounded FIFO caches: recent batch payloads shared by all partitions
//! (and, in tiering, batches and segment indexes read from objects).
//!
//! Tailing consumers read what was just written; serving them from memory
//! avoids a file read. Eviction is first-in first-out: the oldest batch goes
//! first, which matches a log's access pattern. Invariant: the sum of cached
//! payload sizes never exceeds the capacity (a batch larger than the whole
//! capacity is not cached).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

use bytes::Bytes;

/// (stream id, partition, base offset) of a batch.
pub type BatchKey = (u32, u32, u64);

/// Recent batch payloads by batch.
pub type BatchCache = FifoCache<BatchKey, Bytes>;

/// What a cached value counts against the capacity.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl<T> Weigh for std::sync::Arc<Vec<T>> {
    fn weight(&self) -> usize {
        self.len() * std::mem::size_of::<T>()
    }
}

/// A byte-bounded first-in first-out cache.
pub struct FifoCache<K, V> {
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    bytes: usize,
}

impl<K: Eq + Hash + Clone, V: Weigh + Clone> FifoCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        FifoCache {
            capacity,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
        }
    }

    pub fn insert(&self, key: K, value: V) {
        let size = value.weight();
        if size > self.capacity {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while g.bytes + size > self.capacity {
            let Some(old) = g.order.pop_front() else { break };
            if let Some(v) = g.map.remove(&old) {
                g.bytes -= v.weight();
            }
        }
        g.bytes += size;
        if let Some(prev) = g.map.insert(key.clone(), value) {
            g.bytes -= prev.weight();
        } else {
            g.order.push_back(key);
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(key)
            .cloned()
    }

    /// Drops every entry whose key matches.
    pub fn remove_where(&self, mut matches: impl FnMut(&K) -> bool) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut freed = 0;
        g.map.retain(|k, v| {
            let hit = matches(k);
            if hit {
                freed += v.weight();
            }
            !hit
        });
        g.bytes -= freed;
        let Inner { map, order, .. } = &mut *g;
        order.retain(|k| map.contains_key(k));
    }

    /// Drops every batch of a stream (after it is deleted).
    pub fn remove_stream(&self, stream: u32)
    where
        K: StreamKeyed,
    {
        self.remove_where(|k| k.stream() == stream);
    }

    /// Bytes currently cached.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

/// Keys that name a stream.
pub trait StreamKeyed {
    fn stream(&self) -> u32;
}

impl StreamKeyed for BatchKey {
    fn stream(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_capacity_and_evicts_oldest() {
        let c = BatchCache::new(100);
        for i in 0..10u64 {
            c.insert((1, 0, i), Bytes::from(vec![0u8; 30]));
            assert!(c.bytes() <= 100);
        }
        assert!(c.get(&(1, 0, 9)).is_some());
        assert!(c.get(&(1, 0, 6)).is_none());
        c.insert((1, 0, 99), Bytes::from(vec![0u8; 101]));
        assert!(c.get(&(1, 0, 99)).is_none(), "oversized batch must not be cached");
        c.remove_stream(1);
        assert_eq!(c.bytes(), 0);
    }
}
