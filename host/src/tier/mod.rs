//! Tiering: moves partition data from the WAL into an object store and
//! serves it back.
//!
//! Owns the object store handle, segment objects, per-partition manifests,
//! the background uploader, cold reads and retention. Invariants:
//! * an object is fully written before any manifest names it;
//! * a manifest version is only ever created, never overwritten
//!   (create-if-absent), so a stale writer is refused, not merged;
//! * the WAL is trimmed only below data that a committed manifest covers;
//! * every remote call has a timeout and bounded retries; a failing store
//!   turns into a recorded error and a later retry, never a hang;
//! * start-up never waits for the store: the WAL serves at once and the
//!   backlog is uploaded in the background in bounded chunks.

pub mod cold;
pub mod compact;
mod compact_io;
pub mod error;
pub mod manifest;
pub mod plan;
pub mod rate;
pub mod retention;
pub mod segment;
pub mod uploader;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_compact;
#[cfg(test)]
mod tests_compact_resume;
#[cfg(test)]
mod tests_gaps;
#[cfg(test)]
mod tests_object_wal;
#[cfg(test)]
mod tests_record_key;
#[cfg(test)]
mod tests_retention;
#[cfg(test)]
mod tests_scheduling;
#[cfg(test)]
mod tests_store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::objstore::{Remote, RemoteOptions};
pub use error::TierError;
use manifest::Manifest;

use crate::log::Log;

/// How long stopping waits for the upload in progress.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Tuning of tiering.
#[derive(Debug, Clone)]
pub struct TierOptions {
    /// Largest segment object (and so the most one upload holds open).
    pub upload_chunk_bytes: u64,
    /// Untiered bytes in a partition that start an upload at once.
    pub upload_min_bytes: u64,
    /// Smaller amounts are uploaded once they have waited this long.
    pub upload_interval: Duration,
    /// Upload bandwidth cap in bytes per second (0: none).
    pub upload_rate: u64,
    /// Memory for batches read from objects.
    pub cold_cache_bytes: usize,
    /// How long replaced or dropped objects are kept before deletion.
    pub gc_grace: Duration,
    /// How often the uploader looks for work when idle.
    pub tick: Duration,
    pub remote: RemoteOptions,
    /// Memory one compaction run may use, whatever its stream asks for.
    pub max_compaction_memory_bytes: u64,
}

