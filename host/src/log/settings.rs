//! Changing a stream after creation: its settings (retention, a replicated
//! stream's own minimum in-sync set, its own Kafka batch limit, a
//! compacted stream's tuning), its partition count (grown only), and a
//! partition's start (records deleted below it, never moved back). Each
//! change is one control entry, durable before the call returns and
//! replayed by recovery like the stream's creation; a changed stream's
//! entry in the map is replaced by one with the new settings and the same
//! partition states. Changes are serialized by the admin lock; a
//! replicated stream's settings change carries a stamp, and one stamped
//! older than the stream's last is not applied. A
//! replicated stream's settings and partitions are set on each node (the
//! facade sets every node's; new partitions come with their replicas), and
//! records are deleted on a partition's leader, whose followers then move
//! their start to its.

use std::sync::Arc;

use super::meta::{self, ControlOp, StreamMeta};
use super::{LogError, Stream, StreamInfo, describe, grow, partition_of};

/// How a settings change is made.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Checked only (`validate_only`).
    Check,
    /// A change of this node's own (a stream that is not replicated).
    Unstamped,
    /// A replicated stream's change, applied unless an older one.
    Stamped(meta::SettingsStamp),
}

/// A stamped settings change's outcome: the stream as it is afterwards,
/// and whether the change was applied (`false`: a newer one was there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub info: StreamInfo,
    pub applied: bool,
}

impl super::Log {
    /// Changes a stream's retention (as [`super::Log::set_settings`]).
    pub async fn set_retention(
        &self,
        name: &str,
        change: meta::RetentionChange,
        validate_only: bool,
    ) -> Result<StreamInfo, LogError> {
        self.set_settings(name, change.into(), validate_only).await
    }

    /// Changes a stream's settings (retention, a replicated stream's own
    /// minimum in-sync set, its own Kafka batch limit, a compacted stream's
    /// tuning, refused on others), checked together with its other
    /// settings as at creation; `validate_only` changes nothing. A stream
    /// that is not replicated has one replica: a minimum of 1 or `None`
    /// leaves it as it is, more is refused. Durable before it returns, as
    /// one control entry; tiering applies a retention or tuning from its
    /// next pass. On a replicated stream this changes this node's copy
    /// only (the facade changes every node's).
    pub async fn set_settings(
        &self,
        name: &str,
        change: meta::SettingsChange,
        validate_only: bool,
    ) -> Result<StreamInfo, LogError> {
        let mode = if validate_only { Mode::Check } else { Mode::Unstamped };
        Ok(self.change_settings(name, change, mode).await?.info)
    }

    /// Sets a replicated stream's settings as a stamped change (see
    /// [`meta::SettingsStamp`]): applied, and checked as by
    /// [`super::Log::set_settings`], only when `stamp` is not older than
    /// the stream's last; the same stamp again is the same change (a
    /// repeat). An older one changes nothing and is answered as such.
    pub async fn set_settings_stamped(
        &self,
        name: &str,
        change: meta::SettingsChange,
        stamp: meta::SettingsStamp,
    ) -> Result<Stamped, LogError> {
        self.change_settings(name, change, Mode::Stamped(stamp)).await
    }

    async fn change_settings(&self, name: &str, change: meta::SettingsChange, mode: Mode) -> Result<Stamped, LogError> {
        let mut snap = self.admin.lock().await;
        let stream = self.stream(name)?;
        if let Mode::Stamped(stamp) = mode
            && stamp < stream.meta.settings_stamp
        {
            return Ok(Stamped {
                info: describe(&stream),
                applied: false,
            });
        }
        let settings = change.applied_to(stream.meta.settings());
        if stream.meta.compaction.is_none() && !change.compaction.is_empty() {
            return Err(LogError::InvalidConfig(format!(
                "stream {name:?} is not compacted: delete_retention_ms, min_compaction_lag_ms and \
                 min_cleanable_dirty_ratio tune nothing on it"
            )));
        }
        if stream.meta.replication.is_none() {
            match settings.min_insync_replicas {
                Some(0) => return Err(LogError::InvalidConfig("min_insync_replicas must be at least 1".into())),
                Some(m) if m > 1 => {
                    return Err(LogError::InvalidConfig(format!(
                        "min_insync_replicas {m} is more than the 1 replica of a stream that is not replicated"
                    )));
                }
                _ => {}
            }
        }
        let mut changed = stream.meta.with_settings(settings);
        changed.config().validate().map_err(LogError::InvalidConfig)?;
        let stamp = match mode {
            Mode::Stamped(stamp) => stamp,
            Mode::Check | Mode::Unstamped => meta::SettingsStamp::default(),
        };
        if !stamp.is_unset() {
            changed.settings_stamp = stamp;
        }
        let changed = Arc::new(Stream {
            meta: changed,
            partitions: stream.partitions.clone(),
        });
        let applied = |info| Stamped { info, applied: true };
        if matches!(mode, Mode::Check) || changed.meta == stream.meta {
            return Ok(applied(describe(&changed)));
        }
        let op = ControlOp::SetSettings {
            id: stream.meta.id,
            settings: changed.meta.settings(),
            stamp,
        };
        self.apply_control(&mut snap, &op).await?;
        let info = describe(&changed);
        self.write_streams().insert(name.into(), changed);
        Ok(applied(info))
    }

