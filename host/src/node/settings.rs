//! Changing a stream after it was created (HTTP `PATCH /streams/{name}` and
//! `DELETE .../records`, Kafka AlterConfigs, IncrementalAlterConfigs,
//! CreatePartitions and DeleteRecords): its settings (retention, a
//! replicated stream's own minimum in-sync set, its own Kafka batch
//! limit, a compacted stream's tuning), its partition count (grown only),
//! and a partition's start (records deleted below it).
//!
//! The log checks new settings with the stream's others by the same rule
//! as at creation, and makes each change durable as a control entry before
//! the call returns. A replicated stream's nodes tier and hold partitions
//! on their own: new settings or new partitions are set on every other
//! node, then on this one (a node that missed the change is reported, and
//! asking again is safe). Settings changes are stamped, and every node
//! keeps the newest it was told of, so changes asked of two nodes at the
//! same moment end alike everywhere (the asked node of the one not kept
//! answers `settings_conflict` when it can tell), and a node that missed
//! one takes it from the others (`settings_sync.rs`). Records are deleted
//! on a partition's leader; its followers move their start to the
//! leader's as they fetch.
//! Pipelines reading or writing a stream that grew restart their tasks, so
//! they read the new partitions and spread output over them.

use serde::{Deserialize, Serialize};

use super::Host;
use super::committed;
use crate::error::{Error, ErrorKind};
use crate::log::StreamInfo;
use crate::log::meta::{RetentionChange, SettingsChange, SettingsStamp, StreamSettings};

/// New partitions of a replicated stream, as one node tells the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartitionsSpec {
    pub name: String,
    /// The stream's creation time: its identity across nodes.
    pub created_ms: u64,
    /// The stream's partition count afterwards.
    pub partitions: u32,
    /// The new partitions' replicas, in order, the first leading.
    pub assignment: Vec<Vec<u32>>,
}

/// `Ok` when `meta` is the replicated stream another node asks about.
fn same_stream(meta: &crate::log::meta::StreamMeta, name: &str, created_ms: u64) -> Result<(), Error> {
    if meta.created_ms == created_ms && meta.replication.is_some() {
        return Ok(());
    }
    Err(crate::cluster::ClusterError::Mismatch {
        stream: name.into(),
        reason: format!(
            "created at {} here, at {created_ms} on the asking node",
            meta.created_ms
        ),
    }
    .into())
}

/// A change of a replicated stream made here and on the nodes that
/// answered, not on `failed`: they take it from the others once they are
/// up (`settings_sync.rs`).
fn not_everywhere(failed: &[(u32, crate::cluster::ClusterError)], done: String) -> Error {
    let failed = super::cluster::failures(failed);
    super::cluster::replica_unavailable(format!(
        "{done} here and on the nodes that answered, not on every node ({}); the others take the change \
         from them once they are up (within `[cluster] settings_sync`)",
        failed.join("; ")
    ))
}

/// A replicated stream's settings after a change, as one node tells the
/// others. Fields a node does not know are ignored, so a later build may
/// add some while nodes of both run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettingsSpec {
    pub name: String,
    /// The stream's creation time: its identity across nodes.
    pub created_ms: u64,
    pub settings: StreamSettings,
    /// Which change this is: a node keeps the newest it was told of.
    #[serde(default)]
    pub stamp: SettingsStamp,
}

impl Host {
    /// Changes `name`'s retention (as [`Host::set_settings`]).
    pub async fn set_retention(
        &self,
        name: &str,
        change: RetentionChange,
        validate_only: bool,
    ) -> Result<StreamInfo, Error> {
        self.set_settings(name, change.into(), validate_only).await
    }

    /// Changes `name`'s settings: its retention, a replicated stream's own
    /// minimum in-sync set (`Some(None)`: the node's `[cluster]
    /// min_insync_replicas` applies again), its own Kafka batch limit (1
    /// to the node's `max_batch_bytes`; `Some(None)`: the node's), a
    /// compacted stream's tuning (applied from its next compaction run).
    /// Every change asked for is checked before any is made, and all are
    /// made together; `validate_only` checks without changing anything.
    /// Answers the stream as it is (or would be) afterwards. A replicated
    /// stream's settings are set on every other node first, then here
    /// (`replica_unavailable` when a node did not take them: it takes them
    /// from the others once it is up; `settings_conflict` when a change
    /// asked of another node at the same moment is the one kept).
    pub async fn set_settings(
        &self,
        name: &str,
        change: SettingsChange,
        validate_only: bool,
    ) -> Result<StreamInfo, Error> {
        committed::refuse_internal(name, "change")?;
        if let Some(Some(m)) = change.max_message_bytes {
            self.check_max_message_bytes(m)?;
        }
        let log = &self.inner.log;
        let meta = log.stream_meta(name)?;
        let checked = log.set_settings(name, change, true).await?;
        if validate_only {
            return Ok(checked);
        }
        if meta.replication.is_none() {
            return Ok(log.set_settings(name, change, false).await?);
        }
        let node = self.inner.cluster.as_ref().map_or(0, |c| c.node_id());
        let spec = SettingsSpec {
            name: name.into(),
            created_ms: meta.created_ms,
            settings: checked.settings(),
            stamp: meta.settings_stamp.next(node),
        };
        let failed = self.on_peers("/internal/streams/settings", &spec).await;
        let here = log
            .set_settings_stamped(name, SettingsChange::replace_with(spec.settings), spec.stamp)
            .await?;
        if !here.applied {
            return Err(Error::new(
                ErrorKind::Conflict,
                "settings_conflict",
                format!(
                    "another change of stream `{name}`'s settings, asked of another node at the same moment, \
                     is the one every node keeps; this change was not made: read the settings and ask again"
                ),
            ));
        }
        if !failed.is_empty() {
            return Err(not_everywhere(
                &failed,
                format!("the settings of stream `{name}` were changed"),
            ));
        }
        Ok(here.info)
    }

