//! The streaming parts of a compaction run: reading a segment's records in
//! decision batches, asking the policy plugin, and writing a compacted copy.
//!
//! Invariants: a cursor holds at most one fetch group (`FETCH_GROUP_BYTES`)
//! plus one decision batch; a compacted writer holds at most one output
//! batch (`OUT_BATCH_BYTES`) and one multipart part, and is either finished
//! (the object is complete) or aborted before the run moves on. Batches read
//! here bypass the cold cache so a scan does not push readers' data out.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Tier;
use super::manifest::{self, SegmentMeta};
use super::segment::{IndexEntry, SegmentWriter};
use crate::log::{OffsetRecord, TierPartition, record};
use crate::plugin::{CompactionInstance, Decision};

/// Records decided per plugin call (small in tests, to cross batch and
/// segment boundaries).
const DECIDE_BATCH: usize = if cfg!(test) { 7 } else { 1000 };
/// Bytes of batches fetched with one range GET while compacting.
const FETCH_GROUP_BYTES: u64 = 1024 * 1024;
/// Largest batch the compacted copy writes (small in tests).
const OUT_BATCH_BYTES: usize = if cfg!(test) { 64 } else { 1024 * 1024 };

/// A position in one segment's batches.
pub(super) struct Cursor {
    seg: SegmentMeta,
    index: Arc<Vec<IndexEntry>>,
    next: usize,
    pending: VecDeque<OffsetRecord>,
}

/// What decides a run's records: the policy plugin's instance (moved to a
/// blocking thread per call), or the built-in record-key policy.
pub(super) enum Decider {
    Plugin(Option<CompactionInstance>),
    /// `empty_is_tombstone`: an empty value deletes its key too.
    RecordKey {
        empty_is_tombstone: bool,
    },
}

impl Decider {
    pub(super) fn new(inst: CompactionInstance) -> Self {
        Decider::Plugin(Some(inst))
    }

    async fn decide(&mut self, records: &[OffsetRecord]) -> Result<Vec<Decision>, String> {
        let slot = match self {
            Decider::RecordKey { empty_is_tombstone } => {
                let empty = *empty_is_tombstone;
                return Ok(records.iter().map(|r| by_record_key(&r.record, empty)).collect());
            }
            Decider::Plugin(slot) => slot,
        };
        let mut inst = slot.take().ok_or("the plugin instance was lost")?;
        let batch = records.to_vec();
        let (inst, r) = tokio::task::spawn_blocking(move || {
            let r = inst.decide(&batch);
            (inst, r)
        })
        .await
        .map_err(|e| e.to_string())?;
        *slot = Some(inst);
        r.map_err(|e| e.to_string())
    }
}

/// The built-in policy (`Compaction::RECORD_KEY`): the record's key; a
/// null value is a tombstone, and an empty one too unless the stream says
/// only null (Kafka's rule); a record without a key is always kept.
pub(super) fn by_record_key(r: &crate::log::Record, empty_is_tombstone: bool) -> Decision {
    let tombstone = match &r.value {
        None => true,
        Some(v) => empty_is_tombstone && v.is_empty(),
    };
    match &r.key {
        None => Decision::KeepAlways,
        Some(k) if tombstone => Decision::Tombstone(k.to_vec()),
        Some(k) => Decision::Key(k.to_vec()),
    }
}

impl Tier {
    pub(super) async fn cursor(&self, p: &TierPartition, seg: &SegmentMeta) -> Result<Cursor, String> {
        Ok(Cursor {
            index: self.segment_index(p, seg).await.map_err(|e| e.to_string())?,
            seg: seg.clone(),
            next: 0,
            pending: VecDeque::new(),
        })
    }

