//! Metadata: the brokers (this node, or every node of the cluster at its
//! Kafka address, but those this node found down) and the topics (streams)
//! with each partition's leader (none, LEADER_NOT_AVAILABLE, when it is
//! down), replicas, offline replicas and in-sync set. Views are topics too,
//! with their input's partitions and leaders. Unknown topics are created
//! only when `kafka_auto_create_topics` is on and the client allows it.
//! Topics carry ids (v10+, `topic_ids`), and may be asked for by id; an
//! unknown id is UNKNOWN_TOPIC_ID. DescribeCluster (v0–2) answers the same
//! brokers, cluster id and controller as Metadata; none is fenced, and only
//! broker endpoints are described (asking for controllers is
//! UNSUPPORTED_ENDPOINT_TYPE).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
};

use super::super::Ctx;
use super::super::conn::Conn;
use super::super::error::{code_of, codes};
use super::{authorized, str_bytes, topic_ids, topic_name};
use crate::error::Error;
use crate::node::StreamInfo;

/// The cluster id Metadata and DescribeCluster report.
const CLUSTER_ID: &str = "sluice";

pub(super) fn describe_cluster(ctx: &Ctx, conn: &Conn, r: DescribeClusterRequest) -> DescribeClusterResponse {
    let mut out = DescribeClusterResponse::default();
    out.endpoint_type = r.endpoint_type;
    out.cluster_authorized_operations = authorized::given(r.include_cluster_authorized_operations, authorized::CLUSTER);
    // 1: brokers (2: controllers, which this node does not have).
    if r.endpoint_type != 1 {
        out.error_code = kafka_protocol::ResponseError::UnsupportedEndpointType.code();
        out.error_message = Some(str_bytes(format!(
            "endpoint type {} is not supported: only brokers (1) are described",
            r.endpoint_type
        )));
        return out;
    }
    out.cluster_id = str_bytes(CLUSTER_ID);
    out.controller_id = BrokerId(ctx.node_id);
    out.brokers = brokers(ctx, conn)
        .into_iter()
        .map(|(id, host, port)| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(id);
            b.host = str_bytes(host);
            b.port = port;
            b
        })
        .collect();
    out
}

pub(super) async fn handle(ctx: &Ctx, conn: &Conn, r: MetadataRequest, version: i16) -> MetadataResponse {
    let mut out = MetadataResponse::default();
    out.brokers = brokers(ctx, conn)
        .into_iter()
        .map(|(id, host, port)| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(id);
            b.host = str_bytes(host);
            b.port = port;
            b
        })
        .collect();
    out.cluster_id = Some(str_bytes(CLUSTER_ID));
    out.controller_id = BrokerId(ctx.node_id);
    // v0: an empty list means every topic; v1+: null does. A topic is
    // asked for by name, or (v10+) by id alone.
    let names: Option<Vec<Result<String, uuid::Uuid>>> = match r.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.into_iter()
                .map(|t| t.name.map(|n| n.0.as_str().to_string()).ok_or(t.topic_id))
                .collect(),
        ),
    };
    let allow_create = ctx.host.settings().kafka_auto_create_topics && (version < 4 || r.allow_auto_topic_creation);
    out.topics = match names {
        None => {
            let mut all: Vec<_> = ctx.host.list_streams().iter().map(|s| topic(ctx, s)).collect();
            all.extend(
                ctx.host
                    .list_view_names()
                    .iter()
                    .filter_map(|v| view_topic(ctx, v).ok()),
            );
            all
        }
        Some(names) => {
            let mut topics = Vec::with_capacity(names.len());
            for asked in names {
                let topic = match asked {
                    Ok(name) => named_topic(ctx, &name, allow_create).await,
                    Err(id) => match topic_ids::name_of(ctx, id) {
                        Some(name) => named_topic(ctx, &name, false).await,
                        None => {
                            let mut t = MetadataResponseTopic::default();
                            t.topic_id = id;
                            t.error_code = kafka_protocol::ResponseError::UnknownTopicId.code();
                            t
                        }
                    },
                };
                topics.push(topic);
            }
            topics
        }
    };
    out.cluster_authorized_operations = authorized::given(r.include_cluster_authorized_operations, authorized::CLUSTER);
    for t in &mut out.topics {
        t.topic_authorized_operations = match t.error_code {
            0 if !r.include_topic_authorized_operations => authorized::NOT_GIVEN,
            0 if t.is_internal => authorized::INTERNAL,
            0 if t.name.as_ref().is_some_and(|n| ctx.host.view(n.0.as_str()).is_some()) => authorized::VIEW,
            0 => authorized::TOPIC,
            _ => authorized::NOT_GIVEN,
        };
    }
    out
}

