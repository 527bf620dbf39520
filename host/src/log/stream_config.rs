//! What a stream is created with, and what of it may change later.
//!
//! [`StreamConfig`] is a stream's settings at creation and
//! [`StreamConfig::validate`] their one check, whoever asks (HTTP, Kafka,
//! the embedding API, a peer). [`StreamSettings`] is the part that may
//! change afterwards (retention, a replicated stream's own minimum in-sync
//! set, its own Kafka batch limit, a compacted stream's tuning); a
//! [`SettingsChange`] names what changes, and the log checks the result by
//! the same rule as at creation.
//! Invariants: a stream that is not replicated has no minimum in-sync set
//! of its own (its one replica is always in sync), and one that is not
//! compacted has no compaction tuning.

use serde::{Deserialize, Serialize};

/// How a stream's partitions are spread over a cluster's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Replication {
    /// Replicas per partition (at least 1: a stream of factor 1 lives on
    /// one node, and every node knows it and where it leads).
    pub factor: u32,
    /// Per partition: the replicas' node ids, the first leader first.
    pub assignment: Vec<Vec<u32>>,
    /// With fewer replicas in sync than this, `acks=all` writes are
    /// refused (Kafka's topic config `min.insync.replicas`); at most the
    /// factor. `None`: the node's `[cluster] min_insync_replicas`, capped
    /// at the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_insync_replicas: Option<u32>,
}

impl Replication {
    /// How many replicas must be in sync for an `acks=all` write: the
    /// stream's own minimum, else `node` (the node's `[cluster]
    /// min_insync_replicas`), never more than the replicas.
    pub fn required_in_sync(&self, node: u32) -> u32 {
        required_in_sync(self.min_insync_replicas, node, self.factor)
    }
}

/// The one rule for [`Replication::required_in_sync`], also applied to a
/// partition's actual replica list.
pub(crate) fn required_in_sync(own: Option<u32>, node: u32, replicas: u32) -> u32 {
    own.unwrap_or(node).min(replicas)
}

/// How a stream is compacted (see docs/design/0002-compaction.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Compaction {
    /// The compaction policy plugin and its pinned version (latest if `None`).
    pub plugin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<u32>,
    /// `[key, value]` pairs.
    #[serde(default)]
    #[schema(value_type = Vec<Vec<String>>)]
    pub config: Vec<(String, String)>,
    /// `compact,delete`: retention also applies; `compact` alone keeps the
    /// latest record per key forever.
    #[serde(default)]
    pub delete: bool,
    /// How long a tombstone stays after compaction reaches it.
    pub delete_retention_ms: u64,
    /// Segments younger than this are not compacted yet.
    pub min_compaction_lag_ms: u64,
    /// Dirty bytes / all bytes that trigger a run, in millionths (Eq-able).
    pub min_cleanable_dirty_ppm: u32,
    /// Memory bound of one run: its key map plus the run's read and write
    /// buffers (15 MiB, a reserve the compaction run sets aside).
    pub memory_bytes: u64,
}

impl Compaction {
    pub const DEFAULT_DELETE_RETENTION_MS: u64 = 24 * 3600 * 1000;
    pub const DEFAULT_DIRTY_PPM: u32 = 500_000;
    pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
    /// The I/O reserve plus a 1 MiB key map.
    pub const MIN_MEMORY_BYTES: u64 = 16 * 1024 * 1024;
    /// The built-in policy (no plugin): a record's key is its compaction
    /// key, a null value deletes the key (a tombstone; an empty one too
    /// unless [`Compaction::TOMBSTONE`] says `null`), and a record without
    /// a key is kept. Kafka's `cleanup.policy=compact`. Plugin names cannot
    /// contain `:`, so no plugin is ever mistaken for it.
    pub const RECORD_KEY: &'static str = "sluice:record-key";

    /// The built-in record-key policy with the default settings.
    pub fn by_record_key(delete: bool) -> Compaction {
        Compaction {
            plugin: Compaction::RECORD_KEY.into(),
            plugin_version: None,
            config: Vec::new(),
            delete,
            delete_retention_ms: Compaction::DEFAULT_DELETE_RETENTION_MS,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ppm: Compaction::DEFAULT_DIRTY_PPM,
            memory_bytes: Compaction::DEFAULT_MEMORY_BYTES,
        }
    }

    /// A `min_cleanable_dirty_ratio` in millionths, as kept; `None`
    /// outside 0 to 1 (NaN too).
    pub fn ratio_ppm(ratio: f64) -> Option<u32> {
        (0.0..=1.0).contains(&ratio).then(|| (ratio * 1e6).round() as u32)
    }

    /// Whether this is the built-in record-key policy.
    pub fn is_record_key(&self) -> bool {
        self.plugin == Compaction::RECORD_KEY
    }

