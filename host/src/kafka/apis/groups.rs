//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! ListGroups, DescribeGroups, DeleteGroups, translated to the node's group
//! coordinator. Join and Sync wait for the rebalance, so they answer later
//! and the connection goes on reading meanwhile.

use std::time::Duration;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::super::Ctx;
use super::super::error::{code_of, group_code, group_op_code};
use super::{authorized, str_bytes};
use crate::node::{GroupError, JoinRequest, SyncRequest};

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn opt_str(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.as_str().to_string())
}

pub(super) async fn join(
    ctx: &Ctx,
    client_id: String,
    client_host: String,
    r: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let mut out = JoinGroupResponse::default();
    out.generation_id = -1;
    let req = JoinRequest {
        group_id: r.group_id.0.as_str().to_string(),
        member_id: r.member_id.as_str().to_string(),
        group_instance_id: opt_str(&r.group_instance_id),
        client_id,
        client_host,
        session_timeout: millis(r.session_timeout_ms),
        // v0 has no rebalance timeout: the session timeout serves.
        rebalance_timeout: millis(if version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        }),
        protocol_type: r.protocol_type.as_str().to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    match ctx.host.join_group(req).await {
        Ok(j) => {
            out.generation_id = j.generation_id;
            out.protocol_type = Some(str_bytes(j.protocol_type));
            out.protocol_name = Some(str_bytes(j.protocol_name));
            out.leader = str_bytes(j.leader);
            out.member_id = str_bytes(j.member_id);
            out.members = j
                .members
                .into_iter()
                .map(|m| {
                    let mut rm = JoinGroupResponseMember::default();
                    rm.member_id = str_bytes(m.member_id);
                    rm.group_instance_id = m.group_instance_id.map(str_bytes);
                    rm.metadata = m.metadata;
                    rm
                })
                .collect();
        }
        Err(e) => {
            if let GroupError::MemberIdRequired { member_id } = &e {
                out.member_id = str_bytes(member_id.clone());
            }
            out.error_code = group_code(&e);
        }
    }
    out
}

pub(super) async fn sync(ctx: &Ctx, r: SyncGroupRequest) -> SyncGroupResponse {
    let mut out = SyncGroupResponse::default();
    let req = SyncRequest {
        group_id: r.group_id.0.as_str().to_string(),
        generation_id: r.generation_id,
        member_id: r.member_id.as_str().to_string(),
        group_instance_id: opt_str(&r.group_instance_id),
        protocol_type: opt_str(&r.protocol_type),
        protocol_name: opt_str(&r.protocol_name),
        assignments: r
            .assignments
            .iter()
            .map(|a| (a.member_id.as_str().to_string(), a.assignment.clone()))
            .collect(),
    };
    match ctx.host.sync_group(req).await {
        Ok(s) => {
            out.protocol_type = Some(str_bytes(s.protocol_type));
            out.protocol_name = Some(str_bytes(s.protocol_name));
            out.assignment = s.assignment;
        }
        Err(e) => out.error_code = group_code(&e),
    }
    out
}

pub(super) fn heartbeat(ctx: &Ctx, r: HeartbeatRequest) -> HeartbeatResponse {
    let mut out = HeartbeatResponse::default();
    let instance = r.group_instance_id.as_ref().map(|s| s.as_str());
    if let Err(e) = ctx
        .host
        .heartbeat_group(r.group_id.0.as_str(), r.generation_id, r.member_id.as_str(), instance)
    {
        out.error_code = group_code(&e);
    }
    out
}

