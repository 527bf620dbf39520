//! The consumer group protocol (ConsumerGroupHeartbeat, server-side
//! assignment) with librdkafka (confluent-kafka, `group.protocol=consumer`):
//! members share partitions and never hold one at the same time, a killed
//! member's partitions move on after its session, commits (OffsetCommit
//! v9) survive a kill -9 of the server; admin clients describe and list
//! the group (DescribeGroups, for classic groups, answers it as Kafka
//! does); classic members, stale epochs and bad requests are refused.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{Value, json};

use crate::kafka_bad_input::{Listener, call};
use crate::kafka_groups::{Member, consumed};
use crate::kafka_support::py;
use crate::support::{self, Server, ServerOptions};

const CONFIG: &str = "[groups]\nconsumer_session_timeout = \"6s\"\nconsumer_heartbeat_interval = \"500ms\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_consumer_protocol_group_shares_partitions_survives_a_killed_member_and_a_server_kill() {
    crate::kafka_groups::group_round_trip("confluent", Some("consumer")).await;
}

fn member(b: &str, out: &Path, stop: &Path) -> Member {
    Member::start_with(
        "confluent",
        json!({"bootstrap": b, "group": "g", "topic": "t", "out": out, "idle_exit": 0,
               "stop_file": stop, "protocol": "consumer"}),
    )
}

