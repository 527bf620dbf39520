//! Request handlers: parse and validate the request, call the [`Host`], shape
//! the answer. No status codes are built here except success codes.
//! Plugin and pipeline handlers are in [`super::handlers_plugins`]. Each
//! handler's `#[utoipa::path]` is its route and its OpenAPI operation (see
//! [`super::api`]); the statuses it lists are the ones its errors can map to.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiError, ErrorBody};
use super::extract::{Body, BudgetedBody, Path, Query};
use super::openapi::ProduceBody;
use super::pagination::{PageQuery, page};
use super::wire::{
    CompactRequestedOut, CompactionStatusOut, ConsumeOut, ConsumeQuery, CreateStream, Encoding, HealthOut, ProduceOut,
    RecordOut, StreamOut, StreamsOut, parse_produce_body,
};
use crate::error::{Error, ErrorKind};
use crate::node::{Acks, Host, PartitionStatus, ReadLimits};

/// Query of a produce request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceQuery {
    #[serde(default)]
    pub acks: Acks,
}

/// Per partition (in partition order): offsets, WAL range, upload lag and
/// tiering state.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StreamStatusOut {
    pub name: String,
    pub partitions: Vec<PartitionStatus>,
}

pub(super) type Res<T> = Result<T, ApiError>;

/// Liveness
///
/// Answers without a token even when one is configured.
#[utoipa::path(get, path = "/health", tag = "system", security(()),
    responses((status = 200, description = "The node is up", body = HealthOut)))]
pub async fn health() -> Json<HealthOut> {
    Json(HealthOut { status: "ok" })
}

/// Readiness
///
/// 200 when the node can take writes and keep its data moving; 503
/// `not_ready`, its message listing the reasons, while the WAL has failed
/// (until a restart), the node shuts down, a partition's tiering is fenced
/// or failing, or a follower's replication is stalled. Answers without a
/// token, like `/health`.
#[utoipa::path(get, path = "/ready", tag = "system", security(()),
    responses(
        (status = 200, description = "Ready", body = crate::node::Readiness),
        (status = 503, description = "`not_ready`: the message lists why", body = ErrorBody),
    ))]
pub async fn ready(State(host): State<Host>) -> Res<Json<crate::node::Readiness>> {
    let r = host.readiness();
    if !r.ready {
        let why = r.problems.join("; ");
        return Err(Error::new(crate::error::ErrorKind::Unavailable, "not_ready", why).into());
    }
    Ok(Json(r))
}

/// Prometheus metrics
///
/// Prometheus text exposition format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Metrics", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`metrics_unavailable`: another recorder was installed first", body = ErrorBody),
    ))]
