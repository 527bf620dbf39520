//! Transform plugins: validation against the `transform` world, instances,
//! and batch calls.
//!
//! A [`TransformPlugin`] is a compiled, validated plugin version with its
//! `InstancePre` (linking done once). A [`TransformInstance`] is one store
//! plus one instance, initialized with a configuration and reused across
//! batches (life cycle in `instance.rs`). The caller's input is never
//! modified.

use std::sync::Arc;

use bytes::Bytes;
use wasmtime::Store;
use wasmtime::component::Component;

use super::error::PluginError;
use super::instance::{Instance, World, link};
use super::runtime::{Runtime, State};
use crate::log::{OffsetRecord, Record};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transform",
    });
}

/// Name of the export a transform plugin must have.
pub const TRANSFORM_EXPORT: &str = "sluice:plugin/transformer@0.1.0";
pub(super) const TRANSFORM_PREFIX: &str = "sluice:plugin/transformer@";

/// A validated transform plugin version, ready to instantiate.
#[derive(Clone)]
pub struct TransformPlugin {
    name: Arc<str>,
    runtime: Arc<Runtime>,
    pre: bindings::TransformPre<State>,
}

impl TransformPlugin {
    /// Compiles and validates `wasm` as a transform plugin named `name`.
    pub fn load(runtime: &Arc<Runtime>, name: &str, wasm: &[u8]) -> Result<TransformPlugin, PluginError> {
        let component = runtime.compile(name, wasm)?;
        Self::from_component(runtime, name, &component)
    }

    pub(super) fn from_component(
        runtime: &Arc<Runtime>,
        name: &str,
        component: &Component,
    ) -> Result<TransformPlugin, PluginError> {
        let pre = link::<bindings::Transform>(runtime, name, component, &super::world::TRANSFORM_WORLD)?;
        Ok(TransformPlugin {
            name: name.into(),
            runtime: runtime.clone(),
            pre,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new instance initialized with `config`.
    pub fn instantiate(&self, config: &[(String, String)]) -> Result<TransformInstance, PluginError> {
        Ok(TransformInstance {
            plugin: self.clone(),
            inst: Instance::new(self.runtime.clone(), self.name.clone(), self.pre.clone(), config)?,
        })
    }
}

impl World for bindings::Transform {
    type Pre = bindings::TransformPre<State>;

    fn typed(pre: wasmtime::component::InstancePre<State>) -> wasmtime::Result<Self::Pre> {
        bindings::TransformPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<State>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn init(&self, store: &mut Store<State>, config: &Vec<(String, String)>) -> wasmtime::Result<Result<(), String>> {
        self.sluice_plugin_transformer().call_init(store, config)
    }
}

/// One initialized instance of a transform plugin.
pub struct TransformInstance {
    plugin: TransformPlugin,
    inst: Instance<bindings::Transform>,
}

impl TransformInstance {
    /// Calls the plugin on an encoded plugin batch; returns the encoded output.
    pub fn call(&mut self, batch: &[u8]) -> Result<Vec<u8>, PluginError> {
        self.inst
            .call(|w, store| w.sluice_plugin_transformer().call_transform(store, batch))
    }

    /// Transforms records: encodes them, calls the plugin, decodes the output.
    pub fn transform(&mut self, records: &[OffsetRecord]) -> Result<Vec<Record>, PluginError> {
        Ok(self
            .transform_with_offsets(records)?
            .into_iter()
            .map(|r| r.record)
            .collect())
    }

    /// Like [`TransformInstance::transform`], keeping for each output record
    /// the offset of the input record it came from.
    pub fn transform_with_offsets(&mut self, records: &[OffsetRecord]) -> Result<Vec<OffsetRecord>, PluginError> {
        let input = encode_input(records).map_err(|e| PluginError::Runtime(format!("cannot encode input: {e}")))?;
        let output = Bytes::from(self.call(&input)?);
        decode_output(&output).map_err(|e| PluginError::BadOutput {
            plugin: self.plugin.name.to_string(),
            reason: e.to_string(),
        })
    }

    pub fn plugin(&self) -> &TransformPlugin {
        &self.plugin
    }
}

/// Encodes records as a plugin batch.
pub fn encode_input(records: &[OffsetRecord]) -> Result<Vec<u8>, sluice_wire::WireError> {
    let size: usize = records.iter().map(|r| r.record.size() + 32).sum();
    let mut w = sluice_wire::BatchWriter::with_capacity(size);
    for r in records {
        let rec = &r.record;
        w.push(
            r.offset,
            rec.timestamp_ms,
            rec.key.as_deref(),
            // Plugins see a null value as empty: plugins built before null
            // values existed could not decode one.
            rec.value_bytes(),
            // Null header values too (see above).
            rec.headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_deref().unwrap_or_default())),
        )?;
    }
    Ok(w.finish())
}

/// Decodes a plugin's output batch into records (sharing `output`'s memory),
/// each with the offset of the input record it came from.
pub fn decode_output(output: &Bytes) -> Result<Vec<OffsetRecord>, sluice_wire::WireError> {
    Ok(sluice_wire::decode_batch(output)?
        .into_iter()
        .map(|r| OffsetRecord {
            offset: r.offset,
            record: Record {
                key: r.record.key.map(|k| output.slice_ref(k)),
                value: r.record.value_opt().map(|v| output.slice_ref(v)),
                headers: r
                    .record
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), Some(output.slice_ref(v))))
                    .collect(),
                timestamp_ms: r.record.timestamp_ms,
            },
        })
        .collect())
}

#[cfg(test)]
pub(crate) fn check_world_for_test(plugin: &str, exports: &[String]) -> Result<(), PluginError> {
    super::world::check_export(plugin, exports, &super::world::TRANSFORM_WORLD)
}
