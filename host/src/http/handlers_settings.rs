//! `PATCH /streams/{name}`: changing a stream's settings after creation:
//! its retention (a field left out stays as it is, `null` removes that
//! limit), a replicated stream's `min_insync_replicas` and its
//! `max_message_bytes` (`null`: the node's again), a compacted stream's
//! tuning, and its partition count (grown only). Every change asked for
//! is checked before any is made. `DELETE .../records?before=N`: deleting
//! a partition's records below an offset (its start moves there).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Deserializer};

use super::error::ErrorBody;
use super::extract::{Body, Path, Query};
use super::handlers::Res;
use super::wire::StreamOut;
use crate::error::Error;
use crate::node::{Compaction, Host, RetentionChange, SettingsChange, TuningChange};

/// `PATCH /streams/{name}` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlterStream {
    /// Drop tiered segments older than this many milliseconds; `null`:
    /// no time limit; left out: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, nullable)]
    pub retention_ms: Option<Option<u64>>,
    /// Drop the oldest tiered segments while a partition holds more;
    /// `null`: no size limit; left out: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, nullable)]
    pub retention_bytes: Option<Option<u64>>,
    /// A larger partition count (never fewer); the new partitions start
    /// empty.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub partitions: Option<u32>,
    /// A replicated stream's own minimum in-sync set for `acks=all`, 1 to
    /// its factor; `null`: the node's `[cluster] min_insync_replicas`
    /// again; left out: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, nullable, minimum = 1)]
    pub min_insync_replicas: Option<Option<u32>>,
    /// The largest record batch a Kafka producer may send, 1 to the node's
    /// `max_batch_bytes`; `null`: the node's again; left out: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, nullable, minimum = 1)]
    pub max_message_bytes: Option<Option<u64>>,
    /// A compacted stream's tuning; each field left out stays as it is.
    #[serde(default)]
    pub compaction: Option<CompactionPatch>,
}

/// `PATCH /streams/{name}`'s `compaction`: how a compacted stream's runs
/// are tuned (its policy, `cleanup` and memory stay as created).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompactionPatch {
    /// How long a tombstone stays after compaction reaches it.
    pub delete_retention_ms: Option<u64>,
    /// Segments younger than this are not compacted yet.
    pub min_compaction_lag_ms: Option<u64>,
    /// Dirty bytes / all bytes that trigger a run, 0 to 1.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_cleanable_dirty_ratio: Option<f64>,
}

impl CompactionPatch {
    fn change(&self) -> Result<TuningChange, Error> {
        let ppm = match self.min_cleanable_dirty_ratio {
            Some(r) => Some(
                Compaction::ratio_ppm(r)
                    .ok_or_else(|| Error::invalid("min_cleanable_dirty_ratio must be between 0 and 1"))?,
            ),
            None => None,
        };
        Ok(TuningChange {
            delete_retention_ms: self.delete_retention_ms,
            min_compaction_lag_ms: self.min_compaction_lag_ms,
            min_cleanable_dirty_ppm: ppm,
        })
    }
}

