//! `kafka_handle`: its seed inputs (a valid request of each API family
//! against the harness' stream, so the fuzzer starts inside the handlers)
//! and the replay of its committed corpus.

use bytes::BytesMut;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, FetchRequest, GroupId, HeartbeatRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, ListGroupsRequest, ListOffsetsRequest,
    OffsetCommitRequest, OffsetFetchRequest, OffsetForLeaderEpochRequest, SaslAuthenticateRequest,
    SaslHandshakeRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::messages::{
    consumer_group_heartbeat_request as cgh, create_partitions_request as cp, create_topics_request as ct,
    delete_records_request as dr, describe_configs_request as dc, fetch_request as fr,
    incremental_alter_configs_request as iac, join_group_request as jg, list_offsets_request as lo,
    offset_commit_request as oc, offset_fetch_request as of, offset_for_leader_epoch_request as ole,
};
use kafka_protocol::protocol::StrBytes;

use super::tests::{Seeds, corpus, corpus_files, kafka_frame};
use super::*;

fn name(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

fn topic() -> TopicName {
    TopicName(name(kafka_handle::STREAM))
}

fn list_offsets() -> ListOffsetsRequest {
    let mut req = ListOffsetsRequest::default();
    req.replica_id = (-1).into();
    let mut t = lo::ListOffsetsTopic::default();
    t.name = topic();
    // By time, latest, earliest, the largest timestamp.
    for (i, timestamp) in [1_700_000_005_000, -1, -2, -3].into_iter().enumerate() {
        let mut p = lo::ListOffsetsPartition::default();
        p.partition_index = i32::try_from(i % 3).unwrap();
        p.timestamp = timestamp;
        t.partitions.push(p);
    }
    req.topics = vec![t];
    req
}

fn offset_commit() -> OffsetCommitRequest {
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(name("seed-group"));
    req.generation_id_or_member_epoch = -1;
    let mut p = oc::OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = 5;
    p.committed_metadata = Some(name("meta"));
    let mut t = oc::OffsetCommitRequestTopic::default();
    t.name = topic();
    t.partitions = vec![p];
    req.topics = vec![t];
    req
}

fn offset_fetch() -> OffsetFetchRequest {
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(name("seed-group"));
    let mut t = of::OffsetFetchRequestTopic::default();
    t.name = topic();
    t.partition_indexes = vec![0, 1];
    req.topics = Some(vec![t]);
    req
}

fn join_group() -> JoinGroupRequest {
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(name("seed-classic"));
    req.session_timeout_ms = 6_000;
    req.rebalance_timeout_ms = 6_000;
    req.protocol_type = name("consumer");
    let mut p = jg::JoinGroupRequestProtocol::default();
    p.name = name("range");
    p.metadata = Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 6, b'e', b'v', b'e', b'n', b't', b's', 0, 0, 0, 0]);
    req.protocols = vec![p];
    req
}

fn heartbeat() -> HeartbeatRequest {
    let mut req = HeartbeatRequest::default();
    req.group_id = GroupId(name("seed-classic"));
    req.generation_id = 1;
    req.member_id = name("member-1");
    req
}

fn sync_group() -> SyncGroupRequest {
    let mut req = SyncGroupRequest::default();
    req.group_id = GroupId(name("seed-classic"));
    req.generation_id = 1;
    req.member_id = name("member-1");
    req.protocol_type = Some(name("consumer"));
    req.protocol_name = Some(name("range"));
    req
}

fn consumer_group_heartbeat() -> ConsumerGroupHeartbeatRequest {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(name("seed-consumer"));
    req.member_id = name("m-seed");
    req.member_epoch = 0;
    req.rebalance_timeout_ms = 5_000;
    req.subscribed_topic_names = Some(vec![topic()]);
    req.topic_partitions = Some(Vec::<cgh::TopicPartitions>::new());
    req
}

fn create_topics() -> CreateTopicsRequest {
    let mut req = CreateTopicsRequest::default();
    let mut t = ct::CreatableTopic::default();
    t.name = TopicName(name("seed-made"));
    t.num_partitions = 2;
    t.replication_factor = -1;
    let mut c = ct::CreatableTopicConfig::default();
    c.name = name("cleanup.policy");
    c.value = Some(name("compact"));
    t.configs = vec![c];
    req.topics = vec![t];
    req.timeout_ms = 5_000;
    req
}

fn delete_topics() -> DeleteTopicsRequest {
    let mut req = DeleteTopicsRequest::default();
    req.topic_names = vec![TopicName(name("seed-made"))];
    req.timeout_ms = 5_000;
    req
}

fn delete_records() -> DeleteRecordsRequest {
    let mut req = DeleteRecordsRequest::default();
    let mut p = dr::DeleteRecordsPartition::default();
    p.partition_index = 2;
    p.offset = 3;
    let mut t = dr::DeleteRecordsTopic::default();
    t.name = topic();
    t.partitions = vec![p];
    req.topics = vec![t];
    req.timeout_ms = 5_000;
    req
}

