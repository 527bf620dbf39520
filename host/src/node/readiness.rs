//! Readiness: whether this node can do its job now, and if not, why.
//! Liveness (`/health`) only says the process answers; readiness fails
//! while the WAL refuses appends after an I/O error (until a restart),
//! while the node shuts down, while a partition's tiering is fenced by
//! another writer or its last upload failed, and while a follower's
//! replication is stalled.

use super::Host;

/// Follower fetch failures in a row that count as stalled replication.
const STALLED_AFTER_FAILURES: u32 = 3;

/// The answer of `/ready`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// One line per reason the node is not ready (empty when it is).
    pub problems: Vec<String>,
}

impl Host {
    pub fn readiness(&self) -> Readiness {
        let mut problems = Vec::new();
        if *self.inner.stopping.borrow() {
            problems.push("the node is shutting down".to_string());
        }
        if let Some(why) = self.inner.log.wal().failure() {
            problems.push(format!("the WAL refuses appends until a restart: {why}"));
        }
        // Only partitions with a problem are named: the tier keeps which,
        // the cluster walks the partitions this node follows.
        for (stream, partition, problem) in self.inner.tier.problems() {
            problems.push(format!("stream `{stream}` partition {partition}: {problem}"));
        }
        let followed = self
            .inner
            .cluster
            .as_ref()
            .map(|c| c.statuses(false))
            .unwrap_or_default();
        for (stream, partition, replication) in followed {
            let stalled = replication
                .follower
                .as_ref()
                .filter(|f| f.state == "stalled" || f.failures >= STALLED_AFTER_FAILURES);
            if let Some(f) = stalled {
                let why = f.last_error.as_deref().unwrap_or("no answer");
                problems.push(format!(
                    "stream `{stream}` partition {partition}: replication from node {} is stalled ({} failures: {why})",
                    f.leader, f.failures
                ));
            }
        }
        Readiness {
            ready: problems.is_empty(),
            problems,
        }
    }
}
