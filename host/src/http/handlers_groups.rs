//! Consumer-group handlers: list, describe (members, assignments, committed
//! offsets and lag), commit offsets from HTTP, reset, delete. The same
//! groups Kafka clients join; commits and resets from HTTP are accepted
//! only while the group has no members.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::extract::{Body, Path, Query};
use super::handlers::Res;
use super::pagination::{PageQuery, page};
use crate::error::Error;
use crate::node::{CommittedOffset, GroupView, Host, OffsetCommit, ResetTo};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupOut {
    pub group: String,
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance` or `Stable`
    /// (classic groups); `Empty`, `Reconciling` or `Stable` (consumer-protocol
    /// groups).
    pub state: String,
    /// `consumer` for Kafka consumers; empty for a group that only has offsets.
    pub protocol_type: String,
    /// `classic` (JoinGroup/SyncGroup, or only offsets) or `consumer` (the
    /// consumer group protocol, ConsumerGroupHeartbeat).
    pub group_type: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupsOut {
    pub groups: Vec<GroupOut>,
    /// Set when more items follow: the `after` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitIn {
    pub stream: String,
    pub partition: u32,
    /// The next offset the group reads.
    pub offset: u64,
    #[serde(default)]
    pub metadata: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitsIn {
    pub offsets: Vec<CommitIn>,
}

/// Where to move a group's offsets: exactly one of `to`, `offset`, `timestamp`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetIn {
    pub stream: String,
    /// `earliest` or `latest`.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub offset: Option<u64>,
    /// Milliseconds since the epoch: the first record at or after it.
    #[serde(default)]
    pub timestamp: Option<u64>,
    /// Partitions to reset; all when absent.
    #[serde(default)]
    pub partitions: Option<Vec<u32>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OffsetsOut {
    pub offsets: Vec<CommittedOffset>,
}

/// List consumer groups
///
/// Groups with members, and groups that only have committed offsets.
#[utoipa::path(get, path = "/groups", tag = "groups", params(PageQuery),
    responses(
        (status = 200, description = "One page of groups, by id", body = GroupsOut),
        (status = 400, description = "`invalid_request` (bad `limit`)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 500, description = "`io_error`, `internal`", body = ErrorBody),
    ))]
pub async fn list_groups(State(host): State<Host>, Query(q): Query<PageQuery>) -> Res<Json<GroupsOut>> {
    let (groups, next_after) = page(host.list_groups().await?, |g| &g.group_id, &q)?;
    let groups = groups
        .into_iter()
        .map(|g| GroupOut {
            group: g.group_id,
            state: g.state,
            protocol_type: g.protocol_type,
            group_type: g.group_type,
        })
        .collect();
    Ok(Json(GroupsOut { groups, next_after }))
}

/// Describe a consumer group
///
/// Members and their assignments, committed offsets, partition ends and lag.
#[utoipa::path(get, path = "/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "The group", body = GroupView),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
        (status = 421, description = "`not_coordinator`: in a cluster, another node coordinates the group", body = ErrorBody),
    ))]
pub async fn describe_group(State(host): State<Host>, Path(group): Path<String>) -> Res<Json<GroupView>> {
    Ok(Json(host.group_view(&group).await?))
}

/// Commit offsets for a group
///
/// For consumers that read over HTTP. Only while the group has no members;
/// every partition is checked first, then all are committed durably.
#[utoipa::path(post, path = "/groups/{group}/offsets", tag = "groups",
    params(("group" = String, Path, description = "Group id")),
    request_body = CommitsIn,
    responses(
        (status = 200, description = "Committed: the group's offsets on the streams named", body = OffsetsOut),
        (status = 400, description = "`invalid_request`, `invalid_group_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`, `partition_not_found`", body = ErrorBody),
        (status = 421, description = "`not_coordinator`: in a cluster, another node coordinates the group", body = ErrorBody),
        (status = 409, description = "`group_not_empty`, `rebalance_in_progress`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, `storage_failed`", body = ErrorBody),
        (status = 507, description = "`disk_full`: the data dir's disk is full; free space, then restart the node", body = ErrorBody),
    ))]
pub async fn commit_offsets(
    State(host): State<Host>,
    Path(group): Path<String>,
    Body(body): Body,
) -> Res<Json<OffsetsOut>> {
    let req: CommitsIn =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("malformed commit JSON: {e}")))?;
    let commits: Vec<OffsetCommit> = req
        .offsets
        .into_iter()
        .map(|c| OffsetCommit {
            stream: c.stream,
            partition: c.partition,
            offset: c.offset,
            leader_epoch: -1,
            metadata: c.metadata,
        })
        .collect();
    host.set_group_offsets(&group, &commits).await?;
    let named: Vec<&str> = commits.iter().map(|c| c.stream.as_str()).collect();
    let offsets = host
        .committed_offsets(&group)
        .await?
        .into_iter()
        .filter(|c| named.contains(&c.stream.as_str()))
        .collect();
    Ok(Json(OffsetsOut { offsets }))
}

/// Reset a group's offsets
///
/// To the earliest or latest offset, a given offset (clamped to the
/// partition's range) or the first record at or after a time. Only while the
/// group has no members.
#[utoipa::path(post, path = "/groups/{group}/reset", tag = "groups",
    params(("group" = String, Path, description = "Group id")),
    request_body = ResetIn,
    responses(
        (status = 200, description = "The group's new offsets on that stream", body = OffsetsOut),
        (status = 400, description = "`invalid_request`, `invalid_group_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`stream_not_found`, `partition_not_found`", body = ErrorBody),
        (status = 421, description = "`not_coordinator`: in a cluster, another node coordinates the group", body = ErrorBody),
        (status = 409, description = "`group_not_empty`, `rebalance_in_progress`", body = ErrorBody),
    ))]
