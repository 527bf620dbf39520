//! Streams and partitions over the WAL: metadata, appends, reads.
//!
//! Owns the stream registry, each partition's offset index and the recent
//! batch cache. Invariants:
//! * offsets in a partition are dense and assigned in the order batches enter
//!   the WAL, so LSN order and offset order agree;
//! * a batch becomes visible to readers only once durable, from the WAL
//!   writer's completion, so a caller that gives up (a dropped HTTP request)
//!   can never leave a hole that stalls readers;
//! * everything in memory (index, cache, registry) is rebuilt from the WAL
//!   plus the metadata snapshot on start-up.

mod append;
pub mod cache;
pub mod error;
pub mod leadership;
pub mod meta;
pub mod partition;
pub mod pipelines;
pub mod producers;
pub mod progress;
mod read;
pub mod record;
mod recovery;
pub mod replica;
mod settings;
pub mod stream_config;
pub mod tiering;
pub mod views;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_settings;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;

pub use error::LogError;
pub use read::{RecordRun, RunRead};
pub use record::{OffsetRecord, Record};

use crate::fsutil::now_ms;
use crate::wal::{self, EntryKind, EntryMeta, Wal};
use cache::BatchCache;
use meta::{ControlOp, Snapshot, StreamMeta};
use partition::Partition;
pub use tiering::{ColdBatch, ColdRead, ColdStore, TierPartition};

/// Where the WAL keeps its entries.
#[derive(Debug, Clone, Default)]
pub enum WalBackend {
    /// Segment files under `<data-dir>/wal`.
    #[default]
    Local,
    /// Objects under `wal/` in this store: the node keeps no state the
    /// store does not also hold (see docs/design/0004-object-wal.md).
    Object {
        remote: crate::objstore::Remote,
        opts: wal::object::ObjectOptions,
    },
}

/// Tuning of the stream log.
#[derive(Debug, Clone)]
pub struct Options {
    pub wal: wal::Options,
    pub wal_backend: WalBackend,
    /// Bytes of recent batches kept in memory for readers.
    pub cache_bytes: usize,
    /// Most partitions one stream may have.
    pub max_partitions: u32,
    /// Most streams, and most partitions over all streams.
    pub max_streams: u32,
    pub max_total_partitions: u64,
    /// This node's id in a cluster (`None`: a single node).
    pub node_id: Option<u32>,
    /// An idempotent producer's state is dropped this long after its last
    /// write to a partition.
    pub producer_expiry: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            wal: wal::Options::default(),
            wal_backend: WalBackend::Local,
            cache_bytes: 64 * 1024 * 1024,
            producer_expiry: std::time::Duration::from_secs(24 * 3600),
            max_partitions: 1024,
            max_streams: 10_000,
            max_total_partitions: 100_000,
            node_id: None,
        }
    }
}

/// A stream as listed and described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub name: String,
    pub id: u32,
    pub created_ms: u64,
    /// Per partition: first and next offset.
    pub partitions: Vec<partition::Range>,
    pub retention: meta::Retention,
    pub compaction: Option<meta::Compaction>,
    pub replication: Option<meta::Replication>,
    /// The stream's own largest Kafka record batch, if it has one.
    pub max_message_bytes: Option<u64>,
}

impl StreamInfo {
    /// What of the stream may change after creation, as it is now.
    pub fn settings(&self) -> meta::StreamSettings {
        meta::StreamSettings::of(
            self.retention,
            self.replication.as_ref(),
            self.max_message_bytes,
            self.compaction.as_ref(),
        )
    }
}

/// One partition's offsets with what a fetch or produce needs of its
/// stream, without describing the stream's other partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The stream's id.
    pub stream_id: u32,
    pub range: partition::Range,
    /// The stream is compacted.
    pub compacted: bool,
    /// The stream's own largest Kafka record batch, if it has one.
    pub max_message_bytes: Option<u64>,
}

/// The outcome of an append: offsets `base_offset .. base_offset + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub count: u32,
}

/// The outcome of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatch {
    pub records: Vec<OffsetRecord>,
    /// Offset to read from next.
    pub next_offset: u64,
    pub start_offset: u64,
    /// Offset the next appended record will get (high watermark).
    pub end_offset: u64,
}

