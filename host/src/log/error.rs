//! Errors of the stream log.

use crate::wal::WalError;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("stream `{name}` does not exist")]
    StreamNotFound { name: String },
    #[error("stream `{name}` already exists")]
    StreamExists { name: String },
    #[error("stream `{stream}` has no partition {partition} (it has {partitions})")]
    PartitionNotFound {
        stream: String,
        partition: u32,
        partitions: u32,
    },
    #[error("pipeline `{name}` does not exist")]
    PipelineNotFound { name: String },
    #[error("pipeline `{name}` already exists")]
    PipelineExists { name: String },
    #[error("the node holds {what}")]
    NodeFull { what: String },
    #[error("view `{name}` does not exist")]
    ViewNotFound { name: String },
    #[error("a view named `{name}` already exists")]
    ViewExists { name: String },
    #[error(
        "`{name}` is a view over stream `{input}`: it is read-only and stores no records (write to `{input}`; manage the view under /views)"
    )]
    IsView { name: String, input: String },
    #[error("stream `{name}` is read by views {}; delete them first", views.join(", "))]
    StreamHasViews { name: String, views: Vec<String> },
    #[error("invalid stream name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid partition count {count}: must be between 1 and {max}")]
    InvalidPartitions { count: u32, max: u32 },
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// A record without a key for a stream compacted by record key, where
    /// it could never be compacted away (Kafka refuses it the same way).
    #[error(
        "record {index} of the batch has no key; stream `{stream}` is compacted by record key, so every record needs one"
    )]
    KeyRequired { stream: String, index: usize },
    /// Stream settings that do not go together, or cannot change.
    #[error("{0}")]
    InvalidConfig(String),
    #[error("batch of {size} bytes exceeds the maximum of {max} bytes")]
    BatchTooLarge { size: usize, max: usize },
    #[error("offset {offset} is out of range for stream `{stream}` partition {partition} (valid: {start}..={end})")]
    OffsetOutOfRange {
        stream: String,
        partition: u32,
        offset: u64,
        start: u64,
        end: u64,
    },
    #[error("stored batch of stream `{stream}` partition {partition} at offset {offset} is unreadable: {reason}")]
    Corrupt {
        stream: String,
        partition: u32,
        offset: u64,
        reason: String,
    },
    #[error("stream metadata I/O error on `{}`: {source}", path.display())]
    MetaIo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tiered data of stream `{stream}` partition {partition} at offset {offset} is unavailable: {reason}")]
    ColdRead {
        stream: String,
        partition: u32,
        offset: u64,
        reason: String,
    },
    #[error("node {node} does not lead stream `{stream}` partition {partition}: node {leader} does (epoch {epoch})")]
    NotLeader {
        stream: String,
        partition: u32,
        node: u32,
        leader: u32,
        epoch: u32,
    },
    #[error("producer {producer_id}: {reason}")]
    ProducerSequence { producer_id: i64, reason: String },
    #[error("producer {producer_id} epoch {epoch} is fenced: epoch {current} wrote since")]
    ProducerFenced { producer_id: i64, epoch: i16, current: i16 },
    #[error("stream `{stream}` partition {partition} is not replicated")]
    NotReplicated { stream: String, partition: u32 },
    #[error("replica batch for stream `{stream}` partition {partition} at offset {offset} does not fit: {reason}")]
    ReplicaMismatch {
        stream: String,
        partition: u32,
        offset: u64,
        reason: String,
    },
    #[error(transparent)]
    Wal(#[from] WalError),
}
