//! Compaction key-policy plugins (world `compaction`): validation, instances
//! and batch calls that return one decision per record.
//!
//! Also owns how a component is matched to a world ([`check_export`]),
//! shared with transforms. Invariants: a call returns exactly one decision
//! per input record, in order, or an error naming the plugin; the caller's
//! records are never modified; a trap discards the instance (see
//! `instance.rs`).

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::Component;

use super::error::PluginError;
use super::instance::{Instance, World, link};
use super::runtime::{Runtime, State};
use super::transform::encode_input;
use super::world::COMPACTION_WORLD;
use crate::log::OffsetRecord;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "compaction",
    });
}

use bindings::exports::sluice::plugin::compactor::Decision as WitDecision;

/// Name of the export a compaction plugin must have.
pub const COMPACTION_EXPORT: &str = "sluice:plugin/compactor@0.1.0";

/// What compaction does with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Never removed by compaction.
    KeepAlways,
    /// Only the latest record with this key is kept.
    Key(Vec<u8>),
    /// Deletes the key; this record goes after `delete_retention`.
    Tombstone(Vec<u8>),
    /// Removed at the next compaction.
    Drop,
}

/// A validated compaction plugin version, ready to instantiate.
#[derive(Clone)]
pub struct CompactionPlugin {
    name: Arc<str>,
    runtime: Arc<Runtime>,
    pre: bindings::CompactionPre<State>,
}

impl CompactionPlugin {
    /// Compiles and validates `wasm` as a compaction plugin named `name`.
    #[cfg(test)]
    pub fn load(runtime: &Arc<Runtime>, name: &str, wasm: &[u8]) -> Result<CompactionPlugin, PluginError> {
        let component = runtime.compile(name, wasm)?;
        Self::from_component(runtime, name, &component)
    }

    pub(super) fn from_component(
        runtime: &Arc<Runtime>,
        name: &str,
        component: &Component,
    ) -> Result<CompactionPlugin, PluginError> {
        let pre = link::<bindings::Compaction>(runtime, name, component, &COMPACTION_WORLD)?;
        Ok(CompactionPlugin {
            name: name.into(),
            runtime: runtime.clone(),
            pre,
        })
    }

    #[cfg(test)]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new instance initialized with `config`.
    pub fn instantiate(&self, config: &[(String, String)]) -> Result<CompactionInstance, PluginError> {
        Ok(CompactionInstance {
            inst: Instance::new(self.runtime.clone(), self.name.clone(), self.pre.clone(), config)?,
        })
    }
}

impl World for bindings::Compaction {
    type Pre = bindings::CompactionPre<State>;

    fn typed(pre: wasmtime::component::InstancePre<State>) -> wasmtime::Result<Self::Pre> {
        bindings::CompactionPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<State>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn init(&self, store: &mut Store<State>, config: &Vec<(String, String)>) -> wasmtime::Result<Result<(), String>> {
        self.sluice_plugin_compactor().call_init(store, config)
    }
}

/// One initialized instance of a compaction plugin.
pub struct CompactionInstance {
    inst: Instance<bindings::Compaction>,
}

impl CompactionInstance {
    /// One decision per record, in order.
    pub fn decide(&mut self, records: &[OffsetRecord]) -> Result<Vec<Decision>, PluginError> {
        let input = encode_input(records).map_err(|e| PluginError::Runtime(format!("cannot encode input: {e}")))?;
        let out = self
            .inst
            .call(|w, store| w.sluice_plugin_compactor().call_decide(store, &input))?;
        if out.len() != records.len() {
            return Err(PluginError::BadOutput {
                plugin: self.inst.name().to_string(),
                reason: format!("{} decisions for {} records", out.len(), records.len()),
            });
        }
        Ok(out
            .into_iter()
            .map(|d| match d {
                WitDecision::KeepAlways => Decision::KeepAlways,
                WitDecision::Key(k) => Decision::Key(k),
                WitDecision::Tombstone(k) => Decision::Tombstone(k),
                WitDecision::Drop => Decision::Drop,
            })
            .collect())
    }
}
