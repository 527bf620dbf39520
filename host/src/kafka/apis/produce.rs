//! Produce (v3+): each partition's record set is checked and converted
//! (`batch`), then appended with the acknowledgement asked for — acks=1:
//! durable on the leader; acks=-1: on every in-sync replica of a replicated
//! stream (on a single node, the same as 1); acks=0: appended, no answer.
//! Partitions of one request are appended concurrently, so they share
//! group commits. A partition this node does not lead is answered
//! NOT_LEADER_OR_FOLLOWER naming its leader and epoch, with the leader's
//! endpoint (v10+, KIP-951).

use kafka_protocol::messages::produce_response::{NodeEndpoint, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, ResponseKind};

use std::sync::Arc;

use bytes::Bytes;

use super::super::Ctx;
use super::super::batch::{Produced, decode_batches, sent_sizes};
use super::super::cache::Key;
use super::super::error::{batch_code, code_of, codes};
use super::{Answer, current_leader, leader_endpoints, offset_of, partition_of, str_bytes, topic_name};
use crate::node::{Acks, PendingAppend, ProducerBatch};

pub(super) async fn handle(ctx: &Arc<Ctx>, r: ProduceRequest, version: i16, local: std::net::SocketAddr) -> Answer {
    let acks = match r.acks {
        0 | 1 => Some(Acks::Leader),
        -1 => Some(Acks::All),
        _ => None,
    };
    let transactional = r.transactional_id.is_some();
    // First every partition's appends are queued, in request order; then
    // the answer waits for them (while the connection reads on).
    let mut topics = Vec::with_capacity(r.topic_data.len());
    for topic in r.topic_data {
        let name = topic.name.0.as_str().to_string();
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let queued = match (acks, transactional) {
                (None, _) => Err((codes::invalid_required_acks(), "acks must be 0, 1 or -1".to_string())),
                (_, true) => Err((
                    codes::transactions_unsupported(),
                    "transactions are not supported".into(),
                )),
                (Some(acks), false) => queue(ctx, &name, p.index, p.records, acks).await,
            };
            parts.push((p.index, queued));
        }
        topics.push((name, parts));
    }
    let silent = r.acks == 0;
    let ctx = ctx.clone();
    Answer::Later(Box::pin(async move {
        let mut out = ProduceResponse::default();
        let mut leaders = std::collections::BTreeSet::new();
        for (name, parts) in topics {
            let mut t = TopicProduceResponse::default();
            t.name = topic_name(&name);
            for (index, queued) in parts {
                let mut resp = PartitionProduceResponse::default();
                resp.index = index;
                resp.base_offset = -1;
                resp.log_append_time_ms = -1;
                let done = match queued {
                    Ok(q) => q.finish(&ctx).await,
                    Err(e) => Err(e),
                };
                match done {
                    Ok((base, start)) => {
                        resp.base_offset = base;
                        resp.log_start_offset = start;
                    }
                    Err((code, message)) => {
                        resp.error_code = code;
                        resp.error_message = Some(str_bytes(message));
                        let not_leader = code == kafka_protocol::ResponseError::NotLeaderOrFollower.code();
                        if let (true, Some(i)) = (not_leader && version >= 10, partition_of(index))
                            && let Some((leader, epoch)) = current_leader(&ctx, &name, i)
                        {
                            resp.current_leader.leader_id = BrokerId(leader);
                            resp.current_leader.leader_epoch = epoch;
                            leaders.insert(leader);
                        }
                    }
                }
                t.partition_responses.push(resp);
            }
            out.responses.push(t);
        }
        // Where the partitions answered NOT_LEADER_OR_FOLLOWER are led
        // (v10+), so the producer goes there without asking Metadata first.
        out.node_endpoints = leader_endpoints(&ctx, local, &leaders, |id, host, port| {
            NodeEndpoint::default().with_node_id(id).with_host(host).with_port(port)
        });
        if silent {
            Answer::Silent
        } else {
            Answer::respond(ResponseKind::Produce(out))
        }
    }))
}

type Failure = (i16, String);

/// One partition's queued appends and its log start offset.
struct Queued {
    pending: Vec<Pending>,
    start: u64,
    /// Where the batches go in the fetch cache (stream id and partition,
    /// leader epoch), if the stream's records may be cached.
    cache: Option<(Key, i32)>,
}

/// One queued append and, per batch in it, its record count and its bytes
/// when a fetch may send them as they are.
struct Pending {
    append: PendingAppend,
    batches: Vec<(u32, Option<Bytes>)>,
}

