//! WebAssembly plugins: the wasmtime runtime, transform plugins and
//! compaction key-policy plugins.
//!
//! Owns the engine, per-call limits (epoch deadline, memory cap), the
//! validation of uploaded components against the `sluice:plugin` WIT worlds,
//! and the conversion of record batches across the boundary (`sluice_wire`
//! plugin batch encoding). A plugin failure is a typed [`PluginError`] naming
//! the plugin; the host and the caller's data are unaffected.

pub mod compaction;
pub mod error;
mod instance;
pub mod registry;
pub mod runtime;
pub mod transform;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_compaction;
#[cfg(test)]
mod tests_first_party;

pub use compaction::{CompactionInstance, CompactionPlugin, Decision};
pub use error::PluginError;
pub use registry::{Compiled, PluginInfo, PluginKind, Registry, RegistryError, VersionInfo, load_any};
pub use runtime::{Limits, Runtime};
pub use transform::{TransformInstance, TransformPlugin};
