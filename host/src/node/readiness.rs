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
        // One pass over the partitions (a stream's status would walk them
        // all once per stream).
        for p in self.inner.log.tier_partitions() {
            let at = format!("stream `{}` partition {}", p.stream, p.partition);
            let tier = self.inner.tier.status(p.stream_id, p.partition);
            if tier.fenced {
                problems.push(format!("{at}: tiering is fenced (another node writes its objects)"));
            } else if let Some(e) = &tier.last_error {
                problems.push(format!("{at}: tiering failed: {e}"));
            }
            let replication = self.replication_status(&p.stream, p.partition);
            let stalled = replication
                .as_ref()
                .and_then(|r| r.follower.as_ref())
                .filter(|f| f.state == "stalled" || f.failures >= STALLED_AFTER_FAILURES);
            if let Some(f) = stalled {
                let why = f.last_error.as_deref().unwrap_or("no answer");
                problems.push(format!(
                    "{at}: replication from node {} is stalled ({} failures: {why})",
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
