//! The shared wasmtime engine, the WASI linker and per-call limits.
//!
//! Invariants:
//! * one [`Engine`] per host; an epoch ticker thread advances it every
//!   [`TICK`], and every call sets a deadline, so no guest runs unbounded;
//! * a guest cannot block past its deadline inside WASI either: the only
//!   pollables a plugin can make that wait are `wasi:clocks` timers, and
//!   [`deadline_clock`] shortens every one of them to end at the call's
//!   deadline, after which the epoch check stops the guest (stdin is closed,
//!   stdout and stderr are sinks, sockets and name lookup are off);
//! * every store has a [`Limiter`] capping the instance's linear memory, all
//!   of its memories together, and the number of instances, tables and
//!   memories; hitting a cap traps the instance and is reported as
//!   `MemoryLimit`, not a guest bug;
//! * guests get WASI's minimum: no preopened directories, environment,
//!   arguments or network; stdio goes nowhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// Core instances one plugin instance may create (a Rust component needs a
/// handful: its module, the WASI adapter and shims).
pub const MAX_INSTANCES: usize = 32;
/// Tables one plugin instance may create.
pub const MAX_TABLES: usize = 32;
/// Linear memories one plugin instance may create; their sizes together are
/// capped by [`Limits::memory_bytes`].
pub const MAX_MEMORIES: usize = 8;
/// Elements one table may hold.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Store data of one plugin instance.
pub struct State {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// When the running call must end; WASI timers end there at the latest.
    pub(super) deadline: Instant,
    /// Set when a WASI timer of the running call was cut at the deadline.
    pub(super) timer_cut: bool,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps the memory of a whole instance (the sum over all its linear
/// memories) and remembers whether the cap was hit.
pub struct Limiter {
    cap: usize,
    /// Bytes of all memories of the store, as granted so far.
    total: usize,
    pub(crate) hit: bool,
}

impl Limiter {
    fn new(cap: usize) -> Limiter {
        Limiter {
            cap,
            total: 0,
            hit: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let grown = desired.saturating_sub(current);
        match self.total.checked_add(grown) {
            Some(total) if total <= self.cap => {
                self.total = total;
                Ok(true)
            }
            _ => {
                self.hit = true;
                Err(wasmtime::Error::msg(format!(
                    "memory limit of {} bytes reached (all memories of the instance together)",
                    self.cap
                )))
            }
        }
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Granted above but not done by the engine: nothing to undo that
        // matters (the cap stays conservative), and the guest sees -1.
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
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
        super::deadline_clock::link(&mut linker)
            .map_err(|e| PluginError::Runtime(format!("cannot link WASI clocks: {e}")))?;
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
            wasi: WasiCtxBuilder::new()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(self.limits.memory_bytes),
            deadline: Instant::now() + self.limits.call_timeout,
            timer_cut: false,
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
        let state = store.data_mut();
        state.deadline = Instant::now() + self.limits.call_timeout;
        state.timer_cut = false;
    }

    /// Whether the call just made on `store` slept in WASI until its
    /// deadline: it ran out of time even if the guest then returned before
    /// the next epoch check, so it is a timeout like any other.
    pub(crate) fn overran(&self, store: &Store<State>) -> bool {
        let state = store.data();
        state.timer_cut && Instant::now() >= state.deadline
    }

    pub(crate) fn timeout(&self, plugin: &str) -> PluginError {
        PluginError::Timeout {
            plugin: plugin.into(),
            limit: self.limits.call_timeout,
        }
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
            return self.timeout(plugin);
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