    /// The next batch of a segment's records (at most `DECIDE_BATCH`) with
    /// the plugin's decisions; `None` at the segment's end.
    pub(super) async fn next_decided(
        &self,
        p: &TierPartition,
        c: &mut Cursor,
        decider: &mut Decider,
    ) -> Result<Option<(Vec<OffsetRecord>, Vec<Decision>)>, String> {
        while c.pending.len() < DECIDE_BATCH && c.next < c.index.len() {
            // A group ends at FETCH_GROUP_BYTES or once it holds a decision
            // batch's worth of records, whichever comes first.
            let mut group = Vec::new();
            let (mut bytes, mut records) = (0u64, 0usize);
            while c.next < c.index.len()
                && (group.is_empty() || (bytes < FETCH_GROUP_BYTES && c.pending.len() + records < DECIDE_BATCH))
            {
                let e = c.index[c.next];
                bytes += e.len as u64;
                records += e.count as usize;
                group.push(e);
                c.next += 1;
            }
            for b in self.fetch(p, &c.seg, &group).await.map_err(|e| e.to_string())? {
                let recs = record::decode_batch(&b.payload, b.base_offset, b.count).map_err(|e| e.to_string())?;
                c.pending.extend(recs);
            }
        }
        if c.pending.is_empty() {
            return Ok(None);
        }
        let n = c.pending.len().min(DECIDE_BATCH);
        let batch: Vec<OffsetRecord> = c.pending.drain(..n).collect();
        let decisions = decider.decide(&batch).await?;
        Ok(Some((batch, decisions)))
    }

    /// Starts the compacted copy of `seg`, named for the manifest version
    /// that will reference it (unique: referenced objects carry lower ones).
    pub(super) fn compacted_writer(&self, p: &TierPartition, seg: &SegmentMeta, version: u64) -> CompactedWriter {
        let name = format!("{:020}-{:020}-c{version}.seg", seg.base_offset, seg.end_offset);
        let rel = manifest::segment_rel(p.stream_id, p.partition, &name);
        CompactedWriter {
            upload: self
                .remote
                .upload_in_parts(self.remote.path(&rel), crate::objstore::S3_MIN_PART_BYTES),
            writer: SegmentWriter::with_gaps(seg.base_offset),
            run: Vec::new(),
            run_bytes: 0,
            seg: seg.clone(),
            name,
        }
    }
}

/// Writes the kept records of one segment, streaming: consecutive offsets
/// form a batch (at most `OUT_BATCH_BYTES`), a gap starts a new one.
pub(super) struct CompactedWriter {
    upload: crate::objstore::Upload,
    writer: SegmentWriter,
    run: Vec<OffsetRecord>,
    run_bytes: usize,
    seg: SegmentMeta,
    name: String,
}

impl CompactedWriter {
    pub(super) async fn push(&mut self, r: OffsetRecord) -> Result<(), String> {
        let follows = self.run.last().is_some_and(|l| l.offset + 1 == r.offset);
        if !self.run.is_empty() && (!follows || self.run_bytes >= OUT_BATCH_BYTES) {
            self.flush().await?;
        }
        self.run_bytes += r.record.size();
        self.run.push(r);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), String> {
        let Some(first) = self.run.first().map(|r| r.offset) else {
            return Ok(());
        };
        let recs: Vec<_> = self.run.drain(..).map(|r| r.record).collect();
        self.run_bytes = 0;
        let payload = record::encode_batch(&recs)?;
        let bytes = self.writer.push(first, recs.len() as u32, &payload)?;
        self.upload.write(&bytes).await.map_err(|e| e.to_string())
    }

    /// Completes the object; its footer keeps the original segment's range.
    pub(super) async fn finish(mut self) -> Result<SegmentMeta, String> {
        self.flush().await?;
        // The kept records' largest timestamp; with none kept, the
        // original's still bounds the (empty) range.
        let max_timestamp_ms = self.writer.max_timestamp().or(self.seg.max_timestamp_ms);
        let (tail, footer) = self.writer.finish_at(self.seg.end_offset);
        self.upload.write(&tail).await.map_err(|e| e.to_string())?;
        let size = self
            .upload
            .finish()
            .await
            .map_err(|e: crate::objstore::ObjStoreError| e.to_string())?;
        Ok(SegmentMeta {
            key: self.name,
            size,
            index_pos: footer.index_pos,
            max_timestamp_ms,
            ..self.seg
        })
    }

    pub(super) async fn abort(mut self) {
        self.upload.abort().await;
    }
}
