//! DescribeProducers (v0): the idempotent producers with state on each
//! partition asked for (`kafka-transactions describe-producers`, the admin
//! clients' `describe_producers`): id, epoch, last sequence written and
//! when. Only a partition's leader answers (NOT_LEADER_OR_FOLLOWER
//! elsewhere). There are no transactions: coordinator epoch and
//! transaction start are -1.

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::super::Ctx;
use super::super::error::{code_of, codes};
use super::partition_of;

pub(super) fn handle(ctx: &Ctx, r: DescribeProducersRequest) -> DescribeProducersResponse {
    let mut out = DescribeProducersResponse::default();
    for t in r.topics {
        let mut topic = TopicResponse::default();
        for index in t.partition_indexes {
            let mut p = PartitionResponse::default();
            p.partition_index = index;
            let found = partition_of(index)
                .ok_or_else(|| (codes::unknown_topic(), None))
                .and_then(|partition| {
                    ctx.host
                        .describe_producers(t.name.0.as_str(), partition)
                        .map_err(|e| (code_of(&e), Some(e.message().to_string())))
                });
            match found {
                Ok(producers) => {
                    p.active_producers = producers
                        .into_iter()
                        .map(|a| {
                            let mut s = ProducerState::default();
                            s.producer_id = ProducerId(a.producer_id);
                            s.producer_epoch = i32::from(a.epoch);
                            s.last_sequence = a.last_sequence;
                            s.last_timestamp = i64::try_from(a.last_ms).unwrap_or(i64::MAX);
                            s.coordinator_epoch = -1;
                            s.current_txn_start_offset = -1;
                            s
                        })
                        .collect();
                }
                Err((code, message)) => {
                    p.error_code = code;
                    p.error_message = message.map(StrBytes::from_string);
                }
            }
            topic.partitions.push(p);
        }
        topic.name = t.name;
        out.topics.push(topic);
    }
    out
}