async fn named_topic(ctx: &Ctx, name: &str, allow_create: bool) -> MetadataResponseTopic {
    let found = if ctx.host.view(name).is_some() {
        view_topic(ctx, name)
    } else {
        stream_topic(ctx, name, allow_create).await
    };
    match found {
        Ok(t) => t,
        Err(e) => {
            let mut t = MetadataResponseTopic::default();
            t.name = Some(topic_name(name));
            t.error_code = match e.code() {
                "invalid_request" => codes::invalid_request(),
                _ => code_of(&e),
            };
            t
        }
    }
}

/// A view as a topic: its input's partitions under the view's name.
fn view_topic(ctx: &Ctx, name: &str) -> Result<MetadataResponseTopic, Error> {
    let input = ctx.host.describe_view_input(name)?;
    let mut t = topic(ctx, &input);
    t.name = Some(topic_name(name));
    if let Some(view) = ctx.host.view(name) {
        t.topic_id = topic_ids::of_view(name, view.created_ms);
    }
    t.is_internal = false;
    Ok(t)
}

async fn stream_topic(ctx: &Ctx, name: &str, allow_create: bool) -> Result<MetadataResponseTopic, Error> {
    let found = match ctx.host.describe_stream(name) {
        Err(e) if e.code() == "stream_not_found" && allow_create => match super::topics::auto_create(ctx, name).await {
            Ok(info) => Ok(info),
            Err(e) if e.code() == "stream_exists" => ctx.host.describe_stream(name),
            Err(e) => Err(e),
        },
        other => other,
    };
    found.map(|info| topic(ctx, &info))
}

fn topic(ctx: &Ctx, info: &StreamInfo) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(topic_name(&info.name));
    t.topic_id = topic_ids::of_stream(info);
    // The node's own streams (committed offsets): listed, marked internal.
    t.is_internal = info.name.starts_with("__");
    t.partitions = (0..info.partitions.len() as u32)
        .map(|p| {
            let mut m = MetadataResponsePartition::default();
            m.partition_index = p as i32;
            let me = ctx.node_id;
            let replicas: Vec<i32> = match &info.replication {
                Some(r) => r
                    .assignment
                    .get(p as usize)
                    .map(|a| a.iter().map(|n| *n as i32).collect())
                    .unwrap_or_default(),
                None => vec![me],
            };
            match ctx.host.replication_status(&info.name, p) {
                Some(s) => {
                    // A leader known to be down is none, as Kafka reports a
                    // partition whose leader is offline.
                    m.leader_id = match ctx.host.peer_down(s.leader) {
                        true => {
                            m.error_code = codes::leader_not_available();
                            BrokerId(-1)
                        }
                        false => BrokerId(s.leader as i32),
                    };
                    m.leader_epoch = s.epoch as i32;
                    let isr = if s.is_leader && !s.in_sync.is_empty() {
                        s.in_sync.iter().map(|n| *n as i32).collect()
                    } else {
                        replicas.clone()
                    };
                    m.isr_nodes = isr.into_iter().map(BrokerId).collect();
                }
                None => {
                    m.leader_id = BrokerId(me);
                    m.leader_epoch = 0;
                    m.isr_nodes = vec![BrokerId(me)];
                }
            }
            m.offline_replicas = replicas
                .iter()
                .filter(|n| u32::try_from(**n).is_ok_and(|n| ctx.host.peer_down(n)))
                .map(|n| BrokerId(*n))
                .collect();
            m.replica_nodes = replicas.into_iter().map(BrokerId).collect();
            m
        })
        .collect();
    t
}

/// Every node as (broker id, host, port) for clients, but those this
/// node's calls found down (Kafka lists live brokers only; clients then
/// skip them, and a coordinator there is not available).
pub(super) fn brokers(ctx: &Ctx, conn: &Conn) -> Vec<(i32, String, i32)> {
    brokers_at(ctx, conn.local)
}

/// [`brokers`] for a connection to this node's listener at `local`.
pub(super) fn brokers_at(ctx: &Ctx, local: std::net::SocketAddr) -> Vec<(i32, String, i32)> {
    let settings = ctx.host.settings();
    let (my_host, my_port) = match settings
        .kafka_advertised
        .as_deref()
        .and_then(|a| crate::config::split_host_port(a).ok())
    {
        Some(hp) => hp,
        None => (local.ip().to_string(), local.port()),
    };
    let Some(cluster) = &settings.cluster else {
        return vec![(ctx.node_id, my_host, i32::from(my_port))];
    };
    let kafka = cluster.kafka_peers().unwrap_or_default();
    let http = cluster.peers("http").unwrap_or_default();
    http.iter()
        .filter(|(id, _)| !ctx.host.peer_down(**id))
        .map(|(id, url)| {
            let (host, port) = if *id == cluster.node_id {
                (my_host.clone(), my_port)
            } else if let Some((h, p)) = kafka.get(id) {
                (h.clone(), *p)
            } else {
                (http_host(url), my_port)
            };
            (*id as i32, host, i32::from(port))
        })
        .collect()
}

/// The host part of `http://host:port/...`.
fn http_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    crate::config::split_host_port(authority).map_or_else(|_| authority.to_string(), |(h, _)| h)
}
