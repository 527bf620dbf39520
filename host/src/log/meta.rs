//! Stream metadata: the control entries that change it and its snapshot.
//!
//! The WAL is the source of truth: creating or deleting a stream appends a
//! control entry (JSON payload) and is acknowledged once that is durable. The
//! snapshot `<data-dir>/meta/streams.json` is derived state written after each
//! change so metadata survives WAL trimming; recovery loads it (if valid) and
//! replays the control entries above its `as_of_lsn`. A missing or damaged
//! snapshot is rebuilt from the WAL, never a reason to drop data.
//!
//! Invariant: stream ids are never reused, so WAL entries of a deleted
//! stream can never be mistaken for a later stream of the same name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::LogError;
use super::views::ViewMeta;
use crate::fsutil::write_atomic;

/// A change to stream metadata, as stored in a control entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlOp {
    CreateStream(StreamMeta),
    DeleteStream {
        id: u32,
    },
    CreatePipeline(PipelineMeta),
    DeletePipeline {
        id: u32,
    },
    SetPipelinePaused {
        id: u32,
        paused: bool,
    },
    /// Input consumed without output (everything filtered out).
    PipelineProgress {
        id: u32,
        partition: u32,
        next_offset: u64,
    },
    /// A replicated partition's leader, epoch and epoch history changed.
    SetLeadership {
        id: u32,
        partition: u32,
        state: Leadership,
    },
    /// A follower dropped its records from `offset` on (they diverged from
    /// the leader's log); the bytes stay in the WAL until trimmed.
    Truncate {
        id: u32,
        partition: u32,
        offset: u64,
    },
    CreateView(ViewMeta),
    DeleteView {
        name: String,
    },
    /// Records of a partition below `offset` were deleted (its start moved
    /// there; Kafka DeleteRecords). Applied to the index on every replay,
    /// as `Truncate` is.
    SetStart {
        id: u32,
        partition: u32,
        offset: u64,
    },
    /// A follower's log ended below its leader's start (the leader's
    /// retention passed it while it was away): its records were dropped
    /// and it goes on at `offset`, above its old end. Applied to the index
    /// on every replay, as `Truncate` is.
    ResetReplica {
        id: u32,
        partition: u32,
        offset: u64,
    },
    /// A stream grew to `partitions` partitions (never fewer). On a
    /// replicated stream `assignment` lists the new partitions' replicas,
    /// in order, each led first by its first replica.
    AddPartitions {
        id: u32,
        partitions: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        assignment: Vec<Vec<u32>>,
    },
    /// A stream's retention changed (the other settings stay).
    SetRetention {
        id: u32,
        retention: Retention,
    },
    /// A stream's settings changed: all of them as they are afterwards
    /// (an own value left out: the node's applies). Written for every
    /// change since it exists; `set_retention` entries are still replayed.
    SetSettings {
        id: u32,
        settings: StreamSettings,
        /// A replicated stream's change: which change this is (unset on
        /// other streams, and on entries written before stamps existed).
        #[serde(default, skip_serializing_if = "SettingsStamp::is_unset")]
        stamp: SettingsStamp,
    },
}

pub use super::leadership::Leadership;
pub use super::stream_config::{
    Compaction, Replication, Retention, RetentionChange, SettingsChange, SettingsStamp, StreamConfig, StreamSettings,
    TuningChange,
};

impl StreamMeta {
    /// What of the stream may change after creation, as it is now.
    pub fn settings(&self) -> StreamSettings {
        StreamSettings::of(
            self.retention,
            self.replication.as_ref(),
            self.max_message_bytes,
            self.compaction.as_ref(),
        )
    }

    /// The stream with `s` as its settings (a stream that is not
    /// replicated keeps no minimum in-sync set, one that is not compacted
    /// no tuning).
    pub fn with_settings(&self, s: StreamSettings) -> StreamMeta {
        let mut m = self.clone();
        m.retention = s.retention;
        m.max_message_bytes = s.max_message_bytes;
        if let Some(r) = m.replication.as_mut() {
            r.min_insync_replicas = s.min_insync_replicas;
        }
        if let (Some(c), Some(t)) = (m.compaction.as_mut(), s.compaction) {
            t.apply_to(c);
        }
        m
    }

