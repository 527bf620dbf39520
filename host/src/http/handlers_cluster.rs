//! Handlers of the cluster's internal routes (`/internal/...`: nodes talk
//! to each other here, proving their node id with the cluster's secret; see
//! `super::auth`) and of replication
//! admin calls. Like every handler, they parse, call the [`Host`] and shape
//! the answer; errors map to statuses in [`super::error`] alone.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Path};
use super::wire::StreamOut;
use crate::error::Error;
use crate::node::{ElectionKind, FetchRequest, LeaderChange, PartitionRef, PartitionState, RawReadRequest};
use crate::node::{Host, PartitionsSpec, SettingsSpec, StreamSpec, SyncAnswer, SyncAsk};

type Res<T> = Result<T, ApiError>;

fn json<T: serde::de::DeserializeOwned>(body: Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(&body).map_err(|e| ApiError(Error::invalid(format!("malformed {what}: {e}"))))
}

/// Replication fetch (internal)
///
/// A follower asks its leader for data from its log end. The answer is
/// binary (see `host/src/cluster/wire.rs`): `SLRF`, a version byte, a
/// little-endian header length, a JSON header, then at most `max_bytes`
/// of batch data or one fragment of a larger batch.
#[utoipa::path(post, path = "/internal/replication/fetch", tag = "cluster", request_body = FetchRequest,
    responses(
        (status = 200, description = "Header and data", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`, `partition_not_found`", body = ErrorBody),
        (status = 409, description = "`stream_mismatch`, `stale_epoch`", body = ErrorBody),
        (status = 500, description = "`io_error`, `data_corrupt`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `object_store_unavailable`", body = ErrorBody),
    ))]
pub async fn fetch(
    State(host): State<Host>,
    axum::Extension(peer): axum::Extension<super::auth::PeerNode>,
    Body(body): Body,
) -> Res<([(axum::http::HeaderName, &'static str); 1], Vec<u8>)> {
    let req: FetchRequest = json(body, "fetch request")?;
    // A node fetches as itself: in-sync sets and acks=all count replicas
    // by the fetches they make.
    if req.replica != peer.0 {
        return Err(ApiError(Error::new(
            crate::error::ErrorKind::Unauthorized,
            "unauthorized",
            format!("node {} fetched in the name of node {}", peer.0, req.replica),
        )));
    }
    let bytes = host.serve_fetch(req).await?;
    Ok(([(CONTENT_TYPE, "application/octet-stream")], bytes))
}

/// Read a replica's stored batches (internal)
///
/// This node's batches from `offset` on, in the fetch answer's format, above
/// the high watermark too, and with no effect on replication: to compare
/// replicas byte for byte.
#[utoipa::path(post, path = "/internal/replication/read", tag = "cluster", request_body = RawReadRequest,
    responses(
        (status = 200, description = "Header and data", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "`invalid_request`, `offset_out_of_range`, `not_replicated`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`, `partition_not_found`", body = ErrorBody),
        (status = 500, description = "`io_error`, `data_corrupt`, `internal`", body = ErrorBody),
    ))]
