//! Errors of the plugin runtime. Every variant names the plugin.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin `{plugin}` is not a valid WebAssembly component: {reason}")]
    Invalid { plugin: String, reason: String },
    #[error("plugin `{plugin}` implements {found}, not the `{expected}` world")]
    WrongWorld {
        plugin: String,
        expected: &'static str,
        found: String,
    },
    #[error(
        "plugin `{plugin}` was built against `{found}`; this host supports `{supported}` (rebuild it with the current sluice-sdk)"
    )]
    IncompatibleVersion {
        plugin: String,
        found: String,
        supported: &'static str,
    },
    #[error("plugin `{plugin}` refused its configuration: {message}")]
    InitFailed { plugin: String, message: String },
    #[error("plugin `{plugin}` returned an error: {message}")]
    Failed { plugin: String, message: String },
    #[error("plugin `{plugin}` trapped: {message}")]
    Trapped { plugin: String, message: String },
    #[error("plugin `{plugin}` ran past its time limit of {limit:?}")]
    Timeout { plugin: String, limit: Duration },
    #[error("plugin `{plugin}` tried to use more than its memory limit of {limit} bytes")]
    MemoryLimit { plugin: String, limit: usize },
    #[error("plugin `{plugin}` produced malformed output: {reason}")]
    BadOutput { plugin: String, reason: String },
    #[error("plugin runtime error: {0}")]
    Runtime(String),
}

impl PluginError {
    /// True when the fault is the plugin's, at run time (as opposed to a bad upload or config).
    pub fn is_runtime_failure(&self) -> bool {
        matches!(
            self,
            PluginError::Failed { .. }
                | PluginError::Trapped { .. }
                | PluginError::Timeout { .. }
                | PluginError::MemoryLimit { .. }
                | PluginError::BadOutput { .. }
        )
    }
}
