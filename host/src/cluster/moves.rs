//! Leadership changes: the admin's manual move of a partition's leader to
//! another replica, each node's side of it, and a restarted leader's check
//! that nobody took over while it was down.
//!
//! A move to node T at epoch E+1 (E the newest epoch any reachable replica
//! knows):
//! 1. the old leader, if reachable, records "T leads at E+1" and stops
//!    taking appends; its log is final and it still serves T's fetches
//!    (a *drain*: T fetches with the older epoch);
//! 2. T waits (at most `acks_timeout`) until it holds the old leader's
//!    end, then starts epoch E+1 at its own end and leads;
//! 3. every other replica records "T leads at E+1" and follows T; on its
//!    first fetch the epoch history tells it where to truncate.
//!
//! Invariants: epochs only grow on every node; a node never takes appends
//! for a partition unless its durable leadership names it; a target must be
//! in the in-sync set (as the old leader, or, if that one is down, the
//! target itself last heard) unless the admin forces the move.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Cluster;
use super::error::ClusterError;

/// A replicated partition on one node, as the nodes tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartitionState {
    pub node: u32,
    pub created_ms: u64,
    pub leader: u32,
    pub epoch: u32,
    pub log_end: u64,
    pub high_watermark: u64,
    /// Leader: the in-sync set. Follower: empty.
    pub in_sync: Vec<u32>,
    /// Follower: the leader counted it in sync at its last fetch.
    pub follower_in_sync: bool,
}

/// Which partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionRef {
    pub stream: String,
    pub partition: u32,
}

/// "Node `leader` leads from epoch `epoch`", sent to each replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaderChange {
    pub stream: String,
    pub created_ms: u64,
    pub partition: u32,
    pub leader: u32,
    pub epoch: u32,
    /// For the new leader: the old leader's final end, to reach first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_until: Option<u64>,
}

impl Cluster {
    /// This node's view of a replicated partition.
    pub fn local_state(&self, stream: &str, partition: u32) -> Result<PartitionState, ClusterError> {
        let st = self.status(stream, partition)?;
        let created_ms = self.log.replica(stream, partition)?.created_ms;
        Ok(PartitionState {
            node: self.node_id,
            created_ms,
            leader: st.leader,
            epoch: st.epoch,
            log_end: st.log_end_offset,
            high_watermark: st.high_watermark,
            in_sync: st.in_sync,
            follower_in_sync: st.follower.is_some_and(|f| f.in_sync),
        })
    }

    /// Applies a leader change on this node (see the module doc).
    pub async fn apply_leader(&self, change: LeaderChange) -> Result<PartitionState, ClusterError> {
        let view = self.log.replica(&change.stream, change.partition)?;
        if view.created_ms != change.created_ms {
            return Err(ClusterError::Mismatch {
                stream: change.stream.clone(),
                reason: "created at a different time on the node moving the leader".into(),
            });
        }
        if !view.replicas.contains(&change.leader) {
            return Err(ClusterError::Invalid(format!(
                "node {} is not a replica of stream `{}` partition {}",
                change.leader, change.stream, change.partition
            )));
        }
        let lead = view.state.leadership.clone();
        if change.epoch <= lead.epoch {
            if change.epoch == lead.epoch && change.leader == lead.leader {
                return self.local_state(&change.stream, change.partition);
            }
            return Err(ClusterError::StaleEpoch {
                stream: change.stream.clone(),
                partition: change.partition,
                node: self.node_id,
                epoch: change.epoch,
                newer: lead.epoch,
            });
        }
        // Epochs advance one at a time: a change that skips epochs (a forged
        // `u32::MAX` would leave no next epoch) is refused.
        if Some(change.epoch) != lead.epoch.checked_add(1) {
            return Err(ClusterError::Invalid(format!(
                "a leader change of stream `{}` partition {} to epoch {} skips epochs: node {} is at epoch {} and \
                 takes only the next one",
                change.stream, change.partition, change.epoch, self.node_id, lead.epoch
            )));
        }
        let mut next = lead;
        if change.leader == self.node_id {
            if let Some(until) = change.drain_until {
                self.drain(&change.stream, change.partition, until).await?;
            }
            let end = self.log.replica(&change.stream, change.partition)?.log_end;
            next.begin(change.epoch, self.node_id, end);
        } else {
            next.leader = change.leader;
            next.epoch = change.epoch;
        }
        self.log.set_leadership(&change.stream, change.partition, next).await?;
        self.wake();
        tracing::info!(
            stream = change.stream,
            partition = change.partition,
            leader = change.leader,
            epoch = change.epoch,
            "leadership changed"
        );
        self.local_state(&change.stream, change.partition)
    }

