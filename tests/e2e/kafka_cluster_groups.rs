//! Consumer groups on a three-node cluster, with confluent-kafka members
//! bootstrapped from every node: one node coordinates the group (the leader
//! of the group's `__consumer_offsets` partition) and the others say so
//! (NOT_COORDINATOR over Kafka, 421 `not_coordinator` over HTTP); moving
//! that partition's leadership moves the coordinator with the committed
//! offsets, the member follows and goes on, and a new member afterwards
//! starts exactly after the last commit. Run with both group protocols.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kafka_groups::{Member, consumed};
use crate::replication_support::{Cluster, NODES, STREAM};
use crate::support::expect_json;

const GROUP: &str = "cg";
/// `[groups] offsets_partitions` (the default).
const OFFSETS_PARTITIONS: u32 = 4;

/// The node answering `GET /groups/{GROUP}` with 200; the others must
/// answer 421 `not_coordinator`.
async fn coordinator(cluster: &Cluster) -> u32 {
    let mut found = Vec::new();
    for id in NODES {
        let resp = cluster
            .client
            .get(cluster.node(id).url(&format!("/groups/{GROUP}")))
            .send()
            .await
            .expect("GET group");
        match resp.status() {
            StatusCode::OK => found.push(id),
            StatusCode::MISDIRECTED_REQUEST => {
                let body: Value = resp.json().await.expect("json");
                assert_eq!(body["error"]["code"], "not_coordinator", "node {id}: {body}");
            }
            other => panic!("node {id}: {other} {:?}", resp.text().await),
        }
    }
    assert_eq!(found.len(), 1, "exactly one coordinator: {found:?}");
    found[0]
}

async fn produce(cluster: &Cluster, from: u64, n: u64) {
    let values: Vec<String> = (from..from + n).map(|i| format!("v{i}")).collect();
    cluster.produce(1, "all", &values).await;
}

fn wait_consumed(member: &Member, want: &BTreeSet<(u64, u64)>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got: BTreeSet<(u64, u64)> = consumed(&member.events()).into_iter().collect();
        if want.is_subset(&got) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {:?}", member.events().last());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last offset the member committed, once it has committed `want`.
fn wait_committed(member: &Member, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = member
            .events()
            .iter()
            .filter(|e| e["ev"] == "committed")
            .filter_map(|e| e["o"].as_u64())
            .max();
        if last == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "never committed {want}: {last:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_follows_its_coordinator_across_a_leader_move() {
    follows_its_coordinator(None).await;
}

/// The same with the consumer group protocol: the new coordinator does not
/// know the member, which joins again there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_protocol_group_follows_its_coordinator_across_a_leader_move() {
    follows_its_coordinator(Some("consumer")).await;
}

async fn follows_its_coordinator(protocol: Option<&str>) {
    let cluster = Cluster::start_edited("1MiB", |_, config| {
        format!("{config}\n[groups]\nconsumer_session_timeout = \"6s\"\nconsumer_heartbeat_interval = \"500ms\"\n")
    })
    .await;
    let bootstrap = cluster.kafka_bootstrap();
    produce(&cluster, 0, 200).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let args = |out: &str| {
        json!({"bootstrap": bootstrap, "group": GROUP, "topic": STREAM, "out": dir.path().join(out),
               "idle_exit": 0, "session_timeout_ms": 6000, "tolerate_commit_errors": true,
               "protocol": protocol})
    };
    let mut member = Member::start_with("confluent", args("m1.jsonl"));
    let first: BTreeSet<(u64, u64)> = (0..200).map(|o| (0, o)).collect();
    wait_consumed(&member, &first, "the first 200 records");
    wait_committed(&member, 200);

    // Every node agrees on the coordinator: the leader of the group's
    // offsets partition.
    let before = coordinator(&cluster).await;
    let partition = crc32c::crc32c(GROUP.as_bytes()) % OFFSETS_PARTITIONS;
    let status = expect_json(
        cluster
            .client
            .get(cluster.node(before).url("/streams/__consumer_offsets/status"))
            .send()
            .await
            .expect("status"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        status["partitions"][partition as usize]["replication"]["leader"], before,
        "{status}"
    );
    // Another node refuses the group's heartbeats: NOT_COORDINATOR (16).
    let other = cluster
        .node(NODES.into_iter().find(|n| *n != before).expect("another node"))
        .kafka();
    let answer = tokio::task::spawn_blocking(move || {
        crate::kafka_consumer_protocol::raw_group_heartbeat(&other, GROUP, "elsewhere", 0, |_| {})
    })
    .await
    .expect("raw heartbeat");
    assert_eq!(answer.error_code, 16, "{answer:?}");

    // Move that partition's leadership: the coordinator moves with it.
    let target = NODES.into_iter().find(|n| *n != before).expect("another node");
    let moved = expect_json(
        cluster
            .client
            .post(
                cluster
                    .node(target)
                    .url(&format!("/streams/__consumer_offsets/partitions/{partition}/leader")),
            )
            .json(&json!({"node": target}))
            .send()
            .await
            .expect("move"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["leader"], target, "{moved}");
    assert_eq!(coordinator(&cluster).await, target);
    // The commits made at the old coordinator are at the new one.
    let group = expect_json(
        cluster
            .client
            .get(cluster.node(target).url(&format!("/groups/{GROUP}")))
            .send()
            .await
            .expect("group"),
        StatusCode::OK,
    )
    .await;
    let committed = group["offsets"][0]["offset"].as_u64().expect("offset");
    assert!(committed >= 200, "{group}");

    // The member follows the coordinator and goes on.
    produce(&cluster, 200, 200).await;
    let all: BTreeSet<(u64, u64)> = (0..400).map(|o| (0, o)).collect();
    wait_consumed(&member, &all, "the next 200 records after the move");
    wait_committed(&member, 400);
    let commits: Vec<u64> = member
        .events()
        .iter()
        .filter(|e| e["ev"] == "committed")
        .filter_map(|e| e["o"].as_u64())
        .collect();
    assert!(
        commits.windows(2).all(|w| w[0] <= w[1]),
        "commits went backwards: {commits:?}"
    );
    member.kill();

    // A new member starts exactly after the last commit.
    produce(&cluster, 400, 50).await;
    let next = Member::start_with("confluent", args("m2.jsonl"));
    let rest: BTreeSet<(u64, u64)> = (400..450).map(|o| (0, o)).collect();
    wait_consumed(&next, &rest, "the records after the last commit");
    let got: Vec<(u64, u64)> = consumed(&next.events());
    assert!(
        got.iter().all(|(_, o)| *o >= 400),
        "records before the last commit came again: {got:?}"
    );
}