fn init_producer_id() -> InitProducerIdRequest {
    let mut req = InitProducerIdRequest::default();
    req.transaction_timeout_ms = 60_000;
    req.producer_id = (-1).into();
    req.producer_epoch = -1;
    req
}

fn describe_configs() -> DescribeConfigsRequest {
    let mut req = DescribeConfigsRequest::default();
    let mut t = dc::DescribeConfigsResource::default();
    t.resource_type = 2;
    t.resource_name = name(kafka_handle::STREAM);
    let mut b = dc::DescribeConfigsResource::default();
    b.resource_type = 4;
    b.resource_name = name("0");
    req.resources = vec![t, b];
    req.include_synonyms = true;
    req.include_documentation = true;
    req
}

fn alter_configs() -> IncrementalAlterConfigsRequest {
    let mut req = IncrementalAlterConfigsRequest::default();
    let mut c = iac::AlterableConfig::default();
    c.name = name("retention.ms");
    c.config_operation = 0;
    c.value = Some(name("3600000"));
    let mut r = iac::AlterConfigsResource::default();
    r.resource_type = 2;
    r.resource_name = name(kafka_handle::STREAM);
    r.configs = vec![c];
    req.resources = vec![r];
    req
}

fn offset_for_leader_epoch() -> OffsetForLeaderEpochRequest {
    let mut req = OffsetForLeaderEpochRequest::default();
    req.replica_id = (-1).into();
    let mut p = ole::OffsetForLeaderPartition::default();
    p.partition = 1;
    p.current_leader_epoch = -1;
    p.leader_epoch = 0;
    let mut t = ole::OffsetForLeaderTopic::default();
    t.topic = topic();
    t.partitions = vec![p];
    req.topics = vec![t];
    req
}

fn create_partitions() -> CreatePartitionsRequest {
    let mut req = CreatePartitionsRequest::default();
    let mut t = cp::CreatePartitionsTopic::default();
    t.name = topic();
    t.count = 4;
    req.topics = vec![t];
    req.timeout_ms = 5_000;
    req
}

fn fetch_in_session() -> FetchRequest {
    let mut req = FetchRequest::default();
    req.replica_id = (-1).into();
    req.max_wait_ms = 10;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    req.session_id = 0;
    req.session_epoch = 0;
    let mut t = fr::FetchTopic::default();
    t.topic = topic();
    for partition in 0..3 {
        let mut p = fr::FetchPartition::default();
        p.partition = partition;
        p.fetch_offset = 7;
        p.partition_max_bytes = 4_096;
        t.partitions.push(p);
    }
    req.topics = vec![t];
    req
}

fn sasl_handshake(mechanism: &'static str) -> SaslHandshakeRequest {
    let mut req = SaslHandshakeRequest::default();
    req.mechanism = name(mechanism);
    req
}

fn sasl_authenticate(bytes: Vec<u8>) -> SaslAuthenticateRequest {
    let mut req = SaslAuthenticateRequest::default();
    req.auth_bytes = Bytes::from(bytes);
    req
}

/// SASL exchanges against the harness' token: PLAIN with it, a SCRAM
/// client-first message, an OAUTHBEARER initial response. In name order a
/// handshake comes right before its authenticate.
fn sasl_seeds() -> Seeds {
    let plain = format!("\0user\0{}", kafka_handle::TOKEN).into_bytes();
    let scram_first = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL".to_vec();
    let bearer = format!("n,,\x01auth=Bearer {}\x01\x01", kafka_handle::TOKEN).into_bytes();
    vec![
        (
            "sasl-a-handshake-plain",
            kafka_frame(ApiKey::SaslHandshake, 1, &sasl_handshake("PLAIN")),
        ),
        (
            "sasl-b-authenticate-plain",
            kafka_frame(ApiKey::SaslAuthenticate, 2, &sasl_authenticate(plain)),
        ),
        (
            "sasl-c-handshake-scram",
            kafka_frame(ApiKey::SaslHandshake, 1, &sasl_handshake("SCRAM-SHA-256")),
        ),
        (
            "sasl-d-authenticate-scram-first",
            kafka_frame(ApiKey::SaslAuthenticate, 2, &sasl_authenticate(scram_first)),
        ),
        (
            "sasl-e-handshake-oauthbearer",
            kafka_frame(ApiKey::SaslHandshake, 1, &sasl_handshake("OAUTHBEARER")),
        ),
        (
            "sasl-f-authenticate-oauthbearer",
            kafka_frame(ApiKey::SaslAuthenticate, 2, &sasl_authenticate(bearer)),
        ),
    ]
}