pub async fn metrics(State(host): State<Host>) -> Res<([(axum::http::HeaderName, &'static str); 1], String)> {
    let body = host.render_metrics().await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

/// Counts and times every routed request by route template, method and
/// status (the template, not the path, so stream names do not multiply the
/// series).
pub async fn track(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::histogram!(crate::metrics::HTTP_REQUEST_SECONDS, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(crate::metrics::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        .increment(1);
    resp
}

/// Create a stream
#[utoipa::path(post, path = "/streams", tag = "streams", request_body = CreateStream,
    responses(
        (status = 201, description = "Created", body = StreamOut),
        (status = 400, body = ErrorBody,
            description = "`invalid_request`, `invalid_config`, `wrong_plugin_world`, `plugin_config_rejected`"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, body = ErrorBody,
            description = "`plugin_not_found`, `plugin_version_not_found` (compaction plugin)"),
        (status = 409, description = "`stream_exists`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn create_stream(State(host): State<Host>, Body(body): Body) -> Res<(StatusCode, Json<StreamOut>)> {
    let req: CreateStream =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("malformed stream JSON: {e}")))?;
    let info = host
        .create_stream_with(&req.name, req.partitions, req.config()?)
        .await?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// List streams
#[utoipa::path(get, path = "/streams", tag = "streams", params(PageQuery),
    responses(
        (status = 200, description = "One page of streams, by name", body = StreamsOut),
        (status = 400, description = "`invalid_request` (bad `limit`)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ))]
pub async fn list_streams(State(host): State<Host>, Query(q): Query<PageQuery>) -> Res<Json<StreamsOut>> {
    let (streams, next_after) = page(host.list_streams(), |s| &s.name, &q)?;
    Ok(Json(StreamsOut {
        streams: streams.into_iter().map(StreamOut::from).collect(),
        next_after,
    }))
}

/// Describe a stream
///
/// Settings and each partition's start and end offsets.
#[utoipa::path(get, path = "/streams/{name}", tag = "streams",
    params(("name" = String, Path, description = "Stream name")),
    responses(
        (status = 200, description = "The stream", body = StreamOut),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`", body = ErrorBody),
    ))]
pub async fn describe_stream(State(host): State<Host>, Path(name): Path<String>) -> Res<Json<StreamOut>> {
    Ok(Json(host.describe_stream(&name)?.into()))
}

/// Stream status
///
/// Per partition: offsets, WAL range, upload lag, tiered range, last error.
#[utoipa::path(get, path = "/streams/{name}/status", tag = "streams",
    params(("name" = String, Path, description = "Stream name")),
    responses(
        (status = 200, description = "Per-partition status", body = StreamStatusOut),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`", body = ErrorBody),
    ))]
pub async fn stream_status(State(host): State<Host>, Path(name): Path<String>) -> Res<Json<StreamStatusOut>> {
    let partitions = host.stream_status(&name)?;
    Ok(Json(StreamStatusOut { name, partitions }))
}

/// Request a compaction
///
/// Compacts every partition at the next round, whatever its dirty ratio.
#[utoipa::path(post, path = "/streams/{name}/compact", tag = "compaction",
    params(("name" = String, Path, description = "Stream name")),
    responses(
        (status = 202, description = "Requested", body = CompactRequestedOut),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`", body = ErrorBody),
        (status = 409, description = "`not_compacted`: the stream's cleanup is `delete`", body = ErrorBody),
    ))]
pub async fn compact_stream(
    State(host): State<Host>,
    Path(name): Path<String>,
) -> Res<(StatusCode, Json<CompactRequestedOut>)> {
    host.compact_stream(&name)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CompactRequestedOut {
            stream: name,
            requested: true,
        }),
    ))
}

/// Compaction status
///
/// Per partition: whether a run is going on, its progress, the last result
/// and the last error.
#[utoipa::path(get, path = "/streams/{name}/compaction", tag = "compaction",
    params(("name" = String, Path, description = "Stream name")),
    responses(
        (status = 200, description = "Per-partition compaction state", body = CompactionStatusOut),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`", body = ErrorBody),
    ))]
pub async fn compaction_status(State(host): State<Host>, Path(name): Path<String>) -> Res<Json<CompactionStatusOut>> {
    let partitions = host.compaction_status(&name)?;
    Ok(Json(CompactionStatusOut { name, partitions }))
}

/// Delete a stream
///
/// Deletes the stream and the offsets every group committed on it (as
/// Kafka does), so a stream created again under the name is read from
/// each group's reset position. If the offsets could not be deleted, the
/// stream is gone and the error says so; deleting it again (answered
/// `stream_not_found`) deletes them. In a cluster, a replicated stream is
/// deleted on every node; a node that is down (503
/// `replica_unavailable`) deletes its copy once it is back, within
/// `[cluster] settings_sync`, and deleting again from any node makes sure.
#[utoipa::path(delete, path = "/streams/{name}", tag = "streams",
    params(("name" = String, Path, description = "Stream name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`", body = ErrorBody),
        (status = 409, description = "`stream_in_use` by a pipeline or a view; `view_read_only` (the name is a view)", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`, `replica_unavailable`", body = ErrorBody),
        (status = 504, description = "`replication_timeout`: the deletion of committed offsets was not acknowledged by every in-sync replica in time", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn delete_stream(State(host): State<Host>, Path(name): Path<String>) -> Res<StatusCode> {
    host.delete_stream(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Produce records
///
/// Appends the records to the partition and answers once they are fsync'd.
/// The body is a JSON array of records or `{"records": [...]}`. On a
/// replicated partition, only the leader accepts appends (`not_leader`
/// names it), and `acks=all` answers once every in-sync replica holds them.
#[utoipa::path(post, path = "/streams/{name}/partitions/{partition}/records", tag = "records",
    params(
        ("name" = String, Path, description = "Stream name"),
        ("partition" = u32, Path, description = "Partition index, from 0"),
        ("acks" = Option<Acks>, Query, description = "`leader` (default): durable on the leader; `all`: on every in-sync replica"),
    ),
    request_body = ProduceBody,
    responses(
        (status = 200, description = "Appended", body = ProduceOut),
        (status = 400, description = "`invalid_request` (malformed JSON, bad base64, no records), \
            `key_required` (a record without a key for a stream compacted by record key)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`, `partition_not_found`", body = ErrorBody),
        (status = 409, description = "`view_read_only`: the name is a view", body = ErrorBody),
        (status = 413, description = "`payload_too_large`, `too_many_records`", body = ErrorBody),
        (status = 421, description = "`not_leader`: another node leads this partition", body = ErrorBody),
        (status = 500, description = "`io_error`, `data_corrupt`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
        (status = 504, description = "`replication_timeout` (`acks=all`): durable on the leader, not yet on every in-sync replica", body = ErrorBody),
    ))]
pub async fn produce(
    State(host): State<Host>,
    Path((stream, partition)): Path<(String, u32)>,
    Query(q): Query<ProduceQuery>,
    BudgetedBody { body, .. }: BudgetedBody,
) -> Res<Json<ProduceOut>> {
    let records = parse_produce_body(&body)?;
    let max = host.settings().http.max_records_per_request;
    if records.len() > max {
        return Err(Error::new(
            crate::error::ErrorKind::TooLarge,
            "too_many_records",
            format!(
                "{} records in one request; at most {max} ([http] max_records_per_request)",
                records.len()
            ),
        )
        .into());
    }
    let records = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.into_record(i))
        .collect::<Result<Vec<_>, Error>>()?;
    let a = match q.acks {
        Acks::All => host.append_acks(&stream, partition, &records, q.acks).await?,
        Acks::Leader => host.append(&stream, partition, &records).await?,
    };
    Ok(Json(ProduceOut {
        base_offset: a.base_offset,
        count: a.count,
    }))
}

/// Consume records
///
/// Reads from `offset` up to `max_records` records and about `max_bytes`
/// bytes. With `plugin`, the records pass through that transform plugin
/// first (nothing is stored); its configuration is given as repeated
/// `config.KEY=VALUE` query parameters (for example
/// `config.field=/level&config.value=error`). Any other query parameter is
/// an error. `name` may be a view: its input is read through the view's
/// plugin (and then through `plugin`, if given).
#[utoipa::path(get, path = "/streams/{name}/partitions/{partition}/records", tag = "records",
    params(
        ("name" = String, Path, description = "Stream name"),
        ("partition" = u32, Path, description = "Partition index, from 0"),
        ("offset" = Option<u64>, Query, description = "First offset to read (default 0)"),
        ("timestamp" = Option<u64>, Query,
            description = "Instead of `offset`: read from the first record whose timestamp (ms since the epoch) \
                is at or after this one (the partition's end if none is)"),
        ("max_records" = Option<u64>, Query, minimum = 1, description = "At most this many records (default 100)"),
        ("max_bytes" = Option<u64>, Query, minimum = 1,
            description = "About this many bytes at most (default 1048576)"),
        ("encoding" = Option<Encoding>, Query,
            description = "`auto` (default): text when UTF-8, else base64; `base64`: always base64"),
        ("headers" = Option<String>, Query,
            description = "`auto` (default): each record's headers as an object when its header names are unique, \
                else as a list of `{name, value}`; `list`: always the list"),
        ("plugin" = Option<String>, Query,
            description = "Transform plugin to read through; its config is `config.KEY=VALUE` parameters"),
        ("plugin_version" = Option<u32>, Query, description = "Plugin version (default: the latest); needs `plugin`"),
        ("wait_ms" = Option<u64>, Query, maximum = 60000,
            description = "Long-poll: if nothing is at or after `offset`, wait up to this long for a record \
                before answering (default 0: answer at once)"),
    ),
    responses(
        (status = 200, description = "The records read", body = ConsumeOut),
        (status = 400, body = ErrorBody,
            description = "`invalid_request`, `offset_out_of_range`, `wrong_plugin_world`, `plugin_config_rejected`"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, body = ErrorBody,
            description = "`stream_not_found`, `partition_not_found`, `trimmed`, `plugin_not_found`, \
                `plugin_version_not_found`"),
        (status = 422, body = ErrorBody,
            description = "`plugin_failed`, `plugin_trapped`, `plugin_timeout`, `plugin_memory_limit`, \
                `plugin_bad_output`"),
        (status = 500, description = "`io_error`, `data_corrupt`, `internal`", body = ErrorBody),
        (status = 503, description = "`object_store_unavailable`, `shutting_down`", body = ErrorBody),
    ))]
