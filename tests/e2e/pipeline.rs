//! Pipelines and plugins against the real binary over real HTTP.
//!
//! 1. Exactly-once pipeline output across SIGKILL: producers write to a
//!    3-partition input while an `in -> upper -> out` pipeline (tiny batches)
//!    copies it into a 2-partition output; the server is SIGKILLed mid-load
//!    (and sometimes again during or right after recovery) and restarted on
//!    the same data dir. After every restart the output must be a prefix of
//!    the transformed input (per input partition, in order, no duplicates);
//!    at the end, once the pipeline caught up, it must be all of it.
//! 2. Plugin lifecycle over HTTP: upload, consume-time filtering, refused
//!    uploads, a trapping plugin, `plugin_in_use`, and plugins surviving a
//!    SIGKILL + restart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_test_artifacts as wasm;
use tokio::task::JoinHandle;

use crate::support::{self, Rng, Server};

const INPUT: &str = "in";
const OUTPUT: &str = "out";
const IN_PARTS: u32 = 3;
const OUT_PARTS: u32 = 2;
const PRODUCERS: usize = 6;
const CYCLES: u32 = 4;
const PIPELINE: &str = "shout";
const BATCH_RECORDS: u32 = 5;
/// How long the pipeline may take to catch up once the producers stopped.
const CATCH_UP: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- helpers

/// `PUT /plugins/{name}` with raw bytes.
async fn put_plugin(client: &reqwest::Client, server: &Server, name: &str, body: Vec<u8>) -> reqwest::Response {
    client
        .put(server.url(&format!("/plugins/{name}")))
        .header(reqwest::header::CONTENT_TYPE, "application/wasm")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT /plugins/{name}: {e}"))
}

/// Uploads a built plugin; asserts 201 and the shape of the answer.
async fn upload(client: &reqwest::Client, server: &Server, name: &str, path: &str, want_version: u64) -> Value {
    let bytes = wasm::read(path);
    let size = bytes.len() as u64;
    let resp = put_plugin(client, server, name, bytes).await;
    let body = support::expect_json(resp, StatusCode::CREATED).await;
    assert_eq!(body["name"], name, "{body}");
    assert_eq!(body["version"], want_version, "{body}");
    assert_eq!(body["kind"], "transform", "{body}");
    assert_eq!(body["size"], size, "{body}");
    assert!(body["uploaded_ms"].is_u64(), "{body}");
    body
}