    /// The stream's settings as a creation config, to check a change by
    /// the creation rule.
    pub fn config(&self) -> StreamConfig {
        StreamConfig {
            retention: self.retention,
            compaction: self.compaction.clone(),
            replication: self.replication.clone(),
            max_message_bytes: self.max_message_bytes,
        }
    }
}

/// What is durable about a pipeline (its progress is kept separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineMeta {
    pub id: u32,
    pub name: String,
    pub input: String,
    pub output: String,
    pub plugin: String,
    /// Pinned plugin version; the latest at start when `None`.
    pub plugin_version: Option<u32>,
    pub config: Vec<(String, String)>,
    /// Most input records per plugin call.
    pub batch_records: u32,
    pub paused: bool,
    pub created_ms: u64,
}

/// What is durable about a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub id: u32,
    pub name: String,
    pub partitions: u32,
    pub created_ms: u64,
    #[serde(default)]
    pub retention: Retention,
    /// Compaction by a key-policy plugin (`cleanup: compact`); `None` keeps
    /// every record until retention drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<Compaction>,
    /// Spread over a cluster's nodes; `None` for a stream on this node only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<Replication>,
    /// The largest record batch a Kafka producer may send to it, as sent
    /// (Kafka's topic config `max.message.bytes`); `None`: the node's
    /// `max_batch_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
    /// The last stamped settings change of a replicated stream (unset
    /// otherwise); a change with an older stamp is not applied.
    #[serde(default, skip_serializing_if = "SettingsStamp::is_unset")]
    pub settings_stamp: SettingsStamp,
}

/// Where a partition's data starts, kept so that a restart after the WAL was
/// trimmed knows the offsets that live only in the object store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMark {
    /// First readable offset (moved by retention).
    pub start: u64,
    /// Offsets below this are in the object store, not the WAL.
    pub floor: u64,
}

/// The metadata snapshot file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// Control entries up to and including this LSN are reflected here; 0:
    /// none (LSN 0 is never a real entry, see [`Snapshot::covers`]).
    pub as_of_lsn: u64,
    pub next_stream_id: u32,
    pub streams: BTreeMap<u32, StreamMeta>,
    #[serde(default = "first_id")]
    pub next_pipeline_id: u32,
    #[serde(default)]
    pub pipelines: BTreeMap<u32, PipelineMeta>,
    /// (pipeline id, input partition, next input offset)
    #[serde(default)]
    pub progress: Vec<(u32, u32, u64)>,
    /// Per stream id, per partition: where the data starts (written when the
    /// WAL is trimmed).
    #[serde(default)]
    pub marks: BTreeMap<u32, Vec<PartitionMark>>,
    /// Deleted streams whose objects are still to be deleted.
    #[serde(default)]
    pub purge: Vec<u32>,
    /// Per replicated stream id, per partition: its leadership.
    #[serde(default)]
    pub leadership: BTreeMap<u32, Vec<Leadership>>,
    /// Idempotent producers' last batches per partition, as of the WAL trim
    /// (the WAL entries that carried them may be gone).
    #[serde(default)]
    pub producers: Vec<super::producers::ProducerSnap>,
    /// Views by name.
    #[serde(default)]
    pub views: BTreeMap<String, ViewMeta>,
    /// Replicated streams deleted here, oldest first (at most
    /// [`DELETED_KEPT`]), so a node that missed the delete can be told.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<DeletedStream>,
}

/// How many deleted replicated streams a node remembers.
pub const DELETED_KEPT: usize = 10_000;

/// A replicated stream that was deleted: its name and creation time (its
/// identity across nodes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeletedStream {
    pub name: String,
    pub created_ms: u64,
}

fn first_id() -> u32 {
    1
}

const SNAPSHOT_VERSION: u32 = 1;

