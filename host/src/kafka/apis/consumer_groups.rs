//! The consumer group protocol: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, translated to the node's group coordinator. Topics
//! are named by id on the wire; [`NodeTopics`] resolves names, ids and
//! partition counts from the node's streams and views.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
};
use uuid::Uuid;

use super::super::Ctx;
use super::super::error::group_code;
use super::{authorized, str_bytes, topic_ids, topic_name};
use crate::node::{ConsumerHeartbeat, GroupError, TopicMeta, Topics};

/// The node's streams and views as a group sees them.
struct NodeTopics<'a>(&'a Ctx);

impl Topics for NodeTopics<'_> {
    fn topic(&self, name: &str) -> Option<TopicMeta> {
        let host = &self.0.host;
        if let Ok(info) = host.describe_stream(name) {
            // The node's own streams are not for consumer groups.
            if name.starts_with("__") {
                return None;
            }
            return Some(TopicMeta {
                id: topic_ids::of_stream(&info),
                partitions: u32::try_from(info.partitions.len()).ok()?,
            });
        }
        let view = host.view(name)?;
        let input = host.describe_view_input(name).ok()?;
        Some(TopicMeta {
            id: topic_ids::of_view(name, view.created_ms),
            partitions: u32::try_from(input.partitions.len()).ok()?,
        })
    }

    fn names(&self) -> Vec<String> {
        let host = &self.0.host;
        let mut names: Vec<String> = host.stream_names();
        names.retain(|n| !n.starts_with("__"));
        names.extend(host.list_view_names());
        names
    }
}

fn opt(s: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.as_str().to_string())
}

pub(super) fn heartbeat(
    ctx: &Ctx,
    client_id: String,
    client_host: String,
    r: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    let mut out = ConsumerGroupHeartbeatResponse::default();
    // v1+: the client makes its member id, and must send one.
    if version >= 1 && r.member_id.is_empty() {
        let e = GroupError::InvalidRequest("the member id must be set (ConsumerGroupHeartbeat v1+)".into());
        out.error_code = group_code(&e);
        out.error_message = Some(str_bytes(e.to_string()));
        return out;
    }
    let req = ConsumerHeartbeat {
        group_id: r.group_id.0.as_str().to_string(),
        member_id: r.member_id.as_str().to_string(),
        member_epoch: r.member_epoch,
        instance_id: opt(&r.instance_id),
        rack_id: opt(&r.rack_id),
        rebalance_timeout: u64::try_from(r.rebalance_timeout_ms)
            .ok()
            .map(std::time::Duration::from_millis),
        subscribed_names: r
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.as_str().to_string()).collect()),
        subscribed_regex: opt(&r.subscribed_topic_regex),
        server_assignor: opt(&r.server_assignor),
        owned: r
            .topic_partitions
            .map(|ts| ts.into_iter().map(|t| (t.topic_id, t.partitions)).collect()),
        client_id,
        client_host,
    };
    match ctx.host.consumer_group_heartbeat(req, &NodeTopics(ctx)) {
        Ok(a) => {
            out.member_id = Some(str_bytes(a.member_id));
            out.member_epoch = a.member_epoch;
            out.heartbeat_interval_ms = i32::try_from(a.heartbeat_interval.as_millis()).unwrap_or(i32::MAX);
            out.assignment = a.assignment.map(|parts| {
                let mut asg = Assignment::default();
                asg.topic_partitions = parts
                    .into_iter()
                    .map(|(id, ps)| {
                        let mut t = TopicPartitions::default();
                        t.topic_id = id;
                        t.partitions = ps;
                        t
                    })
                    .collect();
                asg
            });
        }
        Err(e) => {
            out.error_code = group_code(&e);
            out.error_message = Some(str_bytes(e.to_string()));
        }
    }
    out
}

fn described(parts: Vec<(String, Uuid, Vec<i32>)>) -> DescribedAssignment {
    let mut a = DescribedAssignment::default();
    a.topic_partitions = parts
        .into_iter()
        .map(|(name, id, ps)| {
            let mut t = DescribedPartitions::default();
            t.topic_id = id;
            t.topic_name = topic_name(&name);
            t.partitions = ps;
            t
        })
        .collect();
    a
}

pub(super) fn describe(ctx: &Ctx, r: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let mut out = ConsumerGroupDescribeResponse::default();
    for id in r.group_ids {
        let mut g = DescribedGroup::default();
        g.authorized_operations = authorized::NOT_GIVEN;
        let found = ctx.host.describe_consumer_group(id.0.as_str());
        match found {
            Ok(Some(d)) => {
                g.authorized_operations = authorized::given(r.include_authorized_operations, authorized::GROUP);
                g.group_state = str_bytes(d.state.as_str());
                g.group_epoch = d.epoch;
                g.assignment_epoch = d.assignment_epoch;
                g.assignor_name = str_bytes(d.assignor);
                g.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut dm = Member::default();
                        dm.member_id = str_bytes(m.member_id);
                        dm.instance_id = m.instance_id.map(str_bytes);
                        dm.rack_id = m.rack_id.map(str_bytes);
                        dm.member_epoch = m.member_epoch;
                        dm.client_id = str_bytes(m.client_id);
                        dm.client_host = str_bytes(m.client_host);
                        dm.subscribed_topic_names = m.subscribed_names.iter().map(|n| topic_name(n)).collect();
                        dm.subscribed_topic_regex = m.subscribed_regex.map(str_bytes);
                        dm.assignment = described(m.assignment);
                        dm.target_assignment = described(m.target);
                        // The consumer protocol (v1).
                        dm.member_type = 1;
                        dm
                    })
                    .collect();
            }
            Ok(None) => {
                // Unknown, or a classic group: clients then use DescribeGroups.
                g.error_code = group_code(&GroupError::GroupIdNotFound);
                g.error_message = Some(str_bytes(format!(
                    "group {:?} is not a consumer-protocol group",
                    id.0.as_str()
                )));
            }
            Err(e) => {
                g.error_code = group_code(&e);
                g.error_message = Some(str_bytes(e.to_string()));
            }
        }
        g.group_id = id;
        out.groups.push(g);
    }
    out
}
