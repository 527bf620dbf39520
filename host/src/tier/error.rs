//! Errors of the tiering subsystem.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TierError {
    /// The object store URL or options cannot be used.
    #[error("invalid object store configuration: {0}")]
    Config(String),
    /// A remote call failed after its retries.
    #[error("object store {op} of {path} failed: {source}")]
    Store {
        op: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// A remote call did not answer in time (after retries).
    #[error("object store {op} of {path} timed out after {timeout_ms} ms")]
    Timeout {
        op: &'static str,
        path: String,
        timeout_ms: u64,
    },
    /// Another writer owns the partition with a newer epoch.
    #[error("partition manifest {path} is owned by epoch {theirs}, ours is {ours}: fenced")]
    Fenced { path: String, ours: u64, theirs: u64 },
    /// An object or manifest failed validation.
    #[error("corrupt object {path}: {reason}")]
    Corrupt { path: String, reason: String },
    /// Local WAL read failed while building an upload.
    #[error(transparent)]
    Wal(#[from] crate::wal::WalError),
}
