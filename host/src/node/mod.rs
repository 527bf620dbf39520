//! [`Host`]: the embedding API. A Rust program opens a host on a data
//! directory and creates streams, appends and reads without HTTP; the HTTP
//! server is a thin layer over the same calls.
//!
//! Invariant: every successful `append` is durable (fsync'd) when it returns.

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::config::Settings;
use crate::error::{Error, ErrorKind};
use crate::log::Log;
use crate::pipeline::Pipelines;
use crate::plugin::{Registry, Runtime};
use crate::task::blocking;
use crate::tier::{Remote, Tier};

// What the faces (HTTP, CLI) use of the subsystems, re-exported here: a
// face depends on this facade alone.
pub use crate::cluster::leader::RawReadRequest;
pub use crate::cluster::moves::{LeaderChange, PartitionRef, PartitionState};
pub use crate::cluster::wire::FetchRequest;
pub use crate::cluster::{ElectionKind, ReplicationStatus};
pub use crate::log::meta::{
    Compaction, PipelineMeta, Replication, Retention, RetentionChange, SettingsChange, StreamConfig, StreamSettings,
    TuningChange,
};
pub use crate::log::partition::Range as PartitionRange;
pub use crate::log::producers::{ActiveProducer, ProducerBatch};
pub use crate::log::{Appended, OffsetRecord, PartitionInfo, ReadBatch, Record, RecordRun, RunRead, StreamInfo};
pub use crate::pipeline::Status as PipelineStatus;
pub use crate::plugin::{PluginInfo, VersionInfo};
pub use crate::tier::TierStatus;
pub use crate::tier::compact::CompactionStatus;
pub use crate::tls::client_certificate;
pub use in_flight::InFlight;
pub use storage::{DiskSpace, PartitionBytes};
pub use streams::PartitionStatus;

/// Running plugins without a node (`sluice plugin test`): the same runtime,
/// limits and world detection a node uses.
pub mod offline {
    pub use crate::plugin::{Compiled, Decision, Limits, PluginError, Runtime, load_any};
}

mod cluster;
mod committed;
mod committed_store;
mod consumer_groups;
mod coordinators;
mod groups;
mod in_flight;
mod metrics;
mod offsets;
mod pipelines;
mod plugins;
mod readiness;
mod settings;
mod settings_sync;
mod storage;
mod streams;
#[cfg(test)]
mod tests_derived;
#[cfg(test)]
mod tests_groups;
#[cfg(test)]
mod tests_views;
mod time_index;
mod tls_reload;
mod views;
mod waits;
pub use crate::groups::ASSIGNORS as CONSUMER_ASSIGNORS;
pub use crate::groups::{
    ConsumerGroupDescription, ConsumerGroupState, ConsumerHeartbeat, ConsumerHeartbeatAnswer,
    ConsumerMemberDescription, TopicMeta, Topics,
};
pub use cluster::{Acks, PendingAppend, StreamSpec};
pub use committed::{CommitRefused, CommittedOffset, OffsetCommit};
pub use groups::{GroupError, GroupOpError, GroupView, JoinRequest, ResetTo, SyncRequest};
pub use offsets::{TierOffsets, TimeOffset};
pub use readiness::Readiness;
pub use settings::{PartitionsSpec, SettingsSpec};
pub use settings_sync::{SyncAnswer, SyncAsk};
pub use views::{ViewInfo, ViewSpec};

/// How much one read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Most records returned (at least 1).
    pub max_records: usize,
    /// About this many record bytes; at least one record is returned if any
    /// is available, even a bigger one.
    pub max_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_records: 100,
            max_bytes: 1024 * 1024,
        }
    }
}

/// A running Sluice node. Cheap to clone; clones share the node.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    log: Arc<Log>,
    plugins: Arc<Registry>,
    pipelines: Arc<Pipelines>,
    tier: Arc<Tier>,
    /// Replication (`None` on a single node).
    cluster: Option<Arc<Cluster>>,
    /// The Prometheus recorder (`None`: the embedding application has its own).
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    upkeep: Option<tokio::task::JoinHandle<()>>,
    /// Set once shutdown starts: long-polling reads answer at once.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Per (stream id, partition): the sparse time index (derived, in memory).
    time_index: std::sync::Mutex<TimeIndexes>,
    /// Consumer groups' committed offsets.
    committed: committed::Committed,
    /// Consumer groups' membership.
    groups: Arc<crate::groups::Coordinator>,
    /// Views' idle plugin instances.
    view_instances: views::InstancePool,
    /// Plugin uploads compiling now (`[plugins] max_concurrent_compiles`).
    compile_slots: tokio::sync::Semaphore,
    /// `[tls]`, loaded at start and reloaded when its files change
    /// (`None`: plain TCP).
    tls: Option<Arc<crate::tls::LiveTls>>,
    /// The task that reloads `[tls]` files (`tls_reload.rs`).
    tls_reload: Option<tokio::task::JoinHandle<()>>,
    /// Request bytes being read and decoded (`max_in_flight_bytes`).
    in_flight: in_flight::Budget,
    /// The task that takes stream settings this node missed from the
    /// others (`settings_sync.rs`; none without peers).
    settings_sync: std::sync::OnceLock<tokio::task::JoinHandle<()>>,
}

