//! The `[plugins]` section: what uploads may cost, and how many plugins,
//! versions and pipelines a node keeps. Per-call limits (memory, time) stay
//! the top-level `plugin_memory_bytes` and `plugin_call_timeout`.

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Largest `.wasm` an upload may carry (413 `payload_too_large`):
    /// compiling costs about 250 times the component's size in memory.
    pub max_upload_bytes: ByteSize,
    /// Core functions a component may define, counted before compiling
    /// (400 `invalid_plugin`).
    pub max_functions: u32,
    /// Uploads compiled at once; more wait up to `compile_wait` and are
    /// then answered 503 `busy`.
    pub max_concurrent_compiles: usize,
    /// How long an upload waits for a compile slot.
    #[serde(with = "humantime_serde")]
    pub compile_wait: std::time::Duration,
    /// Versions kept per plugin: an upload past it removes the oldest
    /// version nothing pins, or is refused (409 `too_many_versions`).
    pub max_versions: u32,
    /// Compiled plugin versions held in memory; the least recently used
    /// are dropped and compiled again from disk when next needed.
    pub max_compiled: usize,
    /// Pipelines on the node (409 `node_full`).
    pub max_pipelines: usize,
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            max_upload_bytes: ByteSize::mib(4),
            max_functions: 20_000,
            max_concurrent_compiles: 1,
            compile_wait: std::time::Duration::from_secs(30),
            max_versions: 100,
            max_compiled: 64,
            max_pipelines: 1_000,
        }
    }
}

impl PluginSettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        let bytes = self.max_upload_bytes.as_u64();
        if !(1024..=256 * 1024 * 1024).contains(&bytes) {
            return Err("plugins.max_upload_bytes must be between 1 KiB and 256 MiB".into());
        }
        if self.max_functions == 0 || self.max_concurrent_compiles == 0 {
            return Err("plugins.max_functions and plugins.max_concurrent_compiles must be positive".into());
        }
        if self.max_versions == 0 || self.max_compiled == 0 || self.max_pipelines == 0 {
            return Err("plugins.max_versions, plugins.max_compiled and plugins.max_pipelines must be positive".into());
        }
        Ok(())
    }
}
