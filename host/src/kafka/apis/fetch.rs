//! Fetch (v4–v17; from v13 topics are named by id, and an id no topic
//! has is UNKNOWN_TOPIC_ID): records from each partition at the fetch offset, as
//! uncompressed record batches labelled with the leader epoch their
//! records were written in, with the high watermark (on a replicated
//! partition, what every in-sync replica holds; records above it are not
//! served) and the log start offset. Limits, in record batch bytes as
//! Kafka counts them: `partition_max_bytes` per partition and `max_bytes`
//! per answer (at most `kafka_fetch_max_bytes`, whatever the client asks),
//! except that the first partition with data returns at least one record
//! however big (as Kafka does, so a big record never blocks a consumer); a
//! later partition whose first record does not fit answers none (a session
//! reads it first next time). Long-poll: with fewer than
//! `min_bytes` ready, the answer waits up to `max_wait_ms` for new records
//! on any requested partition. Fetch sessions (v7+, `fetch_session.rs`):
//! the partitions read are the session's, and an incremental answer lists
//! only those with something new.
//! A partition's `current_leader_epoch` (v9+) older than this leader's is
//! FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH: the client
//! refreshes its metadata and validates its position first. With
//! NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH the answer names the
//! partition's leader and epoch (v12+) and that leader's endpoint (v16+),
//! as Kafka brokers do (KIP-951), so clients go there without a Metadata
//! round trip.
//! A view is read through its plugin; its answer is one batch that ends
//! where the read ended, so filtered-out offsets are skipped (an empty
//! batch when nothing passed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, NodeEndpoint, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};

use super::super::Ctx;
use super::super::encode::{encode_runs, encode_view};
use super::super::error::{code_of, codes};
use super::super::splice::Parts;
use super::fetch_session::{Found, Key, Topic};
use super::{check_epoch, leader_endpoints, offset_of, partition_of, topic_ids, topic_name, visible};
use crate::node::ReadLimits;

/// The longest long-poll this node honours.
const MAX_WAIT: Duration = Duration::from_secs(30);

struct Want {
    topic: usize,
    /// The topic (name or id) and partition index, as the session keys it.
    key: Key,
    /// The stream or view read: the topic's name (`None`: an id no topic
    /// has, UNKNOWN_TOPIC_ID).
    stream: Option<Arc<str>>,
    offset: i64,
    max_bytes: usize,
    /// The leader epoch the client believes current (-1: not said).
    current_leader_epoch: i32,
}

