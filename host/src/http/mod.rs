//! The HTTP API (axum): health, metrics, the OpenAPI document
//! (`/openapi.json`), streams, produce and consume (optionally through a
//! transform plugin), compaction, plugin upload/list/delete, pipelines,
//! views, consumer groups.
//!
//! Owns routing, request limits, authentication and the JSON wire format.
//! Every error answer has the shape `{"error": {"code", "message"}}` and its
//! status comes from [`error::status_of`] alone.

pub mod auth;
pub mod error;
mod extract;
pub mod handlers;
pub mod handlers_cluster;
pub mod handlers_groups;
pub mod handlers_plugins;
pub mod handlers_settings;
pub mod handlers_views;
pub mod openapi;
pub mod pagination;
mod serve;
pub mod wire;
pub mod wire_headers;
pub mod wire_streams;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_longpoll;
#[cfg(test)]
mod tests_openapi;
#[cfg(test)]
mod tests_plugin_limits;
#[cfg(test)]
mod tests_plugins;
#[cfg(test)]
mod tests_streams;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::handlers as h;
use self::handlers_cluster as c;
use self::handlers_groups as g;
use self::handlers_plugins as p;
use self::handlers_settings as s;
use self::handlers_views as v;
use crate::node::Host;
pub use serve::serve;

/// Every route, registered with its OpenAPI operation: `routes!` takes the
/// path and methods from each handler's `#[utoipa::path]`, so what is served
/// and what `/openapi.json` documents cannot differ. Do not add routes with
/// plain `.route(...)`: they would be served undocumented (`tests_openapi`
/// catches that).
///
/// - `GET /health`, `GET /ready` (503 with reasons when not ready), `GET /metrics`, `GET /openapi.json` (this API's OpenAPI
///   document; like `/health`, open without a token)
/// - `GET|POST /streams`, `GET|PATCH|DELETE /streams/{name}`,
///   `GET /streams/{name}/status`
/// - `POST /streams/{name}/compact`, `GET /streams/{name}/compaction`
/// - `GET|POST|DELETE /streams/{name}/partitions/{partition}/records`
/// - `GET /plugins`, `GET|PUT|DELETE /plugins/{name}`
/// - `GET|POST /pipelines`, `GET|DELETE /pipelines/{name}`,
///   `POST /pipelines/{name}/pause`, `POST /pipelines/{name}/resume`
/// - `GET|POST /views`, `GET|DELETE /views/{name}` (read a view like a stream)
/// - `GET /groups`, `GET|DELETE /groups/{group}`, `POST /groups/{group}/offsets`,
///   `DELETE /groups/{group}/offsets?stream=`, `POST /groups/{group}/reset`
/// - `POST /streams/{name}/partitions/{partition}/leader` (manual leader move)
/// - internal, between nodes: `POST /internal/replication/fetch`,
///   `POST /internal/replication/read`,
///   `POST /internal/streams`, `POST /internal/streams/delete`,
///   `POST /internal/streams/settings`, `POST /internal/streams/partitions`,
///   `POST /internal/partition/state`, `POST /internal/partition/leader`
pub(crate) fn api() -> OpenApiRouter<Host> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(h::health))
        .routes(routes!(h::ready))
        .routes(routes!(h::metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(h::list_streams, h::create_stream))
        .routes(routes!(h::describe_stream, h::delete_stream, s::alter_stream))
        .routes(routes!(h::stream_status))
        .routes(routes!(h::compact_stream))
        .routes(routes!(h::compaction_status))
        .routes(routes!(h::consume, h::produce, s::delete_records))
        .routes(routes!(p::list_plugins))
        .routes(routes!(p::describe_plugin, p::put_plugin, p::delete_plugin))
        .routes(routes!(p::list_pipelines, p::create_pipeline))
        .routes(routes!(p::pipeline_status, p::delete_pipeline))
        .routes(routes!(p::pause_pipeline))
        .routes(routes!(p::resume_pipeline))
        .routes(routes!(v::list_views, v::create_view))
        .routes(routes!(v::describe_view, v::delete_view))
        .routes(routes!(g::list_groups))
        .routes(routes!(g::describe_group, g::delete_group))
        .routes(routes!(g::commit_offsets, g::delete_offsets))
        .routes(routes!(g::reset_group))
        .routes(routes!(c::fetch))
        .routes(routes!(c::raw_read))
        .routes(routes!(c::create_stream))
        .routes(routes!(c::delete_stream))
        .routes(routes!(c::set_settings))
        .routes(routes!(c::sync_streams))
        .routes(routes!(c::add_partitions))
        .routes(routes!(c::partition_state))
        .routes(routes!(c::apply_leader))
        .routes(routes!(c::move_leader))
        .routes(routes!(c::elect_leader))
}

pub fn router(host: Host) -> Router {
    let limit = usize::try_from(host.settings().max_request_bytes.as_u64()).unwrap_or(usize::MAX);
    let (routes, _doc) = api().split_for_parts();
    routes
        .route_layer(axum::middleware::from_fn(handlers::track))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(host.clone(), auth::require_token))
        .layer(axum::middleware::from_fn_with_state(host.clone(), auth::same_site))
        .with_state(host)
}
