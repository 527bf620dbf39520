//! Errors of object store calls.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ObjStoreError {
    /// The object store URL or options cannot be used.
    #[error("invalid object store configuration: {0}")]
    Config(String),
    /// A call failed after its retries.
    #[error("object store {op} of {path} failed: {source}")]
    Store {
        op: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// A call did not answer in time (after retries).
    #[error("object store {op} of {path} timed out after {timeout_ms} ms")]
    Timeout {
        op: &'static str,
        path: String,
        timeout_ms: u64,
    },
    /// A range read returned fewer bytes than asked for.
    #[error("corrupt object {path}: {reason}")]
    Corrupt { path: String, reason: String },
}

impl ObjStoreError {
    /// Whether the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ObjStoreError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}
