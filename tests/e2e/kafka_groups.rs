//! Consumer groups with clients nobody here wrote (confluent-kafka and
//! kafka-python): members share partitions, a killed member's partitions
//! move to the others, committed offsets never go backwards and survive a
//! kill -9 of the server, and a restarted group resumes after its last
//! commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Server, ServerOptions};

pub(crate) const PARTITIONS: u32 = 6;
pub(crate) const PER_PARTITION: u64 = 100;

fn driver() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/kafka/group_consumer.py")
}

/// One group member: a Python process appending its events to `out`. Its
/// stderr goes to `<out>.stderr`, never to a pipe nobody reads while the
/// test waits (librdkafka logs a line per failed connection, and a full
/// pipe would stop the member).
pub(crate) struct Member {
    child: Child,
    out: PathBuf,
}

impl Member {
    pub(crate) fn start(lib: &str, bootstrap: &str, group: &str, topic: &str, out: &Path, idle_exit: u64) -> Member {
        let args = json!({
            "bootstrap": bootstrap, "group": group, "topic": topic,
            "out": out, "idle_exit": idle_exit, "session_timeout_ms": 6000,
        });
        Member::start_with(lib, args)
    }

    /// A member driven by `args` (see `group_consumer.py`).
    pub(crate) fn start_with(lib: &str, args: Value) -> Member {
        let out = PathBuf::from(args["out"].as_str().expect("out"));
        let stderr = std::fs::File::create(stderr_path(&out)).expect("member stderr file");
        let child = Command::new(sluice_test_artifacts::kafka_clients::python())
            .arg(driver())
            .args([lib, &args.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start a group member");
        Member { child, out }
    }

    pub(crate) fn events(&self) -> Vec<Value> {
        events(&self.out)
    }

    /// The last 40 lines the member wrote to stderr.
    pub(crate) fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(stderr_path(&self.out)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for a clean exit (it exits after `idle_exit` seconds without records).
    pub(crate) fn finish(mut self, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll member") {
                assert!(
                    status.success(),
                    "group member failed ({status}): {}",
                    self.stderr_tail()
                );
                return self.events();
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "group member did not finish in {within:?}: {:?}\n{}",
                    self.events().last(),
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A member the test did not finish or kill is killed with it, so no
/// client outlives its test (one left running keeps polling a dead server).
impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

fn stderr_path(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".stderr");
    PathBuf::from(p)
}

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// (partition, offset) of every record in `evs`.
pub(crate) fn consumed(evs: &[Value]) -> Vec<(u64, u64)> {
    evs.iter()
        .filter(|e| e["ev"] == "record")
        .map(|e| (e["p"].as_u64().expect("p"), e["o"].as_u64().expect("o")))
        .collect()
}

pub(crate) async fn produce_all(server: &Server, topic: &str, round: &str) {
    let c = support::client();
    for p in 0..PARTITIONS {
        let records: Vec<Value> = (0..PER_PARTITION)
            .map(|i| json!({"value": format!("{round}-{p}-{i}")}))
            .collect();
        support::produce(&c, server, topic, p, &json!(records)).await;
    }
}

/// Every commit in the offsets stream, per (group, topic, partition), in order.
pub(crate) async fn commit_history(server: &Server) -> BTreeMap<String, Vec<u64>> {
    let c = support::client();
    let url = format!(
        "{}?offset=0&max_records=100000",
        support::records_url(server, "__consumer_offsets", 0)
    );
    let resp = c.get(url).send().await.expect("read the offsets stream");
    let (status, body) = support::json_of(resp).await;
    assert!(status.is_success(), "{body}");
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in body["records"].as_array().expect("records") {
        let key = r["key"].as_str().expect("key").to_string();
        let value: Value = serde_json::from_str(r["value"].as_str().expect("value")).expect("commit JSON");
        out.entry(key)
            .or_default()
            .push(value["offset"].as_u64().expect("offset"));
    }
    out
}

/// Members share a topic's partitions, one is killed, the server is
/// killed: with `protocol` "consumer", members use the consumer group
/// protocol (the server assigns; sessions of 6 s, heartbeats every 500 ms).
pub(crate) async fn group_round_trip(lib: &str, protocol: Option<&str>) {
    let mut server = Server::start_with(ServerOptions {
        config: Some(
            "[groups]\ninitial_rebalance_delay = \"500ms\"\nconsumer_session_timeout = \"6s\"\n\
             consumer_heartbeat_interval = \"500ms\"\n"
                .into(),
        ),
        ..ServerOptions::default()
    })
    .await;
    let topic = "orders";
    support::create_stream(&support::client(), &server, topic, PARTITIONS).await;
    produce_all(&server, topic, "a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let b = server.kafka();
    let start = |out: &Path, idle_exit: u64| {
        let args = json!({
            "bootstrap": b, "group": "g", "topic": topic, "out": out,
            "idle_exit": idle_exit, "session_timeout_ms": 6000, "protocol": protocol,
        });
        Member::start_with(lib, args)
    };

    // Three members share six partitions; one is killed partway through.
    let outs: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("m{i}.jsonl"))).collect();
    let mut victim = start(&outs[0], 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    if protocol.is_some() {
        // The consumer protocol has no initial delay: members that join
        // first consume at once. Without waiting, a slow-starting victim may
        // find everything already consumed and committed by the others.
        while consumed(&victim.events()).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the first member never consumed: {}",
                victim.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let others: Vec<Member> = outs[1..].iter().map(|o| start(o, 15)).collect();
    while consumed(&victim.events()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first member never consumed: {:?}\n{}",
            victim.events(),
            victim.stderr_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    victim.kill();
    let mut seen: BTreeSet<(u64, u64)> = consumed(&victim.events()).into_iter().collect();
    let mut assigned_sets = Vec::new();
    for m in others {
        let evs = m.finish(Duration::from_secs(90));
        seen.extend(consumed(&evs));
        assigned_sets.extend(evs.into_iter().filter(|e| e["ev"] == "assigned"));
    }
    let want: BTreeSet<(u64, u64)> = (0..u64::from(PARTITIONS))
        .flat_map(|p| (0..PER_PARTITION).map(move |o| (p, o)))
        .collect();
    assert_eq!(seen, want, "every record is consumed at least once");
    assert!(
        assigned_sets.len() >= 2,
        "the survivors were assigned partitions at least twice (before and after the kill): {assigned_sets:?}"
    );

    // Commits never move backwards, and end at the partitions' ends.
    let history = commit_history(&server).await;
    assert_eq!(history.len(), PARTITIONS as usize, "{history:?}");
    for (key, offsets) in &history {
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{key}: {offsets:?}");
        assert_eq!(offsets.last(), Some(&PER_PARTITION), "{key}");
    }

    // kill -9 the server; new records; a new member resumes after the commits.
    server.kill();
    server.restart().await;
    produce_all(&server, topic, "b").await;
    let out = dir.path().join("after.jsonl");
    let evs = start(&out, 6).finish(Duration::from_secs(90));
    let after: BTreeSet<(u64, u64)> = consumed(&evs).into_iter().collect();
    let want: BTreeSet<(u64, u64)> = (0..u64::from(PARTITIONS))
        .flat_map(|p| (PER_PARTITION..2 * PER_PARTITION).map(move |o| (p, o)))
        .collect();
    assert_eq!(
        after, want,
        "after the restart, exactly the records after the last commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_group_shares_partitions_survives_a_killed_member_and_a_server_kill() {
    group_round_trip("confluent", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_group_shares_partitions_survives_a_killed_member_and_a_server_kill() {
    group_round_trip("kafkapython", None).await;
}

/// Commits and resets over HTTP are what Kafka clients' OffsetFetch returns,
/// and a Kafka group resumes there; bad commits are refused and change
/// nothing; a group with members refuses HTTP commits and deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_commits_reach_kafka_clients_and_bad_commits_change_nothing() {
    let server = Server::start_with(ServerOptions {
        config: Some("[groups]\ninitial_rebalance_delay = \"0s\"\n".into()),
        ..ServerOptions::default()
    })
    .await;
    let c = support::client();
    support::create_stream(&c, &server, "t", 2).await;
    for p in 0..2 {
        let records: Vec<Value> = (0..10).map(|i| json!({"value": format!("{p}-{i}")})).collect();
        support::produce(&c, &server, "t", p, &json!(records)).await;
    }
    let post = |path: &str, body: Value| c.post(server.url(path)).json(&body).send();
    let commit = json!({"offsets": [{"stream": "t", "partition": 0, "offset": 7, "metadata": "from http"},
                                    {"stream": "t", "partition": 1, "offset": 2}]});
    let out = support::expect_json(
        post("/groups/h/offsets", commit).await.expect("commit"),
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(out["offsets"].as_array().map(Vec::len), Some(2), "{out}");

    // The offsets stream is the node's: no writes, no deletion from outside.
    let write = json!([{"value": "forged"}]);
    let resp = c
        .post(support::records_url(&server, "__consumer_offsets", 0))
        .json(&write)
        .send()
        .await
        .expect("post");
    support::expect_error(resp, reqwest::StatusCode::BAD_REQUEST, "invalid_request").await;
    let resp = c
        .delete(server.url("/streams/__consumer_offsets"))
        .send()
        .await
        .expect("delete");
    support::expect_error(resp, reqwest::StatusCode::BAD_REQUEST, "invalid_request").await;

    // Bad commits: nothing of them is written.
    let bad = json!({"offsets": [{"stream": "t", "partition": 0, "offset": 9},
                                 {"stream": "t", "partition": 5, "offset": 1}]});
    support::expect_error(
        post("/groups/h/offsets", bad).await.expect("post"),
        reqwest::StatusCode::NOT_FOUND,
        "partition_not_found",
    )
    .await;
    let bad = json!({"offsets": [{"stream": "nope", "partition": 0, "offset": 1}]});
    support::expect_error(
        post("/groups/h/offsets", bad).await.expect("post"),
        reqwest::StatusCode::NOT_FOUND,
        "stream_not_found",
    )
    .await;
    let big = json!({"offsets": [{"stream": "t", "partition": 0, "offset": 1, "metadata": "x".repeat(5000)}]});
    support::expect_error(
        post("/groups/h/offsets", big).await.expect("post"),
        reqwest::StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let long_group = format!("/groups/{}/offsets", "g".repeat(300));
    let one = json!({"offsets": [{"stream": "t", "partition": 0, "offset": 1}]});
    support::expect_error(
        post(&long_group, one).await.expect("post"),
        reqwest::StatusCode::BAD_REQUEST,
        "invalid_group_id",
    )
    .await;

    let b = server.kafka();
    for lib in ["confluent", "kafkapython"] {
        let got = crate::kafka_support::py(
            lib,
            "committed",
            &json!({"bootstrap": b, "group": "h", "topic": "t", "partitions": [0, 1]}),
        );
        assert_eq!(got["offsets"], json!({"0": 7, "1": 2}), "{lib}");
    }
    let view = support::expect_json(
        c.get(server.url("/groups/h")).send().await.expect("describe"),
        reqwest::StatusCode::OK,
    )
    .await;
    let lags: Vec<u64> = view["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| o["lag"].as_u64().expect("lag"))
        .collect();
    assert_eq!(lags, [3, 8], "{view}");
    let metrics = crate::kafka_support::metrics_text(&server).await;
    assert!(
        metrics.contains(r#"sluice_consumer_lag_records{group="h",stream="t",partition="0"} 3"#),
        "{metrics}"
    );

    // A Kafka member resumes at the HTTP commits; while it is in the group,
    // HTTP commits and deletion are refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("m.jsonl");
    let member = Member::start("confluent", &b, "h", "t", &out, 6);
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed(&member.events()).len() < 11 {
        assert!(
            Instant::now() < deadline,
            "the member did not consume: {:?}",
            member.events()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let one = json!({"offsets": [{"stream": "t", "partition": 0, "offset": 1}]});
    support::expect_error(
        post("/groups/h/offsets", one).await.expect("post"),
        reqwest::StatusCode::CONFLICT,
        "group_not_empty",
    )
    .await;
    let del = c.delete(server.url("/groups/h")).send().await.expect("delete");
    support::expect_error(del, reqwest::StatusCode::CONFLICT, "group_not_empty").await;
    let evs = member.finish(Duration::from_secs(60));
    let got: BTreeSet<(u64, u64)> = consumed(&evs).into_iter().collect();
    let want: BTreeSet<(u64, u64)> = (7..10).map(|o| (0, o)).chain((2..10).map(|o| (1, o))).collect();
    assert_eq!(got, want);

    // Empty again: reset to a given offset, then delete with the offsets.
    let reset = json!({"stream": "t", "offset": 4});
    let out = support::expect_json(
        post("/groups/h/reset", reset).await.expect("reset"),
        reqwest::StatusCode::OK,
    )
    .await;
    let offsets: Vec<u64> = out["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| o["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, [4, 4]);
    let del = c.delete(server.url("/groups/h")).send().await.expect("delete");
    assert_eq!(del.status(), reqwest::StatusCode::NO_CONTENT);
    let gone = c.get(server.url("/groups/h")).send().await.expect("describe");
    support::expect_error(gone, reqwest::StatusCode::NOT_FOUND, "group_not_found").await;
}

/// Deleting a topic deletes the offsets groups committed on it, as Kafka
/// does: after a kafka-python DeleteTopics and a confluent-kafka
/// CreateTopics of the same name, neither client finds a committed offset
/// there, and a confluent-kafka member of the group reads the new topic
/// from its first record (it once resumed at the old topic's offset and
/// skipped records). Offsets on other topics stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_deletes_the_offsets_committed_on_it() {
    let server = Server::start_with(ServerOptions {
        config: Some("[groups]\ninitial_rebalance_delay = \"0s\"\n".into()),
        ..ServerOptions::default()
    })
    .await;
    let (c, b) = (support::client(), server.kafka());
    let ten: Vec<Value> = (0..10).map(|i| json!({"value": format!("old-{i}")})).collect();
    for topic in ["t", "keep"] {
        support::create_stream(&c, &server, topic, 1).await;
        support::produce(&c, &server, topic, 0, &json!(ten)).await;
    }
    let commit = json!({"offsets": [{"stream": "t", "partition": 0, "offset": 5},
                                    {"stream": "keep", "partition": 0, "offset": 3}]});
    let resp = c
        .post(server.url("/groups/d/offsets"))
        .json(&commit)
        .send()
        .await
        .expect("commit");
    support::expect_json(resp, reqwest::StatusCode::OK).await;

    let deleted = crate::kafka_support::py("kafkapython", "delete_topic", &json!({"bootstrap": b, "topic": "t"}));
    assert_eq!(deleted["ok"], true, "{deleted}");
    let created = crate::kafka_support::py(
        "confluent",
        "create_topic",
        &json!({"bootstrap": b, "topic": "t", "partitions": 1}),
    );
    assert_eq!(created["ok"], true, "{created}");
    let twenty: Vec<Value> = (0..20).map(|i| json!({"value": format!("new-{i}")})).collect();
    support::produce(&c, &server, "t", 0, &json!(twenty)).await;
    for lib in ["confluent", "kafkapython"] {
        let got = |topic: &str| {
            crate::kafka_support::py(
                lib,
                "committed",
                &json!({"bootstrap": b, "group": "d", "topic": topic, "partitions": [0]}),
            )
        };
        assert_eq!(
            got("t")["offsets"],
            json!({"0": -1001}),
            "{lib}: no offset on the new t"
        );
        assert_eq!(got("keep")["offsets"], json!({"0": 3}), "{lib}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("m.jsonl");
    let member = Member::start("confluent", &b, "d", "t", &out, 4);
    let evs = member.finish(Duration::from_secs(60));
    let got: BTreeSet<(u64, u64)> = consumed(&evs).into_iter().collect();
    assert_eq!(got, (0..20).map(|o| (0, o)).collect::<BTreeSet<_>>(), "{evs:?}");
}

/// `sluice group list|describe|reset|delete` against a real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_cli_lists_describes_resets_and_deletes() {
    use crate::cli_support::sluice;
    let server = Server::start().await;
    let c = support::client();
    support::create_stream(&c, &server, "t", 2).await;
    for p in 0..2 {
        let records: Vec<Value> = (0..10).map(|i| json!({"value": format!("{p}-{i}")})).collect();
        support::produce(&c, &server, "t", p, &json!(records)).await;
    }
    let commit = json!({"offsets": [{"stream": "t", "partition": 0, "offset": 3}]});
    let resp = c
        .post(server.url("/groups/cli/offsets"))
        .json(&commit)
        .send()
        .await
        .expect("commit");
    support::expect_json(resp, reqwest::StatusCode::OK).await;

    let listed = sluice(&server, &["group", "list", "--output", "json"]).ok().json();
    assert_eq!(
        listed["groups"],
        json!([{"group": "cli", "state": "Empty", "protocol_type": "", "group_type": "classic"}])
    );
    let table = sluice(&server, &["group", "describe", "cli"]).ok().stdout;
    assert!(table.contains("LAG") && table.contains('7'), "{table}");
    let reset = sluice(
        &server,
        &["group", "reset", "cli", "t", "--to-latest", "--output", "json"],
    )
    .ok()
    .json();
    let offsets: Vec<u64> = reset["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| o["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, [10, 10]);
    sluice(&server, &["group", "reset", "cli", "t"]).fails(2, "exactly one of");
    sluice(
        &server,
        &["group", "reset", "cli", "t", "--to-offset", "1", "--partition", "9"],
    )
    .fails(1, "partition_not_found");
    let out = sluice(&server, &["group", "delete", "cli"]).ok().stdout;
    assert_eq!(out, "group `cli` deleted\n");
    sluice(&server, &["group", "describe", "cli"]).fails(1, "group_not_found");
}