impl Queued {
    /// Waits for every append; (base offset of the first, log start
    /// offset). Acknowledged batches that read back as sent go into the
    /// fetch cache at the offsets they got.
    async fn finish(self, ctx: &Ctx) -> Result<(i64, i64), Failure> {
        let mut base = None;
        for p in self.pending {
            let appended = p.append.await.map_err(|e| (code_of(&e), e.to_string()))?;
            base.get_or_insert(appended.base_offset);
            let Some((key, epoch)) = self.cache else {
                continue;
            };
            let mut at = appended.base_offset;
            for (count, bytes) in p.batches {
                let Some(last) = at.checked_add(u64::from(count)).and_then(|end| end.checked_sub(1)) else {
                    break;
                };
                if let Some(bytes) = bytes {
                    ctx.cache.insert_produced(key, epoch, at, last, &bytes);
                }
                at = last.saturating_add(1);
            }
        }
        Ok((offset_of(base.unwrap_or(0)), offset_of(self.start)))
    }
}

/// Record sets smaller than this are decoded on the connection's async
/// worker; bigger ones on a blocking thread.
const DECODE_ON_WORKER_BYTES: usize = 256 * 1024;

/// Checks one partition's record set and queues its appends.
async fn queue(
    ctx: &Ctx,
    stream: &str,
    index: i32,
    records: Option<bytes::Bytes>,
    acks: Acks,
) -> Result<Queued, Failure> {
    let Some(partition) = partition_of(index) else {
        return Err((codes::unknown_topic(), format!("partition {index}")));
    };
    let host = &ctx.host;
    if host.settings().kafka_auto_create_topics {
        super::topics::ensure_exists(ctx, stream).await;
    }
    let info = host
        .describe_partition(stream, partition)
        .map_err(|e| (code_of(&e), e.to_string()))?;
    let start = info.range.start;
    let cache = super::cache_key(&info, partition, false).map(|key| {
        let epoch = host.replication_status(stream, partition).map_or(0, |s| s.epoch as i32);
        (key, epoch)
    });
    let data = records.unwrap_or_default();
    // The topic's own limit applies to batches as sent (Kafka's
    // max.message.bytes); the node's also bounds them decompressed.
    if let Some(limit) = info.max_message_bytes
        && let Some(big) = sent_sizes(&data).into_iter().find(|s| *s as u64 > limit)
    {
        return Err((
            kafka_protocol::ResponseError::MessageTooLarge.code(),
            format!("a batch of {big} bytes; topic `{stream}` takes at most {limit} (max.message.bytes)"),
        ));
    }
    let cap = usize::try_from(host.settings().max_batch_bytes.as_u64()).unwrap_or(usize::MAX);
    let now = crate::fsutil::now_ms();
    // Decompressing and checking a big record set takes milliseconds: on
    // a blocking thread, so other connections' requests go on meanwhile.
    let decoded = if data.len() < DECODE_ON_WORKER_BYTES {
        decode_batches(&data, cap, now)
    } else {
        tokio::task::spawn_blocking(move || decode_batches(&data, cap, now))
            .await
            .map_err(|e| (codes::unknown_server_error(), format!("decode task failed: {e}")))?
    };
    let batches = decoded.map_err(|e| (batch_code(&e), e.to_string()))?;
    let fail = |e: crate::Error| (code_of(&e), e.to_string());
    let mut pending = Vec::new();
    let keep = cache.is_some();
    let sent = |b: &mut Produced| {
        let count = u32::try_from(b.records.len()).unwrap_or(u32::MAX);
        (count, if keep { b.verbatim.take() } else { None })
    };
    if batches.iter().all(|b| b.producer.producer_id < 0) {
        let mut batches = batches;
        let kept = batches.iter_mut().map(sent).collect();
        let records: Vec<_> = batches.into_iter().flat_map(|b| b.records).collect();
        let append = host
            .append_queued(stream, partition, &records, acks, None)
            .await
            .map_err(fail)?;
        pending.push(Pending { append, batches: kept });
        return Ok(Queued { pending, start, cache });
    }
    for mut b in batches {
        let kept = vec![sent(&mut b)];
        let producer = ProducerBatch {
            producer_id: b.producer.producer_id,
            epoch: b.producer.producer_epoch,
            base_sequence: b.producer.base_sequence,
        };
        let append = host
            .append_queued(stream, partition, &b.records, acks, Some(producer))
            .await
            .map_err(fail)?;
        pending.push(Pending { append, batches: kept });
    }
    Ok(Queued { pending, start, cache })
}
