//! Compaction of tiered segments by key-policy plugins: the pure parts (see
//! docs/design/0002-compaction.md; the run itself is `tier::compact`).
//!
//! Owns the pass-1 key map, the keep/remove rules and the split of a run's
//! memory bound between the map and its I/O buffers. Invariants: the map
//! never holds more keys than its memory share allows (a full map reports
//! it instead of growing); offsets are never changed.

pub mod decide;
pub mod keymap;

pub use keymap::KeyMap;

/// Memory of a run outside its key map: one multipart part of the output
/// (5 MiB, up to twice that while the buffer grows), one fetch group and
/// its decoded records, one decision batch, one output batch and its
/// encoding. Measured in `host/benches/compaction.rs`.
pub const IO_RESERVE_BYTES: u64 = 15 * 1024 * 1024;

/// The key map's share of a run's `compaction_memory_bytes` (at least 1 MiB).
pub fn map_bytes(memory_bytes: u64) -> u64 {
    memory_bytes.saturating_sub(IO_RESERVE_BYTES).max(1024 * 1024)
}
