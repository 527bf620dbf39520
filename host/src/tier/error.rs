//! Errors of the tiering subsystem.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TierError {
    /// Tiering cannot go on with this configuration or state.
    #[error("invalid object store configuration: {0}")]
    Config(String),
    /// An object store call failed (after its retries) or timed out.
    #[error(transparent)]
    Remote(#[from] crate::objstore::ObjStoreError),
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
