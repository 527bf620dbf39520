//! Transform plugins: validation against the `transform` world, instances,
//! and batch calls.
//!
//! A [`TransformPlugin`] is a compiled, validated plugin version with its
//! `InstancePre` (linking done once). A [`TransformInstance`] is one store
//! plus one instance, initialized with a configuration and reused across
//! batches. After a trap, timeout or memory-limit hit the instance is
//! discarded and the next call re-instantiates it (a trapped instance can't
//! be re-entered). The caller's input is never modified.

use std::sync::Arc;

use bytes::Bytes;
use wasmtime::Store;
use wasmtime::component::Component;

use super::error::PluginError;
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
const TRANSFORM_PREFIX: &str = "sluice:plugin/transformer@";
const COMPACTOR_PREFIX: &str = "sluice:plugin/compactor@";

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

    fn from_component(
        runtime: &Arc<Runtime>,
        name: &str,
        component: &Component,
    ) -> Result<TransformPlugin, PluginError> {
        check_world(name, &runtime.export_names(component))?;
        let pre = runtime
            .linker
            .instantiate_pre(component)
            .map_err(|e| PluginError::Invalid {
                plugin: name.into(),
                reason: format!("cannot link (it may import something Sluice does not provide): {e:#}"),
            })?;
        let pre = bindings::TransformPre::new(pre).map_err(|e| PluginError::Invalid {
            plugin: name.into(),
            reason: format!("exports do not match the transform world: {e:#}"),
        })?;
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
        let mut inst = TransformInstance {
            plugin: self.clone(),
            config: config.to_vec(),
            live: None,
        };
        inst.ensure_live()?;
        Ok(inst)
    }
}

fn check_world(plugin: &str, exports: &[String]) -> Result<(), PluginError> {
    if exports.iter().any(|e| e == TRANSFORM_EXPORT) {
        return Ok(());
    }
    if let Some(other) = exports.iter().find(|e| e.starts_with(TRANSFORM_PREFIX)) {
        return Err(PluginError::IncompatibleVersion {
            plugin: plugin.into(),
            found: other.clone(),
            supported: TRANSFORM_EXPORT,
        });
    }
    let found = if exports.iter().any(|e| e.starts_with(COMPACTOR_PREFIX)) {
        "the `compaction` world".to_string()
    } else if exports.is_empty() {
        "no exports".to_string()
    } else {
        format!("exports [{}]", exports.join(", "))
    };
    Err(PluginError::WrongWorld {
        plugin: plugin.into(),
        expected: "transform",
        found,
    })
}

/// One initialized instance of a transform plugin.
pub struct TransformInstance {
    plugin: TransformPlugin,
    config: Vec<(String, String)>,
    live: Option<(Store<State>, bindings::Transform)>,
}

impl TransformInstance {
    fn ensure_live(&mut self) -> Result<(), PluginError> {
        if self.live.is_some() {
            return Ok(());
        }
        let rt = &self.plugin.runtime;
        let name = &*self.plugin.name;
        let mut store = rt.store();
        rt.arm(&mut store);
        let bindings = match self.plugin.pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(e) => return Err(rt.classify(name, &store, e)),
        };
        rt.arm(&mut store);
        match bindings.sluice_plugin_transformer().call_init(&mut store, &self.config) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(PluginError::InitFailed {
                    plugin: name.into(),
                    message,
                });
            }
            Err(e) => return Err(rt.classify(name, &store, e)),
        }
        self.live = Some((store, bindings));
        Ok(())
    }

    /// Calls the plugin on an encoded plugin batch; returns the encoded output.
    pub fn call(&mut self, batch: &[u8]) -> Result<Vec<u8>, PluginError> {
        self.ensure_live()?;
        let rt = self.plugin.runtime.clone();
        let name = self.plugin.name.clone();
        let Some((store, bindings)) = self.live.as_mut() else {
            return Err(PluginError::Runtime("instance missing after instantiation".into()));
        };
        rt.arm(store);
        match bindings.sluice_plugin_transformer().call_transform(&mut *store, batch) {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(message)) => Err(PluginError::Failed {
                plugin: name.to_string(),
                message,
            }),
            Err(e) => {
                let err = rt.classify(&name, store, e);
                // A trapped instance cannot be entered again: start fresh next time.
                self.live = None;
                Err(err)
            }
        }
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
            &rec.value,
            rec.headers.iter().map(|(n, v)| (n.as_str(), v.as_ref())),
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
                value: output.slice_ref(r.record.value),
                headers: r
                    .record
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), output.slice_ref(v)))
                    .collect(),
                timestamp_ms: r.record.timestamp_ms,
            },
        })
        .collect())
}

#[cfg(test)]
pub(crate) fn check_world_for_test(plugin: &str, exports: &[String]) -> Result<(), PluginError> {
    check_world(plugin, exports)
}
