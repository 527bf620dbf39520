//! A real stream-processing application on the Kafka face: a Quix Streams
//! word count (`kafka/quix_wordcount.py`) regroups words through a
//! repartition topic and counts them in a state store backed by a compacted
//! changelog topic, both of which Quix creates itself. The words are
//! produced over HTTP and the counts read back over HTTP.
//!
//! Between two runs of the application the node compacts the changelog, is
//! killed with SIGKILL and restarted, and the application's local state is
//! deleted: the second run can count on only from what the node kept (the
//! compacted changelog and the group's committed offsets). Each run ends
//! with SIGTERM, as a deployment stops it; Quix then commits, so every word
//! is counted exactly once. The same on three nodes, with a node killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kafka_support::{hex, py};
use crate::replication_support::Cluster;
use crate::support::{self, Server, ServerOptions, create_stream, expect_json, produce, read_all};

const WORDS: u64 = 7;
const PARTITIONS: u32 = 4;
/// Quix commits after this many messages, writing the changelog each time,
/// so the changelog holds many records per key for compaction to drop.
const COMMIT_EVERY: u64 = 50;
/// How long one run may take to count what was produced.
const RUN_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quix_word_count_counts_on_from_the_changelog_after_a_node_kill() {
    let mut server = Server::start_with(ServerOptions {
        // Compacts the changelog between the two runs.
        config: Some(crate::kafka_compact::CONFIG.into()),
        ..ServerOptions::default()
    })
    .await;
    let c = support::client();
    create_stream(&c, &server, "words", PARTITIONS).await;
    let state = tempfile::tempdir().expect("state dir");

    produce_words(&c, &server, 0..1400).await;
    run_app(&[&server], &server.kafka(), state.path(), 1400).await;
    assert_counts(&c, &[&server], 1400).await;

    let changelog = compact_changelog(&c, &server).await;
    server.kill();
    server.restart().await;
    std::fs::remove_dir_all(state.path()).expect("delete the application's local state");

    produce_words(&c, &server, 1400..2100).await;
    run_app(&[&server], &server.kafka(), state.path(), 2100).await;
    assert_counts(&c, &[&server], 2100).await;
    let cleanup = expect_json(
        c.get(server.url(&format!("/streams/{changelog}")))
            .send()
            .await
            .expect("GET"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        cleanup["cleanup"], "compact",
        "Quix creates its changelog compacted: {cleanup}"
    );
}

/// The same application on three nodes. The input topic is created over
/// Kafka with the default replication (3 here), and Quix gives its
/// internal topics the input's and its output topic its own default, one
/// replica; words are produced with acks=all through a client that knows
/// all three nodes. Between the runs node 2, which leads some of
/// their partitions, is killed with SIGKILL and restarted, and the
/// application's local state is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quix_word_count_on_three_nodes_counts_on_after_a_node_kill() {
    let mut cluster = Cluster::start("1MiB").await;
    let b = cluster.kafka_bootstrap();
    let created = py(
        "confluent",
        "create_topic",
        &json!({"bootstrap": b, "topic": "words", "partitions": PARTITIONS, "replication": -1}),
    );
    assert_eq!(created["ok"], true, "{created}");
    let state = tempfile::tempdir().expect("state dir");
    let c = support::client();

    produce_words_kafka(&b, 0..1400);
    let nodes = || [cluster.node(1), cluster.node(2), cluster.node(3)];
    run_app(&nodes(), &b, state.path(), 1400).await;
    assert_counts(&c, &nodes(), 1400).await;
    let streams = expect_json(
        c.get(cluster.node(2).url("/streams")).send().await.expect("GET"),
        StatusCode::OK,
    )
    .await;
    let quix: Vec<&Value> = streams["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("changelog__") || n.starts_with("repartition__") || n == "counts")
        })
        .collect();
    assert_eq!(quix.len(), 3, "{streams}");
    let mut led_by_2 = 0;
    for s in quix {
        let factor = if s["name"] == "counts" { 1 } else { 3 };
        assert_eq!(s["replication"]["factor"], factor, "{s}");
        let assignment = s["replication"]["assignment"].as_array().expect("assignment");
        led_by_2 += assignment.iter().filter(|replicas| replicas[0] == 2).count();
    }
    assert!(led_by_2 > 0, "node 2 leads none of Quix's partitions: {streams}");

    cluster.node_mut(2).kill();
    cluster.node_mut(2).restart().await;
    std::fs::remove_dir_all(state.path()).expect("delete the application's local state");
    produce_words_kafka(&b, 1400..2100);
    let nodes = [cluster.node(1), cluster.node(2), cluster.node(3)];
    run_app(&nodes, &b, state.path(), 2100).await;
    assert_counts(&c, &nodes, 2100).await;
}