pub(super) fn leave(ctx: &Ctx, r: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let mut out = LeaveGroupResponse::default();
    // v0–v2 name one member; v3+ a list.
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        r.members
            .iter()
            .map(|m| (m.member_id.as_str().to_string(), opt_str(&m.group_instance_id)))
            .collect()
    } else {
        vec![(r.member_id.as_str().to_string(), None)]
    };
    match ctx.host.leave_group(r.group_id.0.as_str(), &members) {
        Ok(results) => {
            if version >= 3 {
                out.members = members
                    .into_iter()
                    .zip(results)
                    .map(|((id, instance), res)| {
                        let mut m = MemberResponse::default();
                        m.member_id = str_bytes(id);
                        m.group_instance_id = instance.map(str_bytes);
                        m.error_code = res.err().map_or(0, |e| group_code(&e));
                        m
                    })
                    .collect();
            } else if let Some(Err(e)) = results.into_iter().next() {
                out.error_code = group_code(&e);
            }
        }
        Err(e) => out.error_code = group_code(&e),
    }
    out
}

pub(super) async fn list(ctx: &Ctx, r: ListGroupsRequest) -> ListGroupsResponse {
    let mut out = ListGroupsResponse::default();
    let states: Vec<String> = r.states_filter.iter().map(|s| s.as_str().to_lowercase()).collect();
    let types: Vec<String> = r.types_filter.iter().map(|s| s.as_str().to_lowercase()).collect();
    match ctx.host.list_groups().await {
        Ok(groups) => {
            out.groups = groups
                .into_iter()
                .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
                .filter(|g| types.is_empty() || types.contains(&g.group_type))
                .map(|g| {
                    let mut l = ListedGroup::default();
                    l.group_id = GroupId(str_bytes(g.group_id));
                    l.protocol_type = str_bytes(g.protocol_type);
                    l.group_state = str_bytes(g.state);
                    l.group_type = str_bytes(g.group_type);
                    l
                })
                .collect();
        }
        Err(e) => out.error_code = code_of(&e),
    }
    out
}

pub(super) fn describe(ctx: &Ctx, r: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let mut out = DescribeGroupsResponse::default();
    for id in r.groups {
        let mut g = DescribedGroup::default();
        if let Err(e) = ctx.host.group_here(id.0.as_str()) {
            g.error_code = group_code(&e);
            g.group_id = id;
            g.authorized_operations = authorized::NOT_GIVEN;
            out.groups.push(g);
            continue;
        }
        match ctx.host.describe_group(id.0.as_str()) {
            Some(d) => {
                g.group_state = str_bytes(d.state);
                g.protocol_type = str_bytes(d.protocol_type);
                g.protocol_data = str_bytes(d.protocol_name);
                g.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut dm = DescribedGroupMember::default();
                        dm.member_id = str_bytes(m.member_id);
                        dm.group_instance_id = m.group_instance_id.map(str_bytes);
                        dm.client_id = str_bytes(m.client_id);
                        dm.client_host = str_bytes(m.client_host);
                        dm.member_metadata = m.metadata;
                        dm.member_assignment = m.assignment;
                        dm
                    })
                    .collect();
            }
            // A consumer-protocol group is described by ConsumerGroupDescribe:
            // here it is Dead, and from v6 (which has an error message)
            // GROUP_ID_NOT_FOUND, as Kafka answers.
            None if ctx
                .host
                .describe_consumer_group(id.0.as_str())
                .is_ok_and(|d| d.is_some()) =>
            {
                g.group_state = str_bytes("Dead");
                if version >= 6 {
                    g.error_code = group_code(&GroupError::GroupIdNotFound);
                    g.error_message = Some(str_bytes(format!("group {:?} is not a classic group", id.0.as_str())));
                }
            }
            // Kafka describes an unknown group as Dead, without an error.
            None => g.group_state = str_bytes("Dead"),
        }
        g.group_id = id;
        g.authorized_operations = match g.error_code {
            0 => authorized::given(r.include_authorized_operations, authorized::GROUP),
            _ => authorized::NOT_GIVEN,
        };
        out.groups.push(g);
    }
    out
}

pub(super) async fn delete(ctx: &Ctx, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut out = DeleteGroupsResponse::default();
    for id in r.groups_names {
        let mut res = DeletableGroupResult::default();
        res.error_code = match ctx.host.delete_group(id.0.as_str()).await {
            Ok(()) => 0,
            Err(e) => group_op_code(&e),
        };
        res.group_id = id;
        out.results.push(res);
    }
    out
}
