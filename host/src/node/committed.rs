//! Committed consumer-group offsets, durable like data.
//!
//! Every commit is appended to the internal stream [`OFFSETS_STREAM`] (one
//! partition; key: group, topic and partition as a JSON array; value: the
//! offset, leader epoch, metadata and commit time as JSON; an empty value
//! deletes) before it is acknowledged, so commits survive kill -9 and, with
//! the object WAL, an empty data dir. The latest commit per key is kept in
//! memory, rebuilt from the stream on first use. The stream is compacted by
//! record key (an empty value is a tombstone), so once tiered it holds
//! about one record per live offset.
//!
//! Invariants: the in-memory map changes only after its records are
//! durable; each key keeps the change found latest in the stream (commits
//! are queued one request at a time and awaited concurrently, so their
//! callers may return in another order); a commit for a stream or partition
//! that does not exist writes nothing for that partition.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::Host;
use crate::error::Error;

/// The internal stream holding every commit. Names starting with `__` are
/// reserved for the node.
pub const OFFSETS_STREAM: &str = "__consumer_offsets";

/// Refuses what clients may not do to the node's own streams (names
/// starting with `__`): create, write, delete.
pub(super) fn refuse_internal(name: &str, what: &str) -> Result<(), Error> {
    if name.starts_with("__") {
        return Err(Error::invalid(format!(
            "cannot {what} {name:?}: stream names starting with `__` are reserved for the node"
        )));
    }
    Ok(())
}

/// Largest commit metadata (Kafka's `offset.metadata.max.bytes`).
pub const MAX_COMMIT_METADATA: usize = 4096;

/// A commit whose metadata is over [`MAX_COMMIT_METADATA`].
pub(super) fn metadata_refusal(c: &OffsetCommit) -> Option<CommitRefused> {
    match c.metadata.as_ref().map(String::len) {
        Some(len) if len > MAX_COMMIT_METADATA => Some(CommitRefused::MetadataTooLarge { len }),
        _ => None,
    }
}

/// One partition's commit, as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    pub stream: String,
    pub partition: u32,
    /// The next offset the group will read.
    pub offset: u64,
    /// -1 when the client does not know it.
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// What is committed for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CommittedOffset {
    pub stream: String,
    pub partition: u32,
    pub offset: u64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: u64,
}

/// Why one partition's commit was refused (nothing was written for it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitRefused {
    #[error("no stream {stream:?} partition {partition}")]
    UnknownPartition { stream: String, partition: u32 },
    #[error("commit metadata of {len} bytes is over {MAX_COMMIT_METADATA}")]
    MetadataTooLarge { len: usize },
}

/// A stored commit's value.
#[derive(Serialize, Deserialize)]
pub(super) struct Value {
    pub(super) offset: u64,
    pub(super) leader_epoch: i32,
    pub(super) metadata: Option<String>,
    pub(super) commit_ms: u64,
}

impl Value {
    pub(super) fn into_committed(self, key: &Key) -> CommittedOffset {
        CommittedOffset {
            stream: key.1.clone(),
            partition: key.2,
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata,
            commit_ms: self.commit_ms,
        }
    }
}

/// A stored commit's key: group, stream, partition.
pub(super) type Key = (String, String, u32);

/// The node's committed offsets (each offsets partition loaded on first use).
#[derive(Default)]
pub(super) struct Committed {
    pub(super) map: tokio::sync::Mutex<Offsets>,
}

/// The latest durable commit per key, and where in the stream it is.
#[derive(Default)]
pub(super) struct Offsets {
    live: BTreeMap<Key, CommittedOffset>,
    /// The stream offset of the last change applied per key (deletions too).
    seq: HashMap<Key, u64>,
    /// Offsets partitions held here, with the leader epoch each was read at.
    pub(super) loaded: HashMap<u32, u32>,
}

impl Offsets {
    /// Drops the keys of the groups `gone` says (a partition led elsewhere now).
    pub(super) fn forget(&mut self, gone: impl Fn(&str) -> bool) {
        self.live.retain(|k, _| !gone(&k.0));
        self.seq.retain(|k, _| !gone(&k.0));
    }

