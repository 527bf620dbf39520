//! The life cycle every plugin instance shares, whatever its world: a store
//! with the runtime's limits, instantiation, `init(config)`, and calls with a
//! deadline.
//!
//! Invariant: after a trap, timeout or memory-limit hit the instance is
//! dropped, and the next call instantiates and initializes a fresh one (a
//! trapped instance cannot be re-entered). Errors name the plugin.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::Component;

use super::error::PluginError;
use super::runtime::{Runtime, State};
use super::world::{WorldSpec, check_export};

/// What a world's generated bindings provide to [`Instance`].
pub(super) trait World: Sized {
    /// The linked, not yet instantiated plugin (`...Pre<State>`).
    type Pre: Clone;

    /// Wraps a linked component in the world's typed `...Pre`.
    fn typed(pre: wasmtime::component::InstancePre<State>) -> wasmtime::Result<Self::Pre>;

    fn instantiate(pre: &Self::Pre, store: &mut Store<State>) -> wasmtime::Result<Self>;

    /// Calls the world's `init(config)` (the generated bindings take a `&Vec`).
    #[allow(clippy::ptr_arg)]
    fn init(&self, store: &mut Store<State>, config: &Vec<(String, String)>) -> wasmtime::Result<Result<(), String>>;
}

/// Checks `component` against `spec`'s world and links it once.
pub(super) fn link<W: World>(
    runtime: &Runtime,
    name: &str,
    component: &Component,
    spec: &WorldSpec,
) -> Result<W::Pre, PluginError> {
    check_export(name, &runtime.export_names(component), spec)?;
    let invalid = |reason: String| PluginError::Invalid {
        plugin: name.into(),
        reason,
    };
    let pre = runtime.linker.instantiate_pre(component).map_err(|e| {
        invalid(format!(
            "cannot link (it may import something Sluice does not provide): {e:#}"
        ))
    })?;
    W::typed(pre).map_err(|e| invalid(format!("exports do not match the {} world: {e:#}", spec.world)))
}

/// One initialized instance of a plugin, re-created after a trap.
pub(super) struct Instance<W: World> {
    runtime: Arc<Runtime>,
    name: Arc<str>,
    pre: W::Pre,
    config: Vec<(String, String)>,
    live: Option<(Store<State>, W)>,
}

impl<W: World> Instance<W> {
    /// Instantiates and initializes with `config` (an init error refuses it).
    pub(super) fn new(
        runtime: Arc<Runtime>,
        name: Arc<str>,
        pre: W::Pre,
        config: &[(String, String)],
    ) -> Result<Self, PluginError> {
        let mut inst = Instance {
            runtime,
            name,
            pre,
            config: config.to_vec(),
            live: None,
        };
        inst.ensure_live()?;
        Ok(inst)
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn ensure_live(&mut self) -> Result<(), PluginError> {
        if self.live.is_some() {
            return Ok(());
        }
        let rt = &self.runtime;
        let name = &*self.name;
        let mut store = rt.store();
        rt.arm(&mut store);
        let world = match W::instantiate(&self.pre, &mut store) {
            Ok(w) => w,
            Err(e) => return Err(rt.classify(name, &store, e)),
        };
        if rt.overran(&store) {
            return Err(rt.timeout(name));
        }
        rt.arm(&mut store);
        let out = world.init(&mut store, &self.config);
        if rt.overran(&store) {
            return Err(rt.timeout(name));
        }
        match out {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(PluginError::InitFailed {
                    plugin: name.into(),
                    message,
                });
            }
            Err(e) => return Err(rt.classify(name, &store, e)),
        }
        self.live = Some((store, world));
        Ok(())
    }

    /// Runs one export call with a fresh deadline. The plugin's own error
    /// becomes `Failed`; a trap drops the instance.
    pub(super) fn call<R>(
        &mut self,
        f: impl FnOnce(&W, &mut Store<State>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginError> {
        self.ensure_live()?;
        let rt = self.runtime.clone();
        let Some((store, world)) = self.live.as_mut() else {
            return Err(PluginError::Runtime("instance missing after instantiation".into()));
        };
        rt.arm(store);
        let started = std::time::Instant::now();
        let mut out = f(world, store);
        if rt.overran(store) {
            out = Err(wasmtime::Error::new(wasmtime::Trap::Interrupt));
        }
        let plugin = self.name.to_string();
        metrics::histogram!(crate::metrics::PLUGIN_CALL_SECONDS, "plugin" => plugin.clone())
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(crate::metrics::PLUGIN_CALLS, "plugin" => plugin.clone()).increment(1);
        match out {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(message)) => {
                metrics::counter!(crate::metrics::PLUGIN_ERRORS, "plugin" => plugin.clone()).increment(1);
                Err(PluginError::Failed { plugin, message })
            }
            Err(e) => {
                let err = rt.classify(&self.name, store, e);
                let reason = match &err {
                    PluginError::Timeout { .. } => "timeout",
                    PluginError::MemoryLimit { .. } => "memory",
                    _ => "trap",
                };
                metrics::counter!(crate::metrics::PLUGIN_TRAPS, "plugin" => plugin, "reason" => reason).increment(1);
                self.live = None;
                Err(err)
            }
        }
    }
}
