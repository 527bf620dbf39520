//! CreateTopics, DeleteTopics and CreatePartitions: topics are streams
//! (changing configs: `configs`), answered with their ids (`topic_ids`).
//! CreatePartitions grows a stream (never shrinks it); replica assignments
//! may only name this node, except on a replicated stream, whose new
//! partitions go on the replicas they name (or round-robin) on every node.
//!
//! Topic configs map to stream settings: `retention.ms` and
//! `retention.bytes` (-1: unlimited), `cleanup.policy` `delete`, `compact`
//! or `compact,delete` (compaction by record key, the built-in policy; as
//! in Kafka, only a null value is a tombstone). Configs that only tune a
//! broker's file layout, or that name what Sluice does anyway, are accepted
//! and change nothing (`configs::without_effect`). `delete.retention.ms`,
//! `min.compaction.lag.ms` and `min.cleanable.dirty.ratio` tune a
//! compacted topic's compaction (on other topics they tune nothing, as in
//! Kafka). `max.message.bytes` (1 to the node's `max_batch_bytes`) bounds
//! the batches producers send to the topic. `min.insync.replicas`
//! (1 to the replication factor) is kept with the topic's replication and
//! enforced by its leaders. Any other config is
//! refused with INVALID_CONFIG rather than silently ignored. A replication factor above
//! 1 creates a replicated stream (a `[cluster]` is needed), compacted on
//! each node when asked.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse,
};

use uuid::Uuid;

use super::super::Ctx;
use super::super::error::{code_of, codes};
use super::{str_bytes, topic_ids, topic_name};
use crate::node::{Compaction, Host, Replication, StreamConfig, StreamInfo};

/// Config resource types.
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;

/// A topic's `cleanup.policy`.
pub(super) fn cleanup_policy(info: &StreamInfo) -> &'static str {
    match &info.compaction {
        None => "delete",
        Some(c) if c.delete => "compact,delete",
        Some(_) => "compact",
    }
}

/// Creates `stream` with the default partition count if it does not exist
/// (auto-creation); errors surface on the call that follows. Produce asks
/// this for every partition, so existence is one partition's lookup, not a
/// description of the whole stream.
pub(super) async fn ensure_exists(ctx: &Ctx, stream: &str) {
    if ctx.host.describe_partition(stream, 0).is_err()
        && ctx.host.view(stream).is_none()
        && Host::check_stream_name(stream).is_ok()
    {
        let _ = auto_create(ctx, stream).await;
    }
}

/// Creates a topic a client named without creating it (`kafka_auto_create_topics`):
/// the default partitions and, in a cluster, the default replication.
pub(super) async fn auto_create(ctx: &Ctx, name: &str) -> Result<crate::node::StreamInfo, crate::Error> {
    let partitions = ctx.host.settings().kafka_default_partitions;
    let replication = replication_for(ctx, -1).map_err(|(_, m)| crate::Error::invalid(m))?;
    let config = StreamConfig {
        replication,
        ..StreamConfig::default()
    };
    ctx.host.create_stream_with(name, partitions, config).await
}

pub(super) async fn create(ctx: &Ctx, r: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut out = CreateTopicsResponse::default();
    for topic in r.topics {
        let name = topic.name.0.as_str().to_string();
        let mut res = CreatableTopicResult::default();
        res.name = topic_name(&name);
        match create_one(ctx, &name, &topic, r.validate_only).await {
            Ok((partitions, factor, id)) => {
                res.topic_id = id;
                res.num_partitions = partitions as i32;
                res.replication_factor = i16::try_from(factor).unwrap_or(i16::MAX);
            }
            Err((code, message)) => {
                res.error_code = code;
                res.error_message = Some(str_bytes(message));
            }
        }
        out.topics.push(res);
    }
    out
}

/// The replication of a topic created over Kafka with `asked` replicas
/// (-1: the default). On a node alone, a topic is that node's. In a cluster
/// of several nodes every such topic is replicated (-1: `[cluster]
/// default_replication_factor`), so every node knows it, factor 1
/// included (one node holds it, the others know where it leads): a topic
/// on one node only would be unknown to clients that ask another node, and
/// Kafka clients ask any node.
pub(super) fn replication_for(ctx: &Ctx, asked: i16) -> Result<Option<Replication>, (i16, String)> {
    let cluster = ctx.host.settings().cluster_with_peers();
    let factor = match (asked, cluster) {
        (-1 | 1, None) => return Ok(None),
        (-1, Some(c)) => c.kafka_replication_factor(),
        (f, None) if f > 1 => {
            return Err((
                codes::invalid_replication_factor(),
                format!("replication factor {f} needs a cluster; this node runs alone"),
            ));
        }
        (f, Some(_)) if f >= 1 => u32::from(f.unsigned_abs()),
        (f, _) => return Err((codes::invalid_replication_factor(), format!("replication factor {f}"))),
    };
    Ok(Some(Replication {
        factor,
        assignment: Vec::new(),
        min_insync_replicas: None,
    }))
}