/// librdkafka's description of group "g", once `ready` holds for it.
fn described_when(b: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = py(
            "confluent",
            "describe_groups",
            &json!({"bootstrap": b, "groups": ["g"]}),
        );
        if ready(&d["g"]) {
            return d["g"].clone();
        }
        assert!(Instant::now() < deadline, "{what}: {d}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A raw ConsumerGroupHeartbeat (v1) answer for group "g".
fn raw_heartbeat(
    b: &str,
    member: &str,
    epoch: i32,
    tweak: impl FnOnce(&mut ConsumerGroupHeartbeatRequest),
) -> ConsumerGroupHeartbeatResponse {
    raw_group_heartbeat(b, "g", member, epoch, tweak)
}

/// A raw ConsumerGroupHeartbeat (v1) answer: a join of topic "t" unless
/// `tweak` changes it.
pub(crate) fn raw_group_heartbeat(
    b: &str,
    group: &str,
    member: &str,
    epoch: i32,
    tweak: impl FnOnce(&mut ConsumerGroupHeartbeatRequest),
) -> ConsumerGroupHeartbeatResponse {
    let mut r = ConsumerGroupHeartbeatRequest::default();
    r.group_id = GroupId(StrBytes::from_string(group.into()));
    r.member_id = StrBytes::from_string(member.into());
    r.member_epoch = epoch;
    r.rebalance_timeout_ms = 30_000;
    r.subscribed_topic_names = Some(vec![TopicName(StrBytes::from_static_str("t"))]);
    r.topic_partitions = Some(Vec::new());
    tweak(&mut r);
    let mut s = Listener(b.to_string()).connect();
    call(&mut s, ApiKey::ConsumerGroupHeartbeat, 1, &r)
}

fn partitions_of(m: &Value, key: &str) -> Vec<u64> {
    m[key]
        .as_array()
        .map(|a| a.iter().map(|tp| tp[1].as_u64().expect("partition")).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_hold_disjoint_partitions_and_the_group_is_described_listed_and_guarded() {
    let server = Server::start_with(ServerOptions {
        config: Some(CONFIG.into()),
        ..ServerOptions::default()
    })
    .await;
    let c = support::client();
    support::create_stream(&c, &server, "t", 4).await;
    for p in 0..4 {
        let records: Vec<Value> = (0..10).map(|i| json!({"value": format!("{p}-{i}")})).collect();
        support::produce(&c, &server, "t", p, &json!(records)).await;
    }
    let b = server.kafka();
    let dir = tempfile::tempdir().expect("tempdir");
    let (out1, stop1) = (dir.path().join("m1.jsonl"), dir.path().join("m1.stop"));
    let (out2, stop2) = (dir.path().join("m2.jsonl"), dir.path().join("m2.stop"));
    let m1 = member(&b, &out1, &stop1);
    let m2 = member(&b, &out2, &stop2);

    // Two members, each with two partitions, none held twice, targets reached.
    let g = described_when(&b, "two settled members", |g| {
        let members = g["members"].as_array().map(Vec::as_slice).unwrap_or_default();
        g["state"] == "STABLE"
            && members.len() == 2
            && members.iter().all(|m| partitions_of(m, "assignment").len() == 2)
    });
    assert_eq!(
        (g["type"].as_str(), g["assignor"].as_str()),
        (Some("CONSUMER"), Some("uniform")),
        "{g}"
    );
    let members = g["members"].as_array().expect("members");
    let mut all = BTreeSet::new();
    for m in members {
        assert_eq!(m["assignment"], m["target"], "{g}");
        for p in partitions_of(m, "assignment") {
            assert!(all.insert(p), "partition {p} held twice: {g}");
        }
    }
    assert_eq!(all, (0..4).collect::<BTreeSet<u64>>(), "{g}");
    let consumers = py(
        "confluent",
        "list_groups",
        &json!({"bootstrap": b, "types": ["CONSUMER"]}),
    );
    assert_eq!(consumers["g"], json!(["CONSUMER", "STABLE"]), "{consumers}");
    let classic = py(
        "confluent",
        "list_groups",
        &json!({"bootstrap": b, "types": ["CLASSIC"]}),
    );
    assert!(classic.get("g").is_none(), "{classic}");
    let view = support::expect_json(
        c.get(server.url("/groups/g")).send().await.expect("describe"),
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(
        (view["protocol_type"].as_str(), view["group_type"].as_str()),
        (Some("consumer"), Some("consumer")),
        "{view}"
    );
    let listed = support::expect_json(
        c.get(server.url("/groups")).send().await.expect("list"),
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(
        listed["groups"],
        json!([{"group": "g", "state": "Stable", "protocol_type": "consumer", "group_type": "consumer"}]),
        "{listed}"
    );
    assert_eq!(view["members"].as_array().map(Vec::len), Some(2), "{view}");

    // Guarded: commits from outside, classic members, old epochs, bad requests.
    let one = json!({"offsets": [{"stream": "t", "partition": 0, "offset": 1}]});
    let resp = c
        .post(server.url("/groups/g/offsets"))
        .json(&one)
        .send()
        .await
        .expect("post");
    support::expect_error(resp, reqwest::StatusCode::CONFLICT, "group_not_empty").await;
    let joined = py(
        "kafkapython",
        "join_classic",
        &json!({"bootstrap": b, "group": "g", "topic": "t"}),
    );
    assert!(
        joined["error"]
            .as_str()
            .is_some_and(|e| e.contains("InconsistentGroupProtocol")),
        "{joined}"
    );
    let id = members[0]["member_id"].as_str().expect("member id").to_string();
    let (b2, id2) = (b.clone(), id.clone());
    let answers = tokio::task::spawn_blocking(move || {
        [
            raw_heartbeat(&b2, &id2, 99, |_| {}).error_code,
            raw_heartbeat(&b2, "new-one", 0, |r| {
                r.server_assignor = Some(StrBytes::from_static_str("nope"))
            })
            .error_code,
            raw_heartbeat(&b2, "new-one", 0, |r| {
                r.subscribed_topic_regex = Some(StrBytes::from_static_str("(t"));
            })
            .error_code,
            raw_heartbeat(&b2, "", 0, |_| {}).error_code,
        ]
    })
    .await
    .expect("raw heartbeats");
    assert_eq!(
        answers,
        [110, 112, 128, 42],
        "fenced, unsupported assignor, bad regex, no member id"
    );
    // DescribeGroups (for classic groups) describes it as Dead; v6, which
    // carries a message, adds GROUP_ID_NOT_FOUND, as Kafka answers.
    let b2 = b.clone();
    let described = tokio::task::spawn_blocking(move || {
        [5, 6].map(|version| {
            let mut r = DescribeGroupsRequest::default();
            r.groups = vec![GroupId(StrBytes::from_static_str("g"))];
            let mut s = Listener(b2.clone()).connect();
            let got: DescribeGroupsResponse = call(&mut s, ApiKey::DescribeGroups, version, &r);
            let g = &got.groups[0];
            (g.error_code, g.group_state.to_string(), g.error_message.is_some())
        })
    })
    .await
    .expect("raw describes");
    assert_eq!(
        described,
        [(0, "Dead".to_string(), false), (69, "Dead".to_string(), true)],
        "v5, v6"
    );

    // One member leaves: the other takes all four.
    std::fs::write(&stop1, b"").expect("stop file");
    let evs1 = m1.finish(Duration::from_secs(60));
    described_when(&b, "one member with everything", |g| {
        let members = g["members"].as_array().map(Vec::as_slice).unwrap_or_default();
        members.len() == 1 && partitions_of(&members[0], "assignment").len() == 4
    });
    std::fs::write(&stop2, b"").expect("stop file");
    let evs2 = m2.finish(Duration::from_secs(60));
    let seen: BTreeSet<(u64, u64)> = consumed(&evs1).into_iter().chain(consumed(&evs2)).collect();
    let want: BTreeSet<(u64, u64)> = (0..4).flat_map(|p| (0..10).map(move |o| (p, o))).collect();
    assert_eq!(seen, want, "every record consumed");
    let committed = py(
        "confluent",
        "committed",
        &json!({"bootstrap": b, "group": "g", "topic": "t", "partitions": [0, 1, 2, 3]}),
    );
    assert_eq!(
        committed["offsets"],
        json!({"0": 10, "1": 10, "2": 10, "3": 10}),
        "{committed}"
    );

    // Empty now: it can be deleted, offsets and all.
    described_when(&b, "an empty group", |g| g["state"] == "EMPTY");
    let del = c.delete(server.url("/groups/g")).send().await.expect("delete");
    assert_eq!(del.status(), reqwest::StatusCode::NO_CONTENT);
}

/// A member subscribed by regular expression is given the partitions of
/// topics created later that match, and none of those that do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_subscription_takes_in_matching_topics_created_later() {
    let server = Server::start_with(ServerOptions {
        config: Some(CONFIG.into()),
        ..ServerOptions::default()
    })
    .await;
    let c = support::client();
    support::create_stream(&c, &server, "t1", 2).await;
    support::create_stream(&c, &server, "other", 1).await;
    let b = server.kafka();
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, stop) = (dir.path().join("m.jsonl"), dir.path().join("m.stop"));
    let m = Member::start_with(
        "confluent",
        json!({"bootstrap": b, "group": "g", "topic": "^t[0-9]+", "out": out, "idle_exit": 0,
               "stop_file": stop, "protocol": "consumer"}),
    );
    let held = |g: &Value| -> Vec<Value> {
        g["members"]
            .get(0)
            .and_then(|m| m["assignment"].as_array().cloned())
            .unwrap_or_default()
    };
    let g = described_when(&b, "t1's partitions", |g| held(g).len() == 2);
    assert_eq!(held(&g), vec![json!(["t1", 0]), json!(["t1", 1])], "{g}");
    support::create_stream(&c, &server, "t2", 1).await;
    support::create_stream(&c, &server, "x2", 1).await;
    let g = described_when(&b, "t2's partition too", |g| held(g).len() == 3);
    assert_eq!(
        held(&g),
        vec![json!(["t1", 0]), json!(["t1", 1]), json!(["t2", 0])],
        "{g}"
    );
    std::fs::write(&stop, b"").expect("stop file");
    m.finish(Duration::from_secs(60));
}
