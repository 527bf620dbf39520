//! Errors of replication and cluster calls.

use crate::log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("bad answer from a peer: {0}")]
    BadResponse(String),
    /// `refused`: the connection was refused (or the node is not in the
    /// cluster), so the request was never received; otherwise (a timeout)
    /// it may have been.
    #[error("cannot reach node {node} ({url}): {reason}")]
    Unreachable {
        node: u32,
        url: String,
        reason: String,
        refused: bool,
    },
    #[error("node {node} answered {status} {code}: {message}")]
    Peer {
        node: u32,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    Invalid(String),
    #[error("stream `{stream}` is not the same stream on this node: {reason}")]
    Mismatch { stream: String, reason: String },
    #[error(
        "the in-sync replicas of stream `{stream}` partition {partition} did not confirm offsets below {offset} \
         within {timeout_ms} ms; the records are durable on the leader and may or may not be on followers"
    )]
    AcksTimeout {
        stream: String,
        partition: u32,
        offset: u64,
        timeout_ms: u64,
    },
    #[error(
        "records of stream `{stream}` partition {partition} below {offset} are deleted on the leader; in-sync \
         replicas {behind:?} did not confirm it within {timeout_ms} ms and still hold them"
    )]
    StartTimeout {
        stream: String,
        partition: u32,
        offset: u64,
        behind: Vec<u32>,
        timeout_ms: u64,
    },
    #[error(
        "node {node} leads stream `{stream}` partition {partition} at epoch {epoch}, older than epoch {newer} a peer knows"
    )]
    StaleEpoch {
        stream: String,
        partition: u32,
        node: u32,
        epoch: u32,
        newer: u32,
    },
    #[error(
        "stream `{stream}` partition {partition} has {} in-sync replicas ({in_sync:?}), fewer than the {required} \
         acks=all needs", in_sync.len()
    )]
    NotEnoughReplicas {
        stream: String,
        partition: u32,
        in_sync: Vec<u32>,
        required: usize,
    },
    #[error(
        "node {node} is not in the in-sync set of stream `{stream}` partition {partition}; moving the leadership \
         there can lose acknowledged records (add \"force\": true to do it anyway)"
    )]
    NotInSync { stream: String, partition: u32, node: u32 },
    #[error(
        "no replica of stream `{stream}` partition {partition} but its leader answered, so none can take over \
         (replicas: {replicas:?})"
    )]
    NoEligibleLeader {
        stream: String,
        partition: u32,
        replicas: Vec<u32>,
    },
    #[error(transparent)]
    Log(#[from] LogError),
}

impl ClusterError {
    pub fn bad(m: String) -> Self {
        ClusterError::BadResponse(m)
    }
}
