//! Settings of a Sluice node: what a TOML config file, environment variables
//! and command-line flags set. Human units (`"512MiB"`, `"30s"`) are accepted.
//! Components (an object store handle, say) are passed to `Host` directly
//! (`Host::open_with_store`), never put here. [`Settings::validate`] rejects
//! values the node cannot run with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::wal::format::MAX_PAYLOAD_LEN;

#[path = "config_cluster.rs"]
mod cluster;
pub use cluster::{ClusterSettings, split_host_port};
#[path = "config_groups.rs"]
mod groups;
pub use groups::GroupSettings;
#[path = "config_http.rs"]
mod http_limits;
pub use http_limits::HttpSettings;
#[path = "config_plugins.rs"]
mod plugin_limits;
pub use plugin_limits::PluginSettings;
#[path = "config_tls.rs"]
mod tls_files;
pub use tls_files::{ClientAuth, TlsSettings};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the WAL and metadata live. Put it on the disk you want durability from.
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// When set, every HTTP request but `/health` and `/openapi.json` needs `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Largest HTTP request body. Larger bodies are refused with 413 before parsing.
    pub max_request_bytes: ByteSize,
    /// Largest encoded batch in one append (one WAL entry). Bigger batches
    /// amortize more per record but hold more memory per request.
    pub max_batch_bytes: ByteSize,
    /// WAL segment size: larger segments mean fewer files, coarser trimming.
    pub segment_bytes: ByteSize,
    /// Payload bytes one group commit gathers before it syncs: larger groups
    /// give more throughput per fsync, smaller ones bound the latency of the
    /// first append in the group.
    pub max_group_bytes: ByteSize,
    /// Trimmed WAL segments kept on disk and reused as later segments
    /// (their blocks are written, so syncs into them commit no metadata and
    /// no zeros are written ahead); each holds up to `segment_bytes` of
    /// disk. Zero deletes every trimmed segment.
    pub wal_spare_segments: usize,
    /// Appends waiting for the WAL writer before producers are slowed down.
    pub queue_depth: usize,
    /// Payload bytes waiting for the WAL writer (queued or being made
    /// durable) before producers are slowed down.
    pub wal_queue_bytes: ByteSize,
    /// Request bytes held at once while they are read and decoded, over
    /// both listeners: HTTP produce bodies (by `Content-Length`, or
    /// `max_request_bytes` without one) and Kafka frames over 64 KiB. More
    /// wait before they are read.
    pub max_in_flight_bytes: ByteSize,
    /// Memory for recent batches served to tailing readers without disk reads.
    pub cache_bytes: ByteSize,
    /// Most partitions a stream may have.
    pub max_partitions: u32,
    /// Most streams on the node (its own internal streams included).
    pub max_streams: u32,
    /// Most partitions over all streams of the node.
    pub max_total_partitions: u64,
    /// Upper bound on a stream's `compaction_memory_bytes` (one compaction
    /// run's memory); a stream asking for more is refused.
    pub max_compaction_memory_bytes: ByteSize,
    /// Upper bound on `max_records` of one read.
    pub max_read_records: usize,
    /// Upper bound on `max_bytes` of one read.
    pub max_read_bytes: ByteSize,
    /// Linear memory one plugin instance may use; a plugin that needs more
    /// fails its batch with `plugin_memory_limit`.
    pub plugin_memory_bytes: ByteSize,
    /// Time one plugin call (init, or one batch) may run before it is stopped.
    #[serde(with = "humantime_serde")]
    pub plugin_call_timeout: Duration,
    /// How long a graceful shutdown waits for in-flight HTTP requests.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Where tiered data goes: `s3://bucket/prefix` (credentials and
    /// endpoint from the usual `AWS_*` variables), `file:///abs/path`, or
    /// `memory://` (tests). Unset: a file store in `<data_dir>/objects`.
    pub object_store: Option<String>,
    /// Largest segment object; a backlog is uploaded as a series of these.
    pub upload_chunk_bytes: ByteSize,
    /// Multipart part size (at least 5 MiB, the S3 minimum).
    pub upload_part_bytes: ByteSize,
    /// Untiered bytes in a partition that start an upload at once.
    pub upload_min_bytes: ByteSize,
    /// Less data than `upload_min_bytes` is uploaded once it waited this long.
    #[serde(with = "humantime_serde")]
    pub upload_interval: Duration,
    /// Upload bandwidth per second; 0 for no cap.
    pub upload_rate: ByteSize,
    /// Time one object store call may take before it is retried.
    #[serde(with = "humantime_serde")]
    pub remote_timeout: Duration,
    /// Retries of a failed object store call (then the work is retried later).
    pub remote_retries: u32,
    /// Memory for batches read back from the object store.
    pub cold_cache_bytes: ByteSize,
    /// How long dropped or replaced objects stay before they are deleted.
    #[serde(with = "humantime_serde")]
    pub gc_grace: Duration,
    /// Replication across nodes (`[cluster]`); unset: a single node.
    pub cluster: Option<ClusterSettings>,
    /// Where the WAL lives: `local` (segment files in the data dir) or
    /// `object` (objects under `wal/` in `object_store`: every acknowledged
    /// record survives the loss of the data dir).
    pub wal: WalKind,
    /// Object WAL: an object is uploaded this long after its first append
    /// (the floor of acknowledgement latency)...
    #[serde(with = "humantime_serde")]
    pub wal_object_interval: Duration,
    /// ...or once it holds this many bytes, whichever comes first.
    pub wal_object_max_bytes: ByteSize,
    /// Object WAL: objects uploading at once before appends wait.
    pub wal_objects_in_flight: usize,
    /// Address of the Kafka protocol listener; `"off"` turns it off.
    #[serde(with = "listen_or_off")]
    pub kafka_listen: Option<SocketAddr>,
    /// `host:port` Kafka clients are told to connect to (Metadata). Unset:
    /// the address the client reached this node at.
    pub kafka_advertised: Option<String>,
    /// Largest Kafka request frame; a bigger one closes its connection
    /// (the broker's `socket.request.max.bytes`).
    pub kafka_max_frame_bytes: ByteSize,
    /// A Kafka connection with no request for this long is closed.
    #[serde(with = "humantime_serde")]
    pub kafka_idle_timeout: Duration,
    /// Open Kafka connections; more wait in the accept queue.
    pub kafka_max_connections: usize,
    /// Whether Metadata and Produce for an unknown topic create it (with
    /// `kafka_default_partitions`).
    pub kafka_auto_create_topics: bool,
    /// Partitions of a topic created without a count (CreateTopics with -1,
    /// or auto-creation).
    pub kafka_default_partitions: u32,
    /// How long an idempotent producer's state (its last batches on a
    /// partition, to recognise retries) is kept after its last write there
    /// (Kafka's `producer.id.expiration.ms`).
    #[serde(with = "humantime_serde")]
    pub kafka_producer_expiry: Duration,
    /// Bytes of Kafka record batches kept ready to send to consumers (the
    /// fetch cache); 0 turns it off.
    pub kafka_fetch_cache_bytes: ByteSize,
    /// The most record batch bytes one Fetch answer carries, whatever the
    /// client asks (Kafka's broker `fetch.max.bytes`): with the connection
    /// cap, it bounds what answers being built hold in memory.
    pub kafka_fetch_max_bytes: ByteSize,
    /// Consumer groups (`[groups]`).
    pub groups: GroupSettings,
    /// HTTP connection and request limits (`[http]`).
    pub http: HttpSettings,
    /// Plugin upload, version and pipeline limits (`[plugins]`).
    pub plugins: PluginSettings,
    /// TLS on both listeners and between peers (`[tls]`; off by default).
    pub tls: TlsSettings,
}