pub async fn raw_read(
    State(host): State<Host>,
    Body(body): Body,
) -> Res<([(axum::http::HeaderName, &'static str); 1], Vec<u8>)> {
    let req: RawReadRequest = json(body, "read request")?;
    let bytes = host.serve_read(req).await?;
    Ok(([(CONTENT_TYPE, "application/octet-stream")], bytes))
}

/// Create a replicated stream here (internal)
///
/// Another node creating a replicated stream asks every node to create it
/// with the same name, creation time and assignment. The same spec again
/// is a success.
#[utoipa::path(post, path = "/internal/streams", tag = "cluster", request_body = StreamSpec,
    responses(
        (status = 200, description = "Created (or already there)", body = StreamOut),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 409, description = "`stream_exists` (a different stream of that name)", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn create_stream(State(host): State<Host>, Body(body): Body) -> Res<Json<StreamOut>> {
    let spec: StreamSpec = json(body, "stream spec")?;
    Ok(Json(host.create_from_spec(&spec).await?.into()))
}

/// Set a replicated stream's settings here (internal)
///
/// The node whose client changed a replicated stream's settings
/// (retention, own minimum in-sync set, own Kafka batch limit) asks every
/// other node to set the same, whole. The same settings again are a
/// success.
#[utoipa::path(post, path = "/internal/streams/settings", tag = "cluster", request_body = SettingsSpec,
    responses(
        (status = 200, description = "Set (or already so)", body = StreamOut),
        (status = 400, description = "`invalid_request`, `invalid_config`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`", body = ErrorBody),
        (status = 409, description = "`stream_mismatch` (another stream of that name)", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn set_settings(State(host): State<Host>, Body(body): Body) -> Res<Json<StreamOut>> {
    let spec: SettingsSpec = json(body, "stream settings")?;
    Ok(Json(host.set_settings_from_peer(&spec).await?.into()))
}

/// What this node holds newer of another's replicated streams (internal)
///
/// Every node tells every other what it holds of its replicated streams
/// each `[cluster] settings_sync`, and takes what they answer: settings
/// stamped newer than its own, partitions beyond its count, and which of
/// its streams they deleted (changes it missed while down or cut off).
#[utoipa::path(post, path = "/internal/streams/sync", tag = "cluster", request_body = SyncAsk,
    responses(
        (status = 200, description = "Newer settings, more partitions with their replicas, streams deleted", body = SyncAnswer),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ))]
pub async fn sync_streams(State(host): State<Host>, Body(body): Body) -> Res<Json<SyncAnswer>> {
    let ask: SyncAsk = json(body, "sync request")?;
    Ok(Json(host.sync_answer(&ask).await))
}

/// Add partitions to a replicated stream here (internal)
///
/// The node whose client grew a replicated stream asks every other node to
/// add the same partitions, placed on the same replicas. The same
/// partitions again are a success.
#[utoipa::path(post, path = "/internal/streams/partitions", tag = "cluster", request_body = PartitionsSpec,
    responses(
        (status = 200, description = "Added (or already there)", body = StreamOut),
        (status = 400, description = "`invalid_request`, `invalid_config`, `invalid_partitions`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`", body = ErrorBody),
        (status = 409, description = "`stream_mismatch` (another stream of that name), `node_full` (`max_total_partitions` reached here)", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn add_partitions(State(host): State<Host>, Body(body): Body) -> Res<Json<StreamOut>> {
    let spec: PartitionsSpec = json(body, "partitions")?;
    Ok(Json(host.add_partitions_from_peer(&spec).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteIn {
    pub name: String,
    /// Delete only a replicated stream of that name (a stream of this node
    /// alone is answered `stream_not_found`).
    #[serde(default)]
    pub replicated_only: bool,
    /// Delete only the stream of that name created at this time (another
    /// incarnation is answered `stream_not_found`): how a create that did
    /// not reach every node is taken back.
    #[serde(default)]
    pub created_ms: Option<u64>,
}

/// Delete a replicated stream here (internal)
#[utoipa::path(post, path = "/internal/streams/delete", tag = "cluster", request_body = DeleteIn,
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn delete_stream(State(host): State<Host>, Body(body): Body) -> Res<StatusCode> {
    let req: DeleteIn = json(body, "delete request")?;
    host.delete_local(&req.name, req.replicated_only, req.created_ms)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A partition's state on this node (internal)
#[utoipa::path(post, path = "/internal/partition/state", tag = "cluster", request_body = PartitionRef,
    responses(
        (status = 200, description = "Leader, epoch, log end, high watermark, in-sync set", body = PartitionState),
        (status = 400, description = "`invalid_request`, `not_replicated`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`, `partition_not_found`", body = ErrorBody),
    ))]
pub async fn partition_state(State(host): State<Host>, Body(body): Body) -> Res<Json<PartitionState>> {
    let at: PartitionRef = json(body, "partition")?;
    Ok(Json(host.partition_state(&at.stream, at.partition)?))
}

/// Apply a leader change here (internal)
#[utoipa::path(post, path = "/internal/partition/leader", tag = "cluster", request_body = LeaderChange,
    responses(
        (status = 200, description = "This node's state after the change", body = PartitionState),
        (status = 400, description = "`invalid_request`, `not_replicated`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`, `partition_not_found`", body = ErrorBody),
        (status = 409, description = "`stale_epoch`, `stream_mismatch`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn apply_leader(State(host): State<Host>, Body(body): Body) -> Res<Json<PartitionState>> {
    let change: LeaderChange = json(body, "leader change")?;
    Ok(Json(host.apply_leader(change).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveLeaderIn {
    /// The node id to lead the partition (one of its replicas).
    pub node: u32,
    /// Move even if the node is not in the in-sync set (acknowledged
    /// records it misses are lost).
    #[serde(default)]
    pub force: bool,
}

/// Move a partition's leader
///
/// Manual leader change (there is no automatic failover): the old leader,
/// if up, stops taking appends; the new one first fetches what it misses,
/// then leads under a new epoch; the other replicas follow it. Any node
/// can be asked.
#[utoipa::path(post, path = "/streams/{name}/partitions/{partition}/leader", tag = "cluster",
    params(
        ("name" = String, Path, description = "Stream name"),
        ("partition" = u32, Path, description = "Partition index, from 0"),
    ),
    request_body = MoveLeaderIn,
    responses(
        (status = 200, description = "The new leader's state", body = PartitionState),
        (status = 400, description = "`not_in_sync` (without `force`), `invalid_request` (not a replica, drain timed out), `not_replicated`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`, `partition_not_found`", body = ErrorBody),
        (status = 409, description = "`stale_epoch`, `stream_mismatch`", body = ErrorBody),
        (status = 503, description = "`replica_unavailable`: the target did not answer", body = ErrorBody),
    ))]
pub async fn move_leader(
    State(host): State<Host>,
    Path((stream, partition)): Path<(String, u32)>,
    Body(body): Body,
) -> Res<Json<PartitionState>> {
    let req: MoveLeaderIn = json(body, "leader move")?;
    Ok(Json(host.move_leader(&stream, partition, req.node, req.force).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ElectIn {
    #[serde(default, rename = "type")]
    pub kind: ElectionKind,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ElectOut {
    /// False when no election was needed (the preferred replica leads; for
    /// `unclean`, the leader answers; or the stream is not replicated).
    pub elected: bool,
    /// The new leader's state, when there was an election.
    pub state: Option<PartitionState>,
}

/// Elect a partition's leader
///
/// A leader move chosen by rule, as Kafka's ElectLeaders: `preferred`
/// brings the leadership back to the first replica of the assignment (after
/// a node restarted, say) if it is in sync; `unclean` fails over from a
/// leader that does not answer. Any node can be asked.
#[utoipa::path(post, path = "/streams/{name}/partitions/{partition}/elect", tag = "cluster",
    params(
        ("name" = String, Path, description = "Stream name"),
        ("partition" = u32, Path, description = "Partition index, from 0"),
    ),
    request_body = ElectIn,
    responses(
        (status = 200, description = "Elected, or no election needed", body = ElectOut),
        (status = 400, description = "`not_in_sync` (the preferred replica), `invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`, `partition_not_found`", body = ErrorBody),
        (status = 409, description = "`stale_epoch`, `stream_mismatch`", body = ErrorBody),
        (status = 503, description = "`replica_unavailable` (the preferred replica did not answer), `no_eligible_leader`", body = ErrorBody),
    ))]
pub async fn elect_leader(
    State(host): State<Host>,
    Path((stream, partition)): Path<(String, u32)>,
    Body(body): Body,
) -> Res<Json<ElectOut>> {
    let req: ElectIn = json(body, "election")?;
    let state = host.elect_leader(&stream, partition, req.kind).await?;
    Ok(Json(ElectOut {
        elected: state.is_some(),
        state,
    }))
}