/// [`produce_words`] through confluent-kafka with acks=all.
fn produce_words_kafka(bootstrap: &str, range: std::ops::Range<u64>) {
    let records: Vec<Value> = range
        .map(|i| {
            json!({
                "key": hex(i.to_string().as_bytes()),
                "value": hex(json!({"w": format!("w{}", i % WORDS)}).to_string().as_bytes()),
                "partition": i % u64::from(PARTITIONS),
            })
        })
        .collect();
    let n = records.len();
    let out = py(
        "confluent",
        "produce",
        &json!({"bootstrap": bootstrap, "topic": "words", "records": records, "config": {"acks": "all"}}),
    );
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), n, "{out}");
    assert!(results.iter().all(|r| r["error"].is_null()), "{out}");
}

/// Produces words `range` over HTTP, word `i % 7` at record `i`, spread
/// over the partitions (so each word reaches Quix from every partition and
/// must be regrouped).
async fn produce_words(c: &reqwest::Client, server: &Server, range: std::ops::Range<u64>) {
    for p in 0..PARTITIONS {
        let records: Vec<Value> = range
            .clone()
            .filter(|i| i % u64::from(PARTITIONS) == u64::from(p))
            .map(|i| json!({"key": i.to_string(), "value": json!({"w": format!("w{}", i % WORDS)}).to_string()}))
            .collect();
        produce(c, server, "words", p, &json!({ "records": records })).await;
    }
}

/// The Quix script beside this file.
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/kafka/quix_wordcount.py")
}