impl Default for Snapshot {
    fn default() -> Self {
        Self::new()
    }
}

impl Snapshot {
    pub fn new() -> Self {
        Snapshot {
            version: SNAPSHOT_VERSION,
            as_of_lsn: 0,
            next_stream_id: 1,
            streams: BTreeMap::new(),
            next_pipeline_id: 1,
            pipelines: BTreeMap::new(),
            progress: Vec::new(),
            marks: BTreeMap::new(),
            purge: Vec::new(),
            leadership: BTreeMap::new(),
            producers: Vec::new(),
            views: BTreeMap::new(),
            deleted: Vec::new(),
        }
    }

    /// The mark of stream `id`'s `partition` (marks of a stream grow to its
    /// partition count first).
    fn mark_mut(&mut self, id: u32, partition: u32) -> Option<&mut PartitionMark> {
        let partitions = self.streams.get(&id).map_or(0, |m| m.partitions as usize);
        let marks = self.marks.entry(id).or_default();
        if marks.len() < partitions {
            marks.resize(partitions, PartitionMark::default());
        }
        marks.get_mut(partition as usize)
    }

    /// Applies a control entry written at `lsn`.
    pub fn apply(&mut self, lsn: u64, op: &ControlOp) {
        match op {
            ControlOp::CreateStream(m) => {
                self.next_stream_id = self.next_stream_id.max(m.id + 1);
                self.streams.insert(m.id, m.clone());
                if let Some(r) = &m.replication {
                    let first = |p: &Vec<u32>| Leadership::initial(p.first().copied().unwrap_or(0));
                    self.leadership.insert(m.id, r.assignment.iter().map(first).collect());
                }
            }
            ControlOp::SetStart { id, partition, offset } => {
                if let Some(m) = self.mark_mut(*id, *partition) {
                    m.start = m.start.max(*offset);
                }
            }
            ControlOp::ResetReplica { id, partition, offset } => {
                if let Some(m) = self.mark_mut(*id, *partition) {
                    m.start = m.start.max(*offset);
                    m.floor = m.floor.max(*offset);
                }
            }
            ControlOp::AddPartitions {
                id,
                partitions,
                assignment,
            } => {
                if let Some(m) = self.streams.get_mut(id).filter(|m| *partitions > m.partitions) {
                    m.partitions = *partitions;
                    if let Some(r) = m.replication.as_mut() {
                        r.assignment.extend(assignment.iter().cloned());
                        let first = |p: &Vec<u32>| Leadership::initial(p.first().copied().unwrap_or(0));
                        self.leadership
                            .entry(*id)
                            .or_default()
                            .extend(assignment.iter().map(first));
                    }
                }
            }
            ControlOp::SetRetention { id, retention } => {
                if let Some(m) = self.streams.get_mut(id) {
                    m.retention = *retention;
                }
            }
            ControlOp::SetSettings { id, settings, stamp } => {
                if let Some(m) = self.streams.get_mut(id) {
                    *m = m.with_settings(*settings);
                    if !stamp.is_unset() {
                        m.settings_stamp = *stamp;
                    }
                }
            }
            ControlOp::DeleteStream { id } => {
                if let Some(m) = self.streams.remove(id).filter(|m| m.replication.is_some()) {
                    self.deleted.push(DeletedStream {
                        name: m.name,
                        created_ms: m.created_ms,
                    });
                    let over = self.deleted.len().saturating_sub(DELETED_KEPT);
                    self.deleted.drain(..over);
                }
                self.marks.remove(id);
                self.leadership.remove(id);
                if !self.purge.contains(id) {
                    self.purge.push(*id);
                }
            }
            ControlOp::CreatePipeline(m) => {
                self.next_pipeline_id = self.next_pipeline_id.max(m.id + 1);
                self.pipelines.insert(m.id, m.clone());
            }
            ControlOp::DeletePipeline { id } => {
                self.pipelines.remove(id);
                self.progress.retain(|(p, _, _)| p != id);
            }
            ControlOp::SetPipelinePaused { id, paused } => {
                if let Some(m) = self.pipelines.get_mut(id) {
                    m.paused = *paused;
                }
            }
            ControlOp::PipelineProgress {
                id,
                partition,
                next_offset,
            } => {
                self.set_progress(*id, *partition, *next_offset);
            }
            ControlOp::SetLeadership { id, partition, state } => {
                if let Some(l) = self.leadership.get_mut(id).and_then(|v| v.get_mut(*partition as usize)) {
                    *l = state.clone();
                }
            }
            ControlOp::Truncate { id, partition, offset } => {
                if let Some(l) = self.leadership.get_mut(id).and_then(|v| v.get_mut(*partition as usize)) {
                    l.truncate(*offset);
                }
            }
            ControlOp::CreateView(m) => {
                self.views.insert(m.name.clone(), m.clone());
            }
            ControlOp::DeleteView { name } => {
                self.views.remove(name);
            }
        }
        self.as_of_lsn = self.as_of_lsn.max(lsn);
    }
}

