//! Compaction of tiered segments by key-policy plugins (issue 5, in
//! progress: see docs/design/0002-compaction.md).
//!
//! Owns, so far, the pass-1 key map and the keep/remove rules. Invariants:
//! the map never holds more keys than its memory bound allows (a full map
//! reports it instead of growing); offsets are never changed.

pub mod decide;
pub mod keymap;

pub use keymap::{Full, KeyMap, Latest};