async fn create_one(
    ctx: &Ctx,
    name: &str,
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<(u32, u32, Uuid), (i16, String)> {
    Host::check_stream_name(name).map_err(|e| {
        (
            kafka_protocol::ResponseError::InvalidTopicException.code(),
            e.to_string(),
        )
    })?;
    if !topic.assignments.is_empty() {
        return Err((
            kafka_protocol::ResponseError::InvalidReplicaAssignment.code(),
            "manual replica assignments are not supported over Kafka; use the HTTP API".into(),
        ));
    }
    let partitions = match topic.num_partitions {
        -1 => ctx.host.settings().kafka_default_partitions,
        n => u32::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| (codes::invalid_partitions(), format!("{n} partitions")))?,
    };
    let mut config = StreamConfig::default();
    let mut min_insync = None;
    let mut tuning = Vec::new();
    for c in &topic.configs {
        let value = c.value.as_ref().map(|v| v.as_str().to_string()).unwrap_or_default();
        let name = c.name.as_str();
        let invalid = |m| (codes::invalid_config(), m);
        if name == "min.insync.replicas" {
            min_insync = Some(positive(name, &value).map_err(invalid)?);
            continue;
        }
        if name == "max.message.bytes" {
            config.max_message_bytes = Some(max_message_bytes(&value).map_err(invalid)?);
            continue;
        }
        if let Some(t) = CompactionTuning::parse(name, &value) {
            tuning.push(t.map_err(invalid)?);
            continue;
        }
        apply_config(&mut config, name, &value).map_err(invalid)?;
    }
    // On a compacted topic; others have nothing they tune (as in Kafka).
    if let Some(c) = &mut config.compaction {
        for t in tuning {
            t.apply(c);
        }
    }
    config.replication = replication_for(ctx, topic.replication_factor)?;
    let factor = config.replication.as_ref().map_or(1, |r| r.factor);
    if let Some(m) = min_insync.filter(|m| *m > factor) {
        return Err((
            codes::invalid_config(),
            format!(
                "min.insync.replicas {m} is more than the topic's {factor} replica(s): every acks=all write would be refused"
            ),
        ));
    }
    if let Some(r) = &mut config.replication {
        r.min_insync_replicas = min_insync;
    }
    if validate_only {
        config
            .validate()
            .map_err(|m| (codes::invalid_config(), m.to_string()))?;
        if ctx.host.describe_stream(name).is_ok() || ctx.host.view(name).is_some() {
            return Err((
                kafka_protocol::ResponseError::TopicAlreadyExists.code(),
                format!("topic `{name}` exists"),
            ));
        }
        return Ok((partitions, factor, Uuid::nil()));
    }
    let info = ctx
        .host
        .create_stream_with(name, partitions, config)
        .await
        .map_err(|e| {
            let code = match e.code() {
                "invalid_request" if e.message().contains("replicas") => codes::invalid_replica_assignment(),
                "invalid_request" if e.message().contains("partition") => codes::invalid_partitions(),
                "invalid_request" if e.message().contains("replica") => codes::invalid_replication_factor(),
                _ => code_of(&e),
            };
            (code, e.to_string())
        })?;
    Ok((info.partitions.len() as u32, factor, topic_ids::of_stream(&info)))
}

/// A topic config that tunes compaction (Kafka's names for the settings of
/// the built-in record-key policy), parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum CompactionTuning {
    /// `delete.retention.ms`: how long a tombstone is kept.
    DeleteRetentionMs(u64),
    /// `min.compaction.lag.ms`: records younger than this stay as written.
    MinLagMs(u64),
    /// `min.cleanable.dirty.ratio`, in millionths.
    DirtyPpm(u32),
}