/// The answer, and the records of partitions answered from the fetch cache
/// kept out of it as their cached batches (`splice::Parts`).
pub(super) async fn handle(
    ctx: &Ctx,
    r: FetchRequest,
    version: i16,
    local: std::net::SocketAddr,
) -> (FetchResponse, Parts) {
    let mut out = FetchResponse::default();
    let mut parts = Parts::new();
    let (mode, listed) = match ctx.fetch_sessions.begin(&r, version) {
        Ok(begun) => begun,
        Err(code) => {
            out.error_code = code;
            return (out, parts);
        }
    };
    out.session_id = mode.session_id();
    // Topics in order of first appearance, with the name each is read
    // under; each want points at its topic.
    let mut topics: Vec<(Topic, Option<Arc<str>>)> = Vec::new();
    let mut topic_at: HashMap<Topic, usize> = HashMap::new();
    let mut wants = Vec::with_capacity(listed.len());
    for (key, cached) in listed {
        let t = *topic_at.entry(key.0.clone()).or_insert_with(|| {
            let stream = match &key.0 {
                Topic::Name(name) => Some(name.clone()),
                Topic::Id(id) => topic_ids::name_of(ctx, *id),
            };
            topics.push((key.0.clone(), stream));
            topics.len() - 1
        });
        wants.push(Want {
            topic: t,
            stream: topics[t].1.clone(),
            key,
            offset: cached.fetch_offset,
            max_bytes: usize::try_from(cached.max_bytes).unwrap_or(0),
            current_leader_epoch: cached.current_leader_epoch,
        });
    }
    // The node's cap (`kafka_fetch_max_bytes`) bounds what the client asks.
    let cap = usize::try_from(ctx.host.settings().kafka_fetch_max_bytes.as_u64()).unwrap_or(usize::MAX);
    let max_bytes = if version >= 3 {
        usize::try_from(r.max_bytes).unwrap_or(0)
    } else {
        usize::MAX
    }
    .min(cap);
    let min_bytes = usize::try_from(r.min_bytes).unwrap_or(0);
    let wait = Duration::from_millis(u64::try_from(r.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    loop {
        let (read, bytes) = read_all(ctx, &wants, max_bytes).await;
        let now = Instant::now();
        let errors = read.iter().any(|g| g.found.error_code != 0);
        if bytes >= min_bytes || errors || now >= deadline || wants.is_empty() {
            let answers: Vec<_> = wants
                .iter()
                .zip(&read)
                .map(|(want, got)| (&want.key, &got.found, got.has_records()))
                .collect();
            let include = ctx.fetch_sessions.finish(mode, &answers);
            let mut leaders = std::collections::BTreeSet::new();
            // Response topics as their first included partition comes.
            let mut slots: Vec<Option<usize>> = vec![None; topics.len()];
            for ((want, got), included) in wants.iter().zip(read).zip(include) {
                if !included {
                    continue;
                }
                let slot = *slots[want.topic].get_or_insert_with(|| {
                    let mut resp = FetchableTopicResponse::default();
                    match &topics[want.topic].0 {
                        Topic::Name(name) => resp.topic = topic_name(name),
                        Topic::Id(id) => resp.topic_id = *id,
                    }
                    out.responses.push(resp);
                    out.responses.len() - 1
                });
                if let Some((leader, _)) = got.leader {
                    leaders.insert(leader);
                }
                let partitions = &mut out.responses[slot].partitions;
                let (part, cached) = got.answer(want.key.1, version);
                if let Some(batches) = cached {
                    parts.insert((slot, partitions.len()), batches);
                }
                partitions.push(part);
            }
            // Where the partitions answered NOT_LEADER_OR_FOLLOWER or
            // FENCED_LEADER_EPOCH are led (v16+), so clients go there
            // without asking Metadata first.
            if version >= 16 && !leaders.is_empty() {
                out.node_endpoints = leader_endpoints(ctx, local, &leaders, |id, host, port| {
                    NodeEndpoint::default().with_node_id(id).with_host(host).with_port(port)
                });
            }
            return (out, parts);
        }
        let waited = Instant::now();
        let targets = wants.iter().filter_map(|w| {
            let partition = partition_of(w.key.1)?;
            let offset = u64::try_from(w.offset).ok()?;
            Some((w.stream.as_deref()?, partition, offset))
        });
        ctx.host.wait_for_any(targets, deadline - now).await;
        // Records past the offset but not yet below the high watermark wake
        // the wait at once: pace the re-reads instead of spinning.
        if waited.elapsed() < Duration::from_millis(1) {
            tokio::time::sleep(Duration::from_millis(5).min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
}

/// What one partition's read found. Small on purpose: a session's idle
/// partitions are read on every fetch and most are not answered, so the
/// answer's `PartitionData` is built only for those that are.
#[derive(Default)]
struct Got {
    found: Found,
    records: Option<Bytes>,
    /// The records as the fetch cache's batches (then `records` is `None`).
    cached: Option<Vec<Bytes>>,
    /// The partition's leader and its epoch, when the answer says this
    /// node is not it (or the client's epoch is old).
    leader: Option<(i32, i32)>,
}

impl Got {
    fn error(code: i16) -> Got {
        let mut g = Got::default();
        g.found.error_code = code;
        g
    }

    fn has_records(&self) -> bool {
        self.cached.is_some() || self.records.as_ref().is_some_and(|r| !r.is_empty())
    }

    /// Record batch bytes carried.
    fn len(&self) -> usize {
        match &self.cached {
            Some(batches) => batches.iter().map(Bytes::len).fold(0usize, usize::saturating_add),
            None => self.records.as_ref().map_or(0, Bytes::len),
        }
    }

    /// The partition's answer at `version`, and its cached batches to
    /// splice in.
    fn answer(self, index: i32, version: i16) -> (PartitionData, Option<Vec<Bytes>>) {
        let mut part = PartitionData::default();
        if let Some((leader, epoch)) = self.leader.filter(|_| version >= 12) {
            part.current_leader.leader_id = BrokerId(leader);
            part.current_leader.leader_epoch = epoch;
        }
        part.partition_index = index;
        part.error_code = self.found.error_code;
        part.high_watermark = self.found.high_watermark;
        part.last_stable_offset = self.found.last_stable_offset;
        part.log_start_offset = self.found.log_start_offset;
        // Without records the default stays: an empty record set, not
        // null (librdkafka 2.0 refuses a null one as a bad message set).
        if let Some(records) = self.records {
            part.records = Some(records);
        }
        (part, self.cached)
    }
}

async fn read_all(ctx: &Ctx, wants: &[Want], max_bytes: usize) -> (Vec<Got>, usize) {
    let mut total = 0usize;
    let mut read = Vec::with_capacity(wants.len());
    for want in wants {
        let budget = want.max_bytes.min(max_bytes.saturating_sub(total));
        let got = read_one(ctx, want, budget, total == 0).await;
        total = total.saturating_add(got.len());
        read.push(got);
    }
    (read, total)
}

async fn read_one(ctx: &Ctx, want: &Want, budget: usize, first: bool) -> Got {
    let index = want.key.1;
    let Some(stream) = want.stream.as_deref() else {
        return Got::error(kafka_protocol::ResponseError::UnknownTopicId.code());
    };
    let host = &ctx.host;
    let (Some(partition), Ok(offset)) = (partition_of(index), u64::try_from(want.offset)) else {
        return Got::error(if index < 0 {
            codes::unknown_topic()
        } else {
            kafka_protocol::ResponseError::OffsetOutOfRange.code()
        });
    };
    let (start, visible_end, leader_epoch, cache_key) = match visible(ctx, stream, partition) {
        Ok(v) => (v.start, v.end, v.leader_epoch, v.cache_key),
        Err(refused) => {
            let mut got = Got::error(refused.code);
            got.leader = refused.leader;
            return got;
        }
    };
    // A client whose leader epoch is not this leader's refreshes its
    // metadata (and validates its position) before reading here; one that
    // is behind is told this node leads.
    if let Err(code) = check_epoch(want.current_leader_epoch, leader_epoch) {
        let mut got = Got::error(code);
        if code == kafka_protocol::ResponseError::FencedLeaderEpoch.code() {
            got.leader = Some((ctx.node_id, leader_epoch));
        }
        return got;
    }
    let mut got = Got::default();
    got.found.high_watermark = offset_of(visible_end);
    got.found.last_stable_offset = offset_of(visible_end);
    got.found.log_start_offset = offset_of(start);
    if offset < start || offset > visible_end {
        got.found.error_code = kafka_protocol::ResponseError::OffsetOutOfRange.code();
        return got;
    }
    if offset == visible_end || (budget == 0 && !first) {
        return got;
    }
    let limits = ReadLimits {
        max_records: host.settings().max_read_records,
        max_bytes: budget.max(1),
    };
    if host.view(stream).is_some() {
        match host.read(stream, partition, offset, limits).await {
            Ok(read) => {
                got.found.log_start_offset = offset_of(read.start_offset);
                let mut buf = BytesMut::new();
                encode_view(
                    &mut buf,
                    &read.records,
                    offset,
                    read.next_offset.min(visible_end),
                    leader_epoch,
                    budget,
                    first,
                );
                got.records = Some(buf.freeze());
            }
            Err(e) => {
                tracing::warn!(view = %stream, partition, offset, error = %e, "kafka fetch of a view failed");
                got.found.error_code = code_of(&e);
            }
        }
        return got;
    }
    if let Some(hit) = cache_key.and_then(|key| ctx.cache.get(key, leader_epoch, offset, visible_end, budget, first)) {
        got.cached = Some(hit);
        return got;
    }
    match host.read_runs(stream, partition, offset, limits).await {
        Ok(read) => {
            got.found.log_start_offset = offset_of(read.start_offset);
            let mut buf = BytesMut::new();
            let epochs = host.epoch_starts(stream, partition);
            match encode_runs(&mut buf, &read.runs, visible_end, leader_epoch, &epochs, budget, first) {
                Ok(()) => {
                    let answer = buf.freeze();
                    if let Some(key) = cache_key {
                        ctx.cache.insert_converted(key, leader_epoch, &answer);
                    }
                    got.records = Some(answer);
                }
                Err(e) => {
                    tracing::warn!(stream = %stream, partition, offset, error = %e, "kafka fetch: stored records do not decode");
                    got.found.error_code = kafka_protocol::ResponseError::CorruptMessage.code();
                }
            }
        }
        Err(e) => got.found.error_code = code_of(&e),
    }
    got
}
