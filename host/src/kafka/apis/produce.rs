//! Produce (v3+): each partition's record set is checked and converted
//! (`batch`), then appended with the acknowledgement asked for — acks=1:
//! durable on the leader; acks=-1: on every in-sync replica of a replicated
//! stream (on a single node, the same as 1); acks=0: appended, no answer.
//! Partitions of one request are appended concurrently, so they share
//! group commits.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::super::Ctx;
use super::super::batch::decode_batches;
use super::super::error::{batch_code, code_of, codes};
use super::{offset_of, partition_of, str_bytes, topic_name};
use crate::node::{Acks, ProducerBatch};

pub(super) async fn handle(ctx: &Ctx, r: ProduceRequest, _version: i16) -> Option<ProduceResponse> {
    let acks = match r.acks {
        0 | 1 => Some(Acks::Leader),
        -1 => Some(Acks::All),
        _ => None,
    };
    let transactional = r.transactional_id.is_some();
    let mut out = ProduceResponse::default();
    for topic in r.topic_data {
        let name = topic.name.0.as_str().to_string();
        let calls = topic.partition_data.into_iter().map(|p| {
            let name = name.clone();
            async move {
                let mut resp = PartitionProduceResponse::default();
                resp.index = p.index;
                resp.base_offset = -1;
                resp.log_append_time_ms = -1;
                let Some(acks) = acks else {
                    resp.error_code = codes::invalid_required_acks();
                    return resp;
                };
                if transactional {
                    resp.error_code = codes::transactions_unsupported();
                    resp.error_message = Some(str_bytes("transactions are not supported"));
                    return resp;
                }
                match append(ctx, &name, p.index, p.records, acks).await {
                    Ok((base, start)) => {
                        resp.base_offset = base;
                        resp.log_start_offset = start;
                    }
                    Err((code, message)) => {
                        resp.error_code = code;
                        resp.error_message = Some(str_bytes(message));
                    }
                }
                resp
            }
        });
        let mut t = TopicProduceResponse::default();
        t.name = topic_name(&name);
        t.partition_responses = futures::future::join_all(calls).await;
        out.responses.push(t);
    }
    (r.acks != 0).then_some(out)
}

/// Appends one partition's record set; (base offset, log start offset).
async fn append(
    ctx: &Ctx,
    stream: &str,
    index: i32,
    records: Option<bytes::Bytes>,
    acks: Acks,
) -> Result<(i64, i64), (i16, String)> {
    let Some(partition) = partition_of(index) else {
        return Err((codes::unknown_topic(), format!("partition {index}")));
    };
    let host = &ctx.host;
    if ctx.host.settings().kafka_auto_create_topics {
        super::topics::ensure_exists(ctx, stream).await;
    }
    let info = host.describe_stream(stream).map_err(|e| (code_of(&e), e.to_string()))?;
    let data = records.unwrap_or_default();
    let cap = usize::try_from(host.settings().max_batch_bytes.as_u64()).unwrap_or(usize::MAX);
    let batches = decode_batches(&data, cap, crate::fsutil::now_ms()).map_err(|e| (batch_code(&e), e.to_string()))?;
    let start = info.partitions.get(partition as usize).map_or(0, |r| r.start);
    let fail = |e: crate::Error| (code_of(&e), e.to_string());
    if batches.iter().all(|b| b.producer.producer_id < 0) {
        let records: Vec<_> = batches.into_iter().flat_map(|b| b.records).collect();
        let appended = host
            .append_acks(stream, partition, &records, acks)
            .await
            .map_err(fail)?;
        return Ok((offset_of(appended.base_offset), offset_of(start)));
    }
    // Idempotent batches, one at a time in order; the answer names the first.
    let mut base = None;
    for b in batches {
        let producer = ProducerBatch {
            producer_id: b.producer.producer_id,
            epoch: b.producer.producer_epoch,
            base_sequence: b.producer.base_sequence,
        };
        let appended = host
            .append_idempotent(stream, partition, &b.records, producer, acks)
            .await
            .map_err(fail)?;
        base.get_or_insert(appended.base_offset);
    }
    Ok((offset_of(base.unwrap_or(0)), offset_of(start)))
}
