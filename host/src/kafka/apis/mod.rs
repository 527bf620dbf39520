//! The handlers, one file per API family. Each takes the decoded request
//! and returns the response the dispatcher encodes at the request's version.

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use super::conn::Conn;

mod acls;
mod authorized;
mod configs;
mod consumer_groups;
mod describe_configs;
mod elect;
mod fetch;
pub(super) mod fetch_session;
mod group_offsets;
mod groups;
mod leader_epoch;
mod log_dirs;
mod metadata;
mod offset_delete;
mod offsets;
mod produce;
mod producer_id;
mod producers;
mod sasl;
pub(super) mod topic_ids;
mod topics;
mod transactions;
pub(super) mod versions;

/// What a handler wants done.
pub(super) enum Answer {
    Respond(Box<ResponseKind>),
    /// A Fetch answer and the records kept out of it (see `splice`).
    Fetch(Box<kafka_protocol::messages::FetchResponse>, super::splice::Parts),
    /// Produce with acks=0: no answer.
    Silent,
    /// Close the connection (failed authentication).
    Close(String),
    /// The request is under way (its appends queued, or its long-poll
    /// waiting); the answer follows. Later requests of the connection start
    /// meanwhile; answers still go out in request order.
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>),
}

impl Answer {
    fn respond(r: ResponseKind) -> Answer {
        Answer::Respond(Box::new(r))
    }
}