/// The application as a child process, killed on drop (a failed test
/// leaves none running); its stderr goes to a file.
struct App {
    child: Option<Child>,
    stderr: tempfile::NamedTempFile,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl App {
    fn tail(&self) -> String {
        crate::kafka_support::last_lines(self.stderr.path(), 40)
    }
}

/// Runs the application until the counts topic holds `total` records (one
/// per word counted) on one of `servers` (its one replica's node), then
/// stops it with SIGTERM and checks it exited cleanly.
async fn run_app(servers: &[&Server], bootstrap: &str, state: &Path, total: u64) {
    let server = servers[0];
    let stderr = tempfile::NamedTempFile::new().expect("stderr file");
    let args = json!({
        "bootstrap": bootstrap,
        "group": "wordcount",
        "input": "words",
        "output": "counts",
        "state_dir": state,
        "commit_every": COMMIT_EVERY,
    });
    let child = Command::new(sluice_test_artifacts::quixstreams::python())
        .arg(script())
        .arg(args.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.reopen().expect("reopen stderr file"))
        .spawn()
        .expect("spawn the Quix application");
    let mut app = App {
        child: Some(child),
        stderr,
    };
    let c = support::client();
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        let counted = counts_on(&c, servers).await.1;
        if counted >= total {
            break;
        }
        if let Some(Ok(Some(status))) = app.child.as_mut().map(Child::try_wait) {
            panic!(
                "the Quix application exited ({status}) after {counted} of {total} counts:\n{}",
                app.tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the Quix application counted {counted} of {total} words in {RUN_LIMIT:?}:\n{}\nserver log:\n{}",
            app.tail(),
            server.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut child = app.child.take().expect("running");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run `kill`");
    assert!(term.success(), "kill -TERM failed: {term}");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait for the Quix application");
    assert!(
        status.success(),
        "the Quix application did not stop cleanly ({status}):\n{}",
        app.tail()
    );
}

/// The end offset of each partition of `stream` (empty while it does not
/// exist: Quix creates the counts topic when it starts).
async fn end_offsets(c: &reqwest::Client, server: &Server, stream: &str) -> Vec<u64> {
    let resp = c
        .get(server.url(&format!("/streams/{stream}")))
        .send()
        .await
        .expect("GET stream");
    if resp.status() == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    let info = expect_json(resp, StatusCode::OK).await;
    info["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["end_offset"].as_u64().expect("end_offset"))
        .collect()
}

/// The node of `servers` that holds the most of the counts topic (its one
/// replica), and how many records it holds.
async fn counts_on<'a>(c: &reqwest::Client, servers: &[&'a Server]) -> (&'a Server, u64) {
    let mut best = (servers[0], 0);
    for s in servers {
        let held = end_offsets(c, s, "counts").await.iter().sum::<u64>();
        if held > best.1 {
            best = (s, held);
        }
    }
    best
}

/// Reads the counts topic over HTTP from the node of `servers` that holds
/// it and checks that each word was counted 1, 2, 3, … in order with no
/// count missing or repeated, `total` in all.
async fn assert_counts(c: &reqwest::Client, servers: &[&Server], total: u64) {
    let server = counts_on(c, servers).await.0;
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in 0..end_offsets(c, server, "counts").await.len() {
        for r in read_all(c, server, "counts", p as u32, "").await {
            let v: Value = serde_json::from_str(r["value"].as_str().expect("a text value")).expect("a JSON count");
            let word = v["w"].as_str().expect("w").to_string();
            seen.entry(word).or_default().push(v["n"].as_u64().expect("n"));
        }
    }
    assert_eq!(seen.len() as u64, WORDS, "{seen:?}");
    for (word, counts) in &seen {
        let want: Vec<u64> = (1..=total / WORDS).collect();
        assert_eq!(counts, &want, "the counts of {word}");
    }
}

/// Finds the changelog topic Quix created, has the node compact it through
/// its end, and checks that only the latest record of each key is left;
/// returns its name.
async fn compact_changelog(c: &reqwest::Client, server: &Server) -> String {
    let streams = expect_json(c.get(server.url("/streams")).send().await.expect("GET"), StatusCode::OK).await;
    let names: Vec<String> = streams["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| n.starts_with("changelog__"))
        .map(str::to_string)
        .collect();
    assert_eq!(names.len(), 1, "one changelog topic: {streams}");
    let name = names[0].clone();
    let ends = end_offsets(c, server, &name).await;
    let written = ends.iter().sum::<u64>();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let _ = c.post(server.url(&format!("/streams/{name}/compact"))).send().await;
        let st = expect_json(
            c.get(server.url(&format!("/streams/{name}/compaction")))
                .send()
                .await
                .expect("GET"),
            StatusCode::OK,
        )
        .await;
        let cleaned: Vec<u64> = st["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .map(|p| p["cleaned_end"].as_u64().unwrap_or(0))
            .collect();
        if cleaned == ends {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name} was not compacted through {ends:?}: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut keys = 0;
    for (p, end) in ends.iter().enumerate() {
        let live = support::read_gapped(c, server, &name, p as u32).await;
        let distinct: std::collections::BTreeSet<String> = live.iter().map(|r| r["key"].to_string()).collect();
        assert_eq!(
            live.len(),
            distinct.len(),
            "partition {p} of {name} keeps one record per key"
        );
        if let Some(last) = live.last() {
            assert_eq!(last["offset"].as_u64(), Some(end - 1), "the latest record is kept");
        }
        keys += distinct.len();
    }
    assert!(keys >= WORDS as usize, "{keys} keys left in {name}");
    assert!(
        written >= 2 * keys as u64,
        "{written} changelog records for {keys} keys: too few commits for compaction to matter"
    );
    name
}
