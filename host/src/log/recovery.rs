//! Recovery of the log at start-up, as named steps: prepare the WAL (an
//! object-store WAL claims its epoch and plans), choose the metadata
//! snapshot, replay the WAL through the index, and build the streams.
//!
//! Invariants: control entries a snapshot covers are not applied twice
//! (LSN 0 is never covered, see `Snapshot::covers`); truncations apply to
//! the index whatever the snapshot covers; without a snapshot that covers a
//! trim of an object-store WAL the node refuses to start rather than lose
//! streams; the snapshot never claims to cover LSNs the WAL no longer holds.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::meta::{self, ControlOp, Snapshot};
use super::partition::{BatchRef, Partition};
use super::{EntryKind, LogError, Options, Stream, WalBackend, grow, new_partitions, producers, progress};
use crate::wal::{self, WalError};

/// The Tokio runtime an object-store WAL needs while the log opens.
pub(super) fn runtime() -> Result<tokio::runtime::Handle, LogError> {
    tokio::runtime::Handle::try_current().map_err(|e| {
        LogError::from(WalError::Remote(format!(
            "an object-store WAL needs a Tokio runtime: {e}"
        )))
    })
}

/// Claims and plans an object-store WAL (`None` for local segments).
pub(super) fn prepare_wal(opts: &Options) -> Result<Option<wal::object::Prepared>, LogError> {
    match &opts.wal_backend {
        WalBackend::Local => Ok(None),
        WalBackend::Object { remote, .. } => Ok(Some(runtime()?.block_on(wal::object::prepare(remote))?)),
    }
}

/// The snapshot replay starts from, and whether it is this node's own (so
/// need not be written back unchanged).
pub(super) fn choose_snapshot(
    data_dir: &Path,
    prepared: Option<&wal::object::Prepared>,
) -> Result<(Snapshot, bool), LogError> {
    // With an object-store WAL the data dir may be empty: the snapshot
    // stored with the last trim covers what the trim removed.
    let checkpoint = prepared
        .and_then(|p| p.checkpoint())
        .and_then(|b| meta::decode_snapshot(b, "the WAL checkpoint"));
    let local = meta::load_snapshot(data_dir);
    // Below a trim the WAL no longer holds the control entries, so the
    // metadata must come from a snapshot that covers the trim: this
    // node's own, or the checkpoint stored with that very trim. Without
    // one, streams would silently vanish: refuse instead.
    if let Some(p) = prepared
        && p.trim_lsn() > 0
        && local.is_none()
        && (checkpoint.is_none() || p.checkpoint_lsn() < p.trim_lsn())
    {
        return Err(WalError::Remote(format!(
            "the object WAL is trimmed at LSN {} but no readable metadata snapshot covers it \
             (checkpoint at {}: damaged, missing or of another version); refusing to start without \
             the stream metadata",
            p.trim_lsn(),
            p.checkpoint_lsn()
        ))
        .into());
    }
    // A snapshot that came from the checkpoint is stored locally too.
    let (loaded, had_snapshot) = match (local, checkpoint) {
        (Some(l), Some(c)) if c.as_of_lsn >= l.as_of_lsn => (Some(c), false),
        (Some(l), _) => (Some(l), true),
        (None, c) => (c, false),
    };
    Ok((loaded.unwrap_or_default(), had_snapshot))
}

/// The replay of WAL entries over a snapshot: the metadata it applies and
/// the partitions' index it builds.
pub(super) struct Replay {
    base: Snapshot,
    snap: Snapshot,
    parts: HashMap<u32, Vec<Arc<Partition>>>,
    /// Idempotent producers' batches, as the WAL has them.
    producers: producers::ProducerTable,
    skipped: u64,
}

impl Replay {
    /// Partitions start where the snapshot says the WAL took over (data
    /// below lives in the object store); replay skips older entries.
    pub(super) fn new(base: Snapshot) -> Replay {
        let parts = base
            .streams
            .values()
            .map(|m| {
                let ps = new_partitions(m.partitions);
                for (p, mark) in ps.iter().zip(base.marks.get(&m.id).into_iter().flatten()) {
                    p.restore(*mark);
                }
                (m.id, ps)
            })
            .collect();
        let producers = producers::ProducerTable::from_snapshot(&base.producers);
        Replay {
            snap: base.clone(),
            base,
            parts,
            producers,
            skipped: 0,
        }
    }

    /// The producer state the replay rebuilt.
    pub(super) fn take_producers(&mut self) -> producers::ProducerTable {
        std::mem::take(&mut self.producers)
    }

