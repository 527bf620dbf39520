//! The shared wasmtime engine, the WASI linker and per-call limits.
//!
//! Invariants:
//! * one [`Engine`] per host; an epoch ticker thread advances it every
//!   [`TICK`], and every call sets a deadline, so no guest runs unbounded;
//! * every store has a [`Limiter`] capping linear memory; hitting the cap
//!   traps the instance and is reported as `MemoryLimit`, not a guest bug;
//! * guests get WASI's minimum: no preopened directories, environment,
//!   arguments or network; stdio goes nowhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::error::PluginError;

/// Epoch tick: the granularity of call deadlines.
pub const TICK: Duration = Duration::from_millis(10);

/// Limits applied to every plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory one instance may use.
    pub memory_bytes: usize,
    /// Wall-clock time one call (init or one batch) may take.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 * 1024 * 1024,
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// Store data of one plugin instance.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps memory growth and remembers whether the cap was hit.
pub struct Limiter {
    cap: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes reached",
                self.cap
            )));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The engine, linker and ticker shared by all plugins.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<State>,
    pub(crate) limits: Limits,
    stop: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new(limits: Limits) -> Result<Arc<Runtime>, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| PluginError::Runtime(format!("cannot create engine: {e}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| PluginError::Runtime(format!("cannot link WASI: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, ticker_stop) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sluice-wasm-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Runtime(format!("cannot start epoch ticker: {e}")))?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            limits,
            stop,
        }))
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles `wasm` into a component (validates it).
    pub(crate) fn compile(&self, plugin: &str, wasm: &[u8]) -> Result<Component, PluginError> {
        Component::new(&self.engine, wasm).map_err(|e| PluginError::Invalid {
            plugin: plugin.into(),
            reason: format!("{e:#}"),
        })
    }

    /// Names of what a component exports.
    pub(crate) fn export_names(&self, component: &Component) -> Vec<String> {
        component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// A fresh store with WASI's minimum and this runtime's memory cap.
    pub(crate) fn store(&self) -> Store<State> {
        let state = State {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                cap: self.limits.memory_bytes,
                hit: false,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }

    /// Sets the deadline for the next call on `store`.
    pub(crate) fn arm(&self, store: &mut Store<State>) {
        let ticks = (self.limits.call_timeout.as_millis() / TICK.as_millis()).max(1) as u64;
        // +1: the current tick may be about to end.
        store.set_epoch_deadline(ticks + 1);
    }

    /// Turns a wasmtime error from a call into a typed plugin error.
    pub(crate) fn classify(&self, plugin: &str, store: &Store<State>, err: wasmtime::Error) -> PluginError {
        if store.data().limiter.hit {
            return PluginError::MemoryLimit {
                plugin: plugin.into(),
                limit: self.limits.memory_bytes,
            };
        }
        if let Some(Trap::Interrupt) = err.downcast_ref::<Trap>() {
            return PluginError::Timeout {
                plugin: plugin.into(),
                limit: self.limits.call_timeout,
            };
        }
        PluginError::Trapped {
            plugin: plugin.into(),
            message: format!("{err:#}"),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
