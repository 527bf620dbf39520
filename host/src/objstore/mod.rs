//! The object store layer, at the bottom of the node: the only way the
//! node calls an object store (S3-compatible, a local file store, memory).
//!
//! Owns [`open`] (a store by URL), [`Remote`] (timeouts, bounded retries,
//! create-if-absent, range reads checked for length), [`Upload`] (multipart
//! uploads that never leave a part behind) and [`ObjStoreError`].
//! `faults` (tests, and the `test-util` feature) wraps a real store to
//! inject failures.
//! Invariants: every call is bounded in time; nothing here knows what the
//! objects mean (the WAL, tiering and the plugin mirror do).

mod error;
#[cfg(any(test, feature = "test-util"))]
pub mod faults;
mod open;
mod payload;
mod remote;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests_faults;
mod upload;

pub use error::ObjStoreError;
pub use open::{open, s3_at};
pub use remote::{Remote, RemoteOptions, S3_MIN_PART_BYTES};
pub use upload::Upload;
