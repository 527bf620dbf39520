//! Views through clients nobody here wrote: a consumer group of
//! confluent-kafka or kafka-python members subscribed to a view over the
//! real `json-filter` plugin gets exactly the filter applied to the input,
//! at the input's offsets, across stretches where nothing passes (mid-way
//! and at the end); produce to a view is refused; a view with committed
//! offsets is deleted only when forced.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::kafka_groups::{Member, consumed};
use crate::support::{self, Server, ServerOptions};

const PARTITIONS: u32 = 3;

/// One input value: wave 1 and 3 mix errors, infos and non-JSON; wave 2
/// has no error at all (a stretch the filter drops whole).
fn input(wave: u32, p: u32, i: u64) -> String {
    if wave == 2 {
        return format!(r#"{{"level":"info","w":2,"p":{p},"i":{i}}}"#);
    }
    if i % 11 == 10 {
        return format!("not json {wave}-{p}-{i}");
    }
    let level = if (i * 7 + u64::from(p)).is_multiple_of(5) {
        "error"
    } else {
        "info"
    };
    format!(r#"{{"level":"{level}","w":{wave},"p":{p},"i":{i}}}"#)
}

/// Per partition, the values of one wave (wave 3 ends in 40 infos).
fn wave(w: u32, p: u32) -> Vec<String> {
    let n = if w == 2 { 300 } else { 120 };
    (0..n)
        .map(|i| match w {
            3 if i >= 80 => format!(r#"{{"level":"info","w":3,"p":{p},"i":{i}}}"#),
            _ => input(w, p, i),
        })
        .collect()
}

async fn produce_wave(server: &Server, w: u32) {
    let c = support::client();
    for p in 0..PARTITIONS {
        let records: Vec<Value> = wave(w, p).into_iter().map(|v| json!({"value": v})).collect();
        support::produce(&c, server, "logs", p, &json!(records)).await;
    }
}

/// (partition, offset, value) of what the filter keeps of waves `1..=upto`.
fn expected(upto: u32) -> BTreeSet<(u64, u64, String)> {
    let mut out = BTreeSet::new();
    for p in 0..PARTITIONS {
        let all: Vec<String> = (1..=upto).flat_map(|w| wave(w, p)).collect();
        for (o, v) in all.into_iter().enumerate() {
            if v.contains(r#""level":"error""#) {
                out.insert((u64::from(p), o as u64, v));
            }
        }
    }
    out
}

fn got(evs: &[Value]) -> BTreeSet<(u64, u64, String)> {
    evs.iter()
        .filter(|e| e["ev"] == "record")
        .map(|e| {
            let v = e["v"].as_str().expect("v").to_string();
            (e["p"].as_u64().expect("p"), e["o"].as_u64().expect("o"), v)
        })
        .collect()
}

/// The node's plugin calls so far.
async fn plugin_calls(server: &Server) -> f64 {
    crate::kafka_support::metric_sum(server, "sluice_plugin_calls_total", "").await
}

async fn view_through_a_group(lib: &str) {
    let server = Server::start_with(ServerOptions {
        config: Some("[groups]\ninitial_rebalance_delay = \"500ms\"\n".into()),
        ..ServerOptions::default()
    })
    .await;
    let c = support::client();
    let wasm = sluice_test_artifacts::read(sluice_test_artifacts::JSON_FILTER);
    let put = c.put(server.url("/plugins/jf")).body(wasm).send().await.expect("put");
    assert!(put.status().is_success(), "{:?}", put.text().await);
    support::create_stream(&c, &server, "logs", PARTITIONS).await;
    let view = json!({"name": "errors", "input": "logs", "plugin": "jf",
                      "config": {"field": "/level", "value": "error"}});
    let created = support::expect_json(
        c.post(server.url("/views")).json(&view).send().await.expect("post"),
        reqwest::StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["partitions"], PARTITIONS, "{created}");
    produce_wave(&server, 1).await;

    let b = server.kafka();
    let dir = tempfile::tempdir().expect("tempdir");
    let outs: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("m{i}.jsonl"))).collect();
    let members: Vec<Member> = outs
        .iter()
        .map(|o| Member::start(lib, &b, "g", "errors", o, 12))
        .collect();
    let all_events = || -> Vec<Value> { members.iter().flat_map(Member::events).collect() };
    let wait_for = |want: &BTreeSet<(u64, u64, String)>, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !want.is_subset(&got(&all_events())) {
            assert!(Instant::now() < deadline, "{what}: {:?}", all_events().last());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(&expected(1), "wave 1 was not consumed");
    // A stretch that is filtered out whole, then more matches after it.
    produce_wave(&server, 2).await;
    std::thread::sleep(Duration::from_millis(1500));
    produce_wave(&server, 3).await;
    wait_for(&expected(3), "wave 3 was not consumed");
    // Caught up, the members long-poll at the input's end: the plugin is
    // not called again. A client stuck before the trailing records nothing
    // passed would re-read them (and call the plugin) in a loop.
    std::thread::sleep(Duration::from_secs(2));
    let before = plugin_calls(&server).await;
    std::thread::sleep(Duration::from_secs(2));
    let idle = plugin_calls(&server).await - before;
    assert!(idle < 5.0, "{idle} plugin calls while the group was caught up");
    let mut evs = Vec::new();
    for m in members {
        evs.extend(m.finish(Duration::from_secs(90)));
    }
    assert_eq!(
        got(&evs),
        expected(3),
        "exactly the filter of the input, at the input's offsets"
    );
    let pairs: BTreeSet<(u64, u64)> = consumed(&evs).into_iter().collect();
    assert_eq!(pairs.len(), expected(3).len());
    // The clients moved past the trailing records nothing passed (kafka-
    // python reports its fetch position; librdkafka reports the last
    // record's, so for both the idle check above is what shows it).
    if lib == "kafkapython" {
        let mut positions = std::collections::BTreeMap::new();
        for e in evs.iter().filter(|e| e["ev"] == "positions") {
            for (p, o) in e["positions"].as_object().expect("positions") {
                positions.insert(p.clone(), o.as_u64().expect("position"));
            }
        }
        let end = (wave(1, 0).len() + wave(2, 0).len() + wave(3, 0).len()) as u64;
        let want: std::collections::BTreeMap<String, u64> = (0..PARTITIONS).map(|p| (p.to_string(), end)).collect();
        assert_eq!(positions, want, "every partition read to the input's end");
    }

    // HTTP reads of the view agree.
    let url = format!(
        "{}?offset=0&max_records=10000",
        support::records_url(&server, "errors", 1)
    );
    let body = support::expect_json(c.get(url).send().await.expect("get"), reqwest::StatusCode::OK).await;
    let http: BTreeSet<(u64, u64, String)> = body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                1,
                r["offset"].as_u64().expect("offset"),
                r["value"].as_str().expect("v").to_string(),
            )
        })
        .collect();
    let want: BTreeSet<_> = expected(3).into_iter().filter(|(p, _, _)| *p == 1).collect();
    assert_eq!(http, want);

    // The group's offsets are on the view; deleting it needs force.
    let described = support::expect_json(
        c.get(server.url("/views/errors")).send().await.expect("get"),
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(described["groups"], json!(["g"]), "{described}");
    let resp = c.delete(server.url("/views/errors")).send().await.expect("delete");
    support::expect_error(resp, reqwest::StatusCode::CONFLICT, "view_in_use").await;
    let resp = c
        .delete(server.url("/views/errors?force=true"))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), reqwest::StatusCode::NO_CONTENT);
    let group = support::expect_json(
        c.get(server.url("/groups/g")).send().await.expect("get"),
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(group["offsets"], json!([]), "{group}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_group_on_a_view_gets_exactly_the_filtered_input() {
    view_through_a_group("confluent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_group_on_a_view_gets_exactly_the_filtered_input() {
    view_through_a_group("kafkapython").await;
}

/// Metadata lists a view with its input's partitions (its authorized
/// operations read and describe only); produce to it is
/// refused with a clear error and writes nothing; its name cannot be
/// created as a topic or deleted as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_clients_see_a_view_as_a_read_only_topic() {
    let server = Server::start().await;
    let c = support::client();
    let wasm = sluice_test_artifacts::read(sluice_test_artifacts::JSON_FILTER);
    let put = c.put(server.url("/plugins/jf")).body(wasm).send().await.expect("put");
    assert!(put.status().is_success());
    support::create_stream(&c, &server, "logs", 2).await;
    let view = json!({"name": "errors", "input": "logs", "plugin": "jf",
                      "config": {"field": "/level", "value": "error"}});
    let resp = c.post(server.url("/views")).json(&view).send().await.expect("post");
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let b = server.kafka();

    let md = crate::kafka_support::py("confluent", "metadata", &json!({"bootstrap": b}));
    assert_eq!(md["topics"]["errors"].as_object().map(|p| p.len()), Some(2), "{md}");
    // Asked for, its authorized operations say read-only; its input's do not.
    let ops = crate::kafka_support::py(
        "confluent",
        "authorized",
        &json!({"bootstrap": b, "topics": ["errors", "logs"], "group": "g"}),
    );
    assert_eq!(ops["topics"]["errors"], json!(["DESCRIBE", "READ"]), "{ops}");
    assert!(ops["topics"]["logs"].to_string().contains("WRITE"), "{ops}");

    let records = json!([{"value": crate::kafka_support::hex(br#"{"level":"error"}"#), "partition": 0}]);
    let out = crate::kafka_support::py(
        "confluent",
        "produce",
        &json!({"bootstrap": b, "topic": "errors", "records": records, "config": {"message.timeout.ms": 10000}}),
    );
    let err = out["results"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(err.to_lowercase().contains("invalid topic"), "{out}");
    let end = support::expect_json(
        c.get(server.url("/streams/logs")).send().await.expect("get"),
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(end["partitions"][0]["end_offset"], 0, "nothing was written: {end}");

    let args = json!({"bootstrap": b, "topic": "errors", "partitions": 1});
    let created = crate::kafka_support::py("kafkapython", "create_topic", &args);
    assert_eq!(created["ok"], false, "{created}");
    assert!(created["error"].to_string().contains("TopicAlreadyExists"), "{created}");
    let deleted = crate::kafka_support::py("kafkapython", "delete_topic", &args);
    assert_eq!(deleted["ok"], false, "{deleted}");
    assert!(deleted["error"].to_string().contains("InvalidTopic"), "{deleted}");
    let resp = c.get(server.url("/views/errors")).send().await.expect("get");
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "the view is still there");
}

/// `sluice view create|list|describe|delete` and `sluice consume` of a view
/// against a real server; writing to a view through the CLI is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_cli_creates_lists_describes_reads_and_deletes() {
    use crate::cli_support::{sluice, sluice_in, temp_file, values};
    let server = Server::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let filter = temp_file(
        &dir,
        "jf.wasm",
        &sluice_test_artifacts::read(sluice_test_artifacts::JSON_FILTER),
    );
    sluice(&server, &["plugin", "upload", "jf", &filter]).ok();
    sluice(&server, &["stream", "create", "logs"]).ok();
    let input =
        "{\"level\":\"error\",\"n\":1}\n{\"level\":\"info\",\"n\":2}\nnot json\n{\"level\":\"error\",\"n\":4}\n";
    sluice_in(&server, &["produce", "logs", "--partition", "0"], input).ok();

    let out = sluice(
        &server,
        &[
            "view",
            "create",
            "errors",
            "--on",
            "logs",
            "--plugin",
            "jf",
            "--config",
            "field=/level",
            "--config",
            "value=error",
        ],
    )
    .ok();
    assert_eq!(out.stdout, "view `errors` created over `logs`\n");
    let listed = sluice(&server, &["view", "list", "--output", "json"]).ok().json();
    assert_eq!(listed["views"][0]["name"], "errors", "{listed}");
    let table = sluice(&server, &["view", "list"]).ok().stdout;
    assert!(table.contains("field=/level value=error"), "{table}");
    let described = sluice(&server, &["view", "describe", "errors"]).ok().stdout;
    assert!(described.contains("groups with offsets: none"), "{described}");

    let run = sluice(
        &server,
        &[
            "consume",
            "errors",
            "--partition",
            "0",
            "--offset",
            "0",
            "--max-records",
            "2",
            "--output",
            "json",
        ],
    )
    .ok();
    assert_eq!(
        values(&run),
        [r#"{"level":"error","n":1}"#, r#"{"level":"error","n":4}"#]
    );
    let offsets: Vec<u64> = run.json_lines().iter().filter_map(|r| r["offset"].as_u64()).collect();
    assert_eq!(offsets, [0, 3], "the input's offsets");

    sluice_in(&server, &["produce", "errors", "--partition", "0"], "x\n").fails(1, "view_read_only");
    sluice(&server, &["stream", "delete", "logs"]).fails(1, "stream_in_use");
    sluice(&server, &["view", "create", "errors", "--on", "logs", "--plugin", "jf"]).fails(1, "view_exists");
    let out = sluice(&server, &["view", "delete", "errors"]).ok().stdout;
    assert_eq!(out, "view `errors` deleted\n");
    sluice(&server, &["view", "describe", "errors"]).fails(1, "view_not_found");
    sluice(&server, &["stream", "delete", "logs"]).ok();
}
