//! Pipeline input positions and the WAL trailer that carries them.
//!
//! A pipeline's output batch is appended as one `RecordsWithProgress` WAL
//! entry: the records, then this 16-byte trailer. One entry, one CRC: after
//! any crash either both the output and the new input position are there, or
//! neither is, which is what makes pipeline output exactly-once.
//!
//! ```text
//! +-------------+-----------------+-------------+
//! | pipeline id | input partition | next offset |
//! | u32         | u32             | u64         |
//! +-------------+-----------------+-------------+
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use super::meta::Snapshot;

/// Length of the trailer in bytes.
pub const LEN: usize = 16;

/// "Pipeline `pipeline` has consumed input partition `input_partition` up to
/// (not including) `next_offset`."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub pipeline: u32,
    pub input_partition: u32,
    pub next_offset: u64,
}

pub fn encode(p: &Progress) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[0..4].copy_from_slice(&p.pipeline.to_le_bytes());
    out[4..8].copy_from_slice(&p.input_partition.to_le_bytes());
    out[8..16].copy_from_slice(&p.next_offset.to_le_bytes());
    out
}

/// Decodes the trailer at the end of an entry payload.
pub fn decode(payload: &[u8]) -> Option<Progress> {
    let t = payload.get(payload.len().checked_sub(LEN)?..)?;
    Some(Progress {
        pipeline: u32::from_le_bytes(t[0..4].try_into().ok()?),
        input_partition: u32::from_le_bytes(t[4..8].try_into().ok()?),
        next_offset: u64::from_le_bytes(t[8..16].try_into().ok()?),
    })
}

/// Durable input positions, updated from WAL completions (in LSN order).
#[derive(Debug, Default)]
pub struct ProgressMap {
    inner: Mutex<HashMap<(u32, u32), u64>>,
}

impl ProgressMap {
    pub fn from_snapshot(s: &Snapshot) -> Self {
        let map = s.progress.iter().map(|(p, q, o)| ((*p, *q), *o)).collect();
        ProgressMap { inner: Mutex::new(map) }
    }

    /// Raises a position; never lowers it.
    pub fn advance(&self, p: Progress) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry((p.pipeline, p.input_partition)).or_insert(0);
        *e = (*e).max(p.next_offset);
    }

    pub fn get(&self, pipeline: u32, partition: u32) -> u64 {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&(pipeline, partition)).copied().unwrap_or(0)
    }

    /// Every (pipeline, input partition, next offset).
    pub fn all(&self) -> Vec<(u32, u32, u64)> {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|((p, q), o)| (*p, *q, *o)).collect()
    }

    pub fn forget(&self, pipeline: u32) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(p, _), _| *p != pipeline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trip_at_end_of_payload() {
        let p = Progress {
            pipeline: 7,
            input_partition: 3,
            next_offset: 1 << 40,
        };
        let mut payload = b"records...".to_vec();
        payload.extend_from_slice(&encode(&p));
        assert_eq!(decode(&payload), Some(p));
        assert_eq!(decode(&payload[..10]), None);
    }

    #[test]
    fn map_only_moves_forward() {
        let m = ProgressMap::default();
        m.advance(Progress {
            pipeline: 1,
            input_partition: 0,
            next_offset: 10,
        });
        m.advance(Progress {
            pipeline: 1,
            input_partition: 0,
            next_offset: 4,
        });
        assert_eq!(m.get(1, 0), 10);
        assert_eq!(m.get(1, 1), 0);
    }
}