/// `kafka_listen` in TOML: an address, or `"off"`.
mod listen_or_off {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => s.collect_str(a),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_listen_or_off(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses `"off"` (no listener) or a socket address.
pub fn parse_listen_or_off(text: &str) -> Result<Option<SocketAddr>, String> {
    match text.trim() {
        "off" => Ok(None),
        t => t
            .parse()
            .map(Some)
            .map_err(|e| format!("`{t}` is neither `off` nor an address like 127.0.0.1:9092 ({e})")),
    }
}

/// The WAL backend a node runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalKind {
    #[default]
    Local,
    Object,
}

impl Settings {
    /// The cluster settings when the node has peers; a node alone, or a
    /// cluster of one node, acts alone (its streams are its own).
    pub fn cluster_with_peers(&self) -> Option<&ClusterSettings> {
        self.cluster.as_ref().filter(|c| c.nodes.len() > 1)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("./sluice-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth_token: None,
            max_request_bytes: ByteSize::mib(16),
            max_batch_bytes: ByteSize::mib(64),
            segment_bytes: ByteSize::mib(128),
            max_group_bytes: ByteSize::mib(16),
            wal_spare_segments: 4,
            queue_depth: 4096,
            wal_queue_bytes: ByteSize::gib(1),
            max_in_flight_bytes: ByteSize::mib(256),
            cache_bytes: ByteSize::mib(64),
            max_partitions: 1024,
            max_streams: 10_000,
            max_total_partitions: 100_000,
            max_compaction_memory_bytes: ByteSize::gib(1),
            max_read_records: 10_000,
            max_read_bytes: ByteSize::mib(64),
            plugin_memory_bytes: ByteSize::mib(64),
            plugin_call_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            object_store: None,
            upload_chunk_bytes: ByteSize::mib(512),
            upload_part_bytes: ByteSize::mib(8),
            upload_min_bytes: ByteSize::mib(16),
            upload_interval: Duration::from_secs(30),
            upload_rate: ByteSize::b(0),
            remote_timeout: Duration::from_secs(30),
            remote_retries: 3,
            cold_cache_bytes: ByteSize::mib(64),
            gc_grace: Duration::from_secs(600),
            cluster: None,
            wal: WalKind::Local,
            wal_object_interval: Duration::from_millis(250),
            wal_object_max_bytes: ByteSize::mib(8),
            wal_objects_in_flight: 4,
            kafka_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9092))),
            kafka_advertised: None,
            kafka_max_frame_bytes: ByteSize::mib(100),
            kafka_idle_timeout: Duration::from_secs(600),
            kafka_max_connections: 10_000,
            kafka_auto_create_topics: false,
            kafka_default_partitions: 1,
            kafka_producer_expiry: Duration::from_secs(24 * 3600),
            kafka_fetch_cache_bytes: ByteSize::mib(256),
            kafka_fetch_max_bytes: ByteSize::mib(55),
            groups: GroupSettings::default(),
            http: HttpSettings::default(),
            plugins: PluginSettings::default(),
            tls: TlsSettings::default(),
        }
    }
}

