//! OffsetDelete (v0): deletes a group's committed offsets of some
//! partitions (`kafka-consumer-groups --delete-offsets`, kafka-python's
//! `delete_group_offsets`). A partition of a stream this node does not hold
//! is UNKNOWN_TOPIC_OR_PARTITION; one whose stream a member of the group
//! consumes is GROUP_SUBSCRIBED_TO_TOPIC; the group's own refusals
//! (unknown, not a consumer group with members, rebalancing, another
//! coordinator) are the answer's top-level error.

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::super::Ctx;
use super::super::error::{codes, group_code, group_op_code};
use super::partition_of;

pub(super) async fn delete(ctx: &Ctx, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let mut out = OffsetDeleteResponse::default();
    // The partitions this node holds, asked of the group in one call; each
    // response partition keeps its index here (`None`: already answered).
    let mut asked: Vec<(String, u32)> = Vec::new();
    let mut topics = Vec::new();
    for t in r.topics {
        let name = t.name.0.to_string();
        let mut topic = OffsetDeleteResponseTopic::default();
        topic.name = t.name;
        let mut slots = Vec::new();
        for p in t.partitions {
            let mut part = OffsetDeleteResponsePartition::default();
            part.partition_index = p.partition_index;
            let known = partition_of(p.partition_index).filter(|i| ctx.host.stream_end(&name, *i).is_ok());
            let slot = match known {
                Some(i) => {
                    asked.push((name.clone(), i));
                    Some(asked.len() - 1)
                }
                None => {
                    part.error_code = codes::unknown_topic();
                    None
                }
            };
            slots.push((part, slot));
        }
        topics.push((topic, slots));
    }
    let results = match ctx.host.delete_group_offsets(r.group_id.as_str(), &asked).await {
        Ok(results) => results,
        Err(e) => {
            out.error_code = group_op_code(&e);
            return out;
        }
    };
    for (mut topic, slots) in topics {
        for (mut part, slot) in slots {
            if let Some(Err(e)) = slot.and_then(|i| results.get(i)) {
                part.error_code = group_code(e);
            }
            topic.partitions.push(part);
        }
        out.topics.push(topic);
    }
    out
}