    /// Waits until this node's log reaches `until` (fetched from the old
    /// leader), at most `acks_timeout`.
    async fn drain(&self, stream: &str, partition: u32, until: u64) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + self.settings.acks_timeout;
        loop {
            let end = self.log.replica(stream, partition)?.log_end;
            if end >= until {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::Invalid(format!(
                    "node {} reached offset {end} of the old leader's {until} within {:?}; the move was not \
                     completed (retry it, or force it to give up the rest)",
                    self.node_id, self.settings.acks_timeout
                )));
            }
            let wait = self.log.wait_for_log_end(stream, partition, end);
            let _ = tokio::time::timeout(Duration::from_millis(100), wait).await;
        }
    }

    /// Moves a partition's leadership to `target` (see the module doc).
    pub async fn move_leader(
        &self,
        stream: &str,
        partition: u32,
        target: u32,
        force: bool,
    ) -> Result<PartitionState, ClusterError> {
        let view = self.log.replica(stream, partition)?;
        if !view.replicas.contains(&target) {
            return Err(ClusterError::Invalid(format!(
                "node {target} is not a replica of stream `{stream}` partition {partition} (replicas: {:?})",
                view.replicas
            )));
        }
        let timeout = self.settings.peer_timeout;
        let states = self.replica_states(stream, partition, &view.replicas).await;
        let newest = states
            .iter()
            .max_by_key(|s| s.epoch)
            .ok_or_else(|| ClusterError::Invalid("no replica answered".into()))?;
        let (old, epoch) = (newest.leader, newest.epoch);
        let Some(t) = states.iter().find(|s| s.node == target) else {
            return Err(ClusterError::Unreachable {
                node: target,
                url: self.peers.get(&target).cloned().unwrap_or_default(),
                reason: "the target did not answer".into(),
                refused: false,
            });
        };
        if old == target && t.epoch == epoch {
            return Ok(t.clone());
        }
        let old_state = states
            .iter()
            .find(|s| s.node == old && s.epoch == epoch && s.leader == old);
        let in_sync = match old_state {
            Some(o) => o.in_sync.contains(&target),
            None => t.follower_in_sync,
        };
        if !in_sync && !force {
            return Err(ClusterError::NotInSync {
                stream: stream.into(),
                partition,
                node: target,
            });
        }
        let next_epoch = epoch.checked_add(1).ok_or_else(|| {
            ClusterError::Invalid(format!(
                "stream `{stream}` partition {partition} has no epoch after {epoch}"
            ))
        })?;
        let change = |leader: u32, drain_until: Option<u64>| LeaderChange {
            stream: stream.into(),
            created_ms: view.created_ms,
            partition,
            leader,
            epoch: next_epoch,
            drain_until,
        };
        let long = timeout + self.settings.acks_timeout;
        let mut drain_until = None;
        if old_state.is_some() {
            let fenced: PartitionState = self
                .post_json(old, "/internal/partition/leader", &change(target, None), long)
                .await?;
            drain_until = Some(fenced.log_end);
        }
        let moved: PartitionState = self
            .post_json(target, "/internal/partition/leader", &change(target, drain_until), long)
            .await?;
        let tell = change(target, None);
        let rest = view.replicas.iter().filter(|n| **n != target && **n != old);
        let calls = rest.map(|n| self.post_json::<_, PartitionState>(*n, "/internal/partition/leader", &tell, long));
        for r in futures::future::join_all(calls).await {
            if let Err(e) = r {
                tracing::warn!(stream, partition, error = %e, "a replica missed the leader change; it learns it from the leader");
            }
        }
        Ok(moved)
    }

    /// The state of a partition on each of `replicas` that answers within
    /// `peer_timeout` (this node's own included).
    pub(super) async fn replica_states(&self, stream: &str, partition: u32, replicas: &[u32]) -> Vec<PartitionState> {
        let at = PartitionRef {
            stream: stream.into(),
            partition,
        };
        let timeout = self.settings.peer_timeout;
        let calls = replicas
            .iter()
            .map(|n| self.post_json::<_, PartitionState>(*n, "/internal/partition/state", &at, timeout));
        futures::future::join_all(calls).await.into_iter().flatten().collect()
    }

    /// At start-up: for each partition this node leads, asks the other
    /// replicas whether a newer epoch exists (the node was moved away from
    /// while down) and follows it if so. Peers that are down now are asked
    /// again later by the reconcile loop (see [`super::upkeep`]).
    pub async fn sync_leadership(&self) {
        for v in self.log.replicas() {
            if v.state.leadership.leader != self.node_id {
                continue;
            }
            let peers: Vec<u32> = v.replicas.iter().copied().filter(|n| *n != self.node_id).collect();
            self.check_newer_epoch(&v, &peers).await;
        }
    }

    /// POSTs JSON to a peer and parses its JSON answer.
    pub async fn post_json<T: Serialize + ?Sized, R: serde::de::DeserializeOwned>(
        &self,
        node: u32,
        path: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<R, ClusterError> {
        let bytes = self.post_capped(node, path, body, 1024 * 1024, timeout).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClusterError::bad(format!("node {node} answered {path}: {e}")))
    }
}
