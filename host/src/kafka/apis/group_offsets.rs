//! FindCoordinator, OffsetCommit and OffsetFetch: where a group's
//! coordinator is (this node alone; in a cluster the leader of the group's
//! offsets partition, others answer NOT_COORDINATOR), committing offsets
//! (durable before the answer; checked against the group's generation and
//! membership unless the group has no members) and reading them back.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse,
};

use super::super::Ctx;
use super::super::conn::Conn;
use super::super::error::{code_of, codes, commit_code, group_code};
use super::metadata::brokers;
use super::{partition_of, str_bytes, topic_name};
use crate::node::{CommittedOffset, OffsetCommit};

/// Key type of a FindCoordinator for a group (1 is a transaction).
const KEY_GROUP: i8 = 0;

pub(super) fn find_coordinator(
    ctx: &Ctx,
    conn: &Conn,
    r: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let mut out = FindCoordinatorResponse::default();
    let nodes = brokers(ctx, conn);
    let keys = if version >= 4 { r.coordinator_keys } else { vec![r.key] };
    for key in keys {
        let mut c = Coordinator::default();
        // A group's coordinator: this node alone, or in a cluster the leader
        // of the group's offsets partition.
        let node = ctx
            .host
            .group_coordinator(key.as_str())
            .map_or(ctx.node_id, |n| n as i32);
        match (nodes.iter().find(|(id, _, _)| *id == node), r.key_type) {
            (Some((id, host, port)), KEY_GROUP) => {
                c.node_id = BrokerId(*id);
                c.host = str_bytes(host.clone());
                c.port = *port;
            }
            (None, KEY_GROUP) => c.error_code = codes::coordinator_not_available(),
            (_, _) => {
                c.error_code = codes::transactions_unsupported();
                c.error_message = Some(str_bytes("transactions are not supported"));
            }
        }
        c.key = key;
        if c.error_code != 0 {
            c.node_id = BrokerId(-1);
            c.port = -1;
        }
        out.coordinators.push(c);
    }
    if version < 4 {
        // One key: the answer's top-level fields.
        if let Some(c) = out.coordinators.pop() {
            out.error_code = c.error_code;
            out.error_message = c.error_message;
            out.node_id = c.node_id;
            out.host = c.host;
            out.port = c.port;
        }
    }
    out
}

pub(super) async fn commit(ctx: &Ctx, r: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    let mut out = OffsetCommitResponse::default();
    let group = r.group_id.0.as_str();
    let member = r.member_id.as_str();
    let instance = r.group_instance_id.as_ref().map(|s| s.as_str());
    // Every partition gets the same answer when the request as a whole fails.
    let all = |out: &mut OffsetCommitResponse, code: i16| {
        out.topics = r
            .topics
            .iter()
            .map(|t| {
                let mut rt = OffsetCommitResponseTopic::default();
                rt.name = t.name.clone();
                rt.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut rp = OffsetCommitResponsePartition::default();
                        rp.partition_index = p.partition_index;
                        rp.error_code = code;
                        rp
                    })
                    .collect();
                rt
            })
            .collect();
    };
    if group.is_empty() {
        all(&mut out, codes::invalid_group_id());
        return out;
    }
    if let Err(e) = ctx
        .host
        .check_group_commit(group, r.generation_id_or_member_epoch, member, instance, version >= 9)
    {
        all(&mut out, group_code(&e));
        return out;
    }
    // Commits this node can take, and where each answer goes.
    let mut commits = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in r.topics.iter().enumerate() {
        let mut rt = OffsetCommitResponseTopic::default();
        rt.name = t.name.clone();
        for (pi, p) in t.partitions.iter().enumerate() {
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            match (partition_of(p.partition_index), u64::try_from(p.committed_offset)) {
                (Some(partition), Ok(offset)) => {
                    commits.push(OffsetCommit {
                        stream: t.name.0.as_str().to_string(),
                        partition,
                        offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.as_str().to_string()),
                    });
                    slots.push((ti, pi));
                }
                (None, _) => rp.error_code = codes::unknown_topic(),
                (_, Err(_)) => rp.error_code = codes::invalid_commit_offset(),
            }
            rt.partitions.push(rp);
        }
        out.topics.push(rt);
    }
    match ctx.host.commit_offsets(group, &commits).await {
        Ok(results) => {
            for ((ti, pi), result) in slots.into_iter().zip(results) {
                if let (Err(e), Some(p)) = (result, out.topics.get_mut(ti).and_then(|t| t.partitions.get_mut(pi))) {
                    p.error_code = commit_code(&e);
                }
            }
        }
        Err(e) => {
            let code = code_of(&e);
            for (ti, pi) in slots {
                if let Some(p) = out.topics.get_mut(ti).and_then(|t| t.partitions.get_mut(pi)) {
                    p.error_code = code;
                }
            }
        }
    }
    out
}

