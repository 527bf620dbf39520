//! Sluice host: a durable, ordered stream store with WebAssembly plugins.
//!
//! The public API is small: [`Host`] (open a node, create streams, append,
//! read, serve HTTP), [`Settings`], [`Record`] and [`Error`]. The modules are
//! public for tests, benchmarks and tools; their APIs may change.

pub mod admin;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod host;
pub mod log;
pub mod wal;

pub use config::Settings;
pub use error::{Error, ErrorKind};
pub use host::{Host, ReadLimits};
pub use log::{Appended, OffsetRecord, ReadBatch, Record, StreamInfo};