impl CompactionTuning {
    /// `None` when `name` is not such a config; else the value or why not.
    pub(super) fn parse(name: &str, value: &str) -> Option<Result<CompactionTuning, String>> {
        let ms = || {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("`{name}` must be a number of milliseconds, not `{value}`"))
        };
        Some(match name {
            "delete.retention.ms" => ms().map(CompactionTuning::DeleteRetentionMs),
            "min.compaction.lag.ms" => ms().map(CompactionTuning::MinLagMs),
            "min.cleanable.dirty.ratio" => match value.trim().parse::<f64>().ok().and_then(Compaction::ratio_ppm) {
                Some(ppm) => Ok(CompactionTuning::DirtyPpm(ppm)),
                None => Err(format!("`{name}` must be between 0 and 1, not `{value}`")),
            },
            _ => return None,
        })
    }

    /// The configs' names.
    pub(super) const NAMES: [&'static str; 3] = [
        "delete.retention.ms",
        "min.compaction.lag.ms",
        "min.cleanable.dirty.ratio",
    ];

    /// The default of config `name` (Kafka's, and the built-in policy's),
    /// if it is one of the three.
    pub(super) fn default_of(name: &str) -> Option<CompactionTuning> {
        let d = Compaction::by_record_key(false);
        Some(match name {
            "delete.retention.ms" => CompactionTuning::DeleteRetentionMs(d.delete_retention_ms),
            "min.compaction.lag.ms" => CompactionTuning::MinLagMs(d.min_compaction_lag_ms),
            "min.cleanable.dirty.ratio" => CompactionTuning::DirtyPpm(d.min_cleanable_dirty_ppm),
            _ => return None,
        })
    }

    /// Makes this value part of `change`.
    pub(super) fn set_in(self, change: &mut crate::node::TuningChange) {
        match self {
            CompactionTuning::DeleteRetentionMs(ms) => change.delete_retention_ms = Some(ms),
            CompactionTuning::MinLagMs(ms) => change.min_compaction_lag_ms = Some(ms),
            CompactionTuning::DirtyPpm(ppm) => change.min_cleanable_dirty_ppm = Some(ppm),
        }
    }

    pub(super) fn apply(self, c: &mut Compaction) {
        match self {
            CompactionTuning::DeleteRetentionMs(ms) => c.delete_retention_ms = ms,
            CompactionTuning::MinLagMs(ms) => c.min_compaction_lag_ms = ms,
            CompactionTuning::DirtyPpm(ppm) => c.min_cleanable_dirty_ppm = ppm,
        }
    }

    /// The three as a topic has them: its compaction's, else the defaults
    /// (name, value, whether the topic's own differs from the default).
    pub(super) fn shown(c: Option<&Compaction>) -> [(&'static str, String, bool); 3] {
        let d = Compaction::by_record_key(false);
        let c = c.unwrap_or(&d);
        [
            (
                "delete.retention.ms",
                c.delete_retention_ms.to_string(),
                c.delete_retention_ms != d.delete_retention_ms,
            ),
            (
                "min.compaction.lag.ms",
                c.min_compaction_lag_ms.to_string(),
                c.min_compaction_lag_ms != d.min_compaction_lag_ms,
            ),
            (
                "min.cleanable.dirty.ratio",
                (f64::from(c.min_cleanable_dirty_ppm) / 1e6).to_string(),
                c.min_cleanable_dirty_ppm != d.min_cleanable_dirty_ppm,
            ),
        ]
    }
}

/// A topic's `max.message.bytes`: a positive number (the node checks it
/// against its `max_batch_bytes`).
pub(super) fn max_message_bytes(value: &str) -> Result<u64, String> {
    positive("max.message.bytes", value)
}

/// A config that is a positive integer.
pub(super) fn positive<T: std::str::FromStr + PartialOrd + From<u8>>(name: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse::<T>()
        .ok()
        .filter(|n| *n >= T::from(1))
        .ok_or_else(|| format!("`{name}` must be a positive number, not `{value}`"))
}

fn apply_config(config: &mut StreamConfig, name: &str, value: &str) -> Result<(), String> {
    let limit = |v: &str| super::configs::limit(name, v);
    match name {
        "retention.ms" => config.retention.ms = limit(value)?,
        "retention.bytes" => config.retention.bytes = limit(value)?,
        "cleanup.policy" => {
            let mut policies: Vec<&str> = value.split(',').map(str::trim).collect();
            policies.sort_unstable();
            config.compaction = match policies.as_slice() {
                ["delete"] => None,
                ["compact"] => Some(Compaction::kafka_record_key(false)),
                ["compact", "delete"] => Some(Compaction::kafka_record_key(true)),
                _ => {
                    return Err(format!(
                        "cleanup.policy `{value}`: use `delete`, `compact` or `compact,delete`"
                    ));
                }
            };
        }
        other => match super::configs::without_effect(other, value) {
            Some(accepted) => accepted?,
            None => return Err(format!("topic config `{other}` is not supported")),
        },
    }
    Ok(())
}

