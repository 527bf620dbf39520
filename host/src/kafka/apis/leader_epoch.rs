//! OffsetForLeaderEpoch (v2–v4): where a leader epoch's records end, so a
//! consumer checks its position after a leader change (KIP-320) and finds
//! records it read that the new leader does not hold. Answers come from
//! the leader's epoch history; a partition that is not replicated has one
//! epoch, 0, ending at the log's end. A `current_leader_epoch` older than
//! this leader's is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH
//! (the client's metadata is ahead; it retries); an epoch newer than the
//! current one gets epoch and offset -1, as Kafka answers.

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::super::Ctx;
use super::super::error::{code_of, codes};
use super::{check_epoch, offset_of, partition_of};

pub(super) fn handle(ctx: &Ctx, r: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut out = OffsetForLeaderEpochResponse::default();
    for t in r.topics {
        let mut topic = OffsetForLeaderTopicResult::default();
        for p in t.partitions {
            let mut res = EpochEndOffset::default();
            res.partition = p.partition;
            res.leader_epoch = -1;
            res.end_offset = -1;
            match answer(
                ctx,
                t.topic.0.as_str(),
                p.partition,
                p.current_leader_epoch,
                p.leader_epoch,
            ) {
                Ok(Some((epoch, end))) => {
                    res.leader_epoch = i32::try_from(epoch).unwrap_or(i32::MAX);
                    res.end_offset = offset_of(end);
                }
                Ok(None) => {}
                Err(code) => res.error_code = code,
            }
            topic.partitions.push(res);
        }
        topic.topic = t.topic;
        out.topics.push(topic);
    }
    out
}

/// (epoch, end offset) for one partition, `None` for an epoch newer than
/// the current one, or the error code.
fn answer(ctx: &Ctx, topic: &str, index: i32, current: i32, epoch: i32) -> Result<Option<(u32, u64)>, i16> {
    let partition = partition_of(index).ok_or_else(codes::unknown_topic)?;
    let Ok(epoch) = u32::try_from(epoch) else {
        // No epoch asked for (-1): nothing to look up.
        return Ok(None);
    };
    let found = ctx.host.epoch_end(topic, partition, epoch).map_err(|e| code_of(&e))?;
    check_epoch(current, i32::try_from(found.current).unwrap_or(i32::MAX))?;
    Ok(found.found)
}