/// A batch on its way into the WAL, and where it goes once durable.
struct Durable {
    part: Arc<Partition>,
    stream_id: u32,
    partition: u32,
    base_offset: u64,
    count: u32,
    trailer: u8,
    producer: Option<producers::ProducerBatch>,
    cached: Bytes,
}

struct Stream {
    meta: StreamMeta,
    partitions: Vec<Arc<Partition>>,
}

pub struct Log {
    data_dir: PathBuf,
    wal: Arc<Wal>,
    cache: Arc<BatchCache>,
    streams: RwLock<HashMap<String, Arc<Stream>>>,
    /// Views by name (mirrors the snapshot's, changed under `admin`).
    views: RwLock<views::Views>,
    /// Serializes metadata changes and holds the current snapshot.
    admin: tokio::sync::Mutex<Snapshot>,
    /// Pipelines' durable input positions.
    progress: Arc<progress::ProgressMap>,
    /// Idempotent producers' last batches per partition.
    producers: Arc<producers::ProducerTable>,
    /// Every data entry below this LSN has run its completion (is indexed).
    indexed_lsn: Arc<AtomicU64>,
    /// Where offsets no longer in the WAL are read from.
    cold: OnceLock<Arc<dyn ColdStore>>,
    /// Partitions with new durable batches, for the uploader.
    touched: Arc<tiering::Touched>,
    opts: Options,
}

impl Log {
    /// Recovers the log in `data_dir`. Blocking (reads the whole WAL); an
    /// object-store WAL needs a Tokio runtime (call from a blocking task).
    /// The steps are in [`recovery`].
    pub fn open(data_dir: &Path, opts: Options) -> Result<Log, LogError> {
        let started = std::time::Instant::now();
        let prepared = recovery::prepare_wal(&opts)?;
        let (base, had_snapshot) = recovery::choose_snapshot(data_dir, prepared.as_ref())?;
        let mut replay = recovery::Replay::new(base);
        let wal_dir = data_dir.join("wal");
        let (wal, recovered) = match (prepared, &opts.wal_backend) {
            (Some(p), WalBackend::Object { opts: obj, .. }) => recovery::runtime()?.block_on(Wal::open_object(
                p,
                &wal_dir,
                opts.wal.clone(),
                obj.clone(),
                &mut |e| replay.visit(e),
            ))?,
            _ => Wal::open(&wal_dir, opts.wal.clone(), &mut |e| replay.visit(e))?,
        };
        let producers = Arc::new(replay.take_producers());
        producers.set_expiry(opts.producer_expiry);
        let (snap, streams) = replay.finish(data_dir, had_snapshot, recovered.next_lsn)?;
        ::metrics::gauge!(crate::metrics::WAL_RECOVERY_SECONDS).set(started.elapsed().as_secs_f64());
        ::metrics::gauge!(crate::metrics::WAL_RECOVERED_ENTRIES).set(recovered.entries as f64);
        tracing::info!(
            entries = recovered.entries,
            next_lsn = recovered.next_lsn,
            trim_lsn = recovered.trim_lsn,
            streams = snap.streams.len(),
            seconds = started.elapsed().as_secs_f64(),
            "log recovered"
        );
        let progress = Arc::new(progress::ProgressMap::from_snapshot(&snap));
        Ok(Log {
            indexed_lsn: Arc::new(AtomicU64::new(recovered.next_lsn)),
            cold: OnceLock::new(),
            touched: Arc::default(),
            progress,
            producers,
            data_dir: data_dir.to_path_buf(),
            wal: Arc::new(wal),
            cache: Arc::new(BatchCache::new(opts.cache_bytes)),
            streams: RwLock::new(streams),
            views: RwLock::new(views::from_snapshot(&snap)),
            admin: tokio::sync::Mutex::new(snap),
            opts,
        })
    }

    pub async fn create_stream(&self, name: &str, partitions: u32) -> Result<StreamInfo, LogError> {
        self.create_stream_with(name, partitions, meta::StreamConfig::default())
            .await
    }