    /// Applies one recovered entry.
    pub(super) fn visit(&mut self, e: wal::RecoveredEntry<'_>) {
        match e.meta.kind {
            // Truncations, starts and replica resets apply to the index,
            // which is rebuilt from every WAL entry, whatever the snapshot
            // covers.
            EntryKind::Control if self.base.covers(e.lsn) => {
                if let Ok(op) = serde_json::from_slice::<ControlOp>(e.payload) {
                    self.apply_to_index(&op);
                }
            }
            EntryKind::Control => match serde_json::from_slice::<ControlOp>(e.payload) {
                Ok(op) => {
                    match &op {
                        ControlOp::CreateStream(m) => {
                            self.parts.insert(m.id, new_partitions(m.partitions));
                        }
                        ControlOp::DeleteStream { id } => {
                            self.parts.remove(id);
                        }
                        ControlOp::AddPartitions { id, partitions, .. } => {
                            if let Some(ps) = self.parts.get_mut(id) {
                                grow(ps, *partitions);
                            }
                        }
                        other => self.apply_to_index(other),
                    }
                    self.snap.apply(e.lsn, &op);
                }
                Err(err) => tracing::error!(lsn = e.lsn, error = %err, "unreadable control entry skipped"),
            },
            EntryKind::Records | EntryKind::RecordsWithProgress | EntryKind::RecordsWithProducer => self.index(e),
        }
    }

    /// Applies a control entry that moves a partition's index (a
    /// truncation, a start, a replica reset); others are ignored here.
    fn apply_to_index(&self, op: &ControlOp) {
        let part = |id: &u32, partition: &u32| self.parts.get(id).and_then(|v| v.get(*partition as usize));
        match op {
            ControlOp::Truncate { id, partition, offset } => {
                if let Some(p) = part(id, partition) {
                    p.truncate(*offset);
                }
            }
            ControlOp::SetStart { id, partition, offset } => {
                if let Some(p) = part(id, partition) {
                    p.delete_before(*offset);
                }
            }
            ControlOp::ResetReplica { id, partition, offset } => {
                if let Some(p) = part(id, partition) {
                    p.reset_to(*offset);
                }
            }
            _ => {}
        }
    }

    /// Indexes a records entry (and a pipeline's progress trailer).
    fn index(&mut self, e: wal::RecoveredEntry<'_>) {
        let mut producer = None;
        let trailer = match e.meta.kind {
            EntryKind::RecordsWithProgress => match progress::decode(e.payload) {
                Some(p) => {
                    self.snap.set_progress(p.pipeline, p.input_partition, p.next_offset);
                    progress::LEN as u8
                }
                None => {
                    tracing::error!(lsn = e.lsn, "pipeline output entry without a valid trailer skipped");
                    self.skipped += 1;
                    return;
                }
            },
            EntryKind::RecordsWithProducer => match producers::decode(e.payload) {
                Some(b) => {
                    let key = (e.meta.stream, e.meta.partition, b.producer_id);
                    self.producers.record(key, &b, e.meta.base_offset, e.meta.count);
                    producer = Some(b);
                    producers::LEN as u8
                }
                None => {
                    tracing::error!(lsn = e.lsn, "idempotent producer entry without a valid trailer skipped");
                    self.skipped += 1;
                    return;
                }
            },
            _ => 0,
        };
        let p = self
            .parts
            .get(&e.meta.stream)
            .and_then(|v| v.get(e.meta.partition as usize));
        let committed = p.is_some_and(|p| {
            p.commit(BatchRef {
                base_offset: e.meta.base_offset,
                count: e.meta.count,
                lsn: e.lsn,
                location: e.location,
                trailer,
                producer,
            })
        });
        if !committed {
            self.skipped += 1;
        }
    }

    /// Stores the snapshot if it changed (never claiming LSNs at or past
    /// `next_lsn`) and builds the streams.
    pub(super) fn finish(
        mut self,
        data_dir: &Path,
        had_snapshot: bool,
        next_lsn: u64,
    ) -> Result<(Snapshot, HashMap<String, Arc<Stream>>), LogError> {
        if self.skipped > 0 {
            tracing::info!(
                skipped = self.skipped,
                "WAL entries of deleted streams or duplicates not indexed"
            );
        }
        // Control entries the WAL lost (cut by recovery) must not shadow new
        // entries that will reuse their LSNs.
        let last_lsn = next_lsn.saturating_sub(1);
        if self.snap.as_of_lsn > last_lsn {
            self.snap.as_of_lsn = last_lsn;
        }
        if !had_snapshot || self.snap != self.base {
            meta::store_snapshot(data_dir, &self.snap)?;
        }
        let snap = self.snap;
        let mut parts = self.parts;
        let streams = snap
            .streams
            .values()
            .map(|m| {
                let mut partitions = parts.remove(&m.id).unwrap_or_default();
                grow(&mut partitions, m.partitions);
                for p in &partitions {
                    p.settle_start();
                }
                for (p, l) in partitions.iter().zip(snap.leadership.get(&m.id).into_iter().flatten()) {
                    p.set_replica(l.clone());
                }
                (
                    m.name.clone(),
                    Arc::new(Stream {
                        meta: m.clone(),
                        partitions,
                    }),
                )
            })
            .collect();
        Ok((snap, streams))
    }
}
