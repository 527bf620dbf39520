//! Where a replicated stream's partitions go: the default assignment (each
//! partition on `factor` consecutive nodes in id order, the first leading,
//! each stream starting at a node its name's hash picks), and the check of
//! an explicit one. Invariant: every partition's replicas are `factor`
//! distinct nodes of the cluster.

use super::{Cluster, ClusterError};

/// Partition `p` on `factor` consecutive nodes of `ids` from the
/// `start + p`-th (modulo their count), the first leading. `factor` is at
/// most `ids.len()`, so each partition's replicas are distinct.
pub(crate) fn round_robin(ids: &[u32], start: usize, partitions: u32, factor: u32) -> Vec<Vec<u32>> {
    let Some(n) = std::num::NonZeroUsize::new(ids.len()) else {
        return vec![Vec::new(); partitions as usize];
    };
    // Reduced first, so the sums below stay small (partitions and factor
    // are u32) and the rotation never wraps.
    let start = start % n;
    (0..partitions as usize)
        .map(|p| (0..factor as usize).map(|i| ids[(start + p + i) % n]).collect())
        .collect()
}

impl Cluster {
    /// The default assignment of stream `stream`: partition `p` on
    /// `factor` consecutive nodes (round-robin), its first replica leading.
    /// Each stream's partition 0 starts at a node picked by its name's
    /// hash, so the leaders of many small streams spread over the nodes
    /// instead of all landing on the first (Kafka picks a random start);
    /// the same name always gets the same assignment.
    pub fn assign(&self, stream: &str, partitions: u32, factor: u32) -> Result<Vec<Vec<u32>>, ClusterError> {
        self.assign_from(crc32c::crc32c(stream.as_bytes()) as usize, partitions, factor)
    }

    /// The default assignment of all `partitions` of stream `stream`,
    /// which has `existing` (its first partitions): the rotation its
    /// partition 0 started (so partitions added later go on with it,
    /// whoever chose the first ones), else as [`Cluster::assign`].
    pub fn assign_grown(
        &self,
        stream: &str,
        existing: &[Vec<u32>],
        partitions: u32,
        factor: u32,
    ) -> Result<Vec<Vec<u32>>, ClusterError> {
        let first = existing.first().and_then(|r| r.first());
        match first.and_then(|l| self.peers.keys().position(|n| n == l)) {
            Some(start) => self.assign_from(start, partitions, factor),
            None => self.assign(stream, partitions, factor),
        }
    }

    /// As [`Cluster::assign`], partition 0 starting at the `start`-th node
    /// (modulo the node count). The internal offsets stream starts at the
    /// first, as every build has made it: each node computes its spec.
    pub fn assign_from(&self, start: usize, partitions: u32, factor: u32) -> Result<Vec<Vec<u32>>, ClusterError> {
        let ids: Vec<u32> = self.peers.keys().copied().collect();
        if factor as usize > ids.len() {
            return Err(ClusterError::Invalid(format!(
                "replication_factor {factor} exceeds the cluster's {} nodes",
                ids.len()
            )));
        }
        Ok(round_robin(&ids, start, partitions, factor))
    }

    /// Checks an explicit assignment against the cluster.
    pub fn check_assignment(&self, assignment: &[Vec<u32>], factor: u32) -> Result<(), ClusterError> {
        for (p, replicas) in assignment.iter().enumerate() {
            let mut seen = replicas.clone();
            seen.sort_unstable();
            seen.dedup();
            if replicas.len() != factor as usize || seen.len() != replicas.len() {
                return Err(ClusterError::Invalid(format!(
                    "partition {p} needs {factor} distinct replicas, got {replicas:?}"
                )));
            }
            if let Some(n) = replicas.iter().find(|n| !self.peers.contains_key(n)) {
                return Err(ClusterError::Invalid(format!(
                    "partition {p}: replica node {n} is not in the cluster"
                )));
            }
        }
        Ok(())
    }
}