    /// The built-in policy's one setting: which values delete their key,
    /// `null` (Kafka's rule) or `null_or_empty` (the default, so streams
    /// compacted before the setting existed keep their rule).
    pub const TOMBSTONE: &'static str = "tombstone";

    /// The built-in record-key policy as Kafka's `cleanup.policy=compact`
    /// means it: only a null value is a tombstone; an empty one is a value.
    pub fn kafka_record_key(delete: bool) -> Compaction {
        Compaction {
            config: vec![(Compaction::TOMBSTONE.into(), "null".into())],
            ..Compaction::by_record_key(delete)
        }
    }

    /// Whether the built-in policy deletes a key on an empty value too.
    pub fn empty_is_tombstone(&self) -> bool {
        !self
            .config
            .iter()
            .any(|(k, v)| k == Compaction::TOMBSTONE && v == "null")
    }
}

/// What a stream is created with besides its name and partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamConfig {
    pub retention: Retention,
    pub compaction: Option<Compaction>,
    /// Replicas per partition (1 or `None`: this node only).
    pub replication: Option<Replication>,
    /// Largest record batch a Kafka producer may send (`None`: the
    /// node's); the node checks it against its own limit.
    pub max_message_bytes: Option<u64>,
}

impl StreamConfig {
    /// The one check of a stream's settings, whoever asks for the stream
    /// (HTTP, the embedding API, a peer creating a replicated stream).
    /// Whether a compaction plugin exists and accepts its config is checked
    /// by the node, which has the plugins.
    pub fn validate(&self) -> Result<(), String> {
        let r = &self.retention;
        if r.ms == Some(0) || r.bytes == Some(0) {
            return Err("retention must be positive (omit it to keep everything)".into());
        }
        if let Some(c) = &self.compaction {
            if c.min_cleanable_dirty_ppm > 1_000_000 {
                return Err("min_cleanable_dirty_ratio must be between 0 and 1".into());
            }
            if c.memory_bytes < Compaction::MIN_MEMORY_BYTES {
                return Err(
                    "compaction_memory_bytes must be at least 16 MiB (15 MiB of I/O buffers and a key map)".into(),
                );
            }
            if !c.delete && (r.ms.is_some() || r.bytes.is_some()) {
                return Err("retention needs cleanup \"compact,delete\" on a compacted stream".into());
            }
            let known = |(k, v): &(String, String)| k == Compaction::TOMBSTONE && (v == "null" || v == "null_or_empty");
            if c.is_record_key() && !c.config.iter().all(known) {
                return Err(format!(
                    "the built-in record-key policy takes only `{}` = `null` or `null_or_empty`",
                    Compaction::TOMBSTONE
                ));
            }
        }
        if self.max_message_bytes == Some(0) {
            return Err("max_message_bytes must be at least 1".into());
        }
        if let Some(rep) = &self.replication {
            if rep.factor == 0 {
                return Err("replication_factor must be at least 1".into());
            }
            match rep.min_insync_replicas {
                Some(0) => return Err("min_insync_replicas must be at least 1".into()),
                Some(m) if m > rep.factor => {
                    return Err(format!(
                        "min_insync_replicas {m} is more than the {} replicas: every acks=all write would be refused",
                        rep.factor
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl From<Retention> for StreamConfig {
    fn from(retention: Retention) -> Self {
        StreamConfig {
            retention,
            ..StreamConfig::default()
        }
    }
}

/// How long tiered data is kept. Retention drops whole segments from the
/// object store; data still in the WAL only is never dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Retention {
    /// Drop segments written longer ago than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// Drop the oldest segments while a partition holds more than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// A change to a stream's retention: `None` leaves a limit as it is,
/// `Some(None)` removes it, `Some(Some(n))` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionChange {
    pub ms: Option<Option<u64>>,
    pub bytes: Option<Option<u64>>,
}

impl RetentionChange {
    /// Both limits replaced by `r`'s.
    pub fn replace_with(r: Retention) -> Self {
        RetentionChange {
            ms: Some(r.ms),
            bytes: Some(r.bytes),
        }
    }

    pub fn applied_to(&self, r: Retention) -> Retention {
        Retention {
            ms: self.ms.unwrap_or(r.ms),
            bytes: self.bytes.unwrap_or(r.bytes),
        }
    }
}

/// What may change about a stream after it was created, besides its
/// partition count: a settings-change control entry holds all of it as it
/// is afterwards, and nodes tell each other the whole of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamSettings {
    #[serde(default)]
    pub retention: Retention,
    /// A replicated stream's own minimum in-sync set (`None`: the node's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_insync_replicas: Option<u32>,
    /// The stream's own largest Kafka record batch (`None`: the node's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
    /// A compacted stream's tuning (`None` on a stream that is not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<CompactionTuning>,
}

impl StreamSettings {
    /// The settings of a stream with these parts (a stream's own minimum
    /// in-sync set lives in its replication, its tuning in its compaction).
    pub fn of(
        retention: Retention,
        replication: Option<&Replication>,
        max_message_bytes: Option<u64>,
        compaction: Option<&Compaction>,
    ) -> StreamSettings {
        StreamSettings {
            retention,
            min_insync_replicas: replication.and_then(|r| r.min_insync_replicas),
            max_message_bytes,
            compaction: compaction.map(CompactionTuning::of),
        }
    }
}

/// Which of a replicated stream's settings changes is the newest, so that
/// nodes told of two changes made at the same moment on two nodes all keep
/// the same one: a counter one above the highest the changing node held,
/// then that node's id. Unset (zero) on a stream whose settings never
/// changed through a stamped change (every stream that is not replicated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettingsStamp {
    pub version: u64,
    pub node: u32,
}

impl SettingsStamp {
    pub fn is_unset(&self) -> bool {
        *self == SettingsStamp::default()
    }

    /// The stamp of a change node `node` makes after this one (the counter
    /// saturates; two changes at `u64::MAX` are ordered by node id).
    pub fn next(self, node: u32) -> SettingsStamp {
        SettingsStamp {
            version: self.version.saturating_add(1),
            node,
        }
    }
}

/// How a compacted stream's runs are tuned (Kafka's topic configs of the
/// same names); its policy, `delete` and memory stay as created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompactionTuning {
    /// How long a tombstone stays after compaction reaches it.
    pub delete_retention_ms: u64,
    /// Segments younger than this are not compacted yet.
    pub min_compaction_lag_ms: u64,
    /// Dirty bytes / all bytes that trigger a run, in millionths.
    pub min_cleanable_dirty_ppm: u32,
}

impl CompactionTuning {
    pub fn of(c: &Compaction) -> Self {
        CompactionTuning {
            delete_retention_ms: c.delete_retention_ms,
            min_compaction_lag_ms: c.min_compaction_lag_ms,
            min_cleanable_dirty_ppm: c.min_cleanable_dirty_ppm,
        }
    }

    pub fn apply_to(self, c: &mut Compaction) {
        c.delete_retention_ms = self.delete_retention_ms;
        c.min_compaction_lag_ms = self.min_compaction_lag_ms;
        c.min_cleanable_dirty_ppm = self.min_cleanable_dirty_ppm;
    }
}

/// A change of a compacted stream's tuning: `None` leaves a value as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TuningChange {
    pub delete_retention_ms: Option<u64>,
    pub min_compaction_lag_ms: Option<u64>,
    pub min_cleanable_dirty_ppm: Option<u32>,
}

impl TuningChange {
    pub fn is_empty(&self) -> bool {
        *self == TuningChange::default()
    }

    pub fn applied_to(&self, t: CompactionTuning) -> CompactionTuning {
        CompactionTuning {
            delete_retention_ms: self.delete_retention_ms.unwrap_or(t.delete_retention_ms),
            min_compaction_lag_ms: self.min_compaction_lag_ms.unwrap_or(t.min_compaction_lag_ms),
            min_cleanable_dirty_ppm: self.min_cleanable_dirty_ppm.unwrap_or(t.min_cleanable_dirty_ppm),
        }
    }
}

/// A change of a stream's settings: `None` leaves a setting as it is,
/// `Some(None)` removes the stream's own value, `Some(Some(n))` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub retention: RetentionChange,
    pub min_insync_replicas: Option<Option<u32>>,
    pub max_message_bytes: Option<Option<u64>>,
    /// Only for a compacted stream.
    pub compaction: TuningChange,
}

impl SettingsChange {
    /// Every setting replaced by `s`'s.
    pub fn replace_with(s: StreamSettings) -> Self {
        SettingsChange {
            retention: RetentionChange::replace_with(s.retention),
            min_insync_replicas: Some(s.min_insync_replicas),
            max_message_bytes: Some(s.max_message_bytes),
            compaction: s.compaction.map_or_else(TuningChange::default, |t| TuningChange {
                delete_retention_ms: Some(t.delete_retention_ms),
                min_compaction_lag_ms: Some(t.min_compaction_lag_ms),
                min_cleanable_dirty_ppm: Some(t.min_cleanable_dirty_ppm),
            }),
        }
    }

    pub fn applied_to(&self, s: StreamSettings) -> StreamSettings {
        StreamSettings {
            retention: self.retention.applied_to(s.retention),
            min_insync_replicas: self.min_insync_replicas.unwrap_or(s.min_insync_replicas),
            max_message_bytes: self.max_message_bytes.unwrap_or(s.max_message_bytes),
            compaction: s.compaction.map(|t| self.compaction.applied_to(t)),
        }
    }
}

impl From<RetentionChange> for SettingsChange {
    fn from(retention: RetentionChange) -> Self {
        SettingsChange {
            retention,
            ..Default::default()
        }
    }
}
