#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
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
//! let rec = Record { value: Some("hello".into()), ..Record::default() };
//! let appended = host.append("events", 0, &[rec]).await?; // durable once this returns
//! assert_eq!(appended.base_offset, 0);
//! let read = host.read("events", 0, 0, ReadLimits::default()).await?;
//! assert_eq!(read.records[0].record.value_bytes(), b"hello");
//! host.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod client;
pub(crate) mod cluster;
pub(crate) mod compaction;
pub mod config;
pub(crate) mod error;
pub mod fdlimit;
pub(crate) mod fsutil;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_api;
pub mod groups;
pub mod http;
pub mod kafka;
pub(crate) mod log;
pub(crate) mod metrics;
pub(crate) mod node;
pub mod objstore;
pub(crate) mod pipeline;
pub(crate) mod plugin;
mod task;
pub(crate) mod tier;
pub mod tls;
pub(crate) mod wal;

#[cfg(test)]
mod tests_layers;

pub use config::Settings;
pub use error::{Error, ErrorKind};
pub use node::{Acks, Host, PartitionStatus, ReadFilter, ReadLimits, StreamSpec, TierOffsets, TimeOffset};
pub use node::{
    ActiveProducer, CommitRefused, CommittedOffset, DiskSpace, ElectionKind, OffsetCommit, PartitionBytes, ViewInfo,
    ViewSpec,
};
pub use node::{
    Appended, Compaction, CompactionStatus, OffsetRecord, PipelineMeta, PipelineStatus, PluginInfo, ReadBatch, Record,
    Replication, ReplicationStatus, Retention, StreamConfig, StreamInfo, TierStatus, VersionInfo,
};
pub use node::{
    ConsumerGroupDescription, ConsumerGroupState, ConsumerHeartbeat, ConsumerHeartbeatAnswer,
    ConsumerMemberDescription, TopicMeta, Topics,
};

/// Internals the benchmarks drive directly (the WAL alone, the plugin
/// runtime, the compaction key map). Not a stable API.
#[doc(hidden)]
pub mod bench {
    pub use crate::compaction::{KeyMap, map_bytes};
    pub use crate::plugin::transform::{decode_output, encode_input};
    pub use crate::plugin::{Limits, Runtime, TransformInstance, TransformPlugin};
    pub use crate::tier::compact::RunResult;
    pub use crate::wal::{EntryKind, EntryMeta, Options as WalOptions, Wal};
}