impl Snapshot {
    /// Whether the control entry at `lsn` is already reflected here. A
    /// snapshot at `as_of_lsn` 0 reflects nothing: every log starts at
    /// [`crate::wal::FIRST_LSN`], and an entry at LSN 0 (written by an
    /// object WAL before that rule) is replayed, never assumed covered.
    pub fn covers(&self, lsn: u64) -> bool {
        self.as_of_lsn >= crate::wal::FIRST_LSN && lsn <= self.as_of_lsn
    }

    /// Raises a pipeline's recorded position (never lowers it).
    pub fn set_progress(&mut self, id: u32, partition: u32, next_offset: u64) {
        if !self.pipelines.contains_key(&id) {
            return;
        }
        match self.progress.iter_mut().find(|(p, q, _)| *p == id && *q == partition) {
            Some(entry) => entry.2 = entry.2.max(next_offset),
            None => self.progress.push((id, partition, next_offset)),
        }
    }
}

pub fn snapshot_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("streams.json")
}

/// Loads the snapshot; `Ok(None)` if it is missing or unreadable (logged),
/// so the caller rebuilds from the WAL.
pub fn load_snapshot(data_dir: &Path) -> Option<Snapshot> {
    let path = snapshot_path(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read metadata snapshot; rebuilding from the WAL");
            return None;
        }
    };
    decode_snapshot(&bytes, &path.display().to_string())
}

/// Parses a stored snapshot; `None` if damaged or of another version
/// (logged, naming `source`), so the caller rebuilds from the WAL.
pub fn decode_snapshot(bytes: &[u8], source: &str) -> Option<Snapshot> {
    match serde_json::from_slice::<Snapshot>(bytes) {
        Ok(s) if s.version == SNAPSHOT_VERSION => Some(s),
        Ok(s) => {
            tracing::warn!(
                source,
                version = s.version,
                "unsupported metadata snapshot version; rebuilding from the WAL"
            );
            None
        }
        Err(e) => {
            tracing::warn!(source, error = %e, "damaged metadata snapshot; rebuilding from the WAL");
            None
        }
    }
}

pub fn store_snapshot(data_dir: &Path, snap: &Snapshot) -> Result<(), LogError> {
    let path = snapshot_path(data_dir);
    let io = |source| LogError::MetaIo {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let bytes = serde_json::to_vec_pretty(snap).map_err(|e| io(std::io::Error::other(e)))?;
    write_atomic(&path, &bytes).map_err(io)
}

/// Checks a stream name: 1–128 characters of `[A-Za-z0-9._-]`, not `.`/`..`.
pub fn validate_name(name: &str) -> Result<(), LogError> {
    let bad = |reason| {
        Err(LogError::InvalidName {
            name: name.chars().take(200).collect(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 128 {
        return bad("must be 1 to 128 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    if name == "." || name == ".." {
        return bad("must not be `.` or `..`");
    }
    Ok(())
}

#[cfg(test)]
#[path = "meta_tests.rs"]
mod tests;
