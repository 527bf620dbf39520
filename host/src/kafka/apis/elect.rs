//! ElectLeaders (v0–v2): an admin's leader election (`kafka-leader-election`,
//! the admin clients' `elect_leaders`). PREFERRED moves a partition's
//! leadership back to the first replica of its assignment if that one is
//! in sync (PREFERRED_LEADER_NOT_AVAILABLE if not, or if it does not
//! answer); UNCLEAN, only when the leader does not answer, moves it to the
//! reachable replica most likely to hold everything (a forced move, which
//! can lose acknowledged records; ELIGIBLE_LEADERS_NOT_AVAILABLE when no
//! other replica answers). ELECTION_NOT_NEEDED when the preferred replica
//! leads, the leader answers (unclean), or the topic is not replicated.
//! With no partitions named, every partition of every topic is tried and
//! only those not answered ELECTION_NOT_NEEDED are listed, as Kafka does.
//! Any node runs it; partitions go 8 at a time.

use futures::StreamExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::super::Ctx;
use super::super::error::{codes, election_code};
use super::{partition_of, topic_name};
use crate::node::ElectionKind;

/// Elections run at once.
const CONCURRENT: usize = 8;

pub(super) async fn handle(ctx: &Ctx, r: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    let mut out = ElectLeadersResponse::default();
    let kind = match (version, r.election_type) {
        (0, _) | (_, 0) => ElectionKind::Preferred,
        (_, 1) => ElectionKind::Unclean,
        _ => {
            out.error_code = codes::invalid_request();
            return out;
        }
    };
    let all = r.topic_partitions.is_none();
    let asked: Vec<(String, i32)> = match r.topic_partitions {
        Some(topics) => topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect(),
        None => ctx
            .host
            .list_streams()
            .into_iter()
            .flat_map(|s| (0..s.partitions.len()).map(move |p| (s.name.clone(), i32::try_from(p).unwrap_or(i32::MAX))))
            .collect(),
    };
    let results: Vec<(String, i32, i16, Option<String>)> = futures::stream::iter(asked)
        .map(|(topic, index)| async move {
            let (code, message) = elect(ctx, &topic, index, kind).await;
            (topic, index, code, message)
        })
        .buffered(CONCURRENT)
        .collect()
        .await;
    let not_needed = ResponseError::ElectionNotNeeded.code();
    for (topic, index, code, message) in results {
        if all && code == not_needed {
            continue;
        }
        let mut p = PartitionResult::default();
        p.partition_id = index;
        p.error_code = code;
        p.error_message = message.map(StrBytes::from_string);
        let name: TopicName = topic_name(&topic);
        // Results come in the order asked: a topic's partitions together.
        match out.replica_election_results.last_mut().filter(|t| t.topic == name) {
            Some(t) => t.partition_result.push(p),
            None => {
                let mut t = ReplicaElectionResult::default();
                t.topic = name;
                t.partition_result.push(p);
                out.replica_election_results.push(t);
            }
        }
    }
    out
}

/// The error code (0: elected) and message of one partition's election.
async fn elect(ctx: &Ctx, topic: &str, index: i32, kind: ElectionKind) -> (i16, Option<String>) {
    let Some(partition) = partition_of(index) else {
        return (codes::unknown_topic(), None);
    };
    match ctx.host.elect_leader(topic, partition, kind).await {
        Ok(Some(_)) => (0, None),
        Ok(None) => (ResponseError::ElectionNotNeeded.code(), None),
        Err(e) => (election_code(&e), Some(e.message().to_string())),
    }
}