impl Settings {
    /// Parses a TOML config file's content.
    pub fn from_toml(text: &str) -> Result<Settings, Error> {
        toml::from_str(text).map_err(|e| Error::invalid(format!("bad config file: {e}")))
    }

    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::invalid(format!("bad setting: {m}")));
        if self.max_batch_bytes.as_u64() == 0 || self.max_batch_bytes.as_u64() > MAX_PAYLOAD_LEN as u64 {
            return bad(format!(
                "max_batch_bytes must be between 1 B and {}",
                ByteSize(MAX_PAYLOAD_LEN as u64)
            ));
        }
        if self.segment_bytes.as_u64() < 64 * 1024 {
            return bad("segment_bytes must be at least 64 KiB".into());
        }
        if self.max_request_bytes.as_u64() == 0 || self.max_request_bytes.as_u64() > usize::MAX as u64 {
            return bad("max_request_bytes must be positive".into());
        }
        if self.queue_depth == 0
            || self.max_partitions == 0
            || self.max_read_records == 0
            || self.max_streams == 0
            || self.max_total_partitions == 0
        {
            return bad(
                "queue_depth, max_partitions, max_streams, max_total_partitions and max_read_records must be positive"
                    .into(),
            );
        }
        if self.wal_queue_bytes.as_u64() < 1024 * 1024 || self.max_in_flight_bytes.as_u64() < 1024 * 1024 {
            return bad("wal_queue_bytes and max_in_flight_bytes must be at least 1 MiB".into());
        }
        if self.max_compaction_memory_bytes.as_u64() < crate::log::meta::Compaction::MIN_MEMORY_BYTES {
            return bad("max_compaction_memory_bytes must be at least 16 MiB".into());
        }
        if self.max_read_bytes.as_u64() == 0 {
            return bad("max_read_bytes must be positive".into());
        }
        if self.plugin_memory_bytes.as_u64() < 1024 * 1024 || self.plugin_memory_bytes.as_u64() > 4 * 1024 * 1024 * 1024
        {
            return bad("plugin_memory_bytes must be between 1 MiB and 4 GiB".into());
        }
        if self.plugin_call_timeout < Duration::from_millis(10) {
            return bad("plugin_call_timeout must be at least 10ms".into());
        }
        if self.upload_chunk_bytes.as_u64() < 1024 {
            return bad("upload_chunk_bytes must be at least 1 KiB".into());
        }
        if self.upload_part_bytes.as_u64() < crate::objstore::S3_MIN_PART_BYTES
            || self.upload_part_bytes.as_u64() > 5 * 1024 * 1024 * 1024
        {
            return bad("upload_part_bytes must be between 5 MiB and 5 GiB".into());
        }
        if self.remote_timeout < Duration::from_millis(10) {
            return bad("remote_timeout must be at least 10ms".into());
        }
        if self.wal_object_interval < Duration::from_millis(1) || self.wal_object_interval > Duration::from_secs(60) {
            return bad("wal_object_interval must be between 1ms and 60s".into());
        }
        if self.wal_object_max_bytes.as_u64() < 4096 || self.wal_object_max_bytes.as_u64() > 1024 * 1024 * 1024 {
            return bad("wal_object_max_bytes must be between 4 KiB and 1 GiB".into());
        }
        if self.wal_objects_in_flight == 0 || self.wal_objects_in_flight > 64 {
            return bad("wal_objects_in_flight must be between 1 and 64".into());
        }
        if self.auth_token.as_deref() == Some("") {
            return bad("auth_token must not be empty (omit it to disable auth)".into());
        }
        if self.kafka_max_frame_bytes.as_u64() < 1024 || self.kafka_max_frame_bytes.as_u64() > i32::MAX as u64 {
            return bad("kafka_max_frame_bytes must be between 1 KiB and 2 GiB".into());
        }
        if self.kafka_idle_timeout < Duration::from_millis(100) {
            return bad("kafka_idle_timeout must be at least 100ms".into());
        }
        if self.kafka_producer_expiry < Duration::from_secs(1) {
            return bad("kafka_producer_expiry must be at least 1s".into());
        }
        if let Err(m) = self.groups.validate() {
            return bad(m);
        }
        if let Err(m) = self.http.validate() {
            return bad(m);
        }
        if let Err(m) = self.plugins.validate() {
            return bad(m);
        }
        if let Err(m) = self.tls.validate() {
            return bad(m);
        }
        if self.kafka_fetch_max_bytes.as_u64() < 1024 || self.kafka_fetch_max_bytes.as_u64() > i32::MAX as u64 {
            return bad("kafka_fetch_max_bytes must be between 1 KiB and 2 GiB".into());
        }
        if self.kafka_max_connections == 0 {
            return bad("kafka_max_connections must be positive".into());
        }
        if self.kafka_default_partitions == 0 || self.kafka_default_partitions > self.max_partitions {
            return bad("kafka_default_partitions must be between 1 and max_partitions".into());
        }
        if let Some(a) = &self.kafka_advertised {
            crate::config::split_host_port(a)
                .map_err(|m| Error::invalid(format!("bad setting: kafka_advertised: {m}")))?;
        }
        if let Some(c) = &self.cluster {
            match c.secret.as_deref() {
                None | Some("") => {
                    return bad(
                        "cluster.secret is required: nodes prove their id to each other with it \
                                (the same value on every node, different from auth_token)"
                            .into(),
                    );
                }
                Some(s) if self.auth_token.as_deref() == Some(s) => {
                    return bad("cluster.secret must differ from auth_token (a client must not act as a node)".into());
                }
                Some(_) => {}
            }
            c.peers("http")?;
            c.kafka_peers()?;
            if c.replication_max_bytes.as_u64() < 1024 || c.replication_max_bytes.as_u64() > 1024 * 1024 * 1024 {
                return bad("cluster.replication_max_bytes must be between 1 KiB and 1 GiB".into());
            }
            if c.fetch_failures_max == 0 || c.min_insync_replicas == 0 {
                return bad("cluster.fetch_failures_max and cluster.min_insync_replicas must be positive".into());
            }
            if let Some(f) = c.default_replication_factor
                && (f < 1 || f as usize > c.nodes.len())
            {
                return bad(format!(
                    "cluster.default_replication_factor {f} must be between 1 and the number of nodes ({})",
                    c.nodes.len()
                ));
            }
            if c.peer_timeout < Duration::from_millis(10) || c.acks_timeout < Duration::from_millis(10) {
                return bad("cluster.peer_timeout and cluster.acks_timeout must be at least 10ms".into());
            }
            if c.settings_sync < Duration::from_millis(100) {
                return bad("cluster.settings_sync must be at least 100ms".into());
            }
        }
        Ok(())
    }

    pub(crate) fn plugin_limits(&self) -> crate::plugin::Limits {
        crate::plugin::Limits {
            memory_bytes: usize::try_from(self.plugin_memory_bytes.as_u64()).unwrap_or(usize::MAX),
            call_timeout: self.plugin_call_timeout,
        }
    }

    pub(crate) fn registry_caps(&self) -> crate::plugin::registry::Caps {
        crate::plugin::registry::Caps {
            max_functions: self.plugins.max_functions,
            max_versions: self.plugins.max_versions,
            max_compiled: self.plugins.max_compiled,
        }
    }

    pub(crate) fn tier_options(&self) -> crate::tier::TierOptions {
        let defaults = crate::tier::TierOptions::default();
        crate::tier::TierOptions {
            upload_chunk_bytes: self.upload_chunk_bytes.as_u64(),
            upload_min_bytes: self.upload_min_bytes.as_u64(),
            upload_interval: self.upload_interval,
            upload_rate: self.upload_rate.as_u64(),
            cold_cache_bytes: usize::try_from(self.cold_cache_bytes.as_u64()).unwrap_or(usize::MAX),
            gc_grace: self.gc_grace,
            max_compaction_memory_bytes: self.max_compaction_memory_bytes.as_u64(),
            remote: crate::tier::RemoteOptions {
                timeout: self.remote_timeout,
                retries: self.remote_retries,
                part_bytes: self.upload_part_bytes.as_u64(),
                ..defaults.remote.clone()
            },
            ..defaults
        }
    }

    pub(crate) fn wal_object_options(&self) -> crate::wal::object::ObjectOptions {
        crate::wal::object::ObjectOptions {
            interval: self.wal_object_interval,
            max_bytes: usize::try_from(self.wal_object_max_bytes.as_u64()).unwrap_or(usize::MAX),
            in_flight: self.wal_objects_in_flight,
        }
    }

    /// The log's options; the WAL backend is set by the caller, which owns
    /// the object store handle.
    pub(crate) fn log_options(&self) -> crate::log::Options {
        let to_usize = |b: ByteSize| usize::try_from(b.as_u64()).unwrap_or(usize::MAX);
        crate::log::Options {
            wal: crate::wal::Options {
                segment_bytes: self.segment_bytes.as_u64(),
                max_group_bytes: to_usize(self.max_group_bytes),
                spare_segments: self.wal_spare_segments,
                queue_depth: self.queue_depth,
                queue_bytes: to_usize(self.wal_queue_bytes),
                max_entry_bytes: to_usize(self.max_batch_bytes),
                ..crate::wal::Options::default()
            },
            wal_backend: crate::log::WalBackend::Local,
            cache_bytes: to_usize(self.cache_bytes),
            max_partitions: self.max_partitions,
            max_streams: self.max_streams,
            max_total_partitions: self.max_total_partitions,
            node_id: self.cluster.as_ref().map(|c| c.node_id),
            producer_expiry: self.kafka_producer_expiry,
        }
    }
}

#[cfg(test)]
#[path = "tests_config.rs"]
mod tests;
