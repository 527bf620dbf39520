//! Sluice host: a durable, ordered stream store with WebAssembly plugins.

pub mod fsutil;
pub mod log;
pub mod wal;
