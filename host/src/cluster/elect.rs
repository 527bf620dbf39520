//! Leader elections an admin asks for (Kafka's ElectLeaders): the preferred
//! replica back to leading, or, when a partition's leader is down, another
//! replica taking over. Each is a leader move (see [`super::moves`]), so
//! its invariants hold: a preferred election moves only to an in-sync
//! replica; an unclean one is a forced move and can lose acknowledged
//! records, as Kafka's unclean election can.

use super::Cluster;
use super::error::ClusterError;
use super::moves::PartitionState;

/// Which election (also the `type` of `POST .../elect`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ElectionKind {
    /// The first replica of the partition's assignment leads again, if it
    /// is in sync.
    #[default]
    Preferred,
    /// Only when the leader does not answer: the reachable replica most
    /// likely to hold everything (in sync as it last heard, then the
    /// longest log, then the assignment's order) leads (a forced move:
    /// acknowledged records it misses are lost).
    Unclean,
}

impl Cluster {
    /// Runs an election on a replicated partition; `None` when none is
    /// needed (the preferred replica leads; for an unclean election, the
    /// leader answers).
    pub async fn elect_leader(
        &self,
        stream: &str,
        partition: u32,
        kind: ElectionKind,
    ) -> Result<Option<PartitionState>, ClusterError> {
        let view = self.log.replica(stream, partition)?;
        let states = self.replica_states(stream, partition, &view.replicas).await;
        let newest = states
            .iter()
            .max_by_key(|s| s.epoch)
            .ok_or_else(|| ClusterError::Invalid("no replica answered".into()))?;
        let leader_answers = states
            .iter()
            .any(|s| s.node == newest.leader && s.leader == newest.leader && s.epoch == newest.epoch);
        let target = match kind {
            ElectionKind::Preferred => {
                let Some(&preferred) = view.replicas.first() else {
                    return Err(ClusterError::Invalid(format!(
                        "stream `{stream}` partition {partition} has no replicas"
                    )));
                };
                if newest.leader == preferred && leader_answers {
                    return Ok(None);
                }
                preferred
            }
            ElectionKind::Unclean => {
                if leader_answers {
                    return Ok(None);
                }
                let rank = |n: u32| view.replicas.iter().position(|r| *r == n).unwrap_or(usize::MAX);
                states
                    .iter()
                    .filter(|s| s.node != newest.leader)
                    .max_by_key(|s| (s.follower_in_sync, s.log_end, std::cmp::Reverse(rank(s.node))))
                    .map(|s| s.node)
                    .ok_or_else(|| ClusterError::NoEligibleLeader {
                        stream: stream.into(),
                        partition,
                        replicas: view.replicas.clone(),
                    })?
            }
        };
        let force = kind == ElectionKind::Unclean;
        self.move_leader(stream, partition, target, force).await.map(Some)
    }
}