    /// Everything `group` has committed.
    pub(super) fn of_group(&self, group: &str) -> Vec<CommittedOffset> {
        self.live.range(group_range(group)).map(|(_, v)| v.clone()).collect()
    }

    /// Applies a durable change found at stream offset `seq`, unless a
    /// later one is applied already (commits become durable in stream
    /// order, but their callers may come back in another).
    pub(super) fn apply(&mut self, key: Key, seq: u64, value: Option<CommittedOffset>) {
        if self.seq.get(&key).is_some_and(|s| *s >= seq) {
            return;
        }
        self.seq.insert(key.clone(), seq);
        match value {
            Some(v) => self.live.insert(key, v),
            None => self.live.remove(&key),
        };
    }
}

impl Host {
    /// Commits offsets for `group`: the accepted ones are durable when this
    /// returns; one result per commit, in order.
    pub async fn commit_offsets(
        &self,
        group: &str,
        commits: &[OffsetCommit],
    ) -> Result<Vec<Result<(), CommitRefused>>, Error> {
        self.check_coordinator(group)?;
        let guard = self.offsets_loaded().await?;
        self.commit_offsets_locked(guard, group, commits).await
    }

    /// As [`Host::commit_offsets`], under a lock the caller already holds.
    pub(super) async fn commit_offsets_locked(
        &self,
        guard: tokio::sync::MutexGuard<'_, Offsets>,
        group: &str,
        commits: &[OffsetCommit],
    ) -> Result<Vec<Result<(), CommitRefused>>, Error> {
        let now = crate::fsutil::now_ms();
        let mut results = Vec::with_capacity(commits.len());
        let mut changes = Vec::new();
        for c in commits {
            let refused = match self.stream_end(&c.stream, c.partition) {
                Err(_) => Some(CommitRefused::UnknownPartition {
                    stream: c.stream.clone(),
                    partition: c.partition,
                }),
                Ok(_) => metadata_refusal(c),
            };
            if let Some(r) = refused {
                results.push(Err(r));
                continue;
            }
            let key: Key = (group.to_string(), c.stream.clone(), c.partition);
            let value = Value {
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: c.metadata.clone(),
                commit_ms: now,
            };
            changes.push((key, Some(value)));
            results.push(Ok(()));
        }
        if changes.is_empty() {
            return Ok(results);
        }
        self.write_offsets(guard, changes).await?;
        Ok(results)
    }

    /// Everything `group` has committed, by stream and partition.
    pub async fn committed_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>, Error> {
        self.check_coordinator(group)?;
        let guard = self.offsets_loaded().await?;
        Ok(guard.of_group(group))
    }

    /// Groups with committed offsets.
    pub async fn groups_with_offsets(&self) -> Result<Vec<String>, Error> {
        let guard = self.offsets_loaded().await?;
        let mut out: Vec<String> = guard.live.keys().map(|k| k.0.clone()).collect();
        out.dedup();
        Ok(out)
    }

    /// Groups with offsets committed on `topic` (a stream or a view).
    pub(super) async fn groups_on(&self, topic: &str) -> Result<Vec<String>, Error> {
        let guard = self.offsets_loaded().await?;
        let mut out: Vec<String> = guard
            .live
            .keys()
            .filter(|k| k.1 == topic)
            .map(|k| k.0.clone())
            .collect();
        out.dedup();
        Ok(out)
    }

    /// Deletes every group's committed offsets on stream `name`, which is
    /// gone, as Kafka does when a topic is deleted: a stream created later
    /// under the name starts with none, so no group resumes in it at the
    /// old stream's positions (skipping its first records). Only the groups
    /// this node coordinates; each node deletes its own.
    pub(super) async fn forget_stream_offsets(&self, name: &str) -> Result<(), Error> {
        if self.view(name).is_some() {
            return Ok(());
        }
        let n = self.delete_topic_offsets(name).await?;
        if n > 0 {
            tracing::info!(
                stream = name,
                offsets = n,
                "deleted the offsets committed on a deleted stream"
            );
        }
        Ok(())
    }