pub(super) async fn handle(
    ctx: &std::sync::Arc<Ctx>,
    conn: &mut Conn,
    header: &RequestHeader,
    request: RequestKind,
    version: i16,
) -> Answer {
    let respond = |r: ResponseKind| Answer::Respond(Box::new(r));
    match request {
        RequestKind::ApiVersions(_) => respond(ResponseKind::ApiVersions(versions::handle())),
        RequestKind::Metadata(r) => respond(ResponseKind::Metadata(metadata::handle(ctx, conn, r, version).await)),
        RequestKind::Produce(r) => produce::handle(ctx, r, version, conn.local).await,
        RequestKind::Fetch(r) => {
            let (ctx, local) = (ctx.clone(), conn.local);
            Answer::Later(Box::pin(async move {
                let (response, parts) = fetch::handle(&ctx, r, version, local).await;
                Answer::Fetch(Box::new(response), parts)
            }))
        }
        RequestKind::ListOffsets(r) => respond(ResponseKind::ListOffsets(offsets::handle(ctx, r, version).await)),
        RequestKind::CreateTopics(r) => respond(ResponseKind::CreateTopics(topics::create(ctx, r).await)),
        RequestKind::DeleteTopics(r) => respond(ResponseKind::DeleteTopics(topics::delete(ctx, r, version).await)),
        RequestKind::DescribeConfigs(r) => respond(ResponseKind::DescribeConfigs(describe_configs::describe_configs(
            ctx, r,
        ))),
        RequestKind::ListTransactions(r) => respond(ResponseKind::ListTransactions(transactions::list(&r))),
        RequestKind::DescribeAcls(_) => respond(ResponseKind::DescribeAcls(acls::describe())),
        RequestKind::CreateAcls(r) => respond(ResponseKind::CreateAcls(acls::create(&r))),
        RequestKind::DeleteAcls(r) => respond(ResponseKind::DeleteAcls(acls::delete(&r))),
        RequestKind::DescribeLogDirs(r) => respond(ResponseKind::DescribeLogDirs(log_dirs::describe(ctx, r))),
        RequestKind::DeleteRecords(r) => respond(ResponseKind::DeleteRecords(offsets::delete_records(ctx, r).await)),
        RequestKind::CreatePartitions(r) => {
            respond(ResponseKind::CreatePartitions(topics::create_partitions(ctx, r).await))
        }
        RequestKind::AlterConfigs(r) => respond(ResponseKind::AlterConfigs(configs::alter(ctx, r).await)),
        RequestKind::IncrementalAlterConfigs(r) => respond(ResponseKind::IncrementalAlterConfigs(
            configs::incremental(ctx, r).await,
        )),
        RequestKind::InitProducerId(r) => respond(ResponseKind::InitProducerId(producer_id::handle(ctx, r))),
        RequestKind::SaslHandshake(r) => respond(ResponseKind::SaslHandshake(sasl::handshake(conn, r))),
        RequestKind::SaslAuthenticate(r) => sasl::authenticate(ctx, conn, r),
        RequestKind::FindCoordinator(r) => respond(ResponseKind::FindCoordinator(group_offsets::find_coordinator(
            ctx, conn, r, version,
        ))),
        RequestKind::OffsetCommit(r) => {
            respond(ResponseKind::OffsetCommit(group_offsets::commit(ctx, r, version).await))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            respond(ResponseKind::OffsetForLeaderEpoch(leader_epoch::handle(ctx, r)))
        }
        RequestKind::DescribeProducers(r) => respond(ResponseKind::DescribeProducers(producers::handle(ctx, r))),
        RequestKind::DescribeCluster(r) => {
            respond(ResponseKind::DescribeCluster(metadata::describe_cluster(ctx, conn, r)))
        }
        RequestKind::ElectLeaders(r) => {
            let ctx = ctx.clone();
            Answer::Later(Box::pin(async move {
                Answer::respond(ResponseKind::ElectLeaders(elect::handle(&ctx, r, version).await))
            }))
        }
        RequestKind::OffsetDelete(r) => respond(ResponseKind::OffsetDelete(offset_delete::delete(ctx, r).await)),
        RequestKind::OffsetFetch(r) => respond(ResponseKind::OffsetFetch(group_offsets::fetch(ctx, r, version).await)),
        RequestKind::JoinGroup(r) => {
            let (ctx, host) = (ctx.clone(), conn.peer.ip().to_string());
            let client = header
                .client_id
                .as_ref()
                .map_or_else(String::new, |c| c.as_str().to_string());
            Answer::Later(Box::pin(async move {
                Answer::respond(ResponseKind::JoinGroup(
                    groups::join(&ctx, client, host, r, version).await,
                ))
            }))
        }
        RequestKind::SyncGroup(r) => {
            let ctx = ctx.clone();
            Answer::Later(Box::pin(async move {
                Answer::respond(ResponseKind::SyncGroup(groups::sync(&ctx, r).await))
            }))
        }
        RequestKind::Heartbeat(r) => respond(ResponseKind::Heartbeat(groups::heartbeat(ctx, r))),
        RequestKind::LeaveGroup(r) => respond(ResponseKind::LeaveGroup(groups::leave(ctx, r, version))),
        RequestKind::ListGroups(r) => respond(ResponseKind::ListGroups(groups::list(ctx, r).await)),
        RequestKind::DescribeGroups(r) => respond(ResponseKind::DescribeGroups(groups::describe(ctx, r, version))),
        RequestKind::DeleteGroups(r) => respond(ResponseKind::DeleteGroups(groups::delete(ctx, r).await)),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            let client = header
                .client_id
                .as_ref()
                .map_or_else(String::new, |c| c.as_str().to_string());
            let host = conn.peer.ip().to_string();
            respond(ResponseKind::ConsumerGroupHeartbeat(consumer_groups::heartbeat(
                ctx, client, host, r, version,
            )))
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            respond(ResponseKind::ConsumerGroupDescribe(consumer_groups::describe(ctx, r)))
        }
        other => Answer::Close(format!("no handler for {other:?}")),
    }
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// A Kafka partition index as a Sluice partition number (`None` if negative).
fn partition_of(index: i32) -> Option<u32> {
    u32::try_from(index).ok()
}

/// Kafka's check of the leader epoch a client names (`current`; -1: none)
/// against this leader's: older is FENCED_LEADER_EPOCH, newer
/// UNKNOWN_LEADER_EPOCH, and the client refreshes its metadata.
fn check_epoch(current: i32, leader_epoch: i32) -> Result<(), i16> {
    match current {
        c if c < 0 || c == leader_epoch => Ok(()),
        c if c < leader_epoch => Err(kafka_protocol::ResponseError::FencedLeaderEpoch.code()),
        _ => Err(kafka_protocol::ResponseError::UnknownLeaderEpoch.code()),
    }
}

