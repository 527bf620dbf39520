//! Failpoints of the local WAL writer, for tests on real files. They are
//! compiled into tests only; outside tests every check is a constant
//! `false`. Each handle is per WAL (clones share it), so parallel tests do
//! not interfere.

#[cfg(test)]
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::Ordering;

/// Failpoints of the WAL writer, for tests on real files (compiled into
/// tests only; empty otherwise). Each handle is per WAL (clones share it),
/// so parallel tests do not interfere.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    #[cfg(test)]
    fail_syncs: Arc<std::sync::atomic::AtomicBool>,
    #[cfg(test)]
    fail_segment_creates: Arc<std::sync::atomic::AtomicBool>,
}

impl Faults {
    /// `wal::sync::err`: while on, every fdatasync of a group reports an error.
    #[cfg(test)]
    pub fn fail_syncs(&self, on: bool) {
        self.fail_syncs.store(on, Ordering::SeqCst);
    }

    #[cfg(test)]
    pub(crate) fn sync_fails(&self) -> bool {
        self.fail_syncs.load(Ordering::SeqCst)
    }

    /// `wal::segment::emfile`: while on, creating a segment fails as if the
    /// process had no descriptor left (EMFILE).
    #[cfg(test)]
    pub fn fail_segment_creates(&self, on: bool) {
        self.fail_segment_creates.store(on, Ordering::SeqCst);
    }

    #[cfg(test)]
    pub(crate) fn segment_creates_fail(&self) -> bool {
        self.fail_segment_creates.load(Ordering::SeqCst)
    }

    #[cfg(not(test))]
    pub(crate) fn sync_fails(&self) -> bool {
        false
    }

    #[cfg(not(test))]
    pub(crate) fn segment_creates_fail(&self) -> bool {
        false
    }
}
