//! Stream lifecycle on [`Host`]: creating (settings checked in one place,
//! a compaction plugin instantiated before anything is made, replicated
//! streams made on every node), describing, per-partition status, and
//! deleting (refused while a pipeline uses the stream; a replicated
//! stream is deleted on every node, and deleting again finishes a delete
//! a node missed).

use super::{Host, cluster, committed};
use crate::cluster::ReplicationStatus;
use crate::error::{Error, ErrorKind};
use crate::log::StreamInfo;
use crate::log::meta::StreamConfig;
use crate::task::blocking;
use crate::tier::TierStatus;
use crate::tier::compact::CompactionStatus;

/// One partition's state, as `GET /streams/{name}/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PartitionStatus {
    pub partition: u32,
    pub start_offset: u64,
    pub end_offset: u64,
    /// First offset still in the WAL (below it, only in the object store).
    pub wal_start_offset: u64,
    /// Records and WAL bytes not yet in the object store.
    pub upload_lag_records: u64,
    pub upload_lag_bytes: u64,
    pub tier: TierStatus,
    /// On a replicated partition: leader, epoch, high watermark, replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
}

impl Host {
    pub async fn create_stream(&self, name: &str, partitions: u32) -> Result<StreamInfo, Error> {
        committed::refuse_internal(name, "create")?;
        Ok(self.inner.log.create_stream(name, partitions).await?)
    }

    /// Creates a stream with retention and compaction settings. A
    /// compaction policy must name a compaction plugin whose `init` accepts
    /// the config.
    pub async fn create_stream_with(
        &self,
        name: &str,
        partitions: u32,
        config: StreamConfig,
    ) -> Result<StreamInfo, Error> {
        committed::refuse_internal(name, "create")?;
        config.validate().map_err(Error::invalid)?;
        let cap = self.inner.settings.max_compaction_memory_bytes;
        if let Some(c) = config.compaction.as_ref().filter(|c| c.memory_bytes > cap.as_u64()) {
            return Err(Error::invalid(format!(
                "compaction_memory_bytes {} is more than this node's max_compaction_memory_bytes ({cap})",
                c.memory_bytes
            )));
        }
        if let Some(m) = config.max_message_bytes {
            self.check_max_message_bytes(m)?;
        }
        self.check_compaction_plugin(&config).await?;
        if config.replication.is_some() {
            return self.create_replicated(name, partitions, config).await;
        }
        Ok(self.inner.log.create_stream_with(name, partitions, config).await?)
    }

    /// A compaction plugin `config` names must be here and take its config
    /// (every node of a replicated stream checks its own).
    pub(crate) async fn check_compaction_plugin(&self, config: &StreamConfig) -> Result<(), Error> {
        if let Some(c) = config.compaction.as_ref().filter(|c| !c.is_record_key()) {
            let (plugins, c) = (self.inner.plugins.clone(), c.clone());
            blocking(move || -> Result<(), Error> {
                plugins
                    .compaction(&c.plugin, c.plugin_version)?
                    .instantiate(&c.config)?;
                Ok(())
            })
            .await??;
        }
        Ok(())
    }

    /// Refuses a stream's own Kafka batch limit above the node's
    /// `max_batch_bytes` (which bounds every batch, as decompressed too).
    pub(crate) fn check_max_message_bytes(&self, bytes: u64) -> Result<(), Error> {
        let node_max = self.inner.settings.max_batch_bytes;
        if bytes > node_max.as_u64() {
            return Err(crate::log::LogError::InvalidConfig(format!(
                "max_message_bytes {bytes} is more than this node's max_batch_bytes ({node_max})"
            ))
            .into());
        }
        Ok(())
    }

    /// Refuses a partition count above `max_partitions` before anything is
    /// sized by it.
    pub(crate) fn check_partition_count(&self, partitions: u32) -> Result<(), Error> {
        let max = self.inner.settings.max_partitions;
        if partitions > max {
            return Err(crate::log::LogError::InvalidPartitions { count: partitions, max }.into());
        }
        Ok(())
    }

    /// Per partition: offsets, what is in the WAL, what is tiered, upload
    /// lag and the last tiering error.
    pub fn stream_status(&self, name: &str) -> Result<Vec<PartitionStatus>, Error> {
        self.inner.log.describe_stream(name)?;
        Ok(self
            .inner
            .log
            .stream_tier_partitions(name)
            .into_iter()
            .map(|p| {
                let range = p.state.range();
                let mark = p.state.mark();
                let lag = p.state.lag();
                PartitionStatus {
                    partition: p.partition,
                    start_offset: range.start,
                    end_offset: range.end,
                    wal_start_offset: mark.floor,
                    upload_lag_records: lag.records,
                    upload_lag_bytes: lag.bytes,
                    tier: self.inner.tier.status(p.stream_id, p.partition),
                    replication: self.replication_status(&p.stream, p.partition),
                }
            })
            .collect())
    }

