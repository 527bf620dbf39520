//! Appending to partitions: a batch is checked, given its offsets and
//! queued for the WAL in one step ([`Log::append_queued`] and friends), and
//! acknowledged once durable. Invariants: within a partition, queue order is
//! offset order is LSN order; nothing is acknowledged (and no producer or
//! pipeline state moves) before the WAL says the entry is durable.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::partition::BatchRef;
use super::{Appended, Durable, Log, LogError, Record, partition_of, producers, progress, record};
use crate::wal::{self, EntryKind, EntryMeta, WalError};

/// A queued append: resolves once the batch is durable (or failed).
pub type PendingAppend = Pin<Box<dyn Future<Output = Result<Appended, LogError>> + Send>>;

/// The WAL's answer for one queued entry.
type Durability = oneshot::Receiver<Result<Appended, WalError>>;

/// What a records entry carries after its batch.
enum Trailer {
    None,
    /// A pipeline's input position (exactly-once pipeline output).
    Progress(progress::Progress),
    /// An idempotent producer's batch.
    Producer(producers::ProducerBatch),
}

impl Log {
    /// Appends records to a partition; returns once they are durable.
    pub async fn append(&self, stream: &str, partition: u32, records: &[Record]) -> Result<Appended, LogError> {
        self.append_measured(stream, partition, records, Trailer::None).await
    }

    /// Queues records like [`Log::append`]; the returned future waits
    /// until they are durable. Appends queued one after the other get
    /// offsets (and WAL order) in that order, so a caller can queue several
    /// before waiting for any.
    pub async fn append_queued(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
    ) -> Result<PendingAppend, LogError> {
        self.queue_measured(stream, partition, records, Trailer::None, false)
            .await
    }

    /// Queues an idempotent producer's batch: a batch already written (a
    /// retry) is answered with its first offsets and not written again; a
    /// sequence gap or an older epoch is refused. The producer's next batch
    /// on this partition is checked once this one is durable.
    pub async fn append_idempotent_queued(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
        batch: producers::ProducerBatch,
    ) -> Result<PendingAppend, LogError> {
        let s = self.stream(stream)?;
        partition_of(&s, partition)?;
        let key = (s.meta.id, partition, batch.producer_id);
        let held = self.producers.lock(key).lock_owned().await;
        let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
        match self.producers.check(key, &batch, count)? {
            producers::Check::Duplicate { base_offset, count } => {
                Ok(Box::pin(std::future::ready(Ok(Appended { base_offset, count }))))
            }
            producers::Check::Append => {
                let pending = self
                    .queue_measured(stream, partition, records, Trailer::Producer(batch), false)
                    .await?;
                Ok(Box::pin(async move {
                    let res = pending.await;
                    drop(held);
                    res
                }))
            }
        }
    }

    /// A producer id never handed out before (Kafka InitProducerId).
    pub fn allocate_producer_id(&self) -> i64 {
        self.producers.allocate_id(crate::fsutil::now_ms())
    }

    /// The idempotent producers with state on a partition (Kafka
    /// DescribeProducers); only its leader answers.
    pub fn active_producers(
        &self,
        stream: &str,
        partition: u32,
    ) -> Result<Vec<super::producers::ActiveProducer>, LogError> {
        let s = self.stream(stream)?;
        let part = partition_of(&s, partition)?;
        self.refuse_follower(stream, partition, &part)?;
        Ok(self.producers.active(s.meta.id, partition, crate::fsutil::now_ms()))
    }

    /// Appends records with a pipeline's input position in the same WAL entry.
    pub async fn append_with_progress(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
        progress: progress::Progress,
    ) -> Result<Appended, LogError> {
        self.append_measured(stream, partition, records, Trailer::Progress(progress))
            .await
    }

    /// [`Log::append_queued`] and waits until durable.
    async fn append_measured(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
        extra: Trailer,
    ) -> Result<Appended, LogError> {
        self.queue_measured(stream, partition, records, extra, true)
            .await?
            .await
    }

    /// Queues a batch (offsets assigned, in the WAL's queue) and returns what
    /// waits for it to be durable, counted and timed in the node's metrics.
    /// With `lead`, a caller about to wait commits the batch itself when the
    /// WAL's writer is idle (`wal::Lead`); callers that queue several before
    /// waiting leave grouping to the writer.
    async fn queue_measured(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
        extra: Trailer,
        lead: bool,
    ) -> Result<PendingAppend, LogError> {
        use crate::metrics as m;
        let started = std::time::Instant::now();
        let stream = stream.to_string();
        let count = records.len() as u64;
        let bytes: usize = records.iter().map(Record::size).sum();
        let rx = match self.enqueue_entry(&stream, partition, records, extra, lead).await {
            Ok(rx) => rx,
            Err(e) => {
                // A name that resolved to nothing is not a label: a client
                // naming random streams would grow /metrics without bound.
                let unresolved = matches!(
                    e,
                    LogError::StreamNotFound { .. }
                        | LogError::PartitionNotFound { .. }
                        | LogError::IsView { .. }
                        | LogError::InvalidName { .. }
                );
                let label = if unresolved { String::new() } else { stream };
                m::add(&label, m::StreamCounter::AppendErrors, 1);
                return Err(e);
            }
        };
        Ok(Box::pin(async move {
            let res = match rx.await {
                Ok(r) => r.map_err(LogError::from),
                Err(_) => Err(LogError::from(WalError::Closed)),
            };
            match &res {
                Ok(_) => {
                    ::metrics::histogram!(m::APPEND_SECONDS).record(started.elapsed().as_secs_f64());
                    m::add(&stream, m::StreamCounter::AppendRecords, count);
                    m::add(&stream, m::StreamCounter::AppendBytes, bytes as u64);
                }
                Err(_) => m::add(&stream, m::StreamCounter::AppendErrors, 1),
            }
            res
        }))
    }

