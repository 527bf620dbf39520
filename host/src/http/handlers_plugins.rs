//! Plugin and pipeline handlers (see [`super::handlers`] for the rest).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::ErrorBody;
use super::extract::{Body, Path, PluginBody, Query};
use super::handlers::Res;
use super::openapi::PluginInfoDoc;
use super::pagination::{PageQuery, page};
use super::wire::{CreatePipeline, PipelinesOut, PluginVersionOut, PluginsOut};
use crate::error::Error;
use crate::node::Host;
use crate::node::PipelineStatus;

/// Upload a plugin version
///
/// The body is the plugin's WebAssembly component (`.wasm`, at most
/// `plugins.max_upload_bytes`, 4 MiB by default). It is compiled and checked
/// (transform or compaction world, SDK version) before it is stored as the
/// plugin's next version. Past `plugins.max_versions` (100), the oldest
/// version no pipeline, view or compacted stream pins is removed.
#[utoipa::path(put, path = "/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    request_body(description = "The `.wasm` component (required: an empty body is refused)", content(
        (super::openapi::WasmBody = "application/wasm"),
        (super::openapi::WasmBody = "application/octet-stream"),
    )),
    responses(
        (status = 201, description = "Stored as a new version", body = PluginVersionOut),
        (status = 400, body = ErrorBody,
            description = "`invalid_request` (empty body, bad name), `invalid_plugin` (also: imports other than \
                WASI, more functions than `plugins.max_functions`), `wrong_plugin_world`, `incompatible_plugin`, \
                `body_timeout`"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 409, description = "`too_many_versions` (every version pinned)", body = ErrorBody),
        (status = 413, description = "`payload_too_large` (`plugins.max_upload_bytes`)", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`busy` (compile slots taken for `plugins.compile_wait`)", body = ErrorBody),
    ))]
pub async fn put_plugin(
    State(host): State<Host>,
    Path(name): Path<String>,
    PluginBody(body): PluginBody,
) -> Res<(StatusCode, Json<PluginVersionOut>)> {
    if body.is_empty() {
        return Err(Error::invalid("the body must be the plugin's .wasm component (it is empty)").into());
    }
    let version = host.put_plugin(&name, body.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(PluginVersionOut { name, version })))
}

/// List plugins
#[utoipa::path(get, path = "/plugins", tag = "plugins", params(PageQuery),
    responses(
        (status = 200, description = "One page of plugins and their versions, by name", body = PluginsOut),
        (status = 400, description = "`invalid_request` (bad `limit`)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ))]
pub async fn list_plugins(State(host): State<Host>, Query(q): Query<PageQuery>) -> Res<Json<PluginsOut>> {
    let (plugins, next_after) = page(host.list_plugins(), |p| &p.name, &q)?;
    Ok(Json(PluginsOut { plugins, next_after }))
}

/// Describe a plugin
#[utoipa::path(get, path = "/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses(
        (status = 200, description = "The plugin and its versions, ascending", body = PluginInfoDoc),
        (status = 400, description = "`invalid_request` (bad name)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`plugin_not_found`", body = ErrorBody),
    ))]
pub async fn describe_plugin(State(host): State<Host>, Path(name): Path<String>) -> Res<Json<crate::node::PluginInfo>> {
    Ok(Json(host.describe_plugin(&name)?))
}

/// Delete a plugin
///
/// Deletes every version.
#[utoipa::path(delete, path = "/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_request` (bad name)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`plugin_not_found`", body = ErrorBody),
        (status = 409, description = "`plugin_in_use` by a pipeline", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
    ))]
pub async fn delete_plugin(State(host): State<Host>, Path(name): Path<String>) -> Res<StatusCode> {
    host.delete_plugin(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create a pipeline
///
/// Starts it unless `paused`: input stream -> transform plugin -> output
/// stream, exactly once.
#[utoipa::path(post, path = "/pipelines", tag = "pipelines", request_body = CreatePipeline,
    responses(
        (status = 201, description = "Created", body = PipelineStatus),
        (status = 400, body = ErrorBody,
            description = "`invalid_request`, `wrong_plugin_world`, `plugin_config_rejected`"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, body = ErrorBody,
            description = "`stream_not_found`, `plugin_not_found`, `plugin_version_not_found`"),
        (status = 409, description = "`pipeline_exists`, `node_full` (`plugins.max_pipelines`)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn create_pipeline(State(host): State<Host>, Body(body): Body) -> Res<(StatusCode, Json<PipelineStatus>)> {
    let req: CreatePipeline =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("malformed pipeline JSON: {e}")))?;
    let spec = crate::node::PipelineMeta {
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

/// List pipelines
#[utoipa::path(get, path = "/pipelines", tag = "pipelines", params(PageQuery),
    responses(
        (status = 200, description = "One page of pipelines' statuses, by name", body = PipelinesOut),
        (status = 400, description = "`invalid_request` (bad `limit`)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ))]
pub async fn list_pipelines(State(host): State<Host>, Query(q): Query<PageQuery>) -> Res<Json<PipelinesOut>> {
    let (pipelines, next_after) = page(host.list_pipelines().await, |p| &p.name, &q)?;
    Ok(Json(PipelinesOut { pipelines, next_after }))
}

/// Pipeline status
///
/// State, error, counters and per-partition position and lag.
#[utoipa::path(get, path = "/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name")),
    responses(
        (status = 200, description = "The pipeline's status", body = PipelineStatus),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`pipeline_not_found`", body = ErrorBody),
    ))]
pub async fn pipeline_status(State(host): State<Host>, Path(name): Path<String>) -> Res<Json<PipelineStatus>> {
    Ok(Json(host.pipeline_status(&name).await?))
}

/// Pause a pipeline
#[utoipa::path(post, path = "/pipelines/{name}/pause", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name")),
    responses(
        (status = 200, description = "The pipeline's status", body = PipelineStatus),
        (status = 400, body = ErrorBody,
            description = "`invalid_request`, `wrong_plugin_world`, `plugin_config_rejected`"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`pipeline_not_found`, `plugin_not_found`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
    ))]
pub async fn pause_pipeline(State(host): State<Host>, Path(name): Path<String>) -> Res<Json<PipelineStatus>> {
    set_paused(&host, &name, true).await
}

/// Resume a pipeline
///
/// A pipeline paused by an error retries from the failed batch.
#[utoipa::path(post, path = "/pipelines/{name}/resume", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name")),
    responses(
        (status = 200, description = "The pipeline's status", body = PipelineStatus),
        (status = 400, body = ErrorBody,
            description = "`invalid_request`, `wrong_plugin_world`, `plugin_config_rejected`"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`pipeline_not_found`, `plugin_not_found`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
    ))]
pub async fn resume_pipeline(State(host): State<Host>, Path(name): Path<String>) -> Res<Json<PipelineStatus>> {
    set_paused(&host, &name, false).await
}

/// The body of pause and resume.
async fn set_paused(host: &Host, name: &str, paused: bool) -> Res<Json<PipelineStatus>> {
    let status = match paused {
        true => host.pause_pipeline(name).await?,
        false => host.resume_pipeline(name).await?,
    };
    Ok(Json(status))
}

/// Delete a pipeline
#[utoipa::path(delete, path = "/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`pipeline_not_found`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
    ))]
pub async fn delete_pipeline(State(host): State<Host>, Path(name): Path<String>) -> Res<StatusCode> {
    host.delete_pipeline(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