impl Default for TierOptions {
    fn default() -> Self {
        TierOptions {
            upload_chunk_bytes: 512 * 1024 * 1024,
            upload_min_bytes: 16 * 1024 * 1024,
            upload_interval: Duration::from_secs(30),
            upload_rate: 0,
            cold_cache_bytes: 64 * 1024 * 1024,
            gc_grace: Duration::from_secs(600),
            tick: Duration::from_millis(250),
            remote: RemoteOptions::default(),
            max_compaction_memory_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// What is known about one partition's tiering.
#[derive(Debug, Default)]
struct PartState {
    manifest: Option<Arc<Manifest>>,
    /// Whether this node holds the partition's epoch (claimed it).
    claimed: bool,
    fenced: bool,
    last_error: Option<String>,
    last_upload_ms: Option<u64>,
    /// Since when untiered data has waited (for `upload_interval`).
    pending_since: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
    /// Last listing for unreferenced objects and old manifest versions.
    last_sweep: Option<Instant>,
    compaction: compact::CompactionStatus,
}

/// A partition's tiering, as shown in stream status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TierStatus {
    /// Whether the partition's manifest has been read since start-up; until
    /// then the tiered range below is unknown (shown as zeros).
    pub known: bool,
    /// Offsets held in the object store (`start..end`).
    pub tiered_start: u64,
    pub tiered_end: u64,
    pub segments: usize,
    pub tiered_bytes: u64,
    pub epoch: u64,
    pub fenced: bool,
    pub last_error: Option<String>,
    pub last_upload_ms: Option<u64>,
}

/// The tiering service of a node.
pub struct Tier {
    log: Arc<Log>,
    remote: Remote,
    opts: TierOptions,
    limiter: rate::RateLimiter,
    parts: Mutex<HashMap<(u32, u32), PartState>>,
    cold_cache: cold::ColdCache,
    index_cache: cold::IndexCache,
    wake: tokio::sync::Notify,
    stop: tokio::sync::watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Where compaction policy plugins come from.
    plugins: std::sync::OnceLock<Arc<crate::plugin::Registry>>,
    /// Streams (by id) whose compaction was asked for.
    compact_requests: Mutex<std::collections::HashSet<u32>>,
    /// Partitions (stream id, partition) a round left with work.
    active: Mutex<std::collections::HashSet<(u32, u32)>>,
    /// Partitions whose records were deleted below an offset since the last
    /// retention round: it drops their segments wholly below it.
    deleted: Mutex<std::collections::HashSet<(u32, u32)>>,
    /// Partition visits by the uploader since start (tests watch it).
    visits: std::sync::atomic::AtomicU64,
}

impl Tier {
    /// Creates the service and attaches cold reads to the log. Does not
    /// touch the store: call [`Tier::start`] to run the uploader.
    pub fn new(log: Arc<Log>, remote: Remote, opts: TierOptions) -> Arc<Tier> {
        let (stop, _) = tokio::sync::watch::channel(false);
        let tier = Arc::new(Tier {
            limiter: rate::RateLimiter::new(opts.upload_rate, opts.remote.part_bytes.max(1)),
            cold_cache: cold::ColdCache::new(opts.cold_cache_bytes),
            index_cache: cold::IndexCache::new(opts.cold_cache_bytes / 4),
            log: log.clone(),
            remote,
            opts,
            parts: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            stop,
            task: Mutex::new(None),
            plugins: std::sync::OnceLock::new(),
            compact_requests: Mutex::new(Default::default()),
            active: Mutex::new(Default::default()),
            deleted: Mutex::new(Default::default()),
            visits: Default::default(),
        });
        log.set_cold_store(Arc::new(cold::Cold(Arc::downgrade(&tier))));
        tier
    }

    /// Starts the background uploader (idempotent).
    pub fn start(self: &Arc<Self>) {
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.is_none() {
            self.activate_lagging();
            let me = self.clone();
            *task = Some(tokio::spawn(async move { me.run().await }));
        }
    }

    /// Asks the uploader to look for work now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Partition visits by the uploader since start: an idle partition
    /// adds none per round (tests, tools).
    pub fn visits(&self) -> u64 {
        self.visits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the uploader: the chunk being uploaded may finish (bounded by
    /// `STOP_GRACE`), then the task is aborted; an abandoned upload is
    /// retried from the WAL after restart.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut t) = task
            && tokio::time::timeout(STOP_GRACE, &mut t).await.is_err()
        {
            t.abort();
            let _ = t.await;
        }
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Tiering state of one partition.
    pub fn status(&self, stream_id: u32, partition: u32) -> TierStatus {
        let parts = self.lock_parts();
        let Some(s) = parts.get(&(stream_id, partition)) else {
            return TierStatus::default();
        };
        let m = s.manifest.as_deref();
        TierStatus {
            known: m.is_some(),
            tiered_start: m.map_or(0, |m| m.start_offset),
            tiered_end: m.map_or(0, |m| m.end_offset),
            segments: m.map_or(0, |m| m.segments.len()),
            tiered_bytes: m.map_or(0, Manifest::bytes),
            epoch: m.map_or(0, |m| m.epoch),
            fenced: s.fenced,
            last_error: s.last_error.clone(),
            last_upload_ms: s.last_upload_ms,
        }
    }

    fn lock_parts(&self) -> std::sync::MutexGuard<'_, HashMap<(u32, u32), PartState>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_part<R>(&self, key: (u32, u32), f: impl FnOnce(&mut PartState) -> R) -> R {
        f(self.lock_parts().entry(key).or_default())
    }
}