async fn get(client: &reqwest::Client, server: &Server, path: &str) -> reqwest::Response {
    client
        .get(server.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn delete(client: &reqwest::Client, server: &Server, path: &str) -> reqwest::Response {
    client
        .delete(server.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("DELETE {path}: {e}"))
}

/// `POST /pipelines`; asserts 201 and a running pipeline.
async fn create_pipeline(client: &reqwest::Client, server: &Server, spec: &Value) -> Value {
    let resp = client
        .post(server.url("/pipelines"))
        .json(spec)
        .send()
        .await
        .expect("POST /pipelines");
    let body = support::expect_json(resp, StatusCode::CREATED).await;
    assert_eq!(body["name"], spec["name"], "{body}");
    assert_eq!(body["state"], "running", "{body}");
    body
}

async fn pipeline_status(client: &reqwest::Client, server: &Server, name: &str) -> Value {
    let resp = get(client, server, &format!("/pipelines/{name}")).await;
    support::expect_json(resp, StatusCode::OK).await
}

/// Names of the stored plugins (`GET /plugins`), sorted.
async fn plugin_names(client: &reqwest::Client, server: &Server) -> Vec<String> {
    let body = support::expect_json(get(client, server, "/plugins").await, StatusCode::OK).await;
    let mut names: Vec<String> = body["plugins"]
        .as_array()
        .unwrap_or_else(|| panic!("GET /plugins: no plugins array: {body}"))
        .iter()
        .map(|p| p["name"].as_str().expect("plugin name").to_string())
        .collect();
    names.sort();
    names
}

/// One consume request; `query` without the leading `?`.
async fn consume(
    client: &reqwest::Client,
    server: &Server,
    stream: &str,
    partition: u32,
    query: &str,
) -> reqwest::Response {
    let url = format!("{}?{query}", support::records_url(server, stream, partition));
    client
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// `(offset, value)` of the records of a consume page.
fn offsets_and_values(page: &Value) -> Vec<(u64, String)> {
    page["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records array: {page}"))
        .iter()
        .map(|r| {
            (
                r["offset"].as_u64().expect("offset"),
                r["value"].as_str().expect("text value").to_string(),
            )
        })
        .collect()
}

fn values(page: &Value) -> Vec<String> {
    offsets_and_values(page).into_iter().map(|(_, v)| v).collect()
}

/// Reads a whole partition through a plugin, paging on `next_offset` with
/// small pages (which follow the input, not the output).
async fn read_all_through(
    client: &reqwest::Client,
    server: &Server,
    stream: &str,
    partition: u32,
    plugin_query: &str,
) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for _ in 0..10_000 {
        let query = format!("offset={offset}&max_records=2&{plugin_query}");
        let page = support::expect_json(consume(client, server, stream, partition, &query).await, StatusCode::OK).await;
        let next = page["next_offset"].as_u64().expect("next_offset");
        let end = page["end_offset"].as_u64().expect("end_offset");
        let got = offsets_and_values(&page);
        assert!(
            got.iter().all(|(o, _)| *o >= offset && *o < next),
            "{query}: records outside [{offset}, {next}): {page}"
        );
        out.extend(got);
        if next == end {
            return out;
        }
        assert!(next > offset, "{query}: no progress: {page}");
        offset = next;
    }
    panic!("reading {stream}/{partition} through a plugin did not reach the end");
}

/// Produces plain records (text values), asserts the ack.
async fn produce_values(client: &reqwest::Client, server: &Server, stream: &str, values: &[&str]) -> Vec<u64> {
    let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
    support::produce(client, server, stream, 0, &json!(records)).await
}

/// Polls `stream`/0 until it holds exactly `want` values (bounded).
async fn wait_for_values(client: &reqwest::Client, server: &Server, stream: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got: Vec<String> = support::read_all(client, server, stream, 0, "")
            .await
            .iter()
            .map(|r| r["value"].as_str().expect("text value").to_string())
            .collect();
        if got == want {
            return;
        }
        assert!(
            got.len() <= want.len() && got[..] == want[..got.len()],
            "{stream}: unexpected contents {got:?}, want {want:?}"
        );
        if Instant::now() >= deadline {
            panic!(
                "{stream}: still {got:?} after 15 s, want {want:?}\n{}",
                server.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------ exactly-once under SIGKILL

/// Value of a non-`drop` record: unique over the whole test.
fn value_of(cycle: u32, producer: usize, seq: u64) -> String {
    format!("r{cycle}-{producer}-{seq}")
}

/// The producer of an (upper-cased or not) value `r{cycle}-{producer}-{seq}`.
fn producer_of(value: &str) -> Option<usize> {
    let mut parts = value.strip_prefix(['r', 'R'])?.split('-');
    parts.next()?.parse::<u32>().ok()?;
    let producer = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    parts.next().is_none().then_some(producer)
}

fn input_partition_of(producer: usize) -> u32 {
    producer as u32 % IN_PARTS
}

struct ProducerRun {
    producer: usize,
    next_seq: u64,
    /// Values (not `drop`) the server acknowledged.
    acked: Vec<String>,
    acked_records: usize,
    /// Records of requests that failed (may or may not be stored).
    unacked_records: usize,
    anomalies: Vec<String>,
}

/// Sends batches of 1–5 records (about one in ten a literal `drop`, and now
/// and then a batch of exactly `BATCH_RECORDS` drops, which the pipeline
/// turns into no output at all) until told to stop or a request fails.
async fn run_producer(
    url: String,
    producer: usize,
    cycle: u32,
    first_seq: u64,
    stopping: Arc<AtomicBool>,
    mut rng: Rng,
) -> ProducerRun {
    let client = support::client();
    let mut run = ProducerRun {
        producer,
        next_seq: first_seq,
        acked: Vec::new(),
        acked_records: 0,
        unacked_records: 0,
        anomalies: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if stopping.load(Ordering::SeqCst) {
            return run;
        }
        if Instant::now() > deadline {
            run.anomalies.push(format!("producer {producer} was never stopped"));
            return run;
        }
        let all_drops = rng.range(0, 24) == 0;
        let n = if all_drops {
            BATCH_RECORDS as u64
        } else {
            rng.range(1, 5)
        };
        let mut batch = Vec::new();
        let mut sent_values = Vec::new();
        for _ in 0..n {
            let seq = run.next_seq;
            run.next_seq += 1;
            let value = if all_drops || rng.range(0, 9) == 0 {
                "drop".to_string()
            } else {
                let v = value_of(cycle, producer, seq);
                sent_values.push(v.clone());
                v
            };
            batch.push(json!({
                "key": format!("k{producer}"),
                "value": value,
                "headers": {"seq": seq.to_string(), "cycle": cycle.to_string()},
            }));
        }
        let outcome = match client.post(&url).json(&batch).send().await {
            Err(e) => Err(format!("request error: {e}")),
            Ok(resp) => {
                let status = resp.status();
                match resp.bytes().await {
                    Err(e) => Err(format!("status {status}, body read error: {e}")),
                    Ok(b) if status != StatusCode::OK => {
                        Err(format!("status {status}: {}", String::from_utf8_lossy(&b)))
                    }
                    Ok(b) => match serde_json::from_slice::<Value>(&b)
                        .map_err(|e| e.to_string())
                        .and_then(|ack| support::check_ack(&ack, batch.len()))
                    {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            run.anomalies
                                .push(format!("producer {producer}: 200 with a bad ack: {e}"));
                            Err(e)
                        }
                    },
                }
            }
        };
        match outcome {
            Ok(()) => {
                run.acked_records += batch.len();
                run.acked.extend(sent_values);
            }
            Err(e) => {
                run.unacked_records += batch.len();
                if !stopping.load(Ordering::SeqCst) {
                    run.anomalies.push(format!(
                        "producer {producer}: request failed while the server was meant to be up: {e}"
                    ));
                }
                return run;
            }
        }
    }
}

/// One round of producers against one server process.
struct Load {
    stopping: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<ProducerRun>>,
}

impl Load {
    fn start(server: &Server, cycle: u32, next_seq: &[u64], rng: &mut Rng) -> Load {
        let stopping = Arc::new(AtomicBool::new(false));
        let tasks = (0..PRODUCERS)
            .map(|producer| {
                let url = support::records_url(server, INPUT, input_partition_of(producer));
                let rng = Rng::new(rng.next_u64());
                tokio::spawn(run_producer(
                    url,
                    producer,
                    cycle,
                    next_seq[producer],
                    stopping.clone(),
                    rng,
                ))
            })
            .collect();
        Load { stopping, tasks }
    }

    /// Call right before the server is stopped: failures after this are expected.
    fn mark_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Waits (bounded) for the producers; returns (acked records, unacked records).
    async fn finish(self, next_seq: &mut [u64], acked: &mut HashSet<String>) -> (usize, usize) {
        let (mut n_acked, mut n_unacked) = (0, 0);
        let mut anomalies = Vec::new();
        for task in self.tasks {
            let run = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a producer did not stop within 30 s")
                .expect("producer task panicked");
            next_seq[run.producer] = run.next_seq;
            n_acked += run.acked_records;
            n_unacked += run.unacked_records;
            anomalies.extend(run.anomalies);
            for v in run.acked {
                assert!(acked.insert(v.clone()), "value {v} acknowledged twice");
            }
        }
        assert!(anomalies.is_empty(), "producer anomalies:\n{}", anomalies.join("\n"));
        (n_acked, n_unacked)
    }
}

/// What a pipeline output record must look like, from its input record.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    value: String,
    key: Value,
    headers: Value,
    /// Where the input record is, for messages.
    input_offset: u64,
}

#[derive(Debug, Default)]
struct Counts {
    input: usize,
    drops: usize,
    output: usize,
}

/// Reads the pipeline's status, then all of `out`, then all of `in`, and
/// checks that for every input partition `i` the records of output partition
/// `i % OUT_PARTS` that came from `i` are, in order, exactly the upper-cased
/// non-`drop` records of `i` — all of them when `complete`, else a prefix
/// that covers at least everything up to the pipeline's durable position.
/// Also checks that every acknowledged value is in the input.
async fn check_output(server: &Server, when: &str, acked: &HashSet<String>, complete: bool) -> Counts {
    let client = support::client();
    let status = pipeline_status(&client, server, PIPELINE).await;
    let positions: Vec<u64> = status["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("{when}: status without partitions: {status}"))
        .iter()
        .map(|p| p["position"].as_u64().expect("position"))
        .collect();
    assert_eq!(positions.len(), IN_PARTS as usize, "{when}: {status}");

    let mut out = Vec::new();
    for p in 0..OUT_PARTS {
        out.push(support::read_all(&client, server, OUTPUT, p, "").await);
    }
    let mut input = Vec::new();
    for p in 0..IN_PARTS {
        input.push(support::read_all(&client, server, INPUT, p, "").await);
    }

    let mut problems: Vec<String> = Vec::new();
    let mut counts = Counts::default();
    // The transformed input, per input partition.
    let mut expected: Vec<Vec<Expected>> = vec![Vec::new(); IN_PARTS as usize];
    let mut in_values = HashSet::new();
    let mut drops_before_position = vec![0usize; IN_PARTS as usize];
    for (i, records) in input.iter().enumerate() {
        counts.input += records.len();
        for r in records {
            let offset = r["offset"].as_u64().expect("offset");
            let value = r["value"].as_str().expect("text value");
            if value == "drop" {
                counts.drops += 1;
                if offset < positions[i] {
                    drops_before_position[i] += 1;
                }
                continue;
            }
            match producer_of(value) {
                Some(k) if input_partition_of(k) == i as u32 => {}
                _ => problems.push(format!("{when}: in/{i} offset {offset}: unexpected record {r}")),
            }
            if !in_values.insert(value.to_string()) {
                problems.push(format!("{when}: in/{i} offset {offset}: value {value} stored twice"));
            }
            expected[i].push(Expected {
                value: value.to_ascii_uppercase(),
                key: r["key"].clone(),
                headers: r["headers"].clone(),
                input_offset: offset,
            });
        }
    }
    let mut missing_acked: Vec<&String> = acked.iter().filter(|v| !in_values.contains(*v)).collect();
    missing_acked.sort();
    for v in missing_acked.iter().take(20) {
        problems.push(format!("{when}: acknowledged value {v} is not in `{INPUT}`"));
    }

    // The output, split by the input partition each record came from.
    let mut got: Vec<Vec<(u32, u64, &Value)>> = vec![Vec::new(); IN_PARTS as usize];
    let mut out_values = HashMap::new();
    for (o, records) in out.iter().enumerate() {
        counts.output += records.len();
        for r in records {
            let offset = r["offset"].as_u64().expect("offset");
            let Some(value) = r["value"].as_str() else {
                problems.push(format!("{when}: out/{o} offset {offset}: value is not text: {r}"));
                continue;
            };
            if let Some((po, poff)) = out_values.insert(value.to_string(), (o, offset)) {
                problems.push(format!(
                    "{when}: DUPLICATE output {value}: out/{po} offset {poff} and out/{o} offset {offset}"
                ));
            }
            let Some(k) = producer_of(value).filter(|_| value.starts_with('R')) else {
                problems.push(format!("{when}: out/{o} offset {offset}: unexpected record {r}"));
                continue;
            };
            let i = input_partition_of(k);
            if i % OUT_PARTS != o as u32 {
                problems.push(format!(
                    "{when}: out/{o} offset {offset}: {value} comes from in/{i}, which maps to out/{}",
                    i % OUT_PARTS
                ));
                continue;
            }
            got[i as usize].push((o as u32, offset, r));
        }
    }

    for i in 0..IN_PARTS as usize {
        let want = &expected[i];
        let have = &got[i];
        let o = i as u32 % OUT_PARTS;
        let mut first_bad = None;
        for (n, (_, offset, r)) in have.iter().enumerate() {
            let Some(w) = want.get(n) else {
                first_bad = Some(format!(
                    "out/{o} offset {offset} ({}) is the output record #{n} of in/{i}, which has only {} non-drop records",
                    r["value"],
                    want.len()
                ));
                break;
            };
            if r["value"] != w.value.as_str() || r["key"] != w.key || r["headers"] != w.headers {
                first_bad = Some(format!(
                    "output record #{n} of in/{i} is out/{o} offset {offset} {r}, want the transform of in/{i} offset {} \
                     {w:?} (seen earlier in the output: {})",
                    w.input_offset,
                    have[..n].iter().any(|(_, _, e)| e["value"] == r["value"])
                ));
                break;
            }
        }
        if let Some(bad) = first_bad {
            problems.push(format!("{when}: order/exactly-once broken: {bad}"));
            continue;
        }
        let durable = positions[i] as usize - drops_before_position[i];
        if complete && have.len() != want.len() {
            let missing = &want[have.len().min(want.len())..];
            problems.push(format!(
                "{when}: in/{i} has {} non-drop records but only {} reached out/{o}; first missing: {:?}",
                want.len(),
                have.len(),
                missing.first()
            ));
        } else if have.len() < durable {
            problems.push(format!(
                "{when}: pipeline position of in/{i} is {} ({durable} non-drop records) but only {} are in out/{o}",
                positions[i],
                have.len()
            ));
        }
    }

    if !problems.is_empty() {
        let shown = problems.len().min(40);
        panic!(
            "{} problems (first {shown}); pipeline status {status}\n{}",
            problems.len(),
            problems[..shown].join("\n")
        );
    }
    counts
}

/// Polls the pipeline until it runs and has no lag on any input partition.
async fn wait_caught_up(server: &Server) -> Value {
    let client = support::client();
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let status = pipeline_status(&client, server, PIPELINE).await;
        assert_ne!(status["state"], "failed", "pipeline failed: {status}");
        let parts = status["partitions"].as_array().expect("partitions");
        if status["state"] == "running" && parts.len() == IN_PARTS as usize && parts.iter().all(|p| p["lag"] == 0) {
            assert!(status["error"].is_null(), "{status}");
            return status;
        }
        if Instant::now() >= deadline {
            panic!(
                "pipeline not caught up within {CATCH_UP:?}: {status}\n{}",
                server.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until the pipeline has processed input since the server
/// started (its `records_in` counter starts at 0 in every server process),
/// and returns how long that took.
async fn wait_processing(server: &Server) -> Duration {
    let client = support::client();
    let started = Instant::now();
    loop {
        let status = pipeline_status(&client, server, PIPELINE).await;
        assert_ne!(status["state"], "failed", "pipeline failed: {status}");
        if status["records_in"].as_u64().is_some_and(|n| n > 0) {
            return started.elapsed();
        }
        if started.elapsed() >= CATCH_UP {
            panic!(
                "the pipeline processed nothing within {CATCH_UP:?}: {status}\n{}",
                server.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lags(status: &Value) -> Vec<u64> {
    status["partitions"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["lag"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipeline_output_is_exactly_once_across_sigkill() {
    let started = Instant::now();
    let (mut rng, seed) = Rng::from_env_or_time();
    println!("pipeline crash test seed {seed} (replay the timing with SLUICE_E2E_SEED={seed})");

    let mut server = Server::start().await;
    let client = support::client();
    upload(&client, &server, "upper", wasm::UPPER, 1).await;
    support::create_stream(&client, &server, INPUT, IN_PARTS).await;
    support::create_stream(&client, &server, OUTPUT, OUT_PARTS).await;
    let created = create_pipeline(
        &client,
        &server,
        &json!({
            "name": PIPELINE,
            "input": INPUT,
            "output": OUTPUT,
            "plugin": "upper",
            "batch_records": BATCH_RECORDS,
        }),
    )
    .await;
    assert_eq!(
        created["partitions"].as_array().map(Vec::len),
        Some(IN_PARTS as usize),
        "{created}"
    );

    let mut next_seq = vec![0u64; PRODUCERS];
    let mut acked = HashSet::new();
    let mut total_acked = 0;
    for cycle in 0..CYCLES {
        let load = Load::start(&server, cycle, &next_seq, &mut rng);
        // Crash while the pipeline is busy, not while it is still starting.
        let warm_up = wait_processing(&server).await;
        let delay = Duration::from_millis(rng.range(200, 700));
        tokio::time::sleep(delay).await;
        let before = pipeline_status(&client, &server, PIPELINE).await;
        load.mark_stopping();
        server.kill();
        let (n_acked, n_unacked) = load.finish(&mut next_seq, &mut acked).await;
        total_acked += n_acked;
        assert!(n_acked > 0, "cycle {cycle}: nothing acknowledged in {delay:?} of load");

        let extra = match cycle % 3 {
            1 => {
                // Crash again while the server recovers.
                let after = Duration::from_millis(rng.range(0, 80));
                server.start_and_kill_after(after).await;
                format!(", SIGKILLed again {after:?} into the restart")
            }
            2 => {
                // Crash again right after the restart, while the pipeline catches up.
                server.restart().await;
                let warm_up = wait_processing(&server).await;
                let after = Duration::from_millis(rng.range(0, 20));
                tokio::time::sleep(after).await;
                let lag = pipeline_status(&client, &server, PIPELINE).await;
                server.kill();
                format!(
                    ", SIGKILLed again {after:?} after the restarted pipeline began to catch up \
                     ({warm_up:?} after the restart; lag then {:?})",
                    lags(&lag)
                )
            }
            _ => String::new(),
        };
        server.restart().await;
        let counts = check_output(&server, &format!("after cycle {cycle}"), &acked, false).await;
        println!(
            "cycle {cycle}: SIGKILL {delay:?} after the pipeline began processing ({warm_up:?} into the load; \
             pipeline lag then {:?}): {n_acked} acked records, \
             {n_unacked} unacked{extra}; after restart: {} input records ({} drop), {} output records, prefix ok",
            lags(&before),
            counts.input,
            counts.drops,
            counts.output
        );
    }

    // A last round of load on the restarted server, stopped without a crash.
    let load = Load::start(&server, CYCLES, &next_seq, &mut rng);
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.mark_stopping();
    let (n_acked, _) = load.finish(&mut next_seq, &mut acked).await;
    total_acked += n_acked;

    let caught_up = Instant::now();
    let status = wait_caught_up(&server).await;
    let catch_up = caught_up.elapsed();
    let counts = check_output(&server, "at the end", &acked, true).await;
    println!(
        "pipeline crash test done in {:?}: {CYCLES} SIGKILL cycles; {total_acked} acked input records; \
         {} input records stored ({} drop) -> {} output records, exactly once and in order; \
         caught up {catch_up:?} after the producers stopped; counters since the last start: in {} out {}",
        started.elapsed(),
        counts.input,
        counts.drops,
        counts.output,
        status["records_in"],
        status["records_out"]
    );
    assert_eq!(counts.output, counts.input - counts.drops);
    assert!(
        counts.input >= 300,
        "too little load to mean anything: only {} input records",
        counts.input
    );
}

// -------------------------------------------------- plugins over real HTTP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_filter_and_plugin_lifecycle_over_http() {
    let mut server = Server::start().await;
    let client = support::client();
    assert!(plugin_names(&client, &server).await.is_empty());

    // Uploads: versions count per name.
    upload(&client, &server, "json-filter", wasm::JSON_FILTER, 1).await;
    upload(&client, &server, "upper", wasm::UPPER, 1).await;
    upload(&client, &server, "upper", wasm::UPPER, 2).await;
    upload(&client, &server, "panicker", wasm::PANICKER, 1).await;

    // Refused uploads store nothing.
    let resp = put_plugin(
        &client,
        &server,
        "garbage",
        b"\0asm but not really a component".to_vec(),
    )
    .await;
    support::expect_error(resp, StatusCode::BAD_REQUEST, "invalid_plugin").await;
    let mut truncated = wasm::read(wasm::UPPER);
    truncated.truncate(truncated.len() / 2);
    let resp = put_plugin(&client, &server, "garbage", truncated).await;
    support::expect_error(resp, StatusCode::BAD_REQUEST, "invalid_plugin").await;
    let resp = get(&client, &server, "/plugins/garbage").await;
    support::expect_error(resp, StatusCode::NOT_FOUND, "plugin_not_found").await;
    assert_eq!(
        plugin_names(&client, &server).await,
        ["json-filter", "panicker", "upper"]
    );

    // Consume-time filtering with json-filter.
    support::create_stream(&client, &server, "logs", 1).await;
    let logs = json!([
        {"key": "a", "value": r#"{"level":"error","msg":"disk full"}"#},
        {"value": r#"{"level":"info","msg":"ok"}"#},
        {"value": "not json at all"},
        {"value": r#"{"level":"error","msg":"oom"}"#, "headers": {"h": "1"}},
        {"value": r#"{"msg":"no level"}"#},
        {"value": r#"{"level":"ERROR"}"#},
        {"value": r#"{"level":["error"]}"#},
        {"key": "z", "value": r#"{"level":"error"}"#},
    ]);
    support::produce(&client, &server, "logs", 0, &logs).await;
    let errors = "plugin=json-filter&config.field=/level&config.value=error";
    let page = support::expect_json(consume(&client, &server, "logs", 0, errors).await, StatusCode::OK).await;
    assert_eq!(
        offsets_and_values(&page),
        [
            (0, r#"{"level":"error","msg":"disk full"}"#.to_string()),
            (3, r#"{"level":"error","msg":"oom"}"#.to_string()),
            (7, r#"{"level":"error"}"#.to_string()),
        ],
        "{page}"
    );
    assert_eq!(
        (page["next_offset"].as_u64(), page["end_offset"].as_u64()),
        (Some(8), Some(8)),
        "{page}"
    );
    assert_eq!(page["records"][0]["key"], "a", "{page}");
    assert_eq!(page["records"][1]["headers"], json!({"h": "1"}), "{page}");
    assert_eq!(page["records"][2]["key"], "z", "{page}");
    // The same through small pages.
    let paged = read_all_through(&client, &server, "logs", 0, errors).await;
    assert_eq!(paged, offsets_and_values(&page));
    // Another condition, and a config the plugin refuses.
    let page = support::expect_json(
        consume(
            &client,
            &server,
            "logs",
            0,
            "plugin=json-filter&config.field=/level&config.op=missing",
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(offsets_and_values(&page), [(4, r#"{"msg":"no level"}"#.to_string())]);
    let resp = consume(&client, &server, "logs", 0, "plugin=json-filter").await;
    support::expect_error(resp, StatusCode::BAD_REQUEST, "plugin_config_rejected").await;
    // Filtering stored nothing.
    let page = support::expect_json(consume(&client, &server, "logs", 0, "").await, StatusCode::OK).await;
    assert_eq!(values(&page).len(), 8);
    assert_eq!(values(&page)[2], "not json at all");

    // A trapping plugin fails the read with 422, and only that read.
    support::create_stream(&client, &server, "p", 1).await;
    produce_values(&client, &server, "p", &["ok", "panic", "after"]).await;
    for _ in 0..3 {
        let resp = consume(&client, &server, "p", 0, "plugin=panicker").await;
        support::expect_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "plugin_trapped").await;
    }
    let page = support::expect_json(
        consume(&client, &server, "p", 0, "plugin=panicker&max_records=1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(offsets_and_values(&page), [(0, "ok".to_string())]);
    let page = support::expect_json(
        consume(&client, &server, "p", 0, "plugin=panicker&offset=2").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(offsets_and_values(&page), [(2, "after".to_string())]);
    let page = support::expect_json(consume(&client, &server, "p", 0, "").await, StatusCode::OK).await;
    assert_eq!(values(&page), ["ok", "panic", "after"]);
    let page = support::expect_json(consume(&client, &server, "p", 0, "plugin=upper").await, StatusCode::OK).await;
    assert_eq!(values(&page), ["OK", "PANIC", "AFTER"]);
    assert_eq!(produce_values(&client, &server, "p", &["later"]).await, [3]);
    let page = support::expect_json(consume(&client, &server, "logs", 0, errors).await, StatusCode::OK).await;
    assert_eq!(values(&page).len(), 3, "{page}");

    // A plugin a pipeline uses cannot be deleted; an unused one can.
    support::create_stream(&client, &server, "src", 1).await;
    support::create_stream(&client, &server, "dst", 1).await;
    create_pipeline(
        &client,
        &server,
        &json!({"name": "up", "input": "src", "output": "dst", "plugin": "upper"}),
    )
    .await;
    produce_values(&client, &server, "src", &["a", "drop", "b"]).await;
    wait_for_values(&client, &server, "dst", &["A", "B"]).await;
    let resp = delete(&client, &server, "/plugins/upper").await;
    support::expect_error(resp, StatusCode::CONFLICT, "plugin_in_use").await;
    let upper = support::expect_json(get(&client, &server, "/plugins/upper").await, StatusCode::OK).await;
    assert_eq!(upper["versions"].as_array().map(Vec::len), Some(2), "{upper}");
    let resp = delete(&client, &server, "/plugins/json-filter").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = get(&client, &server, "/plugins/json-filter").await;
    support::expect_error(resp, StatusCode::NOT_FOUND, "plugin_not_found").await;
    let resp = delete(&client, &server, "/plugins/json-filter").await;
    support::expect_error(resp, StatusCode::NOT_FOUND, "plugin_not_found").await;

    // Plugins (and the deletion) survive a SIGKILL.
    server.kill();
    server.restart().await;
    assert_eq!(plugin_names(&client, &server).await, ["panicker", "upper"]);
    let upper = support::expect_json(get(&client, &server, "/plugins/upper").await, StatusCode::OK).await;
    let versions: Vec<u64> = upper["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["version"].as_u64().expect("version"))
        .collect();
    assert_eq!(versions, [1, 2], "{upper}");
    assert!(
        upper["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .all(|v| v["kind"] == "transform" && v["size"] == wasm::read(wasm::UPPER).len() as u64),
        "{upper}"
    );
    let resp = consume(&client, &server, "logs", 0, errors).await;
    support::expect_error(resp, StatusCode::NOT_FOUND, "plugin_not_found").await;
    let page = support::expect_json(
        consume(&client, &server, "src", 0, "plugin=upper&plugin_version=1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(values(&page), ["A", "B"]);
    let resp = consume(&client, &server, "p", 0, "plugin=panicker").await;
    support::expect_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "plugin_trapped").await;

    // The pipeline still runs after the restart and still pins its plugin.
    let status = pipeline_status(&client, &server, "up").await;
    assert_eq!(status["state"], "running", "{status}");
    let resp = delete(&client, &server, "/plugins/upper").await;
    support::expect_error(resp, StatusCode::CONFLICT, "plugin_in_use").await;
    produce_values(&client, &server, "src", &["c"]).await;
    wait_for_values(&client, &server, "dst", &["A", "B", "C"]).await;
    let resp = delete(&client, &server, "/pipelines/up").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = delete(&client, &server, "/plugins/upper").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(plugin_names(&client, &server).await, ["panicker"]);
}
