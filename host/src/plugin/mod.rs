//! WebAssembly plugins: the wasmtime runtime, transform plugins and
//! compaction key-policy plugins.
//!
//! Owns the engine, per-call limits (epoch deadline, memory cap), the
//! validation of uploaded components against the `sluice:plugin` WIT worlds,
//! and the conversion of record batches across the boundary (`sluice_wire`
//! plugin batch encoding). A plugin failure is a typed [`PluginError`] naming
//! the plugin; the host and the caller's data are unaffected.

pub mod compaction;
mod deadline_clock;
pub mod error;
mod instance;
pub mod precheck;
pub mod registry;
pub mod runtime;
pub mod transform;
mod world;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_compaction;
#[cfg(test)]
mod tests_first_party;

#[cfg(test)]
pub use compaction::CompactionPlugin;
pub use compaction::{CompactionInstance, Decision};
pub use error::PluginError;
#[cfg(test)]
pub use registry::PluginKind;
pub use registry::{Compiled, PluginInfo, Registry, RegistryError, VersionInfo, load_any};
pub use runtime::{Limits, Runtime};
pub use transform::{TransformInstance, TransformPlugin};
