//! Compaction of tiered segments by key-policy plugins (issue 5, in
//! progress: see docs/design/0002-compaction.md).
//!
//! Owns the pass-1 key map so far. Invariant: the map never holds more keys
//! than its memory bound allows; a full map reports it instead of growing.

pub mod keymap;

pub use keymap::{Full, KeyMap, Latest};
