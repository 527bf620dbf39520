//! JSON shapes of the stream API: the `POST /streams` body and a stream as
//! described. The settings are only parsed here; their meaning (ranges,
//! combinations) is checked in one place, `StreamConfig::validate`, by the
//! node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::node::{Compaction, PartitionRange, Retention, StreamConfig, StreamInfo};
/// `POST /streams` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStream {
    pub name: String,
    #[serde(default = "one")]
    #[schema(default = 1, minimum = 1)]
    pub partitions: u32,
    /// Drop tiered segments older than this many milliseconds.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// Drop the oldest tiered segments while a partition holds more.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// `delete` (default), `compact` or `compact,delete`.
    #[serde(default)]
    #[schema(example = "compact,delete")]
    pub cleanup: Option<String>,
    /// Required with a `compact` cleanup.
    #[serde(default)]
    pub compaction: Option<CompactionIn>,
    /// Replicas per partition on a cluster (default 1: the receiving node
    /// only; 1 with an `assignment` of one node per partition: a
    /// replicated stream of one replica, known to every node).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub replication_factor: Option<u32>,
    /// Per partition, the replicas' node ids, the leader first (default:
    /// round-robin over the cluster's nodes, from a node the stream's name
    /// picks).
    #[serde(default)]
    pub assignment: Option<Vec<Vec<u32>>>,
    /// Replicated streams: with fewer replicas in sync, `acks=all`
    /// appends are refused (`not_enough_replicas`); 1 to the factor
    /// (default: the node's `[cluster] min_insync_replicas`, capped at
    /// the factor).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub min_insync_replicas: Option<u32>,
    /// The largest record batch a Kafka producer may send to it, as sent
    /// (Kafka's `max.message.bytes`), at most the node's `max_batch_bytes`
    /// (default: that).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_message_bytes: Option<u64>,
}

/// A stream's compaction settings as posted.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompactionIn {
    pub plugin: String,
    #[serde(default)]
    pub plugin_version: Option<u32>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub delete_retention_ms: Option<u64>,
    #[serde(default)]
    pub min_compaction_lag_ms: Option<u64>,
    /// Between 0 and 1 (default 0.5).
    #[serde(default)]
    pub min_cleanable_dirty_ratio: Option<f64>,
    #[serde(default)]
    pub compaction_memory_bytes: Option<u64>,
}

impl CreateStream {
    /// The stream's settings as parsed from the request (the cleanup words,
    /// the ratio as a fraction); their meaning is checked in one place,
    /// `StreamConfig::validate`, by the node.
    pub fn config(&self) -> Result<StreamConfig, Error> {
        let retention = Retention {
            ms: self.retention_ms,
            bytes: self.retention_bytes,
        };
        let (compact, delete) = match self.cleanup.as_deref().map(str::trim) {
            None | Some("delete") => (false, true),
            Some("compact") => (true, false),
            Some("compact,delete") | Some("delete,compact") => (true, true),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "cleanup `{other}` is not one of delete, compact, compact,delete"
                )));
            }
        };
        let compaction = match (compact, &self.compaction) {
            (false, None) => None,
            (false, Some(_)) => return Err(Error::invalid("compaction settings need cleanup \"compact\"")),
            (true, None) => return Err(Error::invalid("cleanup \"compact\" needs a compaction plugin")),
            (true, Some(c)) => {
                let ratio = c.min_cleanable_dirty_ratio.unwrap_or(0.5);
                let ppm = Compaction::ratio_ppm(ratio)
                    .ok_or_else(|| Error::invalid("min_cleanable_dirty_ratio must be between 0 and 1"))?;
                Some(Compaction {
                    plugin: c.plugin.clone(),
                    plugin_version: c.plugin_version,
                    config: c.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    delete,
                    delete_retention_ms: c.delete_retention_ms.unwrap_or(Compaction::DEFAULT_DELETE_RETENTION_MS),
                    min_compaction_lag_ms: c.min_compaction_lag_ms.unwrap_or(0),
                    min_cleanable_dirty_ppm: ppm,
                    memory_bytes: c.compaction_memory_bytes.unwrap_or(Compaction::DEFAULT_MEMORY_BYTES),
                })
            }
        };
        let replication = match (self.replication_factor, &self.assignment) {
            (None | Some(1), None) => None,
            (factor, assignment) => {
                let assignment = assignment.clone().unwrap_or_default();
                let factor = factor.unwrap_or_else(|| assignment.first().map_or(1, |a| a.len() as u32));
                Some(crate::node::Replication {
                    factor,
                    assignment,
                    min_insync_replicas: self.min_insync_replicas,
                })
            }
        };
        if replication.is_none() && self.min_insync_replicas.is_some_and(|m| m > 1) {
            return Err(Error::invalid(
                "min_insync_replicas above 1 needs a replicated stream (replication_factor above 1)",
            ));
        }
        Ok(StreamConfig {
            retention,
            compaction,
            replication,
            max_message_bytes: self.max_message_bytes,
        })
    }
}

fn one() -> u32 {
    1
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartitionOut {
    pub partition: u32,
    pub start_offset: u64,
    pub end_offset: u64,
}

/// A stream as described.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StreamOut {
    pub name: String,
    pub id: u32,
    pub created_ms: u64,
    pub partitions: Vec<PartitionOut>,
    /// `delete`, `compact` or `compact,delete`.
    pub cleanup: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compaction: Option<CompactionOut>,
    /// Replication factor and per-partition replicas (replicated streams).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<crate::node::Replication>,
    /// The largest record batch a Kafka producer may send, when the
    /// stream has its own (else the node's `max_batch_bytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
}

/// A stream's compaction settings as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompactionOut {
    pub plugin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<u32>,
    pub config: BTreeMap<String, String>,
    pub delete_retention_ms: u64,
    pub min_compaction_lag_ms: u64,
    pub min_cleanable_dirty_ratio: f64,
    pub compaction_memory_bytes: u64,
}

impl From<StreamInfo> for StreamOut {
    fn from(s: StreamInfo) -> Self {
        StreamOut {
            name: s.name,
            id: s.id,
            created_ms: s.created_ms,
            cleanup: match &s.compaction {
                None => "delete",
                Some(c) if c.delete => "compact,delete",
                Some(_) => "compact",
            },
            retention_ms: s.retention.ms,
            retention_bytes: s.retention.bytes,
            replication: s.replication.clone(),
            max_message_bytes: s.max_message_bytes,
            compaction: s.compaction.as_ref().map(|c| CompactionOut {
                plugin: c.plugin.clone(),
                plugin_version: c.plugin_version,
                config: c.config.iter().cloned().collect(),
                delete_retention_ms: c.delete_retention_ms,
                min_compaction_lag_ms: c.min_compaction_lag_ms,
                min_cleanable_dirty_ratio: c.min_cleanable_dirty_ppm as f64 / 1e6,
                compaction_memory_bytes: c.memory_bytes,
            }),
            partitions: s
                .partitions
                .iter()
                .enumerate()
                .map(|(i, r): (usize, &PartitionRange)| PartitionOut {
                    partition: i as u32,
                    start_offset: r.start,
                    end_offset: r.end,
                })
                .collect(),
        }
    }
}