    /// Deletes every group's offsets on `topic` (durably, as empty values).
    pub(super) async fn delete_topic_offsets(&self, topic: &str) -> Result<usize, Error> {
        self.delete_offsets_where(|k| k.1 == topic).await
    }

    /// Deletes the committed offsets whose key `doomed` picks (durably, as
    /// empty values); returns how many.
    pub(super) async fn delete_offsets_where(&self, doomed: impl Fn(&Key) -> bool) -> Result<usize, Error> {
        let guard = self.offsets_loaded().await?;
        self.delete_offsets_locked(guard, doomed).await
    }

    /// As [`Host::delete_offsets_where`], under a lock the caller already
    /// holds (so what it checked first stays true: no commit lands between).
    pub(super) async fn delete_offsets_locked(
        &self,
        guard: tokio::sync::MutexGuard<'_, Offsets>,
        doomed: impl Fn(&Key) -> bool,
    ) -> Result<usize, Error> {
        let changes: Vec<(Key, Option<Value>)> = guard
            .live
            .keys()
            .filter(|k| doomed(k))
            .map(|k| (k.clone(), None))
            .collect();
        if changes.is_empty() {
            return Ok(0);
        }
        let n = changes.len();
        self.write_offsets(guard, changes).await?;
        Ok(n)
    }

    /// Every (group, committed offset), if the offsets are loaded (they
    /// are not loaded, nor the stream created, just to answer this).
    pub(super) async fn loaded_offsets(&self) -> Vec<(String, CommittedOffset)> {
        let guard = self.inner.committed.map.lock().await;
        guard.live.iter().map(|(k, v)| (k.0.clone(), v.clone())).collect()
    }
}

/// The keys of one group.
fn group_range(group: &str) -> std::ops::RangeInclusive<Key> {
    (group.to_string(), String::new(), 0)..=(group.to_string(), char::MAX.to_string(), u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(o: u64) -> CommittedOffset {
        CommittedOffset {
            stream: "t".into(),
            partition: 0,
            offset: o,
            leader_epoch: -1,
            metadata: None,
            commit_ms: 0,
        }
    }

    /// Callers of concurrent commits may come back out of stream order: the
    /// change found later in the stream wins, deletions included.
    #[test]
    fn the_latest_change_in_the_stream_wins_whatever_order_it_is_applied_in() {
        let key = || ("g".to_string(), "t".to_string(), 0);
        let mut m = Offsets::default();
        m.apply(key(), 7, Some(offset(70)));
        m.apply(key(), 5, Some(offset(50)));
        assert_eq!(m.live.get(&key()).map(|c| c.offset), Some(70));
        m.apply(key(), 9, None);
        m.apply(key(), 8, Some(offset(80)));
        assert!(!m.live.contains_key(&key()));
        m.apply(key(), 10, Some(offset(100)));
        assert_eq!(m.live.get(&key()).map(|c| c.offset), Some(100));
    }

    /// Reading groups creates nothing; the first commit creates the stream.
    #[tokio::test]
    async fn reads_do_not_create_the_offsets_stream_and_the_first_commit_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = crate::Host::open(crate::Settings {
            data_dir: dir.path().into(),
            kafka_listen: None,
            ..crate::Settings::default()
        })
        .await
        .expect("open");
        host.create_stream("t", 1).await.expect("create");
        let has_stream = |h: &crate::Host| h.list_streams().iter().any(|s| s.name == OFFSETS_STREAM);
        assert!(host.committed_offsets("g").await.expect("read").is_empty());
        assert!(host.list_groups().await.expect("list").is_empty());
        assert!(!has_stream(&host));
        let c = OffsetCommit {
            stream: "t".into(),
            partition: 0,
            offset: 0,
            leader_epoch: -1,
            metadata: None,
        };
        let r = host.commit_offsets("g", &[c]).await.expect("commit");
        assert!(r.iter().all(Result::is_ok));
        assert!(has_stream(&host));
        assert_eq!(host.committed_offsets("g").await.expect("read").len(), 1);
        host.shutdown().await;
    }
}
