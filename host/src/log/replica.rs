//! The log's side of replication: appending a leader's batches at the
//! leader's offsets, reading raw batches for followers, truncating a
//! diverged tail, and recording leadership and the high watermark.
//!
//! Invariants:
//! * a follower's partition holds the leader's batches byte for byte at the
//!   same offsets: [`Log::append_replica`] takes the stored record bytes and
//!   offsets as they are, through the same WAL group commit as appends;
//! * leadership changes and truncations are control entries, so recovery
//!   rebuilds them like the rest of the metadata; a truncation is replayed
//!   against the index wherever it sits in the WAL;
//! * nothing below the WAL's first batch (data in the object store) is
//!   ever truncated.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::error::LogError;
use super::meta::{ControlOp, Leadership, StreamMeta};
use super::partition::{Partition, Plan, ReplicaState};
use super::{Appended, Durable, Log, Stream, partition_of, producers, record};
use crate::wal::{EntryKind, EntryMeta, WalError};

/// One stored batch as it travels to a follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBatch {
    pub base_offset: u64,
    pub count: u32,
    /// The encoded records, exactly as stored.
    pub payload: Bytes,
    /// The idempotent producer that wrote it, so a follower that becomes
    /// the leader still recognises the producer's retries.
    pub producer: Option<super::producers::ProducerBatch>,
}

impl RawBatch {
    pub fn end(&self) -> u64 {
        self.base_offset.saturating_add(u64::from(self.count))
    }
}

/// A replicated partition as the replication layer sees it.
#[derive(Debug, Clone)]
pub struct ReplicaView {
    pub stream: String,
    pub stream_id: u32,
    pub created_ms: u64,
    pub partition: u32,
    /// Node ids holding this partition, first leader first.
    pub replicas: Vec<u32>,
    /// The stream's own `min_insync_replicas`, if set.
    pub min_insync_replicas: Option<u32>,
    pub state: ReplicaState,
    /// The end of the log on this node (above the high watermark too).
    pub log_end: u64,
    pub log_start: u64,
}

impl ReplicaView {
    /// How many replicas must be in sync for an `acks=all` write, `node`
    /// being the node's `[cluster] min_insync_replicas`.
    pub fn required_in_sync(&self, node: u32) -> usize {
        let replicas = u32::try_from(self.replicas.len()).unwrap_or(u32::MAX);
        super::stream_config::required_in_sync(self.min_insync_replicas, node, replicas) as usize
    }
}

impl Log {
    /// This node's id in a cluster.
    pub fn node_id(&self) -> Option<u32> {
        self.opts.node_id
    }

