//! Request handlers: parse and validate the request, call the [`Host`], shape
//! the answer. No status codes are built here except success codes.

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};

use super::error::ApiError;
use super::wire::{
    ConsumeOut, ConsumeQuery, CreatePipeline, CreateStream, Encoding, PipelinesOut, PluginVersionOut, PluginsOut,
    ProduceOut, RecordOut, StreamOut, StreamsOut, parse_produce_body,
};
use crate::error::{Error, ErrorKind};
use crate::host::{Host, PartitionStatus, ReadLimits};

#[derive(Debug, serde::Serialize)]
pub struct StreamStatusOut {
    pub name: String,
    pub partitions: Vec<PartitionStatus>,
}

type Res<T> = Result<T, ApiError>;

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Prometheus text exposition (`GET /metrics`).
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

pub async fn create_stream(
    State(host): State<Host>,
    body: Result<Bytes, BytesRejection>,
) -> Res<(StatusCode, Json<StreamOut>)> {
    let body = body?;
    let req: CreateStream =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("malformed stream JSON: {e}")))?;
    let info = host
        .create_stream_with(&req.name, req.partitions, req.config()?)
        .await?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

pub async fn list_streams(State(host): State<Host>) -> Json<StreamsOut> {
    Json(StreamsOut {
        streams: host.list_streams().into_iter().map(StreamOut::from).collect(),
    })
}

pub async fn describe_stream(
    State(host): State<Host>,
    name: Result<Path<String>, PathRejection>,
) -> Res<Json<StreamOut>> {
    let Path(name) = name?;
    Ok(Json(host.describe_stream(&name)?.into()))
}

pub async fn stream_status(
    State(host): State<Host>,
    name: Result<Path<String>, PathRejection>,
) -> Res<Json<StreamStatusOut>> {
    let Path(name) = name?;
    let partitions = host.stream_status(&name)?;
    Ok(Json(StreamStatusOut { name, partitions }))
}

pub async fn compact_stream(
    State(host): State<Host>,
    name: Result<Path<String>, PathRejection>,
) -> Res<(StatusCode, Json<Value>)> {
    let Path(name) = name?;
    host.compact_stream(&name)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"stream": name, "requested": true}))))
}

pub async fn compaction_status(
    State(host): State<Host>,
    name: Result<Path<String>, PathRejection>,
) -> Res<Json<Value>> {
    let Path(name) = name?;
    let partitions = host.compaction_status(&name)?;
    Ok(Json(json!({"name": name, "partitions": partitions})))
}

pub async fn delete_stream(State(host): State<Host>, name: Result<Path<String>, PathRejection>) -> Res<StatusCode> {
    let Path(name) = name?;
    host.delete_stream(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn produce(
    State(host): State<Host>,
    path: Result<Path<(String, u32)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Res<Json<ProduceOut>> {
    let Path((stream, partition)) = path?;
    let body = body?;
    let records = parse_produce_body(&body)?
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.into_record(i))
        .collect::<Result<Vec<_>, Error>>()?;
    let a = host.append(&stream, partition, &records).await?;
    Ok(Json(ProduceOut {
        base_offset: a.base_offset,
        count: a.count,
        offsets: (a.base_offset..a.base_offset + a.count as u64).collect(),
    }))
}

pub async fn consume(
    State(host): State<Host>,
    path: Result<Path<(String, u32)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Res<Json<ConsumeOut>> {
    let Path((stream, partition)) = path?;
    let Query(pairs) = query?;
    let q = ConsumeQuery::parse(pairs)?;
    let defaults = ReadLimits::default();
    let limits = ReadLimits {
        max_records: q.max_records.unwrap_or(defaults.max_records),
        max_bytes: q.max_bytes.unwrap_or(defaults.max_bytes),
    };
    if limits.max_records == 0 || limits.max_bytes == 0 {
        return Err(Error::invalid("max_records and max_bytes must be at least 1").into());
    }
    let batch = match q.filter {
        Some(filter) => host.read_filtered(&stream, partition, q.offset, limits, filter).await?,
        None => host.read(&stream, partition, q.offset, limits).await?,
    };
    let force = q.encoding == Encoding::Base64;
    Ok(Json(ConsumeOut {
        records: batch.records.iter().map(|r| RecordOut::new(r, force)).collect(),
        next_offset: batch.next_offset,
        start_offset: batch.start_offset,
        end_offset: batch.end_offset,
    }))
}

pub async fn put_plugin(
    State(host): State<Host>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Res<(StatusCode, Json<PluginVersionOut>)> {
    let Path(name) = name?;
    let body = body?;
    if body.is_empty() {
        return Err(Error::invalid("the body must be the plugin's .wasm component (it is empty)").into());
    }
    let version = host.put_plugin(&name, body.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(PluginVersionOut { name, version })))
}

pub async fn list_plugins(State(host): State<Host>) -> Json<PluginsOut> {
    Json(PluginsOut {
        plugins: host.list_plugins(),
    })
}

pub async fn describe_plugin(
    State(host): State<Host>,
    name: Result<Path<String>, PathRejection>,
) -> Res<Json<crate::plugin::PluginInfo>> {
    let Path(name) = name?;
    Ok(Json(host.describe_plugin(&name)?))
}

pub async fn delete_plugin(State(host): State<Host>, name: Result<Path<String>, PathRejection>) -> Res<StatusCode> {
    let Path(name) = name?;
    host.delete_plugin(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn create_pipeline(
    State(host): State<Host>,
    body: Result<Bytes, BytesRejection>,
) -> Res<(StatusCode, Json<crate::pipeline::Status>)> {
    let body = body?;
    let req: CreatePipeline =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("malformed pipeline JSON: {e}")))?;
    let spec = crate::log::meta::PipelineMeta {
        id: 0,
        name: req.name,
        input: req.input,
        output: req.output,
        plugin: req.plugin,
        plugin_version: req.plugin_version,
        config: req.config.into_iter().collect(),
        batch_records: req.batch_records,
        paused: req.paused,
        created_ms: 0,
    };
    Ok((StatusCode::CREATED, Json(host.create_pipeline(spec).await?)))
}

pub async fn list_pipelines(State(host): State<Host>) -> Json<PipelinesOut> {
    Json(PipelinesOut {
        pipelines: host.list_pipelines().await,
    })
}

pub async fn pipeline_status(
    State(host): State<Host>,
    name: Result<Path<String>, PathRejection>,
) -> Res<Json<crate::pipeline::Status>> {
    let Path(name) = name?;
    Ok(Json(host.pipeline_status(&name).await?))
}

pub async fn pause_pipeline(
    State(host): State<Host>,
    name: Result<Path<String>, PathRejection>,
) -> Res<Json<crate::pipeline::Status>> {
    let Path(name) = name?;
    Ok(Json(host.pause_pipeline(&name).await?))
}

pub async fn resume_pipeline(
    State(host): State<Host>,
    name: Result<Path<String>, PathRejection>,
) -> Res<Json<crate::pipeline::Status>> {
    let Path(name) = name?;
    Ok(Json(host.resume_pipeline(&name).await?))
}

pub async fn delete_pipeline(State(host): State<Host>, name: Result<Path<String>, PathRejection>) -> Res<StatusCode> {
    let Path(name) = name?;
    host.delete_pipeline(&name).await?;
    Ok(StatusCode::NO_CONTENT)
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