    /// Which of `streams` (name, creation time) were replicated streams
    /// deleted here (within the last [`meta::DELETED_KEPT`] deletes).
    pub async fn deleted_of(&self, streams: &[meta::DeletedStream]) -> Vec<meta::DeletedStream> {
        let snap = self.admin.lock().await;
        let gone: std::collections::HashSet<&meta::DeletedStream> = snap.deleted.iter().collect();
        streams.iter().filter(|s| gone.contains(s)).cloned().collect()
    }

    /// Grows `name` to `partitions` partitions; `validate_only` changes
    /// nothing. The new partitions start empty at offset 0.
    pub async fn add_partitions(
        &self,
        name: &str,
        partitions: u32,
        validate_only: bool,
    ) -> Result<StreamInfo, LogError> {
        self.add_partitions_assigned(name, partitions, Vec::new(), validate_only)
            .await
    }

    /// As [`super::Log::add_partitions`]; a replicated stream's new
    /// partitions are placed on the replicas `assignment` lists (one list
    /// per new partition, in order, its first replica leading), which
    /// must be empty for a stream that is not replicated.
    pub async fn add_partitions_assigned(
        &self,
        name: &str,
        partitions: u32,
        assignment: Vec<Vec<u32>>,
        validate_only: bool,
    ) -> Result<StreamInfo, LogError> {
        let mut snap = self.admin.lock().await;
        let stream = self.stream(name)?;
        let current = stream.meta.partitions;
        if partitions <= current {
            return Err(LogError::InvalidConfig(format!(
                "stream {name:?} has {current} partitions; the count can only grow (asked for {partitions})"
            )));
        }
        if partitions > self.opts.max_partitions {
            return Err(LogError::InvalidPartitions {
                count: partitions,
                max: self.opts.max_partitions,
            });
        }
        let added = partitions - current;
        let mut meta = StreamMeta {
            partitions,
            ..stream.meta.clone()
        };
        match meta.replication.as_mut() {
            Some(r)
                if assignment.len() == added as usize && assignment.iter().all(|a| a.len() == r.factor as usize) =>
            {
                r.assignment.extend(assignment.iter().cloned());
            }
            Some(r) => {
                return Err(LogError::InvalidConfig(format!(
                    "replicated stream {name:?} needs {} replicas for each of its {added} new partitions",
                    r.factor
                )));
            }
            None if !assignment.is_empty() => {
                return Err(LogError::InvalidConfig(format!(
                    "stream {name:?} is not replicated: its partitions are not assigned to nodes"
                )));
            }
            None => {}
        }
        let total: u64 = snap.streams.values().map(|s| u64::from(s.partitions)).sum();
        if total.saturating_add(u64::from(added)) > self.opts.max_total_partitions {
            return Err(LogError::NodeFull {
                what: format!(
                    "{total} partitions; {added} more would pass `max_total_partitions` ({})",
                    self.opts.max_total_partitions
                ),
            });
        }
        let mut parts = stream.partitions.clone();
        grow(&mut parts, partitions);
        let grown = Arc::new(Stream {
            meta,
            partitions: parts,
        });
        if validate_only {
            return Ok(describe(&grown));
        }
        let id = stream.meta.id;
        let op = ControlOp::AddPartitions {
            id,
            partitions,
            assignment,
        };
        self.apply_control(&mut snap, &op).await?;
        let leadership = snap.leadership.get(&id).into_iter().flatten();
        for (p, l) in grown.partitions.iter().zip(leadership).skip(current as usize) {
            p.set_replica(l.clone());
        }
        let info = describe(&grown);
        self.write_streams().insert(name.into(), grown);
        // The uploader learns the new partitions on its next round.
        for p in current..partitions {
            self.touched.insert((id, p));
        }
        Ok(info)
    }

    /// Deletes the records of `partition` below `before` (`None`: all of
    /// them, up to the end readers see): its start moves there, durably,
    /// and never back. Answers the new start. On a replicated partition
    /// only its leader deletes (its followers follow its start); refused on
    /// streams compacted without `delete`.
    pub async fn delete_records(&self, name: &str, partition: u32, before: Option<u64>) -> Result<u64, LogError> {
        let mut snap = self.admin.lock().await;
        let stream = self.stream(name)?;
        let part = partition_of(&stream, partition)?;
        self.refuse_follower(name, partition, &part)?;
        if stream.meta.compaction.as_ref().is_some_and(|c| !c.delete) {
            return Err(LogError::InvalidConfig(format!(
                "stream {name:?} is compacted without `delete`: its records go by key, not by offset"
            )));
        }
        let range = part.range();
        let offset = before.unwrap_or(range.end);
        if offset > range.end {
            return Err(LogError::OffsetOutOfRange {
                stream: name.into(),
                partition,
                offset,
                start: range.start,
                end: range.end,
            });
        }
        if offset <= range.start {
            return Ok(range.start);
        }
        let op = ControlOp::SetStart {
            id: stream.meta.id,
            partition,
            offset,
        };
        self.apply_control(&mut snap, &op).await?;
        Ok(part.delete_before(offset))
    }
}