/// OffsetFetch's partition answers from [`Fetched`] (v8+ and older
/// versions use two types with the same fields).
macro_rules! answers {
    ($ty:ty, $parts:expr) => {
        $parts
            .into_iter()
            .map(|p| {
                let mut rp = <$ty>::default();
                rp.partition_index = p.index;
                rp.committed_offset = p.offset;
                rp.committed_leader_epoch = p.leader_epoch;
                rp.metadata = p.metadata.map(str_bytes);
                rp.error_code = p.error_code;
                rp
            })
            .collect()
    };
}

pub(super) async fn fetch(ctx: &Ctx, r: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let mut out = OffsetFetchResponse::default();
    if version >= 8 {
        for g in r.groups {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes))
                    .collect::<Vec<_>>()
            });
            let member = g.member_id.as_ref().map(|m| m.as_str());
            let (code, topics) = match ctx
                .host
                .check_group_offset_fetch(g.group_id.0.as_str(), member, g.member_epoch)
            {
                Ok(()) => group_offsets(ctx, g.group_id.0.as_str(), wanted).await,
                Err(e) => (group_code(&e), Vec::new()),
            };
            let mut rg = OffsetFetchResponseGroup::default();
            rg.group_id = g.group_id;
            rg.error_code = code;
            rg.topics = topics
                .into_iter()
                .map(|(name, parts)| {
                    let mut t = OffsetFetchResponseTopics::default();
                    t.name = topic_name(&name);
                    t.partitions = answers!(OffsetFetchResponsePartitions, parts);
                    t
                })
                .collect();
            out.groups.push(rg);
        }
        return out;
    }
    let wanted = r.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes))
            .collect::<Vec<_>>()
    });
    let GroupId(group) = r.group_id;
    let (code, topics) = group_offsets(ctx, group.as_str(), wanted).await;
    out.error_code = code;
    out.topics = topics
        .into_iter()
        .map(|(name, parts)| {
            let mut t = OffsetFetchResponseTopic::default();
            t.name = topic_name(&name);
            t.partitions = answers!(OffsetFetchResponsePartition, parts);
            t
        })
        .collect();
    out
}

/// One partition's answer to OffsetFetch (offset -1: nothing committed).
struct Fetched {
    index: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<String>,
    error_code: i16,
}

/// The group's committed offsets: for the partitions asked for (-1 where
/// nothing is committed), or every committed one when `wanted` is `None`.
async fn group_offsets(
    ctx: &Ctx,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> (i16, Vec<(String, Vec<Fetched>)>) {
    let committed = match ctx.host.committed_offsets(group).await {
        Ok(c) => c,
        Err(e) => return (code_of(&e), Vec::new()),
    };
    let found = |c: &CommittedOffset| Fetched {
        index: i32::try_from(c.partition).unwrap_or(i32::MAX),
        offset: i64::try_from(c.offset).unwrap_or(i64::MAX),
        leader_epoch: c.leader_epoch,
        metadata: c.metadata.clone(),
        error_code: 0,
    };
    let topics = match wanted {
        None => {
            let mut out: Vec<(String, Vec<Fetched>)> = Vec::new();
            for c in &committed {
                match out.last_mut() {
                    Some((name, parts)) if *name == c.stream => parts.push(found(c)),
                    _ => out.push((c.stream.clone(), vec![found(c)])),
                }
            }
            out
        }
        Some(wanted) => wanted
            .into_iter()
            .map(|(name, indexes)| {
                let parts = indexes
                    .into_iter()
                    .map(|index| {
                        let hit = partition_of(index)
                            .and_then(|p| committed.iter().find(|c| c.stream == name && c.partition == p));
                        hit.map(&found).unwrap_or(Fetched {
                            index,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: Some(String::new()),
                            error_code: 0,
                        })
                    })
                    .collect();
                (name, parts)
            })
            .collect(),
    };
    (0, topics)
}
