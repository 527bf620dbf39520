//! ListOffsets (v1–v10): the earliest offset (-2), the latest (-1: the high
//! watermark), the first offset whose record's timestamp is at or after a
//! time (offset -1 and timestamp -1 when no record is that recent), the
//! first record with the largest timestamp (-3), the first offset the WAL
//! holds (-4, Kafka's local log start) or the last tiered offset (-5; -1
//! when no live record is tiered). Kafka answers these at any version, and
//! so does this; v10's `timeout_ms` bounds nothing here (an object store
//! read has its own timeout).
//! A `current_leader_epoch` (v4+) other than the leader's is refused as
//! Fetch refuses it; a partition named twice in one request is
//! INVALID_REQUEST (both times), as in Kafka. DeleteRecords (v0–v2) moves
//! a partition's start (its low watermark) up to an offset (-1: the high
//! watermark); the records below are gone.

use std::collections::HashSet;

use kafka_protocol::messages::delete_records_request::DeleteRecordsPartition;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse};

use super::super::Ctx;
use super::super::error::{code_of, codes};
use super::{Visible, check_epoch, offset_of, partition_of, topic_name, visible};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub(super) async fn handle(ctx: &Ctx, r: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut out = ListOffsetsResponse::default();
    // A partition asked for twice gets INVALID_REQUEST both times, as from
    // Kafka: which of two answers a client would keep is anyone's guess.
    let mut seen = HashSet::new();
    let twice: HashSet<(&str, i32)> = r
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.as_str(), p.partition_index)))
        .filter(|k| !seen.insert(*k))
        .collect();
    for topic in &r.topics {
        let mut t = ListOffsetsTopicResponse::default();
        t.name = topic_name(topic.name.0.as_str());
        for p in &topic.partitions {
            let mut resp = ListOffsetsPartitionResponse::default();
            resp.partition_index = p.partition_index;
            resp.timestamp = -1;
            resp.offset = -1;
            if twice.contains(&(topic.name.0.as_str(), p.partition_index)) {
                resp.error_code = codes::invalid_request();
                t.partitions.push(resp);
                continue;
            }
            let asked = (p.partition_index, p.current_leader_epoch, p.timestamp);
            match lookup(ctx, topic.name.0.as_str(), asked).await {
                Ok((offset, timestamp, epoch)) => {
                    resp.offset = offset;
                    resp.timestamp = timestamp;
                    if version >= 4 {
                        resp.leader_epoch = epoch;
                    }
                }
                Err(code) => resp.error_code = code,
            }
            t.partitions.push(resp);
        }
        out.topics.push(t);
    }
    out
}

/// (offset, timestamp, leader epoch) for one partition asked as (index,
/// current leader epoch, timestamp).
async fn lookup(ctx: &Ctx, stream: &str, asked: (i32, i32, i64)) -> Result<(i64, i64, i32), i16> {
    let (index, current, timestamp) = asked;
    let host = &ctx.host;
    let partition = partition_of(index).ok_or_else(codes::unknown_topic)?;
    let Visible {
        start,
        end,
        leader_epoch: epoch,
        ..
    } = visible(ctx, stream, partition)?;
    check_epoch(current, epoch)?;
    match timestamp {
        LATEST => Ok((offset_of(end), -1, epoch)),
        EARLIEST => Ok((offset_of(start), -1, epoch)),
        MAX_TIMESTAMP => {
            let found = host.max_timestamp(stream, partition).await.map_err(|e| code_of(&e))?;
            Ok(match found {
                Some(f) if f.offset < end => (offset_of(f.offset), offset_of(f.timestamp_ms), epoch),
                _ => (-1, -1, epoch),
            })
        }
        EARLIEST_LOCAL | LATEST_TIERED => {
            let t = host.tier_offsets(stream, partition).map_err(|e| code_of(&e))?;
            let offset = match timestamp {
                EARLIEST_LOCAL => offset_of(t.local_start.max(start).min(end)),
                _ => t.tiered_end.map_or(-1, |e| offset_of(e.min(end).saturating_sub(1))),
            };
            Ok((offset, -1, epoch))
        }
        t if t >= 0 => {
            let found = host
                .offset_for_timestamp(stream, partition, t as u64)
                .await
                .map_err(|e| code_of(&e))?;
            Ok(match found {
                Some(f) if f.offset < end => (offset_of(f.offset), offset_of(f.timestamp_ms), epoch),
                _ => (-1, -1, epoch),
            })
        }
        _ => Err(codes::invalid_request()),
    }
}

pub(super) async fn delete_records(ctx: &Ctx, r: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut out = DeleteRecordsResponse::default();
    for topic in r.topics {
        let mut t = DeleteRecordsTopicResult::default();
        // The partitions go at once: on a replicated topic each answer
        // waits for its followers, and those waits overlap.
        let name = topic.name.0.as_str();
        let answers = futures::future::join_all(topic.partitions.iter().map(|p| delete_one(ctx, name, p))).await;
        for (p, result) in topic.partitions.iter().zip(answers) {
            let mut res = DeleteRecordsPartitionResult::default();
            res.partition_index = p.partition_index;
            res.low_watermark = -1;
            match result {
                Ok(start) => res.low_watermark = offset_of(start),
                Err(code) => res.error_code = code,
            }
            t.partitions.push(res);
        }
        t.name = topic.name;
        out.topics.push(t);
    }
    out
}

/// The new start of one partition, or the error code.
async fn delete_one(ctx: &Ctx, topic: &str, p: &DeleteRecordsPartition) -> Result<u64, i16> {
    let partition = partition_of(p.partition_index).ok_or_else(codes::unknown_topic)?;
    let before = match p.offset {
        LATEST => None,
        o => Some(u64::try_from(o).map_err(|_| codes::offset_out_of_range())?),
    };
    ctx.host
        .delete_records(topic, partition, before)
        .await
        .map_err(|e| code_of(&e))
}
