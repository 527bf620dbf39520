//! Errors of pipelines (mapped to the public error in `crate::error`).

use thiserror::Error;

use crate::log::LogError;
use crate::plugin::{PluginError, RegistryError};

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The definition no longer fits what exists (a stream gone or empty).
    #[error("{0}")]
    Invalid(String),
    /// A plugin failed on a batch; `context` says which.
    #[error("{source} ({context})")]
    Batch {
        #[source]
        source: PluginError,
        context: String,
    },
    /// A task running a plugin off the async workers failed.
    #[error("blocking task failed: {0}")]
    Task(String),
}