/// A field that is present: `Some(None)` for `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Change a stream's settings
///
/// `retention_ms` and `retention_bytes`, a replicated stream's
/// `min_insync_replicas`, `max_message_bytes`, a compacted stream's
/// `compaction` tuning, and a larger `partitions` count.
/// Durable when answered; tiering applies a retention from its next pass,
/// and pipelines using the stream restart to use new partitions.
#[utoipa::path(patch, path = "/streams/{name}", tag = "streams", request_body = AlterStream,
    params(("name" = String, Path, description = "Stream name")),
    responses(
        (status = 200, description = "The stream with its new settings", body = StreamOut),
        (status = 400, body = ErrorBody,
            description = "`invalid_request` (malformed body, a reserved name, more partitions than \
                `max_partitions`, replicas not in the cluster), `invalid_config` (retention on a `compact` \
                stream, zero, fewer partitions, `min_insync_replicas` above the replicas, `max_message_bytes` \
                above the node's `max_batch_bytes`, `compaction` on a stream that is not compacted)"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`", body = ErrorBody),
        (status = 409, description = "`view_read_only`: the name is a view; `node_full`; `settings_conflict`: \
            another node was asked to change the stream's settings at the same moment and every node keeps that \
            change, not this one", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`, `replica_unavailable` (a replicated \
            stream: a node did not take the change; ask again once every node is up)", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn alter_stream(
    State(host): State<Host>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Res<Json<StreamOut>> {
    let req: AlterStream =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("malformed stream settings JSON: {e}")))?;
    let change = SettingsChange {
        retention: RetentionChange {
            ms: req.retention_ms,
            bytes: req.retention_bytes,
        },
        min_insync_replicas: req.min_insync_replicas,
        max_message_bytes: req.max_message_bytes,
        compaction: req
            .compaction
            .as_ref()
            .map(CompactionPatch::change)
            .transpose()?
            .unwrap_or_default(),
    };
    let settings = change != SettingsChange::default();
    if let Some(n) = req.partitions {
        host.add_partitions(&name, n, true).await?;
    }
    if settings {
        host.set_settings(&name, change, true).await?;
    }
    if let Some(n) = req.partitions {
        host.add_partitions(&name, n, false).await?;
    }
    if settings {
        host.set_settings(&name, change, false).await?;
    }
    Ok(Json(host.describe_stream(&name)?.into()))
}

/// Query of `DELETE /streams/{name}/partitions/{partition}/records`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteRecordsQuery {
    /// Delete the records below this offset (at most the end); without it,
    /// every record.
    pub before: Option<u64>,
}

/// The partition's start after a deletion.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeletedOut {
    /// The first offset still readable.
    pub start_offset: u64,
}

/// Delete a partition's records below an offset
///
/// The partition's start moves to `before` (Kafka's DeleteRecords): the
/// records below are no longer readable, durably, and tiered segments
/// wholly below go with the next retention pass. Offsets are never reused.
#[utoipa::path(delete, path = "/streams/{name}/partitions/{partition}/records", tag = "records",
    params(
        ("name" = String, Path, description = "Stream name"),
        ("partition" = u32, Path, description = "Partition index, from 0"),
        DeleteRecordsQuery,
    ),
    responses(
        (status = 200, description = "The partition's new start", body = DeletedOut),
        (status = 400, body = ErrorBody,
            description = "`offset_out_of_range` (`before` past the end), `invalid_config` (a stream compacted \
                without `delete`), `invalid_request` (a reserved name, a bad query)"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`, `partition_not_found`", body = ErrorBody),
        (status = 409, description = "`view_read_only`: the name is a view", body = ErrorBody),
        (status = 421, description = "`not_leader`: a replicated partition's records are deleted on its leader \
            (named in the message)", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 504, description = "`replication_timeout`: deleted on the leader; not every in-sync replica \
            confirmed within `acks_timeout` (they follow as they fetch)", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn delete_records(
    State(host): State<Host>,
    Path((name, partition)): Path<(String, u32)>,
    Query(q): Query<DeleteRecordsQuery>,
) -> Res<Json<DeletedOut>> {
    let start_offset = host.delete_records(&name, partition, q.before).await?;
    Ok(Json(DeletedOut { start_offset }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_out_null_and_a_number_differ() {
        let a: AlterStream = serde_json::from_str(r#"{"retention_ms": null, "retention_bytes": 5}"#).unwrap();
        assert_eq!((a.retention_ms, a.retention_bytes), (Some(None), Some(Some(5))));
        let b: AlterStream = serde_json::from_str("{}").unwrap();
        assert_eq!((b.retention_ms, b.retention_bytes), (None, None));
        assert!(serde_json::from_str::<AlterStream>(r#"{"name": "x"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<AlterStream>(r#"{"partitions": 3}"#)
                .unwrap()
                .partitions,
            Some(3)
        );
        assert!(serde_json::from_str::<AlterStream>(r#"{"retention_ms": -1}"#).is_err());
    }
}
