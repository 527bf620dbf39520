//! The HTTP API (axum): health, metrics, streams, produce and consume
//! (optionally through a transform plugin), plugin upload/list/delete,
//! pipelines.
//!
//! Owns routing, request limits, authentication and the JSON wire format.
//! Every error answer has the shape `{"error": {"code", "message"}}` and its
//! status comes from [`error::status_of`] alone.

pub mod auth;
pub mod error;
pub mod handlers;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_plugins;
#[cfg(test)]
mod tests_streams;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::host::Host;

pub fn router(host: Host) -> Router {
    let limit = usize::try_from(host.settings().max_request_bytes.as_u64()).unwrap_or(usize::MAX);
    let token: Option<Arc<str>> = host.settings().auth_token.as_deref().map(Arc::from);
    Router::new()
        .route("/health", get(handlers::health))
        .route("/metrics", get(handlers::metrics))
        .route("/streams", get(handlers::list_streams).post(handlers::create_stream))
        .route(
            "/streams/{name}",
            get(handlers::describe_stream).delete(handlers::delete_stream),
        )
        .route("/streams/{name}/status", get(handlers::stream_status))
        .route("/streams/{name}/compact", post(handlers::compact_stream))
        .route("/streams/{name}/compaction", get(handlers::compaction_status))
        .route(
            "/streams/{name}/partitions/{partition}/records",
            get(handlers::consume).post(handlers::produce),
        )
        .route("/plugins", get(handlers::list_plugins))
        .route(
            "/plugins/{name}",
            get(handlers::describe_plugin)
                .put(handlers::put_plugin)
                .delete(handlers::delete_plugin),
        )
        .route(
            "/pipelines",
            get(handlers::list_pipelines).post(handlers::create_pipeline),
        )
        .route(
            "/pipelines/{name}",
            get(handlers::pipeline_status).delete(handlers::delete_pipeline),
        )
        .route("/pipelines/{name}/pause", post(handlers::pause_pipeline))
        .route("/pipelines/{name}/resume", post(handlers::resume_pipeline))
        .route_layer(axum::middleware::from_fn(handlers::track))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(token, auth::require_token))
        .with_state(host)
}
