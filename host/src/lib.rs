//! Sluice host: a durable, ordered stream store with WebAssembly plugins.
//!
//! The public API is small: [`Host`] (open a node, create streams, append,
//! read, serve HTTP), [`Settings`], [`Record`] and [`Error`]. The modules are
//! public for tests, benchmarks and tools; their APIs may change.
//!
//! ```
//! use sluice_host::{Host, ReadLimits, Record, Settings};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sluice_host::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let host = Host::open(Settings { data_dir: dir.path().into(), ..Settings::default() }).await?;
//! host.create_stream("events", 1).await?;
//! let rec = Record { value: "hello".into(), ..Record::default() };
//! let appended = host.append("events", 0, &[rec]).await?; // durable once this returns
//! assert_eq!(appended.base_offset, 0);
//! let read = host.read("events", 0, 0, ReadLimits::default()).await?;
//! assert_eq!(read.records[0].record.value, "hello");
//! host.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod cluster;
pub mod compaction;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod http;
pub mod log;
pub mod metrics;
pub mod node;
pub mod objstore;
pub mod pipeline;
pub mod plugin;
mod task;
pub mod tier;
pub mod wal;

#[cfg(test)]
mod tests_layers;

pub use config::Settings;
pub use error::{Error, ErrorKind};
pub use log::meta::{Compaction, Retention, StreamConfig};
pub use log::{Appended, OffsetRecord, ReadBatch, Record, StreamInfo};
pub use node::{Acks, Host, PartitionStatus, ReadFilter, ReadLimits, StreamSpec};