    /// Asks for a compaction run of every partition of a compacted stream.
    pub fn compact_stream(&self, name: &str) -> Result<(), Error> {
        let info = self.inner.log.describe_stream(name)?;
        if info.compaction.is_none() {
            return Err(Error::new(
                ErrorKind::Conflict,
                "not_compacted",
                format!("stream `{name}` has no compaction policy (cleanup is delete)"),
            ));
        }
        self.inner.tier.request_compaction(info.id);
        Ok(())
    }

    /// Per partition: whether compaction runs, its last result and error.
    pub fn compaction_status(&self, name: &str) -> Result<Vec<CompactionStatus>, Error> {
        let info = self.inner.log.describe_stream(name)?;
        Ok((0..info.partitions.len() as u32)
            .map(|p| self.inner.tier.compaction_status(info.id, p))
            .collect())
    }

    /// Bytes in the WAL waiting to be uploaded, over all streams.
    pub fn upload_backlog_bytes(&self) -> u64 {
        self.inner.tier.backlog_bytes()
    }

    /// Asks the uploader to look for work now (tests, tools).
    pub fn wake_uploader(&self) {
        self.inner.tier.wake();
    }

    /// Partition visits by the uploader since the node opened (tests, tools).
    pub fn uploader_visits(&self) -> u64 {
        self.inner.tier.visits()
    }

    /// Deletes a stream; refused while a pipeline reads or writes it.
    pub async fn delete_stream(&self, name: &str) -> Result<(), Error> {
        committed::refuse_internal(name, "delete")?;
        if let Some((_, i, o)) = self
            .inner
            .pipelines
            .uses()
            .await
            .into_iter()
            .find(|(_, i, o)| i == name || o == name)
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                "stream_in_use",
                format!("stream `{name}` is used by a pipeline ({i} -> {o}); delete the pipeline first"),
            ));
        }
        let replicated = match self.inner.log.describe_stream(name) {
            Ok(info) => info.replication.is_some(),
            Err(e) => {
                if !matches!(e, crate::log::LogError::StreamNotFound { .. }) {
                    return Err(e.into());
                }
                // Gone already: offsets an earlier delete could not remove
                // go now, and so do copies of a replicated stream on nodes
                // that were down then, so deleting again finishes that
                // delete (from any node).
                self.forget_stream_offsets(name).await?;
                let (deleted, failed) = self.delete_on_peers(name).await;
                if !failed.is_empty() {
                    return Err(cluster::replica_unavailable(format!(
                        "stream `{name}` is not on this node, and not every other node could be asked to \
                         delete its copy ({}); delete it again",
                        failed.join("; ")
                    )));
                }
                if deleted > 0 {
                    return Ok(());
                }
                return Err(e.into());
            }
        };
        self.inner.log.delete_stream(name).await?;
        let forgot = self.forget_stream_offsets(name).await;
        if replicated {
            let (_, failed) = self.delete_on_peers(name).await;
            if !failed.is_empty() {
                return Err(cluster::replica_unavailable(format!(
                    "stream `{name}` was deleted here but not on every node ({}); they delete their copies once \
                     they are up (within `[cluster] settings_sync`), and deleting it again from any node makes sure",
                    failed.join("; ")
                )));
            }
        }
        forgot.map_err(|e| {
            Error::new(
                e.kind(),
                e.code(),
                format!(
                    "stream `{name}` was deleted, but not the offsets groups committed on it ({e}); \
                     delete it again to delete them"
                ),
            )
        })
    }

    /// Deletes a stream on this node only (another node's delete of a
    /// replicated stream), and the offsets committed on it in the groups
    /// this node coordinates. With `replicated_only`, a stream of that name
    /// that is not replicated (this node's own) is left alone and answered
    /// `stream_not_found`; with `created_ms`, so is a stream of that name
    /// created at another time (another incarnation).
    pub async fn delete_local(&self, name: &str, replicated_only: bool, created_ms: Option<u64>) -> Result<(), Error> {
        let not_found = || -> Error { crate::log::LogError::StreamNotFound { name: name.into() }.into() };
        if replicated_only && self.inner.log.describe_stream(name)?.replication.is_none() {
            return Err(not_found());
        }
        if created_ms.is_some_and(|ms| self.inner.log.stream_created_ms(name) != Some(ms)) {
            return Err(not_found());
        }
        self.inner.log.delete_stream(name).await?;
        self.forget_stream_offsets(name).await
    }

    /// The names of every stream, unsorted (cheap: no offsets are read).
    pub fn stream_names(&self) -> Vec<String> {
        self.inner.log.stream_names()
    }

    pub fn list_streams(&self) -> Vec<StreamInfo> {
        self.inner.log.list_streams()
    }

    /// When stream `name` was created (`None`: no such stream), without
    /// describing its partitions.
    pub fn stream_created_ms(&self, name: &str) -> Option<u64> {
        self.inner.log.stream_created_ms(name)
    }

    pub fn describe_stream(&self, name: &str) -> Result<StreamInfo, Error> {
        Ok(self.inner.log.describe_stream(name)?)
    }
}