    /// Creates a stream with retention and compaction settings (validated
    /// by the caller: the log does not know plugins).
    pub async fn create_stream_with(
        &self,
        name: &str,
        partitions: u32,
        config: meta::StreamConfig,
    ) -> Result<StreamInfo, LogError> {
        self.create_stream_as(name, partitions, config, now_ms()).await
    }

    /// Creates a stream with a given creation time: a replicated stream has
    /// the same name and creation time on every node (its identity there).
    pub async fn create_stream_as(
        &self,
        name: &str,
        partitions: u32,
        config: meta::StreamConfig,
        created_ms: u64,
    ) -> Result<StreamInfo, LogError> {
        meta::validate_name(name)?;
        if partitions == 0 || partitions > self.opts.max_partitions {
            return Err(LogError::InvalidPartitions {
                count: partitions,
                max: self.opts.max_partitions,
            });
        }
        if let Some(r) = &config.replication
            && (r.factor < 1 || r.assignment.len() != partitions as usize)
        {
            return Err(LogError::InvalidBatch(format!(
                "a replication of factor {} needs an assignment for each of {partitions} partitions",
                r.factor
            )));
        }
        let mut snap = self.admin.lock().await;
        if self.read_streams().contains_key(name) {
            return Err(LogError::StreamExists { name: name.into() });
        }
        if snap.views.contains_key(name) {
            return Err(LogError::ViewExists { name: name.into() });
        }
        if snap.streams.len() >= self.opts.max_streams as usize {
            return Err(LogError::NodeFull {
                what: format!("{} streams, the most `max_streams` allows", snap.streams.len()),
            });
        }
        let total: u64 = snap.streams.values().map(|s| u64::from(s.partitions)).sum();
        if total.saturating_add(u64::from(partitions)) > self.opts.max_total_partitions {
            return Err(LogError::NodeFull {
                what: format!(
                    "{total} partitions; {partitions} more would pass `max_total_partitions` ({})",
                    self.opts.max_total_partitions
                ),
            });
        }
        let m = StreamMeta {
            id: snap.next_stream_id,
            name: name.into(),
            partitions,
            created_ms,
            retention: config.retention,
            compaction: config.compaction,
            replication: config.replication,
            max_message_bytes: config.max_message_bytes,
            settings_stamp: meta::SettingsStamp::default(),
        };
        let op = ControlOp::CreateStream(m.clone());
        self.apply_control(&mut snap, &op).await?;
        let parts = new_partitions(partitions);
        for (p, l) in parts.iter().zip(snap.leadership.get(&m.id).into_iter().flatten()) {
            p.set_replica(l.clone());
        }
        let stream = Arc::new(Stream {
            meta: m,
            partitions: parts,
        });
        let info = describe(&stream);
        let id = stream.meta.id;
        self.write_streams().insert(name.into(), stream);
        // The uploader learns the new partitions' tiered range (and
        // claims them for retention) on its next round.
        for p in 0..partitions {
            self.touched.insert((id, p));
        }
        Ok(info)
    }

    pub async fn delete_stream(&self, name: &str) -> Result<(), LogError> {
        let mut snap = self.admin.lock().await;
        let stream = self.stream(name)?;
        let views = self.views_of(name);
        if !views.is_empty() {
            return Err(LogError::StreamHasViews {
                name: name.into(),
                views,
            });
        }
        self.apply_control(&mut snap, &ControlOp::DeleteStream { id: stream.meta.id })
            .await?;
        self.write_streams().remove(name);
        // Its series go with it (a new stream of that name starts at zero).
        crate::metrics::forget_stream(name);
        self.cache.remove_stream(stream.meta.id);
        Ok(())
    }

    /// Makes a control entry durable, applies it and stores the snapshot.
    async fn apply_control(&self, snap: &mut Snapshot, op: &ControlOp) -> Result<(), LogError> {
        let payload = serde_json::to_vec(op).map_err(|e| LogError::InvalidBatch(e.to_string()))?;
        let meta = EntryMeta {
            kind: EntryKind::Control,
            stream: 0,
            partition: 0,
            base_offset: 0,
            count: 0,
        };
        let appended = self.wal.append(meta, Bytes::from(payload)).await?;
        snap.apply(appended.lsn, op);
        // Progress is frequent and replayed from the WAL on recovery anyway;
        // the next snapshot written for another change includes it. (A WAL
        // trim must store the snapshot first; see docs/FORMATS.md.)
        if matches!(op, ControlOp::PipelineProgress { .. }) {
            return Ok(());
        }
        meta::store_snapshot(&self.data_dir, snap)
    }