    /// Checks the batch, assigns its offsets and queues it for the WAL
    /// (queue order is offset order within a partition); the receiver
    /// answers once the batch is durable.
    async fn enqueue_entry(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
        extra: Trailer,
        lead: bool,
    ) -> Result<Durability, LogError> {
        if records.is_empty() {
            return Err(LogError::InvalidBatch("a batch needs at least one record".into()));
        }
        if records.len() > u32::MAX as usize {
            return Err(LogError::InvalidBatch("too many records in one batch".into()));
        }
        let records_payload = record::encode_batch(records).map_err(LogError::InvalidBatch)?;
        let with = |t: &[u8], kind| {
            let mut v = Vec::with_capacity(records_payload.len() + t.len());
            v.extend_from_slice(&records_payload);
            v.extend_from_slice(t);
            (Bytes::from(v), kind, t.len() as u8)
        };
        let (payload, kind, trailer) = match &extra {
            Trailer::None => (records_payload.clone(), EntryKind::Records, 0u8),
            Trailer::Progress(p) => with(&progress::encode(p), EntryKind::RecordsWithProgress),
            Trailer::Producer(b) => with(&producers::encode(b), EntryKind::RecordsWithProducer),
        };
        let max = self.opts.wal.max_entry_bytes.min(wal::format::MAX_PAYLOAD_LEN);
        if payload.len() > max {
            return Err(LogError::BatchTooLarge {
                size: payload.len(),
                max,
            });
        }
        let s = self.stream(stream)?;
        let part = partition_of(&s, partition)?;
        if s.meta.compaction.as_ref().is_some_and(|c| c.is_record_key())
            && let Some(index) = records.iter().position(|r| r.key.is_none())
        {
            return Err(LogError::KeyRequired {
                stream: stream.to_string(),
                index,
            });
        }
        let count = records.len() as u32;
        let stream_id = s.meta.id;
        // Reserve queue space first (this may wait and is cancel-safe), then
        // assign offsets and enqueue under the partition lock, so queue order
        // (hence LSN order) matches offset order within the partition.
        let permit = self.wal.reserve(payload.len()).await?;
        let (tx, rx) = oneshot::channel();
        let queued = {
            let mut st = part.lock();
            if let Some(r) = &st.replica
                && Some(r.leadership.leader) != self.opts.node_id
            {
                return Err(LogError::NotLeader {
                    stream: stream.into(),
                    partition,
                    node: self.opts.node_id.unwrap_or(0),
                    leader: r.leadership.leader,
                    epoch: r.leadership.epoch,
                });
            }
            let base_offset = st.next_offset;
            st.next_offset += count as u64;
            let entry = EntryMeta {
                kind,
                stream: stream_id,
                partition,
                base_offset,
                count,
            };
            let batch = Durable {
                part: part.clone(),
                stream_id,
                partition,
                base_offset,
                count,
                trailer,
                producer: match &extra {
                    Trailer::Producer(b) => Some(*b),
                    _ => None,
                },
                cached: records_payload,
            };
            let (progress_map, producer_table) = (self.progress.clone(), self.producers.clone());
            let done = self.on_durable(batch, tx, move || match extra {
                Trailer::None => {}
                Trailer::Progress(p) => progress_map.advance(p),
                Trailer::Producer(b) => {
                    producer_table.record((stream_id, partition, b.producer_id), &b, base_offset, count)
                }
            });
            permit.append_led(entry, payload, done)
        };
        // Outside the partition lock: leading blocks for one sync.
        if lead {
            queued.now();
        }
        Ok(rx)
    }

    /// The WAL completion of a records entry: indexes and caches the batch,
    /// runs `also`, advances the indexed LSN, then answers on `tx`.
    pub(super) fn on_durable(
        &self,
        b: Durable,
        tx: oneshot::Sender<Result<Appended, WalError>>,
        also: impl FnOnce() + Send + 'static,
    ) -> wal::Completion {
        let (cache, indexed, touched) = (self.cache.clone(), self.indexed_lsn.clone(), self.touched.clone());
        Box::new(move |res| {
            let res = res.map(|a| {
                b.part.commit(BatchRef {
                    base_offset: b.base_offset,
                    count: b.count,
                    lsn: a.lsn,
                    location: a.location,
                    trailer: b.trailer,
                    producer: b.producer,
                });
                also();
                touched.insert((b.stream_id, b.partition));
                cache.insert((b.stream_id, b.partition, b.base_offset), b.cached);
                indexed.fetch_max(a.lsn + 1, Ordering::AcqRel);
                Appended {
                    base_offset: b.base_offset,
                    count: b.count,
                }
            });
            let _ = tx.send(res);
        })
    }
}
