//! Where each consumer group is coordinated.
//!
//! On a single node: here, with every group's offsets in partition 0 of a
//! local `__consumer_offsets`. In a cluster (two nodes or more):
//! `__consumer_offsets` is a replicated stream of `[groups]
//! offsets_partitions` partitions; group `g`'s offsets live in partition
//! `crc32c(g) % partitions`, and its coordinator is that partition's
//! leader. A leader move therefore moves the coordinator, with the offsets
//! already replicated to it; requests reaching another node are answered
//! NOT_COORDINATOR, and clients ask FindCoordinator again.
//!
//! Invariants: every node computes the same partition for a group and the
//! same stream spec (partitions, creation time 0, the default assignment
//! over the sorted node ids), so the stream is the same whichever node
//! creates it first; a node serves a group only while its durable
//! leadership of the group's partition names it.

use super::Host;
use super::StreamSpec;
use super::committed::OFFSETS_STREAM;
use crate::error::{Error, ErrorKind};
use crate::groups::GroupError;
use crate::log::meta::{Replication, Retention};

/// The offsets partition of `group` among `partitions` (the same on every node).
pub(super) fn partition_for(group: &str, partitions: u32) -> u32 {
    crc32c::crc32c(group.as_bytes()) % partitions.max(1)
}

/// Creation time of the replicated offsets stream: fixed, so that every
/// node's spec is identical.
const OFFSETS_CREATED_MS: u64 = 0;

impl Host {
    /// The cluster, when groups are spread over it (two nodes or more).
    fn groups_cluster(&self) -> Option<&std::sync::Arc<crate::cluster::Cluster>> {
        self.inner.cluster.as_ref().filter(|c| c.peers().len() >= 2)
    }

    /// Partitions of the offsets stream: the stream's own count once it
    /// exists; before, 1 on a single node and the setting in a cluster.
    pub(super) fn offsets_partitions(&self) -> u32 {
        if let Ok(n) = self.inner.log.partitions_of(OFFSETS_STREAM) {
            return n.max(1);
        }
        match self.groups_cluster() {
            Some(_) => self.inner.settings.groups.offsets_partitions.max(1),
            None => 1,
        }
    }

    /// The offsets partition holding `group`'s commits.
    pub(super) fn offsets_partition_of(&self, group: &str) -> u32 {
        partition_for(group, self.offsets_partitions())
    }

    /// The spec every node creates the replicated offsets stream with.
    fn offsets_spec(&self, cluster: &crate::cluster::Cluster) -> Result<StreamSpec, Error> {
        let partitions = self.offsets_partitions();
        let factor = u32::try_from(cluster.peers().len()).unwrap_or(3).min(3);
        Ok(StreamSpec {
            name: OFFSETS_STREAM.into(),
            partitions,
            created_ms: OFFSETS_CREATED_MS,
            retention: Retention::default(),
            replication: Replication {
                factor,
                assignment: cluster.assign_from(0, partitions, factor)?,
                min_insync_replicas: None,
            },
            // Kept about as big as the live offsets, as on a single node.
            compaction: Some(crate::log::meta::Compaction::by_record_key(false)),
            max_message_bytes: None,
        })
    }

    /// The node coordinating `group`: `None` on a single node (this one);
    /// in a cluster, the leader of the group's offsets partition (before
    /// the stream exists, the partition's first replica).
    pub fn group_coordinator(&self, group: &str) -> Option<u32> {
        let cluster = self.groups_cluster()?;
        let p = self.offsets_partition_of(group);
        if let Ok(s) = cluster.status(OFFSETS_STREAM, p) {
            return Some(s.leader);
        }
        let spec = self.offsets_spec(cluster).ok()?;
        spec.replication.assignment.get(p as usize)?.first().copied()
    }

    /// `Ok` when this node coordinates `group`.
    pub(super) fn check_coordinator(&self, group: &str) -> Result<(), GroupError> {
        let (Some(cluster), Some(node)) = (self.groups_cluster(), self.group_coordinator(group)) else {
            return Ok(());
        };
        if node == cluster.node_id() {
            Ok(())
        } else {
            Err(GroupError::NotCoordinator { node })
        }
    }

    /// The offsets partitions this node coordinates and the leader epoch it
    /// leads each at: partition 0 on a single node.
    pub(super) fn coordinated_partitions(&self) -> Vec<(u32, u32)> {
        let Some(cluster) = self.groups_cluster() else {
            return vec![(0, 0)];
        };
        let me = cluster.node_id();
        // Before the stream exists, the first replica will lead at epoch 0.
        let mut spec = None;
        (0..self.offsets_partitions())
            .filter_map(|p| match cluster.status(OFFSETS_STREAM, p) {
                Ok(s) => s.is_leader.then_some((p, s.epoch)),
                Err(_) => {
                    let spec = spec.get_or_insert_with(|| self.offsets_spec(cluster).ok()).as_ref()?;
                    let first = spec.replication.assignment.get(p as usize)?.first().copied();
                    (first == Some(me)).then_some((p, 0))
                }
            })
            .collect()
    }

    /// Creates the replicated offsets stream on the other nodes, then here
    /// (the same spec again is a success everywhere, so this is retried
    /// until every node has it).
    pub(super) async fn create_replicated_offsets(&self) -> Result<(), Error> {
        let Some(cluster) = self.groups_cluster() else {
            return Err(Error::new(
                ErrorKind::Internal,
                "internal",
                "no cluster for replicated offsets",
            ));
        };
        let spec = self.offsets_spec(cluster)?;
        let timeout = cluster.settings().peer_timeout;
        let me = cluster.node_id();
        let others: Vec<u32> = cluster.peers().keys().copied().filter(|n| *n != me).collect();
        let calls = others
            .iter()
            .map(|n| cluster.post_capped(*n, "/internal/streams", &spec, 64 * 1024, timeout));
        let failed: Vec<String> = others
            .iter()
            .zip(futures::future::join_all(calls).await)
            .filter_map(|(n, r)| r.err().map(|e| format!("node {n}: {e}")))
            .collect();
        if !failed.is_empty() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "coordinator_unavailable",
                format!(
                    "the offsets stream could not be created on every node ({})",
                    failed.join("; ")
                ),
            ));
        }
        self.create_from_spec(&spec).await.map(|_| ())
    }

    /// Whether groups are spread over a cluster (offsets commits then wait
    /// for every in-sync replica).
    pub(super) fn groups_replicated(&self) -> bool {
        self.groups_cluster().is_some()
    }
}