    /// The names of every stream, unsorted (no partition is looked at).
    pub fn stream_names(&self) -> Vec<String> {
        self.read_streams().keys().cloned().collect()
    }

    pub fn list_streams(&self) -> Vec<StreamInfo> {
        let mut v: Vec<StreamInfo> = self.read_streams().values().map(|s| describe(s)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn describe_stream(&self, name: &str) -> Result<StreamInfo, LogError> {
        let s = self.stream(name)?;
        Ok(describe(&s))
    }

    /// When stream `name` was created (which names this incarnation of it),
    /// without describing its partitions.
    pub fn stream_created_ms(&self, name: &str) -> Option<u64> {
        self.read_streams().get(name).map(|s| s.meta.created_ms)
    }

    /// Partition `partition` of stream `name`: its offsets, the stream's id
    /// and whether it is compacted (one partition's lock, not every one's).
    pub fn describe_partition(&self, name: &str, partition: u32) -> Result<PartitionInfo, LogError> {
        let s = self.stream(name)?;
        Ok(PartitionInfo {
            stream_id: s.meta.id,
            range: partition_of(&s, partition)?.range(),
            compacted: s.meta.compaction.is_some(),
            max_message_bytes: s.meta.max_message_bytes,
        })
    }

    /// Drains queued appends, syncs the WAL and stops its writer.
    pub async fn shutdown(&self) {
        self.wal.shutdown().await;
    }

    /// Waits until `partition` holds records at or after `offset` (at once
    /// if it does); the caller bounds the wait.
    pub async fn wait_for_records(&self, stream: &str, partition: u32, offset: u64) -> Result<(), LogError> {
        let s = self.stream(stream)?;
        let part = partition_of(&s, partition)?;
        part.wait_past(offset).await;
        Ok(())
    }

    /// A future that resolves once `partition` holds records at or after
    /// `offset` (at once if it does), owning what it waits on: many of them
    /// can wait together without holding the log.
    pub fn records_waiter(
        &self,
        stream: &str,
        partition: u32,
        offset: u64,
    ) -> Result<impl std::future::Future<Output = ()> + Send + 'static, LogError> {
        let part = partition_of(&*self.stream(stream)?, partition)?;
        Ok(async move { part.wait_past(offset).await })
    }

    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// The stream named `name`. A view's name is refused here, so nothing
    /// on the record path can read a view's input unfiltered or write to it.
    fn stream(&self, name: &str) -> Result<Arc<Stream>, LogError> {
        if let Some(s) = self.read_streams().get(name) {
            return Ok(s.clone());
        }
        match self.view(name) {
            Some(v) => Err(LogError::IsView {
                name: name.into(),
                input: v.input.clone(),
            }),
            None => Err(LogError::StreamNotFound { name: name.into() }),
        }
    }

    fn read_streams(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_streams(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn new_partitions(n: u32) -> Vec<Arc<Partition>> {
    (0..n).map(|_| Arc::new(Partition::default())).collect()
}

/// Adds empty partitions to `ps` until it has `n`.
fn grow(ps: &mut Vec<Arc<Partition>>, n: u32) {
    while ps.len() < n as usize {
        ps.push(Arc::new(Partition::default()));
    }
}

fn describe(s: &Stream) -> StreamInfo {
    StreamInfo {
        name: s.meta.name.clone(),
        id: s.meta.id,
        created_ms: s.meta.created_ms,
        partitions: s.partitions.iter().map(|p| p.range()).collect(),
        retention: s.meta.retention,
        compaction: s.meta.compaction.clone(),
        replication: s.meta.replication.clone(),
        max_message_bytes: s.meta.max_message_bytes,
    }
}

fn partition_of(s: &Stream, partition: u32) -> Result<Arc<Partition>, LogError> {
    s.partitions
        .get(partition as usize)
        .cloned()
        .ok_or_else(|| LogError::PartitionNotFound {
            stream: s.meta.name.clone(),
            partition,
            partitions: s.meta.partitions,
        })
}