pub(super) async fn create_partitions(ctx: &Ctx, r: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut out = CreatePartitionsResponse::default();
    for topic in r.topics {
        let mut res = CreatePartitionsTopicResult::default();
        if let Err((code, message)) = grow_one(ctx, &topic, r.validate_only).await {
            res.error_code = code;
            res.error_message = Some(str_bytes(message));
        }
        res.name = topic.name;
        out.results.push(res);
    }
    out
}

async fn grow_one(
    ctx: &Ctx,
    topic: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let name = topic.name.0.as_str();
    let info = ctx
        .host
        .describe_stream(name)
        .map_err(|e| (code_of(&e), e.to_string()))?;
    let current = info.partitions.len();
    let count = usize::try_from(topic.count).unwrap_or(0);
    if count <= current {
        return Err((
            codes::invalid_partitions(),
            format!("topic `{name}` has {current} partitions; the count can only grow"),
        ));
    }
    // A replicated topic's new partitions go where the assignments say
    // (the cluster checks the nodes); others only on this node.
    let replicated = info.replication.is_some();
    let elsewhere = |a: &kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment| {
        !replicated && (a.broker_ids.iter().any(|b| b.0 != ctx.node_id) || a.broker_ids.len() != 1)
    };
    let assigned: Option<Vec<Vec<u32>>> = match &topic.assignments {
        Some(a) if replicated => {
            let nodes = |a: &kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment| {
                a.broker_ids
                    .iter()
                    .map(|b| u32::try_from(b.0).unwrap_or(u32::MAX))
                    .collect()
            };
            Some(a.iter().map(nodes).collect())
        }
        _ => None,
    };
    if let Some(a) = &topic.assignments
        && (a.len() != count - current || a.iter().any(elsewhere))
    {
        return Err((
            codes::invalid_replica_assignment(),
            format!(
                "new partitions of `{name}` can only be placed on this node ({})",
                ctx.node_id
            ),
        ));
    }
    ctx.host
        .add_partitions_assigned(name, count as u32, assigned, validate_only)
        .await
        .map(|_| ())
        .map_err(|e| {
            let code = match e.code() {
                "invalid_request" if e.message().contains("replicas") => codes::invalid_replica_assignment(),
                "invalid_request" if e.message().contains("partition") => codes::invalid_partitions(),
                _ => code_of(&e),
            };
            (code, e.to_string())
        })
}

/// DeleteTopics. From v6 a topic is named by its name or by its id (not
/// both: INVALID_REQUEST); an id no topic has is UNKNOWN_TOPIC_ID. Each
/// answer gives the topic's name and, from v6, its id.
pub(super) async fn delete(ctx: &Ctx, r: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let asked: Vec<(Option<String>, Uuid)> = if version >= 6 {
        r.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.as_str().to_string()), t.topic_id))
            .collect()
    } else {
        r.topic_names
            .iter()
            .map(|n| (Some(n.0.as_str().to_string()), Uuid::nil()))
            .collect()
    };
    let mut out = DeleteTopicsResponse::default();
    for (name, id) in asked {
        let mut res = DeletableTopicResult::default();
        res.topic_id = id;
        let name = match (name, id.is_nil()) {
            (Some(name), true) => name,
            (None, false) => match topic_ids::name_of(ctx, id) {
                Some(name) => name.to_string(),
                None => {
                    res.error_code = kafka_protocol::ResponseError::UnknownTopicId.code();
                    res.error_message = Some(str_bytes(format!("no topic has id {id}")));
                    out.responses.push(res);
                    continue;
                }
            },
            (name, _) => {
                res.name = name.as_deref().map(topic_name);
                res.error_code = codes::invalid_request();
                res.error_message = Some(str_bytes(
                    "name a topic by its name or by its id: one of them, not both",
                ));
                out.responses.push(res);
                continue;
            }
        };
        res.name = Some(topic_name(&name));
        if let Some(id) = topic_ids::of_name(ctx, &name) {
            res.topic_id = id;
        }
        if let Err(e) = ctx.host.delete_stream(&name).await {
            res.error_code = code_of(&e);
            res.error_message = Some(str_bytes(e.to_string()));
        }
        out.responses.push(res);
    }
    out
}
