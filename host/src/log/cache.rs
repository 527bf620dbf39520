//! A byte-bounded cache of recent batch payloads shared by all partitions.
//!
//! Tailing consumers read what was just written; serving them from memory
//! avoids a file read. Eviction is first-in first-out: the oldest batch goes
//! first, which matches a log's access pattern. Invariant: the sum of cached
//! payload sizes never exceeds the capacity (a batch larger than the whole
//! capacity is not cached).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

/// (stream id, partition, base offset) of a batch.
pub type BatchKey = (u32, u32, u64);

pub struct BatchCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<BatchKey, Bytes>,
    order: VecDeque<BatchKey>,
    bytes: usize,
}

impl BatchCache {
    pub fn new(capacity: usize) -> Self {
        BatchCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn insert(&self, key: BatchKey, payload: Bytes) {
        if payload.len() > self.capacity {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while g.bytes + payload.len() > self.capacity {
            let Some(old) = g.order.pop_front() else { break };
            if let Some(v) = g.map.remove(&old) {
                g.bytes -= v.len();
            }
        }
        g.bytes += payload.len();
        if let Some(prev) = g.map.insert(key, payload) {
            g.bytes -= prev.len();
        } else {
            g.order.push_back(key);
        }
    }

    pub fn get(&self, key: &BatchKey) -> Option<Bytes> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(key)
            .cloned()
    }

    /// Drops every batch of a stream (after it is deleted).
    pub fn remove_stream(&self, stream: u32) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut freed = 0;
        g.map.retain(|k, v| {
            let keep = k.0 != stream;
            if !keep {
                freed += v.len();
            }
            keep
        });
        g.bytes -= freed;
        g.order.retain(|k| k.0 != stream);
    }

    /// Bytes currently cached.
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).bytes
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
