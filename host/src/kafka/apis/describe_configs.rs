//! DescribeConfigs (v1–v4): a topic's settings under Kafka's names
//! (retention, cleanup policy, the node's record batch limit), and a
//! broker's: the node's settings that have a Kafka broker config of the
//! same meaning, all read-only (they come from the config file; AlterConfigs
//! refuses them), each marked as the default or as set in the file.
//!
//! A broker resource names this node's id, or is empty (the defaults every
//! node shares; here the same list); another id is INVALID_REQUEST, as in
//! Kafka, since clients send it to the broker it names. Only the keys asked
//! for are answered when the request lists some.

use std::time::Duration;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::super::Ctx;
use super::super::error::{code_of, codes};
use super::str_bytes;
use super::topics::{RESOURCE_BROKER, RESOURCE_TOPIC, cleanup_policy};
use crate::Settings;

/// Config sources and types (Kafka's `ConfigSource`, `ConfigType`).
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const TYPE_BOOLEAN: i8 = 1;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

/// One config as answered: name, value, source, type, read-only.
type Entry = (&'static str, String, i8, i8, bool);

pub(super) fn describe_configs(ctx: &Ctx, r: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut out = DescribeConfigsResponse::default();
    for resource in r.resources {
        let mut res = DescribeConfigsResult::default();
        res.resource_type = resource.resource_type;
        res.resource_name = resource.resource_name.clone();
        let entries = match resource.resource_type {
            RESOURCE_TOPIC => topic(ctx, resource.resource_name.as_str()),
            RESOURCE_BROKER => broker(ctx, resource.resource_name.as_str()),
            other => Err((
                codes::invalid_request(),
                format!("resource type {other} is not supported"),
            )),
        };
        match entries {
            Ok(entries) => res.configs = answered(&resource, entries),
            Err((code, message)) => {
                res.error_code = code;
                res.error_message = Some(str_bytes(message));
            }
        }
        out.results.push(res);
    }
    out
}

/// The entries the request asks for (all when it names no keys).
fn answered(resource: &DescribeConfigsResource, entries: Vec<Entry>) -> Vec<DescribeConfigsResourceResult> {
    let wanted = resource.configuration_keys.as_ref();
    entries
        .into_iter()
        .filter(|(k, ..)| wanted.is_none_or(|w| w.iter().any(|x| x.as_str() == *k)))
        .map(|(k, v, source, config_type, read_only)| {
            let mut c = DescribeConfigsResourceResult::default();
            c.name = str_bytes(k);
            c.value = Some(str_bytes(v));
            c.read_only = read_only;
            c.config_source = source;
            c.config_type = config_type;
            c
        })
        .collect()
}

fn topic(ctx: &Ctx, name: &str) -> Result<Vec<Entry>, (i16, String)> {
    let info = ctx
        .host
        .describe_stream(name)
        .map_err(|e| (code_of(&e), e.to_string()))?;
    let unlimited = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
    // Where each value comes from (clients such as kafka-python read it
    // before altering): set on the topic, or the default;
    // max.message.bytes is the node's own setting.
    let topic_or_default = |set: bool| if set { SOURCE_TOPIC } else { SOURCE_DEFAULT };
    // The topic's own, else what applies to it: the node's, capped at its
    // replicas (a topic that is not replicated: 1).
    let max_message = match info.max_message_bytes {
        Some(own) => (own, SOURCE_TOPIC),
        None => (ctx.host.settings().max_batch_bytes.as_u64(), SOURCE_STATIC_BROKER),
    };
    let min_insync = match &info.replication {
        Some(r) => {
            let (node, set) = node_min_insync(ctx.host.settings());
            let source = match r.min_insync_replicas {
                Some(_) => SOURCE_TOPIC,
                None if set => SOURCE_STATIC_BROKER,
                None => SOURCE_DEFAULT,
            };
            (r.required_in_sync(node), source)
        }
        None => (1, SOURCE_DEFAULT),
    };
    let tuning = super::topics::CompactionTuning::shown(info.compaction.as_ref());
    let tuning = tuning.into_iter().map(|(name, value, own)| {
        let kind = if name.ends_with(".ms") { TYPE_LONG } else { TYPE_DOUBLE };
        (name, value, topic_or_default(own), kind, false)
    });
    let mut entries = vec![
        (
            "retention.ms",
            unlimited(info.retention.ms),
            topic_or_default(info.retention.ms.is_some()),
            TYPE_LONG,
            false,
        ),
        (
            "retention.bytes",
            unlimited(info.retention.bytes),
            topic_or_default(info.retention.bytes.is_some()),
            TYPE_LONG,
            false,
        ),
        (
            "cleanup.policy",
            cleanup_policy(&info).to_string(),
            topic_or_default(info.compaction.is_some()),
            TYPE_LIST,
            false,
        ),
        (
            "min.insync.replicas",
            min_insync.0.to_string(),
            min_insync.1,
            TYPE_INT,
            false,
        ),
        (
            "max.message.bytes",
            max_message.0.to_string(),
            max_message.1,
            TYPE_INT,
            false,
        ),
    ];
    entries.extend(tuning);
    Ok(entries)
}

fn broker(ctx: &Ctx, name: &str) -> Result<Vec<Entry>, (i16, String)> {
    let me = ctx.node_id.to_string();
    if !name.is_empty() && name != me {
        return Err((
            codes::invalid_request(),
            format!("this is broker {me}: ask broker {name} for its configs"),
        ));
    }
    Ok(broker_entries(ctx.host.settings(), ctx.node_id))
}

/// The node's `min.insync.replicas` (a node alone: 1), and whether its
/// config file set it.
fn node_min_insync(s: &Settings) -> (u32, bool) {
    s.cluster_with_peers().map_or((1, false), |c| {
        let default = crate::config::ClusterSettings::default().min_insync_replicas;
        (c.min_insync_replicas, c.min_insync_replicas != default)
    })
}

/// The node's settings under the Kafka broker configs of the same meaning.
fn broker_entries(s: &Settings, node_id: i32) -> Vec<Entry> {
    let d = Settings::default();
    let (g, dg) = (&s.groups, &d.groups);
    // Each value, and whether the config file set it (else the default).
    fn num<T: ToString + PartialEq>(v: T, default: T) -> (String, bool) {
        let set = v != default;
        (v.to_string(), set)
    }
    let ms = |v: Duration, default: Duration| num(v.as_millis(), default.as_millis());
    let mechanisms = if s.auth_token.is_some() {
        "PLAIN,OAUTHBEARER,SCRAM-SHA-256,SCRAM-SHA-512"
    } else {
        ""
    };
    // Topics keep everything unless set per topic.
    let fixed = |v: &str| (v.to_string(), false);
    // Replication: a cluster's (topics created over Kafka are replicated
    // there), else a node alone's one replica.
    let cluster = s.cluster_with_peers();
    let replication = cluster.map_or_else(
        || fixed("1"),
        |c| {
            (
                c.kafka_replication_factor().to_string(),
                c.default_replication_factor.is_some(),
            )
        },
    );
    let min_insync = node_min_insync(s);
    let min_insync = (min_insync.0.to_string(), min_insync.1);
    let entries: [(&'static str, (String, bool), i8); 21] = [
        ("broker.id", fixed(&node_id.to_string()), TYPE_INT),
        (
            "message.max.bytes",
            num(s.max_batch_bytes.as_u64(), d.max_batch_bytes.as_u64()),
            TYPE_INT,
        ),
        (
            "auto.create.topics.enable",
            num(s.kafka_auto_create_topics, d.kafka_auto_create_topics),
            TYPE_BOOLEAN,
        ),
        (
            "num.partitions",
            num(s.kafka_default_partitions, d.kafka_default_partitions),
            TYPE_INT,
        ),
        ("default.replication.factor", replication, TYPE_INT),
        ("min.insync.replicas", min_insync, TYPE_INT),
        ("log.retention.ms", fixed("-1"), TYPE_LONG),
        ("log.retention.bytes", fixed("-1"), TYPE_LONG),
        ("log.cleanup.policy", fixed("delete"), TYPE_LIST),
        (
            "fetch.max.bytes",
            num(s.kafka_fetch_max_bytes.as_u64(), d.kafka_fetch_max_bytes.as_u64()),
            TYPE_INT,
        ),
        (
            "socket.request.max.bytes",
            num(s.kafka_max_frame_bytes.as_u64(), d.kafka_max_frame_bytes.as_u64()),
            TYPE_INT,
        ),
        (
            "connections.max.idle.ms",
            ms(s.kafka_idle_timeout, d.kafka_idle_timeout),
            TYPE_LONG,
        ),
        (
            "producer.id.expiration.ms",
            ms(s.kafka_producer_expiry, d.kafka_producer_expiry),
            TYPE_INT,
        ),
        (
            "group.min.session.timeout.ms",
            ms(g.min_session_timeout, dg.min_session_timeout),
            TYPE_INT,
        ),
        (
            "group.max.session.timeout.ms",
            ms(g.max_session_timeout, dg.max_session_timeout),
            TYPE_INT,
        ),
        (
            "group.initial.rebalance.delay.ms",
            ms(g.initial_rebalance_delay, dg.initial_rebalance_delay),
            TYPE_INT,
        ),
        ("group.max.size", num(g.max_members, dg.max_members), TYPE_INT),
        (
            "group.consumer.session.timeout.ms",
            ms(g.consumer_session_timeout, dg.consumer_session_timeout),
            TYPE_INT,
        ),
        (
            "group.consumer.heartbeat.interval.ms",
            ms(g.consumer_heartbeat_interval, dg.consumer_heartbeat_interval),
            TYPE_INT,
        ),
        (
            "group.consumer.assignors",
            (crate::node::CONSUMER_ASSIGNORS.join(","), false),
            TYPE_LIST,
        ),
        (
            "sasl.enabled.mechanisms",
            (mechanisms.to_string(), s.auth_token.is_some()),
            TYPE_LIST,
        ),
    ];
    entries
        .into_iter()
        .map(|(k, (v, set), t)| {
            let source = if set { SOURCE_STATIC_BROKER } else { SOURCE_DEFAULT };
            (k, v, source, t, true)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_configs_say_whether_the_file_set_them() {
        let mut s = Settings {
            kafka_fetch_max_bytes: bytesize::ByteSize::mib(4),
            ..Settings::default()
        };
        s.groups.initial_rebalance_delay = Duration::from_millis(250);
        let entries = broker_entries(&s, 3);
        let get = |k: &str| entries.iter().find(|e| e.0 == k).cloned().expect(k);
        assert_eq!(get("broker.id").1, "3");
        assert_eq!(
            get("fetch.max.bytes"),
            (
                "fetch.max.bytes",
                "4194304".into(),
                SOURCE_STATIC_BROKER,
                TYPE_INT,
                true
            )
        );
        assert_eq!(get("group.initial.rebalance.delay.ms").1, "250");
        // A node alone: one replica.
        assert_eq!(get("default.replication.factor").1, "1");
        assert_eq!(get("min.insync.replicas").1, "1");
        // A cluster of four: its default (three), and its acks=all quorum.
        s.cluster = Some(crate::config::ClusterSettings {
            nodes: (1..=4)
                .map(|n| (n.to_string(), format!("127.0.0.1:{}", 8080 + n)))
                .collect(),
            ..Default::default()
        });
        let entries = broker_entries(&s, 3);
        let get = |k: &str| entries.iter().find(|e| e.0 == k).cloned().expect(k);
        assert_eq!(
            (get("default.replication.factor").1, get("default.replication.factor").2),
            ("3".to_string(), SOURCE_DEFAULT)
        );
        assert_eq!(get("min.insync.replicas").1, "2");
        assert_eq!(get("group.initial.rebalance.delay.ms").2, SOURCE_STATIC_BROKER);
        assert_eq!(get("message.max.bytes").2, SOURCE_DEFAULT);
        assert_eq!(get("connections.max.idle.ms").1, "600000");
        assert_eq!(get("sasl.enabled.mechanisms").1, "");
        assert!(entries.iter().all(|e| e.4), "all read-only");
        let names: std::collections::BTreeSet<_> = entries.iter().map(|e| e.0).collect();
        assert_eq!(names.len(), entries.len(), "no name twice");
    }
}
