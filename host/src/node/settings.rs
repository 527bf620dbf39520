//! Changing a stream after it was created (HTTP `PATCH /streams/{name}` and
//! `DELETE .../records`, Kafka AlterConfigs, IncrementalAlterConfigs,
//! CreatePartitions and DeleteRecords): its retention, its partition count
//! (grown only), and a partition's start (records deleted below it).
//!
//! The log checks a new retention with the stream's other settings by the
//! same rule as at creation, and makes each change durable as a control
//! entry before the call returns. Replicated streams keep the retention and
//! partitions they were created with: their nodes tier and hold partitions
//! on their own, and a change reaching some replicas and not others would
//! be worse than none. Records are deleted on a partition's leader; its
//! followers move their start to the leader's as they fetch.
//! Pipelines reading or writing a stream that grew restart their tasks, so
//! they read the new partitions and spread output over them.

use super::Host;
use super::committed;
use crate::error::Error;
use crate::log::StreamInfo;
use crate::log::meta::RetentionChange;

impl Host {
    /// Changes `name`'s retention; `validate_only` checks without changing
    /// anything. Answers the stream as it is (or would be) afterwards.
    pub async fn set_retention(
        &self,
        name: &str,
        change: RetentionChange,
        validate_only: bool,
    ) -> Result<StreamInfo, Error> {
        committed::refuse_internal(name, "change")?;
        Ok(self.inner.log.set_retention(name, change, validate_only).await?)
    }

    /// Grows `name` to `partitions` partitions; `validate_only` checks
    /// without changing anything.
    pub async fn add_partitions(&self, name: &str, partitions: u32, validate_only: bool) -> Result<StreamInfo, Error> {
        committed::refuse_internal(name, "add partitions to")?;
        let info = self.inner.log.add_partitions(name, partitions, validate_only).await?;
        if !validate_only {
            self.inner.pipelines.restart_using(name).await;
        }
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
