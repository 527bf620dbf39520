//! Handlers of the cluster's internal routes (`/internal/...`: nodes talk
//! to each other here, with the same token as clients) and of replication
//! admin calls. Like every handler, they parse, call the [`Host`] and shape
//! the answer; errors map to statuses in [`super::error`] alone.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::wire::StreamOut;
use crate::cluster::wire::FetchRequest;
use crate::error::Error;
use crate::host::{Host, StreamSpec};

type Res<T> = Result<T, ApiError>;

fn json<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>, what: &str) -> Result<T, ApiError> {
    let body = body?;
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
    body: Result<Bytes, BytesRejection>,
) -> Res<([(axum::http::HeaderName, &'static str); 1], Vec<u8>)> {
    let req: FetchRequest = json(body, "fetch request")?;
    let bytes = host.serve_fetch(req).await?;
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
    ))]
pub async fn create_stream(State(host): State<Host>, body: Result<Bytes, BytesRejection>) -> Res<Json<StreamOut>> {
    let spec: StreamSpec = json(body, "stream spec")?;
    Ok(Json(host.create_from_spec(&spec).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteIn {
    pub name: String,
}

/// Delete a replicated stream here (internal)
#[utoipa::path(post, path = "/internal/streams/delete", tag = "cluster", request_body = DeleteIn,
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
    ))]
pub async fn delete_stream(State(host): State<Host>, body: Result<Bytes, BytesRejection>) -> Res<StatusCode> {
    let req: DeleteIn = json(body, "delete request")?;
    host.delete_local(&req.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