    /// Sets a replicated stream's settings as another node asked: the
    /// newest change a node is told of stays (the same change again is a
    /// success; an older one changes nothing and answers the stream as it
    /// is, so the asking node finds out when it sets its own).
    pub async fn set_settings_from_peer(&self, spec: &SettingsSpec) -> Result<StreamInfo, Error> {
        let meta = self.inner.log.stream_meta(&spec.name)?;
        same_stream(&meta, &spec.name, spec.created_ms)?;
        let whole = SettingsChange::replace_with(spec.settings);
        Ok(self
            .inner
            .log
            .set_settings_stamped(&spec.name, whole, spec.stamp)
            .await?
            .info)
    }

    /// Grows `name` to `partitions` partitions; `validate_only` checks
    /// without changing anything.
    pub async fn add_partitions(&self, name: &str, partitions: u32, validate_only: bool) -> Result<StreamInfo, Error> {
        self.add_partitions_assigned(name, partitions, None, validate_only)
            .await
    }

    /// As [`Host::add_partitions`]. A replicated stream's new partitions go
    /// on the replicas `assignment` lists (one list per new partition, its
    /// first replica leading; `None`: round-robin, as at creation), on
    /// every other node first, then here (`replica_unavailable` when a
    /// node did not take them: it takes them from the others once it is
    /// up).
    pub async fn add_partitions_assigned(
        &self,
        name: &str,
        partitions: u32,
        assignment: Option<Vec<Vec<u32>>>,
        validate_only: bool,
    ) -> Result<StreamInfo, Error> {
        committed::refuse_internal(name, "add partitions to")?;
        let log = &self.inner.log;
        let meta = log.stream_meta(name)?;
        let Some(replication) = &meta.replication else {
            let info = log
                .add_partitions_assigned(name, partitions, assignment.unwrap_or_default(), validate_only)
                .await?;
            if !validate_only {
                self.inner.pipelines.restart_using(name).await;
            }
            return Ok(info);
        };
        let cluster = self.cluster()?;
        self.check_partition_count(partitions)?;
        let added = match assignment {
            Some(a) => a,
            None => {
                let all = cluster.assign_grown(name, &replication.assignment, partitions, replication.factor)?;
                all.into_iter().skip(meta.partitions as usize).collect()
            }
        };
        cluster.check_assignment(&added, replication.factor)?;
        let checked = log
            .add_partitions_assigned(name, partitions, added.clone(), true)
            .await?;
        if validate_only {
            return Ok(checked);
        }
        let spec = PartitionsSpec {
            name: name.into(),
            created_ms: meta.created_ms,
            partitions,
            assignment: added,
        };
        let failed = self.on_peers("/internal/streams/partitions", &spec).await;
        let info = self.add_partitions_from_peer(&spec).await?;
        if !failed.is_empty() {
            return Err(not_everywhere(
                &failed,
                format!("stream `{name}` grew to {partitions} partitions"),
            ));
        }
        Ok(info)
    }

    /// Adds a replicated stream's partitions as another node asked (the
    /// same partitions again are a success).
    pub async fn add_partitions_from_peer(&self, spec: &PartitionsSpec) -> Result<StreamInfo, Error> {
        let log = &self.inner.log;
        let meta = log.stream_meta(&spec.name)?;
        same_stream(&meta, &spec.name, spec.created_ms)?;
        let from = (spec.partitions as usize).saturating_sub(spec.assignment.len());
        let held = meta.replication.as_ref().and_then(|r| r.assignment.get(from..));
        if meta.partitions == spec.partitions && held == Some(&spec.assignment[..]) {
            return Ok(log.describe_stream(&spec.name)?);
        }
        let info = log
            .add_partitions_assigned(&spec.name, spec.partitions, spec.assignment.clone(), false)
            .await?;
        if let Some(c) = &self.inner.cluster {
            c.wake();
        }
        self.inner.pipelines.restart_using(&spec.name).await;
        Ok(info)
    }

    /// Deletes the records of `partition` below `before` (`None`: every
    /// record readers see): the partition's start moves there, durably.
    /// Answers the new start. Tiered segments wholly below it go with the
    /// next retention pass. On a replicated partition only the leader
    /// deletes, and answers once its in-sync followers have deleted too
    /// (`replication_timeout` after `acks_timeout`: deleted on the leader,
    /// maybe not on every follower yet).
    pub async fn delete_records(&self, stream: &str, partition: u32, before: Option<u64>) -> Result<u64, Error> {
        committed::refuse_internal(stream, "delete records of")?;
        let log = &self.inner.log;
        let start = log
            .delete_records(stream, partition, before)
            .await
            .map_err(|e| self.log_error(stream, partition, e))?;
        let id = log.describe_stream(stream)?.id;
        self.inner.tier.records_deleted(id, partition);
        if let Some(c) = &self.inner.cluster
            && log.replica(stream, partition).is_ok()
        {
            c.wait_followers_start(stream, partition, start).await?;
        }
        Ok(start)
    }
}