type TimeIndexes = std::collections::HashMap<(u32, u32), Arc<tokio::sync::Mutex<time_index::TimeIndex>>>;

/// A transform plugin applied to what a read returns (nothing is stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadFilter {
    pub plugin: String,
    /// A specific version; the latest when `None`.
    pub version: Option<u32>,
    pub config: Vec<(String, String)>,
}

impl Host {
    /// Validates `settings`, recovers the data directory and starts the WAL
    /// and the tiering uploader (on the store `settings.object_store` names).
    pub async fn open(settings: Settings) -> Result<Host, Error> {
        let (store, prefix) = crate::objstore::open(settings.object_store.as_deref(), &settings.data_dir)?;
        Host::open_with_store(settings, store, prefix).await
    }

    /// Like [`Host::open`], on an object store the caller provides (for
    /// example one wrapped with fault injection), under key `prefix`.
    pub async fn open_with_store(
        settings: Settings,
        store: Arc<dyn object_store::ObjectStore>,
        prefix: object_store::path::Path,
    ) -> Result<Host, Error> {
        settings.validate()?;
        let tls = crate::tls::LiveTls::load(&settings.tls)?.map(Arc::new);
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                "io_error",
                format!("cannot create data dir `{}`: {e}", settings.data_dir.display()),
            )
        })?;
        // Installed first, so recovery's own series are recorded.
        let metrics = crate::metrics::handle();
        let (dir, mut opts) = (settings.data_dir.clone(), settings.log_options());
        let tier_opts = settings.tier_options();
        let remote = Remote::new(store, prefix, tier_opts.remote.clone());
        if settings.wal == crate::config::WalKind::Object {
            opts.wal_backend = crate::log::WalBackend::Object {
                remote: remote.clone(),
                opts: settings.wal_object_options(),
            };
            plugins::restore(&remote, &settings.data_dir).await?;
        }
        let runtime = Runtime::new(settings.plugin_limits())?;
        let caps = settings.registry_caps();
        let compiles = settings.plugins.max_concurrent_compiles;
        let in_flight_bytes = settings.max_in_flight_bytes.as_u64();
        let (log, plugins) = blocking(move || -> Result<(Log, Registry), Error> {
            let log = Log::open(&dir, opts)?;
            let plugins = Registry::open_with(&dir, runtime, caps)?;
            Ok((log, plugins))
        })
        .await??;
        let (log, plugins) = (Arc::new(log), Arc::new(plugins));
        let tier = Tier::new(log.clone(), remote, tier_opts);
        tier.set_plugins(plugins.clone());
        tier.start();
        let cluster = match &settings.cluster {
            Some(c) => {
                let max_batch = settings.max_batch_bytes.as_u64();
                let peer_tls = tls.as_ref().map(|t| t.current().client.clone());
                let cluster = Cluster::new(c.clone(), log.clone(), max_batch, &settings.data_dir, peer_tls)?;
                cluster.sync_leadership().await;
                cluster.start();
                Some(cluster)
            }
            None => None,
        };
        let pipelines = Arc::new(Pipelines::new(log.clone(), plugins.clone()));
        pipelines.start_all().await;
        let upkeep = metrics.clone().map(crate::metrics::spawn_upkeep);
        let groups = groups::coordinator(&settings.groups);
        let stopping = tokio::sync::watch::Sender::new(false);
        if let Some(t) = &tls {
            tls_reload::publish_expiries(&t.current());
        }
        let tls_reload = tls.clone().map(|t| {
            let every = settings.tls.reload_every();
            tls_reload::spawn(t, every, cluster.clone(), stopping.subscribe())
        });
        let host = Host {
            inner: Arc::new(Inner {
                settings,
                log,
                plugins,
                pipelines,
                tier,
                cluster,
                metrics,
                upkeep,
                stopping,
                time_index: std::sync::Mutex::default(),
                committed: committed::Committed::default(),
                groups,
                view_instances: views::InstancePool::default(),
                compile_slots: tokio::sync::Semaphore::new(compiles),
                tls,
                tls_reload,
                in_flight: in_flight::Budget::new(in_flight_bytes),
                settings_sync: std::sync::OnceLock::new(),
            }),
        };
        if let Some(c) = host.inner.settings.cluster_with_peers() {
            let task = settings_sync::spawn(
                Arc::downgrade(&host.inner),
                c.settings_sync,
                host.inner.stopping.subscribe(),
            );
            let _ = host.inner.settings_sync.set(task);
        }
        Ok(host)
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The stream log under this node (tests and tools).
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// Appends a batch to one partition; returns its offsets once durable
    /// (on a replicated partition: durable on this node, its leader; see
    /// [`Host::append_acks`] for `acks=all`).
    pub async fn append(&self, stream: &str, partition: u32, records: &[Record]) -> Result<Appended, Error> {
        committed::refuse_internal(stream, "write to")?;
        match self.inner.log.append(stream, partition, records).await {
            Ok(a) => Ok(a),
            Err(crate::log::LogError::NotLeader { leader, .. }) => Err(self.not_leader(stream, partition, leader)),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads from `offset` on. Reading at the partition's end returns no
    /// records; reading past it is an `offset_out_of_range` error. A view
    /// is read through its plugin (see [`Host::create_view`]).
    pub async fn read(
        &self,
        stream: &str,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> Result<ReadBatch, Error> {
        if let Some(view) = self.inner.log.view(stream) {
            return self.read_view(&view, partition, offset, limits).await;
        }
        let (max_records, max_bytes) = self.clamp(limits);
        Ok(self
            .inner
            .log
            .read(stream, partition, offset, max_records, max_bytes)
            .await?)
    }

    /// A read's limits within the node's (`max_read_records`, `max_read_bytes`).
    fn clamp(&self, limits: ReadLimits) -> (usize, usize) {
        let s = &self.inner.settings;
        let max_records = limits.max_records.clamp(1, s.max_read_records);
        let max_bytes = limits
            .max_bytes
            .min(usize::try_from(s.max_read_bytes.as_u64()).unwrap_or(usize::MAX));
        (max_records, max_bytes)
    }

    /// Reads like [`Host::read`] (same limits, same records) but returns
    /// runs of stored record bodies (`sluice_wire`'s record encoding), for a
    /// face that re-encodes records without building them first.
    pub async fn read_runs(
        &self,
        stream: &str,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
    ) -> Result<RunRead, Error> {
        let (max_records, max_bytes) = self.clamp(limits);
        Ok(self
            .inner
            .log
            .read_runs(stream, partition, offset, max_records, max_bytes)
            .await?)
    }

    /// Reads like [`Host::read`], then passes the records through a transform
    /// plugin. `next_offset` still follows the input, so a consumer can page
    /// on; output records carry the offset of the input record they came from.
    pub async fn read_filtered(
        &self,
        stream: &str,
        partition: u32,
        offset: u64,
        limits: ReadLimits,
        filter: ReadFilter,
    ) -> Result<ReadBatch, Error> {
        let mut batch = self.read(stream, partition, offset, limits).await?;
        let host = self.clone();
        let input = std::mem::take(&mut batch.records);
        batch.records = blocking(move || -> Result<Vec<OffsetRecord>, Error> {
            let plugin = host.inner.plugins.transform(&filter.plugin, filter.version)?;
            let mut instance = plugin.instantiate(&filter.config)?;
            Ok(instance.transform_with_offsets(&input)?)
        })
        .await??;
        Ok(batch)
    }

    /// Validates and stores a new version of plugin `name`.
    pub fn list_plugins(&self) -> Vec<PluginInfo> {
        self.inner.plugins.list()
    }

    pub fn describe_plugin(&self, name: &str) -> Result<PluginInfo, Error> {
        Ok(self.inner.plugins.get(name)?)
    }

    /// Resolves once the node starts stopping (see [`Host::begin_stopping`]).
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopping = self.inner.stopping.subscribe();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    }

    /// Marks the node as stopping: long-polling reads return at once.
    /// Faces call it when they begin to drain; [`Host::shutdown`] does too.
    pub fn begin_stopping(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Stops accepting appends, syncs what is queued, and stops the WAL.
    pub async fn shutdown(&self) {
        self.inner.stopping.send_replace(true);
        self.inner.groups.stop();
        if let Some(t) = &self.inner.upkeep {
            t.abort();
        }
        if let Some(t) = &self.inner.tls_reload {
            t.abort();
        }
        if let Some(t) = self.inner.settings_sync.get() {
            t.abort();
        }
        self.inner.pipelines.stop_all().await;
        if let Some(c) = &self.inner.cluster {
            c.stop().await;
        }
        self.inner.tier.stop().await;
        self.inner.log.shutdown().await;
    }
}
