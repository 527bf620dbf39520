//! `wasi:clocks/monotonic-clock` for plugins, with every timer ending at the
//! running call's deadline at the latest.
//!
//! A guest that sleeps (`std::thread::sleep`, or a timer pollable passed to
//! `wasi:io/poll`) blocks inside the host, where the epoch deadline cannot
//! reach it. Timers are the only pollables a plugin can make that wait
//! (stdin is closed, stdout and stderr are sinks, sockets are off), so
//! shortening each timer to the deadline means no host call outlives it;
//! a call that slept to its deadline is then a timeout, whether the guest's
//! next instruction meets the passed epoch deadline or it returns first
//! (`Runtime::overran`). Timers inside the deadline behave normally.
//!
//! This shadows the monotonic clock that `add_to_linker_sync` linked; the
//! wall clock and everything else stay WASI's own.

use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{self, Host};

use super::runtime::State;

/// Replaces the monotonic clock in `linker` with [`Clamped`].
pub(super) fn link(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = monotonic_clock::add_to_linker::<State, ClampedClock>(linker, |state| Clamped {
        clocks: WasiClocksCtxView {
            ctx: state.wasi.clocks(),
            table: &mut state.table,
        },
        deadline: state.deadline,
        cut: &mut state.timer_cut,
    });
    linker.allow_shadowing(false);
    linked
}

struct ClampedClock;

impl HasData for ClampedClock {
    type Data<'a> = Clamped<'a>;
}

/// WASI's monotonic clock, with timers cut at `deadline`.
pub(super) struct Clamped<'a> {
    clocks: WasiClocksCtxView<'a>,
    deadline: Instant,
    /// Set when a timer is cut.
    cut: &'a mut bool,
}

impl Clamped<'_> {
    /// `wanted`, but no later than the deadline.
    fn clamp(&mut self, wanted: Duration) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if wanted > left {
            *self.cut = true;
            return left;
        }
        wanted
    }
}

impl Host for Clamped<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        self.clocks.now()
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        self.clocks.resolution()
    }

    fn subscribe_instant(&mut self, when: monotonic_clock::Instant) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.clocks.now()?;
        self.subscribe_duration(when.saturating_sub(now))
    }

    fn subscribe_duration(&mut self, duration: monotonic_clock::Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let clamped = self.clamp(Duration::from_nanos(duration));
        self.clocks
            .subscribe_duration(u64::try_from(clamped.as_nanos()).unwrap_or(u64::MAX))
    }
}