    /// `NotLeader` when `part` is replicated and another node leads it (a
    /// partition that is not replicated has no other leader).
    pub(super) fn refuse_follower(&self, stream: &str, partition: u32, part: &Partition) -> Result<(), LogError> {
        match part.replica() {
            Some((r, _)) if Some(r.leadership.leader) != self.opts.node_id => Err(LogError::NotLeader {
                stream: stream.into(),
                partition,
                node: self.opts.node_id.unwrap_or(0),
                leader: r.leadership.leader,
                epoch: r.leadership.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Every replicated partition of every stream.
    pub fn replicas(&self) -> Vec<ReplicaView> {
        let streams: Vec<Arc<Stream>> = self.read_streams().values().cloned().collect();
        let mut out = Vec::new();
        for s in streams {
            for p in 0..s.meta.partitions {
                if let Ok(v) = view(&s, p) {
                    out.push(v);
                }
            }
        }
        out
    }

    /// One replicated partition.
    pub fn replica(&self, stream: &str, partition: u32) -> Result<ReplicaView, LogError> {
        view(&*self.stream(stream)?, partition)
    }

    /// The stream's metadata (for forwarding its creation to peers).
    pub fn stream_meta(&self, stream: &str) -> Result<StreamMeta, LogError> {
        Ok(self.stream(stream)?.meta.clone())
    }

    /// Appends batches the leader stored, each at its `base_offset` (at or
    /// after this partition's end: a compacted leader may have gaps), in
    /// order; durable when this returns. They are queued together, so the
    /// WAL commits them in as few groups as it can. Only a follower appends
    /// this way.
    pub async fn append_replica(&self, stream: &str, partition: u32, batches: Vec<RawBatch>) -> Result<(), LogError> {
        let s = self.stream(stream)?;
        let part = partition_of(&s, partition)?;
        let mut pending = Vec::with_capacity(batches.len());
        let mut failed = None;
        for batch in batches {
            match self.enqueue_replica(&s, &part, partition, batch).await {
                Ok(rx) => pending.push(rx),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        // Whatever was queued is waited for, even after a refused batch.
        for rx in pending {
            rx.await.map_err(|_| WalError::Closed)??;
        }
        failed.map_or(Ok(()), Err)
    }

    async fn enqueue_replica(
        &self,
        s: &Stream,
        part: &Arc<super::partition::Partition>,
        partition: u32,
        batch: RawBatch,
    ) -> Result<oneshot::Receiver<Result<Appended, WalError>>, LogError> {
        let stream = &s.meta.name;
        let mismatch = |reason: String| LogError::ReplicaMismatch {
            stream: stream.clone(),
            partition,
            offset: batch.base_offset,
            reason,
        };
        if batch.count == 0 {
            return Err(mismatch("a batch needs at least one record".into()));
        }
        // The records must decode: a follower never stores what it cannot serve.
        record::decode_batch(&batch.payload, batch.base_offset, batch.count).map_err(|e| mismatch(e.to_string()))?;
        let max = self.opts.wal.max_entry_bytes.min(crate::wal::format::MAX_PAYLOAD_LEN);
        if batch.payload.len() > max {
            return Err(LogError::BatchTooLarge {
                size: batch.payload.len(),
                max,
            });
        }
        let permit = self.wal.reserve(batch.payload.len()).await?;
        let (tx, rx) = oneshot::channel();
        let mut st = part.lock();
        match &st.replica {
            None => {
                return Err(LogError::NotReplicated {
                    stream: stream.clone(),
                    partition,
                });
            }
            Some(r) if Some(r.leadership.leader) == self.opts.node_id => {
                return Err(mismatch("this node leads the partition".into()));
            }
            Some(_) => {}
        }
        // The next offsets: nothing older (held already), no range past the
        // last offset, and no gap unless compaction on the leader left one
        // (readers step over it, as over a compacted segment's).
        let gap_allowed = s.meta.compaction.is_some() && batch.base_offset > st.next_offset;
        if batch.base_offset != st.next_offset && !gap_allowed {
            return Err(mismatch(format!(
                "the batch starts at {}, the partition ends at {}",
                batch.base_offset, st.next_offset
            )));
        }
        let Some(end) = batch.base_offset.checked_add(u64::from(batch.count)) else {
            return Err(mismatch("the batch runs past the last offset".into()));
        };
        let (base_offset, count, stream_id) = (batch.base_offset, batch.count, s.meta.id);
        st.next_offset = end;
        // An idempotent producer's batch keeps its trailer, as on the leader.
        let (kind, payload, trailer) = match &batch.producer {
            None => (EntryKind::Records, batch.payload.clone(), 0),
            Some(p) => {
                let mut v = Vec::with_capacity(batch.payload.len() + producers::LEN);
                v.extend_from_slice(&batch.payload);
                v.extend_from_slice(&producers::encode(p));
                (EntryKind::RecordsWithProducer, Bytes::from(v), producers::LEN as u8)
            }
        };
        let entry = EntryMeta {
            kind,
            stream: stream_id,
            partition,
            base_offset,
            count,
        };
        let durable = Durable {
            part: part.clone(),
            stream_id,
            partition,
            base_offset,
            count,
            trailer,
            producer: batch.producer,
            cached: batch.payload,
        };
        let (table, producer) = (self.producers.clone(), batch.producer);
        let done = self.on_durable(durable, tx, move || {
            if let Some(b) = producer {
                table.record((stream_id, partition, b.producer_id), &b, base_offset, count);
            }
        });
        permit.append(entry, payload, done);
        Ok(rx)
    }

    /// Stored batches from `offset` on, about `max_bytes` of them (one at
    /// least) and at most `max_batches`, above the high watermark too (a
    /// follower needs them); from the object store below the WAL.
    pub async fn raw_batches(
        &self,
        stream: &str,
        partition: u32,
        offset: u64,
        max_bytes: u64,
        max_batches: usize,
    ) -> Result<Vec<RawBatch>, LogError> {
        let s = self.stream(stream)?;
        let part = partition_of(&s, partition)?;
        let out_of_range = |start, end| LogError::OffsetOutOfRange {
            stream: stream.into(),
            partition,
            offset,
            start,
            end,
        };
        // Where the read goes on from: past ranges compaction emptied.
        let mut at = offset;
        let mut trimmed = 0;
        while trimmed < 8 {
            match part
                .plan_raw(at, max_bytes, max_batches)
                .map_err(|r| out_of_range(r.start, r.end))?
            {
                Plan::Cold { until } => {
                    let err = |reason: String| LogError::ColdRead {
                        stream: stream.into(),
                        partition,
                        offset,
                        reason,
                    };
                    let cold = self
                        .cold
                        .get()
                        .ok_or_else(|| err("no object store is attached".into()))?;
                    let want = usize::try_from(max_bytes).unwrap_or(usize::MAX);
                    let read = cold.read(s.meta.id, partition, at, until, want).await.map_err(err)?;
                    // Segments keep no producer fields: give back those the
                    // producer table still remembers (a batch compaction
                    // shrank no longer matches its count and goes without).
                    let known = self.producers.remembered_in(s.meta.id, partition, at, until);
                    let batches: Vec<RawBatch> = read
                        .batches
                        .into_iter()
                        .filter(|b| b.base_offset < until)
                        .take(max_batches.max(1))
                        .map(|b| RawBatch {
                            producer: known
                                .get(&b.base_offset)
                                .filter(|(_, count)| *count == b.count)
                                .map(|(p, _)| *p),
                            base_offset: b.base_offset,
                            count: b.count,
                            payload: b.payload,
                        })
                        .collect();
                    // A compacted range may hold no record at all: go on
                    // past it (each read covers more, so this ends).
                    if batches.is_empty() && read.covered_until > at {
                        at = read.covered_until;
                        continue;
                    }
                    return Ok(batches);
                }
                Plan::Hot(plan) => {
                    let (id, plan2) = (s.meta.id, plan.clone());
                    let (wal, cache) = (self.wal.clone(), self.cache.clone());
                    let read = tokio::task::spawn_blocking(move || {
                        plan2
                            .iter()
                            .map(|b| super::tiering::load_payload(&cache, &wal, id, partition, b))
                            .collect::<Result<Vec<Bytes>, WalError>>()
                    })
                    .await
                    .map_err(|e| WalError::Poisoned(format!("read task failed: {e}")))?;
                    match read {
                        Err(WalError::Trimmed { .. }) => {
                            trimmed += 1;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                        Ok(payloads) => {
                            return Ok(plan
                                .iter()
                                .zip(payloads)
                                .map(|(b, payload)| RawBatch {
                                    base_offset: b.base_offset,
                                    count: b.count,
                                    payload,
                                    producer: b.producer,
                                })
                                .collect());
                        }
                    }
                }
            }
        }
        Err(LogError::Wal(WalError::Trimmed { lsn: 0 }))
    }

    /// Drops this follower's records from `offset` on (they diverged from
    /// the leader). Refused below the WAL's first batch. Returns the end.
    pub async fn truncate(&self, stream: &str, partition: u32, offset: u64) -> Result<u64, LogError> {
        let mut snap = self.admin.lock().await;
        let s = self.stream(stream)?;
        let part = partition_of(&s, partition)?;
        {
            let st = part.lock();
            let floor = st.batches.first().map_or(st.end_offset, |b| b.base_offset);
            if offset >= st.end_offset {
                return Ok(st.end_offset);
            }
            let mismatch = |reason: String| LogError::ReplicaMismatch {
                stream: stream.into(),
                partition,
                offset,
                reason,
            };
            if offset < floor {
                return Err(mismatch(format!(
                    "offsets below {floor} are in the object store and are never truncated"
                )));
            }
            if st.next_offset > st.end_offset {
                return Err(mismatch("appends are in flight".into()));
            }
        }
        let op = ControlOp::Truncate {
            id: s.meta.id,
            partition,
            offset,
        };
        self.apply_control(&mut snap, &op).await?;
        let end = part.truncate(offset);
        let id = s.meta.id;
        self.cache
            .remove_where(|k: &(u32, u32, u64)| k.0 == id && k.1 == partition && k.2 >= end);
        Ok(end)
    }

    /// Drops this follower's records and goes on at `offset`, above its end:
    /// its leader's log starts there (retention passed this replica while
    /// it was away). Returns the new end.
    pub async fn reset_replica(&self, stream: &str, partition: u32, offset: u64) -> Result<u64, LogError> {
        let mut snap = self.admin.lock().await;
        let s = self.stream(stream)?;
        let part = partition_of(&s, partition)?;
        {
            let st = part.lock();
            if offset <= st.end_offset {
                return Ok(st.end_offset);
            }
            let refused = match &st.replica {
                Some(r) if Some(r.leadership.leader) == self.opts.node_id => {
                    Some("only a follower's log restarts at its leader's start")
                }
                None => Some("the partition is not replicated"),
                Some(_) if st.next_offset > st.end_offset => Some("appends are in flight"),
                Some(_) => None,
            };
            if let Some(reason) = refused {
                return Err(LogError::ReplicaMismatch {
                    stream: stream.into(),
                    partition,
                    offset,
                    reason: reason.into(),
                });
            }
        }
        let op = ControlOp::ResetReplica {
            id: s.meta.id,
            partition,
            offset,
        };
        self.apply_control(&mut snap, &op).await?;
        part.reset_to(offset);
        let id = s.meta.id;
        self.cache
            .remove_where(|k: &(u32, u32, u64)| k.0 == id && k.1 == partition);
        Ok(offset)
    }

    /// Moves this follower's start up to its leader's, `offset`, when that
    /// lies within its log (records deleted there are deleted here too).
    /// Durable first, as a client's deletion. Returns the start in force.
    pub async fn follow_start(&self, stream: &str, partition: u32, offset: u64) -> Result<u64, LogError> {
        // Most answers change nothing: no admin lock for them.
        let unchanged = |s: &Stream| -> Result<Option<u64>, LogError> {
            let part = partition_of(s, partition)?;
            let st = part.lock();
            let follows = st
                .replica
                .as_ref()
                .is_some_and(|r| Some(r.leadership.leader) != self.opts.node_id);
            let moves = follows && offset > st.start_offset && offset <= st.end_offset;
            Ok((!moves).then_some(st.start_offset))
        };
        if let Some(start) = unchanged(&*self.stream(stream)?)? {
            return Ok(start);
        }
        let mut snap = self.admin.lock().await;
        let s = self.stream(stream)?;
        if let Some(start) = unchanged(&s)? {
            return Ok(start);
        }
        let part = partition_of(&s, partition)?;
        let op = ControlOp::SetStart {
            id: s.meta.id,
            partition,
            offset,
        };
        self.apply_control(&mut snap, &op).await?;
        Ok(part.delete_before(offset))
    }

    /// Records a new leadership of a replicated partition (durable first).
    pub async fn set_leadership(&self, stream: &str, partition: u32, state: Leadership) -> Result<(), LogError> {
        let mut snap = self.admin.lock().await;
        let s = self.stream(stream)?;
        let part = partition_of(&s, partition)?;
        if part.replica().is_none() {
            return Err(LogError::NotReplicated {
                stream: stream.into(),
                partition,
            });
        }
        // Fence first: an append checked after this sees the new leader;
        // one queued before is ahead of the control entry in the WAL, so it
        // is durable and indexed once the control entry is.
        part.set_replica(state.clone());
        let op = ControlOp::SetLeadership {
            id: s.meta.id,
            partition,
            state,
        };
        self.apply_control(&mut snap, &op).await?;
        Ok(())
    }

    /// Moves a replicated partition's high watermark (capped at its end).
    pub fn set_high_watermark(&self, stream: &str, partition: u32, hw: u64) -> Result<u64, LogError> {
        let s = self.stream(stream)?;
        Ok(partition_of(&s, partition)?.set_high_watermark(hw))
    }

    /// Waits until the log's end (not the high watermark) passes `offset`.
    pub async fn wait_for_log_end(&self, stream: &str, partition: u32, offset: u64) -> Result<(), LogError> {
        let s = self.stream(stream)?;
        partition_of(&s, partition)?.wait_log_end_past(offset).await;
        Ok(())
    }

    /// A watch of the end readers see (the high watermark when replicated).
    pub fn watch_visible_end(
        &self,
        stream: &str,
        partition: u32,
    ) -> Result<tokio::sync::watch::Receiver<u64>, LogError> {
        let s = self.stream(stream)?;
        Ok(partition_of(&s, partition)?.subscribe())
    }
}

fn view(s: &Stream, partition: u32) -> Result<ReplicaView, LogError> {
    let part = partition_of(s, partition)?;
    let not = || LogError::NotReplicated {
        stream: s.meta.name.clone(),
        partition,
    };
    let (state, log_end) = part.replica().ok_or_else(not)?;
    let replication = s.meta.replication.as_ref().ok_or_else(not)?;
    let replicas = replication
        .assignment
        .get(partition as usize)
        .cloned()
        .ok_or_else(not)?;
    Ok(ReplicaView {
        stream: s.meta.name.clone(),
        stream_id: s.meta.id,
        created_ms: s.meta.created_ms,
        partition,
        replicas,
        min_insync_replicas: replication.min_insync_replicas,
        state,
        log_end,
        log_start: part.range().start,
    })
}
