//! View handlers: create, list, describe, delete. A view is read like a
//! stream (`GET /streams/{view}/partitions/{p}/records`, Kafka Fetch):
//! its input's records through its transform plugin, nothing stored.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::extract::{Body, Path, Query};
use super::handlers::Res;
use super::pagination::{PageQuery, page};
use crate::error::Error;
use crate::node::{Host, ViewInfo, ViewSpec};

/// `POST /views` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateView {
    pub name: String,
    /// The stream the view reads.
    pub input: String,
    /// A transform plugin.
    pub plugin: String,
    /// A pinned version; by default every read uses the latest.
    #[serde(default)]
    pub plugin_version: Option<u32>,
    /// Plugin configuration: an object of strings.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ViewsOut {
    pub views: Vec<ViewInfo>,
    /// Set when more items follow: the `after` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// Query of a view delete.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteViewQuery {
    /// Delete even if groups have offsets committed on the view (their
    /// offsets on it are deleted too).
    #[serde(default)]
    pub force: bool,
}

/// Create a view
///
/// A named, read-only topic over `input`: readers (HTTP, Kafka, consumer
/// groups) get the input's records through the transform plugin at read
/// time. Offsets are the input's; filtered-out offsets are skipped.
#[utoipa::path(post, path = "/views", tag = "views", request_body = CreateView,
    responses(
        (status = 201, description = "Created", body = ViewInfo),
        (status = 400, body = ErrorBody,
            description = "`invalid_request`, `wrong_plugin_world`, `plugin_config_rejected`"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, body = ErrorBody,
            description = "`stream_not_found`, `plugin_not_found`, `plugin_version_not_found`"),
        (status = 409, description = "`view_exists`, `stream_exists` (the name is taken)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn create_view(State(host): State<Host>, Body(body): Body) -> Res<(StatusCode, Json<ViewInfo>)> {
    let req: CreateView =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("malformed view JSON: {e}")))?;
    let spec = ViewSpec {
        name: req.name,
        input: req.input,
        plugin: req.plugin,
        plugin_version: req.plugin_version,
        config: req.config.into_iter().collect(),
    };
    Ok((StatusCode::CREATED, Json(host.create_view(spec).await?)))
}

/// List views
#[utoipa::path(get, path = "/views", tag = "views", params(PageQuery),
    responses(
        (status = 200, description = "One page of views, by name", body = ViewsOut),
        (status = 400, description = "`invalid_request` (bad `limit`)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
    ))]
pub async fn list_views(State(host): State<Host>, Query(q): Query<PageQuery>) -> Res<Json<ViewsOut>> {
    let (views, next_after) = page(host.list_views().await?, |v| &v.name, &q)?;
    Ok(Json(ViewsOut { views, next_after }))
}

/// Describe a view
///
/// Its definition, partition count (the input's) and the groups with
/// offsets committed on it.
#[utoipa::path(get, path = "/views/{name}", tag = "views",
    params(("name" = String, Path, description = "View name")),
    responses(
        (status = 200, description = "The view", body = ViewInfo),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`view_not_found`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
    ))]
pub async fn describe_view(State(host): State<Host>, Path(name): Path<String>) -> Res<Json<ViewInfo>> {
    Ok(Json(host.describe_view(&name).await?))
}

/// Delete a view
///
/// Refused while a group has offsets committed on it, unless `force=true`
/// (which deletes those offsets too). The input stream is untouched.
#[utoipa::path(delete, path = "/views/{name}", tag = "views",
    params(("name" = String, Path, description = "View name"), DeleteViewQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_request` (unknown query parameter)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`view_not_found`", body = ErrorBody),
        (status = 409, description = "`view_in_use`: groups have offsets on it", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn delete_view(
    State(host): State<Host>,
    Path(name): Path<String>,
    Query(q): Query<DeleteViewQuery>,
) -> Res<StatusCode> {
    host.delete_view(&name, q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}
