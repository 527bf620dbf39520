//! Where committed offsets are stored: [`OFFSETS_STREAM`], one partition on
//! a single node, `[groups] offsets_partitions` replicated partitions in a
//! cluster (see `coordinators.rs`). Appends wait for every in-sync replica
//! in a cluster, so a leader move (which moves the coordinator) never loses
//! an acknowledged commit. The in-memory map holds the partitions this node
//! coordinates, each loaded at the leader epoch it was read at: a partition
//! whose leadership moved away is dropped, one that came (back) is read
//! again, since commits were made elsewhere meanwhile.

use std::collections::BTreeMap;

use super::committed::{Key, OFFSETS_STREAM, Offsets, Value};
use super::coordinators::partition_for;
use super::{Host, ReadLimits, Record};
use crate::error::Error;
use crate::log::meta::{Compaction, StreamConfig};

impl Host {
    /// Creates [`OFFSETS_STREAM`] if it is not there yet: replicated on
    /// every node in a cluster, else local and compacted by key (the
    /// built-in policy), so it stays about as big as the live offsets once
    /// tiered.
    pub(super) async fn offsets_stream(&self) -> Result<(), Error> {
        if self.inner.log.describe_stream(OFFSETS_STREAM).is_ok() {
            return Ok(());
        }
        if self.groups_replicated() {
            return self.create_replicated_offsets().await;
        }
        let config = StreamConfig {
            compaction: Some(Compaction::by_record_key(false)),
            ..Default::default()
        };
        match self.inner.log.create_stream_with(OFFSETS_STREAM, 1, config).await {
            Ok(_) => Ok(()),
            // Created meanwhile: use it.
            Err(e) if self.inner.log.describe_stream(OFFSETS_STREAM).is_ok() => {
                tracing::debug!(error = %e, "offsets stream appeared while creating it");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The offsets map with every partition this node coordinates loaded at
    /// its current leader epoch; held for the caller's whole update.
    pub(super) async fn offsets_loaded(&self) -> Result<tokio::sync::MutexGuard<'_, Offsets>, Error> {
        let mut map = self.inner.committed.map.lock().await;
        let led = self.coordinated_partitions();
        let stale: Vec<u32> = map
            .loaded
            .iter()
            .filter(|(p, epoch)| !led.contains(&(**p, **epoch)))
            .map(|(p, _)| *p)
            .collect();
        let partitions = self.offsets_partitions();
        for p in stale {
            map.loaded.remove(&p);
            map.forget(|group| partition_for(group, partitions) == p);
        }
        for (p, epoch) in led {
            if !map.loaded.contains_key(&p) {
                self.load_partition(&mut map, p).await?;
                map.loaded.insert(p, epoch);
            }
        }
        Ok(map)
    }

    async fn load_partition(&self, map: &mut Offsets, partition: u32) -> Result<(), Error> {
        // No stream yet: nothing was ever committed (the first commit
        // creates it; reads do not).
        let Ok(info) = self.inner.log.describe_stream(OFFSETS_STREAM) else {
            return Ok(());
        };
        if info.partitions.get(partition as usize).is_none() {
            return Ok(());
        }
        self.wait_offsets_committed(partition).await?;
        let Some(range) = self
            .inner
            .log
            .describe_stream(OFFSETS_STREAM)?
            .partitions
            .get(partition as usize)
            .copied()
        else {
            return Ok(());
        };
        let limits = ReadLimits {
            max_records: self.inner.settings.max_read_records,
            max_bytes: 16 << 20,
        };
        let (mut offset, end) = (range.start, range.end);
        while offset < end {
            let batch = self.read(OFFSETS_STREAM, partition, offset, limits).await?;
            for r in &batch.records {
                apply(map, r.offset, &r.record);
            }
            if batch.next_offset <= offset {
                break;
            }
            offset = batch.next_offset;
        }
        Ok(())
    }

    /// In a cluster, waits (at most the cluster's `acks_timeout`) until the
    /// partition's high watermark reaches its log end: a new leader sees
    /// only the high watermark, which follows its log end once the followers
    /// fetched again, and every acknowledged commit is below that end.
    async fn wait_offsets_committed(&self, partition: u32) -> Result<(), Error> {
        let Some(cluster) = self.inner.cluster.as_ref().filter(|_| self.groups_replicated()) else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + cluster.settings().acks_timeout;
        loop {
            match cluster.status(OFFSETS_STREAM, partition) {
                Ok(s) if s.high_watermark >= s.log_end_offset => return Ok(()),
                Ok(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Ok(s) => {
                    return Err(Error::new(
                        crate::error::ErrorKind::Unavailable,
                        "coordinator_unavailable",
                        format!(
                            "offsets partition {partition}: the followers have not confirmed its end ({} of {}) yet",
                            s.high_watermark, s.log_end_offset
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Makes changes durable ([`Host::append_offsets`]), then applies them.
    pub(super) async fn write_offsets(
        &self,
        guard: tokio::sync::MutexGuard<'_, Offsets>,
        changes: Vec<(Key, Option<Value>)>,
    ) -> Result<(), Error> {
        let seqs = self.append_offsets(guard, &changes).await?;
        let mut map = self.inner.committed.map.lock().await;
        for ((key, value), seq) in changes.into_iter().zip(seqs) {
            let value = value.map(|v| v.into_committed(&key));
            map.apply(key, seq, value);
        }
        Ok(())
    }

    /// Appends changes (a value, or `None` to delete) to the partitions of
    /// their groups; returns each change's stream offset, in order, once
    /// durable (in a cluster: on every in-sync replica). The map's guard is
    /// held while the appends are queued and released before they are
    /// awaited, so concurrent committers share WAL group commits.
    async fn append_offsets(
        &self,
        guard: tokio::sync::MutexGuard<'_, Offsets>,
        changes: &[(Key, Option<Value>)],
    ) -> Result<Vec<u64>, Error> {
        let now = crate::fsutil::now_ms();
        let partitions = self.offsets_partitions();
        let mut by_partition: BTreeMap<u32, (Vec<usize>, Vec<Record>)> = BTreeMap::new();
        for (i, (key, value)) in changes.iter().enumerate() {
            let value = match value {
                Some(v) => serde_json::to_vec(v).map_err(|e| internal(format!("encoding an offset: {e}")))?,
                None => Vec::new(),
            };
            let key = serde_json::to_vec(key).map_err(|e| internal(format!("encoding an offset key: {e}")))?;
            let slot = by_partition
                .entry(partition_for(&changes[i].0.0, partitions))
                .or_default();
            slot.0.push(i);
            slot.1.push(Record {
                key: Some(key.into()),
                value: Some(value.into()),
                headers: Vec::new(),
                timestamp_ms: now,
            });
        }
        self.offsets_stream().await?;
        let mut pending = Vec::new();
        for (p, (indexes, records)) in by_partition {
            let queued = self
                .inner
                .log
                .append_queued(OFFSETS_STREAM, p, &records)
                .await
                .map_err(|e| self.offsets_error(p, e))?;
            pending.push((p, indexes, queued));
        }
        drop(guard);
        let mut seqs = vec![0u64; changes.len()];
        for (p, indexes, queued) in pending {
            let appended = queued.await.map_err(|e| self.offsets_error(p, e))?;
            if let Some(c) = self.inner.cluster.as_ref().filter(|_| self.groups_replicated()) {
                let end = appended.base_offset.saturating_add(u64::from(appended.count));
                c.wait_acks(OFFSETS_STREAM, p, end).await?;
            }
            for (n, i) in indexes.into_iter().enumerate() {
                seqs[i] = appended.base_offset.saturating_add(n as u64);
            }
        }
        Ok(seqs)
    }

    /// An append to the offsets stream that failed because this node no
    /// longer leads the partition is the group's NOT_COORDINATOR.
    fn offsets_error(&self, partition: u32, e: crate::log::LogError) -> Error {
        match e {
            crate::log::LogError::NotLeader { leader, .. } => {
                crate::groups::GroupError::NotCoordinator { node: leader }.into()
            }
            e => {
                tracing::debug!(partition, error = %e, "offsets append failed");
                e.into()
            }
        }
    }
}

fn internal(message: String) -> Error {
    Error::new(crate::error::ErrorKind::Internal, "internal", message)
}

/// Applies one stored commit (or deletion) to `map`; a record that does not
/// parse is skipped with a warning (it was written by a newer version or
/// damaged; the rest still loads).
fn apply(map: &mut Offsets, seq: u64, r: &Record) {
    let Some(key) = r.key.as_ref().and_then(|k| serde_json::from_slice::<Key>(k).ok()) else {
        tracing::warn!("skipping an offsets record without a readable key");
        return;
    };
    if r.value_bytes().is_empty() {
        map.apply(key, seq, None);
        return;
    }
    match serde_json::from_slice::<Value>(r.value_bytes()) {
        Ok(v) => {
            let value = v.into_committed(&key);
            map.apply(key, seq, Some(value));
        }
        Err(e) => tracing::warn!(group = %key.0, error = %e, "skipping an unreadable offsets record"),
    }
}