/// The leader of partition `partition` of `stream` (a view: of its input)
/// and its epoch, as this node knows them, when it is replicated.
fn current_leader(ctx: &Ctx, stream: &str, partition: u32) -> Option<(i32, i32)> {
    let view = ctx.host.view(stream);
    let stream = view.as_ref().map_or(stream, |v| v.input.as_str());
    let s = ctx.host.replication_status(stream, partition)?;
    Some((i32::try_from(s.leader).ok()?, i32::try_from(s.epoch).ok()?))
}

/// The endpoints of the nodes `leaders` for a client of this node's
/// listener at `local`, each made by `endpoint` (Fetch and Produce each
/// have their own endpoint type).
fn leader_endpoints<T>(
    ctx: &Ctx,
    local: std::net::SocketAddr,
    leaders: &std::collections::BTreeSet<i32>,
    endpoint: impl Fn(kafka_protocol::messages::BrokerId, StrBytes, i32) -> T,
) -> Vec<T> {
    metadata::brokers_at(ctx, local)
        .into_iter()
        .filter(|(id, _, _)| leaders.contains(id))
        .map(|(id, host, port)| endpoint(kafka_protocol::messages::BrokerId(id), str_bytes(host), port))
        .collect()
}

/// What a reader of one partition may see on this node.
struct Visible {
    /// First offset still stored.
    start: u64,
    /// End of what readers see: the log end, or on a replicated partition
    /// the high watermark.
    end: u64,
    leader_epoch: i32,
    /// The fetch cache's key for it, unless its records must not be served
    /// from the cache (a view, or a stream with compaction).
    cache_key: Option<super::cache::Key>,
}

/// Why a partition cannot be read here: the Kafka error code and, on a
/// follower (NOT_LEADER_OR_FOLLOWER), the leader and its epoch as this
/// node knows them, for clients to go there directly (KIP-951).
struct Refused {
    code: i16,
    leader: Option<(i32, i32)>,
}

impl From<Refused> for i16 {
    fn from(r: Refused) -> i16 {
        r.code
    }
}

/// The visible range of `stream` partition `partition` (of a view: of its
/// input), or why not: unknown topic or partition, or
/// NOT_LEADER_OR_FOLLOWER (with the leader) on a follower.
fn visible(ctx: &Ctx, stream: &str, partition: u32) -> Result<Visible, Refused> {
    let host = &ctx.host;
    let view = host.view(stream);
    let stream = view.as_ref().map_or(stream, |v| v.input.as_str());
    // One partition's state: a fetch of many partitions must not describe
    // the whole stream for each.
    let info = host.describe_partition(stream, partition).map_err(|e| Refused {
        code: super::error::code_of(&e),
        leader: None,
    })?;
    let range = info.range;
    let (end, leader_epoch) = match host.replication_status(stream, partition) {
        Some(s) if !s.is_leader => {
            return Err(Refused {
                code: kafka_protocol::ResponseError::NotLeaderOrFollower.code(),
                leader: i32::try_from(s.leader).ok().zip(i32::try_from(s.epoch).ok()),
            });
        }
        Some(s) => (s.high_watermark.min(range.end), s.epoch as i32),
        None => (range.end, 0),
    };
    Ok(Visible {
        start: range.start,
        end,
        leader_epoch,
        cache_key: cache_key(&info, partition, view.is_some()),
    })
}

/// The fetch cache's key for `info`'s partition, unless its records must not
/// be served from the cache: a view's are its plugin's output, and
/// compaction removes records below the head.
fn cache_key(info: &crate::node::PartitionInfo, partition: u32, view: bool) -> Option<super::cache::Key> {
    (!view && !info.compacted).then_some((info.stream_id, partition))
}

/// A Sluice offset as a Kafka one.
fn offset_of(o: u64) -> i64 {
    i64::try_from(o).unwrap_or(i64::MAX)
}
