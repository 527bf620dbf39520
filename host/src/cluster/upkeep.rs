//! Periodic duties of the reconcile loop that keep replication safe:
//! a leader that stopped hearing from a follower asks it whether a newer
//! epoch exists (a leader moved away from while it was down or cut off
//! steps down instead of acknowledging alone), and each node checkpoints
//! its high watermarks so a restart does not hide records readers saw.
//!
//! Invariants: a checkpointed high watermark never exceeds what was
//! computed before it was written (restoring it is safe); checks of peers
//! run in their own tasks and never block the loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Cluster;
use super::moves::{PartitionRef, PartitionState};
use crate::log::replica::ReplicaView;

/// How long a follower may be silent before its leader asks it.
pub const SILENT_AFTER: Duration = Duration::from_secs(1);
/// How often one partition's silent followers are asked at most.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often high watermarks are checkpointed (when they changed).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// One line of the high watermark checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpointed {
    pub stream: String,
    pub created_ms: u64,
    pub partition: u32,
    pub high_watermark: u64,
}

pub fn checkpoint_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("high_watermarks.json")
}

impl Cluster {
    /// Asks `peers` for their view of `v`; follows a newer epoch if one
    /// answers with it. Unreachable peers are skipped.
    pub(super) async fn check_newer_epoch(&self, v: &ReplicaView, peers: &[u32]) {
        let timeout = self.settings.peer_timeout;
        let at = PartitionRef {
            stream: v.stream.clone(),
            partition: v.partition,
        };
        let calls = peers
            .iter()
            .map(|n| self.post_json::<_, PartitionState>(*n, "/internal/partition/state", &at, timeout));
        let newest = futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .filter(|s| s.created_ms == v.created_ms)
            .max_by_key(|s| s.epoch);
        let Some(s) = newest.filter(|s| s.epoch > v.state.leadership.epoch) else {
            return;
        };
        let Ok(now) = self.log.replica(&v.stream, v.partition) else {
            return;
        };
        if now.state.leadership.epoch >= s.epoch {
            return;
        }
        let mut next = now.state.leadership.clone();
        next.leader = s.leader;
        next.epoch = s.epoch;
        tracing::warn!(
            stream = v.stream,
            partition = v.partition,
            leader = s.leader,
            epoch = s.epoch,
            "a newer leader exists; following it"
        );
        match self.log.set_leadership(&v.stream, v.partition, next).await {
            Ok(()) => self.wake(),
            Err(e) => tracing::error!(stream = v.stream, partition = v.partition, error = %e,
                "cannot record the leadership"),
        }
    }

    /// Spawns a check of the followers of a led partition that have not
    /// fetched for [`SILENT_AFTER`] (at most every [`CHECK_EVERY`]).
    pub(super) fn check_silent(self: &Arc<Self>, v: &ReplicaView, silent: Vec<u32>, now: Instant) {
        if silent.is_empty() {
            return;
        }
        {
            let mut checks = super::lock(&self.checks);
            let key = (v.stream.clone(), v.partition);
            if checks
                .get(&key)
                .is_some_and(|t| now.saturating_duration_since(*t) < CHECK_EVERY)
            {
                return;
            }
            checks.insert(key, now);
        }
        let (this, v) = (self.clone(), v.clone());
        tokio::spawn(async move { this.check_newer_epoch(&v, &silent).await });
    }

    /// Restores checkpointed high watermarks (capped at each log's end).
    pub(super) fn restore_high_watermarks(&self) {
        let path = checkpoint_path(&self.data_dir);
        let entries: Vec<Checkpointed> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable high watermark checkpoint ignored");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        let views = self.log.replicas();
        for e in &entries {
            if views
                .iter()
                .any(|v| v.stream == e.stream && v.created_ms == e.created_ms && v.partition == e.partition)
            {
                let _ = self.log.set_high_watermark(&e.stream, e.partition, e.high_watermark);
            }
        }
        *super::lock(&self.checkpointed) = entries;
    }

    /// Writes the high watermarks if they changed since the last write.
    pub(super) fn checkpoint_high_watermarks(&self) {
        let now: Vec<Checkpointed> = self
            .log
            .replicas()
            .into_iter()
            .map(|v| Checkpointed {
                stream: v.stream,
                created_ms: v.created_ms,
                partition: v.partition,
                high_watermark: v.state.high_watermark,
            })
            .collect();
        let mut last = super::lock(&self.checkpointed);
        if *last == now {
            return;
        }
        let path = checkpoint_path(&self.data_dir);
        let written = serde_json::to_vec(&now)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::fsutil::write_atomic(&path, &bytes));
        match written {
            Ok(()) => *last = now,
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot checkpoint high watermarks"),
        }
    }
}