pub async fn consume(
    State(host): State<Host>,
    Path((stream, partition)): Path<(String, u32)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Res<Json<ConsumeOut>> {
    let q = ConsumeQuery::parse(pairs)?;
    let defaults = ReadLimits::default();
    let limits = ReadLimits {
        max_records: q.max_records.unwrap_or(defaults.max_records),
        max_bytes: q.max_bytes.unwrap_or(defaults.max_bytes),
    };
    if limits.max_records == 0 || limits.max_bytes == 0 {
        return Err(Error::invalid("max_records and max_bytes must be at least 1").into());
    }
    let offset = match q.timestamp {
        None => q.offset,
        Some(t) => match host.offset_for_timestamp(&stream, partition, t).await? {
            Some(found) => found.offset,
            None => host.stream_end(&stream, partition)?,
        },
    };
    if q.wait_ms > 0 {
        let wait = std::time::Duration::from_millis(q.wait_ms);
        host.wait_for_records(&stream, partition, offset, wait).await?;
    }
    let batch = match q.filter {
        Some(filter) => host.read_filtered(&stream, partition, offset, limits, filter).await?,
        None => host.read(&stream, partition, offset, limits).await?,
    };
    let force = q.encoding == Encoding::Base64;
    Ok(Json(ConsumeOut {
        records: batch
            .records
            .iter()
            .map(|r| RecordOut::new(r, force, q.headers_as_list))
            .collect(),
        next_offset: batch.next_offset,
        start_offset: batch.start_offset,
        end_offset: batch.end_offset,
    }))
}

pub async fn not_found() -> ApiError {
    ApiError(Error::new(ErrorKind::NotFound, "not_found", "no such route"))
}

pub async fn method_not_allowed() -> ApiError {
    ApiError(Error::new(
        ErrorKind::NotAllowed,
        "method_not_allowed",
        "method not allowed on this route",
    ))
}