pub async fn reset_group(
    State(host): State<Host>,
    Path(group): Path<String>,
    Body(body): Body,
) -> Res<Json<OffsetsOut>> {
    let req: ResetIn =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("malformed reset JSON: {e}")))?;
    let to = match (req.to.as_deref(), req.offset, req.timestamp) {
        (Some("earliest"), None, None) => ResetTo::Earliest,
        (Some("latest"), None, None) => ResetTo::Latest,
        (None, Some(o), None) => ResetTo::Offset(o),
        (None, None, Some(t)) => ResetTo::Timestamp(t),
        _ => {
            return Err(Error::invalid(
                "give exactly one of \"to\" (\"earliest\" or \"latest\"), \"offset\" or \"timestamp\"",
            )
            .into());
        }
    };
    let offsets = host
        .reset_group_offsets(&group, &req.stream, to, req.partitions)
        .await?;
    Ok(Json(OffsetsOut { offsets }))
}

/// Query of `DELETE /groups/{group}/offsets`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteOffsetsQuery {
    /// The stream (or view) whose offsets go.
    pub stream: String,
    /// Only this partition; every partition the group committed on when absent.
    pub partition: Option<u32>,
}

/// Delete a group's committed offsets on a stream
///
/// Kafka's OffsetDelete over HTTP: refused while a member of the group
/// consumes the stream, or while the group rebalances.
#[utoipa::path(delete, path = "/groups/{group}/offsets", tag = "groups",
    params(("group" = String, Path, description = "Group id"), DeleteOffsetsQuery),
    responses(
        (status = 200, description = "Deleted: the group's offsets left on that stream", body = OffsetsOut),
        (status = 400, description = "`invalid_request`, `invalid_group_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`group_not_found`, `stream_not_found`, `partition_not_found`", body = ErrorBody),
        (status = 421, description = "`not_coordinator`: in a cluster, another node coordinates the group", body = ErrorBody),
        (status = 409, description = "`group_subscribed_to_topic`, `rebalance_in_progress`, `group_not_empty` (members of another protocol)", body = ErrorBody),
    ))]
pub async fn delete_offsets(
    State(host): State<Host>,
    Path(group): Path<String>,
    Query(q): Query<DeleteOffsetsQuery>,
) -> Res<Json<OffsetsOut>> {
    let offsets = host.delete_group_stream_offsets(&group, &q.stream, q.partition).await?;
    Ok(Json(OffsetsOut { offsets }))
}

/// Delete a consumer group
///
/// Only a group without members; its committed offsets are deleted too.
#[utoipa::path(delete, path = "/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
        (status = 421, description = "`not_coordinator`: in a cluster, another node coordinates the group", body = ErrorBody),
        (status = 409, description = "`group_not_empty`", body = ErrorBody),
    ))]
pub async fn delete_group(State(host): State<Host>, Path(group): Path<String>) -> Res<StatusCode> {
    host.delete_group(&group).await.map_err(Error::from)?;
    Ok(StatusCode::NO_CONTENT)
}
