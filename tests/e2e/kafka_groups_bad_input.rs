//! Bad group requests over raw Kafka frames: stale generations, unknown
//! members, commits for unknown topics and partitions, oversized metadata
//! and group ids, more groups than `[groups] max_groups`. Each gets its
//! Kafka error code on a connection that stays usable, and nothing of a
//! refused commit is stored.

use std::net::TcpStream;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::kafka_bad_input::{Listener, call};
use crate::support::{self, Server, ServerOptions};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join(s_: &mut TcpStream, group: &str, member: &str, metadata: Bytes) -> JoinGroupResponse {
    let mut p = JoinGroupRequestProtocol::default();
    p.name = s("range");
    p.metadata = metadata;
    let mut r = JoinGroupRequest::default();
    r.group_id = GroupId(s(group));
    r.session_timeout_ms = 10_000;
    r.rebalance_timeout_ms = 10_000;
    r.member_id = s(member);
    r.protocol_type = s("consumer");
    r.protocols = vec![p];
    call(s_, ApiKey::JoinGroup, 5, &r)
}

fn commit(
    s_: &mut TcpStream,
    generation: i32,
    member: &str,
    parts: &[(&str, i32, i64, Option<String>)],
) -> Vec<(String, i32, i16)> {
    let mut r = OffsetCommitRequest::default();
    r.group_id = GroupId(s("g1"));
    r.generation_id_or_member_epoch = generation;
    r.member_id = s(member);
    for (topic, partition, offset, metadata) in parts {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_leader_epoch = -1;
        p.committed_metadata = metadata.as_deref().map(s);
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(s(topic));
        t.partitions = vec![p];
        r.topics.push(t);
    }
    let resp: OffsetCommitResponse = call(s_, ApiKey::OffsetCommit, 8, &r);
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.as_str().to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

fn committed(s_: &mut TcpStream) -> i64 {
    let mut t = OffsetFetchRequestTopics::default();
    t.name = TopicName(s("t"));
    t.partition_indexes = vec![0];
    let mut g = OffsetFetchRequestGroup::default();
    g.group_id = GroupId(s("g1"));
    g.topics = Some(vec![t]);
    let mut r = OffsetFetchRequest::default();
    r.groups = vec![g];
    let resp: OffsetFetchResponse = call(s_, ApiKey::OffsetFetch, 8, &r);
    resp.groups[0].topics[0].partitions[0].committed_offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_requests_get_their_codes_and_store_nothing() {
    let server = Server::start_with(ServerOptions {
        config: Some("[groups]\nmax_groups = 2\ninitial_rebalance_delay = \"0s\"\n".into()),
        ..ServerOptions::default()
    })
    .await;
    support::create_stream(&support::client(), &server, "t", 1).await;
    let l = Listener(server.kafka());
    tokio::task::spawn_blocking(move || {
        let mut c = l.connect();
        let meta = Bytes::from_static(b"m");
        // A new member is told its id first (v4+), then joins with it.
        let first = join(&mut c, "g1", "", meta.clone());
        assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
        let me = first.member_id.as_str().to_string();
        assert!(!me.is_empty());
        let joined = join(&mut c, "g1", &me, meta.clone());
        assert_eq!((joined.error_code, joined.generation_id), (0, 1));
        assert_eq!(joined.leader.as_str(), me);
        let mut a = SyncGroupRequestAssignment::default();
        a.member_id = s(&me);
        a.assignment = Bytes::from_static(b"a");
        let mut sync = SyncGroupRequest::default();
        sync.group_id = GroupId(s("g1"));
        sync.generation_id = 1;
        sync.member_id = s(&me);
        sync.assignments = vec![a];
        let synced: SyncGroupResponse = call(&mut c, ApiKey::SyncGroup, 3, &sync);
        assert_eq!((synced.error_code, synced.assignment.as_ref()), (0, &b"a"[..]));

        // Heartbeats: a stale generation, an unknown member.
        let hb = |c: &mut TcpStream, generation: i32, member: &str| {
            let mut r = HeartbeatRequest::default();
            r.group_id = GroupId(s("g1"));
            r.generation_id = generation;
            r.member_id = s(member);
            let resp: HeartbeatResponse = call(c, ApiKey::Heartbeat, 3, &r);
            resp.error_code
        };
        assert_eq!(hb(&mut c, 1, &me), 0);
        assert_eq!(hb(&mut c, 0, &me), 22, "ILLEGAL_GENERATION");
        assert_eq!(hb(&mut c, 1, "someone-else"), 25, "UNKNOWN_MEMBER_ID");

        // Commits: per partition codes; a good one lands next to bad ones.
        let got = commit(
            &mut c,
            1,
            &me,
            &[
                ("nope", 0, 1, None),
                ("t", 9, 1, None),
                ("t", 0, 5, None),
                ("t", 0, 6, Some("x".repeat(5000))),
            ],
        );
        let codes: Vec<i16> = got.iter().map(|g| g.2).collect();
        assert_eq!(codes, [3, 3, 0, 12], "{got:?}");
        assert_eq!(committed(&mut c), 5);
        // A stale generation or a stranger commits nothing.
        let got = commit(&mut c, 0, &me, &[("t", 0, 9, None)]);
        assert_eq!(got[0].2, 22, "ILLEGAL_GENERATION");
        let got = commit(&mut c, -1, "", &[("t", 0, 9, None)]);
        assert_eq!(
            got[0].2, 25,
            "UNKNOWN_MEMBER_ID: a simple commit into a group with members"
        );
        assert_eq!(committed(&mut c), 5);

        // Oversized metadata and group ids; more groups than the cap.
        let huge = join(&mut c, "g2", "x", Bytes::from(vec![0u8; 2 << 20]));
        assert_eq!(huge.error_code, 42, "INVALID_REQUEST for 2 MiB of metadata");
        let long = join(&mut c, &"g".repeat(300), "", meta.clone());
        assert_eq!(long.error_code, 24, "INVALID_GROUP_ID");
        let second = join(&mut c, "g2", "", meta.clone());
        assert_eq!(second.error_code, 79);
        let third = join(&mut c, "g3", "", meta.clone());
        assert_eq!(third.error_code, 44, "POLICY_VIOLATION: over max_groups");
        // The connection still works, and so does the first group.
        assert_eq!(hb(&mut c, 1, &me), 0);
    })
    .await
    .expect("raw group requests");
}