/// One valid request of each family the handlers answer, at the versions
/// current clients send.
pub(super) fn kafka_handle_seeds() -> Seeds {
    vec![
        ("list-offsets-v8", kafka_frame(ApiKey::ListOffsets, 8, &list_offsets())),
        (
            "offset-commit-v8",
            kafka_frame(ApiKey::OffsetCommit, 8, &offset_commit()),
        ),
        ("offset-fetch-v7", kafka_frame(ApiKey::OffsetFetch, 7, &offset_fetch())),
        ("join-group-v9", kafka_frame(ApiKey::JoinGroup, 9, &join_group())),
        ("heartbeat-v4", kafka_frame(ApiKey::Heartbeat, 4, &heartbeat())),
        ("sync-group-v5", kafka_frame(ApiKey::SyncGroup, 5, &sync_group())),
        (
            "consumer-group-heartbeat-v0",
            kafka_frame(ApiKey::ConsumerGroupHeartbeat, 0, &consumer_group_heartbeat()),
        ),
        (
            "create-topics-v7",
            kafka_frame(ApiKey::CreateTopics, 7, &create_topics()),
        ),
        (
            "delete-records-v2",
            kafka_frame(ApiKey::DeleteRecords, 2, &delete_records()),
        ),
        (
            "init-producer-id-v4",
            kafka_frame(ApiKey::InitProducerId, 4, &init_producer_id()),
        ),
        (
            "describe-configs-v4",
            kafka_frame(ApiKey::DescribeConfigs, 4, &describe_configs()),
        ),
        (
            "incremental-alter-configs-v1",
            kafka_frame(ApiKey::IncrementalAlterConfigs, 1, &alter_configs()),
        ),
        (
            "offset-for-leader-epoch-v4",
            kafka_frame(ApiKey::OffsetForLeaderEpoch, 4, &offset_for_leader_epoch()),
        ),
        (
            "create-partitions-v3",
            kafka_frame(ApiKey::CreatePartitions, 3, &create_partitions()),
        ),
        ("fetch-v12-session", kafka_frame(ApiKey::Fetch, 12, &fetch_in_session())),
        (
            "list-groups-v5",
            kafka_frame(ApiKey::ListGroups, 5, &ListGroupsRequest::default()),
        ),
        (
            "delete-topics-v6",
            kafka_frame(ApiKey::DeleteTopics, 6, &delete_topics()),
        ),
    ]
    .into_iter()
    .chain(sasl_seeds())
    .collect()
}

/// The answer check fails on a wrong correlation id, a truncated body and
/// bytes left over, and passes the same answer whole.
#[test]
fn the_answer_check_refuses_what_a_client_could_not_read() {
    use kafka_protocol::messages::{MetadataResponse, ResponseHeader};
    use kafka_protocol::protocol::Encodable;
    let mut good = BytesMut::new();
    let mut header = ResponseHeader::default();
    header.correlation_id = 7;
    header
        .encode(&mut good, ApiKey::Metadata.response_header_version(12))
        .unwrap();
    MetadataResponse::default().encode(&mut good, 12).unwrap();
    let good = good.freeze();
    let asked = |correlation_id| kafka_handle::Asked {
        api: ApiKey::Metadata,
        version: 12,
        correlation_id,
    };
    asked(7).check(good.clone());
    let fails = |id: i32, answer: Bytes| std::panic::catch_unwind(|| asked(id).check(answer)).is_err();
    assert!(fails(8, good.clone()), "wrong correlation id");
    assert!(fails(7, good.slice(..good.len() - 1)), "truncated");
    let mut longer = BytesMut::from(&good[..]);
    longer.extend_from_slice(&[0]);
    assert!(fails(7, longer.freeze()), "a byte left over");
}

/// Every seed is answered (not closed) by a fresh harness, in order.
#[test]
fn seeds_are_answered() {
    let mut harness = KafkaHarness::new();
    for (name, frame) in kafka_handle_seeds() {
        let seen = harness.request(&frame);
        assert!(matches!(seen, KafkaSeen::Answered(_)), "{name}: {seen:?}");
    }
}

/// Every committed input of `kafka_handle` runs through the handlers of
/// one node, in order, without breaking the target's rules.
#[test]
fn replay_kafka_handle_corpus() {
    let mut harness = KafkaHarness::new();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for file in corpus_files("kafka_handle") {
        let data = std::fs::read(&file).unwrap();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| harness.request(&data)));
        let Ok(what) = run else {
            panic!("kafka_handle panicked on {}", file.display());
        };
        *seen.entry(format!("{what:?}")).or_default() += 1;
    }
    eprintln!("kafka_handle replay: {seen:?}");
    // The corpus reaches the handlers: produce, fetch, groups and metadata
    // answered.
    for api in ["Produce", "Fetch", "Metadata", "OffsetCommit", "ConsumerGroupHeartbeat"] {
        let key = format!("Answered({api})");
        assert!(seen.get(&key).is_some_and(|&n| n > 0), "no {key} in {seen:?}");
    }
}

/// Writes the seeds into `fuzz/corpus/kafka_handle/` (run by hand:
/// `cargo test -p sluice-host --lib fuzz_api::tests_kafka_handle::write_seeds -- --ignored`).
#[test]
#[ignore = "writes into fuzz/corpus"]
fn write_seeds() {
    let dir = corpus("kafka_handle");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in kafka_handle_seeds() {
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
